// Exact Euclidean distance transform (Felzenszwalb & Huttenlocher 2012, separable lower envelopes of parabolas)
// on raw [Z, Y, X] buffers with anisotropic spacing. Parallel over lines with at::parallel_for.
#pragma once
#include <cstdint>

#include "metrics/detail/mask.hpp"
#include "teachformer/core/geometry.hpp"

namespace teachformer::metrics::detail {

/// Writes into `out` (d.numel() doubles) the squared distance in mm^2 from each voxel centre to the nearest
/// voxel centre with features[i] != 0, using `spacing` (x, y, z) in mm; +inf everywhere when there is no
/// feature voxel. Exact (no chamfer approximation); O(numel) time.
void squared_edt(const uint8_t* features, const Dims& d, const Vec3& spacing, double* out);

}  // namespace teachformer::metrics::detail
