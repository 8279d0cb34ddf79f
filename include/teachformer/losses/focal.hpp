// Softmax focal loss (Lin et al. 2017, multi-class form); with the defaults and reduction "sum" it is the loss
// H-DenseFormer trains with: sum over voxels of -log(p_true) (1 - p_true)^2.
#pragma once
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/types.h>

#include "teachformer/losses/segmentation_loss.hpp"

namespace teachformer::losses {

/// Options of the focal loss. Per voxel v with true class y: l_v = -alpha_y (1 - p_y)^gamma log p_y,
/// p = softmax(logits) over classes (log p from log_softmax, so it is exact where H-DenseFormer's BCE clamps
/// log p at -100). Only the true class's channel contributes.
struct FocalLossOptions {
  /// Focusing exponent gamma (>= 0); default 2. gamma = 0 gives (alpha-weighted) cross-entropy.
  TORCH_ARG(double, gamma) = 2.0;
  /// Per-class weights alpha_c (length C, each >= 0); empty (default) = all 1, as H-DenseFormer's alpha = 1.
  /// MONAI's scalar alpha a corresponds to [1 - a, a, ..., a].
  TORCH_ARG(std::vector<double>, alpha) = {};
  /// Reduction over batch and voxels; default mean (sum for H-DenseFormer).
  TORCH_ARG(Reduction, reduction) = Reduction::Mean;
};
/// Reads FocalLossOptions: {"gamma": 2, "alpha": [..], "reduction": "mean"|"sum"}.
void from_json(const nlohmann::json& j, FocalLossOptions& options);
/// Writes every option.
void to_json(nlohmann::json& j, const FocalLossOptions& options);

/// Focal loss (scalar, float32) of logits [B, C, ...] against a label map [B, 1, ...].
torch::Tensor focal_loss(const torch::Tensor& logits, const torch::Tensor& target,
                         const FocalLossOptions& options = {});

/// Focal loss as a SegmentationLoss; one term "focal".
class FocalLoss : public SegmentationLoss {
 public:
  /// Throws InvalidArgument for invalid options.
  explicit FocalLoss(FocalLossOptions options = {});
  /// Loss (float32 scalar) of logits [B, C, ...] against a label map [B, 1, ...]; term(s) "focal".
  LossBreakdown compute(const torch::Tensor& logits, const torch::Tensor& target) const override;
  /// Type name for make_loss().
  std::string name() const override { return "focal"; }
  /// {"type": name(), ...options}.
  nlohmann::json config() const override;
  /// The options in use.
  const FocalLossOptions& options() const { return options_; }

 private:
  FocalLossOptions options_;
};

}  // namespace teachformer::losses
