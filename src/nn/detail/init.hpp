// Private initialisers shared by the nn blocks.
#pragma once
#include <cmath>

#include <torch/torch.h>

namespace teachformer::nn::detail {

/// Fills `t` in place with a normal(mean, std) truncated to [a, b] (inverse-CDF method, as timm/MONAI do).
inline void trunc_normal_(torch::Tensor t, double mean, double std, double a, double b) {
  torch::NoGradGuard no_grad;
  auto cdf = [](double x) { return (1.0 + std::erf(x / std::sqrt(2.0))) / 2.0; };
  const double l = cdf((a - mean) / std), u = cdf((b - mean) / std);
  t.uniform_(2 * l - 1, 2 * u - 1);
  t.erfinv_();
  t.mul_(std * std::sqrt(2.0));
  t.add_(mean);
  t.clamp_(a, b);
}

}  // namespace teachformer::nn::detail
