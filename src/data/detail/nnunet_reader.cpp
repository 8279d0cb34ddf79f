// nnU-Net v2 raw layout: dataset.json + imagesTr/{case}_{XXXX}{ext}, labelsTr/{case}{ext}, imagesTs/{case}_{XXXX}{ext}.
#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "data/detail/dataset_json.hpp"
#include "data/detail/scan.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/io/image_io.hpp"

namespace teachformer::data::detail {
namespace {

std::string suffix(int channel) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "_%04d", channel);
  return buf;
}

struct ImageScan {
  // case id -> channel -> file
  std::map<std::string, std::map<int, fs::path>> images;
};

// Scans an images folder; wrong names become problems. `labelled_ids` helps to recognise a doubled suffix.
ImageScan scan_images(Dataset& ds, const fs::path& dir, int n_channels, const std::set<std::string>& labelled_ids) {
  ImageScan scan;
  static const std::regex with_suffix(R"((.+)_(\d{4}))");
  static const std::regex dot_suffix(R"((.+)\.(\d{4}))");
  for (const auto& file : list_files(dir)) {
    const std::string name = file.filename().string();
    if (!has_suffix(name, ds.file_ending)) {
      if (io::is_image_file(file))
        add_problem(ds, Severity::Error, file,
                    "file ending '" + io::image_extension(file) + "' differs from dataset.json file_ending '" +
                        ds.file_ending + "'",
                    "convert the file or fix file_ending");
      else
        add_problem(ds, Severity::Warning, file, "not an image file; ignored");
      continue;
    }
    const std::string stem = name.substr(0, name.size() - ds.file_ending.size());
    std::smatch m;
    if (std::regex_match(stem, m, with_suffix)) {
      const std::string id = m[1];
      const int channel = std::stoi(m[2]);
      // "{case}_0000_0000": the channel suffix added twice (the case id itself does not end in _XXXX).
      std::smatch inner;
      if (!labelled_ids.count(id) && std::regex_match(id, inner, with_suffix) && labelled_ids.count(inner[1])) {
        add_problem(ds, Severity::Error, file,
                    "wrong channel suffix: '" + name + "' carries the channel suffix twice; expected '" +
                        std::string(inner[1]) + suffix(channel) + ds.file_ending + "'",
                    "rename to {case}_{XXXX}" + ds.file_ending);
        continue;
      }
      if (channel >= n_channels) {
        add_problem(ds, Severity::Error, file,
                    "channel count: suffix " + suffix(channel) + " but dataset.json declares " +
                        std::to_string(n_channels) + " channel(s) (" + suffix(0) + ".." + suffix(n_channels - 1) + ")",
                    "add the channel to channel_names or remove the file");
        continue;
      }
      scan.images[id][channel] = file;
    } else if (std::regex_match(stem, m, dot_suffix)) {
      add_problem(ds, Severity::Error, file,
                  "wrong channel suffix '." + std::string(m[2]) + "'; expected '" + std::string(m[1]) + "_" +
                      std::string(m[2]) + ds.file_ending + "'",
                  "nnU-Net separates the channel with an underscore: {case}_{XXXX}" + ds.file_ending);
    } else {
      add_problem(ds, Severity::Error, file,
                  "missing channel suffix; expected '" + stem + suffix(0) + ds.file_ending + "'",
                  "images are named {case}_{XXXX}" + ds.file_ending + " with XXXX the channel index");
    }
  }
  return scan;
}

