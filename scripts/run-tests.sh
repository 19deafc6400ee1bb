#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Run the CMocka test binaries (and libFuzzer targets after --fuzz), then print one summary line.
#
# usage: run-tests.sh TEST_BIN... [--sh SCRIPT...] [--fuzz SECONDS FUZZ_BIN...]
# Each CMocka test counts once; a shell test (exit 0 pass, 77 skipped, else
# failed) and a fuzz target count as one test each.  Output of a failing test
# is shown in full; passing ones print a line each, and their figures (lines
# '# report: ...', e.g. test-restart's pauses: timing is reported, never asserted).
set -u

passed=0 failed=0 skipped=0
failures=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-tests.XXXXXX")
trap 'rm -rf "$logdir"' EXIT
# Per-binary limit, so a hung test fails instead of stalling CI.
TEST_TIMEOUT=${TEST_TIMEOUT:-600}

run_cmocka() {
	local bin=$1 name log rc p f s
	name=$(basename "$bin")
	log=$logdir/$name.log
	CMOCKA_MESSAGE_OUTPUT=tap timeout --kill-after=10 "$TEST_TIMEOUT" "$bin" >"$log" 2>&1
	rc=$?
	p=$(grep -cE '^ok [0-9]+' "$log")
	s=$(grep -cE '^not ok [0-9]+ # SKIP' "$log")
	f=$(grep -E '^not ok [0-9]+' "$log" | grep -vc '# SKIP')
	# A crash or a time-out may leave tests unreported: count the binary as failed.
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
		echo "# $name exited with status $rc" >>"$log"
	fi
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
	if [ "$f" -gt 0 ]; then
		failures+=("$name")
		echo "FAIL  $name ($p passed, $f failed, $s skipped)"
		sed 's/^/    /' "$log"
	else
		if [ "$s" -gt 0 ]; then echo "ok    $name ($p passed, $s skipped)"; else echo "ok    $name ($p passed)"; fi
		grep -E '^not ok [0-9]+ # SKIP' "$log" | sed 's/^/    /'
		grep -E '^# report: ' "$log" | sed 's/^# report: /    /'
	fi
}

run_sh() {
	local script=$1 name log rc
	name=$(basename "$script" .sh)
	log=$logdir/$name.log
	timeout --kill-after=10 "$TEST_TIMEOUT" bash "$script" >"$log" 2>&1
	rc=$?
	case $rc in
	0) passed=$((passed + 1)); echo "ok    $name" ;;
	77) skipped=$((skipped + 1)); echo "skip  $name: $(tail -n 1 "$log")" ;;
	*)
		failed=$((failed + 1))
		failures+=("$name")
		echo "FAIL  $name (exit $rc)"
		sed 's/^/    /' "$log"
		;;
	esac
}

run_fuzz() {
	local secs=$1 bin=$2 name corpus work log rc
	name=$(basename "$bin")
	corpus=tests/fuzz/corpus/$name
	work=$logdir/$name.corpus
	log=$logdir/$name.log
	mkdir -p "$work" "$logdir/$name.artifacts"
	# New inputs go to a scratch dir; the committed corpus is only read.
	timeout --kill-after=10 $((secs + 120)) "$bin" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$logdir/$name.artifacts/" "$work" $( [ -d "$corpus" ] && echo "$corpus" ) \
		>"$log" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok    $name (fuzzed ${secs}s, $(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$') runs)"
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "FAIL  $name (libFuzzer exit $rc)"
		tail -n 60 "$log" | sed 's/^/    /'
		for a in "$logdir/$name.artifacts"/*; do
			[ -e "$a" ] && echo "    crashing input (base64): $(base64 -w0 "$a")"
		done
	fi
}

mode=unit secs=0
for arg in "$@"; do
	case $mode in
	unit|sh)
		if [ "$arg" = --fuzz ]; then mode=secs; continue; fi
		if [ "$arg" = --sh ]; then mode=sh; continue; fi
		if [ "$mode" = sh ]; then run_sh "$arg"; else run_cmocka "$arg"; fi ;;
	secs) secs=$arg; mode=fuzz ;;
	fuzz) run_fuzz "$secs" "$arg" ;;
	esac
done

echo
[ "${#failures[@]}" -gt 0 ] && echo "failed: ${failures[*]}"
echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
