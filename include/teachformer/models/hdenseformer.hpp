// H-DenseFormer 3D (Shi et al., MICCAI 2023) as the reference code builds it (github.com/shijun18/H-DenseFormer,
// models/HDenseFormer.py at db44a4b), so that the reference state_dict loads key for key. The reference's quirks are
// kept on purpose (see /shared/hdenseformer.md): the FFN is applied twice in every dense layer and its second output
// (no residual) is what the layer appends; the CNN part is a plain U-Net with double convs (no dense conv blocks);
// the decoder concatenates [upsampled, skip]; modalities go through separate transformer paths in channel order.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "teachformer/models/seg_model.hpp"

namespace teachformer::models {

/// Options of HDenseFormer. Names follow the reference constructor `HDenseFormer(in_channels, n_cls, n_filters,
/// image_size, transformer_depth)`; the constants the reference fixes inside its code are options with the
/// reference's values as defaults.
struct HDenseFormerOptions {
  /// in_channels = modalities (one transformer path each), n_cls = output channels, n_filters = base CNN width.
  HDenseFormerOptions(int64_t in_channels, int64_t n_cls, int64_t n_filters);
  /// Number of input modalities (channels); each gets its own transformer path. Required.
  TORCH_ARG(int64_t, in_channels);
  /// Number of output channels (classes including background); logits, no softmax. Required.
  TORCH_ARG(int64_t, n_cls);
  /// Base CNN width; encoder widths are n_filters x (1, 2, 4, 8), the token width is 4 x n_filters. Required.
  TORCH_ARG(int64_t, n_filters);
  /// Training input size [D, H, W] in voxels (JSON: an int for a cube or a list of 3). The position embedding has
  /// (D/16)(H/16)(W/16) tokens, so the model only accepts inputs of exactly this size. Default 144^3.
  TORCH_ARG(std::vector<int64_t>, image_size) = std::vector<int64_t>{144, 144, 144};
  /// The reference's transformer_depth: each modality path runs transformer_depth / 4 (floored) DCT blocks; at
  /// least 4. Default 24, the HECKTOR 2021 configuration (the reference signature's default is 12).
  TORCH_ARG(int64_t, transformer_depth) = 24;
  /// Patch-embedding kernel = stride (voxels). The fused pyramid upsamples the token grid x2 four times to reach
  /// full resolution, so only 16 lines up with the CNN; other values are rejected. Default 16.
  TORCH_ARG(int64_t, patch_size) = 16;
  /// Width of every dense layer inside a DCT block (the "growth rate"). Default 32.
  TORCH_ARG(int64_t, growth_rate) = 32;
  /// Dense layers per DCT block. Default 4.
  TORCH_ARG(int64_t, dense_layers) = 4;
  /// Attention heads in every dense layer. Default 8.
  TORCH_ARG(int64_t, heads) = 8;
  /// Width of one attention head (the reference uses growth_rate / heads = 4; scale dim_head^-0.5). Default 4.
  TORCH_ARG(int64_t, dim_head) = 4;
  /// Hidden width of the dense-layer FFN and of the block output MLP (reference: 2 x growth_rate). Default 64.
  TORCH_ARG(int64_t, mlp_dim) = 64;
  /// Dropout probability of the embedding, the attention output and the MLPs (training only). Default 0.5.
  TORCH_ARG(double, dropout) = 0.5;
  /// LayerNorm epsilon of the transformer. Default 1e-5.
  TORCH_ARG(double, layer_norm_eps) = 1e-5;
  /// InstanceNorm epsilon of the CNN. Default 1e-5.
  TORCH_ARG(double, instance_norm_eps) = 1e-5;
};

/// Options -> JSON with every option (the registry's names; image_size as a list of 3).
nlohmann::json to_json(const HDenseFormerOptions& options);
/// JSON -> options (strict: unknown keys are ConfigError listing the valid ones; validated). Missing keys keep the
/// defaults, and in_channels / n_cls / n_filters default to the HECKTOR 2021 configuration's 2 / 2 / 32.
HDenseFormerOptions hdenseformer_options_from_json(const nlohmann::json& json);
/// Throws InvalidArgument naming the option, its value and the rule when the options cannot build a model.
void validate(const HDenseFormerOptions& options);

/// ConvTranspose3d with kernel 3, stride 2, padding 1, output_padding 1 (output = 2 x input per dim) computed as
/// eight sub-pixel phase convolutions (one per output parity, 27 kernel taps in total, so no extra multiplies),
/// each run by the fast convolution backend and written interleaved into the output. Same result as
/// torch::conv_transpose3d(x, weight, bias, 2, 1, 1) up to float rounding (LibTorch 1.13 runs that on a slow
/// im2col path). x [B, I, D, H, W], weight [I, O, 3, 3, 3], bias [O] or undefined -> [B, O, 2D, 2H, 2W].
/// Differentiable. Counts its multiply-accumulates as "conv_transpose" (nn/flops.hpp).
torch::Tensor conv_transpose3d_k3s2(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

/// InstanceNorm3d (biased variance over D, H, W per sample and channel) with optional affine weight/bias
/// (undefined = none), followed by ReLU. Without grad mode it works in place on `x` (which it returns) in two passes;
/// with grad mode it is the differentiable functional form. x [B, C, D, H, W].
torch::Tensor instance_norm_relu(torch::Tensor x, const torch::Tensor& weight, const torch::Tensor& bias, double eps);

namespace hdenseformer {

/// Affine parameters of an InstanceNorm3d (state_dict "weight", "bias", [C]; no running statistics).
class AffineNormImpl : public torch::nn::Cloneable<AffineNormImpl> {
 public:
  /// channels = C.
  /// channels = C.
  explicit AffineNormImpl(int64_t channels);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// Scale [C], initialised to 1.
  torch::Tensor weight;
  /// Shift [C], initialised to 0.
  torch::Tensor bias;

 private:
  int64_t channels_;
};
TORCH_MODULE(AffineNorm);

/// The reference's BasicConv3d: Conv3d 3^3 (padding 1, no bias) + affine InstanceNorm3d + ReLU.
/// state_dict: conv.weight [O, I, 3, 3, 3], norm.weight/bias [O].
class BasicConv3dImpl : public torch::nn::Cloneable<BasicConv3dImpl> {
 public:
  /// in_channels -> out_channels; eps of the InstanceNorm.
  BasicConv3dImpl(int64_t in_channels, int64_t out_channels, double eps);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// x [B, I, D, H, W] -> [B, O, D, H, W].
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv3d conv = nullptr;  ///< 3^3 convolution, no bias
  AffineNorm norm = nullptr;         ///< InstanceNorm affine parameters

 private:
  int64_t in_channels_, out_channels_;
  double eps_;
};
TORCH_MODULE(BasicConv3d);

/// The reference's UpConv: Conv3d 3^3 (bias) + InstanceNorm3d (no affine) + ReLU, then trilinear x2
/// (align_corners false). state_dict: double_conv.0.weight/bias.
class UpConvImpl : public torch::nn::Cloneable<UpConvImpl> {
 public:
  /// in_channels -> out_channels; eps of the InstanceNorm.
  UpConvImpl(int64_t in_channels, int64_t out_channels, double eps);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// x [B, I, D, H, W] -> [B, O, 2D, 2H, 2W].
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::ModuleList double_conv = nullptr;  ///< [Conv3d] (norm and ReLU have no parameters)
  torch::nn::Conv3d conv = nullptr;             ///< double_conv[0]

 private:
  int64_t in_channels_, out_channels_;
  double eps_;
};
TORCH_MODULE(UpConv);

/// Multi-head self-attention of a dense layer (the reference's Dense_Attention): to_qkv (no bias) chunked as
/// [q | k | v], heads split as (h d), scale dim_head^-0.5, to_out = [Linear, Dropout] (Identity when heads == 1 and
/// dim_head == dim, as in the reference).
class DenseAttentionImpl : public torch::nn::Cloneable<DenseAttentionImpl> {
 public:
  /// dim = token width; heads x dim_head = inner width; dropout after the output projection.
  DenseAttentionImpl(int64_t dim, int64_t heads, int64_t dim_head, double dropout);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// x [B, N, dim] -> [B, N, dim]; when `probs` is non-null it receives the softmax [B, heads, N, N].
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* probs = nullptr);
  torch::nn::Linear to_qkv = nullptr;     ///< dim -> 3 x heads x dim_head, no bias
  torch::nn::ModuleList to_out = nullptr;  ///< [Linear(heads x dim_head -> dim), Dropout], or empty

 private:
  int64_t dim_, heads_, dim_head_;
  double dropout_;
  torch::nn::Linear out_proj_ = nullptr;
  torch::nn::Dropout out_drop_ = nullptr;
};
TORCH_MODULE(DenseAttention);

/// The reference's DenseForward / FeedForward: net = [Linear(dim -> hidden), GELU (erf), Dropout,
/// Linear(hidden -> out), Dropout].
class DenseForwardImpl : public torch::nn::Cloneable<DenseForwardImpl> {
 public:
  /// dim -> hidden -> out; dropout after the GELU and after the second Linear.
  DenseForwardImpl(int64_t dim, int64_t hidden, int64_t out, double dropout);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// x [..., dim] -> [..., out].
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::ModuleList net = nullptr;  ///< the five layers above (parameters at 0 and 3)

 private:
  int64_t dim_, hidden_, out_;
  double dropout_;
  torch::nn::Linear fc1_ = nullptr, fc2_ = nullptr;
  torch::nn::Dropout drop1_ = nullptr, drop2_ = nullptr;
};
TORCH_MODULE(DenseForward);

/// PreNorm(attention): fn(LayerNorm(x)) with fn a DenseAttention; state_dict "norm.*", "fn.*".
class PreNormAttentionImpl : public torch::nn::Cloneable<PreNormAttentionImpl> {
 public:
  /// Attention of width dim (see DenseAttentionImpl); eps of the LayerNorm.
  PreNormAttentionImpl(int64_t dim, int64_t heads, int64_t dim_head, double dropout, double eps);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// x [B, N, dim] -> [B, N, dim]; `probs` as DenseAttention::forward.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* probs = nullptr);
  /// LayerNorm(dim, eps).
  torch::nn::LayerNorm norm = nullptr;
  /// The attention.
  DenseAttention fn = nullptr;

 private:
  int64_t dim_, heads_, dim_head_;
  double dropout_, eps_;
};
TORCH_MODULE(PreNormAttention);

/// PreNorm(feed-forward): fn(LayerNorm(x)) with fn a DenseForward(dim -> hidden -> dim); state_dict "norm.*",
/// "fn.net.*".
class PreNormForwardImpl : public torch::nn::Cloneable<PreNormForwardImpl> {
 public:
  /// Feed-forward dim -> hidden -> dim; eps of the LayerNorm.
  PreNormForwardImpl(int64_t dim, int64_t hidden, double dropout, double eps);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// x [B, N, dim] -> [B, N, dim].
  torch::Tensor forward(const torch::Tensor& x);
  /// LayerNorm(dim, eps).
  torch::nn::LayerNorm norm = nullptr;
  /// The feed-forward.
  DenseForward fn = nullptr;

 private:
  int64_t dim_, hidden_;
  double dropout_, eps_;
};
TORCH_MODULE(PreNormForward);

/// One densely connected transformer block (the reference's DensePreConv_AttentionBlock, a "DCT block").
/// Layer j: x = Linear(cat(features)) (width growth_rate); x = attn(x) + x; x = ff(x) + x; append ff(x)
/// (the FFN applied a second time, no residual). Output: out_layer(cat(features)) (mlp_dim hidden, back to dim).
/// No residual around the block. state_dict: layers.{j}.{0,1,2}.*, out_layer.net.{0,3}.*.
class DCTBlockImpl : public torch::nn::Cloneable<DCTBlockImpl> {
 public:
  /// dim = token width (4 n_filters); growth_rate, dense_layers, heads, dim_head, mlp_dim, dropout and eps from options.
  explicit DCTBlockImpl(int64_t dim, const HDenseFormerOptions& options);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// tokens [B, N, dim] -> [B, N, dim]; when `probs` is non-null it receives each layer's attention [B, h, N, N].
  torch::Tensor forward(const torch::Tensor& tokens, std::vector<torch::Tensor>* probs = nullptr);
  torch::nn::ModuleList layers = nullptr;  ///< per dense layer: [Linear, PreNorm(attention), PreNorm(FFN)]
  DenseForward out_layer = nullptr;        ///< dim + layers x growth_rate -> mlp_dim -> dim

 private:
  int64_t dim_;
  HDenseFormerOptions options_;
};
TORCH_MODULE(DCTBlock);

/// One modality's transformer path (the reference's Dense_TransformerBlock): Conv3d(1 -> dim, k = s = patch_size)
/// patch embedding, tokens in (d, h, w) raster order, + learnable position embedding [1, N, dim] (zeros), dropout,
/// transformer_depth / 4 DCT blocks, reshaped back to [B, dim, D/p, H/p, W/p].
/// state_dict: patch_embeddings.*, position_embeddings, blocks.{k}.0.*.
class DenseTransformerPathImpl : public torch::nn::Cloneable<DenseTransformerPathImpl> {
 public:
  /// dim = token width (4 n_filters); image_size, patch_size, transformer_depth and the block options from options.
  DenseTransformerPathImpl(int64_t dim, const HDenseFormerOptions& options);
  /// Creates and registers the parameters and children (LibTorch Cloneable contract).
  void reset() override;
  /// What forward() records when asked.
  struct Record {
    torch::Tensor patch_embed;                ///< [B, dim, D/p, H/p, W/p] before flatten and position embedding
    std::vector<torch::Tensor> block_tokens;  ///< [B, N, dim] after each DCT block
    std::vector<std::vector<torch::Tensor>> attention;  ///< [block][layer] -> [B, heads, N, N]
  };
  /// x [B, 1, D, H, W] -> [B, dim, D/p, H/p, W/p]. `record` (optional) receives the intermediates;
  /// attention probabilities only when `with_attention`.
  torch::Tensor forward(const torch::Tensor& x, Record* record = nullptr, bool with_attention = false);
  torch::nn::Conv3d patch_embeddings = nullptr;  ///< [dim, 1, p, p, p] + bias
  torch::Tensor position_embeddings;             ///< [1, N, dim]
  torch::nn::ModuleList blocks = nullptr;        ///< each a ModuleList holding one DCTBlock (reference layout)

 private:
  int64_t dim_;
  HDenseFormerOptions options_;
  std::vector<int64_t> grid_;  // token grid [D/p, H/p, W/p]
};
TORCH_MODULE(DenseTransformerPath);

}  // namespace hdenseformer

/// H-DenseFormer 3D. forward(x [B, in_channels, D, H, W] with [D, H, W] == image_size) returns
///  - logits: `output` [B, n_cls, D, H, W];
///  - deep_supervision: [output_ds1 (1/2), output_ds2 (1/4), output_ds3 (1/8)] (1^3 conv heads on decoder stage 2,
///    decoder stage 3 and the fused bottleneck);
///  - taps (TapRequest::features): `encoder_coarse` = the fused bottleneck [B, 8 n_filters, D/8, H/8, W/8]
///    (block_4_2_left output after adding deep_conv; it feeds conv1x1_d3 and upconv_3);
///    `decoder_fine` = decoder stage D_{n-1} [B, 2 n_filters, D/2, H/2, W/2] (block_2_2_right output, the stage
///    before the last); `decoder_last` = decoder stage 1 [B, n_filters, D, H, W] (block_1_2_right output, the input
///    of the 1^3 output conv conv1x1);
///  - taps (TapRequest::attention): "attention.mpe{i}.dct{k}.layer{j}" [B, heads, N, N] for modality i, DCT block k,
///    dense layer j (N = token count);
///  - taps (TapRequest::intermediates), named as in the reference fixture: per modality i
///    "intermediate.mpe{i}_patch_embed" [B, 4nf, D/16, H/16, W/16], "intermediate.mpe{i}_dct{k}_tokens" [B, N, 4nf]
///    after DCT block k, "intermediate.mpe{i}_out" [B, 4nf, D/16, H/16, W/16]; then "intermediate.deep_conv",
///    "intermediate.up1", "intermediate.up2", "intermediate.up3" (fused features at 1/8, 1/4, 1/2, 1/1),
///    "intermediate.block_1_2_left" (level 1 before adding up3) and "intermediate.block_4_2_left" (bottleneck before
///    adding deep_conv).
/// Without grad mode (NoGradGuard / InferenceMode) it normalises in place and frees buffers early.
class HDenseFormerImpl : public SegmentationModelImpl {
 public:
  /// Builds the model; throws InvalidArgument for invalid options (see validate).
  explicit HDenseFormerImpl(const HDenseFormerOptions& options);
  SegOutput forward(const torch::Tensor& x, const TapRequest& request = {}) override;
  const ModelSpec& spec() const override { return spec_; }
  /// The options the model was built with.
  const HDenseFormerOptions& options() const { return options_; }

