#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/inference/importance_map.hpp"

namespace teachformer::inference {
namespace {

TEST(ImportanceMap, ConstantModeIsAllOnes) {
  const auto map = importance_map({3, 4, 5}, BlendMode::Constant);
  EXPECT_EQ(map.sizes().vec(), (std::vector<int64_t>{3, 4, 5}));
  EXPECT_EQ(map.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(map, torch::ones({3, 4, 5})));
}

TEST(ImportanceMap, GaussianMatchesHandComputedValues) {
  // [1, 1, 3] with sigma_scale 0.5: sigma = 1.5, ends at distance 1 -> exp(-1 / 4.5) = 0.8007374.
  const auto line = importance_map({1, 1, 3}, BlendMode::Gaussian, 0.5);
  EXPECT_NEAR(line[0][0][0].item<double>(), 0.8007374029, 1e-6);
  EXPECT_NEAR(line[0][0][1].item<double>(), 1.0, 1e-7);
  EXPECT_NEAR(line[0][0][2].item<double>(), 0.8007374029, 1e-6);

  // Full 3-D check against loops: separable Gaussian centred at (n - 1) / 2, divided by its maximum.
  const std::vector<int64_t> size{3, 4, 6};
  const double scale = 0.25;
  const auto map = importance_map(size, BlendMode::Gaussian, scale);
  auto g = [&](int d, int64_t i) {
    const double n = double(size[d]), s = scale * n, x = double(i) - (n - 1) / 2;
    return std::exp(-x * x / (2 * s * s));
  };
  double peak = 0;
  for (int64_t z = 0; z < size[0]; ++z)
    for (int64_t y = 0; y < size[1]; ++y)
      for (int64_t x = 0; x < size[2]; ++x) peak = std::max(peak, g(0, z) * g(1, y) * g(2, x));
  const auto acc = map.accessor<float, 3>();
  for (int64_t z = 0; z < size[0]; ++z)
    for (int64_t y = 0; y < size[1]; ++y)
      for (int64_t x = 0; x < size[2]; ++x)
        EXPECT_NEAR(acc[z][y][x], g(0, z) * g(1, y) * g(2, x) / peak, 1e-6) << z << " " << y << " " << x;
  // Even sizes: the maximum is shared by the central voxels and is exactly 1; the map is symmetric.
  EXPECT_EQ(map.max().item<float>(), 1.0f);
  EXPECT_TRUE(torch::allclose(map, map.flip({0, 1, 2})));
}

TEST(ImportanceMap, UnderflowedZerosBecomeSmallestNonZeroValue) {
  // sigma = 0.41 voxels over 41 voxels: weights beyond 5 voxels from the centre underflow float32 to 0.
  const auto map = importance_map({1, 1, 41}, BlendMode::Gaussian, 0.01).flatten();
  const double sigma = 0.41;
  const float at5 = static_cast<float>(std::exp(-25.0 / (2 * sigma * sigma)));
  ASSERT_GT(at5, 0.0f);
  EXPECT_GT(map.min().item<float>(), 0.0f);
  EXPECT_NEAR(map[20 + 5].item<float>() / at5, 1.0, 1e-4);
  EXPECT_EQ(map.min().item<float>(), map[20 + 5].item<float>());
  EXPECT_EQ(map[0].item<float>(), map[20 + 5].item<float>());
  EXPECT_EQ(map[40].item<float>(), map[20 + 5].item<float>());
}

TEST(ImportanceMap, DefaultSigmaScaleKeepsBordersPositiveAndNonConstant) {
  const auto map = importance_map({96, 96, 96}, BlendMode::Gaussian);
  EXPECT_GT(map.min().item<float>(), 0.0f);
  // Corner = exp(-(47.5^2) / (2 * 12^2))^3 relative to the centre voxels' exp(-(0.5^2) / (2 * 12^2))^3.
  const double corner = std::pow(std::exp(-(47.5 * 47.5 - 0.25) / (2 * 144.0)), 3);
  EXPECT_NEAR(map[0][0][0].item<double>() / corner, 1.0, 1e-3);
}

TEST(ImportanceMap, RejectsBadArguments) {
  EXPECT_THROW(importance_map({0, 4, 4}, BlendMode::Gaussian), InvalidArgument);
  EXPECT_THROW(importance_map({4, 4, 4}, BlendMode::Gaussian, 0.0), InvalidArgument);
  EXPECT_THROW(importance_map({}, BlendMode::Constant), InvalidArgument);
  EXPECT_EQ(parse_blend_mode("gaussian", "x"), BlendMode::Gaussian);
  EXPECT_EQ(to_string(BlendMode::Constant), "constant");
  EXPECT_THROW(parse_blend_mode("gauss", "x"), ConfigError);
}

}  // namespace
}  // namespace teachformer::inference
