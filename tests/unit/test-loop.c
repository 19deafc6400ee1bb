// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the epoll main loop: dispatch, deferred removal, timers, signals, stop, no polling. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

/* Every epoll_wait of loop_run() must block without a timeout: record the timeouts used. */
int __real_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);
int __wrap_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);

static int wait_calls;
static int wait_nonblocking_calls;

int __wrap_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	wait_calls++;
	if (timeout != -1)
		wait_nonblocking_calls++;
	return __real_epoll_wait(epfd, events, maxevents, timeout);
}

struct fixture {
	struct loop *loop;
	int p1[2];
	int p2[2];
};

static int setup(void **state)
{
	static struct fixture f;

	f.loop = loop_new();
	assert_non_null(f.loop);
	assert_int_equal(pipe2(f.p1, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(pipe2(f.p2, O_NONBLOCK | O_CLOEXEC), 0);
	wait_calls = 0;
	wait_nonblocking_calls = 0;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	loop_free(f->loop);
	close(f->p1[0]);
	close(f->p1[1]);
	close(f->p2[0]);
	close(f->p2[1]);
	return 0;
}

struct counter {
	int calls;
	int fd;
	uint32_t events;
	struct loop_source *self;
	struct loop_source *victim;	/* removed by this callback */
	struct loop *loop;
};

static void count_cb(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct counter *c = data;

	c->calls++;
	c->fd = fd;
	c->events = events;
}

static void test_fd_dispatch(void **state)
{
	struct fixture *f = *state;
	struct counter c = { 0 };
	struct loop_source *src;

	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, count_cb, &c, &src), 0);
	assert_int_equal(loop_source_count(f->loop), 1);

	/* Nothing readable: nothing dispatched. */
	assert_int_equal(loop_iterate(f->loop, 0), 0);
	assert_int_equal(c.calls, 0);

	assert_int_equal(write(f->p1[1], "x", 1), 1);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.fd, f->p1[0]);
	assert_true(c.events & EPOLLIN);

	loop_remove(src);
	assert_int_equal(loop_source_count(f->loop), 0);
	/* Still readable, but no longer watched. */
	assert_int_equal(loop_iterate(f->loop, 0), 0);
	assert_int_equal(c.calls, 1);
}

static void test_fd_modify(void **state)
{
	struct fixture *f = *state;
	struct counter c = { 0 };
	struct loop_source *src;

	/* The write end of an empty pipe is writable, never readable. */
	assert_int_equal(loop_add_fd(f->loop, f->p1[1], EPOLLIN, count_cb, &c, &src), 0);
	assert_int_equal(loop_iterate(f->loop, 0), 0);
	assert_int_equal(loop_modify_fd(src, EPOLLOUT), 0);
	assert_int_equal(loop_iterate(f->loop, 0), 1);
	assert_int_equal(c.calls, 1);
	assert_true(c.events & EPOLLOUT);
}

static void remove_self_cb(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct counter *c = data;

	c->calls++;
	assert_ptr_equal(src, c->self);
	loop_remove(src);
	/* Removing twice is harmless. */
	loop_remove(src);
}

static void test_remove_self_during_dispatch(void **state)
{
	struct fixture *f = *state;
	struct counter c = { 0 };

	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, remove_self_cb, &c, &c.self), 0);
	assert_int_equal(write(f->p1[1], "x", 1), 1);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(c.calls, 1);
	/* Level-triggered and still readable, yet never called again. */
	assert_int_equal(loop_iterate(f->loop, 0), 0);
	assert_int_equal(c.calls, 1);
	assert_int_equal(loop_source_count(f->loop), 0);
}

static void remove_other_cb(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct counter *c = data;

	c->calls++;
	loop_remove(c->victim);
}

