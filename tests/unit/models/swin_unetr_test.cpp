#include "teachformer/models/swin_unetr.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/io/safetensors.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/state_dict.hpp"
#include "test_checks.hpp"
#include "test_support.hpp"

namespace tfm = teachformer::models;
using teachformer::Json;

namespace {

using teachformer::test::message_of;
using teachformer::test::expect_close;

// Narrow but complete: 4 stages, depths 2, windows 7 (shrinking at the small stages) on 64^3 inputs.
Json tiny_options() {
  return Json{{"in_channels", 2}, {"out_channels", 3}, {"feature_size", 12}, {"num_heads", Json::array({1, 2, 2, 4})}};
}

tfm::SegmentationModel tiny(Json changes = Json::object()) {
  Json o = tiny_options();
  for (auto it = changes.begin(); it != changes.end(); ++it) o[it.key()] = it.value();
  auto model = tfm::create_model("swin_unetr", o);
  model->eval();
  return model;
}

}  // namespace

TEST(SwinUNETR, MatchesMonaiFixtureOutputAndEveryHiddenState) {
  const Json meta = teachformer::read_json(teachformer::test::fixture("models/swin_unetr_tiny.json"));
  const auto weights =
      teachformer::io::read_safetensors(teachformer::test::fixture("models/swin_unetr_tiny.safetensors"));
  const auto io = teachformer::io::read_safetensors(teachformer::test::fixture("models/swin_unetr_tiny_io.safetensors"));
  auto model = tfm::create_model("swin_unetr", meta.at("kwargs"));
  EXPECT_EQ(tfm::count_parameters(*model), meta.at("parameters").get<int64_t>());
  const auto report = tfm::load_state_dict(*model, weights.tensors);  // strict: every key, nothing extra
  EXPECT_EQ(int64_t(report.loaded.size()), meta.at("state_dict_keys").get<int64_t>());
  model->eval();
  torch::NoGradGuard no_grad;
  tfm::TapRequest request;
  request.intermediates = true;
  const auto out = model->forward(io.at("input"), request);
  const double atol = meta.at("atol"), rtol = meta.at("rtol");
  expect_close(out.logits, io.at("output"), "output", atol, rtol);
  for (const auto& name : meta.at("intermediates")) {
    const std::string n = name.get<std::string>();
    expect_close(out.taps.at(n), io.at(n), n, atol, rtol);
  }
}

TEST(SwinUNETR, DefaultParameterCountsEqualMonai) {
  EXPECT_EQ(tfm::count_parameters(*tfm::create_model(
                "swin_unetr", Json{{"in_channels", 2}, {"out_channels", 2}, {"feature_size", 48}})),
            62188436);
  EXPECT_EQ(tfm::count_parameters(*tfm::create_model("swin_unetr", Json{{"in_channels", 2}, {"out_channels", 2}})),
            15703868);
}

TEST(SwinUNETR, AcceptsFixtureKwargsAndMonaiExtrasAndRoundTripsOptions) {
  const Json meta = teachformer::read_json(teachformer::test::fixture("models/swin_unetr_tiny.json"));
  Json kwargs = meta.at("kwargs");
  kwargs["img_size"] = Json::array({64, 64, 64});  // deprecated in MONAI: accepted and ignored
  kwargs["use_checkpoint"] = true;
  const auto o = tfm::swin_unetr_options_from_json(kwargs);
  EXPECT_EQ(o.feature_size(), 12);
  EXPECT_EQ(o.window_size()->at(2), 7);
  const Json j = tfm::to_json(o);
  EXPECT_FALSE(j.contains("img_size"));
  EXPECT_EQ(tfm::to_json(tfm::swin_unetr_options_from_json(j)), j);
  const Json defaults = tfm::default_model_options("swin_unetr");
  EXPECT_EQ(defaults.at("feature_size"), 24);
  EXPECT_EQ(defaults.at("depths"), Json::array({2, 2, 2, 2}));
  EXPECT_EQ(defaults.at("num_heads"), Json::array({3, 6, 12, 24}));
  EXPECT_EQ(defaults.at("downsample"), "merging");
  EXPECT_EQ(defaults.at("use_v2"), false);
}

