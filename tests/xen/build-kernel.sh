#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Build the arm64 kernel of check-xen's grant and fast-path runs from Debian 13's Linux source.
#
# Debian's arm64 kernels (12 and 13) leave CONFIG_XEN_VIRTIO unset: their guests cannot use grant
# mappings for virtio, and their privcmd has no ioeventfd/irqfd (XEN_PRIVCMD_EVENTFD depends on it).
# This builds one small kernel, allnoconfig plus tests/xen/kernel.config, everything built in, that
# serves as Dom0 and as DomU (about 10 minutes with 2 cores).
# Output: $XR/linux-xen/Image and linux-xen/version (cached; rebuilt when kernel.config changes).
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd)
XEN_RELEASE=13
. "$H/lib.sh"

K=$XR/linux-xen
want=$(sha256sum < "$H/kernel.config" | cut -d' ' -f1)
[ "$(cat "$K/config.sha256" 2>/dev/null)" != "$want" ] || exit 0
mkdir -p "$XR"
exec 9> "$XR/linux.lock"
flock 9
[ "$(cat "$K/config.sha256" 2>/dev/null)" != "$want" ] || exit 0

t0=$(xnow)
"$H/deb-source.sh" linux "$XR/linux-src" || xdie "cannot get Debian's linux source package"
S=$XR/linux-src/linux
M=(-C "$S" ARCH=arm64 "CROSS_COMPILE=$TRIPLET-" O="$XR/linux-build")
mkdir -p "$XR/linux-build"
log=$XR/linux-build.log
make "${M[@]}" allnoconfig > "$log" 2>&1
grep -v '^#' "$H/kernel.config" >> "$XR/linux-build/.config"
make "${M[@]}" olddefconfig >> "$log" 2>&1
for o in $(sed -n 's/^\(CONFIG_[A-Z0-9_]*\)=y$/\1/p' "$H/kernel.config"); do
	grep -q "^$o=y" "$XR/linux-build/.config" || xdie "olddefconfig dropped $o (a dependency is missing in kernel.config)"
done
xlog "building Linux $(make -s "${M[@]}" kernelversion) for Dom0 and DomU (make -j$(nproc) Image)"
make "${M[@]}" -j"$(nproc)" Image >> "$log" 2>&1 ||
	{ tail -n 30 "$log" >&2; xdie "kernel build failed (log: $log)"; }
rm -rf "$K"
mkdir -p "$K"
cp "$XR/linux-build/arch/arm64/boot/Image" "$K/Image"
cp "$XR/linux-build/.config" "$K/config"
echo "$(make -s "${M[@]}" kernelversion) (Debian $(basename "$(ls "$XR"/linux-src/linux_*.dsc)" .dsc | sed 's/^linux_//'))" > "$K/version"
echo "$want" > "$K/config.sha256"
xlog "kernel built in $(xsince "$t0") s: $(cat "$K/version"), $(du -h "$K/Image" | cut -f1)"
