// SPDX-License-Identifier: GPL-2.0-only
/* Block layer tests on the io_uring engine, with failures injected around liburing calls. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/blk-suite.h"
#include "util.h"

int __real_io_uring_submit(struct io_uring *ring);
int __wrap_io_uring_submit(struct io_uring *ring);
unsigned __real_io_uring_peek_batch_cqe(struct io_uring *ring, struct io_uring_cqe **cqes,
					unsigned count);
unsigned __wrap_io_uring_peek_batch_cqe(struct io_uring *ring, struct io_uring_cqe **cqes,
					unsigned count);
int __real_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags);
int __wrap_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags);

/* IORING_OP_FALLOCATE entries handed to the kernel so far. */
static unsigned int fallocates_submitted;

int __wrap_io_uring_submit(struct io_uring *ring)
{
	static struct iovec shortened[16];
	unsigned int i;

	/* io_uring_enter refused (EAGAIN/EBUSY): the entries stay in the SQ, nothing submitted. */
	if (blk_inject.submit_err) {
		int err = blk_inject.submit_err;

		blk_inject.submit_err = 0;
		return err;
	}
	/* The entries not yet handed to the kernel sit between sqe_head and sqe_tail. */
	for (i = ring->sq.sqe_head; i != ring->sq.sqe_tail; i++)
		fallocates_submitted += ring->sq.sqes[i & ring->sq.ring_mask].opcode ==
					IORING_OP_FALLOCATE;
	for (i = ring->sq.sqe_head; blk_inject.short_next && i != ring->sq.sqe_tail; i++) {
		struct io_uring_sqe *sqe = &ring->sq.sqes[i & ring->sq.ring_mask];
		unsigned int n;

		if (sqe->opcode != IORING_OP_READV && sqe->opcode != IORING_OP_WRITEV)
			continue;
		/* The kernel copies the iovec at submission (IORING_FEAT_SUBMIT_STABLE). */
		n = blk_inject_shorten((const struct iovec *)(uintptr_t)sqe->addr, sqe->len,
				       shortened, 16);
		if (!n)
			continue;
		sqe->addr = (uintptr_t)shortened;
		sqe->len = n;
		blk_inject.short_next = false;
		blk_inject.shorts++;
	}
	return __real_io_uring_submit(ring);
}

/* The CQ ring is mapped writable: rewrite the result the kernel posted. */
unsigned __wrap_io_uring_peek_batch_cqe(struct io_uring *ring, struct io_uring_cqe **cqes,
					unsigned count)
{
	unsigned n = __real_io_uring_peek_batch_cqe(ring, cqes, count);

	if (n && blk_inject.complete_err) {
		cqes[0]->res = blk_inject.complete_err;
		blk_inject.complete_err = 0;
	}
	return n;
}

int __wrap_io_uring_queue_init(unsigned entries, struct io_uring *ring, unsigned flags)
{
	if (blk_inject.uring_init_err)
		return blk_inject.uring_init_err;
	return __real_io_uring_queue_init(entries, ring, flags);
}

/* io_uring refused at run time (seccomp, io_uring_disabled): aio takes over, and says so. */
static void uring_fallback(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct blk_open_opts opts = { .engine = BLK_ENGINE_URING, .direct_io_safe = true };
	const struct blk_info *info;
	struct blk_dev *dev = NULL;
	uint8_t *buf = NULL, *rbuf;

	blk_suite_make_file(ctx, 64 * 1024, 31);
	blk_inject.uring_init_err = -ENOSYS;
	assert_int_equal(blk_open(ctx->path, &opts, &dev, NULL), 0);
	info = blk_get_info(dev);
	assert_int_equal(info->engine, BLK_ENGINE_AIO);
	assert_int_equal(info->engine_fallback_err, -ENOSYS);
	assert_string_equal(blk_engine_name(info->engine), "aio");

	assert_int_equal(posix_memalign((void **)&buf, 4096, 8192), 0);
	rbuf = buf + 4096;
	memset(buf, 0x3c, 4096);
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE, 4096, buf, 4096), 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_FLUSH, 0, NULL, 0), 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_DISCARD, 0, NULL, 4096), 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 4096, rbuf, 4096), 0);
	assert_memory_equal(rbuf, buf, 4096);
	blk_close(dev);

	/* Without the injection, the same request gets io_uring. */
	blk_inject.uring_init_err = 0;
	assert_int_equal(blk_open(ctx->path, &opts, &dev, NULL), 0);
	assert_int_equal(blk_get_info(dev)->engine, BLK_ENGINE_URING);
	assert_int_equal(blk_get_info(dev)->engine_fallback_err, 0);
	blk_close(dev);
	free(buf);
}

/*
 * The default engine, auto: a disk opened with O_DIRECT gets libaio (and the
 * shared aio context), one through the page cache io_uring; where io_uring is
 * refused, libaio with the reason; the data is right on each.
 */