  /// One DenseTransformerPath per modality ("attns.{i}").
  torch::nn::ModuleList attns = nullptr;
  /// Fusion conv of the concatenated paths (4 nf C -> 8 nf, then x2 to 1/8) and the fused pyramid up1..up3
  /// (8 nf -> 4 nf @ 1/4, -> 2 nf @ 1/2, -> nf @ 1/1).
  hdenseformer::UpConv deep_conv = nullptr, up1 = nullptr, up2 = nullptr, up3 = nullptr;
  /// Encoder double convs per level l = 1..4 (widths nf, 2 nf, 4 nf, 8 nf; levels 2-4 after a 2x max pool).
  hdenseformer::BasicConv3d block_1_1_left = nullptr, block_1_2_left = nullptr, block_2_1_left = nullptr,
                            block_2_2_left = nullptr, block_3_1_left = nullptr, block_3_2_left = nullptr,
                            block_4_1_left = nullptr, block_4_2_left = nullptr;
  /// Decoder upsampling (k3, s2, p1, output_padding 1; weight [in, out, 3, 3, 3]): 8 nf -> 4 nf, 4 nf -> 2 nf,
  /// 2 nf -> nf. Run by conv_transpose3d_k3s2, not by the module's forward.
  torch::nn::ConvTranspose3d upconv_3 = nullptr, upconv_2 = nullptr, upconv_1 = nullptr;
  /// Decoder double convs over [upsampled, skip] at 1/4, 1/2 and 1/1.
  hdenseformer::BasicConv3d block_3_1_right = nullptr, block_3_2_right = nullptr, block_2_1_right = nullptr,
                            block_2_2_right = nullptr, block_1_1_right = nullptr, block_1_2_right = nullptr;
  /// 1^3 output conv (nf -> n_cls) and deep-supervision heads at 1/2 (2 nf), 1/4 (4 nf) and 1/8 (8 nf).
  torch::nn::Conv3d conv1x1 = nullptr, conv1x1_d1 = nullptr, conv1x1_d2 = nullptr, conv1x1_d3 = nullptr;

 private:
  HDenseFormerOptions options_;
  ModelSpec spec_;
};
TORCH_MODULE(HDenseFormer);

}  // namespace teachformer::models
