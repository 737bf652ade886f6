#!/bin/sh
# pipemsg/client.h is the one header an application needs: it compiles alone in strict C11,
# and pulls in neither uv.h nor jansson.h (nor the lower-level pipemsg headers), even
# indirectly (issue 11). Usage: check_header_alone.sh CC INCLUDE_DIR
set -eu
cc=$1
inc=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include "pipemsg/client.h"\nint main(void) {\n  pm_client_config cfg = {0};\n  (void)cfg;\n  return 0;\n}\n' >"$tmp/app.c"
"$cc" -std=c11 -Wall -Wextra -Werror -pedantic -I"$inc" -c "$tmp/app.c" -o "$tmp/app.o"
"$cc" -std=c11 -I"$inc" -M "$tmp/app.c" >"$tmp/deps"
if grep -E '(^|[ /])(uv|jansson)\.h' "$tmp/deps"; then
  echo "client.h includes uv.h or jansson.h" >&2
  exit 1
fi
if grep -E 'pipemsg/(message|command|event|codec)\.h' "$tmp/deps"; then
  echo "client.h includes a header of the lower-level API" >&2
  exit 1
fi
echo "client.h compiles alone; headers used:"
tr ' \\' '\n\n' <"$tmp/deps" | grep pipemsg/