static void test_remove_other_during_dispatch(void **state)
{
	struct fixture *f = *state;
	struct counter a = { 0 }, b = { 0 };
	struct loop_source *sa, *sb;

	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, remove_other_cb, &a, &sa), 0);
	assert_int_equal(loop_add_fd(f->loop, f->p2[0], EPOLLIN, remove_other_cb, &b, &sb), 0);
	a.victim = sb;
	b.victim = sa;
	/* Both ready in the same batch: whichever runs first removes the other. */
	assert_int_equal(write(f->p1[1], "x", 1), 1);
	assert_int_equal(write(f->p2[1], "x", 1), 1);
	assert_int_equal(loop_iterate(f->loop, -1), 2);
	assert_int_equal(a.calls + b.calls, 1);
	assert_int_equal(loop_source_count(f->loop), 1);
}

struct reuse {
	struct loop *loop;
	struct loop_source *old;
	int *fd;		/* the watched fd, closed and reopened by the callback */
	int reader_calls;
	int new_calls;
	struct loop_source *fresh;
};

static void reuse_new_cb(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct reuse *r = data;

	r->new_calls++;
}

static void reuse_old_cb(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct reuse *r = data;
	int p[2];

	r->reader_calls++;
	/* Remove, close, and get the same fd number back for a new watch in the same batch. */
	loop_remove(src);
	close(fd);
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	assert_int_equal(p[0], fd);
	*r->fd = p[0];
	close(p[1]);	/* p[0] now reports EOF (readable) */
	assert_int_equal(loop_add_fd(r->loop, p[0], EPOLLIN, reuse_new_cb, r, &r->fresh), 0);
}

static void test_remove_close_reuse_fd(void **state)
{
	struct fixture *f = *state;
	struct reuse r = { .loop = f->loop, .fd = &f->p1[0] };

	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, reuse_old_cb, &r, &r.old), 0);
	assert_int_equal(write(f->p1[1], "x", 1), 1);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(r.reader_calls, 1);
	assert_int_equal(r.new_calls, 0);
	/* The new watch on the recycled fd number gets its own events. */
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(r.reader_calls, 1);
	assert_int_equal(r.new_calls, 1);
	loop_remove(r.fresh);
}

static void test_add_errors(void **state)
{
	struct fixture *f = *state;
	struct counter c = { 0 };
	struct loop_source *src;
	int bad;

	assert_int_equal(loop_add_fd(f->loop, -1, EPOLLIN, count_cb, &c, &src), -EINVAL);
	bad = dup(f->p1[0]);
	close(bad);
	assert_int_equal(loop_add_fd(f->loop, bad, EPOLLIN, count_cb, &c, &src), -EBADF);
	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, count_cb, &c, &src), 0);
	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, count_cb, &c, NULL), -EEXIST);
	assert_int_equal(loop_add_signal(f->loop, 0, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(loop_source_count(f->loop), 1);
}

struct tick {
	int calls;
	uint64_t expirations;
	int stop_after;
	struct loop *loop;
};

static void tick_cb(struct loop_source *src, uint64_t expirations, void *data)
{
	struct tick *t = data;

	t->calls++;
	t->expirations += expirations;
	if (t->stop_after && t->calls == t->stop_after)
		loop_stop(t->loop, 42);
}

static void test_timer_oneshot(void **state)
{
	struct fixture *f = *state;
	struct tick t = { 0 };
	struct loop_source *src;

	assert_int_equal(loop_add_timer(f->loop, 1000, 0, tick_cb, &t, &src), 0);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.expirations, 1);
	/* One-shot: disarmed now, nothing more arrives. */
	assert_int_equal(loop_iterate(f->loop, 20), 0);
	assert_int_equal(t.calls, 1);

	/* Re-armed "now", then disarmed before it is read: no callback. */
	assert_int_equal(loop_timer_set(src, 0, 0), 0);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(t.calls, 2);
	assert_int_equal(loop_timer_set(src, 0, 0), 0);
	assert_int_equal(loop_timer_set(src, LOOP_TIMER_DISARM, 0), 0);
	assert_int_equal(loop_iterate(f->loop, 20), 0);
	assert_int_equal(t.calls, 2);
	loop_remove(src);
	assert_int_equal(loop_source_count(f->loop), 0);
}

