#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# check-xen's systemd Dom0 (issue 22): Debian 12 booted by systemd, vblkd installed from its .deb,
# checked as a user meets it.  Runs as vblkd-test.service once the system is up (sd-root-img.sh).
#
# vblkd_test=noxen (QEMU without Xen): the first boot installs the package with dpkg -i (its postinst
# enables the unit and starts it: skipped, no /proc/xen) and reboots; the second checks that the
# enabled unit was skipped at boot, not failed.
# vblkd_test=xen (Xen, this disk as Dom0's root): vblkd started by systemd before xendomains started
# the guest in /etc/xen/auto; READY=1 and the watchdog; the sandbox in force while that guest runs its
# steps; systemctl reload grows its disk; journal priorities; systemctl restart under a guest's IO;
# a crash costs a pause (Restart=on-failure, adoption); systemctl stop releases the guests;
# xl destroy clean.
exec > /dev/console 2>&1
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
cd /
. /usr/lib/vblkd-test/steps.sh
MODE=$(cmdline_arg vblkd_test)
T=/usr/lib/vblkd-test
V=/srv/vblkd-test
BE=/local/domain/0/backend/virtio_disk
DEVS="51712 51728"      # xvda, xvdb
GUEST_TIMEOUT=240
RESTART_WAIT=90
CLOG=/var/log/xen/console
echo "VBLKD-XEN DOM0-START systemd mode=$MODE uptime=$(uptime_s)"

# prop UNIT PROPERTY: one property of a unit, as systemctl show gives it.
prop() { systemctl show -P "$2" "$1"; }
# Monotonic microseconds of now, as systemd's *TimestampMonotonic.
now_us() { awk '{ printf "%d", $1 * 1000000 }' /proc/uptime; }

# The system came up: default target reached; any failed unit is named (vblkd, xen or xendomains
# failed is a failure).
booted() {
	local st failed u
	st=$(timeout 120 systemctl is-system-running --wait)
	failed=$(systemctl list-units --failed --plain --no-legend | awk '{ print $1 }' | tr '\n' ' ')
	echo "system: $st; failed units: ${failed:-none}"
	systemctl --no-pager status vblkd.service 2>&1 | head -n 12
	for u in vblkd.service xen.service xendomains.service; do
		case " $failed " in *" $u "*) fail "$u failed"; return ;; esac
	done
	case $st in running|degraded) ;; *) fail "system state '$st'"; return ;; esac
	STEP_NOTE="systemd $(systemctl --version | awk 'NR == 1 { print $2 }'), $st${failed:+ (failed: $failed)}"
}

# ---- without Xen ----------------------------------------------------------------------------------
# dpkg -i as a user installs it: Depends satisfied, postinst enables and starts the unit; with no
# /proc/xen the start is skipped.
install_deb() {
	local deb
	deb=$(ls /var/cache/vblkd-test/vblkd_*_arm64.deb)
	dpkg -i "$deb" || fail "dpkg -i $deb" || return
	dpkg -s vblkd | grep -E '^(Status|Version)'
	[ "$(systemctl is-enabled vblkd)" = enabled ] || fail "vblkd.service is $(systemctl is-enabled vblkd), not enabled" || return
	skipped || return
	STEP_NOTE="$(dpkg-query -W -f '${Version}' vblkd) enabled; its start skipped: $STEP_NOTE"
}

skipped() {
	local a s c r
	a=$(prop vblkd ActiveState) s=$(prop vblkd SubState) c=$(prop vblkd ConditionResult) r=$(prop vblkd Result)
	systemctl show vblkd -p ActiveState,SubState,ConditionResult,ConditionTimestamp,Result,UnitFileState
	[ -e /proc/xen ] && fail "/proc/xen exists on a machine without Xen" && return
	[ "$a" = inactive ] && [ "$c" = no ] || fail "want ActiveState=inactive, ConditionResult=no" || return
	! systemctl is-failed --quiet vblkd || fail "vblkd.service failed" || return
	[ -n "$(prop vblkd ConditionTimestampMonotonic)" ] && [ "$(prop vblkd ConditionTimestampMonotonic)" != 0 ] ||
		fail "the condition was never checked (the unit was not started)" || return
	journalctl -b -u vblkd --no-pager -o cat | tail -n 3
	STEP_NOTE="ActiveState=$a SubState=$s ConditionResult=$c Result=$r"
}

