// describe_model on whole models: FLOPs counted exactly, transposed convolutions and attention, shape errors.
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
