// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the guest-memory cache (src/xen/gmem.c) on simulated foreign memory: ranges across chunks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <xenforeignmemory.h>

#include "gmem.h"
#include "xensim.h"

#define RAM XSIM_GUEST_RAM_BASE
#define MIB (1u << 20)
#define CHUNK (GMEM_CHUNK_PAGES * 4096u)

static struct xensim_proc sim_proc;
static struct xensim *sim;
static xenforeignmemory_handle *fm;
static uint32_t domid;

static int group_setup(void **state)
{
	static const char *const args[] = { "--log-level", "err", NULL };

	if (xensim_spawn(XENSIM_BIN, args, &sim_proc) < 0 || xensim_connect(&sim) < 0)
		return -1;
	if (xensim_domain_create(sim, "vcpus=1,mem=4M", XSIM_CREATE_NO_WAIT, &domid, NULL) < 0)
		return -1;
	fm = xenforeignmemory_open(NULL, 0);
	return fm ? 0 : -1;
}

static int group_teardown(void **state)
{
	xenforeignmemory_close(fm);
	xensim_domain_destroy(sim, domid, false, NULL);
	xensim_disconnect(sim);
	return xensim_reap(&sim_proc) == 0 ? 0 : -1;
}

/* Fill [gpa, gpa + len) of the guest with a pattern that differs per byte offset and @seed. */
static uint8_t *pattern(uint64_t gpa, size_t len, unsigned int seed)
{
	uint8_t *b = malloc(len);

	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((gpa + i) * 131 + seed + ((gpa + i) >> 12));
	/* The control socket takes a page at a time. */
	for (size_t off = 0; off < len; off += 4096)
		assert_int_equal(xensim_guest_write(sim, domid, gpa + off, b + off,
						    len - off < 4096 ? len - off : 4096), 0);
	return b;
}

static struct gmem_stats stats(struct gmem *g)
{
	struct gmem_stats st;

	gmem_get_stats(g, &st);
	return st;
}

static void test_range_across_chunks_is_cached(void **state)
{
	/* 1 MiB starting 4 KiB before a chunk boundary: five chunks. */
	uint64_t gpa = RAM + CHUNK - 4096;
	uint8_t *want = pattern(gpa, MIB, 1), back[16];
	struct gmem *g;
	void *p, *q;

	assert_int_equal(gmem_new(fm, NULL, domid, 64, &g), 0);
	assert_int_equal(gmem_map(g, gpa, MIB, true, &p), 0);
	assert_memory_equal(p, want, MIB);
	assert_int_equal(stats(g).uncached, 0);
	assert_int_equal(stats(g).misses, 5);
	/* Written through the mapping, seen by the guest. */
	memcpy((uint8_t *)p + MIB - 16, "dom0 wrote this!", 16);
	assert_int_equal(xensim_guest_read(sim, domid, gpa + MIB - 16, back, 16), 0);
	assert_memory_equal(back, "dom0 wrote this!", 16);
	gmem_unmap(g, p, MIB);
	assert_int_equal(stats(g).live, 0);
	/* The same buffer again: served from the cache, no new mapping. */
	assert_int_equal(gmem_map(g, gpa, MIB, false, &q), 0);
	assert_ptr_equal(q, p);
	assert_int_equal(stats(g).misses, 5);
	assert_int_equal(stats(g).hits, 1);
	gmem_unmap(g, q, MIB);
	gmem_free(g);
	free(want);
}

static void test_chunk_alone_and_inside_a_run(void **state)
{
	uint64_t gpa = RAM + 4 * CHUNK;
	uint8_t *want = pattern(gpa, 2 * CHUNK, 2);
	struct gmem *g;
	uint8_t *one, *run;

	assert_int_equal(gmem_new(fm, NULL, domid, 8, &g), 0);
	/* The second chunk mapped alone, then as part of a two-chunk run: two slots, one memory. */
	assert_int_equal(gmem_map(g, gpa + CHUNK, 4096, true, (void **)&one), 0);
	assert_int_equal(gmem_map(g, gpa + 100, CHUNK, true, (void **)&run), 0);
	assert_memory_equal(run, want + 100, CHUNK);
	one[0] = 0x5a;
	assert_int_equal(run[CHUNK - 100], 0x5a);
	gmem_unmap(g, one, 4096);
	gmem_unmap(g, run, CHUNK);
	assert_int_equal(stats(g).live, 0);
	assert_int_equal(stats(g).uncached, 0);
	gmem_free(g);
	free(want);
}

