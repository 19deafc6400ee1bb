# SPDX-License-Identifier: GPL-2.0-only
# The Dom0 half of the `make check-xen` scenario (issue 7), sourced by /init once Xen's services run.
#
# 1. vblkd starts as its systemd unit starts it, before any `xl create`.
# 2. domu1: `xl create` with two virtio disks (rw image, ro image of known data) succeeds at once; the
#    guest runs its own steps (probe, mkfs, files, checksums, fsck, ro data, refused write, odd offsets).
# 3. `vblkd --status` lists the guest and both its disks (name, mode, image, IO done, no errors).
# 4. `xl destroy` is clean and vblkd released the guest (no dying domain, no foreign mappings left).
# 5. domu2 afterwards (new domid, 2 vCPUs: an IOREQ port per vCPU), then domu3 and domu4 at once,
#    each with its own disk; domu3 is destroyed, domu4 powers itself off (xl shutdown).
# 6. Afterwards the read-write images check clean with e2fsck and hold the guests' raw writes.
# In selftest mode ioreq-stub stands in for vblkd: the handshake, one IOREQ server per guest, empty
# virtio-mmio slots (DeviceID 0); Dom0 then checks the guest's register reads reached it.

MODE=$(cat /etc/vblkd-test-mode)
T=/usr/lib/vblkd-test
STORE=/srv/vblkd-test
RW_MIB=64
GUEST_MEM=192
# Seconds a guest gets for its steps (about 5 s on QEMU's own virtio-blk, see domu-reference.sh).
if [ "$MODE" = selftest ]; then GUEST_TIMEOUT=60; else GUEST_TIMEOUT=240; fi
BE_PID=         # notify-run, standing in for systemd
DAEMON_PID=     # vblkd (or ioreq-stub) itself
CLEAN_GUESTS=
FDS_IDLE=       # the backend's open fds with no guest, once the first guest is gone
# domu2 has 2 vCPUs with vblkd.  ioreq-stub answered only vCPU 0 of such a guest (it logged 1 vCPU;
# not yet understood), so the self-test keeps 1.
if [ "$MODE" = selftest ]; then DOMU2_VCPUS=1; else DOMU2_VCPUS=2; fi
BE=/local/domain/0/backend/virtio_disk
DEVID_RW=51712  # xvda
DEVID_RO=51728  # xvdb

# The images live on ext4 (over a loop device on tmpfs), as on a real host, not on rootfs.
setup_store() {
	local i
	mkdir -p /run/store "$STORE"
	mount -t tmpfs -o size=400m tmpfs /run/store || fail "tmpfs" || return
	dd if=/dev/zero of=/run/store/fs.img bs=1M count=0 seek=380 2>/dev/null || fail "store file" || return
	losetup /dev/loop0 /run/store/fs.img || fail "losetup" || return
	mkfs.ext4 -q -F /dev/loop0 || fail "mkfs.ext4 of the store" || return
	mount -t ext4 /dev/loop0 "$STORE" || fail "mount the store" || return
	cp "$T/ro.img" "$STORE/ro.img" || fail "copy ro.img" || return
	for i in 1 2 3 4; do
		dd if=/dev/zero of="$STORE/rw$i.img" bs=1M count=0 seek=$RW_MIB 2>/dev/null || fail "rw$i.img" || return
	done
	RO_SHA256=$(sha256sum "$STORE/ro.img" | cut -d' ' -f1)
	RO_SECTORS=$(($(wc -c < "$STORE/ro.img") / 512))
	ls -l "$STORE"
	STEP_NOTE="4 x $RW_MIB MiB rw, ro $RO_SECTORS sectors"
}

arm64_libs() {
	local out
	[ -x "$T/cross-probe" ] || skip "no cross-probe in this image" || return
	out=$("$T/cross-probe" 2>&1) || { echo "$out"; fail "the cross-built probe failed"; return; }
	echo "$out"
	STEP_NOTE=$(echo "$out" | tr '\n' ' ')
}

