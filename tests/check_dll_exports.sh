#!/bin/sh
# libpipemsg.dll exports the public API (pm_ then a letter) and nothing else: no library
# internal (pm__), no symbol of the dependencies linked into it (cmake/windef.cmake).
# Usage: check_dll_exports.sh OBJDUMP DLL
set -eu
names=$("$1" -p "$2" |
  sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/s/^[[:space:]]*\[ *[0-9]*\] //p')
echo "$names" | grep -qx pm_msg_decode || { echo "pm_msg_decode not exported" >&2; exit 1; }
if echo "$names" | grep -v '^pm_[a-z]'; then
  echo "exported beyond the public API (above)" >&2
  exit 1
fi
echo "$(echo "$names" | wc -l) exports, all public API"
