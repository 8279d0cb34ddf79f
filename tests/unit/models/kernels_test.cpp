#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/models/registry.hpp"
#include "teachformer/models/seg_model.hpp"
#include "teachformer/nn/kernels.hpp"

namespace teachformer::models {
namespace {

using nn::fast_kernels_enabled;
using nn::set_fast_kernels;

// Restores the switch whatever the test does.
struct KernelsOff {
  KernelsOff() { set_fast_kernels(false); }
  ~KernelsOff() { set_fast_kernels(true); }
};

void expect_same_without_fast_kernels(const std::string& key, const nlohmann::json& options, std::vector<int64_t> shape) {
  torch::manual_seed(1);
  auto model = create_model(key, options);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn(shape);
  ASSERT_TRUE(fast_kernels_enabled());
  const auto fast = model->forward(x, {true, false, false, true});
  SegOutput slow;
  {
    KernelsOff off;
    EXPECT_FALSE(fast_kernels_enabled());
    slow = model->forward(x, {true, false, false, true});
  }
  EXPECT_TRUE(fast_kernels_enabled());
  EXPECT_TRUE(torch::allclose(fast.logits, slow.logits, 1e-4, 1e-5))
      << key << ": max |diff| " << (fast.logits - slow.logits).abs().max().item<double>();
  ASSERT_EQ(fast.deep_supervision.size(), slow.deep_supervision.size());
  for (size_t i = 0; i < fast.deep_supervision.size(); ++i)
    EXPECT_TRUE(torch::allclose(fast.deep_supervision[i], slow.deep_supervision[i], 1e-4, 1e-5)) << key << " ds " << i;
  for (const char* tap : {kEncoderCoarse, kDecoderFine})
    EXPECT_TRUE(torch::allclose(fast.taps.at(tap), slow.taps.at(tap), 1e-4, 1e-5)) << key << " " << tap;
}

// The LibTorch fallback (what CUDA tensors and autocast dtypes take) computes what the CPU kernels compute.
TEST(Kernels, StudentFallbackEqualsTheFusedCpuKernels) {
  expect_same_without_fast_kernels("teachformer_s", {{"preset", "small"}, {"in_channels", 2}, {"out_channels", 2}},
                                   {2, 2, 32, 32, 32});
  // Unequal sides: the sub-voxel interleaving and gathering index every axis separately.
  expect_same_without_fast_kernels("teachformer_s", {{"preset", "small"}, {"in_channels", 3}, {"out_channels", 3}},
                                   {1, 3, 16, 32, 48});
}

TEST(Kernels, HDenseFormerFallbackEqualsTheCpuKernels) {
  expect_same_without_fast_kernels("hdenseformer",
                                   {{"in_channels", 2}, {"n_cls", 2}, {"n_filters", 4}, {"image_size", {32, 32, 32}},
                                    {"transformer_depth", 4}, {"dense_layers", 2}},
                                   {1, 2, 32, 32, 32});
}

// The teachers' convolution blocks (MONAI's UnetResBlock, UnetrUpBlock, ...) with instance norms and leaky ReLUs.
TEST(Kernels, UnetrFallbackEqualsTheCpuKernels) {
  expect_same_without_fast_kernels("unetr",
                                   {{"in_channels", 2}, {"out_channels", 3}, {"img_size", 32}, {"feature_size", 4},
                                    {"hidden_size", 24}, {"mlp_dim", 32}, {"num_heads", 4}},
                                   {2, 2, 32, 32, 32});
}

TEST(Kernels, SwinUnetrFallbackEqualsTheCpuKernels) {
  expect_same_without_fast_kernels("swin_unetr", {{"in_channels", 2}, {"out_channels", 2}, {"feature_size", 12},
                                                  {"num_heads", {1, 2, 2, 4}}},
                                   {1, 2, 32, 32, 32});
}

// A tensor the kernels cannot read (bfloat16 here, as under autocast; CUDA tensors alike) takes the fallback.
TEST(Kernels, OtherDtypesTakeTheFallback) {
  torch::manual_seed(2);
  auto model = create_model("teachformer_s", {{"preset", "tiny"}, {"in_channels", 2}, {"out_channels", 2}});
  model->eval();
  model->to(torch::kBFloat16);
  torch::NoGradGuard no_grad;
  const auto out = model->forward(torch::randn({1, 2, 32, 32, 32}).to(torch::kBFloat16), {true, false, false, false});
  EXPECT_EQ(out.logits.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::isfinite(out.logits.to(torch::kFloat)).all().item<bool>());
}

}  // namespace
}  // namespace teachformer::models
