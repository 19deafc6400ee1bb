#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# `make check-xen`: vblkd on real Xen under qemu-system-aarch64 (TCG), from Debian packages: Debian 12
# (Xen 4.17) or Debian 13 (Xen 4.20), XEN_RELEASE; the Makefile runs both.
#
# Prepares (cached in VBLKD_XEN_CACHE, see lib.sh) the arm64 sysroot and the IOREQ-enabled hypervisor,
# proves the sysroot cross-links libxendevicemodel/libaio/liburing, builds the initramfs images, boots
# Xen + Dom0 and runs the scenario of dom0/scenario.sh and domu/init, then judges it (runner.py).
#
# Environment:
#   VBLKD=PATH          the arm64 vblkd to test (real mode; the Makefile passes build/arm64/vblkd)
#   XEN_SELFTEST=1      harness self-test: ioreq-stub.c instead of vblkd (the xenstore handshake and an
#                       IOREQ server showing empty virtio-mmio slots), then the DomU's disk steps
#                       against QEMU's own virtio-blk (domu-reference.sh)
#   XEN_VBLKD_OPTS=...  vblkd's options in Dom0's /etc/default/vblkd (default --log-level=debug),
#                       e.g. "--log-level=debug --engine=uring"
#   XEN_SCENARIO=restart  only the restart guest's steps (issue 18) after vblkd's start, for working
#                       on them (default all)
#   XEN_RELEASE=12|13   Debian's release (default 12): its Xen, tools, libraries and kernel
#   XEN_KERNEL=debian|xen  the kernel of Dom0 and guests: the release's own (default), or the one
#                       build-kernel.sh builds with grant mappings and privcmd's fast path (issue 20;
#                       Debian 13 only), which runs the grant and fast-path scenario (XEN_SCENARIO=xen)
#   XEN_SYSTEMD=1|0|only  the second Dom0, booted by systemd with vblkd from its .deb (issue 22;
#                       default 1 in real mode; only: that one alone, for working on it)
#   VBLKD_DEB=PATH      the arm64 .deb for it (the Makefile passes build/deb-arm64's)
#   XEN_OUT=DIR         per-run output: serial.log, logs/, initramfs images (default build/xen);
#                       the systemd Dom0's runs in DIR/sd-noxen and DIR/sd-xen
#   XEN_TIMEOUT=S       give up on the QEMU run after S seconds (default 900)
#   XEN_INTERACTIVE=1   QEMU on this terminal and a Dom0 shell after the scenario, for debugging
#                       (Ctrl-a x quits QEMU; Xen's console switch is Ctrl-a a, three times)
#   XEN_QEMU_CPU, XEN_QEMU_SMP, XEN_QEMU_MEM, XEN_DOM0_MEM   machine shape (cortex-a57, 2, 1536, 512)
#   XEN_QEMU_ACCEL      QEMU's -accel (default tcg; tcg,thread=single for one host thread)
#   XEN_ARGS            more hypervisor options (default sched=credit, see below; empty: credit2)
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd)
. "$H/lib.sh"

MODE=real
[ "${XEN_SELFTEST:-0}" = 1 ] && MODE=selftest
case ${XEN_KERNEL:=debian} in
debian) : "${XEN_SCENARIO:=all}" ;;
xen) : "${XEN_SCENARIO:=xen}"; [ "$XEN_RELEASE" = 13 ] || xdie "XEN_KERNEL=xen needs XEN_RELEASE=13 (grant_usage is Xen 4.19's)" ;;
esac
case $XEN_SCENARIO in all|restart|xen) ;; *) xdie "XEN_SCENARIO must be all, restart or xen" ;; esac
[ "$MODE" = real ] || [ "$XEN_SCENARIO" = all ] || xdie "XEN_SCENARIO=restart needs vblkd (not XEN_SELFTEST=1)"
SYSTEMD=${XEN_SYSTEMD:-1}
# The systemd Dom0 (issue 22) is Debian 12's, with Debian's kernel.
[ "$MODE" = real ] && [ "$XEN_RELEASE" = 12 ] && [ "$XEN_KERNEL" = debian ] || SYSTEMD=0
case $SYSTEMD in 0|1|only) ;; *) xdie "XEN_SYSTEMD must be 0, 1 or only" ;; esac
export XEN_SCENARIO
OUT=${XEN_OUT:-build/xen}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
HOST_STEPS=$OUT/host-steps.txt
: > "$HOST_STEPS"
t_all=$(xnow)

