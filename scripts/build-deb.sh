#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Build the vblkd Debian package with dpkg-buildpackage from a copy of the source tree.
#
# usage: scripts/build-deb.sh [--arch arm64] OUTDIR
# The tree (without build/ and .git) is copied to OUTDIR/src and built there, so the working tree
# and its build/ stay untouched; the .deb (and .buildinfo, .changes, -dbgsym .ddeb) land in OUTDIR.
# Binary only, unsigned, without the project's tests (debian/rules: they run in `make check`).
# --arch arm64 cross-builds against Debian's arm64 packages extracted into check-xen's sysroot
# (tests/xen/fetch-arm64.sh, run first by `make deb-arm64`): the host's dpkg architectures stay
# as they are, so dpkg-buildpackage cannot check the arm64 Build-Depends (-d); debian/rules
# takes the sysroot's pkg-config and the downloaded libraries' shlibs and symbols files instead.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
arch=""
if [ "${1:-}" = --arch ]; then
	arch=$2
	shift 2
fi
[ $# -eq 1 ] || { sed -n '4,5s/^# \{0,1\}//p' "$0" >&2; exit 2; }
out=$1
mkdir -p "$out"
out=$(cd "$out" && pwd)

rm -rf "$out/src"
mkdir -p "$out/src"
tar -C "$top" --exclude=./build --exclude=./.git --exclude=./debian/build --exclude=./debian/vblkd \
	--exclude=./debian/.debhelper --exclude=./debian/files --exclude='./debian/*.substvars' \
	--exclude='./debian/*debhelper*' -cf - . | tar -C "$out/src" -xf -

opts=(-b -us -uc)
case $arch in
"") ;;
arm64)
	. "$top/tests/xen/lib.sh"
	[ -f "$XC/sysroot.ok" ] || xdie "no arm64 sysroot in $XC: run tests/xen/fetch-arm64.sh"
	# A package tree for dpkg-shlibdeps -S: the sysroot's library directories and, as its
	# DEBIAN/shlibs and DEBIAN/symbols, those of every downloaded package.
	shl=$out/arm64-shlibs
	rm -rf "$shl"
	mkdir -p "$shl/DEBIAN" "$shl/usr/lib" "$shl/lib" "$out/ctrl"
	ln -s "$SYSROOT/usr/lib/$TRIPLET" "$shl/usr/lib/$TRIPLET"
	ln -s "$SYSROOT/lib/$TRIPLET" "$shl/lib/$TRIPLET"
	: >"$shl/DEBIAN/shlibs"
	: >"$shl/DEBIAN/symbols"
	for d in "$XC"/debs/*.deb; do
		rm -rf "$out/ctrl"/*
		dpkg-deb -e "$d" "$out/ctrl"
		for f in shlibs symbols; do
			[ ! -f "$out/ctrl/$f" ] || cat "$out/ctrl/$f" >>"$shl/DEBIAN/$f"
		done
	done
	rm -rf "$out/ctrl"
	export VBLKD_PKG_CONFIG=$out/src/tests/xen/arm64-pkg-config VBLKD_SHLIBS_ROOT=$shl
	# (dpkg-architecture compares the host type with CC's.)
	export CC=$TRIPLET-gcc
	opts+=(-a"$arch" -d)
	;;
*) echo "build-deb.sh: unsupported architecture '$arch' (arm64)" >&2; exit 2 ;;
esac

cd "$out/src"
# Run from make (make check): the parent's jobserver is not ours.
unset MAKEFLAGS MFLAGS MAKELEVEL
# Variables given to an outer make reach us through the environment (`make SANITIZE=1 check`):
# the package is built the one way debian/rules says, whatever the test run around it.
unset SANITIZE BUILD WERROR V CROSS_COMPILE FUZZ_CHECK_TIME
DEB_BUILD_OPTIONS="nocheck parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage "${opts[@]}"
ls "$out"/vblkd_*.deb
