#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The unit tests of src/core, src/virtio and src/blk build and run without the Xen development packages
# (issue 17): pkg-config does not know the xen* packages, every Xen header #errors, no libxen* is linked.
set -euo pipefail
MAKE=${MAKE:-make}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-core-build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

# pkg-config without Xen: any query naming a xen* package fails, as on a machine without libxen-dev.
real_pkg_config=$(command -v "${PKG_CONFIG:-pkg-config}") || fail "no pkg-config"
cat >"$scratch/pkg-config" <<WRAP
#!/bin/sh
for a in "\$@"; do
	case "\$a" in xen*) exit 1 ;; esac
done
exec "$real_pkg_config" "\$@"
WRAP
chmod +x "$scratch/pkg-config"

# Xen's headers, poisoned: CPATH is searched before the system directories, where libxen-dev puts them.
mkdir -p "$scratch/poison/xen/hvm" "$scratch/poison/xen/arch-arm"
for h in xenctrl.h xenstore.h xenevtchn.h xenforeignmemory.h xendevicemodel.h xengnttab.h \
	xentoollog.h xencall.h xen/xen.h xen/hvm/ioreq.h xen/hvm/dm_op.h xen/memory.h xen/grant_table.h \
	xen/event_channel.h xen/io/xs_wire.h; do
	mkdir -p "$(dirname "$scratch/poison/$h")"
	echo "#error \"a unit test of src/core, src/virtio or src/blk includes the Xen header $h\"" \
		>"$scratch/poison/$h"
done

jobs=-j2
case " ${MAKEFLAGS:-} " in *jobserver*|*" -j"*) jobs= ;; esac
CPATH=$scratch/poison${CPATH:+:$CPATH} $MAKE --no-print-directory $jobs V=1 BUILD="$scratch/build" \
	PKG_CONFIG="$scratch/pkg-config" unit-core >"$scratch/build.log" 2>&1 ||
	{ tail -n 30 "$scratch/build.log"; fail "the core's unit tests do not build without Xen"; }

# Which tests that is: every unit test but those of src/xen modules.
n=0
for src in tests/unit/test-*.c; do
	t=$(basename "$src" .c)
	[ -e "src/xen/${t#test-}.c" ] && continue
	bin=$scratch/build/tests/$t
	[ -x "$bin" ] || fail "make unit-core did not build $t"
	if grep -qE '^#include [<"](xen[a-z]*\.h|xen/)' "$src"; then
		fail "$src includes a Xen header"
	fi
	if readelf -d "$bin" | grep -q 'NEEDED.*libxen'; then
		fail "$t is linked with a Xen library"
	fi
	n=$((n + 1))
done
[ "$n" -ge 10 ] || fail "only $n core unit tests"
grep -qE -- '-lxen' "$scratch/build.log" && fail "a link line of make unit-core names a Xen library"

# And they pass.
for src in tests/unit/test-*.c; do
	t=$(basename "$src" .c)
	[ -e "src/xen/${t#test-}.c" ] && continue
	"$scratch/build/tests/$t" >"$scratch/$t.log" 2>&1 || { tail -n 20 "$scratch/$t.log"; fail "$t failed"; }
done
echo "core: $n unit tests build and pass without the Xen development packages"
