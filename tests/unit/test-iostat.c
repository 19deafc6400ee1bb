// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests of iostat: percentiles, bytes per second and the rotating one-minute window, on an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "iostat.h"

#define S 1000000000ull
#define US 1000ull

/* The clock starts past zero, as CLOCK_MONOTONIC does, and not on a slot boundary. */
#define T0 (1000 * S + 3 * S)

static void test_empty(void **state)
{
	struct iostat *s = iostat_new(T0);
	struct iostat_summary sum;

	assert_non_null(s);
	iostat_get(s, T0 + 5 * S, &sum);
	assert_int_equal(sum.dir[IOSTAT_READ].requests, 0);
	assert_int_equal(sum.dir[IOSTAT_READ].p50_us, 0);
	assert_int_equal(sum.dir[IOSTAT_WRITE].p99_us, 0);
	assert_int_equal(sum.dir[IOSTAT_WRITE].bytes_per_second, 0);
	assert_int_equal(sum.window_ns, 5 * S);
	iostat_free(s);
}

/* Reported percentiles are bucket upper bounds: never below the truth, at most 25% above. */
static void assert_near(uint64_t got, uint64_t want)
{
	if (got < want || got > want + want / 4) {
		print_error("percentile %llu, want %llu..%llu\n", (unsigned long long)got,
			    (unsigned long long)want, (unsigned long long)(want + want / 4));
		fail();
	}
}

static void test_percentiles(void **state)
{
	struct iostat *s = iostat_new(T0);
	struct iostat_summary sum;
	int i;

	/* Reads: 98 at 100 us, 2 at 20 ms.  Writes: 50 at 3 us, 50 at 1 s. */
	for (i = 0; i < 98; i++)
		iostat_record(s, IOSTAT_READ, T0 + S, 100 * US, 4096);
	for (i = 0; i < 2; i++)
		iostat_record(s, IOSTAT_READ, T0 + S, 20000 * US, 4096);
	for (i = 0; i < 50; i++)
		iostat_record(s, IOSTAT_WRITE, T0 + S, 3 * US, 512);
	for (i = 0; i < 50; i++)
		iostat_record(s, IOSTAT_WRITE, T0 + S, S, 512);
	iostat_get(s, T0 + 2 * S, &sum);
	assert_int_equal(sum.dir[IOSTAT_READ].requests, 100);
	assert_int_equal(sum.dir[IOSTAT_READ].bytes, 409600);
	assert_near(sum.dir[IOSTAT_READ].p50_us, 100);
	assert_near(sum.dir[IOSTAT_READ].p99_us, 20000);
	assert_int_equal(sum.dir[IOSTAT_WRITE].requests, 100);
	assert_int_equal(sum.dir[IOSTAT_WRITE].p50_us, 3);		/* exact below 8 us */
	assert_near(sum.dir[IOSTAT_WRITE].p99_us, 1000000);
	iostat_free(s);
}

/* Every value lands in a bucket whose bound is within 25% above it, up to the last bucket. */
static void test_bucket_bounds(void **state)
{
	uint64_t us;

	for (us = 1; us < (1ull << 32); us = us * 5 / 4 + 1) {
		struct iostat *s = iostat_new(T0);
		struct iostat_summary sum;

		iostat_record(s, IOSTAT_READ, T0, us * US, 0);
		iostat_get(s, T0, &sum);
		assert_near(sum.dir[IOSTAT_READ].p50_us, us);
		iostat_free(s);
	}
}

/* 10 MiB read over the disk's first 10 s: 1 MiB/s; writes apart. */
static void test_bytes_per_second(void **state)
{
	struct iostat *s = iostat_new(T0);
	struct iostat_summary sum;
	int i;

	for (i = 0; i < 10; i++)
		iostat_record(s, IOSTAT_READ, T0 + (uint64_t)i * S, 100 * US, 1 << 20);
	iostat_record(s, IOSTAT_WRITE, T0 + S, 100 * US, 5000);
	iostat_get(s, T0 + 10 * S, &sum);
	assert_int_equal(sum.window_ns, 10 * S);
	assert_int_equal(sum.dir[IOSTAT_READ].bytes_per_second, 1 << 20);
	assert_int_equal(sum.dir[IOSTAT_WRITE].bytes_per_second, 500);
	iostat_free(s);
}

/* After a minute without IO everything reads zero; IO 50-60 s ago still counts. */
static void test_window_rotation(void **state)
{
	struct iostat *s = iostat_new(T0);
	struct iostat_summary sum;

	iostat_record(s, IOSTAT_WRITE, T0, 5000 * US, 1 << 20);
	iostat_get(s, T0 + 50 * S, &sum);
	assert_int_equal(sum.dir[IOSTAT_WRITE].requests, 1);
	assert_near(sum.dir[IOSTAT_WRITE].p99_us, 5000);
	/* The window is at most a minute long, whatever the disk's age. */
	iostat_get(s, T0 + 59 * S, &sum);
	assert_true(sum.window_ns <= 60 * S);
	iostat_get(s, T0 + 61 * S, &sum);
	assert_int_equal(sum.dir[IOSTAT_WRITE].requests, 0);
	assert_int_equal(sum.dir[IOSTAT_WRITE].bytes_per_second, 0);
	assert_int_equal(sum.dir[IOSTAT_WRITE].p99_us, 0);
	assert_true(sum.window_ns >= 50 * S && sum.window_ns <= 60 * S);

	/* A slot reused a minute later starts empty: the old request is not counted again. */
	iostat_record(s, IOSTAT_WRITE, T0 + 60 * S, 7 * US, 100);
	iostat_get(s, T0 + 61 * S, &sum);
	assert_int_equal(sum.dir[IOSTAT_WRITE].requests, 1);
	assert_int_equal(sum.dir[IOSTAT_WRITE].bytes, 100);
	assert_int_equal(sum.dir[IOSTAT_WRITE].p99_us, 7);
	/* An hour later, nothing. */
	iostat_get(s, T0 + 3600 * S, &sum);
	assert_int_equal(sum.dir[IOSTAT_WRITE].requests, 0);
	iostat_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_percentiles),
		cmocka_unit_test(test_bucket_bounds),
		cmocka_unit_test(test_bytes_per_second),
		cmocka_unit_test(test_window_rotation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
