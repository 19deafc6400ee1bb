// SPDX-License-Identifier: GPL-2.0-only
/* Block layer tests on the libaio engine, with failures injected around io_submit and the completion reaping. */
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/blk-suite.h"
#include "blk-internal.h"
#include "util.h"

int __real_io_submit(io_context_t ctx, long nr, struct iocb *ios[]);
int __wrap_io_submit(io_context_t ctx, long nr, struct iocb *ios[]);
int __real_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			struct timespec *timeout);
int __wrap_io_getevents(io_context_t ctx, long min_nr, long nr, struct io_event *events,
			struct timespec *timeout);
int __real_io_setup(int maxevents, io_context_t *ctxp);
int __wrap_io_setup(int maxevents, io_context_t *ctxp);
int __real_blk_aio_ring_getevents(io_context_t ctx, long max, struct io_event *events);
int __wrap_blk_aio_ring_getevents(io_context_t ctx, long max, struct io_event *events);

/* The kernel's struct aio_ring (fs/aio.c), written out here on its own to check the engine's. */
struct test_aio_ring {
	uint32_t id, nr, head, tail, magic, compat_features, incompat_features, header_length;
	struct io_event io_events[];
};

#define TEST_AIO_RING_MAGIC 0xa10a10a1u

/* The ring of the last io_setup() (a device's own context, or a blk_ctx's). */
static struct test_aio_ring *last_ring;

/* Imitates io_submit(2): iocbs before a refused one are submitted and counted, it is not. */
int __wrap_io_submit(io_context_t ctx, long nr, struct iocb *ios[])
{
	static struct iovec shortened[16];
	long i;

	blk_inject.submit_calls++;
	if (blk_inject.submit_refusals && nr > 0) {
		blk_inject.submit_refusals--;
		return -EIO;
	}
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

	blk_inject.getevents_calls++;
	if (n > 0 && blk_inject.complete_err) {
		events[0].res = (unsigned long)(long)blk_inject.complete_err;
		blk_inject.complete_err = 0;
	}
	return n;
}

int __wrap_io_setup(int maxevents, io_context_t *ctxp)
{
	int r = __real_io_setup(maxevents, ctxp);

	if (r < 0)
		return r;
	last_ring = (struct test_aio_ring *)*ctxp;
	/* The kernel never reads the magic back: only user space sees this. */
	if (blk_inject.aio_ring_unknown)
		last_ring->magic = 0x12345678;
	return r;
}

/* The engine's user-space reaping: the same injection as io_getevents() gets. */
int __wrap_blk_aio_ring_getevents(io_context_t ctx, long max, struct io_event *events)
{
	int n = __real_blk_aio_ring_getevents(ctx, max, events);

	if (n > 0)
		blk_inject.ring_reaps += (unsigned int)n;
	if (n > 0 && blk_inject.complete_err) {
		events[0].res = (unsigned long)(long)blk_inject.complete_err;
		blk_inject.complete_err = 0;
	}
	return n;
}

/* ---- several devices on one completion context (blk_ctx_new()) ---- */

struct ctx_req {
	struct blk_req req;
	struct iovec iov;
	int res;
	bool done;
};

static void ctx_req_done(struct blk_req *req, int res)
{
	struct ctx_req *r = (struct ctx_req *)req;

	r->res = res;
	r->done = true;
}

/* The owners blk_ctx_process() named, in order. */
static void *ctx_seen[64];
static unsigned int ctx_nseen;

static void ctx_batch_done(void *owner, struct blk_dev *dev)
{
	if (ctx_nseen < ARRAY_SIZE(ctx_seen))
		ctx_seen[ctx_nseen++] = owner;
}

static struct blk_dev *ctx_open(const char *path, struct blk_ctx *c, unsigned int depth)
{
	struct blk_open_opts o = { .engine = BLK_ENGINE_AIO, .direct_io_safe = true,
				   .queue_depth = depth, .ctx = c };
	struct blk_dev *dev = NULL;

	assert_int_equal(blk_open(path, &o, &dev, NULL), 0);
	return dev;
}

