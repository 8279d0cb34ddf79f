// Analytic FLOP counting against hand-computed layers, nesting, and describe_model on whole models.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/models/hdenseformer.hpp"
#include "teachformer/models/model_info.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/teachformer_s.hpp"
#include "teachformer/nn/flops.hpp"

namespace teachformer::models {
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

TEST(Flops, DescribeModelCountsTheStudentExactly) {
  // Minimal student: stem, one down/up level, the full-resolution output block and one ds head.
  TeachFormerSImpl model(TeachFormerSOptions(3, 4)
                             .channels({16, 32})
                             .depths({0, 0})
                             .decoder_depth(0)
                             .transformer_depth(0)
                             .pos_conv(false)
                             .head_channels(8)
                             .deep_supervision(1));
  const ModelInfo info = describe_model(model, {3, 16, 16, 16});
  const int64_t stem = 8 * 8 * 8 * 16 * (3 * 27), down = 4 * 4 * 4 * 32 * (16 * 8), ds = 8 * 8 * 8 * 4 * 16;
  const int64_t head = 16 * 16 * 16 * 4 * (8 + 3);
  const int64_t up = (4 * 4 * 4 * 32) * 16 * 8, head_up = (8 * 8 * 8 * 16) * 8 * 8;
  EXPECT_EQ(info.macs_by_kind.at("conv"), stem + down + ds + head);
  EXPECT_EQ(info.macs_by_kind.at("conv_transpose"), up + head_up);
  EXPECT_EQ(info.macs, stem + down + ds + head + up + head_up);
  EXPECT_EQ(info.input_shape, (std::vector<int64_t>{1, 3, 16, 16, 16}));
  EXPECT_EQ(info.output_shape, (std::vector<int64_t>{1, 4, 16, 16, 16}));
  ASSERT_EQ(info.deep_supervision_shapes.size(), 1u);
  EXPECT_EQ(info.deep_supervision_shapes[0], (std::vector<int64_t>{1, 4, 8, 8, 8}));
  ASSERT_EQ(info.taps.size(), 2u);
  EXPECT_EQ(info.taps[0].first, kEncoderCoarse);
  EXPECT_EQ(info.taps[0].second, (std::vector<int64_t>{1, 32, 4, 4, 4}));
  EXPECT_EQ(info.taps[1].first, kDecoderFine);
  EXPECT_EQ(info.parameters, count_parameters(model));
}

TEST(Flops, DescribeModelCountsHDenseFormerTransposedConvsAndAttention) {
  HDenseFormerImpl model(HDenseFormerOptions(2, 2, 6).image_size({48, 48, 48}).transformer_depth(8));
  model.train();
  const ModelInfo info = describe_model(model, {1, 2, 48, 48, 48});
  EXPECT_TRUE(model.is_training()) << "describe_model must restore the training mode";
  // upconv_3: 48 -> 24 from 6^3, upconv_2: 24 -> 12 from 12^3, upconv_1: 12 -> 6 from 24^3.
  EXPECT_EQ(info.macs_by_kind.at("conv_transpose"), 6 * 6 * 6 * 48 * 24 * 27 + 12 * 12 * 12 * 24 * 12 * 27 +
                                                        24 * 24 * 24 * 12 * 6 * 27);
  // Per dense layer (8 heads, 27 tokens, dim_head 4): q k^T and attn v, 16 layers (2 paths x 2 blocks x 4).
  EXPECT_EQ(info.macs_by_kind.at("matmul"), 16 * (8 * 27 * 27 * 4 + 8 * 27 * 4 * 27));
  EXPECT_GT(info.macs_by_kind.at("conv"), 0);
  EXPECT_GT(info.macs_by_kind.at("linear"), 0);
  EXPECT_EQ(to_json(info).at("taps").at("encoder_coarse"), (std::vector<int64_t>{1, 48, 6, 6, 6}));
}

TEST(Flops, DescribeModelPassesTheModelsShapeErrorThrough) {
  auto model = create_model("teachformer_s");
  EXPECT_THROW(describe_model(*model, {1, 2, 24, 24, 24}), InvalidArgument);
  EXPECT_THROW(describe_model(*model, {2, 24, 24}), InvalidArgument);
}

}  // namespace
}  // namespace teachformer::models
