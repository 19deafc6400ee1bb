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
# 6. domu5 (2 vCPUs) runs rounds of IO (a long dd of known data written and read back, e2fsck over and
#    over, a pulse of small direct IOs) while vblkd is restarted as systemd would: kill -9 in round 1
#    (notify-run starts it again at once, the unit's Restart=on-failure), SIGTERM and start in round 2
#    (issue 18).  The guest sees no error and its data intact;
#    vblkd counts the adoptions; xl destroy afterwards is clean.  The pause the guest saw is printed.
# 7. Afterwards the read-write images check clean with e2fsck and hold the guests' raw writes.
# With XEN_KERNEL=xen (the kernel check-xen builds: grant mappings, privcmd's fast path; issue 20) the
# scenario is "xen" instead: domu1 with foreign mappings and the fast path, domug with grant_usage=1 on
# both disks, each through the guest's whole steps plus measurements (dd, 4 KiB QD1 latency); vblkd
# restarted with --no-fast-path for domun (the same measurements on the plain path); then the restart
# guest on the fast path (SIGTERM, then kill -9 with notify-run's fd store standing in for systemd's),
# and what --status says of the fast path after each.
# In selftest mode ioreq-stub stands in for vblkd: the handshake, one IOREQ server per guest, empty
# virtio-mmio slots (DeviceID 0); Dom0 then checks the guest's register reads reached it.

MODE=$(cat /etc/vblkd-test-mode)
SCENARIO=$(cat /etc/vblkd-test-scenario)   # all, or restart: the restart guest alone (XEN_SCENARIO)
T=/usr/lib/vblkd-test
STORE=/srv/vblkd-test
RW_MIB=64
# The restart guest's disk: RW_MIB's layout (file system, raw writes, the pulse's blocks: steps.sh),
# then RESTART_MIB of known data from PATTERN_MIB_FIRST, written and read back in each round.
RESTART_MIB=64
RESTART_DISK_MIB=$((PATTERN_MIB_FIRST + RESTART_MIB))
# Seconds the restart guest's round gets to end once vblkd is back (a disk that never answers again
# hangs it for good).
RESTART_WAIT=90
GUEST_MEM=192
# Seconds a guest gets for its steps (about 5 s on QEMU's own virtio-blk, see domu-reference.sh).
if [ "$MODE" = selftest ]; then GUEST_TIMEOUT=60; else GUEST_TIMEOUT=240; fi
BE_PID=         # notify-run, standing in for systemd
MANAGED=        # notify-run restarts a killed vblkd itself (the unit's Restart=on-failure)
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
	dd if=/dev/zero of="$STORE/rw5.img" bs=1M count=0 seek=$RESTART_DISK_MIB 2>/dev/null || fail "rw5.img" || return
	RO_SHA256=$(sha256sum "$STORE/ro.img" | cut -d' ' -f1)
	RO_SECTORS=$(($(wc -c < "$STORE/ro.img") / 512))
	ls -l "$STORE"
	STEP_NOTE="4 x $RW_MIB MiB rw, $RESTART_DISK_MIB MiB rw, ro $RO_SECTORS sectors"
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
		# (Not again when the restart steps start it: that would count as down time.)
		[ -n "$DAEMON_PID" ] || /usr/sbin/vblkd --version || fail "vblkd --version" || return
		. /etc/default/vblkd    # the unit's EnvironmentFile: VBLKD_OPTS
		while read -r d; do mkdir -p "$d"; done < /etc/vblkd-unit-dirs
		cmd=$(cat /etc/vblkd-exec-start)
		notify=$(cat /etc/vblkd-unit-type)
		echo "as the unit's ExecStart (Type=$notify): $cmd  (VBLKD_OPTS=$VBLKD_OPTS)"
	fi
	# The unit's Restart=on-failure and FileDescriptorStoreMax= (the kernel fast path's eventfds).
	local mopts=
	MANAGED=
	if [ "$MODE" != selftest ]; then
		[ "$(cat /etc/vblkd-unit-restart 2>/dev/null)" != on-failure ] || { mopts="--restart"; MANAGED=1; }
		[ "$(cat /etc/vblkd-unit-fdstore 2>/dev/null || echo 0)" -gt 0 ] && mopts="$mopts --fdstore"
	fi
	if [ "$notify" = notify ]; then
		eval "\"$T/notify-run\" /run/vblkd.pid --notify /run/vblkd.ready $mopts -- $cmd > /var/log/vblkd.log 2>&1 &"
	else
		eval "\"$T/notify-run\" /run/vblkd.pid -- $cmd > /var/log/vblkd.log 2>&1 &"
	fi
	BE_PID=$!
	# Ready: READY=1 under Type=notify; otherwise (Type=exec) still running a second later.  Polled
	# every 20 ms: the restart steps time the daemon's start.
	until { [ "$notify" = notify ] && [ -e /run/vblkd.ready ]; } || { [ "$notify" != notify ] && [ $i -ge 50 ]; }; do
		if ! kill -0 "$BE_PID" 2>/dev/null || [ $i -ge 500 ]; then
			cat /var/log/vblkd.log
			kill -0 "$BE_PID" 2>/dev/null || fail "the backend exited at once" || return
			fail "no READY=1 from the backend in 10 s"
			return
		fi
		usleep 20000
		i=$((i + 1))
	done
	DAEMON_PID=$(cat /run/vblkd.pid)
	cat /var/log/vblkd.log
	kill -0 "$DAEMON_PID" 2>/dev/null || fail "the backend is gone" || return
	STEP_NOTE="pid $DAEMON_PID, Type=$notify, ready after $((i * 20)) ms${mopts:+, notify-run $mopts}"
}

