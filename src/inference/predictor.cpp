#include "teachformer/inference/predictor.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <regex>

#include "teachformer/core/device.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/data/dataset.hpp"
#include "teachformer/inference/ensemble.hpp"
#include "teachformer/data/preprocess.hpp"
#include "teachformer/inference/sliding_window.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/version.hpp"

namespace teachformer::inference {
namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Predictor::Predictor(const fs::path& model_dir, PredictOptions options)
    : folder_(models::open_model_folder(model_dir)), options_(std::move(options)), device_(parse_device(options_.device)) {
  folds_ = options_.folds.empty() ? folder_.folds : options_.folds;
  TF_CHECK(!folds_.empty(), IoError, "model folder '", model_dir.string(), "' has no trained fold (fold_N/checkpoint_",
           options_.checkpoint, ".safetensors)");
  precision_ = options_.precision.empty() ? folder_.preferred_precision() : models::parse_precision(options_.precision);
  TF_CHECK(precision_ == models::Precision::kFloat32 || device_.is_cpu(), InvalidArgument, "precision ",
           models::precision_name(precision_), " runs on the CPU only; use --precision fp32 with device ",
           options_.device);
  for (int f : folds_) {
    auto m = folder_.load(f, options_.checkpoint, precision_);
    m->to(device_);
    m->eval();
    models_.push_back(m);
  }
  const auto plan_channels = folder_.plan.channel_names();
  for (const auto& ch : folder_.channels) {
    auto it = std::find(plan_channels.begin(), plan_channels.end(), ch);
    TF_CHECK(it != plan_channels.end(), FormatError, "model folder '", model_dir.string(), "': channel '", ch,
             "' of config.json is not in plan.json ", plan_channels);
    channel_indices_.push_back(int64_t(it - plan_channels.begin()));
  }
}

torch::Tensor Predictor::predict_preprocessed(const torch::Tensor& image) const {
  const bool all = int64_t(channel_indices_.size()) == image.size(0);
  const auto x = all ? image : image.index_select(0, torch::tensor(channel_indices_, torch::kLong));
  SlidingWindowOptions o;
  o.roi_size(folder_.patch_size).overlap(options_.overlap).sw_batch_size(options_.sw_batch_size);
  o.sigma_scale(options_.sigma_scale).device(device_);
  if (options_.mirror) o.mirror_axes({0, 1, 2});
  std::vector<WindowFunction> members;
  const models::TapRequest none{false, false, false, false};
  for (const auto& m : models_) {
    members.push_back([m, none](const torch::Tensor& w) {
      return std::vector<torch::Tensor>{m->forward(w, none).logits};
    });
  }
  c10::InferenceMode guard;
  return sliding_window_inference(x, members, {WindowOutput{}}, o).at("logits");
}

CasePrediction Predictor::predict(const data::Case& c) const {
  const auto t0 = std::chrono::steady_clock::now();
  const auto plan_channels = folder_.plan.channel_names();
  // Channels by name: the case must have every channel of the plan.
  data::Case ordered = c;
  if (c.channel_names != plan_channels) {
    TF_CHECK(!c.multichannel_file(), DatasetError, "case '", c.id, "' has channels ", c.channel_names,
             " in one 4D file but the model needs ", plan_channels);
    ordered.channel_names.clear();
    ordered.channel_files.clear();
    for (const auto& ch : plan_channels) {
      auto it = std::find(c.channel_names.begin(), c.channel_names.end(), ch);
      TF_CHECK(it != c.channel_names.end(), DatasetError, "case '", c.id, "' lacks channel '", ch,
               "' that the model needs (it has ", c.channel_names, ")");
      ordered.channel_names.push_back(ch);
      ordered.channel_files.push_back(c.channel_files[size_t(it - c.channel_names.begin())]);
    }
  }
  ordered.label_file.reset();
  TF_CHECK(!folder_.plan.crop_to_bbox || ordered.bbox, DatasetError, "case '", c.id,
           "' has no bounding box but the model crops to one (give the HECKTOR layout with its bbox CSV, or a ",
           "*bbox*.csv at the root of DICOM studies)");
  const auto t_pre = std::chrono::steady_clock::now();
  const data::PreprocessedCase pc = data::preprocess_case(ordered, folder_.plan);
  CasePrediction out;
  out.id = c.id;
  out.preprocess_seconds = since(t_pre);
  const auto t_net = std::chrono::steady_clock::now();
  torch::Tensor probs = predict_preprocessed(pc.image);
  out.network_seconds = since(t_net);
  const auto t_restore = std::chrono::steady_clock::now();
  const auto labels = argmax_labels(probs);
  out.labels = transforms::restore_to_reference(labels, pc.geometry, transforms::Interpolation::Nearest);
  if (options_.probabilities)
    out.probabilities = transforms::restore_to_reference(probs, pc.geometry, transforms::Interpolation::Linear);
  out.restore_seconds = since(t_restore);
  out.seconds = since(t0);
  return out;
}

std::vector<io::DicomSegment> dicom_segments(const models::ModelFolder& folder) {
  std::vector<std::pair<int, std::string>> classes;
  if (folder.dataset.contains("labels") && folder.dataset["labels"].is_object())
    for (auto it = folder.dataset["labels"].begin(); it != folder.dataset["labels"].end(); ++it)
      if (it.value().is_number_integer() && it.value().get<int>() > 0)
        classes.emplace_back(it.value().get<int>(), it.key());
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) classes.emplace_back(1, "tumor");
  std::vector<io::DicomSegment> out;
  for (const auto& [value, name] : classes) out.push_back(io::segment_for_label(value, name));
  return out;
}

