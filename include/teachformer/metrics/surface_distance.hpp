// Surface distances between two binary masks, by the two protocols in use:
//  * VoxelSurface (MONAI / nnU-Net / the "generic" protocol): the surface of a mask is the set of its voxels
//    removed by one 6-connected erosion (voxels on the volume border count as surface); distances run between
//    voxel centres; every surface voxel weighs the same.
//  * Surfels (DeepMind surface-distance, used by the official HECKTOR 2021 evaluator): surface points are the
//    voxel corners whose 2x2x2 neighbourhood is neither empty nor full; each carries the area (mm^2) of the
//    marching-cubes surface element of its neighbourhood code, and percentiles/means are area-weighted.
// Spacing is (x, y, z) in mm as in core/geometry.hpp; masks are [Z, Y, X]. Distances are exact (Euclidean distance
// transform restricted to the bounding box of both masks, which holds every surface point of either).
#pragma once
#include <array>
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/core/geometry.hpp"

namespace teachformer::metrics {

/// Surface representation and weighting.
enum class SurfaceMethod {
  VoxelSurface,  ///< MONAI's voxel surfaces, unweighted (generic protocol)
  Surfels,       ///< DeepMind's surface elements, area-weighted (hecktor2021 protocol)
};

/// "voxel" or "surfel".
std::string to_string(SurfaceMethod method);

/// Distances from each surface element of one mask to the surface of the other.
struct SurfaceDistances {
  /// Distance (mm) from every prediction surface element to the nearest reference surface element;
  /// +inf for all of them when the reference is empty.
  std::vector<double> pred_to_ref;
  /// Distance (mm) from every reference surface element to the nearest prediction surface element.
  std::vector<double> ref_to_pred;
  /// Area (mm^2) of each prediction surface element (Surfels), or 1 for each (VoxelSurface).
  std::vector<double> pred_weights;
  /// Area (mm^2) of each reference surface element (Surfels), or 1 for each (VoxelSurface).
  std::vector<double> ref_weights;
};

/// Surface distances between `pred` and `ref` ([Z, Y, X] or [1, Z, Y, X], non-zero = foreground, same shape),
/// `spacing` (x, y, z) in mm.
SurfaceDistances surface_distances(const torch::Tensor& pred, const torch::Tensor& ref, const Vec3& spacing,
                                   SurfaceMethod method = SurfaceMethod::VoxelSurface);

/// Area (mm^2) of the marching-cubes surface element of each 2x2x2 neighbourhood code, for `spacing` (x, y, z).
/// Bit 4*dz + 2*dy + dx of the code is set when the voxel at offset (dz, dy, dx) of the neighbourhood is inside.
/// Vertices sit at edge midpoints; each face with two diagonal inside corners separates them; each polygon is
/// triangulated as a fan. Codes 0 and 255 have area 0. Equal to DeepMind's table for every configuration whose
/// polygons are planar (all that occur on boxes, slabs and single voxels).
std::array<double, 256> surfel_area_table(const Vec3& spacing);

/// q-th percentile (q in [0, 100]) with linear interpolation between order statistics (numpy's default);
/// NaN for an empty list. Values must be finite.
double percentile_linear(std::vector<double> values, double q);

/// Area-weighted percentile of DeepMind's compute_robust_hausdorff: sort by distance, take the first distance
/// whose cumulative weight fraction reaches q / 100 (the last one if none does); +inf for an empty list.
double weighted_percentile(const std::vector<double>& values, const std::vector<double>& weights, double q);

}  // namespace teachformer::metrics
