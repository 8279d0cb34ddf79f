// Building a segmentation loss from a JSON config (training configs, resolved config.json).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/losses/segmentation_loss.hpp"

namespace teachformer::losses {

/// Loss types make_loss() knows: "ce", "dice", "dice_ce", "focal".
std::vector<std::string> loss_types();

/// Builds a loss from {"type": "<name>", ...options of that loss}, e.g.
/// {"type": "dice_ce", "lambda_ce": 1, "dice": {"batch_dice": true}} or
/// {"type": "focal", "gamma": 2, "reduction": "sum"}. A missing or unknown type, unknown option keys and invalid
/// values are ConfigError. The result's config() round-trips through make_loss().
std::shared_ptr<SegmentationLoss> make_loss(const nlohmann::json& config);

}  // namespace teachformer::losses
