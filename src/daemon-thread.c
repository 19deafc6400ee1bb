// SPDX-License-Identifier: GPL-2.0-only
/* The daemon's IO threads: each serves its guests and exports from its own loop; main acts on them by call. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blk.h"
#include "daemon-internal.h"
#include "guest.h"
#include "iothread.h"
#include "log.h"
#include "loop.h"
#include "util.h"
#include "vblk.h"

#define DAEMON_THREAD_NAME "vblkd-io%u"

static void daemon_ctx_done(void *owner, struct blk_dev *dev)
{
	daemon_blk_done(owner);
}

/* The thread's shared completion context (blk_ctx_new()): every member's batch. */
static void daemon_ctx_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct dthread *th = data;
	int r = blk_ctx_process(th->blk_ctx, daemon_ctx_done);

	if (r < 0)
		log_err("%s: reaping IO completions failed: %s", iothread_name(th->t),
			strerror(-r));
}

/* On @th's thread: its completion context, watched by its loop. */
static void daemon_thread_ctx_open(void *data)
{
	struct dthread *th = data;
	int r = blk_ctx_new(&th->blk_ctx);

	if (r == 0)
		r = loop_add_fd(th->loop, blk_ctx_get_fd(th->blk_ctx), EPOLLIN, daemon_ctx_ready, th,
				&th->blk_ctx_src);
	if (r < 0) {
		blk_ctx_free(th->blk_ctx);
		th->blk_ctx = NULL;
		log_warn("%s: one aio context for all its disks unavailable (%s): each disk gets "
			 "its own", iothread_name(th->t), strerror(-r));
	}
}

static void daemon_thread_ctx_close(void *data)
{
	struct dthread *th = data;

	loop_remove(th->blk_ctx_src);
	th->blk_ctx_src = NULL;
	blk_ctx_free(th->blk_ctx);
	th->blk_ctx = NULL;
}

void daemon_guest_room(struct dguest *g)
{
	for (struct ddisk *k = g->disks; k; k = k->next)
		if (k->vblk)
			vblk_poll_soon(k->vblk);
}

static void daemon_thread_room(struct iothread_work *w)
{
	struct dthread *th = container_of(w, struct dthread, room);

	for (struct dguest *g = th->guests; g; g = g->tnext)
		daemon_guest_room(g);
}

void daemon_threads_room(struct daemon *d)
{
	for (unsigned int i = 0; i < d->nthreads; i++) {
		struct dthread *th = &d->threads[i];

		if (iothread_is_current(th->t))
			daemon_thread_room(&th->room);
		else
			iothread_queue(th->t, &th->room);
	}
}

/* Its loop's busy polling (--poll-us), set on the thread that runs the loop. */
static void daemon_thread_poll_max(void *data)
{
	struct dthread *th = data;

	loop_set_poll_max(th->loop, (uint64_t)th->d->opts.poll_us * 1000u);
}

int daemon_threads_open(struct daemon *d)
{
	unsigned int n = d->opts.io_threads ? d->opts.io_threads : 1;
	int r = iothread_attach(d->loop, &d->main);

	if (r < 0)
		return r;
	d->threads = calloc(n, sizeof(*d->threads));
	if (!d->threads)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++) {
		struct dthread *th = &d->threads[i];
		char name[24];

		th->d = d;
		th->room.fn = daemon_thread_room;
		snprintf(name, sizeof(name), DAEMON_THREAD_NAME, i % 1000);
		r = d->opts.io_threads ? iothread_new(name, &th->t) : 0;
		if (r < 0) {
			log_err("cannot start IO thread %s: %s", name, strerror(-r));
			return r;
		}
		if (!th->t)
			th->t = d->main;
		th->loop = iothread_loop(th->t);
		d->nthreads++;
		/* One completion context per thread on libaio: one wakeup, one io_getevents(). */
		if (d->opts.engine == BLK_ENGINE_AIO || d->opts.engine == BLK_ENGINE_AUTO)
			daemon_thread_call(th, daemon_thread_ctx_open, th);
		daemon_thread_call(th, daemon_thread_poll_max, th);
	}
	if (d->opts.io_threads)
		log_info("%u IO thread%s", n, n == 1 ? "" : "s");
	return 0;
}

void daemon_threads_halt(struct daemon *d)
{
	for (unsigned int i = 0; d->threads && i < d->nthreads; i++)
		if (d->threads[i].t != d->main)
			iothread_halt(d->threads[i].t);
}

void daemon_threads_close(struct daemon *d)
{
	for (unsigned int i = 0; d->threads && i < d->nthreads; i++) {
		struct dthread *th = &d->threads[i];

		daemon_thread_call(th, daemon_thread_ctx_close, th);
		iothread_cancel(th->t, &th->room);
		if (th->t != d->main)
			iothread_free(th->t);
	}
	free(d->threads);
	d->threads = NULL;
	d->nthreads = 0;
	iothread_free(d->main);
	d->main = NULL;
}

struct dthread *daemon_thread_pick(struct daemon *d)
{
	struct dthread *best = &d->threads[0];

	for (unsigned int i = 1; i < d->nthreads; i++) {
		struct dthread *th = &d->threads[i];
		unsigned int load = th->ndisks + th->nvhost, best_load = best->ndisks + best->nvhost;

		if (load < best_load || (load == best_load && th->nguests < best->nguests))
			best = th;
	}
	return best;
}

void daemon_thread_call(struct dthread *th, void (*fn)(void *data), void *data)
{
	iothread_call(th->t, fn, data);
}
