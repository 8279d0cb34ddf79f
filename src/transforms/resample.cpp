#include "teachformer/transforms/resample.hpp"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "teachformer/core/error.hpp"

namespace teachformer::transforms {
namespace {

// Continuous source index p = m * target_index + t (both in (i, j, k) order).
struct IndexMap {
  double m[9];
  double t[3];
};

IndexMap index_map(const Geometry& source, const Geometry& target) {
  const Mat3 inv_src = invert(source.direction);
  const Mat3 b = multiply(inv_src, target.direction);
  IndexMap map{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) map.m[r * 3 + c] = b[r * 3 + c] * target.spacing[c] / source.spacing[r];
  const Vec3 delta{target.origin[0] - source.origin[0], target.origin[1] - source.origin[1],
                   target.origin[2] - source.origin[2]};
  const Vec3 d = multiply(inv_src, delta);
  for (int r = 0; r < 3; ++r) map.t[r] = d[r] / source.spacing[r];
  return map;
}

// Inside the source voxels' extent (with a hair of slack for exactly coincident edges).
constexpr double kEdgeSlack = 1e-6;
inline bool inside(double p, int64_t n) { return p >= -0.5 - kEdgeSlack && p <= double(n) - 0.5 + kEdgeSlack; }
inline double clampd(double p, int64_t n) { return std::min(std::max(p, 0.0), double(n - 1)); }

int64_t grain_for(int64_t slice_voxels) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, slice_voxels)); }

void check_input(const torch::Tensor& data, const Geometry& source, const Grid& target) {
  TF_CHECK(data.defined() && data.dim() == 4, InvalidArgument, "resample: data must be [C, Z, Y, X], got ",
           data.defined() ? data.sizes().vec() : std::vector<int64_t>{});
  TF_CHECK(data.numel() > 0, InvalidArgument, "resample: data is empty, shape ", data.sizes().vec());
  for (int a = 0; a < 3; ++a) {
    TF_CHECK(target.size[a] >= 1, InvalidArgument, "resample: target size must be positive, got ", target.size);
    TF_CHECK(source.spacing[a] > 0 && target.geometry.spacing[a] > 0, InvalidArgument,
             "resample: spacings must be positive, got source ", source.spacing, " target ", target.geometry.spacing);
  }
}

// Calls fn(k, j, p0, step) for every output row: p0 = source index of voxel (0, j, k), step = change per i.
template <typename Fn>
void for_each_row(const IndexMap& map, const Size3& out_size, Fn&& fn) {
  const int64_t nx = out_size[0], ny = out_size[1], nz = out_size[2];
  at::parallel_for(0, nz, grain_for(nx * ny), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      for (int64_t j = 0; j < ny; ++j) {
        double p0[3];
        for (int r = 0; r < 3; ++r) p0[r] = map.m[r * 3 + 1] * double(j) + map.m[r * 3 + 2] * double(k) + map.t[r];
        const double step[3] = {map.m[0], map.m[3], map.m[6]};
        fn(k, j, p0, step);
      }
    }
  });
}

