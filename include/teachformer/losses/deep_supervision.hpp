// Deep supervision: one loss applied to every output of a model, highest resolution first, with weights
// 1/2^i and targets downsampled by nearest neighbour (nnU-Net's and H-DenseFormer's DeepSuperloss scheme).
#pragma once
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/types.h>

#include "teachformer/losses/segmentation_loss.hpp"

namespace teachformer::losses {

/// Options of DeepSupervisionLoss: total = sum_i w_i L(out_i, y_i), i = 0 for the full-resolution output.
struct DeepSupervisionOptions {
  /// Weights w_i, one per output (each >= 0, not all zero); empty (default) = 1/2^i for as many outputs as given.
  TORCH_ARG(std::vector<double>, weights) = {};
  /// Divide the weights by their sum so they sum to 1 (nnU-Net); default true. H-DenseFormer uses false
  /// (weights 1, 1/2, 1/4, 1/8 as they are).
  TORCH_ARG(bool, normalize) = true;
};
/// Reads DeepSupervisionOptions: {"weights": [..], "normalize": true}.
void from_json(const nlohmann::json& j, DeepSupervisionOptions& options);
/// Writes every option.
void to_json(nlohmann::json& j, const DeepSupervisionOptions& options);

/// The weights used for `outputs` outputs (after defaults and normalisation). Throws InvalidArgument when
/// explicit weights do not match the number of outputs.
std::vector<double> deep_supervision_weights(const DeepSupervisionOptions& options, int64_t outputs);

/// Label map [B, 1, ...] (or [B, ...]) resized by nearest neighbour to `spatial_size`: output index j along a
/// dim of input size n and output size m reads input index floor(j * n / m) (PyTorch's "nearest" for integer
/// ratios; no interpolation of label values). Returns `target` itself when the size already matches; the size
/// may not grow (InvalidArgument).
torch::Tensor downsample_labels(const torch::Tensor& target, const std::vector<int64_t>& spatial_size);

/// Applies `loss` to each output against the target downsampled to that output's size. Terms: every term of the
/// inner loss summed over the levels with the weights (e.g. "dice", "ce"), then "level<i>" = the inner total at
/// level i (unweighted).
class DeepSupervisionLoss {
 public:
  /// Throws InvalidArgument when `loss` is null or the options are invalid.
  DeepSupervisionLoss(std::shared_ptr<const SegmentationLoss> loss, DeepSupervisionOptions options = {});
  /// `outputs`: logits [B, C, ...], the full-resolution one first, then decreasing sizes; `target` [B, 1, ...]
  /// at the size of outputs[0].
  LossBreakdown compute(const std::vector<torch::Tensor>& outputs, const torch::Tensor& target) const;
  /// The inner loss.
  const SegmentationLoss& inner() const { return *loss_; }
  /// The options in use.
  const DeepSupervisionOptions& options() const { return options_; }

 private:
  std::shared_ptr<const SegmentationLoss> loss_;
  DeepSupervisionOptions options_;
};

}  // namespace teachformer::losses
