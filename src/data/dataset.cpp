#include "teachformer/data/dataset.hpp"

#include "teachformer/data/bbox_csv.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "data/detail/dataset_json.hpp"
#include "data/detail/scan.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/data/dicom_dataset.hpp"

namespace teachformer::data {

namespace detail {

std::string display_path(const fs::path& root, const fs::path& p) {
  if (root.empty()) return p.string();
  const auto r = p.lexically_normal().lexically_relative(root.lexically_normal());
  if (r.empty() || r.native().rfind("..", 0) == 0) return p.string();
  return r.string();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

std::vector<fs::path> list_files(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;  // hidden files, macOS "._" resource forks, our temporaries
    if (e.is_regular_file(ec)) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> list_dirs(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.empty() && name[0] != '.' && e.is_directory(ec)) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void add_problem(Dataset& ds, Severity severity, const fs::path& file, std::string message, std::string hint) {
  ds.problems.push_back(Problem{severity, display_path(ds.root, file), std::move(message), std::move(hint)});
}

void finish_cases(Dataset& ds) {
  std::set<std::string> seen;
  auto dedupe = [&](std::vector<Case>& cases) {
    std::stable_sort(cases.begin(), cases.end(), [](const Case& a, const Case& b) { return a.id < b.id; });
    std::vector<Case> kept;
    for (auto& c : cases) {
      if (!seen.insert(c.id).second) {
        const fs::path f = c.channel_files.empty() ? ds.root : c.channel_files.front();
        add_problem(ds, Severity::Error, f, "duplicate id '" + c.id + "': the case appears more than once",
                    "each case id must be unique; remove or rename one copy");
        continue;
      }
      kept.push_back(std::move(c));
    }
    cases = std::move(kept);
  };
  dedupe(ds.training);
  dedupe(ds.unlabelled);
}

Json open_dataset_json(const fs::path& root, const ChannelMapSpec& spec, Dataset& ds) {
  ds.root = root;
  ds.name = root.filename().string();
  const fs::path dj = root / "dataset.json";
  const Json j = read_json(dj);
  TF_CHECK(j.is_object(), DatasetError, "'", dj.string(), "' must hold a JSON object");
  if (!j.contains(spec.key) && j.contains(spec.other_key))
    TF_THROW(DatasetError, "'", dj.string(), "' has '", spec.other_key, "' but no '", spec.key, "': ", spec.other_hint);
  TF_CHECK(j.contains(spec.key) && j[spec.key].is_object() && !j[spec.key].empty(), DatasetError, "'", dj.string(),
           "': '", spec.key, "' must be an object like ", spec.example);
  const auto& names = j[spec.key];
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string key = std::to_string(i);
    TF_CHECK(names.contains(key) && names[key].is_string(), DatasetError, "'", dj.string(), "': ", spec.key,
             " must use keys \"0\"..\"", names.size() - 1, "\" with string values; key \"", key,
             "\" is missing or not a string");
    ds.channel_names.push_back(names[key].get<std::string>());
  }
  if (j.contains("name") && j["name"].is_string()) ds.name = j["name"].get<std::string>();
  return j;
}

void finish_labels(Dataset& ds, const fs::path& dataset_json, const std::string& hint) {
  std::sort(ds.labels.begin(), ds.labels.end(),
            [](const LabelClass& a, const LabelClass& b) { return a.value < b.value; });
  if (ds.labels.empty() || ds.labels.front().value != 0)
    add_problem(ds, Severity::Error, dataset_json, "labels must declare background with value 0", hint);
  for (const auto& l : ds.labels) ds.raw_label_values.push_back(l.value);
}

std::vector<fs::path> find_bbox_csvs(const std::vector<fs::path>& folders) {
  std::vector<fs::path> out;
  std::set<fs::path> seen;
  for (const auto& folder : folders)
    for (const auto& f : list_files(folder)) {
      const std::string name = lower(f.filename().string());
      if (has_suffix(name, ".csv") && name.find("bbox") != std::string::npos &&
          seen.insert(fs::weakly_canonical(f)).second)
        out.push_back(f);
    }
  return out;
}

std::map<std::string, transforms::BoundingBox> read_bbox_csvs(const std::vector<fs::path>& files, Dataset& ds) {
  std::map<std::string, transforms::BoundingBox> boxes;
  std::map<std::string, std::string> origin_of;
  for (const auto& file : files) {
    BoundingBoxCsv csv;
    try {
      csv = read_bounding_box_csv(file);
    } catch (const FormatError& e) {
      TF_THROW(DatasetError, "bbox CSV ", e.what());
    }
    const std::string shown = display_path(ds.root, file);
    for (const auto& p : csv.problems)
      ds.problems.push_back({Severity::Error, shown + ":" + std::to_string(p.line), p.message, p.hint});
    // Several files may describe the same patient; they must agree.
    for (const auto& [pid, box] : csv.boxes) {
      const std::string where = shown + ":" + std::to_string(csv.line_of.at(pid));
      const auto it = boxes.find(pid);
      if (it != boxes.end()) {
        if (it->second.min != box.min || it->second.max != box.max)
          ds.problems.push_back({Severity::Error, where,
                                 "duplicate id '" + pid + "' with a different bounding box (" + box.to_string() +
                                     " vs " + it->second.to_string() + " in " + origin_of[pid] + ")",
                                 "keep one row per patient"});
        continue;
      }
      boxes[pid] = box;
      origin_of[pid] = where;
    }
  }
  return boxes;
}

}  // namespace detail

std::string to_string(DatasetFormat format) {
  switch (format) {
    case DatasetFormat::NnUNet: return "nnunet";
    case DatasetFormat::Msd: return "msd";
    case DatasetFormat::Hecktor2021: return "hecktor2021";
    case DatasetFormat::Hecktor2022: return "hecktor2022";
    case DatasetFormat::Picai: return "picai";
    case DatasetFormat::Dicom: return "dicom";
  }
  return "unknown";
}

std::vector<std::string> format_names() { return {"nnunet", "msd", "hecktor2021", "hecktor2022", "picai", "dicom"}; }

DatasetFormat format_from_string(const std::string& name) {
  const std::string n = detail::lower(name);
  if (n == "nnunet") return DatasetFormat::NnUNet;
  if (n == "msd") return DatasetFormat::Msd;
  if (n == "hecktor2021" || n == "hecktor") return DatasetFormat::Hecktor2021;
  if (n == "hecktor2022") return DatasetFormat::Hecktor2022;
  if (n == "picai") return DatasetFormat::Picai;
  if (n == "dicom") return DatasetFormat::Dicom;
  TF_THROW(InvalidArgument, "--format: unknown dataset format '", name, "'; expected one of ", format_names());
}

std::string Problem::to_string() const {
  std::string s = severity == Severity::Error ? "error: " : "warning: ";
  if (!file.empty()) s += file + ": ";
  s += message;
  if (!hint.empty()) s += " (hint: " + hint + ")";
  return s;
}

std::string Dataset::reference_channel() const {
  if (channel_names.empty()) return {};
  return channel_names[size_t(reference_channel_index(channel_names))];
}

int Dataset::error_count() const {
  return int(std::count_if(problems.begin(), problems.end(),
                           [](const Problem& p) { return p.severity == Severity::Error; }));
}

std::vector<Case> Dataset::all_cases() const {
  std::vector<Case> all = training;
  all.insert(all.end(), unlabelled.begin(), unlabelled.end());
  return all;
}

DatasetFormat detect_format(const fs::path& root) {
  require_exists(root, "dataset folder");
  TF_CHECK(fs::is_directory(root), DatasetError, "dataset '", root.string(), "' is not a folder");
  const fs::path dj = root / "dataset.json";
  if (fs::exists(dj)) {
    const Json j = read_json(dj);
    if (j.is_object() && j.contains("channel_names")) return DatasetFormat::NnUNet;
    if (j.is_object() && j.contains("modality")) return DatasetFormat::Msd;
    TF_THROW(DatasetError, "'", dj.string(),
             "' has neither 'channel_names' (nnU-Net v2) nor 'modality' (MSD); cannot tell the layout (hint: fix "
             "dataset.json or pass --format)");
  }
  for (const auto& d : detail::list_dirs(root))
    if (d.filename().string().rfind("picai_public_images_fold", 0) == 0) return DatasetFormat::Picai;
  if (fs::is_directory(root / "hecktor_nii")) return DatasetFormat::Hecktor2021;
  for (const auto& f : detail::list_files(root)) {
    const std::string n = f.filename().string();
    if (has_suffix(n, "_ct.nii.gz") || has_suffix(n, "_pt.nii.gz")) return DatasetFormat::Hecktor2021;
  }
  for (const auto& f : detail::list_files(root / "imagesTr"))
    if (f.filename().string().find("__CT.") != std::string::npos) return DatasetFormat::Hecktor2022;
  if (contains_dicom(root)) return DatasetFormat::Dicom;
  TF_THROW(DatasetError, "cannot detect the layout of '", root.string(),
           "': looked for dataset.json (nnU-Net v2 / MSD), picai_public_images_fold*/ (PI-CAI), hecktor_nii/ or "
           "*_ct.nii.gz (HECKTOR 2021), imagesTr/*__CT.nii.gz (HECKTOR 2022) and DICOM files (hint: pass --format, one of ",
           format_names(), ")");
}

Dataset open_dataset(const fs::path& root, std::optional<DatasetFormat> format) {
  require_exists(root, "dataset folder");
  TF_CHECK(fs::is_directory(root), DatasetError, "dataset '", root.string(), "' is not a folder");
  const DatasetFormat f = format ? *format : detect_format(root);
  Dataset ds;
  switch (f) {
    case DatasetFormat::NnUNet: ds = detail::read_nnunet(root); break;
    case DatasetFormat::Msd: ds = detail::read_msd(root); break;
    case DatasetFormat::Hecktor2021: ds = detail::read_hecktor2021(root); break;
    case DatasetFormat::Hecktor2022: ds = detail::read_hecktor2022(root); break;
    case DatasetFormat::Picai: ds = detail::read_picai(root); break;
    case DatasetFormat::Dicom: return open_dicom_dataset(root);
  }
  ds.format = f;
  detail::finish_cases(ds);
  if (ds.training.empty() && ds.unlabelled.empty())
    detail::add_problem(ds, Severity::Error, root, "no complete case found in the " + to_string(f) + " layout",
                        "see docs/datasets.md for the expected file names");
  return ds;
}

}  // namespace teachformer::data