# The backend runs under notify-run, which stands in for systemd: it starts the unit's command, forwards
# the stop signal and exits with the daemon's status; with Type=notify it waits for READY=1.
start_backend() {
	local cmd notify i=0
	[ -x "$T/notify-run" ] || fail "no notify-run in this image" || return
	rm -f /run/vblkd.pid /run/vblkd.ready
	if [ "$MODE" = selftest ]; then
		[ -x "$T/ioreq-stub" ] || fail "no ioreq-stub in this image" || return
		cmd="$T/ioreq-stub"
		notify=notify
	else
		[ -x /usr/sbin/vblkd ] || fail "no /usr/sbin/vblkd in this image" || return
		/usr/sbin/vblkd --version || fail "vblkd --version" || return
		. /etc/default/vblkd    # the unit's EnvironmentFile: VBLKD_OPTS
		while read -r d; do mkdir -p "$d"; done < /etc/vblkd-unit-dirs
		cmd=$(cat /etc/vblkd-exec-start)
		notify=$(cat /etc/vblkd-unit-type)
		echo "as the unit's ExecStart (Type=$notify): $cmd  (VBLKD_OPTS=$VBLKD_OPTS)"
	fi
	if [ "$notify" = notify ]; then
		eval "\"$T/notify-run\" /run/vblkd.pid --notify /run/vblkd.ready -- $cmd > /var/log/vblkd.log 2>&1 &"
	else
		eval "\"$T/notify-run\" /run/vblkd.pid -- $cmd > /var/log/vblkd.log 2>&1 &"
	fi
	BE_PID=$!
	# Ready: READY=1 under Type=notify; otherwise (Type=exec) still running a second later.
	until { [ "$notify" = notify ] && [ -e /run/vblkd.ready ]; } || { [ "$notify" != notify ] && [ $i -ge 10 ]; }; do
		if ! kill -0 "$BE_PID" 2>/dev/null || [ $i -ge 100 ]; then
			cat /var/log/vblkd.log
			kill -0 "$BE_PID" 2>/dev/null || fail "the backend exited at once" || return
			fail "no READY=1 from the backend in 10 s"
			return
		fi
		usleep 100000
		i=$((i + 1))
	done
	DAEMON_PID=$(cat /run/vblkd.pid)
	cat /var/log/vblkd.log
	kill -0 "$DAEMON_PID" 2>/dev/null || fail "the backend is gone" || return
	STEP_NOTE="pid $DAEMON_PID, Type=$notify, ready after $((i * 100)) ms"
}

# mkcfg NAME RWIMAGE [VCPUS]: the guest's xl config, with the documented virtio disk lines.
mkcfg() {
	cat > "/etc/xen/$1.cfg" <<EOC
name = "$1"
type = "pvh"
kernel = "/boot/vmlinuz"
ramdisk = "/boot/domu.cpio.gz"
extra = "console=hvc0 rdinit=/init vblkd_test=$MODE vblkd_rw_sectors=$((RW_MIB * 2048)) vblkd_ro_sectors=$RO_SECTORS vblkd_ro_sha256=$RO_SHA256"
memory = $GUEST_MEM
vcpus = ${3:-1}
disk = [ 'format=raw, vdev=xvda, access=rw, backendtype=standalone, specification=virtio, target=$2',
         'format=raw, vdev=xvdb, access=ro, backendtype=standalone, specification=virtio, target=$STORE/ro.img' ]
EOC
}

domid_of() { eval "echo \${DOMID_$1:-}"; }

create_guest() {
	local name=$1 log=/var/log/xen/xl-create-$1.log rc domid dev s
	mkcfg "$name" "$2" "${3:-1}"
	xl -vvv create "/etc/xen/$name.cfg" > "$log" 2>&1
	rc=$?
	grep -E 'Virtio|error|timed out|wanted state' "$log" | head -n 20
	[ $rc = 0 ] || fail "xl create exited $rc" || return
	! grep -q 'timed out' "$log" || fail "libxl timed out waiting for the backend" || return
	! grep 'libxl: error' "$log" || fail "libxl logged errors" || return
	domid=$(xl domid "$name") || fail "xl domid $name" || return
	eval "DOMID_$name=$domid RW_$name=$2"
	for dev in $DEVID_RW $DEVID_RO; do
		s=$(xenstore-read "$BE/$domid/$dev/state")
		echo "$BE/$domid/$dev: state $s, base $(xenstore-read "$BE/$domid/$dev/base"), irq $(xenstore-read "$BE/$domid/$dev/irq")"
		[ "$s" = 2 ] || fail "backend state of $dev is '$s', want 2 (InitWait)" || return
	done
	STEP_NOTE="domid $domid, $(xl list "$name" | awk 'NR == 2 { print $4 }') vCPUs"
}

