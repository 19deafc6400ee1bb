#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# `make demo` builds only what the demo runs, without libcmocka-dev or clang, from exactly the packages of
# scripts/deps.sh's demo profile (issue 16: the README's first command failed on a fresh Debian 12).
set -euo pipefail
BUILD=${BUILD:-build/default}
MAKE=${MAKE:-make}
CC=${CC:-gcc}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vblkd-demo-build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

# 1. No test or fuzz target is among what `make demo` compiles.
plan=$($MAKE --no-print-directory -nB BUILD="$BUILD" demo-run)
tests=$(grep -E 'tests/unit/|tests/sim/test-|tests/fuzz/|build/fuzz/' <<<"$plan" || true)
[ -z "$tests" ] || fail "make demo-run builds tests or fuzz targets:$(echo; echo "$tests" | head -n 5)"

# 2. The demo's binaries build from scratch with cmocka.h unusable and no clang.  CPATH is searched
# before the system directories, where libcmocka-dev puts cmocka.h.  Nothing is reused from $BUILD:
# a reused object would not be compiled against the poisoned header.
mkdir "$scratch/poison"
echo '#error "make demo must not need libcmocka-dev"' >"$scratch/poison/cmocka.h"
jobs=-j2
case " ${MAKEFLAGS:-} " in *jobserver*|*" -j"*) jobs= ;; esac
CPATH=$scratch/poison${CPATH:+:$CPATH} $MAKE --no-print-directory $jobs V=1 BUILD="$scratch/build" \
	CMOCKA_CFLAGS=-I/nonexistent CMOCKA_LIBS=-l__no_cmocka CLANG=false demo-build \
	>"$scratch/build.log" 2>&1 || { cat "$scratch/build.log"; fail "the demo does not build without cmocka and clang"; }
for b in xensim vblkd-sim; do
	[ -x "$scratch/build/$b" ] || fail "make demo-build did not build $b"
done

# 3. Every package owning a file that build used is in the demo profile or a dependency of it,
# and every package of the profile is used.
if ! command -v dpkg >/dev/null || ! command -v apt-cache >/dev/null; then
	echo "not a Debian system: the demo builds; its packages are not checked"
	exit 77
fi
# The files it used: every header (-MMD leaves out system headers, so the compile commands of the
# build's log are run again with -M), the libraries of its link lines, and the tools.
plan=$(<"$scratch/build.log")
mkdir "$scratch/deps"
i=0
while IFS= read -r cmd; do
	i=$((i + 1))
	cmd=$(sed -E "s# -c -o [^ ]+# -M -MF $scratch/deps/$i.d#" <<<"$cmd")
	eval "$cmd" || fail "cannot list the headers of: $cmd"
done < <(grep -E -- ' -c -o ' <<<"$plan")
[ "$i" -gt 0 ] || fail "no compile command in the log of make V=1 demo-build"
mapfile -t files < <(
	{
		cat "$scratch"/deps/*.d | tr ' \\' '\n\n' | sed 's/:$//' | grep '^/'
		grep -E -- " -o [^ ]*/(xensim|vblkd-sim) " <<<"$plan" | grep -oE -- '(^| )-l[^ ]+' |
			sed 's/^ *-l//' | while read -r l; do
				for f in "lib$l.so" "lib$l.a"; do
					p=$($CC -print-file-name="$f")
					[ "$p" != "$f" ] && { echo "$p"; break; }
				done
			done
		for t in "$CC" ar make pkg-config; do command -v "$t"; done
	} | xargs realpath -s -m | sort -u
)
[ "${#files[@]}" -gt 50 ] || fail "found only ${#files[@]} files the build used"

declare -A owner=()
owners() {
	# "pkg:arch, pkg2: /path" lines; diversions and unknown paths are left out.
	dpkg -S "$@" 2>/dev/null | grep -v '^diversion' | while IFS= read -r line; do
		echo "${line#*: } ${line%%: /*}"
	done
}
while read -r path pkgs; do owner[$path]=$pkgs; done < <(owners "${files[@]}")
# Paths through a symlink (/bin -> usr/bin, /usr/bin/cc -> alternatives) are known by their target.
for f in "${files[@]}"; do
	[ -n "${owner[$f]:-}" ] && continue
	pkgs=''
	read -r _ pkgs < <(owners "$(readlink -f "$f")") || true
	[ -n "${pkgs:-}" ] || fail "$f (used by the demo's build) belongs to no Debian package"
	owner[$f]=$pkgs
done

profile=$(scripts/deps.sh --print demo | xargs)
# shellcheck disable=SC2086
closure=" $(apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances $profile | grep -v '^ ' | sort -u | tr '\n' ' ') "
declare -A used=()
bad=""
for f in "${files[@]}"; do
	ok=0
	for p in ${owner[$f]//,/ }; do
		p=${p%%:*}
		used[$p]=1
		[[ $closure == *" $p "* ]] && ok=1
	done
	[ "$ok" = 1 ] || bad="$bad
  $f (${owner[$f]})"
done
[ -z "$bad" ] || fail "the demo needs packages that scripts/deps.sh demo does not install:$bad"
for p in $profile; do
	[ -n "${used[$p]:-}" ] || fail "scripts/deps.sh demo installs $p, which the demo's build does not use"
done
echo "demo: builds without cmocka or clang; ${#files[@]} files from the demo profile ($profile)"
