// Model weight files: safetensors (no pickle) whose __metadata__ carries what is needed to rebuild and use the model
// (model key, options, channel names, normalisation, patch size, spacing, labels, tool version), and loading that
// checks the file against what the caller asks for. Plain state-dict safetensors (e.g. written from a MONAI model
// with safetensors.torch.save_file(model.state_dict(), ...)) load when the caller names the model and its options.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "teachformer/models/seg_model.hpp"
#include "teachformer/models/state_dict.hpp"

namespace teachformer::models {

/// Key of the __metadata__ entry holding the JSON below (a JSON string, as safetensors metadata values are strings).
inline constexpr const char* kWeightsMetadataKey = "teachformer";

/// What a weight file says about its model. JSON field names equal the member names.
struct WeightsMetadata {
  /// Registry key ("hdenseformer", "teachformer_s", "unetr", "swin_unetr").
  std::string model;
  /// Resolved options (ModelSpec::options: every option, registry names).
  nlohmann::json options = nlohmann::json::object();
  /// Input channel names in input order (e.g. ["CT", "PET"]); empty = not recorded.
  std::vector<std::string> channel_names;
  /// Per-channel intensity normalisation, opaque JSON given by the caller (null = not recorded).
  nlohmann::json normalization;
  /// Training patch size [D, H, W] in voxels (tensor order); empty = not recorded.
  std::vector<int64_t> patch_size;
  /// Target voxel spacing in mm, (x, y, z) order as core/geometry.hpp; empty = not recorded.
  std::vector<double> spacing;
  /// Label map, e.g. {"background": 0, "tumor": 1} (null = not recorded).
  nlohmann::json labels;
  /// teachformer version that wrote the file (save_weights fills it).
  std::string tool_version;
  /// Any other fields found in or to be written to the file (e.g. "training"), kept as they are.
  nlohmann::json extra = nlohmann::json::object();
};

/// Metadata -> JSON (the fields above, `extra` merged at the top level; empty fields are omitted).
nlohmann::json to_json(const WeightsMetadata& metadata);
/// JSON -> metadata; `context` names the file in errors. "model" and "options" are required; unknown fields go to
/// `extra`; wrongly typed known fields are FormatError.
WeightsMetadata weights_metadata_from_json(const nlohmann::json& json, const std::string& context);

/// Writes the state_dict of `model` (CPU, float as stored) and `metadata` atomically. The model key, options and tool
/// version are taken from the model and this build; when `metadata.model` / `.options` are set they must equal the
/// model's (InvalidArgument otherwise). channel_names, when given, must have in_channels entries.
void save_weights(const std::filesystem::path& path, const SegmentationModelImpl& model,
                  WeightsMetadata metadata = {});

/// The metadata of a weight file (header only), or nullopt for a plain state dict without it.
std::optional<WeightsMetadata> read_weights_metadata(const std::filesystem::path& path);

/// What the caller expects a weight file to hold.
struct WeightsRequest {
  /// Registry key; empty = take it from the file's metadata (required for a plain state dict).
  std::string model;
  /// Options (a partial object is completed with the defaults by the registry); null = take them from the file's
  /// metadata, or the model's defaults for a plain state dict.
  nlohmann::json options;
  /// Input channel names in order; empty = not checked. Checked against the metadata when the file records them.
  std::vector<std::string> channel_names;
  /// State-dict keys to accept and ignore (see load_state_dict), e.g. MONAI's unused "cross_attn." keys. For a plain
  /// state dict of model "unetr" the MONAI patterns are added automatically.
  std::vector<std::string> ignorable_patterns;
};

/// A model built and loaded from a weight file.
struct LoadedModel {
  /// The model, in eval mode.
  SegmentationModel model;
  /// The file's metadata (nullopt for a plain state dict).
  std::optional<WeightsMetadata> metadata;
  /// What load_state_dict loaded, ignored and kept.
  LoadReport report;
};

/// Builds the model and loads the weights strictly. With metadata, a requested model key, resolved options or channel
/// names that differ from the file's are InvalidArgument naming the file, the field and both values. Without
/// metadata the request must name the model. Missing, unexpected or mis-shaped tensors are InvalidArgument (from
/// load_state_dict) prefixed with the file name.
LoadedModel load_model_weights(const std::filesystem::path& path, const WeightsRequest& request = {});

/// Loads a weight file into an existing model: the file's metadata, when present, must name the same model key and
/// options (and `channel_names` when both are given). Returns what was loaded.
LoadReport load_weights_into(SegmentationModelImpl& model, const std::filesystem::path& path,
                             const std::vector<std::string>& channel_names = {},
                             const std::vector<std::string>& ignorable_patterns = {});

}  // namespace teachformer::models
