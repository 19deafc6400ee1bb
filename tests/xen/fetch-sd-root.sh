#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The root file system of check-xen's systemd Dom0: Debian 12 arm64 with systemd as PID 1, Debian's
# Xen tools (SysV scripts xen and xendomains, as bookworm ships them) and vblkd's libraries; vblkd
# itself is installed later, from its .deb with dpkg -i inside the machine (dom0-sd/scenario.sh).
#
# This host cannot run arm64 code, so the packages are unpacked (dpkg-deb -x) rather than installed,
# and what their maintainer scripts would do on a fresh install is done here, each named below:
# dpkg's database (every package "install ok installed", with its file list, so that dpkg -i inside
# the machine checks vblkd's Depends and its files as on any Debian), the users of base-passwd, the
# alternatives, the rc.d links of update-rc.d, modules.dep.  The package set is the closure apt computes
# for the packages below plus every Priority: required package (what debootstrap's minbase holds).
# Output: $VBLKD_XEN_CACHE/sd-root (cached: again when the package list changes or the stamp is gone).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# systemd as init with udev and dbus (logind needs it) as systemd Recommends; Debian's Xen tools;
# vblkd's runtime libraries (its Depends, so that dpkg -i finds them installed).
PKGS="systemd systemd-sysv udev dbus kmod procps xen-utils-4.17 xen-utils-common xenstore-utils
	libaio1 liburing2 libjson-c5"

"$(dirname "$0")/fetch-arm64.sh"
stamp=$XC/sd-root.ok
# shellcheck disable=SC2086
want=$(printf '%s\n' $PKGS | sort | tr '\n' ' ')
kdeb=$(ls "$XC"/debs/linux-image-*.deb)
# (This script's own hash: a change to the recipe below builds the root again.)
want="$want $(basename "$kdeb") $(sha256sum "$0" | cut -c1-16)"
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && exit 0
exec 9> "$XC/sd-root.lock"
flock 9
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && exit 0
rm -f "$stamp"

t0=$(xnow)
A=$XC/apt
D=$XC/sd-apt
mkdir -p "$D/archives/partial"
: > "$D/status"
# fetch-arm64.sh's private lists; an empty status file of its own, so apt resolves the whole closure.
apt_opts=(-q -oAPT::Architecture=arm64 -oAPT::Architectures::=arm64
	-oDir::State::Lists="$A/lists" -oDir::State::status="$D/status"
	-oDir::Etc::SourceList="$A/sources.list" -oDir::Etc::SourceParts="$A/parts"
	-oDir::Cache="$A/cache" -oDir::Cache::archives="$D/archives" -oAPT::Sandbox::User=root
	-oDebug::NoLocking=1 -oAPT::Install-Recommends=0)
required=$(apt-cache "${apt_opts[@]}" dumpavail | awk '/^Package:/ { p = $2 } /^Priority: required/ { print p }' | sort -u)
xlog "systemd Dom0: downloading the arm64 packages"
# shellcheck disable=SC2086
apt-get "${apt_opts[@]}" -y install --download-only $required $PKGS > "$D/apt.log" 2>&1 ||
	{ tail -n 20 "$D/apt.log" >&2; xdie "apt-get could not fetch the systemd Dom0's packages"; }
apt-get "${apt_opts[@]}" autoclean > /dev/null
# The packages apt chose (the archive may hold others from earlier runs).
# shellcheck disable=SC2086
debs=$(apt-get "${apt_opts[@]}" -s install $required $PKGS |
	awk '/^Inst / { v = $3; gsub(/[()]/, "", v); gsub(/:/, "%3a", v); print $2 "_" v "_" }' |
	while read -r pv; do ls "$D/archives/$pv"*.deb; done)