# host_step ID COMMAND...: like steps.sh's step, for the preparation on the host.
host_step() {
	local id=$1 t0 rc=0 v=PASS line
	shift
	t0=$(xnow)
	"$@" || rc=$?
	[ $rc = 0 ] || v=FAIL
	line="VBLKD-XEN STEP host:$id $v $(xsince "$t0")s"
	echo "$line" >> "$HOST_STEPS"
	xlog "${line#VBLKD-XEN STEP }"
	[ $rc = 0 ] || xdie "host step $id failed"
}

check_vblkd() {
	if [ -z "${VBLKD:-}" ] || [ ! -x "$VBLKD" ]; then
		xlog "vblkd is not built for arm64 (${VBLKD:-no VBLKD given}): run 'make cross' first."
		xlog "'make check-xen XEN_SELFTEST=1' tests the harness without it."
		return 1
	fi
	file -b "$VBLKD" | grep -q aarch64 || { xlog "$VBLKD is not an aarch64 binary: $(file -b "$VBLKD")"; return 1; }
}

# The sysroot proof (cross-probe), the self-test backend (ioreq-stub), Dom0's stand-in for systemd's
# start and stop of the unit (notify-run) and the restart guest's IO tool (domu-io), with the project's
# warnings.
cross_build() {
	local P="$H/arm64-pkg-config" f
	local cflags=(-std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wformat=2 -Wmissing-prototypes
		-Wstrict-prototypes -Wshadow -Wswitch-enum -Wundef -Wwrite-strings -Werror)
	# shellcheck disable=SC2046
	"$TRIPLET-gcc" "${cflags[@]}" -o "$OUT/cross-probe" "$H/cross-probe.c" \
		$("$P" --cflags --libs xendevicemodel libaio liburing) || return 1
	# shellcheck disable=SC2046
	"$TRIPLET-gcc" "${cflags[@]}" -o "$OUT/ioreq-stub" "$H/ioreq-stub.c" \
		$("$P" --cflags --libs xendevicemodel xenforeignmemory xenevtchn xenstore) || return 1
	"$TRIPLET-gcc" "${cflags[@]}" -o "$OUT/notify-run" "$H/notify-run.c" "$H/../lib/svcmgr.c" || return 1
	"$TRIPLET-gcc" "${cflags[@]}" -o "$OUT/domu-io" "$H/domu-io.c" || return 1
	for f in cross-probe ioreq-stub notify-run domu-io; do
		file -b "$OUT/$f" | grep -q 'ARM aarch64' || { file "$OUT/$f"; return 1; }
	done
}

xlog "Debian $XEN_RELEASE, Xen $XEN_VER, $XEN_KERNEL kernel, mode: $MODE, cache: $XR, output: $OUT"
[ "$MODE" = selftest ] || host_step vblkd-arm64 check_vblkd
host_step fetch-arm64 "$H/fetch-arm64.sh"
host_step xen-ioreq "$H/build-xen.sh"
[ "$XEN_KERNEL" = debian ] || host_step xen-kernel "$H/build-kernel.sh"
host_step cross-build cross_build
host_step initramfs "$H/mkinitrd.sh" "$OUT" "$MODE" "${VBLKD:-}"
if [ "$SYSTEMD" != 0 ]; then
	host_step vblkd-deb-arm64 test -f "${VBLKD_DEB:-/nonexistent}"
	host_step sd-root "$H/fetch-sd-root.sh"
	host_step sd-root-image "$H/sd-root-img.sh" "$OUT" "$VBLKD_DEB"
fi

kernel_select
DOM0_MEM=${XEN_DOM0_MEM:-512}
# Xen's default scheduler, credit2, lost wakeups under QEMU on a busy host: the machine froze with both
# physical CPUs idle and Dom0's vCPU runnable in credit2's run queue (or woken, in none), nobody
# tickled, the guests' vCPUs blocked on their IOREQs; Xen's debug keys (runner.py) showed it.  With
# three machines at once on 2 cores, 6 of 9 runs froze so (2 of 3 also with single-threaded TCG);
# with credit1 (sched=credit) none has, and runs were faster too.
XEN_ARGS=${XEN_ARGS-sched=credit}
DOM0_ARGS="console=hvc0 earlycon=xen rdinit=/init"
[ "${XEN_INTERACTIVE:-0}" != 1 ] || DOM0_ARGS="$DOM0_ARGS vblkd_shell=1"
QEMU=(qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3
	-accel "${XEN_QEMU_ACCEL:-tcg}"
	-cpu "${XEN_QEMU_CPU:-cortex-a57}" -smp "${XEN_QEMU_SMP:-2}" -m "${XEN_QEMU_MEM:-1536}"
	-nographic -no-reboot -nic none
	-kernel "$XEN_IOREQ"
	-append "console=dtuart dom0_mem=${DOM0_MEM}M,max:${DOM0_MEM}M dom0_max_vcpus=1 loglvl=all guest_loglvl=all $XEN_ARGS"
	-device "guest-loader,addr=0x42000000,kernel=$KIMAGE,bootargs=$DOM0_ARGS"
	-device "guest-loader,addr=0x50000000,initrd=$OUT/dom0.cpio.gz")
