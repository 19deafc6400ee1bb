#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# usage: deb-source.sh PACKAGE DIR
# Debian's source package of the release (XEN_RELEASE, see lib.sh), downloaded (private apt state in
# $XR/apt-src, as for the binaries) and unpacked into DIR/PACKAGE; kept while DIR/unpacked.ok exists.
# The newest version the suite lists first; should the mirror not have its files (a partial mirror or
# cache: seen for trixie's current xen and linux), the older versions the suite's index still lists.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pkg=$1
dir=$2
A=$XR/apt-src
apt_opts=(-q -oDir::State::Lists="$A/lists" -oDir::State::status="$A/status"
	-oDir::Etc::SourceList="$A/sources.list" -oDir::Etc::SourceParts="$A/parts"
	-oDir::Cache="$A/cache" -oAPT::Sandbox::User=root)
[ ! -f "$dir/unpacked.ok" ] || exit 0
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/parts"
: > "$A/status"
echo "deb-src $DEB_MIRROR $DEB_SUITE main" > "$A/sources.list"
apt-get "${apt_opts[@]}" update >/dev/null
for v in $(apt-cache "${apt_opts[@]}" showsrc "$pkg" | sed -n 's/^Version: //p' | sort -Vru); do
	xlog "downloading Debian's $pkg source package $v ($DEB_SUITE main)"
	rm -rf "$dir"
	mkdir -p "$dir"
	if (cd "$dir" && apt-get "${apt_opts[@]}" source --download-only "$pkg=$v" >/dev/null 2>&1); then
		dsc=$(ls "$dir/${pkg}"_*.dsc) || exit 1
		xlog "unpacking $(basename "$dsc")"
		dpkg-source --no-check -x "$dsc" "$dir/$pkg" >/dev/null || exit 1
		touch "$dir/unpacked.ok"
		exit 0
	fi
	xlog "the mirror has not got the files of $pkg $v"
done
rm -rf "$dir"
exit 1
