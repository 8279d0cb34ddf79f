// Whole training and distillation runs, as `teachformer train` and `teachformer distill` (and the experiment)
// start them: resolve the configuration (preset -> JSON config -> flags), prepare the fold's cases, write a
// self-describing model folder, and train.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/data/case_source.hpp"
#include "teachformer/data/preprocessed.hpp"
#include "teachformer/data/splits.hpp"
#include "teachformer/distill/teacher.hpp"
#include "teachformer/train/trainer.hpp"

namespace teachformer::dist {
class ProcessGroup;
}

namespace teachformer::pipeline {

/// What a train or distill run is asked to do.
struct JobOptions {
  /// Preprocessed dataset folder (a raw dataset is preprocessed first into "<folder>_preprocessed").
  std::filesystem::path dataset;
  /// Registry key of the model to train (the student for distill).
  std::string model = "teachformer_s";
  /// "tiny", "demo" or "paper".
  std::string preset = "demo";
  /// Fold index, or -1 for "all" (train on every labelled case, no validation).
  int fold = 0;
  /// Number of folds of splits_final.json when it has to be created.
  int n_folds = 5;
  /// Model folder to write.
  std::filesystem::path output;
  /// JSON overrides {"model_options", "trainer", "loss", "deep_supervision", "distill"} merged over the preset.
  nlohmann::json config = nlohmann::json::object();
  /// Channels to train on, by name (a subset, e.g. {"PET"}); empty = all channels of the dataset.
  std::vector<std::string> channels;
  /// Continue from fold_N/checkpoint_latest.safetensors.
  bool resume = false;
  /// With resume: the checkpoint may differ from these settings in train::Trainer::resumable_changes() only.
  bool allow_changed_settings = false;
  /// Patch size [D, H, W] (applied to the trainer and to the input size of models that fix it: UNETR's img_size,
  /// H-DenseFormer's image_size).
  std::vector<int64_t> patch_size;
  /// Overrides of common trainer settings (applied last).
  std::optional<int64_t> epochs;
  std::optional<int64_t> steps_per_epoch;
  std::optional<uint64_t> seed;
  std::optional<std::string> device;
  /// Samples per step and process.
  std::optional<int64_t> batch_size;
  /// "32", "bf16" or "16" (CUDA autocast).
  std::optional<std::string> precision;
  /// The data-parallel job this process is a rank of (null: alone). Rank 0 writes the model folder, the splits, the
  /// teacher cache and the checkpoints; the others wait for it.
  std::shared_ptr<dist::ProcessGroup> group;
};

/// Extra inputs of a distillation run.
struct DistillJobOptions {
  /// Teachers (model folders written by `train`).
  std::vector<distill::TeacherSpec> teachers;
  /// Strategy preset or JSON file (overrides config "distill.strategy").
  std::optional<std::string> strategy;
  /// Cache on/off (overrides config "distill.cache").
  std::optional<bool> cache;
  /// A dataset (any layout, raw or preprocessed with the same plan) whose cases join the training set without
  /// labels: on them only the teachers' knowledge trains the student. It is preprocessed with the labelled
  /// dataset's plan into <preprocessed>/unlabelled/<name>.
  std::optional<std::filesystem::path> unlabelled;
};

/// What a run produced.
struct JobResult {
  std::filesystem::path model_dir;
  /// The resolved config.json.
  nlohmann::json config;
  train::TrainSummary summary;
  int64_t parameters = 0;
  /// Teacher cache: bytes on disk and seconds to build (0 without a cache).
  int64_t cache_bytes = 0;
  double cache_seconds = 0;
};

/// Opens a preprocessed dataset; a raw dataset (any supported layout) is preprocessed into "<dir>_preprocessed"
/// first (reused when it exists).
data::PreprocessedDataset open_or_preprocess(const std::filesystem::path& dataset);

/// The splits of a preprocessed dataset: <dir>/splits_final.json, created (patient-grouped) when missing.
std::vector<data::Fold> dataset_splits(const data::PreprocessedDataset& dataset, int n_folds);

/// Loads cases into memory (channels selected by index; foreground indexed for sampling).
std::vector<data::TrainingCase> load_training_cases(const data::PreprocessedDataset& dataset,
                                                    const std::vector<std::string>& ids,
                                                    const std::vector<int64_t>& channel_indices);
/// One case as training reads it: channels selected by index, foreground indexed, plus `extras` filled by
/// `add_extras` (e.g. cached teacher knowledge), or nothing.
data::TrainingCase load_training_case(const data::PreprocessedDataset& dataset, const std::string& id,
                                      const std::vector<int64_t>& channel_indices,
                                      const std::function<void(data::TrainingCase&)>& add_extras = {});
/// The cases as a CaseSource: all in memory when `cache_mb` is 0, else read on demand through a cache of at most
/// `cache_mb` MiB (see data/case_source.hpp).
std::shared_ptr<const data::CaseSource> training_case_source(
    std::shared_ptr<const data::PreprocessedDataset> dataset, const std::vector<std::string>& ids,
    const std::vector<int64_t>& channel_indices, int64_t cache_mb,
    std::function<void(data::TrainingCase&)> add_extras = {});

/// Trains one model on one fold.
JobResult run_train_job(const JobOptions& job);
/// Distils a student from teachers on one fold.
JobResult run_distill_job(const JobOptions& job, const DistillJobOptions& distill);

}  // namespace teachformer::pipeline
