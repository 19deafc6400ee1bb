/* SPDX-License-Identifier: GPL-2.0-only */
/* systemd service notification (READY=1, STATUS=, WATCHDOG=1, the fd store) over $NOTIFY_SOCKET. */
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
 * @state with @fd attached: "FDSTORE=1\nFDNAME=..." hands the manager a
 * descriptor to keep across a restart, even a kill -9 (systemd's file
 * descriptor store, FileDescriptorStoreMax=); "FDSTOREREMOVE=1\nFDNAME=..."
 * (notify_send_wait()) drops it again.  Unlike status updates these wait up
 * to NOTIFY_WAIT_MS for room in the manager's queue (its length is
 * net.unix.max_dgram_qlen: 10 where systemd's sysctl.d has not made it
 * 512): a lost one would cost a guest its disks at the next crash.  Returns
 * as notify_send(); -EAGAIN after the wait.
 */
int notify_send_fd(const char *state, int fd);
int notify_send_wait(const char *state);
int notify_sendf_wait(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * READY=1 and STOPPING=1 use the waiting kind as well: a lost READY=1 fails
 * a Type=notify unit's start.
 */
#define NOTIFY_WAIT_MS 2000

/* sd_listen_fds(3): the manager's descriptors start at 3. */
#define NOTIFY_LISTEN_FDS_START 3
/* More is taken as a bogus LISTEN_FDS. */
#define NOTIFY_LISTEN_FDS_MAX 65536

/* A descriptor the manager passed at start, and its name (LISTEN_FDNAMES). */
struct notify_fd {
	int fd;			/* -1: the number named was not open */
	char name[256];		/* "unknown" when the manager gave none */
};

/*
 * The descriptors the manager passed this process (LISTEN_PID, LISTEN_FDS,
 * LISTEN_FDNAMES: the fd store's entries come back so), made close-on-exec;
 * the variables are unset either way.  0 with *@ret_n 0 when none are
 * meant for this process; -EINVAL for a LISTEN_FDS that is not a count.
 * The caller frees *@ret_fds (not the descriptors).
 */
int notify_listen_fds(struct notify_fd **ret_fds, unsigned int *ret_n);

/*
 * The watchdog interval the manager expects pings within (WatchdogSec=),
 * in microseconds, or 0 when none is set for this process.
 */
uint64_t notify_watchdog_usec(void);

#endif
