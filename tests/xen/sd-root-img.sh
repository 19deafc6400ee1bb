#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The root disk of check-xen's systemd Dom0 for one run: the cached Debian root (fetch-sd-root.sh)
# plus this run's vblkd .deb, the scenario and the guests, as an ext4 image QEMU gives the machine
# as /dev/vda (made with mkfs.ext4 -d: no loop device or mount needed).
#
# usage: sd-root-img.sh OUTDIR VBLKD_DEB
#   OUTDIR holds mkinitrd.sh's domu.cpio.gz, ro.img and domu-io; writes OUTDIR/sd-root.img.
# The machine boots twice from the image: without Xen (vblkd_test=noxen: dpkg -i of the .deb, a
# reboot, the unit skipped), then on Xen (vblkd_test=xen), each time running dom0-sd/scenario.sh
# as vblkd-test.service once the system is up.
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd)
. "$H/lib.sh"

OUT=$(cd "$1" && pwd)
DEB=$2
[ -f "$DEB" ] || xdie "sd-root-img.sh: no package $DEB (make deb-arm64)"
[ "$(dpkg-deb -f "$DEB" Architecture)" = arm64 ] || xdie "$DEB is not an arm64 package"
t0=$(xnow)
S=$OUT/sd-stage
rm -rf "$S"
# Hard links to the cache: every file changed below is replaced, never written in place.
cp -al "$XC/sd-root" "$S"
KV=$(basename "$(ls -d "$S"/lib/modules/*)")

T=usr/lib/vblkd-test
mkdir -p "$S/$T" "$S/var/cache/vblkd-test" "$S/srv/vblkd-test" "$S/etc/xen/auto" "$S/var/lib/vblkd-test"
cp "$DEB" "$S/var/cache/vblkd-test/"
cp "$H/steps.sh" "$H/dom0-sd/scenario.sh" "$S/$T/"
cp "$OUT/domu-io" "$S/$T/domu-io"
cp "$OUT/domu.cpio.gz" "$S/var/lib/vblkd-test/domu.cpio.gz"
chmod 0755 "$S/$T/scenario.sh" "$S/$T/domu-io"

# The guests' disks, on Dom0's root file system as on a small host.  rw1: the guest xendomains
# starts at boot (the guest steps, then grown by systemctl reload); rw5: the guest whose IO runs
# through systemctl restart (a round of known data from PATTERN_MIB_FIRST: steps.sh); empty.img: a
# disk vblkd warns about (journal priorities).
. "$H/steps.sh"
V=$S/srv/vblkd-test
cp "$OUT/ro.img" "$V/ro.img"
truncate -s 64M "$V/rw1.img"
truncate -s $((PATTERN_MIB_FIRST + 64))M "$V/rw5.img"
: > "$V/empty.img"
ro_sum=$(sha256sum "$V/ro.img" | cut -d' ' -f1)
ro_sectors=$(($(stat -c %s "$V/ro.img") / 512))

# mkcfg NAME RWIMAGE VCPUS EXTRA: the guest's xl config, with the documented virtio disk lines.
mkcfg() {
	local rw=$V/${2##*/}
	cat <<EOC
name = "$1"
type = "pvh"
kernel = "/boot/vmlinuz-$KV"
ramdisk = "/var/lib/vblkd-test/domu.cpio.gz"
extra = "console=hvc0 rdinit=/init vblkd_test=real vblkd_rw_sectors=$(($(stat -c %s "$rw") / 512)) vblkd_ro_sectors=$ro_sectors vblkd_ro_sha256=$ro_sum${4:+ $4}"
memory = 192
vcpus = $3
disk = [ 'format=raw, vdev=xvda, access=rw, backendtype=standalone, specification=virtio, target=/srv/vblkd-test/${2##*/}',
         'format=raw, vdev=xvdb, access=ro, backendtype=standalone, specification=virtio, target=/srv/vblkd-test/ro.img' ]
EOC
}
# xendomains starts what /etc/xen/auto holds at boot.
mkcfg domu1 rw1.img 1 > "$S/etc/xen/auto/domu1.cfg"
mkcfg domu5 rw5.img 2 "vblkd_restart_rounds=1 vblkd_restart_mib=64" > "$S/etc/xen/domu5.cfg"
mkcfg domuw empty.img 1 > "$S/etc/xen/domuw.cfg"

# What a user sets in /etc/default/xen to keep the guests' consoles (xenconsoled --log=guest), and
# the directory for them, which no Debian 12 package creates (xenconsoled does not either: without
# it, it logs "Failed to open log" and keeps nothing).
mkdir -p "$S/var/log/xen/console"
rm "$S/etc/default/xen"
{ cat "$XC/sd-root/etc/default/xen"; echo 'XENCONSOLED_ARGS="--log=guest"'; } > "$S/etc/default/xen"

# The scenario runs once the system is up, with its output on the console for runner.py.  Type=simple:
# a oneshot's start job would keep `systemctl is-system-running --wait` waiting for itself.
cat > "$S/etc/systemd/system/vblkd-test.service" <<'EOU'
[Unit]
Description=check-xen scenario of the systemd Dom0
After=multi-user.target

[Service]
Type=simple
ExecStart=/usr/lib/vblkd-test/scenario.sh
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console

[Install]
WantedBy=multi-user.target
EOU
mkdir -p "$S/etc/systemd/system/multi-user.target.wants"
ln -s /etc/systemd/system/vblkd-test.service "$S/etc/systemd/system/multi-user.target.wants/"

rm -f "$OUT/sd-root.img"
truncate -s 1536M "$OUT/sd-root.img"
mkfs.ext4 -q -F -L root -d "$S" "$OUT/sd-root.img"
rm -rf "$S"
xlog "systemd Dom0's root image built in $(xsince "$t0") s ($(du -h "$OUT/sd-root.img" | cut -f1) used)"
