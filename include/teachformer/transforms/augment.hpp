// Training-time augmentation on one Sample: spatial transforms applied identically to every channel, the label
// and any extra maps (e.g. cached teacher outputs); intensity transforms on the image only.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "teachformer/core/random.hpp"

namespace teachformer::transforms {

/// A map that travels with the patch: `data` [C, d, h, w] where the patch is `factor` times larger per dim.
struct ExtraMap {
  torch::Tensor data;
  int64_t factor = 1;
};

/// One training example.
struct Sample {
  /// [C, D, H, W] float32 image patch.
  torch::Tensor image;
  /// [1, D, H, W] uint8 label patch (undefined for unlabelled data).
  torch::Tensor label;
  /// Named extra maps cropped with the patch (cached teacher predictions, attention maps).
  std::map<std::string, ExtraMap> extras;
};

/// Augmentation settings (nnU-Net-like defaults; probabilities are per sample).
struct AugmentOptions {
  /// Probability of flipping each spatial axis.
  double p_flip = 0.5;
  /// Probability of a random in-plane (H, W) rotation by 90, 180 or 270 degrees (only when H == W).
  double p_rot90 = 0.5;
  /// Probability of a random isotropic scaling (applied by the patch sampler when cropping); 0 disables.
  double p_scale = 0.0;
  /// Scale range [min, max] (>1 zooms out: a larger region is resampled into the patch).
  std::vector<double> scale_range{0.85, 1.25};
  /// Probability of a multiplicative intensity scale per channel, factor uniform in scale_intensity_range.
  double p_intensity_scale = 0.15;
  std::vector<double> intensity_scale_range{0.75, 1.25};
  /// Probability of an additive intensity shift per channel, N(0, intensity_shift_std) (normalised units).
  double p_intensity_shift = 0.15;
  double intensity_shift_std = 0.1;
  /// Probability of a gamma transform per channel (on the channel rescaled to [0, 1], then mapped back).
  double p_gamma = 0.3;
  std::vector<double> gamma_range{0.7, 1.5};
  /// Probability of additive Gaussian noise; variance uniform in [0, noise_variance_max].
  double p_noise = 0.1;
  double noise_variance_max = 0.1;
  /// Turn intensity transforms on or off as a whole.
  bool intensity = true;
  /// Turn spatial transforms (flip, rot90, scale) on or off as a whole.
  bool spatial = true;
};

/// Strict JSON mapping (unknown keys are ConfigError).
AugmentOptions augment_options_from_json(const nlohmann::json& j);
nlohmann::json to_json(const AugmentOptions& o);

/// Flips and in-plane 90-degree rotations, identical for image, label and every extra map.
void augment_spatial(Sample& sample, const AugmentOptions& options, Rng& rng);
/// Intensity scale/shift, gamma and noise on the image only.
void augment_intensity(Sample& sample, const AugmentOptions& options, Rng& rng);

/// Flips the given spatial axes (0 = D, 1 = H, 2 = W) of a [C, D, H, W] tensor.
torch::Tensor flip_spatial(const torch::Tensor& t, const std::vector<int64_t>& axes);
/// Rotates a [C, D, H, W] tensor by k * 90 degrees in the (H, W) plane.
torch::Tensor rot90_inplane(const torch::Tensor& t, int64_t k);

}  // namespace teachformer::transforms
