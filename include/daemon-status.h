/* SPDX-License-Identifier: GPL-2.0-only */
/* The daemon's status output: its guests and disks with their counters, for `vblkd --status`. */
#ifndef VBLKD_DAEMON_STATUS_H
#define VBLKD_DAEMON_STATUS_H

struct daemon;

/* Every guest and disk with its counters, as a JSON document (malloc'ed), for `vblkd --status`. */
char *daemon_status_json(const struct daemon *d);

#endif
