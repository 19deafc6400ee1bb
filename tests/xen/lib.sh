# SPDX-License-Identifier: GPL-2.0-only
# Shared settings of the host-side scripts of `make check-xen` (sourced, not run).
#
# Everything downloaded or built once lives in the cache directory, outside the repository, so that
# `make clean` keeps it and later runs reuse it:
#   VBLKD_XEN_CACHE   default ${XDG_CACHE_HOME:-~/.cache}/vblkd-xen
#     apt/            private apt lists and sources (the host's dpkg architecture is left alone)
#     debs/           the arm64 .debs, as downloaded
#     sysroot/        the same .debs extracted: arm64 sysroot for cross builds and initramfs contents
#     pkgconfig/      .pc files Debian does not ship (libaio)
#     xen-src/        Debian's xen source package, unpacked
#     xen-4.17-ioreq  the hypervisor rebuilt with CONFIG_IOREQ_SERVER=y
# Delete a stamp (*.ok) or the whole directory to fetch or build again.

# (CI may run without HOME: the user's home directory from the password database then.)
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
: "${VBLKD_XEN_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/vblkd-xen}"
export VBLKD_XEN_CACHE
XC=$VBLKD_XEN_CACHE
SYSROOT=$XC/sysroot
TRIPLET=aarch64-linux-gnu
XEN_IOREQ=$XC/xen-4.17-ioreq

# The Debian suite everything comes from.
DEB_MIRROR=${DEB_MIRROR:-http://deb.debian.org/debian}
DEB_SECURITY_MIRROR=${DEB_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DEB_SUITE=bookworm

xlog() { printf 'check-xen: %s\n' "$*" >&2; }
xdie() { printf 'check-xen: error: %s\n' "$*" >&2; exit 1; }

# Seconds since the epoch, with decimals, for the timings this harness reports.
xnow() { date +%s.%N; }
xsince() { awk -v a="$1" -v b="$(xnow)" 'BEGIN { printf "%.1f", b - a }'; }
