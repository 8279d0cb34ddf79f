#include "teachformer/nn/factories.hpp"

#include <algorithm>
#include <cctype>

#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::nn {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

std::string where(const std::string& context, const LayerSpec& spec) {
  return context + " '" + spec.name + "'";
}

// A GroupNorm over all channels: layer norm over (C, D, H, W) with a per-channel affine.
torch::nn::AnyModule channel_layer_norm(int64_t channels, double eps, bool affine) {
  return torch::nn::AnyModule(torch::nn::GroupNorm(torch::nn::GroupNormOptions(1, channels).eps(eps).affine(affine)));
}

}  // namespace

LayerSpec layer_spec_from_json(const nlohmann::json& j, const std::string& context) {
  if (j.is_string()) return LayerSpec(j.get<std::string>());
  if (j.is_array() && (j.size() == 1 || j.size() == 2) && j[0].is_string() &&
      (j.size() == 1 || j[1].is_object())) {
    return LayerSpec(j[0].get<std::string>(), j.size() == 2 ? j[1] : nlohmann::json::object());
  }
  TF_THROW(ConfigError, context, ": expected a layer name or [name, {arguments}] such as \"instance\" or ",
           "[\"group\", {\"num_groups\": 4}], got ", j.dump());
}

nlohmann::json layer_spec_to_json(const LayerSpec& spec) {
  if (spec.args.is_null() || spec.args.empty()) return spec.name;
  return nlohmann::json::array({spec.name, spec.args});
}

std::vector<std::string> norm_names() { return {"batch", "group", "instance", "layer"}; }

std::vector<std::string> act_names() {
  return {"celu", "elu", "gelu", "identity", "leakyrelu", "mish", "prelu", "relu", "relu6", "selu", "sigmoid",
          "silu", "swish", "tanh"};
}

torch::nn::AnyModule make_norm(const LayerSpec& spec, int64_t channels, const std::string& context) {
  const std::string name = lower(spec.name);
  const std::string ctx = where(context, spec);
  TF_CHECK(channels > 0, InvalidArgument, ctx, ": channels must be positive, got ", channels);
  TF_CHECK(spec.args.is_object() || spec.args.is_null(), ConfigError, ctx, ": arguments must be an object, got ",
           spec.args.dump());
  const nlohmann::json args = spec.args.is_null() ? nlohmann::json::object() : spec.args;
  JsonReader r(args, ctx + " arguments");
  double eps = 1e-5, momentum = 0.1;
  if (name == "instance") {
    bool affine = false, track = false;
    r.get("affine", affine).get("eps", eps).get("momentum", momentum).get("track_running_stats", track);
    r.ignore("num_features");  // MONAI fills it from `channels`
    r.finish();
    return torch::nn::AnyModule(torch::nn::InstanceNorm3d(
        torch::nn::InstanceNormOptions(channels).affine(affine).eps(eps).momentum(momentum).track_running_stats(
            track)));
  }
  if (name == "batch") {
    bool affine = true, track = true;
    r.get("affine", affine).get("eps", eps).get("momentum", momentum).get("track_running_stats", track);
    r.ignore("num_features");
    r.finish();
    return torch::nn::AnyModule(torch::nn::BatchNorm3d(
        torch::nn::BatchNormOptions(channels).affine(affine).eps(eps).momentum(momentum).track_running_stats(track)));
  }
  if (name == "group") {
    int64_t groups = 0;
    bool affine = true;
    TF_CHECK(args.contains("num_groups"), InvalidArgument, ctx, ": argument num_groups is required, e.g. ",
             "[\"group\", {\"num_groups\": 8}]");
    r.get("num_groups", groups).get("eps", eps).get("affine", affine);
    r.ignore("num_channels");
    r.finish();
    TF_CHECK(groups > 0 && channels % groups == 0, InvalidArgument, ctx, ": num_groups must divide the ",
             channels, " channels of this layer, got num_groups ", groups);
    return torch::nn::AnyModule(
        torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps).affine(affine)));
  }
  if (name == "layer") {
    bool affine = true;
    std::vector<int64_t> shape;
    r.get("normalized_shape", shape).get("eps", eps).get("elementwise_affine", affine);
    r.finish();
    if (shape.empty()) return channel_layer_norm(channels, eps, affine);
    TF_CHECK(shape[0] == channels, InvalidArgument, ctx, ": normalized_shape ", shape,
             " must start with this layer's channel count ", channels);
    return torch::nn::AnyModule(
        torch::nn::LayerNorm(torch::nn::LayerNormOptions(shape).eps(eps).elementwise_affine(affine)));
  }
  TF_THROW(InvalidArgument, ctx, ": unknown normalisation; valid: ", norm_names());
}