static int open_fds(void)
{
	int fd = dup(0), n = fd;

	close(fd);
	return n;	/* the lowest free fd number */
}

static int free_fd_after_remove;

static void remove_timer_cb(struct loop_source *src, uint64_t expirations, void *data)
{
	struct tick *t = data;

	t->calls++;
	loop_remove(src);
	free_fd_after_remove = open_fds();
}

static void test_timer_fd_closed_at_remove(void **state)
{
	struct fixture *f = *state;
	struct tick t = { 0 };
	int before = open_fds();

	/* Removed from its own callback: its timerfd is closed then, not at the batch's end. */
	assert_int_equal(loop_add_timer(f->loop, 0, 0, remove_timer_cb, &t, NULL), 0);
	assert_int_equal(open_fds(), before + 1);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(t.calls, 1);
	assert_int_equal(free_fd_after_remove, before);
	assert_int_equal(loop_source_count(f->loop), 0);
}

static void test_timer_periodic_and_stop(void **state)
{
	struct fixture *f = *state;
	struct tick t = { .stop_after = 3, .loop = f->loop };

	assert_int_equal(loop_add_timer(f->loop, 0, 2000, tick_cb, &t, NULL), 0);
	assert_int_equal(loop_run(f->loop), 42);
	assert_int_equal(t.calls, 3);
	assert_true(t.expirations >= 3);
	/* loop_run() slept in epoll_wait without a timeout each time. */
	assert_true(wait_calls >= 3);
	assert_int_equal(wait_nonblocking_calls, 0);
	assert_false(loop_stopped(f->loop));
}

struct sig {
	int calls;
	uint32_t signo;
	struct loop *loop;
};

static void sig_cb(struct loop_source *src, const struct signalfd_siginfo *si, void *data)
{
	struct sig *s = data;

	s->calls++;
	s->signo = si->ssi_signo;
	loop_stop(s->loop, (int)si->ssi_signo);
}

static bool signal_blocked(int signo)
{
	sigset_t cur;

	sigprocmask(SIG_BLOCK, NULL, &cur);
	return sigismember(&cur, signo) == 1;
}

static void test_signals(void **state)
{
	struct fixture *f = *state;
	struct sig s1 = { .loop = f->loop }, s2 = { .loop = f->loop };
	struct loop_source *a, *b;

	assert_int_equal(loop_add_signal(f->loop, SIGUSR1, sig_cb, &s1, &a), 0);
	assert_int_equal(loop_add_signal(f->loop, SIGUSR2, sig_cb, &s2, &b), 0);
	assert_int_equal(loop_add_signal(f->loop, SIGUSR1, sig_cb, &s1, NULL), -EBUSY);
	assert_true(signal_blocked(SIGUSR1));

	assert_int_equal(raise(SIGUSR2), 0);
	assert_int_equal(loop_run(f->loop), SIGUSR2);
	assert_int_equal(s2.calls, 1);
	assert_int_equal(s1.calls, 0);

	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(loop_run(f->loop), SIGUSR1);
	assert_int_equal(s1.calls, 1);
	assert_int_equal(s1.signo, SIGUSR1);

	/* Removal unblocks the signal again. */
	loop_remove(a);
	assert_false(signal_blocked(SIGUSR1));
	assert_true(signal_blocked(SIGUSR2));
	loop_remove(b);
	assert_false(signal_blocked(SIGUSR2));
	assert_int_equal(loop_source_count(f->loop), 0);
}

static void stop_cb(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct counter *c = data;
	char buf[8];

	c->calls++;
	assert_int_equal(read(fd, buf, sizeof(buf)), 1);
	loop_stop(c->loop, 7);
}