static void auto_engine_per_disk(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct blk_open_opts opts = { .engine = BLK_ENGINE_AUTO, .direct_io_safe = true };
	static const struct {
		bool direct_io_safe;
		int uring_err;
		enum blk_engine want;
		bool in_ctx;
	} cases[] = {
		{ true, 0, BLK_ENGINE_AIO, true },
		{ false, 0, BLK_ENGINE_URING, false },
		{ false, -EPERM, BLK_ENGINE_AIO, false },	/* its own context, as asked for io_uring */
	};
	struct blk_ctx *bctx = NULL;
	uint8_t *buf = NULL;

	blk_suite_make_file(ctx, 64 * 1024, 33);
	assert_int_equal(blk_ctx_new(&bctx), 0);
	opts.ctx = bctx;
	assert_int_equal(posix_memalign((void **)&buf, 4096, 8192), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct blk_dev *dev = NULL;
		const struct blk_info *info;

		opts.direct_io_safe = cases[i].direct_io_safe;
		blk_inject.uring_init_err = cases[i].uring_err;
		assert_int_equal(blk_open(ctx->path, &opts, &dev, NULL), 0);
		info = blk_get_info(dev);
		assert_int_equal(info->direct, cases[i].direct_io_safe);
		assert_int_equal(info->engine, cases[i].want);
		assert_int_equal(info->engine_fallback_err, cases[i].uring_err);
		/* Only an O_DIRECT device on libaio joins the shared aio context. */
		assert_int_equal(blk_in_ctx(dev), cases[i].in_ctx);
		memset(buf, 0x40 + (int)i, 4096);
		assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE, 4096 * i, buf, 4096), 0);
		assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 4096 * i, buf + 4096, 4096), 0);
		assert_memory_equal(buf + 4096, buf, 4096);
		blk_close(dev);
	}
	blk_inject.uring_init_err = 0;
	blk_ctx_free(bctx);
	free(buf);
}

/* io_uring_enter says EAGAIN with nothing in flight: the request still goes out, nothing waits forever. */
static void uring_submit_eagain(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct blk_dev *dev;
	uint8_t *buf = NULL;
	int fd;

	blk_suite_make_file(ctx, 64 * 1024, 32);
	dev = blk_suite_open(ctx, false, 4);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 8192), 0);
	memset(buf, 0x6b, 4096);
	blk_inject.submit_err = -EAGAIN;
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE, 8192, buf, 4096), 0);
	assert_int_equal(blk_inject.submit_err, 0);
	blk_close(dev);

	fd = open(ctx->path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf + 4096, 4096, 8192), 4096);
	close(fd);
	assert_memory_equal(buf + 4096, buf, 4096);
	free(buf);
}

/* Bytes [off, off + len) of the file are all zero. */
static void assert_file_zero(const char *path, off_t off, size_t len)
{
	uint8_t *buf = malloc(len);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_non_null(buf);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(buf[i], 0);
	free(buf);
}

/*
 * A file system without FALLOC_FL_ZERO_RANGE: the worker zeroes the range,
 * and later WRITE_ZEROES go to it directly instead of failing in the ring
 * first each time; with MAY_UNMAP (punch hole) the ring is still tried.
 */
static void uring_write_zeroes_refused_remembered(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 256 * 1024, 33);
	dev = blk_suite_open(ctx, false, 4);
	assert_true(blk_get_info(dev)->write_zeroes);
	fallocates_submitted = 0;
	blk_inject.complete_err = -EOPNOTSUPP;
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE_ZEROES, 4096, NULL, 8192), 0);
	assert_int_equal(blk_inject.complete_err, 0);
	assert_int_equal(fallocates_submitted, 1);
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE_ZEROES, 65536, NULL, 4096), 0);
	assert_int_equal(fallocates_submitted, 1);
	/* Discards are another fallocate mode: still through the ring. */
	assert_int_equal(blk_suite_io(dev, BLK_OP_DISCARD, 131072, NULL, 4096), 0);
	assert_int_equal(fallocates_submitted, 2);
	blk_close(dev);
	assert_file_zero(ctx->path, 4096, 8192);
	assert_file_zero(ctx->path, 65536, 4096);
}

int main(void)
{
	static enum blk_engine engine = BLK_ENGINE_URING;
	const struct CMUnitTest extra[] = {
		cmocka_unit_test_prestate_setup_teardown(auto_engine_per_disk, blk_suite_setup,
							 blk_suite_teardown, NULL),
		cmocka_unit_test_prestate_setup_teardown(uring_fallback, blk_suite_setup,
							 blk_suite_teardown, &engine),
		cmocka_unit_test_prestate_setup_teardown(uring_write_zeroes_refused_remembered,
							 blk_suite_setup, blk_suite_teardown, &engine),
		cmocka_unit_test_prestate_setup_teardown(uring_submit_eagain, blk_suite_setup,
							 blk_suite_teardown, &engine),
	};

	return blk_suite_run("uring", BLK_ENGINE_URING, 0, extra, ARRAY_SIZE(extra));
}
