#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Busy polling reaches vhost-user exports (issue 19): with --poll-us the loop looks at the front end's
# ring before it sleeps, and requests it finds that way are served like kicked ones. A front end
# (tests/vhost/vu-load) writes then reads at QD1, checking every byte; vblkd --status counts the
# polling spells that found work (poll_hits): some with --poll-us=32, none with --poll-us=0.
set -euo pipefail
. "$(dirname "$0")/lib-vhost.sh" vhost-poll

# status FIELD: a number from vblkd --status --json (the first export's, for the request counters).
status() {
	"$VBLKD" --status --json --control-socket="$dir/control" > "$dir/status.json" ||
		fail "vblkd --status failed"
	python3 - "$dir/status.json" "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
f = sys.argv[2]
print(s[f] if f in s else s["vhost_user"][0][f])
PY
}

# run POLL_US: writes then reads at QD1 through a fresh vblkd; its poll_hits into $hits.
run() {
	local ops=0 rw
	: > "$dir/vblkd.log"
	rm -f "$sock"
	"$VBLKD" --foreground --state-dir= --log-level=info --control-socket="$dir/control" \
		--poll-us="$1" --vhost-user="$sock,path=$img" >> "$dir/vblkd.log" 2>&1 &
	vpid=$!
	for _ in $(seq 400); do
		[ -S "$sock" ] && break
		kill -0 "$vpid" 2>/dev/null || fail "vblkd exited"
		sleep 0.05
	done
	[ -S "$sock" ] || fail "vblkd did not listen in 20 s"
	for rw in randwrite randread; do
		"$LOAD" --socket="$sock" --rw=$rw --bs=4096 --qd=1 --time=2 --file="$img" \
			> "$dir/load.out" 2> "$dir/load.err" ||
			fail "--poll-us=$1 $rw: the front end found a lost, repeated or wrong request"
		ops=$((ops + $(field ops)))
	done
	# Every request the front end counted was served (its stamping and read-back passes add more).
	[ $(($(status read_requests) + $(status write_requests))) -ge "$ops" ] ||
		fail "--poll-us=$1: vblkd counted fewer requests than the front end's $ops"
	[ "$(status errors)" = 0 ] || fail "--poll-us=$1: vblkd answered requests with errors"
	hits=$(status poll_hits)
	kill "$vpid"
	wait "$vpid" 2>/dev/null || true
	vpid=''
}

run 32
[ "$hits" -gt 0 ] || fail "--poll-us=32: no polling spell found a request (poll_hits 0)"
echo "ok: --poll-us=32: $hits polling spells found requests, every byte right"
run 0
[ "$hits" = 0 ] || fail "--poll-us=0: poll_hits $hits, but nothing should poll"
echo "ok: --poll-us=0: no polling"
