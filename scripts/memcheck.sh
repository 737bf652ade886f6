#!/bin/sh
# Every test under valgrind: test programs that run the library in-process are run by valgrind
# directly; tests that start pipemsgd run it under valgrind (PM_TEST_VALGRIND).
set -eu
build=${1:-build}
status=0
for t in "$build"/bin/test_*; do
  name=$(basename "$t")
  case "$name" in
    test_command_pipe|test_service|test_event_pipe|test_cli)
      PM_TEST_VALGRIND=1 "$t" >"$build/memcheck-$name.log" 2>&1 || status=1 ;;
    *)
      valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=99 "$t" >"$build/memcheck-$name.log" 2>&1 || status=1 ;;
  esac
  if [ $status -ne 0 ]; then
    echo "memcheck: $name failed; see $build/memcheck-$name.log" >&2
    tail -30 "$build/memcheck-$name.log" >&2
    exit 1
  fi
  echo "memcheck: $name clean"
done
