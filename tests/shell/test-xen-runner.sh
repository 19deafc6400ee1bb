#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# make check-xen's runner (tests/xen/runner.py) counts the steps a machine reports on its serial
# console, which Dom0's getty shares: a step line after the "dom0 login: " prompt counts (it went
# uncounted once, and the run passed with a step missing), a guest's step quoted in a Dom0 step's
# output does not, and a step that began and never reported fails the run.  A shell script
# stands in for QEMU.
set -euo pipefail
RUNNER=tests/xen/runner.py
dir=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-runner.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; cat "$dir/out" 2>/dev/null || true; exit 1; }

# run NAME: the runner over a "machine" printing NAME.console; its exit status in $rc.
run() {
	rc=0
	python3 "$RUNNER" --out "$dir/$1" --grace 0 --timeout 30 -- cat "$dir/$1.console" > "$dir/out" 2>&1 ||
		rc=$?
}

cat > "$dir/prompt.console" <<'EOF'
VBLKD-XEN DOM0-START systemd mode=noxen uptime=1.00
VBLKD-XEN BEGIN sd:boot
systemd 252
dom0 login: VBLKD-XEN STEP sd:boot PASS 0.10s running
VBLKD-XEN BEGIN sd:guest
    guest: VBLKD-XEN BEGIN io
    guest: VBLKD-XEN STEP io PASS 1.00s the guest's own step
VBLKD-XEN STEP sd:guest PASS 1.20s guest ok
VBLKD-XEN DONE pass=2 fail=0 skip=0 uptime=3.00
EOF
run prompt
[ "$rc" = 0 ] || fail "runner exited $rc on a run whose steps all passed"
grep -q 'ended: done; 2 pass, 0 fail, 0 skip' "$dir/out" || fail "want 2 steps counted"
grep -Eq '^  PASS +0\.10  sd:boot ' "$dir/out" || fail "the step after the login prompt is not listed"
! grep -Eq '^  PASS +1\.00  io ' "$dir/out" || fail "a guest's quoted step counted as Dom0's"
grep -Eq '^\[ *[0-9.]+\] dom0 login: VBLKD-XEN STEP sd:boot ' "$dir/prompt/serial.log" ||
	fail "the serial log does not keep the line as it came"

cat > "$dir/lost.console" <<'EOF'
VBLKD-XEN BEGIN sd:boot
VBLKD-XEN STEP sd:boot PASS 0.10s running
VBLKD-XEN BEGIN sd:reboot
garbled line
VBLKD-XEN DONE pass=2 fail=0 skip=0 uptime=3.00
EOF
run lost
[ "$rc" = 1 ] || fail "runner exited $rc, want 1, on a run with a step that never reported"
grep -q 'check-xen: step sd:reboot began and never reported' "$dir/out" ||
	fail "the unreported step is not named"
grep -q 'check-xen: FAIL (step sd:reboot began and never reported)' "$dir/out" ||
	fail "the verdict does not name it"

echo "PASS: test-xen-runner"
