#include "data/detail/parallel.hpp"

#include <ATen/Parallel.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "teachformer/core/runtime.hpp"

namespace teachformer::data::detail {

void run_parallel(int64_t n, int workers, const std::function<void(int64_t)>& fn,
                  const std::function<void()>& after_each) {
  if (n <= 0) return;
  if (workers <= 1 || n == 1) {
    for (int64_t i = 0; i < n; ++i) {
      fn(i);
      if (after_each) after_each();
    }
    return;
  }
  const int saved = at::get_num_threads();
  std::atomic<int64_t> next{0};
  std::mutex lock;
  std::vector<std::thread> pool;
  const int count = int(std::min<int64_t>(workers, n));
  for (int w = 0; w < count; ++w) {
    pool.emplace_back([&] {
      // OpenMP thread counts are per thread: this one's intra-op work stays on itself.
      at::set_num_threads(1);
      for (int64_t i = next++; i < n; i = next++) {
        fn(i);
        if (after_each) {
          std::lock_guard<std::mutex> g(lock);
          after_each();
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  set_threads(saved);
}

}  // namespace teachformer::data::detail
