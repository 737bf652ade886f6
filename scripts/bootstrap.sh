#!/bin/sh
# Installs the Debian packages pipemsg needs to build and test; a quick no-op when all are present.
# `bootstrap.sh windows` installs the Windows set instead (make windows, make check-windows): the
# mingw-w64 cross compiler and wine, plus dpkg-dev and deb-src entries so that
# scripts/windows-deps.sh can fetch the dependencies' Debian sources with `apt-get source`.
set -eu
# python3 (3.11: tomllib) runs scripts/contract.py; python3-jsonschema and python3-xmlschema are the
# independent validators of the contract conformance test (tests/contract/conformance.py);
# python3-pytest runs the Python binding's tests (bindings/python/tests); zsh
# loads `pipemsg completion zsh` in test_cli; mono-mcs compiles the C# binding (bindings/dotnet)
# and mono-runtime runs its tests.
PKGS="cmake ninja-build gcc pkg-config libuv1-dev libjansson-dev libxml2-dev libcmocka-dev libsqlite3-dev valgrind libzmq3-dev clang libclang-rt-14-dev systemd gcovr python3 python3-jsonschema python3-xmlschema python3-pytest zsh mono-mcs mono-runtime"
WIN_PKGS="cmake ninja-build gcc make pkg-config gcc-mingw-w64-x86-64 mingw-w64-tools wine wine64
  dpkg-dev"
# Where deb-src entries are added when the system has none (mirroring its deb entries).
SRC_DIR=/etc/apt/sources.list.d

set_name=${1:-linux}
case $set_name in
  linux) pkgs=$PKGS ;;
  windows) pkgs=$WIN_PKGS ;;
  *) echo "usage: bootstrap.sh [linux|windows]" >&2; exit 2 ;;
esac

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# True when apt has a source-package entry (deb-src) enabled somewhere.
has_deb_src() {
  grep -Eqs '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
}

# The system's own Debian deb entries, turned into deb-src ones (same mirrors, suites, keys).
# Prints the file to write, then its contents: deb822 .sources when the system uses them.
deb_src_entries() {
  sources=$(grep -l debian /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  if [ -n "$sources" ]; then
    echo "$SRC_DIR/pipemsg-deb-src.sources"
    for f in $sources; do
      sed -e 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb-src/' "$f"
      echo
    done
  else
    echo "$SRC_DIR/pipemsg-deb-src.list"
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -n 's/^[[:space:]]*deb[[:space:]]\(.*debian.*\)$/deb-src \1/p'
  fi
}

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
need_src=""
if [ "$set_name" = windows ] && ! has_deb_src; then
  need_src=1
fi
[ -z "$missing" ] && [ -z "$need_src" ] && exit 0

export DEBIAN_FRONTEND=noninteractive
if [ -n "$need_src" ]; then
  entries=$(deb_src_entries)
  src_file=$(printf '%s\n' "$entries" | sed -n 1p)
  if ! printf '%s\n' "$entries" | sed 1d | grep -q '[^[:space:]]'; then
    echo "bootstrap: no Debian deb entry to mirror; add a deb-src entry by hand" >&2
    exit 1
  fi
  echo "bootstrap: adding deb-src entries in $src_file" >&2
  printf '%s\n' "$entries" | sed 1d | $SUDO tee "$src_file" >/dev/null
fi
[ -n "$missing" ] && echo "bootstrap: installing$missing" >&2
$SUDO apt-get update -q
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -q --no-install-recommends $missing
fi
