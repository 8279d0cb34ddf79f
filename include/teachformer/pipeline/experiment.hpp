// The main job: synthesize (or take) a dataset, verify, preprocess, train the teachers, distil the student with the
// Teach-Former strategy and the baselines, predict and evaluate every model on held-out cases with the matching
// challenge protocol, and write the comparison table. Everything lives under one experiment folder; every stage
// skips what is already finished, so a re-run resumes.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace teachformer::pipeline {

/// Settings of an experiment.
struct ExperimentOptions {
  /// Experiment folder.
  std::filesystem::path dir = "experiments/demo";
  /// "demo" (this CPU, minutes), "tiny" (tests), "paper-hecktor" / "paper-picai" (full size, GPU).
  std::string preset = "demo";
  /// Built-in phantoms: "petct" (HECKTOR-like) or "mri" (PI-CAI-like).
  std::string kind = "petct";
  /// A real dataset in any supported layout instead of phantoms (held-out cases = the fold's validation cases).
  std::optional<std::filesystem::path> data;
  /// Phantom cases for training/validation and for the held-out test set.
  int cases = 0;  // 0 = the preset's
  int test_cases = 0;
  uint64_t seed = 0;
  /// Teachers to train (registry keys).
  std::vector<std::string> teachers{"unetr", "swin_unetr", "hdenseformer"};
  /// Students to distil: "teachformer", "student_alone", "hinton", "at", "single_teacher", "multi_no_staging".
  std::vector<std::string> students{"teachformer", "student_alone", "hinton", "at", "single_teacher"};
  /// Epochs of every teacher / every student and steps per epoch (0 = the preset's).
  int64_t teacher_epochs = 0;
  int64_t student_epochs = 0;
  int64_t steps_per_epoch = 0;
  /// Fold trained on.
  int fold = 0;
  /// Use the teacher cache.
  bool cache = true;
  /// Device for training and prediction.
  std::string device = "cpu";
};

/// One row of the comparison table.
struct ExperimentRow {
  std::string name;       ///< "unetr", "student:teachformer", ...
  std::string role;       ///< "teacher" or "student"
  std::string model;      ///< registry key
  int64_t parameters = 0;
  double gflops = 0;      ///< one forward at the training patch
  double seconds_per_case = 0;  ///< CPU prediction (read, preprocess, sliding window, write) per held-out case
  double peak_rss_mib = 0;      ///< during prediction
  double train_seconds = 0;     ///< training (and cache) wall time
  /// Segmentation metrics (mean Dice, median HD95 over cases; undefined HD95 counted apart).
  double dice = 0;
  double hd95 = 0;
  int64_t hd95_undefined = 0;
  /// PI-CAI detection metrics (mri).
  double auroc = 0;
  double ap = 0;
  double picai_score = 0;
};

/// The outcome.
struct ExperimentResult {
  std::vector<ExperimentRow> rows;
  /// The table as markdown (also in <dir>/results.md) and CSV (<dir>/results.csv).
  std::string markdown;
  std::string csv;
  double seconds = 0;
};

/// The presets' names.
std::vector<std::string> experiment_presets();
/// Runs (or resumes) the experiment.
ExperimentResult run_experiment(const ExperimentOptions& options);

}  // namespace teachformer::pipeline
