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
#include <sys/mman.h>

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
static xengnttab_handle *xgt;
static uint32_t domid;

static int group_setup(void **state)
{
	static const char *const args[] = { "--log-level", "err", NULL };

	if (xensim_spawn(XENSIM_BIN, args, &proc) < 0 || xensim_connect(&sim) < 0)
		return -1;
	if (xensim_domain_create(sim, "vcpus=1,mem=32M", XSIM_CREATE_NO_WAIT, &domid, NULL) < 0)
		return -1;
	fmem = xenforeignmemory_open(NULL, 0);
	xgt = xengnttab_open(NULL, 0);
	return fmem && xgt ? 0 : -1;
}

static int group_teardown(void **state)
{
	xenforeignmemory_close(fmem);
	xengnttab_close(xgt);
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

	assert_int_equal(gmem_new(fmem, NULL, domid, 64, NULL, &g), 0);
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

	assert_int_equal(gmem_new(fmem, NULL, domid, 8, NULL, &g), 0);
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
	assert_int_equal(gmem_new(fmem, NULL, domid, 4, NULL, &g), 0);
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
	assert_int_equal(gmem_new(fmem, NULL, domid, 16, NULL, &g), 0);
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
	assert_int_equal(gmem_new(fmem, NULL, domid, 6, NULL, &g), 0);
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

	assert_int_equal(gmem_new(fmem, NULL, domid, chunks, NULL, &g), 0);
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

/* ---- the mapping budget (struct gmem_budget) ---- */

static unsigned int rooms;

static void *room_owner;

static void on_room(void *data, void *owner)
{
	rooms++;
	room_owner = owner;
}

static struct gmem_budget budget(uint64_t pages, unsigned int maps, uint64_t max_maps)
{
	return (struct gmem_budget){ .guest_pages = pages, .guest_maps = maps, .max_maps = max_maps,
				     .room = on_room };
}

/*
 * Beyond its pages a guest waits (-ENOBUFS) while everything it has mapped is
 * in use; a release says so once (room), and then the map goes through.
 */
static void test_budget_pages_refused_while_all_in_use(void **state)
{
	struct gmem_budget b = budget(4 * 64, 100, 1000);
	struct gmem *g;
	void *p[5];

	rooms = 0;
	assert_int_equal(gmem_new(fmem, NULL, domid, 16, &b, &g), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(gmem_map(g, RAM + (uint64_t)i * CHUNK, 4096, true, &p[i]), 0);
	gmem_set_owner(g, &b);
	assert_int_equal(gmem_map(g, RAM + 4 * CHUNK, 4096, true, &p[4]), -ENOBUFS);
	gmem_wait_room(g);
	assert_false(b.waiting);	/* its own limit, not the one of all guests */
	assert_int_equal(stats(g).budget_waits >= 1, 1);
	assert_true(stats(g).pages <= 4 * 64);
	gmem_unmap(g, p[0], 4096);
	assert_int_equal(rooms, 1);
	assert_ptr_equal(room_owner, &b);	/* this guest may go on */
	gmem_unmap(g, p[1], 4096);
	assert_int_equal(rooms, 1);		/* once per wait */
	assert_int_equal(gmem_map(g, RAM + 1 * CHUNK, 4096, true, &p[1]), 0);
	/* The released chunk is cached but unused: it makes way for the new one. */
	assert_int_equal(gmem_map(g, RAM + 4 * CHUNK, 4096, true, &p[4]), 0);
	assert_int_equal(stats(g).pages, 4 * 64);
	assert_int_equal(stats(g).peak_pages, 4 * 64);
	for (int i = 1; i < 5; i++)
		gmem_unmap(g, p[i], 4096);
	gmem_free(g);
	assert_int_equal(b.maps, 0);
}

/* Mappings count too: beyond them a map waits while all are in use, and evicts unused chunks otherwise. */
static void test_budget_maps_make_way_by_evicting_unused(void **state)
{
	struct gmem_budget b = budget(1024, 3, 1000);
	struct gmem *g;
	void *a, *c, *d;

	assert_int_equal(gmem_new(fmem, NULL, domid, 4, &b, &g), 0);
	assert_int_equal(gmem_map(g, RAM + 8 * CHUNK, 3 * CHUNK, true, &a), 0);	/* a run: 3 maps */
	assert_int_equal(stats(g).maps, 3);
	assert_int_equal(gmem_map(g, RAM + 12 * CHUNK, 4096, true, &c), -ENOBUFS);
	gmem_unmap(g, a, 3 * CHUNK);
	assert_int_equal(gmem_map(g, RAM + 12 * CHUNK, 2 * CHUNK, true, &c), 0);
	assert_int_equal(gmem_map(g, RAM + 20 * CHUNK, 4096, true, &d), 0);
	assert_true(stats(g).maps <= 3);
	assert_true(stats(g).peak_maps <= 3);
	gmem_unmap(g, c, 2 * CHUNK);
	gmem_unmap(g, d, 4096);
	gmem_free(g);
	assert_int_equal(b.maps, 0);
}

/* All guests share max_maps (the process's memory areas): one guest's chunks and gaps count for all. */
static void test_budget_max_maps_shared_by_guests(void **state)
{
	struct gmem_budget b = budget(1024, 100, 4);	/* two cached chunks, each with its gap */
	struct gmem *g1, *g2;
	void *p1, *p2, *p3;

	assert_int_equal(gmem_new(fmem, NULL, domid, 8, &b, &g1), 0);
	assert_int_equal(gmem_new(fmem, NULL, domid, 8, &b, &g2), 0);
	assert_int_equal(gmem_map(g1, RAM, 4096, true, &p1), 0);
	assert_int_equal(gmem_map(g2, RAM + CHUNK, 4096, true, &p2), 0);
	assert_int_equal(b.maps, 4);
	assert_int_equal(gmem_map(g1, RAM + 2 * CHUNK, 4096, true, &p3), -ENOBUFS);
	gmem_wait_room(g1);
	assert_true(b.waiting);	/* the limit of all guests */
	rooms = 0;
	room_owner = &b;
	gmem_unmap(g2, p2, 4096);
	assert_int_equal(rooms, 1);
	assert_null(room_owner);	/* any guest may try again */
	gmem_free(g2);	/* what it held is released for the others */
	assert_int_equal(b.maps, 2);
	assert_int_equal(gmem_map(g1, RAM + 2 * CHUNK, 4096, true, &p3), 0);
	gmem_unmap(g1, p1, 4096);
	gmem_unmap(g1, p3, 4096);
	gmem_free(g1);
	assert_int_equal(b.maps, 0);
}

static void test_range_over_max_map_refused(void **state)
{
	struct gmem *g = new_gmem(32);
	void *p;

	assert_int_equal(gmem_map(g, RAM, GMEM_MAX_MAP + 4096, false, &p), -E2BIG);
	assert_int_equal(gmem_map(g, RAM + GMEM_MAX_MAP, GMEM_MAX_MAP, false, &p), 0);
	gmem_unmap(g, p, GMEM_MAX_MAP);
	gmem_free(g);
}

/*
 * A waiter that tries again (its poll timer) and is still short lets go of
 * what that attempt mapped: that must not wake it again at once, or it
 * would retry in a loop; the next release by someone else does.
 */
static void test_budget_retry_own_releases_do_not_wake(void **state)
{
	struct gmem_budget b = budget(4 * 64, 100, 1000);
	struct gmem *g;
	void *p[2], *a, *c, *d;

	rooms = 0;
	assert_int_equal(gmem_new(fmem, NULL, domid, 16, &b, &g), 0);
	for (int i = 0; i < 2; i++)	/* two chunks in flight elsewhere */
		assert_int_equal(gmem_map(g, RAM + (uint64_t)i * CHUNK, 4096, true, &p[i]), 0);
	/* A request needs three chunks: the third fails; it lets go and waits. */
	assert_int_equal(gmem_map(g, RAM + 10 * CHUNK, 4096, true, &a), 0);
	assert_int_equal(gmem_map(g, RAM + 11 * CHUNK, 4096, true, &c), 0);
	assert_int_equal(gmem_map(g, RAM + 12 * CHUNK, 4096, true, &d), -ENOBUFS);
	gmem_unmap(g, a, 4096);
	gmem_unmap(g, c, 4096);
	gmem_wait_room(g);
	assert_int_equal(rooms, 0);
	/* It tries again before anyone released anything, and fails the same way. */
	assert_int_equal(gmem_map(g, RAM + 10 * CHUNK, 4096, true, &a), 0);
	assert_int_equal(gmem_map(g, RAM + 11 * CHUNK, 4096, true, &c), 0);
	assert_int_equal(gmem_map(g, RAM + 12 * CHUNK, 4096, true, &d), -ENOBUFS);
	gmem_unmap(g, a, 4096);
	gmem_unmap(g, c, 4096);
	assert_int_equal(rooms, 0);	/* its own releases */
	gmem_wait_room(g);
	gmem_unmap(g, p[0], 4096);	/* someone else's */
	assert_int_equal(rooms, 1);
	gmem_unmap(g, p[1], 4096);
	gmem_free(g);
}

/* ---- a reservation that cannot be put back (mmap failure injected) ---- */

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
static bool fail_reserve;

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	/* gmem's PROT_NONE reservation put back over a released slot */
	if (fail_reserve && prot == PROT_NONE && (flags & MAP_FIXED) && (flags & MAP_ANONYMOUS)) {
		fail_reserve = false;
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return __real_mmap(addr, len, prot, flags, fd, off);
}

static bool mapped(void *p)
{
	return msync(p, 4096, MS_ASYNC) == 0;
}

/*
 * The slot whose reservation could not be restored is a hole someone else
 * may get; gmem must never map over it again, nor unmap it at the end.
 */
static void test_lost_reservation_never_mapped_over(void **state)
{
	struct gmem *g = new_gmem(2);
	uint8_t *p, *hole, *other;
	void *q;

	assert_int_equal(gmem_map(g, RAM, 4096, true, (void **)&p), 0);
	hole = p;
	gmem_unmap(g, p, 4096);
	/* Release its slot with the reservation failing. */
	fail_reserve = true;
	gmem_invalidate(g);
	assert_false(fail_reserve);
	/* Someone else gets the hole. */
	other = mmap(hole, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		     -1, 0);
	assert_ptr_equal(other, hole);
	memset(other, 0x6b, CHUNK);
	/* Chunks keep coming and going through the one slot left: never through the hole. */
	for (int i = 3; i < 12; i++) {
		assert_int_equal(gmem_map(g, RAM + (uint64_t)i * CHUNK, 4096, true, &q), 0);
		assert_true((uint8_t *)q < hole || (uint8_t *)q >= hole + CHUNK);
		gmem_unmap(g, q, 4096);
	}
	assert_int_equal(other[0], 0x6b);
	assert_int_equal(other[CHUNK - 1], 0x6b);
	gmem_free(g);
	/* gmem_free() left the other mapping alone. */
	assert_true(mapped(other));
	assert_int_equal(other[100], 0x6b);
	munmap(other, CHUNK);
}

/* ---- grant copies (gmem_copy()): a request's header and status byte without a mapping ---- */

static uint64_t grant_addr(uint32_t ref, uint64_t off)
{
	return GMEM_GRANT_BIT | ((uint64_t)ref << 12) | off;
}

/* One range by gmem_copy(). */
static int copy1(struct gmem *g, uint64_t addr, void *buf, uint64_t len, bool to_guest)
{
	struct virtio_copy c = { .gpa = addr, .buf = buf, .len = len, .to_guest = to_guest };

	return gmem_copy(g, &c, 1);
}

static struct gmem *new_grant_gmem(void)
{
	struct gmem *g;

	assert_int_equal(gmem_new(fmem, xgt, domid, 8, NULL, &g), 0);
	return g;
}

static void test_grant_copy_both_ways(void **state)
{
	struct gmem *g = new_grant_gmem();
	unsigned int before = ram_maps();
	struct gmem_stats st;
	char buf[32] = { 0 }, out[] = "to the guest";
	uint32_t ref;

	assert_int_equal(xensim_grant(sim, domid, (RAM >> 12) + 40, false, &ref), 0);
	guest_write(RAM + 40 * 4096 + 0x10, "from the guest", 15);
	assert_int_equal(copy1(g, grant_addr(ref, 0x10), buf, 15, false), 0);
	assert_string_equal(buf, "from the guest");
	assert_int_equal(copy1(g, grant_addr(ref, 0x20), out, 13, true), 0);
	guest_read(RAM + 40 * 4096 + 0x20, buf, 13);
	assert_string_equal(buf, "to the guest");
	gmem_get_stats(g, &st);
	assert_int_equal(st.copies, 2);
	/* Nothing mapped by them, nothing left mapped. */
	assert_int_equal(st.uncached, 0);
	assert_int_equal(st.live, 0);
	assert_int_equal(ram_maps(), before);
	gmem_free(g);
}

/* A range across two pages: two consecutive references, one segment each. */
static void test_grant_copy_across_pages(void **state)
{
	struct gmem *g = new_grant_gmem();
	uint8_t *want = pattern(RAM + 50 * 4096 + 4000, 200, 7), got[200];
	uint32_t r0, r1;

	assert_int_equal(xensim_grant(sim, domid, (RAM >> 12) + 50, false, &r0), 0);
	assert_int_equal(xensim_grant(sim, domid, (RAM >> 12) + 51, false, &r1), 0);
	assert_int_equal(r1, r0 + 1);
	assert_int_equal(copy1(g, grant_addr(r0, 4000), want, 200, true), 0);
	guest_read(RAM + 50 * 4096 + 4000, got, 200);
	assert_memory_equal(got, want, 200);
	memset(got, 0, sizeof(got));
	assert_int_equal(copy1(g, grant_addr(r0, 4000), got, 200, false), 0);
	assert_memory_equal(got, want, 200);
	free(want);
	gmem_free(g);
}

/* A read-only grant (a buffer the driver only lets the device read) is not written. */
static void test_grant_copy_read_only_not_written(void **state)
{
	struct gmem *g = new_grant_gmem();
	char buf[8] = { 0 };
	uint32_t ref;

	assert_int_equal(xensim_grant(sim, domid, (RAM >> 12) + 60, true, &ref), 0);
	guest_write(RAM + 60 * 4096, "keep", 5);
	assert_int_equal(copy1(g, grant_addr(ref, 0), (char[]){ "over" }, 5, true), -EFAULT);
	guest_read(RAM + 60 * 4096, buf, 5);
	assert_string_equal(buf, "keep");
	/* Reading it is what it was granted for. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(copy1(g, grant_addr(ref, 0), buf, 5, false), 0);
	assert_string_equal(buf, "keep");
	gmem_free(g);
}

static void test_grant_copy_ungranted_refused(void **state)
{
	struct gmem *g = new_grant_gmem();
	char buf[4];

	assert_int_equal(copy1(g, grant_addr(4000, 0), buf, 4, false), -EFAULT);
	assert_int_equal(copy1(g, grant_addr(4000, 0), buf, 4, true), -EFAULT);
	/* A reference beyond 32 bits cannot be one. */
	assert_int_equal(copy1(g, GMEM_GRANT_BIT | (1ull << 45), buf, 4, false), -EFAULT);
	assert_int_equal(copy1(g, grant_addr(4000, 0), buf, 0, false), -EFAULT);
	gmem_free(g);
}

/* Guest physical addresses are mapped from the cache, and long ranges are mapped: not copied. */
static void test_grant_copy_only_for_small_grant_ranges(void **state)
{
	struct gmem *g = new_grant_gmem();
	static uint8_t big[(GMEM_COPY_PAGES + 1) * 4096];
	uint32_t ref;

	assert_int_equal(copy1(g, RAM + 0x1000, big, 16, false), -EOPNOTSUPP);
	assert_int_equal(xensim_grant(sim, domid, (RAM >> 12) + 70, false, &ref), 0);
	assert_int_equal(copy1(g, grant_addr(ref, 0), big, sizeof(big), false), -EOPNOTSUPP);
	gmem_free(g);
}

/* A request's header and its status byte, in two grants, by one call (one hypercall). */
static void test_grant_copy_ranges_in_one_call(void **state)
{
	struct gmem *g = new_grant_gmem();
	char hdr[16] = { 0 }, status = 0;
	struct gmem_stats st;
	uint32_t rh, rs;
	struct virtio_copy c[2] = {
		{ .buf = hdr, .len = 16 },
		{ .buf = &status, .len = 1 },
	};

	assert_int_equal(xensim_grant(sim, domid, (RAM >> 12) + 80, true, &rh), 0);
	assert_int_equal(xensim_grant(sim, domid, (RAM >> 12) + 81, false, &rs), 0);
	guest_write(RAM + 80 * 4096 + 0x100, "header, 15 byte", 16);
	guest_write(RAM + 81 * 4096 + 0x7, "\xff", 1);
	c[0].gpa = grant_addr(rh, 0x100);
	c[1].gpa = grant_addr(rs, 0x7);
	assert_int_equal(gmem_copy(g, c, 2), 0);
	assert_string_equal(hdr, "header, 15 byte");
	assert_int_equal((uint8_t)status, 0xff);
	gmem_get_stats(g, &st);
	assert_int_equal(st.copies, 1);
	/* One bad range fails the call. */
	c[1].gpa = grant_addr(4001, 0);
	assert_int_equal(gmem_copy(g, c, 2), -EFAULT);
	/* More pages than one call takes: nothing copied, the caller maps. */
	c[0].len = GMEM_COPY_PAGES * 4096;
	c[1].gpa = grant_addr(rs, 0x7);
	assert_int_equal(gmem_copy(g, c, 2), -EOPNOTSUPP);
	gmem_get_stats(g, &st);
	assert_int_equal(st.copies, 1);
	gmem_free(g);
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
		cmocka_unit_test(test_budget_pages_refused_while_all_in_use),
		cmocka_unit_test(test_budget_maps_make_way_by_evicting_unused),
		cmocka_unit_test(test_budget_max_maps_shared_by_guests),
		cmocka_unit_test(test_budget_retry_own_releases_do_not_wake),
		cmocka_unit_test(test_range_over_max_map_refused),
		cmocka_unit_test(test_lost_reservation_never_mapped_over),
		cmocka_unit_test(test_grant_copy_both_ways),
		cmocka_unit_test(test_grant_copy_across_pages),
		cmocka_unit_test(test_grant_copy_read_only_not_written),
		cmocka_unit_test(test_grant_copy_ungranted_refused),
		cmocka_unit_test(test_grant_copy_only_for_small_grant_ranges),
		cmocka_unit_test(test_grant_copy_ranges_in_one_call),
	};

	return cmocka_run_group_tests_name("gmem", tests, group_setup, group_teardown);
}
