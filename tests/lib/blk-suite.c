// SPDX-License-Identifier: GPL-2.0-only
/* Block layer test cases run against each engine: real files in a temporary directory, bytes verified. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blk-suite.h"
#include "util.h"

struct blk_inject blk_inject;


#define KIB 1024u
#define MIB (1024u * 1024u)
#define SECTOR BLK_SECTOR_SIZE

/* ------------------------------------------------------------------------- */
/* Helpers */

static uint32_t rng;

static uint32_t rnd(void)
{
	/* xorshift32: deterministic across runs. */
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

static void fill_pattern(void *buf, size_t len, uint32_t seed)
{
	uint8_t *p = buf;
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static bool all_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

unsigned int blk_inject_shorten(const struct iovec *iov, unsigned int cnt, struct iovec *out,
				unsigned int out_max)
{
	size_t total = 0, want, got = 0;
	unsigned int i, n = 0;

	for (i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	if (total <= SECTOR)
		return 0;
	want = (total / 2) & ~(size_t)(SECTOR - 1);
	if (!want)
		want = SECTOR;
	for (i = 0; i < cnt && got < want; i++) {
		if (n == out_max)
			return 0;
		out[n] = iov[i];
		if (got + out[n].iov_len > want)
			out[n].iov_len = want - got;
		got += out[n].iov_len;
		n++;
	}
	return n;
}

/* A request of the test, with what its done() saw. */
struct treq {
	struct blk_req req;
	struct iovec iov[16];
	void *buf;			/* the whole transfer, for checking */
	size_t len;
	int res;
	unsigned int ndone;
};

static bool in_submit;

static void treq_done(struct blk_req *req, int res)
{
	struct treq *t = container_of(req, struct treq, req);

	/* The contract: never called from inside blk_submit(). */
	assert_false(in_submit);
	t->res = res;
	t->ndone++;
}

static void treq_init(struct treq *t, enum blk_op op, uint64_t offset, void *buf, size_t len)
{
	memset(t, 0, sizeof(*t));
	t->req.op = op;
	t->req.offset = offset;
	t->req.done = treq_done;
	t->res = 1;
	t->buf = buf;
	t->len = len;
	if (op == BLK_OP_READ || op == BLK_OP_WRITE) {
		t->iov[0].iov_base = buf;
		t->iov[0].iov_len = len;
		t->req.iov = t->iov;
		t->req.iovcnt = 1;
	} else {
		t->req.len = len;
	}
}

static int submit(struct blk_dev *dev, struct treq *t)
{
	int r;

	in_submit = true;
	r = blk_submit(dev, &t->req);
	in_submit = false;
	return r;
}

static void wait_cond(struct blk_dev *dev, const unsigned int *ndone)
{
	unsigned int idle = 0;

	while (ndone ? !*ndone : blk_inflight(dev) > 0) {
		struct pollfd pfd = { .fd = blk_get_fd(dev), .events = POLLIN };
		int r = poll(&pfd, 1, 1000);

		assert_true(r >= 0);
		if (r == 0) {
			/* A lost wake-up would hang here: give up after 10 idle seconds. */
			assert_true(++idle < 10);
			continue;
		}
		assert_true(blk_process(dev) >= 0);
	}
}

void blk_suite_wait_all(struct blk_dev *dev)
{
	wait_cond(dev, NULL);
}

int blk_suite_io(struct blk_dev *dev, enum blk_op op, uint64_t offset, void *buf, size_t len)
{
	struct treq t;
	int r;

	treq_init(&t, op, offset, buf, len);
	r = submit(dev, &t);
	if (r < 0)
		return r;
	blk_unplug(dev);
	wait_cond(dev, &t.ndone);
	assert_int_equal(t.ndone, 1);
	return t.res;
}

static void *xalloc(size_t len)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, 4096, len ? len : 1), 0);
	return p;
}

int blk_suite_setup(void **state)
{
	const enum blk_engine *engine = *state;
	const char *base = getenv("TMPDIR");
	struct blk_suite_ctx *ctx;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -1;
	ctx->engine = engine ? *engine : BLK_ENGINE_AIO;
	/* /var/tmp rather than /tmp: a tmpfs may lack O_DIRECT. */
	snprintf(ctx->dir, sizeof(ctx->dir), "%s/vblkd-blk.XXXXXX", base && *base ? base : "/var/tmp");
	if (!mkdtemp(ctx->dir)) {
		free(ctx);
		return -1;
	}
	snprintf(ctx->path, sizeof(ctx->path), "%s/disk.img", ctx->dir);
	memset(&blk_inject, 0, sizeof(blk_inject));
	*state = ctx;
	return 0;
}

int blk_suite_teardown(void **state)
{
	struct blk_suite_ctx *ctx = *state;

	memset(&blk_inject, 0, sizeof(blk_inject));
	if (!ctx)
		return 0;
	if (ctx->loopdev[0]) {
		/* The case failed half-way: do not leave a loop device behind. */
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "losetup -d '%s' >/dev/null 2>&1", ctx->loopdev);
		if (system(cmd) != 0)
			fprintf(stderr, "# could not detach %s\n", ctx->loopdev);
	}
	unlink(ctx->path);
	rmdir(ctx->dir);
	free(ctx);
	return 0;
}

void blk_suite_make_file(struct blk_suite_ctx *ctx, size_t size, uint32_t seed)
{
	uint8_t *buf = xalloc(size);
	int fd;

	fill_pattern(buf, size, seed);
	fd = open(ctx->path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
	assert_int_equal(fsync(fd), 0);
	close(fd);
	free(buf);
}

static uint8_t *read_file(const char *path, uint64_t offset, size_t len)
{
	uint8_t *buf = xalloc(len);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)offset), (ssize_t)len);
	close(fd);
	return buf;
}

