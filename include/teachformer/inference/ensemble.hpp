// Averaging whole-volume results that are produced one after another (folds loaded one at a time), and turning
// class scores into label maps.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "teachformer/inference/sliding_window.hpp"

namespace teachformer::inference {

/// Running mean over results with the same outputs: keeps ONE float32 sum per output (never one copy per
/// member). For members that fit in memory together, passing them all to sliding_window_inference() is cheaper
/// still (one buffer, no second pass).
class RunningMean {
 public:
  /// Adds a result; outputs must have the same names (in order) and shapes as the first one (InvalidArgument
  /// otherwise). Pass it with std::move: a float32 output not shared with anyone else becomes the sum itself.
  void add(SlidingWindowResult result);
  /// Number of results added.
  int64_t count() const { return count_; }
  /// The mean, in `dtype` (float32 or float16); divides the sums in place and resets the accumulator.
  /// Throws InvalidArgument when nothing was added.
  SlidingWindowResult finish(torch::Dtype dtype = torch::kFloat);

 private:
  std::vector<std::pair<std::string, torch::Tensor>> sums_;
  int64_t count_ = 0;
  int64_t windows_ = 0;
  int64_t function_calls_ = 0;
};

/// Label map from class scores (probabilities or logits) [C, Z, Y, X] -> uint8 [1, Z, Y, X], or
/// [B, C, Z, Y, X] -> [B, 1, Z, Y, X]: the index of the largest score (the first one on ties). Works slab by
/// slab, so float16 scores are never converted whole. Throws InvalidArgument for C < 1 or C > 256.
torch::Tensor argmax_labels(const torch::Tensor& scores);

}  // namespace teachformer::inference