static void test_stop_from_fd_callback(void **state)
{
	struct fixture *f = *state;
	struct counter c = { .loop = f->loop };

	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, stop_cb, &c, NULL), 0);
	assert_int_equal(write(f->p1[1], "x", 1), 1);
	assert_int_equal(loop_run(f->loop), 7);
	assert_int_equal(c.calls, 1);
	/* The loop can run again after a stop. */
	assert_int_equal(write(f->p1[1], "y", 1), 1);
	assert_int_equal(loop_run(f->loop), 7);
	assert_int_equal(c.calls, 2);
}

static void test_free_with_sources(void **state)
{
	struct fixture *f = *state;
	struct counter c = { 0 };
	struct tick t = { 0 };
	struct sig s = { 0 };

	/* loop_free() (in teardown) releases whatever is still registered: ASan checks for leaks. */
	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, count_cb, &c, NULL), 0);
	assert_int_equal(loop_add_timer(f->loop, 1000000, 0, tick_cb, &t, NULL), 0);
	assert_int_equal(loop_add_signal(f->loop, SIGUSR1, sig_cb, &s, NULL), 0);
	assert_int_equal(loop_source_count(f->loop), 3);
	loop_free(f->loop);
	assert_false(signal_blocked(SIGUSR1));
	f->loop = loop_new();
	assert_non_null(f->loop);
}

/* A busy-poll handler that counts its phases and finds work on a given RUN call. */
struct poller {
	int begin, run, end;
	int work_at_run;		/* 0: never */
	bool work_at_end;
	bool remove_self;
	struct loop_source *self;
};

static bool poll_cb(struct loop_source *src, enum loop_poll_phase phase, void *data)
{
	struct poller *p = data;

	switch (phase) {
	case LOOP_POLL_BEGIN:
		assert_int_equal(p->begin, p->end);	/* spells do not nest */
		p->begin++;
		return false;
	case LOOP_POLL_RUN:
		assert_int_equal(p->begin, p->end + 1);	/* only inside a spell */
		p->run++;
		if (p->remove_self)
			loop_remove(src);
		return p->work_at_run && p->run == p->work_at_run;
	case LOOP_POLL_END:
		p->end++;
		return p->work_at_end;
	}
	return false;
}

static uint64_t poll_window(struct loop *loop)
{
	struct loop_poll_stats st;

	loop_get_poll_stats(loop, &st);
	return st.window_ns;
}

/* Until loop_set_poll_max(), handlers are never called and the loop sleeps as before. */
static void test_poll_off_by_default(void **state)
{
	struct fixture *f = *state;
	struct poller p = { 0 };
	struct counter c = { 0 };

	assert_int_equal(loop_add_poll(f->loop, poll_cb, &p, NULL), 0);
	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, count_cb, &c, NULL), 0);
	assert_int_equal(write(f->p1[1], "x", 1), 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(p.begin + p.run + p.end, 0);
	assert_int_equal(wait_nonblocking_calls, 0);
	assert_int_equal(loop_source_count(f->loop), 2);
}

/*
 * Events that come quickly grow the window from 0 (4 us, doubling, up to the
 * maximum); a wait longer than the maximum drops it to 0 again, so an idle
 * loop does not spin.  Every spell that ends without work ends with END.
 */
static void test_poll_window_adapts(void **state)
{
	struct fixture *f = *state;
	struct poller p = { 0 };
	struct counter c = { 0 };

	assert_int_equal(loop_add_poll(f->loop, poll_cb, &p, NULL), 0);
	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, count_cb, &c, NULL), 0);
	/* 1 s: a ready pipe comes within it however loaded the machine is. */
	loop_set_poll_max(f->loop, 1000000000);
	assert_int_equal(poll_window(f->loop), 0);
	assert_int_equal(write(f->p1[1], "x", 1), 1);	/* stays readable: count_cb does not read */
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(p.run, 0);			/* no window yet */
	assert_int_equal(poll_window(f->loop), 4000);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(poll_window(f->loop), 8000);	/* the spell found nothing: twice as long */
	for (int i = 0; i < 10; i++)
		assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(poll_window(f->loop), 8000u << 10);
	assert_true(p.run > 0);
	assert_int_equal(p.begin, p.end);
	/* A lower maximum caps the window at once. */
	loop_set_poll_max(f->loop, 100000);
	assert_int_equal(poll_window(f->loop), 100000);
	/* Nothing ready: the wait outlasts the 100 us maximum and polling stops. */
	assert_int_equal(read(f->p1[0], (char[8]){ 0 }, 8), 1);
	assert_int_equal(loop_iterate(f->loop, 30), 0);
	assert_int_equal(poll_window(f->loop), 0);
	assert_int_equal(p.begin, p.end);
}

