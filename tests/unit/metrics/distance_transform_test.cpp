// Exact Euclidean distance transform with anisotropic spacing, checked against brute force.
#include "teachformer/metrics/distance_transform.hpp"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "teachformer/core/error.hpp"

namespace teachformer::metrics {
namespace {

TEST(DistanceTransform, SingleFeatureGivesAnisotropicEuclideanDistances) {
  torch::Tensor f = torch::zeros({5, 6, 7}, torch::kUInt8);
  f[2][3][1] = 1;  // z 2, y 3, x 1
  const Vec3 spacing{0.5, 1.25, 3.0};  // x, y, z
  const torch::Tensor d = distance_transform(f, spacing);
  ASSERT_EQ(d.dtype(), torch::kFloat64);
  for (int64_t z = 0; z < 5; ++z)
    for (int64_t y = 0; y < 6; ++y)
      for (int64_t x = 0; x < 7; ++x) {
        const double e = std::sqrt(std::pow((x - 1) * 0.5, 2) + std::pow((y - 3) * 1.25, 2) + std::pow((z - 2) * 3.0, 2));
        EXPECT_NEAR(d[z][y][x].item<double>(), e, 1e-12);
      }
}

TEST(DistanceTransform, RandomFeaturesMatchBruteForce) {
  std::mt19937 rng(7);
  const int64_t nz = 9, ny = 11, nx = 13;
  torch::Tensor f = torch::zeros({1, nz, ny, nx}, torch::kUInt8);  // [1, Z, Y, X] is accepted too
  std::vector<std::array<int64_t, 3>> points;
  for (int k = 0; k < 12; ++k) {
    const std::array<int64_t, 3> p{int64_t(rng() % nz), int64_t(rng() % ny), int64_t(rng() % nx)};
    f[0][p[0]][p[1]][p[2]] = 1;
    points.push_back(p);
  }
  const Vec3 spacing{0.7, 2.0, 1.3};
  const torch::Tensor d2 = squared_distance_transform(f, spacing);
  double worst = 0;
  for (int64_t z = 0; z < nz; ++z)
    for (int64_t y = 0; y < ny; ++y)
      for (int64_t x = 0; x < nx; ++x) {
        double best = INFINITY;
        for (const auto& p : points)
          best = std::min(best, std::pow((x - p[2]) * 0.7, 2) + std::pow((y - p[1]) * 2.0, 2) +
                                    std::pow((z - p[0]) * 1.3, 2));
        worst = std::max(worst, std::abs(best - d2[z][y][x].item<double>()));
      }
  EXPECT_LT(worst, 1e-9);
}

TEST(DistanceTransform, NoFeatureGivesInfinityEverywhere) {
  const torch::Tensor d = distance_transform(torch::zeros({3, 3, 3}, torch::kUInt8), {1, 1, 1});
  EXPECT_TRUE(torch::isinf(d).all().item<bool>());
}

TEST(DistanceTransform, NonPositiveSpacingIsRejected) {
  try {
    distance_transform(torch::ones({2, 2, 2}), {1, 0, 1});
    FAIL() << "no throw";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("spacing must be positive and finite in every axis, got [1, 0, 1]"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace teachformer::metrics
