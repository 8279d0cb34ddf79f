// Multi-threaded, deterministic batch loader: sample b of the global batch of step s is built from
// Rng({seed, s, b}), so the batches do not depend on thread scheduling, a resumed run sees exactly the batches it
// would have seen, and a data-parallel run does not depend on how the samples of a global batch are split across
// ranks (rank r builds samples [r B, (r + 1) B) with sample_offset = r B). Cases come from a CaseSource (in memory
// or read on demand); the worker threads read ahead.
// Semi-supervised batches: with a second source of unlabelled cases, every batch is the labelled batch it would be
// without them, followed by `unlabelled_per_batch` samples drawn from the unlabelled cases (their own random
// streams): adding unlabelled scans never changes which labelled patches a student sees, nor how often.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "teachformer/data/case_source.hpp"
#include "teachformer/data/sampler.hpp"
#include "teachformer/transforms/augment.hpp"

namespace teachformer::data {

/// A stacked batch.
struct Batch {
  /// [B, C, D, H, W] float32.
  torch::Tensor image;
  /// [B, 1, D, H, W] uint8 (undefined when no sample has a label; zeros in the rows of unlabelled samples).
  torch::Tensor label;
  /// Per sample: true when it has a label.
  std::vector<bool> labelled;
  /// The image after the spatial but before the intensity augmentations (LoaderOptions::teacher_image): what
  /// teachers see, so that live teachers and the teacher cache give the same knowledge (intensity changes are for
  /// the student's input only). Undefined unless asked for.
  torch::Tensor teacher_image;
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
  /// Index in the global batch of this loader's first sample (data-parallel rank r: r x batch_size).
  int64_t sample_offset = 0;
  /// Also return Batch::teacher_image.
  bool teacher_image = false;
  /// Samples drawn from the unlabelled source after the batch_size labelled ones (with an unlabelled source: >= 1).
  int64_t unlabelled_per_batch = 0;
  /// Index in the global batch of this loader's first unlabelled sample (rank r: r x unlabelled_per_batch).
  int64_t unlabelled_offset = 0;
};

/// Builds batches of augmented patches.
class PatchLoader {
 public:
  /// `unlabelled` (optional): cases without labels, options.unlabelled_per_batch of them after each batch's
  /// labelled samples. InvalidArgument when one is given without the other.
  PatchLoader(std::shared_ptr<const CaseSource> cases, PatchSampler sampler, transforms::AugmentOptions augment,
              LoaderOptions options, std::shared_ptr<const CaseSource> unlabelled = nullptr);
  ~PatchLoader();
  PatchLoader(const PatchLoader&) = delete;
  PatchLoader& operator=(const PatchLoader&) = delete;

  /// The batch of global step `step` (steps may be requested in any order; sequential requests are prefetched).
  /// An error while building it (e.g. a case that cannot be read) is rethrown here.
  Batch get(int64_t step);
  /// Builds the batch of `step` synchronously (what the workers do).
  Batch build(int64_t step) const;

 private:
  void worker_loop();
  std::shared_ptr<const CaseSource> cases_, unlabelled_;
  PatchSampler sampler_;
  transforms::AugmentOptions augment_;
  LoaderOptions options_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> failed_;
  std::map<int64_t, bool> claimed_;
  int64_t window_start_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace teachformer::data
