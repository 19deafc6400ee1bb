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
