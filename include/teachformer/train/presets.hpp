// Training presets: model sizes, patch, epochs and loss for each model at three scales.
//   tiny   unit/integration tests: seconds.
//   demo   this CPU: minutes for the whole experiment (small widths, 64^3 patches, a few hundred steps).
//   paper  the published configurations for a GPU (MONAI defaults for UNETR/SwinUNETR-48 at 96^3, H-DenseFormer
//          HECKTOR configuration at 144^3 with its focal loss, the student's "small" preset), nnU-Net-like epochs.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace teachformer::train {

/// "tiny", "demo", "paper".
std::vector<std::string> training_presets();

/// The base configuration {"model_options": {...}, "trainer": {...}, "loss": {...}, "deep_supervision": {...}}
/// of `model` at `preset` for `in_channels` inputs and `out_channels` classes. InvalidArgument for an unknown preset
/// (listing them); the model key is checked by the registry.
nlohmann::json preset_config(const std::string& preset, const std::string& model, int64_t in_channels,
                             int64_t out_channels);

/// Recursively merges `overrides` into `base` (objects merge key by key; anything else replaces).
nlohmann::json merge_config(nlohmann::json base, const nlohmann::json& overrides);

}  // namespace teachformer::train
