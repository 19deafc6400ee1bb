// SPDX-License-Identifier: GPL-2.0-only
/* Block layer worker threads: fdatasync, fallocate, discard/zeroout ioctls and buffered IO, off the main loop. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "blk-internal.h"

#define BLK_ZERO_BUF_SIZE (1u << 20)

/* Last resort for WRITE_ZEROES: write zeroes. */
static int blk_worker_write_zeroes(struct blk_dev *dev, void **zeroes, uint64_t offset,
				   uint64_t len)
{
	if (!*zeroes) {
		/* Aligned, so that an O_DIRECT descriptor takes it. */
		if (posix_memalign(zeroes, 4096, BLK_ZERO_BUF_SIZE)) {
			*zeroes = NULL;
			return -ENOMEM;
		}
		memset(*zeroes, 0, BLK_ZERO_BUF_SIZE);
	}
	while (len) {
		size_t chunk = len < BLK_ZERO_BUF_SIZE ? (size_t)len : BLK_ZERO_BUF_SIZE;
		ssize_t n = pwrite(dev->fd, *zeroes, chunk, (off_t)offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		offset += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int blk_worker_fallocate(struct blk_dev *dev, int mode, uint64_t offset, uint64_t len)
{
	if (fallocate(dev->fd, mode, (off_t)offset, (off_t)len) < 0)
		return -errno;
	return 0;
}

static long blk_worker_rw(struct blk_dev *dev, struct blk_io *io)
{
	ssize_t n;

	do {
		if (io->op == BLK_OP_READ)
			n = preadv(dev->fd, io->iov, (int)io->iovcnt, (off_t)io->offset);
		else
			n = pwritev(dev->fd, io->iov, (int)io->iovcnt, (off_t)io->offset);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (long)n;
}

/* Returns bytes (READ/WRITE) or 0, or -errno, like the kernel would through an engine. */
static long blk_worker_exec(struct blk_dev *dev, struct blk_io *io, void **zeroes)
{
	uint64_t range[2] = { io->offset, io->len };
	int r;

	switch (io->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		return blk_worker_rw(dev, io);
	case BLK_OP_FLUSH:
		return fdatasync(dev->fd) < 0 ? -errno : 0;
	case BLK_OP_DISCARD:
		if (dev->info.block_device)
			return ioctl(dev->fd, BLKDISCARD, range) < 0 ? -errno : 0;
		return blk_worker_fallocate(dev, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					    io->offset, io->len);
	case BLK_OP_WRITE_ZEROES:
		/* BLKZEROOUT falls back to writing zeroes in the kernel by itself. */
		if (dev->info.block_device)
			return ioctl(dev->fd, BLKZEROOUT, range) < 0 ? -errno : 0;
		if (io->flags & BLK_REQ_MAY_UNMAP) {
			r = blk_worker_fallocate(dev, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						 io->offset, io->len);
			if (r != -EOPNOTSUPP)
				return r;
		}
		r = blk_worker_fallocate(dev, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, io->offset,
					 io->len);
		if (r != -EOPNOTSUPP)
			return r;
		return blk_worker_write_zeroes(dev, zeroes, io->offset, io->len);
	}
	return -EINVAL;
}

static void *blk_worker_main(void *arg)
{
	struct blk_dev *dev = arg;
	struct blk_worker *w = &dev->worker;
	void *zeroes = NULL;
	struct blk_io *io;
	bool first;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		io = blk_list_pop(&w->todo);
		if (!io) {
			if (w->stop)
				break;
			w->idle++;
			pthread_cond_wait(&w->cond, &w->lock);
			w->idle--;
			continue;
		}
		pthread_mutex_unlock(&w->lock);
		io->res = (int)blk_worker_exec(dev, io, &zeroes);
		pthread_mutex_lock(&w->lock);
		first = blk_list_empty(&w->done);
		blk_list_push(&w->done, io);
		__atomic_store_n(&w->has_done, true, __ATOMIC_RELEASE);
		if (first) {
			/*
			 * The main loop learns of it through the same eventfd as the
			 * kernel's completions; once per batch is enough, since
			 * blk_process() drains the eventfd before it takes the list.
			 */
			pthread_mutex_unlock(&w->lock);
			blk_kick(dev);
			pthread_mutex_lock(&w->lock);
		}
	}
	pthread_mutex_unlock(&w->lock);
	free(zeroes);
	return NULL;
}

static int blk_worker_start(struct blk_dev *dev)
{
	struct blk_worker *w = &dev->worker;
	sigset_t all, old;
	int r;

	/* Signals belong to the main loop's signalfd: the workers take none. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&w->threads[w->nthreads], NULL, blk_worker_main, dev);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -r;
	w->nthreads++;
	return 0;
}

void blk_worker_queue(struct blk_dev *dev, struct blk_io *io)
{
	struct blk_worker *w = &dev->worker;
	bool need_thread;
	int r;

	pthread_mutex_lock(&w->lock);
	blk_list_push(&w->todo, io);
	need_thread = !w->idle && w->nthreads < BLK_WORKER_THREADS;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);

	if (!need_thread)
		return;
	r = blk_worker_start(dev);
	if (r < 0 && !w->nthreads) {
		/* No thread at all to run it: take it back and fail it. */
		pthread_mutex_lock(&w->lock);
		io = blk_list_pop(&w->todo);
		pthread_mutex_unlock(&w->lock);
		if (io)
			blk_io_finish(dev, io, r);
	}
}

void blk_worker_stop(struct blk_dev *dev)
{
	struct blk_worker *w = &dev->worker;
	unsigned int i;

	if (!w->nthreads)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	w->nthreads = 0;
}
