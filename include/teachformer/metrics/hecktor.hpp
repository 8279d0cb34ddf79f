// HECKTOR 2021 evaluation region: the per-patient bounding boxes (CSV `PatientID,x1,x2,y1,y2,z1,z2`, world mm in
// LPS as ITK reads them, columns found by name) and the crop of label maps to the voxels whose centres lie inside.
#pragma once
#include <filesystem>
#include <map>
#include <string>

#include <torch/types.h>

#include "teachformer/core/geometry.hpp"

namespace teachformer::metrics {

/// An axis-aligned world box (mm, LPS); both faces inclusive.
struct WorldBox {
  /// (x1, y1, z1): the smaller corner.
  Vec3 min{0, 0, 0};
  /// (x2, y2, z2): the larger corner.
  Vec3 max{0, 0, 0};
};

/// Reads a HECKTOR bounding-box CSV. Columns PatientID, x1, x2, y1, y2, z1, z2 are found by name (others are
/// ignored); errors name the file, the line and the column. Swapped bounds (x1 > x2) are reordered.
std::map<std::string, WorldBox> read_bounding_boxes(const std::filesystem::path& csv);

/// uint8 [Z, Y, X] mask of the voxels of `grid` whose centres lie inside `box` (faces inclusive, 1e-6 mm slack).
torch::Tensor voxels_inside(const Grid& grid, const WorldBox& box);

/// Label map restricted to the box: `labels` ([Z, Y, X] or [1, Z, Y, X]) cropped to the index bounding box of
/// voxels_inside(grid, box) with voxels outside the box set to 0; returns uint8 [Z', Y', X'] (possibly with a zero
/// extent when the box misses the image). `inside_voxels` (optional) receives the number of voxels inside.
torch::Tensor crop_to_world_box(const torch::Tensor& labels, const Grid& grid, const WorldBox& box,
                                int64_t* inside_voxels = nullptr);

}  // namespace teachformer::metrics
