/* SPDX-License-Identifier: GPL-2.0-only */
/* Block layer test suite shared by the per-engine test binaries (test-blk-aio, test-blk-uring). */
#ifndef VBLKD_TESTS_BLK_SUITE_H
#define VBLKD_TESTS_BLK_SUITE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <cmocka.h>

#include "blk.h"

/*
 * Failure injection, read and reset by the -Wl,--wrap wrappers that each
 * engine's test binary defines around libaio / liburing.  All one-shot
 * unless said otherwise.
 */
struct blk_inject {
	/* The next completion the engine reaps reports this -errno instead. */
	int complete_err;
	/* The next submit call refuses its iocb number @submit_err_at with @submit_err. */
	int submit_err;
	unsigned int submit_err_at;
	/* The next READV/WRITEV handed to the kernel covers only half its bytes. */
	bool short_next;
	unsigned int shorts;		/* how many were shortened */
	/* aio: io_submit refuses IOCB_CMD_FDSYNC with this (persistent while set). */
	int fdsync_err;
	unsigned int fdsync_seen;	/* FDSYNC iocbs that reached io_submit */
	/* aio: io_setup's ring gets a magic the engine does not know (persistent while set). */
	bool aio_ring_unknown;
	unsigned int getevents_calls;	/* aio: io_getevents() calls */
	unsigned int submit_calls;	/* aio: io_submit() calls */
	unsigned int submit_refusals;	/* aio: the next this many io_submit() calls refuse with -EIO */
	unsigned int ring_reaps;	/* aio: completions taken from the ring in user space */
	/* io_uring_queue_init fails with this. */
	int uring_init_err;
};

extern struct blk_inject blk_inject;

/* Cut the first READV/WRITEV-style iovec of more than one sector to half its bytes. */
unsigned int blk_inject_shorten(const struct iovec *iov, unsigned int cnt, struct iovec *out,
				unsigned int out_max);

/* Which optional cases a binary runs. */
#define BLK_SUITE_SUBMIT_ERR (1u << 0)	/* injection at submission (aio: io_submit refuses one iocb) */
#define BLK_SUITE_FDSYNC (1u << 1)	/* aio IOCB_CMD_FDSYNC refused with EINVAL */

/*
 * Run the suite for @engine: every case is its own CMocka test named
 * "<prefix>_<case>".  Returns the number of failed tests.
 */
int blk_suite_run(const char *prefix, enum blk_engine engine, unsigned int optional,
		  const struct CMUnitTest *extra_tests, size_t n_extra);

/* Helpers for the extra tests of each binary. */
struct blk_suite_ctx {
	enum blk_engine engine;
	char dir[256];
	char path[300];
	char loopdev[64];		/* attached by the loop device case; detached by teardown */
};

int blk_suite_setup(void **state);
int blk_suite_teardown(void **state);
/* Create @ctx->path with @size bytes of pattern data (seeded by @seed). */
void blk_suite_make_file(struct blk_suite_ctx *ctx, size_t size, uint32_t seed);
struct blk_dev *blk_suite_open(struct blk_suite_ctx *ctx, bool read_only, unsigned int depth);
/* Submit one request, unplug, wait for it: its result. */
int blk_suite_io(struct blk_dev *dev, enum blk_op op, uint64_t offset, void *buf, size_t len);
/* Process completions until nothing is in flight (fails the test after a long stall). */
void blk_suite_wait_all(struct blk_dev *dev);

#endif
