# SPDX-License-Identifier: GPL-2.0-only
# Sourced by the vhost-user shell tests (. "$(dirname "$0")/lib-vhost.sh" NAME): vblkd and the front end
# tests/vhost/vu-load from $BUILD (exit 77, skipped, when not built), a temporary directory $dir named
# after NAME with a 16 MiB image $img and the socket path $sock, cleanup at exit of the daemon ($vpid)
# and the front end ($lpid), fail MESSAGE (with both logs) and field NAME (from vu-load's report).
BUILD=${BUILD:-build/default}
VBLKD=$BUILD/vblkd
LOAD=$BUILD/vu-load
[ -x "$VBLKD" ] && [ -x "$LOAD" ] || { echo "$VBLKD or $LOAD not built"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-$1.XXXXXX")
vpid='' lpid=''
cleanup() {
	[ -z "$lpid" ] || kill "$lpid" 2>/dev/null || true
	[ -z "$vpid" ] || kill -9 "$vpid" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	sed 's/^/  vu-load: /' "$dir/load.err" 2>/dev/null || true
	tail -n 20 "$dir/vblkd.log" | sed 's/^/  vblkd: /'
	exit 1
}

sock=$dir/disk.sock
img=$dir/disk.img
truncate -s 16M "$img"

# field NAME: a number from vu-load's JSON report.
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$dir/load.out"; }