TEST(SwinUNETR, UnknownOrMistypedJsonKeysAreConfigErrors) {
  auto msg = message_of<teachformer::ConfigError>([] { tfm::create_model("swin_unetr", Json{{"depth", 2}}); });
  EXPECT_NE(msg.find("depth"), std::string::npos) << msg;
  msg = message_of<teachformer::ConfigError>(
      [] { tfm::create_model("swin_unetr", Json{{"depths", Json::array({2, "2", 2, 2})}}); });
  EXPECT_NE(msg.find("'depths' must be a list of integers"), std::string::npos) << msg;
  msg = message_of<teachformer::ConfigError>([] { tfm::create_model("swin_unetr", Json{{"spatial_dims", 2}}); });
  EXPECT_NE(msg.find("only spatial_dims 3"), std::string::npos) << msg;
}

TEST(SwinUNETR, SpecRequiresMultiplesOf32) {
  auto model = tiny();
  EXPECT_EQ(model->spec().key, "swin_unetr");
  EXPECT_EQ(model->spec().size_divisor, (std::vector<int64_t>{32, 32, 32}));
  EXPECT_TRUE(model->spec().fixed_input_size.empty());
  EXPECT_EQ(model->spec().deep_supervision_outputs, 0);
}

TEST(SwinUNETR, TapsHaveTheDocumentedShapesAndAttentionRowsSumToOne) {
  auto model = tiny();
  torch::NoGradGuard no_grad;
  tfm::TapRequest request;
  request.attention = true;
  request.intermediates = true;
  const auto out = model->forward(torch::randn({1, 2, 64, 32, 96}), request);
  EXPECT_EQ(out.logits.sizes(), torch::IntArrayRef({1, 3, 64, 32, 96}));
  EXPECT_EQ(out.taps.at(tfm::kEncoderCoarse).sizes(), torch::IntArrayRef({1, 192, 2, 1, 3}));
  // D_{n-1}: decoder2's output at 1/2; the last stage (decoder1) at full resolution.
  EXPECT_EQ(out.taps.at(tfm::kDecoderFine).sizes(), torch::IntArrayRef({1, 12, 32, 16, 48}));
  EXPECT_EQ(out.taps.at(tfm::kDecoderLast).sizes(), torch::IntArrayRef({1, 12, 64, 32, 96}));
  for (int i = 0; i < 5; ++i) {
    const int64_t s = int64_t(2) << i;
    EXPECT_EQ(out.taps.at("swin_hidden_" + std::to_string(i)).sizes(),
              torch::IntArrayRef({1, 12 << i, 64 / s, 32 / s, 96 / s}));
  }
  // Stage 1 grid 32x16x48 -> windows 7 padded to 35x21x49: 5*3*7 windows of 343 tokens, 1 head.
  EXPECT_EQ(out.taps.at("attention.0").sizes(), torch::IntArrayRef({105, 1, 343, 343}));
  EXPECT_EQ(out.taps.at("attention.1").sizes(), torch::IntArrayRef({105, 1, 343, 343}));
  // Stage 4 grid 4x2x6: every dim is smaller than 7, so one window of 4*2*6 = 48 tokens and no shift.
  EXPECT_EQ(out.taps.at("attention.7").sizes(), torch::IntArrayRef({1, 4, 48, 48}));
  for (int i = 0; i < 8; ++i) {
    const auto& att = out.taps.at("attention." + std::to_string(i));
    EXPECT_TRUE(torch::allclose(att.sum(-1), torch::ones_like(att.sum(-1)), 1e-5, 1e-5)) << i;
  }
  EXPECT_FALSE(out.taps.contains("attention.8"));
}

TEST(SwinUNETR, ShapeMatrixOverChannelsSizesAndOptions) {
  struct Case {
    Json changes;
    std::vector<int64_t> input;
  };
  const std::vector<Case> cases{
      {Json{{"in_channels", 1}, {"out_channels", 2}}, {1, 1, 32, 32, 32}},
      {Json{{"in_channels", 4}, {"out_channels", 5}}, {2, 4, 32, 64, 32}},
      {Json{{"use_v2", true}}, {1, 2, 32, 32, 32}},
      {Json{{"normalize", false}}, {1, 2, 32, 32, 32}},
      {Json{{"downsample", "mergingv2"}}, {1, 2, 32, 32, 32}},
      {Json{{"qkv_bias", false}, {"mlp_ratio", 2.0}}, {1, 2, 32, 32, 32}},
      {Json{{"norm_name", "batch"}}, {2, 2, 32, 32, 32}},
      {Json{{"norm_name", Json::array({"group", {{"num_groups", 3}}})}}, {1, 2, 32, 32, 32}},
      {Json{{"norm_name", "layer"}}, {1, 2, 32, 32, 32}},
      {Json{{"window_size", Json::array({3, 5, 7})}, {"depths", Json::array({1, 2, 3, 1})}}, {1, 2, 64, 32, 32}},
      {Json{{"patch_norm", true}, {"drop_rate", 0.1}, {"attn_drop_rate", 0.1}, {"dropout_path_rate", 0.2}},
       {1, 2, 32, 32, 32}},
      {Json{{"patch_size", 1}}, {1, 2, 16, 16, 32}},
  };
  torch::NoGradGuard no_grad;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.changes.dump());
    auto model = tiny(c.changes);
    const auto out = model->forward(torch::randn(c.input));
    std::vector<int64_t> expected = c.input;
    expected[1] = model->spec().out_channels;
    EXPECT_EQ(out.logits.sizes().vec(), expected);
    EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>());
  }
}

