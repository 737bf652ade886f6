#!/bin/sh
# A scripted session against a private pipemsgd: each request and response is shown, and a
# watcher on the event pipe prints the events as they arrive (lines marked [watch]).
set -eu
bin=${1:-build/bin}
dir=$(mktemp -d /tmp/pipemsg-demo.XXXXXX)
cmd="$dir/cmd"
evt="$dir/evt"
svc_pid=""
watch_pid=""
cleanup() {
  [ -n "$watch_pid" ] && kill -INT "$watch_pid" 2>/dev/null && wait "$watch_pid" 2>/dev/null
  [ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null && wait "$svc_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }
call() { "$bin/pipemsg" call -v -c "$cmd" "$@" 2>&1 || true; }

step "starting pipemsgd on $cmd and $evt"
"$bin/pipemsgd" -c "$cmd" -e "$evt" --connect-delay-ms 800 -v 2>"$dir/pipemsgd.log" &
svc_pid=$!

# The client waits (up to its connect timeout) for the service to come up.
step "GetVersion";  call GetVersion

step "attaching a watcher: pipemsg watch -e $evt"
mkfifo "$dir/watch"
sed -u 's/^/    [watch] /' <"$dir/watch" &
"$bin/pipemsg" watch -e "$evt" >"$dir/watch" 2>&1 &
watch_pid=$!

step "GetState";    call GetState
step "StartVpn to de with the kill switch"
call StartVpn Location=de EnableKillSwitch=true
step "StartVpn again while it is connecting: refused"
call StartVpn Location=de
step "waiting for Connected"
until "$bin/pipemsg" call -c "$cmd" GetState 2>/dev/null | grep -q '"Connected"'; do sleep 0.2; done
call GetState
step "traffic flows for two seconds (TrafficChanged every second)"
sleep 2.2
step "GetTraffic over XML"; call --xml GetTraffic
step "StopVpn";     call StopVpn
step "an unknown command"; call Frobnicate
sleep 0.3
step "GetStats";    call GetStats
step "stopping the watcher and pipemsgd (SIGINT, SIGTERM)"
kill -INT "$watch_pid"; wait "$watch_pid" || true; watch_pid=""
kill -TERM "$svc_pid"; wait "$svc_pid" || true; svc_pid=""
step "pipemsgd's log"
cat "$dir/pipemsgd.log"