noxen() {
	if [ ! -e /var/lib/vblkd-test/installed ]; then
		step sd-noxen:boot booted
		if step sd-noxen:dpkg-install install_deb; then
			touch /var/lib/vblkd-test/installed
			echo "VBLKD-XEN REBOOT"
			sync
			systemctl reboot
			exit 0
		fi
	else
		step sd-noxen:reboot booted
		step sd-noxen:skipped-at-boot skipped
	fi
}

# ---- on Xen ---------------------------------------------------------------------------------------
# What Debian 12's packages give a Dom0: the generated xen.service and xendomains.service (SysV
# scripts), no proc-xen.mount or xenstored.service (the unit only Wants= them).
xen_units() {
	local u
	for u in xen.service xendomains.service proc-xen.mount xenstored.service xenconsoled.service; do
		printf '%-22s load=%-10s active=%-9s source=%s\n' "$u" "$(prop $u LoadState)" "$(prop $u ActiveState)" \
			"$(prop $u SourcePath)"
	done
	[ "$(prop xen.service ActiveState)" = active ] || fail "xen.service is not active" || return
	[ "$(prop xendomains.service ActiveState)" = active ] || fail "xendomains.service is not active" || return
	grep -q control_d /proc/xen/capabilities || fail "not the control domain" || return
	xl info | grep -E '^(xen_version|xen_commandline)'
	STEP_NOTE="xen, xendomains from /etc/init.d (generated); proc-xen.mount $(prop proc-xen.mount LoadState), xenstored.service $(prop xenstored.service LoadState)"
}

WD0=
# Type=notify and active: READY=1 arrived.  The watchdog is armed (WatchdogUSec) and pinged.
ready() {
	local pid
	systemctl show vblkd -p Type,NotifyAccess,ActiveState,SubState,Result,MainPID,NRestarts,WatchdogUSec,WatchdogTimestamp,WatchdogTimestampMonotonic,ActiveEnterTimestamp
	[ "$(prop vblkd Type)" = notify ] || fail "Type=$(prop vblkd Type)" || return
	[ "$(prop vblkd ActiveState)/$(prop vblkd SubState)" = active/running ] || fail "vblkd is not active/running" || return
	[ "$(prop vblkd WatchdogUSec)" = 30s ] || fail "WatchdogUSec=$(prop vblkd WatchdogUSec), want 30s" || return
	pid=$(prop vblkd MainPID)
	grep -E '^(Seccomp|NoNewPrivs|CapBnd|CapEff):' "/proc/$pid/status"
	WD0=$(prop vblkd WatchdogTimestampMonotonic)
	STEP_NOTE="Type=notify active/running (READY=1), pid $pid, WatchdogUSec=30s"
}

# The watchdog pings keep coming (every WatchdogSec/2 = 15 s): the timestamp moved since `ready`.
watchdog() {
	local w i=0
	until w=$(prop vblkd WatchdogTimestampMonotonic); [ "${w:-0}" -gt "${WD0:-0}" ]; do
		[ $i -lt 20 ] || fail "WatchdogTimestamp still $w after 20 s more" || return
		sleep 1
		i=$((i + 1))
	done
	systemctl show vblkd -p WatchdogTimestamp,WatchdogTimestampMonotonic,ActiveState,NRestarts
	[ "$(prop vblkd NRestarts)" = 0 ] || fail "vblkd was restarted $(prop vblkd NRestarts) times" || return
	STEP_NOTE="last ping $(( ($(now_us) - w) / 1000 )) ms ago, $(( (w - WD0) / 1000 )) ms after the first seen"
}