# await_restart OLDPID: notify-run started vblkd again after OLDPID died (Restart=on-failure); wait
# for the new one's READY=1 (10 s), as systemd's restart would.
await_restart() {
	local i=0 pid
	while :; do
		pid=$(cat /run/vblkd.pid 2>/dev/null)
		[ -n "$pid" ] && [ "$pid" != "$1" ] && [ -e /run/vblkd.ready ] && break
		kill -0 "$BE_PID" 2>/dev/null || { tail -n 20 /var/log/vblkd.log; fail "notify-run exited instead of restarting vblkd"; return; }
		[ $i -lt 500 ] || { tail -n 20 /var/log/vblkd.log; fail "no restarted vblkd ready in 10 s"; return; }
		usleep 20000
		i=$((i + 1))
	done
	DAEMON_PID=$pid
}

# mkcfg NAME RWIMAGE [VCPUS [EXTRA [DISKOPTS]]]: the guest's xl config, with the documented virtio disk
# lines; EXTRA goes on the guest's command line, DISKOPTS on both disk lines (", grant_usage=1").
mkcfg() {
	cat > "/etc/xen/$1.cfg" <<EOC
name = "$1"
type = "pvh"
kernel = "/boot/vmlinuz"
ramdisk = "/boot/domu.cpio.gz"
extra = "console=hvc0 rdinit=/init vblkd_test=$MODE vblkd_rw_sectors=$(($(stat -c %s "$2") / 512)) vblkd_ro_sectors=$RO_SECTORS vblkd_ro_sha256=$RO_SHA256${4:+ $4}"
memory = $GUEST_MEM
vcpus = ${3:-1}
disk = [ 'format=raw, vdev=xvda, access=rw, backendtype=standalone, specification=virtio${5:-}, target=$2',
         'format=raw, vdev=xvdb, access=ro, backendtype=standalone, specification=virtio${5:-}, target=$STORE/ro.img' ]
EOC
}

domid_of() { eval "echo \${DOMID_$1:-}"; }

