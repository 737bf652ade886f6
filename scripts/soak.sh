#!/bin/sh
# Builds and runs the soak test (tests/soak/soak.c): a real pipemsgd under a watcher, a
# publisher and a command caller, with random client kills, for SECONDS (default 120); then
# every durable event must have reached the watcher once, in order, and the counters must agree.
# Usage: scripts/soak.sh [SECONDS]. BUILD (default build) picks the build directory.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-120}
BUILD=${BUILD:-build}
make --no-print-directory build BUILD="$BUILD"
cmake --build "$BUILD" --target soak
exec "$BUILD/bin/soak" "$SECS" "$BUILD/bin/pipemsgd"
