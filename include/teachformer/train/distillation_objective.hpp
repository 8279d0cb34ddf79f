// The trainer's view of distillation: adapts distill::DistillLoss to the Objective interface.
#pragma once
#include <memory>

#include "teachformer/distill/distill_loss.hpp"
#include "teachformer/train/objective.hpp"

namespace teachformer::train {

/// Runs distill::DistillLoss on each batch; cached teacher knowledge travels in the batch's extras.
class DistillationObjective : public Objective {
 public:
  explicit DistillationObjective(std::shared_ptr<distill::DistillLoss> loss);
  models::TapRequest taps() const override { return loss_->taps(); }
  bool needs_teacher_image() const override { return loss_->needs_teacher_input(); }
  nlohmann::json state() const override { return loss_->state(); }
  void load_state(const nlohmann::json& state) override { loss_->load_state(state); }
  void set_mean_over_ranks(std::function<std::vector<double>(const std::vector<double>&)> mean) override {
    loss_->set_mean_over_ranks(std::move(mean));
  }
  losses::LossBreakdown compute(const models::SegOutput& output, const data::Batch& batch,
                                const StepContext& context) override;
  nlohmann::json describe() const override { return loss_->describe(); }
  void to(const c10::Device& device) override { loss_->to(device); }
  const distill::DistillLoss& loss() const { return *loss_; }

 private:
  std::shared_ptr<distill::DistillLoss> loss_;
};

}  // namespace teachformer::train
