// SPDX-License-Identifier: GPL-2.0-only
/* Block layer tests independent of the kernel engines: opening, options, and the null engine. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../lib/blk-suite.h"
#include "iostat.h"
#include "util.h"


struct nreq {
	struct blk_req req;
	struct iovec iov;
	int res;
	unsigned int ndone;
};

static void nreq_done(struct blk_req *req, int res)
{
	struct nreq *r = container_of(req, struct nreq, req);

	r->res = res;
	r->ndone++;
}

static void nreq_init(struct nreq *r, enum blk_op op, uint64_t offset, void *buf, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->req.op = op;
	r->req.offset = offset;
	r->req.done = nreq_done;
	r->res = 1;
	if (op == BLK_OP_READ || op == BLK_OP_WRITE) {
		r->iov.iov_base = buf;
		r->iov.iov_len = len;
		r->req.iov = &r->iov;
		r->req.iovcnt = 1;
	} else {
		r->req.len = len;
	}
}

static bool fd_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 1;
}

static void t_engine_names(void **state)
{
	static const enum blk_engine all[] = { BLK_ENGINE_AIO, BLK_ENGINE_URING, BLK_ENGINE_NULL,
					       BLK_ENGINE_AUTO };
	enum blk_engine e = BLK_ENGINE_NULL;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(all); i++) {
		assert_int_equal(blk_engine_parse(blk_engine_name(all[i]), &e), 0);
		assert_int_equal(e, all[i]);
	}
	assert_int_equal(blk_engine_parse("io_uring", &e), 0);
	assert_int_equal(e, BLK_ENGINE_URING);
	assert_int_equal(blk_engine_parse("posix", &e), -EINVAL);
	assert_int_equal(blk_engine_parse("", &e), -EINVAL);
	assert_int_equal(blk_engine_parse(NULL, &e), -EINVAL);
	/* Output parameter untouched on failure. */
	assert_int_equal(e, BLK_ENGINE_URING);
}

static void t_open_missing(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct blk_dev *dev = (struct blk_dev *)&dev;
	const char *why = NULL;

	assert_int_equal(blk_open(ctx->path, NULL, &dev, &why), -ENOENT);
	assert_ptr_equal(dev, (struct blk_dev *)&dev);
	/* Nothing to say beyond the errno: the file is not there. */
	assert_null(why);
}

static void on_alarm(int sig)
{
	(void)sig;
}

/*
 * Open @path as blk_open() would for a disk, with an alarm: an open that
 * waits (a regression) fails with -EINTR after a few seconds instead of
 * hanging the suite.  Returns blk_open()'s result; @ret_why gets its reason.
 */
static int open_guarded(const char *path, bool read_only, const char **ret_why)
{
	/* No SA_RESTART: the alarm interrupts a waiting open() with EINTR. */
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct blk_open_opts opts = { .read_only = read_only };
	struct blk_dev *dev = NULL;
	int r;

	*ret_why = NULL;
	assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
	alarm(5);
	r = blk_open(path, &opts, &dev, ret_why);
	alarm(0);
	sigaction(SIGALRM, &old, NULL);
	if (r == 0)
		blk_close(dev);
	else
		assert_null(dev);
	return r;
}

/* A refusal's reason, checked without crashing when it is missing. */
static void assert_why(const char *why, const char *want)
{
	if (!why)
		fail_msg("no reason given; expected '%s'", want);
	assert_string_equal(why, want);
}

static void t_open_directory(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	const char *why;

	assert_int_equal(open_guarded(ctx->dir, false, &why), -EISDIR);
	assert_why(why, "is a directory, not a regular file or block device");
	assert_int_equal(open_guarded(ctx->dir, true, &why), -EISDIR);
	assert_why(why, "is a directory, not a regular file or block device");
}

static void t_open_char_device(void **state)
{
	const char *why;

	assert_int_equal(open_guarded("/dev/null", false, &why), -ENOTBLK);
	assert_why(why, "is a character device, not a regular file or block device");
	assert_int_equal(open_guarded("/dev/null", true, &why), -ENOTBLK);
	assert_why(why, "is a character device, not a regular file or block device");
}

/* mode=r on a FIFO: open(O_RDONLY) would wait for a writer, stopping the daemon. */
static void t_open_fifo_read_only(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	const char *why;

	assert_int_equal(mkfifo(ctx->path, 0600), 0);
	assert_int_equal(open_guarded(ctx->path, true, &why), -ENOTBLK);
	assert_why(why, "is a FIFO, not a regular file or block device");
}