static void ctx_submit(struct blk_dev *dev, struct ctx_req *r, enum blk_op op, uint64_t off,
		       void *buf, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->iov = (struct iovec){ .iov_base = buf, .iov_len = len };
	r->req = (struct blk_req){ .op = op, .offset = off, .iov = &r->iov, .iovcnt = 1,
				   .done = ctx_req_done };
	assert_int_equal(blk_submit(dev, &r->req), 0);
	blk_unplug(dev);
}

/* Process the context until every request in @rs is done. */
static void ctx_wait(struct blk_ctx *c, struct ctx_req *rs, unsigned int n)
{
	for (int spins = 0; spins < 2000; spins++) {
		struct pollfd pfd = { .fd = blk_ctx_get_fd(c), .events = POLLIN };
		unsigned int i;

		for (i = 0; i < n && rs[i].done; i++)
			;
		if (i == n)
			return;
		assert_true(poll(&pfd, 1, 5000) >= 0);
		assert_true(blk_ctx_process(c, ctx_batch_done) >= 0);
	}
	fail_msg("requests on the shared context never completed");
}

static void test_aio_ctx_two_devices_one_context(void **state)
{
	struct blk_suite_ctx *sc = *state;
	char path2[sizeof(sc->path) + 4];
	struct ctx_req rs[8];
	struct blk_dev *a, *b;
	struct blk_ctx *c;
	uint8_t *buf = NULL, *want = NULL;
	int round;

	assert_int_equal(blk_ctx_new(&c), 0);
	blk_suite_make_file(sc, 1 << 20, 1);
	snprintf(path2, sizeof(path2), "%s.2", sc->path);
	{
		char cmd[2 * sizeof(path2) + 16];

		snprintf(cmd, sizeof(cmd), "cp %s %s", sc->path, path2);
		assert_int_equal(system(cmd), 0);
	}
	a = ctx_open(sc->path, c, 8);
	b = ctx_open(path2, c, 8);
	assert_true(blk_in_ctx(a) && blk_in_ctx(b));
	assert_int_equal(blk_get_fd(a), blk_ctx_get_fd(c));
	blk_set_owner(a, a);
	blk_set_owner(b, b);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 8 * 4096), 0);
	assert_int_equal(posix_memalign((void **)&want, 4096, 4096), 0);
	/* Several rounds: a slot freed by one round is used again by the next. */
	for (round = 0; round < 3; round++) {
		ctx_nseen = 0;
		for (unsigned int i = 0; i < 8; i++) {
			memset(buf + i * 4096, 0x10 * round + i, 4096);
			ctx_submit(i % 2 ? b : a, &rs[i], BLK_OP_WRITE, (uint64_t)i * 4096,
				   buf + i * 4096, 4096);
		}
		ctx_wait(c, rs, 8);
		for (unsigned int i = 0; i < 8; i++)
			assert_int_equal(rs[i].res, 0);
		/* Each device's batch was ended for its own owner. */
		for (unsigned int i = 0; i < ctx_nseen; i++)
			assert_true(ctx_seen[i] == a || ctx_seen[i] == b);
		assert_true(ctx_nseen >= 2);
	}
	/* Each write is in its own device's file, nowhere else. */
	for (unsigned int i = 0; i < 8; i++) {
		int fd = open(i % 2 ? path2 : sc->path, O_RDONLY);

		assert_true(fd >= 0);
		assert_int_equal(pread(fd, want, 4096, (off_t)i * 4096), 4096);
		close(fd);
		assert_memory_equal(want, buf + i * 4096, 4096);
	}
	blk_close(a);
	blk_close(b);
	blk_ctx_free(c);
	unlink(path2);
	free(buf);
	free(want);
}

