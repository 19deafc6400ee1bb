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

/* On @th's thread: its disks of @g (NULL: all) try to map again. */
static void daemon_thread_room_of(struct dthread *th, const struct dguest *g)
{
	for (struct ddisk *k = th->disks; k; k = k->tnext) {
		if (!k->vblk || (g && k->dg != g))
			continue;
		/*
		 * Lane 0 is this thread's; the others are told on theirs.  No lock
		 * here: this may run inside an unmap, under gmem's mutex, even on a
		 * thread that holds its disk's exclusion (a reset's unmaps).
		 */
		vblk_lane_poll_soon(k->vblk, 0);
		for (unsigned int i = 1; i < k->nlanes; i++)
			iothread_queue(k->lanes[i].th->t, &k->lanes[i].room_work);
	}
}

static void daemon_guest_room_run(struct iothread_work *w)
{
	struct dguest_room *r = container_of(w, struct dguest_room, w);

	daemon_thread_room_of(r->th, r->g);
}

void daemon_guest_room(struct dguest *g)
{
	struct daemon *d = g->d;

	/* Any thread may serve some of its disks; one with none does nothing. */
	for (unsigned int i = 0; i < d->nthreads; i++) {
		if (iothread_is_current(d->threads[i].t))
			daemon_thread_room_of(&d->threads[i], g);
		else
			iothread_queue(d->threads[i].t, &g->room[i].w);
	}
}

int daemon_guest_room_new(struct dguest *g)
{
	struct daemon *d = g->d;

	g->room = calloc(d->nthreads, sizeof(*g->room));
	if (!g->room)
		return -ENOMEM;
	for (unsigned int i = 0; i < d->nthreads; i++)
		g->room[i] = (struct dguest_room){ .w.fn = daemon_guest_room_run, .g = g,
						   .th = &d->threads[i] };
	return 0;
}

void daemon_guest_room_free(struct dguest *g)
{
	for (unsigned int i = 0; g->room && i < g->d->nthreads; i++)
		iothread_cancel(g->d->threads[i].t, &g->room[i].w);
	free(g->room);
	g->room = NULL;
}

static void daemon_thread_room(struct iothread_work *w)
{
	struct dthread *th = container_of(w, struct dthread, room);

	daemon_thread_room_of(th, NULL);
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
	if (d->opts.guest_threads > n)
		d->opts.guest_threads = n;
	if (d->opts.io_threads && d->opts.guest_threads > 1)
		log_info("%u IO threads; one guest's disks spread over up to %u of them", n,
			 d->opts.guest_threads);
	else if (d->opts.io_threads)
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

/* How many of @g's disks, or lanes of its disks' queues, @th serves (main thread). */
static unsigned int daemon_guest_disks_on(const struct dguest *g, const struct dthread *th)
{
	unsigned int n = 0;

	for (const struct ddisk *k = g->disks; k; k = k->next)
		for (unsigned int i = 0; i < k->nlanes; i++)
			n += k->lanes[i].th == th;
	return n;
}

/* How many threads serve something of @g, its own counted always (main thread). */
static unsigned int daemon_guest_threads_used(struct daemon *d, const struct dguest *g)
{
	unsigned int used = 1;

	for (unsigned int i = 0; i < d->nthreads; i++)
		used += &d->threads[i] != g->th && daemon_guest_disks_on(g, &d->threads[i]) > 0;
	return used;
}

static bool daemon_thread_in(const struct dthread *th, struct dthread *const *set, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (set[i] == th)
			return true;
	return false;
}

void daemon_lane_threads_pick(struct daemon *d, const struct dguest *g, struct dthread *first,
			      unsigned int n, struct dthread **ret)
{
	unsigned int used = daemon_guest_threads_used(d, g);

	/* The disk's own thread may be a new one for the guest. */
	used += first != g->th && !daemon_guest_disks_on(g, first);

	for (unsigned int j = 1; j < n; j++) {
		struct dthread *best = NULL;
		unsigned int best_load = 0, best_own = 0;

		for (unsigned int i = 0; i < d->nthreads; i++) {
			struct dthread *th = &d->threads[i];
			unsigned int load = th->ndisks + th->nvhost, own = daemon_guest_disks_on(g, th);

			if (th == first || daemon_thread_in(th, ret, j - 1))
				continue;
			/* At --guest-threads of them, its queues stay on the threads it is on. */
			if (used >= d->opts.guest_threads && !own && th != g->th)
				continue;
			if (!best || load < best_load || (load == best_load && own < best_own)) {
				best = th;
				best_load = load;
				best_own = own;
			}
		}
		if (!best)
			best = first;	/* not reached: lanes <= --guest-threads <= threads */
		else if (!best_own && best != g->th)
			used++;
		ret[j - 1] = best;
	}
}

struct dthread *daemon_disk_thread_pick(struct daemon *d, const struct dguest *g)
{
	unsigned int spread = d->opts.guest_threads, used = 0;
	struct dthread *best = g->th;
	unsigned int best_load, best_own;

	if (spread <= 1 || d->nthreads == 1)
		return g->th;
	used = daemon_guest_threads_used(d, g);
	best_load = best->ndisks + best->nvhost;
	best_own = daemon_guest_disks_on(g, best);
	for (unsigned int i = 0; i < d->nthreads; i++) {
		struct dthread *th = &d->threads[i];
		unsigned int load = th->ndisks + th->nvhost, own = daemon_guest_disks_on(g, th);

		/* At --guest-threads of them, its disks stay on the threads they are on. */
		if (used >= spread && !own && th != g->th)
			continue;
		/* The least busy; among those, the one with fewest of this guest's disks. */
		if (load < best_load || (load == best_load && own < best_own)) {
			best = th;
			best_load = load;
			best_own = own;
		}
	}
	return best;
}

void daemon_thread_call(struct dthread *th, void (*fn)(void *data), void *data)
{
	iothread_call(th->t, fn, data);
}

static void daemon_thread_nothing(void *data)
{
}

void daemon_threads_barrier(struct daemon *d)
{
	for (unsigned int i = 0; i < d->nthreads; i++)
		daemon_thread_call(&d->threads[i], daemon_thread_nothing, NULL);
}
