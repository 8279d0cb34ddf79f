#include "teachformer/nn/transformer.hpp"

#include <cmath>

#include <torch/torch.h>

#include "nn/detail/init.hpp"
#include "teachformer/core/error.hpp"
#include "teachformer/nn/flops.hpp"

namespace teachformer::nn {
namespace {

void check_rate(double rate, const char* block, const char* option) {
  TF_CHECK(rate >= 0.0 && rate <= 1.0, InvalidArgument, block, ": option ", option, " must be in [0, 1], got ", rate);
}

void check_heads(int64_t hidden, int64_t heads, const char* block) {
  TF_CHECK(hidden > 0 && heads > 0, InvalidArgument, block, ": hidden_size and num_heads must be positive, got ",
           hidden, " and ", heads);
  TF_CHECK(hidden % heads == 0, InvalidArgument, block, ": hidden_size must be divisible by num_heads, got ",
           "hidden_size ", hidden, " and num_heads ", heads);
}

std::vector<int64_t> vec(const torch::ExpandingArray<3>& a) { return std::vector<int64_t>(a->begin(), a->end()); }

}  // namespace

// ----------------------------------------------------------------------------------------------- MLPBlock

MLPBlockImpl::MLPBlockImpl(MLPBlockOptions options_) : options(std::move(options_)) { reset(); }

void MLPBlockImpl::reset() {
  check_rate(options.dropout_rate(), "MLPBlock", "dropout_rate");
  TF_CHECK(options.hidden_size() > 0 && options.mlp_dim() >= 0, InvalidArgument,
           "MLPBlock: hidden_size must be positive and mlp_dim >= 0, got ", options.hidden_size(), " and ",
           options.mlp_dim());
  TF_CHECK(options.dropout_mode() == "vit" || options.dropout_mode() == "swin", InvalidArgument,
           "MLPBlock: option dropout_mode must be \"vit\" or \"swin\", got \"", options.dropout_mode(), "\"");
  const int64_t mlp = options.mlp_dim() > 0 ? options.mlp_dim() : options.hidden_size();
  linear1 = register_module("linear1", torch::nn::Linear(options.hidden_size(), mlp));
  linear2 = register_module("linear2", torch::nn::Linear(mlp, options.hidden_size()));
  fn = make_act(options.act(), "MLPBlock act");
  register_module("fn", fn.ptr());
  drop1 = register_module("drop1", torch::nn::Dropout(options.dropout_rate()));
  drop2 = options.dropout_mode() == "swin" ? drop1
                                           : register_module("drop2", torch::nn::Dropout(options.dropout_rate()));
}

torch::Tensor MLPBlockImpl::forward(const torch::Tensor& x) {
  auto h = drop1->forward(fn.forward(nn::linear(*linear1, x)));
  return drop2->forward(nn::linear(*linear2, h));
}

// ------------------------------------------------------------------------------------------ SelfAttention

SelfAttentionImpl::SelfAttentionImpl(SelfAttentionOptions options_) : options(std::move(options_)) { reset(); }

void SelfAttentionImpl::reset() {
  check_rate(options.dropout_rate(), "SelfAttention", "dropout_rate");
  check_heads(options.hidden_size(), options.num_heads(), "SelfAttention");
  const int64_t h = options.hidden_size();
  out_proj = register_module("out_proj", torch::nn::Linear(h, h));
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(h, 3 * h).bias(options.qkv_bias())));
  drop_output = register_module("drop_output", torch::nn::Dropout(options.dropout_rate()));
  drop_weights = register_module("drop_weights", torch::nn::Dropout(options.dropout_rate()));
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, torch::Tensor* attention) {
  TF_CHECK(x.dim() == 3 && x.size(2) == options.hidden_size(), InvalidArgument,
           "SelfAttention: input must be [B, N, ", options.hidden_size(), "], got ", x.sizes().vec());
  const int64_t b = x.size(0), n = x.size(1), heads = options.num_heads(), d = options.hidden_size() / heads;
  // [B, N, 3H] -> [3, B, heads, N, d]: views only; matmul takes the strides as they are.
  auto parts = nn::linear(*qkv, x).view({b, n, 3, heads, d}).permute({2, 0, 3, 1, 4});
  const double scale = 1.0 / std::sqrt(double(d));
  auto att = nn::matmul(parts[0] * scale, parts[1].transpose(-2, -1)).softmax(-1);
  if (attention) *attention = att;
  auto out = nn::matmul(drop_weights->forward(att), parts[2]);  // [B, heads, N, d]
  out = out.transpose(1, 2).reshape({b, n, options.hidden_size()});
  return drop_output->forward(nn::linear(*out_proj, out));
}

