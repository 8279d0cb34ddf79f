// generic and hecktor2022: per-label overlap and surface metrics; hecktor2022 adds the aggregated Dice.
#include <cmath>
#include <limits>
#include <set>

#include "metrics/detail/protocol_evaluators.hpp"
#include "teachformer/metrics/surface_distance.hpp"

namespace teachformer::metrics::detail {

GenericEvaluator::GenericEvaluator(const EvaluateOptions& options, std::vector<int> default_labels)
    : ProtocolEvaluator(options), fixed_labels_(options.labels.empty() ? std::move(default_labels) : options.labels) {}

void GenericEvaluator::evaluate_case(size_t, const CasePair& pair, const io::Volume& reference, CaseWork& w) {
  const torch::Tensor pred = w.eval.missing ? torch::zeros_like(reference.data) : io::read_label(pair.prediction).data;
  std::vector<int> labels = fixed_labels_;
  if (labels.empty()) {
    std::set<int> s;
    for (int l : present_labels(reference.data)) s.insert(l);
    for (int l : present_labels(pred)) s.insert(l);
    labels.assign(s.begin(), s.end());
  }
  MetricOptions mo;
  mo.percentile = options_.percentile;
  mo.nsd_tolerance_mm = options_.nsd_tolerance_mm;
  w.metrics = compute_label_metrics(pred, reference.data, reference.geometry.spacing, labels, mo);
}

std::vector<int> GenericEvaluator::finish_cases(std::vector<CaseWork>& work) const {
  std::vector<int> labels = fixed_labels_;
  if (labels.empty()) {
    std::set<int> s;
    for (const auto& w : work)
      for (const auto& kv : w.metrics) s.insert(kv.first);
    labels.assign(s.begin(), s.end());
  }
  // A label absent from a case (neither in its reference nor in its prediction) is an empty pair there.
  for (auto& w : work) {
    for (int l : labels) {
      auto it = w.metrics.find(l);
      const BinaryMetrics m =
          it != w.metrics.end() ? it->second : metrics_from_counts({0, 0, 0, w.numel}, w.voxel_volume);
      w.eval.metrics[l] = generic_row(m);
      w.eval.status[l] = m.empty;
    }
  }
  return labels;
}

void GenericEvaluator::summarise(EvaluationResult& r, Json& settings, std::ostream& table) const {
  settings["surface_method"] = to_string(SurfaceMethod::VoxelSurface);
  settings["nsd_tolerance_mm"] = options_.nsd_tolerance_mm;
  table << summary_table(r.cases, r.labels, {"Dice", "IoU", "Precision", "Recall", "HD95", "HD", "ASSD", "NSD"});
}

Hecktor2022Evaluator::Hecktor2022Evaluator(const EvaluateOptions& options) : GenericEvaluator(options, {1, 2}) {}

void Hecktor2022Evaluator::summarise(EvaluationResult& r, Json& settings, std::ostream& table) const {
  settings["nsd_tolerance_mm"] = options_.nsd_tolerance_mm;
  Json agg = Json::object();
  std::vector<double> aggs;
  for (int l : r.labels) {
    // DSCagg = 2 sum TP / sum(|GT| + |Pred|) over every case.
    double tp = 0, den = 0;
    for (const auto& c : r.cases) {
      for (const auto& [k, v] : c.metrics.at(l)) {
        if (k == "TP") tp += v;
        if (k == "n_pred" || k == "n_ref") den += v;
      }
    }
    const double dsc = den > 0 ? 2 * tp / den : std::numeric_limits<double>::quiet_NaN();
    agg[std::to_string(l)] = finite_or_null(dsc);
    aggs.push_back(dsc);
    table << "DSCagg label " << l << ": " << format_metric(dsc) << "\n";
  }
  const MetricStats mean_agg = compute_stats(aggs);
  r.summary["hecktor2022"] = {{"DSCagg", agg}, {"mean_DSCagg", finite_or_null(mean_agg.mean)}};
  table << "mean DSCagg: " << format_metric(mean_agg.mean) << "\n";
  table << summary_table(r.cases, r.labels, {"Dice", "HD95"});
}

}  // namespace teachformer::metrics::detail
