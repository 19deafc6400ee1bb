/* SPDX-License-Identifier: GPL-2.0-only */
/* Block layer internals shared by the core (blk.c), the worker thread and the aio and io_uring engines. */
#ifndef VBLKD_BLK_INTERNAL_H
#define VBLKD_BLK_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "blk.h"

struct blk_dev;

/*
 * One accepted request.  It sits on exactly one of: the device's free list,
 * its pending list (waiting for blk_unplug(), new or resubmitted after a short
 * transfer), its shared aio context's batch (blk_ctx_process(), until the
 * pass ends), the kernel (aio context or io_uring), the worker's lists, or
 * the completed list (waiting for blk_process() to call done()).
 */
struct blk_io {
	struct blk_io *next;
	struct blk_dev *dev;		/* its device (a shared context's events name only the io) */
	struct blk_req *req;
	unsigned int index;		/* into the device's io array (and the engine's per-io arrays) */

	/* Copied from @req at submit; offset and len advance on short transfers. */
	enum blk_op op;
	unsigned int flags;
	uint64_t offset;
	uint64_t len;			/* bytes still to transfer (READ/WRITE), or range length */

	/* What the kernel gets for the remaining part of a READ or WRITE. */
	const struct iovec *iov;
	unsigned int iovcnt;
	struct iovec *iov_own;		/* == iov when the array is ours (bounce or after a short transfer) */
	struct iovec *iov_heap;		/* to free */
	struct iovec bounce_iov;

	void *bounce;			/* aligned copy of the whole transfer, or NULL */
	size_t bounce_len;

	int res;			/* result, once on the completed list */
	uint64_t submit_ns;		/* blk_now_ns() at blk_submit(), for the latency (iostat.h) */
	uint64_t total_len;		/* bytes of the whole READ or WRITE (len shrinks on short ones) */
	bool submitted;			/* handed to the kernel or the worker at least once */
	bool to_worker;			/* the engine refused the op: the worker does it */
};

struct blk_list {
	struct blk_io *head;
	struct blk_io *tail;
};

static inline bool blk_list_empty(const struct blk_list *l)
{
	return !l->head;
}

static inline void blk_list_push(struct blk_list *l, struct blk_io *io)
{
	io->next = NULL;
	if (l->tail)
		l->tail->next = io;
	else
		l->head = io;
	l->tail = io;
}

static inline void blk_list_push_front(struct blk_list *l, struct blk_io *io)
{
	io->next = l->head;
	l->head = io;
	if (!l->tail)
		l->tail = io;
}

static inline struct blk_io *blk_list_pop(struct blk_list *l)
{
	struct blk_io *io = l->head;

	if (io) {
		l->head = io->next;
		if (!l->head)
			l->tail = NULL;
		io->next = NULL;
	}
	return io;
}

/* An engine: how READ/WRITE (and whatever else it can) reach the kernel. */
struct blk_engine_ops {
	/* Set up dev->engine_priv; -errno if the engine cannot run here. */
	int (*init)(struct blk_dev *dev);
	/* Tear down; nothing is in flight any more. */
	void (*fini)(struct blk_dev *dev);
	/* Whether @io goes to the kernel through this engine (else: the worker threads). */
	bool (*wants)(struct blk_dev *dev, const struct blk_io *io);
	/* Queue @io for the next submit_prepared(); -EAGAIN if the engine has no room now. */
	int (*prep)(struct blk_dev *dev, struct blk_io *io);
	/* Submit everything prepared: one system call per batch. */
	void (*submit_prepared)(struct blk_dev *dev);
	/* Collect kernel completions, calling blk_io_kernel_done() for each; -errno on failure. */
	int (*reap)(struct blk_dev *dev);
	/* Buffers never reach the kernel: no bounce for O_DIRECT alignment or IOV_MAX. */
	bool no_kernel_io;
};

extern const struct blk_engine_ops blk_aio_ops;
extern const struct blk_engine_ops blk_uring_ops;
extern const struct blk_engine_ops blk_null_ops;

#define BLK_WORKER_THREADS 4u