static void test_aio_ctx_close_one_while_other_in_flight(void **state)
{
	struct blk_suite_ctx *sc = *state;
	struct ctx_req ra[4], rb[4];
	struct blk_dev *a, *b;
	struct blk_ctx *c;
	uint8_t *buf = NULL;

	assert_int_equal(blk_ctx_new(&c), 0);
	blk_suite_make_file(sc, 1 << 20, 2);
	a = ctx_open(sc->path, c, 4);
	b = ctx_open(sc->path, c, 4);
	blk_set_owner(a, a);
	blk_set_owner(b, b);
	assert_int_equal(posix_memalign((void **)&buf, 4096, 8 * 4096), 0);
	for (unsigned int i = 0; i < 4; i++) {
		ctx_submit(a, &ra[i], BLK_OP_READ, (uint64_t)i * 4096, buf + i * 4096, 4096);
		ctx_submit(b, &rb[i], BLK_OP_READ, (uint64_t)i * 4096, buf + (4 + i) * 4096, 4096);
	}
	/* Closing a waits for its own requests and must not lose b's completions meanwhile. */
	blk_close(a);
	for (unsigned int i = 0; i < 4; i++)
		assert_true(ra[i].done);
	ctx_wait(c, rb, 4);
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(rb[i].res, 0);
	assert_memory_equal(buf, buf + 4 * 4096, 4 * 4096);
	blk_close(b);
	blk_ctx_free(c);
	free(buf);
}

/*
 * A guest's next request, sent from its last one's done() as vblk does
 * (submit, unplug): @left more writes of pattern @seed + n at 4 KiB steps.
 */
struct chain_req {
	struct ctx_req r;
	struct blk_dev *dev;
	uint8_t *buf;			/* 4 KiB, aligned */
	unsigned int n, left;
	int seed;
};

static void chain_done(struct blk_req *req, int res);

static void chain_send(struct chain_req *c)
{
	memset(c->buf, c->seed + (int)c->n, 4096);
	c->r.iov = (struct iovec){ .iov_base = c->buf, .iov_len = 4096 };
	c->r.req = (struct blk_req){ .op = BLK_OP_WRITE, .offset = (uint64_t)c->n * 4096,
				     .iov = &c->r.iov, .iovcnt = 1, .done = chain_done };
	c->r.done = false;
	assert_int_equal(blk_submit(c->dev, &c->r.req), 0);
	blk_unplug(c->dev);
}

static void chain_done(struct blk_req *req, int res)
{
	struct chain_req *c = (struct chain_req *)req;

	c->r.res = res;
	c->r.done = true;
	if (res < 0 || !c->left)
		return;
	c->left--;
	c->n++;
	chain_send(c);
}

static void chain_start(struct chain_req *c, struct blk_dev *dev, int seed, unsigned int count)
{
	*c = (struct chain_req){ .dev = dev, .seed = seed, .left = count - 1 };
	assert_int_equal(posix_memalign((void **)&c->buf, 4096, 4096), 0);
	chain_send(c);
}

/* Wait until the shared context's ring holds @n completions (the kernel finished them). */
static void ring_wait(const struct test_aio_ring *ring, uint32_t n)
{
	for (int i = 0; i < 5000; i++) {
		uint32_t head = __atomic_load_n(&ring->head, __ATOMIC_ACQUIRE);
		uint32_t tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE);

		if ((tail + ring->nr - head) % ring->nr >= n)
			return;
		usleep(1000);
	}
	fail_msg("the kernel did not complete %u requests within 5 s", n);
}

/* Every 4 KiB block 0..@count-1 of @path holds pattern @seed + its index. */
static void assert_chain_written(const char *path, int seed, unsigned int count)
{
	uint8_t got[4096], want[4096];
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	for (unsigned int i = 0; i < count; i++) {
		memset(want, seed + (int)i, sizeof(want));
		assert_int_equal(pread(fd, got, sizeof(got), (off_t)i * 4096), 4096);
		assert_memory_equal(got, want, sizeof(want));
	}
	close(fd);
}

/* A context with two members, on @sc->path and a copy of it, each its own owner. */
struct two_disks {
	struct blk_ctx *c;
	struct test_aio_ring *ring;	/* the context's */
	struct blk_dev *a, *b;
	char path2[sizeof(((struct blk_suite_ctx *)0)->path) + 4];
};

