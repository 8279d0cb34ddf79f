// Private: surface extraction and surface distances on raw cropped [Z, Y, X] 0/1 buffers.
#pragma once
#include <cstdint>

#include "metrics/detail/mask.hpp"
#include "teachformer/metrics/surface_distance.hpp"

namespace teachformer::metrics::detail {

/// Surface distances between two 0/1 masks of the same dims. Voxels outside the buffers count as background,
/// which is exact when the buffers cover the bounding box of both masks (and matches the convention that the
/// volume border is surface).
SurfaceDistances surface_distances_raw(const uint8_t* pred, const uint8_t* ref, const Dims& d, const Vec3& spacing,
                                       SurfaceMethod method);

}  // namespace teachformer::metrics::detail