# vblkd was active (READY=1) before xendomains began to start, and xendomains started the guest whose
# disks vblkd serves.
boot_order() {
	local v x d
	v=$(prop vblkd ActiveEnterTimestampMonotonic)
	x=$(prop xendomains InactiveExitTimestampMonotonic)
	d=$(prop xen.service ActiveEnterTimestampMonotonic)
	echo "xen.service active at $d us, vblkd active at $v us, xendomains starting at $x us (monotonic)"
	journalctl -b --no-pager -o short-monotonic -u xen -u vblkd -u xendomains | grep -E 'Start|vblkd\[[0-9]+\]: (vblkd|dom [0-9]+: )' | head -n 12
	[ "$v" -gt 0 ] && [ "$x" -gt 0 ] || fail "missing timestamps" || return
	[ "$v" -ge "$d" ] || fail "vblkd was active before xen.service" || return
	[ "$v" -le "$x" ] || fail "xendomains began $(( (v - x) / 1000 )) ms before vblkd was ready" || return
	xl list
	xl domid domu1 > /dev/null || fail "xendomains did not start domu1" || return
	DOMID_domu1=$(xl domid domu1)
	for dev in $DEVS; do
		[ "$(xenstore-read "$BE/$DOMID_domu1/$dev/state")" = 2 ] || fail "domu1 disk $dev not in InitWait" || return
	done
	STEP_NOTE="vblkd ready $(( (x - v) / 1000 )) ms before xendomains began; domu1 (domid $DOMID_domu1) started by xendomains"
}

# ---- guests (as dom0/scenario.sh) -------------------------------------------------------------------
console_has() { tr -d '\r' < "$CLOG/guest-$1.log" 2>/dev/null | grep -q -F -- "$2"; }
# (With a sign of life every 20 s for the host, which takes a silent machine for a hung one.)
console_wait() {
	local t0 i=0
	t0=$(uptime_s)
	until console_has "$1" "$2"; do
		awk -v a="$t0" -v b="$(uptime_s)" -v s="$3" 'BEGIN { exit !(b - a > s) }' && return 1
		xl domid "$1" > /dev/null 2>&1 || return 1
		sleep 0.2
		i=$((i + 1))
		[ $((i % 100)) != 0 ] || echo "VBLKD-XEN WAITING $1 $((i / 5))s" > /dev/console
	done
}
wait_guest() {
	console_wait "$1" 'VBLKD-XEN DOMU-END' $GUEST_TIMEOUT ||
		{ tr -d '\r' < "$CLOG/guest-$1.log" | tail -n 30; fail "$1 did not finish its steps in ${GUEST_TIMEOUT}s"; return; }
	STEP_NOTE=$(tr -d '\r' < "$CLOG/guest-$1.log" | sed -n 's/.*DOMU-END //p')
	case $STEP_NOTE in *" fail=0 "*) ;; *) fail "the guest's steps failed" ;; esac
}
relay_guest() {
	tr -d '\r' < "$CLOG/guest-$1.log" 2>/dev/null | sed -n "s/^VBLKD-XEN STEP /VBLKD-XEN STEP $1:/p"
	dump_log "guest-$1" "$CLOG/guest-$1.log"
}
dump_log() {
	tail -n 4000 "$2" 2>/dev/null | tr -d '\r' | awk 1 > /tmp/dump
	echo "VBLKD-XEN LOG-BEGIN $1"
	cat /tmp/dump
	echo "VBLKD-XEN LOG-END $1 lines=$(wc -l < /tmp/dump)"
}

# The sandbox as shipped is in force on the daemon that serves the guest: seccomp filter, no new
# privileges, the two capabilities; the guest's own steps (probe, mkfs, files and checksums, fsck, the
# read-only disk, odd offsets) then pass under it.
sandbox() {
	local pid
	pid=$(prop vblkd MainPID)
	systemctl show vblkd -p NoNewPrivileges,ProtectSystem,ProtectHome,PrivateNetwork,PrivateTmp,ProtectProc,DevicePolicy,CapabilityBoundingSet,SystemCallErrorNumber
	grep -E '^(Seccomp|NoNewPrivs|CapBnd):' "/proc/$pid/status"
	grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status" || fail "no seccomp filter on vblkd" || return
	grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$pid/status" || fail "NoNewPrivs not set" || return
	grep -q '^CapBnd:[[:space:]]*0000000000000006' "/proc/$pid/status" || fail "capability bounding set is not DAC_OVERRIDE+DAC_READ_SEARCH" || return
	wait_guest domu1
}

