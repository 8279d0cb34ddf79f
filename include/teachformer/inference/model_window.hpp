// Adapting a segmentation model (models::SegmentationModel) to the sliding window: its logits plus named taps.
#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/inference/sliding_window.hpp"
#include "teachformer/models/seg_model.hpp"

namespace teachformer::inference {

/// Window function running `model` (used as is: call eval() and move it to the device first) that returns
/// {logits, taps[0], taps[1], ...}. Taps other than encoder_coarse / decoder_fine are requested as
/// intermediates. Throws InvalidArgument (listing the available taps) when the model does not produce a tap.
WindowFunction model_window_function(models::SegmentationModel model, std::vector<std::string> taps = {});

/// Declares the outputs of model_window_function(model, taps) by running it once on a zero window
/// [1, in_channels, roi] on `device`: "logits" (Segmentation) and each tap (Feature), each with its downsampling
/// factor roi / output size. Throws InvalidArgument when an output is not [1, C, z, y, x] or its size does not
/// divide the roi (attention maps, for instance, cannot be stitched).
std::vector<WindowOutput> probe_model_outputs(const models::SegmentationModel& model,
                                              const std::vector<std::string>& taps,
                                              const std::vector<int64_t>& roi_size,
                                              const torch::Device& device = torch::kCPU);

}  // namespace teachformer::inference
