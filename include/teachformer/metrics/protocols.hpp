// Evaluation protocols over folders of reference and prediction files (`teachformer evaluate`).
//
//   generic      per label: Dice, IoU, precision, recall, HD95/HD/ASSD/MASD (MONAI voxel surfaces), NSD, volumes.
//   hecktor2021  inside the per-patient bounding box: DSC, HD95 (DeepMind surfels, area-weighted), precision,
//                recall; leaderboard = mean DSC and median HD95; a missing case scores DSC 0 and HD95 inf.
//   hecktor2022  aggregated Dice per class DSCagg = 2 sum TP / sum(|GT| + |Pred|) (GTVp 1, GTVn 2) + per case.
//   picai        detection: candidates matched to lesions at IoU >= 0.1; AUROC, AP, (AUROC + AP) / 2, FROC.
//
// Cases are paired by id (file name minus image extension and an optional suffix). A reference without a
// prediction is a missing case, evaluated as an empty prediction and counted. Prediction and reference grids must
// agree (size, spacing, origin, direction within tolerance). Outputs: summary.json (nnU-Net layout), cases.csv,
// and metrics.json (picai_eval layout) for picai.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "teachformer/core/json.hpp"
#include "teachformer/core/progress.hpp"
#include "teachformer/metrics/picai.hpp"
#include "teachformer/metrics/summary.hpp"

namespace teachformer::metrics {

/// Evaluation protocol.
enum class Protocol { Generic, Hecktor2021, Hecktor2022, Picai };

/// "generic", "hecktor2021", "hecktor2022", "picai".
std::string to_string(Protocol protocol);
/// Parses a protocol name (InvalidArgument listing the valid names otherwise).
Protocol protocol_from_string(const std::string& name);
/// The valid protocol names.
std::vector<std::string> protocol_names();

/// The `teachformer evaluate` flags that only some protocols use, in the order unused_flag_message checks them:
/// --bbox, --hecktor-official, --picai-input, --candidate-threshold, --min-voxels, --min-overlap, --labels,
/// --percentile, --nsd-tolerance.
std::vector<std::string> protocol_specific_flags();
/// Why giving the flags `given` is a mistake under `protocol`, for the first flag of protocol_specific_flags() in
/// `given` that the protocol does not use (e.g. "--bbox is only used by --protocol hecktor2021 (protocol is
/// generic)"); empty when the protocol uses them all. evaluate_folders applies it to the options it can see
/// (labels, bbox_csv).
std::string unused_flag_message(Protocol protocol, const std::vector<std::string>& given);

/// What PI-CAI prediction files hold.
enum class PicaiInput {
  Auto,          ///< a detection map if no blob holds two distinct values, else a softmax map
  DetectionMap,  ///< constant-confidence candidates
  Softmax,       ///< probabilities: candidates are extracted (extract_lesion_candidates)
};
/// "auto", "detection", "softmax".
std::string to_string(PicaiInput input);
/// Parses "auto", "detection" or "softmax".
PicaiInput picai_input_from_string(const std::string& name);

/// Options of evaluate_folders.
struct EvaluateOptions {
  /// Protocol (default generic).
  Protocol protocol = Protocol::Generic;
  /// Labels to evaluate (1..255). Empty: generic = every label found in any reference or prediction;
  /// hecktor2021 = every non-zero voxel as one foreground (reported as label 1); hecktor2022 = {1, 2};
  /// picai: must stay empty (reference >= 1 is lesion).
  std::vector<int> labels;
  /// hecktor2021: bounding-box CSV; empty = evaluate the whole image (logged as a warning).
  std::filesystem::path bbox_csv;
  /// hecktor2021: reproduce the official evaluator's quirks (spacing passed in (x, y, z) order to [z, y, x]
  /// arrays; HD95 0 for an empty prediction). Default false.
  bool hecktor_official = false;
  /// Tolerance (mm) of the normalised surface Dice (generic; default 2 mm).
  double nsd_tolerance_mm = 2.0;
  /// Percentile of the robust Hausdorff distance (default 95).
  double percentile = 95.0;
  /// Largest difference (mm) of spacing/origin between paired files (default 1e-3 mm); direction cosines are
  /// compared within 1e-4.
  double geometry_tolerance_mm = 1e-3;
  /// Suffix removed from reference file stems to form case ids (e.g. "_gtvt"); default none.
  std::string ref_suffix;
  /// Suffix removed from prediction file stems (e.g. "_detection_map"); default none.
  std::string pred_suffix;
  /// picai: content of the prediction files (default auto).
  PicaiInput picai_input = PicaiInput::Auto;
  /// picai: candidate extraction from softmax maps.
  picai::CandidateOptions candidates;
  /// picai: lesion matching.
  picai::MatchOptions matching;
  /// Progress over cases (default: bar on a terminal, lines otherwise; see core/progress.hpp).
  ProgressMode progress = ProgressMode::Auto;
};

/// A reference file and its prediction.
struct CasePair {
  /// Case id.
  std::string case_id;
  /// Reference file.
  std::filesystem::path reference;
  /// Prediction file; empty when missing.
  std::filesystem::path prediction;
};

/// Result of pairing two folders.
struct Pairing {
  /// One entry per reference file, sorted by case id.
  std::vector<CasePair> cases;
  /// Prediction files whose id has no reference.
  std::vector<std::filesystem::path> unmatched_predictions;
};

/// Case id of an image file: the file name without its image extension and without `suffix` when it ends with it.
std::string case_id_of(const std::filesystem::path& file, const std::string& suffix = "");

/// Pairs the image files of two folders by case id. Throws IoError when a folder is missing and DatasetError when
/// the reference folder or the prediction folder holds no image file, when two files share an id, or when no
/// prediction matches any reference.
Pairing pair_cases(const std::filesystem::path& ref_dir, const std::filesystem::path& pred_dir,
                   const std::string& ref_suffix = "", const std::string& pred_suffix = "");

/// Everything an evaluation produces.
struct EvaluationResult {
  /// Protocol used.
  Protocol protocol = Protocol::Generic;
  /// Per-case results, sorted by case id.
  std::vector<CaseEvaluation> cases;
  /// Labels reported.
  std::vector<int> labels;
  /// Content of summary.json.
  Json summary;
  /// Content of metrics.json (picai only).
  std::optional<Json> picai_metrics;
  /// cases.csv.
  std::string cases_csv;
  /// Human-readable summary.
  std::string table;
};

/// Evaluates every reference case of `ref_dir` against `pred_dir` under `options`; cases run in parallel on the
/// intra-op threads (see set_threads).
EvaluationResult evaluate_folders(const std::filesystem::path& ref_dir, const std::filesystem::path& pred_dir,
                                  const EvaluateOptions& options = {});

/// Where the outputs go.
struct OutputPaths {
  /// summary.json.
  std::filesystem::path summary;
  /// cases.csv (beside summary.json).
  std::filesystem::path cases_csv;
  /// metrics.json (picai; beside summary.json).
  std::filesystem::path picai_metrics;
};
/// `output` is a folder (files go inside) or a path ending in ".json" (the summary; the others beside it).
OutputPaths output_paths(const std::filesystem::path& output);

/// Writes the outputs atomically.
void write_evaluation(const EvaluationResult& result, const OutputPaths& paths);

}  // namespace teachformer::metrics
