#include "teachformer/metrics/segmentation_metrics.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <mutex>
#include <numeric>

#include <ATen/Parallel.h>

#include "metrics/detail/mask.hpp"
#include "metrics/detail/surface.hpp"
#include "teachformer/core/error.hpp"

namespace teachformer::metrics {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double ratio(int64_t num, int64_t den) { return den > 0 ? double(num) / double(den) : kNaN; }

void check_spacing(const Vec3& spacing, const char* what) {
  for (int a = 0; a < 3; ++a)
    TF_CHECK(std::isfinite(spacing[a]) && spacing[a] > 0, InvalidArgument, what,
             ": spacing must be positive and finite in every axis, got ", spacing);
}

void check_options(const MetricOptions& o) {
  TF_CHECK(o.percentile >= 0 && o.percentile <= 100, InvalidArgument,
           "metric options: percentile must lie in [0, 100], got ", o.percentile);
  TF_CHECK(std::isfinite(o.nsd_tolerance_mm) && o.nsd_tolerance_mm >= 0, InvalidArgument,
           "metric options: nsd_tolerance_mm must be finite and >= 0, got ", o.nsd_tolerance_mm);
}

/// Joint histogram of (pred value, ref value) and the bounding box of every value in each map, in one pass.
struct LabelStats {
  std::vector<int64_t> joint = std::vector<int64_t>(256 * 256, 0);
  std::array<detail::Box, 256> pred_box{}, ref_box{};
};

void extend(detail::Box& b, int64_t z, int64_t y, int64_t x) {
  if (b.empty()) {
    b = {z, z + 1, y, y + 1, x, x + 1};
    return;
  }
  b.z0 = std::min(b.z0, z); b.z1 = std::max(b.z1, z + 1);
  b.y0 = std::min(b.y0, y); b.y1 = std::max(b.y1, y + 1);
  b.x0 = std::min(b.x0, x); b.x1 = std::max(b.x1, x + 1);
}

LabelStats label_stats(const uint8_t* p, const uint8_t* r, const detail::Dims& d) {
  LabelStats total;
  std::mutex mutex;
  const int64_t planes = d.z * d.y;  // rows of x
  at::parallel_for(0, planes, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, d.x)), [&](int64_t b, int64_t e) {
    LabelStats local;
    for (int64_t row = b; row < e; ++row) {
      const int64_t z = row / d.y, y = row % d.y;
      const uint8_t* pr = p + row * d.x;
      const uint8_t* rr = r + row * d.x;
      for (int64_t x = 0; x < d.x; ++x) {
        ++local.joint[pr[x] * 256 + rr[x]];
        if (pr[x]) extend(local.pred_box[pr[x]], z, y, x);
        if (rr[x]) extend(local.ref_box[rr[x]], z, y, x);
      }
    }
    std::lock_guard<std::mutex> lock(mutex);
    for (size_t i = 0; i < total.joint.size(); ++i) total.joint[i] += local.joint[i];
    for (int l = 0; l < 256; ++l) {
      total.pred_box[l] = total.pred_box[l].united(local.pred_box[l]);
      total.ref_box[l] = total.ref_box[l].united(local.ref_box[l]);
    }
  });
  return total;
}

OverlapCounts counts_for(const LabelStats& s, int label, int64_t numel) {
  OverlapCounts c;
  int64_t n_pred = 0, n_ref = 0;
  for (int v = 0; v < 256; ++v) {
    n_pred += s.joint[label * 256 + v];
    n_ref += s.joint[v * 256 + label];
  }
  c.tp = s.joint[label * 256 + label];
  c.fp = n_pred - c.tp;
  c.fn = n_ref - c.tp;
  c.tn = numel - c.tp - c.fp - c.fn;
  return c;
}

double weighted_sum(const std::vector<double>& v, const std::vector<double>& w) {
  double sum = 0;
  for (size_t i = 0; i < v.size(); ++i) sum += v[i] * w[i];
  return sum;
}

double weight_within(const std::vector<double>& v, const std::vector<double>& w, double tol) {
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i] <= tol) s += w[i];
  return s;
}

}  // namespace

std::string to_string(EmptyCase empty) {
  switch (empty) {
    case EmptyCase::None: return "ok";
    case EmptyCase::PredictionEmpty: return "pred_empty";
    case EmptyCase::ReferenceEmpty: return "ref_empty";
    case EmptyCase::BothEmpty: return "both_empty";
  }
  return "?";
}

BinaryMetrics metrics_from_counts(const OverlapCounts& c, double voxel_volume_mm3) {
  BinaryMetrics m;
  m.counts = c;
  m.voxel_volume_mm3 = voxel_volume_mm3;
  m.volume_pred_mm3 = double(c.n_pred()) * voxel_volume_mm3;
  m.volume_ref_mm3 = double(c.n_ref()) * voxel_volume_mm3;
  const bool pred_empty = c.n_pred() == 0, ref_empty = c.n_ref() == 0;
  m.empty = pred_empty && ref_empty ? EmptyCase::BothEmpty
            : pred_empty            ? EmptyCase::PredictionEmpty
            : ref_empty             ? EmptyCase::ReferenceEmpty
                                    : EmptyCase::None;
  m.precision = ratio(c.tp, c.n_pred());
  m.recall = ratio(c.tp, c.n_ref());
  switch (m.empty) {
    case EmptyCase::None:
      m.dice = ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn);
      m.iou = ratio(c.tp, c.tp + c.fp + c.fn);
      m.hd95 = m.hd = m.assd = m.masd = m.nsd = kNaN;  // filled by apply_surface_distances
      break;
    case EmptyCase::PredictionEmpty:
      m.dice = m.iou = 0.0;
      m.hd95 = kNaN;
      m.hd = m.assd = m.masd = kInf;
      m.nsd = 0.0;
      break;
    case EmptyCase::ReferenceEmpty:
      // Nothing to find: overlap ratios relative to the reference are undefined (MONAI's ignore_empty).
      m.dice = m.iou = kNaN;
      m.hd95 = kNaN;
      m.hd = m.assd = m.masd = kInf;
      m.nsd = kNaN;
      break;
    case EmptyCase::BothEmpty:
      m.dice = m.iou = kNaN;
      m.hd95 = m.hd = m.assd = m.masd = m.nsd = kNaN;
      break;
  }
  return m;
}