static void t_open_fifo_read_write(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	const char *why;

	assert_int_equal(mkfifo(ctx->path, 0600), 0);
	assert_int_equal(open_guarded(ctx->path, false, &why), -ENOTBLK);
	assert_why(why, "is a FIFO, not a regular file or block device");
}

static void t_open_socket(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *why;
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_true(strlen(ctx->path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, ctx->path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(open_guarded(ctx->path, true, &why), -ENOTBLK);
	assert_why(why, "is a socket, not a regular file or block device");
	close(fd);
}

/* /proc/version is a regular file to stat(2), but a kernel interface. */
static void t_open_proc_file(void **state)
{
	const char *why;

	assert_int_equal(open_guarded("/proc/version", true, &why), -EMEDIUMTYPE);
	assert_why(why, "is on /proc (procfs), a kernel interface, not a disk image");
	assert_int_equal(open_guarded("/proc/self/status", false, &why), -EMEDIUMTYPE);
	assert_why(why, "is on /proc (procfs), a kernel interface, not a disk image");
}

/* A sysfs attribute stats as a 4 KiB regular file: it was served as an 8-sector disk. */
static void t_open_sysfs_attribute(void **state)
{
	static const char *const candidates[] = {
		"/sys/kernel/mm/transparent_hugepage/enabled",
		"/sys/kernel/uevent_seqnum",
		"/sys/power/state",
		"/sys/kernel/profiling",
	};
	const char *path = NULL, *why;
	struct stat st;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(candidates) && !path; i++)
		if (stat(candidates[i], &st) == 0 && S_ISREG(st.st_mode))
			path = candidates[i];
	if (!path) {
		print_message("no sysfs attribute found to try; /sys not mounted?\n");
		skip();
	}
	assert_int_equal(open_guarded(path, true, &why), -EMEDIUMTYPE);
	assert_why(why, "is on /sys (sysfs), a kernel interface, not a disk image");
	/* mode=w would have let the guest write kernel settings. */
	assert_int_equal(open_guarded(path, false, &why), -EMEDIUMTYPE);
	assert_why(why, "is on /sys (sysfs), a kernel interface, not a disk image");
}

/* The checks look at what a symbolic link points to: a link to an image is served. */
static void t_open_symlink_to_file(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t want[512], got[512];
	struct blk_dev *dev = NULL;
	const char *why = NULL;
	char link[320];
	int fd, r;

	blk_suite_make_file(ctx, 65536, 8);
	fd = open(ctx->path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, want, sizeof(want), 4096), sizeof(want));
	close(fd);
	snprintf(link, sizeof(link), "%s/link.img", ctx->dir);
	assert_int_equal(symlink(ctx->path, link), 0);
	r = blk_open(link, NULL, &dev, &why);
	unlink(link);
	assert_int_equal(r, 0);
	assert_null(why);
	assert_int_equal(blk_get_info(dev)->capacity, 65536);
	assert_int_equal(blk_suite_io(dev, BLK_OP_READ, 4096, got, sizeof(got)), 0);
	assert_memory_equal(got, want, sizeof(want));
	blk_close(dev);
}

static void t_open_bad_opts(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct blk_open_opts opts = { .queue_depth = BLK_QUEUE_DEPTH_MAX + 1 };
	struct blk_dev *dev = NULL;

	blk_suite_make_file(ctx, 4096, 1);
	assert_int_equal(blk_open(ctx->path, &opts, &dev, NULL), -EINVAL);
	opts.queue_depth = 0;
	opts.engine = (enum blk_engine)42;
	assert_int_equal(blk_open(ctx->path, &opts, &dev, NULL), -EINVAL);
	assert_null(dev);
	blk_close(NULL);
}

