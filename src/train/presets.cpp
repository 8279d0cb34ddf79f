#include "teachformer/train/presets.hpp"

#include "teachformer/core/error.hpp"
#include "teachformer/models/registry.hpp"

namespace teachformer::train {

std::vector<std::string> training_presets() { return {"tiny", "demo", "paper"}; }

nlohmann::json merge_config(nlohmann::json base, const nlohmann::json& overrides) {
  if (!base.is_object() || !overrides.is_object()) return overrides;
  for (auto it = overrides.begin(); it != overrides.end(); ++it) {
    if (base.contains(it.key()) && base[it.key()].is_object() && it->is_object())
      base[it.key()] = merge_config(base[it.key()], *it);
    else
      base[it.key()] = *it;
  }
  return base;
}

namespace {

using Json = nlohmann::json;

Json model_options(const std::string& preset, const std::string& model, int64_t in, int64_t out, int64_t patch) {
  if (model == "unetr") {
    if (preset == "paper") return {{"in_channels", in}, {"out_channels", out}, {"img_size", patch}};
    if (preset == "demo")
      return {{"in_channels", in}, {"out_channels", out}, {"img_size", patch}, {"feature_size", 8},
              {"hidden_size", 96}, {"mlp_dim", 192}, {"num_heads", 4}};
    return {{"in_channels", in}, {"out_channels", out}, {"img_size", patch}, {"feature_size", 4},
            {"hidden_size", 32}, {"mlp_dim", 64}, {"num_heads", 2}, {"num_layers", 4}};
  }
  if (model == "swin_unetr") {
    if (preset == "paper") return {{"in_channels", in}, {"out_channels", out}, {"feature_size", 48}};
    if (preset == "demo")
      return {{"in_channels", in}, {"out_channels", out}, {"feature_size", 12}, {"depths", {1, 1, 1, 1}},
              {"num_heads", {1, 2, 4, 8}}, {"window_size", 4}};
    return {{"in_channels", in}, {"out_channels", out}, {"feature_size", 12}, {"depths", {1, 1, 1, 1}},
            {"num_heads", {1, 1, 1, 1}}, {"window_size", 2}};
  }
  if (model == "hdenseformer") {
    if (preset == "paper")
      return {{"in_channels", in}, {"n_cls", out}, {"n_filters", 32}, {"image_size", {patch, patch, patch}},
              {"transformer_depth", 24}};
    if (preset == "demo")
      return {{"in_channels", in}, {"n_cls", out}, {"n_filters", 8}, {"image_size", {patch, patch, patch}},
              {"transformer_depth", 8}, {"dropout", 0.1}};
    return {{"in_channels", in}, {"n_cls", out}, {"n_filters", 4}, {"image_size", {patch, patch, patch}},
            {"transformer_depth", 4}, {"dropout", 0.0}};
  }
  if (model == "teachformer_s") {
    const char* student_preset = preset == "tiny" ? "tiny" : "small";
    return {{"preset", student_preset}, {"in_channels", in}, {"out_channels", out}};
  }
  models::require_model_key(model);
  TF_THROW(InternalError, "no preset for model '", model, "'");
}

}  // namespace

Json preset_config(const std::string& preset, const std::string& model, int64_t in_channels, int64_t out_channels) {
  TF_CHECK(preset == "tiny" || preset == "demo" || preset == "paper", InvalidArgument, "unknown preset '", preset,
           "'; presets: ", training_presets());
  models::require_model_key(model);
  int64_t patch = preset == "tiny" ? 32 : (preset == "demo" ? 64 : 96);
  if (preset == "paper" && model == "hdenseformer") patch = 144;
  Json trainer;
  if (preset == "tiny") {
    trainer = {{"epochs", 2}, {"steps_per_epoch", 3}, {"batch_size", 1}, {"val_every", 1}, {"workers", 1},
               {"optimizer", {{"lr", 3e-3}}}};
  } else if (preset == "demo") {
    trainer = {{"epochs", 12}, {"steps_per_epoch", 12}, {"batch_size", 2}, {"val_every", 4}, {"workers", 2},
               {"optimizer", {{"lr", 2e-3}}}, {"schedule", {{"warmup_steps", 10}}}};
  } else {
    trainer = {{"epochs", 1000}, {"steps_per_epoch", 250}, {"batch_size", 2}, {"val_every", 10}, {"workers", 4},
               {"optimizer", {{"lr", 3e-4}}}, {"schedule", {{"warmup_steps", 1000}}}};
  }
  trainer["patch_size"] = {patch, patch, patch};
  Json loss = {{"type", "dice_ce"}};
  Json ds = Json::object();
  if (preset == "paper" && model == "hdenseformer") {
    // The reference trains H-DenseFormer with DeepSuperloss(FocalLoss(reduction='sum')), weights 1, 1/2, 1/4, 1/8.
    loss = {{"type", "focal"}, {"gamma", 2.0}, {"reduction", "sum"}};
    ds = {{"normalize", false}};
    trainer["optimizer"] = {{"name", "adamw"}, {"lr", 1e-3}, {"weight_decay", 1e-4}};
  }
  return {{"model_options", model_options(preset, model, in_channels, out_channels, patch)},
          {"trainer", trainer},
          {"loss", loss},
          {"deep_supervision", ds}};
}

}  // namespace teachformer::train
