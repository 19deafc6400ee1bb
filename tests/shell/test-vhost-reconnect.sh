#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# vhost-user requests in flight are never lost (issue 21): a front end (tests/vhost/vu-load) writes at
# queue depth 32 while vblkd is killed -9 and restarted on its socket, and while the front end itself
# drops and retakes the connection; every request completes exactly once and the file holds what was
# written last to each block.
set -euo pipefail
. "$(dirname "$0")/lib-vhost.sh" vhost-reconnect

# count PATTERN: lines of vblkd's log (every instance of this scenario) that match.
count() { grep -c "$1" "$dir/vblkd.log" || true; }

# wait_log PATTERN N: until more than N lines match (vblkd logs each step once).
wait_log() {
	for _ in $(seq 400); do
		[ "$(count "$1")" -gt "$2" ] && return 0
		kill -0 "$vpid" 2>/dev/null || fail "vblkd exited"
		sleep 0.05
	done
	fail "vblkd did not log '$1' in 20 s"
}

vblkd_start() {	# [export options]: a new vblkd, listening
	local n
	n=$(count "vblkd .* started")
	"$VBLKD" --foreground --state-dir= --log-level=info --control-socket="$dir/control" \
		--vhost-user="$sock,path=$img$1" >> "$dir/vblkd.log" 2>&1 &
	vpid=$!
	wait_log "vblkd .* started" "$n"
}

# load SECONDS [vu-load options...]: random writes at QD32 in the background, reconnecting for 20 s.
load() {
	local t=$1
	shift
	"$LOAD" --socket="$sock" --rw=randwrite --bs=4096 --qd=32 --time="$t" --reconnect=20 \
		--file="$img" "$@" > "$dir/load.out" 2> "$dir/load.err" &
	lpid=$!
}

load_wait() {	# the front end's verdict: every request done once, every block right
	local rc=0
	wait "$lpid" || rc=$?
	lpid=''
	[ "$rc" = 0 ] || fail "the front end found a lost, repeated or wrong request (exit $rc)"
}

# 1. vblkd killed -9 four times or more under the writes, restarted each time on the same socket.
for opts in "" ",direct"; do
	: > "$dir/vblkd.log"
	n=0
	vblkd_start "$opts"
	load 60
	k=0
	while :; do
		# Each kill hits a device that runs the front end's writes.
		wait_log "device started" "$n"
		n=$(count "device started")
		# Four kills at least; more (12 at most) until one caught requests in vblkd's inflight
		# region: through the page cache, writes can all be complete at a kill on a loaded machine.
		if [ $k -ge 4 ]; then
			grep -q "requests in flight taken again" "$dir/vblkd.log" && break
			[ $k -lt 12 ] || break
		fi
		sleep 0.5
		kill -9 "$vpid"
		wait "$vpid" 2>/dev/null || true
		vblkd_start "$opts"
		k=$((k + 1))
	done
	sleep 0.5
	kill -USR1 "$lpid"
	load_wait
	[ "$(field reconnects)" -ge 4 ] || fail "the front end reconnected $(field reconnects) times, not 4"
	# The kills must have caught requests in flight, or this proved nothing.
	[ "$(field in_flight_at_disconnects)" -gt 0 ] || fail "no request was in flight at any kill"
	grep -q "requests in flight taken again" "$dir/vblkd.log" ||
		fail "no restarted vblkd took requests from the inflight region"
	echo "ok: vblkd killed $k times under QD32 writes${opts:+ (export $opts)}: $(field ops) writes, $(field in_flight_at_disconnects) in flight at the kills, none lost"
	# --status says how the export reaches its file: O_DIRECT on libaio, or the page cache on io_uring.
	"$VBLKD" --status --json --control-socket="$dir/control" > "$dir/status.json" ||
		fail "vblkd --status failed"
	python3 - "$dir/status.json" "$opts" <<'PY' || fail "--status does not show the export's O_DIRECT and engine"
import json, sys
e = json.load(open(sys.argv[1]))["vhost_user"][0]
direct = sys.argv[2] == ",direct"
sys.exit(0 if e["direct"] == direct and e["engine"] == ("aio" if direct else "uring") else 1)
PY
	kill "$vpid"
	wait "$vpid" 2>/dev/null || true
	vpid=''
done

# 2. The front end leaves every 300 ms with requests in flight and comes back; vblkd stays.  Six
# seconds for five reconnects: on a loaded 2-CPU machine a reconnect took over 600 ms.
: > "$dir/vblkd.log"
vblkd_start ""
load 6 --disconnect-every=300
load_wait
[ "$(field reconnects)" -ge 5 ] || fail "the front end reconnected $(field reconnects) times, not 5"
[ "$(field in_flight_at_disconnects)" -gt 0 ] || fail "no request was in flight at any disconnect"
kill -0 "$vpid" 2>/dev/null || fail "vblkd exited"
echo "ok: front end reconnected $(field reconnects) times: $(field ops) writes, none lost"
