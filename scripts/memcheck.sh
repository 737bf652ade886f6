#!/bin/sh
# Every test under valgrind: the test program itself, and every pipemsgd it starts
# (PM_TEST_VALGRIND: a leak or memory error there makes the test fail). A program that skipped
# a test (exit 77, as under CTest) is clean: what ran of it was checked. Two programs run at
# once (PM_MEMCHECK_JOBS): valgrind runs each on one CPU, and the tests' deadlines are ten times
# longer under it (pm_test_margin_ms).
set -eu
if [ "${1:-}" = --one ]; then
  build=$2
  t=$3
  name=$(basename "$t")
  # test_dotnet's library code runs inside mono, which valgrind would have to follow (and then
  # reports the runtime's JIT and garbage collector, not libpipemsg); its pipemsgd and client
  # paths are the ones the C tests check here.
  if [ "$name" = test_dotnet ]; then
    echo "memcheck: $name not run: libpipemsg runs inside mono there (docs/testing.md)"
    exit 0
  fi
  rc=0
  PM_TEST_VALGRIND=1 valgrind --quiet --leak-check=full \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
    "$t" >"$build/memcheck-$name.log" 2>&1 || rc=$?
  case $rc in
  0) echo "memcheck: $name clean" ;;
  77) echo "memcheck: $name clean; skipped: $(sed -n 's/^skipped: //p' "$build/memcheck-$name.log" |
      sort -u | paste -sd ';' -)" ;;
  *)
    # One write, so that the other program's lines do not come in between.
    printf 'memcheck: %s failed; see %s\n%s\n' "$name" "$build/memcheck-$name.log" \
      "$(tail -40 "$build/memcheck-$name.log")" >&2
    exit 1
    ;;
  esac
  exit 0
fi
build=${1:-build}
rc=0
ls "$build"/bin/test_* | xargs -n 1 -P "${PM_MEMCHECK_JOBS:-2}" sh "$0" --one "$build" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "memcheck: failed (see above)" >&2
  exit 1
fi
echo "memcheck: every test clean"
