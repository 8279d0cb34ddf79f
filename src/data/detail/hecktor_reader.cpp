// HECKTOR layouts. 2021: hecktor_nii/{PID}_ct.nii.gz, _pt.nii.gz, _gtvt.nii.gz + *bbox*.csv; the 2020 edition
// keeps one folder per patient with the label named {PID}_ct_gtvt.nii.gz. 2022: imagesTr/{Centre}-{NNN}__CT.nii.gz,
// __PT.nii.gz, labelsTr/{Centre}-{NNN}.nii.gz, imagesTs/.
#include <map>
#include <regex>
#include <set>

#include "data/detail/scan.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/io/image_io.hpp"

namespace teachformer::data::detail {
namespace {

struct PatientFiles {
  std::optional<fs::path> ct, pt, label;
  fs::path folder;
};

void assign(Dataset& ds, std::optional<fs::path>& slot, const fs::path& file, const std::string& pid) {
  if (slot) {
    add_problem(ds, Severity::Error, file,
                "duplicate id '" + pid + "': also found as '" + display_path(ds.root, *slot) + "'",
                "keep one copy of each patient's files");
    return;
  }
  slot = file;
}

// Classifies one file of a hecktor_nii folder.
void classify(Dataset& ds, std::map<std::string, PatientFiles>& patients, const fs::path& file) {
  const std::string name = file.filename().string();
  struct Role {
    const char* suffix;
    int role;  // 0 ct, 1 pt, 2 label
  };
  static const Role roles[] = {{"_ct_gtvt.nii.gz", 2}, {"_gtvt.nii.gz", 2}, {"_ct.nii.gz", 0}, {"_pt.nii.gz", 1}};
  for (const auto& r : roles) {
    if (!has_suffix(name, r.suffix)) continue;
    const std::string pid = name.substr(0, name.size() - std::string(r.suffix).size());
    auto& p = patients[pid];
    if (p.folder.empty()) p.folder = file.parent_path();
    assign(ds, r.role == 0 ? p.ct : r.role == 1 ? p.pt : p.label, file, pid);
    return;
  }
  if (io::is_image_file(file))
    add_problem(ds, Severity::Warning, file, "unrecognised file name; ignored",
                "expected {PID}_ct.nii.gz, {PID}_pt.nii.gz or {PID}_gtvt.nii.gz");
}

}  // namespace

Dataset read_hecktor2021(const fs::path& root) {
  Dataset ds;
  ds.root = root;
  ds.name = root.filename().string();
  ds.channel_names = {"CT", "PET"};
  ds.labels = {{"background", 0}, {"GTVt", 1}};
  ds.raw_label_values = {0, 1};
  ds.file_ending = ".nii.gz";
  const fs::path nii = fs::is_directory(root / "hecktor_nii") ? root / "hecktor_nii" : root;
  std::map<std::string, PatientFiles> patients;
  for (const auto& f : list_files(nii)) classify(ds, patients, f);
  for (const auto& d : list_dirs(nii)) {
    for (const auto& f : list_files(d)) {
      const std::string before = f.filename().string();
      classify(ds, patients, f);
      const auto pid_end = before.find('_');
      if (pid_end != std::string::npos && before.substr(0, pid_end) != d.filename().string() &&
          io::is_image_file(f))
        add_problem(ds, Severity::Warning, f, "file of patient '" + before.substr(0, pid_end) +
                                                  "' lies in the folder of '" + d.filename().string() + "'");
    }
  }
  std::vector<fs::path> csv_folders{root, nii};
  if (nii == root && root.has_parent_path()) csv_folders.push_back(root.parent_path());
  const auto csvs = find_bbox_csvs(csv_folders);
  if (csvs.empty())
    add_problem(ds, Severity::Error, root, "no bounding-box CSV found",
                "expected hecktor2021_bbox_training.csv (columns PatientID,x1,x2,y1,y2,z1,z2) beside hecktor_nii/");
  const auto boxes = read_bbox_csvs(csvs, ds);
  for (auto& [pid, files] : patients) {
    bool ok = true;
    if (!files.ct) {
      add_problem(ds, Severity::Error, files.folder / (pid + "_ct.nii.gz"),
                  "missing channel file '" + pid + "_ct.nii.gz' (channel 'CT') of patient '" + pid + "'");
      ok = false;
    }
    if (!files.pt) {
      add_problem(ds, Severity::Error, files.folder / (pid + "_pt.nii.gz"),
                  "missing channel file '" + pid + "_pt.nii.gz' (channel 'PET') of patient '" + pid + "'");
      ok = false;
    }
    const auto box = boxes.find(pid);
    if (box == boxes.end() && !csvs.empty()) {
      add_problem(ds, Severity::Error, csvs.front(), "no bounding box for patient '" + pid + "'",
                  "add a row PatientID,x1,x2,y1,y2,z1,z2 for it");
      ok = false;
    }
    if (!ok) continue;
    Case c;
    c.id = pid;
    c.patient_id = pid;
    c.channel_names = ds.channel_names;
    c.channel_files = {*files.ct, *files.pt};
    c.label_file = files.label;
    if (box != boxes.end()) c.bbox = box->second;
    (c.labelled() ? ds.training : ds.unlabelled).push_back(std::move(c));
  }
  for (const auto& [pid, box] : boxes)
    if (!patients.count(pid))
      add_problem(ds, Severity::Warning, csvs.front(), "bounding box for patient '" + pid + "' without images; ignored");
  return ds;
}

Dataset read_hecktor2022(const fs::path& root) {
  Dataset ds;
  ds.root = root;
  ds.name = root.filename().string();
  ds.channel_names = {"CT", "PET"};
  ds.labels = {{"background", 0}, {"GTVp", 1}, {"GTVn", 2}};
  ds.raw_label_values = {0, 1, 2};
  ds.file_ending = ".nii.gz";
  static const std::regex image_name(R"((.+?)(_{1,2})(CT|PT)\.nii\.gz)");
  const auto csvs = find_bbox_csvs({root});
  const auto boxes = read_bbox_csvs(csvs, ds);
  auto scan = [&](const fs::path& dir) {
    std::map<std::string, PatientFiles> patients;
    for (const auto& f : list_files(dir)) {
      const std::string name = f.filename().string();
      std::smatch m;
      if (!std::regex_match(name, m, image_name)) {
        if (io::is_image_file(f))
          add_problem(ds, Severity::Warning, f, "unrecognised file name; ignored",
                      "expected {Centre}-{NNN}__CT.nii.gz or __PT.nii.gz");
        continue;
      }
      const std::string id = m[1];
      if (m[2] == "_") {
        add_problem(ds, Severity::Error, f,
                    "wrong channel suffix '_" + std::string(m[3]) + "'; expected '" + id + "__" + std::string(m[3]) +
                        ".nii.gz'",
                    "HECKTOR 2022 separates the modality with two underscores");
        continue;
      }
      auto& p = patients[id];
      p.folder = dir;
      assign(ds, m[3] == "CT" ? p.ct : p.pt, f, id);
    }
    return patients;
  };
  auto build = [&](std::map<std::string, PatientFiles>& patients, bool training, const fs::path& dir) {
    for (auto& [id, files] : patients) {
      bool ok = true;
      for (int role = 0; role < 2; ++role) {
        if ((role == 0 ? files.ct : files.pt)) continue;
        const std::string mod = role == 0 ? "CT" : "PT";
        add_problem(ds, Severity::Error, dir / (id + "__" + mod + ".nii.gz"),
                    "missing channel file '" + id + "__" + mod + ".nii.gz' (channel '" + ds.channel_names[size_t(role)] +
                        "') of case '" + id + "'");
        ok = false;
      }
      if (!ok) continue;
      Case c;
      c.id = id;
      c.patient_id = id;
      c.channel_names = ds.channel_names;
      c.channel_files = {*files.ct, *files.pt};
      c.label_file = files.label;
      const auto box = boxes.find(id);
      if (box != boxes.end()) c.bbox = box->second;
      (training ? ds.training : ds.unlabelled).push_back(std::move(c));
    }
  };
  auto train = scan(root / "imagesTr");
  std::set<std::string> label_ids;
  for (const auto& f : list_files(root / "labelsTr")) {
    const std::string name = f.filename().string();
    if (!has_suffix(name, ".nii.gz")) continue;
    const std::string id = name.substr(0, name.size() - 7);
    label_ids.insert(id);
    const auto it = train.find(id);
    if (it == train.end()) {
      add_problem(ds, Severity::Error, f, "label without images: no 'imagesTr/" + id + "__CT.nii.gz' found");
      continue;
    }
    it->second.label = f;
  }
  for (auto it = train.begin(); it != train.end();) {
    if (!it->second.label) {
      add_problem(ds, Severity::Error, root / "imagesTr" / (it->first + "__CT.nii.gz"),
                  "image without label: expected 'labelsTr/" + it->first + ".nii.gz'",
                  "add the label or move the images to imagesTs/");
      it = train.erase(it);
    } else {
      ++it;
    }
  }
  build(train, true, root / "imagesTr");
  auto test = scan(root / "imagesTs");
  build(test, false, root / "imagesTs");
  return ds;
}

}  // namespace teachformer::data::detail
