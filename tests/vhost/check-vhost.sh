#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# `make check-vhost`: vblkd's vhost-user-blk exports against QEMU's vhost-user-blk-pci (TCG, no KVM)
# running Debian 12's kernel.  Each step prints its result and wall time; on a failure the step's
# output, the serial log's tail and vblkd's log are printed and the exit status is non-zero.
# Environment: VBLKD (the binary), VHOST_OUT (logs and images, default build/vhost),
# VBLKD_VHOST_CACHE (the kernel, default ~/.cache/vblkd-vhost), VHOST_TIMEOUT (per boot, seconds).
set -uo pipefail
H=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$H/../.." && pwd)
VBLKD=${VBLKD:-$TOP/build/default/vblkd}
OUT=${VHOST_OUT:-$TOP/build/vhost}
TMO=${VHOST_TIMEOUT:-240}
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
VC=${VBLKD_VHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vblkd-vhost}
export VBLKD_VHOST_CACHE=$VC
SIZE_RW=$((64 << 20))
SIZE_RO=$((4 << 20))
fails=0
nsteps=0
T0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

report() {	# name status seconds [detail]
	nsteps=$((nsteps + 1))
	printf 'check-vhost: %-44s %-4s %6ss%s\n' "$1" "$2" "$3" "${4:+  $4}"
	if [ "$2" != ok ]; then
		fails=$((fails + 1))
		[ ! -f "$OUT/step.log" ] || sed 's/^/    | /' "$OUT/step.log" | tail -n 20
		[ ! -f "$SERIAL" ] || { echo "    serial log tail ($SERIAL):"; tail -n 15 "$SERIAL" | sed 's/^/    | /'; }
		echo "    vblkd log tail ($OUT/vblkd.log):"
		tail -n 15 "$OUT/vblkd.log" | sed 's/^/    | /'
	fi
}
step() {	# name command...: run, report
	local name=$1 t
	shift
	t=$(date +%s.%N)
	if "$@" > "$OUT/step.log" 2>&1; then report "$name" ok "$(since "$t")"
	else report "$name" FAIL "$(since "$t")"; fi
}

VBLKD_ARGS=(--foreground --log-level=debug --state-dir= --control-socket="$OUT/ctl.sock"
	--vhost-user="$OUT/rw.sock,path=$OUT/rw.img"
	--vhost-user="$OUT/ro.sock,path=$OUT/ro.img,ro"
	--vhost-user="$OUT/mq.sock,path=$OUT/mq.img,direct,queues=2")
