#include "teachformer/metrics/statistics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "teachformer/core/error.hpp"

namespace teachformer::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const double pos = q * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos)), hi = size_t(std::ceil(pos));
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

// P(W+ <= w) under the null for n pairs without ties, by the recurrence on the number of subsets of {1..n} with
// sum s (exact; n <= 25 keeps the counts far below 2^53).
double exact_lower_tail(int n, double w) {
  const int max_sum = n * (n + 1) / 2;
  std::vector<double> count(size_t(max_sum) + 1, 0.0);
  count[0] = 1;
  for (int k = 1; k <= n; ++k)
    for (int s = max_sum; s >= k; --s) count[size_t(s)] += count[size_t(s - k)];
  double below = 0;
  for (int s = 0; s <= max_sum && double(s) <= w + 1e-9; ++s) below += count[size_t(s)];
  return below / std::pow(2.0, n);
}

}  // namespace

MeanSd mean_sd(const std::vector<double>& values) {
  MeanSd r;
  double sum = 0;
  for (double v : values)
    if (std::isfinite(v)) sum += v, ++r.n;
  if (r.n == 0) return {kNaN, kNaN, 0};
  r.mean = sum / double(r.n);
  double ss = 0;
  for (double v : values)
    if (std::isfinite(v)) ss += (v - r.mean) * (v - r.mean);
  r.sd = r.n > 1 ? std::sqrt(ss / double(r.n - 1)) : 0.0;
  return r;
}

double wilcoxon_signed_rank_p(const std::vector<double>& d) {
  std::vector<double> nz;
  for (double x : d)
    if (std::isfinite(x) && x != 0.0) nz.push_back(x);
  const size_t n = nz.size();
  if (n == 0) return 1.0;
  // Average ranks of |d|.
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return std::abs(nz[a]) < std::abs(nz[b]); });
  std::vector<double> rank(n);
  double tie_term = 0;
  bool ties = false;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j + 1 < n && std::abs(nz[order[j + 1]]) == std::abs(nz[order[i]])) ++j;
    const double r = (double(i) + double(j)) / 2.0 + 1.0;
    for (size_t k = i; k <= j; ++k) rank[order[k]] = r;
    const double t = double(j - i + 1);
    if (t > 1) ties = true;
    tie_term += t * t * t - t;
    i = j + 1;
  }
  double w_plus = 0;
  for (size_t i = 0; i < n; ++i)
    if (nz[i] > 0) w_plus += rank[i];
  const double total = double(n) * double(n + 1) / 2.0;
  const double w = std::min(w_plus, total - w_plus);
  if (n <= 25 && !ties) return std::min(1.0, 2.0 * exact_lower_tail(int(n), w));
  const double mean = total / 2.0;
  const double var = double(n) * double(n + 1) * double(2 * n + 1) / 24.0 - tie_term / 48.0;
  if (var <= 0) return 1.0;
  const double z = (std::abs(w_plus - mean) - 0.5) / std::sqrt(var);
  return std::min(1.0, std::erfc(std::max(0.0, z) / std::sqrt(2.0)));
}

PairedComparison compare_paired(const std::vector<double>& a, const std::vector<double>& b, double level,
                                int resamples, uint64_t seed) {
  TF_CHECK(a.size() == b.size(), InvalidArgument, "paired comparison: ", a.size(), " values against ", b.size());
  TF_CHECK(level > 0 && level < 1, InvalidArgument, "paired comparison: confidence level must be in (0, 1)");
  TF_CHECK(resamples >= 100, InvalidArgument, "paired comparison: at least 100 bootstrap resamples, got ", resamples);
  std::vector<double> d;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i])) d.push_back(a[i] - b[i]);
  PairedComparison r;
  r.n = int64_t(d.size());
  if (d.empty()) return {0, kNaN, kNaN, kNaN, kNaN};
  r.mean_difference = mean_sd(d).mean;
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<size_t> pick(0, d.size() - 1);
  std::vector<double> means(static_cast<size_t>(resamples), 0.0);
  for (int k = 0; k < resamples; ++k) {
    double s = 0;
    for (size_t i = 0; i < d.size(); ++i) s += d[pick(gen)];
    means[size_t(k)] = s / double(d.size());
  }
  const double alpha = (1.0 - level) / 2.0;
  r.ci_low = percentile(means, alpha);
  r.ci_high = percentile(means, 1.0 - alpha);
  r.wilcoxon_p = wilcoxon_signed_rank_p(d);
  return r;
}

}  // namespace teachformer::metrics
