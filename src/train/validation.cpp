#include "teachformer/train/validation.hpp"

#include <torch/torch.h>

#include "teachformer/inference/sliding_window.hpp"

namespace teachformer::train {

CasePredictor make_sliding_window_predictor(std::vector<int64_t> patch_size, double overlap, c10::Device device) {
  return [patch_size = std::move(patch_size), overlap, device](models::SegmentationModelImpl& model,
                                                                 const torch::Tensor& image) {
    inference::SlidingWindowOptions o;
    o.roi_size(patch_size).overlap(overlap).device(device);
    const models::TapRequest none{false, false, false, false};
    inference::WindowFunction fn = [&model, none](const torch::Tensor& windows) {
      return std::vector<torch::Tensor>{model.forward(windows, none).logits};
    };
    return inference::sliding_window_inference(image, fn, o);
  };
}

}  // namespace teachformer::train
