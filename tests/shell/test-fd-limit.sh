#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The daemon started with a soft open file limit of 1024 under a hard one of 4096 runs with 4096 (issue 16).
set -euo pipefail
BUILD=${BUILD:-build/default}
if ! command -v prlimit >/dev/null; then
	echo "prlimit (util-linux) not installed"
	exit 77
fi
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 4096 ] && [ "$(id -u)" -ne 0 ]; then
	echo "hard open file limit $hard: cannot give the daemon 4096"
	exit 77
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-fdlimit.XXXXXX")
sim_pid='' vblkd_pid=''
cleanup() {
	[ -n "$vblkd_pid" ] && kill "$vblkd_pid" 2>/dev/null
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; sed 's/^/  vblkd: /' "$dir/vblkd.log"; exit 1; }

export XENSIM_SOCKET=$dir/xen.sock
mkfifo "$dir/ready"
"$BUILD/xensim" --serve --log-level err --ready-fd 3 3>"$dir/ready" 2>"$dir/xensim.log" &
sim_pid=$!
[ "$(timeout 10 head -c 1 "$dir/ready" | wc -c)" = 1 ] || { cat "$dir/xensim.log"; exit 1; }

# prlimit execs the daemon: same pid.
prlimit --nofile=1024:4096 "$BUILD/vblkd-sim" --foreground --control-socket="$dir/control" \
	2>"$dir/vblkd.log" &
vblkd_pid=$!
# Serving once its control socket answers.
for _ in $(seq 200); do
	"$BUILD/vblkd-sim" --status --control-socket="$dir/control" >/dev/null 2>&1 && break
	kill -0 "$vblkd_pid" 2>/dev/null || fail "vblkd-sim exited at start"
	sleep 0.05
done
"$BUILD/vblkd-sim" --status --control-socket="$dir/control" >/dev/null || fail "no answer to --status"

limits=$(awk '/^Max open files/ { print $4, $5 }' "/proc/$vblkd_pid/limits")
[ "$limits" = "4096 4096" ] || fail "open file limits (soft hard) '$limits', want '4096 4096'"
grep -q 'open file limit raised from 1024 to 4096' "$dir/vblkd.log" || fail "the raise is not logged"

kill -TERM "$vblkd_pid"
rc=0
wait "$vblkd_pid" || rc=$?
vblkd_pid=''
[ "$rc" = 0 ] || fail "vblkd-sim exit $rc after SIGTERM"
echo "fd limit: started with 1024:4096, runs with a soft limit of 4096"