wait_guest() {
	local name=$1 log=/var/log/xen/console/guest-$1.log i=0
	until grep -q 'VBLKD-XEN DOMU-END' "$log" 2>/dev/null; do
		if [ $i -ge $GUEST_TIMEOUT ] || ! xl domid "$name" > /dev/null 2>&1; then
			tail -n 40 "$log" 2>/dev/null
			fail "the guest did not finish its steps in ${GUEST_TIMEOUT}s"
			return
		fi
		sleep 1
		i=$((i + 1))
		# A sign of life for the host, which takes a silent machine for a hung one.
		[ $((i % 20)) != 0 ] || echo "VBLKD-XEN WAITING $name ${i}s" > /dev/console
	done
	STEP_NOTE=$(grep 'VBLKD-XEN DOMU-END' "$log" | tr -d '\r' | sed 's/.*DOMU-END //')
	case $STEP_NOTE in
	*" fail=0 "*) CLEAN_GUESTS="$CLEAN_GUESTS $name" ;;
	esac
}

# The guest's step lines, renamed NAME:step, for the host; then its whole console log.
relay_guest() {
	local log=/var/log/xen/console/guest-$1.log
	tr -d '\r' < "$log" 2>/dev/null | sed -n "s/^VBLKD-XEN STEP /VBLKD-XEN STEP $1:/p"
	dump_log "guest-$1" "$log"
}

# The last 4000 lines of a log, framed for runner.py; the line count lets it notice lost output.
dump_log() {
	tail -n 4000 "$2" 2>/dev/null | tr -d '\r' | awk 1 > /tmp/dump
	echo "VBLKD-XEN LOG-BEGIN $1"
	cat /tmp/dump
	echo "VBLKD-XEN LOG-END $1 lines=$(wc -l < /tmp/dump)"
}

# selftest: the guest's virtio_mmio probe read both slots' registers through the IOREQ server.
ioreq_seen() {
	local domid base n
	domid=$(domid_of "$1")
	for base in 2000000 2000200; do
		n=$(grep -c "^access dom $domid addr 0x$base size 4 read" /var/log/vblkd.log)
		[ "$n" -gt 0 ] || fail "no register read of dom $domid at 0x$base reached ioreq-stub" || return
		echo "0x$base: $n register reads"
	done
	STEP_NOTE="both slots read through the IOREQ server"
}

# vblkd --status (the control socket's table, src/core/status.c) lists each running guest with both of
# its disks: one line per disk, "DOMID NAME DEVID VDEV MODE ENGINE QUEUES READS ... ERRORS INFLIGHT
# UPTIME PATH", then an indented line with the device's state.  Each disk must be there with the
# guest's name, its access mode and image, reads done, no failed request, and a running device.
backend_status() {
	local out name domid rc dev mode img names="$*"
	[ "$MODE" = real ] || skip "selftest: no vblkd" || return
	out=$(/usr/sbin/vblkd --status 2>&1) || { rc=$?; echo "$out"; fail "vblkd --status exited $rc"; return; }
	echo "$out"
	for name in "$@"; do
		domid=$(domid_of "$name")
		for dev in "$DEVID_RW xvda rw" "$DEVID_RO xvdb ro"; do
			set -- $dev
			mode=$3
			if [ "$mode" = rw ]; then img=$(eval "echo \$RW_$name"); else img=$STORE/ro.img; fi
			echo "$out" | awk -v d="$domid" -v n="$name" -v id="$1" -v v="$2" -v m="$mode" -v img="$img" '
				found == 1 { state = $1; found = 2 }
				$1 == d && $3 == id && $4 == v {
					found = 1
					if ($2 != n) why = why " name " $2
					if ($5 != m) why = why " mode " $5
					if ($NF != img) why = why " image " $NF
					if ($8 + 0 == 0) why = why " no reads"
					if ($(NF - 3) != "0") why = why " " $(NF - 3) " errors"
				}
				END {
					if (!found) { print "not listed"; exit 1 }
					if (state != "running;") why = why " state " state
					if (why != "") { print substr(why, 2); exit 1 }
				}' > /tmp/status.why ||
				fail "dom $domid ($name) disk $1 $2: $(cat /tmp/status.why)" || return
		done
	done
	STEP_NOTE="$names listed with both disks"
}

