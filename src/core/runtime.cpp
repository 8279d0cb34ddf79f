#include "teachformer/core/runtime.hpp"

#include <dlfcn.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "teachformer/core/error.hpp"

namespace teachformer {
namespace {

template <typename Fn>
Fn lookup(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, name));
}

std::string openblas_core() {
  using CoreFn = char* (*)();
  if (auto fn = lookup<CoreFn>("openblas_get_corename")) return fn();
  return {};
}

double read_status_kb(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t len = std::strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, len, key) == 0) return std::atof(line.c_str() + len);
  }
  return 0.0;
}

}  // namespace

namespace {

// OpenBLAS kernel families older than AVX2 (its fall-backs when it does not recognise a CPU).
bool generic_blas_core(const std::string& core) {
  static const char* const generic[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Sandybridge"};
  return std::any_of(std::begin(generic), std::end(generic), [&](const char* g) { return core == g; });
}

// Tensors of a 3D forward are tens of MiB: glibc serves each with mmap and unmaps it on free, so every forward
// faults fresh zeroed pages in again (measured: ~10% of the student's forward in the kernel's page-fault path).
// Serving them from the heap and not trimming it keeps freed blocks for the next forward. The process's RSS then
// stays near its peak, which is what a peak-RSS budget counts anyway; MALLOC_MMAP_MAX_ / MALLOC_TRIM_THRESHOLD_ in
// the environment (glibc's own tunables) take precedence.
void keep_freed_memory() {
#ifdef __GLIBC__
  if (std::getenv("MALLOC_MMAP_MAX_") || std::getenv("MALLOC_TRIM_THRESHOLD_") || std::getenv("GLIBC_TUNABLES")) return;
  ::mallopt(M_MMAP_MAX, 0);
  ::mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

}  // namespace

void init_process(int /*argc*/, char** argv) {
  keep_freed_memory();
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("TF_NO_BLAS_FIX") || std::getenv("TF_BLAS_REEXEC")) return;
  const std::string core = openblas_core();
  if (core.empty()) return;  // not OpenBLAS
  std::string want;
  __builtin_cpu_init();
  if (!generic_blas_core(core)) return;
  if (__builtin_cpu_supports("avx512f")) want = "SkylakeX";
  else if (__builtin_cpu_supports("avx2")) want = "Haswell";
  if (want.empty()) return;
  ::setenv("OPENBLAS_CORETYPE", want.c_str(), 1);
  ::setenv("TF_BLAS_REEXEC", "1", 1);
  ::execv("/proc/self/exe", argv);
  // execv only returns on failure: carry on with the slow kernels rather than fail.
}

std::string blas_kernel_advice(const std::string& core, const char* coretype_env, bool cpu_avx512, bool cpu_avx2) {
  const bool is_generic = generic_blas_core(core);
  const bool is_avx2 = core == "Haswell" || core == "Zen";
  const std::string forced = coretype_env ? std::string(" (forced by OPENBLAS_CORETYPE=") + coretype_env + ")" : "";
  if (is_generic && (cpu_avx512 || cpu_avx2))
    return "OpenBLAS runs its generic " + core + " kernels" + forced + " on a CPU with " +
           (cpu_avx512 ? "AVX-512" : "AVX2") + ": matmuls run several times slower; " +
           (coretype_env ? "unset OPENBLAS_CORETYPE or set it to " : "set OPENBLAS_CORETYPE=") +
           (cpu_avx512 ? "SkylakeX" : "Haswell");
  if (is_avx2 && cpu_avx512)
    return "OpenBLAS runs its AVX2 " + core + " kernels" + forced +
           " on a CPU with AVX-512: large matmuls run up to 1.6x slower; " +
           (coretype_env ? "unset OPENBLAS_CORETYPE to let OpenBLAS choose, or set it to SkylakeX"
                         : "set OPENBLAS_CORETYPE=SkylakeX");
  return "";
}

BlasInfo blas_info() {
  BlasInfo info;
  using ConfigFn = char* (*)();
  if (auto cfg = lookup<ConfigFn>("openblas_get_config")) {
    info.library = "OpenBLAS";
    info.config = cfg();
    info.core = openblas_core();
  } else if (lookup<void*>("mkl_get_version_string")) {
    info.library = "MKL";
  } else {
    info.library = "reference";
    info.reference = true;
  }
  return info;
}

int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

// OpenBLAS (0.3.21, Debian 12) retries for ever when it cannot allocate a work buffer, so a process under an
// address-space limit (`ulimit -v`, a batch system's memory limit) hangs instead of failing. Under such a limit every
// buffer the run can use at once (one per thread that may call BLAS, and the caller) is taken now, while there is
// room; OpenBLAS keeps them for the life of the process, and a later allocation that does not fit fails in LibTorch
// as an error. When the limit leaves no room even for them, the run stops here with a clear error.
void reserve_blas_buffers(int threads) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_AS, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return;
  if (openblas_core().empty()) return;  // not OpenBLAS
  constexpr double kMiB = 1024.0 * 1024.0;
  // Per buffer: OpenBLAS's BUFFER_SIZE (128 MiB on x86-64) with its alignment, the malloc arena (64 MiB) and the
  // stack (8 MiB) of the thread that takes it.
  constexpr double kBufferMiB = 130 + 64 + 8;
  const int buffers = threads + 1;
  const double limit_mib = double(limit.rlim_cur) / kMiB, used_mib = read_status_kb("VmSize:") / 1024.0;
  const double need_mib = buffers * kBufferMiB + 128;
  if (limit_mib - used_mib < need_mib) {
    char msg[320];
    std::snprintf(msg, sizeof msg,
                  "the address-space limit (ulimit -v) of %.0f MiB leaves %.0f MiB, and %d BLAS thread(s) need %.0f "
                  "MiB more to start (raise the limit or use fewer threads)",
                  limit_mib, std::max(0.0, limit_mib - used_mib), threads, need_mib);
    throw Error(msg);
  }
  std::atomic<int> ready{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < buffers; ++i)
    workers.emplace_back([&] {
      torch::NoGradGuard no_grad;
      const auto a = torch::ones({256, 256});
      ++ready;
      while (ready.load() < buffers) std::this_thread::yield();  // all at once: each call holds its own buffer
      (void)torch::mm(a, a);
    });
  for (auto& w : workers) w.join();
}

void set_threads(int threads) {
  if (threads <= 0) threads = hardware_threads();
  at::set_num_threads(threads);
  using SetFn = void (*)(int);
  if (auto fn = lookup<SetFn>("openblas_set_num_threads")) fn(threads);
  reserve_blas_buffers(threads);
}

int num_threads() { return at::get_num_threads(); }

double measure_matmul_gflops(int n, int repetitions) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm-up
  std::vector<double> rates;
  for (int r = 0; r < std::max(1, repetitions); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    c = torch::mm(a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rates.push_back(2.0 * n * double(n) * n / s / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

double peak_rss_mib() { return read_status_kb("VmHWM:") / 1024.0; }
double current_rss_mib() { return read_status_kb("VmRSS:") / 1024.0; }

bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return out.good();
}

}  // namespace teachformer