create_guest() {
	local name=$1 log=/var/log/xen/xl-create-$1.log rc domid dev s
	mkcfg "$name" "$2" "${3:-1}" "${4:-}" "${5:-}"
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
		echo "$BE/$domid/$dev: state $s, base $(xenstore-read "$BE/$domid/$dev/base"), irq $(xenstore-read "$BE/$domid/$dev/irq"), grant_usage $(xenstore-read "$BE/$domid/$dev/grant_usage" 2>/dev/null || echo '(none)')"
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

# console_has NAME TEXT: the guest's console log has a line containing TEXT.
console_has() { grep -q -F "$2" "/var/log/xen/console/guest-$1.log" 2>/dev/null; }

# console_wait NAME TEXT SECONDS: wait until the guest's console log has TEXT, or the guest is gone.
# Timed by the clock, not by counting polls: with the guests busy, Dom0's one vCPU polls slowly.
console_wait() {
	local t0 el i=0
	t0=$(uptime_s)
	until console_has "$1" "$2"; do
		el=$(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%d", b - a }')
		[ "$el" -lt "$3" ] || return 1
		if [ $((i % 20)) = 19 ] && ! xl domid "$1" > /dev/null 2>&1; then
			return 1
		fi
		usleep 100000
		i=$((i + 1))
		[ $((i % 100)) != 0 ] || echo "VBLKD-XEN WAITING $1 ${el}s" > /dev/console
	done
}

ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 + 0.5 }'; }

# restart_during NAME ROUND HOW: restart vblkd in the middle of the guest's IO round ROUND (domu/init's
# restart_round), with HOW = kill9 (kill -9, as a crash) or term (SIGTERM, as systemctl restart), and
# start it again with the unit's command line at once; then wait for the round to end.  Passes if
# the old vblkd ended as it should (SIGTERM: exit status 0), left the guest's disks in InitWait
# (not released), the new one became ready, and the guest's round passed: data intact, every fsck
# clean, no IO error.  The note has the pause, printed, not asserted: vblkd's down time measured
# here (the signal to the new one's READY=1), the longest gap between two completions of the guest's
# pulse of small reads (domu-io), their difference, and the next longest gap (the noise: with a
# pause of the restart's length, and the next one much shorter, the longest is the restart's).
# (The guest's time of day is no help to line the gaps up with Dom0's signal: on Xen on Arm it was
# seconds off Dom0's.)
restart_during() {
	local name=$1 r=$2 how=$3 domid t0 t1 t2 rc wd why= dev s down line note pause
	domid=$(domid_of "$name")
	if [ "$r" -gt 1 ] && ! console_has "$name" "VBLKD-XEN STEP restart$((r - 1)) "; then
		skip "the guest's round $((r - 1)) never ended" || return
	fi
	console_wait "$name" "VBLKD-XEN RESTART-ARMED $r" $GUEST_TIMEOUT ||
		fail "the guest did not begin IO round $r in ${GUEST_TIMEOUT}s" || return
	# A second into the round the dd's writeback keeps requests in flight, and vCPUs wait in MMIO.
	sleep 1
	! console_has "$name" "VBLKD-XEN STEP restart$r " ||
		fail "round $r ended before vblkd was stopped: the round needs more data (RESTART_MIB)" || return
	echo "vblkd pid $DAEMON_PID: $how"
	t0=$(uptime_s)
	local lines0 old=$DAEMON_PID
	lines0=$(wc -l < /var/log/vblkd.log)
	case $how in
	kill9)
		kill -KILL "$DAEMON_PID" || fail "vblkd is gone already" || return
		if [ -n "$MANAGED" ]; then
			# notify-run restarts it (Restart=on-failure), with what it stored.
			rc=137
			t1=$(uptime_s)
		else
			wait "$BE_PID"
			rc=$?
		fi
		[ $rc = 137 ] || why="$why; status $rc after kill -9, want 137"
		;;
	term)
		kill -TERM "$BE_PID" || fail "vblkd is gone already" || return
		( sleep 10; kill -KILL "$DAEMON_PID" 2>/dev/null ) &
		wd=$!
		wait "$BE_PID"
		rc=$?
		kill "$wd" 2>/dev/null
		[ $rc = 0 ] || why="$why; exit status $rc after SIGTERM, want 0"
		;;
	esac
	if [ "$how" = kill9 ] && [ -n "$MANAGED" ]; then
		# One log for both processes: the old one's lines are those before the kill.
		head -n "$lines0" /var/log/vblkd.log > "/var/log/vblkd-before-$how.log"
		await_restart "$old" || { fail "vblkd did not start again${why:+ (also: ${why#; })}"; return; }
		grep "notify-run: pid $old killed by signal 9: restarting" /var/log/vblkd.log ||
			why="$why; notify-run did not say it restarted pid $old after signal 9"
	else
		t1=$(uptime_s)
		mv /var/log/vblkd.log "/var/log/vblkd-before-$how.log"
	fi
	# Stopping vblkd does not release its guests: their disks stay in InitWait, for the next one.
	for dev in $DEVID_RW $DEVID_RO; do
		s=$(xenstore-read "$BE/$domid/$dev/state" 2>/dev/null)
		[ "$s" = 2 ] || why="$why; the stopped vblkd left disk $dev in state '${s:-(gone)}', want 2"
	done
	if [ "$how" != kill9 ] || [ -z "$MANAGED" ]; then
		start_backend || { fail "vblkd did not start again${why:+ (also: ${why#; })}"; return; }
	fi
	t2=$(uptime_s)
	down=$(ms_between "$t0" "$t2")
	echo "the old vblkd was gone $(ms_between "$t0" "$t1") ms after the $how (status $rc); its log ends:"
	tail -n 8 "/var/log/vblkd-before-$how.log"
	echo "vblkd down $down ms: from the $how to READY=1 of pid $DAEMON_PID"
	if ! console_wait "$name" "VBLKD-XEN STEP restart$r " $RESTART_WAIT; then
		tr -d '\r' < "/var/log/xen/console/guest-$name.log" | tail -n 20
		tail -n 20 /var/log/vblkd.log
		STEP_NOTE="vblkd down $down ms"
		fail "the guest's round $r did not end ${RESTART_WAIT}s after vblkd was back: its disk hangs${why:+; ${why#; }}"
		return
	fi
	# What the new vblkd made of the guest's kernel fast path (xen scenario: fast_path_after).
	/usr/sbin/vblkd --status 2>&1 | grep "dom $domid fast path" > "/tmp/fast-path-$how"
	cp /var/log/vblkd.log "/var/log/vblkd-after-$how.log"
	line=$(tr -d '\r' < "/var/log/xen/console/guest-$name.log" | grep "^VBLKD-XEN STEP restart$r ")
	echo "guest: $line"
	tr -d '\r' < "/var/log/xen/console/guest-$name.log" | sed -n "s/^VBLKD-XEN PAUSE $r //p" > /tmp/pause
	cat /tmp/pause
	pause=$(sed -n 's/^pulse .*longest_gap_ms=\([0-9]*\) .*next_gap_ms=\([0-9]*\).*/\1 \2/p' /tmp/pause)
	set -- $pause
	STEP_NOTE="vblkd down $down ms; the guest's reads paused ${1:-?} ms"
	[ -z "$1" ] || STEP_NOTE="$STEP_NOTE ($(($1 - down)) ms beyond the down time; next longest gap $2 ms)"
	echo "VBLKD-XEN PAUSE-REPORT $how: $STEP_NOTE" > /dev/console
	case $line in
	*" PASS "*) ;;
	*) note=${line#VBLKD-XEN STEP restart$r }; why="$why; the guest's round failed: ${note#* * }" ;;
	esac
	[ -z "$why" ] || fail "${why#; }"
}

