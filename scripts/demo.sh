#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# make demo: vblkd (linked with the Xen simulator) serving two simulated guests with three disks.
#
# The simulator plays Xen, xenstored and libxl; its guests run their own virtio-blk driver and
# reach vblkd through real ioreqs and event channels, exactly as on Xen.  Everything lives in a
# temporary directory that is removed at the end.
set -euo pipefail

BUILD=${BUILD:-build/default}
XENSIM=$BUILD/xensim
VBLKD=$BUILD/vblkd-sim
for b in "$XENSIM" "$VBLKD"; do
	[ -x "$b" ] || { echo "demo: $b is not built (run make)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/var/tmp}/vblkd-demo.XXXXXX")
sim_pid='' vblkd_pid=''
cleanup() {
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
	[ -n "$vblkd_pid" ] && kill "$vblkd_pid" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

say "Disk images in $work"
truncate -s 64M "$work/web-root.img"
truncate -s 64M "$work/db-root.img"
# A read-only data disk with known contents.
head -c 16M /dev/urandom >"$work/web-data.img"
data_sum=$(sha256sum <"$work/web-data.img")
ls -l "$work"/*.img | awk '{print "   ", $5, $9}'

export XENSIM_SOCKET=$work/xen.sock
ctl=$work/control

say "The Xen simulator: guest 'web' (2 vCPUs: web-root rw, web-data ro), guest 'db' (4 vCPUs: db-root rw)"
echo "   (like xl create with disk = [ '..., backendtype=standalone, specification=virtio, target=...' ])"
# --serve: the simulated Xen stays up after the workloads, until vblkd has stopped.
"$XENSIM" --log-level warning --progress --serve \
	--guest "name=web,vcpus=2,mem=128M,disk=$work/web-root.img:rw:discard,disk=$work/web-data.img:ro" \
	--guest "name=db,vcpus=4,mem=128M,disk=$work/db-root.img:rw:discard" \
	--workload verify --workload random,seed=42,ops=3000 \
	>"$work/xensim.out" 2>"$work/xensim.err" &
sim_pid=$!
for _ in $(seq 100); do [ -S "$XENSIM_SOCKET" ] && break; sleep 0.05; done

say "vblkd, already running before the guests start (as under systemd)"
"$VBLKD" --foreground --queues=2 --control-socket="$ctl" 2>"$work/vblkd.log" &
vblkd_pid=$!

# Show the daemon's view while all three disks are busy.
for _ in $(seq 200); do
	"$VBLKD" --status --control-socket="$ctl" 2>/dev/null | grep -q ' 3 disks' && break
	sleep 0.05
done
sleep 1
say "vblkd --status while the guests run"
"$VBLKD" --status --control-socket="$ctl"

say "kill -9 vblkd while the guests run, start it again as systemd would: they keep their disks"
kill -KILL "$vblkd_pid"
wait "$vblkd_pid" 2>/dev/null || true
"$VBLKD" --foreground --queues=2 --control-socket="$ctl" 2>>"$work/vblkd.log" &
vblkd_pid=$!
for _ in $(seq 200); do
	"$VBLKD" --status --control-socket="$ctl" 2>/dev/null | grep -q 'adopted' && break
	sleep 0.05
done
"$VBLKD" --status --control-socket="$ctl"

say "Workloads: verify (patterns written, read back, compared with the files) and a random mix"
# The simulator prints its verdict once the guests are done and destroyed.
for _ in $(seq 1200); do
	grep -q '^xensim: \(all passed\|FAILED\)' "$work/xensim.out" && break
	kill -0 "$sim_pid" 2>/dev/null || break
	sleep 0.1
done
sed -n 's/^/   /p' "$work/xensim.err" | grep -v '^   *$' | tail -n 4 || true
rc=1
grep -q '^xensim: all passed' "$work/xensim.out" && rc=0
say "Results per disk"
sed 's/^/   /' "$work/xensim.out"

[ "$(sha256sum <"$work/web-data.img")" = "$data_sum" ] ||
	{ echo "demo: the read-only disk changed" >&2; rc=1; }

say "vblkd: SIGTERM (a guest still running would stay attached for the next vblkd)"
kill -TERM "$vblkd_pid"
vrc=0
wait "$vblkd_pid" || vrc=$?
vblkd_pid=''
sed 's/^/   /' "$work/vblkd.log"
echo "   vblkd exit status: $vrc"
kill -TERM "$sim_pid" 2>/dev/null || true
wait "$sim_pid" 2>/dev/null || true
sim_pid=''

if [ "$rc" -eq 0 ] && [ "$vrc" -eq 0 ]; then
	say "demo: all guests' data verified; the read-only disk is unchanged"
	exit 0
fi
say "demo: FAILED (simulator exit $rc, vblkd exit $vrc)"
exit 1
