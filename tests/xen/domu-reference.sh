#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Run the DomU's half of the check-xen scenario without Xen, against QEMU's own virtio-blk devices.
#
# A reference for the guest steps themselves: when `make check-xen` fails a domuN:* step, this shows
# whether the same step passes against an independent virtio-blk implementation (QEMU's), with the same
# Debian kernel, initramfs, disk sizes and known data.  Needs the cache and an initramfs built by
# check-xen.sh (or mkinitrd.sh OUTDIR selftest).  Afterwards the host checks the read-write image as
# Dom0 does: e2fsck -fn (if installed) and the guest's raw writes at their offsets.
# usage: domu-reference.sh [OUTDIR]   (default build/xen)
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd)
. "$H/lib.sh"

OUT=$(cd "${1:-build/xen}" && pwd)
[ -f "$OUT/domu.cpio.gz" ] && [ -f "$OUT/ro.img" ] || xdie "no domu.cpio.gz/ro.img in $OUT: run check-xen.sh first"
kernel_select
R=$OUT/reference
mkdir -p "$R"
rm -f "$R/rw.img"
truncate -s 64M "$R/rw.img"
# QEMU's virt machine hands out its virtio-mmio slots from the top: the last -device becomes vda.
ro_sha=$(sha256sum "$OUT/ro.img" | cut -d' ' -f1)
ro_sectors=$(($(stat -c %s "$OUT/ro.img") / 512))
t0=$(xnow)
rc=0
python3 "$H/runner.py" --out "$R" --timeout "${XEN_TIMEOUT:-600}" --end-pattern '^VBLKD-XEN DOMU-END' --grace 0 -- \
	qemu-system-aarch64 -machine virt -cpu "${XEN_QEMU_CPU:-cortex-a57}" -smp 1 -m 256 \
	-nographic -no-reboot -nic none \
	-kernel "$KIMAGE" -initrd "$OUT/domu.cpio.gz" \
	-append "console=ttyAMA0 rdinit=/init vblkd_test=reference vblkd_rw_sectors=131072 vblkd_ro_sectors=$ro_sectors vblkd_ro_sha256=$ro_sha" \
	-drive "file=$OUT/ro.img,if=none,id=ro,format=raw,readonly=on" -device virtio-blk-device,drive=ro \
	-drive "file=$R/rw.img,if=none,id=rw,format=raw" -device virtio-blk-device,drive=rw || rc=$?
if command -v e2fsck > /dev/null; then
	e2fsck -fn "$R/rw.img" || { xlog "e2fsck -fn of the reference image failed"; rc=1; }
fi
# The guest's raw writes, where Dom0's check expects them (offsets and patterns from steps.sh).
. "$H/steps.sh"
cmp <(raw_pattern_a) <(dd if="$R/rw.img" bs=512 skip=$RAW_A_SECTOR count=3 2>/dev/null) &&
	cmp <(raw_pattern_b) <(dd if="$R/rw.img" bs=1 skip=$RAW_B_OFFSET count=1000 2>/dev/null) ||
	{ xlog "the guest's raw writes are not in the image"; rc=1; }
xlog "reference run: $(xsince "$t0") s"
exit $rc
