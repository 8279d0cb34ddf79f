#include "teachformer/transforms/resample.hpp"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::transforms {
namespace {

Grid make_grid(Size3 size, Vec3 spacing, Vec3 origin, Mat3 direction = kIdentityDirection) {
  Grid g;
  g.size = size;
  g.geometry.spacing = spacing;
  g.geometry.origin = origin;
  g.geometry.direction = direction;
  return g;
}

// Samples f(world) at every voxel centre of `grid` into [1, Z, Y, X].
template <typename F>
torch::Tensor sample(const Grid& grid, F f) {
  auto t = torch::empty({1, grid.size[2], grid.size[1], grid.size[0]}, torch::kFloat);
  auto a = t.accessor<float, 4>();
  for (int64_t k = 0; k < grid.size[2]; ++k)
    for (int64_t j = 0; j < grid.size[1]; ++j)
      for (int64_t i = 0; i < grid.size[0]; ++i)
        a[0][k][j][i] = float(f(grid.geometry.index_to_world({double(i), double(j), double(k)})));
  return t;
}

Mat3 rotation_z(double degrees) {
  const double r = degrees * M_PI / 180.0, c = std::cos(r), s = std::sin(r);
  return {c, -s, 0, s, c, 0, 0, 0, 1};
}

TEST(Resample, IdentityGridIsANoOpForEveryInterpolation) {
  const Grid g = make_grid({7, 6, 5}, {0.7, 1.1, 2.5}, {-3, 4, 100}, rotation_z(20));
  const auto data = torch::rand({2, 5, 6, 7});
  EXPECT_TRUE(torch::equal(resample(data, g.geometry, g, Interpolation::Nearest), data));
  EXPECT_TRUE(torch::allclose(resample(data, g.geometry, g, Interpolation::Linear), data, 0, 1e-6));
  EXPECT_TRUE(torch::allclose(resample(data, g.geometry, g, Interpolation::BSpline), data, 0, 1e-4));
}

TEST(Resample, WholeVoxelShiftMovesValuesAndFillsOutside) {
  const Grid src = make_grid({8, 3, 2}, {2, 1, 1}, {0, 0, 0});
  Grid dst = src;
  dst.geometry.origin[0] = 2 * 2.0;  // two voxels to the +x side
  const auto data = torch::arange(8 * 3 * 2, torch::kFloat).reshape({1, 2, 3, 8});
  for (auto interp : {Interpolation::Nearest, Interpolation::Linear, Interpolation::BSpline}) {
    const auto out = resample(data, src.geometry, dst, interp, -7.0);
    EXPECT_TRUE(torch::allclose(out.narrow(3, 0, 6), data.narrow(3, 2, 6), 0, 1e-4)) << to_string(interp);
    EXPECT_TRUE(torch::all(out.narrow(3, 6, 2) == -7).item<bool>()) << to_string(interp);
  }
}

TEST(Resample, HalfVoxelShiftAveragesNeighboursLinearly) {
  const Grid src = make_grid({4, 1, 1}, {1, 1, 1}, {0, 0, 0});
  Grid dst = src;
  dst.size = {3, 1, 1};
  dst.geometry.origin[0] = 0.5;
  const auto data = torch::tensor({0.f, 10.f, 30.f, 70.f}).reshape({1, 1, 1, 4});
  const auto out = resample(data, src.geometry, dst, Interpolation::Linear);
  EXPECT_TRUE(torch::allclose(out.reshape({-1}), torch::tensor({5.f, 20.f, 50.f})));
}

TEST(Resample, AffineFunctionIsReproducedThroughRotatedAnisotropicGrids) {
  // Trilinear interpolation is exact for affine functions, so any error comes from the geometry mapping.
  auto f = [](const Vec3& w) { return 3.0 * w[0] - 2.0 * w[1] + 0.5 * w[2] + 7.0; };
  const Grid src = make_grid({40, 28, 12}, {0.8, 1.2, 3.0}, {-12, -15, -20}, rotation_z(25));
  const Grid dst = make_grid({10, 10, 8}, {1.0, 1.0, 2.0}, {-4, -5, -10});
  const auto out = resample(sample(src, f), src.geometry, dst, Interpolation::Linear, -1e9);
  const auto expected = sample(dst, f);
  EXPECT_TRUE(torch::allclose(out, expected, 1e-4, 1e-3)) << (out - expected).abs().max().item<float>();
}

TEST(Resample, PermutedAndFlippedDirectionsMapThroughWorldSpace) {
  // Source index axes: i -> -y, j -> +z, k -> +x (a permutation with a flip), spacing anisotropic.
  auto f = [](const Vec3& w) { return w[0] + 10.0 * w[1] + 100.0 * w[2]; };
  const Mat3 perm{0, 0, 1, -1, 0, 0, 0, 1, 0};
  const Grid src = make_grid({12, 9, 10}, {1.0, 2.0, 0.5}, {0, 5, -3}, perm);
  const Grid dst = make_grid({4, 5, 6}, {1, 1, 1}, {1.0, -4.0, 1.0});
  const auto out = resample(sample(src, f), src.geometry, dst, Interpolation::Linear, -1e9);
  EXPECT_TRUE(torch::allclose(out, sample(dst, f), 1e-5, 1e-3));
  // Nearest picks exact source samples: values must be among the source's.
  const auto nn = resample(sample(src, f), src.geometry, dst, Interpolation::Nearest, -1e9);
  EXPECT_TRUE(torch::isin(nn.reshape({-1}), sample(src, f).reshape({-1})).all().item<bool>());
}

TEST(Resample, BSplineIsMoreAccurateThanLinearOnASmoothSignal) {
  auto f = [](const Vec3& w) { return std::sin(w[0] * 0.6) * std::cos(w[1] * 0.5) + 0.1 * w[2]; };
  const Grid src = make_grid({24, 24, 6}, {1, 1, 1}, {0, 0, 0});
  const Grid dst = make_grid({30, 30, 2}, {0.5, 0.5, 1}, {3.25, 3.25, 2});
  const auto expected = sample(dst, f);
  const double err_linear = (resample(sample(src, f), src.geometry, dst, Interpolation::Linear) - expected).abs().max().item<double>();
  const double err_bspline = (resample(sample(src, f), src.geometry, dst, Interpolation::BSpline) - expected).abs().max().item<double>();
  EXPECT_LT(err_bspline, 0.5 * err_linear);
  EXPECT_LT(err_bspline, 0.01);
}

TEST(Resample, NearestKeepsLabelDtypeAndValues) {
  const Grid src = make_grid({6, 6, 6}, {1, 1, 1}, {0, 0, 0});
  const Grid dst = make_grid({12, 12, 12}, {0.5, 0.5, 0.5}, {-0.25, -0.25, -0.25});
  auto label = torch::zeros({1, 6, 6, 6}, torch::kUInt8);
  label.index_put_({0, 2, 2, 2}, 3);
  const auto out = resample(label, src.geometry, dst, Interpolation::Nearest);
  EXPECT_EQ(out.scalar_type(), torch::kUInt8);
  EXPECT_EQ(out.eq(3).sum().item<int64_t>(), 8);  // one source voxel -> 2x2x2 target voxels
  EXPECT_EQ(out.ne(0).ne(out.eq(3)).sum().item<int64_t>(), 0);
}

TEST(Resample, RejectsBadInput) {
  const Grid g = make_grid({2, 2, 2}, {1, 1, 1}, {0, 0, 0});
  EXPECT_THROW(resample(torch::zeros({2, 2, 2}), g.geometry, g, Interpolation::Linear), InvalidArgument);
  EXPECT_THROW(interpolation_from_string("cubic"), InvalidArgument);
  try {
    interpolation_from_string("cubic", "--interpolation");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--interpolation: unknown interpolation 'cubic'"), std::string::npos);
  }
}

TEST(GridWithSpacing, KeepsThePhysicalExtentAndCentre) {
  const Grid g = make_grid({10, 20, 5}, {1.0, 0.5, 3.0}, {5, -7, 12}, rotation_z(90));
  const Grid r = grid_with_spacing(g, {2.0, 2.0, 1.5});
  EXPECT_EQ(r.size, (Size3{5, 5, 10}));
  const auto [lo, hi] = grid_extent(g);
  const auto [rlo, rhi] = grid_extent(r);
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(lo[a], rlo[a], 1e-9);
    EXPECT_NEAR(hi[a], rhi[a], 1e-9);
  }
  EXPECT_EQ(r.geometry.direction, g.geometry.direction);
}

