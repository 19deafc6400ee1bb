// SPDX-License-Identifier: GPL-2.0-only
/* Block layer tests on the libaio engine, with failures injected around io_submit and io_getevents. */
#include <errno.h>
#include <libaio.h>
#include <stdlib.h>

#include "../lib/blk-suite.h"

int __real_io_submit(io_context_t ctx, long nr, struct iocb *ios[]);
int __wrap_io_submit(io_context_t ctx, long nr, struct iocb *ios[]);
int __real_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			struct timespec *timeout);
int __wrap_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			struct timespec *timeout);

/* Imitates io_submit(2): iocbs before a refused one are submitted and counted, it is not. */
int __wrap_io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
	static struct iovec shortened[16];
	long i;

	for (i = 0; i < nr; i++) {
		if (ios[i]->aio_lio_opcode != IO_CMD_FDSYNC)
			continue;
		blk_inject.fdsync_seen++;
		if (blk_inject.fdsync_err)
			return i ? __real_io_submit(ctx, i, ios) : blk_inject.fdsync_err;
	}
	if (blk_inject.submit_err && blk_inject.submit_err_at < (unsigned long)nr) {
		long at = blk_inject.submit_err_at;

		if (!at) {
			int err = blk_inject.submit_err;

			blk_inject.submit_err = 0;
			return err;
		}
		/* The next call starts with the iocb to refuse. */
		blk_inject.submit_err_at = 0;
		return __real_io_submit(ctx, at, ios);
	}
	if (blk_inject.short_next) {
		for (i = 0; i < nr; i++) {
			struct iocb *cb = ios[i];
			unsigned int n;

			if (cb->aio_lio_opcode != IO_CMD_PREADV && cb->aio_lio_opcode != IO_CMD_PWRITEV)
				continue;
			/* The kernel copies the iovec during io_submit: a static array will do. */
			n = blk_inject_shorten(cb->u.c.buf, (unsigned int)cb->u.c.nbytes, shortened, 16);
			if (!n)
				continue;
			cb->u.c.buf = shortened;
			cb->u.c.nbytes = n;
			blk_inject.short_next = false;
			blk_inject.shorts++;
			break;
		}
	}
	return __real_io_submit(ctx, nr, ios);
}

int __wrap_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			struct timespec *timeout)
{
	int n = __real_io_getevents(ctx, min_nr, nr, events, timeout);

	if (n > 0 && blk_inject.complete_err) {
		events[0].res = (unsigned long)(long)blk_inject.complete_err;
		blk_inject.complete_err = 0;
	}
	return n;
}

int main(void)
{
	return blk_suite_run("aio", BLK_ENGINE_AIO, BLK_SUITE_SUBMIT_ERR | BLK_SUITE_FDSYNC, NULL,
			     0);
}