// Builds complete cases from a scan; missing channels become problems.
std::vector<Case> complete_cases(Dataset& ds, const fs::path& dir, const ImageScan& scan,
                                 const std::set<std::string>& ids) {
  std::vector<Case> out;
  const int n = int(ds.channel_names.size());
  for (const auto& id : ids) {
    const auto it = scan.images.find(id);
    bool complete = true;
    Case c;
    c.id = id;
    c.patient_id = id;
    c.channel_names = ds.channel_names;
    for (int ch = 0; ch < n; ++ch) {
      const fs::path expected = dir / (id + suffix(ch) + ds.file_ending);
      if (it == scan.images.end() || !it->second.count(ch)) {
        add_problem(ds, Severity::Error, expected,
                    "missing channel file '" + expected.filename().string() + "' (channel " + std::to_string(ch) +
                        " '" + ds.channel_names[size_t(ch)] + "') of case '" + id + "'");
        complete = false;
      } else {
        c.channel_files.push_back(it->second.at(ch));
      }
    }
    if (complete) out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

// Long on purpose: the layout's rules in the order its description gives them; the shared dataset.json opening is
// in dataset_json.hpp.
Dataset read_nnunet(const fs::path& root) {
  Dataset ds;
  const Json j = open_dataset_json(root,
                                   {"channel_names", "modality",
                                    "this is an MSD / nnU-Net v1 dataset.json (hint: --format msd)",
                                    "{\"0\": \"CT\", \"1\": \"PET\"}"},
                                   ds);
  const fs::path dj = root / "dataset.json";
  TF_CHECK(j.contains("file_ending") && j["file_ending"].is_string(), DatasetError, "'", dj.string(),
           "': 'file_ending' (e.g. \".nii.gz\") is required");
  ds.file_ending = j["file_ending"].get<std::string>();
  TF_CHECK(j.contains("labels") && j["labels"].is_object(), DatasetError, "'", dj.string(),
           "': 'labels' must be an object like {\"background\": 0, \"tumor\": 1}");
  for (auto it = j["labels"].begin(); it != j["labels"].end(); ++it) {
    if (!it.value().is_number_integer()) {
      add_problem(ds, Severity::Error, dj,
                  "label '" + it.key() + "' has value " + it.value().dump() + "; expected an integer",
                  "region-based labels (lists) are not supported");
      continue;
    }
    // Label maps are uint8: a larger value could never occur (and would not fit an int).
    if (!it.value().is_number_unsigned() || it.value().get<uint64_t>() > 255) {
      add_problem(ds, Severity::Error, dj,
                  "label '" + it.key() + "' has value " + it.value().dump() + "; expected an integer from 0 to 255");
      continue;
    }
    ds.labels.push_back({it.key(), it.value().get<int>()});
  }
  finish_labels(ds, dj, "add \"background\": 0");
  const int n_channels = int(ds.channel_names.size());

  if (j.contains("dataset")) {
    // Explicit listing: {"case": {"images": [...], "label": "..."}}, paths relative to the dataset folder.
    const auto& listing = j["dataset"];
    TF_CHECK(listing.is_object(), DatasetError, "'", dj.string(), "': 'dataset' must map case ids to {images, label}");
    for (auto it = listing.begin(); it != listing.end(); ++it) {
      const auto& entry = it.value();
      if (!entry.is_object() || !entry.contains("images") || !entry["images"].is_array()) {
        add_problem(ds, Severity::Error, dj, "dataset entry '" + it.key() + "' needs an 'images' list");
        continue;
      }
      Case c;
      c.id = it.key();
      c.patient_id = c.id;
      c.channel_names = ds.channel_names;
      bool ok = true;
      if (int(entry["images"].size()) != n_channels) {
        add_problem(ds, Severity::Error, dj,
                    "channel count: case '" + c.id + "' lists " + std::to_string(entry["images"].size()) +
                        " images but dataset.json declares " + std::to_string(n_channels) + " channels");
        ok = false;
      }
      if (const std::string why = unsafe_name_reason(c.id); !why.empty()) {
        add_problem(ds, Severity::Error, dj, "dataset entry '" + c.id + "': the case id " + why);
        continue;
      }
      for (const auto& img : entry["images"]) {
        if (!img.is_string()) {
          add_problem(ds, Severity::Error, dj, "dataset entry '" + c.id + "': images must be paths, got " + img.dump());
          ok = false;
          continue;
        }
        const std::string listed = img.get<std::string>();
        if (const std::string why = path_escape_reason(root, listed); !why.empty()) {
          add_problem(ds, Severity::Error, dj, "dataset entry '" + c.id + "': image '" + listed + "' " + why +
                                                   "; refused, it must stay inside '" + root.string() + "'");
          ok = false;
          continue;
        }
        const fs::path p = root / listed;
        if (!path_exists(p)) {
          add_problem(ds, Severity::Error, p, "missing channel file '" + p.filename().string() + "' of case '" + c.id + "'");
          ok = false;
        }
        c.channel_files.push_back(p);
      }
      if (entry.contains("label") && entry["label"].is_string()) {
        const std::string l = entry["label"].get<std::string>();
        if (const std::string why = path_escape_reason(root, l); !why.empty()) {
          add_problem(ds, Severity::Error, dj, "dataset entry '" + c.id + "': label '" + l + "' " + why +
                                                   "; refused, it must stay inside '" + root.string() + "'");
          continue;
        }
        const fs::path p = root / l;
        if (!path_exists(p)) {
          add_problem(ds, Severity::Error, p, "missing label file of case '" + c.id + "'");
          ok = false;
        }
        c.label_file = p;
      }
      if (!ok) continue;
      (c.labelled() ? ds.training : ds.unlabelled).push_back(std::move(c));
    }
  } else {
    const fs::path images_tr = root / "imagesTr", labels_tr = root / "labelsTr";
    if (!fs::is_directory(images_tr)) add_problem(ds, Severity::Error, images_tr, "folder imagesTr/ is missing");
    if (!fs::is_directory(labels_tr)) add_problem(ds, Severity::Error, labels_tr, "folder labelsTr/ is missing");
    std::set<std::string> label_ids;
    std::map<std::string, fs::path> label_files;
    for (const auto& file : list_files(labels_tr)) {
      const std::string name = file.filename().string();
      if (!has_suffix(name, ds.file_ending)) {
        if (io::is_image_file(file))
          add_problem(ds, Severity::Error, file,
                      "file ending '" + io::image_extension(file) + "' differs from dataset.json file_ending '" +
                          ds.file_ending + "'");
        else
          add_problem(ds, Severity::Warning, file, "not an image file; ignored");
        continue;
      }
      const std::string id = name.substr(0, name.size() - ds.file_ending.size());
      label_ids.insert(id);
      label_files[id] = file;
    }
    const ImageScan tr = scan_images(ds, images_tr, n_channels, label_ids);
    std::set<std::string> with_images;
    for (const auto& [id, channels] : tr.images) with_images.insert(id);
    for (const auto& id : with_images)
      if (!label_ids.count(id))
        add_problem(ds, Severity::Error, images_tr / (id + suffix(0) + ds.file_ending),
                    "image without label: case '" + id + "' has images but no label; expected 'labelsTr/" + id +
                        ds.file_ending + "'",
                    "add the label or move the images to imagesTs/");
    std::set<std::string> complete_ids;
    for (const auto& id : label_ids) {
      if (!with_images.count(id)) {
        add_problem(ds, Severity::Error, label_files[id],
                    "label without images: no 'imagesTr/" + id + suffix(0) + ds.file_ending + "' found",
                    "add the images or remove the label");
        continue;
      }
      complete_ids.insert(id);
    }
    for (auto& c : complete_cases(ds, images_tr, tr, complete_ids)) {
      c.label_file = label_files[c.id];
      ds.training.push_back(std::move(c));
    }
    const fs::path images_ts = root / "imagesTs";
    const ImageScan ts = scan_images(ds, images_ts, n_channels, {});
    std::set<std::string> test_ids;
    for (const auto& [id, channels] : ts.images) {
      if (label_ids.count(id) || with_images.count(id))
        add_problem(ds, Severity::Error, images_ts / (id + suffix(0) + ds.file_ending),
                    "duplicate id '" + id + "': the case is both in imagesTr/ and imagesTs/");
      else
        test_ids.insert(id);
    }
    for (auto& c : complete_cases(ds, images_ts, ts, test_ids)) ds.unlabelled.push_back(std::move(c));
  }
  if (j.contains("numTraining")) {
    const auto& nt = j["numTraining"];
    const int64_t expected = nt.is_number_integer() ? nt.get<int64_t>() : -1;
    int64_t found = int64_t(ds.training.size());
    if (expected != found)
      add_problem(ds, Severity::Error, dj,
                  "numTraining is " + nt.dump() + " but " + std::to_string(found) + " complete labelled case(s) were found",
                  "fix numTraining or the missing cases listed above");
  } else {
    add_problem(ds, Severity::Warning, dj, "numTraining is missing");
  }
  return ds;
}

}  // namespace teachformer::data::detail
