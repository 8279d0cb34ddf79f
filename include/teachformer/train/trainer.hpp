// The trainer: composed from a model, an Objective, case sources, options and callbacks (no subclassing). It runs
// alone or as one rank of a data-parallel job (set_process_group): then parameters start from rank 0's, every rank
// draws its own share of each global batch, gradients are averaged in buckets that overlap the backward pass,
// validation cases are shared out and their Dice reduced, and only rank 0 writes checkpoints and the log.
#pragma once
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/core/folder_lock.hpp"
#include "teachformer/data/case_source.hpp"
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
  /// Samples per step and process (a data-parallel job's global batch is world size x batch_size).
  int64_t batch_size = 2;
  /// Patch size [D, H, W] (empty: the model's fixed input size, else required).
  std::vector<int64_t> patch_size;
  /// Fraction of patches centred on foreground.
  double foreground_fraction = 1.0 / 3.0;
  /// With unlabelled cases (Trainer::set_unlabelled_cases): samples from them added to each step's batch_size
  /// labelled ones, per process (-1: as many as batch_size).
  int64_t unlabelled_per_batch = -1;
  /// Validate every N epochs (and after the last); 0 = never.
  int64_t val_every = 5;
  /// Early stopping: stop when the validation Dice has not improved by more than early_stop_min_delta for this
  /// many validations in a row (0 = train all epochs). `epochs` is then the budget. It never stops before
  /// `early_stop_min_epochs` epochs, nor while the best validation Dice is still 0 (a model that has not yet
  /// segmented anything is starting, not converged).
  int64_t early_stop_patience = 0;
  double early_stop_min_delta = 0.0;
  int64_t early_stop_min_epochs = 0;
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
  /// Arithmetic precision: "32" (float32), "bf16" or "16" (float16 with dynamic loss scaling); the last two are
  /// CUDA autocast (matrix products and convolutions in the low precision, reductions in float32).
  std::string precision = "32";
  /// Cases read from disk are kept in a cache of at most this many MiB (least recently used evicted); the loader's
  /// threads read ahead. Used by the jobs that build case sources; the trainer itself takes any CaseSource.
  int64_t case_cache_mb = 2048;
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
  /// float16 only: the step was skipped because a gradient overflowed (the loss scale was halved).
  bool skipped = false;
};

/// One validation pass.
struct ValidationResult {
  int64_t epoch = 0;
  /// Mean over cases and foreground classes of the Dice coefficient (empty-empty counts as 1).
  double mean_dice = 0;
  /// Per case: mean foreground Dice.
  std::map<std::string, double> per_case;
  double seconds = 0;
  /// A stop was requested before every case was scored (single-process runs only): the result is incomplete.
  bool interrupted = false;
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
  /// float16 steps skipped for overflowing gradients.
  int64_t skipped_steps = 0;
  /// True when early stopping ended the run before the last epoch.
  bool stopped_early = false;
};

