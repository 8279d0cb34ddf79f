// Multi-threaded, deterministic batch loader: the batch for global step s is built from Rng({seed, s, b}) for
// each of its samples b, so the batches do not depend on thread scheduling and a resumed run sees exactly the
// batches it would have seen.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "teachformer/data/sampler.hpp"
#include "teachformer/transforms/augment.hpp"

namespace teachformer::data {

/// A stacked batch.
struct Batch {
  /// [B, C, D, H, W] float32.
  torch::Tensor image;
  /// [B, 1, D, H, W] uint8 (undefined when the cases are unlabelled).
  torch::Tensor label;
  /// Extra maps stacked per name: [B, C, d, h, w].
  std::map<std::string, transforms::ExtraMap> extras;
  /// Source case of each sample.
  std::vector<std::string> case_ids;
  /// The global step this batch belongs to.
  int64_t step = 0;
};

/// Loader settings.
struct LoaderOptions {
  /// Samples per batch.
  int64_t batch_size = 2;
  /// Worker threads building batches ahead (0 = build in the calling thread).
  int workers = 2;
  /// Batches built ahead of the one requested.
  int prefetch = 4;
  /// Seed of the counter-based random streams.
  uint64_t seed = 0;
};

/// Builds batches of augmented patches from in-memory cases.
class PatchLoader {
 public:
  PatchLoader(std::shared_ptr<const std::vector<TrainingCase>> cases, PatchSampler sampler,
              transforms::AugmentOptions augment, LoaderOptions options);
  ~PatchLoader();
  PatchLoader(const PatchLoader&) = delete;
  PatchLoader& operator=(const PatchLoader&) = delete;

  /// The batch of global step `step` (steps may be requested in any order; sequential requests are prefetched).
  Batch get(int64_t step);
  /// Builds the batch of `step` synchronously (what the workers do).
  Batch build(int64_t step) const;

 private:
  void worker_loop();
  std::shared_ptr<const std::vector<TrainingCase>> cases_;
  PatchSampler sampler_;
  transforms::AugmentOptions augment_;
  LoaderOptions options_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, bool> claimed_;
  int64_t window_start_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace teachformer::data
