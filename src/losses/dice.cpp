#include "teachformer/losses/dice.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::losses {
namespace {

void validate(const DiceLossOptions& o, const std::string& context) {
  TF_CHECK(o.smooth_nr() >= 0.0, InvalidArgument, context, ": smooth_nr must be >= 0, got ", o.smooth_nr());
  TF_CHECK(o.smooth_dr() >= 0.0, InvalidArgument, context, ": smooth_dr must be >= 0, got ", o.smooth_dr());
}

}  // namespace

void from_json(const nlohmann::json& j, DiceLossOptions& options) {
  JsonReader r(j, "Dice loss options");
  r.get("include_background", options.include_background());
  r.get("batch_dice", options.batch_dice());
  r.get("smooth_nr", options.smooth_nr());
  r.get("smooth_dr", options.smooth_dr());
  r.finish();
  try {
    validate(options, "Dice loss options");
  } catch (const InvalidArgument& e) {
    throw ConfigError(e.what());
  }
}

void to_json(nlohmann::json& j, const DiceLossOptions& options) {
  j = nlohmann::json{{"include_background", options.include_background()},
                     {"batch_dice", options.batch_dice()},
                     {"smooth_nr", options.smooth_nr()},
                     {"smooth_dr", options.smooth_dr()}};
}

torch::Tensor soft_dice_coefficients(const torch::Tensor& probabilities, const torch::Tensor& one_hot_target,
                                     const DiceLossOptions& options) {
  TF_CHECK(probabilities.sizes() == one_hot_target.sizes(), InvalidArgument, "soft Dice: probabilities ",
           probabilities.sizes().vec(), " and one-hot target ", one_hot_target.sizes().vec(),
           " must have the same shape");
  TF_CHECK(probabilities.dim() >= 3, InvalidArgument, "soft Dice: expected [B, C, spatial...], got ",
           probabilities.sizes().vec());
  std::vector<int64_t> dims;
  if (options.batch_dice()) dims.push_back(0);
  for (int64_t d = 2; d < probabilities.dim(); ++d) dims.push_back(d);
  const bool keep = options.batch_dice();  // keep the batch dim as size 1 so the result is [1, C]
  auto intersection = (probabilities * one_hot_target).sum(dims, keep);
  auto predicted = probabilities.sum(dims, keep);
  auto reference = one_hot_target.sum(dims, keep);
  if (keep) {
    intersection = intersection.flatten(1);
    predicted = predicted.flatten(1);
    reference = reference.flatten(1);
  }
  return (2.0 * intersection + options.smooth_nr()) / (predicted + reference + options.smooth_dr());
}

torch::Tensor dice_loss(const torch::Tensor& logits, const torch::Tensor& target, const DiceLossOptions& options) {
  validate(options, "Dice loss");
  const auto indices = class_indices(logits, target, "Dice loss");
  const int64_t classes = logits.size(1);
  auto probabilities = torch::softmax(logits.to(torch::kFloat), 1);
  auto reference = one_hot_labels(indices, classes);
  if (!options.include_background()) {
    probabilities = probabilities.narrow(1, 1, classes - 1);
    reference = reference.narrow(1, 1, classes - 1);
  }
  return (1.0 - soft_dice_coefficients(probabilities, reference, options)).mean();
}

DiceLoss::DiceLoss(DiceLossOptions options) : options_(options) { validate(options_, "Dice loss"); }

LossBreakdown DiceLoss::compute(const torch::Tensor& logits, const torch::Tensor& target) const {
  LossBreakdown out;
  out.total = dice_loss(logits, target, options_);
  out.add_term("dice", out.total);
  return out;
}

nlohmann::json DiceLoss::config() const {
  nlohmann::json j = options_;
  j["type"] = name();
  return j;
}

}  // namespace teachformer::losses
