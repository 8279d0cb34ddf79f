// Per-case results and their aggregation: nnU-Net's summary.json layout, cases.csv and a printed table.
// Non-finite values are never silently dropped: means/medians run over the finite values and every metric
// reports how many cases were NaN (undefined) or infinite, and every label how many cases were missing or empty.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "teachformer/core/json.hpp"
#include "teachformer/metrics/segmentation_metrics.hpp"

namespace teachformer::metrics {

/// Statistics of one metric over cases.
struct MetricStats {
  /// Number of values (cases).
  int64_t n = 0;
  /// Finite values.
  int64_t n_finite = 0;
  /// NaN values (metric undefined, e.g. HD95 with an empty mask).
  int64_t n_nan = 0;
  /// Infinite values (e.g. HD of an empty prediction, HECKTOR's missing cases).
  int64_t n_inf = 0;
  /// Mean over the finite values (nnU-Net's NaN-mean); NaN when there is none.
  double mean = 0;
  /// Median over the finite values; NaN when there is none.
  double median = 0;
  /// Sample standard deviation over the finite values; NaN with fewer than 2.
  double std = 0;
  /// Median over finite and infinite values (+inf sorts last; NaN ignored), as pandas' median in the HECKTOR
  /// evaluator.
  double median_with_inf = 0;
};

/// Statistics of `values` (any mix of finite, NaN and infinite).
MetricStats compute_stats(const std::vector<double>& values);
/// {"mean", "median", "std", "median_with_inf", "n", "n_finite", "n_nan", "n_inf"} (non-finite -> null).
Json to_json(const MetricStats& stats);

/// Named metric values of one label of one case, in output order.
using MetricRow = std::vector<std::pair<std::string, double>>;

/// The evaluation of one case.
struct CaseEvaluation {
  /// Case id (file name without extension and suffix).
  std::string case_id;
  /// Reference file.
  std::filesystem::path reference_file;
  /// Prediction file; empty when missing.
  std::filesystem::path prediction_file;
  /// True when no prediction was found (evaluated as an empty prediction).
  bool missing = false;
  /// Metrics per label.
  std::map<int, MetricRow> metrics;
  /// Empty-mask status per label.
  std::map<int, EmptyCase> status;
};

/// One case's Dice in one number, nnU-Net's convention: the mean over its labels of the label's Dice, where a label
/// with neither a reference nor a predicted voxel is undefined and left out, a label predicted where the reference
/// has none counts 0 (a false positive) and a missed or missing label counts 0; NaN when no label is defined (e.g. a
/// lesion-free case predicted lesion-free), so that means over cases are nnU-Net's NaN-means.
double case_dice(const CaseEvaluation& c);

/// nnU-Net-style rows: Dice, IoU, Precision, Recall, HD95, HD, ASSD, MASD, NSD, TP, FP, FN, TN, n_pred, n_ref,
/// volume_pred_mm3, volume_ref_mm3 (surface metrics only when `surface`).
MetricRow generic_row(const BinaryMetrics& m, bool surface = true);

/// Per-label counts of missing and empty cases.
struct EmptyCounts {
  /// Cases reporting the label.
  int64_t cases = 0;
  /// Cases without a prediction file.
  int64_t missing = 0;
  /// Cases whose prediction is empty and reference is not (missing cases included).
  int64_t pred_empty = 0;
  /// Cases whose reference is empty and prediction is not.
  int64_t ref_empty = 0;
  /// Cases where both are empty.
  int64_t both_empty = 0;
};
/// Counts for `label` over `cases`.
EmptyCounts count_empty(const std::vector<CaseEvaluation>& cases, int label);

/// Values of metric `name` for `label` over the cases that report it.
std::vector<double> metric_values(const std::vector<CaseEvaluation>& cases, int label, const std::string& name);

/// summary.json in nnU-Net's layout: "metric_per_case" [{reference_file, prediction_file, case_id, missing,
/// metrics: {label: {name: value}}, status: {label: ...}}], "mean" {label: {name: mean over finite}},
/// "foreground_mean" {name: mean of the per-label means}, plus "statistics" {label: {name: MetricStats}} and
/// "empty_cases" {label: {cases, missing, pred_empty, ref_empty, both_empty}}. NaN/inf are written as null.
Json summary_json(const std::vector<CaseEvaluation>& cases, const std::vector<int>& labels);

/// cases.csv: one row per case and label: case_id, label, status, missing, reference_file, prediction_file, then
/// every metric name in first-seen order; NaN/inf written as nan/inf.
std::string cases_csv(const std::vector<CaseEvaluation>& cases, const std::vector<int>& labels);

/// A plain-text table per label: mean, median, defined/total, NaN and inf counts of the `shown` metrics, and
/// the label's missing/empty counts.
std::string summary_table(const std::vector<CaseEvaluation>& cases, const std::vector<int>& labels,
                          const std::vector<std::string>& shown);

}  // namespace teachformer::metrics
