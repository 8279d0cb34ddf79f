// A small worker pool for case-level parallelism (preprocess, verify, synth).
#pragma once
#include <cstdint>
#include <functional>

namespace teachformer::data::detail {

/// Runs fn(i) for i in [0, n) on `workers` threads (<= 1: inline, keeping the caller's torch threads). Each worker
/// thread uses 1 torch thread; the caller's thread count is restored afterwards. `fn` must not throw (catch and
/// record per item); `after_each` (may be empty) runs under a lock after each item, e.g. to advance a progress bar.
void run_parallel(int64_t n, int workers, const std::function<void(int64_t)>& fn,
                  const std::function<void()>& after_each = {});

}  // namespace teachformer::data::detail
