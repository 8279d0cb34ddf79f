#!/usr/bin/env bash
# Builds the libFuzzer targets (preset 'fuzz': clang, ASan + UBSan) and runs each on a copy of its seed corpus.
# Usage: bash scripts/fuzz.sh [seconds per target, default 60] [target ...]   (targets: fuzz/CMakeLists.txt, e.g. plan)
# Any finding (crash, sanitizer report, leak, foreign exception, timeout over 10 s, more than 2 GiB) fails the run:
# the script prints the input that caused it and the first lines of the report. TF_FUZZ_JOBS=N runs N
# targets at once (default 1). TF_FUZZ_NO_BUILD=1 runs the targets already built in build-fuzz/. TF_FUZZ_SEED=N
# fixes libFuzzer's random seed, so a run mutates the same way again; under CI (CI set) it defaults to 1, so a short
# CI run explores the same inputs on every clone instead of a new random sample (set TF_FUZZ_SEED=0 for a random one).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
shift || true
ALL=(safetensors dataset_json plan options strategy bbox_csv image dicom)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
JOBS="${TF_FUZZ_JOBS:-1}"
SEED="${TF_FUZZ_SEED:-}"
[ -n "$SEED" ] || { [ -n "${CI:-}" ] && SEED=1; } || true
SEED_ARG=()
[ -n "$SEED" ] && [ "$SEED" != 0 ] && SEED_ARG=(-seed="$SEED")

if [ "${TF_FUZZ_NO_BUILD:-0}" != 1 ]; then
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j"$(nproc)"
fi

ROOT="$(pwd)"
RUN="$ROOT/build-fuzz/runs"
mkdir -p "$RUN"
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0"

run_one() {
  local t="$1" dir="$RUN/$1"
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/tmp"
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$dir/corpus/"
  local rc=0
  TMPDIR="$dir/tmp" "build-fuzz/fuzz/fuzz_$t" "$dir/corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -rss_limit_mb=2048 ${SEED_ARG[@]+"${SEED_ARG[@]}"} -print_final_stats=1 -artifact_prefix="$dir/artifacts/" >"$dir/log" 2>&1 || rc=$?
  rm -rf "$dir/tmp"
  echo "$rc" >"$dir/rc"
}

report() {
  local t="$1" dir="$RUN/$1" rc
  rc="$(cat "$dir/rc")"
  local execs
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)"
  if [ "$rc" = 0 ] && [ -z "$(ls -A "$dir/artifacts")" ]; then
    printf 'fuzz %-13s ok: %s s, %s executions, corpus %s inputs\n' "$t" "$SECONDS_PER_TARGET" "${execs:-?}" \
      "$(ls "$dir/corpus" | wc -l)"
    return 0
  fi
  echo "fuzz $t: FINDING (exit $rc); log $dir/log"
  for a in "$dir"/artifacts/*; do [ -e "$a" ] && echo "  input: $a"; done
  # The first lines of the report: a foreign exception, a sanitizer error, a leak, a timeout or running out of memory.
  grep -a -m1 -A14 -E '==FINDING==|ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|ALARM: working on the last|out-of-memory|deadly signal' \
    "$dir/log" | sed 's/^/  | /' || tail -n 20 "$dir/log" | sed 's/^/  | /'
  return 1
}

status=0
if [ "$JOBS" -le 1 ]; then
  for t in "${TARGETS[@]}"; do run_one "$t"; report "$t" || status=1; done
else
  running=0
  for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n || true; running=$((running - 1)); fi
  done
  wait
  for t in "${TARGETS[@]}"; do report "$t" || status=1; done
fi
exit "$status"
