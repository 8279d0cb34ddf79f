#include "teachformer/inference/importance_map.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::inference {

std::string to_string(BlendMode mode) { return mode == BlendMode::Constant ? "constant" : "gaussian"; }

BlendMode parse_blend_mode(const std::string& text, const std::string& context) {
  if (text == "constant") return BlendMode::Constant;
  if (text == "gaussian") return BlendMode::Gaussian;
  TF_THROW(ConfigError, context, ": mode must be \"constant\" or \"gaussian\", got \"", text, "\"");
}

torch::Tensor importance_map(const std::vector<int64_t>& size, BlendMode mode, double sigma_scale,
                             const torch::Device& device) {
  TF_CHECK(!size.empty(), InvalidArgument, "importance map: size must have at least one dim");
  for (size_t d = 0; d < size.size(); ++d)
    TF_CHECK(size[d] >= 1, InvalidArgument, "importance map: size ", size, " must be >= 1 in every dim (dim ", d,
             " is ", size[d], ")");
  const auto float_options = torch::TensorOptions().dtype(torch::kFloat).device(device);
  if (mode == BlendMode::Constant) return torch::ones(size, float_options);
  TF_CHECK(sigma_scale > 0.0, InvalidArgument, "importance map: sigma_scale must be > 0, got ", sigma_scale);
  // Separable: an outer product of 1-D Gaussians, built in double on the CPU (a window is small).
  torch::Tensor map;
  for (size_t d = 0; d < size.size(); ++d) {
    const double n = static_cast<double>(size[d]);
    const double sigma = sigma_scale * n;
    const auto x = torch::arange(size[d], torch::kDouble) - (n - 1.0) / 2.0;
    const auto g = torch::exp(-(x * x) / (2.0 * sigma * sigma));
    map = map.defined() ? map.unsqueeze(-1) * g : g;
  }
  map = (map / map.max()).to(torch::kFloat);
  // Voxels whose weight underflowed would never be written (0 / 0 where no other window covers them).
  const auto zero = map == 0;
  if (zero.any().item<bool>()) map.masked_fill_(zero, map.masked_select(~zero).min().item<float>());
  return map.to(device);
}

}  // namespace teachformer::inference
