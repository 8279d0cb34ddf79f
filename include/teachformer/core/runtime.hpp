// Process-wide runtime settings: BLAS selection, thread counts, device choice and peak memory.
#pragma once
#include <string>

namespace teachformer {

/// What BLAS LibTorch ended up calling, as found at run time.
struct BlasInfo {
  /// "OpenBLAS", or "reference" (netlib) when no optimised BLAS is loaded.
  std::string library;
  /// OpenBLAS's build configuration string (empty for the reference BLAS).
  std::string config;
  /// Kernel family OpenBLAS chose for this CPU (e.g. "SkylakeX"); "Prescott" means it fell back to SSE3.
  std::string core;
  /// True when the slow reference BLAS is active.
  bool reference = false;
};

/// Call first in every main(). OpenBLAS 0.3.21 does not recognise recent Xeons and falls back to its SSE3
/// "Prescott" kernels (about 8x slower). When OPENBLAS_CORETYPE is unset and that happened on a CPU with
/// AVX-512 (or AVX2), this sets OPENBLAS_CORETYPE=SkylakeX (or Haswell) and re-executes the program once
/// so that OpenBLAS initialises again. Set TF_NO_BLAS_FIX=1 to disable.
void init_process(int argc, char** argv);

/// Finds the BLAS in use (OpenBLAS symbols looked up at run time).
BlasInfo blas_info();

/// One line of advice when OpenBLAS's kernels leave this CPU's vector width unused, else "". `core` is the kernel
/// family in use (BlasInfo::core), `coretype_env` the OPENBLAS_CORETYPE environment value (nullptr when unset),
/// `cpu_avx512` / `cpu_avx2` what the CPU supports. Cases: generic SSE kernels ("Prescott", ...) on an AVX2 or AVX-512
/// CPU; AVX2 kernels ("Haswell", "Zen") on an AVX-512 CPU, chosen by OpenBLAS or forced by OPENBLAS_CORETYPE (on a
/// 2-core AVX-512 EPYC, forcing Haswell made a 2048^3 matmul 1.6x slower than OpenBLAS's own Cooperlake choice).
std::string blas_kernel_advice(const std::string& core, const char* coretype_env, bool cpu_avx512, bool cpu_avx2);

/// Sets LibTorch's intra-op thread count (and OpenBLAS's); `threads <= 0` means all cores.
/// Debian's LibTorch starts with a single thread, so every entry point calls this.
void set_threads(int threads);
/// Current intra-op thread count.
int num_threads();
/// Number of hardware threads (at least 1).
int hardware_threads();

/// Median GFLOP/s of an n x n float32 matmul (a few repetitions after a warm-up).
double measure_matmul_gflops(int n = 2048, int repetitions = 3);

/// Peak resident set size of this process in MiB (VmHWM).
double peak_rss_mib();
/// Current resident set size in MiB (VmRSS).
double current_rss_mib();
/// Resets the peak RSS counter where the kernel allows it (writes /proc/self/clear_refs); returns success.
bool reset_peak_rss();

}  // namespace teachformer
