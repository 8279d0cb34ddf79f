#include "teachformer/models/unetr.hpp"

#include <torch/torch.h>

#include "models/detail/factories.hpp"
#include "models/detail/monai_json.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::models {
namespace {

std::vector<int64_t> vec(const torch::ExpandingArray<3>& a) { return std::vector<int64_t>(a->begin(), a->end()); }

int log2_exact(int64_t v) {
  int k = 0;
  while ((int64_t(1) << k) < v) ++k;
  return (int64_t(1) << k) == v ? k : -1;
}

}  // namespace

UNETROptions unetr_options_from_json(const nlohmann::json& j) {
  const std::string ctx = "UNETR options";
  TF_CHECK(j.is_object(), ConfigError, ctx, ": expected a JSON object, got ", j.dump());
  UNETROptions o(1, 2, 96);
  JsonReader r(j, ctx);
  nlohmann::json img, patch, norm;
  int64_t spatial_dims = 3;
  r.get("in_channels", o.in_channels())
      .get("out_channels", o.out_channels())
      .get("img_size", img)
      .get("feature_size", o.feature_size())
      .get("hidden_size", o.hidden_size())
      .get("mlp_dim", o.mlp_dim())
      .get("num_heads", o.num_heads())
      .get("num_layers", o.num_layers())
      .get("patch_size", patch)
      .get("proj_type", o.proj_type())
      .get("norm_name", norm)
      .get("conv_block", o.conv_block())
      .get("res_block", o.res_block())
      .get("dropout_rate", o.dropout_rate())
      .get("spatial_dims", spatial_dims)
      .get("qkv_bias", o.qkv_bias())
      .get("save_attn", o.save_attn());
  r.finish();
  TF_CHECK(spatial_dims == 3, ConfigError, ctx, ": only spatial_dims 3 is supported, got ", spatial_dims);
  if (!img.is_null()) o.img_size(torch::ExpandingArray<3>(detail::int_or_triple(img, ctx, "img_size")));
  if (!patch.is_null()) o.patch_size(torch::ExpandingArray<3>(detail::int_or_triple(patch, ctx, "patch_size")));
  if (!norm.is_null()) o.norm_name(nn::layer_spec_from_json(norm, ctx + ": key 'norm_name'"));
  return o;
}

nlohmann::json to_json(const UNETROptions& o) {
  return {{"in_channels", o.in_channels()},
          {"out_channels", o.out_channels()},
          {"img_size", vec(o.img_size())},
          {"feature_size", o.feature_size()},
          {"hidden_size", o.hidden_size()},
          {"mlp_dim", o.mlp_dim()},
          {"num_heads", o.num_heads()},
          {"num_layers", o.num_layers()},
          {"patch_size", vec(o.patch_size())},
          {"proj_type", o.proj_type()},
          {"norm_name", nn::layer_spec_to_json(o.norm_name())},
          {"conv_block", o.conv_block()},
          {"res_block", o.res_block()},
          {"dropout_rate", o.dropout_rate()},
          {"spatial_dims", 3},
          {"qkv_bias", o.qkv_bias()},
          {"save_attn", o.save_attn()}};
}

