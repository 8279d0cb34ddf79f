// Medical Segmentation Decathlon layout: dataset.json with modality, labels, training [{image, label}], test [...];
// several modalities are the 4th dimension of one NIfTI file.
#include <algorithm>
#include <set>

#include "data/detail/dataset_json.hpp"
#include "data/detail/scan.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/io/image_io.hpp"

namespace teachformer::data::detail {
namespace {

// A path listed in dataset.json, which must stay inside the dataset folder; one that leaves it (absolute, "..",
// a symbolic link out) is an error of the dataset and gives an empty path.
fs::path resolve(Dataset& ds, const fs::path& dj, const fs::path& root, const std::string& p, const std::string& what) {
  const std::string why = path_escape_reason(root, p);
  if (!why.empty()) {
    add_problem(ds, Severity::Error, dj, what + " '" + p + "' " + why + "; refused, it must stay inside '" +
                                             root.string() + "'");
    return {};
  }
  return (root / p).lexically_normal();
}

std::string case_id_of(const fs::path& p) {
  const std::string name = p.filename().string();
  const std::string ext = io::image_extension(p);
  return ext.empty() ? p.stem().string() : name.substr(0, name.size() - ext.size());
}

}  // namespace

// Long on purpose: the layout's rules in the order its description gives them; the shared dataset.json opening is
// in dataset_json.hpp.
Dataset read_msd(const fs::path& root) {
  Dataset ds;
  const Json j = open_dataset_json(
      root,
      {"modality", "channel_names", "this is an nnU-Net v2 dataset.json (hint: --format nnunet)",
       "{\"0\": \"T2\", \"1\": \"ADC\"}"},
      ds);
  const fs::path dj = root / "dataset.json";
  TF_CHECK(j.contains("labels") && j["labels"].is_object(), DatasetError, "'", dj.string(),
           "': 'labels' must be an object like {\"0\": \"background\", \"1\": \"tumour\"}");
  for (auto it = j["labels"].begin(); it != j["labels"].end(); ++it) {
    int value = -1;
    try {
      size_t used = 0;
      value = std::stoi(it.key(), &used);
      if (used != it.key().size()) value = -1;
    } catch (const std::exception&) {
    }
    if (value < 0 || value > 255 || !it.value().is_string()) {
      add_problem(ds, Severity::Error, dj,
                  "label entry \"" + it.key() + "\": " + it.value().dump() + " is not \"<value>\": \"<name>\" with a value from 0 to 255",
                  "MSD maps label values to names, e.g. {\"0\": \"background\"}");
      continue;
    }
    ds.labels.push_back({it.value().get<std::string>(), value});
  }
  finish_labels(ds, dj, "");
  ds.file_ending = ".nii.gz";

  std::set<fs::path> listed;
  auto make_case = [&](const fs::path& image) {
    Case c;
    c.id = case_id_of(image);
    c.patient_id = c.id;
    c.channel_names = ds.channel_names;
    c.channel_files = {image};
    return c;
  };
  TF_CHECK(j.contains("training") && j["training"].is_array(), DatasetError, "'", dj.string(),
           "': 'training' must be a list of {\"image\": ..., \"label\": ...}");
  for (const auto& entry : j["training"]) {
    if (!entry.is_object() || !entry.contains("image") || !entry["image"].is_string()) {
      add_problem(ds, Severity::Error, dj, "training entry " + entry.dump() + " has no 'image' path");
      continue;
    }
    const fs::path image = resolve(ds, dj, root, entry["image"].get<std::string>(), "training image");
    if (image.empty()) continue;
    listed.insert(image);
    bool ok = true;
    if (!path_exists(image)) {
      add_problem(ds, Severity::Error, image, "missing image file '" + image.filename().string() + "' listed in dataset.json");
      ok = false;
    }
    Case c = make_case(image);
    if (ds.file_ending != io::image_extension(image) && !io::image_extension(image).empty())
      ds.file_ending = io::image_extension(image);
    if (entry.contains("label") && entry["label"].is_string()) {
      const fs::path label = resolve(ds, dj, root, entry["label"].get<std::string>(), "training label");
      if (label.empty()) continue;
      listed.insert(label);
      if (!path_exists(label)) {
        add_problem(ds, Severity::Error, label, "label file of case '" + c.id + "' listed in dataset.json is missing",
                    "images without labels belong in the 'test' list");
        ok = false;
      }
      c.label_file = label;
    } else {
      add_problem(ds, Severity::Error, image, "image without label: training entry of '" + c.id + "' has no 'label'");
      ok = false;
    }
    if (ok) ds.training.push_back(std::move(c));
  }
  if (j.contains("test") && j["test"].is_array()) {
    for (const auto& entry : j["test"]) {
      std::string p;
      if (entry.is_string()) p = entry.get<std::string>();
      else if (entry.is_object() && entry.contains("image") && entry["image"].is_string()) p = entry["image"].get<std::string>();
      else {
        add_problem(ds, Severity::Error, dj, "test entry " + entry.dump() + " is not an image path");
        continue;
      }
      const fs::path image = resolve(ds, dj, root, p, "test image");
      if (image.empty()) continue;
      listed.insert(image);
      if (!path_exists(image)) {
        add_problem(ds, Severity::Error, image, "missing test image '" + image.filename().string() + "' listed in dataset.json");
        continue;
      }
      ds.unlabelled.push_back(make_case(image));
    }
  }
  // Files on disk that dataset.json does not mention.
  for (const char* folder : {"imagesTr", "labelsTr", "imagesTs"})
    for (const auto& f : list_files(root / folder)) {
      if (!io::is_image_file(f) || listed.count(f.lexically_normal())) continue;
      const bool label_folder = std::string(folder) == "labelsTr";
      add_problem(ds, Severity::Error, f,
                  std::string(label_folder ? "label without images" : "image without label") +
                      ": file is not listed in dataset.json " + (label_folder ? "'training'" : "'training' or 'test'"),
                  "list it in dataset.json or remove it");
    }
  if (j.contains("numTraining")) {
    const auto& nt = j["numTraining"];
    if (!nt.is_number_integer() || nt.get<int64_t>() != int64_t(j["training"].size()))
      add_problem(ds, Severity::Error, dj,
                  "numTraining is " + nt.dump() + " but the training list has " +
                      std::to_string(j["training"].size()) + " entries");
  }
  return ds;
}

}  // namespace teachformer::data::detail
