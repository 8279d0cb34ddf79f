// The knowledge-distillation terms per training step: attention-map KD (map, resampling of the teacher map,
// normalisation, distance; forward + backward through the student's features), prediction KD (KL at temperature T)
// and the CA-MKD teacher weighting. Counter: voxels/s of the student's tensor.
//   ./bm_distill --benchmark_repetitions=3 --benchmark_format=json      (threads: TF_BENCH_THREADS, default 2)
#include <torch/torch.h>

#include "bench_main.hpp"
#include "teachformer/distill/kd_terms.hpp"

namespace {

namespace td = teachformer::distill;

void voxel_counter(benchmark::State& state, int64_t voxels) {
  state.counters["voxels/s"] =
      benchmark::Counter(double(voxels) * double(state.iterations()), benchmark::Counter::kIsRate);
}

// args: student channels, student grid size, teacher grid size, backward (1/0). The student's coarse tap at a 96^3
// patch is 128 x 6^3, its fine tap 16 x 48^3; teachers' maps come at their own grids and are resampled.
void BM_AttentionMapKD(benchmark::State& state) {
  const int64_t c = state.range(0), s = state.range(1), t = state.range(2);
  const bool backward = state.range(3) != 0;
  torch::manual_seed(0);
  const auto features = torch::randn({1, c, s, s, s}).requires_grad_(backward);
  const auto teacher = td::attention_map(torch::randn({1, 8, t, t, t}), 2);
  const td::AttentionMapOptions options;
  for (auto _ : state) {
    const auto loss = td::attention_map_loss(td::attention_map(features, options.p), teacher, options);
    if (backward) loss.backward();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
  voxel_counter(state, c * s * s * s);
}
BENCHMARK(BM_AttentionMapKD)
    ->ArgNames({"channels", "size", "teacher", "backward"})
    ->Args({128, 6, 6, 0})
    ->Args({128, 6, 12, 1})
    ->Args({16, 48, 48, 0})
    ->Args({16, 48, 24, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Prediction KD on 2-class logits at a patch size (arg), temperature 2, with backward.
void BM_PredictionKD(benchmark::State& state) {
  const int64_t s = state.range(0);
  torch::manual_seed(0);
  const auto logits = torch::randn({1, 2, s, s, s}).requires_grad_(true);
  const auto teacher = torch::softmax(torch::randn({1, 2, s, s, s}), 1);
  for (auto _ : state) {
    const auto pt = td::temper_probabilities(teacher, 2.0);
    const auto loss = td::kl_per_voxel(logits, pt, 2.0).mean();
    loss.backward();
    benchmark::DoNotOptimize(loss.data_ptr());
  }
  voxel_counter(state, 2 * s * s * s);
}
BENCHMARK(BM_PredictionKD)->ArgName("size")->Arg(64)->Arg(96)->Unit(benchmark::kMillisecond)->UseRealTime();

// Per-sample teacher weights of three teachers (arg: aggregation 0 = mean, 1 = confidence, 2 = agreement) at 96^3.
void BM_TeacherWeights(benchmark::State& state) {
  const int64_t s = 96;
  torch::manual_seed(0);
  std::vector<torch::Tensor> probs;
  for (int k = 0; k < 3; ++k) probs.push_back(torch::softmax(torch::randn({1, 2, s, s, s}), 1));
  const auto label = (torch::rand({1, 1, s, s, s}) > 0.9).to(torch::kByte);
  const td::Aggregation agg = state.range(0) == 0   ? td::Aggregation::Mean
                              : state.range(0) == 1 ? td::Aggregation::Confidence
                                                    : td::Aggregation::Agreement;
  for (auto _ : state) {
    auto w = td::teacher_weights(probs, label, agg, {1.0, 1.0, 1.0});
    benchmark::DoNotOptimize(w.front().data_ptr());
  }
  voxel_counter(state, s * s * s);
}
BENCHMARK(BM_TeacherWeights)->ArgName("aggregation")->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

TF_BENCHMARK_MAIN();
