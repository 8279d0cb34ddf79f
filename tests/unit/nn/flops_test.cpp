// Analytic FLOP counting against hand counts: each counted op, nesting, and whole blocks (self-attention, window
// attention, a UNETR up block).
#include "teachformer/nn/flops.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/nn/swin.hpp"
#include "teachformer/nn/transformer.hpp"
#include "teachformer/nn/unet_blocks.hpp"

namespace teachformer {
namespace {

TEST(Flops, ConvCountsOutputsTimesInputChannelsTimesKernel) {
  torch::nn::Conv3d conv(torch::nn::Conv3dOptions(3, 4, 3).padding(1));
  nn::FlopCounter counter;
  nn::conv(*conv, torch::zeros({1, 3, 5, 6, 7}));
  EXPECT_EQ(counter.macs(), 5 * 6 * 7 * 4 * (3 * 27));
  EXPECT_EQ(counter.by_kind().at("conv"), counter.macs());
  EXPECT_DOUBLE_EQ(counter.gflops(), 2.0 * counter.macs() / 1e9);
}

TEST(Flops, StridedGroupedConvCountsPerGroupInputs) {
  torch::nn::Conv3d conv(torch::nn::Conv3dOptions(4, 8, 2).stride(2).groups(2));
  nn::FlopCounter counter;
  nn::conv(*conv, torch::zeros({2, 4, 4, 4, 4}));
  EXPECT_EQ(counter.macs(), (2 * 8 * 2 * 2 * 2) * (4 / 2) * 8);
}

TEST(Flops, TransposedConvCountsInputsTimesOutputChannelsTimesKernel) {
  torch::nn::ConvTranspose3d up(torch::nn::ConvTranspose3dOptions(4, 6, 3).stride(2).padding(1).output_padding(1));
  nn::FlopCounter counter;
  const auto y = nn::conv_transpose(*up, torch::zeros({1, 4, 3, 3, 3}));
  EXPECT_EQ(y.sizes().vec(), (std::vector<int64_t>{1, 6, 6, 6, 6}));
  EXPECT_EQ(counter.macs(), (4 * 27) * 6 * 27);
  EXPECT_EQ(counter.by_kind().at("conv_transpose"), counter.macs());
}

TEST(Flops, LinearAndMatmulCountOutputsTimesInnerDim) {
  torch::nn::Linear linear(10, 7);
  nn::FlopCounter counter;
  nn::linear(*linear, torch::zeros({2, 5, 10}));
  EXPECT_EQ(counter.by_kind().at("linear"), 2 * 5 * 7 * 10);
  nn::matmul(torch::zeros({3, 4, 5}), torch::zeros({3, 5, 6}));
  EXPECT_EQ(counter.by_kind().at("matmul"), 3 * 4 * 6 * 5);
  EXPECT_EQ(counter.macs(), 700 + 360);
}

TEST(Flops, NestedCountersSeeTheirOwnOpsAndParentsSeeAll) {
  torch::nn::Linear linear(4, 2);
  EXPECT_FALSE(nn::counting_flops());
  nn::linear(*linear, torch::zeros({1, 4}));  // not counted anywhere
  nn::FlopCounter outer;
  EXPECT_TRUE(nn::counting_flops());
  nn::linear(*linear, torch::zeros({1, 4}));
  {
    nn::FlopCounter inner;
    nn::linear(*linear, torch::zeros({3, 4}));
    EXPECT_EQ(inner.macs(), 3 * 2 * 4);
  }
  EXPECT_EQ(outer.macs(), 8 + 24);
}

TEST(Flops, SelfAttentionCountsProjectionsAndBothMatmuls) {
  // N tokens of width H: qkv N*3H*H, QK^T N*N*H, AV N*N*H, out_proj N*H*H.
  const int64_t n = 10, h = 12;
  nn::SelfAttention attn(nn::SelfAttentionOptions(h, 3));
  nn::FlopCounter counter;
  attn->forward(torch::zeros({1, n, h}));
  EXPECT_EQ(counter.by_kind().at("linear"), n * 3 * h * h + n * h * h);
  EXPECT_EQ(counter.by_kind().at("matmul"), 2 * n * n * h);
  EXPECT_EQ(counter.macs(), 4 * n * h * h + 2 * n * n * h);
}

TEST(Flops, WindowAttentionCountsPerWindow) {
  // 4 windows of n = 8 tokens, width 8: the self-attention count per window.
  const int64_t windows = 4, n = 8, c = 8;
  nn::WindowAttention attn(nn::WindowAttentionOptions(c, 2, 2));
  nn::FlopCounter counter;
  attn->forward(torch::zeros({windows, n, c}), torch::Tensor());
  EXPECT_EQ(counter.macs(), windows * (4 * n * c * c + 2 * n * n * c));
}

TEST(Flops, TransformerBlockAddsTheMlpToTheAttention) {
  const int64_t n = 6, h = 8, mlp = 16;
  nn::TransformerBlock block(nn::TransformerBlockOptions(h, mlp, 2));
  nn::FlopCounter counter;
  block->forward(torch::zeros({2, n, h}));
  EXPECT_EQ(counter.macs(), 2 * ((4 * n * h * h + 2 * n * n * h) + 2 * n * h * mlp));
}

TEST(Flops, NothingIsCountedWithoutACounter) {
  nn::SelfAttention attn(nn::SelfAttentionOptions(8, 2));
  attn->forward(torch::zeros({1, 4, 8}));
  nn::FlopCounter counter;
  EXPECT_EQ(counter.macs(), 0);
  EXPECT_TRUE(counter.by_kind().empty());
}

}  // namespace
}  // namespace teachformer
