// The hand-written CPU kernels of the blocks: each against the LibTorch operators it replaces (with and without grad
// mode), and the convolution blocks of the UNETR family without grad mode against the same blocks with the kernels
// switched off (what CUDA tensors, other dtypes and training use).
#include "teachformer/nn/kernels.hpp"

#include <set>
#include <vector>

#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "teachformer/nn/flops.hpp"
#include "teachformer/nn/unet_blocks.hpp"
#include "test_checks.hpp"

namespace teachformer::nn {
namespace {

using teachformer::test::expect_close;

// Restores the switch whatever the test does.
struct KernelsOff {
  KernelsOff() { set_fast_kernels(false); }
  ~KernelsOff() { set_fast_kernels(true); }
};

// Non-trivial norm affines and biases, so that a kernel that drops one of them fails.
void randomize(torch::nn::Module& m, int seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : m.parameters())
    if (p.dim() == 1) p.copy_(torch::randn_like(p) * 0.3 + 0.5);
}

// forward(x) without grad mode, with the kernels on and off, and with grad mode (LibTorch's operators).
template <typename Block, typename... Inputs>
void expect_kernels_match(Block& block, const std::string& what, const Inputs&... inputs) {
  ASSERT_TRUE(fast_kernels_enabled());
  torch::Tensor fast, slow;
  {
    torch::NoGradGuard no_grad;
    fast = block->forward(inputs...);
    KernelsOff off;
    slow = block->forward(inputs...);
  }
  const torch::Tensor graded = block->forward(inputs...).detach();
  expect_close(fast, slow, what + ": kernels on vs off", 1e-4);
  expect_close(fast, graded, what + ": kernels vs grad mode", 1e-4);
}

// The kernels' own loops (instance norm, sub-voxel scatter and gather, the fused output block, the argmax) run
// through at::parallel_for, an inline OpenMP loop: compiled without OpenMP it runs on the calling thread alone.
TEST(Kernels, ParallelForRunsOnEveryIntraOpThread) {
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  std::vector<int> thread_of(64, -1);
  at::parallel_for(0, 64, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) thread_of[size_t(i)] = at::get_thread_num();
  });
  at::set_num_threads(before);
  const std::set<int> threads(thread_of.begin(), thread_of.end());
  EXPECT_EQ(threads, (std::set<int>{0, 1})) << "at::parallel_for ran its 64 items on " << threads.size()
                                            << " thread(s) of 2 (is the project compiled with OpenMP?)";
}

TEST(Kernels, ConvTransposeK2S2EqualsTorch) {
  torch::manual_seed(5);
  for (int64_t batch : {1, 3}) {
    const torch::Tensor x0 = torch::randn({batch, 5, 3, 2, 4});
    const torch::Tensor w0 = torch::randn({5, 6, 2, 2, 2}), b0 = torch::randn({6});
    expect_close(conv_transpose3d_k2s2(x0, w0, b0), torch::conv_transpose3d(x0, w0, b0, 2), "with bias", 1e-5);
    expect_close(conv_transpose3d_k2s2(x0, w0, {}), torch::conv_transpose3d(x0, w0, {}, 2), "no bias", 1e-5);
    auto grads = [&](bool mine) {
      auto x = x0.clone().requires_grad_(), w = w0.clone().requires_grad_(), b = b0.clone().requires_grad_();
      const auto y = mine ? conv_transpose3d_k2s2(x, w, b) : torch::conv_transpose3d(x, w, b, 2);
      (y * torch::arange(y.numel()).reshape(y.sizes()).to(torch::kFloat32).cos()).sum().backward();
      return std::vector<torch::Tensor>{x.grad(), w.grad(), b.grad()};
    };
    const auto a = grads(true), e = grads(false);
    for (int i = 0; i < 3; ++i) expect_close(a[i], e[i], "grad", 1e-4);
  }
  // Without grad mode (the fused CPU kernel), with and without a tensor to add the result into.
  {
    torch::NoGradGuard no_grad;
    for (int64_t batch : {1, 2}) {
      const torch::Tensor x = torch::randn({batch, 5, 3, 2, 4}), w = torch::randn({5, 6, 2, 2, 2});
      const torch::Tensor b = torch::randn({6}), onto = torch::randn({batch, 6, 6, 4, 8});
      const torch::Tensor expected = torch::conv_transpose3d(x, w, b, 2);
      expect_close(conv_transpose3d_k2s2(x, w, b), expected, "fused", 1e-5);
      expect_close(conv_transpose3d_k2s2(x, w, {}), torch::conv_transpose3d(x, w, {}, 2), "fused, no bias", 1e-5);
      torch::Tensor sum = onto.clone();
      const torch::Tensor r = conv_transpose3d_k2s2(x, w, b, sum);
      expect_close(r, expected + onto, "fused into add_to", 1e-5);
      EXPECT_EQ(r.data_ptr(), sum.data_ptr());  // written into add_to's buffer
      // A strided add_to is not written: the sum is a new tensor.
      const torch::Tensor strided = torch::randn({batch, 6, 6, 8, 4}).transpose(3, 4);
      ASSERT_FALSE(strided.is_contiguous());
      const torch::Tensor strided_before = strided.clone();
      expect_close(conv_transpose3d_k2s2(x, w, b, strided), expected + strided_before, "strided add_to", 1e-5);
      expect_close(strided, strided_before, "strided add_to unchanged", 0.0);
    }
    // A single voxel (the deepest stage of a small input): GEMM results with one column may carry any stride there.
    for (int64_t batch : {1, 2}) {
      const torch::Tensor x = torch::randn({batch, 5, 1, 1, 1}), w = torch::randn({5, 96, 2, 2, 2});
      const torch::Tensor b = torch::randn({96});
      expect_close(conv_transpose3d_k2s2(x, w, b), torch::conv_transpose3d(x, w, b, 2), "one voxel", 1e-5);
    }
  }
  FlopCounter counter;
  conv_transpose3d_k2s2(torch::randn({1, 5, 3, 2, 4}), torch::randn({5, 6, 2, 2, 2}), {});
  EXPECT_EQ(counter.by_kind().at("conv_transpose"), 24 * 6 * 8 * 5);
}


