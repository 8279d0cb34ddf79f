// The trainer: composed from a model, an Objective, in-memory cases, options and callbacks (no subclassing).
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/data/loader.hpp"
#include "teachformer/models/seg_model.hpp"
#include "teachformer/models/weights.hpp"
#include "teachformer/train/objective.hpp"
#include "teachformer/train/optim.hpp"
#include "teachformer/transforms/augment.hpp"

namespace teachformer::train {

/// Trainer settings (the "trainer" object of a training config).
struct TrainerOptions {
  /// Epochs and optimiser steps per epoch ("5 epochs" is a config value, not a class).
  int64_t epochs = 50;
  int64_t steps_per_epoch = 100;
  /// Samples per step.
  int64_t batch_size = 2;
  /// Patch size [D, H, W] (empty: the model's fixed input size, else required).
  std::vector<int64_t> patch_size;
  /// Fraction of patches centred on foreground.
  double foreground_fraction = 1.0 / 3.0;
  /// Validate every N epochs (and after the last); 0 = never.
  int64_t val_every = 5;
  /// Sliding-window overlap for validation.
  double val_overlap = 0.5;
  /// Write the resume checkpoint every N epochs.
  int64_t checkpoint_every = 1;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  /// Gradient clipping by global L2 norm; 0 disables. nnU-Net uses 12.
  double grad_clip = 12.0;
  transforms::AugmentOptions augment;
  /// Seed for parameters, sampling and augmentation.
  uint64_t seed = 0;
  /// Deterministic algorithms (bit-identical reruns and resumes on CPU).
  bool deterministic = false;
  /// Loader threads.
  int workers = 2;
  /// "cpu", "cuda", "cuda:N" or "auto".
  std::string device = "cpu";
};

TrainerOptions trainer_options_from_json(const nlohmann::json& j);
nlohmann::json to_json(const TrainerOptions& o);

/// One optimiser step, as logged.
struct StepRecord {
  int64_t step = 0;
  int64_t epoch = 0;
  double lr = 0;
  /// ("total", v) then every loss term.
  std::vector<std::pair<std::string, double>> losses;
  double seconds = 0;
};

/// One validation pass.
struct ValidationResult {
  int64_t epoch = 0;
  /// Mean over cases and foreground classes of the Dice coefficient (empty-empty counts as 1).
  double mean_dice = 0;
  /// Per case: mean foreground Dice.
  std::map<std::string, double> per_case;
  double seconds = 0;
};

/// Outcome of fit().
struct TrainSummary {
  int64_t epochs_run = 0;
  int64_t steps_run = 0;
  double best_dice = -1;
  int64_t best_epoch = -1;
  double last_dice = -1;
  double seconds = 0;
  double seconds_per_step = 0;
};

class Trainer;

/// Hooks into the training loop. Exceptions propagate (a callback can stop training, e.g. in tests).
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_start(Trainer&) {}
  virtual void on_epoch_start(Trainer&, int64_t /*epoch*/) {}
  virtual void on_step_end(Trainer&, const StepRecord&) {}
  virtual void on_validation(Trainer&, const ValidationResult&) {}
  virtual void on_epoch_end(Trainer&, int64_t /*epoch*/) {}
};

/// Predicts class probabilities [K, Z, Y, X] for a whole case image [C, Z, Y, X] (sliding window).
using CasePredictor = std::function<torch::Tensor(models::SegmentationModelImpl& model, const torch::Tensor& image)>;

/// Where a training run writes: fold_dir/{checkpoint_latest,checkpoint_best,checkpoint_final}.safetensors and
/// fold_dir/log.jsonl.
struct TrainerPaths {
  std::filesystem::path fold_dir;
};

/// Trains one model on one fold.
class Trainer {
 public:
  /// `weights_metadata`: stored with checkpoint_best/final (channels, normalisation, patch, labels ...; the model
  /// key and options are filled in from the model).
  Trainer(models::SegmentationModel model, std::shared_ptr<Objective> objective,
          std::shared_ptr<const std::vector<data::TrainingCase>> train_cases,
          std::shared_ptr<const std::vector<data::TrainingCase>> val_cases, TrainerOptions options,
          TrainerPaths paths, models::WeightsMetadata weights_metadata = {});
  ~Trainer();

  void add_callback(std::shared_ptr<Callback> callback);
  /// Replaces the validation predictor (default: Gaussian sliding window with the training patch size).
  void set_case_predictor(CasePredictor predictor);
  /// Extra taps the objective needs are requested automatically. With `resume`, continues from
  /// checkpoint_latest.safetensors exactly (model, optimiser, schedule position, epoch, RNG, log).
  TrainSummary fit(bool resume = false);
  /// Runs validation now.
  ValidationResult validate(int64_t epoch);

  models::SegmentationModelImpl& model() { return *model_; }
  const TrainerOptions& options() const { return options_; }
  const TrainerPaths& paths() const { return paths_; }
  /// The current global step.
  int64_t step() const { return step_; }

 private:
  void save_latest(int64_t epochs_done);
  void load_latest();
  void save_weights(const std::filesystem::path& path, const nlohmann::json& extra) const;
  void truncate_log(int64_t after_step) const;
  void append_log(const nlohmann::json& line) const;

  models::SegmentationModel model_;
  std::shared_ptr<Objective> objective_;
  std::shared_ptr<const std::vector<data::TrainingCase>> train_cases_;
  std::shared_ptr<const std::vector<data::TrainingCase>> val_cases_;
  TrainerOptions options_;
  TrainerPaths paths_;
  models::WeightsMetadata weights_metadata_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  CasePredictor predictor_;
  NamedParameters params_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  c10::Device device_;
  int64_t step_ = 0;
  int64_t epochs_done_ = 0;
  double best_dice_ = -1;
  int64_t best_epoch_ = -1;
};

/// Mean foreground Dice of a predicted label map against the reference, both [Z, Y, X] or [1, Z, Y, X]; classes
/// 1..num_classes-1; a class absent from both counts as 1.
double mean_foreground_dice(const torch::Tensor& prediction, const torch::Tensor& reference, int64_t num_classes);

}  // namespace teachformer::train
