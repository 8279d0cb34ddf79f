// PI-CAI 2022 detection evaluation, following picai_eval 1.4 and report_guided_annotation (DIAGNijmegen):
// lesion candidates from softmax maps, matching of candidates to reference lesions at IoU >= 0.1, case-level
// AUROC, lesion-level AP, the ranking score (AUROC + AP) / 2 and the FROC curve. Volumes are [Z, Y, X].
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/types.h>

#include "teachformer/core/json.hpp"
#include "teachformer/metrics/components.hpp"

namespace teachformer::metrics::picai {

/// How lesion candidates are cut out of a probability map.
enum class ThresholdMode {
  Dynamic,      ///< iterative: peak, threshold at peak / factor, keep the peak's component, remove it, repeat
  DynamicFast,  ///< one threshold at (global peak) / factor, every component kept
  Static,       ///< one fixed threshold
};

/// Options of extract_lesion_candidates (defaults of report_guided_annotation's extract_lesion_candidates with
/// threshold "dynamic").
struct CandidateOptions {
  /// Threshold mode (default Dynamic).
  ThresholdMode mode = ThresholdMode::Dynamic;
  /// Threshold of ThresholdMode::Static, in probability units (default 0.1).
  double static_threshold = 0.1;
  /// Candidates with at most this many voxels are dropped (picai keeps a blob only if it has MORE than
  /// min_voxels voxels). Default 10.
  int64_t min_voxels = 10;
  /// Dynamic: most candidates extracted (default 5).
  int num_lesions_to_extract = 5;
  /// Dynamic modes: threshold = peak / factor (default 2.5, i.e. 40% of the peak).
  double dynamic_threshold_factor = 2.5;
  /// Dynamic: skip a candidate that touches (26-neighbourhood) an already extracted one (default true).
  bool remove_adjacent_candidates = true;
  /// Dynamic: stop once the remaining peak is below this (default 0.01).
  double stop_below = 0.01;
};

/// Parses "dynamic", "dynamic-fast" or a number (a static threshold) into `options`; InvalidArgument otherwise.
void parse_threshold(const std::string& text, CandidateOptions& options);

/// One extracted candidate.
struct LesionCandidate {
  /// Its value in `LesionCandidates::indexed` (1-based).
  int32_t index = 0;
  /// Its confidence: the largest probability inside it.
  float confidence = 0;
  /// Its size in voxels.
  int64_t voxels = 0;
};

/// Result of extract_lesion_candidates.
struct LesionCandidates {
  /// float32 [Z, Y, X] detection map: each candidate's voxels hold its confidence, 0 elsewhere.
  torch::Tensor detection_map;
  /// int32 [Z, Y, X]: each candidate's voxels hold its index, 0 elsewhere.
  torch::Tensor indexed;
  /// The candidates in extraction order.
  std::vector<LesionCandidate> candidates;
};

/// Turns a probability map ([Z, Y, X] or [1, Z, Y, X], float, values in [0, 1]) into non-overlapping lesion
/// candidates of constant confidence (26-connected blobs of voxels >= threshold). Dynamic mode iterates: take
/// the remaining peak p (stop if p < stop_below), threshold the remaining map at p / factor, drop blobs of
/// <= min_voxels voxels, keep the first (raster order) blob whose confidence equals the largest remaining blob
/// confidence, skip it if it touches an earlier candidate, remove it from the map; until num_lesions_to_extract
/// candidates. A pass where only small blobs pass the threshold removes them and continues (picai's "v2" fix of
/// the version-1 behaviour, which recorded an empty candidate).
LesionCandidates extract_lesion_candidates(const torch::Tensor& probabilities, const CandidateOptions& options = {});

/// One entry of picai_eval's lesion_results: a reference lesion (TP or FN) or a false-positive candidate.
struct LesionResult {
  /// 1 for a reference lesion (detected or missed), 0 for a false-positive candidate.
  int is_lesion = 0;
  /// Confidence of the matched/false-positive candidate; 0 for a missed lesion.
  double confidence = 0;
  /// IoU of the matched candidate with its lesion; 0 otherwise.
  double overlap = 0;
};

/// Detection outcome of one case.
struct CaseDetection {
  /// TPs (by lesion), then FNs, then FPs (by candidate).
  std::vector<LesionResult> lesions;
  /// Case-level confidence: the largest value of the detection map (0 when empty).
  double case_confidence = 0;
  /// 1 when the reference holds a lesion.
  int case_target = 0;
  /// Number of candidates in the detection map.
  int64_t num_candidates = 0;
  /// Number of reference lesions (26-connected components).
  int64_t num_lesions = 0;
};

/// Matching rules (picai_eval.evaluate_case defaults).
struct MatchOptions {
  /// Minimal IoU for a hit (default 0.1; an IoU equal to it counts).
  double min_overlap = 0.1;
  /// A candidate overlapping a lesion enough but not selected by the assignment is not a false positive
  /// (default true, as picai_eval).
  bool allow_unmatched_candidates_with_minimal_overlap = true;
};

/// Matches the candidates of a detection map (float [Z, Y, X] or [1, Z, Y, X], >= 0; each 26-connected blob is
/// one candidate whose confidence is its maximum) to the lesions of `reference` (non-zero = lesion, 26-connected
/// components) by a maximum assignment that first maximises the number of hits, then the summed IoU.
CaseDetection evaluate_detection_case(const torch::Tensor& detection_map, const torch::Tensor& reference,
                                      const MatchOptions& options = {});

/// True when `map` is a detection map: every 26-connected blob of non-zero voxels holds a single value. (picai_eval
/// only checks that there are no more distinct values than blobs and raises otherwise: a softmax map was given.)
bool is_detection_map(const torch::Tensor& map);

/// Aggregated detection metrics (picai_eval's Metrics).
struct DetectionMetrics {
  /// Case-level area under the ROC curve (NaN without both positive and negative cases).
  double auroc = 0;
  /// Lesion-level average precision (step integral of the precision-recall curve; NaN without any entry).
  double ap = 0;
  /// PI-CAI ranking score (auroc + ap) / 2.
  double score = 0;
  /// Number of cases.
  int64_t num_cases = 0;
  /// Number of reference lesions.
  int64_t num_lesions = 0;
  /// Lesion-level precision as sklearn's precision_recall_curve (ascending thresholds, then the end point 1),
  /// set to 0 at threshold 0 (the entries of missed lesions).
  std::vector<double> precision;
  /// Lesion-level recall matching `precision` (descending, ending with 0).
  std::vector<double> recall;
  /// Case-level false positive rate of the ROC curve (sklearn's roc_curve with drop_intermediate).
  std::vector<double> case_fpr;
  /// Case-level true positive rate matching `case_fpr`.
  std::vector<double> case_tpr;
  /// FROC thresholds: the distinct lesion confidences, descending (thinned as picai_eval above 10,000).
  std::vector<double> thresholds;
  /// FROC sensitivity (detected lesions / all lesions) at each threshold; NaN without lesions.
  std::vector<double> sensitivity;
  /// FROC false positives per case at each threshold; the last is +inf (picai_eval extends the curve).
  std::vector<double> fp_per_case;
};

/// Computes the metrics of the cases (ordered by case id, as picai_eval sorts them).
DetectionMetrics compute_detection_metrics(const std::map<std::string, CaseDetection>& cases);

/// Sensitivity at `fp_per_case` false positives per case on the FROC curve (0 when the curve starts above it).
double sensitivity_at(const DetectionMetrics& metrics, double fp_per_case);

/// picai_eval's metrics.json layout (as_dict plus full_dict's curves: "auroc", "AP", "num_cases", "num_lesions",
/// "picai_eval_version", "lesion_results", "lesion_weight", "case_pred", "case_target", "case_weight",
/// "precision", "recall", "lesion_TPR", "lesion_FPR", "thresholds") plus "score", the case ROC as "fpr"/"tpr",
/// the FROC as "sensitivity"/"fp_per_case" and "sensitivity_at_fp_per_case". Non-finite numbers become null.
Json to_picai_json(const DetectionMetrics& metrics, const std::map<std::string, CaseDetection>& cases);

/// Solves the rectangular assignment problem maximising the summed `value` (rows x cols, row-major); returns for
/// each row the assigned column or -1 (only min(rows, cols) rows get one). Exposed for testing.
std::vector<int> maximum_assignment(const std::vector<double>& value, int rows, int cols);

}  // namespace teachformer::metrics::picai
