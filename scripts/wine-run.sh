#!/bin/sh
# Runs a Windows program under wine as the Windows tests do (CTest's emulator, see
# cmake/mingw-w64.cmake): in the wine prefix PREFIX (created on first use, under a lock, so
# tests started together do not race to create it), with no display and no wine debug output.
# Usage: wine-run.sh PREFIX PROGRAM [ARGS...]
set -eu
mkdir -p "$(dirname "$1")"
prefix=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
shift
export WINEPREFIX="$prefix" WINEDEBUG=-all
unset DISPLAY
if [ ! -f "$prefix/system.reg" ]; then
  # shellcheck disable=SC2016 # expanded by the inner shell, under the lock
  flock "$prefix.lock" sh -c '[ -f "$WINEPREFIX/system.reg" ] || wineboot --init'
fi
exec wine "$@"