/* A handler that finds work keeps the loop from sleeping, and its spell goes on (no END). */
static void test_poll_work_skips_sleep(void **state)
{
	struct fixture *f = *state;
	struct poller p = { .work_at_run = 3 };
	struct counter c = { 0 };

	assert_int_equal(loop_add_poll(f->loop, poll_cb, &p, NULL), 0);
	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, count_cb, &c, NULL), 0);
	loop_set_poll_max(f->loop, 1000000000);	/* 1 s: the third RUN comes first */
	assert_int_equal(write(f->p1[1], "x", 1), 1);
	assert_int_equal(loop_iterate(f->loop, -1), 1);	/* grows the window */
	assert_int_equal(read(f->p1[0], (char[8]){ 0 }, 8), 1);
	wait_nonblocking_calls = 0;
	assert_int_equal(loop_iterate(f->loop, -1), 0);	/* would sleep forever without the work */
	assert_int_equal(p.run, 3);
	assert_int_equal(p.begin, 1);
	assert_int_equal(p.end, 0);
	assert_int_equal(wait_nonblocking_calls, 1);
	/* Turning polling off ends the spell: the handler asks for notifications again. */
	loop_set_poll_max(f->loop, 0);
	assert_int_equal(p.end, 1);
}

/* Work found at END (it arrived as notifications were asked for again) also skips the sleep. */
static void test_poll_work_at_end_skips_sleep(void **state)
{
	struct fixture *f = *state;
	struct poller p = { .work_at_end = true };
	struct counter c = { 0 };

	assert_int_equal(loop_add_poll(f->loop, poll_cb, &p, NULL), 0);
	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, count_cb, &c, NULL), 0);
	loop_set_poll_max(f->loop, 1000000);
	assert_int_equal(write(f->p1[1], "x", 1), 1);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(read(f->p1[0], (char[8]){ 0 }, 8), 1);
	wait_nonblocking_calls = 0;
	assert_int_equal(loop_iterate(f->loop, -1), 0);
	assert_int_equal(p.end, 1);
	assert_int_equal(wait_nonblocking_calls, 1);
}

/* A handler may remove itself while polling: no call after that, and its memory goes at the end. */
static void test_poll_remove_self(void **state)
{
	struct fixture *f = *state;
	struct poller p = { .remove_self = true };
	struct counter c = { 0 };

	assert_int_equal(loop_add_poll(f->loop, poll_cb, &p, &p.self), 0);
	assert_int_equal(loop_add_fd(f->loop, f->p1[0], EPOLLIN, count_cb, &c, NULL), 0);
	loop_set_poll_max(f->loop, 1000000);
	assert_int_equal(write(f->p1[1], "x", 1), 1);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(p.run, 1);
	assert_int_equal(p.end, 0);			/* removed: not told */
	assert_int_equal(loop_source_count(f->loop), 1);
	assert_int_equal(loop_iterate(f->loop, -1), 1);
	assert_int_equal(p.run, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fd_dispatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_modify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_self_during_dispatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_other_during_dispatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_close_reuse_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_add_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_oneshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_periodic_and_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_fd_closed_at_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_from_fd_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_off_by_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_window_adapts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_work_skips_sleep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_work_at_end_skips_sleep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poll_remove_self, setup, teardown),
	};

	return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