/* opts NULL: aio, read-write, page cache, BLK_QUEUE_DEPTH_DEFAULT requests. */
static void t_open_defaults(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct nreq *reqs;
	struct blk_dev *dev = NULL;
	const struct blk_info *info;
	uint8_t *buf, *orig;
	unsigned int i;
	int fd;

	blk_suite_make_file(ctx, 1 << 20, 2);
	buf = malloc((BLK_QUEUE_DEPTH_DEFAULT + 1) * 512);
	orig = malloc(BLK_QUEUE_DEPTH_DEFAULT * 512);
	assert_non_null(buf);
	assert_non_null(orig);
	fd = open(ctx->path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, orig, BLK_QUEUE_DEPTH_DEFAULT * 512, 0),
			 BLK_QUEUE_DEPTH_DEFAULT * 512);
	close(fd);
	assert_int_equal(blk_open(ctx->path, NULL, &dev, NULL), 0);
	info = blk_get_info(dev);
	/* The default, auto, gives a page-cache device io_uring (where the kernel allows it). */
	assert_int_equal(info->engine, BLK_ENGINE_URING);
	assert_int_equal(info->engine_fallback_err, 0);
	assert_false(info->read_only);
	assert_false(info->direct);
	assert_false(info->block_device);
	assert_int_equal(info->capacity, 1 << 20);
	assert_int_equal(info->logical_block_size, 512);
	assert_true(info->physical_block_size >= 512);
	assert_false(fd_readable(blk_get_fd(dev)));
	assert_int_equal(blk_process(dev), 0);

	reqs = calloc(BLK_QUEUE_DEPTH_DEFAULT + 1, sizeof(*reqs));
	assert_non_null(reqs);
	for (i = 0; i < BLK_QUEUE_DEPTH_DEFAULT; i++) {
		nreq_init(&reqs[i], BLK_OP_READ, i * 512ull, buf + i * 512, 512);
		assert_int_equal(blk_submit(dev, &reqs[i].req), 0);
	}
	nreq_init(&reqs[i], BLK_OP_READ, 0, buf + i * 512, 512);
	assert_int_equal(blk_submit(dev, &reqs[i].req), -EAGAIN);
	blk_unplug(dev);
	blk_suite_wait_all(dev);
	for (i = 0; i < BLK_QUEUE_DEPTH_DEFAULT; i++) {
		assert_int_equal(reqs[i].ndone, 1);
		assert_int_equal(reqs[i].res, 0);
	}
	assert_int_equal(reqs[i].ndone, 0);
	/* Through the page cache (the worker threads): the bytes of the file. */
	assert_memory_equal(buf, orig, BLK_QUEUE_DEPTH_DEFAULT * 512);
	blk_close(dev);
	free(reqs);
	free(buf);
	free(orig);
}

/* Zero-length transfers are accepted and complete with 0, later, like any other. */
static void t_zero_length(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct nreq r, d;
	struct blk_dev *dev = NULL;

	blk_suite_make_file(ctx, 4096, 3);
	assert_int_equal(blk_open(ctx->path, NULL, &dev, NULL), 0);
	nreq_init(&r, BLK_OP_READ, 0, NULL, 0);
	r.req.iovcnt = 0;
	nreq_init(&d, BLK_OP_DISCARD, 0, NULL, 0);
	assert_int_equal(blk_submit(dev, &r.req), 0);
	assert_int_equal(blk_submit(dev, &d.req), 0);
	assert_int_equal(r.ndone + d.ndone, 0);
	assert_true(fd_readable(blk_get_fd(dev)));
	blk_suite_wait_all(dev);
	assert_int_equal(r.ndone, 1);
	assert_int_equal(r.res, 0);
	assert_int_equal(d.ndone, 1);
	assert_int_equal(d.res, 0);
	blk_close(dev);
}

static struct blk_dev *open_null(struct blk_suite_ctx *ctx, bool read_only, unsigned int depth)
{
	struct blk_open_opts opts = {
		.engine = BLK_ENGINE_NULL,
		.read_only = read_only,
		.direct_io_safe = true,
		.queue_depth = depth,
	};
	struct blk_dev *dev = NULL;

	assert_int_equal(blk_open(ctx->path, &opts, &dev, NULL), 0);
	assert_int_equal(blk_get_info(dev)->engine, BLK_ENGINE_NULL);
	return dev;
}

