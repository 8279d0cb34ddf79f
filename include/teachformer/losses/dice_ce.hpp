// DiceCE: lambda_dice * soft Dice + lambda_ce * cross-entropy (MONAI DiceCELoss, nnU-Net's DC_and_CE_loss).
#pragma once
#include <nlohmann/json.hpp>
#include <torch/arg.h>

#include "teachformer/losses/cross_entropy.hpp"
#include "teachformer/losses/dice.hpp"

namespace teachformer::losses {

/// Options of DiceCE: total = lambda_dice * dice + lambda_ce * ce.
struct DiceCELossOptions {
  /// Dice options (include_background false, batch_dice false, smooth 1e-5 by default).
  TORCH_ARG(DiceLossOptions, dice) = {};
  /// Cross-entropy options (no class weights by default).
  TORCH_ARG(CrossEntropyLossOptions, ce) = {};
  /// Weight of the Dice term; default 1, >= 0.
  TORCH_ARG(double, lambda_dice) = 1.0;
  /// Weight of the cross-entropy term; default 1, >= 0.
  TORCH_ARG(double, lambda_ce) = 1.0;
};
/// Reads DiceCELossOptions: {"dice": {...}, "ce": {...}, "lambda_dice": 1, "lambda_ce": 1}.
void from_json(const nlohmann::json& j, DiceCELossOptions& options);
/// Writes every option.
void to_json(nlohmann::json& j, const DiceCELossOptions& options);

/// DiceCE as a SegmentationLoss; terms "dice" and "ce" (unweighted values).
class DiceCELoss : public SegmentationLoss {
 public:
  /// Throws InvalidArgument for invalid options.
  explicit DiceCELoss(DiceCELossOptions options = {});
  /// Loss (float32 scalar) of logits [B, C, ...] against a label map [B, 1, ...]; term(s) "dice" and "ce" (unweighted).
  LossBreakdown compute(const torch::Tensor& logits, const torch::Tensor& target) const override;
  /// Type name for make_loss().
  std::string name() const override { return "dice_ce"; }
  /// {"type": name(), ...options}.
  nlohmann::json config() const override;
  /// The options in use.
  const DiceCELossOptions& options() const { return options_; }

 private:
  DiceCELossOptions options_;
};

}  // namespace teachformer::losses
