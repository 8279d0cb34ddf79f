#include "teachformer/metrics/surface_distance.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "metrics/detail/edt.hpp"
#include "metrics/detail/mask.hpp"
#include "metrics/detail/surface.hpp"
#include "teachformer/core/error.hpp"

namespace teachformer::metrics {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using detail::Dims;

/// Voxels of `m` with a 6-neighbour outside the mask or outside the buffer.
std::vector<uint8_t> voxel_surface(const uint8_t* m, const Dims& d) {
  std::vector<uint8_t> s(static_cast<size_t>(d.numel()), 0);
  const int64_t sy = d.x, sz = d.x * d.y;
  for (int64_t z = 0; z < d.z; ++z)
    for (int64_t y = 0; y < d.y; ++y)
      for (int64_t x = 0; x < d.x; ++x) {
        const int64_t i = z * sz + y * sy + x;
        if (!m[i]) continue;
        const bool interior = x > 0 && x + 1 < d.x && y > 0 && y + 1 < d.y && z > 0 && z + 1 < d.z && m[i - 1] &&
                              m[i + 1] && m[i - sy] && m[i + sy] && m[i - sz] && m[i + sz];
        s[i] = !interior;
      }
  return s;
}

/// Neighbourhood code of every voxel corner: corner (a, b, c) of the (z+1, y+1, x+1) grid gathers the voxels
/// (a-1+dz, b-1+dy, c-1+dx); bit 4*dz + 2*dy + dx is set when that voxel is inside.
std::vector<uint8_t> corner_codes(const uint8_t* m, const Dims& d, const Dims& c) {
  std::vector<uint8_t> codes(static_cast<size_t>(c.numel()), 0);
  for (int64_t z = 0; z < d.z; ++z)
    for (int64_t y = 0; y < d.y; ++y)
      for (int64_t x = 0; x < d.x; ++x) {
        if (!m[(z * d.y + y) * d.x + x]) continue;
        // Voxel (z, y, x) is offset (dz, dy, dx) of corner (z + 1 - dz, y + 1 - dy, x + 1 - dx).
        for (int k = 0; k < 8; ++k) {
          const int dz = (k >> 2) & 1, dy = (k >> 1) & 1, dx = k & 1;
          const int64_t a = z + 1 - dz, b = y + 1 - dy, cc = x + 1 - dx;
          codes[(a * c.y + b) * c.x + cc] |= static_cast<uint8_t>(1u << k);
        }
      }
  return codes;
}

/// For each point of `query` (non-zero entries, raster order), the distance (mm) to the nearest non-zero point of
/// `features`; +inf when `features` is empty.
std::vector<double> distances_to(const std::vector<uint8_t>& query, const std::vector<uint8_t>& features,
                                 const Dims& d, const Vec3& spacing, std::vector<double>& field) {
  std::vector<double> out;
  const int64_t n = d.numel();
  const int64_t count = std::count_if(query.begin(), query.end(), [](uint8_t v) { return v != 0; });
  out.reserve(static_cast<size_t>(count));
  if (count == 0) return out;
  const bool any = std::any_of(features.begin(), features.end(), [](uint8_t v) { return v != 0; });
  if (!any) {
    out.assign(static_cast<size_t>(count), kInf);
    return out;
  }
  field.resize(static_cast<size_t>(n));
  detail::squared_edt(features.data(), d, spacing, field.data());
  for (int64_t i = 0; i < n; ++i)
    if (query[i]) out.push_back(std::sqrt(field[i]));
  return out;
}

}  // namespace

std::string to_string(SurfaceMethod method) {
  return method == SurfaceMethod::VoxelSurface ? "voxel" : "surfel";
}