torch::Tensor resample_nearest(const torch::Tensor& data_in, const IndexMap& map, const Grid& target, double fill) {
  const auto data = data_in.contiguous();
  const int64_t c_n = data.size(0), sz = data.size(1), sy = data.size(2), sx = data.size(3);
  const Size3 out_size = target.size;
  auto out = torch::empty({c_n, out_size[2], out_size[1], out_size[0]}, data.options());
  const int64_t in_plane = sz * sy * sx, out_plane = out_size[0] * out_size[1] * out_size[2];
  AT_DISPATCH_ALL_TYPES_AND(at::ScalarType::Bool, data.scalar_type(), "resample_nearest", [&] {
    const scalar_t* src = data.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    const auto fill_value = static_cast<scalar_t>(fill);
    for_each_row(map, out_size, [&](int64_t k, int64_t j, const double* p0, const double* step) {
      const int64_t row = (k * out_size[1] + j) * out_size[0];
      for (int64_t i = 0; i < out_size[0]; ++i) {
        const double px = p0[0] + step[0] * double(i), py = p0[1] + step[1] * double(i),
                     pz = p0[2] + step[2] * double(i);
        if (!inside(px, sx) || !inside(py, sy) || !inside(pz, sz)) {
          for (int64_t c = 0; c < c_n; ++c) dst[c * out_plane + row + i] = fill_value;
          continue;
        }
        // Clamped coordinates are >= 0, so truncation is floor (and avoids a libm call per voxel).
        const int64_t ix = int64_t(clampd(px, sx) + 0.5), iy = int64_t(clampd(py, sy) + 0.5),
                      iz = int64_t(clampd(pz, sz) + 0.5);
        const int64_t off = (std::min(iz, sz - 1) * sy + std::min(iy, sy - 1)) * sx + std::min(ix, sx - 1);
        for (int64_t c = 0; c < c_n; ++c) dst[c * out_plane + row + i] = src[c * in_plane + off];
      }
    });
  });
  return out;
}

torch::Tensor resample_linear(const torch::Tensor& data_in, const IndexMap& map, const Grid& target, double fill) {
  const auto data = data_in.to(torch::kFloat).contiguous();
  const int64_t c_n = data.size(0), sz = data.size(1), sy = data.size(2), sx = data.size(3);
  const Size3 out_size = target.size;
  auto out = torch::empty({c_n, out_size[2], out_size[1], out_size[0]}, data.options());
  const int64_t in_plane = sz * sy * sx, out_plane = out_size[0] * out_size[1] * out_size[2];
  const float* src = data.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const auto fill_value = static_cast<float>(fill);
  for_each_row(map, out_size, [&](int64_t k, int64_t j, const double* p0, const double* step) {
    const int64_t row = (k * out_size[1] + j) * out_size[0];
    for (int64_t i = 0; i < out_size[0]; ++i) {
      double p[3] = {p0[0] + step[0] * double(i), p0[1] + step[1] * double(i), p0[2] + step[2] * double(i)};
      if (!inside(p[0], sx) || !inside(p[1], sy) || !inside(p[2], sz)) {
        for (int64_t c = 0; c < c_n; ++c) dst[c * out_plane + row + i] = fill_value;
        continue;
      }
      const int64_t n[3] = {sx, sy, sz};
      int64_t lo[3], hi[3];
      double w[3];
      for (int a = 0; a < 3; ++a) {
        const double q = clampd(p[a], n[a]);
        lo[a] = std::min<int64_t>(int64_t(q), n[a] - 1);  // q >= 0: truncation is floor
        hi[a] = std::min<int64_t>(lo[a] + 1, n[a] - 1);
        w[a] = q - double(lo[a]);
      }
      const int64_t o000 = (lo[2] * sy + lo[1]) * sx + lo[0], o001 = (lo[2] * sy + lo[1]) * sx + hi[0];
      const int64_t o010 = (lo[2] * sy + hi[1]) * sx + lo[0], o011 = (lo[2] * sy + hi[1]) * sx + hi[0];
      const int64_t o100 = (hi[2] * sy + lo[1]) * sx + lo[0], o101 = (hi[2] * sy + lo[1]) * sx + hi[0];
      const int64_t o110 = (hi[2] * sy + hi[1]) * sx + lo[0], o111 = (hi[2] * sy + hi[1]) * sx + hi[0];
      const double wx = w[0], wy = w[1], wz = w[2];
      for (int64_t c = 0; c < c_n; ++c) {
        const float* s = src + c * in_plane;
        const double v00 = s[o000] + wx * (s[o001] - s[o000]);
        const double v01 = s[o010] + wx * (s[o011] - s[o010]);
        const double v10 = s[o100] + wx * (s[o101] - s[o100]);
        const double v11 = s[o110] + wx * (s[o111] - s[o110]);
        const double v0 = v00 + wy * (v01 - v00);
        const double v1 = v10 + wy * (v11 - v10);
        dst[c * out_plane + row + i] = static_cast<float>(v0 + wz * (v1 - v0));
      }
    }
  });
  return out;
}

