#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Download Debian 12's amd64 kernel for `make check-vhost` into the cache (private apt state, as
# tests/xen/fetch-arm64.sh does for arm64): $VC/kernel/vmlinuz and $VC/kernel/modules/<version>/.
# Cached: runs again only when the stamp is deleted.
set -euo pipefail
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
VC=${VBLKD_VHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vblkd-vhost}
DEB_MIRROR=${DEB_MIRROR:-http://deb.debian.org/debian}
DEB_SECURITY_MIRROR=${DEB_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
KERNEL_META=linux-image-amd64
stamp=$VC/kernel.ok
[ -f "$stamp" ] && exit 0
mkdir -p "$VC"
exec 9> "$VC/kernel.lock"
flock 9
[ -f "$stamp" ] && exit 0

A=$VC/apt
mkdir -p "$A/lists/partial" "$A/cache/archives/partial" "$A/parts" "$VC/debs"
: > "$A/status"
cat > "$A/sources.list" <<EOS
deb [arch=amd64] $DEB_MIRROR bookworm main
deb [arch=amd64] $DEB_MIRROR bookworm-updates main
deb [arch=amd64] $DEB_SECURITY_MIRROR bookworm-security main
EOS
apt_opts=(-q -oAPT::Architecture=amd64 -oAPT::Architectures::=amd64
	-oDir::State::Lists="$A/lists" -oDir::State::status="$A/status"
	-oDir::Etc::SourceList="$A/sources.list" -oDir::Etc::SourceParts="$A/parts"
	-oDir::Cache="$A/cache" -oAPT::Sandbox::User=root)
echo "check-vhost: Debian's package lists (private, in $A)" >&2
apt-get "${apt_opts[@]}" update >/dev/null
# Debian renames its kernel package at each ABI bump: take the one the metapackage points to.
kpkg=$(apt-cache "${apt_opts[@]}" depends "$KERNEL_META" |
	sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\(-unsigned\)\{0,1\}\)$/\1/p' | head -n 1)
[ -n "$kpkg" ] || { echo "check-vhost: cannot tell which kernel $KERNEL_META depends on" >&2; exit 1; }
echo "check-vhost: downloading $kpkg" >&2
(cd "$VC/debs" && apt-get "${apt_opts[@]}" download "$kpkg" >/dev/null)
rm -rf "$VC/kernel" "$VC/x"
mkdir -p "$VC/kernel/modules" "$VC/x"
dpkg-deb -x "$VC"/debs/"$kpkg"_*.deb "$VC/x"
cp "$VC"/x/boot/vmlinuz-* "$VC/kernel/vmlinuz"
mv "$VC"/x/lib/modules/* "$VC/kernel/modules/"
rm -rf "$VC/x"
echo "$kpkg" > "$stamp"
