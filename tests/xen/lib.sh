# SPDX-License-Identifier: GPL-2.0-only
# Shared settings of the host-side scripts of `make check-xen` (sourced, not run).
#
# Everything downloaded or built once lives in the cache directory, outside the repository, so that
# `make clean` keeps it and later runs reuse it:
#   VBLKD_XEN_CACHE   default ${XDG_CACHE_HOME:-~/.cache}/vblkd-xen
# Each Debian release check-xen runs (XEN_RELEASE) has its own part of it: Debian 12 the top directory,
# as before there were two, Debian 13 the subdirectory debian13/ (XR below); in each:
#     apt/            private apt lists and sources (the host's dpkg architecture is left alone)
#     debs/           the arm64 .debs, as downloaded
#     sysroot/        the same .debs extracted: arm64 sysroot for cross builds and initramfs contents
#     pkgconfig/      .pc files Debian does not ship (libaio)
#     xen-src/        Debian's xen source package, unpacked
#     xen-4.17-ioreq  the hypervisor rebuilt with CONFIG_IOREQ_SERVER=y (xen-4.20-ioreq for Debian 13)
# Delete a stamp (*.ok) or the whole directory to fetch or build again.

# (CI may run without HOME: the user's home directory from the password database then.)
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
: "${VBLKD_XEN_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/vblkd-xen}"
export VBLKD_XEN_CACHE
XC=$VBLKD_XEN_CACHE
TRIPLET=aarch64-linux-gnu

xlog() { printf 'check-xen: %s\n' "$*" >&2; }
xdie() { printf 'check-xen: error: %s\n' "$*" >&2; exit 1; }

# The Debian release everything comes from (XEN_RELEASE, default 12): its suite, its Xen version, and
# its part of the cache.  Debian 13's arm64 packages come from the same mirror as Debian 12's.
: "${XEN_RELEASE:=12}"
export XEN_RELEASE
case $XEN_RELEASE in
12) DEB_SUITE=bookworm XEN_VER=4.17 XR=$XC ;;
13) DEB_SUITE=trixie XEN_VER=4.20 XR=$XC/debian13 ;;
*) xdie "XEN_RELEASE must be 12 or 13 (Debian's release), not '$XEN_RELEASE'" ;;
esac
SYSROOT=$XR/sysroot
XEN_IOREQ=$XR/xen-$XEN_VER-ioreq
DEB_MIRROR=${DEB_MIRROR:-http://deb.debian.org/debian}
DEB_SECURITY_MIRROR=${DEB_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# The kernel of Dom0 and the guests (XEN_KERNEL): "debian", the release's own (modules from its
# package), or "xen", the one build-kernel.sh builds from Debian 13's source with grant mappings for
# virtio and privcmd's ioeventfd/irqfd (everything built in, no modules).  Sets KIMAGE (the image),
# KV (its version) and KMOD (its modules' directory, empty when built in).
kernel_select() {
	case ${XEN_KERNEL:=debian} in
	debian)
		KV=$(basename "$(ls -d "$SYSROOT"/lib/modules/*)")
		KIMAGE=$SYSROOT/boot/vmlinuz-$KV
		KMOD=$SYSROOT/lib/modules/$KV
		;;
	xen)
		KIMAGE=$XC/debian13/linux-xen/Image
		KV=$(cat "$XC/debian13/linux-xen/version" 2>/dev/null) || xdie "no kernel built: run tests/xen/build-kernel.sh"
		KMOD=
		;;
	*) xdie "XEN_KERNEL must be debian or xen, not '$XEN_KERNEL'" ;;
	esac
	export XEN_KERNEL
}

# Seconds since the epoch, with decimals, for the timings this harness reports.
xnow() { date +%s.%N; }
xsince() { awk -v a="$1" -v b="$(xnow)" 'BEGIN { printf "%.1f", b - a }'; }
