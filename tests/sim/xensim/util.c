// SPDX-License-Identifier: GPL-2.0-only
/* Shared helpers of the xensim process: the big lock and its condition, clocks, report buffers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

pthread_mutex_t sim_lock = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t sim_cond;
unsigned int sim_timeout_ms = 5000;
unsigned int sim_libxl_timeout_ms = 10000;

void sim_init(void)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&sim_cond, &a);
	pthread_condattr_destroy(&a);
}

uint64_t sim_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

bool sim_cond_wait_until(uint64_t deadline_us)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline_us / 1000000),
			       .tv_nsec = (long)(deadline_us % 1000000) * 1000 };

	if (sim_now_us() >= deadline_us)
		return false;
	pthread_cond_timedwait(&sim_cond, &sim_lock, &ts);
	return sim_now_us() < deadline_us;
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!b)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->s && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = (b->cap ? b->cap * 2 : 256) + (size_t)n;
			char *s = realloc(b->s, cap);

			if (!s)
				return;
			b->s = s;
			b->cap = cap;
		}
	}
}
