/* SPDX-License-Identifier: GPL-2.0-only */
/* The epoll main loop: fd watches, timerfd timers, signalfd signals, deferred removal, clean stop. */
#ifndef VBLKD_LOOP_H
#define VBLKD_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

struct loop;
struct loop_source;

/* @events is the EPOLL* mask that was reported. */
typedef void (*loop_fd_fn)(struct loop_source *src, int fd, uint32_t events, void *data);
/* @expirations is how many times the timer expired since it was last reported (>= 1). */
typedef void (*loop_timer_fn)(struct loop_source *src, uint64_t expirations, void *data);
typedef void (*loop_signal_fn)(struct loop_source *src, const struct signalfd_siginfo *si,
			       void *data);

struct loop *loop_new(void);
/* Frees every source still registered (closing the timer and signal fds, not watched fds). */
void loop_free(struct loop *loop);

/*
 * Watch @fd (owned by the caller, who closes it after loop_remove()) for
 * @events (EPOLLIN, EPOLLOUT, ...).  @ret_src may be NULL when the watch
 * lives as long as the loop.
 */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *data,
		struct loop_source **ret_src);
int loop_modify_fd(struct loop_source *src, uint32_t events);

/*
 * A CLOCK_MONOTONIC timer on its own timerfd: first expiry after @first_us
 * (0 = as soon as possible), then every @interval_us (0 = one-shot; it then
 * stays registered, disarmed, until re-armed or removed).
 */
int loop_add_timer(struct loop *loop, uint64_t first_us, uint64_t interval_us, loop_timer_fn fn,
		   void *data, struct loop_source **ret_src);
/* Re-arm a timer, or disarm it with first_us == LOOP_TIMER_DISARM. */
#define LOOP_TIMER_DISARM UINT64_MAX
int loop_timer_set(struct loop_source *src, uint64_t first_us, uint64_t interval_us);

/*
 * Deliver @signo through the loop's signalfd: the signal is blocked for the
 * process (call before starting threads) and unblocked again on removal.
 * One handler per signal.
 */
int loop_add_signal(struct loop *loop, int signo, loop_signal_fn fn, void *data,
		    struct loop_source **ret_src);

/*
 * Busy polling (off until loop_set_poll_max()): before it sleeps, the loop
 * calls every poll handler with LOOP_POLL_RUN, again and again for up to a
 * window, until one returns true (it found work: a ring with new buffers, say;
 * the loop then dispatches whatever fds are ready without sleeping and polls
 * again).  A polling spell starts with LOOP_POLL_BEGIN (a handler stops asking
 * for notifications: it is looking by itself) and ends, before the loop
 * sleeps, with LOOP_POLL_END (it asks again; true if work arrived meanwhile,
 * and then the loop does not sleep).  The window adapts as QEMU's does
 * (util/aio-posix.c): it grows from 4 us, doubling, while events come within
 * the maximum, and drops to 0 (no polling, until events come quickly again)
 * when one took longer: an idle loop does not spin.  Removing a handler calls
 * nothing: its owner restores notifications itself if its device lives on.
 */
enum loop_poll_phase {
	LOOP_POLL_BEGIN,
	LOOP_POLL_RUN,
	LOOP_POLL_END,
};
typedef bool (*loop_poll_fn)(struct loop_source *src, enum loop_poll_phase phase, void *data);
int loop_add_poll(struct loop *loop, loop_poll_fn fn, void *data, struct loop_source **ret_src);
/* The largest polling window, in nanoseconds; 0 (the default) turns polling off. */
void loop_set_poll_max(struct loop *loop, uint64_t max_ns);

struct loop_poll_stats {
	uint64_t polls;		/* rounds of LOOP_POLL_RUN calls */
	uint64_t hits;		/* polling spells that found work (RUN or END) */
	uint64_t window_ns;	/* the current window */
};
void loop_get_poll_stats(const struct loop *loop, struct loop_poll_stats *ret_stats);

/*
 * Remove any source.  Safe from inside any callback, for the running source or
 * another one: the source gets no further callbacks, and its memory is freed
 * once the current dispatch batch ends.  An fd watch stops being polled at
 * once, so the caller may close the fd right after this returns; a timer's
 * own fd is closed at once.
 */
void loop_remove(struct loop_source *src);

/* Sleep until sources are ready and dispatch them, until loop_stop(); returns its code. */
int loop_run(struct loop *loop);
/* Make loop_run() return @code after the current batch. */
void loop_stop(struct loop *loop, int code);
bool loop_stopped(const struct loop *loop);

/*
 * Wait at most @timeout_ms (-1: forever) and dispatch one batch.  Returns the
 * number of events dispatched or -errno.  For tests and for callers that
 * must drive the loop themselves; the daemon uses loop_run().
 */
int loop_iterate(struct loop *loop, int timeout_ms);

/* Number of registered sources, removed ones excluded (for leak checks). */
unsigned int loop_source_count(const struct loop *loop);

#endif
