#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# The service unit's sandbox: systemd-analyze security rates it 2.0 or lower, its system call filter
# refuses exec-adjacent and kernel-altering groups, and it is skipped on a machine without Xen.
set -euo pipefail
if ! command -v systemd-analyze >/dev/null; then
	echo "systemd-analyze not installed"
	exit 77
fi
if ! systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
	echo "systemd-analyze has no --offline (systemd < 252)"
	exit 77
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-sec.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

unit=$dir/vblkd.service
sed 's|@SBINDIR@|/usr/sbin|g' systemd/vblkd.service.in >"$unit"
out=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) || true
score=$(sed -n 's/.*Overall exposure level for vblkd.service: \([0-9.]*\).*/\1/p' <<<"$out")
[ -n "$score" ] || { echo "$out"; fail "no overall exposure level"; }
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "$out"; fail "exposure $score > 2.0"; }

# Every system call group systemd-analyze checks is filtered: none of its SystemCallFilter=~@... lines
# (debug/ptrace, mount, module, privileged, raw-io, reboot, swap, clock, cpu-emulation, obsolete,
# resources) is marked as exposed.
bad=$(grep -E '^✗ SystemCallFilter=' <<<"$out" || true)
[ -z "$bad" ] || fail "system calls not filtered: $(echo; echo "$bad")"
for group in debug mount module privileged raw-io reboot swap; do
	grep -qE "^✓ SystemCallFilter=~@$group " <<<"$out" || fail "@$group not checked as filtered"
done
# What the daemon needs stays allowed: @system-service (with @aio: libaio and io_uring).
grep -qx 'SystemCallFilter=@system-service' "$unit" || fail "no @system-service allow list"
grep -qx 'SystemCallArchitectures=native' "$unit" || fail "foreign ABIs allowed"
# /proc/sys and /proc/xen must stay visible (vm.max_map_count, libxen*'s /proc/xen fallbacks).
grep -q '^ProcSubset=pid' "$unit" && fail "ProcSubset=pid hides /proc/sys and /proc/xen"
# Skipped, not failed, without Xen.
grep -qx 'ConditionPathExists=/proc/xen' "$unit" || fail "no ConditionPathExists=/proc/xen"
# Each sandbox setting says why: the line above it is a comment (or a setting of the same group).
awk '/^# Sandboxing/ { on = 1 } /^\[Install\]/ { on = 0 }
	on && /^[A-Za-z]+=/ { key = $0; sub(/=.*/, "", key)
		if (prev !~ /^#/ && prevkey != key && !(prev ~ /^(Protect|Restrict|Private|Device)/ && key ~ /^(Protect|Restrict|Private|Device)/))
			{ print "no comment above " $0; bad = 1 } }
	{ prev = $0; prevkey = $0; sub(/=.*/, "", prevkey) }
	END { exit bad }' "$unit" || fail "sandbox settings without a reason"
echo "security: exposure $score (<= 2.0), every system call group filtered, skipped without /proc/xen"
