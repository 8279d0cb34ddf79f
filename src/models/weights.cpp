#include "teachformer/models/weights.hpp"

#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/io/safetensors.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/unetr.hpp"
#include "teachformer/version.hpp"

namespace teachformer::models {
namespace {

const char* const kKnownFields[] = {"model",      "options", "channel_names", "normalization", "patch_size",
                                    "spacing",    "labels",  "tool_version"};

// "key: a vs b" for the top-level keys where two option objects differ.
std::string option_differences(const nlohmann::json& a, const nlohmann::json& b) {
  std::vector<std::string> parts;
  for (auto it = a.begin(); it != a.end(); ++it) {
    const auto other = b.find(it.key());
    if (other == b.end())
      parts.push_back(it.key() + ": " + it.value().dump() + " vs (absent)");
    else if (*other != it.value())
      parts.push_back(it.key() + ": " + it.value().dump() + " vs " + other->dump());
  }
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!a.contains(it.key())) parts.push_back(it.key() + ": (absent) vs " + it.value().dump());
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
  return out;
}

void check_channels(const std::string& file, const std::vector<std::string>& recorded,
                    const std::vector<std::string>& requested) {
  if (recorded.empty() || requested.empty()) return;
  TF_CHECK(recorded == requested, InvalidArgument, "weights '", file, "' expect input channels ", recorded,
           " (in this order) but the request gives ", requested);
}

LoadReport load_checked(SegmentationModelImpl& model, const std::string& file, const StateDict& tensors,
                        const std::vector<std::string>& ignorable) {
  try {
    return load_state_dict(model, tensors, ignorable);
  } catch (const InvalidArgument& e) {
    TF_THROW(InvalidArgument, "weights '", file, "' do not fit model '", model.spec().key, "': ", e.what());
  }
}

std::optional<WeightsMetadata> metadata_of(const io::SafeTensors& st, const std::string& file) {
  const auto it = st.metadata.find(kWeightsMetadataKey);
  if (it == st.metadata.end()) return std::nullopt;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    TF_THROW(FormatError, "weights '", file, "': metadata entry '", kWeightsMetadataKey, "' is not JSON: ", e.what());
  }
  return weights_metadata_from_json(json, "weights '" + file + "'");
}

}  // namespace

nlohmann::json to_json(const WeightsMetadata& m) {
  nlohmann::json j = m.extra.is_object() ? m.extra : nlohmann::json::object();
  j["model"] = m.model;
  j["options"] = m.options;
  if (!m.channel_names.empty()) j["channel_names"] = m.channel_names;
  if (!m.normalization.is_null()) j["normalization"] = m.normalization;
  if (!m.patch_size.empty()) j["patch_size"] = m.patch_size;
  if (!m.spacing.empty()) j["spacing"] = m.spacing;
  if (!m.labels.is_null()) j["labels"] = m.labels;
  if (!m.tool_version.empty()) j["tool_version"] = m.tool_version;
  return j;
}

WeightsMetadata weights_metadata_from_json(const nlohmann::json& j, const std::string& context) {
  TF_CHECK(j.is_object(), FormatError, context, ": metadata must be a JSON object, got ", j.dump());
  for (const char* required : {"model", "options"})
    TF_CHECK(j.contains(required), FormatError, context, ": metadata lacks '", required,
             "' (write the file with teachformer, or load it as a plain state dict by naming the model)");
  WeightsMetadata m;
  try {
    m.model = j.at("model").get<std::string>();
    m.options = j.at("options");
    TF_CHECK(m.options.is_object(), FormatError, context, ": metadata 'options' must be an object");
    if (j.contains("channel_names")) m.channel_names = j.at("channel_names").get<std::vector<std::string>>();
    if (j.contains("normalization")) m.normalization = j.at("normalization");
    if (j.contains("patch_size")) m.patch_size = j.at("patch_size").get<std::vector<int64_t>>();
    if (j.contains("spacing")) m.spacing = j.at("spacing").get<std::vector<double>>();
    if (j.contains("labels")) m.labels = j.at("labels");
    if (j.contains("tool_version")) m.tool_version = j.at("tool_version").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    TF_THROW(FormatError, context, ": metadata field has the wrong type: ", e.what());
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* k : kKnownFields) known = known || it.key() == k;
    if (!known) m.extra[it.key()] = it.value();
  }
  return m;
}

