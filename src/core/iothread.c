// SPDX-License-Identifier: GPL-2.0-only
/* IO threads, each waiting in its own loop, and the eventfd-and-queue channel that brings them work. */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "iothread.h"
#include "loop.h"
#include "util.h"

struct iothread {
	struct loop *loop;
	bool own;			/* a thread of ours (iothread_new()), not an attached loop */
	bool started;
	pthread_t thread;
	clockid_t cpu_clock;
	char name[16];
	int efd;			/* readable when work is queued */
	struct loop_source *efd_src;
	struct iothread_work stop;
	/* The channel: a queue under a lock taken by producers and the consumer only. */
	pthread_mutex_t lock;
	pthread_cond_t done;		/* a synchronous call finished, or the loop halted */
	struct iothread_work *head;
	struct iothread_work **tail;
	bool halted;			/* out of its loop for good: calls only */
	bool exiting;			/* iothread_free(): the thread ends */
};

/* The channel the calling thread runs (its own, or the one it attached), NULL if none. */
static __thread struct iothread *iothread_self;

/* A synchronous call (iothread_call()), on its caller's stack. */
struct iothread_sync {
	struct iothread_work w;
	struct iothread *t;
	void (*fn)(void *data);
	void *data;
	bool finished;			/* under t->lock */
};

unsigned int iothread_run_queued(struct iothread *t)
{
	unsigned int n = 0;

	for (;;) {
		struct iothread_work *w;

		pthread_mutex_lock(&t->lock);
		w = t->head;
		if (w) {
			t->head = w->next;
			if (!t->head)
				t->tail = &t->head;
			w->next = NULL;
			w->queued = false;
		}
		pthread_mutex_unlock(&t->lock);
		if (!w)
			return n;
		/* Unlocked: @fn may queue (even @w again) or cancel. */
		w->fn(w);
		n++;
	}
}

static void iothread_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	uint64_t v;

	/* EAGAIN: a wake-up whose work an earlier batch already ran. */
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	iothread_run_queued(data);
}

bool iothread_queue(struct iothread *t, struct iothread_work *w)
{
	uint64_t one = 1;

	pthread_mutex_lock(&t->lock);
	if (w->queued) {
		pthread_mutex_unlock(&t->lock);
		return false;
	}
	w->queued = true;
	w->next = NULL;
	*t->tail = w;
	t->tail = &w->next;
	pthread_mutex_unlock(&t->lock);
	/* EAGAIN: the counter is full, so the loop is to wake anyway. */
	if (write(t->efd, &one, sizeof(one)) < 0)
		assert(errno == EAGAIN);
	return true;
}

void iothread_cancel(struct iothread *t, struct iothread_work *w)
{
	struct iothread_work **p;

	pthread_mutex_lock(&t->lock);
	for (p = &t->head; w->queued && *p; p = &(*p)->next) {
		if (*p != w)
			continue;
		*p = w->next;
		if (!*p)
			t->tail = p;
		w->next = NULL;
		w->queued = false;
		break;
	}
	pthread_mutex_unlock(&t->lock);
}

static void iothread_sync_run(struct iothread_work *w)
{
	struct iothread_sync *s = container_of(w, struct iothread_sync, w);
	struct iothread *t = s->t;

	s->fn(s->data);
	/* After this, @s (the caller's stack) is gone at any moment: @t was read before. */
	pthread_mutex_lock(&t->lock);
	s->finished = true;
	pthread_cond_broadcast(&t->done);
	pthread_mutex_unlock(&t->lock);
}

void iothread_call(struct iothread *t, void (*fn)(void *data), void *data)
{
	struct iothread_sync s = { .w.fn = iothread_sync_run, .t = t, .fn = fn, .data = data };

	if (iothread_self == t) {
		fn(data);
		return;
	}
	assert(!iothread_self || !iothread_self->own);
	iothread_queue(t, &s.w);
	pthread_mutex_lock(&t->lock);
	while (!s.finished)
		pthread_cond_wait(&t->done, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

static void iothread_stop(struct iothread_work *w)
{
	struct iothread *t = container_of(w, struct iothread, stop);

	loop_stop(t->loop, 0);
}

/* The channel's eventfd on @t->loop; the loop is @t's (or the caller's). */
static int iothread_init(struct iothread *t, struct loop *loop)
{
	int r;

	t->loop = loop;
	t->tail = &t->head;
	t->stop.fn = iothread_stop;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->done, NULL);
	t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->efd < 0)
		return -errno;
	r = loop_add_fd(loop, t->efd, EPOLLIN, iothread_ready, t, &t->efd_src);
	if (r < 0) {
		close(t->efd);
		t->efd = -1;
	}
	return r;
}

