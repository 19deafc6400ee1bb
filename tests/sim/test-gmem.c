// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the guest memory cache (src/xen/gmem.c) on a simulated guest's RAM: chunks, runs, eviction, invalidation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gmem.h"
#include "xensim.h"

/* The simulator's guest RAM starts at 0x40000000 (tests/sim/README.md). */
#define RAM 0x40000000ull
#define RAM_SIZE (32ull << 20)
#define CHUNK (64ull * 4096)
#define MIB (1u << 20)

static struct xensim_proc proc;
static struct xensim *sim;
static xenforeignmemory_handle *fmem;
static uint32_t domid;

static int group_setup(void **state)
{
	static const char *const args[] = { "--log-level", "err", NULL };

	if (xensim_spawn(XENSIM_BIN, args, &proc) < 0 || xensim_connect(&sim) < 0)
		return -1;
	if (xensim_domain_create(sim, "vcpus=1,mem=32M", XSIM_CREATE_NO_WAIT, &domid, NULL) < 0)
		return -1;
	fmem = xenforeignmemory_open(NULL, 0);
	return fmem ? 0 : -1;
}

static int group_teardown(void **state)
{
	xenforeignmemory_close(fmem);
	xensim_domain_destroy(sim, domid, false, NULL);
	xensim_disconnect(sim);
	return xensim_reap(&proc) == 0 ? 0 : -1;
}

/* The daemon's mappings of the simulator's guest RAM (one line per mapped range). */
static unsigned int ram_maps(void)
{
	char line[512];
	unsigned int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "xensim-guest-ram") != NULL;
	fclose(f);
	return n;
}

static void guest_write(uint64_t gpa, const void *buf, size_t len)
{
	assert_int_equal(xensim_guest_write(sim, domid, gpa, buf, len), 0);
}

static void guest_read(uint64_t gpa, void *buf, size_t len)
{
	assert_int_equal(xensim_guest_read(sim, domid, gpa, buf, len), 0);
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

	assert_int_equal(gmem_new(fmem, NULL, domid, 64, &g), 0);
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

	assert_int_equal(gmem_new(fmem, NULL, domid, 8, &g), 0);
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
	assert_int_equal(gmem_new(fmem, NULL, domid, 4, &g), 0);
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

	/* The last 8 KiB of RAM and 8 KiB beyond: a run across the end. */
	assert_int_equal(gmem_new(fmem, NULL, domid, 16, &g), 0);
	assert_int_equal(gmem_map(g, RAM + RAM_SIZE - 8192, 16384, false, &p), -EFAULT);
	assert_int_equal(stats(g).live, 0);
	/* The part inside RAM still maps. */
	assert_int_equal(gmem_map(g, RAM + RAM_SIZE - 8192, 8192, false, &p), 0);
	gmem_unmap(g, p, 8192);
	gmem_free(g);
}

static void test_many_runs_reuse_slots(void **state)
{
	struct gmem *g;
	unsigned int i;

	/* Runs all over RAM through a small cache: slots are reused, nothing leaks. */
	assert_int_equal(gmem_new(fmem, NULL, domid, 6, &g), 0);
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

static struct gmem *new_gmem(unsigned int chunks)
{
	struct gmem *g = NULL;

	assert_int_equal(gmem_new(fmem, NULL, domid, chunks, &g), 0);
	return g;
}

static void test_map_sees_guest_bytes_both_ways(void **state)
{
	struct gmem *g = new_gmem(8);
	char buf[64];
	void *p;

	guest_write(RAM + 0x5010, "written by the guest", 21);
	assert_int_equal(gmem_map(g, RAM + 0x5010, 21, true, &p), 0);
	assert_string_equal(p, "written by the guest");
	memcpy(p, "written by the daemon", 22);
	gmem_unmap(g, p, 21);
	guest_read(RAM + 0x5010, buf, 22);
	assert_string_equal(buf, "written by the daemon");
	gmem_free(g);
}

static void test_cache_hits(void **state)
{
	struct gmem *g = new_gmem(8);
	struct gmem_stats st;
	void *a, *b;

	/* Two ranges in one 256 KiB chunk: one mapping hypercall, then a hit. */
	assert_int_equal(gmem_map(g, RAM + 0x1000, 512, false, &a), 0);
	assert_int_equal(gmem_map(g, RAM + 0x9000, 4096, true, &b), 0);
	assert_ptr_equal((uint8_t *)b - (uint8_t *)a, 0x8000);
	gmem_get_stats(g, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.live, 2);
	gmem_unmap(g, a, 512);
	gmem_unmap(g, b, 4096);
	gmem_get_stats(g, &st);
	assert_int_equal(st.live, 0);
	assert_int_equal(st.cached_chunks, 1);
	gmem_free(g);
}

static void test_outside_ram_refused(void **state)
{
	struct gmem *g = new_gmem(8);
	void *p = NULL;

	assert_int_equal(gmem_map(g, 0x1000, 512, false, &p), -EFAULT);
	assert_int_equal(gmem_map(g, RAM + RAM_SIZE, 512, false, &p), -EFAULT);
	/* Straddling the end of RAM: the first page is RAM, the second is not. */
	assert_int_equal(gmem_map(g, RAM + RAM_SIZE - 512, 1024, false, &p), -EFAULT);
	/* Wrapping the address space. */
	assert_int_equal(gmem_map(g, UINT64_MAX - 100, 512, false, &p), -EFAULT);
	assert_null(p);
	gmem_free(g);
}

static void test_eviction_spares_chunks_in_use(void **state)
{
	struct gmem *g = new_gmem(2);
	struct gmem_stats st;
	void *a, *b, *c, *d;
	char v;

	assert_int_equal(gmem_map(g, RAM + 0 * CHUNK, 1, false, &a), 0);	/* held */
	assert_int_equal(gmem_map(g, RAM + 1 * CHUNK, 1, false, &b), 0);
	gmem_unmap(g, b, 1);					/* idle: evictable */
	guest_write(RAM + 2 * CHUNK, "c", 1);
	assert_int_equal(gmem_map(g, RAM + 2 * CHUNK, 1, false, &c), 0);	/* evicts b */
	gmem_get_stats(g, &st);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.cached_chunks, 2);
	assert_int_equal(*(char *)c, 'c');
	/* Both slots in use: a fourth chunk is still served, outside the cache. */
	guest_write(RAM + 3 * CHUNK, "d", 1);
	assert_int_equal(gmem_map(g, RAM + 3 * CHUNK, 1, false, &d), 0);
	assert_int_equal(*(char *)d, 'd');
	gmem_get_stats(g, &st);
	assert_int_equal(st.uncached, 1);
	/* The held chunk still reads the guest's memory. */
	guest_write(RAM, "a", 1);
	v = *(volatile char *)a;
	assert_int_equal(v, 'a');
	gmem_unmap(g, a, 1);
	gmem_unmap(g, c, 1);
	gmem_unmap(g, d, 1);
	gmem_free(g);
}

