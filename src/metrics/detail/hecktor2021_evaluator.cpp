// hecktor2021: the official evaluation inside the per-patient bounding box, with its scores of empty and missing
// cases and the leaderboard.
#include <limits>

#include <spdlog/spdlog.h>

#include "metrics/detail/protocol_evaluators.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/data/bbox_csv.hpp"
#include "teachformer/metrics/surface_distance.hpp"

namespace teachformer::metrics::detail {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

MetricRow hecktor2021_row(const BinaryMetrics& m, bool missing, bool official) {
  double dice = m.dice, precision = m.precision, recall = m.recall, hd95 = m.hd95;
  switch (m.empty) {
    case EmptyCase::None: break;
    case EmptyCase::PredictionEmpty:
      dice = 0, precision = 0, recall = 0;
      hd95 = official ? 0.0 : kInf;  // the official evaluator short-cuts empty predictions to HD95 0
      break;
    case EmptyCase::ReferenceEmpty:
      dice = 0, precision = 0, recall = kNaN, hd95 = kInf;  // DeepMind's Dice formula; distances to nothing
      break;
    case EmptyCase::BothEmpty:
      dice = precision = recall = hd95 = official ? 0.0 : kNaN;
      break;
  }
  if (missing) dice = 0, precision = 0, recall = 0, hd95 = kInf;  // the official score of a missing case
  return {{"Dice", dice},
          {"HD95", hd95},
          {"Precision", precision},
          {"Recall", recall},
          {"TP", double(m.counts.tp)},
          {"FP", double(m.counts.fp)},
          {"FN", double(m.counts.fn)},
          {"n_pred", double(m.counts.n_pred())},
          {"n_ref", double(m.counts.n_ref())},
          {"volume_pred_mm3", m.volume_pred_mm3},
          {"volume_ref_mm3", m.volume_ref_mm3}};
}

}  // namespace

void Hecktor2021Evaluator::prepare(const Pairing& pairing) {
  const auto& csv = options_.bbox_csv;
  if (csv.empty()) {
    spdlog::warn("evaluate: hecktor2021 without --bbox evaluates whole images (the official evaluation crops "
                 "to the bounding box)");
    return;
  }
  boxes_ = data::read_bounding_boxes(csv);
  std::vector<std::string> absent;
  for (const auto& c : pairing.cases)
    if (!boxes_.count(c.case_id)) absent.push_back(c.case_id);
  TF_CHECK(absent.empty(), DatasetError, "bounding-box CSV '", csv.string(), "' has no row for ", absent.size(),
           " case(s), e.g. '", absent.empty() ? "" : absent.front(), "' (PatientID must equal ", "the case id)");
}

void Hecktor2021Evaluator::evaluate_case(size_t, const CasePair& pair, const io::Volume& reference, CaseWork& w) {
  torch::Tensor pred = w.eval.missing ? torch::zeros_like(reference.data) : io::read_label(pair.prediction).data;
  torch::Tensor ref_map = reference.data;
  if (!boxes_.empty()) {
    const transforms::BoundingBox& box = boxes_.at(pair.case_id);
    int64_t inside = 0;
    ref_map = crop_to_world_box(ref_map, reference.grid(), box, &inside);
    pred = crop_to_world_box(pred, reference.grid(), box);
    TF_CHECK(inside > 0, DatasetError, "case '", pair.case_id, "': the bounding box of '", options_.bbox_csv.string(),
             "' contains no voxel centre of '", pair.reference.string(), "' (", reference.grid().to_string(), ")");
    w.numel = inside;
  }
  std::vector<int> labels = options_.labels;
  if (labels.empty()) {  // any non-zero voxel is the tumour, as the official evaluator does
    ref_map = ref_map.ne(0).to(torch::kUInt8);
    pred = pred.ne(0).to(torch::kUInt8);
    labels = {1};
  }
  MetricOptions mo;
  mo.method = SurfaceMethod::Surfels;
  mo.percentile = options_.percentile;
  const Vec3& spacing = reference.geometry.spacing;
  const Vec3 used = options_.hecktor_official ? Vec3{spacing[2], spacing[1], spacing[0]} : spacing;
  auto metrics = compute_label_metrics(pred, ref_map, used, labels, mo);
  for (auto& [label, m] : metrics) {
    m.voxel_volume_mm3 = w.voxel_volume;  // volumes use the true spacing even in official mode
    m.volume_pred_mm3 = double(m.counts.n_pred()) * w.voxel_volume;
    m.volume_ref_mm3 = double(m.counts.n_ref()) * w.voxel_volume;
    w.eval.metrics[label] = hecktor2021_row(m, w.eval.missing, options_.hecktor_official);
    w.eval.status[label] = m.empty;
  }
}

void Hecktor2021Evaluator::summarise(EvaluationResult& r, Json& settings, std::ostream& table) const {
  settings["surface_method"] = to_string(SurfaceMethod::Surfels);
  settings["bbox_csv"] = options_.bbox_csv.empty() ? Json(nullptr) : Json(options_.bbox_csv.string());
  settings["official_quirks"] = options_.hecktor_official;
  Json section = Json::object();
  for (int l : r.labels) {
    const MetricStats dsc = compute_stats(metric_values(r.cases, l, "Dice"));
    const MetricStats hd = compute_stats(metric_values(r.cases, l, "HD95"));
    const MetricStats pr = compute_stats(metric_values(r.cases, l, "Precision"));
    const MetricStats re = compute_stats(metric_values(r.cases, l, "Recall"));
    section[std::to_string(l)] = {{"mean_DSC", finite_or_null(dsc.mean)},
                                  {"median_HD95", finite_or_null(hd.median_with_inf)},
                                  {"median_HD95_finite", finite_or_null(hd.median)},
                                  {"n_HD95_inf", hd.n_inf},
                                  {"n_HD95_nan", hd.n_nan},
                                  {"mean_precision", finite_or_null(pr.mean)},
                                  {"mean_recall", finite_or_null(re.mean)}};
    table << "leaderboard (label " << l << "): mean DSC " << format_metric(dsc.mean) << ", median HD95 "
          << format_metric(hd.median_with_inf) << " mm (" << hd.n_inf << " infinite: missing or empty predictions)\n";
  }
  r.summary["hecktor2021"] = section;
  table << summary_table(r.cases, r.labels, {"Dice", "HD95", "Precision", "Recall"});
}

}  // namespace teachformer::metrics::detail