static struct blk_dev *open_dev(const char *path, enum blk_engine engine, bool read_only,
				unsigned int depth)
{
	struct blk_open_opts opts = {
		.engine = engine,
		.read_only = read_only,
		.direct_io_safe = true,
		.queue_depth = depth,
	};
	struct blk_dev *dev = NULL;

	assert_int_equal(blk_open(path, &opts, &dev, NULL), 0);
	assert_non_null(dev);
	assert_int_equal(blk_get_info(dev)->engine, engine);
	assert_int_equal(blk_get_info(dev)->read_only, read_only);
	return dev;
}

struct blk_dev *blk_suite_open(struct blk_suite_ctx *ctx, bool read_only, unsigned int depth)
{
	return open_dev(ctx->path, ctx->engine, read_only, depth);
}

static blkcnt_t file_blocks(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_blocks;
}

/* ------------------------------------------------------------------------- */
/* Cases */

/* Random offsets, sizes, iovec splits and buffer alignments; every byte checked. */
static void rw_random(struct blk_suite_ctx *ctx, bool direct)
{
	const size_t size = 8 * MIB;
	enum { PER_ROUND = 8, ROUNDS = 40 };
	struct treq reqs[PER_ROUND];
	uint8_t *bufs[PER_ROUND];
	uint8_t *model, *disk;
	struct blk_dev *dev;
	unsigned int round, i;

	blk_suite_make_file(ctx, size, 1);
	model = read_file(ctx->path, 0, size);
	if (direct) {
		dev = blk_suite_open(ctx, false, 16);
	} else {
		struct blk_open_opts opts = { .engine = ctx->engine, .queue_depth = 16 };

		assert_int_equal(blk_open(ctx->path, &opts, &dev, NULL), 0);
		assert_false(blk_get_info(dev)->direct);
	}
	rng = 42;

	for (round = 0; round < ROUNDS; round++) {
		unsigned int n = 0, want = 1 + rnd() % PER_ROUND;

		while (n < want) {
			uint64_t sectors = 1 + rnd() % 64, off, len;
			unsigned int misalign = rnd() % 3 == 0 ? 1 + rnd() % 511 : 0;
			unsigned int segs = 1 + rnd() % 4, s;
			bool overlap = false;
			size_t pos = 0;
			uint8_t *buf;

			off = (rnd() % (size / SECTOR - sectors)) * SECTOR;
			len = sectors * SECTOR;
			/* No two requests of a round overlap, so their order does not matter. */
			for (i = 0; i < n; i++) {
				if (off < reqs[i].req.offset + reqs[i].len &&
				    reqs[i].req.offset < off + len)
					overlap = true;
			}
			if (overlap)
				continue;

			bufs[n] = xalloc(len + 4096);
			buf = bufs[n] + misalign;
			treq_init(&reqs[n], rnd() & 1 ? BLK_OP_WRITE : BLK_OP_READ, off, buf, len);
			/* Split into segments; misaligned buffers get odd segment lengths too. */
			for (s = 0; s < segs && pos < len; s++) {
				size_t left = len - pos, seg;

				if (s == segs - 1)
					seg = left;
				else if (misalign)
					seg = 1 + rnd() % left;
				else
					seg = SECTOR * (1 + rnd() % (left / SECTOR));
				reqs[n].iov[s].iov_base = buf + pos;
				reqs[n].iov[s].iov_len = seg;
				pos += seg;
			}
			reqs[n].req.iovcnt = s;
			if (reqs[n].req.op == BLK_OP_WRITE)
				fill_pattern(buf, len, round * 100 + n);
			else
				memset(buf, 0xa5, len);
			assert_int_equal(submit(dev, &reqs[n]), 0);
			n++;
		}
		blk_unplug(dev);
		blk_suite_wait_all(dev);
		for (i = 0; i < n; i++) {
			uint64_t off = reqs[i].req.offset;
			size_t len = reqs[i].len;

			assert_int_equal(reqs[i].ndone, 1);
			assert_int_equal(reqs[i].res, 0);
			if (reqs[i].req.op == BLK_OP_READ)
				assert_memory_equal(reqs[i].buf, model + off, len);
			else
				memcpy(model + off, reqs[i].buf, len);
			free(bufs[i]);
		}
	}
	blk_close(dev);

	disk = read_file(ctx->path, 0, size);
	assert_memory_equal(disk, model, size);
	free(disk);
	free(model);
}

static void t_rw_random(void **state)
{
	rw_random(*state, true);
}

/* Through the page cache (direct-io-safe off): aio hands reads and writes to the worker threads. */
static void t_rw_random_buffered(void **state)
{
	rw_random(*state, false);
}

/* Guest buffers at odd addresses with odd segment lengths: the bounce path under O_DIRECT. */
static void t_bounce_misaligned(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *wbuf = xalloc(8192), *rbuf = xalloc(8192), *disk;
	struct treq w, r;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 64 * KIB, 2);
	dev = blk_suite_open(ctx, false, 4);
	if (!blk_get_info(dev)->direct)
		print_message("# %s: no O_DIRECT here; misaligned buffers go through the page cache\n",
			      ctx->dir);

	fill_pattern(wbuf + 3, 2048, 77);
	treq_init(&w, BLK_OP_WRITE, 4096 + SECTOR, NULL, 0);
	w.iov[0] = (struct iovec){ wbuf + 3, 100 };
	w.iov[1] = (struct iovec){ wbuf + 103, 1000 };
	w.iov[2] = (struct iovec){ wbuf + 1103, 948 };
	w.req.iovcnt = 3;
	assert_int_equal(submit(dev, &w), 0);
	blk_unplug(dev);
	blk_suite_wait_all(dev);
	assert_int_equal(w.res, 0);

	memset(rbuf, 0xee, 8192);
	treq_init(&r, BLK_OP_READ, 4096 + SECTOR, NULL, 0);
	r.iov[0] = (struct iovec){ rbuf + 1, 1537 };
	r.iov[1] = (struct iovec){ rbuf + 1538, 511 };
	r.req.iovcnt = 2;
	assert_int_equal(submit(dev, &r), 0);
	blk_unplug(dev);
	blk_suite_wait_all(dev);
	assert_int_equal(r.res, 0);
	assert_memory_equal(rbuf + 1, wbuf + 3, 2048);
	/* Nothing written around the caller's buffer. */
	assert_int_equal(rbuf[0], 0xee);
	assert_int_equal(rbuf[2049], 0xee);
	blk_close(dev);

	disk = read_file(ctx->path, 4096 + SECTOR, 2048);
	assert_memory_equal(disk, wbuf + 3, 2048);
	free(disk);
	free(wbuf);
	free(rbuf);
}