static void test_invalidate_with_chunk_in_use(void **state)
{
	struct gmem *g = new_gmem(8);
	struct gmem_stats st;
	void *held, *fresh, *idle;

	assert_int_equal(gmem_map(g, RAM + 0x2000, 16, false, &held), 0);
	assert_int_equal(gmem_map(g, RAM + CHUNK, 16, false, &idle), 0);
	gmem_unmap(g, idle, 16);
	/* The guest's memory map changed (IOREQ_TYPE_INVALIDATE). */
	gmem_invalidate(g);
	gmem_get_stats(g, &st);
	assert_int_equal(st.cached_chunks, 1);	/* the idle chunk went, the held one stays */
	/* New users of the held chunk's range get a new mapping, not the stale one. */
	assert_int_equal(gmem_map(g, RAM + 0x2000, 16, false, &fresh), 0);
	assert_ptr_not_equal(fresh, held);
	gmem_get_stats(g, &st);
	assert_int_equal(st.misses, 3);
	assert_int_equal(st.cached_chunks, 2);
	/* Its last user gone, the stale chunk is released, not cached again. */
	gmem_unmap(g, held, 16);
	gmem_get_stats(g, &st);
	assert_int_equal(st.cached_chunks, 1);
	gmem_unmap(g, fresh, 16);
	gmem_free(g);
}

/*
 * A run whose second slot was invalidated while in use: a later run over the
 * same chunks must not be served from that stale slot, even once its first
 * slot caches the first chunk afresh.
 */
static void test_run_not_served_from_stale_slot(void **state)
{
	uint64_t gpa = RAM + 4 * CHUNK;
	struct gmem *g = new_gmem(8);
	uint8_t *run, *one, *first, *run2;

	assert_int_equal(gmem_map(g, gpa + 100, CHUNK, false, (void **)&run), 0);
	assert_int_equal(gmem_map(g, gpa + CHUNK, 16, false, (void **)&one), 0);
	assert_ptr_equal(one, run + CHUNK - 100);	/* the run's second slot */
	gmem_unmap(g, run, CHUNK);
	gmem_invalidate(g);	/* the first slot goes; the second, held, turns stale */
	assert_int_equal(gmem_map(g, gpa, 16, false, (void **)&first), 0);
	assert_int_equal(gmem_map(g, gpa + 100, CHUNK, false, (void **)&run2), 0);
	assert_ptr_not_equal(run2 + CHUNK - 100, one);
	gmem_unmap(g, run2, CHUNK);
	gmem_unmap(g, first, 16);
	gmem_unmap(g, one, 16);
	gmem_free(g);
}

static void test_free_leaves_no_mapping(void **state)
{
	unsigned int before = ram_maps();
	struct gmem *g = new_gmem(4);
	void *p[6];
	int i;

	for (i = 0; i < 6; i++)
		assert_int_equal(gmem_map(g, RAM + (uint64_t)i * CHUNK + 4096, 4096, true, &p[i]), 0);
	assert_true(ram_maps() > before);
	for (i = 0; i < 6; i++)
		gmem_unmap(g, p[i], 4096);
	gmem_free(g);
	assert_int_equal(ram_maps(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_sees_guest_bytes_both_ways),
		cmocka_unit_test(test_cache_hits),
		cmocka_unit_test(test_outside_ram_refused),
		cmocka_unit_test(test_eviction_spares_chunks_in_use),
		cmocka_unit_test(test_invalidate_with_chunk_in_use),
		cmocka_unit_test(test_run_not_served_from_stale_slot),
		cmocka_unit_test(test_free_leaves_no_mapping),
		cmocka_unit_test(test_range_across_chunks_is_cached),
		cmocka_unit_test(test_chunk_alone_and_inside_a_run),
		cmocka_unit_test(test_run_without_free_slots_maps_uncached),
		cmocka_unit_test(test_run_past_the_end_of_ram_fails),
		cmocka_unit_test(test_many_runs_reuse_slots),
	};

	return cmocka_run_group_tests_name("gmem", tests, group_setup, group_teardown);
}