# adopted NAME N: vblkd --status --json counts N adoptions of each of the guest's disks, with a time.
adopted() {
	local out domid rc
	out=$(/usr/sbin/vblkd --status --json 2>&1) || { echo "$out"; fail "vblkd --status --json failed"; return; }
	domid=$(domid_of "$1")
	# No JSON tool here: split at the punctuation, follow "domid" and "devid", note the two keys.
	echo "$out" | tr -d ' \n' | tr '{},[]' '\n\n\n\n\n' | awk -F: -v d="$domid" -v want="$2" '
		$1 == "\"domid\"" { dom = $2 }
		$1 == "\"devid\"" { dev = $2 }
		dom == d && $1 == "\"adoptions\"" { n[dev] = $2; seen[dev] = 1 }
		dom == d && $1 == "\"last_adopted\"" { t[dev] = substr($0, length($1) + 2); seen[dev] = 1 }
		END {
			for (dev in seen) {
				printf "disk %s: adoptions %s, last_adopted %s\n", dev, n[dev], t[dev]
				if (n[dev] != want || t[dev] == "" || t[dev] == "null") bad = 1
				k++
			}
			exit (k == 2 && !bad) ? 0 : 1
		}' > /tmp/adopted
	rc=$?
	cat /tmp/adopted
	[ $rc = 0 ] || { echo "$out" | head -n 60; fail "want 2 disks adopted $2 times each, with a time"; return; }
	STEP_NOTE="both disks: $2 adoptions"
}