static void two_disks_open(struct blk_suite_ctx *sc, struct two_disks *t, uint32_t seed)
{
	char cmd[2 * sizeof(t->path2) + 16];

	assert_int_equal(blk_ctx_new(&t->c), 0);
	t->ring = last_ring;
	blk_suite_make_file(sc, 1 << 20, seed);
	snprintf(t->path2, sizeof(t->path2), "%s.2", sc->path);
	snprintf(cmd, sizeof(cmd), "cp %s %s", sc->path, t->path2);
	assert_int_equal(system(cmd), 0);
	t->a = ctx_open(sc->path, t->c, 4);
	t->b = ctx_open(t->path2, t->c, 4);
	blk_set_owner(t->a, t->a);
	blk_set_owner(t->b, t->b);
}

/* Close the members but @closed (one closed already, or NULL), the context, the copy. */
static void two_disks_close(struct two_disks *t, const struct blk_dev *closed)
{
	if (t->a != closed)
		blk_close(t->a);
	if (t->b != closed)
		blk_close(t->b);
	blk_ctx_free(t->c);
	unlink(t->path2);
}

/*
 * Two disks on one thread's context whose completions come back together:
 * the requests their guests send next reach the kernel in one io_submit().
 */
static void test_aio_ctx_members_submit_together(void **state)
{
	enum { ROUNDS = 6 };
	struct blk_suite_ctx *sc = *state;
	struct chain_req ca, cb;
	struct two_disks t;

	two_disks_open(sc, &t, 7);
	chain_start(&ca, t.a, 0x20, ROUNDS);
	chain_start(&cb, t.b, 0x60, ROUNDS);
	for (unsigned int round = 1; round < ROUNDS; round++) {
		unsigned int calls;

		/* Both of the round's writes are done in the kernel: one pass takes both. */
		ring_wait(t.ring, 2);
		calls = blk_inject.submit_calls;
		assert_int_equal(blk_ctx_process(t.c, ctx_batch_done), 2);
		assert_int_equal(ca.n, round);
		assert_int_equal(cb.n, round);
		assert_int_equal(blk_inject.submit_calls, calls + 1);
	}
	ring_wait(t.ring, 2);
	assert_int_equal(blk_ctx_process(t.c, ctx_batch_done), 2);
	assert_true(ca.r.done && cb.r.done);
	assert_chain_written(sc->path, 0x20, ROUNDS);
	assert_chain_written(t.path2, 0x60, ROUNDS);
	two_disks_close(&t, NULL);
	free(ca.buf);
	free(cb.buf);
}

/*
 * An owner that closes its disk at the end of the pass's second batch, as
 * the daemon does for a guest gone: by then both members' next requests
 * wait in the context's batch.
 */
static struct blk_dev *closed_at_batch_end;

static void ctx_close_done(void *owner, struct blk_dev *dev)
{
	ctx_batch_done(owner, dev);
	if (ctx_nseen == 2) {
		closed_at_batch_end = dev;
		blk_close(dev);
	}
}

static void alarm_fail(int sig)
{
	static const char msg[] = "test-blk-aio: blk_close() still waiting after 30 s\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(1);
}

/*
 * A disk closed while its next request waits in the context's batch: the
 * request goes to the kernel and completes first (no hang, no write lost),
 * and the other disk's request still goes out.
 */
static void test_aio_ctx_close_while_batched(void **state)
{
	struct blk_suite_ctx *sc = *state;
	struct chain_req ca, cb;
	struct two_disks t;

	two_disks_open(sc, &t, 8);
	chain_start(&ca, t.a, 0x30, 2);
	chain_start(&cb, t.b, 0x70, 2);
	ring_wait(t.ring, 2);
	/*
	 * A close that waited for a request still in the batch would wait for
	 * ever: the alarm ends the test instead.
	 */
	ctx_nseen = 0;
	closed_at_batch_end = NULL;
	signal(SIGALRM, alarm_fail);
	alarm(30);
	assert_int_equal(blk_ctx_process(t.c, ctx_close_done), 2);
	alarm(0);
	signal(SIGALRM, SIG_DFL);
	assert_true(closed_at_batch_end == t.a || closed_at_batch_end == t.b);
	{
		struct chain_req *gone = closed_at_batch_end == t.a ? &ca : &cb;
		struct chain_req *left = closed_at_batch_end == t.a ? &cb : &ca;

		/* Closing waited for its second write; the other's went out too. */
		assert_true(gone->r.done);
		assert_int_equal(gone->r.res, 0);
		ctx_wait(t.c, &left->r, 1);
		assert_int_equal(left->r.res, 0);
	}
	assert_chain_written(sc->path, 0x30, 2);
	assert_chain_written(t.path2, 0x70, 2);
	two_disks_close(&t, closed_at_batch_end);
	free(ca.buf);
	free(cb.buf);
}

