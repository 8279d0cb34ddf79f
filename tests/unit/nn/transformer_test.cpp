// ViT blocks: self-attention against a naive per-head softmax(QK^T / sqrt(d)) V, the pre-norm residual block,
// patch embedding and ViT shapes, and the option checks.
#include "teachformer/nn/transformer.hpp"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "test_checks.hpp"

namespace teachformer::nn {
namespace {

using teachformer::test::message_of;

// MONAI's layout of the qkv output: (qkv, head, dim).
torch::Tensor naive_attention(SelfAttentionImpl& a, const torch::Tensor& x, torch::Tensor* probs = nullptr) {
  const int64_t hidden = a.options.hidden_size(), heads = a.options.num_heads(), d = hidden / heads;
  const torch::Tensor qkv = a.qkv->forward(x);  // [B, N, 3H]
  std::vector<torch::Tensor> outs, ps;
  for (int64_t h = 0; h < heads; ++h) {
    const torch::Tensor q = qkv.slice(2, h * d, (h + 1) * d);
    const torch::Tensor k = qkv.slice(2, hidden + h * d, hidden + (h + 1) * d);
    const torch::Tensor v = qkv.slice(2, 2 * hidden + h * d, 2 * hidden + (h + 1) * d);
    const torch::Tensor p = torch::softmax(torch::matmul(q, k.transpose(1, 2)) / std::sqrt(double(d)), -1);
    ps.push_back(p);
    outs.push_back(torch::matmul(p, v));
  }
  if (probs) *probs = torch::stack(ps, 1);
  return a.out_proj->forward(torch::cat(outs, 2));
}

TEST(SelfAttention, MatchesNaiveSoftmaxAttentionPerHead) {
  torch::manual_seed(0);
  SelfAttention attn(SelfAttentionOptions(12, 3).qkv_bias(true));
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 5, 12});
  torch::Tensor probs, expected_probs;
  const torch::Tensor out = attn->forward(x, &probs);
  EXPECT_TRUE(torch::allclose(out, naive_attention(*attn, x, &expected_probs), 1e-5, 1e-6));
  EXPECT_EQ(probs.sizes().vec(), (std::vector<int64_t>{2, 3, 5, 5}));
  EXPECT_TRUE(torch::allclose(probs, expected_probs, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(probs.sum(-1), torch::ones({2, 3, 5}), 1e-5, 1e-6));
}

TEST(SelfAttention, IsEquivariantToTokenPermutations) {
  torch::manual_seed(1);
  SelfAttention attn(SelfAttentionOptions(8, 2));
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({1, 6, 8});
  const torch::Tensor perm = torch::tensor({3, 0, 5, 1, 4, 2}, torch::kLong);
  EXPECT_TRUE(torch::allclose(attn->forward(x.index_select(1, perm)), attn->forward(x).index_select(1, perm), 1e-5,
                              1e-6));
}

TEST(SelfAttention, RejectsHeadsThatDoNotDivideTheWidthAndWrongInputs) {
  EXPECT_EQ(message_of([] { SelfAttention(SelfAttentionOptions(10, 3)); }),
            "SelfAttention: hidden_size must be divisible by num_heads, got hidden_size 10 and num_heads 3");
  SelfAttention attn(SelfAttentionOptions(8, 2));
  EXPECT_EQ(message_of([&] { attn->forward(torch::zeros({1, 4, 6})); }),
            "SelfAttention: input must be [B, N, 8], got [1, 4, 6]");
}

TEST(TransformerBlock, IsAPreNormResidualOfAttentionThenMLP) {
  torch::manual_seed(2);
  TransformerBlock block(TransformerBlockOptions(8, 16, 2));
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({2, 4, 8});
  const torch::Tensor y = x + block->attn->forward(block->norm1->forward(x));
  const torch::Tensor expected = y + block->mlp->forward(block->norm2->forward(y));
  torch::Tensor probs;
  EXPECT_TRUE(torch::allclose(block->forward(x, &probs), expected, 1e-5, 1e-6));
  EXPECT_EQ(probs.sizes().vec(), (std::vector<int64_t>{2, 2, 4, 4}));
}

TEST(MLPBlock, MapsTokensThroughTheHiddenWidthAndBack) {
  MLPBlock mlp(MLPBlockOptions(8, 32));
  EXPECT_EQ(mlp->forward(torch::zeros({2, 3, 8})).sizes().vec(), (std::vector<int64_t>{2, 3, 8}));
  int64_t params = 0;
  for (const auto& p : mlp->parameters()) params += p.numel();
  EXPECT_EQ(params, (8 * 32 + 32) + (32 * 8 + 8));
  EXPECT_EQ(message_of([] { MLPBlock(MLPBlockOptions(8, 32).dropout_mode("timm")); }),
            "MLPBlock: option dropout_mode must be \"vit\" or \"swin\", got \"timm\"");
}

TEST(PatchEmbeddingBlock, GivesOneTokenPerPatchForBothProjections) {
  for (const char* proj : {"conv", "perceptron"}) {
    PatchEmbeddingBlock embed(PatchEmbeddingBlockOptions(2, {8, 8, 4}, {4, 4, 2}, 16, 4).proj_type(proj));
    EXPECT_EQ(embed->grid(), (std::vector<int64_t>{2, 2, 2})) << proj;
    EXPECT_EQ(embed->forward(torch::zeros({3, 2, 8, 8, 4})).sizes().vec(), (std::vector<int64_t>{3, 8, 16})) << proj;
    EXPECT_EQ(embed->position_embeddings.sizes().vec(), (std::vector<int64_t>{1, 8, 16})) << proj;
  }
  PatchEmbeddingBlock embed(PatchEmbeddingBlockOptions(1, 8, 4, 16, 4));
  EXPECT_EQ(message_of([&] { embed->forward(torch::zeros({1, 1, 8, 8, 4})); }),
            "PatchEmbeddingBlock: input spatial shape [8, 8, 4] must equal img_size [8, 8, 8] (the position "
            "embedding is built for that size)");
}

TEST(ViT, ReturnsNormalisedTokensAndEveryBlocksHiddenState) {
  torch::manual_seed(3);
  ViT vit(ViTOptions(1, 8, 4).hidden_size(16).mlp_dim(32).num_layers(3).num_heads(4));
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> hidden, attentions;
  const torch::Tensor out = vit->forward(torch::randn({2, 1, 8, 8, 8}), &hidden, &attentions);
  EXPECT_EQ(out.sizes().vec(), (std::vector<int64_t>{2, 8, 16}));
  ASSERT_EQ(hidden.size(), 3u);
  ASSERT_EQ(attentions.size(), 3u);
  EXPECT_EQ(attentions[0].sizes().vec(), (std::vector<int64_t>{2, 4, 8, 8}));
  EXPECT_TRUE(torch::allclose(out, vit->norm->forward(hidden.back()), 1e-5, 1e-6));
  EXPECT_EQ(message_of([] { ViT(ViTOptions(1, 8, 4).num_layers(0)); }), "ViT: option num_layers must be >= 1, got 0");
}

}  // namespace
}  // namespace teachformer::nn
