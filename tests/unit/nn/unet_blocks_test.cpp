// Convolution blocks of the UNETR family: output shapes, MONAI child names and parameter counts, the residual
// path of UnetResBlock, and the up blocks' upsampling factors.
#include "teachformer/nn/unet_blocks.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace teachformer::nn {
namespace {

int64_t count_parameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::vector<int64_t> shape(const torch::Tensor& t) { return t.sizes().vec(); }

TEST(UnetBasicBlock, StridedConvolutionHalvesTheGridAndHasNoBias) {
  UnetBasicBlock block(UnetBlockOptions(2, 4).stride(2));
  EXPECT_EQ(shape(block->forward(torch::randn({1, 2, 8, 8, 6}))), (std::vector<int64_t>{1, 4, 4, 4, 3}));
  // Two bias-free 3x3x3 convolutions; instance norm without affine has no parameters.
  EXPECT_EQ(count_parameters(*block), 2 * 4 * 27 + 4 * 4 * 27);
  const auto names = block->named_parameters().keys();
  EXPECT_EQ(names, (std::vector<std::string>{"conv1.conv.weight", "conv2.conv.weight"}));
}

TEST(UnetResBlock, ProjectsTheResidualOnlyWhenTheShapeChanges) {
  UnetResBlock same(UnetBlockOptions(4, 4));
  EXPECT_TRUE(same->conv3.is_empty());
  UnetResBlock wider(UnetBlockOptions(2, 4));
  ASSERT_FALSE(wider->conv3.is_empty());
  EXPECT_EQ(count_parameters(*wider), 2 * 4 * 27 + 4 * 4 * 27 + 2 * 4);
  EXPECT_EQ(shape(wider->forward(torch::randn({2, 2, 4, 4, 4}))), (std::vector<int64_t>{2, 4, 4, 4, 4}));
}

TEST(UnetResBlock, AddsTheInputBeforeTheLastActivation) {
  torch::manual_seed(0);
  UnetResBlock block(UnetBlockOptions(3, 3));
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({1, 3, 4, 4, 4});
  torch::Tensor h = block->lrelu.forward(block->norm1.forward(block->conv1->forward(x)));
  h = block->norm2.forward(block->conv2->forward(h));
  const torch::Tensor expected = block->lrelu.forward(h + x);
  EXPECT_TRUE(torch::allclose(block->forward(x), expected, 1e-5, 1e-6));
}

TEST(UnetrUpBlock, UpsamplesByTheKernelAndConcatenatesTheSkip) {
  UnetrUpBlock up(UnetrUpBlockOptions(8, 4));
  const torch::Tensor out = up->forward(torch::randn({1, 8, 2, 3, 4}), torch::randn({1, 4, 4, 6, 8}));
  EXPECT_EQ(shape(out), (std::vector<int64_t>{1, 4, 4, 6, 8}));
  EXPECT_FALSE(up->basic.is_empty());
  EXPECT_TRUE(up->res.is_empty());
}

TEST(UnetrPrUpBlock, UpsamplesOncePlusOncePerLayer) {
  UnetrPrUpBlock up(UnetrPrUpBlockOptions(8, 4, 2));
  EXPECT_EQ(shape(up->forward(torch::randn({1, 8, 2, 2, 2}))), (std::vector<int64_t>{1, 4, 16, 16, 16}));
  EXPECT_EQ(up->blocks->size(), 2u);
}

TEST(UnetOutBlock, IsAOneByOneConvolutionWithBias) {
  UnetOutBlock out(4, 3);
  EXPECT_EQ(count_parameters(*out), 4 * 3 + 3);
  EXPECT_EQ(shape(out->forward(torch::randn({2, 4, 3, 3, 3}))), (std::vector<int64_t>{2, 3, 3, 3, 3}));
}

}  // namespace
}  // namespace teachformer::nn
