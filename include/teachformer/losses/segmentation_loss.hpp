// The interface shared by the label-supervised losses, and the checks every loss applies to its inputs.
// Layouts: logits [B, C, D, H, W] (any number >= 1 of spatial dims; C >= 2 classes incl. background, no softmax
// applied yet); targets are label maps [B, 1, D, H, W] (or [B, D, H, W]) of integer class indices in [0, C),
// dtype uint8 or int64 (int32/int16 are accepted too). Losses compute in float32 whatever the logits' dtype.
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "teachformer/losses/loss_breakdown.hpp"

namespace teachformer::losses {

/// How per-voxel values are reduced to a scalar.
enum class Reduction {
  Mean,  ///< average over batch and voxels
  Sum,   ///< sum over batch and voxels
};
/// "mean" or "sum".
std::string to_string(Reduction reduction);
/// Parses "mean" / "sum"; throws ConfigError naming `context` otherwise.
Reduction parse_reduction(const std::string& text, const std::string& context);

/// A loss of logits against a label map. Implementations are stateless apart from their options and are safe
/// to call from several threads.
class SegmentationLoss {
 public:
  virtual ~SegmentationLoss() = default;
  /// Loss of `logits` [B, C, ...] against `target` [B, 1, ...] (label map) with named terms.
  virtual LossBreakdown compute(const torch::Tensor& logits, const torch::Tensor& target) const = 0;
  /// The scalar total of compute().
  torch::Tensor operator()(const torch::Tensor& logits, const torch::Tensor& target) const {
    return compute(logits, target).total;
  }
  /// Registry name ("dice", "ce", "dice_ce", "focal").
  virtual std::string name() const = 0;
  /// {"type": name(), ...options}: what make_loss() accepts to rebuild this loss.
  virtual nlohmann::json config() const = 0;
};

/// Checks a logits/target pair and returns the target as int64 class indices [B, ...spatial] (channel dim
/// removed) on the logits' device. Throws InvalidArgument naming `context` when the logits are not floating
/// point with C >= 2 and at least one spatial dim, when the shapes disagree (batch or spatial size), when the
/// target is not an integer type, or when a label lies outside [0, C) (the message gives the offending value).
torch::Tensor class_indices(const torch::Tensor& logits, const torch::Tensor& target, const std::string& context);

/// One-hot encoding of class indices [B, ...] into float32 [B, C, ...].
torch::Tensor one_hot_labels(const torch::Tensor& indices, int64_t num_classes);

}  // namespace teachformer::losses
