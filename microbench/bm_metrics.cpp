// HD95 (with Dice, HD, ASSD, NSD) of a prediction against a reference on a 144^3 HECKTOR-sized grid: two offset
// spheres, by both surface protocols. Counter: voxels/s of the grid.
//   ./bm_metrics --benchmark_repetitions=3 --benchmark_format=json      (threads: TF_BENCH_THREADS, default 2)
#include <torch/torch.h>

#include "bench_main.hpp"
#include "teachformer/metrics/segmentation_metrics.hpp"

namespace {

namespace tfm = teachformer::metrics;

torch::Tensor sphere(int64_t size, double cz, double cy, double cx, double r) {
  const auto z = torch::arange(size, torch::kFloat).view({size, 1, 1});
  const auto y = torch::arange(size, torch::kFloat).view({1, size, 1});
  const auto x = torch::arange(size, torch::kFloat).view({1, 1, size});
  return ((z - cz).pow(2) + (y - cy).pow(2) + (x - cx).pow(2) <= r * r).to(torch::kByte);
}

// args: grid size, sphere radius (voxels), method (0 = voxel surfaces as MONAI, 1 = surfels as the HECKTOR 2021
// evaluator).
void BM_HD95(benchmark::State& state) {
  const int64_t s = state.range(0);
  const double r = double(state.range(1));
  const auto ref = sphere(s, s / 2.0, s / 2.0, s / 2.0, r);
  const auto pred = sphere(s, s / 2.0 + 3, s / 2.0 - 2, s / 2.0 + 1, r * 0.9);
  tfm::MetricOptions o;
  o.method = state.range(2) ? tfm::SurfaceMethod::Surfels : tfm::SurfaceMethod::VoxelSurface;
  const teachformer::Vec3 spacing{1.0, 1.0, 1.0};
  for (auto _ : state) {
    const auto m = tfm::compute_binary_metrics(pred, ref, spacing, o);
    benchmark::DoNotOptimize(m.hd95);
  }
  state.counters["voxels/s"] =
      benchmark::Counter(double(s * s * s) * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_HD95)
    ->ArgNames({"size", "radius", "surfels"})
    ->Args({144, 12, 0})
    ->Args({144, 12, 1})
    ->Args({144, 40, 0})
    ->Args({144, 40, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

TF_BENCHMARK_MAIN();
