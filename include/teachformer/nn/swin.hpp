// 3D Swin Transformer blocks with MONAI's semantics and attribute names (monai.networks.nets.swin_unetr and
// monai.networks.blocks.patchembedding.PatchEmbed), so MONAI state_dict keys such as
// "swinViT.layers2.0.blocks.1.attn.relative_position_bias_table" map one to one.
// Layouts: feature maps [B, C, D, H, W]; inside a stage tokens are channels-last [B, D, H, W, C]; windows are
// [B * nW, n, C] with n = wD * wH * wW tokens per window, windows in (D, H, W) raster order.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <torch/expanding_array.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "teachformer/nn/transformer.hpp"

namespace teachformer::nn {

/// Options of PatchEmbed (the Swin patch embedding).
struct PatchEmbedOptions {
  PatchEmbedOptions(int64_t in_chans, int64_t embed_dim) : in_chans_(in_chans), embed_dim_(embed_dim) {}
  /// Input channels.
  TORCH_ARG(int64_t, in_chans);
  /// Output channels (tokens' width).
  TORCH_ARG(int64_t, embed_dim);
  /// Patch size [D, H, W] in voxels; default 2. Inputs not divisible by it are zero-padded at the end.
  TORCH_ARG(torch::ExpandingArray<3>, patch_size) = 2;
  /// LayerNorm over channels after the projection (child "norm"); default false (MONAI's patch_norm).
  TORCH_ARG(bool, norm) = false;
};

/// x [B, C, D, H, W] -> proj (strided Conv3d) [B, embed_dim, D/p, H/p, W/p] (MONAI's PatchEmbed; children
/// proj and, with norm, norm).
class PatchEmbedImpl : public torch::nn::Cloneable<PatchEmbedImpl> {
 public:
  explicit PatchEmbedImpl(PatchEmbedOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// The options this block was built with.
  PatchEmbedOptions options;
  /// The strided projection.
  torch::nn::Conv3d proj{nullptr};
  /// Optional LayerNorm over channels.
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(PatchEmbed);

/// Options of WindowAttention.
struct WindowAttentionOptions {
  WindowAttentionOptions(int64_t dim, int64_t num_heads, torch::ExpandingArray<3> window_size)
      : dim_(dim), num_heads_(num_heads), window_size_(window_size) {}
  /// Token width; must be divisible by num_heads.
  TORCH_ARG(int64_t, dim);
  /// Attention heads.
  TORCH_ARG(int64_t, num_heads);
  /// Window size [D, H, W] the relative position table is built for.
  TORCH_ARG(torch::ExpandingArray<3>, window_size);
  /// Bias in the qkv projection; default false (SwinTransformer passes true).
  TORCH_ARG(bool, qkv_bias) = false;
  /// Dropout on the attention weights, in [0, 1]; default 0.
  TORCH_ARG(double, attn_drop) = 0.0;
  /// Dropout on the output, in [0, 1]; default 0.
  TORCH_ARG(double, proj_drop) = 0.0;
};

/// Window multi-head self-attention with a learned relative position bias (MONAI's WindowAttention;
/// parameter relative_position_bias_table [(2wD-1)(2wH-1)(2wW-1), heads], int64 buffer
/// relative_position_index [n, n], children qkv, proj).
class WindowAttentionImpl : public torch::nn::Cloneable<WindowAttentionImpl> {
 public:
  explicit WindowAttentionImpl(WindowAttentionOptions options);
  void reset() override;
  /// x [B * nW, n, dim] (n <= wD * wH * wW; a smaller n uses the table's top-left n x n block, as MONAI does)
  /// -> [B * nW, n, dim]. `mask` is [nW, n, n] with 0 / -100 entries, or undefined for unshifted windows.
  /// When given, `attention` receives the probabilities [B * nW, heads, n, n] (before dropout).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, torch::Tensor* attention = nullptr);
  /// The options this block was built with.
  WindowAttentionOptions options;
  /// Learned bias per relative offset and head.
  torch::Tensor relative_position_bias_table;
  /// Index into the table for every (query, key) pair of a full window.
  torch::Tensor relative_position_index;
  /// Projections.
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  /// Dropouts on the attention weights and on the output.
  torch::nn::Dropout attn_drop{nullptr}, proj_drop{nullptr};
};
TORCH_MODULE(WindowAttention);

/// Options of SwinTransformerBlock.
struct SwinTransformerBlockOptions {
  SwinTransformerBlockOptions(int64_t dim, int64_t num_heads, torch::ExpandingArray<3> window_size,
                              torch::ExpandingArray<3> shift_size)
      : dim_(dim), num_heads_(num_heads), window_size_(window_size), shift_size_(shift_size) {}
  /// Token width.
  TORCH_ARG(int64_t, dim);
  /// Attention heads.
  TORCH_ARG(int64_t, num_heads);
  /// Window size [D, H, W].
  TORCH_ARG(torch::ExpandingArray<3>, window_size);
  /// Cyclic shift [D, H, W] (0 = regular windows; window_size / 2 for shifted ones).
  TORCH_ARG(torch::ExpandingArray<3>, shift_size);
  /// MLP width as a multiple of dim; default 4.
  TORCH_ARG(double, mlp_ratio) = 4.0;
  /// Bias in the qkv projection; default true.
  TORCH_ARG(bool, qkv_bias) = true;
  /// Dropout after attention projection and in the MLP, in [0, 1]; default 0.
  TORCH_ARG(double, drop) = 0.0;
  /// Dropout on the attention weights, in [0, 1]; default 0.
  TORCH_ARG(double, attn_drop) = 0.0;
  /// Stochastic depth probability of both residual branches, in [0, 1]; default 0.
  TORCH_ARG(double, drop_path) = 0.0;
};

/// Swin block on channels-last tokens: x + drop_path(window_attn(norm1(x))), then + drop_path(mlp(norm2(x)))
/// (MONAI's SwinTransformerBlock; children norm1, attn, norm2, mlp). Pads to whole windows, shrinks the
/// window (and drops the shift) in dims not larger than the window, as MONAI's get_window_size does.
class SwinTransformerBlockImpl : public torch::nn::Cloneable<SwinTransformerBlockImpl> {
 public:
  explicit SwinTransformerBlockImpl(SwinTransformerBlockOptions options);
  void reset() override;
  /// x [B, D, H, W, dim] -> [B, D, H, W, dim]. `mask` is the stage's shifted-window mask (compute_mask), used
  /// only when this block shifts. `attention` as in WindowAttention::forward.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, torch::Tensor* attention = nullptr);
  /// The options this block was built with.
  SwinTransformerBlockOptions options;
  /// LayerNorms before attention and MLP (eps 1e-5).
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  /// Window attention.
  WindowAttention attn{nullptr};
  /// Feed-forward block (GELU, "swin" dropout mode).
  MLPBlock mlp{nullptr};
};
TORCH_MODULE(SwinTransformerBlock);

/// Options of PatchMerging.
struct PatchMergingOptions {
  explicit PatchMergingOptions(int64_t dim) : dim_(dim) {}
  /// Input width C (output 2C).
  TORCH_ARG(int64_t, dim);
  /// "merging" (MONAI 1.5's PatchMerging: neighbour offsets (d, h, w) in the order 000, 100, 010, 001, 110, 101,
  /// 011, 111) or "mergingv2" (offsets in product order 000, 001, 010, ..., 111); default "merging".
  TORCH_ARG(std::string, version) = "merging";
};

/// 2x2x2 patch merging: x [B, D, H, W, C] -> reduction(norm(cat of the 8 neighbours)) [B, D/2, H/2, W/2, 2C]
/// (odd sizes are zero-padded at the end; children reduction [2C, 8C] without bias, norm LayerNorm(8C)).
class PatchMergingImpl : public torch::nn::Cloneable<PatchMergingImpl> {
 public:
  explicit PatchMergingImpl(PatchMergingOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// The options this block was built with.
  PatchMergingOptions options;
  /// The 8C -> 2C linear reduction.
  torch::nn::Linear reduction{nullptr};
  /// LayerNorm over the 8C concatenated features.
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(PatchMerging);

/// Windows of a channels-last grid: x [B, D, H, W, C] with D, H, W divisible by `window_size` [wD, wH, wW] ->
/// [B * nW, wD * wH * wW, C], windows in (D, H, W) raster order, tokens in (d, h, w) raster order inside a window.
torch::Tensor window_partition(const torch::Tensor& x, const std::array<int64_t, 3>& window_size);
/// Inverse of window_partition: windows [B * nW, n, C] of a grid `dims` [D, H, W] -> [B, D, H, W, C].
torch::Tensor window_reverse(const torch::Tensor& windows, const std::array<int64_t, 3>& window_size, int64_t batch,
                             const std::array<int64_t, 3>& dims);

/// MONAI's compute_mask: for a padded grid `dims` [D, H, W], windows `window_size` and cyclic `shift_size`,
/// the additive attention mask [nW, n, n]: 0 where query and key come from the same region before the shift,
/// -100 otherwise (float32 on `device`).
torch::Tensor compute_mask(const std::array<int64_t, 3>& dims, const std::array<int64_t, 3>& window_size,
                           const std::array<int64_t, 3>& shift_size, torch::Device device = torch::kCPU);

/// Options of SwinBasicLayer.
struct SwinBasicLayerOptions {
  SwinBasicLayerOptions(int64_t dim, int64_t depth, int64_t num_heads, torch::ExpandingArray<3> window_size)
      : dim_(dim), depth_(depth), num_heads_(num_heads), window_size_(window_size) {}
  /// Token width.
  TORCH_ARG(int64_t, dim);
  /// Number of Swin blocks (even blocks regular windows, odd blocks shifted by window_size / 2).
  TORCH_ARG(int64_t, depth);
  /// Attention heads.
  TORCH_ARG(int64_t, num_heads);
  /// Window size [D, H, W].
  TORCH_ARG(torch::ExpandingArray<3>, window_size);
  /// Stochastic depth per block (depth entries) or empty for 0 everywhere.
  TORCH_ARG(std::vector<double>, drop_path) = {};
  /// MLP width as a multiple of dim; default 4.
  TORCH_ARG(double, mlp_ratio) = 4.0;
  /// Bias in the qkv projections; default false (SwinTransformer passes its own).
  TORCH_ARG(bool, qkv_bias) = false;
  /// Dropout in [0, 1]; default 0.
  TORCH_ARG(double, drop) = 0.0;
  /// Attention dropout in [0, 1]; default 0.
  TORCH_ARG(double, attn_drop) = 0.0;
  /// Patch merging at the end: "merging", "mergingv2" or "" (none); default "merging".
  TORCH_ARG(std::string, downsample) = "merging";
};

/// One Swin stage (MONAI's BasicLayer; children blocks, downsample): x [B, C, D, H, W] ->
/// [B, 2C, D/2, H/2, W/2] (or [B, C, D, H, W] without downsample). The returned tensor is a channels-first
/// view of channels-last memory (no copy is made to change the layout).
class SwinBasicLayerImpl : public torch::nn::Cloneable<SwinBasicLayerImpl> {
 public:
  explicit SwinBasicLayerImpl(SwinBasicLayerOptions options);
  void reset() override;
  /// `attentions`, when given, receives each block's attention probabilities in order.
  torch::Tensor forward(const torch::Tensor& x, std::vector<torch::Tensor>* attentions = nullptr);
  /// The options this block was built with.
  SwinBasicLayerOptions options;
  /// The Swin blocks, children "0".."depth-1".
  torch::nn::ModuleList blocks{nullptr};
  /// Patch merging (empty when downsample is "").
  PatchMerging downsample{nullptr};
};
TORCH_MODULE(SwinBasicLayer);

/// Options of SwinTransformer (MONAI's 4-stage 3D Swin encoder).
struct SwinTransformerOptions {
  SwinTransformerOptions(int64_t in_chans, int64_t embed_dim) : in_chans_(in_chans), embed_dim_(embed_dim) {}
  /// Input channels.
  TORCH_ARG(int64_t, in_chans);
  /// Width of the first stage (doubles at every stage).
  TORCH_ARG(int64_t, embed_dim);
  /// Window size [D, H, W]; default 7.
  TORCH_ARG(torch::ExpandingArray<3>, window_size) = 7;
  /// Patch size [D, H, W]; default 2.
  TORCH_ARG(torch::ExpandingArray<3>, patch_size) = 2;
  /// Blocks per stage (4 stages); default {2, 2, 2, 2}.
  TORCH_ARG(std::vector<int64_t>, depths) = std::vector<int64_t>{2, 2, 2, 2};
  /// Heads per stage (4 stages); default {3, 6, 12, 24}.
  TORCH_ARG(std::vector<int64_t>, num_heads) = std::vector<int64_t>{3, 6, 12, 24};
  /// MLP width as a multiple of the stage width; default 4.
  TORCH_ARG(double, mlp_ratio) = 4.0;
  /// Bias in the qkv projections; default true.
  TORCH_ARG(bool, qkv_bias) = true;
  /// Dropout in [0, 1]; default 0.
  TORCH_ARG(double, drop_rate) = 0.0;
  /// Attention dropout in [0, 1]; default 0.
  TORCH_ARG(double, attn_drop_rate) = 0.0;
  /// Stochastic depth, rising linearly from 0 to this over all blocks, in [0, 1]; default 0.
  TORCH_ARG(double, drop_path_rate) = 0.0;
  /// LayerNorm after the patch embedding; default false.
  TORCH_ARG(bool, patch_norm) = false;
  /// "merging" | "mergingv2"; default "merging".
  TORCH_ARG(std::string, downsample) = "merging";
  /// SwinUNETR-v2: a residual conv block (UnetrBasicBlock, instance norm) before each stage
  /// (children layers1c..layers4c); default false.
  TORCH_ARG(bool, use_v2) = false;
};

/// MONAI's SwinTransformer (children patch_embed, layers1..layers4 and, with use_v2, layers1c..layers4c).
class SwinTransformerImpl : public torch::nn::Cloneable<SwinTransformerImpl> {
 public:
  explicit SwinTransformerImpl(SwinTransformerOptions options);
  void reset() override;
  /// x [B, C, D, H, W] -> the 5 hidden states [B, embed_dim * 2^i, D/(p 2^i), H/(p 2^i), W/(p 2^i)],
  /// i = 0..4 (patch embedding, then each stage's output), each layer-normalised over channels (no affine)
  /// when `normalize`. `attentions`, when given, receives every Swin block's attention probabilities, stage by
  /// stage.
  std::vector<torch::Tensor> forward(const torch::Tensor& x, bool normalize = true,
                                     std::vector<torch::Tensor>* attentions = nullptr);
  /// The options this block was built with.
  SwinTransformerOptions options;
  /// Patch embedding.
  PatchEmbed patch_embed{nullptr};
  /// Dropout after the patch embedding.
  torch::nn::Dropout pos_drop{nullptr};
  /// The stages, each a one-element ModuleList as MONAI registers them ("layers1.0.blocks...").
  torch::nn::ModuleList layers1{nullptr}, layers2{nullptr}, layers3{nullptr}, layers4{nullptr};
  /// SwinUNETR-v2 conv blocks (empty unless use_v2).
  torch::nn::ModuleList layers1c{nullptr}, layers2c{nullptr}, layers3c{nullptr}, layers4c{nullptr};
};
TORCH_MODULE(SwinTransformer);

}  // namespace teachformer::nn