void apply_surface_distances(BinaryMetrics& m, const SurfaceDistances& s, const MetricOptions& o) {
  check_options(o);
  if (m.empty != EmptyCase::None) return;  // fixed by the empty-mask policy
  TF_CHECK(!s.pred_to_ref.empty() && !s.ref_to_pred.empty(), InternalError,
           "surface metrics: non-empty masks produced an empty surface");
  const double max_pr = *std::max_element(s.pred_to_ref.begin(), s.pred_to_ref.end());
  const double max_rp = *std::max_element(s.ref_to_pred.begin(), s.ref_to_pred.end());
  m.hd = std::max(max_pr, max_rp);
  const double sum_pr = weighted_sum(s.pred_to_ref, s.pred_weights), sum_rp = weighted_sum(s.ref_to_pred, s.ref_weights);
  const double w_pr = std::accumulate(s.pred_weights.begin(), s.pred_weights.end(), 0.0);
  const double w_rp = std::accumulate(s.ref_weights.begin(), s.ref_weights.end(), 0.0);
  m.assd = (sum_pr + sum_rp) / (w_pr + w_rp);
  m.masd = 0.5 * (sum_pr / w_pr + sum_rp / w_rp);
  const double within = weight_within(s.pred_to_ref, s.pred_weights, o.nsd_tolerance_mm) +
                        weight_within(s.ref_to_pred, s.ref_weights, o.nsd_tolerance_mm);
  m.nsd = within / (w_pr + w_rp);
  if (o.method == SurfaceMethod::VoxelSurface) {
    m.hd95 = std::max(percentile_linear(s.pred_to_ref, o.percentile), percentile_linear(s.ref_to_pred, o.percentile));
  } else {
    m.hd95 = std::max(weighted_percentile(s.pred_to_ref, s.pred_weights, o.percentile),
                      weighted_percentile(s.ref_to_pred, s.ref_weights, o.percentile));
  }
}

std::map<int, BinaryMetrics> compute_label_metrics(const torch::Tensor& pred, const torch::Tensor& ref,
                                                   const Vec3& spacing, const std::vector<int>& labels,
                                                   const MetricOptions& options) {
  check_spacing(spacing, "compute_label_metrics");
  check_options(options);
  const torch::Tensor p = detail::as_label_tensor(pred, "compute_label_metrics: prediction");
  const torch::Tensor r = detail::as_label_tensor(ref, "compute_label_metrics: reference");
  TF_CHECK(p.sizes() == r.sizes(), InvalidArgument, "compute_label_metrics: prediction shape ", p.sizes().vec(),
           " differs from reference shape ", r.sizes().vec());
  for (int l : labels)
    TF_CHECK(l >= 1 && l <= 255, InvalidArgument, "compute_label_metrics: labels must lie in [1, 255], got ", l);
  const detail::Dims d = detail::dims_of(p);
  const uint8_t* pd = p.data_ptr<uint8_t>();
  const uint8_t* rd = r.data_ptr<uint8_t>();
  const LabelStats stats = label_stats(pd, rd, d);
  const double voxel_volume = spacing[0] * spacing[1] * spacing[2];

  std::map<int, BinaryMetrics> out;
  for (int l : labels) {
    BinaryMetrics m = metrics_from_counts(counts_for(stats, l, d.numel()), voxel_volume);
    if (options.surface_metrics && m.empty == EmptyCase::None) {
      const detail::Box box = stats.pred_box[l].united(stats.ref_box[l]);
      const auto cp = detail::crop_mask(pd, d, box, l);
      const auto cr = detail::crop_mask(rd, d, box, l);
      apply_surface_distances(m, detail::surface_distances_raw(cp.data(), cr.data(), box.dims(), spacing,
                                                               options.method),
                              options);
    }
    out[l] = m;
  }
  return out;
}

BinaryMetrics compute_binary_metrics(const torch::Tensor& pred, const torch::Tensor& ref, const Vec3& spacing,
                                     const MetricOptions& options) {
  auto binary = [](const torch::Tensor& t, const char* what) {
    TF_CHECK(t.defined(), InvalidArgument, what, ": tensor is undefined");
    return detail::as_label_tensor(t.ne(0), what);
  };
  const torch::Tensor p = binary(pred, "compute_binary_metrics: prediction");
  const torch::Tensor r = binary(ref, "compute_binary_metrics: reference");
  return compute_label_metrics(p, r, spacing, {1}, options).at(1);
}

std::vector<int> present_labels(const torch::Tensor& labels) {
  const torch::Tensor t = detail::as_label_tensor(labels, "present_labels");
  std::array<bool, 256> seen{};
  const uint8_t* d = t.data_ptr<uint8_t>();
  for (int64_t i = 0; i < t.numel(); ++i) seen[d[i]] = true;
  std::vector<int> out;
  for (int l = 1; l < 256; ++l)
    if (seen[l]) out.push_back(l);
  return out;
}

}  // namespace teachformer::metrics