/*
 * Bounce buffers are bounded per device: past the budget a misaligned
 * request is refused with -EAGAIN (not allocated) and taken once an earlier
 * one completes; data stays right.
 */
static void t_bounce_budget(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct blk_open_opts opts = {
		.engine = ctx->engine, .direct_io_safe = true, .queue_depth = 8,
		.bounce_budget = 8192,
	};
	uint8_t *mem = xalloc(4 * 4096 + 64), *disk;
	struct treq w[3];
	struct blk_dev *dev = NULL;
	int i;

	blk_suite_make_file(ctx, 64 * KIB, 5);
	assert_int_equal(blk_open(ctx->path, &opts, &dev, NULL), 0);
	if (!blk_get_info(dev)->direct) {
		blk_close(dev);
		free(mem);
		skip();	/* no O_DIRECT on this file system: nothing is bounced */
	}
	for (i = 0; i < 3; i++) {
		uint8_t *b = mem + 1 + (size_t)i * 4096;	/* odd address: bounced */

		fill_pattern(b, 4096, (uint32_t)(10 + i));
		treq_init(&w[i], BLK_OP_WRITE, (uint64_t)i * 4096, b, 4096);
	}
	assert_int_equal(submit(dev, &w[0]), 0);
	assert_int_equal(submit(dev, &w[1]), 0);
	/* 8 KiB of copies outstanding: the third waits. */
	assert_int_equal(submit(dev, &w[2]), -EAGAIN);
	blk_unplug(dev);
	blk_suite_wait_all(dev);
	assert_int_equal(submit(dev, &w[2]), 0);
	blk_unplug(dev);
	blk_suite_wait_all(dev);
	for (i = 0; i < 3; i++)
		assert_int_equal(w[i].res, 0);
	blk_close(dev);
	disk = read_file(ctx->path, 0, 3 * 4096);
	for (i = 0; i < 3; i++)
		assert_memory_equal(disk + i * 4096, mem + 1 + (size_t)i * 4096, 4096);
	free(disk);
	free(mem);
}

/* A file shorter than the capacity it was opened with reads as zeroes past its end. */
static void t_read_past_eof(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *orig, *buf = xalloc(16 * KIB + 1);
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 64 * KIB, 3);
	orig = read_file(ctx->path, 0, 64 * KIB);
	dev = blk_suite_open(ctx, false, 4);
	assert_int_equal(blk_get_info(dev)->capacity, 64 * KIB);
	assert_int_equal(truncate(ctx->path, 40 * KIB), 0);

	memset(buf, 0xaa, 16 * KIB);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 32 * KIB, buf, 16 * KIB), 0);
	assert_memory_equal(buf, orig + 32 * KIB, 8 * KIB);
	assert_true(all_zero(buf + 8 * KIB, 8 * KIB));

	/* Entirely past the end, through a bounce buffer. */
	memset(buf, 0xaa, 16 * KIB + 1);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 48 * KIB, buf + 1, 16 * KIB), 0);
	assert_true(all_zero(buf + 1, 16 * KIB));
	blk_close(dev);
	free(orig);
	free(buf);
}

static void t_flush(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *buf = xalloc(4096), *disk;
	struct treq w, f;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 64 * KIB, 4);
	dev = blk_suite_open(ctx, false, 4);
	assert_true(blk_get_info(dev)->write_cache);
	fill_pattern(buf, 4096, 5);
	/* A write and a flush in one batch, then a flush alone. */
	treq_init(&w, BLK_OP_WRITE, 8192, buf, 4096);
	treq_init(&f, BLK_OP_FLUSH, 0, NULL, 0);
	assert_int_equal(submit(dev, &w), 0);
	assert_int_equal(submit(dev, &f), 0);
	blk_unplug(dev);
	blk_suite_wait_all(dev);
	assert_int_equal(w.res, 0);
	assert_int_equal(f.res, 0);
	assert_int_equal(f.ndone, 1);
	assert_int_equal(blk_suite_io(dev, BLK_OP_FLUSH, 0, NULL, 0), 0);
	blk_close(dev);
	disk = read_file(ctx->path, 8192, 4096);
	assert_memory_equal(disk, buf, 4096);
	free(disk);

	/* Flushing a read-only disk is allowed and succeeds. */
	dev = blk_suite_open(ctx, true, 4);
	assert_int_equal(blk_suite_io(dev, BLK_OP_FLUSH, 0, NULL, 0), 0);
	blk_close(dev);
	free(buf);
}