static void iothread_fini(struct iothread *t)
{
	loop_remove(t->efd_src);
	if (t->efd >= 0)
		close(t->efd);
	pthread_cond_destroy(&t->done);
	pthread_mutex_destroy(&t->lock);
	if (t->own)
		loop_free(t->loop);
	free(t);
}

int iothread_attach(struct loop *loop, struct iothread **ret_thread)
{
	struct iothread *t = calloc(1, sizeof(*t));
	int r;

	if (!t)
		return -ENOMEM;
	t->efd = -1;
	r = iothread_init(t, loop);
	if (r < 0) {
		iothread_fini(t);
		return r;
	}
	snprintf(t->name, sizeof(t->name), "main");
	iothread_self = t;
	*ret_thread = t;
	return 0;
}

static bool iothread_exiting(struct iothread *t)
{
	bool exiting;

	pthread_mutex_lock(&t->lock);
	exiting = t->exiting;
	pthread_mutex_unlock(&t->lock);
	return exiting;
}

static void *iothread_main(void *arg)
{
	struct iothread *t = arg;

	iothread_self = t;
	loop_run(t->loop);
	pthread_mutex_lock(&t->lock);
	t->halted = true;
	pthread_cond_broadcast(&t->done);
	pthread_mutex_unlock(&t->lock);
	/* Halted (iothread_halt()): no source of the loop is looked at, calls still run. */
	while (!iothread_exiting(t)) {
		struct pollfd p = { .fd = t->efd, .events = POLLIN };
		uint64_t v;

		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		if (read(t->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			break;
		iothread_run_queued(t);
	}
	return NULL;
}

void iothread_halt(struct iothread *t)
{
	if (!t->started)
		return;
	iothread_queue(t, &t->stop);
	pthread_mutex_lock(&t->lock);
	while (!t->halted)
		pthread_cond_wait(&t->done, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

/* Start @t's thread with every signal blocked (it inherits the mask of its creator). */
static int iothread_start(struct iothread *t)
{
	sigset_t all, old;
	int r;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = -pthread_create(&t->thread, NULL, iothread_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		return r;
	t->started = true;
	pthread_setname_np(t->thread, t->name);
	if (pthread_getcpuclockid(t->thread, &t->cpu_clock) != 0)
		t->cpu_clock = (clockid_t)-1;
	return 0;
}

int iothread_new(const char *name, struct iothread **ret_thread)
{
	struct iothread *t = calloc(1, sizeof(*t));
	struct loop *loop;
	int r;

	if (!t)
		return -ENOMEM;
	t->own = true;
	t->efd = -1;
	snprintf(t->name, sizeof(t->name), "%s", name);
	loop = loop_new();
	if (!loop) {
		free(t);
		return -ENOMEM;
	}
	r = iothread_init(t, loop);
	if (r == 0)
		r = iothread_start(t);
	if (r < 0) {
		iothread_fini(t);
		return r;
	}
	*ret_thread = t;
	return 0;
}

void iothread_free(struct iothread *t)
{
	if (!t)
		return;
	if (t->started) {
		pthread_mutex_lock(&t->lock);
		t->exiting = true;
		pthread_mutex_unlock(&t->lock);
		iothread_queue(t, &t->stop);
		pthread_join(t->thread, NULL);
	}
	if (iothread_self == t)
		iothread_self = NULL;
	/* Dropped: nothing runs on a thread that is gone (their owners cancelled theirs). */
	pthread_mutex_lock(&t->lock);
	while (t->head) {
		struct iothread_work *w = t->head;

		t->head = w->next;
		w->next = NULL;
		w->queued = false;
	}
	t->tail = &t->head;
	pthread_mutex_unlock(&t->lock);
	iothread_fini(t);
}

struct loop *iothread_loop(const struct iothread *t)
{
	return t->loop;
}

const char *iothread_name(const struct iothread *t)
{
	return t->name;
}

bool iothread_is_current(const struct iothread *t)
{
	return iothread_self == t;
}

uint64_t iothread_cpu_ns(const struct iothread *t)
{
	struct timespec ts;

	if (!t->started || t->cpu_clock == (clockid_t)-1 || clock_gettime(t->cpu_clock, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
