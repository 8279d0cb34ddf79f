// SwinUNETR (Hatamizadeh et al., BrainLes 2021), MONAI-compatible: same options, defaults and state_dict keys
// as monai.networks.nets.SwinUNETR (MONAI 1.5), so MONAI weights converted to safetensors load key for key.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/expanding_array.h>
#include <torch/nn/pimpl.h>

#include "teachformer/models/seg_model.hpp"
#include "teachformer/nn/swin.hpp"
#include "teachformer/nn/unet_blocks.hpp"

namespace teachformer::models {

/// Options of SwinUNETR, named as MONAI's constructor arguments (JSON keys are the same names; the JSON also
/// accepts MONAI's deprecated img_size and use_checkpoint, which have no effect here).
struct SwinUNETROptions {
  SwinUNETROptions(int64_t in_channels, int64_t out_channels) : in_channels_(in_channels), out_channels_(out_channels) {}
  /// Input channels (modalities).
  TORCH_ARG(int64_t, in_channels);
  /// Output channels (classes including background).
  TORCH_ARG(int64_t, out_channels);
  /// Patch size of the Swin patch embedding (same in every dim); default 2.
  TORCH_ARG(int64_t, patch_size) = 2;
  /// Swin blocks per stage (4 stages); default {2, 2, 2, 2}.
  TORCH_ARG(std::vector<int64_t>, depths) = std::vector<int64_t>{2, 2, 2, 2};
  /// Attention heads per stage (4 stages); default {3, 6, 12, 24}.
  TORCH_ARG(std::vector<int64_t>, num_heads) = std::vector<int64_t>{3, 6, 12, 24};
  /// Attention window [D, H, W] in tokens (JSON: integer or list); default 7.
  TORCH_ARG(torch::ExpandingArray<3>, window_size) = 7;
  /// Bias in the qkv projections; default true.
  TORCH_ARG(bool, qkv_bias) = true;
  /// Swin MLP width as a multiple of the stage width; default 4.
  TORCH_ARG(double, mlp_ratio) = 4.0;
  /// Width of the first stage (doubles per stage); must be divisible by 12 (MONAI's rule); default 24.
  TORCH_ARG(int64_t, feature_size) = 24;
  /// Normalisation of the convolutional blocks (nn::make_norm); default "instance".
  TORCH_ARG(nn::LayerSpec, norm_name) = "instance";
  /// Dropout in [0, 1]; default 0.
  TORCH_ARG(double, drop_rate) = 0.0;
  /// Attention dropout in [0, 1]; default 0.
  TORCH_ARG(double, attn_drop_rate) = 0.0;
  /// Stochastic depth (rising linearly to this over all Swin blocks) in [0, 1]; default 0.
  TORCH_ARG(double, dropout_path_rate) = 0.0;
  /// Layer-normalise (no affine) each Swin hidden state over channels before the decoder; default true.
  TORCH_ARG(bool, normalize) = true;
  /// LayerNorm after the patch embedding; default false.
  TORCH_ARG(bool, patch_norm) = false;
  /// Patch merging "merging" | "mergingv2" (see nn::PatchMergingOptions::version); default "merging".
  TORCH_ARG(std::string, downsample) = "merging";
  /// SwinUNETR-v2 (a residual conv block before each Swin stage); default false.
  TORCH_ARG(bool, use_v2) = false;
  /// Accepted for MONAI compatibility (gradient checkpointing); has no effect; default false.
  TORCH_ARG(bool, use_checkpoint) = false;
};

/// Strict JSON -> options: MONAI's argument names; unknown keys, wrong types and spatial_dims != 3 are
/// ConfigError; img_size is accepted and ignored (deprecated in MONAI: sizes are checked in forward).
/// Missing keys keep their defaults (in_channels 1, out_channels 2).
SwinUNETROptions swin_unetr_options_from_json(const nlohmann::json& j);
/// Every option as JSON (norm_name as "name" or [name, {args}]).
nlohmann::json to_json(const SwinUNETROptions& options);

/// SwinUNETR: a 4-stage Swin Transformer encoder (swinViT) with convolutional skips and decoder.
///
/// forward(x [B, in_channels, D, H, W]), every spatial size divisible by patch_size * 16 (32 by default) ->
/// logits [B, out_channels, D, H, W]; no deep supervision. With s = patch_size, taps:
/// - kEncoderCoarse "encoder_coarse": deepest encoder stage, the last Swin stage output after `normalize`
///   (MONAI's hidden_states_out[4]) [B, 16 * feature_size, D/(16s), H/(16s), W/(16s)].
/// - kDecoderFine "decoder_fine": decoder stage D_{n-1}, the stage before the last: decoder2's output
///   [B, feature_size, D/2, H/2, W/2].
/// - kDecoderLast "decoder_last": the last decoder stage before `out`, decoder1's output [B, feature_size, D, H, W].
/// - with TapRequest::attention: "attention.<i>" for every Swin block, numbered over all stages
///   (i = depths[0] + ... + depths[stage-1] + block), each [B * nW, heads, n, n] with nW windows of n tokens
///   (windows shrink to the feature map where it is smaller than window_size).
/// - with TapRequest::intermediates: "swin_hidden_<i>", i = 0..4, the Swin hidden states after `normalize`
///   [B, feature_size * 2^i, D/(s 2^i), H/(s 2^i), W/(s 2^i)], as in the reference fixtures.
class SwinUNETRImpl : public SegmentationModelImpl {
 public:
  explicit SwinUNETRImpl(SwinUNETROptions options);
  SegOutput forward(const torch::Tensor& x, const TapRequest& request = {}) override;
  const ModelSpec& spec() const override { return spec_; }
  /// The options this model was built with.
  const SwinUNETROptions& options() const { return options_; }

  /// The Swin encoder.
  nn::SwinTransformer swinViT{nullptr};
  /// Convolutional encoders: encoder1 on the input, encoder2..4 and encoder10 on Swin hidden states 0..2, 4.
  nn::UnetrBasicBlock encoder1{nullptr}, encoder2{nullptr}, encoder3{nullptr}, encoder4{nullptr},
      encoder10{nullptr};
  /// Decoder stages, coarsest first.
  nn::UnetrUpBlock decoder5{nullptr}, decoder4{nullptr}, decoder3{nullptr}, decoder2{nullptr}, decoder1{nullptr};
  /// 1x1x1 output convolution.
  nn::UnetOutBlock out{nullptr};

 private:
  SwinUNETROptions options_;
  ModelSpec spec_;
};
TORCH_MODULE(SwinUNETR);

}  // namespace teachformer::models
