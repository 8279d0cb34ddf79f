#include "teachformer/metrics/statistics.hpp"

#include <gtest/gtest.h>

#include <cmath>

#include "teachformer/core/error.hpp"

namespace teachformer::metrics {
namespace {

TEST(Statistics, MeanAndSampleSdSkipNonFiniteValues) {
  const auto r = mean_sd({1.0, 2.0, 3.0, NAN, 4.0});
  EXPECT_EQ(r.n, 4);
  EXPECT_DOUBLE_EQ(r.mean, 2.5);
  EXPECT_NEAR(r.sd, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_EQ(mean_sd({7.0}).sd, 0.0);
  EXPECT_TRUE(std::isnan(mean_sd({}).mean));
}

// Reference values from scipy.stats.wilcoxon (exact for small n without ties, normal approximation with ties).
TEST(Statistics, WilcoxonSignedRankMatchesTheExactDistribution) {
  // n = 5, all positive: W- = 0, p = 2 / 2^5.
  EXPECT_NEAR(wilcoxon_signed_rank_p({0.1, 0.2, 0.3, 0.4, 0.5}), 0.0625, 1e-12);
  // W+ = 1 + 2 + 4 = 7 of 15, W- = 8: p = 2 P(W <= 7) = 1.0.
  EXPECT_NEAR(wilcoxon_signed_rank_p({0.1, 0.2, -0.3, 0.4, -0.5}), 1.0, 1e-12);
  // n = 10: 8 positive ranks 3..10 -> W- = 1 + 2 = 3, p = 2 * 5 / 1024 (subsets of 1..10 summing to <= 3: {}, {1},
  // {2}, {3}, {1,2}).
  EXPECT_NEAR(wilcoxon_signed_rank_p({-0.01, -0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10}),
              2.0 * 5.0 / 1024.0, 1e-12);
  EXPECT_EQ(wilcoxon_signed_rank_p({0.0, 0.0}), 1.0);
}

TEST(Statistics, WilcoxonUsesTheNormalApproximationWithTies) {
  // 30 pairs of +1 and 10 of -1 (ties): z = (|W+ - n(n+1)/4| - 0.5) / sqrt(var with tie correction).
  std::vector<double> d(30, 1.0);
  d.insert(d.end(), 10, -1.0);
  const double n = 40, w_plus = 30 * 20.5;  // every |d| ties at the average rank 20.5
  const double mean = n * (n + 1) / 4, var = n * (n + 1) * (2 * n + 1) / 24 - (n * n * n - n) / 48;
  const double z = (std::abs(w_plus - mean) - 0.5) / std::sqrt(var);
  EXPECT_NEAR(wilcoxon_signed_rank_p(d), std::erfc(z / std::sqrt(2.0)), 1e-12);
}

TEST(Statistics, PairedComparisonBootstrapsTheMeanDifference) {
  std::vector<double> a, b;
  for (int i = 0; i < 40; ++i) {
    b.push_back(0.8 + 0.01 * (i % 7));
    a.push_back(b.back() + 0.02 + 0.005 * ((i * 13) % 5 - 2));
  }
  const auto c = compare_paired(a, b, 0.95, 2000, 1);
  EXPECT_EQ(c.n, 40);
  EXPECT_NEAR(c.mean_difference, 0.02, 1e-3);
  EXPECT_LT(c.ci_low, c.mean_difference);
  EXPECT_GT(c.ci_high, c.mean_difference);
  EXPECT_GT(c.ci_low, 0.0);
  EXPECT_LT(c.wilcoxon_p, 1e-4);
  // The same seed gives the same interval; pairs with a NaN are left out.
  const auto again = compare_paired(a, b, 0.95, 2000, 1);
  EXPECT_EQ(c.ci_low, again.ci_low);
  a.push_back(NAN);
  b.push_back(0.5);
  EXPECT_EQ(compare_paired(a, b, 0.95, 2000, 1).n, 40);
  EXPECT_THROW(compare_paired({1.0}, {1.0, 2.0}), InvalidArgument);
}

TEST(Statistics, NoDifferenceGivesAnIntervalAroundZero) {
  std::vector<double> a, b;
  for (int i = 0; i < 30; ++i) {
    a.push_back(0.7 + 0.01 * ((i * 7) % 11 - 5));
    b.push_back(0.7 + 0.01 * ((i * 5) % 11 - 5));
  }
  const auto c = compare_paired(a, b);
  EXPECT_LT(c.ci_low, 0.0);
  EXPECT_GT(c.ci_high, 0.0);
  EXPECT_GT(c.wilcoxon_p, 0.05);
}

}  // namespace
}  // namespace teachformer::metrics
