#!/bin/sh
# test_install: `cmake --install` of an already built tree into a temporary prefix, then
# programs built against that install, once through pkg-config and once through
# find_package(pipemsg), and against the build tree through libpipemsg-uninstalled.pc.
#
# usage: check_install.sh BUILD_DIR [--run] PROJECT_DIR...
# A PROJECT_DIR is a standalone CMake project (its CMakeLists.txt uses find_package(pipemsg))
# whose every FILE.c is also a program on its own (the pkg-config build). The projects after
# --run also run: each program they build must exit 0 with no argument and no service.
# Environment (tests/CMakeLists.txt sets it): CC, CFLAGS, CMAKE, CMAKE_GENERATOR, PKG_CONFIG,
# PM_LIBDIR, PM_INCLUDEDIR, PM_BINDIR, PM_MANDIR (install directories, relative to the
# prefix), PM_SONAME, PM_SOURCE_DIR; PM_PYTHON3, PM_PYTHON_SITEDIR, PM_PYTHON_PRELOAD (the
# Python package's check, skipped without PM_PYTHON3); PM_MCS, PM_MONO, PM_CLI_DIR,
# PM_DOTNET_PRELOAD (the C# assembly's check, skipped without PM_MCS).
set -eu
build=$1
shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pmtest-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix
libdir=$prefix/$PM_LIBDIR

fail() {
  echo "test_install: $*" >&2
  exit 1
}

# Runs "$@" quietly; on failure prints its output and fails with the command.
quiet() {
  "$@" >"$tmp/out.log" 2>&1 || { cat "$tmp/out.log" >&2; fail "failed: $*"; }
}

quiet "$CMAKE" --install "$build" --prefix "$prefix"

# Where everything went.
for f in "$PM_INCLUDEDIR/pipemsg/pipemsg.h" "$PM_LIBDIR/libpipemsg.a" "$PM_LIBDIR/$PM_SONAME" \
  "$PM_LIBDIR/pkgconfig/libpipemsg.pc" "$PM_LIBDIR/cmake/pipemsg/pipemsgConfig.cmake" \
  "$PM_LIBDIR/cmake/pipemsg/pipemsgConfigVersion.cmake" "$PM_BINDIR/pipemsgd" \
  "$PM_BINDIR/pipemsg" "$PM_MANDIR/man8/pipemsgd.8" "$PM_MANDIR/man1/pipemsg.1" \
  lib/systemd/system/pipemsgd.service lib/systemd/system/pipemsgd-command.socket \
  lib/systemd/system/pipemsgd-event.socket; do
  test -f "$prefix/$f" || fail "not installed: $f"
done
# The Python package (when tests/CMakeLists.txt passes PM_PYTHON3): installed under the prefix,
# it loads the library of this install (pipemsg/_installed.py), not another one.
if [ -n "${PM_PYTHON3:-}" ]; then
  got=$(cd "$tmp" && env PYTHONPATH="$prefix/$PM_PYTHON_SITEDIR" PIPEMSG_LIBRARY= \
    LD_PRELOAD="${PM_PYTHON_PRELOAD:-}" ASAN_OPTIONS=detect_leaks=0 "$PM_PYTHON3" -B -c \
    'import pipemsg, pipemsg._lib; print(pipemsg._lib.path)') ||
    fail "the installed Python package pipemsg does not import"
  test "$got" = "$libdir/$PM_SONAME" || fail "the installed pipemsg loads $got, not $libdir/$PM_SONAME"
fi
# The C# assembly (when tests/CMakeLists.txt passes PM_MCS): a program compiled against the
# installed PipeMsg.dll runs a call through the installed PipeMsg.dll.config's libpipemsg, the
# SONAME, which the loader finds in this install's libdir as it does for the C programs below.
if [ -n "${PM_MCS:-}" ]; then
  for f in PipeMsg.dll PipeMsg.dll.config; do
    test -f "$prefix/$PM_CLI_DIR/$f" || fail "not installed: $PM_CLI_DIR/$f"
  done
  mkdir "$tmp/cs"
  quiet "$PM_MCS" -langversion:7 -warnaserror -nologo -target:exe \
    -r:"$prefix/$PM_CLI_DIR/PipeMsg.dll" -out:"$tmp/cs/InstallCheck.exe" \
    "$PM_SOURCE_DIR/tests/install/dotnet/InstallCheck.cs"
  got=$(cd "$tmp" && env MONO_PATH="$prefix/$PM_CLI_DIR" LD_LIBRARY_PATH="$libdir" \
    LD_PRELOAD="${PM_DOTNET_PRELOAD:-}" \
    ASAN_OPTIONS=detect_leaks=0:handle_segv=0:allow_user_segv_handler=1 \
    "$PM_MONO" "$tmp/cs/InstallCheck.exe") || fail "InstallCheck.exe against the installed PipeMsg.dll failed"
  # The maps name the file the SONAME's link leads to.
  want=$(readlink -f "$libdir/$PM_SONAME")
  test "$got" = "$want" || fail "the installed PipeMsg.dll loads $got, not $want"