destroy_guest() {
	local name=$1 log=/var/log/xen/xl-destroy-$1.log rc
	xl -vvv destroy "$name" > "$log" 2>&1
	rc=$?
	grep -E 'error|unable|wanted state|timed out' "$log" | head -n 20
	[ $rc = 0 ] || fail "xl destroy exited $rc" || return
	! grep -q -E 'unable to remove device|devices_destroy failed|timed out' "$log" ||
		fail "libxl did not see the backend close the devices" || return
	! grep 'libxl: error' "$log" || fail "libxl logged errors" || return
	STEP_NOTE="domid $(domid_of "$name")"
}

# The guest powers itself off when asked (xl shutdown); xl's own process that watches the domain
# (the one `xl create` left, logging to xl-NAME.log) then tears it down as xl destroy does.
shutdown_guest() {
	local name=$1 log=/var/log/xen/xl-shutdown-$1.log rc
	xl -vvv shutdown -w "$name" > "$log" 2>&1
	rc=$?
	grep -E 'error|unable|timed out' "$log" | head -n 20
	[ $rc = 0 ] || fail "xl shutdown -w exited $rc" || return
	! grep 'libxl: error' "$log" || fail "libxl logged errors" || return
	STEP_NOTE="domid $(domid_of "$name"), powered off by the guest"
}

# released NAME [last]: the domain is gone for good (a foreign mapping left in the backend keeps it
# dying), its backend directory is gone, and with "last" the backend maps no guest memory and holds no
# more fds than the first time no guest was left.
released() {
	local name=$1 last=${2:-} domid i=0 why fds= out
	domid=$(domid_of "$name")
	while :; do
		why=
		xl list | awk 'NR > 1 { print $2 }' | grep -qx "$domid" && why="domain $domid still listed (dying)"
		xenstore-exists "$BE/$domid" 2>/dev/null && why="$why; $BE/$domid still exists"
		if [ -n "$last" ] && [ -r "/proc/$DAEMON_PID/maps" ] && grep -q privcmd "/proc/$DAEMON_PID/maps"; then
			why="$why; the backend still maps guest memory"
		fi
		[ -n "$why" ] || break
		if [ $i -ge 100 ]; then
			xl list
			grep privcmd "/proc/$DAEMON_PID/maps" 2>/dev/null | head -n 5
			fail "${why#; } after 10 s"
			return
		fi
		usleep 100000
		i=$((i + 1))
	done
	kill -0 "$DAEMON_PID" 2>/dev/null || fail "the backend is gone" || return
	# xl's process watching the domain saw it die without errors (for a shutdown, it removed the devices).
	! grep -E 'libxl: error|unable to remove device|devices_destroy failed' "/var/log/xen/xl-$name.log" ||
		fail "xl's log of $name has errors" || return
	# Every guest's handles (IOREQ server, event channels, images, mappings' fds) are closed again: with
	# no guest left, the backend holds as many fds as after the first guest was gone.
	if [ -n "$last" ]; then
		fds=$(ls "/proc/$DAEMON_PID/fd" | wc -l)
		[ -n "$FDS_IDLE" ] || FDS_IDLE=$fds
		[ "$fds" = "$FDS_IDLE" ] || { ls -l "/proc/$DAEMON_PID/fd"; fail "the backend holds $fds fds, $FDS_IDLE after the first guest"; return; }
	fi
	if [ "$MODE" = real ]; then
		out=$(/usr/sbin/vblkd --status 2>&1) || { echo "$out"; fail "vblkd --status failed"; return; }
		echo "$out" | awk -v d="$domid" '$1 == d { found = 1 } END { exit found }' ||
			{ echo "$out"; fail "vblkd --status still lists dom $domid"; return; }
	fi
	STEP_NOTE="after $i polls${fds:+, $fds fds open}"
}