// Cubic B-spline interpolation (Unser, Aldroubi & Eden 1991): the samples are first turned into B-spline
// coefficients by a causal + anti-causal recursive filter along each axis (pole sqrt(3) - 2, mirror-symmetric
// boundaries), so that the spline passes through every sample exactly.
constexpr double kPole = -0.26794919243112270;  // sqrt(3) - 2

void prefilter_line(double* c, int64_t n) {
  if (n < 2) return;
  const double z = kPole;
  const double gain = (1.0 - z) * (1.0 - 1.0 / z);
  for (int64_t i = 0; i < n; ++i) c[i] *= gain;
  // Causal initialisation for a mirror-symmetric extension.
  const int64_t horizon = int64_t(std::ceil(std::log(1e-12) / std::log(std::abs(z))));
  double sum;
  if (horizon < n) {
    double zk = z;
    sum = c[0];
    for (int64_t k = 1; k < horizon; ++k) {
      sum += zk * c[k];
      zk *= z;
    }
  } else {
    double zk = z;
    const double iz = 1.0 / z;
    const double zn = std::pow(z, double(n - 1));
    double z2n = zn * zn * iz;
    sum = c[0] + zn * c[n - 1];
    for (int64_t k = 1; k < n - 1; ++k) {
      sum += (zk + z2n) * c[k];
      zk *= z;
      z2n *= iz;
    }
    sum /= (1.0 - zn * zn);
  }
  c[0] = sum;
  for (int64_t i = 1; i < n; ++i) c[i] += z * c[i - 1];
  c[n - 1] = (z / (z * z - 1.0)) * (z * c[n - 2] + c[n - 1]);
  for (int64_t i = n - 2; i >= 0; --i) c[i] = z * (c[i + 1] - c[i]);
}

// Filters every line of a [Z, Y, X] block along dimension `axis` (0 = x, 1 = y, 2 = z), in place.
void prefilter_axis(float* data, int64_t sz, int64_t sy, int64_t sx, int axis) {
  const int64_t n = axis == 0 ? sx : axis == 1 ? sy : sz;
  const int64_t stride = axis == 0 ? 1 : axis == 1 ? sx : sx * sy;
  const int64_t lines = sz * sy * sx / n;
  at::parallel_for(0, lines, std::max<int64_t>(1, 4096 / n), [&](int64_t l0, int64_t l1) {
    std::vector<double> line(size_t(n), 0.0);
    for (int64_t l = l0; l < l1; ++l) {
      int64_t base;
      if (axis == 0) base = l * sx;
      else if (axis == 1) base = (l / sx) * sx * sy + (l % sx);
      else base = l;
      for (int64_t i = 0; i < n; ++i) line[size_t(i)] = data[base + i * stride];
      prefilter_line(line.data(), n);
      for (int64_t i = 0; i < n; ++i) data[base + i * stride] = static_cast<float>(line[size_t(i)]);
    }
  });
}

inline int64_t mirror(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * (n - 1);
  i = ((i % period) + period) % period;
  return i < n ? i : period - i;
}

inline void bspline_weights(double t, double w[4]) {
  const double t2 = t * t, t3 = t2 * t;
  w[0] = (1.0 - t) * (1.0 - t) * (1.0 - t) / 6.0;
  w[1] = (4.0 - 6.0 * t2 + 3.0 * t3) / 6.0;
  w[2] = (1.0 + 3.0 * t + 3.0 * t2 - 3.0 * t3) / 6.0;
  w[3] = t3 / 6.0;
}

