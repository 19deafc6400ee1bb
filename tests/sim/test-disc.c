// SPDX-License-Identifier: GPL-2.0-only
/* Tests of xenstore discovery (src/xen/disc.c) on the simulator: how a disk is answered in xenstore. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xenstore.h>

#include "disc.h"
#include "disk-cfg.h"
#include "log.h"
#include "loop.h"
#include "util.h"
#include "xensim.h"
#include "xsw.h"

#define DOMID 7u
#define DIR "/local/domain/0/backend/virtio_disk/7"

static struct xensim_proc proc;
static struct loop *loop;
static struct xsw *xsw;
static struct xs_handle *toolstack;
static unsigned int adds;

/* Failure injection: xs_write() of a path ending in this fails with EACCES (NULL: none). */
static const char *fail_suffix;

bool __real_xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
		     unsigned int len);
bool __wrap_xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
		     unsigned int len);

bool __wrap_xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
		     unsigned int len)
{
	size_t pl = strlen(path), sl = fail_suffix ? strlen(fail_suffix) : 0;

	if (h != toolstack && fail_suffix && pl >= sl && !strcmp(path + pl - sl, fail_suffix)) {
		errno = EACCES;
		return false;
	}
	return __real_xs_write(h, t, path, data, len);
}

/* The daemon's side: every disk fails to be added. */
static int fake_disk_add(void *data, const struct disk_cfg *cfg, enum disc_state state,
			 const char **ret_why)
{
	adds++;
	*ret_why = "backing file not found";
	return -ENOENT;
}

static int fake_disk_close(void *data, unsigned int domid, unsigned int devid)
{
	return 0;
}

static void fake_disk_gone(void *data, unsigned int domid, unsigned int devid)
{
}

static const struct disc_ops fake_ops = {
	.disk_add = fake_disk_add,
	.disk_close = fake_disk_close,
	.disk_gone = fake_disk_gone,
};

static int group_setup(void **state)
{
	static const char *const args[] = { "--timeout", "10000", "--log-level", "err", NULL };

	log_set_level(LOG_LEVEL_ERR);
	if (xensim_spawn(XENSIM_BIN, args, &proc) < 0)
		return -1;
	loop = loop_new();
	toolstack = xs_open(0);
	return loop && toolstack && xsw_open(loop, &xsw) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	xsw_close(xsw);
	xs_close(toolstack);
	loop_free(loop);
	return xensim_reap(&proc) == 0 ? 0 : -1;
}

/* What libxl writes for one disk, in one transaction, state 1 last. */
static void toolstack_add_disk(unsigned int devid)
{
	static const char *const kv[][2] = {
		{ "params", "/nonexistent/disk.img" }, { "frontend-id", "7" }, { "mode", "w" },
		{ "device-type", "disk" }, { "base", "33554432" }, { "irq", "33" }, { "state", "1" },
	};
	xs_transaction_t t = xs_transaction_start(toolstack);
	char path[160];

	assert_true(t != XBT_NULL);
	for (size_t i = 0; i < ARRAY_SIZE(kv); i++) {
		snprintf(path, sizeof(path), DIR "/%u/%s", devid, kv[i][0]);
		assert_true(xs_write(toolstack, t, path, kv[i][1], (unsigned int)strlen(kv[i][1])));
	}
	assert_true(xs_transaction_end(toolstack, t, false));
}

/* The value of @key of disk @devid, or NULL; free it. */
static char *toolstack_read(unsigned int devid, const char *key)
{
	char path[160];
	unsigned int len;

	snprintf(path, sizeof(path), DIR "/%u/%s", devid, key);
	return xs_read(toolstack, XBT_NULL, path, &len);
}

/* Start discovery and let it see disk @devid. */
static struct disc *discover(unsigned int devid)
{
	struct disc *disc;
	unsigned int want = adds + 1;

	toolstack_add_disk(devid);
	assert_int_equal(disc_new(xsw, 0, &fake_ops, NULL, &disc), 0);
	for (int i = 0; i < 100 && adds < want; i++)
		loop_iterate(loop, 50);
	assert_int_equal(adds, want);
	return disc;
}

static void test_failed_add_is_closed_with_error(void **state)
{
	struct disc *disc = discover(51712);
	char *st = toolstack_read(51712, "state"), *err = toolstack_read(51712, "error");

	assert_non_null(st);
	assert_string_equal(st, "6");
	assert_non_null(err);
	assert_string_equal(err, "vblkd: backing file not found");
	free(st);
	free(err);
	disc_free(disc);
}

/* A refused write of "state": nothing of the answer is committed, not the error without it. */
static void test_failed_state_write_commits_nothing(void **state)
{
	struct disc *disc;
	char *st, *err;

	fail_suffix = "/state";
	disc = discover(51728);
	fail_suffix = NULL;
	st = toolstack_read(51728, "state");
	err = toolstack_read(51728, "error");
	assert_non_null(st);
	assert_string_equal(st, "1");
	assert_null(err);
	free(st);
	disc_free(disc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed_add_is_closed_with_error),
		cmocka_unit_test(test_failed_state_write_commits_nothing),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
