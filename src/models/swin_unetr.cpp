#include "teachformer/models/swin_unetr.hpp"

#include <torch/torch.h>

#include "models/detail/factories.hpp"
#include "models/detail/monai_json.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"

namespace teachformer::models {

SwinUNETROptions swin_unetr_options_from_json(const nlohmann::json& j) {
  const std::string ctx = "SwinUNETR options";
  TF_CHECK(j.is_object(), ConfigError, ctx, ": expected a JSON object, got ", j.dump());
  SwinUNETROptions o(1, 2);
  JsonReader r(j, ctx);
  nlohmann::json depths, heads, window, norm, img;
  int64_t spatial_dims = 3;
  r.get("in_channels", o.in_channels())
      .get("out_channels", o.out_channels())
      .get("patch_size", o.patch_size())
      .get("depths", depths)
      .get("num_heads", heads)
      .get("window_size", window)
      .get("qkv_bias", o.qkv_bias())
      .get("mlp_ratio", o.mlp_ratio())
      .get("feature_size", o.feature_size())
      .get("norm_name", norm)
      .get("drop_rate", o.drop_rate())
      .get("attn_drop_rate", o.attn_drop_rate())
      .get("dropout_path_rate", o.dropout_path_rate())
      .get("normalize", o.normalize())
      .get("patch_norm", o.patch_norm())
      .get("use_checkpoint", o.use_checkpoint())
      .get("spatial_dims", spatial_dims)
      .get("downsample", o.downsample())
      .get("use_v2", o.use_v2())
      .get("img_size", img);
  r.finish();
  TF_CHECK(spatial_dims == 3, ConfigError, ctx, ": only spatial_dims 3 is supported, got ", spatial_dims);
  if (!img.is_null()) (void)detail::int_or_triple(img, ctx, "img_size");  // validated, then ignored as in MONAI
  if (!depths.is_null()) o.depths(detail::int_list(depths, ctx, "depths"));
  if (!heads.is_null()) o.num_heads(detail::int_list(heads, ctx, "num_heads"));
  if (!window.is_null()) o.window_size(torch::ExpandingArray<3>(detail::int_or_triple(window, ctx, "window_size")));
  if (!norm.is_null()) o.norm_name(nn::layer_spec_from_json(norm, ctx + ": key 'norm_name'"));
  return o;
}

nlohmann::json to_json(const SwinUNETROptions& o) {
  const auto& w = *o.window_size();
  return {{"in_channels", o.in_channels()},
          {"out_channels", o.out_channels()},
          {"patch_size", o.patch_size()},
          {"depths", o.depths()},
          {"num_heads", o.num_heads()},
          {"window_size", std::vector<int64_t>(w.begin(), w.end())},
          {"qkv_bias", o.qkv_bias()},
          {"mlp_ratio", o.mlp_ratio()},
          {"feature_size", o.feature_size()},
          {"norm_name", nn::layer_spec_to_json(o.norm_name())},
          {"drop_rate", o.drop_rate()},
          {"attn_drop_rate", o.attn_drop_rate()},
          {"dropout_path_rate", o.dropout_path_rate()},
          {"normalize", o.normalize()},
          {"patch_norm", o.patch_norm()},
          {"use_checkpoint", o.use_checkpoint()},
          {"spatial_dims", 3},
          {"downsample", o.downsample()},
          {"use_v2", o.use_v2()}};
}

SwinUNETRImpl::SwinUNETRImpl(SwinUNETROptions options) : SegmentationModelImpl("SwinUNETR"), options_(std::move(options)) {
  const auto& o = options_;
  const char* name = "SwinUNETR";
  TF_CHECK(o.in_channels() > 0 && o.out_channels() > 0, InvalidArgument, name,
           ": options in_channels and out_channels must be positive, got ", o.in_channels(), " and ",
           o.out_channels());
  TF_CHECK(o.feature_size() > 0 && o.feature_size() % 12 == 0, InvalidArgument, name,
           ": option feature_size must be a positive multiple of 12 (as MONAI requires), got ", o.feature_size());
  TF_CHECK(o.patch_size() > 0, InvalidArgument, name, ": option patch_size must be positive, got ", o.patch_size());
  for (const auto& [rate, option] : {std::pair<double, const char*>{o.drop_rate(), "drop_rate"},
                                     {o.attn_drop_rate(), "attn_drop_rate"},
                                     {o.dropout_path_rate(), "dropout_path_rate"}})
    TF_CHECK(rate >= 0.0 && rate <= 1.0, InvalidArgument, name, ": option ", option, " must be in [0, 1], got ", rate);
  TF_CHECK(o.depths().size() == 4 && o.num_heads().size() == 4, InvalidArgument, name,
           ": options depths and num_heads must have 4 entries (one per stage), got ", o.depths(), " and ",
           o.num_heads());
  const int64_t f = o.feature_size();
  swinViT = register_module("swinViT", nn::SwinTransformer(nn::SwinTransformerOptions(o.in_channels(), f)
                                                               .window_size(o.window_size())
                                                               .patch_size(o.patch_size())
                                                               .depths(o.depths())
                                                               .num_heads(o.num_heads())
                                                               .mlp_ratio(o.mlp_ratio())
                                                               .qkv_bias(o.qkv_bias())
                                                               .drop_rate(o.drop_rate())
                                                               .attn_drop_rate(o.attn_drop_rate())
                                                               .drop_path_rate(o.dropout_path_rate())
                                                               .patch_norm(o.patch_norm())
                                                               .downsample(o.downsample())
                                                               .use_v2(o.use_v2())));
  auto basic = [&](int64_t in, int64_t out_channels) {
    return nn::UnetrBasicBlock(
        nn::UnetrBasicBlockOptions(in, out_channels).norm_name(o.norm_name()).res_block(true));
  };
  encoder1 = register_module("encoder1", basic(o.in_channels(), f));
  encoder2 = register_module("encoder2", basic(f, f));
  encoder3 = register_module("encoder3", basic(2 * f, 2 * f));
  encoder4 = register_module("encoder4", basic(4 * f, 4 * f));
  encoder10 = register_module("encoder10", basic(16 * f, 16 * f));
  auto up = [&](int64_t in, int64_t out_channels, int64_t factor) {
    return nn::UnetrUpBlock(nn::UnetrUpBlockOptions(in, out_channels)
                                .upsample_kernel_size(factor)
                                .norm_name(o.norm_name())
                                .res_block(true));
  };
  decoder5 = register_module("decoder5", up(16 * f, 8 * f, 2));
  decoder4 = register_module("decoder4", up(8 * f, 4 * f, 2));
  decoder3 = register_module("decoder3", up(4 * f, 2 * f, 2));
  decoder2 = register_module("decoder2", up(2 * f, f, 2));
  // MONAI's decoder1 upsamples by 2 = its fixed patch size; by patch_size here, so other patch sizes work.
  decoder1 = register_module("decoder1", up(f, f, o.patch_size()));
  out = register_module("out", nn::UnetOutBlock(f, o.out_channels()));

  spec_.key = "swin_unetr";
  spec_.in_channels = o.in_channels();
  spec_.out_channels = o.out_channels();
  const int64_t divisor = o.patch_size() * 16;  // patch embedding, then 4 patch mergings
  spec_.size_divisor = {divisor, divisor, divisor};
  spec_.deep_supervision_outputs = 0;
  spec_.options = to_json(o);
}

SegOutput SwinUNETRImpl::forward(const torch::Tensor& x, const TapRequest& request) {
  check_input(x);
  std::vector<torch::Tensor> attentions;
  auto hidden = swinViT->forward(x, options_.normalize(), request.attention ? &attentions : nullptr);
  auto enc0 = encoder1->forward(x);
  auto enc1 = encoder2->forward(hidden[0]);
  auto enc2 = encoder3->forward(hidden[1]);
  auto enc3 = encoder4->forward(hidden[2]);
  auto dec4 = encoder10->forward(hidden[4]);
  auto dec3 = decoder5->forward(dec4, hidden[3]);
  auto dec2 = decoder4->forward(dec3, enc3);
  auto dec1 = decoder3->forward(dec2, enc2);
  auto dec0 = decoder2->forward(dec1, enc1);
  auto fine = decoder1->forward(dec0, enc0);
  SegOutput result;
  result.logits = out->forward(fine);
  if (request.features) {
    result.taps.set(kEncoderCoarse, hidden[4].contiguous());
    result.taps.set(kDecoderFine, dec0);
    result.taps.set(kDecoderLast, fine);
  }
  for (size_t i = 0; i < attentions.size(); ++i) result.taps.set(kAttentionPrefix + std::to_string(i), attentions[i]);
  if (request.intermediates)
    for (size_t i = 0; i < hidden.size(); ++i) result.taps.set("swin_hidden_" + std::to_string(i), hidden[i]);
  return result;
}

namespace detail {

SegmentationModel make_swin_unetr(const nlohmann::json& options) {
  return std::make_shared<SwinUNETRImpl>(swin_unetr_options_from_json(options));
}

nlohmann::json swin_unetr_defaults() { return to_json(SwinUNETROptions(1, 2)); }

}  // namespace detail
}  // namespace teachformer::models
