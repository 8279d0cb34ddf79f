// Swin windowing and window attention: partition/reverse round trip and layout, the shift mask's regions, and
// window attention against a naive softmax(QK^T / sqrt(d) + bias + mask) V.
#include "teachformer/nn/swin.hpp"

#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"

namespace teachformer::nn {
namespace {

TEST(WindowPartition, ReverseRestoresTheGrid) {
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({2, 4, 6, 8, 3});
  const torch::Tensor windows = window_partition(x, {2, 3, 4});
  EXPECT_EQ(windows.sizes().vec(), (std::vector<int64_t>{2 * 2 * 2 * 2, 2 * 3 * 4, 3}));
  EXPECT_TRUE(torch::equal(window_reverse(windows, {2, 3, 4}, 2, {4, 6, 8}), x));
}

TEST(WindowPartition, WindowsAreInRasterOrderWithRasterTokens) {
  // Voxel value = its linear index, so each token names where it came from.
  const torch::Tensor x = torch::arange(4 * 4 * 4, torch::kFloat32).view({1, 4, 4, 4, 1});
  const torch::Tensor w = window_partition(x, {2, 2, 2}).squeeze(-1);  // [8, 8]
  ASSERT_EQ(w.sizes().vec(), (std::vector<int64_t>{8, 8}));
  // Window 0 holds the corner block (d, h, w) in {0, 1}^3 in raster order.
  const std::vector<float> first{0, 1, 4, 5, 16, 17, 20, 21};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(w[0][i].item<float>(), first[i]) << i;
  // Window 1 is the next block along W, window 2 along H, window 4 along D.
  EXPECT_EQ(w[1][0].item<float>(), 2);
  EXPECT_EQ(w[2][0].item<float>(), 8);
  EXPECT_EQ(w[4][0].item<float>(), 32);
}

TEST(ComputeMask, WithoutShiftEveryTokenSeesItsWholeWindow) {
  const torch::Tensor mask = compute_mask({4, 4, 4}, {2, 2, 2}, {0, 0, 0});
  EXPECT_EQ(mask.sizes().vec(), (std::vector<int64_t>{8, 8, 8}));
  EXPECT_EQ(mask.abs().sum().item<float>(), 0.0f);
}

TEST(ComputeMask, ShiftedWindowsSeparateTheWrappedRegions) {
  const torch::Tensor mask = compute_mask({4, 4, 4}, {2, 2, 2}, {1, 1, 1});
  ASSERT_EQ(mask.sizes().vec(), (std::vector<int64_t>{8, 8, 8}));
  // The first window lies inside one region; the last one straddles 2 x 2 x 2 regions, one token each.
  EXPECT_EQ(mask[0].abs().sum().item<float>(), 0.0f);
  const torch::Tensor last = mask[7];
  EXPECT_TRUE(torch::equal(last.eq(0), torch::eye(8, torch::kBool)));
  EXPECT_EQ(last.min().item<float>(), -100.0f);
  // Symmetric: a pair is either in the same region or not.
  EXPECT_TRUE(torch::equal(mask, mask.transpose(1, 2)));
}

torch::Tensor naive_window_attention(WindowAttentionImpl& a, const torch::Tensor& x, const torch::Tensor& mask) {
  const int64_t bw = x.size(0), n = x.size(1), c = x.size(2), heads = a.options.num_heads(), d = c / heads;
  const torch::Tensor qkv = torch::matmul(x, a.qkv->weight.t()) + a.qkv->bias;  // [Bw, n, 3C]
  std::vector<torch::Tensor> outs;
  for (int64_t h = 0; h < heads; ++h) {
    const torch::Tensor q = qkv.slice(2, h * d, (h + 1) * d);
    const torch::Tensor k = qkv.slice(2, c + h * d, c + (h + 1) * d);
    const torch::Tensor v = qkv.slice(2, 2 * c + h * d, 2 * c + (h + 1) * d);
    torch::Tensor logits = torch::matmul(q, k.transpose(1, 2)) / std::sqrt(double(d));
    torch::Tensor bias = torch::empty({n, n});
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        bias[i][j] = a.relative_position_bias_table[a.relative_position_index[i][j].item<int64_t>()][h];
    logits = logits + bias;
    if (mask.defined()) logits = logits + mask.repeat({bw / mask.size(0), 1, 1});
    outs.push_back(torch::matmul(torch::softmax(logits, -1), v));
  }
  return torch::matmul(torch::cat(outs, 2), a.proj->weight.t()) + a.proj->bias;
}

TEST(WindowAttention, MatchesNaiveSoftmaxAttentionWithBiasAndMask) {
  torch::manual_seed(1);
  WindowAttention attn(WindowAttentionOptions(8, 2, 2).qkv_bias(true));
  torch::NoGradGuard no_grad;
  attn->relative_position_bias_table.normal_(0, 0.5);  // zero-initialised tables would hide an indexing error
  const torch::Tensor mask = compute_mask({4, 4, 4}, {2, 2, 2}, {1, 1, 1});
  const torch::Tensor x = torch::randn({2 * 8, 8, 8});
  torch::Tensor probs;
  const torch::Tensor out = attn->forward(x, mask, &probs);
  EXPECT_TRUE(torch::allclose(out, naive_window_attention(*attn, x, mask), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(out.slice(0, 0, 8), attn->forward(x.slice(0, 0, 8), mask), 1e-5, 1e-6));
  EXPECT_EQ(probs.sizes().vec(), (std::vector<int64_t>{16, 2, 8, 8}));
  EXPECT_TRUE(torch::allclose(probs.sum(-1), torch::ones({16, 2, 8}), 1e-5, 1e-6));
  // Without a mask it still matches.
  EXPECT_TRUE(torch::allclose(attn->forward(x, torch::Tensor()), naive_window_attention(*attn, x, torch::Tensor()),
                              1e-4, 1e-5));
}

TEST(WindowAttention, RejectsAWindowLargerThanItsTable) {
  WindowAttention attn(WindowAttentionOptions(8, 2, 2));
  try {
    attn->forward(torch::zeros({1, 9, 8}), torch::Tensor());
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("WindowAttention: input must be [B * windows, n <= 8, 8], got [1, 9, 8]"),
              std::string::npos)
        << e.what();
  }
}

TEST(SwinTransformerBlock, KeepsTheShapeAndShiftedWindowsChangeTheResult) {
  torch::manual_seed(2);
  SwinTransformerBlock plain(SwinTransformerBlockOptions(8, 2, 2, 0));
  SwinTransformerBlock shifted(SwinTransformerBlockOptions(8, 2, 2, 1));
  torch::NoGradGuard no_grad;
  auto src = plain->named_parameters(), dst = shifted->named_parameters();
  for (const auto& p : src) dst[p.key()].copy_(p.value());
  const torch::Tensor x = torch::randn({1, 4, 4, 4, 8});
  const torch::Tensor mask = compute_mask({4, 4, 4}, {2, 2, 2}, {1, 1, 1});
  const torch::Tensor a = plain->forward(x, torch::Tensor());
  const torch::Tensor b = shifted->forward(x, mask);
  EXPECT_EQ(a.sizes(), x.sizes());
  EXPECT_EQ(b.sizes(), x.sizes());
  EXPECT_FALSE(torch::allclose(a, b, 1e-4, 1e-5));
}

}  // namespace
}  // namespace teachformer::nn