/* One request of a batched io_submit() refused: it alone fails, the other disk's is written. */
static void test_aio_ctx_batched_refusal_fails_one(void **state)
{
	struct blk_suite_ctx *sc = *state;
	struct chain_req ca, cb;
	struct two_disks t;
	int ok = 0, failed = 0;

	two_disks_open(sc, &t, 9);
	chain_start(&ca, t.a, 0x40, 2);
	chain_start(&cb, t.b, 0x50, 2);
	ring_wait(t.ring, 2);
	/* The second write of each goes out in one io_submit(): refuse its second iocb. */
	blk_inject.submit_err = -EIO;
	blk_inject.submit_err_at = 1;
	assert_int_equal(blk_ctx_process(t.c, ctx_batch_done), 2);
	assert_int_equal(blk_inject.submit_err, 0);
	/* Both second requests end: the refused one through the context's next pass. */
	for (int i = 0; i < 2000 && !(ca.r.done && cb.r.done); i++) {
		struct pollfd pfd = { .fd = blk_ctx_get_fd(t.c), .events = POLLIN };

		assert_true(poll(&pfd, 1, 5000) == 1);
		assert_true(blk_ctx_process(t.c, ctx_batch_done) >= 0);
	}
	assert_true(ca.r.done && cb.r.done);
	ok = (ca.r.res == 0) + (cb.r.res == 0);
	failed = (ca.r.res == -EIO) + (cb.r.res == -EIO);
	assert_int_equal(ok, 1);
	assert_int_equal(failed, 1);
	/* The written one is on its disk. */
	assert_chain_written(ca.r.res == 0 ? sc->path : t.path2, ca.r.res == 0 ? 0x40 : 0x50, 2);
	two_disks_close(&t, NULL);
	free(ca.buf);
	free(cb.buf);
}

/*
 * Both requests of a batched io_submit() refused: nothing reaches the kernel,
 * so only the context's own kick can bring the loop back to deliver them.
 */
