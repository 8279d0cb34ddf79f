// Plain-loop reference computations for the loss tests (double precision, no torch expressions).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace teachformer::losses::test {

/// Logits and labels copied into plain arrays: logits[b][c][v], labels[b][v] with v the flattened voxel.
struct Plain {
  int64_t batch = 0, classes = 0, voxels = 0;
  std::vector<std::vector<std::vector<double>>> logits;
  std::vector<std::vector<int64_t>> labels;

  Plain(const torch::Tensor& z, const torch::Tensor& y) {
    const auto zf = z.to(torch::kDouble).contiguous();
    const auto yl = y.to(torch::kLong).contiguous();
    batch = zf.size(0);
    classes = zf.size(1);
    voxels = zf[0][0].numel();
    const double* zp = zf.data_ptr<double>();
    const int64_t* yp = yl.data_ptr<int64_t>();
    logits.assign(batch, std::vector<std::vector<double>>(classes, std::vector<double>(voxels)));
    labels.assign(batch, std::vector<int64_t>(voxels));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < classes; ++c)
        for (int64_t v = 0; v < voxels; ++v) logits[b][c][v] = zp[(b * classes + c) * voxels + v];
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t v = 0; v < voxels; ++v) labels[b][v] = yp[b * voxels + v];
  }

  /// softmax probability of class c at (b, v).
  double prob(int64_t b, int64_t c, int64_t v) const {
    double m = logits[b][0][v];
    for (int64_t k = 1; k < classes; ++k) m = std::max(m, logits[b][k][v]);
    double s = 0.0;
    for (int64_t k = 0; k < classes; ++k) s += std::exp(logits[b][k][v] - m);
    return std::exp(logits[b][c][v] - m) / s;
  }
};

/// Soft Dice loss by loops.
inline double reference_dice(const Plain& p, bool include_background, bool batch_dice, double nr, double dr) {
  const int64_t c0 = include_background ? 0 : 1;
  double total = 0.0;
  int64_t count = 0;
  if (batch_dice) {
    for (int64_t c = c0; c < p.classes; ++c) {
      double inter = 0, ps = 0, ys = 0;
      for (int64_t b = 0; b < p.batch; ++b)
        for (int64_t v = 0; v < p.voxels; ++v) {
          const double q = p.prob(b, c, v);
          const double y = p.labels[b][v] == c ? 1.0 : 0.0;
          inter += q * y;
          ps += q;
          ys += y;
        }
      total += 1.0 - (2 * inter + nr) / (ps + ys + dr);
      ++count;
    }
  } else {
    for (int64_t b = 0; b < p.batch; ++b)
      for (int64_t c = c0; c < p.classes; ++c) {
        double inter = 0, ps = 0, ys = 0;
        for (int64_t v = 0; v < p.voxels; ++v) {
          const double q = p.prob(b, c, v);
          const double y = p.labels[b][v] == c ? 1.0 : 0.0;
          inter += q * y;
          ps += q;
          ys += y;
        }
        total += 1.0 - (2 * inter + nr) / (ps + ys + dr);
        ++count;
      }
  }
  return total / count;
}

/// Weighted cross-entropy (weighted mean) by loops; empty weights = 1.
inline double reference_ce(const Plain& p, const std::vector<double>& w) {
  double num = 0, den = 0;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t v = 0; v < p.voxels; ++v) {
      const int64_t y = p.labels[b][v];
      const double wy = w.empty() ? 1.0 : w[y];
      num += -wy * std::log(p.prob(b, y, v));
      den += wy;
    }
  return num / den;
}

/// Focal loss by loops; empty alpha = 1; mean over voxels and batch or sum.
inline double reference_focal(const Plain& p, double gamma, const std::vector<double>& alpha, bool sum) {
  double total = 0;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t v = 0; v < p.voxels; ++v) {
      const int64_t y = p.labels[b][v];
      const double q = p.prob(b, y, v);
      total += -(alpha.empty() ? 1.0 : alpha[y]) * std::pow(1.0 - q, gamma) * std::log(q);
    }
  return sum ? total : total / double(p.batch * p.voxels);
}

}  // namespace teachformer::losses::test
