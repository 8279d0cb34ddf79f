// Factories of the registered models, one per model, defined in that model's .cpp file.
#pragma once
#include <nlohmann/json.hpp>

#include "teachformer/models/seg_model.hpp"

namespace teachformer::models::detail {

/// Builds the model from JSON options (strict: unknown keys are ConfigError).
SegmentationModel make_unetr(const nlohmann::json& options);
SegmentationModel make_swin_unetr(const nlohmann::json& options);
SegmentationModel make_hdenseformer(const nlohmann::json& options);
SegmentationModel make_teachformer_s(const nlohmann::json& options);

/// Every option with its default value.
nlohmann::json unetr_defaults();
nlohmann::json swin_unetr_defaults();
nlohmann::json hdenseformer_defaults();
nlohmann::json teachformer_s_defaults();

}  // namespace teachformer::models::detail
