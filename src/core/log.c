// SPDX-License-Identifier: GPL-2.0-only
/* Logging to stderr or the journal stream, with levels and a rate limiter for guest-triggered lines. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char *log_ident = "vblkd";
static enum log_level log_max_level = LOG_LEVEL_INFO;
static int log_fd = -1;
static bool log_journal_auto;
static int log_journal_forced = -1;

static uint64_t log_clock_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t (*log_now_ns)(void) = log_clock_monotonic;

static int log_out_fd(void)
{
	return log_fd >= 0 ? log_fd : STDERR_FILENO;
}

/*
 * systemd sets JOURNAL_STREAM="<dev>:<ino>" for a service whose stderr is
 * connected to the journal; it only counts if stderr is still that stream
 * (see systemd.exec(5)).
 */
static bool log_detect_journal(int fd)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(fd, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident)
{
	if (ident)
		log_ident = ident;
	log_journal_auto = log_detect_journal(log_out_fd());
}

void log_set_level(enum log_level level)
{
	log_max_level = level;
}

bool log_enabled(enum log_level level)
{
	return level <= log_max_level;
}

static const struct {
	const char *name;
	enum log_level level;
} log_level_names[] = {
	{ "err", LOG_LEVEL_ERR },     { "error", LOG_LEVEL_ERR },   { "warning", LOG_LEVEL_WARNING },
	{ "warn", LOG_LEVEL_WARNING }, { "notice", LOG_LEVEL_NOTICE }, { "info", LOG_LEVEL_INFO },
	{ "debug", LOG_LEVEL_DEBUG },
};

int log_parse_level(const char *s, enum log_level *ret_level)
{
	size_t i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(log_level_names); i++) {
		if (!strcasecmp(s, log_level_names[i].name)) {
			*ret_level = log_level_names[i].level;
			return 0;
		}
	}
	if (s[0] >= '3' && s[0] <= '7' && s[1] == '\0') {
		*ret_level = (enum log_level)(s[0] - '0');
		return 0;
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERR:
		return "error";
	case LOG_LEVEL_WARNING:
		return "warning";
	case LOG_LEVEL_NOTICE:
		return "notice";
	case LOG_LEVEL_INFO:
		return "info";
	case LOG_LEVEL_DEBUG:
		return "debug";
	}
	return "unknown";
}

void log_set_fd(int fd)
{
	log_fd = fd;
	log_journal_auto = log_detect_journal(log_out_fd());
}

void log_set_journal(int on)
{
	log_journal_forced = on;
}

static bool log_use_journal(void)
{
	return log_journal_forced >= 0 ? log_journal_forced : log_journal_auto;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	/* One write per line, so lines of concurrent writers never interleave. */
	char buf[2048];
	size_t n, cap = sizeof(buf) - 1;	/* room for the newline */
	int saved_errno = errno, r;
	va_list ap;

	if (!log_enabled(level))
		return;

	if (log_use_journal())
		r = snprintf(buf, cap, "<%d>", (int)level);
	else if (level <= LOG_LEVEL_WARNING || level == LOG_LEVEL_DEBUG)
		r = snprintf(buf, cap, "%s: %s: ", log_ident, log_level_name(level));
	else
		r = snprintf(buf, cap, "%s: ", log_ident);
	n = r < 0 ? 0 : (size_t)r;	/* the prefix is short: never truncated */

	va_start(ap, fmt);
	errno = saved_errno;	/* so %m works */
	r = vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
	if (r < 0) {
		r = 0;
	} else if ((size_t)r >= cap - n) {
		/* Truncated: vsnprintf filled up to cap - 1; say so in the line. */
		n = cap - 1;
		memcpy(buf + n - 3, "...", 3);
		r = 0;
	}
	n += (size_t)r;
	/* Strip trailing newlines the caller may have added: we add exactly one. */
	while (n > 0 && buf[n - 1] == '\n')
		n--;
	buf[n++] = '\n';

	for (size_t off = 0; off < n;) {
		ssize_t w = write(log_out_fd(), buf + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;	/* nowhere left to report it */
		off += (size_t)w;
	}
	errno = saved_errno;
}

void log_set_clock(uint64_t (*now_ns)(void))
{
	log_now_ns = now_ns ? now_ns : log_clock_monotonic;
}

bool log_ratelimit_ok(struct log_ratelimit *rl)
{
	uint64_t now = log_now_ns();

	if (rl->interval_ns == 0 || rl->burst == 0)
		return true;

	if (rl->begin_ns == 0 || now - rl->begin_ns >= rl->interval_ns) {
		unsigned int suppressed = rl->suppressed;

		rl->begin_ns = now ? now : 1;
		rl->printed = 0;
		rl->suppressed = 0;
		if (suppressed)
			log_msg(LOG_LEVEL_WARNING, "%u similar messages suppressed", suppressed);
	}
	if (rl->printed < rl->burst) {
		rl->printed++;
		return true;
	}
	rl->suppressed++;
	return false;
}
