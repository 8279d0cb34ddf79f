// Whole-case prediction used by validation during training: Gaussian sliding window with the training patch.
#pragma once
#include <vector>

#include "teachformer/train/trainer.hpp"

namespace teachformer::train {

/// A CasePredictor running a Gaussian-weighted sliding window (roi = `patch_size`, `overlap`) on `device`;
/// returns probabilities [K, Z, Y, X] on the CPU.
CasePredictor make_sliding_window_predictor(std::vector<int64_t> patch_size, double overlap, c10::Device device);

}  // namespace teachformer::train
