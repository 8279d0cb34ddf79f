#include "teachformer/losses/cross_entropy.hpp"

#include <torch/torch.h>

#include "losses/detail/checks.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::losses {

void from_json(const nlohmann::json& j, CrossEntropyLossOptions& options) {
  JsonReader r(j, "cross-entropy loss options");
  r.get("class_weights", options.class_weights());
  r.finish();
  detail::as_config_error(
      [&] { detail::check_class_weights(options.class_weights(), "class_weights", "cross-entropy loss options"); });
}

void to_json(nlohmann::json& j, const CrossEntropyLossOptions& options) {
  j = nlohmann::json{{"class_weights", options.class_weights()}};
}

torch::Tensor softmax_cross_entropy(const torch::Tensor& logits, const torch::Tensor& target,
                                    const CrossEntropyLossOptions& options) {
  const std::string context = "cross-entropy loss";
  detail::check_class_weights(options.class_weights(), "class_weights", context);
  const auto indices = class_indices(logits, target, context);
  torch::Tensor weight;
  if (!options.class_weights().empty())
    weight =
        detail::class_weight_tensor(options.class_weights(), logits.size(1), logits.device(), "class_weights", context);
  // ignore_index is left at PyTorch's -100, which class_indices() guarantees never occurs: every voxel counts.
  return at::cross_entropy_loss(logits.to(torch::kFloat), indices, weight, at::Reduction::Mean);
}

CrossEntropyLoss::CrossEntropyLoss(CrossEntropyLossOptions options) : options_(std::move(options)) {
  detail::check_class_weights(options_.class_weights(), "class_weights", "cross-entropy loss");
}

LossBreakdown CrossEntropyLoss::compute(const torch::Tensor& logits, const torch::Tensor& target) const {
  LossBreakdown out;
  out.total = softmax_cross_entropy(logits, target, options_);
  out.add_term("ce", out.total);
  return out;
}

nlohmann::json CrossEntropyLoss::config() const {
  nlohmann::json j = options_;
  j["type"] = name();
  return j;
}

}  // namespace teachformer::losses