static void check_zeroed(struct blk_suite_ctx *ctx, struct blk_dev *dev, const uint8_t *orig,
			 size_t size, uint64_t off, uint64_t len)
{
	uint8_t *buf = xalloc(size);

	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 0, buf, size), 0);
	assert_memory_equal(buf, orig, off);
	assert_true(all_zero(buf + off, len));
	assert_memory_equal(buf + off + len, orig + off + len, size - off - len);
	free(buf);
	/* And on disk, not just through the engine. */
	buf = read_file(ctx->path, 0, size);
	assert_true(all_zero(buf + off, len));
	assert_memory_equal(buf + off + len, orig + off + len, size - off - len);
	free(buf);
}

static void t_discard(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	const size_t size = 2 * MIB;
	blkcnt_t before, after;
	struct blk_dev *dev;
	uint8_t *orig;
	int r;

	blk_suite_make_file(ctx, size, 6);
	orig = read_file(ctx->path, 0, size);
	before = file_blocks(ctx->path);
	dev = blk_suite_open(ctx, false, 4);
	assert_true(blk_get_info(dev)->discard);
	r = blk_suite_io(dev, BLK_OP_DISCARD, 512 * KIB, NULL, MIB);
	if (r == -EOPNOTSUPP) {
		blk_close(dev);
		free(orig);
		print_message("# %s: no fallocate(PUNCH_HOLE) on this file system\n", ctx->dir);
		skip();
	}
	assert_int_equal(r, 0);
	after = file_blocks(ctx->path);
	/* st_blocks counts 512-byte units: the whole aligned MiB was freed. */
	assert_true(before - after >= (blkcnt_t)(MIB / 512));
	check_zeroed(ctx, dev, orig, size, 512 * KIB, MIB);
	assert_int_equal(blk_get_info(dev)->capacity, size);
	blk_close(dev);
	free(orig);
}

static void t_write_zeroes(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	const size_t size = 256 * KIB;
	struct blk_dev *dev;
	uint8_t *orig;

	blk_suite_make_file(ctx, size, 7);
	orig = read_file(ctx->path, 0, size);
	dev = blk_suite_open(ctx, false, 4);
	assert_true(blk_get_info(dev)->write_zeroes);
	/* Not block aligned for the file system: partial blocks must be zeroed too. */
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE_ZEROES, 3 * SECTOR, NULL, 37 * SECTOR), 0);
	check_zeroed(ctx, dev, orig, size, 3 * SECTOR, 37 * SECTOR);
	/* Past the end of the file: zeroes, and the size does not change. */
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE_ZEROES, size - 4096, NULL, 4096), 0);
	blk_close(dev);
	free(orig);
	orig = read_file(ctx->path, size - 4096, 4096);
	assert_true(all_zero(orig, 4096));
	free(orig);
}

static void t_write_zeroes_unmap(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	const size_t size = 2 * MIB;
	blkcnt_t before, after;
	struct treq t;
	struct blk_dev *dev;
	uint8_t *orig;

	blk_suite_make_file(ctx, size, 8);
	orig = read_file(ctx->path, 0, size);
	before = file_blocks(ctx->path);
	dev = blk_suite_open(ctx, false, 4);
	treq_init(&t, BLK_OP_WRITE_ZEROES, MIB, NULL, MIB);
	t.req.flags = BLK_REQ_MAY_UNMAP;
	assert_int_equal(submit(dev, &t), 0);
	blk_unplug(dev);
	blk_suite_wait_all(dev);
	assert_int_equal(t.res, 0);
	after = file_blocks(ctx->path);
	assert_true(before - after >= (blkcnt_t)(MIB / 512));
	check_zeroed(ctx, dev, orig, size, MIB, MIB);
	blk_close(dev);
	free(orig);
}

static void t_read_only(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *buf = xalloc(4096), *orig, *disk;
	struct treq w, d, z;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 64 * KIB, 9);
	orig = read_file(ctx->path, 0, 64 * KIB);
	dev = blk_suite_open(ctx, true, 4);
	assert_true(blk_get_info(dev)->read_only);
	assert_false(blk_get_info(dev)->discard);
	assert_false(blk_get_info(dev)->write_zeroes);

	memset(buf, 0x5a, 4096);
	treq_init(&w, BLK_OP_WRITE, 0, buf, 4096);
	treq_init(&d, BLK_OP_DISCARD, 0, NULL, 4096);
	treq_init(&z, BLK_OP_WRITE_ZEROES, 0, NULL, 4096);
	assert_int_equal(submit(dev, &w), -EROFS);
	assert_int_equal(submit(dev, &d), -EROFS);
	assert_int_equal(submit(dev, &z), -EROFS);
	assert_int_equal(blk_inflight(dev), 0);
	blk_unplug(dev);
	assert_true(blk_process(dev) >= 0);
	assert_int_equal(w.ndone + d.ndone + z.ndone, 0);

	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 4096, buf, 4096), 0);
	assert_memory_equal(buf, orig + 4096, 4096);
	blk_close(dev);

	disk = read_file(ctx->path, 0, 64 * KIB);
	assert_memory_equal(disk, orig, 64 * KIB);
	free(disk);
	free(orig);
	free(buf);
}

/* Rejected at once, done() never called: misaligned offset or length, missing iov. */
static void t_invalid(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *buf = xalloc(4096);
	struct treq t;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 64 * KIB, 10);
	dev = blk_suite_open(ctx, false, 4);

	treq_init(&t, BLK_OP_READ, 100, buf, 512);
	assert_int_equal(submit(dev, &t), -EINVAL);
	treq_init(&t, BLK_OP_WRITE, 0, buf, 1000);
	assert_int_equal(submit(dev, &t), -EINVAL);
	treq_init(&t, BLK_OP_DISCARD, 0, NULL, 100);
	assert_int_equal(submit(dev, &t), -EINVAL);
	treq_init(&t, BLK_OP_READ, 0, buf, 512);
	t.req.iov = NULL;
	assert_int_equal(submit(dev, &t), -EINVAL);
	treq_init(&t, BLK_OP_READ, UINT64_MAX - 511, buf, 4096);
	assert_int_equal(submit(dev, &t), -EINVAL);
	treq_init(&t, BLK_OP_READ, 0, buf, 512);
	t.req.op = (enum blk_op)77;
	assert_int_equal(submit(dev, &t), -EINVAL);
	assert_int_equal(blk_inflight(dev), 0);
	blk_unplug(dev);
	assert_true(blk_process(dev) >= 0);
	assert_int_equal(t.ndone, 0);

	/* Far beyond the capacity: the caller's check, but no crash; zeroes from a sparse file. */
	memset(buf, 1, 4096);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 1ull << 40, buf, 4096), 0);
	assert_true(all_zero(buf, 4096));
	blk_close(dev);
	free(buf);
}

