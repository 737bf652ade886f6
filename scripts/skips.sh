#!/bin/sh
# Why each skipped test skipped, from the last CTest run in BUILD: CTest reports a program that
# exited PM_TEST_SKIPPED (77) as Skipped, but not the reason its tests printed (pm_test_skip).
set -eu
log=${1:-build}/Testing/Temporary/LastTest.log
[ -f "$log" ] || exit 0
awk '/^[0-9]+\/[0-9]+ Testing: / { program = $3 }
     /^skipped: / { reason = substr($0, 10) }
     /^\[  SKIPPED \] / && reason != "" { print "skipped: " program " " $4 ": " reason; reason = "" }' "$log"
