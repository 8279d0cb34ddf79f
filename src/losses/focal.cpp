#include "teachformer/losses/focal.hpp"

#include <cmath>

#include <torch/torch.h>

#include "losses/detail/checks.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::losses {
namespace {

void validate(const FocalLossOptions& o, const std::string& context) {
  TF_CHECK(std::isfinite(o.gamma()) && o.gamma() >= 0.0, InvalidArgument, context,
           ": gamma must be finite and >= 0, got ", o.gamma());
  detail::check_class_weights(o.alpha(), "alpha", context);
}

}  // namespace

void from_json(const nlohmann::json& j, FocalLossOptions& options) {
  const std::string context = "focal loss options";
  JsonReader r(j, context);
  r.get("gamma", options.gamma());
  r.get("alpha", options.alpha());
  std::string reduction = to_string(options.reduction());
  r.get("reduction", reduction);
  r.finish();
  options.reduction(parse_reduction(reduction, context));
  detail::as_config_error([&] { validate(options, context); });
}

void to_json(nlohmann::json& j, const FocalLossOptions& options) {
  j = nlohmann::json{
      {"gamma", options.gamma()}, {"alpha", options.alpha()}, {"reduction", to_string(options.reduction())}};
}

torch::Tensor focal_loss(const torch::Tensor& logits, const torch::Tensor& target, const FocalLossOptions& options) {
  const std::string context = "focal loss";
  validate(options, context);
  const auto indices = class_indices(logits, target, context).unsqueeze(1);
  const auto log_p = torch::log_softmax(logits.to(torch::kFloat), 1).gather(1, indices);  // [B, 1, ...]
  auto per_voxel = -log_p;
  if (options.gamma() != 0.0) per_voxel = per_voxel * (1.0 - log_p.exp()).clamp_min(0.0).pow(options.gamma());
  if (!options.alpha().empty()) {
    const auto alpha = detail::class_weight_tensor(options.alpha(), logits.size(1), logits.device(), "alpha", context);
    per_voxel = per_voxel * alpha.index_select(0, indices.flatten()).view_as(indices);
  }
  return options.reduction() == Reduction::Sum ? per_voxel.sum() : per_voxel.mean();
}

FocalLoss::FocalLoss(FocalLossOptions options) : options_(std::move(options)) { validate(options_, "focal loss"); }

LossBreakdown FocalLoss::compute(const torch::Tensor& logits, const torch::Tensor& target) const {
  LossBreakdown out;
  out.total = focal_loss(logits, target, options_);
  out.add_term("focal", out.total);
  return out;
}

nlohmann::json FocalLoss::config() const {
  nlohmann::json j = options_;
  j["type"] = name();
  return j;
}

}  // namespace teachformer::losses