/* The null engine: every request succeeds, nothing touches the file, reads see zeroes. */
static void t_null_engine(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t *orig = malloc(65536), *buf = malloc(8192), *disk = malloc(65536);
	struct nreq w, r, f, d, z;
	struct blk_dev *dev;
	int fd;

	assert_non_null(orig);
	assert_non_null(buf);
	assert_non_null(disk);
	blk_suite_make_file(ctx, 65536, 4);
	fd = open(ctx->path, O_RDONLY | O_CLOEXEC);
	assert_int_equal(pread(fd, orig, 65536, 0), 65536);
	dev = open_null(ctx, false, 8);
	assert_int_equal(blk_get_info(dev)->capacity, 65536);

	memset(buf, 0x77, 8192);
	nreq_init(&w, BLK_OP_WRITE, 0, buf, 4096);
	nreq_init(&r, BLK_OP_READ, 8192, buf + 4097, 3072);
	nreq_init(&f, BLK_OP_FLUSH, 0, NULL, 0);
	nreq_init(&d, BLK_OP_DISCARD, 0, NULL, 65536);
	nreq_init(&z, BLK_OP_WRITE_ZEROES, 4096, NULL, 4096);
	assert_int_equal(blk_submit(dev, &w.req), 0);
	assert_int_equal(blk_submit(dev, &r.req), 0);
	assert_int_equal(blk_submit(dev, &f.req), 0);
	assert_int_equal(blk_submit(dev, &d.req), 0);
	assert_int_equal(blk_submit(dev, &z.req), 0);
	assert_int_equal(blk_inflight(dev), 5);
	blk_unplug(dev);
	/* Completed, but done() only runs from blk_process(), after the eventfd says so. */
	assert_int_equal(w.ndone + r.ndone + f.ndone + d.ndone + z.ndone, 0);
	assert_true(fd_readable(blk_get_fd(dev)));
	assert_int_equal(blk_process(dev), 5);
	assert_int_equal(blk_inflight(dev), 0);
	assert_false(fd_readable(blk_get_fd(dev)));
	assert_int_equal(w.ndone + r.ndone + f.ndone + d.ndone + z.ndone, 5);
	assert_int_equal(w.res | r.res | f.res | d.res | z.res, 0);
	assert_int_equal(buf[4096], 0x77);
	assert_int_equal(buf[4097], 0);
	assert_int_equal(buf[4097 + 3071], 0);
	assert_int_equal(buf[4097 + 3072], 0x77);
	blk_close(dev);

	assert_int_equal(pread(fd, disk, 65536, 0), 65536);
	assert_memory_equal(disk, orig, 65536);
	close(fd);
	free(orig);
	free(buf);
	free(disk);
}

/*
 * Recent IO (blk_get_iostat()): a read and a write completed 5 ms after submission are counted
 * with that latency and their bytes; flushes are not counted.
 */
static void t_recent_io_latency(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct iostat_summary sum;
	static uint8_t buf[8192];
	struct nreq w, r, f;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 65536, 4);
	dev = open_null(ctx, false, 8);
	blk_get_iostat(dev, &sum);
	assert_int_equal(sum.dir[IOSTAT_READ].requests + sum.dir[IOSTAT_WRITE].requests, 0);
	assert_int_equal(sum.dir[IOSTAT_READ].p99_us, 0);

	nreq_init(&w, BLK_OP_WRITE, 0, buf, 4096);
	nreq_init(&r, BLK_OP_READ, 4096, buf + 4096, 3072);
	nreq_init(&f, BLK_OP_FLUSH, 0, NULL, 0);
	assert_int_equal(blk_submit(dev, &w.req), 0);
	assert_int_equal(blk_submit(dev, &r.req), 0);
	assert_int_equal(blk_submit(dev, &f.req), 0);
	blk_unplug(dev);
	nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
	assert_int_equal(blk_process(dev), 3);

	blk_get_iostat(dev, &sum);
	assert_int_equal(sum.dir[IOSTAT_WRITE].requests, 1);
	assert_int_equal(sum.dir[IOSTAT_WRITE].bytes, 4096);
	assert_int_equal(sum.dir[IOSTAT_READ].requests, 1);
	assert_int_equal(sum.dir[IOSTAT_READ].bytes, 3072);
	assert_true(sum.dir[IOSTAT_READ].p50_us >= 5000 && sum.dir[IOSTAT_READ].p50_us < 1000000);
	assert_true(sum.dir[IOSTAT_WRITE].p99_us >= 5000 && sum.dir[IOSTAT_WRITE].p99_us < 1000000);
	assert_true(sum.dir[IOSTAT_READ].bytes_per_second > 0);
	blk_close(dev);
}

static void t_null_read_only(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t buf[512];
	struct nreq w;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 4096, 5);
	dev = open_null(ctx, true, 8);
	nreq_init(&w, BLK_OP_WRITE, 0, buf, sizeof(buf));
	assert_int_equal(blk_submit(dev, &w.req), -EROFS);
	blk_close(dev);
	assert_int_equal(w.ndone, 0);
}

