#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The installed service unit passes systemd-analyze verify (with stand-ins for Xen's own units).
set -euo pipefail
BUILD=${BUILD:-build/default}
MAKE=${MAKE:-make}
if ! command -v systemd-analyze >/dev/null; then
	echo "systemd-analyze not installed"
	exit 77
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-unit.XXXXXX")
trap 'rm -rf "$dir"' EXIT

# The unit as installed, but pointing at the binary just built.
$MAKE --no-print-directory -s install DESTDIR="$dir/root" PREFIX=/usr BUILD="$BUILD" >/dev/null
sed "s|/usr/sbin/vblkd|$dir/root/usr/sbin/vblkd|" "$dir/root/usr/lib/systemd/system/vblkd.service" \
	>"$dir/vblkd.service"
# Xen's units are not installed on a build machine: stand-ins with their names.
printf '[Unit]\nDescription=stand-in\n[Mount]\nWhat=xenfs\nWhere=/proc/xen\nType=xenfs\n' \
	>"$dir/proc-xen.mount"
for u in xenstored xendomains; do
	printf '[Unit]\nDescription=stand-in\n[Service]\nExecStart=/bin/true\n' >"$dir/$u.service"
done
out=$(systemd-analyze verify --man=no "$dir/vblkd.service" 2>&1) || {
	echo "$out"
	exit 1
}
[ -z "$out" ] || { echo "systemd-analyze verify complained:"; echo "$out"; exit 1; }
# A Debian 12 Dom0 has neither proc-xen.mount nor xenstored.service (SysV scripts): still clean.
rm "$dir/proc-xen.mount" "$dir/xenstored.service"
out=$(systemd-analyze verify --man=no "$dir/vblkd.service" 2>&1) || {
	echo "without Xen's systemd units:"
	echo "$out"
	exit 1
}
[ -z "$out" ] || { echo "systemd-analyze verify, without Xen's units, complained:"; echo "$out"; exit 1; }
grep -qx 'Type=notify' "$dir/vblkd.service"
# Hundreds of disks need more fds than the default 1024 (issue 16).
nofile=$(sed -n 's/^LimitNOFILE=//p' "$dir/vblkd.service")
[ "${nofile:-0}" -ge 16384 ] || { echo "LimitNOFILE='$nofile': too few fds for hundreds of disks"; exit 1; }
echo "systemd-analyze verify: clean"
