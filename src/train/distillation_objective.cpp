#include "teachformer/train/distillation_objective.hpp"

#include "teachformer/core/error.hpp"

namespace teachformer::train {

DistillationObjective::DistillationObjective(std::shared_ptr<distill::DistillLoss> loss) : loss_(std::move(loss)) {
  TF_CHECK(loss_ != nullptr, InvalidArgument, "distillation objective: no loss");
}

losses::LossBreakdown DistillationObjective::compute(const models::SegOutput& output, const data::Batch& batch,
                                                     const StepContext& context) {
  distill::DistillBatch b;
  b.image = batch.image;
  b.teacher_image = batch.teacher_image;
  b.label = batch.label;
  b.labelled = batch.labelled;
  for (const auto& [name, extra] : batch.extras) b.cached[name] = extra.data;
  b.step = context.step;
  b.epochs = context.epochs;
  b.steps_per_epoch = context.steps_per_epoch;
  return loss_->compute(output, b);
}

}  // namespace teachformer::train
