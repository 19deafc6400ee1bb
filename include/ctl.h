/* SPDX-License-Identifier: GPL-2.0-only */
/* Control socket: a UNIX stream socket answering one-line commands (e.g. "status") from the main loop. */
#ifndef VBLKD_CTL_H
#define VBLKD_CTL_H

#include <stddef.h>

struct loop;
struct ctl;

#define CTL_DEFAULT_PATH "/run/vblkd/control"
/* Longest command line accepted; longer ones are refused. */
#define CTL_MAX_REQUEST 256u

/*
 * Answer @request (one line, without its newline) with a malloc'ed string, or
 * NULL (then "error: ..." is sent).  Runs on the main loop.
 */
typedef char *(*ctl_handler_fn)(const char *request, void *data);

/*
 * Listen on @path (its directory is created 0700 if missing; the socket is
 * 0600: root only).  A stale socket left by a dead daemon is replaced; a
 * live one gives -EADDRINUSE.
 */
int ctl_listen(struct loop *loop, const char *path, ctl_handler_fn fn, void *data,
	       struct ctl **ret_ctl);
/* Close the listener and every connection, and remove the socket file. */
void ctl_close(struct ctl *ctl);

/*
 * Client side: send @request to the daemon at @path and return its whole
 * answer (malloc'ed) in @ret_reply.  -ENOENT / -ECONNREFUSED: no daemon.
 * Waits at most @timeout_ms for the answer.
 */
int ctl_request(const char *path, const char *request, int timeout_ms, char **ret_reply);

#endif
