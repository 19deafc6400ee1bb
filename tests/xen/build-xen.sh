#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Rebuild the Xen 4.17 arm64 hypervisor from Debian's source package with the IOREQ server enabled.
#
# Debian's xen-hypervisor-4.17-arm64 is built without CONFIG_IOREQ_SERVER (on Arm it is an EXPERT option,
# "IOREQ support (EXPERT)" if EXPERT && !X86, off unless asked for), so no userspace IOREQ backend such as
# vblkd can work with it.  This takes Debian's own .config for that binary, adds CONFIG_EXPERT=y and
# CONFIG_IOREQ_SERVER=y, and cross-builds only the hypervisor (about 30 s with 2 cores).  Debian's
# kernel, Xen tools and libraries are used unchanged.
# The source comes from bookworm main: the bookworm-security source has been seen to 404 on the mirror
# while its binaries were fine; a 4.17.5 hypervisor runs the 4.17.7 tools.
# Output: $VBLKD_XEN_CACHE/xen-4.17-ioreq (cached).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -f "$XEN_IOREQ" ] && exit 0
"$(dirname "$0")/fetch-arm64.sh"
# Two runs sharing the cache: the second waits, then finds the hypervisor built.
exec 9> "$XC/xen.lock"
flock 9
[ -f "$XEN_IOREQ" ] && exit 0

t0=$(xnow)
A=$XC/apt-src
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/parts" "$XC/xen-src"
: > "$A/status"
echo "deb-src $DEB_MIRROR $DEB_SUITE main" > "$A/sources.list"
apt_opts=(-q -oDir::State::Lists="$A/lists" -oDir::State::status="$A/status"
	-oDir::Etc::SourceList="$A/sources.list" -oDir::Etc::SourceParts="$A/parts"
	-oDir::Cache="$A/cache" -oAPT::Sandbox::User=root)
S=$XC/xen-src/xen
if [ ! -f "$XC/xen-src/unpacked.ok" ]; then
	xlog "downloading Debian's xen source package ($DEB_SUITE main)"
	apt-get "${apt_opts[@]}" update >/dev/null
	rm -rf "$XC/xen-src"
	mkdir -p "$XC/xen-src"
	(cd "$XC/xen-src" && apt-get "${apt_opts[@]}" source --download-only xen >/dev/null)
	dsc=$(ls "$XC"/xen-src/xen_*.dsc)
	xlog "unpacking $(basename "$dsc")"
	dpkg-source --no-check -x "$dsc" "$S" >/dev/null
	touch "$XC/xen-src/unpacked.ok"
fi

M=(-C "$S/xen" XEN_TARGET_ARCH=arm64 "CROSS_COMPILE=$TRIPLET-")
cp "$SYSROOT/boot/xen-4.17-arm64.config" "$S/xen/.config"
printf 'CONFIG_EXPERT=y\nCONFIG_IOREQ_SERVER=y\n' >> "$S/xen/.config"
make "${M[@]}" olddefconfig > "$XC/xen-build.log" 2>&1
grep -q '^CONFIG_IOREQ_SERVER=y' "$S/xen/.config" || xdie "olddefconfig dropped CONFIG_IOREQ_SERVER"
xlog "building the hypervisor (make -j$(nproc))"
make "${M[@]}" -j"$(nproc)" >> "$XC/xen-build.log" 2>&1 ||
	{ tail -n 30 "$XC/xen-build.log" >&2; xdie "hypervisor build failed (log: $XC/xen-build.log)"; }
grep -aq ioreq "$S/xen/xen" || xdie "the rebuilt hypervisor has no IOREQ code"
cp "$S/xen/xen" "$XEN_IOREQ.tmp"
mv "$XEN_IOREQ.tmp" "$XEN_IOREQ"
xlog "hypervisor with IOREQ server built in $(xsince "$t0") s: $XEN_IOREQ"
