#include "teachformer/core/geometry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "teachformer/core/error.hpp"

namespace teachformer {

Mat3 invert(const Mat3& m) {
  const double det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
                     m[2] * (m[3] * m[7] - m[4] * m[6]);
  TF_CHECK(std::abs(det) > 1e-12, InvalidArgument, "invert: matrix is singular (determinant ", det, ")");
  const double s = 1.0 / det;
  return {(m[4] * m[8] - m[5] * m[7]) * s, (m[2] * m[7] - m[1] * m[8]) * s, (m[1] * m[5] - m[2] * m[4]) * s,
          (m[5] * m[6] - m[3] * m[8]) * s, (m[0] * m[8] - m[2] * m[6]) * s, (m[2] * m[3] - m[0] * m[5]) * s,
          (m[3] * m[7] - m[4] * m[6]) * s, (m[1] * m[6] - m[0] * m[7]) * s, (m[0] * m[4] - m[1] * m[3]) * s};
}

Vec3 multiply(const Mat3& m, const Vec3& v) {
  return {m[0] * v[0] + m[1] * v[1] + m[2] * v[2], m[3] * v[0] + m[4] * v[1] + m[5] * v[2],
          m[6] * v[0] + m[7] * v[1] + m[8] * v[2]};
}

Mat3 multiply(const Mat3& a, const Mat3& b) {
  Mat3 r{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) r[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
  return r;
}

Vec3 Geometry::index_to_world(const Vec3& index) const {
  const Vec3 scaled{index[0] * spacing[0], index[1] * spacing[1], index[2] * spacing[2]};
  const Vec3 d = multiply(direction, scaled);
  return {origin[0] + d[0], origin[1] + d[1], origin[2] + d[2]};
}

Vec3 Geometry::world_to_index(const Vec3& world) const {
  const Vec3 rel{world[0] - origin[0], world[1] - origin[1], world[2] - origin[2]};
  const Vec3 d = multiply(invert(direction), rel);
  return {d[0] / spacing[0], d[1] / spacing[1], d[2] / spacing[2]};
}

bool Geometry::approx_equal(const Geometry& other, double tol_mm, double tol_dir) const {
  for (int a = 0; a < 3; ++a) {
    if (std::abs(spacing[a] - other.spacing[a]) > tol_mm) return false;
    if (std::abs(origin[a] - other.origin[a]) > tol_mm) return false;
  }
  for (int i = 0; i < 9; ++i)
    if (std::abs(direction[i] - other.direction[i]) > tol_dir) return false;
  return true;
}

namespace {
std::string fmt3(const Vec3& v) {
  std::ostringstream os;
  os.precision(6);
  os << '[' << v[0] << ", " << v[1] << ", " << v[2] << ']';
  return os.str();
}
}  // namespace

std::string Geometry::to_string() const {
  std::ostringstream os;
  os.precision(6);
  os << "spacing " << fmt3(spacing) << " origin " << fmt3(origin) << " direction [";
  for (int i = 0; i < 9; ++i) os << (i ? ", " : "") << direction[i];
  os << ']';
  return os.str();
}

std::pair<Vec3, Vec3> Grid::world_bounds() const {
  Vec3 lo{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(),
          std::numeric_limits<double>::infinity()};
  Vec3 hi{-lo[0], -lo[1], -lo[2]};
  for (int corner = 0; corner < 8; ++corner) {
    const Vec3 idx{(corner & 1) ? double(size[0] - 1) : 0.0, (corner & 2) ? double(size[1] - 1) : 0.0,
                   (corner & 4) ? double(size[2] - 1) : 0.0};
    const Vec3 w = geometry.index_to_world(idx);
    for (int a = 0; a < 3; ++a) {
      lo[a] = std::min(lo[a], w[a]);
      hi[a] = std::max(hi[a], w[a]);
    }
  }
  return {lo, hi};
}

bool Grid::approx_equal(const Grid& other, double tol_mm, double tol_dir) const {
  return size == other.size && geometry.approx_equal(other.geometry, tol_mm, tol_dir);
}

std::string Grid::to_string() const {
  std::ostringstream os;
  os << "size [" << size[0] << ", " << size[1] << ", " << size[2] << "] " << geometry.to_string();
  return os.str();
}

}  // namespace teachformer
