#include "teachformer/inference/model_window.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::inference {

WindowFunction model_window_function(models::SegmentationModel model, std::vector<std::string> taps) {
  TF_CHECK(model != nullptr, InvalidArgument, "model window function: the model is null");
  models::TapRequest request;
  request.features = !taps.empty();
  request.intermediates = false;
  request.attention = false;
  request.deep_supervision = false;
  for (const auto& tap : taps) {
    if (tap.rfind(models::kAttentionPrefix, 0) == 0)
      request.attention = true;
    else if (tap != models::kEncoderCoarse && tap != models::kDecoderFine)
      request.intermediates = true;
  }
  return [model = std::move(model), taps = std::move(taps), request](const torch::Tensor& x) {
    auto out = model->forward(x, request);
    std::vector<torch::Tensor> tensors;
    tensors.reserve(1 + taps.size());
    tensors.push_back(std::move(out.logits));
    for (const auto& tap : taps) tensors.push_back(out.taps.at(tap));
    return tensors;
  };
}

std::vector<WindowOutput> probe_model_outputs(const models::SegmentationModel& model,
                                              const std::vector<std::string>& taps,
                                              const std::vector<int64_t>& roi_size, const torch::Device& device) {
  TF_CHECK(model != nullptr, InvalidArgument, "probe model outputs: the model is null");
  TF_CHECK(roi_size.size() == 3, InvalidArgument, "probe model outputs: roi_size must be [Z, Y, X], got ", roi_size);
  torch::NoGradGuard no_grad;
  const auto x = torch::zeros({1, model->spec().in_channels, roi_size[0], roi_size[1], roi_size[2]},
                              torch::TensorOptions().dtype(torch::kFloat).device(device));
  const auto results = model_window_function(model, taps)(x);
  std::vector<WindowOutput> outputs;
  for (size_t k = 0; k < results.size(); ++k) {
    WindowOutput o;
    o.name = k == 0 ? "logits" : taps[k - 1];
    o.kind = k == 0 ? OutputKind::Segmentation : OutputKind::Feature;
    const auto& y = results[k];
    TF_CHECK(y.dim() == 5 && y.size(0) == 1, InvalidArgument, "probe model outputs: ", model->spec().key, " output '",
             o.name, "' has shape ", y.sizes().vec(), " for a window [1, C, ", roi_size,
             "]; only [1, C, z, y, x] maps can be stitched");
    for (int d = 0; d < 3; ++d) {
      const int64_t n = y.size(2 + d);
      TF_CHECK(n >= 1 && roi_size[d] % n == 0, InvalidArgument, "probe model outputs: ", model->spec().key, " output '",
               o.name, "' spatial size ", y.sizes().slice(2).vec(), " does not divide the roi ", roi_size, " (dim ", d,
               ")");
      o.downsample[d] = roi_size[d] / n;
    }
    outputs.push_back(o);
  }
  return outputs;
}

}  // namespace teachformer::inference
