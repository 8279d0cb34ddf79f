// The model registry: one lowercase key per model, JSON options with the reference implementations' names.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/models/seg_model.hpp"

namespace teachformer::models {

/// Keys of the registered models, sorted: "hdenseformer", "swin_unetr", "teachformer_s", "unetr".
std::vector<std::string> model_keys();
/// One-line description of a model.
std::string model_description(const std::string& key);
/// Builds a model from JSON options (unknown keys are ConfigError; an unknown key lists the valid ones and the
/// nearest match). Options use MONAI's names for UNETR/SwinUNETR and the reference's names for H-DenseFormer.
SegmentationModel create_model(const std::string& key, const nlohmann::json& options = nlohmann::json::object());
/// The resolved default options of a model (every option with its default value).
nlohmann::json default_model_options(const std::string& key);
/// Throws InvalidArgument "unknown model 'x'; valid: ...; did you mean 'y'?" unless `key` is registered.
void require_model_key(const std::string& key);

}  // namespace teachformer::models
