// Surface extraction and distances of both protocols (MONAI voxel surfaces, DeepMind surfels), checked by hand
// and against brute force on small masks.
#include "teachformer/metrics/surface_distance.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"

namespace teachformer::metrics {
namespace {

torch::Tensor box_mask(std::array<int64_t, 3> shape, std::array<int64_t, 3> lo, std::array<int64_t, 3> hi) {
  torch::Tensor m = torch::zeros({shape[0], shape[1], shape[2]}, torch::kUInt8);
  using torch::indexing::Slice;
  m.index_put_({Slice(lo[0], hi[0]), Slice(lo[1], hi[1]), Slice(lo[2], hi[2])}, 1);
  return m;
}

double max_of(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

TEST(VoxelSurface, InteriorVoxelsAreNotSurfaceButVolumeBorderIs) {
  // 3x3x3 cube inside a 5^3 volume: 26 surface voxels (the centre is interior).
  const torch::Tensor cube = box_mask({5, 5, 5}, {1, 1, 1}, {4, 4, 4});
  const SurfaceDistances s = surface_distances(cube, cube, {1, 1, 1});
  EXPECT_EQ(s.pred_to_ref.size(), 26u);
  EXPECT_EQ(max_of(s.pred_to_ref), 0.0);
  // A mask filling the whole 4^3 volume: every voxel on the volume border is surface (64 - 8 interior).
  const torch::Tensor full = torch::ones({4, 4, 4}, torch::kUInt8);
  EXPECT_EQ(surface_distances(full, full, {1, 1, 1}).ref_to_pred.size(), 56u);
}

TEST(SurfaceDistances, SingleVoxelPairIsOffsetTimesSpacingInBothMethods) {
  const Vec3 spacing{0.8, 1.0, 2.5};  // x, y, z
  // Offset of 3 voxels along x.
  const torch::Tensor a = box_mask({6, 6, 8}, {2, 2, 1}, {3, 3, 2});
  const torch::Tensor b = box_mask({6, 6, 8}, {2, 2, 4}, {3, 3, 5});
  const SurfaceDistances v = surface_distances(a, b, spacing, SurfaceMethod::VoxelSurface);
  ASSERT_EQ(v.pred_to_ref.size(), 1u);
  EXPECT_DOUBLE_EQ(v.pred_to_ref[0], 2.4);
  EXPECT_DOUBLE_EQ(v.ref_to_pred[0], 2.4);
  // Surfels: the 8 corners of each voxel; 4 lie 2 voxels away (1.6 mm), 4 lie 3 voxels away (2.4 mm).
  const SurfaceDistances s = surface_distances(a, b, spacing, SurfaceMethod::Surfels);
  ASSERT_EQ(s.pred_to_ref.size(), 8u);
  std::vector<double> d = s.pred_to_ref;
  std::sort(d.begin(), d.end());
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(d[i], 1.6, 1e-12);
  for (int i = 4; i < 8; ++i) EXPECT_NEAR(d[i], 2.4, 1e-12);
  EXPECT_NEAR(weighted_percentile(s.pred_to_ref, s.pred_weights, 95), 2.4, 1e-12);
  // Offset of 2 voxels along z: 5 mm.
  const torch::Tensor c = box_mask({6, 6, 8}, {4, 2, 1}, {5, 3, 2});
  EXPECT_DOUBLE_EQ(surface_distances(a, c, spacing).pred_to_ref[0], 5.0);
  const SurfaceDistances sz = surface_distances(a, c, spacing, SurfaceMethod::Surfels);
  EXPECT_NEAR(max_of(sz.pred_to_ref), 5.0, 1e-12);
  EXPECT_NEAR(weighted_percentile(sz.ref_to_pred, sz.ref_weights, 95), 5.0, 1e-12);
}

TEST(SurfelAreaTable, PlanarConfigurationsHaveTheirGeometricArea) {
  const double sx = 0.8, sy = 1.0, sz = 2.5;
  const auto t = surfel_area_table({sx, sy, sz});
  const double corner = 0.125 * std::sqrt(sy * sy * sz * sz + sx * sx * sz * sz + sx * sx * sy * sy);
  EXPECT_EQ(t[0], 0.0);
  EXPECT_EQ(t[255], 0.0);
  EXPECT_NEAR(t[1], corner, 1e-12);        // one corner inside: a triangle
  EXPECT_NEAR(t[254], corner, 1e-12);      // one corner outside: the same triangle
  EXPECT_NEAR(t[0b10000000], corner, 1e-12);
  EXPECT_NEAR(t[0b11], sx * 0.5 * std::sqrt(sy * sy + sz * sz), 1e-12);  // an x edge: a rectangle
  EXPECT_NEAR(t[0b101], sy * 0.5 * std::sqrt(sx * sx + sz * sz), 1e-12);  // a y edge
  EXPECT_NEAR(t[0b10001], sz * 0.5 * std::sqrt(sx * sx + sy * sy), 1e-12);  // a z edge
  EXPECT_NEAR(t[0b1111], sx * sy, 1e-12);  // the z = 0 face: a square at mid-height
  EXPECT_NEAR(t[0b01010101], sy * sz, 1e-12);  // the x = 0 face
  // Isotropic unit spacing: DeepMind's table gives sqrt(3)/8, sqrt(2)/2 and 1 for these codes.
  const auto u = surfel_area_table({1, 1, 1});
  EXPECT_NEAR(u[1], std::sqrt(3.0) / 8, 1e-12);
  EXPECT_NEAR(u[3], std::sqrt(2.0) / 2, 1e-12);
  EXPECT_NEAR(u[15], 1.0, 1e-12);
}

TEST(SurfelAreaTable, SurfaceAreaOfABoxMatchesTheChamferedBoxFormula) {
  const double sx = 0.8, sy = 1.0, sz = 2.5;
  const double lx = 5, ly = 3, lz = 4;  // voxels
  const torch::Tensor box = box_mask({8, 7, 9}, {2, 2, 1}, {2 + int64_t(lz), 2 + int64_t(ly), 1 + int64_t(lx)});
  const SurfaceDistances s = surface_distances(box, box, {sx, sy, sz}, SurfaceMethod::Surfels);
  const double faces = 2 * ((lx - 1) * (ly - 1) * sx * sy + (ly - 1) * (lz - 1) * sy * sz + (lx - 1) * (lz - 1) * sx * sz);
  const double edges = 4 * 0.5 *
                       ((lx - 1) * sx * std::sqrt(sy * sy + sz * sz) + (ly - 1) * sy * std::sqrt(sx * sx + sz * sz) +
                        (lz - 1) * sz * std::sqrt(sx * sx + sy * sy));
  const double corners = 8 * 0.125 * std::sqrt(sy * sy * sz * sz + sx * sx * sz * sz + sx * sx * sy * sy);
  EXPECT_NEAR(std::accumulate(s.ref_weights.begin(), s.ref_weights.end(), 0.0), faces + edges + corners, 1e-9);
  // Surface points: the (L+1)-lattice on the box boundary.
  EXPECT_EQ(s.ref_weights.size(), size_t((lx + 1) * (ly + 1) * (lz + 1) - (lx - 1) * (ly - 1) * (lz - 1)));
}

/// Independent reference: surfaces by explicit neighbour tests, distances by brute force.
struct BruteForce {
  std::vector<std::array<double, 3>> a, b;  // physical positions (x, y, z) of surface points
  std::vector<double> wa, wb;
};

std::vector<double> brute_distances(const std::vector<std::array<double, 3>>& from,
                                    const std::vector<std::array<double, 3>>& to) {
  std::vector<double> out;
  for (const auto& p : from) {
    double best = INFINITY;
    for (const auto& q : to)
      best = std::min(best, std::sqrt(std::pow(p[0] - q[0], 2) + std::pow(p[1] - q[1], 2) + std::pow(p[2] - q[2], 2)));
    out.push_back(best);
  }
  return out;
}

std::vector<std::array<double, 3>> brute_voxel_surface(const torch::Tensor& m, const Vec3& s) {
  std::vector<std::array<double, 3>> pts;
  const int64_t nz = m.size(0), ny = m.size(1), nx = m.size(2);
  auto at = [&](int64_t z, int64_t y, int64_t x) {
    return z >= 0 && y >= 0 && x >= 0 && z < nz && y < ny && x < nx && m[z][y][x].item<uint8_t>() != 0;
  };
  for (int64_t z = 0; z < nz; ++z)
    for (int64_t y = 0; y < ny; ++y)
      for (int64_t x = 0; x < nx; ++x)
        if (at(z, y, x) && (!at(z - 1, y, x) || !at(z + 1, y, x) || !at(z, y - 1, x) || !at(z, y + 1, x) ||
                            !at(z, y, x - 1) || !at(z, y, x + 1)))
          pts.push_back({x * s[0], y * s[1], z * s[2]});
  return pts;
}

double numpy_percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double h = (v.size() - 1) * q / 100;
  const size_t lo = size_t(std::floor(h));
  return lo + 1 < v.size() ? v[lo] + (v[lo + 1] - v[lo]) * (h - lo) : v[lo];
}

TEST(SurfaceDistances, VoxelMethodMatchesBruteForceOnOffsetBoxesAndBlobs) {
  const Vec3 spacing{0.8, 1.0, 2.5};
  const torch::Tensor gt = box_mask({8, 9, 12}, {2, 2, 2}, {6, 6, 6});
  const torch::Tensor pred = box_mask({8, 9, 12}, {2, 2, 4}, {6, 6, 8});  // shifted by k = 2 along x
  const SurfaceDistances s = surface_distances(pred, gt, spacing);
  const auto ps = brute_voxel_surface(pred, spacing), gs = brute_voxel_surface(gt, spacing);
  const auto pr = brute_distances(ps, gs), rp = brute_distances(gs, ps);
  ASSERT_EQ(s.pred_to_ref.size(), pr.size());
  ASSERT_EQ(s.ref_to_pred.size(), rp.size());
  for (size_t i = 0; i < pr.size(); ++i) EXPECT_NEAR(s.pred_to_ref[i], pr[i], 1e-12);
  for (size_t i = 0; i < rp.size(); ++i) EXPECT_NEAR(s.ref_to_pred[i], rp[i], 1e-12);
  EXPECT_NEAR(std::max(max_of(pr), max_of(rp)), 2 * 0.8, 1e-12);  // HD = k * sx
  EXPECT_NEAR(percentile_linear(s.pred_to_ref, 95), numpy_percentile(pr, 95), 1e-12);
  // An irregular pair: a random blob against a shifted copy with holes.
  torch::manual_seed(3);
  const torch::Tensor blob = (torch::rand({7, 8, 9}) > 0.55).to(torch::kUInt8);
  const torch::Tensor other = (torch::rand({7, 8, 9}) > 0.7).to(torch::kUInt8);
  const SurfaceDistances r = surface_distances(blob, other, spacing);
  const auto br = brute_distances(brute_voxel_surface(blob, spacing), brute_voxel_surface(other, spacing));
  ASSERT_EQ(r.pred_to_ref.size(), br.size());
  for (size_t i = 0; i < br.size(); ++i) EXPECT_NEAR(r.pred_to_ref[i], br[i], 1e-12);
}

TEST(SurfaceDistances, SurfelMethodMatchesBruteForceWeightedPercentileOnOffsetBoxes) {
  const Vec3 spacing{0.8, 1.0, 2.5};
  const torch::Tensor gt = box_mask({8, 9, 12}, {2, 2, 2}, {6, 6, 6});
  const torch::Tensor pred = box_mask({8, 9, 12}, {3, 2, 4}, {6, 6, 8});  // shifted along x and shorter in z
  const auto table = surfel_area_table(spacing);
  // Border corners by explicit 2x2x2 neighbourhood codes, in raster order over the (z+1, y+1, x+1) corner grid.
  auto corners = [&](const torch::Tensor& m, std::vector<std::array<double, 3>>& pts, std::vector<double>& w) {
    const int64_t nz = m.size(0), ny = m.size(1), nx = m.size(2);
    auto at = [&](int64_t z, int64_t y, int64_t x) {
      return z >= 0 && y >= 0 && x >= 0 && z < nz && y < ny && x < nx && m[z][y][x].item<uint8_t>() != 0;
    };
    for (int64_t a = 0; a <= nz; ++a)
      for (int64_t b = 0; b <= ny; ++b)
        for (int64_t c = 0; c <= nx; ++c) {
          int code = 0;
          for (int k = 0; k < 8; ++k)
            if (at(a - 1 + ((k >> 2) & 1), b - 1 + ((k >> 1) & 1), c - 1 + (k & 1))) code |= 1 << k;
          if (code == 0 || code == 255) continue;
          pts.push_back({c * spacing[0], b * spacing[1], a * spacing[2]});
          w.push_back(table[code]);
        }
  };
  std::vector<std::array<double, 3>> gp, pp;
  std::vector<double> gw, pw;
  corners(gt, gp, gw);
  corners(pred, pp, pw);
  const auto g2p = brute_distances(gp, pp), p2g = brute_distances(pp, gp);
  // DeepMind's rule, written out: sort by distance, first index whose normalised cumulative area reaches 0.95.
  auto robust = [](std::vector<double> d, std::vector<double> w) {
    std::vector<size_t> o(d.size());
    std::iota(o.begin(), o.end(), 0);
    std::stable_sort(o.begin(), o.end(), [&](size_t i, size_t j) { return d[i] < d[j]; });
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    double cum = 0;
    for (size_t i : o)
      if ((cum += w[i]) / total >= 0.95) return d[i];
    return d[o.back()];
  };
  const SurfaceDistances s = surface_distances(pred, gt, spacing, SurfaceMethod::Surfels);
  ASSERT_EQ(s.ref_to_pred.size(), g2p.size());
  for (size_t i = 0; i < g2p.size(); ++i) {
    EXPECT_NEAR(s.ref_to_pred[i], g2p[i], 1e-12);
    EXPECT_NEAR(s.ref_weights[i], gw[i], 1e-12);
  }
  const double expected = std::max(robust(g2p, gw), robust(p2g, pw));
  const double got = std::max(weighted_percentile(s.ref_to_pred, s.ref_weights, 95),
                              weighted_percentile(s.pred_to_ref, s.pred_weights, 95));
  EXPECT_NEAR(got, expected, 1e-12);
  EXPECT_NEAR(std::max(max_of(s.ref_to_pred), max_of(s.pred_to_ref)),
              std::max(max_of(g2p), max_of(p2g)), 1e-12);
}

TEST(Percentiles, LinearAndAreaWeightedRules) {
  EXPECT_DOUBLE_EQ(percentile_linear({4, 1, 3, 2}, 95), 3.85);  // h = 3 * 0.95 = 2.85
  EXPECT_DOUBLE_EQ(percentile_linear({4, 1, 3, 2}, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile_linear({4, 1, 3, 2}, 100), 4.0);
  EXPECT_TRUE(std::isnan(percentile_linear({}, 50)));
  EXPECT_DOUBLE_EQ(weighted_percentile({3, 1, 2}, {0.2, 0.5, 0.3}, 95), 3.0);  // cumulative 0.5, 0.8, 1.0
  EXPECT_DOUBLE_EQ(weighted_percentile({3, 1, 2}, {0.2, 0.5, 0.3}, 50), 1.0);  // 0.5 reaches 0.5
  EXPECT_DOUBLE_EQ(weighted_percentile({3, 1, 2}, {0.2, 0.5, 0.3}, 60), 2.0);
  EXPECT_TRUE(std::isinf(weighted_percentile({}, {}, 95)));
  EXPECT_THROW(percentile_linear({1}, 101), InvalidArgument);
  EXPECT_THROW(weighted_percentile({1, 2}, {1}, 50), InvalidArgument);
}

TEST(SurfaceDistances, EmptyMaskGivesInfiniteDistancesFromTheOther) {
  const torch::Tensor a = box_mask({4, 4, 4}, {1, 1, 1}, {2, 2, 2});
  const SurfaceDistances s = surface_distances(torch::zeros({4, 4, 4}, torch::kUInt8), a, {1, 1, 1});
  EXPECT_TRUE(s.pred_to_ref.empty());
  ASSERT_EQ(s.ref_to_pred.size(), 1u);
  EXPECT_TRUE(std::isinf(s.ref_to_pred[0]));
  EXPECT_THROW(surface_distances(a, torch::zeros({4, 4, 5}, torch::kUInt8), {1, 1, 1}), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::metrics