if [ "${XEN_INTERACTIVE:-0}" = 1 ]; then
	xlog "interactive: Ctrl-a x quits QEMU; the Dom0 shell comes after the scenario"
	exec "${QEMU[@]}"
fi
rc=0
[ "$SYSTEMD" = only ] ||
	python3 "$H/runner.py" --out "$OUT" --timeout "${XEN_TIMEOUT:-900}" --host-steps "$HOST_STEPS" -- "${QEMU[@]}" || rc=$?

# The systemd Dom0 (issue 22): its root disk booted first without Xen (QEMU's kernel boot: the
# package installed, a reboot, the unit skipped), then as Dom0 on the same Xen as above.
if [ "$SYSTEMD" != 0 ]; then
	t_sd=$(xnow)
	DISK=(-drive "file=$OUT/sd-root.img,if=none,format=raw,id=root" -device virtio-blk-device,drive=root)
	SD_ARGS="rdinit=/init quiet"
	NOXEN=(qemu-system-aarch64 -machine virt,gic-version=3 -accel "${XEN_QEMU_ACCEL:-tcg}"
		-cpu "${XEN_QEMU_CPU:-cortex-a57}" -smp "${XEN_QEMU_SMP:-2}" -m 1024 -nographic -nic none
		-kernel "$KIMAGE" -initrd "$OUT/boot-vda.cpio.gz"
		-append "console=ttyAMA0 $SD_ARGS vblkd_test=noxen" "${DISK[@]}")
	SDXEN=("${QEMU[@]}" "${DISK[@]}")
	for i in "${!SDXEN[@]}"; do
		case ${SDXEN[$i]} in
		guest-loader,addr=0x42000000,*) SDXEN[$i]="guest-loader,addr=0x42000000,kernel=$KIMAGE,bootargs=console=hvc0 earlycon=xen $SD_ARGS vblkd_test=xen" ;;
		guest-loader,addr=0x50000000,*) SDXEN[$i]="guest-loader,addr=0x50000000,initrd=$OUT/boot-vda.cpio.gz" ;;
		esac
	done
	: > "$OUT/sd-host-steps.txt"
	grep -E 'host:(vblkd-deb-arm64|sd-root|sd-root-image) ' "$HOST_STEPS" > "$OUT/sd-host-steps.txt" || true
	xlog "systemd Dom0: booting its root disk without Xen"
	python3 "$H/runner.py" --out "$OUT/sd-noxen" --timeout 600 -- "${NOXEN[@]}" || rc=1
	xlog "systemd Dom0: booting it as Dom0 on Xen"
	python3 "$H/runner.py" --out "$OUT/sd-xen" --timeout "${XEN_TIMEOUT:-900}" \
		--host-steps "$OUT/sd-host-steps.txt" -- "${SDXEN[@]}" || rc=1
	xlog "systemd Dom0: both runs in $(xsince "$t_sd") s"
fi
if [ "$MODE" = selftest ]; then
	# The guest's disk steps cannot run without a backend on Xen: run them against QEMU's virtio-blk.
	xlog "the DomU's disk steps against QEMU's own virtio-blk (no Xen), as a reference"
	"$H/domu-reference.sh" "$OUT" > "$OUT/reference.out" 2>&1 || { cat "$OUT/reference.out"; rc=1; }
	grep -E '^check-xen: (QEMU ran|PASS|FAIL)' "$OUT/reference.out" | sed 's/^check-xen: /check-xen: reference: /'
elif [ $rc != 0 ]; then
	xlog "hint: tests/xen/domu-reference.sh $OUT runs the guest's steps against QEMU's virtio-blk"
fi
xlog "whole run: $(xsince "$t_all") s"
exit $rc