static void test_aio_ctx_batch_refused_whole_is_delivered(void **state)
{
	struct blk_suite_ctx *sc = *state;
	struct chain_req ca, cb;
	struct two_disks t;
	struct pollfd pfd;

	two_disks_open(sc, &t, 10);
	chain_start(&ca, t.a, 0x11, 2);
	chain_start(&cb, t.b, 0x12, 2);
	ring_wait(t.ring, 2);
	blk_inject.submit_refusals = 2;
	assert_int_equal(blk_ctx_process(t.c, ctx_batch_done), 2);
	assert_int_equal(blk_inject.submit_refusals, 0);
	assert_false(ca.r.done || cb.r.done);
	pfd = (struct pollfd){ .fd = blk_ctx_get_fd(t.c), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(blk_ctx_process(t.c, ctx_batch_done), 2);
	assert_true(ca.r.done && cb.r.done);
	assert_int_equal(ca.r.res, -EIO);
	assert_int_equal(cb.r.res, -EIO);
	two_disks_close(&t, NULL);
	free(ca.buf);
	free(cb.buf);
}

/* The io_submit() calls made when blk_ctx_process() called its owner's @fn. */
static unsigned int submits_at_batch_end;

static void ctx_note_submits(void *owner, struct blk_dev *dev)
{
	ctx_batch_done(owner, dev);
	submits_at_batch_end = blk_inject.submit_calls;
}

/* One member with completions submits its next requests before its batch ends (its interrupt). */
static void test_aio_ctx_lone_member_submits_before_its_end(void **state)
{
	struct blk_suite_ctx *sc = *state;
	struct chain_req ca;
	struct two_disks t;
	unsigned int calls;

	two_disks_open(sc, &t, 11);
	chain_start(&ca, t.a, 0x13, 3);
	for (unsigned int round = 1; round < 3; round++) {
		ring_wait(t.ring, 1);
		calls = blk_inject.submit_calls;
		assert_int_equal(blk_ctx_process(t.c, ctx_note_submits), 1);
		assert_int_equal(submits_at_batch_end, calls + 1);
		assert_int_equal(blk_inject.submit_calls, calls + 1);
	}
	ctx_wait(t.c, &ca.r, 1);
	assert_int_equal(ca.r.res, 0);
	assert_chain_written(sc->path, 0x13, 3);
	two_disks_close(&t, NULL);
	free(ca.buf);
}

static void test_aio_ctx_full_device_gets_its_own(void **state)
{
	struct blk_suite_ctx *sc = *state;
	struct blk_dev *devs[3];
	struct blk_ctx *c;

	assert_int_equal(blk_ctx_new(&c), 0);
	blk_suite_make_file(sc, 1 << 20, 3);
	/* Half the most a device may take each: the context has room for two of them. */
	for (unsigned int i = 0; i < 3; i++)
		devs[i] = ctx_open(sc->path, c, BLK_QUEUE_DEPTH_MAX / 2);
	assert_true(blk_in_ctx(devs[0]));
	assert_false(blk_in_ctx(devs[2]));
	assert_int_not_equal(blk_get_fd(devs[2]), blk_ctx_get_fd(c));
	/* Its room comes back when a member goes. */
	blk_close(devs[0]);
	devs[0] = ctx_open(sc->path, c, BLK_QUEUE_DEPTH_MAX / 2);
	assert_true(blk_in_ctx(devs[0]));
	for (unsigned int i = 0; i < 3; i++)
		blk_close(devs[i]);
	blk_ctx_free(c);
}

/* ---- completions from libaio's ring in user space ---- */

static uint8_t *aligned_buf(size_t len)
{
	uint8_t *p = NULL;

	assert_int_equal(posix_memalign((void **)&p, 4096, len), 0);
	return p;
}

/* Write 4k at @off with pattern @seed, read it back: the bytes are what was written. */
static void write_read_back(struct blk_dev *dev, uint64_t off, int seed, uint8_t *wbuf, uint8_t *rbuf)
{
	memset(wbuf, seed, 4096);
	memset(rbuf, 0, 4096);
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE, off, wbuf, 4096), 0);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, off, rbuf, 4096), 0);
	assert_memory_equal(rbuf, wbuf, 4096);
}

static void test_aio_ring_reaps_without_io_getevents(void **state)
{
	struct blk_suite_ctx *sc = *state;
	uint8_t *w = aligned_buf(8 * 4096), *r = aligned_buf(4096);
	struct ctx_req rs[8];
	struct blk_dev *dev, *a, *b;
	struct blk_ctx *c;

	blk_suite_make_file(sc, 1 << 20, 4);
	/* A device's own context. */
	dev = blk_suite_open(sc, false, 4);
	write_read_back(dev, 8192, 0x5a, w, r);
	blk_close(dev);
	assert_int_equal(blk_inject.getevents_calls, 0);
	assert_int_equal(blk_inject.ring_reaps, 2);

	/* A shared context: each completion to its own device, read from the one ring. */
	blk_inject.ring_reaps = 0;
	assert_int_equal(blk_ctx_new(&c), 0);
	a = ctx_open(sc->path, c, 4);
	b = ctx_open(sc->path, c, 4);
	blk_set_owner(a, a);
	blk_set_owner(b, b);
	for (unsigned int i = 0; i < 8; i++) {
		memset(w + i * 4096, 0x30 + i, 4096);
		ctx_submit(i % 2 ? b : a, &rs[i], BLK_OP_WRITE, (uint64_t)i * 4096, w + i * 4096, 4096);
	}
	ctx_wait(c, rs, 8);
	for (unsigned int i = 0; i < 8; i++)
		assert_int_equal(rs[i].res, 0);
	blk_close(a);
	blk_close(b);
	blk_ctx_free(c);
	assert_int_equal(blk_inject.getevents_calls, 0);
	assert_int_equal(blk_inject.ring_reaps, 8);
	{
		int fd = open(sc->path, O_RDONLY);

		assert_true(fd >= 0);
		for (unsigned int i = 0; i < 8; i++) {
			assert_int_equal(pread(fd, r, 4096, (off_t)i * 4096), 4096);
			assert_memory_equal(r, w + i * 4096, 4096);
		}
		close(fd);
	}
	free(w);
	free(r);
}