/* Queue depth 4: the fifth request is refused with EAGAIN until one completes; nothing is lost. */
static void t_backpressure(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	enum { N = 12 };
	struct treq reqs[N];
	uint8_t *bufs[N], *disk;
	unsigned int accepted = 0, i;
	struct blk_dev *dev;
	int r;

	blk_suite_make_file(ctx, 64 * KIB, 11);
	dev = blk_suite_open(ctx, false, 4);
	for (i = 0; i < N; i++) {
		bufs[i] = xalloc(4096);
		fill_pattern(bufs[i], 4096, 1000 + i);
		treq_init(&reqs[i], BLK_OP_WRITE, i * 4096ull, bufs[i], 4096);
	}

	while ((r = submit(dev, &reqs[accepted])) == 0)
		accepted++;
	assert_int_equal(r, -EAGAIN);
	assert_int_equal(accepted, 4);
	assert_int_equal(blk_inflight(dev), 4);
	blk_unplug(dev);

	while (accepted < N) {
		/* Wait for any completion, then take as many as fit again. */
		unsigned int before = blk_inflight(dev);

		while (blk_inflight(dev) == before) {
			struct pollfd pfd = { .fd = blk_get_fd(dev), .events = POLLIN };

			assert_true(poll(&pfd, 1, 10000) == 1);
			assert_true(blk_process(dev) >= 0);
		}
		while (accepted < N && (r = submit(dev, &reqs[accepted])) == 0)
			accepted++;
		assert_true(accepted == N || r == -EAGAIN);
		assert_true(blk_inflight(dev) <= 4);
		blk_unplug(dev);
	}
	blk_suite_wait_all(dev);
	for (i = 0; i < N; i++) {
		assert_int_equal(reqs[i].ndone, 1);
		assert_int_equal(reqs[i].res, 0);
	}
	blk_close(dev);

	disk = read_file(ctx->path, 0, N * 4096);
	for (i = 0; i < N; i++) {
		assert_memory_equal(disk + i * 4096, bufs[i], 4096);
		free(bufs[i]);
	}
	free(disk);
}

/* The virtio device's pattern: the next request is submitted from done(). */
struct chain {
	struct blk_dev *dev;
	struct treq reqs[32];
	uint8_t *buf;
	unsigned int next;
	unsigned int completed;
	int first_err;
};

static struct chain chain;

static void chain_done(struct blk_req *req, int res)
{
	treq_done(req, res);
	chain.completed++;
	if (res && !chain.first_err)
		chain.first_err = res;
	while (chain.next < 32) {
		int r = submit(chain.dev, &chain.reqs[chain.next]);

		if (r == -EAGAIN)
			break;
		assert_int_equal(r, 0);
		chain.next++;
	}
	blk_unplug(chain.dev);
}

static void t_submit_from_done(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *disk;
	unsigned int i;

	blk_suite_make_file(ctx, 256 * KIB, 12);
	memset(&chain, 0, sizeof(chain));
	chain.dev = blk_suite_open(ctx, false, 2);
	chain.buf = xalloc(32 * 4096);
	fill_pattern(chain.buf, 32 * 4096, 13);
	for (i = 0; i < 32; i++) {
		treq_init(&chain.reqs[i], BLK_OP_WRITE, i * 4096ull, chain.buf + i * 4096, 4096);
		chain.reqs[i].req.done = chain_done;
	}
	assert_int_equal(submit(chain.dev, &chain.reqs[0]), 0);
	chain.next = 1;
	blk_unplug(chain.dev);
	blk_suite_wait_all(chain.dev);
	assert_int_equal(chain.completed, 32);
	assert_int_equal(chain.first_err, 0);
	for (i = 0; i < 32; i++)
		assert_int_equal(chain.reqs[i].ndone, 1);
	blk_close(chain.dev);

	disk = read_file(ctx->path, 0, 32 * 4096);
	assert_memory_equal(disk, chain.buf, 32 * 4096);
	free(disk);
	free(chain.buf);
}

/* Close with requests in flight: the submitted ones finish for real, the plugged ones are cancelled. */
static void t_close_inflight(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct treq reqs[6];
	uint8_t *bufs[6], *orig, *disk;
	struct blk_dev *dev;
	unsigned int i;

	blk_suite_make_file(ctx, 64 * KIB, 14);
	orig = read_file(ctx->path, 0, 64 * KIB);
	dev = blk_suite_open(ctx, false, 8);
	for (i = 0; i < 6; i++) {
		bufs[i] = xalloc(8192);
		fill_pattern(bufs[i], 8192, 2000 + i);
		treq_init(&reqs[i], BLK_OP_WRITE, i * 8192ull, bufs[i], 8192);
		assert_int_equal(submit(dev, &reqs[i]), 0);
		if (i == 3)
			blk_unplug(dev);
	}
	assert_int_equal(blk_inflight(dev), 6);
	blk_close(dev);

	disk = read_file(ctx->path, 0, 64 * KIB);
	for (i = 0; i < 6; i++) {
		assert_int_equal(reqs[i].ndone, 1);
		if (i <= 3) {
			assert_int_equal(reqs[i].res, 0);
			assert_memory_equal(disk + i * 8192, bufs[i], 8192);
		} else {
			assert_int_equal(reqs[i].res, -ECANCELED);
			assert_memory_equal(disk + i * 8192, orig + i * 8192, 8192);
		}
		free(bufs[i]);
	}
	free(disk);
	free(orig);
}

