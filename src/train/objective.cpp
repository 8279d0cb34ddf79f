#include "teachformer/train/objective.hpp"

#include "teachformer/losses/loss_factory.hpp"

namespace teachformer::train {

SupervisedObjective::SupervisedObjective(const nlohmann::json& loss_config,
                                         losses::DeepSupervisionOptions deep_supervision)
    : loss_config_(loss_config), loss_(losses::make_loss(loss_config), std::move(deep_supervision)) {}

losses::LossBreakdown SupervisedObjective::compute(const models::SegOutput& output, const data::Batch& batch,
                                                   const StepContext&) {
  return loss_.compute(models::all_outputs(output), batch.label);
}

nlohmann::json SupervisedObjective::describe() const {
  nlohmann::json ds;
  losses::to_json(ds, loss_.options());
  return {{"type", "supervised"}, {"loss", loss_config_}, {"deep_supervision", ds}};
}

}  // namespace teachformer::train
