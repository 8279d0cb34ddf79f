// Soft Dice loss on softmax probabilities (MONAI DiceLoss(softmax=True, to_onehot_y=True) semantics).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/types.h>

#include "teachformer/losses/segmentation_loss.hpp"

namespace teachformer::losses {

/// Options of the soft Dice loss. Per class c: dice_c = (2 sum(p_c y_c) + smooth_nr) / (sum(p_c) + sum(y_c) +
/// smooth_dr), p = softmax(logits) over classes, y = one-hot target; loss = mean over classes (and over the
/// batch unless batch_dice) of 1 - dice_c. A class absent from both prediction and target has dice 1 (loss 0).
struct DiceLossOptions {
  /// Include class 0 (background) in the mean; default false, as nnU-Net's do_bg=False.
  TORCH_ARG(bool, include_background) = false;
  /// Sum intersections and volumes over the whole batch before the ratio (one Dice per class, nnU-Net's
  /// batch_dice); default false: one Dice per sample and class, then the mean.
  TORCH_ARG(bool, batch_dice) = false;
  /// Added to the numerator; default 1e-5 (MONAI's and nnU-Net's value).
  TORCH_ARG(double, smooth_nr) = 1e-5;
  /// Added to the denominator; default 1e-5.
  TORCH_ARG(double, smooth_dr) = 1e-5;
};
/// Reads DiceLossOptions from JSON (keys as the option names; unknown keys are ConfigError).
void from_json(const nlohmann::json& j, DiceLossOptions& options);
/// Writes every option.
void to_json(nlohmann::json& j, const DiceLossOptions& options);

/// Soft Dice loss (scalar, float32) of logits [B, C, ...] against a label map [B, 1, ...].
torch::Tensor dice_loss(const torch::Tensor& logits, const torch::Tensor& target, const DiceLossOptions& options = {});

/// Per-(sample, class) soft Dice coefficients from probabilities [B, C, ...] and one-hot targets of the same
/// shape: [B, C] (or [1, C] with batch_dice); classes are not dropped here.
torch::Tensor soft_dice_coefficients(const torch::Tensor& probabilities, const torch::Tensor& one_hot_target,
                                     const DiceLossOptions& options);

/// Soft Dice as a SegmentationLoss; one term "dice".
class DiceLoss : public SegmentationLoss {
 public:
  /// Throws InvalidArgument for invalid options.
  explicit DiceLoss(DiceLossOptions options = {});
  /// Loss (float32 scalar) of logits [B, C, ...] against a label map [B, 1, ...]; term(s) "dice".
  LossBreakdown compute(const torch::Tensor& logits, const torch::Tensor& target) const override;
  /// Type name for make_loss().
  std::string name() const override { return "dice"; }
  /// {"type": name(), ...options}.
  nlohmann::json config() const override;
  /// The options in use.
  const DiceLossOptions& options() const { return options_; }

 private:
  DiceLossOptions options_;
};

}  // namespace teachformer::losses