# The restart guest: two rounds of IO, vblkd restarted in each; then its other steps, and a clean end.
restart_guest() {
	local name=domu5 ok=0
	step "dom0:create-$name" create_guest "$name" "$STORE/rw5.img" 2 \
		"vblkd_restart_rounds=2 vblkd_restart_mib=$RESTART_MIB" || return
	step dom0:restart-kill9 restart_during "$name" 1 kill9 || ok=1
	step dom0:restart-sigterm restart_during "$name" 2 term || ok=1
	if console_has "$name" "VBLKD-XEN STEP restart2 "; then
		step "dom0:run-$name" wait_guest "$name" || ok=1
		step "dom0:status-$name" backend_status "$name"
		step "dom0:adopted-$name" adopted "$name" 2
	fi
	relay_guest "$name"
	step "dom0:destroy-$name" destroy_guest "$name"
	step "dom0:released-$name" released "$name" last
	return $ok
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
		# The restart guest's last round of known data (domu/init's restart_round 2: seed 2007).
		if [ "$name" = domu5 ]; then
			dd if="$img" bs=1M skip=$PATTERN_MIB_FIRST count=$RESTART_MIB 2>/dev/null |
				"$T/domu-io" check 2007 $((PATTERN_MIB_FIRST * 256)) $((RESTART_MIB * 256)) ||
				fail "$img: the restart rounds' data is not there" || return
		fi
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

# disk_paths NAME MEMORY NOTIFY: vblkd --status says of both of the guest's disks that guest memory is
# mapped as MEMORY ("grants (grant_usage=1)" or "foreign mappings") and their notifies and interrupts
# go as NOTIFY ("notify ioeventfd, interrupts irqfd" on the fast path); xenstore's grant_usage agrees.
disk_paths() {
	local name=$1 domid out dev g want_g=0 n
	domid=$(domid_of "$name")
	out=$(/usr/sbin/vblkd --status 2>&1) || { echo "$out"; fail "vblkd --status failed"; return; }
	echo "$out"
	n=$(echo "$out" | awk -v d="$domid" '$1 == d { getline; print }' | grep -F "; $3;" | grep -c -F "; guest memory: $2")
	[ "$n" = 2 ] || fail "$n of dom $domid's 2 disks say '$3' and 'guest memory: $2'" || return
	[ "$2" = "foreign mappings" ] || want_g=1
	for dev in $DEVID_RW $DEVID_RO; do
		g=$(xenstore-read "$BE/$domid/$dev/grant_usage" 2>/dev/null || echo 0)
		[ "$g" = "$want_g" ] || fail "disk $dev: xenstore's grant_usage is '$g', want $want_g" || return
	done
	STEP_NOTE="both disks: guest memory $2; $3"
}

# perf_of NAME: the guest's measurements (domu/init's VBLKD-XEN PERF lines), one line.
perf_of() {
	tr -d '\r' < "/var/log/xen/console/guest-$1.log" | sed -n 's/^VBLKD-XEN PERF //p' | tr '\n' ' '
}

# A guest that does not finish (hung IO) ends the scenario early, so that the logs still get out
# within the host's time limit; the steps not run are simply absent from the report.
# one_guest NAME RWIMAGE [VCPUS [EXTRA DISKOPTS MEMORY NOTIFY]]: with MEMORY and NOTIFY, also the step
# that checks --status says so (disk_paths).
one_guest() {
	local name=$1 ok=0
	step "dom0:create-$name" create_guest "$name" "$2" "${3:-1}" "${4:-}" "${5:-}" || return
	step "dom0:run-$name" wait_guest "$name" || ok=1
	relay_guest "$name"
	[ "$MODE" = real ] || step "dom0:ioreq-$name" ioreq_seen "$name"
	step "dom0:status-$name" backend_status "$name"
	[ -z "${6:-}" ] || step "dom0:paths-$name" disk_paths "$name" "$6" "$7"
	[ -z "${4:-}" ] || eval "PERF_$name=\$(perf_of \$name)"
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

# vblkd's options for the next start (the unit's /etc/default/vblkd), as an administrator would set them.
set_vblkd_opts() {
	echo "VBLKD_OPTS=\"$1\"" > /etc/default/vblkd
	STEP_NOTE="VBLKD_OPTS=\"$1\""
}

# The figures side by side, from the guests' PERF lines: dd with grants beside foreign mappings, and
# the 4 KiB QD1 latency with the kernel fast path beside without it.
perf_report() {
	local k v
	for k in domu1 domug domun; do
		v=$(eval "echo \${PERF_$k:-}")
		echo "$k: ${v:-(none)}"
		[ -n "$v" ] || fail "no measurements from $k" || return
	done
	# shellcheck disable=SC2154
	STEP_NOTE=$(awk -v f="$PERF_domu1" -v g="$PERF_domug" -v n="$PERF_domun" '
		function get(s, op, key,   a, i, m, want) {
			m = split(s, a, " "); want = (op == "") ? 1 : 0
			for (i = 1; i <= m; i++) {
				if (a[i] == "op=" op) want = 1
				else if (a[i] ~ /^op=/) want = (op == "")
				if (want && index(a[i], key "=") == 1) return substr(a[i], length(key) + 2)
			}
			return "?"
		}
		BEGIN {
			printf "dd 8 MiB O_DIRECT write/read MiB/s: foreign %s/%s, grants %s/%s; ",
				get(f, "", "write_MiBps"), get(f, "", "read_MiBps"), get(g, "", "write_MiBps"), get(g, "", "read_MiBps")
			printf "4k QD1 avg us read/write: fast path %s/%s, plain %s/%s (grants, fast path %s/%s)",
				get(f, "read", "avg_us"), get(f, "write", "avg_us"), get(n, "read", "avg_us"),
				get(n, "write", "avg_us"), get(g, "read", "avg_us"), get(g, "write", "avg_us")
		}')
	echo "VBLKD-XEN PERF-REPORT $STEP_NOTE" > /dev/console
}

# fast_path_after HOW: what the vblkd started after the restart HOW made of the restart guest's fast
# path: --status's line, its log's, Dom0's kernel log.  Passes if it is on again (SIGTERM: the old vblkd
# removed its registrations, the new one made its own; kill -9: privcmd kept the old one's, with the
# guest's event channels, and the new vblkd removed them with the eventfds notify-run's fd store gave
# back, as systemd's FileDescriptorStore= does) and the kernel did not warn.
fast_path_after() {
	local f=/tmp/fast-path-$1
	[ -s "$f" ] || fail "no --status of the vblkd started after the $1 (restart_during)" || return
	cat "$f"
	grep -i 'fast path' "/var/log/vblkd-after-$1.log" | head -n 10
	dmesg | grep -i -E 'privcmd|ioeventfd|WARNING|BUG|Oops' | tail -n 20
	! dmesg | grep -q -E 'WARNING: CPU|BUG:|Oops' || fail "Dom0's kernel warned (above)" || return
	grep -q 'fast path: on$' "$f" || fail "the fast path is not on again" || return
	# After a kill -9 the new vblkd first removed what privcmd kept of the old one (the fd store).
	if [ "$1" = kill9 ]; then
		grep "removed the kernel's ioeventfd" "/var/log/vblkd-after-$1.log" ||
			fail "the new vblkd did not remove the killed one's ioeventfds" || return
	fi
	STEP_NOTE="after the $1: fast path $(sed -n 's/^ *dom [0-9]* fast path: //p' "$f" | head -n 1)"
}

# The xen scenario (XEN_KERNEL=xen): grants and the fast path on real Xen, measured.
xen_scenario() {
	local perf="vblkd_perf=400" opts name=domu5
	opts=$(sed -n 's/^VBLKD_OPTS="\(.*\)"$/\1/p' /etc/default/vblkd)
	one_guest domu1 "$STORE/rw1.img" 1 "$perf" "" "foreign mappings" "notify ioeventfd, interrupts irqfd" || return
	one_guest domug "$STORE/rw2.img" 1 "$perf" ", grant_usage=1" "grants (grant_usage=1)" \
		"notify ioeventfd, interrupts irqfd" || return
	step dom0:backend-stop-1 stop_backend || return
	step dom0:no-fast-path set_vblkd_opts "$opts --no-fast-path"
	step dom0:backend-start-no-fast-path start_backend || return
	FDS_IDLE=
	one_guest domun "$STORE/rw3.img" 1 "$perf" "" "foreign mappings" "notify ioreq, interrupts set_irq_level" || return
	step dom0:perf perf_report
	step dom0:backend-stop-2 stop_backend || return
	step dom0:fast-path-again set_vblkd_opts "$opts"
	step dom0:backend-start-fast-path start_backend || return
	FDS_IDLE=
	# The restart guest on the fast path: SIGTERM in round 1 (adopted, fast path on again), kill -9 in 2
	# (restarted by notify-run with the fd store: adopted, fast path on again).
	step "dom0:create-$name" create_guest "$name" "$STORE/rw5.img" 2 \
		"vblkd_restart_rounds=2 vblkd_restart_mib=$RESTART_MIB" || return
	step dom0:restart-sigterm restart_during "$name" 1 term
	step dom0:fast-path-after-term fast_path_after term
	step dom0:status-after-term backend_status "$name"
	step dom0:restart-kill9-fast-path restart_during "$name" 2 kill9
	step dom0:fast-path-after-kill9 fast_path_after kill9
	step dom0:status-after-kill9 backend_status "$name"
	relay_guest "$name"
	step "dom0:destroy-$name" destroy_guest "$name"
	step "dom0:released-$name" released "$name"
}

if step dom0:store setup_store; then
	step dom0:arm64-libs arm64_libs
	if step dom0:backend-start start_backend; then
		if [ "$SCENARIO" = restart ]; then
			restart_guest
		elif [ "$SCENARIO" = xen ]; then
			xen_scenario
		else
			one_guest domu1 "$STORE/rw1.img" &&
				one_guest domu2 "$STORE/rw2.img" "$DOMU2_VCPUS" &&
				two_guests &&
				{ [ "$MODE" != real ] || restart_guest; }
		fi
		step dom0:images check_images
		step dom0:backend-stop stop_backend
	fi
fi
for f in /var/log/vblkd-before-*.log; do
	[ -e "$f" ] && dump_log "$(basename "$f" .log)" "$f"
done
dump_log vblkd /var/log/vblkd.log
for f in /var/log/xen/xl-*.log; do
	[ -e "$f" ] && dump_log "$(basename "$f" .log)" "$f"
done
