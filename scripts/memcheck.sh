#!/bin/sh
# Every test under valgrind: the test program itself, and every pipemsgd it starts
# (PM_TEST_VALGRIND: a leak or memory error there makes the test fail).
set -eu
build=${1:-build}
for t in "$build"/bin/test_*; do
  name=$(basename "$t")
  if ! PM_TEST_VALGRIND=1 valgrind --quiet --leak-check=full \
      --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
      "$t" >"$build/memcheck-$name.log" 2>&1; then
    echo "memcheck: $name failed; see $build/memcheck-$name.log" >&2
    tail -40 "$build/memcheck-$name.log" >&2
    exit 1
  fi
  echo "memcheck: $name clean"
done