R=$XC/sd-root.tmp
rm -rf "$R" "$XC/sd-root"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers"
: > "$R/var/lib/dpkg/status"
xlog "systemd Dom0: unpacking $(echo "$debs" | wc -l) packages and the kernel"
for d in $debs "$kdeb"; do
	dpkg-deb -x "$d" "$R"
	p=$(dpkg-deb -f "$d" Package)
	# The status entry: the control file with its state (dpkg's own format, blank line between).
	dpkg-deb -f "$d" | awk '{ print } /^Package:/ { print "Status: install ok installed" }' >> "$R/var/lib/dpkg/status"
	echo >> "$R/var/lib/dpkg/status"
	dpkg-deb --fsys-tarfile "$d" | tar -t | sed 's|^\./|/|; s|/$||; s|^$|/.|' > "$R/var/lib/dpkg/info/$p.list"
	[ "$(dpkg-deb -f "$d" Multi-Arch)" != same ] || mv "$R/var/lib/dpkg/info/$p.list" "$R/var/lib/dpkg/info/$p:arm64.list"
done
: > "$R/var/lib/dpkg/available"
: > "$R/var/lib/dpkg/diversions"
: > "$R/var/lib/dpkg/statoverride"

# base-passwd's postinst: /etc/passwd and /etc/group from its masters (systemd-sysusers adds the
# system users of systemd and dbus at boot).
cp "$R/usr/share/base-passwd/passwd.master" "$R/etc/passwd"
cp "$R/usr/share/base-passwd/group.master" "$R/etc/group"
awk -F: '{ print $1 ":*:19000:0:99999:7:::" }' "$R/etc/passwd" > "$R/etc/shadow"
sed -i 's/^root:\*:/root::/' "$R/etc/shadow"
awk -F: '{ print $1 ":*::" }' "$R/etc/group" > "$R/etc/gshadow"
# udev's postinst: the system groups its rules use.
gid=101
for g in input sgx kvm render; do
	echo "$g:x:$gid:" >> "$R/etc/group"
	echo "$g:!::" >> "$R/etc/gshadow"
	gid=$((gid + 1))
done
chmod 0640 "$R/etc/shadow" "$R/etc/gshadow"
# The alternatives the scripts here use (mawk's and debianutils' postinst).
mkdir -p "$R/etc/alternatives"
ln -sfn /usr/bin/mawk "$R/etc/alternatives/awk"
ln -sfn /etc/alternatives/awk "$R/usr/bin/awk"
ln -sfn /usr/bin/which.debianutils "$R/etc/alternatives/which"
ln -sfn /etc/alternatives/which "$R/usr/bin/which"
# xen-utils-common's postinst: update-rc.d xen defaults, update-rc.d xendomains defaults (the links
# systemd-sysv-generator reads to pull the generated xen.service and xendomains.service into
# multi-user.target), /var/log/xen, and /etc/default/xen from its template (ucf).
for s in xen:01 xendomains:02; do
	for l in 2 3 4 5; do mkdir -p "$R/etc/rc$l.d"; ln -sfn "../init.d/${s%:*}" "$R/etc/rc$l.d/S${s#*:}${s%:*}"; done
	for l in 0 1 6; do mkdir -p "$R/etc/rc$l.d"; ln -sfn "../init.d/${s%:*}" "$R/etc/rc$l.d/K01${s%:*}"; done
done
install -d -m 2750 "$R/var/log/xen"
cp "$R/usr/share/xen-utils-common/default.xen" "$R/etc/default/xen"
# The kernel's postinst: modules.dep (depmod reads arm64 modules on any host).
KV=$(basename "$(ls -d "$R"/lib/modules/*)")
depmod -b "$R" "$KV"
# A set machine id: no first boot (systemd-firstboot would prompt on the console).
echo 5ee1d0d0b1c4e0a1d0d0b1c4e0a1d0d0 > "$R/etc/machine-id"
echo dom0 > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tdom0\n' > "$R/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$R/etc/fstab"
# Documentation is not needed (Debian's minimal images leave it out too).
rm -rf "$R"/usr/share/doc/* "$R"/usr/share/man/* "$R"/usr/share/locale/* "$R"/usr/share/info/*
mv "$R" "$XC/sd-root"
echo "$want" > "$stamp"
xlog "systemd Dom0's root ready in $(xsince "$t0") s: $(du -sh "$XC/sd-root" | cut -f1)"
