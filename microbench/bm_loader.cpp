// Training-batch throughput of the PatchLoader: four 2 x 144^3 PET/CT-sized cases in memory, 96^3 patches, batch 2,
// a third of the patches centred on foreground; with and without augmentation, built in the calling thread or by
// worker threads ahead of the request. Counter: voxels/s of the delivered image patches.
//   ./bm_loader --benchmark_repetitions=3 --benchmark_format=json      (threads: TF_BENCH_THREADS, default 2)
#include <torch/torch.h>

#include "bench_main.hpp"
#include "teachformer/data/case_source.hpp"
#include "teachformer/data/loader.hpp"

namespace {

namespace td = teachformer::data;

std::shared_ptr<const std::vector<td::TrainingCase>> make_cases() {
  auto cases = std::make_shared<std::vector<td::TrainingCase>>();
  torch::manual_seed(0);
  const int64_t s = 144;
  for (int i = 0; i < 4; ++i) {
    td::TrainingCase c;
    c.id = "case" + std::to_string(i);
    c.image = torch::randn({2, s, s, s});
    c.label = torch::zeros({1, s, s, s}, torch::kByte);
    using torch::indexing::Slice;
    c.label.index_put_({0, Slice(50 + 5 * i, 80 + 5 * i), Slice(60, 90), Slice(40, 75)}, 1);
    td::index_foreground(c);
    cases->push_back(std::move(c));
  }
  return cases;
}

// args: worker threads (0 = build in the calling thread), augmentation (1/0).
void BM_PatchLoader(benchmark::State& state) {
  static const auto cases = make_cases();
  teachformer::transforms::AugmentOptions augment;
  if (!state.range(1)) augment.spatial = augment.intensity = false;
  td::PatchSamplerOptions so;
  so.patch_size = {96, 96, 96};
  td::LoaderOptions lo;
  lo.batch_size = 2;
  lo.workers = int(state.range(0));
  td::PatchLoader loader(td::in_memory_cases(*cases), td::PatchSampler(so, augment), augment, lo);
  int64_t step = 0;
  for (auto _ : state) {
    auto batch = loader.get(step++);
    benchmark::DoNotOptimize(batch.image.data_ptr());
  }
  state.counters["voxels/s"] = benchmark::Counter(2.0 * 2 * 96 * 96 * 96 * double(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_PatchLoader)
    ->ArgNames({"workers", "augment"})
    ->Args({0, 0})
    ->Args({0, 1})
    ->Args({2, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

TF_BENCHMARK_MAIN();
