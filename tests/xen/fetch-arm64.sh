#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Download the arm64 packages `make check-xen` needs from Debian 12 or 13 (XEN_RELEASE, see lib.sh) and
# extract them into that release's sysroot in the cache.
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
# Debian 13 renamed some libraries for the 64-bit time_t transition (libaio1t64, libext2fs2t64), and
# its liburing's headers need its kernel and C library headers, newer than the cross compiler's:
# vblkd is built against its whole sysroot (arm64-pkg-config adds --sysroot).
case $XEN_RELEASE in
12) T64= MORE= ;;
*) T64=t64 MORE="linux-libc-dev libc6-dev libcrypt-dev libcrypt1" ;;
esac
PKGS="xen-hypervisor-$XEN_VER-arm64 xen-utils-$XEN_VER xen-utils-common xenstore-utils
	libxenmisc$XEN_VER libxencall1 libxenevtchn1 libxenforeignmemory1 libxengnttab1 libxenstore4
	libxentoollog1 libxendevicemodel1 libxenhypfs1 libxentoolcore1 libxen-dev
	libaio-dev libaio1$T64 liburing-dev liburing2 libjson-c-dev libjson-c5
	libc6 libgcc-s1 libyajl2 libncurses6 libtinfo6 libfdt1 libuuid1 zlib1g libzstd1 liblzma5
	libbz2-1.0 liblzo2-2 libnl-3-200 libnl-route-3-200
	e2fsprogs libext2fs2$T64 libcom-err2 libss2 libblkid1 logsave
	busybox-static $MORE"
# Debian renames its kernel package at each ABI bump: take the one the metapackage points to.
KERNEL_META=linux-image-arm64

stamp=$XR/sysroot.ok
want=$(printf '%s\n' $PKGS $KERNEL_META | sort | tr '\n' ' ')
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
# Two runs sharing the cache: the second waits, then finds the work done.
mkdir -p "$XR"
exec 9> "$XR/sysroot.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
rm -f "$stamp"

t0=$(xnow)
A=$XR/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/parts" "$XR/debs"
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
rm -f "$XR"/debs/*.deb
# shellcheck disable=SC2086
(cd "$XR/debs" && apt-get "${apt_opts[@]}" download $PKGS "$kpkg" >/dev/null)

xlog "extracting into $SYSROOT"
rm -rf "$SYSROOT"
mkdir -p "$SYSROOT"
for d in "$XR"/debs/*.deb; do
	dpkg-deb -x "$d" "$SYSROOT"
	dpkg-deb -W --showformat='${Package} ${Version}\n' "$d"
done > "$XR/debs/versions.txt"
# Debian 13's packages install into /usr only (merged /usr): give the sysroot the top-level links such a
# system has, so that /bin, /sbin and /lib paths work alike in both releases.
for d in bin sbin lib; do
	[ -e "$SYSROOT/$d" ] || ln -s "usr/$d" "$SYSROOT/$d"
done

# libaio ships no .pc file; vblkd's Makefile falls back to -laio, the probe uses this one.
mkdir -p "$XR/pkgconfig"
cat > "$XR/pkgconfig/libaio.pc" <<EOP
prefix=/usr
libdir=\${prefix}/lib/$TRIPLET
includedir=\${prefix}/include
Name: libaio
Description: Linux-native asynchronous I/O access library (no .pc in Debian; written by check-xen)
Version: $(sed -n 's/^libaio-dev //p' "$XR/debs/versions.txt")
Libs: -L\${libdir} -laio
Cflags: -I\${includedir}
EOP

[ -e "$SYSROOT/boot/xen-$XEN_VER-arm64.config" ] || xdie "no Xen .config in xen-hypervisor-$XEN_VER-arm64"
ls "$SYSROOT"/boot/vmlinuz-* >/dev/null || xdie "no kernel in $kpkg"
echo "$want" > "$stamp"
xlog "arm64 packages ready in $(xsince "$t0") s: $(wc -l < "$XR/debs/versions.txt") packages"
