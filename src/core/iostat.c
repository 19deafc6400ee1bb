// SPDX-License-Identifier: GPL-2.0-only
/* Per-disk latency histograms and byte counts over a rotating one-minute window (see iostat.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "iostat.h"

/*
 * Buckets in microseconds: 0..7 one each, then four per power of two (8-9, 10-11, 12-13, 14-15,
 * 16-19, ...) up to 2^32 us (71 minutes; longer is counted there), so an upper bound is at most
 * 25% above any value in its bucket.
 */
#define IOSTAT_EXACT 8u
#define IOSTAT_SUB 4u
#define IOSTAT_MAX_LOG2 31u
#define IOSTAT_BUCKETS (IOSTAT_EXACT + (IOSTAT_MAX_LOG2 - 2) * IOSTAT_SUB)

struct iostat_slot {
	uint64_t epoch;			/* now_ns / IOSTAT_SLOT_NS of its requests */
	uint64_t bytes[IOSTAT_NR_DIRS];
	uint32_t count[IOSTAT_NR_DIRS];
	uint32_t bucket[IOSTAT_NR_DIRS][IOSTAT_BUCKETS];
};

struct iostat {
	uint64_t created_ns;
	struct iostat_slot slot[IOSTAT_SLOTS];
};

static unsigned int iostat_log2(uint64_t v)
{
	return 63u - (unsigned int)__builtin_clzll(v);
}

static unsigned int iostat_bucket(uint64_t us)
{
	unsigned int e;

	if (us < IOSTAT_EXACT)
		return (unsigned int)us;
	e = iostat_log2(us);
	if (e > IOSTAT_MAX_LOG2)
		return IOSTAT_BUCKETS - 1;
	/* e >= 3: the two bits below the leading one pick the quarter of [2^e, 2^(e+1)). */
	return IOSTAT_EXACT + (e - 3) * IOSTAT_SUB + (unsigned int)((us >> (e - 2)) & 3);
}

/* The largest value (us) that falls in bucket @b. */
static uint64_t iostat_bucket_upper(unsigned int b)
{
	unsigned int e, sub;

	if (b < IOSTAT_EXACT)
		return b;
	e = 3 + (b - IOSTAT_EXACT) / IOSTAT_SUB;
	sub = (b - IOSTAT_EXACT) % IOSTAT_SUB;
	return ((uint64_t)(IOSTAT_SUB + sub + 1) << (e - 2)) - 1;
}

struct iostat *iostat_new(uint64_t now_ns)
{
	struct iostat *s = calloc(1, sizeof(*s));
	unsigned int i;

	if (!s)
		return NULL;
	s->created_ns = now_ns;
	/* No slot holds an epoch yet: mark them all as far in the past. */
	for (i = 0; i < IOSTAT_SLOTS; i++)
		s->slot[i].epoch = UINT64_MAX;
	return s;
}

void iostat_free(struct iostat *s)
{
	free(s);
}

void iostat_record(struct iostat *s, enum iostat_dir dir, uint64_t now_ns, uint64_t latency_ns,
		   uint64_t bytes)
{
	uint64_t epoch = now_ns / IOSTAT_SLOT_NS;
	struct iostat_slot *sl = &s->slot[epoch % IOSTAT_SLOTS];

	if (sl->epoch != epoch) {
		memset(sl, 0, sizeof(*sl));
		sl->epoch = epoch;
	}
	sl->bytes[dir] += bytes;
	/* Saturate instead of wrapping: 2^32 requests in 10 s is beyond any disk. */
	if (sl->count[dir] == UINT32_MAX)
		return;
	sl->count[dir]++;
	sl->bucket[dir][iostat_bucket(latency_ns / 1000)]++;
}

static bool iostat_slot_live(const struct iostat_slot *sl, uint64_t epoch)
{
	return sl->epoch != UINT64_MAX && sl->epoch <= epoch && epoch - sl->epoch < IOSTAT_SLOTS;
}

/* The bucket bound holding the @permille'th of @n requests (rank rounded up). */
static uint64_t iostat_percentile(const uint64_t *hist, uint64_t n, unsigned int permille)
{
	uint64_t rank = (n * permille + 999) / 1000, seen = 0;
	unsigned int b;

	if (!n)
		return 0;
	for (b = 0; b < IOSTAT_BUCKETS; b++) {
		seen += hist[b];
		if (seen >= rank)
			return iostat_bucket_upper(b);
	}
	return iostat_bucket_upper(IOSTAT_BUCKETS - 1);
}

void iostat_get(const struct iostat *s, uint64_t now_ns, struct iostat_summary *ret_summary)
{
	uint64_t epoch = now_ns / IOSTAT_SLOT_NS, start, hist[IOSTAT_BUCKETS];
	struct iostat_summary sum;
	unsigned int d, i, b;

	memset(&sum, 0, sizeof(sum));
	/* The window starts with the oldest slot still counted, or at creation if later. */
	start = epoch >= IOSTAT_SLOTS - 1 ? (epoch - (IOSTAT_SLOTS - 1)) * IOSTAT_SLOT_NS : 0;
	if (start < s->created_ns)
		start = s->created_ns;
	sum.window_ns = now_ns > start ? now_ns - start : 0;
	for (d = 0; d < IOSTAT_NR_DIRS; d++) {
		struct iostat_dir_summary *ds = &sum.dir[d];

		memset(hist, 0, sizeof(hist));
		for (i = 0; i < IOSTAT_SLOTS; i++) {
			const struct iostat_slot *sl = &s->slot[i];

			if (!iostat_slot_live(sl, epoch))
				continue;
			ds->requests += sl->count[d];
			ds->bytes += sl->bytes[d];
			for (b = 0; b < IOSTAT_BUCKETS; b++)
				hist[b] += sl->bucket[d][b];
		}
		ds->p50_us = iostat_percentile(hist, ds->requests, 500);
		ds->p99_us = iostat_percentile(hist, ds->requests, 990);
		if (sum.window_ns)
			ds->bytes_per_second = (uint64_t)((double)ds->bytes * 1e9 / (double)sum.window_ns);
	}
	*ret_summary = sum;
}
