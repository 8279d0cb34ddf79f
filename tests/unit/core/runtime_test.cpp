#include "teachformer/core/runtime.hpp"

#include <gtest/gtest.h>

namespace teachformer {
namespace {

TEST(BlasKernelAdvice, SilentWhenTheKernelsMatchTheCpu) {
  EXPECT_EQ(blas_kernel_advice("SkylakeX", nullptr, true, true), "");
  EXPECT_EQ(blas_kernel_advice("Cooperlake", nullptr, true, true), "");
  EXPECT_EQ(blas_kernel_advice("SapphireRapids", "SapphireRapids", true, true), "");
  EXPECT_EQ(blas_kernel_advice("Haswell", nullptr, false, true), "");  // an AVX2-only CPU
  EXPECT_EQ(blas_kernel_advice("Zen", nullptr, false, true), "");
  EXPECT_EQ(blas_kernel_advice("Prescott", nullptr, false, false), "");  // nothing better to use
  EXPECT_EQ(blas_kernel_advice("", nullptr, true, true), "");           // not OpenBLAS
}

TEST(BlasKernelAdvice, Avx2KernelsForcedOnAnAvx512CpuNameTheVariable) {
  const std::string advice = blas_kernel_advice("Haswell", "Haswell", true, true);
  EXPECT_NE(advice.find("AVX2 Haswell kernels (forced by OPENBLAS_CORETYPE=Haswell)"), std::string::npos) << advice;
  EXPECT_NE(advice.find("unset OPENBLAS_CORETYPE"), std::string::npos) << advice;
  EXPECT_EQ(advice.find('\n'), std::string::npos);
}

TEST(BlasKernelAdvice, Avx2KernelsChosenOnAnAvx512CpuSuggestSkylakeX) {
  const std::string advice = blas_kernel_advice("Zen", nullptr, true, true);
  EXPECT_NE(advice.find("AVX2 Zen kernels on a CPU with AVX-512"), std::string::npos) << advice;
  EXPECT_NE(advice.find("set OPENBLAS_CORETYPE=SkylakeX"), std::string::npos) << advice;
  EXPECT_EQ(advice.find("forced"), std::string::npos) << advice;
}

TEST(BlasKernelAdvice, GenericKernelsSuggestTheWidestFamily) {
  EXPECT_NE(blas_kernel_advice("Prescott", nullptr, true, true).find("set OPENBLAS_CORETYPE=SkylakeX"),
            std::string::npos);
  EXPECT_NE(blas_kernel_advice("Sandybridge", nullptr, false, true).find("set OPENBLAS_CORETYPE=Haswell"),
            std::string::npos);
  const std::string forced = blas_kernel_advice("Prescott", "Prescott", false, true);
  EXPECT_NE(forced.find("forced by OPENBLAS_CORETYPE=Prescott"), std::string::npos) << forced;
  EXPECT_NE(forced.find("unset OPENBLAS_CORETYPE or set it to Haswell"), std::string::npos) << forced;
}

}  // namespace
}  // namespace teachformer
