#!/bin/sh
# Cross-builds pipemsg's dependencies for 64-bit Windows (mingw-w64) from Debian's own source
# packages (`apt-get source`): libuv, jansson, libxml2, SQLite and cmocka, as static libraries
# with pkg-config files, into BUILD_WIN/deps. Sources go to BUILD_WIN/src.
#
# Each dependency is built once: BUILD_WIN/deps/stamps/PACKAGE holds the Debian source version
# it was built from, and a later run skips it while that version is still the one apt offers.
# Needs `sh scripts/bootstrap.sh windows` first (mingw-w64, dpkg-dev and deb-src entries).
#
# Usage: windows-deps.sh [BUILD_WIN]   (default: build-win)
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_WIN=${1:-build-win}
mkdir -p "$BUILD_WIN"
BUILD_WIN=$(cd "$BUILD_WIN" && pwd)
SRC=$BUILD_WIN/src
PREFIX=$BUILD_WIN/deps
STAMPS=$PREFIX/stamps
HOST=x86_64-w64-mingw32
TOOLCHAIN=$ROOT/cmake/mingw-w64.cmake
# Two cores shared with other work: never more than two jobs.
JOBS=2
mkdir -p "$SRC" "$STAMPS" "$PREFIX/lib/pkgconfig" "$PREFIX/include"

log() { echo "windows-deps: $*" >&2; }

# The version of source package $1 that `apt-get source` would fetch now.
src_version() {
  apt-get source --only-source --print-uris "$1" 2>/dev/null |
    sed -n "s/^'[^']*' $1_\\(.*\\)\\.dsc .*/\\1/p" | head -n 1
}

# Fetches and unpacks source package $1 (Debian patches applied) into a fresh $SRC/$1 and
# prints the unpacked directory.
fetch() {
  rm -rf "${SRC:?}/$1"
  mkdir -p "$SRC/$1"
  (cd "$SRC/$1" && apt-get source --only-source -q "$1" >&2)
  find "$SRC/$1" -mindepth 1 -maxdepth 1 -type d | head -n 1
}

cmake_dep() { # SOURCE_DIR BUILD_DIR [CMAKE ARGS...]
  s=$1 b=$2
  shift 2
  cmake -S "$s" -B "$b" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$TOOLCHAIN" \
    -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
    -DBUILD_SHARED_LIBS=OFF "$@" >&2
  cmake --build "$b" -j "$JOBS" >&2
  cmake --install "$b" >&2
}

# A static-only prefix: the DLLs and import libraries a dependency installs anyway are removed,
# so that every program and libpipemsg.dll link the dependencies in and need no DLL beside them.
# For the same reason the pkg-config files carry their private flags in the public ones.
static_only() {
  rm -f "$PREFIX"/bin/*.dll "$PREFIX"/lib/*.dll.a
  for pc in "$PREFIX"/lib/pkgconfig/*.pc; do
    awk '/^Libs\.private:/ { sub(/^Libs\.private:/, ""); lp = lp $0; next }
         /^Cflags\.private:/ { sub(/^Cflags\.private:/, ""); cp = cp $0; next }
         { line[++n] = $0 }
         END { for (i = 1; i <= n; i++) {
                 l = line[i]
                 if (l ~ /^Libs:/) l = l lp
                 if (l ~ /^Cflags:/) l = l cp
                 print l } }' "$pc" >"$pc.tmp"
    mv "$pc.tmp" "$pc"
  done
}

build_libuv() { # libuv 1.44: its static target is uv_a (libuv_a.a, libuv-static.pc)
  cmake_dep "$1" "$1/build-win" -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF -DBUILD_TESTING=OFF
  mv "$PREFIX/lib/libuv_a.a" "$PREFIX/lib/libuv.a"
  sed -e 's/-luv_a/-luv/' "$PREFIX/lib/pkgconfig/libuv-static.pc" >"$PREFIX/lib/pkgconfig/libuv.pc"
  rm -f "$PREFIX/lib/pkgconfig/libuv-static.pc"
}

build_jansson() {
  cmake_dep "$1" "$1/build-win" -DJANSSON_BUILD_DOCS=OFF -DJANSSON_WITHOUT_TESTS=ON \
    -DJANSSON_EXAMPLES=OFF -DJANSSON_BUILD_SHARED_LIBS=OFF
  # jansson's CMake picks "I64d" on Windows, the MSVC runtime's spelling; pipemsg is built with
  # mingw's ANSI stdio (_POSIX_C_SOURCE), whose printf and -Werror=format take "lld".
  sed -i -e 's/"I64d"/"lld"/' "$PREFIX/include/jansson_config.h"
}

build_libxml2() {
  cmake_dep "$1" "$1/build-win" -DLIBXML2_WITH_ICONV=OFF -DLIBXML2_WITH_ZLIB=OFF \
    -DLIBXML2_WITH_LZMA=OFF -DLIBXML2_WITH_ICU=OFF -DLIBXML2_WITH_HTTP=OFF \
    -DLIBXML2_WITH_FTP=OFF -DLIBXML2_WITH_PYTHON=OFF -DLIBXML2_WITH_PROGRAMS=OFF \
    -DLIBXML2_WITH_TESTS=OFF -DLIBXML2_WITH_THREADS=ON -DCMAKE_C_FLAGS=-DLIBXML_STATIC
  # Without LIBXML_STATIC, libxml2's headers declare every function dllexport while it builds
  # (then every DLL linking it would export all of libxml2) and dllimport in its users.
  grep -q LIBXML_STATIC "$PREFIX/lib/pkgconfig/libxml-2.0.pc" ||
    sed -i -e 's/^Cflags:.*/& -DLIBXML_STATIC/' "$PREFIX/lib/pkgconfig/libxml-2.0.pc"
}