void save_weights(const std::filesystem::path& path, const SegmentationModelImpl& model, WeightsMetadata metadata) {
  const ModelSpec& spec = model.spec();
  TF_CHECK(metadata.model.empty() || metadata.model == spec.key, InvalidArgument, "save_weights '", path.string(),
           "': metadata names model '", metadata.model, "' but the model is '", spec.key, "'");
  const bool options_given = !(metadata.options.is_null() || (metadata.options.is_object() && metadata.options.empty()));
  TF_CHECK(!options_given || metadata.options == spec.options, InvalidArgument, "save_weights '", path.string(),
           "': metadata options differ from the model's (", option_differences(metadata.options, spec.options), ")");
  TF_CHECK(metadata.channel_names.empty() || int64_t(metadata.channel_names.size()) == spec.in_channels,
           InvalidArgument, "save_weights '", path.string(), "': ", metadata.channel_names.size(),
           " channel names ", metadata.channel_names, " for a model with in_channels ", spec.in_channels);
  TF_CHECK(metadata.patch_size.empty() || metadata.patch_size.size() == 3, InvalidArgument, "save_weights '",
           path.string(), "': patch_size must be [D, H, W], got ", metadata.patch_size);
  TF_CHECK(metadata.spacing.empty() || metadata.spacing.size() == 3, InvalidArgument, "save_weights '",
           path.string(), "': spacing must be (x, y, z) in mm, got ", metadata.spacing);
  metadata.model = spec.key;
  metadata.options = spec.options;
  metadata.tool_version = kVersion;
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& [name, t] : state_dict(model)) tensors[name] = t.detach().to(torch::kCPU);
  io::write_safetensors(path, tensors, {{kWeightsMetadataKey, to_json(metadata).dump()}});
}

std::optional<WeightsMetadata> read_weights_metadata(const std::filesystem::path& path) {
  return metadata_of(io::read_safetensors_header(path), path.string());
}

LoadedModel load_model_weights(const std::filesystem::path& path, const WeightsRequest& request) {
  const std::string file = path.string();
  io::SafeTensors st = io::read_safetensors(path);
  LoadedModel out;
  out.metadata = metadata_of(st, file);
  std::vector<std::string> ignorable = request.ignorable_patterns;
  if (out.metadata) {
    const WeightsMetadata& meta = *out.metadata;
    TF_CHECK(request.model.empty() || request.model == meta.model, InvalidArgument, "weights '", file,
             "' hold model '", meta.model, "' but model '", request.model, "' was requested");
    check_channels(file, meta.channel_names, request.channel_names);
    out.model = create_model(meta.model, meta.options);
    if (!request.options.is_null()) {
      const nlohmann::json wanted = create_model(meta.model, request.options)->spec().options;
      TF_CHECK(wanted == out.model->spec().options, InvalidArgument, "weights '", file, "' hold model '", meta.model,
               "' with other options than requested (file vs request: ",
               option_differences(out.model->spec().options, wanted), ")");
    }
  } else {
    TF_CHECK(!request.model.empty(), InvalidArgument, "weights '", file, "' carry no TeachFormer metadata (a plain ",
             "state dict): name the model (and its options) to load them; valid models: ", model_keys());
    out.model = create_model(request.model, request.options);
    if (request.model == "unetr")
      ignorable.insert(ignorable.end(), kMonaiIgnorablePatterns.begin(), kMonaiIgnorablePatterns.end());
    if (!request.channel_names.empty())
      TF_CHECK(int64_t(request.channel_names.size()) == out.model->spec().in_channels, InvalidArgument,
               "weights '", file, "': ", request.channel_names.size(), " channel names ", request.channel_names,
               " for a model with in_channels ", out.model->spec().in_channels);
  }
  out.report = load_checked(*out.model, file, st.tensors, ignorable);
  out.model->eval();
  return out;
}

LoadReport load_weights_into(SegmentationModelImpl& model, const std::filesystem::path& path,
                             const std::vector<std::string>& channel_names,
                             const std::vector<std::string>& ignorable_patterns) {
  const std::string file = path.string();
  io::SafeTensors st = io::read_safetensors(path);
  if (const auto meta = metadata_of(st, file)) {
    TF_CHECK(meta->model == model.spec().key, InvalidArgument, "weights '", file, "' hold model '", meta->model,
             "' but the model is '", model.spec().key, "'");
    TF_CHECK(meta->options == model.spec().options, InvalidArgument, "weights '", file, "' hold model '", meta->model,
             "' with other options than this model (file vs model: ",
             option_differences(meta->options, model.spec().options), ")");
    check_channels(file, meta->channel_names, channel_names);
  }
  return load_checked(model, file, st.tensors, ignorable_patterns);
}

}  // namespace teachformer::models