void write_dicom_seg_prediction(const fs::path& path, const data::Case& c, const io::Volume& labels,
                                const models::ModelFolder& folder) {
  const int ref = data::reference_channel_index(c.channel_names);
  TF_CHECK(size_t(ref) < c.channel_files.size() && fs::is_directory(c.channel_files[size_t(ref)]), DatasetError,
           "case '", c.id, "': --format dicom-seg needs DICOM input; the reference channel '",
           c.channel_names.at(size_t(ref)), "' is the file '", c.channel_files.at(size_t(ref)).string(), "'");
  io::DicomSegOptions o;
  o.segments = dicom_segments(folder);
  o.algorithm_name = "TeachFormer " + folder.model;
  o.algorithm_version = kVersion;
  o.series_description = "TeachFormer " + folder.model + " segmentation";
  io::write_dicom_seg(path, labels, io::dicom_series_in(c.channel_files[size_t(ref)]), o);
}

std::vector<data::Case> cases_for_prediction(const fs::path& input, const std::vector<std::string>& channel_names,
                                             const data::DicomDatasetOptions& dicom) {
  TF_CHECK(fs::exists(input), IoError, "input folder '", input.string(), "' does not exist");
  TF_CHECK(fs::is_directory(input), IoError, "input '", input.string(), "' is a file; expected a folder of cases "
           "({case}_{XXXX}.nii.gz files, a dataset, or DICOM studies)");
  bool dicom_input = false;
  try {
    dicom_input = data::detect_format(input) == data::DatasetFormat::Dicom;
  } catch (const DatasetError&) {
  }
  if (dicom_input) {
    data::DicomDatasetOptions o = dicom;
    o.channel_names = channel_names;
    const data::Dataset ds = data::open_dicom_dataset(input, o);
    std::vector<std::string> errors;
    for (const auto& p : ds.problems)
      if (p.severity == data::Severity::Error) errors.push_back(p.to_string());
    TF_CHECK(errors.empty(), DatasetError, "DICOM input '", input.string(), "': ", errors.front(),
             errors.size() > 1 ? " (and " + std::to_string(errors.size() - 1) + " more; teachformer verify lists them)"
                               : std::string());
    return ds.all_cases();
  }
  try {
    (void)data::detect_format(input);
    const data::Dataset ds = data::open_dataset(input);
    return ds.all_cases();
  } catch (const DatasetError&) {
    // Not a dataset layout: a plain folder of {case}_{XXXX}.{ext} files.
  }
  const std::regex re("(.+)_([0-9]{4})$");
  std::map<std::string, std::map<int, fs::path>> files;
  for (const auto& e : fs::directory_iterator(input)) {
    if (!e.is_regular_file() || !io::is_image_file(e.path())) continue;
    const std::string name = e.path().filename().string();
    const std::string stem = name.substr(0, name.size() - io::image_extension(e.path()).size());
    std::smatch m;
    TF_CHECK(std::regex_match(stem, m, re), DatasetError, "'", e.path().string(),
             "' is not named {case}_{XXXX}", io::image_extension(e.path()), " (e.g. case001_0000",
             io::image_extension(e.path()), ")");
    files[m[1]][std::stoi(m[2])] = e.path();
  }
  TF_CHECK(!files.empty(), DatasetError, "input folder '", input.string(),
           "' holds no images (expected a dataset layout or {case}_{XXXX}.nii.gz files)");
  std::vector<data::Case> cases;
  for (const auto& [id, chans] : files) {
    data::Case c;
    c.id = id;
    c.patient_id = id;
    for (size_t i = 0; i < channel_names.size(); ++i) {
      auto it = chans.find(int(i));
      TF_CHECK(it != chans.end(), DatasetError, "case '", id, "' lacks channel ", i, " (", channel_names[i],
               "): expected a file ", id, "_", std::string(4 - std::to_string(i).size(), '0') + std::to_string(i),
               " in '", input.string(), "'");
      c.channel_names.push_back(channel_names[i]);
      c.channel_files.push_back(it->second);
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

}  // namespace teachformer::inference