std::array<double, 256> surfel_area_table(const Vec3& spacing) {
  // Corners k = 4*dz + 2*dy + dx at physical offsets (dx*sx, dy*sy, dz*sz).
  auto corner_pos = [&](int k) {
    return Vec3{double(k & 1) * spacing[0], double((k >> 1) & 1) * spacing[1], double((k >> 2) & 1) * spacing[2]};
  };
  // The 12 cube edges, as corner pairs, and a lookup from an (ordered) pair to its edge id.
  std::vector<std::pair<int, int>> edges;
  int edge_id[8][8];
  for (auto& row : edge_id) std::fill(std::begin(row), std::end(row), -1);
  for (int k = 0; k < 8; ++k)
    for (int bit : {1, 2, 4})
      if (!(k & bit)) {
        edge_id[k][k | bit] = edge_id[k | bit][k] = static_cast<int>(edges.size());
        edges.emplace_back(k, k | bit);
      }
  // The 6 faces, each as 4 corners in cyclic order.
  std::vector<std::array<int, 4>> faces;
  for (int bit : {1, 2, 4}) {
    const int b1 = bit == 1 ? 2 : 1, b2 = bit == 4 ? 2 : 4;
    for (int v = 0; v < 2; ++v) {
      const int base = v ? bit : 0;
      faces.push_back({base, base | b1, base | b1 | b2, base | b2});
    }
  }
  std::vector<Vec3> midpoint(edges.size());
  for (size_t e = 0; e < edges.size(); ++e) {
    const Vec3 a = corner_pos(edges[e].first), b = corner_pos(edges[e].second);
    midpoint[e] = {(a[0] + b[0]) / 2, (a[1] + b[1]) / 2, (a[2] + b[2]) / 2};
  }
  auto triangle_area = [](const Vec3& a, const Vec3& b, const Vec3& c) {
    const Vec3 u{b[0] - a[0], b[1] - a[1], b[2] - a[2]}, v{c[0] - a[0], c[1] - a[1], c[2] - a[2]};
    const Vec3 n{u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]};
    return 0.5 * std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
  };

  std::array<double, 256> table{};
  for (int code = 1; code < 255; ++code) {
    auto inside = [&](int k) { return ((code >> k) & 1) != 0; };
    // Segments on each face join the midpoints of its cut edges.
    std::vector<std::vector<int>> neighbours(edges.size());
    for (const auto& f : faces) {
      int cut[4], ncut = 0;
      for (int i = 0; i < 4; ++i)
        if (inside(f[i]) != inside(f[(i + 1) % 4])) cut[ncut++] = i;
      auto join = [&](int i, int j) {
        const int a = edge_id[f[i]][f[(i + 1) % 4]], b = edge_id[f[j]][f[(j + 1) % 4]];
        neighbours[a].push_back(b);
        neighbours[b].push_back(a);
      };
      if (ncut == 2) {
        join(cut[0], cut[1]);
      } else if (ncut == 4) {
        // Two diagonal inside corners: cut each of them off (edges i-1 and i meet at corner i).
        for (int i = 0; i < 4; ++i)
          if (inside(f[i])) join((i + 3) % 4, i);
      }
    }
    // Every cut edge lies on two faces, so the segments close into loops; walk them and fan-triangulate.
    std::vector<bool> used(edges.size(), false);
    double area = 0;
    for (size_t start = 0; start < edges.size(); ++start) {
      if (neighbours[start].empty() || used[start]) continue;
      std::vector<int> loop{static_cast<int>(start)};
      used[start] = true;
      int prev = -1, cur = static_cast<int>(start);
      for (;;) {
        const int next = neighbours[cur][0] != prev ? neighbours[cur][0] : neighbours[cur][1];
        if (next == static_cast<int>(start) || used[next]) break;
        used[next] = true;
        loop.push_back(next);
        prev = cur;
        cur = next;
      }
      for (size_t t = 1; t + 1 < loop.size(); ++t)
        area += triangle_area(midpoint[loop[0]], midpoint[loop[t]], midpoint[loop[t + 1]]);
    }
    table[code] = area;
  }
  return table;
}

double percentile_linear(std::vector<double> values, double q) {
  TF_CHECK(q >= 0 && q <= 100, InvalidArgument, "percentile: q must lie in [0, 100], got ", q);
  if (values.empty()) return kNaN;
  const double h = double(values.size() - 1) * (q / 100.0);
  const auto lo = static_cast<size_t>(std::floor(h));
  const double frac = h - double(lo);
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double a = values[lo];
  if (frac == 0.0 || lo + 1 >= values.size()) return a;
  const double b = *std::min_element(values.begin() + lo + 1, values.end());
  return a + (b - a) * frac;
}