UNETRImpl::UNETRImpl(UNETROptions options) : SegmentationModelImpl("UNETR"), options_(std::move(options)) {
  const auto& o = options_;
  const char* name = "UNETR";
  TF_CHECK(o.in_channels() > 0 && o.out_channels() > 0, InvalidArgument, name,
           ": options in_channels and out_channels must be positive, got ", o.in_channels(), " and ",
           o.out_channels());
  TF_CHECK(o.feature_size() > 0, InvalidArgument, name, ": option feature_size must be positive, got ",
           o.feature_size());
  TF_CHECK(o.dropout_rate() >= 0.0 && o.dropout_rate() <= 1.0, InvalidArgument, name,
           ": option dropout_rate must be in [0, 1], got ", o.dropout_rate());
  TF_CHECK(o.num_heads() > 0 && o.hidden_size() > 0 && o.hidden_size() % o.num_heads() == 0, InvalidArgument, name,
           ": option hidden_size ", o.hidden_size(), " must be divisible by num_heads ", o.num_heads());
  TF_CHECK(o.num_layers() >= 4, InvalidArgument, name, ": option num_layers must be >= 4 (skips are taken after ",
           "blocks num_layers/4, /2 and 3/4), got ", o.num_layers());
  const auto img = vec(o.img_size()), patch = vec(o.patch_size());
  // Per level (coarsest first) and dim: the upsampling factor 2 or 1; their product per dim is the patch size.
  std::vector<std::array<int64_t, 3>> factors(4, {1, 1, 1});
  for (int d = 0; d < 3; ++d) {
    const int k = log2_exact(patch[d]);
    TF_CHECK(k >= 0 && k <= 4, InvalidArgument, name, ": option patch_size ", patch,
             " must be a power of two up to 16 in every dim (the decoder upsamples 4 times by 2 or 1; dim ", d,
             " is ", patch[d], ")");
    TF_CHECK(img[d] > 0 && img[d] % patch[d] == 0, InvalidArgument, name, ": option img_size ", img,
             " must be divisible by patch_size ", patch, " in every dim (dim ", d, " is ", img[d], ")");
    for (int level = 0; level < k; ++level) factors[level][d] = 2;
    grid_.push_back(img[d] / patch[d]);
  }
  auto up = [&](int level) { return torch::ExpandingArray<3>(std::vector<int64_t>(factors[level].begin(), factors[level].end())); };
  const int64_t f = o.feature_size(), h = o.hidden_size();
  vit = register_module("vit", nn::ViT(nn::ViTOptions(o.in_channels(), o.img_size(), o.patch_size())
                                           .hidden_size(h)
                                           .mlp_dim(o.mlp_dim())
                                           .num_layers(o.num_layers())
                                           .num_heads(o.num_heads())
                                           .proj_type(o.proj_type())
                                           .dropout_rate(o.dropout_rate())
                                           .qkv_bias(o.qkv_bias())));
  encoder1 = register_module("encoder1", nn::UnetrBasicBlock(nn::UnetrBasicBlockOptions(o.in_channels(), f)
                                                                 .norm_name(o.norm_name())
                                                                 .res_block(o.res_block())));
  auto pr_up = [&](int64_t out_channels, int64_t num_layer) {
    nn::Int3List kernels;
    for (int level = 0; level <= num_layer; ++level) kernels.push_back(factors[level]);
    return nn::UnetrPrUpBlock(nn::UnetrPrUpBlockOptions(h, out_channels, num_layer)
                                  .upsample_kernel_sizes(kernels)
                                  .norm_name(o.norm_name())
                                  .conv_block(o.conv_block())
                                  .res_block(o.res_block()));
  };
  encoder2 = register_module("encoder2", pr_up(2 * f, 2));
  encoder3 = register_module("encoder3", pr_up(4 * f, 1));
  encoder4 = register_module("encoder4", pr_up(8 * f, 0));
  auto up_block = [&](int64_t in, int64_t out_channels, int level) {
    return nn::UnetrUpBlock(nn::UnetrUpBlockOptions(in, out_channels)
                                .upsample_kernel_size(up(level))
                                .norm_name(o.norm_name())
                                .res_block(o.res_block()));
  };
  decoder5 = register_module("decoder5", up_block(h, 8 * f, 0));
  decoder4 = register_module("decoder4", up_block(8 * f, 4 * f, 1));
  decoder3 = register_module("decoder3", up_block(4 * f, 2 * f, 2));
  decoder2 = register_module("decoder2", up_block(2 * f, f, 3));
  out = register_module("out", nn::UnetOutBlock(f, o.out_channels()));

  spec_.key = "unetr";
  spec_.in_channels = o.in_channels();
  spec_.out_channels = o.out_channels();
  spec_.size_divisor = patch;
  spec_.fixed_input_size = img;
  spec_.deep_supervision_outputs = 0;
  spec_.options = to_json(o);
}

torch::Tensor UNETRImpl::proj_feat(const torch::Tensor& tokens) const {
  // [B, N, hidden] -> [B, hidden, gD, gH, gW]
  return tokens.view({tokens.size(0), grid_[0], grid_[1], grid_[2], options_.hidden_size()})
      .permute({0, 4, 1, 2, 3})
      .contiguous();
}

SegOutput UNETRImpl::forward(const torch::Tensor& x, const TapRequest& request) {
  check_input(x);
  const bool attention = request.attention || options_.save_attn();
  std::vector<torch::Tensor> hidden, attentions;
  auto last = vit->forward(x, &hidden, attention ? &attentions : nullptr);
  const int64_t layers = options_.num_layers();
  auto enc1 = encoder1->forward(x);
  auto enc2 = encoder2->forward(proj_feat(hidden[layers / 4]));
  auto enc3 = encoder3->forward(proj_feat(hidden[layers / 2]));
  auto enc4 = encoder4->forward(proj_feat(hidden[3 * layers / 4]));
  auto dec4 = proj_feat(last);
  auto dec3 = decoder5->forward(dec4, enc4);
  auto dec2 = decoder4->forward(dec3, enc3);
  auto dec1 = decoder3->forward(dec2, enc2);
  auto fine = decoder2->forward(dec1, enc1);
  SegOutput result;
  result.logits = out->forward(fine);
  if (request.features) {
    result.taps.set(kEncoderCoarse, dec4);
    result.taps.set(kDecoderFine, dec1);
    result.taps.set(kDecoderLast, fine);
  }
  if (attention)
    for (size_t i = 0; i < attentions.size(); ++i)
      result.taps.set(kAttentionPrefix + std::to_string(i), attentions[i]);
  if (request.intermediates)
    for (size_t i = 0; i < hidden.size(); ++i) result.taps.set("vit_hidden_" + std::to_string(i), hidden[i]);
  return result;
}

namespace detail {

SegmentationModel make_unetr(const nlohmann::json& options) {
  return std::make_shared<UNETRImpl>(unetr_options_from_json(options));
}

nlohmann::json unetr_defaults() { return to_json(UNETROptions(1, 2, 96)); }

}  // namespace detail
}  // namespace teachformer::models