torch::Tensor resample_bspline(const torch::Tensor& data_in, const IndexMap& map, const Grid& target, double fill) {
  auto coeffs = data_in.to(torch::kFloat).contiguous().clone();
  const int64_t c_n = coeffs.size(0), sz = coeffs.size(1), sy = coeffs.size(2), sx = coeffs.size(3);
  const int64_t in_plane = sz * sy * sx;
  for (int64_t c = 0; c < c_n; ++c)
    for (int axis = 0; axis < 3; ++axis) prefilter_axis(coeffs.data_ptr<float>() + c * in_plane, sz, sy, sx, axis);
  const Size3 out_size = target.size;
  auto out = torch::empty({c_n, out_size[2], out_size[1], out_size[0]}, coeffs.options());
  const int64_t out_plane = out_size[0] * out_size[1] * out_size[2];
  const float* src = coeffs.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const auto fill_value = static_cast<float>(fill);
  for_each_row(map, out_size, [&](int64_t k, int64_t j, const double* p0, const double* step) {
    const int64_t row = (k * out_size[1] + j) * out_size[0];
    for (int64_t i = 0; i < out_size[0]; ++i) {
      const double p[3] = {p0[0] + step[0] * double(i), p0[1] + step[1] * double(i), p0[2] + step[2] * double(i)};
      if (!inside(p[0], sx) || !inside(p[1], sy) || !inside(p[2], sz)) {
        for (int64_t c = 0; c < c_n; ++c) dst[c * out_plane + row + i] = fill_value;
        continue;
      }
      const int64_t n[3] = {sx, sy, sz};
      int64_t idx[3][4];
      double w[3][4];
      for (int a = 0; a < 3; ++a) {
        const double q = clampd(p[a], n[a]);
        const double f = double(int64_t(q));  // q >= 0: truncation is floor
        bspline_weights(q - f, w[a]);
        for (int o = 0; o < 4; ++o) idx[a][o] = mirror(int64_t(f) - 1 + o, n[a]);
      }
      for (int64_t c = 0; c < c_n; ++c) {
        const float* s = src + c * in_plane;
        double v = 0.0;
        for (int oz = 0; oz < 4; ++oz) {
          double vy = 0.0;
          for (int oy = 0; oy < 4; ++oy) {
            const float* line = s + (idx[2][oz] * sy + idx[1][oy]) * sx;
            const double vx = w[0][0] * line[idx[0][0]] + w[0][1] * line[idx[0][1]] + w[0][2] * line[idx[0][2]] +
                              w[0][3] * line[idx[0][3]];
            vy += w[1][oy] * vx;
          }
          v += w[2][oz] * vy;
        }
        dst[c * out_plane + row + i] = static_cast<float>(v);
      }
    }
  });
  return out;
}

}  // namespace

std::string to_string(Interpolation interpolation) {
  switch (interpolation) {
    case Interpolation::Nearest: return "nearest";
    case Interpolation::Linear: return "linear";
    case Interpolation::BSpline: return "bspline";
  }
  return "unknown";
}

Interpolation interpolation_from_string(const std::string& name, const std::string& context) {
  if (name == "nearest") return Interpolation::Nearest;
  if (name == "linear") return Interpolation::Linear;
  if (name == "bspline") return Interpolation::BSpline;
  TF_THROW(InvalidArgument, context, ": unknown interpolation '", name, "'; expected nearest, linear or bspline");
}

torch::Tensor resample(const torch::Tensor& data, const Geometry& source, const Grid& target,
                       Interpolation interpolation, double fill) {
  check_input(data, source, target);
  const auto cpu = data.detach().to(torch::kCPU);
  const IndexMap map = index_map(source, target.geometry);
  switch (interpolation) {
    case Interpolation::Nearest: return resample_nearest(cpu, map, target, fill);
    case Interpolation::Linear: return resample_linear(cpu, map, target, fill);
    case Interpolation::BSpline: return resample_bspline(cpu, map, target, fill);
  }
  TF_THROW(InternalError, "resample: unhandled interpolation");
}

io::Volume resample(const io::Volume& volume, const Grid& target, Interpolation interpolation, double fill) {
  return io::Volume{resample(volume.data, volume.geometry, target, interpolation, fill), target.geometry};
}

