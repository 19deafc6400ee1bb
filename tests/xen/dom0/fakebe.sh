#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
# Harness self-test only: a backend that does nothing but vblkd's xenstore handshake.
#
# It answers Initialising (1) with InitWait (2), so `xl create` completes, and Closing (5) with Closed (6),
# so `xl destroy` is clean.  It has no IOREQ server: a guest that loads virtio_mmio faults on the first
# register read.  Event-driven through xenstore-watch, the way vblkd waits for its watch.
BE=/local/domain/$(xenstore-read domid)/backend/virtio_disk
echo "fakebe: watching $BE"
xenstore-watch "$BE" | while read -r path; do
	case $path in
	*/state) ;;
	*) continue ;;
	esac
	state=$(xenstore-read "$path" 2>/dev/null) || continue
	case $state in
	1) xenstore-write "$path" 2 && echo "fakebe: $path 1 -> 2" ;;
	5) xenstore-write "$path" 6 && echo "fakebe: $path 5 -> 6" ;;
	esac
done