VPID=
vblkd_start() {
	rm -f "$OUT"/*.sock
	"$VBLKD" "${VBLKD_ARGS[@]}" >> "$OUT/vblkd.log" 2>&1 &
	VPID=$!
	for _ in $(seq 100); do
		[ -S "$OUT/mq.sock" ] && [ -S "$OUT/ctl.sock" ] && return 0
		kill -0 "$VPID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# qemu_run SCENARIO SERIAL SMP EXTRA-APPEND DISK...; a DISK is SOCK:QUEUES[:reconnect]
qemu_cmd() {
	local scen=$1 smp=$2 append=$3 i=0 d
	shift 3
	Q=(qemu-system-x86_64 -accel tcg -smp "$smp" -m 512 -nographic -nic none
		-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem
		-kernel "$VC/kernel/vmlinuz" -initrd "$OUT/initrd.gz"
		-append "console=ttyS0 quiet panic=-1 vscen=$scen vsize_a=$SIZE_RW vsize_b=$SIZE_RO $append")
	for d in "$@"; do
		IFS=: read -r sock nq rc <<< "$d"
		Q+=(-chardev "socket,id=c$i,path=$OUT/$sock${rc:+,reconnect=1}"
			-device "vhost-user-blk-pci,chardev=c$i,num-queues=$nq")
		i=$((i + 1))
	done
}
# The guest's VSTEP lines as steps of ours; every step must be there and ok.
guest_steps() {	# serial expected-count
	local n=0 name st rest
	while read -r _ name st rest; do
		n=$((n + 1))
		if [ "$st" = ok ]; then report "  guest: $name" ok "$rest"
		else report "  guest: $name" FAIL 0 "$rest"; fi
	done < <(grep -ao 'VSTEP .*' "$1" | tr -d '\r')
	grep -aq '^VDONE' "$1" || [ "$2" = noend ] || { report "  guest: reached the end" FAIL 0; return 1; }
	[ "$n" -ge 1 ] || { report "  guest: any step" FAIL 0; return 1; }
}
boot() {	# name scenario smp append disk...: a whole boot, then its guest steps
	local name=$1 t
	SERIAL=$OUT/serial-$1.log
	shift
	qemu_cmd "$@"
	t=$(date +%s.%N)
	timeout "$TMO" "${Q[@]}" > "$SERIAL" 2>&1 < /dev/null
	rc=$?
	report "boot $name (QEMU exit $rc)" "$([ "$rc" = 0 ] && echo ok || echo FAIL)" "$(since "$t")"
	guest_steps "$SERIAL" end
}
wait_serial() {	# file pattern seconds
	for _ in $(seq $(($3 * 10))); do grep -aq "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

status_lists_exports() {
	"$VBLKD" --status --control-socket="$OUT/ctl.sock" > "$OUT/status.txt" || return 1
	cat "$OUT/status.txt"
	for s in rw ro mq; do grep -q "$OUT/$s.sock" "$OUT/status.txt" || return 1; done
	"$VBLKD" --status --json --control-socket="$OUT/ctl.sock" > "$OUT/status.json" || return 1
	python3 - "$OUT/status.json" <<'EOPY'
import json, sys
d = json.load(open(sys.argv[1]))
v = {e["socket"].rsplit("/", 1)[1]: e for e in d["vhost_user"]}
assert d["xen"] is False, "xen"
assert v["rw.sock"]["write_requests"] > 0 and v["rw.sock"]["errors"] == 0, v["rw.sock"]
assert v["ro.sock"]["mode"] == "ro" and v["ro.sock"]["write_requests"] == 0, v["ro.sock"]
assert v["mq.sock"]["queues"] == 2, v["mq.sock"]
EOPY
}

mkdir -p "$OUT"
: > "$OUT/vblkd.log"
SERIAL=
t=$(date +%s.%N)
"$H/fetch-kernel.sh" > "$OUT/step.log" 2>&1 && "$H/mkinitrd.sh" "$OUT/initrd.gz" >> "$OUT/step.log" 2>&1
report "kernel ($(cat "$VC/kernel.ok" 2>/dev/null)) and initramfs" "$([ $? = 0 ] && echo ok || echo FAIL)" "$(since "$t")"
[ "$fails" = 0 ] || exit 1
rm -f "$OUT/rw.img" "$OUT/mq.img"
truncate -s $SIZE_RW "$OUT/rw.img" "$OUT/mq.img"
python3 -c "
import sys
with open(sys.argv[1], 'wb') as f:
    for n in range($SIZE_RO // 512):
        h = b'vblkd-ro sector %08d\n' % n
        f.write(h + bytes(512 - len(h)))" "$OUT/ro.img"
cp "$OUT/ro.img" "$OUT/ro.orig"

step "vblkd starts with 3 vhost-user exports, no Xen" vblkd_start
step "  log: Xen is optional" grep -q "no xenstore.*serving the 3 vhost-user exports only" "$OUT/vblkd.log"
step "  log: ',direct' export opened with O_DIRECT" grep -q "mq.sock: serving .*(read-write, O_DIRECT," "$OUT/vblkd.log"
boot disk disk 1 "" rw.sock:1 ro.sock:1
step "  guest rebooted (the device restarted)" grep -aq "VSTEP after-reboot-fsck ok" "$SERIAL"
step "vblkd --status lists the exports (table, JSON)" status_lists_exports
boot mq mq 2 "" mq.sock:2
step "  vblkd started the device with 2 queues" grep -q "mq.sock: device started (2 queues" "$OUT/vblkd.log"

# QEMU killed mid-IO, then started again against the same vblkd.
SERIAL=$OUT/serial-qemu-kill.log
qemu_cmd io 1 "vrounds=40" rw.sock:1
t=$(date +%s.%N)
"${Q[@]}" > "$SERIAL" 2>&1 < /dev/null &
QPID=$!
wait_serial "$SERIAL" "VIO round 3" "$TMO"
kill -9 $QPID; wait $QPID 2>/dev/null
report "QEMU killed with -9 during IO (round 3)" "$(grep -aq 'VIO round 3' "$SERIAL" && echo ok || echo FAIL)" "$(since "$t")"
step "  vblkd saw it go and still serves" sh -c "sleep 0.5; grep -q 'rw.sock: front end disconnected' '$OUT/vblkd.log' && kill -0 $VPID"
boot qemu-again verify 1 "" rw.sock:1

# vblkd killed with -9 under a running QEMU, started again: QEMU reconnects (reconnect=1) and the
# requests in flight are taken again from the inflight region.
SERIAL=$OUT/serial-vblkd-kill.log
qemu_cmd io 1 "vrounds=12" rw.sock:1:reconnect
t=$(date +%s.%N)
timeout "$TMO" "${Q[@]}" > "$SERIAL" 2>&1 < /dev/null &
QPID=$!
wait_serial "$SERIAL" "VIO round 3" "$TMO"
kill -9 "$VPID"; wait "$VPID" 2>/dev/null
echo "--- vblkd killed with -9 ---" >> "$OUT/vblkd.log"
report "vblkd killed with -9 during IO (round 3)" "$(grep -aq 'VIO round 3' "$SERIAL" && echo ok || echo FAIL)" "$(since "$t")"
step "vblkd started again under the running QEMU" vblkd_start
wait $QPID
rc=$?
report "  QEMU reconnected, guest finished (QEMU exit $rc)" "$([ "$rc" = 0 ] && echo ok || echo FAIL)" "$(since "$t")"
guest_steps "$SERIAL" end
step "  vblkd took the front end again" sh -c "sed -n '/vblkd killed/,\$p' '$OUT/vblkd.log' | grep -q 'rw.sock: device started'"
# Whether requests were in flight at the kill depends on timing: reported, not required.
"$VBLKD" --status --json --control-socket="$OUT/ctl.sock" > "$OUT/status2.json" 2>/dev/null
report "  requests taken again from the inflight region: $(python3 -c "import json,sys; print([e['resubmitted'] for e in json.load(open(sys.argv[1]))['vhost_user'] if e['socket'].endswith('/rw.sock')][0])" "$OUT/status2.json" 2>/dev/null)" ok 0

step "vblkd exits 0 on SIGTERM" sh -c "kill -TERM $VPID; wait $VPID 2>/dev/null; for i in \$(seq 50); do kill -0 $VPID 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
step "images: e2fsck of rw.img and mq.img clean" sh -c "e2fsck -fn '$OUT/rw.img' && e2fsck -fn '$OUT/mq.img'"
step "images: the read-only image is unchanged" cmp "$OUT/ro.img" "$OUT/ro.orig"
printf 'check-vhost: %d steps, %d failed, %ss\n' "$nsteps" "$fails" "$(since "$T0")"
[ "$fails" = 0 ]
