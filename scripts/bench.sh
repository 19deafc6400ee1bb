#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# make bench: vblkd on the Xen simulator beside raw fio on the same files (see scripts/bench.py).
exec python3 "$(dirname "$0")/bench.py" "$@"
