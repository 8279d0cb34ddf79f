// Resampling in physical space: values of a volume on one grid evaluated at the voxel centres of another grid,
// through the world (mm, LPS) coordinates of both, so spacing, origin and direction matrices are all honoured.
// Our own code on tensors (no ITK filters): a direct loop over output voxels, parallel over output slices.
//
// Out-of-grid rule: a target voxel whose centre maps to continuous source index p with -0.5 <= p <= n - 0.5 on
// every axis (i.e. inside the source voxels' extent) takes interpolated values (p clamped to [0, n - 1]);
// any other voxel gets the fill value.
#pragma once
#include <string>

#include <torch/types.h>

#include "teachformer/core/geometry.hpp"
#include "teachformer/io/volume.hpp"

namespace teachformer::transforms {

/// How values between source voxel centres are computed.
enum class Interpolation {
  Nearest,  ///< value of the nearest voxel (labels); keeps the input dtype
  Linear,   ///< trilinear (images); float32 output
  BSpline,  ///< cubic B-spline with exact interpolating prefilter (mirror boundaries); float32 output
};

/// "nearest", "linear" or "bspline".
std::string to_string(Interpolation interpolation);
/// Parses "nearest", "linear" or "bspline" (InvalidArgument listing them otherwise; `context` names the option).
Interpolation interpolation_from_string(const std::string& name, const std::string& context = "interpolation");

/// Resamples `data` [C, Z, Y, X] (any real dtype), whose voxels lie on `source` geometry, onto `target`.
/// Returns [C, Zt, Yt, Xt]: same dtype as `data` for Nearest, float32 otherwise. Voxels outside the source
/// extent get `fill`. Uses at::parallel_for over output slices.
torch::Tensor resample(const torch::Tensor& data, const Geometry& source, const Grid& target,
                       Interpolation interpolation, double fill = 0.0);
/// `resample` on a Volume; the result carries `target.geometry`.
io::Volume resample(const io::Volume& volume, const Grid& target, Interpolation interpolation, double fill = 0.0);

/// A grid covering the same physical extent (voxel edges) as `grid` with voxel size `spacing` (mm, x y z):
/// size = max(1, round(size * old_spacing / spacing)) per axis, same direction, centred on the same point.
Grid grid_with_spacing(const Grid& grid, const Vec3& spacing);

/// True when `a` and `b` have the same size and spacing (relative 1e-6), their origins differ by at most
/// `tolerance_voxels` voxels on every axis and their direction cosines by at most `direction_tolerance`:
/// such a grid is snapped (taken as identical) instead of being resampled.
bool grids_match(const Grid& a, const Grid& b, double tolerance_voxels = 0.05, double direction_tolerance = 1e-4);

/// Largest |difference| of origins in voxels of `b` (per axis max) and of direction cosines, for messages.
struct GridDifference {
  /// True when sizes differ.
  bool size_differs = false;
  /// Largest relative spacing difference.
  double spacing_relative = 0.0;
  /// Largest origin difference in mm.
  double origin_mm = 0.0;
  /// Largest origin difference in voxels of the second grid.
  double origin_voxels = 0.0;
  /// Largest direction cosine difference.
  double direction = 0.0;
};
/// Differences between two grids.
GridDifference grid_difference(const Grid& a, const Grid& b);

/// World-space axis-aligned box (mm, LPS) covered by the grid's voxels (voxel edges, not centres).
std::pair<Vec3, Vec3> grid_extent(const Grid& grid);

/// Boolean mask [Z, Y, X] of the voxels of `grid` whose centres lie inside the extent of `target` (the voxels
/// that resampling onto `target` can see; used to count the lesions a crop keeps).
torch::Tensor inside_mask(const Grid& grid, const Grid& target);

}  // namespace teachformer::transforms
