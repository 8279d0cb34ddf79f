#include "teachformer/metrics/picai.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <functional>
#include <sstream>
#include <unordered_map>

#include "teachformer/core/error.hpp"
#include "teachformer/version.hpp"

namespace teachformer::metrics::picai {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// A float map as a contiguous float32 [Z, Y, X] tensor, checked finite and non-negative.
torch::Tensor as_map(const torch::Tensor& t, const char* what) {
  TF_CHECK(t.defined() && (t.dim() == 3 || (t.dim() == 4 && t.size(0) == 1)), InvalidArgument, what,
           ": expected a map of shape [Z, Y, X] or [1, Z, Y, X], got ",
           t.defined() ? t.sizes().vec() : std::vector<int64_t>{});
  torch::Tensor m = (t.dim() == 4 ? t.select(0, 0) : t).to(torch::kFloat32).contiguous();
  if (m.numel() > 0) {
    TF_CHECK(m.isfinite().all().item<bool>(), InvalidArgument, what, ": values must be finite");
    const float lo = m.min().item<float>();
    TF_CHECK(lo >= 0, InvalidArgument, what, ": values must be >= 0 (confidences/probabilities), found ", lo);
  }
  return m;
}

/// Kept blobs of one static thresholding pass.
struct Blobs {
  torch::Tensor labels;             // int32, 0 = none or dropped
  std::vector<float> confidence;    // per component id - 1 (0 for dropped ones)
  std::vector<int64_t> sizes;       // per component id - 1
  std::vector<bool> kept;
};

/// 26-connected blobs of the non-zero voxels >= threshold; blobs of <= min_voxels voxels are marked dropped.
Blobs static_blobs(const torch::Tensor& map, double threshold, int64_t min_voxels) {
  const float* v = map.data_ptr<float>();
  torch::Tensor mask = torch::empty(map.sizes(), torch::kUInt8);
  uint8_t* m = mask.data_ptr<uint8_t>();
  for (int64_t i = 0; i < map.numel(); ++i) m[i] = v[i] != 0.0f && double(v[i]) >= threshold;
  Components c = connected_components(mask, Connectivity::Corners);
  Blobs b;
  b.labels = c.labels;
  b.sizes = c.sizes;
  b.confidence.assign(static_cast<size_t>(c.count), 0.0f);
  b.kept.assign(static_cast<size_t>(c.count), false);
  const int32_t* lab = c.labels.data_ptr<int32_t>();
  for (int64_t i = 0; i < map.numel(); ++i)
    if (lab[i]) b.confidence[lab[i] - 1] = std::max(b.confidence[lab[i] - 1], v[i]);
  for (int64_t k = 0; k < c.count; ++k) b.kept[k] = c.sizes[k] > min_voxels;
  return b;
}

/// True when a voxel of blob `id` has a 26-neighbour (or itself) with a non-zero index in `indexed`.
bool touches(const int32_t* lab, int32_t id, const int32_t* indexed, int64_t nz, int64_t ny, int64_t nx) {
  for (int64_t z = 0; z < nz; ++z)
    for (int64_t y = 0; y < ny; ++y)
      for (int64_t x = 0; x < nx; ++x) {
        if (lab[(z * ny + y) * nx + x] != id) continue;
        for (int64_t dz = -1; dz <= 1; ++dz)
          for (int64_t dy = -1; dy <= 1; ++dy)
            for (int64_t dx = -1; dx <= 1; ++dx) {
              const int64_t zz = z + dz, yy = y + dy, xx = x + dx;
              if (zz < 0 || yy < 0 || xx < 0 || zz >= nz || yy >= ny || xx >= nx) continue;
              if (indexed[(zz * ny + yy) * nx + xx]) return true;
            }
      }
  return false;
}

/// sklearn's _binary_clf_curve: cumulative (fps, tps) at each distinct score, scores descending.
void binary_clf_curve(const std::vector<int>& y_true, const std::vector<double>& score, std::vector<double>& fps,
                      std::vector<double>& tps, std::vector<double>& thresholds) {
  std::vector<size_t> order(score.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] > score[b]; });
  double tp = 0, fp = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    (y_true[order[k]] ? tp : fp) += 1;
    if (k + 1 == order.size() || score[order[k + 1]] != score[order[k]]) {
      fps.push_back(fp);
      tps.push_back(tp);
      thresholds.push_back(score[order[k]]);
    }
  }
}

