/* SPDX-License-Identifier: GPL-2.0-only */
/* Logging: levels, journald priority prefixes, and rate limiting for guest-triggered messages. */
#ifndef VBLKD_LOG_H
#define VBLKD_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* Values are syslog priorities, so they double as journald's "<N>" prefixes. */
enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/*
 * Pick the output style from the environment: "<N>" prefixes when stderr is
 * the journal stream (JOURNAL_STREAM names stderr's device and inode), plain
 * "vblkd: warning: ..." text otherwise.  Call again after redirecting stderr.
 */
void log_init(const char *ident);

/* Messages above @level are dropped.  Default: LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Parse "err", "warning", "notice", "info", "debug" (or 3..7). */
int log_parse_level(const char *s, enum log_level *ret_level);
const char *log_level_name(enum log_level level);

/* Send output to @fd instead of stderr (tests, --foreground into a file); -1 restores stderr. */
void log_set_fd(int fd);

/* Force (1) or forbid (0) journald prefixes; -1 returns to auto-detection. */
void log_set_journal(int on);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                            \
	do {                                                                                      \
		if (log_enabled(LOG_LEVEL_DEBUG))                                                 \
			log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                                    \
	} while (0)

/*
 * Rate limiter for messages a guest can trigger in a loop: at most @burst
 * messages per @interval_ms; when a new interval starts after drops, one line
 * says how many were suppressed.  Embed one per message source (per device),
 * so one noisy guest cannot silence another's warnings.
 */
struct log_ratelimit {
	uint64_t interval_ns;
	unsigned int burst;
	/* private */
	uint64_t begin_ns;
	unsigned int printed;
	unsigned int suppressed;
};

#define LOG_RATELIMIT_INIT(interval_ms, burst_) \
	{ .interval_ns = (uint64_t)(interval_ms) * 1000000ull, .burst = (burst_) }

/* Default for guest-triggered warnings: 10 lines per 5 seconds per source. */
#define LOG_RATELIMIT_GUEST LOG_RATELIMIT_INIT(5000, 10)

/* True if a message may be printed now. */
bool log_ratelimit_ok(struct log_ratelimit *rl);

#define log_ratelimited(rl, level, ...)                                                           \
	do {                                                                                      \
		if (log_enabled(level) && log_ratelimit_ok(rl))                                   \
			log_msg((level), __VA_ARGS__);                                            \
	} while (0)

/* Clock used by the rate limiter (CLOCK_MONOTONIC ns); tests substitute their own. */
void log_set_clock(uint64_t (*now_ns)(void));

#endif
