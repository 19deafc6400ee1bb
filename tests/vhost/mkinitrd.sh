#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The guest's initramfs for `make check-vhost`: the host's busybox and e2fsprogs (the guest is amd64
# too), Debian's virtio-pci, virtio-blk and ext4 modules with their dependencies, and tests/vhost/init.
# usage: mkinitrd.sh OUT.cpio.gz
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd)
VC=${VBLKD_VHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vblkd-vhost}
OUT=$1
KV=$(basename "$(ls -d "$VC"/kernel/modules/*)")
KMOD=$VC/kernel/modules/$KV
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT

mkdir -p "$R"/{bin,sbin,etc,proc,sys,dev,tmp,mnt,root,lib/modules}
cp /bin/busybox "$R/bin/busybox"
for b in mke2fs e2fsck; do cp -L "/sbin/$b" "$R/sbin/$b"; done
ln -s mke2fs "$R/sbin/mkfs.ext4"
ln -s e2fsck "$R/sbin/fsck.ext4"
# The libraries e2fsprogs needs, from the host, where ldd finds them.
for f in "$R/sbin/mke2fs" "$R/sbin/e2fsck"; do
	ldd "$f" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^\s*\(\/[^ ]*\) (.*/\1/p'
done | sort -u | while read -r so; do
	mkdir -p "$R$(dirname "$so")"
	cp -L "$so" "$R$so"
done

declare -A MODPATH=() MODSEEN=()
while read -r p; do
	n=${p##*/}
	n=${n%.ko}
	MODPATH[${n//-/_}]=$p
done < <(find "$KMOD/kernel" -name '*.ko')
ORDER=()
mod_add() {
	local n=${1//-/_} d
	[ -z "${MODSEEN[$n]:-}" ] || return 0
	MODSEEN[$n]=1
	[ -n "${MODPATH[$n]:-}" ] || { echo "check-vhost: module $n not in $KV" >&2; exit 1; }
	for d in $(tr '\0' '\n' < "${MODPATH[$n]}" | sed -n 's/^depends=//p' | tr ',' ' '); do
		mod_add "$d"
	done
	ORDER+=("$n")
}
for m in crc32c_generic ext4 virtio_pci virtio_blk; do mod_add "$m"; done
: > "$R/lib/modules/order"
for n in "${ORDER[@]}"; do
	cp "${MODPATH[$n]}" "$R/lib/modules/$n.ko"
	echo "$n" >> "$R/lib/modules/order"
done
cp "$H/init" "$R/init"
chmod 0755 "$R/init"
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1 > "$OUT")
