// Cross-entropy of softmax logits against a label map (no ignored label).
#pragma once
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/types.h>

#include "teachformer/losses/segmentation_loss.hpp"

namespace teachformer::losses {

/// Options of the cross-entropy loss: loss = sum_v w_{y_v} (-log softmax(z_v)_{y_v}) / sum_v w_{y_v}, i.e.
/// PyTorch's weighted mean (the plain voxel mean when no weights are given). Every label counts: there is no
/// ignore index.
struct CrossEntropyLossOptions {
  /// Per-class weights w_c (length C, each >= 0, not all zero); empty (default) = all 1.
  TORCH_ARG(std::vector<double>, class_weights) = {};
};
/// Reads CrossEntropyLossOptions from JSON (unknown keys are ConfigError).
void from_json(const nlohmann::json& j, CrossEntropyLossOptions& options);
/// Writes every option.
void to_json(nlohmann::json& j, const CrossEntropyLossOptions& options);

/// Cross-entropy (scalar, float32) of logits [B, C, ...] against a label map [B, 1, ...].
torch::Tensor softmax_cross_entropy(const torch::Tensor& logits, const torch::Tensor& target,
                                    const CrossEntropyLossOptions& options = {});

/// Cross-entropy as a SegmentationLoss; one term "ce".
class CrossEntropyLoss : public SegmentationLoss {
 public:
  /// Throws InvalidArgument for invalid options.
  explicit CrossEntropyLoss(CrossEntropyLossOptions options = {});
  /// Loss (float32 scalar) of logits [B, C, ...] against a label map [B, 1, ...]; term(s) "ce".
  LossBreakdown compute(const torch::Tensor& logits, const torch::Tensor& target) const override;
  /// Type name for make_loss().
  std::string name() const override { return "ce"; }
  /// {"type": name(), ...options}.
  nlohmann::json config() const override;
  /// The options in use.
  const CrossEntropyLossOptions& options() const { return options_; }

 private:
  CrossEntropyLossOptions options_;
};

}  // namespace teachformer::losses
