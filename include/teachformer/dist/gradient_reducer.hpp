// Data-parallel gradient averaging as PyTorch's DistributedDataParallel does it: parameters are grouped into
// buckets (in reverse registration order, the order in which backward produces their gradients; the first bucket
// small so that communication starts early), each parameter's gradient is copied into its bucket by a hook as
// soon as backward has computed it, and a bucket's all-reduce starts, asynchronously, the moment its last gradient
// arrives (buckets are started in the same order on every rank), overlapping communication with the rest of the
// backward pass. finish() waits for the buckets and leaves every parameter's .grad() equal to the mean over ranks.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <torch/types.h>

#include "teachformer/dist/process_group.hpp"

namespace teachformer::dist {

/// Bucket sizes.
struct GradientReducerOptions {
  /// Largest bucket in bytes (PyTorch DDP's default 25 MiB).
  int64_t bucket_bytes = int64_t(25) << 20;
  /// Largest first bucket in bytes (DDP's 1 MiB): the first all-reduce starts early in the backward pass.
  int64_t first_bucket_bytes = int64_t(1) << 20;
};

class GradientReducer {
 public:
  /// Registers a gradient hook on every parameter that requires a gradient.
  GradientReducer(std::shared_ptr<ProcessGroup> group, std::vector<torch::Tensor> parameters,
                  GradientReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  /// Call before each backward pass.
  void prepare();
  /// Call after backward: starts the buckets still waiting (a parameter that got no gradient on this rank
  /// contributes zeros), waits for all of them and writes the mean gradient into every parameter's .grad().
  void finish();

  /// Number of buckets.
  size_t buckets() const { return buckets_.size(); }
  /// Bytes all-reduced per step (the parameters' gradients).
  int64_t bytes_per_step() const;

 private:
  struct Bucket {
    torch::Tensor buffer;               // flat, the parameters' gradients back to back
    std::vector<size_t> params;         // indices into params_
    std::vector<int64_t> offsets;       // element offset of each parameter in the buffer
    size_t pending = 0;                 // gradients still to arrive this step
    std::vector<bool> arrived;
    PendingCollective work;
    bool launched = false;
  };
  void on_gradient(size_t index, const torch::Tensor& grad);
  void launch_ready();
  std::shared_ptr<ProcessGroup> group_;
  std::vector<torch::Tensor> params_;
  std::vector<std::pair<size_t, size_t>> slot_;  // param index -> (bucket, position in bucket)
  std::vector<unsigned> hook_ids_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  bool active_ = false;
  std::mutex mutex_;
};

}  // namespace teachformer::dist
