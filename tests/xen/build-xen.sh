#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Rebuild the arm64 hypervisor of Debian 12 (Xen 4.17) or 13 (Xen 4.20; XEN_RELEASE, see lib.sh) from
# Debian's source package with the IOREQ server enabled.
#
# Debian's xen-hypervisor-4.17-arm64 (and 4.20's) is built without CONFIG_IOREQ_SERVER (on Arm it is an EXPERT option,
# "IOREQ support (EXPERT)" if EXPERT && !X86, off unless asked for), so no userspace IOREQ backend such as
# vblkd can work with it.  This takes Debian's own .config for that binary, adds CONFIG_EXPERT=y and
# CONFIG_IOREQ_SERVER=y, and cross-builds only the hypervisor (about 30 s with 2 cores).  Debian's
# kernel, Xen tools and libraries are used unchanged.
# The source comes from the suite's main: the bookworm-security source has been seen to 404 on the
# mirror while its binaries were fine; a 4.17.5 hypervisor runs the 4.17.7 tools.
# Output: $XEN_IOREQ, $VBLKD_XEN_CACHE/xen-4.17-ioreq or debian13/xen-4.20-ioreq (cached).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -f "$XEN_IOREQ" ] && exit 0
"$(dirname "$0")/fetch-arm64.sh"
# Two runs sharing the cache: the second waits, then finds the hypervisor built.
exec 9> "$XR/xen.lock"
flock 9
[ -f "$XEN_IOREQ" ] && exit 0

t0=$(xnow)
S=$XR/xen-src/xen
# Without Debian's source (the mirror here has not got trixie's xen source files), upstream's release
# the Debian version is based on, from a git repository: XEN_SRC_GIT, a local clone or mirror, or
# upstream's own; Debian's patches to the hypervisor are build fixes, not needed for this build.
if ! "$(dirname "$0")/deb-source.sh" xen "$XR/xen-src"; then
	up=$(sed -n "s/^xen-hypervisor-$XEN_VER-arm64 \([0-9.]*\).*/\1/p" "$XR/debs/versions.txt")
	git=${XEN_SRC_GIT:-https://xenbits.xen.org/git-http/xen.git}
	xlog "no Debian source for xen: upstream's RELEASE-$up from $git"
	rm -rf "$XR/xen-src"
	mkdir -p "$S"
	if [ -d "$git" ]; then
		git -C "$git" archive "RELEASE-$up" | tar -x -C "$S"
	else
		git clone -q --depth 1 --branch "RELEASE-$up" "$git" "$S"
	fi || xdie "cannot get Xen $up's source: the Debian mirror ($DEB_MIRROR) has not got $DEB_SUITE's xen source files and $git cannot be reached; set XEN_SRC_GIT to a clone of Xen with the tag RELEASE-$up"
	touch "$XR/xen-src/unpacked.ok"
fi
M=(-C "$S/xen" XEN_TARGET_ARCH=arm64 "CROSS_COMPILE=$TRIPLET-")
cp "$SYSROOT/boot/xen-$XEN_VER-arm64.config" "$S/xen/.config"
printf 'CONFIG_EXPERT=y\nCONFIG_IOREQ_SERVER=y\n' >> "$S/xen/.config"
make "${M[@]}" olddefconfig > "$XR/xen-build.log" 2>&1
grep -q '^CONFIG_IOREQ_SERVER=y' "$S/xen/.config" || xdie "olddefconfig dropped CONFIG_IOREQ_SERVER"
xlog "building the hypervisor (make -j$(nproc))"
make "${M[@]}" -j"$(nproc)" >> "$XR/xen-build.log" 2>&1 ||
	{ tail -n 30 "$XR/xen-build.log" >&2; xdie "hypervisor build failed (log: $XR/xen-build.log)"; }
grep -aq ioreq "$S/xen/xen" || xdie "the rebuilt hypervisor has no IOREQ code"
cp "$S/xen/xen" "$XEN_IOREQ.tmp"
mv "$XEN_IOREQ.tmp" "$XEN_IOREQ"
xlog "hypervisor with IOREQ server built in $(xsince "$t0") s: $XEN_IOREQ"