status_lists() {
	local out name
	out=$(vblkd --status) || { echo "$out"; fail "vblkd --status"; return; }
	echo "$out"
	for name in "$@"; do
		echo "$out" | awk -v n="$name" '$2 == n { c++ } END { exit c != 2 }' || fail "$name is not listed with 2 disks" || return
	done
	STEP_NOTE="$* listed with both disks"
}

# systemctl reload (SIGHUP) after the image grew: the guest's kernel sees the new size.
reload_grow() {
	local old new want
	old=$(stat -c %s $V/rw1.img)
	truncate -s +16M $V/rw1.img
	new=$(stat -c %s $V/rw1.img)
	want=$((new / 512))
	systemctl reload vblkd || fail "systemctl reload vblkd" || return
	console_wait domu1 "new size: $want " 20 || console_wait domu1 "to $want" 1 ||
		{ tr -d '\r' < "$CLOG/guest-domu1.log" | tail -n 5; fail "domu1 did not see $want sectors within 20 s of the reload"; return; }
	tr -d '\r' < "$CLOG/guest-domu1.log" | grep -E 'new size|capacity change'
	journalctl -b -u vblkd --no-pager -o cat | grep 'is now' | tail -n 1
	[ "$(prop vblkd ActiveState)" = active ] || fail "vblkd is not active after the reload" || return
	STEP_NOTE="$((old / 1048576)) -> $((new / 1048576)) MiB, the guest saw $want sectors"
}

# A warning vblkd logs (a disk image of 0 bytes) is at priority warning in the journal: shown by
# -p warning, not by -p err; an info line is not shown by -p warning.
priorities() {
	local w i e
	xl create -p /etc/xen/domuw.cfg > /var/log/xen/xl-create-domuw.log 2>&1 ||
		{ cat /var/log/xen/xl-create-domuw.log; fail "xl create -p domuw"; return; }
	xl destroy domuw || fail "xl destroy domuw" || return
	w=$(journalctl -b -u vblkd -p warning --no-pager -o cat | grep -c 'smaller than one sector')
	e=$(journalctl -b -u vblkd -p err --no-pager -o cat | grep -c 'smaller than one sector')
	i=$(journalctl -b -u vblkd -p warning --no-pager -o cat | grep -c "is now .* bytes")
	journalctl -b -u vblkd -p warning --no-pager -o short-monotonic | tail -n 5
	journalctl -b -u vblkd --no-pager -o verbose --grep 'smaller than one sector' | grep -E 'PRIORITY|MESSAGE=' | head -n 2
	[ "$w" -ge 1 ] || fail "-p warning does not show the warning" || return
	[ "$e" = 0 ] || fail "-p err shows the warning" || return
	[ "$i" = 0 ] || fail "-p warning shows an info line" || return
	[ "$(journalctl -b -u vblkd -p info --no-pager -o cat | grep -c 'is now .* bytes')" -ge 1 ] ||
		fail "-p info does not show the reload's info line" || return
	STEP_NOTE="the warning under -p warning ($w), not -p err; info lines only from -p info"
}

create_domu5() {
	xl create /etc/xen/domu5.cfg || fail "xl create domu5" || return
	STEP_NOTE="domid $(xl domid domu5), 2 vCPUs"
}

