#include "metrics/detail/edt.hpp"

#include <algorithm>
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

/// Runs the 1D pass in place over every line along one axis. Line (o, i) starts at o * outer_stride + i and its
/// elements lie `stride` apart; lines with consecutive i are adjacent in memory, so they are processed in tiles of
/// kTile lines whose gathers and scatters read whole cache lines (the y and z passes would otherwise miss the cache
/// on every element).
void pass(double* out, int64_t outer, int64_t inner, int64_t outer_stride, int64_t n, int64_t stride, double w) {
  if (n <= 0 || outer <= 0 || inner <= 0) return;
  constexpr int64_t kTile = 16;
  const int64_t tiles_per_outer = (inner + kTile - 1) / kTile;
  const int64_t tiles = outer * tiles_per_outer;
  const int64_t grain = std::max<int64_t>(1, 16384 / (n * kTile));
  at::parallel_for(0, tiles, grain, [&](int64_t begin, int64_t end) {
    LineScratch s(n);
    std::vector<double> tile(static_cast<size_t>(n * kTile));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t o = t / tiles_per_outer;
      const int64_t i0 = (t % tiles_per_outer) * kTile;
      const int64_t width = std::min(kTile, inner - i0);
      double* base = out + o * outer_stride + i0;
      for (int64_t k = 0; k < n; ++k)
        for (int64_t b = 0; b < width; ++b) tile[b * n + k] = base[k * stride + b];
      for (int64_t b = 0; b < width; ++b) {
        double* line = tile.data() + b * n;
        bool any = false;
        for (int64_t k = 0; k < n; ++k) {
          s.f[k] = line[k];
          any |= line[k] != kInf;
        }
        if (!any) continue;  // an all-infinite line stays infinite
        lower_envelope(s, n, w);
        std::copy(s.d.begin(), s.d.begin() + n, line);
      }
      for (int64_t k = 0; k < n; ++k)
        for (int64_t b = 0; b < width; ++b) base[k * stride + b] = tile[b * n + k];
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
  pass(out, nz * ny, 1, nx, nx, 1, spacing[0]);
  pass(out, nz, nx, ny * nx, ny, nx, spacing[1]);
  pass(out, 1, ny * nx, 0, nz, ny * nx, spacing[2]);
}

}  // namespace teachformer::metrics::detail
