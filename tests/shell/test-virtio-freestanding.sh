#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# src/virtio is portable (issue 17): every file compiles for a bare-metal Arm target (Debian's
# gcc-arm-none-eabi with newlib, -ffreestanding, the project's warnings as errors), and the virtio
# files and the project headers they use include nothing but C11 headers and each other (the one
# platform seam is include/virtio-platform.h; include/iovec.h takes the kernel's struct iovec only
# under __linux__).  Exit 77 (skipped) without the compiler; scripts/deps.sh check installs it.
set -euo pipefail
cd "$(dirname "$0")/../.."

CC=${ARM_NONE_EABI_CC:-arm-none-eabi-gcc}
command -v "$CC" >/dev/null || { echo "skip: $CC not installed (scripts/deps.sh check)"; exit 77; }
WARN="-Wall -Wextra -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes -Wshadow -Wswitch-enum
	-Wundef -Wwrite-strings -Wno-unused-parameter -Werror"
# C11 (ISO/IEC 9899:2011) 7.1.2: the standard headers.
C11="assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h limits.h locale.h
	math.h setjmp.h signal.h stdalign.h stdarg.h stdatomic.h stdbool.h stddef.h stdint.h stdio.h
	stdlib.h stdnoreturn.h string.h tgmath.h threads.h time.h uchar.h wchar.h wctype.h"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0 n=0
for f in src/virtio/*.c; do
	n=$((n + 1))
	# shellcheck disable=SC2086
	if ! "$CC" -std=c11 -ffreestanding $WARN -Iinclude -H -c "$f" -o "$tmp/x.o" 2>"$tmp/h"; then
		echo "FAIL: $f does not compile for arm-none-eabi:" >&2
		grep -v '^\.' "$tmp/h" >&2 || true
		fail=1
		continue
	fi
	# -H prints each header with one dot per level; a header a project file includes must be
	# a project file too, or a C11 header (the toolchain's own headers may include what they like).
	awk -v c11="$C11" -v file="$f" '
		BEGIN { n = split(c11, a); for (i = 1; i <= n; i++) ok[a[i]] = 1; stack[0] = file; bad = 0 }
		/^\.+ / {
			d = index($0, " ") - 1; path = substr($0, d + 2); stack[d] = path
			parent = stack[d - 1]
			if (parent !~ /^(src|include)\//) next
			if (path ~ /^(src|include)\//) next
			name = path
			sub(/^\/usr\/include\/newlib\//, "", name)
			sub(/^\/usr\/lib\/gcc\/arm-none-eabi\/[^\/]+\/include(-fixed)?\//, "", name)
			if (!(name in ok)) { printf "FAIL: %s includes <%s> (%s): not a C11 header\n", parent, name, path; bad = 1 }
		}
		END { exit bad }' "$tmp/h" >&2 || fail=1
done
[ "$n" -gt 0 ] || { echo "FAIL: no src/virtio/*.c" >&2; exit 1; }
[ "$fail" -eq 0 ] || exit 1
echo "src/virtio: $n files compile freestanding for arm-none-eabi, C11 headers only"
