// SPDX-License-Identifier: GPL-2.0-only
/* Block layer engine on Linux native AIO (libaio): batched io_submit, completions through the eventfd. */
#include <assert.h>
#include <errno.h>
#include <libaio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blk-internal.h"
#include "log.h"

/* A blk_ctx's aio context: room for this many requests of all its members together. */
#define BLK_CTX_AIO_EVENTS 4096u

struct blk_aio_shared {
	io_context_t ctx;
	bool ring;			/* completions read from ctx's ring (blk-aio-ring.c) */
	unsigned int capacity;
	unsigned int reserved;		/* the members' queue depths */
	struct io_event *events;	/* [capacity] */
	/*
	 * Between blk_aio_ctx_plug() and _unplug() the members' prepared
	 * requests wait here and go out in one io_submit(): one system call for
	 * every disk the thread's completions brought back, and one block plug
	 * in the kernel (io_submit plugs batches of more than AIO_PLUG_THRESHOLD,
	 * 2, iocbs), so the device behind them is kicked once, not per request.
	 */
	bool batching;
	struct iocb **batch;		/* [capacity]: every member's requests fit */
	unsigned int nbatch;
};

struct blk_aio {
	io_context_t ctx;
	bool ring;			/* completions read from ctx's ring (blk-aio-ring.c) */
	struct blk_aio_shared *shared;	/* ctx is a blk_ctx's, not ours */
	struct iocb *iocbs;		/* [queue_depth], one per blk_io (by index) */
	struct iocb **batch;		/* [queue_depth]: prepared, not yet submitted */
	unsigned int nbatch;
	struct io_event *events;	/* [queue_depth] */
	/* The kernel refused IOCB_CMD_FDSYNC once: flushes go to the worker's fdatasync(). */
	bool fdsync_broken;
};

/*
 * Whether completions of @ctx can be taken from its ring in user space, as
 * QEMU's linux-aio does: no io_getevents() system call per batch.  Else
 * io_getevents() reaps them, as before.
 */
static bool blk_aio_ring_check(io_context_t ctx)
{
	static bool told;

	if (blk_aio_ring_usable(ctx))
		return true;
	/* Once per process: every context of a kernel has the same layout. */
	if (!__atomic_exchange_n(&told, true, __ATOMIC_RELAXED))
		log_debug("blk: libaio completion ring of a layout not known here: io_getevents() instead");
	return false;
}

/* Up to @max completions of @ctx, without waiting: how many, or -errno. */
static int blk_aio_getevents(io_context_t ctx, bool ring, long max, struct io_event *events)
{
	struct timespec zero = { 0, 0 };
	int n;

	if (ring)
		return blk_aio_ring_getevents(ctx, max, events);
	do
		n = io_getevents(ctx, 0, max, events, &zero);
	while (n == -EINTR);
	return n;
}

int blk_aio_ctx_init(struct blk_ctx *c)
{
	struct blk_aio_shared *sh = calloc(1, sizeof(*sh));
	int r;

	if (!sh)
		return -ENOMEM;
	sh->capacity = BLK_CTX_AIO_EVENTS;
	sh->events = calloc(sh->capacity, sizeof(*sh->events));
	sh->batch = calloc(sh->capacity, sizeof(*sh->batch));
	r = sh->events && sh->batch ? io_setup((int)sh->capacity, &sh->ctx) : -ENOMEM;
	if (r < 0) {
		free(sh->batch);
		free(sh->events);
		free(sh);
		return r;
	}
	sh->ring = blk_aio_ring_check(sh->ctx);
	c->aio = sh;
	return 0;
}

void blk_aio_ctx_fini(struct blk_ctx *c)
{
	struct blk_aio_shared *sh = c->aio;

	if (!sh)
		return;
	assert(!sh->nbatch);
	io_destroy(sh->ctx);
	free(sh->batch);
	free(sh->events);
	free(sh);
	c->aio = NULL;
}

