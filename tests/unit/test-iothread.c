// SPDX-License-Identifier: GPL-2.0-only
/* Tests of IO threads and their command channel: calls, queued work, cancel, signals, names, stop. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "iothread.h"
#include "loop.h"
#include "util.h"

/* What a function run on a thread saw there. */
struct probe {
	pthread_t self;
	char name[16];
	bool sigterm_blocked;
	bool current;
	struct iothread *t;
	unsigned int runs;
};

static void probe_run(void *data)
{
	struct probe *p = data;
	sigset_t mask;

	p->self = pthread_self();
	prctl(PR_GET_NAME, p->name);
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	p->sigterm_blocked = sigismember(&mask, SIGTERM) == 1;
	p->current = iothread_is_current(p->t);
	p->runs++;
}

static void test_call_runs_on_the_named_thread_signals_blocked(void **state)
{
	struct probe p = { 0 };
	struct iothread *t;

	assert_int_equal(iothread_new("vblkd-io7", &t), 0);
	p.t = t;
	iothread_call(t, probe_run, &p);
	assert_int_equal(p.runs, 1);
	assert_false(pthread_equal(p.self, pthread_self()));
	assert_string_equal(p.name, "vblkd-io7");
	assert_string_equal(iothread_name(t), "vblkd-io7");
	assert_true(p.sigterm_blocked);
	assert_true(p.current);
	assert_false(iothread_is_current(t));
	iothread_free(t);
}

/* A call from the thread itself (e.g. inside another call) runs at once instead of waiting for ever. */
struct nested {
	struct iothread *t;
	struct probe inner;
};

static void nested_run(void *data)
{
	struct nested *n = data;

	n->inner.t = n->t;
	iothread_call(n->t, probe_run, &n->inner);
}

static void test_call_from_its_own_thread_runs_at_once(void **state)
{
	struct nested n = { 0 };

	assert_int_equal(iothread_new("vblkd-io0", &n.t), 0);
	iothread_call(n.t, nested_run, &n);
	assert_int_equal(n.inner.runs, 1);
	assert_true(n.inner.current);
	iothread_free(n.t);
}

struct counter {
	struct iothread_work w;
	unsigned int runs;
	unsigned int order;
	unsigned int *clock;
};

static void counter_run(struct iothread_work *w)
{
	struct counter *c = container_of(w, struct counter, w);

	c->runs++;
	c->order = ++*c->clock;
}

static void nothing(void *data)
{
}

/* Queued work runs in order, once however often it was queued before it ran. */
static void test_queued_work_runs_once_in_order(void **state)
{
	unsigned int clock = 0;
	struct counter a = { .w.fn = counter_run, .clock = &clock };
	struct counter b = { .w.fn = counter_run, .clock = &clock };
	struct iothread *t;
	struct loop *main_loop = loop_new();
	struct iothread *m;

	assert_non_null(main_loop);
	assert_int_equal(iothread_attach(main_loop, &m), 0);
	assert_true(iothread_queue(m, &a.w));
	assert_true(iothread_queue(m, &b.w));
	assert_false(iothread_queue(m, &a.w));
	assert_int_equal(a.runs + b.runs, 0);	/* not before the loop gets to it */
	assert_true(loop_iterate(main_loop, 1000) > 0);
	assert_int_equal(a.runs, 1);
	assert_int_equal(b.runs, 1);
	assert_true(a.order < b.order);
	/* On a thread: the call after the queued work sees it done (one queue, in order). */
	assert_int_equal(iothread_new("vblkd-io1", &t), 0);
	assert_true(iothread_queue(t, &a.w));
	iothread_call(t, nothing, NULL);
	assert_int_equal(a.runs, 2);
	iothread_free(t);
	iothread_free(m);
	loop_free(main_loop);
}

static void test_cancelled_work_never_runs(void **state)
{
	unsigned int clock = 0;
	struct counter a = { .w.fn = counter_run, .clock = &clock };
	struct counter b = { .w.fn = counter_run, .clock = &clock };
	struct counter c = { .w.fn = counter_run, .clock = &clock };
	struct loop *main_loop = loop_new();
	struct iothread *m;

	assert_int_equal(iothread_attach(main_loop, &m), 0);
	iothread_queue(m, &a.w);
	iothread_queue(m, &b.w);
	iothread_queue(m, &c.w);
	iothread_cancel(m, &c.w);	/* the last: the queue's tail moves back */
	iothread_cancel(m, &a.w);	/* the first */
	iothread_cancel(m, &a.w);	/* not queued: nothing */
	assert_true(iothread_queue(m, &a.w));
	assert_int_equal(iothread_run_queued(m), 2);
	assert_int_equal(a.runs, 1);
	assert_int_equal(b.runs, 1);
	assert_int_equal(c.runs, 0);
	assert_true(b.order < a.order);
	iothread_free(m);
	loop_free(main_loop);
}

