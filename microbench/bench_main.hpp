// Shared main() of the Google Benchmark executables: the BLAS fix and a fixed thread count (TF_BENCH_THREADS,
// default 2, as the reference numbers in facts.md), then Google Benchmark's own flags
// (--benchmark_repetitions=3 --benchmark_format=json ...).
#pragma once
#include <cstdlib>

#include <benchmark/benchmark.h>

#include "teachformer/core/runtime.hpp"

/// Defines main() for a bm_<topic>.cpp file.
#define TF_BENCHMARK_MAIN()                                                   \
  int main(int argc, char** argv) {                                           \
    teachformer::init_process(argc, argv);                                    \
    const char* threads = std::getenv("TF_BENCH_THREADS");                    \
    teachformer::set_threads(threads ? std::atoi(threads) : 2);               \
    benchmark::Initialize(&argc, argv);                                       \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;         \
    benchmark::RunSpecifiedBenchmarks();                                      \
    benchmark::Shutdown();                                                    \
    return 0;                                                                 \
  }                                                                           \
  static_assert(true, "")
