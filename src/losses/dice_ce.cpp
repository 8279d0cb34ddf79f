#include "teachformer/losses/dice_ce.hpp"

#include <cmath>

#include <torch/torch.h>

#include "losses/detail/checks.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::losses {
namespace {

void validate(const DiceCELossOptions& o, const std::string& context) {
  TF_CHECK(std::isfinite(o.lambda_dice()) && o.lambda_dice() >= 0.0, InvalidArgument, context,
           ": lambda_dice must be finite and >= 0, got ", o.lambda_dice());
  TF_CHECK(std::isfinite(o.lambda_ce()) && o.lambda_ce() >= 0.0, InvalidArgument, context,
           ": lambda_ce must be finite and >= 0, got ", o.lambda_ce());
  TF_CHECK(o.lambda_dice() + o.lambda_ce() > 0.0, InvalidArgument, context,
           ": lambda_dice and lambda_ce must not both be 0");
  detail::check_class_weights(o.ce().class_weights(), "ce.class_weights", context);
}

}  // namespace

void from_json(const nlohmann::json& j, DiceCELossOptions& options) {
  JsonReader r(j, "DiceCE loss options");
  r.get("dice", options.dice());
  r.get("ce", options.ce());
  r.get("lambda_dice", options.lambda_dice());
  r.get("lambda_ce", options.lambda_ce());
  r.finish();
  detail::as_config_error([&] { validate(options, "DiceCE loss options"); });
}

void to_json(nlohmann::json& j, const DiceCELossOptions& options) {
  j = nlohmann::json{{"dice", options.dice()},
                     {"ce", options.ce()},
                     {"lambda_dice", options.lambda_dice()},
                     {"lambda_ce", options.lambda_ce()}};
}

DiceCELoss::DiceCELoss(DiceCELossOptions options) : options_(std::move(options)) {
  validate(options_, "DiceCE loss");
  (void)DiceLoss(options_.dice());  // validates the Dice options
}

LossBreakdown DiceCELoss::compute(const torch::Tensor& logits, const torch::Tensor& target) const {
  const auto dice = dice_loss(logits, target, options_.dice());
  const auto ce = softmax_cross_entropy(logits, target, options_.ce());
  LossBreakdown out;
  out.total = options_.lambda_dice() * dice + options_.lambda_ce() * ce;
  out.add_term("dice", dice);
  out.add_term("ce", ce);
  return out;
}

nlohmann::json DiceCELoss::config() const {
  nlohmann::json j = options_;
  j["type"] = name();
  return j;
}

}  // namespace teachformer::losses
