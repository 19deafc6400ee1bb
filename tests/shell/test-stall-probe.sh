#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# make bench's stall probe (tests/bench/stall-probe.c) reports the time the machine stopped running
# it (issue 19): stopped by SIGSTOP for 300 ms, it counts and lists one stall of at least 250 ms
# (its end on the monotonic clock), no more than the whole run; left alone on an idle machine,
# less than that; it ends on SIGTERM and at the end of its standard input, and refuses bad
# options with exit 2.
set -euo pipefail
BUILD=${BUILD:-build/default}
PROBE=$BUILD/stall-probe
[ -x "$PROBE" ] || { echo "$PROBE not built"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-stall.XXXXXX")
ppid_=''
cleanup() {
	[ -z "$ppid_" ] || kill "$ppid_" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$dir/out" 2>/dev/null || true; exit 1; }
# field NAME: a number (or true/false) from the probe's JSON report.
field() { sed -n "s/.*\"$1\": \([0-9.a-z]*\).*/\1/p" "$dir/out"; }
# at_least A B: whether the number A >= B.
at_least() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

# A probe stopped for 300 ms in the middle of its run, ended by SIGTERM (its standard input a pipe
# kept open meanwhile).
mkfifo "$dir/in"
"$PROBE" < "$dir/in" > "$dir/out" &
ppid_=$!
exec 3> "$dir/in"
sleep 0.3
kill -STOP "$ppid_"
sleep 0.3
kill -CONT "$ppid_"
sleep 0.2
kill -TERM "$ppid_"
wait "$ppid_" || fail "probe exited $? on SIGTERM"
ppid_=''
exec 3>&-
[ "$(field stalls)" -ge 1 ] || fail "a 300 ms stop not counted as a stall"
at_least "$(field max_ms)" 250 || fail "longest stall $(field max_ms) ms, stopped for 300"
at_least "$(field stalled_ms)" "$(field max_ms)" || fail "stalled_ms below max_ms"
at_least "$(field seconds)" 0.7 || fail "run of $(field seconds) s, expected about 0.8"
at_least "$(field seconds)" "$(awk -v s="$(field stalled_ms)" 'BEGIN { print s / 1000 }')" ||
	fail "stalled longer than the run"
[ "$(field wakeups)" -ge 100 ] || fail "only $(field wakeups) wake-ups in 0.8 s at 1 ms"
# Each stall listed with its end on the clock make bench reads (monotonic), the stop among them.
python3 - "$dir/out" <<'PY' || fail "stall list"
import json, sys, time
r = json.load(open(sys.argv[1]))
assert len(r["list"]) == r["stalls"], r
end, late = max(r["list"], key=lambda s: s[1])
assert late >= 250000 and abs(late / 1000 - r["max_ms"]) < 0.2, r
assert 0 < time.monotonic() * 1e6 - end < 60e6, (end, time.monotonic())
PY
echo "stopped 300 ms: $(field stalls) stall(s), longest $(field max_ms) ms, realtime $(field realtime)"

# Left alone for 0.5 s: no stall anywhere near the one above; ends at the end of its input.
(sleep 0.5) | "$PROBE" --threshold-us=20000 > "$dir/out" || fail "probe exited $? at end of input"
at_least "$(field seconds)" 0.4 || fail "ended after $(field seconds) s, before its input did"
at_least 250 "$(field max_ms)" || fail "a stall of $(field max_ms) ms on its own"

# Bad options: exit 2 with a message naming what was wrong.
for bad in --period-us=abc --period-us=0 --threshold-us=5000000 --nope extra; do
	rc=0
	"$PROBE" "$bad" < /dev/null > /dev/null 2> "$dir/err" || rc=$?
	[ "$rc" = 2 ] || fail "'$bad' exited $rc, expected 2"
	[ -s "$dir/err" ] || fail "'$bad' refused without a message"
done
echo "PASS: stall probe"