/* The kernel's ring is longer than the queue depth: enough requests go round it more than once. */
static void test_aio_ring_wraps_around(void **state)
{
	struct blk_suite_ctx *sc = *state;
	uint8_t *w = aligned_buf(4096), *r = aligned_buf(4096);
	struct blk_dev *dev;
	struct test_aio_ring *ring;
	uint32_t nr, prev, wraps = 0;

	blk_suite_make_file(sc, 1 << 20, 5);
	dev = blk_suite_open(sc, false, 4);
	ring = last_ring;
	assert_non_null(ring);
	nr = ring->nr;
	assert_true(nr > 4);
	prev = ring->head;
	/* Two completions per round: past the end of the ring, through head = nr - 1. */
	for (uint32_t i = 0; i < nr / 2 + 8; i++) {
		write_read_back(dev, (uint64_t)(i % 256) * 4096, (int)(i & 0xff), w, r);
		assert_true(ring->head < nr);
		if (ring->head < prev)
			wraps++;
		prev = ring->head;
	}
	assert_int_equal(wraps, 1);
	assert_int_equal(blk_inject.getevents_calls, 0);
	blk_close(dev);
	free(w);
	free(r);
}

/* The batch that straddles the end of the ring comes out in order, and head follows what was taken. */
static void test_aio_ring_batch_across_end(void **state)
{
	enum { NR = 8 };
	struct test_aio_ring *ring = calloc(1, sizeof(*ring) + NR * sizeof(struct io_event));
	struct io_event ev[16];

	(void)state;
	assert_non_null(ring);
	*ring = (struct test_aio_ring){ .nr = NR, .head = 6, .tail = 2, .magic = TEST_AIO_RING_MAGIC,
					.compat_features = 1, .header_length = sizeof(*ring) };
	for (unsigned int i = 0; i < NR; i++)
		ring->io_events[i] = (struct io_event){ .data = (void *)(uintptr_t)(100 + i),
							.res = (unsigned long)(long)-(int)i };
	assert_true(blk_aio_ring_usable((io_context_t)ring));
	/* At most @max: three now (6, 7, 0), then the last one (1). */
	assert_int_equal(__real_blk_aio_ring_getevents((io_context_t)ring, 3, ev), 3);
	assert_int_equal(ring->head, 1);
	assert_ptr_equal(ev[0].data, (void *)106);
	assert_ptr_equal(ev[1].data, (void *)107);
	assert_ptr_equal(ev[2].data, (void *)100);
	/* res is the kernel's signed long in an unsigned field: a negative errno comes out whole. */
	assert_int_equal((long)ev[1].res, -7);
	assert_int_equal(__real_blk_aio_ring_getevents((io_context_t)ring, 16, ev), 1);
	assert_ptr_equal(ev[0].data, (void *)101);
	assert_int_equal(ring->head, 2);
	/* Empty: nothing taken, head left alone. */
	assert_int_equal(__real_blk_aio_ring_getevents((io_context_t)ring, 16, ev), 0);
	assert_int_equal(ring->head, 2);
	/* Layouts it does not know are left to io_getevents(). */
	ring->incompat_features = 1;
	assert_false(blk_aio_ring_usable((io_context_t)ring));
	ring->incompat_features = 0;
	ring->magic = 0;
	assert_false(blk_aio_ring_usable((io_context_t)ring));
	free(ring);
}