// --------------------------------------------------------------------------------------- TransformerBlock

TransformerBlockImpl::TransformerBlockImpl(TransformerBlockOptions options_) : options(std::move(options_)) {
  reset();
}

void TransformerBlockImpl::reset() {
  check_rate(options.dropout_rate(), "TransformerBlock", "dropout_rate");
  check_heads(options.hidden_size(), options.num_heads(), "TransformerBlock");
  const int64_t h = options.hidden_size();
  mlp = register_module("mlp",
                        MLPBlock(MLPBlockOptions(h, options.mlp_dim()).dropout_rate(options.dropout_rate())));
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({h})));
  attn = register_module("attn", SelfAttention(SelfAttentionOptions(h, options.num_heads())
                                                   .dropout_rate(options.dropout_rate())
                                                   .qkv_bias(options.qkv_bias())));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({h})));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, torch::Tensor* attention) {
  auto y = x + attn->forward(norm1->forward(x), attention);
  return y + mlp->forward(norm2->forward(y));
}

// ------------------------------------------------------------------------------------ PatchEmbeddingBlock

PatchEmbeddingBlockImpl::PatchEmbeddingBlockImpl(PatchEmbeddingBlockOptions options_)
    : options(std::move(options_)) {
  reset();
}

std::vector<int64_t> PatchEmbeddingBlockImpl::grid() const {
  std::vector<int64_t> g(3);
  for (int d = 0; d < 3; ++d) g[d] = (*options.img_size())[d] / (*options.patch_size())[d];
  return g;
}

void PatchEmbeddingBlockImpl::reset() {
  const char* name = "PatchEmbeddingBlock";
  check_rate(options.dropout_rate(), name, "dropout_rate");
  check_heads(options.hidden_size(), options.num_heads(), name);
  TF_CHECK(options.in_channels() > 0, InvalidArgument, name, ": in_channels must be positive, got ",
           options.in_channels());
  const std::string& proj = options.proj_type();
  TF_CHECK(proj == "conv" || proj == "perceptron", InvalidArgument, name,
           ": option proj_type must be \"conv\" or \"perceptron\", got \"", proj, "\"");
  const std::string& pos = options.pos_embed_type();
  TF_CHECK(pos == "learnable" || pos == "none", InvalidArgument, name,
           ": option pos_embed_type must be \"learnable\" or \"none\", got \"", pos, "\"");
  for (int d = 0; d < 3; ++d) {
    const int64_t m = (*options.img_size())[d], p = (*options.patch_size())[d];
    TF_CHECK(p > 0 && m >= p, InvalidArgument, name, ": patch_size ", vec(options.patch_size()),
             " must be positive and not larger than img_size ", vec(options.img_size()), " (dim ", d, ")");
    TF_CHECK(proj != "perceptron" || m % p == 0, InvalidArgument, name, ": img_size ", vec(options.img_size()),
             " must be divisible by patch_size ", vec(options.patch_size()), " for proj_type perceptron (dim ", d,
             ")");
  }
  const auto g = grid();
  const int64_t n_patches = g[0] * g[1] * g[2];
  const int64_t patch_dim = options.in_channels() * (*options.patch_size())[0] * (*options.patch_size())[1] *
                            (*options.patch_size())[2];
  conv = nullptr;
  perceptron = nullptr;
  if (proj == "conv") {
    conv = register_module(
        "patch_embeddings",
        torch::nn::Conv3d(torch::nn::Conv3dOptions(options.in_channels(), options.hidden_size(), options.patch_size())
                              .stride(options.patch_size())));
  } else {
    auto linear = torch::nn::Linear(patch_dim, options.hidden_size());
    detail::trunc_normal_(linear->weight, 0.0, 0.02, -2.0, 2.0);
    torch::NoGradGuard no_grad;
    linear->bias.zero_();
    // Index 0 stands for MONAI's parameter-free einops Rearrange so that the Linear is "patch_embeddings.1".
    perceptron = register_module("patch_embeddings", torch::nn::ModuleList(torch::nn::Identity(), linear));
  }
  position_embeddings =
      register_parameter("position_embeddings", torch::zeros({1, n_patches, options.hidden_size()}));
  if (pos == "learnable") detail::trunc_normal_(position_embeddings, 0.0, 0.02, -2.0, 2.0);
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout_rate()));
}