fi
readelf -d "$libdir/$PM_SONAME" | grep -q "(SONAME).*\[$PM_SONAME\]" ||
  fail "$PM_SONAME: SONAME is not $PM_SONAME"
execstart=$(sed -n 's/^ExecStart=//p' "$prefix/lib/systemd/system/pipemsgd.service")
case $execstart in
"$prefix/$PM_BINDIR/pipemsgd "*) ;;
*) fail "pipemsgd.service: ExecStart=$execstart does not start with $prefix/$PM_BINDIR/pipemsgd" ;;
esac

# The installed .pc: its prefix is the install's; an app gets libuv and jansson (what the
# public headers include), libxml2 and SQLite only when it links statically.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pc_prefix=$("$PKG_CONFIG" --variable=prefix libpipemsg)
test "$pc_prefix" = "$prefix" || fail "libpipemsg.pc: prefix=$pc_prefix, not $prefix"
requires=$("$PKG_CONFIG" --print-requires libpipemsg | sort | tr '\n' ' ')
test "$requires" = "jansson libuv " || fail "libpipemsg.pc: Requires is '$requires', not libuv jansson"
private=$("$PKG_CONFIG" --print-requires-private libpipemsg | sort | tr '\n' ' ')
test "$private" = "libxml-2.0 sqlite3 " ||
  fail "libpipemsg.pc: Requires.private is '$private', not libxml-2.0 sqlite3"

# Builds each FILE.c of a project with the flags pkg-config gives ($1: where the programs go,
# $2: the project).
pkg_config_build() {
  mkdir -p "$1"
  for c in "$2"/*.c; do
    name=$(basename "$c" .c)
    # Word splitting of the flags is intended.
    # shellcheck disable=SC2046,SC2086
    quiet $CC $CFLAGS -Wall -Wextra -Werror $("$PKG_CONFIG" --cflags libpipemsg) \
      -o "$1/$name" "$c" $("$PKG_CONFIG" --libs libpipemsg)
  done
}

# Runs every program in a directory ($1); each must exit 0.
run_all() {
  for exe in "$1"/*; do
    if test -f "$exe" && test -x "$exe"; then
      quiet "$exe"
      echo "test_install: ran $exe: $(head -n 1 "$tmp/out.log")"
    fi
  done
}

run=no
n=0
for project in "$@"; do
  if test "$project" = --run; then
    run=yes
    continue
  fi
  n=$((n + 1))
  out=$tmp/p$n

  export PKG_CONFIG_PATH="$libdir/pkgconfig"
  pkg_config_build "$out/pkg-config" "$project"
  # The shared library keeps libxml2 and SQLite to itself.
  for exe in "$out/pkg-config"/*; do
    if readelf -d "$exe" | grep -E 'NEEDED.*(libxml2|libsqlite3)'; then
      fail "$exe links libxml2 or SQLite through libpipemsg.pc"
    fi
  done

  quiet "$CMAKE" -S "$project" -B "$out/cmake" -G "$CMAKE_GENERATOR" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$CFLAGS" -DCMAKE_PREFIX_PATH="$prefix"
  quiet "$CMAKE" --build "$out/cmake"

  # The build tree, through libpipemsg-uninstalled.pc, which finds its library by itself.
  export PKG_CONFIG_PATH="$build/lib/pkgconfig"
  pc_include=$("$PKG_CONFIG" --variable=includedir libpipemsg)
  test "$pc_include" = "$PM_SOURCE_DIR/include" ||
    fail "libpipemsg-uninstalled.pc: includedir=$pc_include, not $PM_SOURCE_DIR/include"
  pkg_config_build "$out/uninstalled" "$project"

  if test $run = yes; then
    run_all "$out/uninstalled"
    LD_LIBRARY_PATH=$libdir run_all "$out/pkg-config"
    LD_LIBRARY_PATH=$libdir run_all "$out/cmake"
  fi
done
test $n -gt 0 || fail "no project given"
echo "test_install: ok"
