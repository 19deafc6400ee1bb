/* SPDX-License-Identifier: GPL-2.0-only */
/* systemd service notification (READY=1, STATUS=, WATCHDOG=1) over $NOTIFY_SOCKET. */
#ifndef VBLKD_NOTIFY_H
#define VBLKD_NOTIFY_H

#include <stdint.h>

/*
 * Send @state (e.g. "READY=1\nSTATUS=serving 2 disks") to the service
 * manager.  Returns 1 when sent, 0 when not running under a manager that
 * asked for notifications (no $NOTIFY_SOCKET), -errno on failure.  It never
 * blocks: -EAGAIN when the manager's queue is full.
 */
int notify_send(const char *state);
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The watchdog interval the manager expects pings within (WatchdogSec=),
 * in microseconds, or 0 when none is set for this process.
 */
uint64_t notify_watchdog_usec(void);

#endif
