/* SPDX-License-Identifier: GPL-2.0-only */
/* IO threads: a thread running its own loop, and the command channel through which work reaches a loop. */
#ifndef VBLKD_IOTHREAD_H
#define VBLKD_IOTHREAD_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct iothread;

/*
 * A piece of work for a loop's thread, embedded in the object it works on
 * (so queueing it never fails).  Set @fn, and nothing else, before queueing.
 */
struct iothread_work {
	void (*fn)(struct iothread_work *w);
	/* private, under the channel's lock */
	struct iothread_work *next;
	bool queued;
};

/*
 * A thread named @name ("vblkd-io0": at most 15 characters) waiting in a loop
 * of its own.  It starts with every signal blocked: signals stay with the
 * thread that created it.  -errno on failure.
 */
int iothread_new(const char *name, struct iothread **ret_thread);
/*
 * A channel to the calling thread's @loop (the main loop), with no thread of
 * its own: work queued to it runs from that loop.  The loop must outlive it.
 */
int iothread_attach(struct loop *loop, struct iothread **ret_thread);
/*
 * Stop the thread after its current batch and join it (an attached channel:
 * just close it); work still queued is dropped, not run.  NULL is fine.
 * The caller removed its sources from the thread's loop, which is freed.
 */
void iothread_free(struct iothread *t);

/*
 * Take @t's thread out of its loop for good and wait until it is: none of
 * the loop's sources is dispatched any more (as when the main loop has
 * stopped), while iothread_call() and queued work still run there.  For
 * releasing what it served synchronously, at exit.  Nothing for an
 * attached channel.
 */
void iothread_halt(struct iothread *t);

struct loop *iothread_loop(const struct iothread *t);
const char *iothread_name(const struct iothread *t);
/* Whether the calling thread is @t's (for an attached channel: the thread that attached it). */
bool iothread_is_current(const struct iothread *t);
/* CPU time the thread used so far, in nanoseconds (0 for an attached channel). */
uint64_t iothread_cpu_ns(const struct iothread *t);

/*
 * Run @w->fn(@w) on @t's thread, from its loop, soon.  From any thread.
 * False when @w was queued already and has not run yet: it then runs once.
 */
bool iothread_queue(struct iothread *t, struct iothread_work *w);
/* Take @w off @t's queue if it is there (it then does not run).  From any thread. */
void iothread_cancel(struct iothread *t, struct iothread_work *w);
/*
 * Run what is queued for @t now, on the calling thread, which must be @t's
 * (e.g. the main thread once its loop stopped).  Returns how many ran.
 */
unsigned int iothread_run_queued(struct iothread *t);

/*
 * Run @fn(@data) on @t's thread and wait until it returned: everything @fn
 * touches of the caller's is the caller's still (it waits), and what @fn
 * touches of @t's thread is that thread's (it runs there).  On @t's own
 * thread, @fn runs at once.  An IO thread never calls another thread this
 * way (two threads waiting for each other would never return): it queues.
 */
void iothread_call(struct iothread *t, void (*fn)(void *data), void *data);

#endif