static void t_null_backpressure(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t buf[512];
	struct nreq reqs[3];
	struct blk_dev *dev;
	unsigned int i;

	blk_suite_make_file(ctx, 4096, 6);
	dev = open_null(ctx, false, 2);
	for (i = 0; i < 3; i++)
		nreq_init(&reqs[i], BLK_OP_READ, 0, buf, sizeof(buf));
	assert_int_equal(blk_submit(dev, &reqs[0].req), 0);
	assert_int_equal(blk_submit(dev, &reqs[1].req), 0);
	assert_int_equal(blk_submit(dev, &reqs[2].req), -EAGAIN);
	blk_unplug(dev);
	assert_int_equal(blk_process(dev), 2);
	assert_int_equal(blk_submit(dev, &reqs[2].req), 0);
	blk_unplug(dev);
	assert_int_equal(blk_process(dev), 1);
	for (i = 0; i < 3; i++)
		assert_int_equal(reqs[i].ndone, 1);
	blk_close(dev);
}

/* Accepted but never unplugged: blk_close() cancels them. */
static void t_close_cancels_plugged(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	uint8_t buf[512];
	struct nreq r;
	struct blk_dev *dev;

	blk_suite_make_file(ctx, 4096, 7);
	dev = open_null(ctx, false, 2);
	nreq_init(&r, BLK_OP_READ, 0, buf, sizeof(buf));
	assert_int_equal(blk_submit(dev, &r.req), 0);
	blk_close(dev);
	assert_int_equal(r.ndone, 1);
	assert_int_equal(r.res, -ECANCELED);
}

/*
 * A burst of requests reaches the engine two at a time (BLK_SUBMIT_BATCH):
 * the kernel holds back every request of a larger io_submit until the last
 * is prepared.  (Moved from test-vblk with the batching.)  The null engine
 * completes what it is handed: completions show each hand-over.
 */
/* Read the eventfd's count if it is readable: true if it was. */
static bool drain_fd(int fd)
{
	uint64_t v;

	if (!fd_readable(fd))
		return false;
	assert_int_equal(read(fd, &v, sizeof(v)), sizeof(v));
	return true;
}

static void test_burst_handed_to_backend_two_at_a_time(void **state)
{
	struct blk_suite_ctx *ctx = *state;
	struct blk_open_opts opts = {
		.engine = BLK_ENGINE_NULL, .queue_depth = 8, .submit_batch = BLK_SUBMIT_BATCH,
	};
	struct nreq r[5];
	uint8_t buf[5][512];
	struct blk_dev *dev = NULL;
	unsigned int submits = 0, unplugs = 0;

	blk_suite_make_file(ctx, 4096, 9);
	assert_int_equal(blk_open(ctx->path, &opts, &dev, NULL), 0);
	for (int i = 0; i < 5; i++) {
		nreq_init(&r[i], BLK_OP_WRITE, (uint64_t)i * 512, buf[i], 512);
		assert_int_equal(blk_submit(dev, &r[i].req), 0);
		submits++;
		/* The null engine completes what it is handed at once and says so on the fd. */
		if (drain_fd(blk_get_fd(dev)))
			unplugs++;
	}
	blk_unplug(dev);
	if (drain_fd(blk_get_fd(dev)))
		unplugs++;
	assert_int_equal(blk_process(dev), 5);
	assert_int_equal(submits, 5);
	assert_int_equal(unplugs, 3);	/* 2 + 2 + 1 */
	for (int i = 0; i < 5; i++)
		assert_int_equal(r[i].ndone, 1);
	blk_close(dev);
}

#define T(fn) cmocka_unit_test_prestate_setup_teardown(fn, blk_suite_setup, blk_suite_teardown, NULL)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(t_engine_names),
		T(t_open_missing),
		T(t_open_directory),
		T(t_open_char_device),
		T(t_open_fifo_read_only),
		T(t_open_fifo_read_write),
		T(t_open_socket),
		T(t_open_proc_file),
		T(t_open_sysfs_attribute),
		T(t_open_symlink_to_file),
		T(t_open_bad_opts),
		T(t_open_defaults),
		T(t_zero_length),
		T(t_null_engine),
		T(t_null_read_only),
		T(t_recent_io_latency),
		T(t_null_backpressure),
		T(t_close_cancels_plugged),
		T(test_burst_handed_to_backend_two_at_a_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
