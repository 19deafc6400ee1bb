/* SPDX-License-Identifier: GPL-2.0-only */
/* Recent IO of one disk: latency percentiles and bytes per second over the last minute, reads and writes apart. */
#ifndef VBLKD_IOSTAT_H
#define VBLKD_IOSTAT_H

#include <stdint.h>

enum iostat_dir {
	IOSTAT_READ,
	IOSTAT_WRITE,
};
#define IOSTAT_NR_DIRS 2

/* The window: IOSTAT_SLOTS slots of IOSTAT_SLOT_NS; the oldest slot is dropped as a new one begins. */
#define IOSTAT_SLOT_NS (10ull * 1000000000ull)
#define IOSTAT_SLOTS 6

struct iostat_dir_summary {
	uint64_t requests;		/* completed in the window */
	uint64_t bytes;			/* transferred by those that succeeded */
	uint64_t bytes_per_second;	/* bytes / the window's length */
	/*
	 * Latency percentiles in microseconds, 0 without requests: the upper bound of a
	 * logarithmic bucket, at most 25% above the true value (exact below 8 us).
	 */
	uint64_t p50_us, p99_us;
};

struct iostat_summary {
	struct iostat_dir_summary dir[IOSTAT_NR_DIRS];
	uint64_t window_ns;		/* 50-60 s; less while the disk is younger than that */
};

struct iostat;

/* Times are of a monotonic clock, in ns, given by the caller (tests inject their own). */
struct iostat *iostat_new(uint64_t now_ns);
void iostat_free(struct iostat *s);

/* One request completed at @now_ns after @latency_ns, having moved @bytes. */
void iostat_record(struct iostat *s, enum iostat_dir dir, uint64_t now_ns, uint64_t latency_ns,
		   uint64_t bytes);

/* The last minute as of @now_ns. */
void iostat_get(const struct iostat *s, uint64_t now_ns, struct iostat_summary *ret_summary);

#endif