Json finite_or_null(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json array_of(const std::vector<double>& v) {
  Json a = Json::array();
  for (double x : v) a.push_back(finite_or_null(x));
  return a;
}

}  // namespace

void parse_threshold(const std::string& text, CandidateOptions& options) {
  if (text == "dynamic") {
    options.mode = ThresholdMode::Dynamic;
    return;
  }
  if (text == "dynamic-fast") {
    options.mode = ThresholdMode::DynamicFast;
    return;
  }
  size_t used = 0;
  double value = kNaN;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  TF_CHECK(used == text.size() && used > 0 && std::isfinite(value) && value > 0 && value <= 1, InvalidArgument,
           "lesion candidate threshold: expected 'dynamic', 'dynamic-fast' or a number in (0, 1], got '", text, "'");
  options.mode = ThresholdMode::Static;
  options.static_threshold = value;
}

LesionCandidates extract_lesion_candidates(const torch::Tensor& probabilities, const CandidateOptions& o) {
  TF_CHECK(o.min_voxels >= 0, InvalidArgument, "extract_lesion_candidates: min_voxels must be >= 0, got ",
           o.min_voxels);
  TF_CHECK(o.dynamic_threshold_factor > 1, InvalidArgument,
           "extract_lesion_candidates: dynamic_threshold_factor must be > 1, got ", o.dynamic_threshold_factor);
  TF_CHECK(o.num_lesions_to_extract >= 1, InvalidArgument,
           "extract_lesion_candidates: num_lesions_to_extract must be >= 1, got ", o.num_lesions_to_extract);
  TF_CHECK(o.mode != ThresholdMode::Static || (o.static_threshold > 0 && o.static_threshold <= 1), InvalidArgument,
           "extract_lesion_candidates: static threshold must lie in (0, 1], got ", o.static_threshold);
  torch::Tensor working = as_map(probabilities, "extract_lesion_candidates").clone();
  const int64_t nz = working.size(0), ny = working.size(1), nx = working.size(2);
  const int64_t n = working.numel();
  LesionCandidates out;
  out.detection_map = torch::zeros({nz, ny, nx}, torch::kFloat32);
  out.indexed = torch::zeros({nz, ny, nx}, torch::kInt32);
  float* det = out.detection_map.data_ptr<float>();
  int32_t* idx = out.indexed.data_ptr<int32_t>();
  float* w = working.data_ptr<float>();
  if (n == 0) return out;

  if (o.mode != ThresholdMode::Dynamic) {
    const double peak = working.max().item<float>();
    const double threshold = o.mode == ThresholdMode::Static ? o.static_threshold : peak / o.dynamic_threshold_factor;
    if (peak <= 0) return out;
    const Blobs b = static_blobs(working, threshold, o.min_voxels);
    std::vector<int32_t> renumber(b.kept.size() + 1, 0);
    for (size_t k = 0; k < b.kept.size(); ++k)
      if (b.kept[k]) {
        renumber[k + 1] = static_cast<int32_t>(out.candidates.size() + 1);
        out.candidates.push_back({renumber[k + 1], b.confidence[k], b.sizes[k]});
      }
    const int32_t* lab = b.labels.data_ptr<int32_t>();
    for (int64_t i = 0; i < n; ++i)
      if (lab[i] && renumber[lab[i]]) {
        idx[i] = renumber[lab[i]];
        det[i] = b.confidence[lab[i] - 1];
      }
    return out;
  }

  int32_t next_index = 1;
  while (static_cast<int>(out.candidates.size()) < o.num_lesions_to_extract) {
    const double peak = working.max().item<float>();
    if (peak < o.stop_below || peak <= 0) break;
    const double threshold = peak / o.dynamic_threshold_factor;
    const Blobs b = static_blobs(working, threshold, o.min_voxels);
    // The first kept blob (raster order) holding the largest kept confidence.
    int64_t best = -1;
    for (size_t k = 0; k < b.kept.size(); ++k)
      if (b.kept[k] && (best < 0 || b.confidence[k] > b.confidence[best])) best = static_cast<int64_t>(k);
    if (best < 0) {
      // Only blobs of <= min_voxels voxels passed: clear everything above the threshold and go on.
      for (int64_t i = 0; i < n; ++i)
        if (double(w[i]) > threshold) w[i] = 0;
      continue;
    }
    const int32_t id = static_cast<int32_t>(best + 1);
    const int32_t* lab = b.labels.data_ptr<int32_t>();
    const bool adjacent = o.remove_adjacent_candidates && touches(lab, id, idx, nz, ny, nx);
    const int32_t index = next_index;
    if (!adjacent) {
      ++next_index;
      out.candidates.push_back({index, b.confidence[best], b.sizes[best]});
    }
    for (int64_t i = 0; i < n; ++i) {
      if (lab[i] != id) continue;
      if (!adjacent) {
        det[i] = b.confidence[best];
        idx[i] = index;
      }
      w[i] = 0;
    }
  }
  return out;
}

