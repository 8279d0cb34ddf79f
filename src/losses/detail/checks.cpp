#include <cmath>

#include <torch/torch.h>

#include "losses/detail/checks.hpp"

namespace teachformer::losses::detail {

void check_class_weights(const std::vector<double>& weights, const std::string& option, const std::string& context) {
  bool any_positive = weights.empty();
  for (size_t c = 0; c < weights.size(); ++c) {
    TF_CHECK(std::isfinite(weights[c]) && weights[c] >= 0.0, InvalidArgument, context, ": ", option,
             " must be finite and >= 0, got ", weights[c], " for class ", c);
    any_positive = any_positive || weights[c] > 0.0;
  }
  TF_CHECK(any_positive, InvalidArgument, context, ": ", option, " must not be all zero, got ", weights);
}

torch::Tensor class_weight_tensor(const std::vector<double>& weights, int64_t classes, const torch::Device& device,
                                  const std::string& option, const std::string& context) {
  TF_CHECK(static_cast<int64_t>(weights.size()) == classes, InvalidArgument, context, ": ", option, " has ",
           weights.size(), " values but the logits have C = ", classes, " classes");
  return torch::tensor(weights, torch::kDouble).to(device, torch::kFloat);
}

}  // namespace teachformer::losses::detail
