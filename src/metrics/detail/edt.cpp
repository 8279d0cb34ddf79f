#include "metrics/detail/edt.hpp"

#include <algorithm>
#include <functional>
#include <limits>
#include <vector>

#include <ATen/Parallel.h>

namespace teachformer::metrics::detail {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// Scratch space for one line.
struct LineScratch {
  std::vector<double> f, d, boundary;
  std::vector<int64_t> site;
  explicit LineScratch(int64_t n) : f(n), d(n), boundary(n + 1), site(n) {}
};

/// One-dimensional pass: d[p] = min_q (w (p - q))^2 + f[q], with +inf entries of f ignored.
void lower_envelope(LineScratch& s, int64_t n, double w) {
  const double w2 = w * w;
  const double* f = s.f.data();
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    if (f[q] == kInf) continue;
    if (k < 0) {
      k = 0;
      s.site[0] = q;
      s.boundary[0] = -kInf;
      s.boundary[1] = kInf;
      continue;
    }
    double x;
    for (;;) {
      const int64_t r = s.site[k];
      // Abscissa (in index units) where the parabola rooted at q overtakes the one rooted at r.
      x = ((f[q] + w2 * double(q) * double(q)) - (f[r] + w2 * double(r) * double(r))) / (2.0 * w2 * double(q - r));
      if (x <= s.boundary[k]) {
        --k;  // boundary[0] is -inf, so k never drops below 0 here
      } else {
        break;
      }
    }
    ++k;
    s.site[k] = q;
    s.boundary[k] = x;
    s.boundary[k + 1] = kInf;
  }
  if (k < 0) {
    std::fill(s.d.begin(), s.d.begin() + n, kInf);
    return;
  }
  k = 0;
  for (int64_t p = 0; p < n; ++p) {
    while (s.boundary[k + 1] < double(p)) ++k;
    const double delta = w * double(p - s.site[k]);
    s.d[p] = delta * delta + f[s.site[k]];
  }
}

/// Runs the 1D pass over every line along one axis of `out` (in place).
void pass(double* out, int64_t lines, int64_t n, int64_t stride, const std::function<int64_t(int64_t)>& line_start,
          double w) {
  if (n <= 0 || lines <= 0) return;
  const int64_t grain = std::max<int64_t>(1, 16384 / n);
  at::parallel_for(0, lines, grain, [&](int64_t begin, int64_t end) {
    LineScratch s(n);
    for (int64_t l = begin; l < end; ++l) {
      double* base = out + line_start(l);
      bool any = false;
      for (int64_t i = 0; i < n; ++i) {
        s.f[i] = base[i * stride];
        any |= s.f[i] != kInf;
      }
      if (!any) continue;  // an all-infinite line stays infinite
      lower_envelope(s, n, w);
      for (int64_t i = 0; i < n; ++i) base[i * stride] = s.d[i];
    }
  });
}

}  // namespace

void squared_edt(const uint8_t* features, const Dims& d, const Vec3& spacing, double* out) {
  const int64_t total = d.numel();
  if (total == 0) return;
  at::parallel_for(0, total, 65536, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = features[i] ? 0.0 : kInf;
  });
  const int64_t nx = d.x, ny = d.y, nz = d.z;
  // x (contiguous), then y, then z; the order does not change the exact result.
  pass(out, nz * ny, nx, 1, [&](int64_t l) { return l * nx; }, spacing[0]);
  pass(out, nz * nx, ny, nx, [&](int64_t l) { return (l / nx) * ny * nx + (l % nx); }, spacing[1]);
  pass(out, ny * nx, nz, ny * nx, [&](int64_t l) { return l; }, spacing[2]);
}

}  // namespace teachformer::metrics::detail
