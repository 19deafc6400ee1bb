#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
# Install the Debian 12 packages a make target needs, only those missing.
#
# usage: scripts/deps.sh [--print] PROFILE...
#   PROFILE: build (compile vblkd), check (make check), demo (make demo),
#            bench (make bench), fuzz (make fuzz), deb (make deb: the Debian package),
#            xen (make check-xen: arm64 cross build, Xen under qemu-system-aarch64),
#            vhost (make check-vhost: vhost-user-blk under qemu-system-x86_64)
# As root, missing packages are installed with apt-get, non-interactively.
# Otherwise the exact apt-get command is printed and the script fails.
# --print only lists the packages of the profiles.
set -eu

pkgs_build="gcc make pkgconf libc6-dev libxen-dev libaio-dev liburing-dev libjson-c-dev"
pkgs_test="libcmocka-dev clang libclang-rt-14-dev util-linux coreutils"
# tests/shell/test-virtio-freestanding.sh: src/virtio built for a bare-metal Arm target.
pkgs_test="$pkgs_test gcc-arm-none-eabi libnewlib-arm-none-eabi libnewlib-dev"
# tests/shell/test-vhost-reconnect.sh reads vblkd --status --json with python3's json module.
pkgs_test="$pkgs_test python3"
# linux-perf: the daemon's system calls per request (perf stat -e raw_syscalls:sys_enter).
# qemu-system-common: qemu-storage-daemon, the vhost-user-blk back end vblkd is measured beside.
pkgs_bench="fio valgrind python3 linux-perf qemu-system-common"
# make deb: Debian's packaging tools (dpkg-buildpackage checks build-essential and the Build-Depends
# of debian/control, which are pkgs_build), lintian for the package's policy check
# (tests/shell/test-deb.sh).
pkgs_deb="build-essential dpkg-dev debhelper fakeroot lintian"
# make check-xen: cross compiler and arm64 libc headers (libc6-dev-arm64-cross is only a
# Recommends of gcc-aarch64-linux-gnu), apt-get download/dpkg-deb/dpkg-source (dpkg-dev, apt),
# the hypervisor build (bison, flex, python3, bc), the initramfs (cpio, python3), QEMU, file (checks
# the result is aarch64), the archive keyring (apt verifies the arm64 lists).  ipxe-qemu is not
# needed: QEMU runs with -nic none.  The systemd Dom0 (tests/xen/fetch-sd-root.sh): depmod (kmod) for
# its modules.dep, mkfs.ext4 -d (e2fsprogs) for its root image.
pkgs_xen="make gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu pkgconf
	qemu-system-arm cpio dpkg-dev apt bison flex python3 bc file debian-archive-keyring
	kmod e2fsprogs"

# make check-vhost: QEMU for x86 (TCG), the initramfs (cpio, busybox-static and e2fsprogs from the
# host: the guest is amd64 too), apt-get download of Debian's kernel, python3 for the runner.
pkgs_vhost="qemu-system-x86 qemu-system-data cpio busybox-static e2fsprogs apt dpkg-dev python3
	debian-archive-keyring"

print=0
want=""
for arg in "$@"; do
	case $arg in
	--print) print=1 ;;
	build) want="$want $pkgs_build" ;;
	# xensim and vblkd-sim need the build's compiler and libraries, no test library
	# (tests/shell/test-demo-build.sh checks what the demo's objects include and link).
	demo) want="$want $pkgs_build" ;;
	check) want="$want $pkgs_build $pkgs_test $pkgs_deb" ;;
	deb) want="$want $pkgs_build $pkgs_deb" ;;
	fuzz) want="$want $pkgs_build clang libclang-rt-14-dev" ;;
	bench) want="$want $pkgs_build $pkgs_bench" ;;
	xen) want="$want $pkgs_xen" ;;
	vhost) want="$want $pkgs_vhost" ;;
	-h|--help) sed -n '3,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "deps.sh: unknown profile '$arg' (build, check, demo, bench, fuzz, deb, xen, vhost)" >&2; exit 2 ;;
	esac
done
[ -n "$want" ] || want=$pkgs_build
# shellcheck disable=SC2086
want=$(printf '%s\n' $want | sort -u | tr '\n' ' ')

if [ "$print" = 1 ]; then
	echo "$want"
	exit 0
fi

missing=""
for p in $want; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case $status in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing Debian packages:$missing" >&2
	echo "deps.sh: run as root:  apt-get update && $cmd" >&2
	exit 1
fi

echo "deps.sh: installing missing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent or stale on a fresh machine: refresh them once.
if ! apt-get install -y --no-install-recommends -qq $missing >/dev/null 2>&1; then
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y --no-install-recommends -qq $missing
fi