bool blk_aio_ctx_reserve(struct blk_ctx *c, unsigned int depth)
{
	struct blk_aio_shared *sh = c->aio;

	/* Every member's requests fit at once: io_submit never sees a full context. */
	if (!sh || sh->reserved + depth > sh->capacity)
		return false;
	sh->reserved += depth;
	return true;
}

void blk_aio_ctx_unreserve(struct blk_ctx *c, unsigned int depth)
{
	struct blk_aio_shared *sh = c->aio;

	sh->reserved -= depth;
}

static void blk_aio_shared_result(struct blk_dev *dev, struct blk_io *io, long res);

int blk_aio_ctx_reap(struct blk_ctx *c)
{
	struct blk_aio_shared *sh = c->aio;

	for (;;) {
		int n, k;

		n = blk_aio_getevents(sh->ctx, sh->ring, (long)sh->capacity, sh->events);
		if (n < 0)
			return n;
		for (k = 0; k < n; k++) {
			struct blk_io *io = sh->events[k].data;

			/* Each event to its own device. */
			blk_aio_shared_result(io->dev, io, (long)sh->events[k].res);
		}
		if ((unsigned int)n < sh->capacity)
			return 0;
	}
}

static int blk_aio_init(struct blk_dev *dev)
{
	struct blk_aio *a;
	int r;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->iocbs = calloc(dev->queue_depth, sizeof(*a->iocbs));
	a->batch = calloc(dev->queue_depth, sizeof(*a->batch));
	a->events = dev->ctx ? NULL : calloc(dev->queue_depth, sizeof(*a->events));
	if (!a->iocbs || !a->batch || (!dev->ctx && !a->events)) {
		r = -ENOMEM;
		goto err_free;
	}
	if (dev->ctx) {
		/* A member: the context's, its room reserved by blk_open(). */
		a->shared = dev->ctx->aio;
		a->ctx = a->shared->ctx;
		dev->engine_priv = a;
		return 0;
	}
	/* Sized so that every accepted request fits: io_submit never sees a full context. */
	r = io_setup((int)dev->queue_depth, &a->ctx);
	if (r < 0)
		goto err_free;
	a->ring = blk_aio_ring_check(a->ctx);
	dev->engine_priv = a;
	return 0;

err_free:
	free(a->events);
	free(a->batch);
	free(a->iocbs);
	free(a);
	return r;
}

static void blk_aio_fini(struct blk_dev *dev)
{
	struct blk_aio *a = dev->engine_priv;

	if (!a)
		return;
	if (a->shared)
		blk_aio_ctx_unreserve(dev->ctx, dev->queue_depth);
	else
		io_destroy(a->ctx);
	free(a->events);
	free(a->batch);
	free(a->iocbs);
	free(a);
	dev->engine_priv = NULL;
}

/*
 * libaio has no fallocate: DISCARD and WRITE_ZEROES always go to the worker.
 * Without O_DIRECT, io_submit() does the whole read or write before it
 * returns (the kernel's aio only is asynchronous for direct IO), so page-cache
 * IO goes to the worker too rather than stall the main loop.
 */
static bool blk_aio_wants(struct blk_dev *dev, const struct blk_io *io)
{
	const struct blk_aio *a = dev->engine_priv;

	switch (io->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		return dev->info.direct;
	case BLK_OP_FLUSH:
		return !a->fdsync_broken;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		return false;
	}
	return false;
}

static int blk_aio_prep(struct blk_dev *dev, struct blk_io *io)
{
	struct blk_aio *a = dev->engine_priv;
	struct iocb *cb = &a->iocbs[io->index];

	if (a->nbatch >= dev->queue_depth)
		return -EAGAIN;
	switch (io->op) {
	case BLK_OP_READ:
		io_prep_preadv(cb, dev->fd, io->iov, (int)io->iovcnt, (long long)io->offset);
		break;
	case BLK_OP_WRITE:
		io_prep_pwritev(cb, dev->fd, io->iov, (int)io->iovcnt, (long long)io->offset);
		break;
	case BLK_OP_FLUSH:
		io_prep_fdsync(cb, dev->fd);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		return -EINVAL;
	}
	cb->data = io;
	io_set_eventfd(cb, dev->efd);
	a->batch[a->nbatch++] = cb;
	return 0;
}

