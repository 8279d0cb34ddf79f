// PI-CAI 2022: picai_public_images_fold*/{patient}/{patient}_{study}_{t2w,adc,hbv,cor,sag}.mha and
// picai_labels/csPCa_lesion_delineations/human_expert/resampled/{patient}_{study}.nii.gz (0 background,
// 1 AI-derived lesion, 2..5 ISUP grade; binarised with >= 1).
#include <map>
#include <regex>

#include "data/detail/scan.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/io/image_io.hpp"

namespace teachformer::data::detail {

Dataset read_picai(const fs::path& root) {
  Dataset ds;
  ds.root = root;
  ds.name = root.filename().string();
  ds.channel_names = {"T2W", "ADC", "HBV"};
  ds.labels = {{"background", 0}, {"lesion", 1}};
  ds.raw_label_values = {0, 1, 2, 3, 4, 5};
  ds.file_ending = ".mha";
  static const std::regex image_name(R"(([^_]+)_([^_]+)_([A-Za-z0-9]+)\.mha)");
  const std::vector<std::string> sequences{"t2w", "adc", "hbv"};
  struct Study {
    std::string patient;
    fs::path folder;
    std::map<std::string, fs::path> files;  // sequence -> file
  };
  std::map<std::string, Study> studies;
  std::map<std::string, std::string> fold_of;
  bool any_fold = false;
  for (const auto& fold : list_dirs(root)) {
    if (fold.filename().string().rfind("picai_public_images_fold", 0) != 0) continue;
    any_fold = true;
    for (const auto& patient_dir : list_dirs(fold)) {
      for (const auto& f : list_files(patient_dir)) {
        const std::string name = f.filename().string();
        std::smatch m;
        if (!std::regex_match(name, m, image_name)) {
          if (io::is_image_file(f))
            add_problem(ds, Severity::Warning, f, "unrecognised file name; ignored",
                        "expected {patient}_{study}_{t2w,adc,hbv}.mha");
          continue;
        }
        const std::string patient = m[1], study = m[2], seq = lower(m[3]);
        if (seq == "cor" || seq == "sag") continue;  // not part of bpMRI
        if (seq != "t2w" && seq != "adc" && seq != "hbv") {
          add_problem(ds, Severity::Warning, f, "unknown sequence '" + seq + "'; ignored", "expected t2w, adc or hbv");
          continue;
        }
        if (patient != patient_dir.filename().string())
          add_problem(ds, Severity::Warning, f,
                      "file of patient '" + patient + "' lies in the folder of '" + patient_dir.filename().string() + "'");
        const std::string id = patient + "_" + study;
        auto& s = studies[id];
        const auto known = fold_of.find(id);
        if (known != fold_of.end() && known->second != fold.filename().string()) {
          add_problem(ds, Severity::Error, f,
                      "duplicate id '" + id + "': the study is also in " + known->second + "/",
                      "each study belongs to one fold folder");
          continue;
        }
        fold_of[id] = fold.filename().string();
        s.patient = patient;
        s.folder = patient_dir;
        if (s.files.count(seq)) {
          add_problem(ds, Severity::Error, f, "duplicate id '" + id + "': sequence " + seq + " found twice");
          continue;
        }
        s.files[seq] = f;
      }
    }
  }
  if (!any_fold)
    add_problem(ds, Severity::Error, root, "no picai_public_images_fold*/ folder found");
  const fs::path label_dir = root / "picai_labels" / "csPCa_lesion_delineations" / "human_expert" / "resampled";
  std::map<std::string, fs::path> labels;
  if (!fs::is_directory(label_dir)) {
    add_problem(ds, Severity::Warning, label_dir, "label folder is missing; every case is unlabelled");
  } else {
    for (const auto& f : list_files(label_dir)) {
      const std::string name = f.filename().string();
      if (!has_suffix(name, ".nii.gz")) continue;
      const std::string id = name.substr(0, name.size() - 7);
      if (!studies.count(id)) {
        add_problem(ds, Severity::Error, f, "label without images: no study '" + id + "' in the fold folders");
        continue;
      }
      labels[id] = f;
    }
  }
  std::vector<std::string> without_label;
  for (auto& [id, s] : studies) {
    bool ok = true;
    for (size_t k = 0; k < sequences.size(); ++k) {
      if (s.files.count(sequences[k])) continue;
      const std::string expected = id + "_" + sequences[k] + ".mha";
      add_problem(ds, Severity::Error, s.folder / expected,
                  "missing channel file '" + expected + "' (channel '" + ds.channel_names[k] + "') of case '" + id + "'");
      ok = false;
    }
    if (!ok) continue;
    Case c;
    c.id = id;
    c.patient_id = s.patient;
    c.channel_names = ds.channel_names;
    c.channel_files = {s.files["t2w"], s.files["adc"], s.files["hbv"]};
    c.binarize_label = true;
    const auto l = labels.find(id);
    if (l != labels.end()) c.label_file = l->second;
    else without_label.push_back(id);
    (c.labelled() ? ds.training : ds.unlabelled).push_back(std::move(c));
  }
  if (!without_label.empty() && fs::is_directory(label_dir)) {
    std::string list;
    for (size_t i = 0; i < without_label.size() && i < 10; ++i) list += (i ? ", " : "") + without_label[i];
    if (without_label.size() > 10) list += ", ...";
    add_problem(ds, Severity::Warning, label_dir,
                std::to_string(without_label.size()) +
                    " case(s) have no human-expert label and are listed as unlabelled: " + list);
  }
  return ds;
}

}  // namespace teachformer::data::detail
