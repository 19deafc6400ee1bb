// SPDX-License-Identifier: GPL-2.0-only
/* One epoll set for every event source of the daemon; removal during dispatch is deferred. */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

#define LOOP_MAX_EVENTS 64

enum loop_kind {
	LOOP_KIND_FD,
	LOOP_KIND_TIMER,
	LOOP_KIND_SIGNAL,
	LOOP_KIND_SIGNALFD,	/* the loop's own signalfd, shared by all signal sources */
	LOOP_KIND_POLL,		/* a busy-poll handler (loop_add_poll()), no fd */
};

/* QEMU's defaults for an IOThread's adaptive polling (util/aio-posix.c): start at 4 us, double. */
#define LOOP_POLL_GROW_FROM_NS 4000u

struct loop_source {
	struct loop *loop;
	enum loop_kind kind;
	int fd;
	bool removed;
	bool polled;		/* registered with epoll */
	int signo;
	union {
		loop_fd_fn fd_fn;
		loop_timer_fn timer_fn;
		loop_signal_fn signal_fn;
		loop_poll_fn poll_fn;
	};
	void *data;
	struct loop_source *poll_next;	/* the loop's poll handlers */
	struct loop_source **poll_pprev;
	struct loop_source *next;	/* all sources, or the garbage list once removed */
	struct loop_source **pprev;
};

struct loop {
	int epfd;
	bool stopped;
	int exit_code;
	unsigned int dispatching;	/* > 0 while a batch is being dispatched */
	unsigned int count;
	struct loop_source *sources;
	struct loop_source *garbage;
	/* Signals: one signalfd, one handler per signal number. */
	struct loop_source *sigfd_src;
	sigset_t sigmask;
	struct loop_source *sig_handlers[_NSIG];
	/* Busy polling before sleeping (loop_set_poll_max()). */
	struct loop_source *pollers;
	uint64_t poll_max_ns;
	uint64_t poll_ns;		/* the current window, adapted between 0 and poll_max_ns */
	bool poll_started;		/* handlers told BEGIN and not END yet */
	struct loop_poll_stats poll_stats;
};

static void loop_link(struct loop_source **head, struct loop_source *src)
{
	src->next = *head;
	if (*head)
		(*head)->pprev = &src->next;
	*head = src;
	src->pprev = head;
}

static void loop_unlink(struct loop_source *src)
{
	*src->pprev = src->next;
	if (src->next)
		src->next->pprev = src->pprev;
	src->next = NULL;
	src->pprev = NULL;
}

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));

	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int err = errno;

		free(loop);
		errno = err;
		return NULL;
	}
	sigemptyset(&loop->sigmask);
	return loop;
}

static void loop_source_release(struct loop_source *src)
{
	if (src->kind == LOOP_KIND_POLL) {
		*src->poll_pprev = src->poll_next;
		if (src->poll_next)
			src->poll_next->poll_pprev = src->poll_pprev;
	}
	if (src->kind != LOOP_KIND_FD && src->fd >= 0)
		close(src->fd);
	free(src);
}

void loop_free(struct loop *loop)
{
	struct loop_source *src;

	if (!loop)
		return;
	while ((src = loop->sources))
		loop_remove(src);
	while ((src = loop->garbage)) {
		loop_unlink(src);
		loop_source_release(src);
	}
	close(loop->epfd);
	free(loop);
}

static int loop_register(struct loop *loop, struct loop_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, src->fd, &ev) < 0)
		return -errno;
	src->polled = true;
	loop_link(&loop->sources, src);
	if (src->kind != LOOP_KIND_SIGNALFD)
		loop->count++;
	return 0;
}

static struct loop_source *loop_source_new(struct loop *loop, enum loop_kind kind, int fd,
					   void *data)
{
	struct loop_source *src = calloc(1, sizeof(*src));

	if (!src)
		return NULL;
	src->loop = loop;
	src->kind = kind;
	src->fd = fd;
	src->signo = -1;
	src->data = data;
	return src;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *data,
		struct loop_source **ret_src)
{
	struct loop_source *src;
	int r;