static void test_aio_ring_unknown_layout_uses_io_getevents(void **state)
{
	struct blk_suite_ctx *sc = *state;
	uint8_t *w = aligned_buf(4096), *r = aligned_buf(4096);
	struct blk_dev *dev;
	struct blk_ctx *c;

	blk_suite_make_file(sc, 1 << 20, 6);
	blk_inject.aio_ring_unknown = true;
	dev = blk_suite_open(sc, false, 4);
	write_read_back(dev, 4096, 0x77, w, r);
	/* Errors still reach the request on this path. */
	blk_inject.complete_err = -EIO;
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 4096, r, 4096), -EIO);
	blk_close(dev);
	assert_int_equal(blk_inject.ring_reaps, 0);
	assert_true(blk_inject.getevents_calls >= 3);

	/* The same for a shared context. */
	blk_inject.getevents_calls = 0;
	assert_int_equal(blk_ctx_new(&c), 0);
	dev = ctx_open(sc->path, c, 4);
	assert_true(blk_in_ctx(dev));
	write_read_back(dev, 12288, 0x78, w, r);
	blk_close(dev);
	blk_ctx_free(c);
	assert_int_equal(blk_inject.ring_reaps, 0);
	assert_true(blk_inject.getevents_calls >= 2);
	free(w);
	free(r);
}

/* A negative res taken from the ring is the request's status, on a device's context and a shared one. */
static void test_aio_ring_error_reaches_request(void **state)
{
	struct blk_suite_ctx *sc = *state;
	uint8_t *w = aligned_buf(4096), *r = aligned_buf(4096);
	struct ctx_req rq;
	struct blk_dev *dev;
	struct blk_ctx *c;

	blk_suite_make_file(sc, 1 << 20, 7);
	dev = blk_suite_open(sc, false, 4);
	blk_inject.complete_err = -ENOSPC;
	memset(w, 0x11, 4096);
	assert_int_equal(blk_suite_io(dev, BLK_OP_WRITE, 0, w, 4096), -ENOSPC);
	assert_int_equal(blk_inject.complete_err, 0);
	write_read_back(dev, 0, 0x12, w, r);
	blk_close(dev);

	assert_int_equal(blk_ctx_new(&c), 0);
	dev = ctx_open(sc->path, c, 4);
	blk_set_owner(dev, dev);
	blk_inject.complete_err = -EIO;
	ctx_submit(dev, &rq, BLK_OP_READ, 0, r, 4096);
	ctx_wait(c, &rq, 1);
	assert_int_equal(rq.res, -EIO);
	assert_int_equal(blk_inject.complete_err, 0);
	ctx_submit(dev, &rq, BLK_OP_READ, 0, r, 4096);
	ctx_wait(c, &rq, 1);
	assert_int_equal(rq.res, 0);
	assert_memory_equal(r, w, 4096);
	blk_close(dev);
	blk_ctx_free(c);
	assert_int_equal(blk_inject.getevents_calls, 0);
	free(w);
	free(r);
}

int main(void)
{
	static const struct CMUnitTest extra[] = {
		cmocka_unit_test_setup_teardown(test_aio_ctx_two_devices_one_context,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ctx_close_one_while_other_in_flight,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ctx_members_submit_together,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ctx_close_while_batched,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ctx_batched_refusal_fails_one,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ctx_batch_refused_whole_is_delivered,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ctx_lone_member_submits_before_its_end,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ctx_full_device_gets_its_own,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ring_reaps_without_io_getevents,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ring_wraps_around,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test(test_aio_ring_batch_across_end),
		cmocka_unit_test_setup_teardown(test_aio_ring_unknown_layout_uses_io_getevents,
						blk_suite_setup, blk_suite_teardown),
		cmocka_unit_test_setup_teardown(test_aio_ring_error_reaches_request,
						blk_suite_setup, blk_suite_teardown),
	};

	return blk_suite_run("aio", BLK_ENGINE_AIO, BLK_SUITE_SUBMIT_ERR | BLK_SUITE_FDSYNC, extra,
			     ARRAY_SIZE(extra));
}
