// SPDX-License-Identifier: GPL-2.0-only
/* Block layer engine on io_uring (liburing): readv/writev/fsync/fallocate, completions through the eventfd. */
#include <errno.h>
#include <linux/falloc.h>
#include <liburing.h>
#include <stdlib.h>

#include "blk-internal.h"

#define BLK_URING_REAP_BATCH 32u

struct blk_uring {
	struct io_uring ring;
	bool has_fallocate;		/* IORING_OP_FALLOCATE (Linux 5.6) */
	/*
	 * The file system refused the fallocate mode of a WRITE_ZEROES once
	 * ([0]: zero range, [1]: punch hole, for BLK_REQ_MAY_UNMAP): those go
	 * straight to the worker, which writes zeroes if it must.
	 */
	bool zeroes_refused[2];
	unsigned int in_kernel;		/* submitted, completion not reaped yet */
};

static unsigned int blk_uring_entries(unsigned int depth)
{
	unsigned int n = 1;

	while (n < depth)
		n <<= 1;
	return n;
}

static int blk_uring_init(struct blk_dev *dev)
{
	struct io_uring_probe *probe;
	struct blk_uring *u;
	int r;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	/*
	 * The SQ holds every accepted request; the CQ is twice that (liburing
	 * default).  What the kernel's io-wq workers finish (buffered writes on
	 * a file system without async buffered writes, such as ext4) completes
	 * by task work in this thread; COOP_TASKRUN (Linux 5.19) runs it when
	 * the thread next enters the kernel, which its loop does every pass,
	 * instead of interrupting it with an IPI per batch.  A sleeping thread
	 * is still woken (__set_notify_signal()), so the eventfd still fires.
	 * Older kernels refuse the flag: then without it.
	 */
	r = io_uring_queue_init(blk_uring_entries(dev->queue_depth), &u->ring,
				IORING_SETUP_COOP_TASKRUN);
	if (r == -EINVAL)
		r = io_uring_queue_init(blk_uring_entries(dev->queue_depth), &u->ring, 0);
	if (r < 0)
		goto err_free;
	/* Every CQE posted makes the eventfd readable: one fd for the main loop. */
	r = io_uring_register_eventfd(&u->ring, dev->efd);
	if (r < 0)
		goto err_exit;
	probe = io_uring_get_probe_ring(&u->ring);
	if (probe) {
		if (!io_uring_opcode_supported(probe, IORING_OP_READV) ||
		    !io_uring_opcode_supported(probe, IORING_OP_WRITEV) ||
		    !io_uring_opcode_supported(probe, IORING_OP_FSYNC)) {
			io_uring_free_probe(probe);
			r = -EOPNOTSUPP;
			goto err_exit;
		}
		u->has_fallocate = io_uring_opcode_supported(probe, IORING_OP_FALLOCATE);
		io_uring_free_probe(probe);
	}
	dev->engine_priv = u;
	return 0;

err_exit:
	io_uring_queue_exit(&u->ring);
err_free:
	free(u);
	return r;
}

static void blk_uring_fini(struct blk_dev *dev)
{
	struct blk_uring *u = dev->engine_priv;

	if (!u)
		return;
	io_uring_queue_exit(&u->ring);
	free(u);
	dev->engine_priv = NULL;
}

/* fallocate through the ring for files; block device ioctls go to the worker. */
static bool blk_uring_wants(struct blk_dev *dev, const struct blk_io *io)
{
	const struct blk_uring *u = dev->engine_priv;

	switch (io->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
	case BLK_OP_FLUSH:
		return true;
	case BLK_OP_DISCARD:
		return u->has_fallocate && !dev->info.block_device;
	case BLK_OP_WRITE_ZEROES:
		return u->has_fallocate && !dev->info.block_device &&
		       !u->zeroes_refused[!!(io->flags & BLK_REQ_MAY_UNMAP)];
	}
	return false;
}

static int blk_uring_prep(struct blk_dev *dev, struct blk_io *io)
{
	struct blk_uring *u = dev->engine_priv;
	struct io_uring_sqe *sqe;
	int mode;

	sqe = io_uring_get_sqe(&u->ring);
	if (!sqe)
		return -EAGAIN;
	switch (io->op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, dev->fd, io->iov, io->iovcnt, io->offset);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev(sqe, dev->fd, io->iov, io->iovcnt, io->offset);
		break;
	case BLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, dev->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		if (io->op == BLK_OP_WRITE_ZEROES && !(io->flags & BLK_REQ_MAY_UNMAP))
			mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
		else
			mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		io_uring_prep_fallocate(sqe, dev->fd, mode, (off_t)io->offset, (off_t)io->len);
		break;
	}
	io_uring_sqe_set_data(sqe, io);
	return 0;
}

static void blk_uring_submit_prepared(struct blk_dev *dev)
{
	struct blk_uring *u = dev->engine_priv;

	while (io_uring_sq_ready(&u->ring)) {
		int r = io_uring_submit(&u->ring);

		if (r == -EINTR)
			continue;
		if (r > 0) {
			u->in_kernel += (unsigned int)r;
			continue;
		}
		/*
		 * EAGAIN/EBUSY: the kernel is short of memory or its CQ is
		 * backed up.  The entries stay in the SQ and go out with the
		 * next submit; with nothing in flight no completion would
		 * bring us back here, so make blk_process() run once more.
		 */
		if (!u->in_kernel)
			blk_kick(dev);
		break;
	}
}

static void blk_uring_result(struct blk_dev *dev, struct blk_io *io, long res)
{
	struct blk_uring *u = dev->engine_priv;

	/* A file system without that fallocate mode: the worker has fallbacks. */
	if (io->op == BLK_OP_WRITE_ZEROES && (res == -EOPNOTSUPP || res == -EINVAL) &&
	    !io->to_worker) {
		u->zeroes_refused[!!(io->flags & BLK_REQ_MAY_UNMAP)] = true;
		io->to_worker = true;
		blk_worker_queue(dev, io);
		return;
	}
	blk_io_kernel_done(dev, io, res);
}

static int blk_uring_reap(struct blk_dev *dev)
{
	struct blk_uring *u = dev->engine_priv;
	struct io_uring_cqe *cqes[BLK_URING_REAP_BATCH];
	struct blk_io *ios[BLK_URING_REAP_BATCH];
	int res[BLK_URING_REAP_BATCH];
	unsigned int n, k;

	for (;;) {
		n = io_uring_peek_batch_cqe(&u->ring, cqes, BLK_URING_REAP_BATCH);
		if (!n)
			break;
		for (k = 0; k < n; k++) {
			ios[k] = io_uring_cqe_get_data(cqes[k]);
			res[k] = cqes[k]->res;
		}
		/* Give the CQ slots back before anything is resubmitted. */
		io_uring_cq_advance(&u->ring, n);
		u->in_kernel -= n < u->in_kernel ? n : u->in_kernel;
		for (k = 0; k < n; k++)
			blk_uring_result(dev, ios[k], res[k]);
	}
	/* Entries an earlier submit left in the SQ. */
	if (io_uring_sq_ready(&u->ring))
		blk_uring_submit_prepared(dev);
	return 0;
}

const struct blk_engine_ops blk_uring_ops = {
	.init = blk_uring_init,
	.fini = blk_uring_fini,
	.wants = blk_uring_wants,
	.prep = blk_uring_prep,
	.submit_prepared = blk_uring_submit_prepared,
	.reap = blk_uring_reap,
};
