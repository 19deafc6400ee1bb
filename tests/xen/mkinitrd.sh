#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Build the Dom0 and DomU initramfs images of `make check-xen` from the cached arm64 sysroot.
#
# usage: mkinitrd.sh OUTDIR real|selftest [VBLKD]
#   OUTDIR/ro.img        the read-only disk's known data (4 MiB; sector N starts "vblkd-ro sector N")
#   OUTDIR/domu.cpio.gz  busybox, e2fsprogs, virtio_mmio/virtio_blk/ext4 modules, domu/init, and
#                        OUTDIR/domu-io (the restart rounds' IO tool) if present
#   OUTDIR/dom0.cpio.gz  busybox, Debian's Xen tools and libraries, e2fsprogs, modules, the kernel and the
#                        DomU initramfs for the guests, ro.img, the scenario, vblkd (real mode), and
#                        OUTDIR/cross-probe, OUTDIR/ioreq-stub (the self-test backend),
#                        OUTDIR/notify-run (starts and stops it as systemd would) and OUTDIR/domu-io
#                        (checks the restart guest's data in its image) if present
#   OUTDIR/boot-vda.cpio.gz  the systemd Dom0's initramfs (tests/xen/sd-root-img.sh): the modules for
#                        its root disk, /dev/vda (QEMU's virtio-blk), mounted before switch_root to
#                        /sbin/init, systemd; what Debian's initramfs-tools image does for that disk
# Debian's kernel .deb ships no modules.dep: modules are listed in dependency order from each .ko's
# depends= field and inserted with insmod.  Every ELF file copied gets the libraries it needs (NEEDED,
# recursively) from the sysroot, so a missing library fails here and not as a mystery in the guest.
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd)
. "$H/lib.sh"
TOP=$(cd "$H/../.." && pwd)

OUT=$1
MODE=$2
VBLKD=${3:-}
case $MODE in real|selftest) ;; *) xdie "mkinitrd.sh: mode must be real or selftest" ;; esac
[ "$MODE" = selftest ] || [ -x "$VBLKD" ] || xdie "mkinitrd.sh: real mode needs the arm64 vblkd binary"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

t0=$(xnow)
kernel_select