class Trainer;
}  // namespace teachformer::train
namespace teachformer::dist {
class ProcessGroup;
class GradientReducer;
}  // namespace teachformer::dist
namespace teachformer::train {

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
          std::shared_ptr<const data::CaseSource> train_cases, std::shared_ptr<const data::CaseSource> val_cases,
          TrainerOptions options, TrainerPaths paths, models::WeightsMetadata weights_metadata = {});
  /// The same with cases held in memory (`val_cases` may be null).
  Trainer(models::SegmentationModel model, std::shared_ptr<Objective> objective,
          std::shared_ptr<const std::vector<data::TrainingCase>> train_cases,
          std::shared_ptr<const std::vector<data::TrainingCase>> val_cases, TrainerOptions options,
          TrainerPaths paths, models::WeightsMetadata weights_metadata = {});
  ~Trainer();

  /// Cases without labels that join training (before fit()): each step adds unlabelled_per_batch of them to the
  /// batch_size labelled samples, which stay exactly the batches of a run without them.
  void set_unlabelled_cases(std::shared_ptr<const data::CaseSource> cases);
  /// Makes this trainer one rank of a data-parallel job (before fit()).
  void set_process_group(std::shared_ptr<dist::ProcessGroup> group);
  /// True on rank 0 (or alone): the process that writes files.
  bool is_main() const;
  void add_callback(std::shared_ptr<Callback> callback);
  /// Replaces the validation predictor (default: Gaussian sliding window with the training patch size).
  void set_case_predictor(CasePredictor predictor);
  /// Extra taps the objective needs are requested automatically. With `resume`, continues from
  /// checkpoint_latest.safetensors exactly (model, optimiser, schedule position, epoch, RNG, log).
  TrainSummary fit(bool resume = false);
  /// Runs validation now (each rank of a job validates its share of the cases; every rank gets every case's Dice).
  ValidationResult validate(int64_t epoch);

  models::SegmentationModelImpl& model() { return *model_; }
  const TrainerOptions& options() const { return options_; }
  const TrainerPaths& paths() const { return paths_; }
  /// The current global step.
  int64_t step() const { return step_; }
  /// Lets fit(true) continue a checkpoint whose settings differ from this trainer's in the keys of
  /// resumable_changes() only (more epochs, another validation interval, ...); any other difference is refused.
  void allow_changed_settings(bool allow) { allow_changed_settings_ = allow; }
  /// The trainer settings a resume may change when allowed ("epochs", "val_every", ...).
  static const std::vector<std::string>& resumable_changes();

 private:
  // fit(), in its steps.
  void begin(bool resume);
  std::unique_ptr<data::PatchLoader> make_loader() const;
  StepRecord train_step(data::PatchLoader& loader, int64_t epoch, int64_t total_steps, const models::TapRequest& taps);
  void end_epoch(int64_t epoch, double epoch_loss, double& last_dice);
  TrainSummary end(std::chrono::steady_clock::time_point t_start, double step_seconds, int64_t steps_timed,
                   double last_dice);
  void barrier();
  std::vector<double> mean_over_ranks(const std::vector<double>& values);
  void save_latest(int64_t epochs_done);
  void load_latest();
  /// What made this run (model, trainer, objective, data), recorded in the resume checkpoint and compared on resume.
  nlohmann::json resume_settings() const;
  void check_resume_settings(const nlohmann::json& saved, const std::filesystem::path& checkpoint) const;
  /// Writes the resume checkpoint for a stop request and throws Interrupted.
  [[noreturn]] void stop_for_signal(int signal);
  void save_weights(const std::filesystem::path& path, const nlohmann::json& extra) const;
  void truncate_log(int64_t after_step) const;
  void append_log(const nlohmann::json& line) const;

  models::SegmentationModel model_;
  std::shared_ptr<Objective> objective_;
  std::shared_ptr<const data::CaseSource> train_cases_;
  std::shared_ptr<const data::CaseSource> unlabelled_cases_;
  std::shared_ptr<const data::CaseSource> val_cases_;
  TrainerOptions options_;
  TrainerPaths paths_;
  models::WeightsMetadata weights_metadata_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  CasePredictor predictor_;
  NamedParameters params_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  c10::Device device_;
  std::shared_ptr<dist::ProcessGroup> group_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  /// float16 dynamic loss scaling: current scale, successful steps since the last change, steps skipped.
  double loss_scale_ = 65536.0;
  int64_t scale_good_steps_ = 0;
  int64_t skipped_steps_ = 0;
  /// Validations since the best one (early stopping).
  int64_t validations_since_best_ = 0;
  bool stop_early_ = false;
  /// A stop was requested (on any rank) during the last step.
  bool stop_agreed_ = false;
  bool allow_changed_settings_ = false;
  /// The summed loss of the epoch so far (kept in the checkpoint of a run stopped inside an epoch).
  double epoch_loss_ = 0;
  /// This process writes the fold folder (held while fit() runs).
  std::unique_ptr<FolderLock> lock_;
  int64_t step_ = 0;
  int64_t epochs_done_ = 0;
  double best_dice_ = -1;
  int64_t best_epoch_ = -1;
};

/// Mean foreground Dice of a predicted label map against the reference, both [Z, Y, X] or [1, Z, Y, X]; classes
/// 1..num_classes-1; a class absent from both counts as 1.
double mean_foreground_dice(const torch::Tensor& prediction, const torch::Tensor& reference, int64_t num_classes);

}  // namespace teachformer::train
