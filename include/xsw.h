/* SPDX-License-Identifier: GPL-2.0-only */
/* xenstore connection for the main loop: watches routed to callbacks by token, small read/write helpers. */
#ifndef VBLKD_XSW_H
#define VBLKD_XSW_H

#include <stdbool.h>

struct loop;
struct xs_handle;
struct xsw;
struct xsw_watch;

/* @path is the node that changed (at or below the watched path); it may be gone already. */
typedef void (*xsw_fn)(struct xsw_watch *watch, const char *path, void *data);

/* Connect to xenstore and watch its fd from @loop; losing the connection stops @loop with code 1. */
int xsw_open(struct loop *loop, struct xsw **ret_xsw);
void xsw_close(struct xsw *xsw);
struct xs_handle *xsw_handle(struct xsw *xsw);

/*
 * Watch @path and everything below it.  xenstore fires every new watch once
 * at once, so the callback also sees the initial state.  A callback may
 * remove any watch, its own included.
 */
int xsw_watch(struct xsw *xsw, const char *path, xsw_fn fn, void *data,
	      struct xsw_watch **ret_watch);
void xsw_unwatch(struct xsw_watch *watch);

/* The value at @path (malloc'ed, NUL-terminated) or NULL with errno set (ENOENT if absent). */
char *xsw_read(struct xsw *xsw, const char *path);

#endif
