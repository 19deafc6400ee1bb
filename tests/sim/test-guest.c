// SPDX-License-Identifier: GPL-2.0-only
/* Tests of a guest's IOREQ server (src/xen/guest.c) on the simulator: dispatch, deferred writes. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guest.h"
#include "log.h"
#include "loop.h"
#include "xensim.h"

#define BASE 0x2000000ull

static struct xensim_proc proc;
static struct xensim *sim;
static uint32_t domid;
static struct guest_sys *sys;
static struct loop *loop;

/* A device: registers remember what was written; a write of 0xdead needs time. */
struct fake_dev {
	uint64_t regs[64];
	unsigned int writes;
};

static uint64_t fake_read(void *dev, uint64_t offset, unsigned int size)
{
	return ((struct fake_dev *)dev)->regs[offset / 8 % 64];
}

static bool fake_write(void *dev, uint64_t offset, unsigned int size, uint64_t value)
{
	struct fake_dev *f = dev;

	f->regs[offset / 8 % 64] = value;
	f->writes++;
	return value != 0xdead;
}

static const struct guest_mmio_ops fake_ops = { .read = fake_read, .write = fake_write };

static int group_setup(void **state)
{
	static const char *const args[] = { "--timeout", "10000", "--log-level", "err", NULL };

	log_set_level(LOG_LEVEL_ERR);
	if (xensim_spawn(XENSIM_BIN, args, &proc) < 0 || xensim_connect(&sim) < 0)
		return -1;
	if (xensim_domain_create(sim, "vcpus=2,mem=16M", XSIM_CREATE_NO_WAIT, &domid, NULL) < 0)
		return -1;
	loop = loop_new();
	return loop && guest_sys_open(&sys) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	guest_sys_close(sys);
	loop_free(loop);
	xensim_domain_destroy(sim, domid, false, NULL);
	xensim_disconnect(sim);
	return xensim_reap(&proc) == 0 ? 0 : -1;
}

struct access {
	pthread_t t;
	unsigned int vcpu;
	uint64_t addr, data;
	bool write;
	int ret;
	volatile bool done;
};

/* One MMIO access by a guest vCPU, on its own thread (it blocks until answered). */
static void *access_run(void *arg)
{
	struct access *a = arg;
	struct xensim *s;

	a->ret = xensim_connect(&s);
	if (a->ret == 0) {
		a->ret = xensim_guest_mmio(s, domid, a->vcpu, a->addr, 4, a->write, &a->data);
		xensim_disconnect(s);
	}
	a->done = true;
	return NULL;
}

static void access_start(struct access *a, unsigned int vcpu, uint64_t addr, bool write,
			 uint64_t data)
{
	*a = (struct access){ .vcpu = vcpu, .addr = addr, .write = write, .data = data };
	assert_int_equal(pthread_create(&a->t, NULL, access_run, a), 0);
}

/* Serve ioreqs until @a is answered (true) or @rounds loop batches went by (false). */
static bool serve_until(struct access *a, int rounds)
{
	while (!a->done && rounds-- > 0)
		loop_iterate(loop, 50);
	return a->done;
}

static void test_write_waits_until_resumed(void **state)
{
	struct fake_dev dev = { .regs = { 0 } };
	struct guest_mmio *m;
	struct guest *g;
	struct access w, r;

	assert_int_equal(guest_new(sys, loop, domid, &g), 0);
	assert_int_equal(guest_mmio_add(g, BASE, 0x200, 33, false, &fake_ops, &dev, &m), 0);
	assert_int_equal(guest_mmio_enable(m), 0);

	/* An ordinary write is answered at once. */
	access_start(&w, 0, BASE + 0x10, true, 7);
	assert_true(serve_until(&w, 100));
	pthread_join(w.t, NULL);
	assert_int_equal(w.ret, 0);
	assert_int_equal(dev.regs[2], 7);

	/* A write the device cannot finish yet: its vCPU stays in the ioreq... */
	access_start(&w, 0, BASE + 0x70, true, 0xdead);
	while (dev.writes < 2)
		loop_iterate(loop, 50);
	assert_false(serve_until(&w, 10));
	/* ...while the other vCPU is served as usual. */
	access_start(&r, 1, BASE + 0x10, false, 0);
	assert_true(serve_until(&r, 100));
	pthread_join(r.t, NULL);
	assert_int_equal(r.ret, 0);
	assert_int_equal(r.data, 7);
	assert_false(w.done);
	/* The device is done: the waiting vCPU gets its answer. */
	guest_mmio_resume(m);
	assert_true(serve_until(&w, 100));
	pthread_join(w.t, NULL);
	assert_int_equal(w.ret, 0);
	guest_free(g, false);
}

static void test_removed_window_answers_waiters(void **state)
{
	struct fake_dev dev = { .regs = { 0 } };
	struct guest_mmio *m;
	struct guest *g;
	struct access w;

	assert_int_equal(guest_new(sys, loop, domid, &g), 0);
	assert_int_equal(guest_mmio_add(g, BASE, 0x200, 33, false, &fake_ops, &dev, &m), 0);
	assert_int_equal(guest_mmio_enable(m), 0);
	access_start(&w, 1, BASE + 0x70, true, 0xdead);
	while (dev.writes < 1)
		loop_iterate(loop, 50);
	assert_false(serve_until(&w, 5));
	/* The disk goes away (closed): nobody is left hanging in an ioreq. */
	guest_mmio_remove(m);
	assert_true(serve_until(&w, 100));
	pthread_join(w.t, NULL);
	assert_int_equal(w.ret, 0);
	guest_free(g, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_waits_until_resumed),
		cmocka_unit_test(test_removed_window_answers_waiters),
	};

	return cmocka_run_group_tests_name("guest", tests, group_setup, group_teardown);
}
