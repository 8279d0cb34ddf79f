// Attention as the models run it: global multi-head self-attention (UNETR's ViT, the student's bottleneck) and
// Swin's window attention per stage, in inference mode. Counter: tokens/s.
//   ./bm_attention --benchmark_repetitions=3 --benchmark_format=json      (threads: TF_BENCH_THREADS, default 2)
#include <torch/torch.h>

#include "bench_main.hpp"
#include "teachformer/nn/swin.hpp"
#include "teachformer/nn/transformer.hpp"

namespace {

using teachformer::nn::SelfAttention;
using teachformer::nn::SelfAttentionOptions;
using teachformer::nn::TransformerBlock;
using teachformer::nn::TransformerBlockOptions;
using teachformer::nn::WindowAttention;
using teachformer::nn::WindowAttentionOptions;

void tokens_counter(benchmark::State& state, int64_t tokens) {
  state.counters["tokens/s"] =
      benchmark::Counter(double(tokens) * double(state.iterations()), benchmark::Counter::kIsRate);
}

// args: hidden size, heads, tokens. UNETR: 768 / 12 heads, 216 tokens at 96^3 (patch 16), 729 at 144^3.
// TeachFormer-S "small": 128 wide, 4 heads at 1/16 of the input (216 tokens at 96^3, 729 at 144^3).
void BM_GlobalAttention(benchmark::State& state) {
  torch::manual_seed(0);
  SelfAttention attn(SelfAttentionOptions(state.range(0), state.range(1)));
  attn->eval();
  const auto x = torch::randn({1, state.range(2), state.range(0)});
  c10::InferenceMode guard;
  for (auto _ : state) {
    auto y = attn->forward(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  tokens_counter(state, state.range(2));
}
BENCHMARK(BM_GlobalAttention)
    ->ArgNames({"hidden", "heads", "tokens"})
    ->Args({768, 12, 216})
    ->Args({768, 12, 729})
    ->Args({128, 4, 216})
    ->Args({128, 4, 729})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One whole ViT block (attention + MLP) of UNETR: 768 wide, MLP 3072, 12 heads.
void BM_TransformerBlock(benchmark::State& state) {
  torch::manual_seed(0);
  TransformerBlock block(TransformerBlockOptions(768, 3072, 12));
  block->eval();
  const auto x = torch::randn({1, state.range(0), 768});
  c10::InferenceMode guard;
  for (auto _ : state) {
    auto y = block->forward(x);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  tokens_counter(state, state.range(0));
}
BENCHMARK(BM_TransformerBlock)->ArgName("tokens")->Arg(216)->Arg(729)->Unit(benchmark::kMillisecond)->UseRealTime();

// SwinUNETR-48 at a 96^3 input, window 7: stage s has (48 / 2^s)^3 tokens of width 48 * 2^s with 3 * 2^s heads,
// padded to whole windows; the last stage (6^3 tokens) is a single window clipped to 6^3 as MONAI does.
// args: stage (0..3), shifted (1: with the shifted-window mask).
void BM_WindowAttention(benchmark::State& state) {
  const int64_t stage = state.range(0);
  const int64_t grid = 48 >> stage, dim = 48 << stage, heads = 3 << stage;
  const int64_t window = std::min<int64_t>(7, grid);
  const int64_t per_side = (grid + window - 1) / window;
  const int64_t windows = per_side * per_side * per_side, n = window * window * window;
  torch::manual_seed(0);
  WindowAttention attn(WindowAttentionOptions(dim, heads, window).qkv_bias(true));
  attn->eval();
  const auto x = torch::randn({windows, n, dim});
  torch::Tensor mask;
  if (state.range(1) && window < grid) {
    const int64_t padded = per_side * window, shift = window / 2;
    mask = teachformer::nn::compute_mask({padded, padded, padded}, {window, window, window}, {shift, shift, shift});
  }
  c10::InferenceMode guard;
  for (auto _ : state) {
    auto y = attn->forward(x, mask);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  tokens_counter(state, windows * n);
  state.counters["windows"] = double(windows);
}
BENCHMARK(BM_WindowAttention)
    ->ArgNames({"stage", "shifted"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({1, 0})
    ->Args({1, 1})
    ->Args({2, 0})
    ->Args({3, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

TF_BENCHMARK_MAIN();
