// H-DenseFormer: reference parity (state_dict keys, outputs and intermediates of the fixture), parameter counts,
// the fast inference kernels against their torch equivalents, shapes, taps and bad-argument messages.
#include "teachformer/models/hdenseformer.hpp"

#include <gmock/gmock.h>
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

namespace teachformer::models {
namespace {

using teachformer::test::expect_close;

using ::testing::HasSubstr;

// A small configuration for shape tests: 4 filters, one DCT block of 2 dense layers.
HDenseFormerOptions tiny(int64_t in_channels, int64_t n_cls, std::vector<int64_t> size) {
  return HDenseFormerOptions(in_channels, n_cls, 4).image_size(std::move(size)).transformer_depth(4).dense_layers(2);
}

struct Fixture {
  nlohmann::json meta;
  io::SafeTensors weights;
  io::SafeTensors io;
};
const Fixture& reference() {
  static const Fixture f{read_json(test::fixture("models/hdenseformer_tiny.json")),
                         io::read_safetensors(test::fixture("models/hdenseformer_tiny.safetensors")),
                         io::read_safetensors(test::fixture("models/hdenseformer_tiny_io.safetensors"))};
  return f;
}

std::shared_ptr<HDenseFormerImpl> reference_model() {
  auto model = std::make_shared<HDenseFormerImpl>(hdenseformer_options_from_json(reference().meta.at("kwargs")));
  load_state_dict(*model, reference().weights.tensors);
  model->eval();
  return model;
}

TEST(HDenseFormer, ParameterCountsMatchTheReference) {
  // Figures measured on the reference code (shared/hdenseformer.md, table 2).
  EXPECT_EQ(count_parameters(HDenseFormerImpl(HDenseFormerOptions(2, 2, 32).transformer_depth(24))), 11561288);
  EXPECT_EQ(count_parameters(HDenseFormerImpl(HDenseFormerOptions(2, 2, 32).transformer_depth(12))), 11073992);
  EXPECT_EQ(count_parameters(HDenseFormerImpl(HDenseFormerOptions(3, 2, 32).transformer_depth(24))), 13551912);
  EXPECT_EQ(count_parameters(HDenseFormerImpl(HDenseFormerOptions(2, 2, 16).transformer_depth(24))), 3734312);
  EXPECT_EQ(count_parameters(HDenseFormerImpl(HDenseFormerOptions(2, 2, 6).image_size({48, 48, 48}).transformer_depth(8))),
            745612);
}

TEST(HDenseFormer, RegistryDefaultIsTheHecktorConfiguration) {
  const auto model = create_model("hdenseformer");
  EXPECT_EQ(count_parameters(*model), 11561288);
  EXPECT_EQ(model->spec().fixed_input_size, (std::vector<int64_t>{144, 144, 144}));
  EXPECT_EQ(model->spec().options.at("transformer_depth"), 24);
  EXPECT_EQ(model->spec().deep_supervision_outputs, 3);
}

TEST(HDenseFormer, StateDictKeysAndShapesEqualTheReference) {
  HDenseFormerImpl model(hdenseformer_options_from_json(reference().meta.at("kwargs")));
  const StateDict mine = state_dict(model);
  const auto& theirs = reference().weights.tensors;
  EXPECT_EQ(mine.size(), 294u);
  ASSERT_EQ(mine.size(), theirs.size());
  for (const auto& [name, tensor] : theirs) {
    ASSERT_TRUE(mine.count(name)) << "missing " << name;
    EXPECT_EQ(mine.at(name).sizes().vec(), tensor.sizes().vec()) << name;
  }
  EXPECT_EQ(count_parameters(model), reference().meta.at("parameters").get<int64_t>());
}

TEST(HDenseFormer, ForwardMatchesTheReferenceOutputsAndIntermediates) {
  auto model = reference_model();
  const auto& io = reference().io;
  torch::InferenceMode guard;
  TapRequest request;
  request.intermediates = true;
  const SegOutput out = model->forward(io.at("input"), request);
  const double tol = reference().meta.at("atol").get<double>();
  expect_close(out.logits, io.at("output"), "output", tol);
  ASSERT_EQ(out.deep_supervision.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const std::string name = "output_ds" + std::to_string(i + 1);
    expect_close(out.deep_supervision[i], io.at(name), name, tol);
  }
  int intermediates = 0;
  for (const auto& [name, tensor] : io.tensors) {
    if (name.rfind("intermediate.", 0) != 0) continue;
    ++intermediates;
    ASSERT_TRUE(out.taps.contains(name)) << name;
    expect_close(out.taps.at(name), tensor, name, tol);
  }
  EXPECT_EQ(intermediates, 14);
}

TEST(HDenseFormer, GradModeForwardEqualsInferenceForward) {
  // The no-grad path uses in-place kernels and the fused concatenation; training uses stock differentiable ops.
  auto model = reference_model();
  const torch::Tensor x = reference().io.at("input");
  const SegOutput with_grad = model->forward(x);
  EXPECT_TRUE(with_grad.logits.requires_grad());
  torch::NoGradGuard guard;
  const SegOutput fast = model->forward(x);
  expect_close(fast.logits, with_grad.logits.detach(), "logits", 1e-5);
  for (size_t i = 0; i < 3; ++i)
    expect_close(fast.deep_supervision[i], with_grad.deep_supervision[i].detach(), "ds", 1e-5);
  expect_close(fast.taps.at(kEncoderCoarse), with_grad.taps.at(kEncoderCoarse).detach(), "encoder_coarse", 1e-5);
  expect_close(fast.taps.at(kDecoderFine), with_grad.taps.at(kDecoderFine).detach(), "decoder_fine", 1e-4);
}

TEST(HDenseFormer, PredictionSkipsTheDeepSupervisionHeads) {
  auto model = reference_model();
  const torch::Tensor x = reference().io.at("input");
  torch::NoGradGuard guard;
  const SegOutput full = model->forward(x);
  const SegOutput lean = model->forward(x, TapRequest{false, false, false, false});
  EXPECT_EQ(full.deep_supervision.size(), 3u);
  EXPECT_TRUE(lean.deep_supervision.empty());
  expect_close(lean.logits, full.logits, "logits", 1e-6);
}

TEST(HDenseFormer, BackwardReachesEveryParameter) {
  torch::manual_seed(1);
  HDenseFormerImpl model(tiny(2, 2, {16, 16, 32}));
  model.train();
  const SegOutput out = model.forward(torch::randn({1, 2, 16, 16, 32}));
  torch::Tensor loss = out.logits.square().mean();
  for (const auto& ds : out.deep_supervision) loss = loss + ds.square().mean();
  loss.backward();
  for (const auto& p : model.named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(HDenseFormer, FeatureTapsAreTheDocumentedTensors) {
  auto model = reference_model();
  torch::InferenceMode guard;
  const SegOutput out = model->forward(reference().io.at("input"));
  const auto& coarse = out.taps.at(kEncoderCoarse);
  const auto& fine = out.taps.at(kDecoderFine);
  const auto& last = out.taps.at(kDecoderLast);
  EXPECT_EQ(coarse.sizes().vec(), (std::vector<int64_t>{1, 48, 6, 6, 6}));  // 8 nf @ 1/8
  EXPECT_EQ(fine.sizes().vec(), (std::vector<int64_t>{1, 12, 24, 24, 24}));  // D_{n-1}: 2 nf @ 1/2
  EXPECT_EQ(last.sizes().vec(), (std::vector<int64_t>{1, 6, 48, 48, 48}));  // D_n: nf @ 1/1
  // encoder_coarse feeds the 1/8 head, decoder_fine the 1/2 head and decoder_last the output conv.
  expect_close(nn::conv(*model->conv1x1_d3, coarse), out.deep_supervision[2], "head(encoder_coarse)", 1e-6);
  expect_close(nn::conv(*model->conv1x1_d1, fine), out.deep_supervision[0], "head(decoder_fine)", 1e-6);
  expect_close(nn::conv(*model->conv1x1, last), out.logits, "head(decoder_last)", 1e-6);
  // and the bottleneck tap is the sum the reference computes.
  TapRequest all;
  all.intermediates = true;
  const SegOutput full = model->forward(reference().io.at("input"), all);
  expect_close(coarse, full.taps.at("intermediate.block_4_2_left") + full.taps.at("intermediate.deep_conv"),
               "block_4_2_left + deep_conv", 1e-6);
  TapRequest none;
  none.features = false;
  EXPECT_TRUE(model->forward(reference().io.at("input"), none).taps.empty());
}

TEST(HDenseFormer, AttentionTapsAreProbabilitiesPerModalityBlockAndLayer) {
  auto model = reference_model();
  torch::InferenceMode guard;
  TapRequest request;
  request.attention = true;
  const SegOutput out = model->forward(reference().io.at("input"), request);
  // 2 modalities x 2 DCT blocks x 4 dense layers.
  int count = 0;
  for (const auto& name : out.taps.names())
    if (name.rfind(kAttentionPrefix, 0) == 0) ++count;
  EXPECT_EQ(count, 16);
  const auto& a = out.taps.at("attention.mpe1.dct1.layer3");
  EXPECT_EQ(a.sizes().vec(), (std::vector<int64_t>{1, 8, 27, 27}));
  expect_close(a.sum(-1), torch::ones({1, 8, 27}), "row sums", 1e-5);
}

struct ShapeCase {
  int64_t in_channels, n_cls, batch;
  std::vector<int64_t> size;
};
class HDenseFormerShapes : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(HDenseFormerShapes, OutputsAndTapsHaveTheDocumentedShapes) {
  const ShapeCase c = GetParam();
  torch::manual_seed(2);
  HDenseFormerImpl model(tiny(c.in_channels, c.n_cls, c.size));
  model.eval();
  torch::InferenceMode guard;
  const auto [d, h, w] = std::tuple{c.size[0], c.size[1], c.size[2]};
  TapRequest request;
  request.intermediates = true;
  const SegOutput out = model.forward(torch::randn({c.batch, c.in_channels, d, h, w}), request);
  EXPECT_EQ(out.logits.sizes().vec(), (std::vector<int64_t>{c.batch, c.n_cls, d, h, w}));
  ASSERT_EQ(out.deep_supervision.size(), 3u);
  for (int64_t i = 0; i < 3; ++i) {
    const int64_t f = int64_t(2) << i;
    EXPECT_EQ(out.deep_supervision[i].sizes().vec(), (std::vector<int64_t>{c.batch, c.n_cls, d / f, h / f, w / f}));
  }
  EXPECT_EQ(out.taps.at(kEncoderCoarse).sizes().vec(), (std::vector<int64_t>{c.batch, 32, d / 8, h / 8, w / 8}));
  EXPECT_EQ(out.taps.at(kDecoderFine).sizes().vec(), (std::vector<int64_t>{c.batch, 8, d / 2, h / 2, w / 2}));
  EXPECT_EQ(out.taps.at(kDecoderLast).sizes().vec(), (std::vector<int64_t>{c.batch, 4, d, h, w}));
  EXPECT_EQ(out.taps.at("intermediate.mpe" + std::to_string(c.in_channels - 1) + "_dct0_tokens").sizes().vec(),
            (std::vector<int64_t>{c.batch, d * h * w / 4096, 16}));
  EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>());
}

INSTANTIATE_TEST_SUITE_P(Configurations, HDenseFormerShapes,
                         ::testing::Values(ShapeCase{1, 2, 1, {16, 16, 16}}, ShapeCase{2, 3, 2, {16, 32, 48}},
                                           ShapeCase{3, 2, 1, {32, 16, 16}}, ShapeCase{4, 5, 1, {16, 48, 32}}));

TEST(HDenseFormer, RejectsInputsThatDoNotMatchImageSize) {
  HDenseFormerImpl model(tiny(2, 2, {16, 16, 32}));
  torch::NoGradGuard guard;
  try {
    model.forward(torch::zeros({1, 2, 16, 16, 16}));
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("input spatial shape [16, 16, 16] must equal option image_size [16, 16, 32]"));
  }
  try {
    model.forward(torch::zeros({1, 3, 16, 16, 32}));
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_THAT(e.what(), HasSubstr("input has 3 channels but option in_channels is 2"));
  }
  EXPECT_THROW(model.forward(torch::zeros({2, 16, 16, 32})), InvalidArgument);
}

TEST(HDenseFormer, RejectsInvalidOptionsNamingTheOption) {
  auto message = [](const nlohmann::json& j) -> std::string {
    try {
      hdenseformer_options_from_json(j);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_THAT(message({{"image_size", 40}}), HasSubstr("image_size [40, 40, 40] must be positive and divisible by "
                                                        "patch_size 16 in every dim (dim 0 is 40)"));
  EXPECT_THAT(message({{"image_size", {16, 32}}}), HasSubstr("'image_size' must be an integer or a list of 3"));
  EXPECT_THAT(message({{"patch_size", 8}}), HasSubstr("option patch_size must be 16"));
  EXPECT_THAT(message({{"transformer_depth", 2}}), HasSubstr("option transformer_depth must be >= 4"));
  EXPECT_THAT(message({{"n_filters", 0}}), HasSubstr("option n_filters must be >= 1, got 0"));
  EXPECT_THAT(message({{"dropout", 1.0}}), HasSubstr("option dropout must be in [0, 1)"));
  EXPECT_THAT(message({{"n_filter", 8}}), HasSubstr("unknown key(s) [n_filter]"));
  EXPECT_THAT(message({{"n_cls", "two"}}), HasSubstr("key 'n_cls' has the wrong type"));
}

TEST(HDenseFormer, OptionsRoundTripThroughJson) {
  const HDenseFormerOptions o = HDenseFormerOptions(3, 4, 8).image_size({16, 32, 48}).transformer_depth(8).heads(4);
  const HDenseFormerOptions back = hdenseformer_options_from_json(to_json(o));
  EXPECT_EQ(to_json(back), to_json(o));
  EXPECT_EQ(hdenseformer_options_from_json({{"image_size", 32}}).image_size(), (std::vector<int64_t>{32, 32, 32}));
}

TEST(HDenseFormer, InferenceKernelsMatchTorchOnNonCubicInputs) {
  // Grid sizes 1, 2 and 3 tokens per dim exercise the clamped borders of the x2 trilinear upsampling.
  torch::manual_seed(6);
  HDenseFormerImpl model(tiny(2, 3, {16, 32, 48}));
  model.eval();
  const torch::Tensor x = torch::randn({2, 2, 16, 32, 48});
  const SegOutput with_grad = model.forward(x);
  torch::NoGradGuard guard;
  const SegOutput fast = model.forward(x);
  expect_close(fast.logits, with_grad.logits.detach(), "logits", 1e-5);
  for (size_t i = 0; i < 3; ++i)
    expect_close(fast.deep_supervision[i], with_grad.deep_supervision[i].detach(), "ds", 1e-5);
}

// ---------------------------------------------------------------------------------------------------------------
// The inference kernels against torch.

TEST(HDenseFormerKernels, PhaseConvTransposeEqualsTorchConvTranspose3d) {
  torch::manual_seed(3);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{1, 5, 3, 4, 6}, {2, 8, 5, 5, 5}, {1, 3, 1, 2, 7}}) {
    const torch::Tensor x = torch::randn(shape);
    const torch::Tensor w = torch::randn({shape[1], 6, 3, 3, 3});
    const torch::Tensor b = torch::randn({6});
    const torch::Tensor expected = torch::conv_transpose3d(x, w, b, 2, 1, 1);
    expect_close(conv_transpose3d_k3s2(x, w, b), expected, "with bias", 1e-5);
    expect_close(conv_transpose3d_k3s2(x, w, {}), torch::conv_transpose3d(x, w, {}, 2, 1, 1), "no bias", 1e-5);
  }
}

TEST(HDenseFormerKernels, PhaseConvTransposeGradientsEqualTorch) {
  torch::manual_seed(4);
  const torch::Tensor x0 = torch::randn({1, 4, 3, 4, 5});
  const torch::Tensor w0 = torch::randn({4, 3, 3, 3, 3});
  const torch::Tensor b0 = torch::randn({3});
  const torch::Tensor g = torch::randn({1, 3, 6, 8, 10});
  auto grads = [&](bool phases) {
    auto x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
    const auto y = phases ? conv_transpose3d_k3s2(x, w, b) : torch::conv_transpose3d(x, w, b, 2, 1, 1);
    (y * g).sum().backward();
    return std::vector<torch::Tensor>{x.grad(), w.grad(), b.grad()};
  };
  const auto mine = grads(true), stock = grads(false);
  for (int i = 0; i < 3; ++i) expect_close(mine[i], stock[i], "grad " + std::to_string(i), 1e-4);
}

TEST(HDenseFormerKernels, PhaseConvTransposeCountsExactlyTheTransposedConvMacs) {
  const torch::Tensor x = torch::randn({1, 4, 3, 3, 3});
  const torch::Tensor w = torch::randn({4, 2, 3, 3, 3});
  nn::FlopCounter counter;
  conv_transpose3d_k3s2(x, w, {});
  EXPECT_EQ(counter.macs(), 27 * 4 * 2 * 27);
  EXPECT_EQ(counter.by_kind().at("conv_transpose"), counter.macs());
}

TEST(HDenseFormerKernels, InPlaceInstanceNormReluEqualsTorch) {
  torch::manual_seed(5);
  const torch::Tensor x = torch::randn({2, 3, 5, 6, 7}) * 3 + 2;
  const torch::Tensor w = torch::randn({3}), b = torch::randn({3});
  const torch::Tensor expected = torch::relu(torch::instance_norm(x, w, b, {}, {}, true, 0.0, 1e-5, false));
  const torch::Tensor expected_plain = torch::relu(torch::instance_norm(x, {}, {}, {}, {}, true, 0.0, 1e-5, false));
  torch::NoGradGuard guard;
  torch::Tensor y = x.clone();
  const torch::Tensor r = instance_norm_relu(y, w, b, 1e-5);
  EXPECT_EQ(r.data_ptr(), y.data_ptr()) << "expected the no-grad path to work in place";
  expect_close(r, expected, "affine", 1e-5);
  expect_close(instance_norm_relu(x.clone(), {}, {}, 1e-5), expected_plain, "no affine", 1e-5);
}

}  // namespace
}  // namespace teachformer::models
