#!/bin/sh
# Every test under valgrind: the test program itself, and every pipemsgd it starts
# (PM_TEST_VALGRIND: a leak or memory error there makes the test fail). A program that skipped
# a test (exit 77, as under CTest) is clean: what ran of it was checked.
set -eu
build=${1:-build}
for t in "$build"/bin/test_*; do
  name=$(basename "$t")
  # test_dotnet's library code runs inside mono, which valgrind would have to follow (and then
  # reports the runtime's JIT and garbage collector, not libpipemsg); its pipemsgd and client
  # paths are the ones the C tests check here.
  if [ "$name" = test_dotnet ]; then
    echo "memcheck: $name not run: libpipemsg runs inside mono there (docs/testing.md)"
    continue
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
    echo "memcheck: $name failed; see $build/memcheck-$name.log" >&2
    tail -40 "$build/memcheck-$name.log" >&2
    exit 1
    ;;
  esac
done
