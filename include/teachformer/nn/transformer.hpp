// Vision-transformer blocks with MONAI's semantics and attribute names (monai.networks.blocks.mlp,
// selfattention, transformerblock, patchembedding and monai.networks.nets.vit), so MONAI state_dict keys such
// as "vit.blocks.3.attn.qkv.weight" map one to one. Tokens are [B, N, hidden] with N the patch grid in
// (D, H, W) raster order.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/expanding_array.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "teachformer/nn/factories.hpp"

namespace teachformer::nn {

/// Options of MLPBlock.
struct MLPBlockOptions {
  MLPBlockOptions(int64_t hidden_size, int64_t mlp_dim) : hidden_size_(hidden_size), mlp_dim_(mlp_dim) {}
  /// Token width (input and output features).
  TORCH_ARG(int64_t, hidden_size);
  /// Width of the hidden layer; 0 means hidden_size.
  TORCH_ARG(int64_t, mlp_dim);
  /// Dropout probability in [0, 1]; default 0.
  TORCH_ARG(double, dropout_rate) = 0.0;
  /// Activation between the two linear layers (see make_act); default "gelu" (exact, erf-based).
  TORCH_ARG(LayerSpec, act) = "gelu";
  /// "vit": two dropout layers (drop1, drop2); "swin": one shared dropout; default "vit".
  TORCH_ARG(std::string, dropout_mode) = "vit";
};

/// linear1 -> act -> dropout -> linear2 -> dropout (MONAI's MLPBlock; children linear1, linear2).
/// forward: [..., hidden] -> [..., hidden].
class MLPBlockImpl : public torch::nn::Cloneable<MLPBlockImpl> {
 public:
  explicit MLPBlockImpl(MLPBlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// The options this block was built with.
  MLPBlockOptions options;
  /// hidden -> mlp_dim and mlp_dim -> hidden.
  torch::nn::Linear linear1{nullptr}, linear2{nullptr};
  /// The activation (no parameters for the default GELU).
  torch::nn::AnyModule fn;
  /// Dropouts after the activation and after linear2 (the same module in "swin" mode).
  torch::nn::Dropout drop1{nullptr}, drop2{nullptr};
};
TORCH_MODULE(MLPBlock);

/// Options of SelfAttention.
struct SelfAttentionOptions {
  SelfAttentionOptions(int64_t hidden_size, int64_t num_heads) : hidden_size_(hidden_size), num_heads_(num_heads) {}
  /// Token width; must be divisible by num_heads.
  TORCH_ARG(int64_t, hidden_size);
  /// Number of attention heads.
  TORCH_ARG(int64_t, num_heads);
  /// Dropout on the attention weights and on the output, in [0, 1]; default 0.
  TORCH_ARG(double, dropout_rate) = 0.0;
  /// Bias in the qkv projection; default false (MONAI's default).
  TORCH_ARG(bool, qkv_bias) = false;
};

/// Multi-head self-attention (MONAI's SABlock; children qkv [3*hidden, hidden], out_proj). The qkv output
/// is laid out (qkv, head, dim) as MONAI's einops pattern "b h (qkv l d) -> qkv b l h d".
class SelfAttentionImpl : public torch::nn::Cloneable<SelfAttentionImpl> {
 public:
  explicit SelfAttentionImpl(SelfAttentionOptions options);
  void reset() override;
  /// x [B, N, hidden] -> [B, N, hidden]. When `attention` is given it receives the attention probabilities
  /// [B, heads, N, N] (softmax output before dropout, rows sum to 1; part of the autograd graph).
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* attention = nullptr);
  /// The options this block was built with.
  SelfAttentionOptions options;
  /// Input projection to queries, keys and values, and the output projection.
  torch::nn::Linear qkv{nullptr}, out_proj{nullptr};
  /// Dropout on the attention weights and on the output.
  torch::nn::Dropout drop_weights{nullptr}, drop_output{nullptr};
};
TORCH_MODULE(SelfAttention);

/// Options of TransformerBlock.
struct TransformerBlockOptions {
  TransformerBlockOptions(int64_t hidden_size, int64_t mlp_dim, int64_t num_heads)
      : hidden_size_(hidden_size), mlp_dim_(mlp_dim), num_heads_(num_heads) {}
  /// Token width; must be divisible by num_heads.
  TORCH_ARG(int64_t, hidden_size);
  /// Width of the MLP's hidden layer.
  TORCH_ARG(int64_t, mlp_dim);
  /// Number of attention heads.
  TORCH_ARG(int64_t, num_heads);
  /// Dropout probability in [0, 1]; default 0.
  TORCH_ARG(double, dropout_rate) = 0.0;
  /// Bias in the qkv projection; default false.
  TORCH_ARG(bool, qkv_bias) = false;
};

/// Pre-norm transformer block: x + attn(norm1(x)), then + mlp(norm2(x)) (MONAI's TransformerBlock; children
/// mlp, norm1, attn, norm2). MONAI >= 1.4 also builds an unused cross-attention (cross_attn, norm_cross_attn);
/// it is not built here: load MONAI weights with those keys ignored (see models/state_dict.hpp).
class TransformerBlockImpl : public torch::nn::Cloneable<TransformerBlockImpl> {
 public:
  explicit TransformerBlockImpl(TransformerBlockOptions options);
  void reset() override;
  /// x [B, N, hidden] -> [B, N, hidden]; `attention` as in SelfAttention::forward.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* attention = nullptr);
  /// The options this block was built with.
  TransformerBlockOptions options;
  /// The feed-forward block.
  MLPBlock mlp{nullptr};
  /// LayerNorms before attention and before the MLP (eps 1e-5).
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  /// The self-attention.
  SelfAttention attn{nullptr};
};
TORCH_MODULE(TransformerBlock);

/// Options of PatchEmbeddingBlock.
struct PatchEmbeddingBlockOptions {
  PatchEmbeddingBlockOptions(int64_t in_channels, torch::ExpandingArray<3> img_size, torch::ExpandingArray<3> patch_size,
                             int64_t hidden_size, int64_t num_heads)
      : in_channels_(in_channels),
        img_size_(img_size),
        patch_size_(patch_size),
        hidden_size_(hidden_size),
        num_heads_(num_heads) {}
  /// Input channels.
  TORCH_ARG(int64_t, in_channels);
  /// Input spatial size [D, H, W] in voxels; the position embedding has one entry per patch of this grid.
  TORCH_ARG(torch::ExpandingArray<3>, img_size);
  /// Patch size [D, H, W] in voxels.
  TORCH_ARG(torch::ExpandingArray<3>, patch_size);
  /// Token width.
  TORCH_ARG(int64_t, hidden_size);
  /// Number of attention heads (only checked: hidden_size must be divisible by it, as MONAI does).
  TORCH_ARG(int64_t, num_heads);
  /// "conv" (a strided Conv3d, child "patch_embeddings") or "perceptron" (patches flattened as
  /// (p1 p2 p3 c) then a Linear, child "patch_embeddings.1"); default "conv".
  TORCH_ARG(std::string, proj_type) = "conv";
  /// "learnable" (truncated-normal init, std 0.02) or "none" (zeros); default "learnable".
  TORCH_ARG(std::string, pos_embed_type) = "learnable";
  /// Dropout after adding the position embedding, in [0, 1]; default 0.
  TORCH_ARG(double, dropout_rate) = 0.0;
};

/// MONAI's PatchEmbeddingBlock: x [B, C, D, H, W] (spatial size = img_size) -> tokens [B, N, hidden] +
/// position_embeddings [1, N, hidden], then dropout.
class PatchEmbeddingBlockImpl : public torch::nn::Cloneable<PatchEmbeddingBlockImpl> {
 public:
  explicit PatchEmbeddingBlockImpl(PatchEmbeddingBlockOptions options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// Patch grid [D/pD, H/pH, W/pW].
  std::vector<int64_t> grid() const;
  /// The options this block was built with.
  PatchEmbeddingBlockOptions options;
  /// The projection for proj_type "conv" (else empty).
  torch::nn::Conv3d conv{nullptr};
  /// [rearrangement placeholder, Linear] for proj_type "perceptron" (else empty).
  torch::nn::ModuleList perceptron{nullptr};
  /// The learnable position embedding [1, N, hidden].
  torch::Tensor position_embeddings;
  /// Dropout after the position embedding.
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(PatchEmbeddingBlock);

/// Options of ViT (the segmentation backbone: no classification head).
struct ViTOptions {
  ViTOptions(int64_t in_channels, torch::ExpandingArray<3> img_size, torch::ExpandingArray<3> patch_size)
      : in_channels_(in_channels), img_size_(img_size), patch_size_(patch_size) {}
  /// Input channels.
  TORCH_ARG(int64_t, in_channels);
  /// Input spatial size [D, H, W] in voxels.
  TORCH_ARG(torch::ExpandingArray<3>, img_size);
  /// Patch size [D, H, W] in voxels.
  TORCH_ARG(torch::ExpandingArray<3>, patch_size);
  /// Token width; default 768.
  TORCH_ARG(int64_t, hidden_size) = 768;
  /// MLP width; default 3072.
  TORCH_ARG(int64_t, mlp_dim) = 3072;
  /// Number of transformer blocks; default 12.
  TORCH_ARG(int64_t, num_layers) = 12;
  /// Attention heads; default 12.
  TORCH_ARG(int64_t, num_heads) = 12;
  /// Patch projection "conv" | "perceptron"; default "conv".
  TORCH_ARG(std::string, proj_type) = "conv";
  /// Position embedding "learnable" | "none"; default "learnable".
  TORCH_ARG(std::string, pos_embed_type) = "learnable";
  /// Dropout probability in [0, 1]; default 0.
  TORCH_ARG(double, dropout_rate) = 0.0;
  /// Bias in the qkv projections; default false.
  TORCH_ARG(bool, qkv_bias) = false;
};

/// MONAI's ViT backbone: patch_embedding, blocks (ModuleList of TransformerBlock), norm.
class ViTImpl : public torch::nn::Cloneable<ViTImpl> {
 public:
  explicit ViTImpl(ViTOptions options);
  void reset() override;
  /// x [B, C, D, H, W] -> norm(last block output) [B, N, hidden]. When given, `hidden_states` receives every
  /// block's output [B, N, hidden] (before the final norm) and `attentions` every block's attention
  /// probabilities [B, heads, N, N].
  torch::Tensor forward(const torch::Tensor& x, std::vector<torch::Tensor>* hidden_states = nullptr,
                        std::vector<torch::Tensor>* attentions = nullptr);
  /// The options this block was built with.
  ViTOptions options;
  /// Patch + position embedding.
  PatchEmbeddingBlock patch_embedding{nullptr};
  /// The transformer blocks, children "0".."num_layers-1".
  torch::nn::ModuleList blocks{nullptr};
  /// Final LayerNorm.
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(ViT);

}  // namespace teachformer::nn