bool is_detection_map(const torch::Tensor& map) {
  const torch::Tensor m = as_map(map, "is_detection_map");
  const Components c = connected_components(m, Connectivity::Corners);
  std::vector<float> value(static_cast<size_t>(c.count) + 1, -1.0f);  // first value seen in each blob
  const float* v = m.data_ptr<float>();
  const int32_t* lab = c.labels.data_ptr<int32_t>();
  for (int64_t i = 0; i < m.numel(); ++i) {
    if (!lab[i]) continue;
    if (value[lab[i]] < 0) value[lab[i]] = v[i];
    else if (value[lab[i]] != v[i]) return false;
  }
  return true;
}

std::vector<int> maximum_assignment(const std::vector<double>& value, int rows, int cols) {
  TF_CHECK(rows >= 0 && cols >= 0 && value.size() == static_cast<size_t>(rows) * static_cast<size_t>(cols),
           InvalidArgument, "maximum_assignment: expected ", rows, " x ", cols, " values, got ", value.size());
  std::vector<int> result(static_cast<size_t>(rows), -1);
  if (rows == 0 || cols == 0) return result;
  // Shortest augmenting paths with potentials (Kuhn-Munkres) on costs -value, needing n <= m.
  const bool transposed = rows > cols;
  const int n = transposed ? cols : rows, m = transposed ? rows : cols;
  auto cost = [&](int i, int j) {  // 1-based
    return transposed ? -value[static_cast<size_t>(j - 1) * cols + (i - 1)]
                      : -value[static_cast<size_t>(i - 1) * cols + (j - 1)];
  };
  std::vector<double> u(n + 1, 0), v(m + 1, 0);
  std::vector<int> p(m + 1, 0), way(m + 1, 0);
  for (int i = 1; i <= n; ++i) {
    p[0] = i;
    int j0 = 0;
    std::vector<double> minv(m + 1, kInf);
    std::vector<bool> used(m + 1, false);
    do {
      used[j0] = true;
      const int i0 = p[j0];
      double delta = kInf;
      int j1 = 0;
      for (int j = 1; j <= m; ++j) {
        if (used[j]) continue;
        const double cur = cost(i0, j) - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (int j = 0; j <= m; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      const int j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  for (int j = 1; j <= m; ++j) {
    if (!p[j]) continue;
    if (transposed) result[j - 1] = p[j] - 1;
    else result[p[j] - 1] = j - 1;
  }
  return result;
}

CaseDetection evaluate_detection_case(const torch::Tensor& detection_map, const torch::Tensor& reference,
                                      const MatchOptions& o) {
  TF_CHECK(o.min_overlap >= 0 && o.min_overlap <= 1, InvalidArgument,
           "evaluate_detection_case: min_overlap must lie in [0, 1], got ", o.min_overlap);
  const torch::Tensor det = as_map(detection_map, "evaluate_detection_case: detection map");
  TF_CHECK(reference.defined() && (reference.dim() == 3 || (reference.dim() == 4 && reference.size(0) == 1)),
           InvalidArgument, "evaluate_detection_case: expected a reference of shape [Z, Y, X] or [1, Z, Y, X]");
  const torch::Tensor ref = (reference.dim() == 4 ? reference.select(0, 0) : reference).ne(0);
  TF_CHECK(det.sizes() == ref.sizes(), InvalidArgument, "evaluate_detection_case: detection map shape ",
           det.sizes().vec(), " differs from reference shape ", ref.sizes().vec());
  const Components cand = connected_components(det, Connectivity::Corners);
  const Components gt = connected_components(ref, Connectivity::Corners);
  const float* d = det.data_ptr<float>();
  const int32_t* cl = cand.labels.data_ptr<int32_t>();
  const int32_t* gl = gt.labels.data_ptr<int32_t>();
  const int64_t n = det.numel();

  CaseDetection out;
  out.num_candidates = cand.count;
  out.num_lesions = gt.count;
  std::vector<double> confidence(static_cast<size_t>(cand.count), 0.0);
  std::unordered_map<int64_t, int64_t> intersection;  // gt * (count + 1) + cand -> voxels
  double case_max = 0;
  for (int64_t i = 0; i < n; ++i) {
    case_max = std::max(case_max, double(d[i]));
    if (cl[i]) confidence[cl[i] - 1] = std::max(confidence[cl[i] - 1], double(d[i]));
    if (cl[i] && gl[i]) ++intersection[int64_t(gl[i]) * (cand.count + 1) + cl[i]];
  }
  out.case_confidence = case_max;
  if (gt.count == 0) {
    for (int64_t c = 0; c < cand.count; ++c) out.lesions.push_back({0, confidence[c], 0.0});
    out.case_target = 0;
    return out;
  }
  // Overlap (IoU with picai's 1e-8 smoothing), zeroed below min_overlap, shifted by +1 so the assignment
  // maximises the number of hits first and the total overlap second.
  const int rows = static_cast<int>(gt.count), cols = static_cast<int>(cand.count);
  std::vector<double> score(static_cast<size_t>(rows) * cols, 0.0);
  constexpr double kEps = 1e-8;
  for (int g = 0; g < rows; ++g)
    for (int c = 0; c < cols; ++c) {
      const auto it = intersection.find(int64_t(g + 1) * (cand.count + 1) + (c + 1));
      const double inter = it == intersection.end() ? 0.0 : double(it->second);
      const double uni = double(gt.sizes[g]) + double(cand.sizes[c]) - inter;
      const double iou = (inter + kEps) / (uni + kEps);
      score[static_cast<size_t>(g) * cols + c] = iou < o.min_overlap ? 0.0 : iou + 1.0;
    }
  const std::vector<int> match = maximum_assignment(score, rows, cols);
  std::vector<bool> candidate_matched(static_cast<size_t>(cols), false), lesion_matched(static_cast<size_t>(rows), false);
  for (int g = 0; g < rows; ++g) {
    const int c = match[g];
    if (c < 0 || score[static_cast<size_t>(g) * cols + c] <= 0) continue;
    lesion_matched[g] = candidate_matched[c] = true;
    out.lesions.push_back({1, confidence[c], score[static_cast<size_t>(g) * cols + c] - 1.0});
  }
  for (int g = 0; g < rows; ++g)
    if (!lesion_matched[g]) out.lesions.push_back({1, 0.0, 0.0});
  for (int c = 0; c < cols; ++c) {
    bool sufficient = false;
    for (int g = 0; g < rows; ++g) sufficient |= score[static_cast<size_t>(g) * cols + c] > 0;
    const bool fp = o.allow_unmatched_candidates_with_minimal_overlap ? !sufficient : !candidate_matched[c];
    if (fp) out.lesions.push_back({0, confidence[c], 0.0});
  }
  out.case_target = 1;
  return out;
}

DetectionMetrics compute_detection_metrics(const std::map<std::string, CaseDetection>& cases) {
  DetectionMetrics m;
  m.num_cases = static_cast<int64_t>(cases.size());
  std::vector<int> y_true;
  std::vector<double> y_pred;
  std::vector<int> case_target;
  std::vector<double> case_pred;
  for (const auto& [id, c] : cases) {
    for (const auto& l : c.lesions) {
      y_true.push_back(l.is_lesion);
      y_pred.push_back(l.confidence);
      m.num_lesions += l.is_lesion;
    }
    case_target.push_back(c.case_target);
    case_pred.push_back(c.case_confidence);
  }

  // Lesion-level precision-recall (sklearn precision_recall_curve, all thresholds) and AP.
  m.ap = kNaN;
  if (!y_true.empty()) {
    std::vector<double> fps, tps, th;
    binary_clf_curve(y_true, y_pred, fps, tps, th);
    const size_t k = tps.size();
    std::vector<double> precision(k), recall(k);
    for (size_t i = 0; i < k; ++i) {
      precision[i] = tps[i] + fps[i] > 0 ? tps[i] / (tps[i] + fps[i]) : 0.0;
      recall[i] = tps.back() > 0 ? tps[i] / tps.back() : 1.0;
    }
    for (size_t i = k; i-- > 0;) {
      // Missed lesions enter with confidence 0 only to count them: no precision there (picai_eval).
      m.precision.push_back(th[i] == 0.0 ? 0.0 : precision[i]);
      m.recall.push_back(recall[i]);
    }
    m.precision.push_back(1.0);
    m.recall.push_back(0.0);
    double ap = 0;
    for (size_t i = 0; i + 1 < m.recall.size(); ++i) ap -= (m.recall[i + 1] - m.recall[i]) * m.precision[i];
    m.ap = ap;
  }

  // Case-level ROC (sklearn roc_curve with drop_intermediate) and its trapezoidal area.
  m.auroc = kNaN;
  if (!case_target.empty()) {
    std::vector<double> fps, tps, th;
    binary_clf_curve(case_target, case_pred, fps, tps, th);
    std::vector<double> f{0.0}, t{0.0};
    for (size_t i = 0; i < fps.size(); ++i) {
      const bool endpoint = i == 0 || i + 1 == fps.size();
      const bool corner = !endpoint && (fps[i + 1] - 2 * fps[i] + fps[i - 1] != 0 || tps[i + 1] - 2 * tps[i] + tps[i - 1] != 0);
      if (fps.size() <= 2 || endpoint || corner) {
        f.push_back(fps[i]);
        t.push_back(tps[i]);
      }
    }
    const double fmax = f.back(), tmax = t.back();
    for (size_t i = 0; i < f.size(); ++i) {
      m.case_fpr.push_back(fmax > 0 ? f[i] / fmax : kNaN);
      m.case_tpr.push_back(tmax > 0 ? t[i] / tmax : kNaN);
    }
    if (fmax > 0 && tmax > 0) {
      double area = 0;
      for (size_t i = 0; i + 1 < f.size(); ++i)
        area += (m.case_fpr[i + 1] - m.case_fpr[i]) * (m.case_tpr[i + 1] + m.case_tpr[i]) / 2;
      m.auroc = area;
    }
  }
  m.score = (m.auroc + m.ap) / 2;

  // FROC: sensitivity and false positives per case at every distinct lesion confidence (descending).
  std::vector<double> th(y_pred);
  std::sort(th.begin(), th.end(), std::greater<double>());
  th.erase(std::unique(th.begin(), th.end()), th.end());
  if (th.size() > 10000) {
    // picai_eval thins to about 10,000 thresholds, keeping those above 0.8 and the lowest 20. Its
    // np.arange(1, n, n / 10000, dtype=int32) advances by floor(n / 10000) (numpy fills integer ranges with
    // the first difference); that is reproduced here.
    const size_t total = th.size();
    const double step = double(total) / 10000.0;
    const auto stride = static_cast<size_t>(std::floor(step));
    const auto count = static_cast<size_t>(std::ceil(double(total - 1) / step));
    std::vector<bool> keep(total, false);
    for (size_t i = 0; i < count; ++i) keep[1 + i * stride] = true;
    for (size_t i = total - 20; i < total; ++i) keep[i] = true;
    std::vector<double> thinned;
    for (size_t i = 0; i < total; ++i)
      if (th[i] > 0.8 || keep[i]) thinned.push_back(th[i]);
    th = thinned;
  }
  m.thresholds = th;
  std::vector<double> tp(th.size(), 0), fp(th.size(), 0);
  for (size_t i = 0; i < th.size(); ++i)
    for (size_t k = 0; k < y_pred.size(); ++k)
      if (y_pred[k] >= th[i]) (y_true[k] ? tp[i] : fp[i]) += 1;
  if (!th.empty()) {
    if (th.size() >= 2) tp.back() = tp[tp.size() - 2];
    fp.back() = kInf;  // the curve is extended to infinitely many false positives
  }
  for (size_t i = 0; i < th.size(); ++i) {
    m.sensitivity.push_back(m.num_lesions > 0 ? tp[i] / double(m.num_lesions) : kNaN);
    m.fp_per_case.push_back(m.num_cases > 0 ? fp[i] / double(m.num_cases) : kNaN);
  }
  return m;
}

double sensitivity_at(const DetectionMetrics& m, double fp_per_case) {
  if (m.fp_per_case.empty()) return kNaN;
  if (*std::min_element(m.fp_per_case.begin(), m.fp_per_case.end()) > fp_per_case) return 0.0;
  double s = 0.0;
  for (size_t i = 0; i < m.fp_per_case.size(); ++i)
    if (m.fp_per_case[i] <= fp_per_case) s = m.sensitivity[i];
  return s;
}

Json to_picai_json(const DetectionMetrics& m, const std::map<std::string, CaseDetection>& cases) {
  Json j;
  j["auroc"] = finite_or_null(m.auroc);
  j["AP"] = finite_or_null(m.ap);
  j["score"] = finite_or_null(m.score);
  j["num_cases"] = m.num_cases;
  j["num_lesions"] = m.num_lesions;
  j["picai_eval_version"] = std::string("teachformer ") + kVersion + " (picai_eval 1.4 layout)";
  Json results = Json::object(), weights = Json::object(), pred = Json::object(), target = Json::object(),
       case_weight = Json::object();
  for (const auto& [id, c] : cases) {
    Json list = Json::array(), w = Json::array();
    for (const auto& l : c.lesions) {
      list.push_back(Json::array({l.is_lesion, l.confidence, l.overlap}));
      w.push_back(1);
    }
    results[id] = list;
    weights[id] = w;
    pred[id] = c.case_confidence;
    target[id] = c.case_target;
    case_weight[id] = 1;
  }
  j["lesion_results"] = results;
  j["lesion_weight"] = weights;
  j["case_pred"] = pred;
  j["case_target"] = target;
  j["case_weight"] = case_weight;
  j["precision"] = array_of(m.precision);
  j["recall"] = array_of(m.recall);
  j["thresholds"] = array_of(m.thresholds);
  j["lesion_TPR"] = array_of(m.sensitivity);
  j["lesion_FPR"] = array_of(m.fp_per_case);
  j["sensitivity"] = array_of(m.sensitivity);
  j["fp_per_case"] = array_of(m.fp_per_case);
  j["fpr"] = array_of(m.case_fpr);
  j["tpr"] = array_of(m.case_tpr);
  Json points = Json::object();
  for (double fp : {0.25, 0.5, 1.0, 2.0, 3.0}) {
    std::ostringstream key;
    key << fp;
    points[key.str()] = finite_or_null(sensitivity_at(m, fp));
  }
  j["sensitivity_at_fp_per_case"] = points;
  return j;
}

}  // namespace teachformer::metrics::picai