# systemctl restart while domu5's IO runs: it keeps its disk (its round checks the data, fsck and
# dmesg); the pause is printed.
restart_io() {
	local t0 t1 pid0 pid1 line
	console_wait domu5 "VBLKD-XEN RESTART-ARMED 1" $GUEST_TIMEOUT || fail "domu5 did not begin its IO round" || return
	sleep 1
	! console_has domu5 "VBLKD-XEN STEP restart1 " || fail "the round ended before the restart" || return
	pid0=$(prop vblkd MainPID)
	t0=$(uptime_s)
	systemctl restart vblkd || fail "systemctl restart vblkd" || return
	t1=$(uptime_s)
	pid1=$(prop vblkd MainPID)
	systemctl show vblkd -p ActiveState,SubState,MainPID,Result,NRestarts
	[ "$pid1" != "$pid0" ] && [ "$(prop vblkd ActiveState)" = active ] || fail "vblkd not restarted" || return
	console_wait domu5 "VBLKD-XEN STEP restart1 " $RESTART_WAIT ||
		{ tr -d '\r' < "$CLOG/guest-domu5.log" | tail -n 20; fail "domu5's round did not end ${RESTART_WAIT}s after the restart"; return; }
	line=$(tr -d '\r' < "$CLOG/guest-domu5.log" | grep '^VBLKD-XEN STEP restart1 ')
	echo "guest: $line"
	tr -d '\r' < "$CLOG/guest-domu5.log" | sed -n 's/^VBLKD-XEN PAUSE 1 //p'
	STEP_NOTE="systemctl restart took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1000 }') ms (pid $pid0 -> $pid1); guest: $(tr -d '\r' < "$CLOG/guest-domu5.log" | sed -n 's/^VBLKD-XEN PAUSE 1 pulse .*longest_gap_ms=\([0-9]*\).*/longest IO gap \1 ms/p')"
	case $line in *" PASS "*) ;; *) fail "domu5's round failed" ;; esac
}

# adopted NAME N: vblkd --status --json counts N adoptions of each of the guest's disks.
adopted() {
	local out n
	out=$(vblkd --status --json) || { echo "$out"; fail "vblkd --status --json"; return; }
	vblkd --status | awk -v n="$1" 'NR == 1 || $2 == n'
	n=$(echo "$out" | tr -d ' \n' | tr '{},[]' '\n\n\n\n\n' | awk -F: -v d="$(xl domid "$1")" -v want="$2" '
		$1 == "\"domid\"" { dom = $2 } dom == d && $1 == "\"adoptions\"" && $2 == want { k++ } END { print k + 0 }')
	[ "$n" = 2 ] || fail "want both of $1's disks adopted $2 times" || return
	STEP_NOTE="both of $1's disks: $2 adoptions"
}

# The records in vblkd's state directory (its lock file aside).
records() { find /run/vblkd/state -maxdepth 1 -type f ! -name lock | wc -l; }

# A crash (kill -9) costs the guests a pause: Restart=on-failure starts vblkd again (its ExecStop
# sees the failure and releases nothing) and the new one adopts them.
crash_adopts() {
	local pid0 pid1 i=0
	pid0=$(prop vblkd MainPID)
	systemctl kill -s KILL vblkd || fail "systemctl kill -s KILL vblkd" || return
	while :; do
		pid1=$(prop vblkd MainPID)
		[ "$(prop vblkd ActiveState)" = active ] && [ "$pid1" != "$pid0" ] && [ "$pid1" != 0 ] && break
		[ $i -lt 200 ] || fail "vblkd not active again 20 s after kill -9 ($(prop vblkd ActiveState))" || return
		sleep 0.1
		i=$((i + 1))
	done
	systemctl show vblkd -p ActiveState,SubState,NRestarts,MainPID
	adopted domu1 2 && adopted domu5 2 || return
	STEP_NOTE="restarted by systemd (pid $pid0 -> $pid1, NRestarts $(prop vblkd NRestarts)); both guests adopted again"
}

# systemctl stop is a stop for good: the unit's ExecStop releases every guest (vblkd --release),
# each disk says Closed, no record is left, and the unit ends inactive, not failed.
stop_releases() {
	local dom dev s
	systemctl stop vblkd || fail "systemctl stop vblkd" || return
	systemctl show vblkd -p ActiveState,SubState,Result,ExecMainStatus,NRestarts
	[ "$(prop vblkd ActiveState)" = inactive ] && [ "$(prop vblkd Result)" = success ] ||
		fail "vblkd is $(prop vblkd ActiveState) ($(prop vblkd Result)) after stop" || return
	ls -l /run/vblkd/state 2>/dev/null
	[ "$(records 2>/dev/null || echo 0)" = 0 ] || fail "records left in /run/vblkd/state" || return
	for dom in domu1 domu5; do
		for dev in $DEVS; do
			s=$(xenstore-read "$BE/$(xl domid $dom)/$dev/state" 2>/dev/null)
			[ "$s" = 6 ] || fail "$dom disk $dev is in state '$s' after stop, want 6 (Closed)" || return
		done
	done
	journalctl -b -u vblkd --no-pager -o cat | tail -n 8
	STEP_NOTE="inactive (success); domu1, domu5 released, their disks Closed; no record left"
}

# Then the guests are destroyed as the toolstack does: xl destroy returns at once with no libxl error
# (libxl writes Closing to each disk's backend state and waits up to 10 s for Closed, unless it is
# Closed already), and no domain is left dying.
destroy_released() {
	local i=0 dom log t0 why=
	for dom in domu1 domu5; do
		log=/var/log/xen/xl-destroy-$dom.log
		t0=$(uptime_s)
		xl -vvv destroy $dom > "$log" 2>&1 || { tail -n 20 "$log"; fail "xl destroy $dom exited $?"; return; }
		echo "xl destroy $dom: $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.1f", b - a }') s"
		grep -E 'libxl: error|timed out' "$log" | head -n 4
		! grep -q -E 'libxl: error|unable to remove device|devices_destroy failed|timed out' "$log" ||
			why="$why; xl destroy $dom waited for the disks' Closed and logged errors"
	done
	while [ "$(xl list | awk 'NR > 1' | wc -l)" != 1 ]; do
		[ $i -lt 100 ] || { xl list; fail "a domain is left (dying) 10 s after xl destroy"; return; }
		sleep 0.1
		i=$((i + 1))
	done
	xl list
	! xenstore-exists "$BE/$DOMID_domu1" 2>/dev/null || why="$why; $BE/$DOMID_domu1 is left"
	[ -z "$why" ] || fail "${why#; }" || return
	STEP_NOTE="both guests destroyed cleanly, only Domain-0 left"
}

