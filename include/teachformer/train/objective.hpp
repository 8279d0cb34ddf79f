// What a training step minimises: the trainer is composed with an Objective (supervised, or distillation).
#pragma once
#include <functional>
#include <memory>
#include <vector>
#include <string>

#include <nlohmann/json.hpp>

#include "teachformer/data/loader.hpp"
#include "teachformer/losses/deep_supervision.hpp"
#include "teachformer/losses/loss_breakdown.hpp"
#include "teachformer/models/seg_model.hpp"

namespace teachformer::train {

/// Where training stands when a loss is computed (for schedules and ramps).
struct StepContext {
  /// Global step (0-based).
  int64_t step = 0;
  /// Epoch (0-based).
  int64_t epoch = 0;
  int64_t steps_per_epoch = 1;
  int64_t epochs = 1;
};

/// A training objective: the taps it needs from the model, and the loss of a forward pass on a batch.
class Objective {
 public:
  virtual ~Objective() = default;
  /// What the model's forward must record (e.g. feature taps for attention KD).
  virtual models::TapRequest taps() const { return models::TapRequest{false, false, false}; }
  /// Loss with named terms; `batch` holds the label and any cached extras; tensors are on the model's device.
  virtual losses::LossBreakdown compute(const models::SegOutput& output, const data::Batch& batch,
                                        const StepContext& context) = 0;
  /// A JSON description for config.json and the log.
  virtual nlohmann::json describe() const = 0;
  /// State that changes during training and must survive a resume (e.g. loss-balancing scales); null if none.
  virtual nlohmann::json state() const { return nullptr; }
  /// Restores state().
  virtual void load_state(const nlohmann::json& /*state*/) {}
  /// How values measured on one rank are averaged over a data-parallel job's ranks (set by the trainer).
  virtual void set_mean_over_ranks(std::function<std::vector<double>(const std::vector<double>&)> /*mean*/) {}
  /// True when compute() reads data::Batch::teacher_image (live teachers see the patch before intensity changes).
  virtual bool needs_teacher_image() const { return false; }
  /// Moves internal modules (e.g. teachers) to the training device.
  virtual void to(const c10::Device& /*device*/) {}
};

/// Label-supervised loss (Dice + CE by default) with deep supervision over all of the model's outputs.
class SupervisedObjective : public Objective {
 public:
  /// `loss_config`: losses::make_loss JSON (default {"type": "dice_ce"}); `deep_supervision`: weights options.
  explicit SupervisedObjective(const nlohmann::json& loss_config = {{"type", "dice_ce"}},
                               losses::DeepSupervisionOptions deep_supervision = {});
  losses::LossBreakdown compute(const models::SegOutput& output, const data::Batch& batch,
                                const StepContext& context) override;
  nlohmann::json describe() const override;

 private:
  nlohmann::json loss_config_;
  losses::DeepSupervisionLoss loss_;
};

}  // namespace teachformer::train
