// UNETR (Hatamizadeh et al., WACV 2022), MONAI-compatible: same options, defaults and state_dict keys as
// monai.networks.nets.UNETR (MONAI 1.5), so MONAI weights converted to safetensors load key for key
// (MONAI >= 1.4's unused cross-attention keys are ignored: load with kMonaiIgnorablePatterns).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/expanding_array.h>
#include <torch/nn/pimpl.h>

#include "teachformer/models/seg_model.hpp"
#include "teachformer/nn/transformer.hpp"
#include "teachformer/nn/unet_blocks.hpp"

namespace teachformer::models {

/// Options of UNETR, named as MONAI's constructor arguments (JSON keys are the same names).
struct UNETROptions {
  UNETROptions(int64_t in_channels, int64_t out_channels, torch::ExpandingArray<3> img_size)
      : in_channels_(in_channels), out_channels_(out_channels), img_size_(img_size) {}
  /// Input channels (modalities).
  TORCH_ARG(int64_t, in_channels);
  /// Output channels (classes including background).
  TORCH_ARG(int64_t, out_channels);
  /// Input spatial size [D, H, W] in voxels (JSON: integer or list); every input must have exactly this size.
  TORCH_ARG(torch::ExpandingArray<3>, img_size);
  /// Width of the first convolutional stage (doubles per level); default 16.
  TORCH_ARG(int64_t, feature_size) = 16;
  /// ViT token width; default 768.
  TORCH_ARG(int64_t, hidden_size) = 768;
  /// ViT MLP width; default 3072.
  TORCH_ARG(int64_t, mlp_dim) = 3072;
  /// ViT attention heads; must divide hidden_size; default 12.
  TORCH_ARG(int64_t, num_heads) = 12;
  /// ViT blocks; skips are taken after blocks num_layers/4, /2 and 3/4 (4, 7, 10 of 12, MONAI's
  /// hidden_states_out[3], [6], [9]); >= 4; default 12 (fixed in MONAI).
  TORCH_ARG(int64_t, num_layers) = 12;
  /// ViT patch size [D, H, W] (JSON: integer or list), each a power of two up to 16; default 16 (fixed in
  /// MONAI). The decoder has 4 upsampling levels; for p < 16 the 4 - log2(p) finest levels of that dim upsample
  /// by 1 instead of 2 (their transposed-conv kernels have size 1 in that dim).
  TORCH_ARG(torch::ExpandingArray<3>, patch_size) = 16;
  /// Patch projection "conv" | "perceptron"; default "conv".
  TORCH_ARG(std::string, proj_type) = "conv";
  /// Normalisation of the convolutional blocks (nn::make_norm); default "instance".
  TORCH_ARG(nn::LayerSpec, norm_name) = "instance";
  /// Convolution blocks after the encoders' transposed convolutions; default true.
  TORCH_ARG(bool, conv_block) = true;
  /// Residual convolution blocks; default true.
  TORCH_ARG(bool, res_block) = true;
  /// ViT dropout in [0, 1]; default 0.
  TORCH_ARG(double, dropout_rate) = 0.0;
  /// Bias in the ViT qkv projections; default false.
  TORCH_ARG(bool, qkv_bias) = false;
  /// Record the attention taps on every forward, as if TapRequest::attention were set; default false.
  TORCH_ARG(bool, save_attn) = false;
};

/// Strict JSON -> options: MONAI's argument names; unknown keys, wrong types and spatial_dims != 3 are
/// ConfigError. Missing keys keep their defaults (in_channels 1, out_channels 2, img_size 96).
UNETROptions unetr_options_from_json(const nlohmann::json& j);
/// Every option as JSON (lists for sizes, norm_name as "name" or [name, {args}]).
nlohmann::json to_json(const UNETROptions& options);

/// State-dict key patterns a MONAI >= 1.4 UNETR has but this one does not build (the unused cross-attention
/// in every ViT block): pass them to load_state_dict.
inline const std::vector<std::string> kMonaiIgnorablePatterns{"cross_attn.", "norm_cross_attn."};

/// UNETR: a ViT encoder on patch_size^3 patches with convolutional skip paths and decoder.
///
/// forward(x [B, in_channels, img_size]) -> logits [B, out_channels, img_size]; no deep supervision. Taps:
/// - kEncoderCoarse "encoder_coarse": deepest encoder stage, the final (layer-normed) ViT tokens on the patch
///   grid [B, hidden_size, D/pD, H/pH, W/pW] (MONAI's `dec4`, what decoder5 reads).
/// - kDecoderFine "decoder_fine": decoder stage D_{n-1}, the stage before the last: decoder3's output
///   [B, 2 feature_size, D/2, H/2, W/2].
/// - kDecoderLast "decoder_last": the last decoder stage before `out`, decoder2's output [B, feature_size, D, H, W].
/// - with TapRequest::attention (or save_attn): "attention.<i>", i = 0..num_layers-1, ViT block i's attention
///   probabilities [B, num_heads, N, N], N = number of patches.
/// - with TapRequest::intermediates: "vit_hidden_<i>", block i's output tokens [B, N, hidden_size] (before
///   the final norm), as in the reference fixtures.
class UNETRImpl : public SegmentationModelImpl {
 public:
  explicit UNETRImpl(UNETROptions options);
  SegOutput forward(const torch::Tensor& x, const TapRequest& request = {}) override;
  const ModelSpec& spec() const override { return spec_; }
  /// The options this model was built with.
  const UNETROptions& options() const { return options_; }

  /// The ViT encoder.
  nn::ViT vit{nullptr};
  /// Full-resolution convolutional encoder on the input.
  nn::UnetrBasicBlock encoder1{nullptr};
  /// Projection-upsampling encoders reading ViT blocks num_layers/4, /2 and 3/4.
  nn::UnetrPrUpBlock encoder2{nullptr}, encoder3{nullptr}, encoder4{nullptr};
  /// Decoder stages, coarsest first.
  nn::UnetrUpBlock decoder5{nullptr}, decoder4{nullptr}, decoder3{nullptr}, decoder2{nullptr};
  /// 1x1x1 output convolution.
  nn::UnetOutBlock out{nullptr};

 private:
  torch::Tensor proj_feat(const torch::Tensor& tokens) const;
  UNETROptions options_;
  ModelSpec spec_;
  std::vector<int64_t> grid_;
};
TORCH_MODULE(UNETR);

}  // namespace teachformer::models