static void t_refresh_info(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 64 * KIB, 15);
	dev = blk_suite_open(ctx, false, 4);
	assert_int_equal(blk_get_info(dev)->capacity, 64 * KIB);
	assert_int_equal(blk_get_info(dev)->logical_block_size, 512);
	assert_false(blk_get_info(dev)->block_device);
	assert_int_equal(blk_refresh_info(dev), 0);
	assert_int_equal(truncate(ctx->path, 1 * MIB), 0);
	assert_int_equal(blk_refresh_info(dev), 1);
	assert_int_equal(blk_get_info(dev)->capacity, 1 * MIB);
	assert_int_equal(blk_refresh_info(dev), 0);
	blk_close(dev);
}

/* ENOSPC reported by the kernel fails that write only; the next one works. */
static void t_inject_enospc(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *a = xalloc(4096), *b = xalloc(4096), *orig, *disk;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 64 * KIB, 16);
	orig = read_file(ctx->path, 0, 64 * KIB);
	dev = blk_suite_open(ctx, false, 4);
	fill_pattern(a, 4096, 17);
	fill_pattern(b, 4096, 18);
	blk_inject.complete_err = -ENOSPC;
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE, 0, a, 4096), -ENOSPC);
	assert_int_equal(blk_inject.complete_err, 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE, 8192, b, 4096), 0);
	assert_int_equal(blk_inflight(dev), 0);
	blk_close(dev);
	disk = read_file(ctx->path, 0, 64 * KIB);
	assert_memory_equal(disk + 8192, b, 4096);
	free(disk);
	free(orig);
	free(a);
	free(b);
}

static void t_inject_eio_read(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *buf = xalloc(8192), *orig;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 64 * KIB, 19);
	orig = read_file(ctx->path, 0, 64 * KIB);
	dev = blk_suite_open(ctx, false, 4);
	blk_inject.complete_err = -EIO;
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 0, buf, 8192), -EIO);
	assert_int_equal(blk_inject.complete_err, 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 0, buf, 8192), 0);
	assert_memory_equal(buf, orig, 8192);
	/* A failed flush is reported too. */
	blk_inject.complete_err = -EIO;
	assert_int_equal(blk_suite_io(dev, BLK_OP_FLUSH, 0, NULL, 0), -EIO);
	blk_close(dev);
	free(orig);
	free(buf);
}

/* One request of a batch refused at submission: it alone fails, the others are done. */
static void t_inject_submit_eio(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct treq reqs[3];
	uint8_t *bufs[3], *orig, *disk;
	struct blk_dev *dev;
	unsigned int i;

	blk_suite_make_file(ctx, 64 * KIB, 20);
	orig = read_file(ctx->path, 0, 64 * KIB);
	dev = blk_suite_open(ctx, false, 4);
	for (i = 0; i < 3; i++) {
		bufs[i] = xalloc(4096);
		fill_pattern(bufs[i], 4096, 3000 + i);
		treq_init(&reqs[i], BLK_OP_WRITE, i * 4096ull, bufs[i], 4096);
		assert_int_equal(submit(dev, &reqs[i]), 0);
	}
	blk_inject.submit_err = -EIO;
	blk_inject.submit_err_at = 1;
	blk_unplug(dev);
	blk_suite_wait_all(dev);
	assert_int_equal(blk_inject.submit_err, 0);
	assert_int_equal(reqs[0].res, 0);
	assert_int_equal(reqs[1].res, -EIO);
	assert_int_equal(reqs[2].res, 0);
	blk_close(dev);
	disk = read_file(ctx->path, 0, 64 * KIB);
	assert_memory_equal(disk, bufs[0], 4096);
	assert_memory_equal(disk + 4096, orig + 4096, 4096);
	assert_memory_equal(disk + 8192, bufs[2], 4096);
	for (i = 0; i < 3; i++) {
		assert_int_equal(reqs[i].ndone, 1);
		free(bufs[i]);
	}
	free(disk);
	free(orig);
}

/* The kernel transfers half: the rest must be resubmitted (else the bytes would be wrong). */
static void short_case(struct blk_suite_ctx *ctx, enum blk_op op, unsigned int misalign)
{
	const size_t len = 64 * KIB;
	uint8_t *mem = xalloc(len + 4096), *buf = mem + misalign, *orig, *disk;
	struct treq t;
	struct blk_dev *dev;
	unsigned int i;

	blk_suite_make_file(ctx, 256 * KIB, 21);
	orig = read_file(ctx->path, 0, 256 * KIB);
	dev = blk_suite_open(ctx, false, 4);
	if (op == BLK_OP_WRITE)
		fill_pattern(buf, len, 22);
	else
		memset(buf, 0xcc, len);
	treq_init(&t, op, 32 * KIB, NULL, 0);
	/* Four segments, so the remainder starts inside the iovec array. */
	for (i = 0; i < 4; i++)
		t.iov[i] = (struct iovec){ buf + i * (len / 4), len / 4 };
	t.req.iov = t.iov;
	t.req.iovcnt = 4;
	blk_inject.short_next = true;
	assert_int_equal(submit(dev, &t), 0);
	blk_unplug(dev);
	blk_suite_wait_all(dev);
	assert_int_equal(blk_inject.shorts, 1);
	assert_int_equal(t.ndone, 1);
	assert_int_equal(t.res, 0);
	blk_close(dev);

	disk = read_file(ctx->path, 0, 256 * KIB);
	if (op == BLK_OP_READ) {
		assert_memory_equal(buf, orig + 32 * KIB, len);
	} else {
		assert_memory_equal(disk + 32 * KIB, buf, len);
		assert_memory_equal(disk, orig, 32 * KIB);
	}
	free(disk);
	free(orig);
	free(mem);
}

