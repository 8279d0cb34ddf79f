// Patch embeddings and convolution blocks at the sizes the teachers run them on a 1 x 2 x 96^3 input, in inference
// mode. Counter: voxels/s (output voxels of the block).
//   ./bm_blocks --benchmark_repetitions=3 --benchmark_format=json      (threads: TF_BENCH_THREADS, default 2)
#include <torch/torch.h>

#include "bench_main.hpp"
#include "teachformer/nn/kernels.hpp"
#include "teachformer/nn/swin.hpp"
#include "teachformer/nn/transformer.hpp"
#include "teachformer/nn/unet_blocks.hpp"

namespace {

namespace tnn = teachformer::nn;

void voxel_counter(benchmark::State& state, int64_t voxels) {
  state.counters["voxels/s"] =
      benchmark::Counter(double(voxels) * double(state.iterations()), benchmark::Counter::kIsRate);
}

template <typename Fn>
void run(benchmark::State& state, Fn&& fn, int64_t voxels) {
  c10::InferenceMode guard;
  for (auto _ : state) {
    auto y = fn();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  voxel_counter(state, voxels);
}

// UNETR's patch embedding: Conv3d 2 -> 768, kernel = stride = 16, plus the position embedding; arg: input size.
void BM_PatchEmbeddingUNETR(benchmark::State& state) {
  const int64_t s = state.range(0);
  torch::manual_seed(0);
  tnn::PatchEmbeddingBlock embed(tnn::PatchEmbeddingBlockOptions(2, s, 16, 768, 12));
  embed->eval();
  const auto x = torch::randn({1, 2, s, s, s});
  run(state, [&] { return embed->forward(x); }, s * s * s);
}
BENCHMARK(BM_PatchEmbeddingUNETR)->ArgName("size")->Arg(96)->Arg(144)->Unit(benchmark::kMillisecond)->UseRealTime();

// SwinUNETR's patch embedding: Conv3d 2 -> feature_size, kernel = stride = 2; args: input size, feature size.
void BM_PatchEmbedSwin(benchmark::State& state) {
  const int64_t s = state.range(0);
  torch::manual_seed(0);
  tnn::PatchEmbed embed(tnn::PatchEmbedOptions(2, state.range(1)));
  embed->eval();
  const auto x = torch::randn({1, 2, s, s, s});
  run(state, [&] { return embed->forward(x); }, s * s * s);
}
BENCHMARK(BM_PatchEmbedSwin)
    ->ArgNames({"size", "feature"})
    ->Args({96, 48})
    ->Args({96, 24})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// MONAI's UnetResBlock (two 3^3 convs + instance norm + LeakyReLU, residual): args: channels, size. The SwinUNETR-48
// encoder/decoder blocks run 48 channels at 96^3 and 48^3, 96 at 24^3; UNETR's 16 at 96^3.
void BM_UnetResBlock(benchmark::State& state) {
  const int64_t c = state.range(0), s = state.range(1);
  torch::manual_seed(0);
  tnn::UnetResBlock block(tnn::UnetBlockOptions(c, c));
  block->eval();
  const auto x = torch::randn({1, c, s, s, s});
  run(state, [&] { return block->forward(x); }, s * s * s);
}
BENCHMARK(BM_UnetResBlock)
    ->ArgNames({"channels", "size"})
    ->Args({16, 96})
    ->Args({48, 48})
    ->Args({96, 24})
    ->Args({48, 96})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// UnetrUpBlock: transposed conv x2 then a residual conv block on the concatenation with the skip; args: input
// channels, output channels, output size.
void BM_UnetrUpBlock(benchmark::State& state) {
  const int64_t in = state.range(0), out = state.range(1), s = state.range(2);
  torch::manual_seed(0);
  tnn::UnetrUpBlock block(tnn::UnetrUpBlockOptions(in, out).res_block(true));
  block->eval();
  const auto x = torch::randn({1, in, s / 2, s / 2, s / 2});
  const auto skip = torch::randn({1, out, s, s, s});
  run(state, [&] { return block->forward(x, skip); }, s * s * s);
}
BENCHMARK(BM_UnetrUpBlock)
    ->ArgNames({"in", "out", "size"})
    ->Args({32, 16, 96})
    ->Args({96, 48, 48})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// MONAI's Convolution as the blocks use it: args: input channels, output channels, kernel size (3: padding 1;
// 1: pointwise), output size. TF_NO_FAST_KERNELS=1 runs LibTorch's conv3d instead of the CPU paths.
void BM_Convolution(benchmark::State& state) {
  const int64_t in = state.range(0), out = state.range(1), k = state.range(2), s = state.range(3);
  torch::manual_seed(0);
  tnn::Convolution conv(tnn::ConvolutionOptions(in, out, k));
  conv->eval();
  const auto x = torch::randn({1, in, s, s, s});
  run(state, [&] { return conv->forward(x); }, s * s * s);
}
BENCHMARK(BM_Convolution)
    ->ArgNames({"in", "out", "k", "size"})
    ->Args({2, 16, 3, 96})
    ->Args({2, 16, 1, 96})
    ->Args({16, 2, 1, 96})
    ->Args({32, 16, 1, 96})
    ->Args({16, 16, 3, 96})
    ->Args({32, 16, 3, 96})
    ->Args({64, 32, 1, 48})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Transposed convolution, kernel = stride = 2, LibTorch's (oneDNN) against the GEMM + sub-pixel scatter of
// nn::conv_transpose3d_k2s2 (the student's decoder): args: input channels, output channels, input size, GEMM route.
void BM_ConvTransposeK2(benchmark::State& state) {
  const int64_t in = state.range(0), out = state.range(1), s = state.range(2);
  const bool gemm = state.range(3) != 0;
  torch::manual_seed(0);
  tnn::Convolution conv(tnn::ConvolutionOptions(in, out, 2).strides(2).is_transposed(true));
  conv->eval();
  const auto x = torch::randn({1, in, s, s, s});
  const auto& m = conv->conv_transpose;
  run(state, [&] { return gemm ? tnn::conv_transpose3d_k2s2(x, m->weight, m->bias) : conv->forward(x); },
      8 * s * s * s);
}
BENCHMARK(BM_ConvTransposeK2)
    ->ArgNames({"in", "out", "size", "gemm"})
    ->ArgsProduct({{768}, {128}, {6}, {0, 1}})
    ->ArgsProduct({{128}, {64}, {6}, {0, 1}})
    ->ArgsProduct({{64}, {32}, {12}, {0, 1}})
    ->ArgsProduct({{32}, {16}, {24}, {0, 1}})
    ->ArgsProduct({{32}, {16}, {48}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

TF_BENCHMARK_MAIN();
