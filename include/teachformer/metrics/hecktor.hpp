// HECKTOR 2021 evaluation region: the crop of label maps to the voxels whose centres lie inside a patient's
// bounding box (world mm, LPS; read by data::read_bounding_boxes).
#pragma once

#include <torch/types.h>

#include "teachformer/core/geometry.hpp"
#include "teachformer/transforms/case_geometry.hpp"

namespace teachformer::metrics {

/// uint8 [Z, Y, X] mask of the voxels of `grid` whose centres lie inside `box` (faces inclusive, 1e-6 mm slack).
torch::Tensor voxels_inside(const Grid& grid, const transforms::BoundingBox& box);

/// Label map restricted to the box: `labels` ([Z, Y, X] or [1, Z, Y, X]) cropped to the index bounding box of
/// voxels_inside(grid, box) with voxels outside the box set to 0; returns uint8 [Z', Y', X'] (possibly with a zero
/// extent when the box misses the image). `inside_voxels` (optional) receives the number of voxels inside.
torch::Tensor crop_to_world_box(const torch::Tensor& labels, const Grid& grid, const transforms::BoundingBox& box,
                                int64_t* inside_voxels = nullptr);

}  // namespace teachformer::metrics