void validate_norm(const LayerSpec& spec, int64_t channels, const std::string& context) {
  (void)make_norm(spec, channels, context);
}

torch::nn::AnyModule make_act(const LayerSpec& spec, const std::string& context) {
  const std::string name = lower(spec.name);
  const std::string ctx = where(context, spec);
  TF_CHECK(spec.args.is_object() || spec.args.is_null(), ConfigError, ctx, ": arguments must be an object, got ",
           spec.args.dump());
  const nlohmann::json args = spec.args.is_null() ? nlohmann::json::object() : spec.args;
  JsonReader r(args, ctx + " arguments");
  bool inplace = false;
  if (name == "relu") {
    r.get("inplace", inplace).finish();
    return torch::nn::AnyModule(torch::nn::ReLU(torch::nn::ReLUOptions(inplace)));
  }
  if (name == "relu6") {
    r.get("inplace", inplace).finish();
    return torch::nn::AnyModule(torch::nn::ReLU6(torch::nn::ReLU6Options(inplace)));
  }
  if (name == "leakyrelu") {
    double slope = 0.01;
    r.get("negative_slope", slope).get("inplace", inplace).finish();
    return torch::nn::AnyModule(
        torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(slope).inplace(inplace)));
  }
  if (name == "prelu") {
    int64_t n = 1;
    double init = 0.25;
    r.get("num_parameters", n).get("init", init).finish();
    TF_CHECK(n > 0, InvalidArgument, ctx, ": num_parameters must be positive, got ", n);
    return torch::nn::AnyModule(torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(n).init(init)));
  }
  if (name == "elu" || name == "celu") {
    double alpha = 1.0;
    r.get("alpha", alpha).get("inplace", inplace).finish();
    if (name == "elu") return torch::nn::AnyModule(torch::nn::ELU(torch::nn::ELUOptions().alpha(alpha).inplace(inplace)));
    return torch::nn::AnyModule(torch::nn::CELU(torch::nn::CELUOptions().alpha(alpha).inplace(inplace)));
  }
  if (name == "selu") {
    r.get("inplace", inplace).finish();
    return torch::nn::AnyModule(torch::nn::SELU(torch::nn::SELUOptions(inplace)));
  }
  if (name == "gelu") {
    std::string approximate = "none";
    r.get("approximate", approximate).finish();
    TF_CHECK(approximate == "none" || approximate == "tanh", InvalidArgument, ctx,
             ": approximate must be \"none\" or \"tanh\", got \"", approximate, "\"");
    return torch::nn::AnyModule(torch::nn::GELU(torch::nn::GELUOptions().approximate(approximate)));
  }
  if (name == "sigmoid") {
    r.finish();
    return torch::nn::AnyModule(torch::nn::Sigmoid());
  }
  if (name == "tanh") {
    r.finish();
    return torch::nn::AnyModule(torch::nn::Tanh());
  }
  if (name == "swish" || name == "silu") {
    r.ignore("inplace").finish();
    return torch::nn::AnyModule(torch::nn::SiLU());
  }
  if (name == "mish") {
    r.ignore("inplace").finish();
    return torch::nn::AnyModule(torch::nn::Mish());
  }
  if (name == "identity") {
    r.finish();
    return torch::nn::AnyModule(torch::nn::Identity());
  }
  TF_THROW(InvalidArgument, ctx, ": unknown activation; valid: ", act_names());
}

}  // namespace teachformer::nn
