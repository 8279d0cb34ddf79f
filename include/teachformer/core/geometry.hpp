// Geometry of a 3D image grid: axis order, units and the index <-> world mapping, stated once for the project.
//
// Conventions (the same everywhere in TeachFormer):
//  * World coordinates are in millimetres, in ITK's LPS frame (x grows to the patient's Left, y to Posterior,
//    z to Superior), exactly as ITK reads NIfTI/MHA/NRRD headers.
//  * Every physical array (spacing, origin, size, index) is in ITK order (x, y, z) = index (i, j, k).
//  * Tensors hold volumes as [C, Z, Y, X] (or [B, C, Z, Y, X]): the ITK index (i, j, k) is tensor element
//    [c, k, j, i]. Use `tensor_dim_of_axis` rather than hard-coding dims.
//  * `direction` is row-major 3x3; column a is the world direction of index axis a.
//    world = origin + direction * diag(spacing) * index.
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace teachformer {

/// A physical 3-vector in (x, y, z) order, millimetres.
using Vec3 = std::array<double, 3>;
/// A row-major 3x3 matrix.
using Mat3 = std::array<double, 9>;
/// Voxel counts or indices in (x, y, z) = (i, j, k) order.
using Size3 = std::array<int64_t, 3>;

/// Identity direction matrix.
inline constexpr Mat3 kIdentityDirection{1, 0, 0, 0, 1, 0, 0, 0, 1};

/// Tensor dimension (in a [C, Z, Y, X] tensor) that holds physical axis `axis` (0 = x, 1 = y, 2 = z).
constexpr int64_t tensor_dim_of_axis(int axis) { return 3 - axis; }

/// Spacing (mm), origin (mm, LPS, centre of voxel (0,0,0)) and direction cosines of an image grid.
struct Geometry {
  /// Voxel size along index axes i, j, k in mm. Default 1 mm isotropic.
  Vec3 spacing{1.0, 1.0, 1.0};
  /// World position (mm, LPS) of the centre of voxel (0, 0, 0).
  Vec3 origin{0.0, 0.0, 0.0};
  /// Row-major direction cosines; column a is the world direction of index axis a.
  Mat3 direction = kIdentityDirection;

  /// World position (mm) of a continuous index (i, j, k).
  Vec3 index_to_world(const Vec3& index) const;
  /// Continuous index (i, j, k) of a world position (mm).
  Vec3 world_to_index(const Vec3& world) const;
  /// True when spacing, origin (both within `tol_mm`) and direction (within `tol_dir`) agree.
  bool approx_equal(const Geometry& other, double tol_mm = 1e-4, double tol_dir = 1e-5) const;
  /// "spacing [..] origin [..] direction [..]" for messages.
  std::string to_string() const;
};

/// A sampled grid: voxel counts plus geometry.
struct Grid {
  /// Voxel counts (x, y, z).
  Size3 size{0, 0, 0};
  /// Spacing, origin and direction.
  Geometry geometry;
  /// Number of voxels.
  int64_t numel() const { return size[0] * size[1] * size[2]; }
  /// World-space axis-aligned bounding box (min, max) of the voxel centres.
  std::pair<Vec3, Vec3> world_bounds() const;
  /// Same size and approximately equal geometry.
  bool approx_equal(const Grid& other, double tol_mm = 1e-4, double tol_dir = 1e-5) const;
  std::string to_string() const;
};

/// Inverse of a 3x3 matrix (throws InvalidArgument when singular).
Mat3 invert(const Mat3& m);
/// m * v.
Vec3 multiply(const Mat3& m, const Vec3& v);
/// Row-major product a * b.
Mat3 multiply(const Mat3& a, const Mat3& b);

}  // namespace teachformer