Grid grid_with_spacing(const Grid& grid, const Vec3& spacing) {
  Grid out;
  out.geometry.direction = grid.geometry.direction;
  for (int a = 0; a < 3; ++a) {
    TF_CHECK(std::isfinite(spacing[a]) && spacing[a] > 0, InvalidArgument,
             "target spacing must be positive in every axis, got ", spacing);
    out.size[a] = std::max<int64_t>(
        1, int64_t(std::llround(double(grid.size[a]) * grid.geometry.spacing[a] / spacing[a])));
    out.geometry.spacing[a] = spacing[a];
  }
  const Vec3 centre = grid.geometry.index_to_world(
      {0.5 * double(grid.size[0] - 1), 0.5 * double(grid.size[1] - 1), 0.5 * double(grid.size[2] - 1)});
  const Vec3 half{0.5 * double(out.size[0] - 1) * spacing[0], 0.5 * double(out.size[1] - 1) * spacing[1],
                  0.5 * double(out.size[2] - 1) * spacing[2]};
  const Vec3 d = multiply(out.geometry.direction, half);
  for (int a = 0; a < 3; ++a) out.geometry.origin[a] = centre[a] - d[a];
  return out;
}

GridDifference grid_difference(const Grid& a, const Grid& b) {
  GridDifference d;
  d.size_differs = a.size != b.size;
  for (int i = 0; i < 3; ++i) {
    d.spacing_relative = std::max(d.spacing_relative, std::abs(a.geometry.spacing[i] - b.geometry.spacing[i]) /
                                                          std::max(a.geometry.spacing[i], b.geometry.spacing[i]));
    d.origin_mm = std::max(d.origin_mm, std::abs(a.geometry.origin[i] - b.geometry.origin[i]));
  }
  const Vec3 idx = b.geometry.world_to_index(a.geometry.origin);
  for (int i = 0; i < 3; ++i) d.origin_voxels = std::max(d.origin_voxels, std::abs(idx[i]));
  for (int i = 0; i < 9; ++i)
    d.direction = std::max(d.direction, std::abs(a.geometry.direction[i] - b.geometry.direction[i]));
  return d;
}

bool grids_match(const Grid& a, const Grid& b, double tolerance_voxels, double direction_tolerance) {
  const GridDifference d = grid_difference(a, b);
  return !d.size_differs && d.spacing_relative <= 1e-5 && d.origin_voxels <= tolerance_voxels &&
         d.direction <= direction_tolerance;
}

std::pair<Vec3, Vec3> grid_extent(const Grid& grid) {
  Vec3 lo{INFINITY, INFINITY, INFINITY};
  Vec3 hi{-INFINITY, -INFINITY, -INFINITY};
  for (int corner = 0; corner < 8; ++corner) {
    const Vec3 idx{(corner & 1) ? double(grid.size[0]) - 0.5 : -0.5, (corner & 2) ? double(grid.size[1]) - 0.5 : -0.5,
                   (corner & 4) ? double(grid.size[2]) - 0.5 : -0.5};
    const Vec3 w = grid.geometry.index_to_world(idx);
    for (int a = 0; a < 3; ++a) {
      lo[a] = std::min(lo[a], w[a]);
      hi[a] = std::max(hi[a], w[a]);
    }
  }
  return {lo, hi};
}

torch::Tensor inside_mask(const Grid& grid, const Grid& target) {
  const IndexMap map = index_map(target.geometry, grid.geometry);
  auto out = torch::empty({grid.size[2], grid.size[1], grid.size[0]}, torch::kBool);
  bool* dst = out.data_ptr<bool>();
  const int64_t tx = target.size[0], ty = target.size[1], tz = target.size[2];
  for_each_row(map, grid.size, [&](int64_t k, int64_t j, const double* p0, const double* step) {
    const int64_t row = (k * grid.size[1] + j) * grid.size[0];
    for (int64_t i = 0; i < grid.size[0]; ++i)
      dst[row + i] = inside(p0[0] + step[0] * double(i), tx) && inside(p0[1] + step[1] * double(i), ty) &&
                     inside(p0[2] + step[2] * double(i), tz);
  });
  return out;
}

}  // namespace teachformer::transforms