/*
 * Synchronous operations (fallocate, ioctls, fdatasync, and page-cache
 * reads and writes for aio, which io_submit would do synchronously) run on
 * up to BLK_WORKER_THREADS threads, started when needed.
 */
struct blk_worker {
	pthread_t threads[BLK_WORKER_THREADS];
	unsigned int nthreads;		/* main thread only */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct blk_list todo;		/* under lock */
	struct blk_list done;		/* under lock */
	bool has_done;			/* done is not empty: written under lock, read without it */
	unsigned int idle;		/* under lock: threads waiting for work */
	bool stop;			/* under lock */
};

/* Completions of several devices: one eventfd, one aio context (blk.h, blk_ctx_new()). */
struct blk_ctx {
	int efd;
	struct blk_dev *devs;		/* members, through ctx_next */
	void *aio;			/* blk-aio.c's shared context */
};

struct blk_dev {
	int fd;
	int efd;			/* eventfd: kernel, worker and deferred completions */
	struct blk_ctx *ctx;		/* a member of it (efd is the context's), or NULL */
	struct blk_dev *ctx_next;
	void *owner;			/* blk_set_owner() */
	struct blk_info info;
	uint32_t mem_align;		/* O_DIRECT buffer address alignment */
	uint32_t dio_align;		/* O_DIRECT offset/length alignment */
	unsigned int queue_depth;
	unsigned int inflight;
	unsigned int submit_batch;	/* blk_open_opts.submit_batch */
	unsigned int plugged;		/* queued on pending since the last dispatch */
	uint64_t bounce_budget;
	uint64_t bounce_bytes;		/* outstanding in bounce buffers */
	bool closing;			/* blk_close() running */
	bool processing;		/* blk_process() running */

	const struct blk_engine_ops *ops;
	void *engine_priv;

	struct blk_io *ios;		/* [queue_depth] */
	struct blk_io *free_list;
	struct blk_list pending;
	struct blk_list completed;

	struct blk_worker worker;
	struct iostat *iostat;		/* recent latency and throughput of READ and WRITE */
};

/* Complete @io with @res: done() is called from the next blk_process(). */
void blk_io_finish(struct blk_dev *dev, struct blk_io *io, int res);

/* Fill the buffers with zeroes: what a read sees past the end of a file, or from the null engine. */
void blk_iov_zero(const struct iovec *iov, unsigned int iovcnt);

/*
 * The kernel finished (part of) @io with @res (bytes or -errno): completes it,
 * or queues the remainder of a short transfer on the pending list.
 */
void blk_io_kernel_done(struct blk_dev *dev, struct blk_io *io, long res);

/* Hand @io to the worker threads (also when an engine falls back for it). */
void blk_worker_queue(struct blk_dev *dev, struct blk_io *io);
/* Stop and join the worker (nothing may be queued any more); frees its resources. */
void blk_worker_stop(struct blk_dev *dev);

/* Make the eventfd readable. */
void blk_kick(struct blk_dev *dev);

/* blk-aio.c: the shared aio context of a blk_ctx. */
int blk_aio_ctx_init(struct blk_ctx *ctx);
void blk_aio_ctx_fini(struct blk_ctx *ctx);
/* Room for @depth more requests of a new member (false: it has its own context). */
bool blk_aio_ctx_reserve(struct blk_ctx *ctx, unsigned int depth);
void blk_aio_ctx_unreserve(struct blk_ctx *ctx, unsigned int depth);
/* Reap every member's completions from the shared context (each to its own device). */
int blk_aio_ctx_reap(struct blk_ctx *ctx);
/* Hold the members' submissions from here, and send them all in one io_submit() at _unplug(). */
void blk_aio_ctx_plug(struct blk_ctx *ctx);
void blk_aio_ctx_unplug(struct blk_ctx *ctx);

/*
 * blk-aio-ring.c: libaio's completion ring read without a system call.
 * Whether the ring at @ctx has the layout blk_aio_ring_getevents() knows.
 */
struct io_context;
struct io_event;
bool blk_aio_ring_usable(struct io_context *ctx);
/* Move up to @max completions from the ring to @events: how many (0: none yet). */
int blk_aio_ring_getevents(struct io_context *ctx, long max, struct io_event *events);

#endif