# ---- kernel modules in dependency order ----------------------------------------------------------
# (Debian 13's are xz-compressed: they go into the images decompressed, busybox's insmod takes .ko.)
declare -A MODPATH=() MODSEEN=()
if [ -n "$KMOD" ]; then
	while read -r p; do
		n=${p##*/}
		n=${n%.xz}
		n=${n%.ko}
		MODPATH[${n//-/_}]=${p#"$KMOD"/}
	done < <(find "$KMOD/kernel" -name '*.ko' -o -name '*.ko.xz')
fi
ko_cat() {
	case $1 in
	*.xz) xz -dc "$1" ;;
	*) cat "$1" ;;
	esac
}

MODORDER=()
mod_add() {
	local n=${1//-/_} d
	[ -z "${MODSEEN[$n]:-}" ] || return 0
	MODSEEN[$n]=1
	[ -n "${MODPATH[$n]:-}" ] || xdie "kernel module $n not found in $KV"
	for d in $(ko_cat "$KMOD/${MODPATH[$n]}" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
		mod_add "$d"
	done
	MODORDER+=("${MODPATH[$n]}")
}

# mod_install ROOT ORDERFILE MODULE...: copy the modules and their dependencies, write the insmod order
# (empty with a kernel that has them built in).
mod_install() {
	local root=$1 order=$2 m ko
	shift 2
	MODSEEN=()
	MODORDER=()
	mkdir -p "$root/lib/modules"
	: > "$root/lib/modules/$order"
	[ -n "$KMOD" ] || return 0
	for m in "$@"; do mod_add "$m"; done
	for m in "${MODORDER[@]}"; do
		ko=${m%.xz}
		mkdir -p "$root/lib/modules/$KV/$(dirname "$m")"
		ko_cat "$KMOD/$m" > "$root/lib/modules/$KV/$ko"
		echo "/lib/modules/$KV/$ko" >> "$root/lib/modules/$order"
	done
}

# ---- ELF files and the libraries they need -------------------------------------------------------
LIBDIRS=("lib/$TRIPLET" "usr/lib/$TRIPLET")
lib_copy() {
	local root=$1 so=$2 d
	for d in "${LIBDIRS[@]}"; do
		[ ! -e "$root/$d/$so" ] || return 0
	done
	for d in "${LIBDIRS[@]}"; do
		if [ -e "$SYSROOT/$d/$so" ]; then
			mkdir -p "$root/$d"
			cp -L "$SYSROOT/$d/$so" "$root/$d/$so"
			elf_libs "$root" "$root/$d/$so"
			return 0
		fi
	done
	xdie "library $so (needed in the initramfs) is not in the arm64 sysroot"
}
elf_libs() {
	local root=$1 f=$2 so
	for so in $($TRIPLET-readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		lib_copy "$root" "$so"
	done
}
# elf_install ROOT SRC DST: copy one file; if it is an ELF file, its libraries too.
elf_install() {
	local root=$1 src=$2 dst=$3
	mkdir -p "$root/$(dirname "$dst")"
	cp -L "$src" "$root/$dst"
	if [ "$(head -c 4 "$src" | od -An -c | tr -d ' ')" = '177ELF' ]; then
		elf_libs "$root" "$root/$dst"
	fi
}
base_root() {
	local root=$1
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,etc,lib,proc,sys,dev,tmp,run,mnt,usr/bin,usr/sbin,var/log}
	cp "$SYSROOT/bin/busybox" "$root/bin/busybox"
	cp -L "$SYSROOT/lib/ld-linux-aarch64.so.1" "$root/lib/ld-linux-aarch64.so.1"
	cp "$H/steps.sh" "$root/steps.sh"
	# glibc dlopen()s libgcc_s for pthread_cancel (xl aborts without it); no NEEDED entry names it.
	lib_copy "$root" libgcc_s.so.1
	echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
	echo "root:x:0:" > "$root/etc/group"
}
pack() { (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1 > "$2"); }

# ---- the read-only disk's known data -------------------------------------------------------------
python3 - "$OUT/ro.img" <<'EOPY'
import sys
with open(sys.argv[1], "wb") as f:
    ramp = bytes(range(256)) * 3
    for n in range(8192):
        head = b"vblkd-ro sector %08d\n" % n
        start = (n * 7) & 0xff
        f.write(head + ramp[start:start + 512 - len(head)])
EOPY

# ---- DomU ----------------------------------------------------------------------------------------
D=$OUT/initrd-domu
base_root "$D"
for b in mke2fs e2fsck; do elf_install "$D" "$SYSROOT/sbin/$b" "sbin/$b"; done
ln -s mke2fs "$D/sbin/mkfs.ext4"
ln -s e2fsck "$D/sbin/fsck.ext4"
mod_install "$D" preload.order crc32c_generic ext4
mod_install "$D" virtio.order virtio_mmio virtio_blk
[ ! -f "$OUT/domu-io" ] || elf_install "$D" "$OUT/domu-io" usr/bin/domu-io
cp "$H/domu/init" "$D/init"
chmod 0755 "$D/init"
pack "$D" "$OUT/domu.cpio.gz"

# ---- Dom0 ----------------------------------------------------------------------------------------
D=$OUT/initrd-dom0
base_root "$D"
X=usr/lib/xen-$XEN_VER
for f in "$SYSROOT/$X"/bin/*; do elf_install "$D" "$f" "$X/bin/${f##*/}"; done
[ ! -d "$SYSROOT/$X/lib" ] || cp -a "$SYSROOT/$X/lib" "$D/$X/"
rm -rf "$D/$X/lib/python"
for f in "$SYSROOT"/usr/bin/xenstore*; do elf_install "$D" "$f" "usr/bin/${f##*/}"; done
for b in mke2fs e2fsck; do elf_install "$D" "$SYSROOT/sbin/$b" "sbin/$b"; done
ln -s mke2fs "$D/sbin/mkfs.ext4"
ln -s e2fsck "$D/sbin/fsck.ext4"
cp -a "$SYSROOT/etc/xen" "$D/etc/"
mod_install "$D" preload.order xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs loop crc32c_generic ext4
mkdir -p "$D/boot" "$D/usr/lib/vblkd-test"
cp "$KIMAGE" "$D/boot/vmlinuz"
cp "$OUT/domu.cpio.gz" "$D/boot/domu.cpio.gz"
cp "$OUT/ro.img" "$D/usr/lib/vblkd-test/ro.img"
cp "$H/dom0/init" "$D/init"
cp "$H/dom0/scenario.sh" "$D/usr/lib/vblkd-test/"
chmod 0755 "$D/init"
for f in cross-probe ioreq-stub notify-run domu-io; do
	[ ! -f "$OUT/$f" ] || elf_install "$D" "$OUT/$f" "usr/lib/vblkd-test/$f"
done
# The stack, for Dom0's versions step: the hypervisor as built, the release's packages, the kernel.
{
	echo "release Debian $XEN_RELEASE ($DEB_SUITE)"
	echo "hypervisor $(make -s -C "$XR/xen-src/xen/xen" xenversion 2>/dev/null)"
	sed -n "s/^\(xen-utils-$XEN_VER\|libxen-dev\|libxenmisc$XEN_VER\|xenstore-utils\) /\1 /p" "$XR/debs/versions.txt"
	if [ "$XEN_KERNEL" = debian ]; then
		echo "kernel $KV ($(sed -n 's/^\(linux-image-[^ ]*\) \(.*\)/\1 \2/p' "$XR/debs/versions.txt"))"
	else
		echo "kernel $KV, built by check-xen (tests/xen/build-kernel.sh)"
	fi
} > "$D/etc/vblkd-test-versions"
grep -q '^hypervisor [0-9]' "$D/etc/vblkd-test-versions" || xdie "cannot tell the hypervisor's version"
echo "$MODE" > "$D/etc/vblkd-test-mode"
echo "${XEN_SCENARIO:-all}" > "$D/etc/vblkd-test-scenario"
if [ "$MODE" = real ]; then
	elf_install "$D" "$VBLKD" usr/sbin/vblkd
fi
# vblkd is started exactly as its systemd unit starts it: the unit's ExecStart line, with the options
# of /etc/default/vblkd (the unit's EnvironmentFile); the test only adds debug logging there.
sed -n 's|^ExecStart=@SBINDIR@|/usr/sbin|p' "$TOP/systemd/vblkd.service.in" > "$D/etc/vblkd-exec-start"
[ -s "$D/etc/vblkd-exec-start" ] || xdie "no ExecStart line in systemd/vblkd.service.in"
# Type=notify: Dom0 then waits for READY=1 (notify-run) instead of a second.
sed -n 's/^Type=//p' "$TOP/systemd/vblkd.service.in" > "$D/etc/vblkd-unit-type"
# Restart=on-failure and FileDescriptorStoreMax=: notify-run restarts a killed vblkd itself, passing
# back what it stored (the kernel fast path's eventfds).
sed -n 's/^Restart=//p' "$TOP/systemd/vblkd.service.in" > "$D/etc/vblkd-unit-restart"
sed -n 's/^FileDescriptorStoreMax=//p' "$TOP/systemd/vblkd.service.in" > "$D/etc/vblkd-unit-fdstore"
# Directories systemd would create for the unit (RuntimeDirectory=, StateDirectory=), should it gain any.
sed -n 's|^RuntimeDirectory=|/run/|p; s|^StateDirectory=|/var/lib/|p' "$TOP/systemd/vblkd.service.in" \
	> "$D/etc/vblkd-unit-dirs"
mkdir -p "$D/etc/default"
echo "VBLKD_OPTS=\"${XEN_VBLKD_OPTS:---log-level=debug}\"" > "$D/etc/default/vblkd"
pack "$D" "$OUT/dom0.cpio.gz"

# ---- the systemd Dom0's initramfs ----------------------------------------------------------------
D=$OUT/initrd-boot
base_root "$D"
mod_install "$D" preload.order virtio_mmio virtio_blk crc32c_generic ext4
cat > "$D/init" <<'EOI'
#!/bin/busybox sh
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r ko; do insmod "$ko"; done < /lib/modules/preload.order
i=0
until [ -b /dev/vda ]; do
	[ $i -lt 100 ] || { echo "initramfs: no /dev/vda after 10 s"; exec sh; }
	usleep 100000
	i=$((i + 1))
done
mkdir -p /root
mount -t ext4 -o rw /dev/vda /root || { echo "initramfs: cannot mount /dev/vda"; exec sh; }
umount /proc /sys
mount --move /dev /root/dev
exec switch_root /root /sbin/init
EOI
chmod 0755 "$D/init"
pack "$D" "$OUT/boot-vda.cpio.gz"
rm -rf "$OUT/initrd-domu" "$OUT/initrd-dom0" "$OUT/initrd-boot"
xlog "initramfs images built in $(xsince "$t0") s: dom0 $(du -h "$OUT/dom0.cpio.gz" | cut -f1), domu $(du -h "$OUT/domu.cpio.gz" | cut -f1)"
