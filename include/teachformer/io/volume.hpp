// Volume: a multi-channel 3D image tensor with its geometry. Axis order and units: see core/geometry.hpp.
#pragma once
#include <torch/types.h>

#include "teachformer/core/geometry.hpp"

namespace teachformer::io {

/// An image or label map on one grid.
struct Volume {
  /// [C, Z, Y, X]: float32 for images, uint8 for labels. Element [c, k, j, i] is ITK index (i, j, k).
  torch::Tensor data;
  /// Spacing/origin/direction of the grid (mm, LPS).
  Geometry geometry;

  /// Number of channels C.
  int64_t channels() const { return data.size(0); }
  /// Voxel counts in (x, y, z) order.
  Size3 size() const { return {data.size(3), data.size(2), data.size(1)}; }
  /// Size plus geometry.
  Grid grid() const { return Grid{size(), geometry}; }
};

/// Tensor shape [Z, Y, X] for a grid size in (x, y, z) order.
inline std::vector<int64_t> spatial_shape(const Size3& size) { return {size[2], size[1], size[0]}; }

}  // namespace teachformer::io