static void test_run_without_free_slots_maps_uncached(void **state)
{
	uint64_t a = RAM + 8 * CHUNK, b = RAM + 12 * CHUNK;
	uint8_t *wa = pattern(a, 3 * CHUNK, 3), *wb = pattern(b, 3 * CHUNK, 4);
	struct gmem *g;
	void *pa, *pb, *pb2;

	/* Four slots: a three-chunk run in use leaves no room for another. */
	assert_int_equal(gmem_new(fm, NULL, domid, 4, &g), 0);
	assert_int_equal(gmem_map(g, a, 3 * CHUNK, true, &pa), 0);
	assert_int_equal(gmem_map(g, b, 3 * CHUNK, true, &pb), 0);
	assert_int_equal(stats(g).uncached, 1);
	assert_memory_equal(pa, wa, 3 * CHUNK);
	assert_memory_equal(pb, wb, 3 * CHUNK);
	gmem_unmap(g, pb, 3 * CHUNK);
	gmem_unmap(g, pa, 3 * CHUNK);
	/* Once the first is released, the second evicts it and is cached. */
	assert_int_equal(gmem_map(g, b, 3 * CHUNK, true, &pb2), 0);
	assert_memory_equal(pb2, wb, 3 * CHUNK);
	assert_int_equal(stats(g).uncached, 1);
	assert_true(stats(g).evictions >= 2);
	assert_true(stats(g).cached_chunks <= 4);
	gmem_unmap(g, pb2, 3 * CHUNK);
	assert_int_equal(stats(g).live, 0);
	gmem_free(g);
	free(wa);
	free(wb);
}

static void test_run_past_the_end_of_ram_fails(void **state)
{
	struct gmem *g;
	void *p;

	/* 4 MiB of RAM: the last 8 KiB of it and 8 KiB beyond. */
	assert_int_equal(gmem_new(fm, NULL, domid, 16, &g), 0);
	assert_int_equal(gmem_map(g, RAM + 4 * MIB - 8192, 16384, false, &p), -EFAULT);
	assert_int_equal(stats(g).live, 0);
	/* The part inside RAM still maps. */
	assert_int_equal(gmem_map(g, RAM + 4 * MIB - 8192, 8192, false, &p), 0);
	gmem_unmap(g, p, 8192);
	gmem_free(g);
}

static void test_many_runs_reuse_slots(void **state)
{
	struct gmem *g;
	unsigned int i;

	/* Runs all over RAM through a small cache: slots are reused, nothing leaks. */
	assert_int_equal(gmem_new(fm, NULL, domid, 6, &g), 0);
	for (i = 0; i < 200; i++) {
		uint64_t gpa = RAM + (uint64_t)(i * 7 % 13) * CHUNK + (i % 5) * 4096;
		void *p;

		assert_int_equal(gmem_map(g, gpa, 2 * CHUNK, i % 2, &p), 0);
		gmem_unmap(g, p, 2 * CHUNK);
	}
	assert_int_equal(stats(g).live, 0);
	assert_int_equal(stats(g).uncached, 0);
	assert_true(stats(g).cached_chunks <= 6);
	gmem_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_across_chunks_is_cached),
		cmocka_unit_test(test_chunk_alone_and_inside_a_run),
		cmocka_unit_test(test_run_without_free_slots_maps_uncached),
		cmocka_unit_test(test_run_past_the_end_of_ram_fails),
		cmocka_unit_test(test_many_runs_reuse_slots),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
