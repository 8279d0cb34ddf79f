#include "teachformer/models/unetr.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/core/error.hpp"
#include "teachformer/core/json.hpp"
#include "teachformer/io/safetensors.hpp"
#include "teachformer/models/registry.hpp"
#include "teachformer/models/state_dict.hpp"
#include "teachformer/nn/flops.hpp"
#include "test_checks.hpp"
#include "test_support.hpp"

namespace tfm = teachformer::models;
using teachformer::Json;

namespace {

using teachformer::test::message_of;
using teachformer::test::expect_close;

// A small but complete configuration: 4 heads of 6, 12 blocks, 32^3 input.
Json tiny_options() {
  return Json{{"in_channels", 2}, {"out_channels", 3}, {"img_size", 32}, {"feature_size", 4},
              {"hidden_size", 24}, {"mlp_dim", 32},    {"num_heads", 4}};
}

tfm::SegmentationModel tiny(Json changes = Json::object()) {
  Json o = tiny_options();
  for (auto it = changes.begin(); it != changes.end(); ++it) o[it.key()] = it.value();
  auto model = tfm::create_model("unetr", o);
  model->eval();
  return model;
}

}  // namespace

TEST(UNETR, MatchesMonaiFixtureOutputAndEveryViTHiddenState) {
  const Json meta = teachformer::read_json(teachformer::test::fixture("models/unetr_tiny.json"));
  const auto weights = teachformer::io::read_safetensors(teachformer::test::fixture("models/unetr_tiny.safetensors"));
  const auto io = teachformer::io::read_safetensors(teachformer::test::fixture("models/unetr_tiny_io.safetensors"));
  auto model = tfm::create_model("unetr", meta.at("kwargs"));
  EXPECT_EQ(tfm::count_parameters(*model), meta.at("parameters_used_in_forward").get<int64_t>());
  const auto report = tfm::load_state_dict(*model, weights.tensors, tfm::kMonaiIgnorablePatterns);
  EXPECT_EQ(int64_t(report.loaded.size() + report.ignored.size()), meta.at("state_dict_keys").get<int64_t>());
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

TEST(UNETR, ReportsTheIgnoredMonaiCrossAttentionKeys) {
  const auto weights = teachformer::io::read_safetensors(teachformer::test::fixture("models/unetr_tiny.safetensors"));
  const Json meta = teachformer::read_json(teachformer::test::fixture("models/unetr_tiny.json"));
  auto model = tfm::create_model("unetr", meta.at("kwargs"));
  const auto report = tfm::load_state_dict(*model, weights.tensors, tfm::kMonaiIgnorablePatterns);
  ASSERT_EQ(report.ignored.size(), 12u * 7u);  // per block: norm_cross_attn.{weight,bias}, 5 cross_attn tensors
  for (const auto& key : report.ignored) EXPECT_NE(key.find("cross_attn."), std::string::npos) << key;
  EXPECT_TRUE(report.kept.empty());
}

TEST(UNETR, MonaiWeightsWithoutIgnorePatternsAreRejectedNamingTheKeys) {
  const auto weights = teachformer::io::read_safetensors(teachformer::test::fixture("models/unetr_tiny.safetensors"));
  const Json meta = teachformer::read_json(teachformer::test::fixture("models/unetr_tiny.json"));
  auto model = tfm::create_model("unetr", meta.at("kwargs"));
  const auto msg = message_of<teachformer::InvalidArgument>([&] { tfm::load_state_dict(*model, weights.tensors); });
  EXPECT_NE(msg.find("unexpected 84 key(s): vit.blocks.0.cross_attn.out_proj.bias"), std::string::npos) << msg;
}

TEST(UNETR, MissingOrRenamedKeyIsAnErrorListingIt) {
  const auto weights = teachformer::io::read_safetensors(teachformer::test::fixture("models/unetr_tiny.safetensors"));
  const Json meta = teachformer::read_json(teachformer::test::fixture("models/unetr_tiny.json"));
  auto model = tfm::create_model("unetr", meta.at("kwargs"));
  auto tensors = weights.tensors;
  auto node = tensors.extract("decoder3.conv_block.conv2.conv.weight");
  node.key() = "decoder3.conv_block.conv2.weight";
  tensors.insert(std::move(node));
  const auto msg = message_of<teachformer::InvalidArgument>(
      [&] { tfm::load_state_dict(*model, tensors, tfm::kMonaiIgnorablePatterns); });
  EXPECT_NE(msg.find("missing 1 key(s): decoder3.conv_block.conv2.conv.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected 1 key(s): decoder3.conv_block.conv2.weight"), std::string::npos) << msg;
}

TEST(UNETR, DefaultParameterCountEqualsMonai) {
  auto model = tfm::create_model("unetr", Json{{"in_channels", 2}, {"out_channels", 2}, {"img_size", 96}});
  EXPECT_EQ(tfm::count_parameters(*model), 95930018);
}

TEST(UNETR, AcceptsFixtureKwargsAndRoundTripsOptions) {
  const Json meta = teachformer::read_json(teachformer::test::fixture("models/unetr_tiny.json"));
  const auto o = tfm::unetr_options_from_json(meta.at("kwargs"));
  EXPECT_EQ(o.feature_size(), 8);
  EXPECT_EQ(o.hidden_size(), 96);
  EXPECT_EQ(std::vector<int64_t>(o.img_size()->begin(), o.img_size()->end()), (std::vector<int64_t>{32, 32, 32}));
  const Json j = tfm::to_json(o);
  EXPECT_EQ(tfm::to_json(tfm::unetr_options_from_json(j)), j);
  EXPECT_EQ(j.at("norm_name"), "instance");
  const auto group = tfm::unetr_options_from_json(Json{{"norm_name", Json::array({"group", {{"num_groups", 2}}})}});
  EXPECT_EQ(tfm::to_json(group).at("norm_name"), Json::array({"group", {{"num_groups", 2}}}));
  EXPECT_EQ(tfm::default_model_options("unetr").at("feature_size"), 16);
  EXPECT_EQ(tfm::default_model_options("unetr").at("patch_size"), Json::array({16, 16, 16}));
}

TEST(UNETR, UnknownOrMistypedJsonKeysAreConfigErrors) {
  auto msg = message_of<teachformer::ConfigError>([] { tfm::create_model("unetr", Json{{"feature_sise", 8}}); });
  EXPECT_NE(msg.find("feature_sise"), std::string::npos) << msg;
  msg = message_of<teachformer::ConfigError>([] { tfm::create_model("unetr", Json{{"img_size", Json::array({32, 32})}}); });
  EXPECT_NE(msg.find("'img_size' must be an integer or a list of 3 integers"), std::string::npos) << msg;
  msg = message_of<teachformer::ConfigError>([] { tfm::create_model("unetr", Json{{"spatial_dims", 2}}); });
  EXPECT_NE(msg.find("only spatial_dims 3"), std::string::npos) << msg;
  msg = message_of<teachformer::ConfigError>([] { tfm::create_model("unetr", Json{{"res_block", "yes"}}); });
  EXPECT_NE(msg.find("'res_block' has the wrong type"), std::string::npos) << msg;
}

TEST(UNETR, SpecDescribesSizeRules) {
  auto model = tiny(Json{{"img_size", Json::array({32, 16, 48})}});
  const auto& spec = model->spec();
  EXPECT_EQ(spec.key, "unetr");
  EXPECT_EQ(spec.in_channels, 2);
  EXPECT_EQ(spec.out_channels, 3);
  EXPECT_EQ(spec.size_divisor, (std::vector<int64_t>{16, 16, 16}));
  EXPECT_EQ(spec.fixed_input_size, (std::vector<int64_t>{32, 16, 48}));
  EXPECT_EQ(spec.deep_supervision_outputs, 0);
  EXPECT_EQ(spec.options.at("img_size"), Json::array({32, 16, 48}));
}

TEST(UNETR, TapsHaveTheDocumentedShapesAndAttentionRowsSumToOne) {
  auto model = tiny(Json{{"img_size", Json::array({32, 16, 48})}});
  torch::NoGradGuard no_grad;
  tfm::TapRequest request;
  request.attention = true;
  request.intermediates = true;
  const auto out = model->forward(torch::randn({2, 2, 32, 16, 48}), request);
  EXPECT_EQ(out.logits.sizes(), torch::IntArrayRef({2, 3, 32, 16, 48}));
  EXPECT_TRUE(out.deep_supervision.empty());
  EXPECT_EQ(out.taps.at(tfm::kEncoderCoarse).sizes(), torch::IntArrayRef({2, 24, 2, 1, 3}));
  // D_{n-1}: decoder3's output at 1/2 (2 feature_size channels); the last stage, decoder2, at full resolution.
  EXPECT_EQ(out.taps.at(tfm::kDecoderFine).sizes(), torch::IntArrayRef({2, 8, 16, 8, 24}));
  EXPECT_EQ(out.taps.at(tfm::kDecoderLast).sizes(), torch::IntArrayRef({2, 4, 32, 16, 48}));
  for (int i = 0; i < 12; ++i) {
    const auto& att = out.taps.at("attention." + std::to_string(i));
    EXPECT_EQ(att.sizes(), torch::IntArrayRef({2, 4, 6, 6}));
    EXPECT_TRUE(torch::allclose(att.sum(-1), torch::ones({2, 4, 6}), 1e-5, 1e-5));
    EXPECT_EQ(out.taps.at("vit_hidden_" + std::to_string(i)).sizes(), torch::IntArrayRef({2, 6, 24}));
  }
  // Only the features by default.
  const auto plain = model->forward(torch::randn({1, 2, 32, 16, 48}));
  EXPECT_EQ(plain.taps.names(),
            (std::vector<std::string>{tfm::kEncoderCoarse, tfm::kDecoderFine, tfm::kDecoderLast}));
}

TEST(UNETR, SaveAttnRecordsAttentionWithoutARequest) {
  auto model = tiny(Json{{"save_attn", true}});
  torch::NoGradGuard no_grad;
  const auto out = model->forward(torch::randn({1, 2, 32, 32, 32}));
  EXPECT_TRUE(out.taps.contains("attention.11"));
}

TEST(UNETR, ShapeMatrixOverChannelsSizesAndOptions) {
  struct Case {
    Json changes;
    std::vector<int64_t> input;
  };
  const std::vector<Case> cases{
      {Json{{"in_channels", 1}, {"out_channels", 2}}, {1, 1, 32, 32, 32}},
      {Json{{"in_channels", 4}, {"out_channels", 5}, {"img_size", Json::array({16, 48, 32})}}, {2, 4, 16, 48, 32}},
      {Json{{"proj_type", "perceptron"}}, {1, 2, 32, 32, 32}},
      {Json{{"res_block", false}}, {1, 2, 32, 32, 32}},
      {Json{{"conv_block", false}}, {1, 2, 32, 32, 32}},
      {Json{{"conv_block", false}, {"res_block", false}}, {1, 2, 32, 32, 32}},
      {Json{{"norm_name", "batch"}}, {2, 2, 32, 32, 32}},
      {Json{{"norm_name", Json::array({"group", {{"num_groups", 2}}})}}, {1, 2, 32, 32, 32}},
      {Json{{"norm_name", "layer"}}, {1, 2, 32, 32, 32}},
      {Json{{"qkv_bias", true}, {"dropout_rate", 0.1}}, {1, 2, 32, 32, 32}},
      {Json{{"num_layers", 8}}, {1, 2, 32, 32, 32}},
      {Json{{"patch_size", 8}, {"img_size", 16}}, {1, 2, 16, 16, 16}},
      {Json{{"patch_size", Json::array({4, 16, 16})}, {"img_size", Json::array({8, 32, 16})}}, {1, 2, 8, 32, 16}},
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

TEST(UNETR, OptionsChangeTheModulesAndParameters) {
  // res_block false drops the residual projections; qkv_bias adds 12 biases of 3 * hidden; perceptron keeps the
  // same number of projection weights as the conv.
  const int64_t base = tfm::count_parameters(*tiny());
  EXPECT_LT(tfm::count_parameters(*tiny(Json{{"res_block", false}})), base);
  EXPECT_EQ(tfm::count_parameters(*tiny(Json{{"qkv_bias", true}})), base + 12 * 3 * 24);
  EXPECT_EQ(tfm::count_parameters(*tiny(Json{{"proj_type", "perceptron"}})), base);
  const auto keys = tfm::state_dict(*tiny(Json{{"proj_type", "perceptron"}}));
  EXPECT_TRUE(keys.count("vit.patch_embedding.patch_embeddings.1.weight"));
  EXPECT_TRUE(tfm::state_dict(*tiny(Json{{"norm_name", "batch"}})).count("encoder1.layer.norm1.running_mean"));
}

TEST(UNETR, BadArgumentsNameTheOptionAndValue) {
  auto model = tiny();
  auto msg = message_of<teachformer::InvalidArgument>([&] { model->forward(torch::randn({1, 3, 32, 32, 32})); });
  EXPECT_NE(msg.find("unetr: input has 3 channels but option in_channels is 2"), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([&] { model->forward(torch::randn({1, 2, 32, 32, 24})); });
  EXPECT_NE(msg.find("must be divisible by 16 in every dim (dim 2 is 24)"), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([&] { model->forward(torch::randn({1, 2, 32, 32, 48})); });
  EXPECT_NE(msg.find("input spatial shape [32, 32, 48] must equal option img_size [32, 32, 32]"), std::string::npos)
      << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"hidden_size", 30}}); });
  EXPECT_NE(msg.find("UNETR: option hidden_size 30 must be divisible by num_heads 4"), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"img_size", Json::array({32, 40, 32})}}); });
  EXPECT_NE(msg.find("option img_size [32, 40, 32] must be divisible by patch_size [16, 16, 16]"), std::string::npos)
      << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"patch_size", 12}}); });
  EXPECT_NE(msg.find("patch_size [12, 12, 12] must be a power of two up to 16"), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"dropout_rate", 1.5}}); });
  EXPECT_NE(msg.find("dropout_rate must be in [0, 1], got 1.5"), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"proj_type", "linear"}}); });
  EXPECT_NE(msg.find("proj_type must be \"conv\" or \"perceptron\", got \"linear\""), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"norm_name", "weird"}}); });
  EXPECT_NE(msg.find("norm_name 'weird': unknown normalisation"), std::string::npos) << msg;
  msg = message_of<teachformer::InvalidArgument>([] { tiny(Json{{"norm_name", Json::array({"group", {{"num_groups", 3}}})}}); });
  EXPECT_NE(msg.find("num_groups must divide the 4 channels"), std::string::npos) << msg;
}

TEST(UNETR, GradientsReachEveryParameter) {
  auto model = tiny(Json{{"img_size", 16}, {"patch_size", 8}});
  model->train();
  const auto out = model->forward(torch::randn({1, 2, 16, 16, 16}));
  out.logits.square().mean().backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(UNETR, CountsFlopsOfEveryOpKind) {
  auto model = tiny();
  torch::NoGradGuard no_grad;
  teachformer::nn::FlopCounter counter;
  model->forward(torch::randn({1, 2, 32, 32, 32}));
  const auto& kinds = counter.by_kind();
  for (const char* kind : {"conv", "conv_transpose", "linear", "matmul"}) {
    ASSERT_TRUE(kinds.count(kind)) << kind;
    EXPECT_GT(kinds.at(kind), 0) << kind;
  }
  // Attention: 12 blocks x 2 matmuls x heads x N x N x head_dim with N = 8 tokens.
  EXPECT_EQ(kinds.at("matmul"), 12 * 2 * 4 * 8 * 8 * 6);
}
