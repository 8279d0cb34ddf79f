// Exact Euclidean distance transforms with anisotropic spacing (Felzenszwalb-Huttenlocher separable algorithm).
#pragma once
#include <torch/types.h>

#include "teachformer/core/geometry.hpp"

namespace teachformer::metrics {

/// For every voxel of `features` ([Z, Y, X] or [1, Z, Y, X], non-zero = feature), the squared Euclidean distance
/// in mm^2 between its centre and the nearest feature voxel centre, with `spacing` in (x, y, z) order (mm).
/// Returns float64 [Z, Y, X]; +inf everywhere when there is no feature voxel. Exact, linear time, parallel over
/// lines (at::parallel_for).
torch::Tensor squared_distance_transform(const torch::Tensor& features, const Vec3& spacing);

/// Square root of squared_distance_transform (mm).
torch::Tensor distance_transform(const torch::Tensor& features, const Vec3& spacing);

}  // namespace teachformer::metrics