images() {
	e2fsck -fn $V/rw1.img || fail "e2fsck rw1.img" || return
	e2fsck -fn $V/rw5.img || fail "e2fsck rw5.img" || return
	dd if=$V/rw5.img bs=1M skip=$PATTERN_MIB_FIRST count=64 2>/dev/null |
		$T/domu-io check 1007 $((PATTERN_MIB_FIRST * 256)) $((64 * 256)) || fail "rw5.img: the round's data is not there" || return
	STEP_NOTE="rw1, rw5 clean; the restart round's 64 MiB intact"
}

onxen() {
	step sd:boot booted || return
	step sd:xen-units xen_units
	step sd:ready ready || return
	step sd:boot-order boot_order || return
	step sd:sandbox-domu1 sandbox
	relay_guest domu1
	step sd:status-domu1 status_lists domu1
	step sd:reload-grow reload_grow
	step sd:journal-priorities priorities
	step sd:watchdog watchdog
	step sd:create-domu5 create_domu5 || return
	step sd:restart-io restart_io
	if step sd:run-domu5 wait_guest domu5; then
		step sd:adopted-domu5 adopted domu5 1
	fi
	relay_guest domu5
	step sd:crash-adopts crash_adopts || return
	step sd:stop-releases stop_releases || return
	step sd:destroy-released destroy_released
	step sd:images images
}

case $MODE in
noxen) noxen ;;
xen) onxen ;;
*) echo "scenario: unknown vblkd_test=$MODE" ;;
esac
journalctl -b --no-pager -o short-monotonic -u vblkd > /tmp/vblkd.journal
dump_log vblkd /tmp/vblkd.journal
journalctl -b --no-pager -o short-monotonic -p warning > /tmp/warnings.journal
dump_log journal-warnings /tmp/warnings.journal
for f in /var/log/xen/xl-*.log; do
	[ -e "$f" ] && dump_log "$(basename "$f" .log)" "$f"
done
echo "VBLKD-XEN DONE pass=$STEP_PASS fail=$STEP_FAIL skip=$STEP_SKIP uptime=$(uptime_s)"
sync
systemctl poweroff -ff
