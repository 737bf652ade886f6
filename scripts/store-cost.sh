#!/bin/sh
# What durability costs: time to publish N durable events with no client attached, in memory
# and with --data-dir (SQLite), measured in the same run. Usage: store-cost.sh [N] [BUILD]
set -eu
n=${1:-20000}
bin=${2:-build}/bin
dir=$(mktemp -d /tmp/pipemsg-store.XXXXXX)
trap 'rm -rf "$dir"' EXIT
run() {
  "$bin/pipemsgd" -c "$dir/cmd" -e "$dir/evt" --test-commands --queue-max-events "$n" "$@" \
    2>/dev/null &
  pid=$!
  "$bin/pipemsg" call -c "$dir/cmd" GetVersion >/dev/null
  start=$(date +%s%N)
  "$bin/pipemsg" call -c "$dir/cmd" EmitEvent Type=Cost Count="$n" >/dev/null
  end=$(date +%s%N)
  kill $pid; wait $pid || true
  echo $(( (end - start) / 1000 ))
}
mem=$(run)
disk=$(run --data-dir "$dir/data")
echo "events: $n"
echo "in memory:     $mem us total, $(( mem * 1000 / n )) ns/event"
echo "with data dir: $disk us total, $(( disk * 1000 / n )) ns/event"
echo "ratio: $(( disk * 10 / mem )) tenths"
echo "database: $(du -k "$dir/data/events.db" | cut -f1) KiB for $n events"