TEST(GridsMatch, SnapsOnlySubVoxelOriginDifferences) {
  const Grid a = make_grid({10, 10, 10}, {2, 2, 2}, {0, 0, 0});
  Grid b = a;
  b.geometry.origin[1] = 0.05;  // 0.025 voxel
  EXPECT_TRUE(grids_match(b, a, 0.05));
  b.geometry.origin[1] = 0.4;  // 0.2 voxel
  EXPECT_FALSE(grids_match(b, a, 0.05));
  EXPECT_NEAR(grid_difference(b, a).origin_voxels, 0.2, 1e-12);
  b = a;
  b.size[2] = 11;
  EXPECT_FALSE(grids_match(b, a));
  b = a;
  b.geometry.direction = rotation_z(1);
  EXPECT_FALSE(grids_match(b, a));
}

TEST(InsideMask, MarksVoxelsWhoseCentresLieInTheTargetExtent) {
  const Grid g = make_grid({10, 1, 1}, {1, 1, 1}, {0, 0, 0});
  const Grid t = make_grid({3, 1, 1}, {1, 1, 1}, {4, 0, 0});  // covers x in [3.5, 6.5]
  const auto m = inside_mask(g, t).reshape({-1});
  EXPECT_EQ(m.sum().item<int64_t>(), 3);
  EXPECT_TRUE(m[4].item<bool>() && m[5].item<bool>() && m[6].item<bool>());
}

}  // namespace
}  // namespace teachformer::transforms