	if (!loop || fd < 0 || !fn)
		return -EINVAL;
	src = loop_source_new(loop, LOOP_KIND_FD, fd, data);
	if (!src)
		return -ENOMEM;
	src->fd_fn = fn;
	r = loop_register(loop, src, events);
	if (r < 0) {
		free(src);
		return r;
	}
	if (ret_src)
		*ret_src = src;
	return 0;
}

int loop_modify_fd(struct loop_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (!src || src->kind != LOOP_KIND_FD || src->removed)
		return -EINVAL;
	if (epoll_ctl(src->loop->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0)
		return -errno;
	return 0;
}

static void loop_us_to_timespec(uint64_t us, struct timespec *ts)
{
	ts->tv_sec = (time_t)(us / 1000000u);
	ts->tv_nsec = (long)(us % 1000000u) * 1000;
}

int loop_timer_set(struct loop_source *src, uint64_t first_us, uint64_t interval_us)
{
	struct itimerspec its = { 0 };

	if (!src || src->kind != LOOP_KIND_TIMER || src->removed)
		return -EINVAL;
	if (first_us != LOOP_TIMER_DISARM) {
		loop_us_to_timespec(first_us, &its.it_value);
		/* An all-zero it_value would disarm the timer: "now" is 1 ns. */
		if (first_us == 0)
			its.it_value.tv_nsec = 1;
		loop_us_to_timespec(interval_us, &its.it_interval);
	}
	if (timerfd_settime(src->fd, 0, &its, NULL) < 0)
		return -errno;
	return 0;
}

int loop_add_timer(struct loop *loop, uint64_t first_us, uint64_t interval_us, loop_timer_fn fn,
		   void *data, struct loop_source **ret_src)
{
	struct loop_source *src;
	int fd, r;

	if (!loop || !fn)
		return -EINVAL;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	src = loop_source_new(loop, LOOP_KIND_TIMER, fd, data);
	if (!src) {
		close(fd);
		return -ENOMEM;
	}
	src->timer_fn = fn;
	r = loop_timer_set(src, first_us, interval_us);
	if (r < 0)
		goto err_free;
	r = loop_register(loop, src, EPOLLIN);
	if (r < 0)
		goto err_free;
	if (ret_src)
		*ret_src = src;
	return 0;

err_free:
	loop_source_release(src);
	return r;
}

/* Point the signalfd (creating it on first use) at the current set and block that set. */
static int loop_update_signals(struct loop *loop)
{
	int fd;

	if (sigprocmask(SIG_BLOCK, &loop->sigmask, NULL) < 0)
		return -errno;
	fd = signalfd(loop->sigfd_src ? loop->sigfd_src->fd : -1, &loop->sigmask,
		      SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (!loop->sigfd_src) {
		struct loop_source *src = loop_source_new(loop, LOOP_KIND_SIGNALFD, fd, NULL);
		int r;

		if (!src) {
			close(fd);
			return -ENOMEM;
		}
		r = loop_register(loop, src, EPOLLIN);
		if (r < 0) {
			loop_source_release(src);
			return r;
		}
		loop->sigfd_src = src;
	}
	return 0;
}

int loop_add_signal(struct loop *loop, int signo, loop_signal_fn fn, void *data,
		    struct loop_source **ret_src)
{
	struct loop_source *src;
	sigset_t one;
	int r;

	if (!loop || !fn || signo <= 0 || signo >= _NSIG)
		return -EINVAL;
	if (loop->sig_handlers[signo])
		return -EBUSY;
	src = loop_source_new(loop, LOOP_KIND_SIGNAL, -1, data);
	if (!src)
		return -ENOMEM;
	src->signal_fn = fn;
	src->signo = signo;

	if (sigaddset(&loop->sigmask, signo) < 0) {
		free(src);
		return -EINVAL;
	}
	r = loop_update_signals(loop);
	if (r < 0) {
		sigdelset(&loop->sigmask, signo);
		sigemptyset(&one);
		sigaddset(&one, signo);
		sigprocmask(SIG_UNBLOCK, &one, NULL);
		free(src);
		return r;
	}
	loop->sig_handlers[signo] = src;
	loop_link(&loop->sources, src);
	loop->count++;
	if (ret_src)
		*ret_src = src;
	return 0;
}

static void loop_remove_signal(struct loop *loop, struct loop_source *src)
{
	sigset_t one;

	loop->sig_handlers[src->signo] = NULL;
	sigdelset(&loop->sigmask, src->signo);
	/* A signal still pending stays pending: unblocking delivers it with its default action. */
	sigemptyset(&one);
	sigaddset(&one, src->signo);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	if (loop->sigfd_src)
		signalfd(loop->sigfd_src->fd, &loop->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigisemptyset(&loop->sigmask) && loop->sigfd_src) {
		struct loop_source *sfd = loop->sigfd_src;

		loop->sigfd_src = NULL;
		loop_remove(sfd);
	}
}

void loop_remove(struct loop_source *src)
{
	struct loop *loop;

	if (!src || src->removed)
		return;
	loop = src->loop;
	src->removed = true;
	if (src->polled) {
		/* Stop polling now: the caller may close the fd as soon as we return. */
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, src->fd, NULL);
		src->polled = false;
	}
	if (src->kind == LOOP_KIND_SIGNAL)
		loop_remove_signal(loop, src);
	if (src == loop->sigfd_src)
		loop->sigfd_src = NULL;
	/* The loop's own fds (timers, signals) go now; only the memory waits for the batch's end. */
	if (src->kind != LOOP_KIND_FD && src->fd >= 0) {
		close(src->fd);
		src->fd = -1;
	}
	if (src->kind != LOOP_KIND_SIGNALFD)
		loop->count--;

	loop_unlink(src);
	if (loop->dispatching) {
		/* Events for it may still sit in the current batch: free after the batch. */
		loop_link(&loop->garbage, src);
		return;
	}
	loop_source_release(src);
}

static void loop_dispatch_timer(struct loop_source *src)
{
	uint64_t expirations;
	ssize_t n = read(src->fd, &expirations, sizeof(expirations));

	/* EAGAIN: re-armed or disarmed between readiness and the read; nothing to report. */
	if (n != (ssize_t)sizeof(expirations) || expirations == 0)
		return;
	src->timer_fn(src, expirations, src->data);
}

static void loop_dispatch_signals(struct loop *loop, struct loop_source *sfd)
{
	struct signalfd_siginfo si;

	while (!sfd->removed) {
		ssize_t n = read(sfd->fd, &si, sizeof(si));
		struct loop_source *src;

		if (n != (ssize_t)sizeof(si))
			break;
		if (si.ssi_signo >= _NSIG)
			continue;
		src = loop->sig_handlers[si.ssi_signo];
		if (src && !src->removed)
			src->signal_fn(src, &si, src->data);
	}
}

int loop_add_poll(struct loop *loop, loop_poll_fn fn, void *data, struct loop_source **ret_src)
{
	struct loop_source *src = loop_source_new(loop, LOOP_KIND_POLL, -1, data);

	if (!src)
		return -ENOMEM;
	src->poll_fn = fn;
	loop_link(&loop->sources, src);
	loop->count++;
	src->poll_next = loop->pollers;
	if (loop->pollers)
		loop->pollers->poll_pprev = &src->poll_next;
	loop->pollers = src;
	src->poll_pprev = &loop->pollers;
	if (ret_src)
		*ret_src = src;
	return 0;
}

static bool loop_poll_all(struct loop *loop, enum loop_poll_phase phase);

void loop_set_poll_max(struct loop *loop, uint64_t max_ns)
{
	if (!max_ns && loop->poll_started) {
		/* The handlers ask for notifications again before the loop next sleeps. */
		loop->poll_started = false;
		loop->dispatching++;
		loop_poll_all(loop, LOOP_POLL_END);
		loop->dispatching--;
	}
	loop->poll_max_ns = max_ns;
	if (loop->poll_ns > max_ns)
		loop->poll_ns = max_ns;
}

void loop_get_poll_stats(const struct loop *loop, struct loop_poll_stats *ret_stats)
{
	*ret_stats = loop->poll_stats;
	ret_stats->window_ns = loop->poll_ns;
}

static uint64_t loop_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Every live poll handler in @phase; true if one found work. */
static bool loop_poll_all(struct loop *loop, enum loop_poll_phase phase)
{
	bool progress = false;

	for (struct loop_source *src = loop->pollers; src; src = src->poll_next) {
		if (!src->removed)
			progress |= src->poll_fn(src, phase, src->data);
	}
	return progress;
}

/*
 * Poll the handlers for up to the current window.  True when one found work
 * (the loop then only looks at its fds without sleeping); false when the
 * window passed without any: the handlers have been told END, and the loop
 * may sleep.
 */
static bool loop_busy_poll(struct loop *loop, uint64_t start)
{
	uint64_t deadline = start + loop->poll_ns;
	bool progress;

	loop->dispatching++;
	if (!loop->poll_started) {
		loop->poll_started = true;
		loop_poll_all(loop, LOOP_POLL_BEGIN);
	}
	do {
		loop->poll_stats.polls++;
		progress = loop_poll_all(loop, LOOP_POLL_RUN);
	} while (!progress && loop_now_ns() < deadline);
	if (!progress) {
		loop->poll_started = false;
		progress = loop_poll_all(loop, LOOP_POLL_END);
	}
	loop->dispatching--;
	if (progress)
		loop->poll_stats.hits++;
	return progress;
}

/*
 * QEMU's adaptation (util/aio-posix.c, adjust_polling_time()): an event that
 * came within the window needs no change; one that took longer than the
 * maximum means polling is a waste here (stop); one in between, a longer window.
 */
static void loop_adapt_poll(struct loop *loop, uint64_t waited_ns)
{
	if (waited_ns <= loop->poll_ns)
		return;
	if (waited_ns > loop->poll_max_ns) {
		loop->poll_ns = 0;
		return;
	}
	loop->poll_ns = loop->poll_ns ? loop->poll_ns * 2 : LOOP_POLL_GROW_FROM_NS;
	if (loop->poll_ns > loop->poll_max_ns)
		loop->poll_ns = loop->poll_max_ns;
}

/* Poll before sleeping when that is on; then wait for the fds (not at all after polling found work). */
static int loop_wait(struct loop *loop, struct epoll_event *events, int timeout_ms)
{
	bool poll = timeout_ms != 0 && loop->poll_max_ns && loop->pollers;
	uint64_t start = 0;
	int n;

	if (poll) {
		start = loop_now_ns();
		if (loop->poll_ns && loop_busy_poll(loop, start))
			timeout_ms = 0;
	}
	n = epoll_wait(loop->epfd, events, LOOP_MAX_EVENTS, timeout_ms);
	if (poll && timeout_ms != 0)
		loop_adapt_poll(loop, loop_now_ns() - start);
	else if (poll)
		loop_adapt_poll(loop, 0);
	return n;
}

int loop_iterate(struct loop *loop, int timeout_ms)
{
	struct epoll_event events[LOOP_MAX_EVENTS];
	struct loop_source *src;
	int n, i;

	n = loop_wait(loop, events, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;

	loop->dispatching++;
	for (i = 0; i < n; i++) {
		src = events[i].data.ptr;
		if (src->removed)
			continue;	/* removed by an earlier callback of this batch */
		switch (src->kind) {
		case LOOP_KIND_FD:
			src->fd_fn(src, src->fd, events[i].events, src->data);
			break;
		case LOOP_KIND_TIMER:
			loop_dispatch_timer(src);
			break;
		case LOOP_KIND_SIGNALFD:
			loop_dispatch_signals(loop, src);
			break;
		case LOOP_KIND_SIGNAL:
		case LOOP_KIND_POLL:
			assert(!"signal and poll sources are never in epoll");
			break;
		}
	}
	loop->dispatching--;

	if (!loop->dispatching) {
		while ((src = loop->garbage)) {
			loop_unlink(src);
			loop_source_release(src);
		}
	}
	return n;
}

int loop_run(struct loop *loop)
{
	int r;

	while (!loop->stopped) {
		r = loop_iterate(loop, -1);
		if (r < 0) {
			loop->stopped = false;
			return r;
		}
	}
	loop->stopped = false;	/* the loop may be run again */
	return loop->exit_code;
}

void loop_stop(struct loop *loop, int code)
{
	loop->stopped = true;
	loop->exit_code = code;
}

bool loop_stopped(const struct loop *loop)
{
	return loop->stopped;
}

unsigned int loop_source_count(const struct loop *loop)
{
	return loop->count;
}
