// TeachFormer-S: presets and parameter budgets, shapes on non-cubic inputs, taps, the inference path against the
// differentiable path, and bad-argument messages.
#include "teachformer/models/teachformer_s.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/state_dict.hpp"
#include "teachformer/nn/flops.hpp"
#include "test_checks.hpp"

namespace teachformer::models {
namespace {

using teachformer::test::expect_close;

using ::testing::HasSubstr;

constexpr int64_t kSwinUnetr48Parameters = 62188436;  // MONAI 1.5 SwinUNETR(in 2, out 2, feature_size 48)

// Random norm affines and biases so that every path of the model matters.
void randomize(torch::nn::Module& model, int seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard guard;
  for (auto& p : model.named_parameters()) {
    if (p.value().dim() == 1) p.value().copy_(torch::randn_like(p.value()) * 0.1 + (p.key().find("bias") == std::string::npos ? 1.0 : 0.0));
  }
}

TEST(TeachFormerS, EveryPresetStaysUnderATenthOfSwinUnetr48) {
  for (const auto& preset : teachformer_s_presets()) {
    for (int64_t in_channels : {1, 2, 3, 4}) {
      const int64_t n = count_parameters(TeachFormerSImpl(teachformer_s_preset(preset, in_channels, 2)));
      EXPECT_LE(n * 10, kSwinUnetr48Parameters) << preset << " with " << in_channels << " channels: " << n;
    }
  }
}

TEST(TeachFormerS, PresetParameterCountsArePinned) {
  // Pinned so that an unregistered child (which silently has no parameters) fails here.
  EXPECT_EQ(count_parameters(TeachFormerSImpl(teachformer_s_preset("tiny", 2, 2))), 152066);
  EXPECT_EQ(count_parameters(TeachFormerSImpl(teachformer_s_preset("small", 2, 2))), 985266);
  EXPECT_EQ(count_parameters(TeachFormerSImpl(teachformer_s_preset("base", 2, 2))), 4388506);
  EXPECT_EQ(count_parameters(TeachFormerSImpl(TeachFormerSOptions(2, 2))), 985266);
  // The default through the registry is "small".
  EXPECT_EQ(count_parameters(*create_model("teachformer_s")), 985266);
}

TEST(TeachFormerS, ParameterCountFollowsTheOptions) {
  // Hand count of a minimal model: channels [16, 32], no units, no transformer, no position conv, 1 ds head.
  const TeachFormerSOptions o = TeachFormerSOptions(3, 4)
                                    .channels({16, 32})
                                    .depths({0, 0})
                                    .decoder_depth(0)
                                    .transformer_depth(0)
                                    .pos_conv(false)
                                    .head_channels(8)
                                    .deep_supervision(1);
  const int64_t stem = 16 * 3 * 27 + 2 * 16;                 // conv (no bias) + instance-norm affine
  const int64_t down = 32 * 16 * 8 + 2 * 32;                 // k2 s2 conv + affine
  const int64_t up = 32 * 16 * 8 + 16;                       // transposed conv + bias
  const int64_t head_up = 16 * 8 * 8 + 8;                    // transposed conv to head_channels + bias
  const int64_t head = (8 + 3) * 4 + 4;                      // 1^3 conv over [features, input]
  const int64_t ds = 16 * 4 + 4;                             // 1^3 head at 1/2
  EXPECT_EQ(count_parameters(TeachFormerSImpl(o)), stem + down + up + head_up + head + ds);
}

TEST(TeachFormerS, FineDecoderUnitsAndSkippedDeepSupervision) {
  // One 3^3 unit at the finest decoder stage: conv (no bias) + instance-norm affine.
  const auto base = TeachFormerSOptions(2, 2);
  EXPECT_EQ(count_parameters(TeachFormerSImpl(TeachFormerSOptions(base).fine_decoder_depth(1))) -
                count_parameters(TeachFormerSImpl(base)),
            16 * 16 * 27 + 2 * 16);
  torch::manual_seed(0);
  TeachFormerS model(TeachFormerSOptions(base).fine_decoder_depth(1));
  model->eval();
  const auto x = torch::randn({1, 2, 32, 32, 32});
  torch::NoGradGuard no_grad;
  const auto full = model->forward(x, TapRequest{});
  EXPECT_EQ(full.deep_supervision.size(), 2u);
  TapRequest inference{false, false, false, false};
  const auto lean = model->forward(x, inference);
  EXPECT_TRUE(lean.deep_supervision.empty());
  EXPECT_TRUE(torch::allclose(lean.logits, full.logits, 1e-5, 1e-5));
  // The in-place skip addition (no grad) equals the differentiable path, intermediates included.
  torch::Tensor reference;
  {
    torch::AutoGradMode grad(true);
    reference = model->forward(x, TapRequest{true, false, true}).logits.detach();
  }
  const auto with_intermediates = model->forward(x, TapRequest{true, false, true});
  EXPECT_TRUE(torch::allclose(with_intermediates.logits, reference, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(lean.logits, reference, 1e-4, 1e-5));
}

struct ShapeCase {
  int64_t in_channels, out_channels, batch;
  std::vector<int64_t> size;
  std::string preset;
};
class TeachFormerSShapes : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(TeachFormerSShapes, OutputsAndTapsHaveTheDocumentedShapes) {
  const ShapeCase c = GetParam();
  torch::manual_seed(1);
  TeachFormerSImpl model(teachformer_s_preset(c.preset, c.in_channels, c.out_channels));
  model.eval();
  torch::InferenceMode guard;
  TapRequest request;
  request.attention = true;
  request.intermediates = true;
  const int64_t d = c.size[0], h = c.size[1], w = c.size[2];
  const SegOutput out = model.forward(torch::randn({c.batch, c.in_channels, d, h, w}), request);
  const auto& ch = model.options().channels();
  EXPECT_EQ(out.logits.sizes().vec(), (std::vector<int64_t>{c.batch, c.out_channels, d, h, w}));
  ASSERT_EQ(out.deep_supervision.size(), 2u);
  EXPECT_EQ(out.deep_supervision[0].sizes().vec(), (std::vector<int64_t>{c.batch, c.out_channels, d / 2, h / 2, w / 2}));
  EXPECT_EQ(out.deep_supervision[1].sizes().vec(), (std::vector<int64_t>{c.batch, c.out_channels, d / 4, h / 4, w / 4}));
  EXPECT_EQ(out.taps.at(kEncoderCoarse).sizes().vec(),
            (std::vector<int64_t>{c.batch, ch.back(), d / 16, h / 16, w / 16}));
  EXPECT_EQ(out.taps.at(kDecoderFine).sizes().vec(), (std::vector<int64_t>{c.batch, ch[0], d / 2, h / 2, w / 2}));
  const int64_t tokens = d * h * w / 4096;
  EXPECT_EQ(out.taps.at("attention.block0").sizes().vec(),
            (std::vector<int64_t>{c.batch, model.options().heads(), tokens, tokens}));
  EXPECT_EQ(out.taps.at("tokens").sizes().vec(), (std::vector<int64_t>{c.batch, tokens, ch.back()}));
  EXPECT_EQ(out.taps.at("encoder1").sizes().vec(), (std::vector<int64_t>{c.batch, ch[1], d / 4, h / 4, w / 4}));
  EXPECT_EQ(out.taps.at("decoder2").sizes().vec(), (std::vector<int64_t>{c.batch, ch[2], d / 8, h / 8, w / 8}));
  EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(Configurations, TeachFormerSShapes,
                         ::testing::Values(ShapeCase{1, 2, 1, {16, 16, 16}, "tiny"},
                                           ShapeCase{2, 3, 2, {16, 32, 48}, "tiny"},
                                           ShapeCase{3, 2, 1, {32, 16, 16}, "small"},
                                           ShapeCase{4, 5, 1, {16, 48, 32}, "tiny"},
                                           ShapeCase{2, 2, 1, {32, 32, 16}, "base"}));

TEST(TeachFormerS, InferencePathEqualsDifferentiablePath) {
  for (const std::string norm : {"instance", "batch"}) {
    TeachFormerSImpl model(teachformer_s_preset("tiny", 2, 3).norm(norm));
    randomize(model, 2);
    model.eval();
    const torch::Tensor x = torch::randn({2, 2, 32, 16, 48});
    const SegOutput slow = model.forward(x);
    ASSERT_TRUE(slow.logits.requires_grad());
    torch::NoGradGuard guard;
    const SegOutput fast = model.forward(x);
    expect_close(fast.logits, slow.logits.detach(), norm + " logits", 1e-4);
    for (size_t i = 0; i < fast.deep_supervision.size(); ++i)
      expect_close(fast.deep_supervision[i], slow.deep_supervision[i].detach(), norm + " ds", 1e-4);
    expect_close(fast.taps.at(kEncoderCoarse), slow.taps.at(kEncoderCoarse).detach(), norm + " coarse", 1e-4);
  }
}

TEST(TeachFormerS, DecoderFineIsTheInputOfTheOutputBlock) {
  TeachFormerSImpl model(teachformer_s_preset("tiny", 2, 2));
  randomize(model, 3);
  model.eval();
  torch::NoGradGuard guard;
  const torch::Tensor x = torch::randn({1, 2, 16, 32, 16});
  const SegOutput out = model.forward(x);
  const torch::Tensor fine = out.taps.at(kDecoderFine);
  const torch::Tensor up =
      torch::leaky_relu(torch::conv_transpose3d(fine, model.head_up->weight, model.head_up->bias, 2), 0.01);
  const torch::Tensor expected = torch::conv3d(torch::cat({up, x}, 1), model.head->weight, model.head->bias);
  expect_close(out.logits, expected, "head(decoder_fine, input)", 1e-5);
  // and encoder_coarse is what the deepest decoder stage upsamples.
  EXPECT_EQ(out.taps.at(kEncoderCoarse).size(1), model.options().channels().back());
}

TEST(TeachFormerS, BackwardReachesEveryParameter) {
  torch::manual_seed(4);
  TeachFormerSImpl model(teachformer_s_preset("tiny", 2, 2));
  model.train();
  const SegOutput out = model.forward(torch::randn({2, 2, 16, 16, 32}));
  torch::Tensor loss = out.logits.square().mean();
  for (const auto& ds : out.deep_supervision) loss = loss + ds.square().mean();
  loss.backward();
  for (const auto& p : model.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(TeachFormerS, AttentionTapsAreRowStochastic) {
  TeachFormerSImpl model(teachformer_s_preset("small", 2, 2));
  model.eval();
  torch::InferenceMode guard;
  TapRequest request;
  request.attention = true;
  const SegOutput out = model.forward(torch::randn({1, 2, 32, 32, 32}), request);
  for (int k = 0; k < 4; ++k) {
    const auto& a = out.taps.at("attention.block" + std::to_string(k));
    EXPECT_EQ(a.sizes().vec(), (std::vector<int64_t>{1, 4, 8, 8}));
    expect_close(a.sum(-1), torch::ones({1, 4, 8}), "row sums", 1e-5);
  }
  EXPECT_FALSE(out.taps.contains("attention.block4"));
}

TEST(TeachFormerS, RejectsInputsNotDivisibleByItsFactor) {
  TeachFormerSImpl model(teachformer_s_preset("tiny", 2, 2));
  torch::NoGradGuard guard;
  try {
    model.forward(torch::zeros({1, 2, 16, 24, 16}));
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("teachformer_s: input spatial shape [16, 24, 16] must be divisible by 16 in every "
                                    "dim (dim 1 is 24)"));
  }
  try {
    model.forward(torch::zeros({1, 1, 16, 16, 16}));
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("input has 1 channels but option in_channels is 2"));
  }
  // Three stages: factor 8.
  TeachFormerSImpl three(TeachFormerSOptions(2, 2).channels({16, 32, 64}).depths({0, 1, 0}));
  EXPECT_EQ(three.spec().size_divisor, (std::vector<int64_t>{8, 8, 8}));
  EXPECT_EQ(three.forward(torch::zeros({1, 2, 8, 24, 16})).logits.sizes().vec(),
            (std::vector<int64_t>{1, 2, 8, 24, 16}));
}

TEST(TeachFormerS, RejectsInvalidOptionsNamingTheOption) {
  auto message = [](const nlohmann::json& j) -> std::string {
    try {
      teachformer_s_options_from_json(j);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_THAT(message({{"preset", "huge"}}), HasSubstr("unknown preset 'huge'; valid presets: [tiny, small, base]"));
  EXPECT_THAT(message({{"heads", 3}}), HasSubstr("option heads (3) must divide the transformer width"));
  EXPECT_THAT(message({{"depths", {0, 1}}}), HasSubstr("option depths must have one entry per stage"));
  EXPECT_THAT(message({{"norm", "group"}}), HasSubstr("option norm must be \"instance\" or \"batch\""));
  EXPECT_THAT(message({{"deep_supervision", 4}}), HasSubstr("option deep_supervision must be in [0, 3]"));
  EXPECT_THAT(message({{"channels", {16}}, {"depths", {0}}}), HasSubstr("option channels must list 2 to 6"));
  EXPECT_THAT(message({{"chanels", {16, 32}}}), HasSubstr("unknown key(s) [chanels]"));
}

TEST(TeachFormerS, PresetKeyIsOverriddenByExplicitOptions) {
  const TeachFormerSOptions o = teachformer_s_options_from_json({{"preset", "base"}, {"transformer_depth", 1},
                                                                  {"in_channels", 3}});
  EXPECT_EQ(o.channels(), (std::vector<int64_t>{32, 64, 128, 256}));
  EXPECT_EQ(o.transformer_depth(), 1);
  EXPECT_EQ(o.in_channels(), 3);
  EXPECT_EQ(to_json(teachformer_s_options_from_json(to_json(o))), to_json(o));
}

}  // namespace
}  // namespace teachformer::models
