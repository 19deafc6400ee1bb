// SPDX-License-Identifier: GPL-2.0-only
/* xenstore connection driven by the main loop: watch events dispatched by token, never a blocking wait. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "log.h"
#include "loop.h"
#include "util.h"
#include "xsw.h"

struct xsw_watch {
	struct xsw *xsw;
	char *path;
	char token[32];
	xsw_fn fn;
	void *data;
	struct xsw_watch *next;
};

struct xsw {
	struct loop *loop;
	struct xs_handle *xsh;
	struct loop_source *src;
	struct xsw_watch *watches;
	uint64_t next_id;
};

static struct xsw_watch *xsw_find(struct xsw *xsw, const char *token)
{
	struct xsw_watch *w;

	for (w = xsw->watches; w; w = w->next)
		if (!strcmp(w->token, token))
			return w;
	return NULL;
}

static void xsw_readable(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct xsw *xsw = data;
	char **vec;

	/* Drain every queued event: xs_check_watch() may clear the fd's readiness (xenstore.h). */
	while ((vec = xs_check_watch(xsw->xsh))) {
		/* Unknown tokens belong to watches removed meanwhile: ignore them. */
		struct xsw_watch *w = xsw_find(xsw, vec[XS_WATCH_TOKEN]);

		if (w)
			w->fn(w, vec[XS_WATCH_PATH], w->data);
		free(vec);
	}
	if (errno == EAGAIN)
		return;
	/*
	 * The connection is gone (xenstored died or restarted): nothing can be
	 * served without it.  Stop the daemon with an error so that systemd's
	 * Restart=on-failure starts it afresh against the new xenstored.
	 */
	log_err("xenstore: reading watch events failed: %m; is xenstored running? stopping");
	loop_remove(src);
	xsw->src = NULL;
	loop_stop(xsw->loop, 1);
}

int xsw_open(struct loop *loop, struct xsw **ret_xsw)
{
	struct xsw *xsw;
	int r, fd;

	xsw = calloc(1, sizeof(*xsw));
	if (!xsw)
		return -ENOMEM;
	xsw->loop = loop;
	/* XS_UNWATCH_FILTER: no events for a watch after xs_unwatch() returns. */
	xsw->xsh = xs_open(XS_UNWATCH_FILTER);
	if (!xsw->xsh) {
		r = errno ? -errno : -ENOENT;
		goto err_free;
	}
	fd = xs_fileno(xsw->xsh);
	if (fd < 0) {
		r = errno ? -errno : -EIO;
		goto err_close;
	}
	r = loop_add_fd(loop, fd, EPOLLIN, xsw_readable, xsw, &xsw->src);
	if (r < 0)
		goto err_close;
	*ret_xsw = xsw;
	return 0;

err_close:
	xs_close(xsw->xsh);
err_free:
	free(xsw);
	return r;
}

void xsw_close(struct xsw *xsw)
{
	if (!xsw)
		return;
	while (xsw->watches)
		xsw_unwatch(xsw->watches);
	loop_remove(xsw->src);
	xs_close(xsw->xsh);
	free(xsw);
}

struct xs_handle *xsw_handle(struct xsw *xsw)
{
	return xsw->xsh;
}

int xsw_watch(struct xsw *xsw, const char *path, xsw_fn fn, void *data,
	      struct xsw_watch **ret_watch)
{
	struct xsw_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->path = strdup(path);
	if (!w->path) {
		free(w);
		return -ENOMEM;
	}
	snprintf(w->token, sizeof(w->token), "vblkd-%" PRIu64, ++xsw->next_id);
	w->xsw = xsw;
	w->fn = fn;
	w->data = data;
	if (!xs_watch(xsw->xsh, path, w->token)) {
		int r = errno ? -errno : -EIO;

		free(w->path);
		free(w);
		return r;
	}
	slist_push(&xsw->watches, w, next);
	if (ret_watch)
		*ret_watch = w;
	return 0;
}

void xsw_unwatch(struct xsw_watch *watch)
{
	if (!watch)
		return;
	slist_remove(&watch->xsw->watches, watch, next);
	xs_unwatch(watch->xsw->xsh, watch->path, watch->token);
	free(watch->path);
	free(watch);
}

char *xsw_read(struct xsw *xsw, const char *path)
{
	unsigned int len;

	/* xs_read() NUL-terminates what it returns. */
	return xs_read(xsw->xsh, XBT_NULL, path, &len);
}

