#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# man/vblkd.8 renders without a warning and documents every option vblkd --help lists.
set -euo pipefail
BUILD=${BUILD:-build/default}
if ! command -v man >/dev/null; then
	echo "man not installed"
	exit 77
fi
warnings=$(man --warnings -l man/vblkd.8 2>&1 >/dev/null)
[ -z "$warnings" ] || { echo "man --warnings:"; echo "$warnings"; exit 1; }
page=$(MANWIDTH=200 man -l man/vblkd.8 2>/dev/null)
missing=0
for opt in $("$BUILD/vblkd" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
	grep -q -- "$opt" <<<"$page" || { echo "option $opt is not in the man page"; missing=1; }
done
[ "$missing" = 0 ]
echo "man page: no warnings, every option documented"
