// What `teachformer report` reads: every piece of knowledge about the folders it accepts lives here.
//   experiment folder (`teachformer experiment -o DIR`), one seed:
//     results.csv, results.md, [results.json], data/test/ (phantom held-out set), eval/labels/{case}.nii.gz,
//     models/<folder>/ (model folders), predictions/<folder>/{case}.nii.gz + summary.json (nnU-Net layout)
//   experiment folder with seeds: the same, with models/ and predictions/ under seed_<s>/ and results.json
//     {"experiment": {"preset", "kind", "data", "seeds", "fold", "protocol", "scored_cases"}, "rows": [...]}
//   model folder (config.json + fold_N/log.jsonl): its training curves, its validation cases, its teachers
//   predictions folder ({case}.nii.gz [+ summary.json]) with the reference labels given apart (--ref)
// Row names map to folders as the experiment names them: "student:<s>" -> "student_<s>", others unchanged.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/transforms/case_geometry.hpp"

namespace teachformer::report {

/// What kind of folder a report is built from.
enum class SourceKind { Experiment, ModelFolder, Predictions };
/// "experiment", "model folder", "predictions".
std::string to_string(SourceKind kind);

/// One model of the comparison: a row of the table.
struct ModelEntry {
  /// Row name ("unetr", "student:teachformer").
  std::string name;
  /// "teacher" or "student" ("model" for a lone model or predictions folder).
  std::string role;
  /// Folder name under models/ and predictions/ ("student_teachformer").
  std::string folder;
  /// Per seed, aligned with ExperimentFolder::seeds: the model folder and the predictions folder (either may be
  /// absent on disk; check before use).
  std::vector<std::filesystem::path> model_dirs;
  std::vector<std::filesystem::path> prediction_dirs;
};

/// One held-out case: its scan (raw files, or a preprocessed case file), its reference labels.
struct ReportCase {
  std::string id;
  /// Channel names and files of the raw scan (empty when only the preprocessed case is known).
  std::vector<std::string> channel_names;
  std::vector<std::filesystem::path> channel_files;
  /// HECKTOR bounding box of the case (world mm, LPS).
  std::optional<transforms::BoundingBox> bbox;
  /// The preprocessed dataset holding the case when no raw scan is known.
  std::optional<std::filesystem::path> preprocessed;
  /// Reference label map.
  std::optional<std::filesystem::path> label;
};

/// A folder opened for the report.
struct ExperimentFolder {
  std::filesystem::path root;
  SourceKind kind = SourceKind::Experiment;
  /// The experiment's description ({"preset", "kind", "data", "seeds", "fold", "protocol", "scored_cases"}; what is
  /// known, from results.json or guessed from the layout).
  nlohmann::json experiment = nlohmann::json::object();
  /// Seeds, aligned with ModelEntry's per-seed paths ("" for the layout without seed_<s>/ folders).
  std::vector<std::string> seeds;
  /// results.csv: path, header and rows as written (empty when absent).
  std::filesystem::path results_csv;
  std::vector<std::string> csv_header;
  std::vector<std::vector<std::string>> csv_rows;
  /// results.json "rows" (null when absent).
  nlohmann::json result_rows;
  /// The models, in the table's order.
  std::vector<ModelEntry> models;
  /// The held-out cases (sorted by id).
  std::vector<ReportCase> cases;
  /// Folder of the reference labels.
  std::filesystem::path labels_dir;
  /// Fold the models were trained on.
  int fold = 0;
};

/// Opens `dir` as an experiment folder, a model folder, or (with `ref`) a predictions folder. Throws IoError naming
/// the folder and what was expected when it is none of these.
ExperimentFolder read_experiment_folder(const std::filesystem::path& dir,
                                        const std::optional<std::filesystem::path>& ref = std::nullopt);

/// Parses a CSV file without quoted fields into header + rows; throws FormatError naming the file and line when a
/// row has a different number of fields than the header.
void read_csv(const std::filesystem::path& path, std::vector<std::string>& header,
              std::vector<std::vector<std::string>>& rows);

/// Per-case metrics of a predictions folder from its summary.json (nnU-Net layout, "metric_per_case"): case id ->
/// metric ("Dice", "HD95") -> value, averaged over the labels of the case. Empty when the file is absent.
std::map<std::string, std::map<std::string, double>> per_case_metrics(const std::filesystem::path& predictions_dir);

/// The log.jsonl files of a model folder (fold_*/log.jsonl), sorted; empty when none.
std::vector<std::filesystem::path> training_logs(const std::filesystem::path& model_dir);

}  // namespace teachformer::report