TEST(SwinUNETR, OptionsChangeTheModulesAndParameters) {
  const auto base = tfm::state_dict(*tiny());
  const auto v2 = tfm::state_dict(*tiny(Json{{"use_v2", true}}));
  EXPECT_TRUE(v2.count("swinViT.layers1c.0.layer.conv1.conv.weight"));
  EXPECT_TRUE(v2.count("swinViT.layers4c.0.layer.conv2.conv.weight"));
  EXPECT_FALSE(base.count("swinViT.layers1c.0.layer.conv1.conv.weight"));
  EXPECT_FALSE(tfm::state_dict(*tiny(Json{{"qkv_bias", false}})).count("swinViT.layers1.0.blocks.0.attn.qkv.bias"));
  EXPECT_TRUE(tfm::state_dict(*tiny(Json{{"patch_norm", true}})).count("swinViT.patch_embed.norm.weight"));
  EXPECT_EQ(base.at("swinViT.layers1.0.blocks.0.attn.relative_position_index").scalar_type(), torch::kLong);
}

TEST(SwinUNETR, NormalizeAndMergingVersionChangeTheOutput) {
  torch::manual_seed(3);
  auto a = tiny();
  auto sd = tfm::state_dict(*a);
  const auto x = torch::randn({1, 2, 32, 32, 32});
  torch::NoGradGuard no_grad;
  const auto ref = a->forward(x).logits;
  for (const Json& changes : {Json{{"normalize", false}}, Json{{"downsample", "mergingv2"}}}) {
    auto b = tiny(changes);
    tfm::load_state_dict(*b, sd);
    EXPECT_FALSE(torch::allclose(b->forward(x).logits, ref)) << changes.dump();
  }
  auto same = tiny();
  tfm::load_state_dict(*same, sd);
  EXPECT_TRUE(torch::equal(same->forward(x).logits, ref));
}

TEST(SwinUNETR, BadArgumentsNameTheOptionAndValue) {
  auto model = tiny();
  auto msg = message_of<teachformer::InvalidArgument>([&] { model->forward(torch::randn({1, 1, 32, 32, 32})); });
  EXPECT_NE(msg.find("swin_unetr: input has 1 channels but option in_channels is 2"), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([&] { model->forward(torch::randn({1, 2, 32, 48, 32})); });
  EXPECT_NE(msg.find("swin_unetr: input spatial shape [32, 48, 32] must be divisible by 32 in every dim (dim 1 is 48)"),
            std::string::npos)
      << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"feature_size", 16}}); });
  EXPECT_NE(msg.find("SwinUNETR: option feature_size must be a positive multiple of 12 (as MONAI requires), got 16"),
            std::string::npos)
      << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"num_heads", Json::array({5, 6, 12, 24})}}); });
  EXPECT_NE(msg.find("stage 1 width 12 (feature_size * 2^0) must be divisible by num_heads[0] = 5"), std::string::npos)
      << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"depths", Json::array({2, 2, 2})}}); });
  EXPECT_NE(msg.find("depths and num_heads must have 4 entries"), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"downsample", "pool"}}); });
  EXPECT_NE(msg.find("downsample must be \"merging\" or \"mergingv2\", got \"pool\""), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"dropout_path_rate", -0.1}}); });
  EXPECT_NE(msg.find("dropout_path_rate must be in [0, 1], got -0.1"), std::string::npos) << msg;
}

TEST(SwinUNETR, GradientsReachEveryParameter) {
  auto model = tiny();
  model->train();
  // 64 in one dim so that the deepest map (1/32) has 2 voxels: instance norm of a single voxel is constant.
  const auto out = model->forward(torch::randn({1, 2, 64, 32, 32}));
  out.logits.square().mean().backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}