static void t_short_read(void **state)
{
	short_case(*state, BLK_OP_READ, 0);
}

static void t_short_write(void **state)
{
	short_case(*state, BLK_OP_WRITE, 0);
}

static void t_short_read_bounce(void **state)
{
	short_case(*state, BLK_OP_READ, 1);
}

static void t_short_write_bounce(void **state)
{
	short_case(*state, BLK_OP_WRITE, 3);
}

/* aio: IOCB_CMD_FDSYNC refused with EINVAL: flushes go to fdatasync, and the device remembers. */
static void t_fdsync_fallback(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *buf = xalloc(4096);
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 64 * KIB, 23);
	dev = blk_suite_open(ctx, false, 4);
	blk_inject.fdsync_err = -EINVAL;
	fill_pattern(buf, 4096, 24);
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE, 0, buf, 4096), 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_FLUSH, 0, NULL, 0), 0);
	assert_int_equal(blk_inject.fdsync_seen, 1);
	assert_int_equal(blk_suite_io(dev, BLK_OP_FLUSH, 0, NULL, 0), 0);
	assert_int_equal(blk_inject.fdsync_seen, 1);
	blk_close(dev);

	/* A new device tries IOCB_CMD_FDSYNC again, and uses it when the kernel takes it. */
	blk_inject.fdsync_err = 0;
	dev = blk_suite_open(ctx, false, 4);
	assert_int_equal(blk_suite_io(dev, BLK_OP_FLUSH, 0, NULL, 0), 0);
	assert_int_equal(blk_inject.fdsync_seen, 2);
	blk_close(dev);
	free(buf);
}

/* ------------------------------------------------------------------------- */
/* Loop device */

static int run_cmd(const char *cmd, char *out, size_t out_size)
{
	FILE *p = popen(cmd, "re");
	size_t n = 0;
	int status;

	if (!p)
		return -1;
	if (out) {
		n = fread(out, 1, out_size - 1, p);
		out[n] = '\0';
		while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
			out[--n] = '\0';
	} else {
		char sink[256];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * blk_open_more(): a second engine over the same open file, with its own
 * completions: what one writes the other reads; the info is the first's;
 * each keeps working when the other is closed.
 */
static void t_open_more(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *buf = xalloc(8192), *rbuf = xalloc(8192);
	struct blk_dev *dev, *more = NULL;

	blk_suite_make_file(ctx, 256 * KIB, 30);
	dev = blk_suite_open(ctx, false, 8);
	assert_int_equal(blk_open_more(dev, &(struct blk_open_opts){ .queue_depth = 8 }, &more), 0);
	assert_int_equal(blk_get_info(more)->capacity, blk_get_info(dev)->capacity);
	assert_int_equal(blk_get_info(more)->engine, blk_get_info(dev)->engine);
	assert_int_equal(blk_get_info(more)->direct, blk_get_info(dev)->direct);
	assert_int_not_equal(blk_get_fd(more), blk_get_fd(dev));
	fill_pattern(buf, 8192, 31);
	assert_int_equal(blk_suite_io(more, BLK_OP_WRITE, 16384, buf, 8192), 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 16384, rbuf, 8192), 0);
	assert_memory_equal(rbuf, buf, 8192);
	blk_close(dev);
	fill_pattern(buf, 8192, 32);
	assert_int_equal(blk_suite_io(more, BLK_OP_WRITE, 0, buf, 8192), 0);
	assert_int_equal(blk_suite_io(more, BLK_OP_FLUSH, 0, NULL, 0), 0);
	assert_int_equal(blk_suite_io(more, BLK_OP_READ, 0, rbuf, 8192), 0);
	assert_memory_equal(rbuf, buf, 8192);
	blk_close(more);
	/* Bad arguments are refused, not asserted. */
	assert_int_equal(blk_open_more(NULL, &(struct blk_open_opts){ 0 }, &more), -EINVAL);
	free(buf);
	free(rbuf);
}

static void t_loop_device(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	const size_t size = 16 * MIB;
	char cmd[512], loopdev[64];
	uint8_t *buf, *rbuf, *disk;
	struct blk_dev *dev, *dev2 = NULL;
	struct blk_open_opts opts = { .engine = ctx->engine, .direct_io_safe = true };
	const struct blk_info *info;

	if (geteuid() != 0) {
		print_message("# losetup needs root: skipped\n");
		skip();
	}
	blk_suite_make_file(ctx, size, 25);
	snprintf(cmd, sizeof(cmd), "losetup -f --show '%s' 2>/dev/null", ctx->path);
	if (run_cmd(cmd, loopdev, sizeof(loopdev)) != 0 || strncmp(loopdev, "/dev/loop", 9) != 0) {
		print_message("# losetup does not work here: skipped\n");
		skip();
	}
	snprintf(ctx->loopdev, sizeof(ctx->loopdev), "%s", loopdev);

	dev = open_dev(loopdev, ctx->engine, false, 8);
	info = blk_get_info(dev);
	assert_true(info->block_device);
	assert_int_equal(info->capacity, size);
	assert_true(info->logical_block_size >= 512);

	/* O_EXCL: a second opener is refused. */
	assert_int_equal(blk_open(loopdev, &opts, &dev2, NULL), -EBUSY);
	assert_null(dev2);
	/* ... but a second engine over the same open device works (a disk's queue lanes). */
	assert_int_equal(blk_open_more(dev, &(struct blk_open_opts){ .queue_depth = 8 }, &dev2), 0);
	assert_true(blk_get_info(dev2)->block_device);
	buf = xalloc(4096);
	fill_pattern(buf, 4096, 27);
	assert_int_equal(blk_suite_io(dev2, BLK_OP_WRITE, 2 * MIB, buf, 4096), 0);
	blk_close(dev2);
	disk = read_file(ctx->path, 2 * MIB, 4096);
	assert_memory_equal(disk, buf, 4096);
	free(disk);
	free(buf);

	buf = xalloc(256 * KIB);
	rbuf = xalloc(256 * KIB + 1);
	fill_pattern(buf, 256 * KIB, 26);
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE, MIB, buf, 256 * KIB), 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_FLUSH, 0, NULL, 0), 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, MIB, rbuf + 1, 256 * KIB), 0);
	assert_memory_equal(rbuf + 1, buf, 256 * KIB);
	disk = read_file(ctx->path, MIB, 256 * KIB);
	assert_memory_equal(disk, buf, 256 * KIB);
	free(disk);

	/* BLKZEROOUT through the worker. */
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE_ZEROES, MIB, NULL, 64 * KIB), 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, MIB, rbuf, 128 * KIB), 0);
	assert_true(all_zero(rbuf, 64 * KIB));
	assert_memory_equal(rbuf + 64 * KIB, buf + 64 * KIB, 64 * KIB);
	/* BLKDISCARD: a loop device punches a hole in its file, which reads as zeroes. */
	if (info->discard) {
		assert_int_equal(blk_suite_io(dev, BLK_OP_DISCARD, MIB + 128 * KIB, NULL, 64 * KIB),
				 0);
		assert_int_equal(blk_suite_io(dev, BLK_OP_READ, MIB + 128 * KIB, rbuf, 64 * KIB), 0);
		assert_true(all_zero(rbuf, 64 * KIB));
	}
	blk_close(dev);

	/* Closed: the exclusive claim is gone. */
	assert_int_equal(blk_open(loopdev, &opts, &dev2, NULL), 0);
	blk_close(dev2);

	snprintf(cmd, sizeof(cmd), "losetup -d '%s' 2>/dev/null", loopdev);
	assert_int_equal(run_cmd(cmd, NULL, 0), 0);
	ctx->loopdev[0] = '\0';
	free(buf);
	free(rbuf);
}

