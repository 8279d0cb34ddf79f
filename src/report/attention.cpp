#include "teachformer/report/attention.hpp"

#include <torch/torch.h>

#include <algorithm>

#include "teachformer/core/device.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/fs.hpp"
#include "teachformer/data/preprocess.hpp"
#include "teachformer/data/preprocessed.hpp"
#include "teachformer/distill/kd_terms.hpp"
#include "teachformer/models/model_folder.hpp"
#include "teachformer/inference/model_window.hpp"
#include "teachformer/inference/sliding_window.hpp"

namespace teachformer::report {
namespace {

// Runs the model over the preprocessed image [C_plan, Z, Y, X] and returns both maps on the reference grid.
AttentionMaps maps_for(const models::ModelFolder& folder, int fold, const torch::Tensor& image,
                       const transforms::CaseGeometry& geometry, int p, const std::string& device) {
  const auto plan_channels = folder.plan.channel_names();
  std::vector<int64_t> indices;
  for (const auto& ch : folder.channels) {
    const auto it = std::find(plan_channels.begin(), plan_channels.end(), ch);
    TF_CHECK(it != plan_channels.end(), FormatError, "model folder '", folder.root.string(), "': channel '", ch,
             "' of config.json is not in plan.json ", plan_channels);
    indices.push_back(int64_t(it - plan_channels.begin()));
  }
  const auto x = image.index_select(0, torch::tensor(indices, torch::kLong));
  const torch::Device dev = parse_device(device);
  auto model = folder.load(fold);
  model->to(dev);
  model->eval();
  const std::vector<std::string> taps{models::kEncoderCoarse, models::kDecoderFine};
  inference::SlidingWindowOptions o;
  o.roi_size(folder.patch_size).overlap(0.5).device(dev);
  c10::InferenceMode guard;
  const auto outputs = inference::probe_model_outputs(model, taps, folder.patch_size, dev);
  const auto r = inference::sliding_window_inference(x, {inference::model_window_function(model, taps)}, outputs, o);
  const std::vector<int64_t> size{x.size(1), x.size(2), x.size(3)};
  auto restore = [&](const std::string& tap) {
    auto map = distill::attention_map(r.at(tap).unsqueeze(0).to(torch::kFloat), p);
    map = distill::resample_map(map, size)[0];  // [1, Z, Y, X]
    // Min-max scaled: a coarse map of a few voxels is nearly flat, and its maximum alone would paint it all.
    const double lo = map.min().item<double>(), hi = map.max().item<double>();
    map = hi > lo ? (map - lo) / (hi - lo) : torch::zeros_like(map);
    return transforms::restore_to_reference(map, geometry, transforms::Interpolation::Linear);
  };
  return {restore(models::kEncoderCoarse), restore(models::kDecoderFine)};
}

}  // namespace

AttentionMaps attention_maps(const fs::path& model_dir, int fold, const data::Case& c, int p, const std::string& device) {
  const auto folder = models::open_model_folder(model_dir);
  const auto plan_channels = folder.plan.channel_names();
  TF_CHECK(c.channel_names == plan_channels, DatasetError, "case '", c.id, "' has channels ", c.channel_names,
           " but model folder '", model_dir.string(), "' was trained on ", plan_channels);
  data::Case unlabelled = c;
  unlabelled.label_file.reset();
  const auto pc = data::preprocess_case(unlabelled, folder.plan);
  return maps_for(folder, fold, pc.image, pc.geometry, p, device);
}

AttentionMaps attention_maps_preprocessed(const fs::path& model_dir, int fold, const fs::path& preprocessed,
                                          const std::string& case_id, int p, const std::string& device) {
  const auto folder = models::open_model_folder(model_dir);
  const auto pc = data::open_preprocessed(preprocessed).load_case(case_id);
  return maps_for(folder, fold, pc.image, pc.geometry, p, device);
}

}  // namespace teachformer::report
