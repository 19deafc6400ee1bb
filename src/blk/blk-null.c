// SPDX-License-Identifier: GPL-2.0-only
/* Block layer engine for --engine=null: every request succeeds at once without IO, reads see zeroes. */
#include "blk-internal.h"

static int blk_null_init(struct blk_dev *dev)
{
	return 0;
}

static void blk_null_fini(struct blk_dev *dev)
{
}

/* Nothing goes to the worker threads: there is no file to read or write. */
static bool blk_null_wants(struct blk_dev *dev, const struct blk_io *io)
{
	return true;
}

static int blk_null_prep(struct blk_dev *dev, struct blk_io *io)
{
	if (io->op == BLK_OP_READ)
		blk_iov_zero(io->iov, io->iovcnt);
	blk_io_finish(dev, io, 0);
	return 0;
}

static void blk_null_submit_prepared(struct blk_dev *dev)
{
}

static int blk_null_reap(struct blk_dev *dev)
{
	return 0;
}

const struct blk_engine_ops blk_null_ops = {
	.init = blk_null_init,
	.fini = blk_null_fini,
	.wants = blk_null_wants,
	.prep = blk_null_prep,
	.submit_prepared = blk_null_submit_prepared,
	.reap = blk_null_reap,
	.no_kernel_io = true,
};
