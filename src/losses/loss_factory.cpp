#include "teachformer/losses/loss_factory.hpp"

#include "teachformer/core/json.hpp"
#include "teachformer/losses/cross_entropy.hpp"
#include "teachformer/losses/dice.hpp"
#include "teachformer/losses/dice_ce.hpp"
#include "teachformer/losses/focal.hpp"

namespace teachformer::losses {

std::vector<std::string> loss_types() { return {"ce", "dice", "dice_ce", "focal"}; }

std::shared_ptr<SegmentationLoss> make_loss(const nlohmann::json& config) {
  TF_CHECK(config.is_object(), ConfigError, "loss config: expected a JSON object {\"type\": ...}, got ", config.dump());
  TF_CHECK(config.contains("type") && config["type"].is_string(), ConfigError,
           "loss config: required string key 'type' is missing; valid types are ", loss_types());
  const std::string type = config["type"].get<std::string>();
  nlohmann::json options = config;
  options.erase("type");
  try {
    if (type == "ce") return std::make_shared<CrossEntropyLoss>(options.get<CrossEntropyLossOptions>());
    if (type == "dice") return std::make_shared<DiceLoss>(options.get<DiceLossOptions>());
    if (type == "dice_ce") return std::make_shared<DiceCELoss>(options.get<DiceCELossOptions>());
    if (type == "focal") return std::make_shared<FocalLoss>(options.get<FocalLossOptions>());
  } catch (const InvalidArgument& e) {
    throw ConfigError(std::string("loss config: ") + e.what());
  }
  TF_THROW(ConfigError, "loss config: unknown type '", type, "'; valid types are ", loss_types());
}

}  // namespace teachformer::losses
