#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The Debian package builds with dpkg-buildpackage, holds what debian/ says, runs, and lintian has no
# error or warning about it.
set -euo pipefail
for tool in dpkg-buildpackage dh lintian; do
	command -v "$tool" >/dev/null || { echo "$tool not installed (scripts/deps.sh deb)"; exit 77; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-deb.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

version=$(sed -n 's/^VERSION := //p' Makefile)
arch=$(dpkg --print-architecture)
scripts/build-deb.sh "$dir/out" >"$dir/build.log" 2>&1 || { cat "$dir/build.log"; fail "dpkg-buildpackage"; }
deb=$dir/out/vblkd_${version}_${arch}.deb
[ -f "$deb" ] || fail "no $(basename "$deb") (the Makefile's VERSION and debian/changelog differ?): $(ls "$dir/out")"
grep -q 'dh_auto_test' "$dir/build.log" && ! grep -q 'override_dh_auto_test' "$dir/build.log" &&
	fail "the package build ran the tests"

# Files: the daemon, the unit where Debian 12's dh_installsystemd enables it, the options file, the
# man page, the copyright and changelog; nothing else.
expected="./etc/default/vblkd
./lib/systemd/system/vblkd.service
./usr/sbin/vblkd
./usr/share/doc/vblkd/changelog.gz
./usr/share/doc/vblkd/copyright
./usr/share/man/man8/vblkd.8.gz"
got=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sort)
[ "$got" = "$expected" ] || fail "package files differ: $(echo; diff <(echo "$expected") <(echo "$got"))"

dpkg-deb -e "$deb" "$dir/DEBIAN"
[ "$(cat "$dir/DEBIAN/conffiles")" = /etc/default/vblkd ] || fail "conffiles: $(cat "$dir/DEBIAN/conffiles")"
grep -q "deb-systemd-helper enable 'vblkd.service'" "$dir/DEBIAN/postinst" || fail "postinst does not enable vblkd.service"
# An upgrade restarts the daemon after unpacking (it adopts the running guests), and does not stop it first.
grep -q '_dh_action=restart' "$dir/DEBIAN/postinst" || fail "postinst does not restart vblkd on upgrade"
grep -q '"$1" = remove' "$dir/DEBIAN/prerm" || fail "prerm stops vblkd on upgrade, not only on removal"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libxenstore4 libxenevtchn1 libxenforeignmemory1 libaio1 liburing2 libjson-c5; do
	[[ ", $depends," == *", $lib "* ]] || fail "Depends lacks $lib (from shlibs): $depends"
done

dpkg-deb -x "$deb" "$dir/root"
r=$dir/root
[ "$("$r/usr/sbin/vblkd" --version)" = "vblkd $version" ] || fail "extracted vblkd --version: $("$r/usr/sbin/vblkd" --version)"
unit=$r/lib/systemd/system/vblkd.service
grep -qx 'EnvironmentFile=-/etc/default/vblkd' "$unit" || fail "unit does not read /etc/default/vblkd"
grep -qx 'ExecStart=/usr/sbin/vblkd --foreground $VBLKD_OPTS' "$unit" || fail "unit's ExecStart"
grep -q '^VBLKD_OPTS=' "$r/etc/default/vblkd" || fail "/etc/default/vblkd sets no VBLKD_OPTS"
zcat "$r/usr/share/man/man8/vblkd.8.gz" | cmp -s - man/vblkd.8 || fail "man page differs from man/vblkd.8"
head -n 1 "$r/usr/share/doc/vblkd/copyright" |
	grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' || fail "copyright is not DEP-5"
grep -qx 'License: GPL-2.0-only' "$r/usr/share/doc/vblkd/copyright" || fail "copyright names no GPL-2.0-only"

# lintian, pedantic: no error, no warning (debian/vblkd.lintian-overrides would list any override).
lintian -I --pedantic "$dir/out/vblkd_${version}_${arch}.changes" >"$dir/lintian.log" 2>&1 || true
if grep -E '^[EW]: ' "$dir/lintian.log"; then
	fail "lintian"
fi
# The arm64 cross build, when check-xen's arm64 sysroot is already downloaded (make deb-arm64 or
# make cross fetch it): an aarch64 vblkd, Depends from the arm64 libraries' symbols, lintian clean.
. tests/xen/lib.sh
if [ -f "$XC/sysroot.ok" ] && command -v aarch64-linux-gnu-gcc file >/dev/null; then
	scripts/build-deb.sh --arch arm64 "$dir/arm64" >"$dir/arm64.log" 2>&1 ||
		{ cat "$dir/arm64.log"; fail "arm64 cross build"; }
	adeb=$dir/arm64/vblkd_${version}_arm64.deb
	[ "$(dpkg-deb -f "$adeb" Architecture)" = arm64 ] || fail "arm64 package's Architecture"
	dpkg-deb -x "$adeb" "$dir/aroot"
	file -b "$dir/aroot/usr/sbin/vblkd" | grep -q 'ARM aarch64' || fail "arm64 vblkd: $(file -b "$dir/aroot/usr/sbin/vblkd")"
	[[ "$(dpkg-deb -f "$adeb" Depends)" == *libxenstore4* ]] || fail "arm64 Depends: $(dpkg-deb -f "$adeb" Depends)"
	lintian --pedantic "$dir/arm64/vblkd_${version}_arm64.changes" >"$dir/lintian-arm64.log" 2>&1 || true
	! grep -E '^[EW]: ' "$dir/lintian-arm64.log" || fail "lintian (arm64)"
	arm64="; arm64 package cross-built, lintian clean"
else
	arm64="; arm64 cross build not tried (no arm64 sysroot: make deb-arm64)"
fi
echo "deb: $(basename "$deb") holds $(echo "$got" | wc -l) files, runs, enables its unit; lintian: $(grep -c '^[IPXN]: ' "$dir/lintian.log" || true) info/pedantic tags, no E/W$arm64"