/* A timer added to the thread's loop by a call fires on that thread. */
struct tick {
	struct iothread *t;
	struct loop_source *src;
	struct probe p;
	unsigned int seen;	/* p.runs, read on the thread by tick_check() */
};

static void tick_fired(struct loop_source *src, uint64_t expirations, void *data)
{
	struct tick *k = data;

	probe_run(&k->p);
}

static void tick_add(void *data)
{
	struct tick *k = data;

	k->p.t = k->t;
	assert_int_equal(loop_add_timer(iothread_loop(k->t), 1000, 0, tick_fired, k, &k->src), 0);
}

static void tick_check(void *data)
{
	struct tick *k = data;

	k->seen = k->p.runs;
	if (k->seen)
		loop_remove(k->src);
}

static void tick_remove(void *data)
{
	struct tick *k = data;

	loop_remove(k->src);
}

static void test_sources_of_its_loop_fire_on_the_thread(void **state)
{
	struct tick k = { 0 };

	assert_int_equal(iothread_new("vblkd-io2", &k.t), 0);
	iothread_call(k.t, tick_add, &k);
	for (int i = 0; i < 2000; i++) {
		iothread_call(k.t, tick_check, &k);
		if (k.seen)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	assert_int_equal(k.p.runs, 1);
	assert_true(k.p.current);
	assert_string_equal(k.p.name, "vblkd-io2");
	iothread_free(k.t);
}

/* Halted: its loop's sources wait (a timer does not fire), calls still run on the thread. */
static void test_halted_thread_runs_calls_not_sources(void **state)
{
	struct tick k = { 0 };
	struct probe p = { 0 };

	assert_int_equal(iothread_new("vblkd-io5", &k.t), 0);
	iothread_halt(k.t);
	iothread_call(k.t, tick_add, &k);	/* a 1 ms timer */
	nanosleep(&(struct timespec){ .tv_nsec = 30000000 }, NULL);
	iothread_call(k.t, tick_check, &k);
	assert_int_equal(k.seen, 0);
	p.t = k.t;
	iothread_call(k.t, probe_run, &p);
	assert_int_equal(p.runs, 1);
	assert_true(p.current);
	assert_string_equal(p.name, "vblkd-io5");
	iothread_call(k.t, tick_remove, &k);
	iothread_free(k.t);
}

static void spin(void *data)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	do
		clock_gettime(CLOCK_MONOTONIC, &b);
	while ((b.tv_sec - a.tv_sec) * 1000000000l + (b.tv_nsec - a.tv_nsec) < 20000000l);
}

/* The thread's own CPU time, for --status and the benchmark's utilisation. */
static void test_cpu_time_is_the_threads(void **state)
{
	struct iothread *t, *m;
	struct loop *main_loop = loop_new();
	uint64_t before;

	assert_int_equal(iothread_new("vblkd-io3", &t), 0);
	assert_int_equal(iothread_attach(main_loop, &m), 0);
	before = iothread_cpu_ns(t);
	iothread_call(t, spin, NULL);
	assert_true(iothread_cpu_ns(t) - before >= 5000000u);
	assert_int_equal(iothread_cpu_ns(m), 0);
	iothread_free(t);
	iothread_free(m);
	loop_free(main_loop);
}

/* Many producers at once: every piece of work runs, none twice (run under ThreadSanitizer too). */
struct producer {
	struct iothread *t;
	struct counter c[64];
	unsigned int clock;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (unsigned int i = 0; i < ARRAY_SIZE(p->c); i++) {
		p->c[i].w.fn = counter_run;
		p->c[i].clock = &p->clock;
		iothread_queue(p->t, &p->c[i].w);
		if (i % 16 == 0)
			iothread_call(p->t, nothing, NULL);
	}
	return NULL;
}

static void test_concurrent_producers(void **state)
{
	struct producer p[3] = { 0 };
	pthread_t th[3];
	struct iothread *t;

	assert_int_equal(iothread_new("vblkd-io4", &t), 0);
	for (int i = 0; i < 3; i++) {
		p[i].t = t;
		assert_int_equal(pthread_create(&th[i], NULL, produce, &p[i]), 0);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	iothread_call(t, nothing, NULL);	/* after everything queued before it */
	for (int i = 0; i < 3; i++)
		for (unsigned int j = 0; j < ARRAY_SIZE(p[i].c); j++)
			assert_int_equal(p[i].c[j].runs, 1);
	iothread_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_call_runs_on_the_named_thread_signals_blocked),
		cmocka_unit_test(test_call_from_its_own_thread_runs_at_once),
		cmocka_unit_test(test_queued_work_runs_once_in_order),
		cmocka_unit_test(test_cancelled_work_never_runs),
		cmocka_unit_test(test_sources_of_its_loop_fire_on_the_thread),
		cmocka_unit_test(test_halted_thread_runs_calls_not_sources),
		cmocka_unit_test(test_cpu_time_is_the_threads),
		cmocka_unit_test(test_concurrent_producers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
