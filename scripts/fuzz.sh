#!/bin/sh
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) in build-fuzz and runs each
# for SECONDS (default 60) over a scratch copy of its seed corpus, so the checked-in corpus
# never grows. Exits non-zero if any target finds a crash, a leak, a timeout or runs out of
# memory, and prints the reproducer's path. Usage: scripts/fuzz.sh [SECONDS]
# FUZZ_BUILD (default build-fuzz) and FUZZ_TARGETS (default all six) narrow a run; FUZZ_JOBS
# (default 2) targets run at once.
# Inputs go up to MAX_LEN (1 MiB, far above libFuzzer's default of 4096, so the decoders' node
# and attribute budgets are reached), and any one input taking longer than TIMEOUT_S (5 s) is a
# finding: every decoder is linear, and the slowest input of 1 MiB seen here (one long text,
# decoded and re-encoded three times by fuzz_xml) takes 0.5 s with ASan and UBSan, while
# libxml2's quadratic attribute check took 13 s over 80 000 attributes without them.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
BUILD=${FUZZ_BUILD:-build-fuzz}
TARGETS=${FUZZ_TARGETS:-"fuzz_frame fuzz_json fuzz_xml fuzz_roundtrip fuzz_json_diff fuzz_xml_diff"}
MAX_LEN=1048576
TIMEOUT_S=5

sh scripts/bootstrap.sh
CC=clang cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPM_FUZZ=ON \
  -DPM_TESTS=OFF >/dev/null
cmake --build "$BUILD" --target pm_fuzz

ARTIFACTS="$BUILD/fuzz-artifacts"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pipemsg-fuzz.XXXXXX")
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=""
# Two targets at once (FUZZ_JOBS): each libFuzzer process uses one CPU.
JOBS=${FUZZ_JOBS:-2}
batch=""
running=0
# Waits for the targets started in this batch and reports each, in order.
finish() {
  for t in $batch; do
    eval "pid=\$pid_$t"
    log="$ARTIFACTS/$t.log"
    if wait "$pid"; then
      grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" |
        sed "s/^/fuzz: $t: /" || true
    else
      echo "fuzz: $t FAILED; the end of its log:" >&2
      tail -n 40 "$log" >&2
      repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
      if [ -n "$repro" ]; then
        echo "fuzz: reproducer: $repro (replay: $BUILD/bin/$t $repro)" >&2
      fi
      failed="$failed $t"
    fi
  done
  batch=""
  running=0
}
for t in $TARGETS; do
  mkdir -p "$WORK/$t" "$ARTIFACTS/$t"
  cp tests/fuzz/corpus/"$t"/* "$WORK/$t/"
  dict=""
  [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
  log="$ARTIFACTS/$t.log"
  echo "fuzz: $t for ${SECONDS_EACH}s (log $log)"
  # shellcheck disable=SC2086
  "$BUILD/bin/$t" -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT_S" -max_len="$MAX_LEN" \
    -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t/" $dict "$WORK/$t" >"$log" 2>&1 &
  eval "pid_$t=$!"
  batch="$batch $t"
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    finish
  fi
done
finish
rm -rf "$WORK"
if [ -n "$failed" ]; then
  echo "fuzz: findings in:$failed" >&2
  exit 1
fi
echo "fuzz: no findings"
