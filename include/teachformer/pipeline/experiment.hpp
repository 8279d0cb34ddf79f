// The main job: synthesize (or take) a dataset, verify, preprocess, train the teachers, distil the student with the
// Teach-Former strategy and the ablation ladder, predict and evaluate every model on held-out cases that took part in
// no choice (neither training nor checkpoint or teacher selection) with the protocol that fits the data, repeat per
// seed, and write the comparison table with each student's paired difference against the same student trained
// alone (bootstrap confidence interval, Wilcoxon signed-rank p). Everything lives under one experiment folder; every
// stage records the settings that made it, so a re-run reuses what is finished, resumes what was interrupted, and
// refuses what was made differently (--force redoes it).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/metrics/statistics.hpp"

namespace teachformer::pipeline {

/// A student of the ladder: how it is trained.
struct StudentVariant {
  /// "student_alone", "hinton", ...; the table names the row "student:<name>".
  std::string name;
  /// The strategy preset; empty: the strategy is in distill_config (a user-defined student).
  std::string strategy;
  /// What it learns from, for the table ("gt+kd+coarse+fine, staged").
  std::string terms;
  /// Merged into its distill config (e.g. a temperature).
  nlohmann::json distill_config = nlohmann::json::object();
  /// Distilled from the teacher with the best validation Dice only.
  bool single_teacher = false;
  /// Also trains on the unlabelled phantom cases.
  bool unlabelled = false;
  /// Its own temperature of the teachers' validation-Dice weights (default: the experiment's teacher_val_tau).
  std::optional<double> teacher_val_tau;
};

/// Settings of an experiment.
struct ExperimentOptions {
  /// Experiment folder.
  std::filesystem::path dir = "experiments/demo";
  /// "demo" (this CPU, minutes), "tiny" (tests), "paper-hecktor" / "paper-picai" (full size, GPU).
  std::string preset = "demo";
  /// Built-in phantoms: "petct" (HECKTOR-like) or "mri" (PI-CAI-like).
  std::string kind = "petct";
  /// Phantom difficulty: "normal" or "hard" (low-contrast tumours, PET noise, benign look-alikes near the
  /// tumours, so that one modality alone is ambiguous).
  std::string difficulty = "normal";
  /// A real dataset in any supported layout instead of phantoms.
  std::optional<std::filesystem::path> data;
  /// With --data and no labelled test split (imagesTs + labelsTs): the fraction of patients held out for scoring.
  double test_fraction = 0.2;
  /// Phantom cases for training/validation and for the held-out test set (0 = the preset's).
  int cases = 0;
  int test_cases = 0;
  /// Extra phantom cases used without their labels by the `teachformer_unlabelled` student (0 = none).
  int unlabelled_cases = 0;
  /// Seeds: the training (teachers and students) is repeated per seed. The data stay those of the first seed
  /// unless vary_data.
  std::vector<uint64_t> seeds{0};
  bool vary_data = false;
  /// Teachers to train (registry keys).
  std::vector<std::string> teachers{"unetr", "swin_unetr", "hdenseformer"};
  /// Students (see student_variants()); empty = the preset's ladder.
  std::vector<std::string> students;
  /// Students defined by the user (custom_student_variant()): trained and compared like the ladder's, on the same
  /// batches, and added to the students above.
  std::vector<StudentVariant> custom_students;
  /// Teacher epochs budget (early stopping on validation Dice ends sooner), student epochs, steps per epoch (0 =
  /// the preset's).
  int64_t teacher_epochs = 0;
  int64_t student_epochs = 0;
  int64_t steps_per_epoch = 0;
  /// Teachers not better than the lone student on validation: "drop" (default; the best teacher is kept when
  /// none is better) or "keep".
  std::string teacher_policy = "drop";
  /// Each kept teacher's weight in every distillation term: softmax over the kept teachers of validation Dice /
  /// this temperature (0: equal weights). With 0.005 a teacher 0.01 Dice worse than the best counts 0.14 times as
  /// much and one 0.02 worse 0.02 times; teachers within 0.002 of each other count about the same. Chosen by
  /// measurement (docs/experiment.md): distilling mostly from the best teacher beat an even mix. The per-sample and
  /// per-voxel weighting of the terms acts on top of it.
  double teacher_val_tau = 0.005;
  /// JSON merged into every student's "distill" config (e.g. {"temperature": 2}), and the temperature of the
  /// `teachformer_t` variant.
  nlohmann::json distill_config = nlohmann::json::object();
  double variant_temperature = 4.0;
  /// Fold trained on.
  int fold = 0;
  /// Use the teacher cache.
  bool cache = true;
  /// Device for training and prediction.
  std::string device = "cpu";
  /// Independent trainings run at once as worker processes (each with cores / jobs threads).
  int jobs = 1;
  /// Worker command for jobs > 1 (argv prefix; the job file is appended).
  std::vector<std::string> worker_command;
  /// Redo stages whose settings changed (and everything after them) instead of refusing.
  bool force = false;
};

/// Every variant the experiment knows (for `temperature` the variant temperature).
std::vector<StudentVariant> student_variants(double variant_temperature = 4.0);
/// The keys a user-defined student takes besides the distill options, as one text for help and error messages:
/// "learns_from, single_teacher, teacher_val_tau, unlabelled".
std::string custom_student_keys();
/// A user-defined student from "NAME=JSON" (JSON inline or a file): a distill config ({"strategy": preset name or
/// {"stages": [...]}, "temperature", "aggregation", ...; default strategy teachformer}) plus keys of the
/// experiment's own: "single_teacher" (distil from the teacher with the best validation Dice only),
/// "teacher_val_tau" (its own temperature of the teachers' validation-Dice weights), "unlabelled" (also train on the
/// unlabelled phantoms) and "learns_from" (the table's text; default: the strategy's terms). NAME: letters, digits,
/// '_' and '-', and not a built-in student. Throws ConfigError naming the student and what is wrong.
StudentVariant custom_student_variant(const std::string& spec);
/// The ladder a preset trains by default.
std::vector<std::string> default_students(const std::string& preset, bool with_unlabelled);

/// One row of the comparison table (values averaged over seeds where several ran).
struct ExperimentRow {
  std::string name;       ///< "unetr", "student:teachformer", ...
  std::string role;       ///< "teacher" or "student"
  std::string model;      ///< registry key
  std::string terms;      ///< students: what they learn from
  std::string note;       ///< teachers: "below student_alone on validation: dropped"; students: teachers used
  std::vector<uint64_t> seeds;
  int64_t parameters = 0;
  double gflops = 0;            ///< one forward at the training patch
  double seconds_per_case = 0;  ///< CPU prediction (read, preprocess, sliding window, write) per held-out case
  double peak_rss_mib = 0;      ///< during prediction
  double train_seconds = 0;     ///< training (and cache) wall time
  double val_dice = 0;          ///< best validation Dice (the choice of checkpoint and teachers is made on it)
  /// Held-out Dice: mean over seeds of each seed's mean over cases, and its standard deviation over seeds.
  double dice = 0;
  double dice_sd = 0;
  /// Median HD95 over all scored cases of all seeds; undefined HD95 counted apart.
  double hd95 = 0;
  int64_t hd95_undefined = 0;
  /// PI-CAI detection metrics (mean over seeds).
  double auroc = 0;
  double ap = 0;
  double picai_score = 0;
  /// Per seed: {"seed", "dice", "hd95", "auroc", "ap", "val_dice", "cases": {id: dice}}.
  nlohmann::json per_seed = nlohmann::json::array();
  /// Students: paired per-case Dice difference against student_alone, pooled over seeds.
  std::optional<metrics::PairedComparison> vs_student_alone;
};

/// The outcome.
struct ExperimentResult {
  std::vector<ExperimentRow> rows;
  /// The table as markdown (<dir>/results.md), CSV (<dir>/results.csv) and JSON (<dir>/results.json).
  std::string markdown;
  std::string csv;
  nlohmann::json json;
  double seconds = 0;
  /// <dir>/report/index.html (absent when the report's web assets are not installed).
  std::optional<std::filesystem::path> report;
};

/// Weights of teachers from their validation Dice: softmax over teachers of Dice / tau, scaled to a mean of 1 (the
/// distillation normalises them again). Equal weights when tau is 0, for fewer than two teachers, or when a Dice is
/// missing (negative or NaN). InvalidArgument for a negative tau.
std::vector<double> teacher_weights_from_validation(const std::vector<double>& val_dice, double tau);

/// The presets' names.
std::vector<std::string> experiment_presets();
/// Runs (or resumes) the experiment.
ExperimentResult run_experiment(const ExperimentOptions& options);

}  // namespace teachformer::pipeline
