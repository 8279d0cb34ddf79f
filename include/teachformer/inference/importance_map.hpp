// Importance maps: how much each voxel of a window counts when overlapping windows are blended.
#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

namespace teachformer::inference {

/// How window predictions are weighted when blended.
enum class BlendMode {
  Constant,  ///< every voxel of a window weighs 1 (MONAI "constant")
  Gaussian,  ///< a Gaussian centred on the window, low at its borders (MONAI "gaussian", nnU-Net)
};
/// "constant" or "gaussian".
std::string to_string(BlendMode mode);
/// Parses "constant" / "gaussian"; throws ConfigError naming `context` otherwise.
BlendMode parse_blend_mode(const std::string& text, const std::string& context);

/// Importance map of a window, float32 [size[0], size[1], ...] (any number of dims; [Z, Y, X] for volumes) on
/// `device`. Constant: all ones. Gaussian: the product over dims of exp(-(i - (n - 1) / 2)^2 / (2 sigma^2)) with
/// sigma = sigma_scale * n (voxels) along a dim of n voxels, centred between voxels for even n as MONAI does,
/// divided by its maximum (so the peak is exactly 1); values that underflow to 0 are replaced by the smallest
/// non-zero value (nnU-Net), so every voxel has a positive weight. Throws InvalidArgument for a size < 1 or
/// sigma_scale <= 0.
torch::Tensor importance_map(const std::vector<int64_t>& size, BlendMode mode, double sigma_scale = 0.125,
                             const torch::Device& device = torch::kCPU);

}  // namespace teachformer::inference
