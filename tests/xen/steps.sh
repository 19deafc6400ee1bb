# SPDX-License-Identifier: GPL-2.0-only
# Step reporting shared by the Dom0 and DomU scenarios of `make check-xen` (busybox sh, sourced).
#
# Each step prints exactly one line the host-side runner parses:
#   VBLKD-XEN STEP <id> PASS|FAIL|SKIP <seconds>s <note>
# preceded by the step's own output, indented.  The seconds are wall time measured inside the
# domain (/proc/uptime), so they do not include the time the host spends before QEMU starts.

STEP_PASS=0
STEP_FAIL=0
STEP_SKIP=0
STEP_NOTE=
STEP_OUT=/tmp/step.out

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# step ID FUNCTION [ARGS...]: runs FUNCTION in this shell (so it may set variables) with its output
# captured; FUNCTION returns 0 (PASS), 77 (SKIP) or anything else (FAIL), and may set STEP_NOTE.
step() {
	local id=$1 t0 t1 rc verdict
	shift
	STEP_NOTE=
	echo "VBLKD-XEN BEGIN $id"
	t0=$(uptime_s)
	"$@" > "$STEP_OUT" 2>&1
	rc=$?
	t1=$(uptime_s)
	sed 's/^/    /' "$STEP_OUT"
	case $rc in
	0) verdict=PASS; STEP_PASS=$((STEP_PASS + 1)) ;;
	77) verdict=SKIP; STEP_SKIP=$((STEP_SKIP + 1)) ;;
	*) verdict=FAIL; STEP_FAIL=$((STEP_FAIL + 1)) ;;
	esac
	echo "VBLKD-XEN STEP $id $verdict $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')s $STEP_NOTE"
	return $rc
}

# Helpers for step functions: say why a check failed, in the step's output.
fail() { echo "FAILED: $*"; return 1; }
skip() { STEP_NOTE=$*; return 77; }

# The value of NAME=VALUE on the kernel command line.
cmdline_arg() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p; s/^$1=\([^[:space:]]*\).*/\1/p" /proc/cmdline | head -n 1; }

# Known data both sides agree on: the raw writes the DomU makes at odd offsets of its read-write disk,
# beyond the end of its ext4 file system, which Dom0 finds again in the image after the guest is gone.
RAW_FS_BLOCKS=12288                         # ext4 size in 4 KiB blocks: the first 48 MiB
RAW_A_SECTOR=$((RAW_FS_BLOCKS * 8 + 7))     # 3 sectors written with O_DIRECT at an odd sector
RAW_B_OFFSET=$((RAW_FS_BLOCKS * 4096 + 65536 + 13)) # 1000 bytes through the page cache at an odd byte
# The restart guest's disk (dom0/scenario.sh, restart steps) is larger: past the raw writes, from 50 MiB,
# the known data the long dd writes.
PATTERN_MIB_FIRST=50
raw_pattern_a() { awk 'BEGIN { for (i = 0; i < 96; i++) printf "vblkd-raw-A%04d\n", i }'; }
raw_pattern_b() { awk 'BEGIN { for (i = 0; i < 63; i++) printf "vblkd-raw-B%04d\n", i }' | head -c 1000; }
