// teachformer doctor: what this machine and this build can do (LibTorch, threads, BLAS speed, ITK formats, DCMTK).
#include <cstdio>
#include <cstdlib>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/version.h>

#include "common.hpp"
#include "teachformer/models/low_precision.hpp"
#include "teachformer/core/device.hpp"
#include "teachformer/core/runtime.hpp"
#include "teachformer/io/dicom.hpp"
#include "teachformer/io/image_io.hpp"
#include "teachformer/version.hpp"

namespace teachformer::app {

void register_doctor(CLI::App& parent) {
  auto* cmd = parent.add_subcommand("doctor", "Print LibTorch/BLAS/ITK configuration and a measured matmul speed");
  static int matmul_n = 2048;
  static bool full_config = false;
  cmd->add_option("--matmul-size", matmul_n, "Size n of the n x n float32 matmul timed")->capture_default_str();
  cmd->add_flag("--full-config", full_config, "Also print LibTorch's complete build configuration");
  set_command(cmd, [] {
    std::printf("teachformer %s\n", kVersion);
    std::printf("LibTorch    %s (CUDA %s)\n", TORCH_VERSION, cuda_available() ? "available" : "not available");
    const std::string cfg = at::show_config();
    // The line with the build settings is long: print the essentials unless asked for everything.
    if (full_config) {
      std::printf("%s\n", cfg.c_str());
    } else {
      for (const char* key : {"CPU capability usage", "MKL-DNN", "OpenMP"}) {
        const auto pos = cfg.find(key);
        if (pos != std::string::npos) {
          const auto end = cfg.find('\n', pos);
          std::printf("  %s\n", cfg.substr(pos, end - pos).c_str());
        }
      }
      const auto blas = cfg.find("BLAS_INFO=");
      if (blas != std::string::npos) std::printf("  %s\n", cfg.substr(blas, cfg.find(',', blas) - blas).c_str());
    }
    std::printf("threads     intra-op %d, inter-op %d, hardware %d\n", at::get_num_threads(),
                at::get_num_interop_threads(), hardware_threads());
    const BlasInfo blas = blas_info();
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    std::printf("BLAS        %s%s%s%s%s\n", blas.library.c_str(), blas.core.empty() ? "" : ", kernels ",
                blas.core.c_str(), coretype ? ", OPENBLAS_CORETYPE=" : "", coretype ? coretype : "");
    if (!blas.config.empty()) std::printf("            %s\n", blas.config.c_str());
    const double gflops = measure_matmul_gflops(matmul_n, 3);
    std::printf("matmul      %d x %d float32: %.1f GFLOP/s\n", matmul_n, matmul_n, gflops);
    if (blas.reference) {
      std::printf("WARNING     the reference (netlib) BLAS is active: matmuls run ~50x slower.\n"
                  "            Install libopenblas0-openmp (scripts/install_deps.sh does).\n");
    } else if (!blas.core.empty()) {
      __builtin_cpu_init();
      const std::string advice = blas_kernel_advice(blas.core, coretype, __builtin_cpu_supports("avx512f") != 0,
                                                    __builtin_cpu_supports("avx2") != 0);
      if (!advice.empty()) std::printf("WARNING     %s\n", advice.c_str());
    }
    {
      const auto lines = models::describe_low_precision(models::low_precision_support());
      for (size_t i = 0; i < lines.size(); ++i) std::printf("%s%s\n", i ? "            " : "bf16/int8   ", lines[i].c_str());
    }
    std::printf("ITK         %s\n", io::itk_version().c_str());
    std::printf("DCMTK       %s\n", io::dcmtk_version().c_str());
    std::printf("formats    ");
    for (const auto& ext : io::supported_image_extensions()) std::printf(" %s", ext.c_str());
    std::printf(" (+ .safetensors for weights)\n");
    return 0;
  });
}

}  // namespace teachformer::app
