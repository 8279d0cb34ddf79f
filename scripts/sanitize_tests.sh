#!/usr/bin/env bash
# Builds the unit tests of the layers that read files (core, io, transforms, data, metrics) with clang, ASan and
# UBSan (build preset 'sanitize', in the fuzz build folder so the fuzz targets and the tests share one instrumented
# build of the libraries) and runs them. Any sanitizer report stops the run with a non-zero exit.
# Usage: bash scripts/sanitize_tests.sh [extra GoogleTest arguments, e.g. --gtest_filter='Safetensors*']
set -euo pipefail
cd "$(dirname "$0")/.."
SUITES=(tf_core_tests tf_io_tests tf_transforms_tests tf_data_tests tf_metrics_tests)

cmake --preset fuzz >/dev/null
cmake --build --preset sanitize -j"$(nproc)"

ROOT="$(pwd)"
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0"
status=0
cd build-fuzz/tests
for suite in "${SUITES[@]}"; do
  start=$(date +%s)
  if "./$suite" --gtest_brief=1 "$@" >"$suite.log" 2>&1; then
    echo "sanitize $suite ok ($(( $(date +%s) - start )) s): $(grep -E '^\[  PASSED  \]' "$suite.log" | head -1)"
  else
    status=1
    echo "sanitize $suite FAILED ($(( $(date +%s) - start )) s); log build-fuzz/tests/$suite.log"
    grep -a -m1 -A20 -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|\[  FAILED  \]' "$suite.log" \
      | sed 's/^/  | /' || tail -n 20 "$suite.log" | sed 's/^/  | /'
  fi
done
exit "$status"