# Dom0 reads what the guests left: a clean file system and the raw writes beyond it (for each guest
# whose own steps all passed: the others have failed already, and their images prove nothing).
check_images() {
	local name img n=0
	[ "$MODE" = real ] || skip "selftest: the guests wrote nothing" || return
	[ -n "$CLEAN_GUESTS" ] || skip "no guest finished its steps cleanly" || return
	raw_pattern_a > /tmp/a
	raw_pattern_b > /tmp/b
	for name in $CLEAN_GUESTS; do
		img=$(eval "echo \$RW_$name")
		e2fsck -fn "$img" || fail "e2fsck -fn $img: $?" || return
		dd if="$img" bs=512 skip=$RAW_A_SECTOR count=3 2>/dev/null > /tmp/a2
		cmp /tmp/a /tmp/a2 || fail "$img: the guest's direct write at sector $RAW_A_SECTOR is not there" || return
		dd if="$img" bs=1 skip=$RAW_B_OFFSET count=1000 2>/dev/null > /tmp/b2
		cmp /tmp/b /tmp/b2 || fail "$img: the guest's write at byte $RAW_B_OFFSET is not there" || return
		n=$((n + 1))
	done
	STEP_NOTE="$n images clean, raw writes present ($CLEAN_GUESTS )"
}

# systemd's stop: SIGTERM, SIGKILL after a while (10 s here); vblkd must exit 0 in time.  The stub has
# no SIGTERM handler: its status is 128 + 15.
stop_backend() {
	local rc wd want=0
	[ -n "$BE_PID" ] || skip "no backend" || return
	[ "$MODE" = real ] || want=143
	kill -TERM "$BE_PID" || fail "the backend is gone" || return
	( sleep 10; kill -KILL "$DAEMON_PID" 2>/dev/null ) &
	wd=$!
	wait "$BE_PID"
	rc=$?
	kill "$wd" 2>/dev/null
	tail -n 5 /var/log/vblkd.log
	[ $rc = $want ] || fail "the backend's exit status after SIGTERM is $rc, want $want" || return
	STEP_NOTE="exit status $rc"
}

# A guest that does not finish (hung IO) ends the scenario early, so that the logs still get out
# within the host's time limit; the steps not run are simply absent from the report.
one_guest() {
	local name=$1 ok=0
	step "dom0:create-$name" create_guest "$name" "$2" "${3:-1}" || return
	step "dom0:run-$name" wait_guest "$name" || ok=1
	relay_guest "$name"
	[ "$MODE" = real ] || step "dom0:ioreq-$name" ioreq_seen "$name"
	step "dom0:status-$name" backend_status "$name"
	step "dom0:destroy-$name" destroy_guest "$name"
	step "dom0:released-$name" released "$name" last
	return $ok
}

two_guests() {
	local ok=0
	step dom0:create-domu3 create_guest domu3 "$STORE/rw3.img" || ok=1
	step dom0:create-domu4 create_guest domu4 "$STORE/rw4.img" || ok=1
	if [ $ok = 0 ]; then
		step dom0:run-domu3 wait_guest domu3 || ok=1
		step dom0:run-domu4 wait_guest domu4 || ok=1
		relay_guest domu3
		relay_guest domu4
		if [ "$MODE" = selftest ]; then
			step dom0:ioreq-domu3 ioreq_seen domu3
			step dom0:ioreq-domu4 ioreq_seen domu4
		fi
		step dom0:status-domu3+4 backend_status domu3 domu4
	fi
	xl list
	step dom0:destroy-domu3 destroy_guest domu3
	step dom0:released-domu3 released domu3
	step dom0:shutdown-domu4 shutdown_guest domu4
	step dom0:released-domu4 released domu4 last
	return $ok
}

if step dom0:store setup_store; then
	step dom0:arm64-libs arm64_libs
	if step dom0:backend-start start_backend; then
		one_guest domu1 "$STORE/rw1.img" &&
			one_guest domu2 "$STORE/rw2.img" "$DOMU2_VCPUS" &&
			two_guests
		step dom0:images check_images
		step dom0:backend-stop stop_backend
	fi
fi
dump_log vblkd /var/log/vblkd.log
for f in /var/log/xen/xl-*.log; do
	[ -e "$f" ] && dump_log "$(basename "$f" .log)" "$f"
done
