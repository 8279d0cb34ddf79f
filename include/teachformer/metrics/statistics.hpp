// Paired comparisons of two models over the same cases: the mean difference with a percentile-bootstrap
// confidence interval and the Wilcoxon signed-rank test, as used to say whether a distilled student beats the same
// student trained alone by more than chance.
#pragma once
#include <cstdint>
#include <vector>

namespace teachformer::metrics {

/// Mean and sample standard deviation (n - 1; 0 for n < 2) of finite values; NaN mean for none.
struct MeanSd {
  double mean = 0;
  double sd = 0;
  int64_t n = 0;
};
MeanSd mean_sd(const std::vector<double>& values);

/// A paired comparison of `a` against `b` (same cases, same order): differences d_i = a_i - b_i.
struct PairedComparison {
  /// Number of pairs (pairs with a non-finite value are left out).
  int64_t n = 0;
  /// Mean of d.
  double mean_difference = 0;
  /// Percentile bootstrap confidence interval of the mean difference.
  double ci_low = 0;
  double ci_high = 0;
  /// Two-sided Wilcoxon signed-rank p-value (zero differences dropped, average ranks for ties; exact for up to 25
  /// non-zero pairs without ties, else the normal approximation with tie and continuity corrections). 1 when
  /// every difference is zero.
  double wilcoxon_p = 1;
};

/// Compares `a` with `b`: `resamples` bootstrap resamples of the pairs drawn with a fixed seed, confidence
/// `level` (0.95: the 2.5th and 97.5th percentiles). InvalidArgument when the lengths differ.
PairedComparison compare_paired(const std::vector<double>& a, const std::vector<double>& b, double level = 0.95,
                                int resamples = 10000, uint64_t seed = 0);

/// Two-sided Wilcoxon signed-rank p-value of differences `d` (see PairedComparison::wilcoxon_p).
double wilcoxon_signed_rank_p(const std::vector<double>& d);

}  // namespace teachformer::metrics