double weighted_percentile(const std::vector<double>& values, const std::vector<double>& weights, double q) {
  TF_CHECK(q >= 0 && q <= 100, InvalidArgument, "weighted_percentile: q must lie in [0, 100], got ", q);
  TF_CHECK(values.size() == weights.size(), InvalidArgument, "weighted_percentile: ", values.size(),
           " values but ", weights.size(), " weights");
  if (values.empty()) return kInf;
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return values[a] != values[b] ? values[a] < values[b] : weights[a] < weights[b];
  });
  std::vector<double> cumulative(values.size());
  double running = 0;
  for (size_t i = 0; i < order.size(); ++i) cumulative[i] = running += weights[order[i]];
  const double total = running;
  const double target = q / 100.0;
  for (size_t i = 0; i < order.size(); ++i)
    if (cumulative[i] / total >= target) return values[order[i]];
  return values[order.back()];
}

namespace detail {

SurfaceDistances surface_distances_raw(const uint8_t* pred, const uint8_t* ref, const Dims& d, const Vec3& spacing,
                                       SurfaceMethod method) {
  SurfaceDistances out;
  std::vector<double> field;
  if (method == SurfaceMethod::VoxelSurface) {
    const auto sp = voxel_surface(pred, d);
    const auto sr = voxel_surface(ref, d);
    out.pred_to_ref = distances_to(sp, sr, d, spacing, field);
    out.ref_to_pred = distances_to(sr, sp, d, spacing, field);
    out.pred_weights.assign(out.pred_to_ref.size(), 1.0);
    out.ref_weights.assign(out.ref_to_pred.size(), 1.0);
    return out;
  }
  const Dims c{d.z + 1, d.y + 1, d.x + 1};
  const auto code_p = corner_codes(pred, d, c);
  const auto code_r = corner_codes(ref, d, c);
  std::vector<uint8_t> border_p(code_p.size()), border_r(code_r.size());
  for (size_t i = 0; i < code_p.size(); ++i) {
    border_p[i] = code_p[i] != 0 && code_p[i] != 255;
    border_r[i] = code_r[i] != 0 && code_r[i] != 255;
  }
  out.pred_to_ref = distances_to(border_p, border_r, c, spacing, field);
  out.ref_to_pred = distances_to(border_r, border_p, c, spacing, field);
  const auto table = surfel_area_table(spacing);
  out.pred_weights.reserve(out.pred_to_ref.size());
  out.ref_weights.reserve(out.ref_to_pred.size());
  for (size_t i = 0; i < code_p.size(); ++i) {
    if (border_p[i]) out.pred_weights.push_back(table[code_p[i]]);
    if (border_r[i]) out.ref_weights.push_back(table[code_r[i]]);
  }
  return out;
}

}  // namespace detail

SurfaceDistances surface_distances(const torch::Tensor& pred, const torch::Tensor& ref, const Vec3& spacing,
                                   SurfaceMethod method) {
  TF_CHECK(pred.defined() && ref.defined(), InvalidArgument, "surface_distances: undefined mask");
  const torch::Tensor p = detail::as_label_tensor(pred.ne(0), "surface_distances: prediction");
  const torch::Tensor r = detail::as_label_tensor(ref.ne(0), "surface_distances: reference");
  TF_CHECK(p.sizes() == r.sizes(), InvalidArgument, "surface_distances: prediction shape ", p.sizes().vec(),
           " differs from reference shape ", r.sizes().vec());
  for (int a = 0; a < 3; ++a)
    TF_CHECK(std::isfinite(spacing[a]) && spacing[a] > 0, InvalidArgument,
             "surface_distances: spacing must be positive and finite, got ", spacing);
  const detail::Dims d = detail::dims_of(p);
  const uint8_t* pd = p.data_ptr<uint8_t>();
  const uint8_t* rd = r.data_ptr<uint8_t>();
  const detail::Box box = detail::bounding_box(pd, d, -1).united(detail::bounding_box(rd, d, -1));
  if (box.empty()) return {};
  const auto cp = detail::crop_mask(pd, d, box, -1);
  const auto cr = detail::crop_mask(rd, d, box, -1);
  return detail::surface_distances_raw(cp.data(), cr.data(), box.dims(), spacing, method);
}

}  // namespace teachformer::metrics