TEST(Kernels, UnetBlocksWithoutGradEqualTheLibTorchOperators) {
  const LayerSpec affine("instance", {{"affine", true}});
  const LayerSpec tracked("instance", {{"affine", true}, {"track_running_stats", true}});
  struct Case {
    std::string what;
    UnetBlockOptions options;
  };
  const std::vector<Case> cases = {
      {"res block, identity residual", UnetBlockOptions(3, 3)},
      {"res block, projected residual", UnetBlockOptions(2, 4)},
      {"res block, stride 2", UnetBlockOptions(2, 4).stride(2)},
      {"res block, affine norm", UnetBlockOptions(3, 5).norm_name(affine)},
      {"res block, relu", UnetBlockOptions(3, 5).act_name("relu")},
      {"res block, prelu (not fused)", UnetBlockOptions(3, 5).act_name("prelu")},
      {"res block, batch norm (not fused)", UnetBlockOptions(3, 5).norm_name("batch")},
      {"res block, running statistics (not fused)", UnetBlockOptions(3, 5).norm_name(tracked)},
      {"res block, leaky slope 0.2", UnetBlockOptions(3, 5).act_name(LayerSpec("leakyrelu", {{"negative_slope", 0.2}}))},
  };
  int seed = 0;
  for (const auto& c : cases) {
    UnetResBlock res(c.options);
    UnetBasicBlock basic(c.options);
    randomize(*res, ++seed);
    randomize(*basic, ++seed);
    for (bool training : {false, true}) {
      // Training mode matters for norms with running statistics: they then normalise with the batch's own.
      res->train(training);
      basic->train(training);
      const torch::Tensor x = torch::randn({2, c.options.in_channels(), 6, 4, 8});
      const std::string mode = training ? " (training mode)" : " (eval mode)";
      expect_kernels_match(res, c.what + mode, x);
      expect_kernels_match(basic, "basic block, " + c.what + mode, x);
    }
  }
}

TEST(Kernels, UnetrUpBlocksWithoutGradEqualTheLibTorchOperators) {
  for (bool res_block : {false, true}) {
    UnetrUpBlock up(UnetrUpBlockOptions(8, 4).res_block(res_block));
    randomize(*up, 11);
    up->eval();
    expect_kernels_match(up, "up block", torch::randn({2, 8, 2, 3, 4}), torch::randn({2, 4, 4, 6, 8}));
    // A strided skip connection (a view).
    const torch::Tensor skip = torch::randn({1, 4, 8, 6, 4}).transpose(2, 4);
    expect_kernels_match(up, "up block, strided skip", torch::randn({1, 8, 2, 3, 4}), skip);
    // Upsampling kernel 3.
    UnetrUpBlock up3(UnetrUpBlockOptions(8, 4).upsample_kernel_size(3).res_block(res_block));
    randomize(*up3, 12);
    up3->eval();
    expect_kernels_match(up3, "up block, kernel 3", torch::randn({1, 8, 2, 3, 4}), torch::randn({1, 4, 6, 9, 12}));
  }
  UnetrUpBlock deepest(UnetrUpBlockOptions(6, 3).res_block(true));
  randomize(*deepest, 15);
  deepest->eval();
  expect_kernels_match(deepest, "up block from one voxel", torch::randn({1, 6, 1, 1, 1}), torch::randn({1, 3, 2, 2, 2}));
  UnetrPrUpBlock pr(UnetrPrUpBlockOptions(8, 4, 2).res_block(true));
  randomize(*pr, 13);
  pr->eval();
  expect_kernels_match(pr, "pr-up block", torch::randn({1, 8, 2, 2, 3}));
  UnetOutBlock out(4, 3);
  randomize(*out, 14);
  expect_kernels_match(out, "out block", torch::randn({2, 4, 3, 5, 4}));
}

}  // namespace
}  // namespace teachformer::nn
