// Cost of sliding-window stitching with a trivial network, so that it can be compared with a real model's
// forward time (facts.md: 20-100 s per 2 x 144^3 case on CPU for the teachers).
//   ./bm_sliding_window --benchmark_repetitions=3 --benchmark_format=json
// Threads: TF_BENCH_THREADS (default 2).
#include <cstdlib>

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "teachformer/core/runtime.hpp"
#include "teachformer/inference/ensemble.hpp"
#include "teachformer/inference/sliding_window.hpp"

namespace {

using teachformer::inference::BlendMode;
using teachformer::inference::OutputKind;
using teachformer::inference::SlidingWindowOptions;
using teachformer::inference::WindowFunction;
using teachformer::inference::WindowOutput;

// Case size 144^3 with two channels (CT, PET) and 2 classes: the image doubles as the logits.
torch::Tensor make_case(int64_t size) {
  torch::manual_seed(0);
  return torch::randn({2, size, size, size});
}

std::vector<torch::Tensor> trivial(const torch::Tensor& x) { return {x}; }

void set_counters(benchmark::State& state, int64_t voxels, int64_t windows) {
  state.counters["voxels/s"] = benchmark::Counter(static_cast<double>(voxels) * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
  state.counters["windows"] = static_cast<double>(windows);
}

// The timed loop: stitch `image` with `fn` every iteration; voxels/s and the window count as counters.
void stitch_loop(benchmark::State& state, const torch::Tensor& image, const WindowFunction& fn,
                 const std::vector<WindowOutput>& outputs, const SlidingWindowOptions& opts) {
  int64_t windows = 0;
  for (auto _ : state) {
    auto r = teachformer::inference::sliding_window_inference(image, {fn}, outputs, opts);
    windows = r.windows;
    benchmark::DoNotOptimize(r.outputs.front().second.data_ptr());
  }
  set_counters(state, image.size(1) * image.size(2) * image.size(3), windows);
}

// args: case size, roi, gaussian (1) / constant (0), sw_batch_size, float16 output (1/0)
void BM_Stitch(benchmark::State& state) {
  const int64_t size = state.range(0);
  const int64_t roi = state.range(1);
  const auto image = make_case(size);
  const auto opts = SlidingWindowOptions()
                        .roi_size({roi, roi, roi})
                        .overlap(0.5)
                        .mode(state.range(2) ? BlendMode::Gaussian : BlendMode::Constant)
                        .sw_batch_size(state.range(3))
                        .output_dtype(state.range(4) ? torch::kHalf : torch::kFloat);
  stitch_loop(state, image, trivial, {WindowOutput{}}, opts);
}
BENCHMARK(BM_Stitch)
    ->ArgNames({"size", "roi", "gaussian", "sw_batch", "fp16"})
    ->Args({144, 96, 1, 1, 0})
    ->Args({144, 96, 0, 1, 0})
    ->Args({144, 96, 1, 4, 0})
    ->Args({144, 96, 1, 1, 1})
    ->Args({144, 64, 1, 1, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Logits plus a 1/8 tap (teacher stitching): two outputs, two grids.
void BM_StitchWithTap(benchmark::State& state) {
  const int64_t size = 144;
  const auto image = make_case(size);
  auto with_tap = [](const torch::Tensor& x) {
    return std::vector<torch::Tensor>{
        x, torch::nn::functional::avg_pool3d(x, torch::nn::functional::AvgPool3dFuncOptions(8))};
  };
  const auto opts = SlidingWindowOptions().roi_size({96, 96, 96}).overlap(0.5);
  const std::vector<WindowOutput> outputs{WindowOutput{}, WindowOutput{"tap", {8, 8, 8}, OutputKind::Feature}};
  stitch_loop(state, image, with_tap, outputs, opts);
}
BENCHMARK(BM_StitchWithTap)->Unit(benchmark::kMillisecond)->UseRealTime();

// Mirroring over all three axes: 8 passes per window.
void BM_StitchMirrored(benchmark::State& state) {
  const int64_t size = 144;
  const auto image = make_case(size);
  const auto opts = SlidingWindowOptions().roi_size({96, 96, 96}).overlap(0.5).mirror_axes({0, 1, 2});
  stitch_loop(state, image, trivial, {WindowOutput{}}, opts);
}
BENCHMARK(BM_StitchMirrored)->Unit(benchmark::kMillisecond)->UseRealTime();

// Argmax of a 2-class probability map into a uint8 label map.
void BM_ArgmaxLabels(benchmark::State& state) {
  const int64_t size = 144;
  const auto probs = torch::softmax(make_case(size), 0);
  for (auto _ : state) {
    auto labels = teachformer::inference::argmax_labels(probs);
    benchmark::DoNotOptimize(labels.data_ptr());
  }
  set_counters(state, size * size * size, 0);
}
BENCHMARK(BM_ArgmaxLabels)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  teachformer::init_process(argc, argv);
  const char* threads = std::getenv("TF_BENCH_THREADS");
  teachformer::set_threads(threads ? std::atoi(threads) : 2);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
