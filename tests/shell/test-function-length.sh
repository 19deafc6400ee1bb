#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# No function in src/ is longer than 80 lines (issue 17), except a flat switch dispatch: a function
# whose body is one switch statement (plus declarations before it) may be longer.  Functions are
# found as the house style writes them: the name at column 0, the opening and closing braces alone
# at column 0.
set -euo pipefail
cd "$(dirname "$0")/../.."

MAX=${MAX:-80}
files=$(git ls-files 'src/*.c' 'src/**/*.c' 2>/dev/null || find src -name '*.c')
[ -n "$files" ] || { echo "FAIL: no sources" >&2; exit 1; }
# shellcheck disable=SC2086
awk -v max="$MAX" '
	FNR == 1 { cand = ""; start = 0 }
	!start && /^[A-Za-z_].*\(/ && !/;[ \t]*$/ { cand = $0; candline = FNR; next }
	!start && /^\{/ && cand != "" { start = FNR; sw = 0; closed = 0; flat = 1; next }
	start && /^\}/ {
		len = FNR - start - 1
		if (len > max && !(flat && sw)) {
			printf "FAIL: %s:%d: %d lines: %s\n", FILENAME, candline, len, cand
			bad = 1
		}
		nfun++; start = 0; cand = ""; next
	}
	# Inside a body, the statements at the first level of indentation: a flat switch dispatch
	# has declarations, then one switch, then nothing.
	start && /^\t[^\t]/ {
		if ($0 ~ /^\tswitch \(/) { if (sw) flat = 0; sw = 1; next }
		if (sw && !closed && $0 ~ /^\t\}$/) { closed = 1; next }
		if (!sw && $0 ~ /;$/ && $0 !~ /^\t(if|for|while|do|return|goto|switch)\b/ && $0 !~ /\(/) next
		flat = 0
	}
	END { if (bad) exit 1; printf "%d functions in src/, none over %d lines (switch dispatch aside)\n", nfun, max }
' $files
