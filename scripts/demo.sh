#!/bin/sh
# A scripted session against a private pipemsgd: each request and response is shown.
set -eu
bin=${1:-build/bin}
dir=$(mktemp -d /tmp/pipemsg-demo.XXXXXX)
cmd="$dir/cmd"
svc_pid=""
cleanup() {
  [ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null && wait "$svc_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }
call() { "$bin/pipemsg" call -v -c "$cmd" "$@" 2>&1 || true; }

step "starting pipemsgd on $cmd"
"$bin/pipemsgd" -c "$cmd" -e "$dir/evt" --connect-delay-ms 800 -v 2>"$dir/pipemsgd.log" &
svc_pid=$!

# The client waits (up to its connect timeout) for the service to come up.
step "GetVersion";  call GetVersion
step "GetState";    call GetState
step "StartVpn to de with the kill switch"
call StartVpn Location=de EnableKillSwitch=true
step "StartVpn again while it is connecting: refused"
call StartVpn Location=de
step "waiting for Connected"
until "$bin/pipemsg" call -c "$cmd" GetState 2>/dev/null | grep -q '"Connected"'; do :; done
call GetState
step "GetTraffic";  call GetTraffic
step "the same over XML"; call --xml GetTraffic
step "StopVpn";     call StopVpn
step "an unknown command"; call Frobnicate
step "stopping pipemsgd (SIGTERM)"
kill -TERM "$svc_pid"; wait "$svc_pid" || true; svc_pid=""
step "pipemsgd's log"
cat "$dir/pipemsgd.log"
