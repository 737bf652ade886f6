#!/bin/sh
# Installs the Debian packages pipemsg needs to build and test; a quick no-op when all are present.
set -eu
PKGS="cmake ninja-build gcc pkg-config libuv1-dev libjansson-dev libxml2-dev libcmocka-dev libsqlite3-dev valgrind libzmq3-dev clang libclang-rt-14-dev systemd"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "bootstrap: installing$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