# SQLite's configure cannot cross-build (it builds its code generators as .exe), so the
# amalgamation is generated natively and sqlite3.c is compiled with the mingw compiler.
build_sqlite3() {
  b=$1/build-native
  mkdir -p "$b"
  (cd "$b" && ../configure --disable-tcl >&2 && make sqlite3.c >&2)
  sqlite_version=$(sed -n 's/^#define SQLITE_VERSION[[:space:]]*"\(.*\)"/\1/p' "$b/sqlite3.h")
  $HOST-gcc -O2 -DSQLITE_THREADSAFE=1 -DSQLITE_OMIT_LOAD_EXTENSION -c "$b/sqlite3.c" \
    -o "$b/sqlite3.o"
  rm -f "$PREFIX/lib/libsqlite3.a"
  $HOST-ar rcs "$PREFIX/lib/libsqlite3.a" "$b/sqlite3.o"
  cp "$b/sqlite3.h" "$PREFIX/include/"
  cat >"$PREFIX/lib/pkgconfig/sqlite3.pc" <<EOF
prefix=$PREFIX
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: SQLite
Description: SQL database engine (static, cross-built for Windows)
Version: $sqlite_version
Libs: -L\${libdir} -lsqlite3
Cflags: -I\${includedir}
EOF
}

build_cmocka() {
  # print_message() and friends get mingw's ANSI stdio, as pipemsg's tests do, and say so in
  # their format attribute: %zu and %lld then print, and are checked, as on Linux.
  cmake_dep "$1" "$1/build-win" -DWITH_STATIC_LIB=ON -DWITH_EXAMPLES=OFF -DUNIT_TESTING=OFF \
    -DPICKY_DEVELOPER=OFF -DCMAKE_C_FLAGS=-D__USE_MINGW_ANSI_STDIO=1
  sed -i -e 's/__format__ (__printf__, a, b)/__format__ (__gnu_printf__, a, b)/' \
    "$PREFIX/include/cmocka.h"
  # cmocka.pc names -lcmocka, which the static-only prefix must resolve to the static library.
  mv "$PREFIX/lib/libcmocka-static.a" "$PREFIX/lib/libcmocka.a"
}

for pkg in libuv1 jansson libxml2 sqlite3 cmocka; do
  version=$(src_version "$pkg")
  if [ -z "$version" ]; then
    log "apt offers no source for $pkg (no deb-src entries? sh scripts/bootstrap.sh windows)"
    exit 1
  fi
  if [ "$(cat "$STAMPS/$pkg" 2>/dev/null)" = "$version" ]; then
    continue
  fi
  log "building $pkg $version"
  start=$(date +%s)
  dir=$(fetch "$pkg")
  case $pkg in
    libuv1) build_libuv "$dir" ;;
    *) "build_$pkg" "$dir" ;;
  esac
  static_only
  echo "$version" >"$STAMPS/$pkg"
  log "$pkg $version built in $(($(date +%s) - start)) s"
done
