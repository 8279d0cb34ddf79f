// Normalisation and activation factories with MONAI's names and arguments, e.g. "instance",
// ["group", {"num_groups": 4}], ["leakyrelu", {"negative_slope": 0.01, "inplace": true}].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/any.h>

namespace teachformer::nn {

/// A layer type by MONAI name plus its keyword arguments: JSON "instance" or ["group", {"num_groups": 4}].
/// Names are case-insensitive ("INSTANCE" == "instance"); unknown names or arguments are errors when the layer
/// is built (make_norm / make_act) and when validate_norm / validate_act run.
struct LayerSpec {
  LayerSpec() = default;
  /// A spec without arguments.
  LayerSpec(const char* name) : name(name) {}  // NOLINT: implicit on purpose, LayerSpec spec = "instance"
  LayerSpec(std::string name, nlohmann::json args = nlohmann::json::object())
      : name(std::move(name)), args(std::move(args)) {}
  /// Layer name, e.g. "instance", "batch", "group", "layer", "leakyrelu", "gelu".
  std::string name;
  /// Keyword arguments as a JSON object (empty object when none).
  nlohmann::json args = nlohmann::json::object();
  bool operator==(const LayerSpec& o) const { return name == o.name && args == o.args; }
};

/// Parses "name" or ["name", {args}] (MONAI's str / tuple forms); throws ConfigError naming `context`.
LayerSpec layer_spec_from_json(const nlohmann::json& j, const std::string& context);
/// "name" when there are no arguments, ["name", {args}] otherwise.
nlohmann::json layer_spec_to_json(const LayerSpec& spec);

/// Normalisation names accepted by make_norm.
std::vector<std::string> norm_names();
/// Activation names accepted by make_act.
std::vector<std::string> act_names();

/// Builds the normalisation layer for `channels` feature channels of a [B, C, D, H, W] tensor:
/// - "instance": InstanceNorm3d; args affine (false), eps (1e-5), momentum (0.1), track_running_stats (false).
///   No parameters by default (MONAI's default, so MONAI state_dicts have no keys for it).
/// - "batch": BatchNorm3d; args affine (true), eps (1e-5), momentum (0.1), track_running_stats (true).
/// - "group": GroupNorm; args num_groups (required, must divide channels), eps (1e-5), affine (true).
/// - "layer": with arg normalized_shape (list) exactly torch's LayerNorm over the trailing dims, as MONAI
///   requires; without it, layer normalisation over (C, D, H, W) of each sample with a per-channel affine
///   (GroupNorm with one group), which works at any spatial size. Args eps (1e-5), elementwise_affine (true).
/// Throws InvalidArgument (unknown name, bad value) or ConfigError (unknown argument), naming `context`.
torch::nn::AnyModule make_norm(const LayerSpec& spec, int64_t channels, const std::string& context = "norm_name");

/// Builds an activation (forward(Tensor) -> Tensor): "relu", "relu6", "leakyrelu" (negative_slope 0.01),
/// "prelu" (num_parameters 1, init 0.25; has a parameter "weight"), "elu" (alpha 1), "celu" (alpha 1), "selu",
/// "gelu" (approximate "none"|"tanh"), "sigmoid", "tanh", "swish"/"silu", "mish", "identity".
/// Every one accepts "inplace" (false) where torch has it. Throws like make_norm.
torch::nn::AnyModule make_act(const LayerSpec& spec, const std::string& context = "act");

/// Throws exactly as make_norm would, without keeping the layer (for validating options early).
void validate_norm(const LayerSpec& spec, int64_t channels, const std::string& context = "norm_name");

}  // namespace teachformer::nn
