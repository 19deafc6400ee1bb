#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# make install into a DESTDIR puts exactly the binary, the man page and the unit in place; uninstall removes them.
set -euo pipefail
BUILD=${BUILD:-build/default}
MAKE=${MAKE:-make}
dest=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

$MAKE --no-print-directory -s install DESTDIR="$dest" PREFIX=/usr BUILD="$BUILD" >/dev/null

expected="usr/lib/systemd/system/vblkd.service
usr/sbin/vblkd
usr/share/man/man8/vblkd.8"
got=$(cd "$dest" && find . -type f | sed 's|^\./||' | sort)
[ "$got" = "$expected" ] || fail "installed files differ: $(echo; diff <(echo "$expected") <(echo "$got"))"

mode() { stat -c %a "$dest/$1"; }
[ "$(mode usr/sbin/vblkd)" = 755 ] || fail "vblkd mode $(mode usr/sbin/vblkd), want 755"
[ "$(mode usr/share/man/man8/vblkd.8)" = 644 ] || fail "man page mode $(mode usr/share/man/man8/vblkd.8)"
[ "$(mode usr/lib/systemd/system/vblkd.service)" = 644 ] || fail "unit mode wrong"

"$dest/usr/sbin/vblkd" --version | grep -qx 'vblkd [0-9][0-9.]*' || fail "installed vblkd --version"
cmp -s man/vblkd.8 "$dest/usr/share/man/man8/vblkd.8" || fail "man page differs from man/vblkd.8"
grep -qx 'ExecStart=/usr/sbin/vblkd --foreground $VBLKD_OPTS' "$dest/usr/lib/systemd/system/vblkd.service" ||
	fail "unit's ExecStart does not name /usr/sbin/vblkd"
grep -q '@SBINDIR@' "$dest/usr/lib/systemd/system/vblkd.service" && fail "unit template not filled in"

$MAKE --no-print-directory -s uninstall DESTDIR="$dest" PREFIX=/usr BUILD="$BUILD" >/dev/null
left=$(cd "$dest" && find . -type f | wc -l)
[ "$left" = 0 ] || fail "uninstall left $left files"
echo "install: 3 files with the right modes and contents; uninstall removed them"