/* ------------------------------------------------------------------------- */

struct blk_case {
	const char *name;
	CMUnitTestFunction fn;
	unsigned int needs;
};

static const struct blk_case blk_cases[] = {
	{ "rw_random", t_rw_random, 0 },
	{ "rw_random_buffered", t_rw_random_buffered, 0 },
	{ "bounce_misaligned", t_bounce_misaligned, 0 },
	{ "bounce_budget", t_bounce_budget, 0 },
	{ "read_past_eof", t_read_past_eof, 0 },
	{ "flush", t_flush, 0 },
	{ "discard", t_discard, 0 },
	{ "write_zeroes", t_write_zeroes, 0 },
	{ "write_zeroes_unmap", t_write_zeroes_unmap, 0 },
	{ "read_only", t_read_only, 0 },
	{ "invalid", t_invalid, 0 },
	{ "backpressure", t_backpressure, 0 },
	{ "submit_from_done", t_submit_from_done, 0 },
	{ "close_inflight", t_close_inflight, 0 },
	{ "refresh_info", t_refresh_info, 0 },
	{ "inject_enospc", t_inject_enospc, 0 },
	{ "inject_eio_read", t_inject_eio_read, 0 },
	{ "inject_submit_eio", t_inject_submit_eio, BLK_SUITE_SUBMIT_ERR },
	{ "short_read", t_short_read, 0 },
	{ "short_write", t_short_write, 0 },
	{ "short_read_bounce", t_short_read_bounce, 0 },
	{ "short_write_bounce", t_short_write_bounce, 0 },
	{ "fdsync_fallback", t_fdsync_fallback, BLK_SUITE_FDSYNC },
	{ "open_more", t_open_more, 0 },
	{ "loop_device", t_loop_device, 0 },
};

int blk_suite_run(const char *prefix, enum blk_engine engine, unsigned int optional,
		  const struct CMUnitTest *extra_tests, size_t n_extra)
{
	static enum blk_engine engines[8];
	static unsigned int n_engines;
	size_t ncases = ARRAY_SIZE(blk_cases);
	struct CMUnitTest *tests;
	char **names;
	size_t i, n = 0;
	int failed;

	if (n_engines >= 8)
		return 1;
	engines[n_engines] = engine;
	tests = calloc(ncases + n_extra, sizeof(*tests));
	names = calloc(ncases, sizeof(*names));
	if (!tests || !names)
		return 1;
	for (i = 0; i < ncases; i++) {
		size_t len;

		if (blk_cases[i].needs & ~optional)
			continue;
		len = strlen(prefix) + strlen(blk_cases[i].name) + 2;
		names[n] = malloc(len);
		if (!names[n])
			return 1;
		snprintf(names[n], len, "%s_%s", prefix, blk_cases[i].name);
		tests[n] = (struct CMUnitTest){
			.name = names[n],
			.test_func = blk_cases[i].fn,
			.setup_func = blk_suite_setup,
			.teardown_func = blk_suite_teardown,
			.initial_state = &engines[n_engines],
		};
		n++;
	}
	n_engines++;
	for (i = 0; i < n_extra; i++)
		tests[n + i] = extra_tests[i];
	failed = _cmocka_run_group_tests(prefix, tests, n + n_extra, NULL, NULL);
	for (i = 0; i < ncases; i++)
		free(names[i]);
	free(names);
	free(tests);
	return failed;
}
