// Patch sampling with foreground oversampling (nnU-Net style) from cases held in memory.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/core/random.hpp"
#include "teachformer/transforms/augment.hpp"

namespace teachformer::data {

/// A preprocessed case ready for patch sampling.
struct TrainingCase {
  std::string id;
  /// [C, Z, Y, X] float32.
  torch::Tensor image;
  /// [1, Z, Y, X] uint8 (undefined when unlabelled).
  torch::Tensor label;
  /// Per foreground label value v (key), up to `max_locations` voxel positions [N, 3] (z, y, x) int64.
  std::map<int64_t, torch::Tensor> class_locations;
  /// Whole-case extra maps (e.g. a teacher cache), each at an integer downsampling factor of the case grid.
  std::map<std::string, transforms::ExtraMap> extras;
};

/// Fills `class_locations` from the label: all foreground positions per value, evenly subsampled to at most
/// `max_locations` per value (deterministic).
void index_foreground(TrainingCase& c, int64_t max_locations = 10000);

/// Sampling settings.
struct PatchSamplerOptions {
  /// Patch size [D, H, W] in voxels.
  std::vector<int64_t> patch_size{64, 64, 64};
  /// Fraction of patches forced to contain foreground (a random foreground class, then a random voxel of it,
  /// becomes the patch centre). Default 1/3 as nnU-Net.
  double foreground_fraction = 1.0 / 3.0;
};

/// Crops patches (zero-padding cases smaller than the patch) and applies an optional random scaling
/// (AugmentOptions::p_scale) by resampling a larger or smaller region into the patch. Extra maps (a teacher cache at
/// a downsampling factor f) follow the same region: cropped exactly when the patch covers whole map voxels, else
/// sampled trilinearly at the patch-map voxel centres, so patch positions never depend on the extras: a student
/// trained with cached teachers sees the same patches as one trained without.
class PatchSampler {
 public:
  PatchSampler(PatchSamplerOptions options, transforms::AugmentOptions augment);
  /// A patch from case `c`; every random decision comes from `rng`.
  transforms::Sample sample(const TrainingCase& c, Rng& rng) const;
  /// The patch at start position [z, y, x] (no randomness, no scaling): used by tests and the teacher cache check.
  transforms::Sample crop(const TrainingCase& c, const std::vector<int64_t>& start) const;
  const PatchSamplerOptions& options() const { return options_; }

 private:
  std::vector<int64_t> choose_start(const TrainingCase& c, const std::vector<int64_t>& region, Rng& rng) const;
  PatchSamplerOptions options_;
  transforms::AugmentOptions augment_;
};

/// The part of extra map `extra` (at its factor f) under the patch that resamples case region [start, start +
/// region) into `size` voxels: [C, size / f] (size must be divisible by f).
torch::Tensor extra_patch(const transforms::ExtraMap& extra, const std::vector<int64_t>& start,
                          const std::vector<int64_t>& region, const std::vector<int64_t>& size);

/// Crops [C, Z, Y, X] at `start` with `size`, zero-padding where the window leaves the tensor.
torch::Tensor crop_padded(const torch::Tensor& t, const std::vector<int64_t>& start, const std::vector<int64_t>& size);

}  // namespace teachformer::data