torch::Tensor PatchEmbeddingBlockImpl::forward(const torch::Tensor& x) {
  TF_CHECK(x.dim() == 5 && x.size(1) == options.in_channels(), InvalidArgument,
           "PatchEmbeddingBlock: input must be [B, ", options.in_channels(), ", D, H, W], got ", x.sizes().vec());
  TF_CHECK(x.sizes().slice(2).vec() == vec(options.img_size()), InvalidArgument,
           "PatchEmbeddingBlock: input spatial shape ", x.sizes().slice(2).vec(), " must equal img_size ",
           vec(options.img_size()), " (the position embedding is built for that size)");
  torch::Tensor tokens;
  if (conv) {
    tokens = nn::conv(*conv, x).flatten(2).transpose(-1, -2);  // [B, N, hidden]
  } else {
    // "b c (d p1) (h p2) (w p3) -> b (d h w) (p1 p2 p3 c)"
    const auto g = grid();
    const auto& p = *options.patch_size();
    const int64_t b = x.size(0), c = x.size(1);
    auto patches = x.view({b, c, g[0], p[0], g[1], p[1], g[2], p[2]})
                       .permute({0, 2, 4, 6, 3, 5, 7, 1})
                       .reshape({b, g[0] * g[1] * g[2], p[0] * p[1] * p[2] * c});
    tokens = nn::linear(*perceptron->ptr(1)->as<torch::nn::LinearImpl>(), patches);
  }
  return dropout->forward(tokens + position_embeddings);
}

// --------------------------------------------------------------------------------------------------- ViT

ViTImpl::ViTImpl(ViTOptions options_) : options(std::move(options_)) { reset(); }

void ViTImpl::reset() {
  check_rate(options.dropout_rate(), "ViT", "dropout_rate");
  check_heads(options.hidden_size(), options.num_heads(), "ViT");
  TF_CHECK(options.num_layers() >= 1, InvalidArgument, "ViT: option num_layers must be >= 1, got ",
           options.num_layers());
  patch_embedding = register_module(
      "patch_embedding",
      PatchEmbeddingBlock(PatchEmbeddingBlockOptions(options.in_channels(), options.img_size(), options.patch_size(),
                                                     options.hidden_size(), options.num_heads())
                              .proj_type(options.proj_type())
                              .pos_embed_type(options.pos_embed_type())
                              .dropout_rate(options.dropout_rate())));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.num_layers(); ++i) {
    blocks->push_back(TransformerBlock(
        TransformerBlockOptions(options.hidden_size(), options.mlp_dim(), options.num_heads())
            .dropout_rate(options.dropout_rate())
            .qkv_bias(options.qkv_bias())));
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.hidden_size()})));
}

torch::Tensor ViTImpl::forward(const torch::Tensor& x, std::vector<torch::Tensor>* hidden_states,
                               std::vector<torch::Tensor>* attentions) {
  auto h = patch_embedding->forward(x);
  for (const auto& module : *blocks) {
    torch::Tensor att;
    h = module->as<TransformerBlockImpl>()->forward(h, attentions ? &att : nullptr);
    if (hidden_states) hidden_states->push_back(h);
    if (attentions) attentions->push_back(att);
  }
  return norm->forward(h);
}

}  // namespace teachformer::nn
