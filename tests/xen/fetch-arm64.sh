#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Download the Debian 12 arm64 packages `make check-xen` needs and extract them into the cache's sysroot.
#
# The host's dpkg architecture and apt state are left alone: apt runs with APT::Architecture=arm64 and a
# private sources list, lists directory, package cache and (empty) status file, all in the cache.
# The sysroot serves two purposes: headers, .pc files and libraries for cross-building vblkd
# (tests/xen/arm64-pkg-config), and the binaries, libraries and kernel that go into the initramfs images.
# Cached: runs again only when the package list below changes or the stamp is deleted.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# Xen tools and libraries (Debian's, unchanged), the development files vblkd builds against, the runtime
# libraries xl/xenstored/e2fsprogs need, busybox for both initramfs images, e2fsprogs for the DomU, and the
# hypervisor package only for its .config (the hypervisor itself is rebuilt, see build-xen.sh).
PKGS="xen-hypervisor-4.17-arm64 xen-utils-4.17 xen-utils-common xenstore-utils
	libxenmisc4.17 libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenstore4
	libxentoollog1 libxendevicemodel1 libxenhypfs1 libxentoolcore1 libxen-dev
	libaio-dev libaio1 liburing-dev liburing2 libjson-c-dev libjson-c5
	libc6 libgcc-s1 libyajl2 libncurses6 libtinfo6 libfdt1 libuuid1 zlib1g libzstd1 liblzma5
	libbz2-1.0 liblzo2-2 libnl-3-200 libnl-route-3-200
	e2fsprogs libext2fs2 libcom-err2 libss2 libblkid1 logsave
	busybox-static"
# Debian renames its kernel package at each ABI bump: take the one the metapackage points to.
KERNEL_META=linux-image-arm64

stamp=$XC/sysroot.ok
want=$(printf '%s\n' $PKGS $KERNEL_META | sort | tr '\n' ' ')
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
# Two runs sharing the cache: the second waits, then finds the work done.
mkdir -p "$XC"
exec 9> "$XC/sysroot.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
rm -f "$stamp"

t0=$(xnow)
A=$XC/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/parts" "$XC/debs"
: > "$A/status"
cat > "$A/sources.list" <<EOS
deb [arch=arm64] $DEB_MIRROR $DEB_SUITE main
deb [arch=arm64] $DEB_MIRROR $DEB_SUITE-updates main
deb [arch=arm64] $DEB_SECURITY_MIRROR $DEB_SUITE-security main
EOS
apt_opts=(-q -oAPT::Architecture=arm64 -oAPT::Architectures::=arm64
	-oDir::State::Lists="$A/lists" -oDir::State::status="$A/status"
	-oDir::Etc::SourceList="$A/sources.list" -oDir::Etc::SourceParts="$A/parts"
	-oDir::Cache="$A/cache" -oAPT::Sandbox::User=root)

xlog "arm64 package lists (private, in $A)"
apt-get "${apt_opts[@]}" update >/dev/null
kpkg=$(apt-cache "${apt_opts[@]}" depends "$KERNEL_META" |
	sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-arm64\(-unsigned\)\{0,1\}\)$/\1/p' | head -n 1)
[ -n "$kpkg" ] || xdie "cannot tell which kernel package $KERNEL_META depends on"

xlog "downloading arm64 packages (kernel: $kpkg)"
rm -f "$XC"/debs/*.deb
# shellcheck disable=SC2086
(cd "$XC/debs" && apt-get "${apt_opts[@]}" download $PKGS "$kpkg" >/dev/null)

xlog "extracting into $SYSROOT"
rm -rf "$SYSROOT"
mkdir -p "$SYSROOT"
for d in "$XC"/debs/*.deb; do
	dpkg-deb -x "$d" "$SYSROOT"
	dpkg-deb -W --showformat='${Package} ${Version}\n' "$d"
done > "$XC/debs/versions.txt"

# libaio ships no .pc file; vblkd's Makefile falls back to -laio, the probe uses this one.
mkdir -p "$XC/pkgconfig"
cat > "$XC/pkgconfig/libaio.pc" <<EOP
prefix=/usr
libdir=\${prefix}/lib/$TRIPLET
includedir=\${prefix}/include
Name: libaio
Description: Linux-native asynchronous I/O access library (no .pc in Debian; written by check-xen)
Version: $(sed -n 's/^libaio-dev //p' "$XC/debs/versions.txt")
Libs: -L\${libdir} -laio
Cflags: -I\${includedir}
EOP

[ -e "$SYSROOT/boot/xen-4.17-arm64.config" ] || xdie "no Xen .config in xen-hypervisor-4.17-arm64"
ls "$SYSROOT"/boot/vmlinuz-* >/dev/null || xdie "no kernel in $kpkg"
echo "$want" > "$stamp"
xlog "arm64 packages ready in $(xsince "$t0") s: $(wc -l < "$XC/debs/versions.txt") packages"
