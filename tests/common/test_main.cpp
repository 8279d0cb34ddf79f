// GoogleTest main for every suite: the same BLAS fix as the CLI and a fixed thread count (TF_TEST_THREADS, 2).
#include <cstdlib>

#include <gtest/gtest.h>

#include "teachformer/core/runtime.hpp"

int main(int argc, char** argv) {
  teachformer::init_process(argc, argv);
  const char* threads = std::getenv("TF_TEST_THREADS");
  teachformer::set_threads(threads ? std::atoi(threads) : 2);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