/* The kernel finished @io, or refused it at io_submit(). */
static void blk_aio_result(struct blk_dev *dev, struct blk_io *io, long res)
{
	struct blk_aio *a = dev->engine_priv;

	/* Kernels or file systems without aio fsync say EINVAL: remember, use fdatasync. */
	if (io->op == BLK_OP_FLUSH && res == -EINVAL) {
		a->fdsync_broken = true;
		io->to_worker = true;
		blk_worker_queue(dev, io);
		return;
	}
	blk_io_kernel_done(dev, io, res);
}

/*
 * io_submit() @n iocbs: a refused one (io_submit(2): the first of the rest)
 * fails that request alone and the others go on.  The context has room for
 * every accepted request, so EAGAIN here is the kernel out of memory, not
 * backpressure.  Returns whether any was refused.
 */
static bool blk_aio_submit_all(io_context_t ctx, struct iocb **cbs, unsigned int n)
{
	unsigned int i = 0;
	bool refused = false;

	while (i < n) {
		int r = io_submit(ctx, (long)(n - i), &cbs[i]);
		struct blk_io *io;

		if (r > 0) {
			i += (unsigned int)r;
			continue;
		}
		io = cbs[i]->data;
		blk_aio_result(io->dev, io, r < 0 ? r : -EAGAIN);
		refused = true;
		i++;
	}
	return refused;
}

static void blk_aio_submit_prepared(struct blk_dev *dev)
{
	struct blk_aio *a = dev->engine_priv;
	struct blk_aio_shared *sh = a->shared;

	if (sh && sh->batching) {
		/* Fits: each member's requests are within its reserved share of the capacity. */
		assert(sh->nbatch + a->nbatch <= sh->capacity);
		memcpy(&sh->batch[sh->nbatch], a->batch, a->nbatch * sizeof(*a->batch));
		sh->nbatch += a->nbatch;
		a->nbatch = 0;
		return;
	}
	blk_aio_submit_all(a->ctx, a->batch, a->nbatch);
	a->nbatch = 0;
}

void blk_aio_ctx_plug(struct blk_ctx *c)
{
	struct blk_aio_shared *sh = c->aio;

	sh->batching = true;
}

void blk_aio_ctx_unplug(struct blk_ctx *c)
{
	struct blk_aio_shared *sh = c->aio;
	unsigned int n = sh->nbatch;

	sh->batching = false;
	if (!n)
		return;
	sh->nbatch = 0;
	/*
	 * A refused request is on its device's completed list: the loop must
	 * deliver it.  Every member's eventfd is the context's: one kick.
	 */
	if (blk_aio_submit_all(sh->ctx, sh->batch, n))
		blk_kick(((struct blk_io *)sh->batch[0]->data)->dev);
}

static void blk_aio_shared_result(struct blk_dev *dev, struct blk_io *io, long res)
{
	blk_aio_result(dev, io, res);
}

static int blk_aio_reap(struct blk_dev *dev)
{
	struct blk_aio *a = dev->engine_priv;

	if (a->shared)
		return blk_aio_ctx_reap(dev->ctx);

	for (;;) {
		int n, k;

		n = blk_aio_getevents(a->ctx, a->ring, (long)dev->queue_depth, a->events);
		if (n < 0)
			return n;
		for (k = 0; k < n; k++) {
			struct blk_io *io = a->events[k].data;

			/* res carries bytes or a negative errno in an unsigned field. */
			blk_aio_result(dev, io, (long)a->events[k].res);
		}
		if ((unsigned int)n < dev->queue_depth)
			return 0;
	}
}

const struct blk_engine_ops blk_aio_ops = {
	.init = blk_aio_init,
	.fini = blk_aio_fini,
	.wants = blk_aio_wants,
	.prep = blk_aio_prep,
	.submit_prepared = blk_aio_submit_prepared,
	.reap = blk_aio_reap,
};
