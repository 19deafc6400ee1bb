// SPDX-License-Identifier: GPL-2.0-only
/* Guest memory for one guest: a bounded cache of foreign-mapped chunks in one reserved VA range, plus grants. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xen/grant_table.h>

#include "gmem.h"
#include "log.h"

#define GMEM_PAGE_SHIFT 12	/* Xen's page size, also on arm64 */
#define GMEM_PAGE_SIZE (1ull << GMEM_PAGE_SHIFT)
#define GMEM_CHUNK_SHIFT (GMEM_PAGE_SHIFT + 6)
#define GMEM_CHUNK_BYTES (1ull << GMEM_CHUNK_SHIFT)
#define GMEM_NONE UINT32_MAX
/* Largest uncached mapping (GMEM_MAX_MAP at any offset): bounds the gfn array we allocate. */
#define GMEM_MAX_PAGES ((uint32_t)(GMEM_MAX_MAP / GMEM_PAGE_SIZE) + 1)
/*
 * A range across chunks is served from the cache as a run of consecutive
 * slots (one contiguous VA range, each chunk its own mapping) up to this many
 * chunks (4 MiB); longer ones are mapped for the request alone.
 */
#define GMEM_RUN_MAX 16u
#define GMEM_UNCACHED_BUCKETS 256u

_Static_assert(GMEM_CHUNK_PAGES == 64, "one valid bit per page in a uint64_t");

struct gmem_slot {
	uint64_t chunk;		/* guest frame number >> 6 */
	uint64_t valid;		/* bit i: page i of the chunk is mapped */
	uint32_t refs;
	uint32_t hnext;		/* hash chain, or free list */
	uint32_t lru_prev;
	uint32_t lru_next;
	bool mapped;
	bool stale;		/* invalidated while in use: released by its last unmap */
	bool lost;		/* its reservation could not be put back: never used again */
};

/* A mapping made outside the cache, found again by its address at unmap time. */
struct gmem_uncached {
	void *base;		/* page-aligned */
	size_t pages;
	bool grant;
	struct gmem_uncached *next;
};

struct gmem {
	xenforeignmemory_handle *fmem;
	xengnttab_handle *xgt;
	unsigned int domid;
	uint8_t *region;	/* PROT_NONE reservation, one GMEM_CHUNK_BYTES slot per chunk */
	unsigned int nslots;
	struct gmem_slot *slots;
	uint32_t *hash;		/* chunk -> first slot of its chain */
	uint32_t hash_mask;
	uint32_t free_head;	/* slots never used or released */
	uint32_t lru_head;	/* mapped and unreferenced, least recently used first */
	uint32_t lru_tail;
	uint32_t run_cursor;	/* where the search for free consecutive slots goes on */
	struct gmem_uncached *uncached[GMEM_UNCACHED_BUCKETS];
	struct gmem_budget *budget;	/* NULL: no limits */
	void *owner;			/* for budget->room() */
	bool failed_all;		/* the last -ENOBUFS was the limit of all guests */
	bool waiting;			/* waits on this guest's own limits (gmem_wait_room()) */
	struct gmem_stats stats;
	/*
	 * Every call but gmem_new() and gmem_free() holds it: a guest's disks
	 * may be served by several IO threads.  Uncontended (one thread serves
	 * each disk, a guest's disks rarely all map at once) it costs two
	 * atomic operations per call; a cache miss holds it for its hypercall.
	 */
	pthread_mutex_t lock;
};

static uint32_t gmem_hash(const struct gmem *g, uint64_t chunk)
{
	return (uint32_t)((chunk * 0x9e3779b97f4a7c15ull) >> 32) & g->hash_mask;
}

static unsigned int gmem_ubucket(const void *base)
{
	return (unsigned int)(((uintptr_t)base >> GMEM_PAGE_SHIFT) % GMEM_UNCACHED_BUCKETS);
}

static void *gmem_slot_va(const struct gmem *g, uint32_t s)
{
	return g->region + (size_t)s * GMEM_CHUNK_BYTES;
}

/* Bits @lo..@hi (page numbers inside a chunk, lo <= hi < 64): the pages a range covers. */
static uint64_t gmem_page_mask(uint64_t lo, uint64_t hi)
{
	return (hi - lo == 63 ? UINT64_MAX : (1ull << (hi - lo + 1)) - 1) << lo;
}

/* Release a mapping made outside the cache. */
static void gmem_unmap_pages(struct gmem *g, void *base, size_t pages, bool grant)
{
	if (grant)
		xengnttab_unmap(g->xgt, base, pages);
	else
		xenforeignmemory_unmap(g->fmem, base, pages);
}

/* Give slot @s back to the free list, unless it was lost. */
static void gmem_free_push(struct gmem *g, uint32_t s)
{
	if (g->slots[s].lost)
		return;
	g->slots[s].hnext = g->free_head;
	g->free_head = s;
}

/*
 * Put the PROT_NONE reservation back over a slot whose mapping went away.
 * If that fails the slot's addresses are a hole that the kernel may give to
 * any later mmap(): the slot is never mapped over again (MAP_FIXED would
 * clobber whatever got there) nor unmapped at the end.  False then.
 */
static bool gmem_reserve(struct gmem *g, uint32_t s)
{
	if (mmap(gmem_slot_va(g, s), GMEM_CHUNK_BYTES, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) != MAP_FAILED)
		return true;
	log_err("dom %u: cannot reserve guest mapping slot %u again: %m; it stays unused",
		g->domid, s);
	g->slots[s].lost = true;
	return false;
}

/* ---- the budget (struct gmem_budget) ---- */

static void gmem_charge(struct gmem *g, uint64_t pages, unsigned int maps, unsigned int gaps)
{
	g->stats.pages += pages;
	g->stats.maps += maps;
	if (g->stats.pages > g->stats.peak_pages)
		g->stats.peak_pages = g->stats.pages;
	if (g->stats.maps > g->stats.peak_maps)
		g->stats.peak_maps = g->stats.maps;
	if (g->budget)
		g->budget->maps += maps + gaps;
}

/*
 * A user released a mapping (what it held is unmapped, or evictable now;
 * evictions themselves are no news: what they free was evictable already,
 * and a waiter's own retry evicts): if a map of this guest waited
 * on its own limits, its owner may try again; if one waited on the limit of
 * all guests, everyone may.  Once per wait, so that a busy honest guest's
 * completions do not keep waking a guest that waits for its own.  (Another
 * guest's evictions free room for the limit of all guests unannounced: such
 * a rare wait may end by the device's poll timer instead.)
 */
static void gmem_room(struct gmem *g)
{
	struct gmem_budget *b = g->budget;

	if (!b || !b->room)
		return;
	/* One thread takes the wait of all guests and wakes them all. */
	if (atomic_load(&b->waiting) && atomic_exchange(&b->waiting, false)) {
		g->waiting = false;
		b->room(b->data, NULL);
	} else if (g->waiting) {
		g->waiting = false;
		b->room(b->data, g->owner);
	}
}

static void gmem_uncharge(struct gmem *g, uint64_t pages, unsigned int maps, unsigned int gaps)
{
	g->stats.pages -= pages;
	g->stats.maps -= maps;
	if (!g->budget)
		return;
	g->budget->maps -= maps + gaps;
}

static bool gmem_fits(const struct gmem *g, uint64_t pages, unsigned int maps, unsigned int gaps)
{
	const struct gmem_budget *b = g->budget;

	return !b || (g->stats.pages + pages <= b->guest_pages &&
		      g->stats.maps + maps <= b->guest_maps && b->maps + maps + gaps <= b->max_maps);
}

static void gmem_slot_release(struct gmem *g, uint32_t s);

/*
 * Make room for @pages more pages in @maps more mappings (and @gaps more
 * gaps in the reservation), dropping cached chunks nobody uses, least
 * recently used first.  -ENOBUFS if that is not enough.
 */
static int gmem_make_room(struct gmem *g, uint64_t pages, unsigned int maps, unsigned int gaps)
{
	while (!gmem_fits(g, pages, maps, gaps)) {
		if (g->lru_head == GMEM_NONE) {
			const struct gmem_budget *b = g->budget;

			/* Only the limit of all guests was in the way? (gmem_wait_room()) */
			g->failed_all = g->stats.pages + pages <= b->guest_pages &&
					g->stats.maps + maps <= b->guest_maps;
			/*
			 * The waiter tried again and is still short: what it lets
			 * go of now must not wake it (it would try again at once,
			 * for ever); its gmem_wait_room() arms the wake-up again.
			 */
			g->waiting = false;
			if (g->failed_all)
				g->budget->waiting = false;
			return -ENOBUFS;
		}
		gmem_slot_release(g, g->lru_head);
		g->stats.evictions++;
	}
	return 0;
}

static void gmem_lru_remove(struct gmem *g, uint32_t s)
{
	struct gmem_slot *sl = &g->slots[s];

	if (sl->lru_prev != GMEM_NONE)
		g->slots[sl->lru_prev].lru_next = sl->lru_next;
	else
		g->lru_head = sl->lru_next;
	if (sl->lru_next != GMEM_NONE)
		g->slots[sl->lru_next].lru_prev = sl->lru_prev;
	else
		g->lru_tail = sl->lru_prev;
	sl->lru_prev = sl->lru_next = GMEM_NONE;
}

static void gmem_lru_append(struct gmem *g, uint32_t s)
{
	struct gmem_slot *sl = &g->slots[s];

	sl->lru_next = GMEM_NONE;
	sl->lru_prev = g->lru_tail;
	if (g->lru_tail != GMEM_NONE)
		g->slots[g->lru_tail].lru_next = s;
	else
		g->lru_head = s;
	g->lru_tail = s;
}

static void gmem_hash_remove(struct gmem *g, uint32_t s)
{
	uint32_t *pp = &g->hash[gmem_hash(g, g->slots[s].chunk)];

	while (*pp != GMEM_NONE) {
		if (*pp == s) {
			*pp = g->slots[s].hnext;
			return;
		}
		pp = &g->slots[*pp].hnext;
	}
}

/* Unmap a cached, unreferenced chunk and return its slot to the free list. */
static void gmem_slot_release(struct gmem *g, uint32_t s)
{
	struct gmem_slot *sl = &g->slots[s];

	/* A stale slot is neither hashed nor on the LRU any more. */
	if (!sl->stale) {
		gmem_lru_remove(g, s);
		gmem_hash_remove(g, s);
	}
	sl->stale = false;
	xenforeignmemory_unmap(g->fmem, gmem_slot_va(g, s), GMEM_CHUNK_PAGES);
	sl->mapped = false;
	sl->valid = 0;
	g->stats.cached_chunks--;
	gmem_reserve(g, s);	/* a slot it fails for is lost: gmem_free_push() skips it */
	gmem_free_push(g, s);
	gmem_uncharge(g, GMEM_CHUNK_PAGES, 1, 1);
}

int gmem_new(xenforeignmemory_handle *fmem, xengnttab_handle *xgt, unsigned int domid,
	     unsigned int chunks, struct gmem_budget *budget, struct gmem **ret_gmem)
{
	struct gmem *g;
	uint32_t i, hsize = 1;
	int r;

	if (chunks == 0 || chunks > (1u << 20))
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	pthread_mutex_init(&g->lock, NULL);
	g->fmem = fmem;
	g->xgt = xgt;
	g->domid = domid;
	g->budget = budget;
	g->nslots = chunks;
	while (hsize < chunks * 2)
		hsize <<= 1;
	g->hash_mask = hsize - 1;
	g->slots = calloc(chunks, sizeof(*g->slots));
	g->hash = malloc(sizeof(*g->hash) * hsize);
	if (!g->slots || !g->hash) {
		r = -ENOMEM;
		goto err_free;
	}
	for (i = 0; i < hsize; i++)
		g->hash[i] = GMEM_NONE;
	for (i = 0; i < chunks; i++) {
		g->slots[i].hnext = i + 1 < chunks ? i + 1 : GMEM_NONE;
		g->slots[i].lru_prev = g->slots[i].lru_next = GMEM_NONE;
	}
	g->free_head = 0;
	g->lru_head = g->lru_tail = GMEM_NONE;
	/* Address space only: slots are mapped over it with MAP_FIXED. */
	g->region = mmap(NULL, (size_t)chunks * GMEM_CHUNK_BYTES, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (g->region == MAP_FAILED) {
		r = -errno;
		goto err_free;
	}
	*ret_gmem = g;
	return 0;

err_free:
	pthread_mutex_destroy(&g->lock);
	free(g->hash);
	free(g->slots);
	free(g);
	return r;
}

void gmem_free(struct gmem *g)
{
	uint32_t s;
	unsigned int b;

	if (!g)
		return;
	if (g->stats.live)
		log_warn("dom %u: releasing guest memory with %u mappings still in use", g->domid,
			 g->stats.live);
	for (s = 0; s < g->nslots; s++)
		if (g->slots[s].mapped)
			xenforeignmemory_unmap(g->fmem, gmem_slot_va(g, s), GMEM_CHUNK_PAGES);
	for (b = 0; b < GMEM_UNCACHED_BUCKETS; b++) {
		struct gmem_uncached *u, *next;

		for (u = g->uncached[b]; u; u = next) {
			next = u->next;
			gmem_unmap_pages(g, u->base, u->pages, u->grant);
			free(u);
		}
	}
	/* The reservation, but not the holes of lost slots: someone else may live there now. */
	for (s = 0; s < g->nslots;) {
		uint32_t e = s;

		while (e < g->nslots && !g->slots[e].lost)
			e++;
		if (e > s)
			munmap(gmem_slot_va(g, s), (size_t)(e - s) * GMEM_CHUNK_BYTES);
		s = e + 1;
	}
	/* What this guest held is the others' again (its users are gone: no room() call). */
	if (g->budget)
		g->budget->maps -= g->stats.maps + g->stats.cached_chunks;
	pthread_mutex_destroy(&g->lock);
	free(g->hash);
	free(g->slots);
	free(g);
}

void gmem_wait_room(struct gmem *g)
{
	if (!g->budget)
		return;
	pthread_mutex_lock(&g->lock);
	if (g->failed_all)
		g->budget->waiting = true;
	else
		g->waiting = true;
	pthread_mutex_unlock(&g->lock);
}

void gmem_set_owner(struct gmem *g, void *owner)
{
	g->owner = owner;
}

static uint32_t gmem_lookup(struct gmem *g, uint64_t chunk)
{
	uint32_t s;

	for (s = g->hash[gmem_hash(g, chunk)]; s != GMEM_NONE; s = g->slots[s].hnext)
		if (g->slots[s].chunk == chunk)
			return s;
	return GMEM_NONE;
}

/* Take free slot @s off the free list (singly linked: only on the rare run misses). */
static void gmem_free_take(struct gmem *g, uint32_t s)
{
	uint32_t *pp = &g->free_head;

	while (*pp != GMEM_NONE) {
		if (*pp == s) {
			*pp = g->slots[s].hnext;
			return;
		}
		pp = &g->slots[*pp].hnext;
	}
}

/*
 * Map a whole chunk into slot @s, already taken off the free list (room in
 * the budget made by the caller); false (the slot reserved again, or lost)
 * when nothing of it is guest memory.
 */
static bool gmem_fill_slot(struct gmem *g, uint32_t s, uint64_t chunk)
{
	xen_pfn_t gfns[GMEM_CHUNK_PAGES];
	int errs[GMEM_CHUNK_PAGES];
	struct gmem_slot *sl = &g->slots[s];
	uint64_t valid = 0;
	unsigned int i;
	void *p;

	for (i = 0; i < GMEM_CHUNK_PAGES; i++)
		gfns[i] = (xen_pfn_t)(chunk * GMEM_CHUNK_PAGES + i);
	memset(errs, 0, sizeof(errs));
	p = xenforeignmemory_map2(g->fmem, g->domid, gmem_slot_va(g, s), PROT_READ | PROT_WRITE,
				  MAP_FIXED, GMEM_CHUNK_PAGES, gfns, errs);
	if (!p) {
		/* A failed MAP_FIXED may have taken the reservation with it. */
		gmem_reserve(g, s);
		return false;
	}
	/* Pages outside guest RAM come back with an error and stay unmapped: never touch them. */
	for (i = 0; i < GMEM_CHUNK_PAGES; i++)
		if (!errs[i])
			valid |= 1ull << i;
	if (!valid) {
		xenforeignmemory_unmap(g->fmem, p, GMEM_CHUNK_PAGES);
		gmem_reserve(g, s);
		return false;
	}
	sl->chunk = chunk;
	sl->valid = valid;
	sl->refs = 0;
	sl->mapped = true;
	sl->lru_prev = sl->lru_next = GMEM_NONE;
	sl->hnext = g->hash[gmem_hash(g, chunk)];
	g->hash[gmem_hash(g, chunk)] = s;
	gmem_lru_append(g, s);
	g->stats.cached_chunks++;
	g->stats.misses++;
	gmem_charge(g, GMEM_CHUNK_PAGES, 1, 1);
	return true;
}

/*
 * Map a whole chunk into a slot; GMEM_NONE when no slot is free, the budget
 * has no room for a chunk, or nothing of it is guest memory.
 */
static uint32_t gmem_fill(struct gmem *g, uint64_t chunk)
{
	uint32_t s;

	if (gmem_make_room(g, GMEM_CHUNK_PAGES, 1, 1) < 0)
		return GMEM_NONE;
	if (g->free_head == GMEM_NONE) {
		if (g->lru_head == GMEM_NONE)
			return GMEM_NONE;	/* every chunk in use: the caller maps uncached */
		gmem_slot_release(g, g->lru_head);
		g->stats.evictions++;
	}
	if (g->free_head == GMEM_NONE)
		return GMEM_NONE;		/* that slot was lost */
	s = g->free_head;
	g->free_head = g->slots[s].hnext;
	if (!gmem_fill_slot(g, s, chunk)) {
		gmem_free_push(g, s);
		return GMEM_NONE;
	}
	return s;
}

/* The first of @k consecutive slots caching chunks @chunk.. in order, or GMEM_NONE. */
static uint32_t gmem_lookup_run(struct gmem *g, uint64_t chunk, uint32_t k)
{
	uint32_t s, i;

	/* A chunk may sit in several slots (alone, and inside runs): try each. */
	for (s = g->hash[gmem_hash(g, chunk)]; s != GMEM_NONE; s = g->slots[s].hnext) {
		if (g->slots[s].chunk != chunk || k > g->nslots - s)
			continue;
		/*
		 * Only the first slot is found through the hash; the others must
		 * be checked for staleness here (an invalidated slot stays mapped
		 * for its users, but must not get new ones).
		 */
		for (i = 1; i < k; i++)
			if (!g->slots[s + i].mapped || g->slots[s + i].stale ||
			    g->slots[s + i].chunk != chunk + i)
				break;
		if (i == k)
			return s;
	}
	return GMEM_NONE;
}

/*
 * Map chunks @chunk..@chunk+@k-1 into @k consecutive slots, each its own
 * foreign mapping (a partial unmap of one mapping is not safe on every
 * kernel), so the range is contiguous in our address space.  Slots are
 * taken where none is in use, next-fit; GMEM_NONE if there is no such
 * window or a chunk is no guest memory at all.
 */
static uint32_t gmem_fill_run(struct gmem *g, uint64_t chunk, uint32_t k)
{
	uint32_t tries, s = GMEM_NONE, i;

	if (gmem_make_room(g, (uint64_t)k * GMEM_CHUNK_PAGES, k, k) < 0)
		return GMEM_NONE;
	for (tries = 0; tries < g->nslots; tries++) {
		uint32_t at = (g->run_cursor + tries) % g->nslots;

		if (k > g->nslots - at)
			continue;
		for (i = 0; i < k; i++)
			if ((g->slots[at + i].mapped && g->slots[at + i].refs) || g->slots[at + i].lost)
				break;
		if (i == k) {
			s = at;
			break;
		}
	}
	if (s == GMEM_NONE)
		return GMEM_NONE;
	for (i = 0; i < k; i++) {
		if (g->slots[s + i].mapped) {
			gmem_slot_release(g, s + i);
			g->stats.evictions++;
		}
		if (g->slots[s + i].lost) {
			/* Its reservation went with the eviction: no run here. */
			for (uint32_t j = 0; j < i; j++)
				gmem_free_push(g, s + j);
			return GMEM_NONE;
		}
		gmem_free_take(g, s + i);
	}
	for (i = 0; i < k; i++) {
		if (!gmem_fill_slot(g, s + i, chunk + i)) {
			/* Undo: what was mapped goes to the LRU, the rest back to the free list. */
			for (; i < k; i++)
				gmem_free_push(g, s + i);
			return GMEM_NONE;
		}
	}
	g->run_cursor = (s + k) % g->nslots;
	return s;
}

/* Hand out [addr, addr + len) from the run of slots starting at @s. */
static int gmem_take_run(struct gmem *g, uint32_t s, uint64_t first, uint64_t last, uint64_t addr,
			 void **ret_ptr)
{
	uint32_t k = (uint32_t)(last / GMEM_CHUNK_PAGES - first / GMEM_CHUNK_PAGES + 1), i;

	/* Every page of the range must be guest memory. */
	for (i = 0; i < k; i++) {
		uint64_t lo = i ? 0 : first % GMEM_CHUNK_PAGES;
		uint64_t hi = i + 1 < k ? GMEM_CHUNK_PAGES - 1 : last % GMEM_CHUNK_PAGES;
		uint64_t mask = gmem_page_mask(lo, hi);

		if ((g->slots[s + i].valid & mask) != mask)
			return -EFAULT;
	}
	for (i = 0; i < k; i++)
		if (g->slots[s + i].refs++ == 0)
			gmem_lru_remove(g, s + i);
	g->stats.live++;
	*ret_ptr = (uint8_t *)gmem_slot_va(g, s) + (addr & (GMEM_CHUNK_BYTES - 1));
	return 0;
}

static int gmem_track(struct gmem *g, void *base, size_t pages, bool grant)
{
	struct gmem_uncached *u = malloc(sizeof(*u));
	unsigned int b = gmem_ubucket(base);

	if (!u)
		return -ENOMEM;
	u->base = base;
	u->pages = pages;
	u->grant = grant;
	u->next = g->uncached[b];
	g->uncached[b] = u;
	return 0;
}

/* The pages [*ret_first, + *ret_pages) of guest address range [a, a + len), GMEM_GRANT_BIT clear. */
static int gmem_pages(uint64_t a, uint64_t len, uint64_t *ret_first, uint64_t *ret_pages)
{
	if (len == 0 || a + len < a || a + len - 1 > ~GMEM_GRANT_BIT)
		return -EFAULT;
	*ret_first = a >> GMEM_PAGE_SHIFT;
	*ret_pages = ((a + len - 1) >> GMEM_PAGE_SHIFT) - *ret_first + 1;
	return 0;
}

static int gmem_map_uncached(struct gmem *g, uint64_t addr, uint64_t len, bool write,
			     void **ret_ptr)
{
	bool grant = addr & GMEM_GRANT_BIT;
	uint64_t a = addr & ~GMEM_GRANT_BIT, first, pages, i;
	xen_pfn_t *gfns = NULL;
	uint32_t *refs = NULL;
	int *errs = NULL, r;
	void *base;

	if (gmem_pages(a, len, &first, &pages) < 0)
		return -EFAULT;
	if (pages > GMEM_MAX_PAGES)
		return -E2BIG;
	r = gmem_make_room(g, pages, 1, 0);
	if (r < 0)
		return r;

	if (grant) {
		/* A grant address is (ref << 12) + offset; the buffer's refs are consecutive. */
		if (!g->xgt)
			return -EFAULT;
		if (first + pages - 1 > UINT32_MAX)
			return -EFAULT;
		refs = malloc(sizeof(*refs) * pages);
		if (!refs)
			return -ENOMEM;
		for (i = 0; i < pages; i++)
			refs[i] = (uint32_t)(first + i);
		base = xengnttab_map_domain_grant_refs(g->xgt, (uint32_t)pages, g->domid, refs,
						       write ? PROT_READ | PROT_WRITE : PROT_READ);
		free(refs);
		if (!base)
			return -EFAULT;
	} else {
		gfns = calloc(pages, sizeof(*gfns));
		errs = calloc(pages, sizeof(*errs));
		if (!gfns || !errs) {
			free(gfns);
			free(errs);
			return -ENOMEM;
		}
		for (i = 0; i < pages; i++)
			gfns[i] = (xen_pfn_t)(first + i);
		base = xenforeignmemory_map(g->fmem, g->domid, write ? PROT_READ | PROT_WRITE : PROT_READ,
					    pages, gfns, errs);
		free(gfns);
		r = 0;
		for (i = 0; base && i < pages; i++)
			if (errs[i])
				r = -EFAULT;
		free(errs);
		if (!base)
			return -EFAULT;
		if (r < 0) {
			gmem_unmap_pages(g, base, pages, false);
			return r;
		}
	}
	r = gmem_track(g, base, pages, grant);
	if (r < 0) {
		gmem_unmap_pages(g, base, pages, grant);
		return r;
	}
	g->stats.uncached++;
	g->stats.live++;
	gmem_charge(g, pages, 1, 0);
	*ret_ptr = (uint8_t *)base + (a & (GMEM_PAGE_SIZE - 1));
	return 0;
}

static int gmem_map_any(struct gmem *g, uint64_t addr, uint64_t len, bool write, void **ret_ptr);

/* The grant copy segments of one range, after the @n already in @segs; -EOPNOTSUPP if too many. */
static int gmem_copy_segs(const struct gmem *g, const struct virtio_copy *c,
			  xengnttab_grant_copy_segment_t *segs, unsigned int *n)
{
	uint64_t a = c->gpa & ~GMEM_GRANT_BIT, first, pages, i, done = 0;

	if (!(c->gpa & GMEM_GRANT_BIT))
		return -EOPNOTSUPP;
	if (gmem_pages(a, c->len, &first, &pages) < 0)
		return -EFAULT;
	if (pages > GMEM_COPY_PAGES - *n)
		return -EOPNOTSUPP;
	if (first + pages - 1 > UINT32_MAX)
		return -EFAULT;
	/* One segment per page: the grant side of a segment must not cross one (xengnttab.h). */
	for (i = 0; i < pages; i++) {
		uint64_t off = i ? 0 : a & (GMEM_PAGE_SIZE - 1);
		uint64_t len = GMEM_PAGE_SIZE - off < c->len - done ? GMEM_PAGE_SIZE - off : c->len - done;
		union xengnttab_copy_ptr local = { .virt = (uint8_t *)c->buf + done };
		union xengnttab_copy_ptr guest = { .foreign = { .ref = (uint32_t)(first + i),
								.offset = (uint16_t)off,
								.domid = (uint16_t)g->domid } };

		segs[(*n)++] = (xengnttab_grant_copy_segment_t){
			.source = c->to_guest ? local : guest,
			.dest = c->to_guest ? guest : local,
			.len = (uint16_t)len,
			.flags = c->to_guest ? GNTCOPY_dest_gref : GNTCOPY_source_gref,
		};
		done += len;
	}
	return 0;
}

int gmem_copy(struct gmem *g, const struct virtio_copy *c, unsigned int n)
{
	xengnttab_grant_copy_segment_t segs[GMEM_COPY_PAGES];
	unsigned int nsegs = 0, i;
	int r;

	for (i = 0; i < n; i++) {
		r = gmem_copy_segs(g, &c[i], segs, &nsegs);
		if (r < 0)
			return r;
	}
	if (!nsegs)
		return 0;
	if (!g->xgt)
		return -EFAULT;
	if (xengnttab_grant_copy(g->xgt, nsegs, segs) < 0)
		return errno ? -errno : -EFAULT;
	/* Per segment: GNTST_bad_gntref, GNTST_permission_denied (a read-only grant written), ... */
	for (i = 0; i < nsegs; i++)
		if (segs[i].status != GNTST_okay)
			return -EFAULT;
	pthread_mutex_lock(&g->lock);
	g->stats.copies++;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int gmem_map(struct gmem *g, uint64_t addr, uint64_t len, bool write, void **ret_ptr)
{
	int r;

	pthread_mutex_lock(&g->lock);
	r = gmem_map_any(g, addr, len, write, ret_ptr);
	/* Counted here: a cached chunk refused for room may still be mapped on its own. */
	if (r == -ENOBUFS)
		g->stats.budget_waits++;
	pthread_mutex_unlock(&g->lock);
	return r;
}

/* gmem_map(): from the cache (a chunk, or a run of them) or, failing that, on its own. */
static int gmem_map_any(struct gmem *g, uint64_t addr, uint64_t len, bool write, void **ret_ptr)
{
	uint64_t first, last, mask;
	uint32_t s;

	if (len == 0)
		return -EINVAL;
	if (len > GMEM_MAX_MAP)
		return -E2BIG;
	if (addr & GMEM_GRANT_BIT)
		return gmem_map_uncached(g, addr, len, write, ret_ptr);
	if (addr + len < addr)
		return -EFAULT;
	first = addr >> GMEM_PAGE_SHIFT;
	last = (addr + len - 1) >> GMEM_PAGE_SHIFT;
	if (first / GMEM_CHUNK_PAGES != last / GMEM_CHUNK_PAGES) {
		/*
		 * Across chunks (large requests, or a buffer that straddles a
		 * boundary): a run of slots, so the same buffers next time cost
		 * no mapping at all, as for small ones.
		 */
		uint64_t k = last / GMEM_CHUNK_PAGES - first / GMEM_CHUNK_PAGES + 1;

		if (k > GMEM_RUN_MAX)
			return gmem_map_uncached(g, addr, len, write, ret_ptr);
		s = gmem_lookup_run(g, first / GMEM_CHUNK_PAGES, (uint32_t)k);
		if (s != GMEM_NONE) {
			/*
			 * A page that was not guest memory when the run was mapped
			 * may be now (memory populated again): as for one chunk
			 * below, map this range on its own rather than fail.
			 */
			if (gmem_take_run(g, s, first, last, addr, ret_ptr) < 0)
				return gmem_map_uncached(g, addr, len, write, ret_ptr);
			g->stats.hits++;
			return 0;
		}
		s = gmem_fill_run(g, first / GMEM_CHUNK_PAGES, (uint32_t)k);
		if (s == GMEM_NONE)
			return gmem_map_uncached(g, addr, len, write, ret_ptr);
		return gmem_take_run(g, s, first, last, addr, ret_ptr);
	}

	/* Every page of the range must be guest memory. */
	mask = gmem_page_mask(first % GMEM_CHUNK_PAGES, last % GMEM_CHUNK_PAGES);
	s = gmem_lookup(g, first / GMEM_CHUNK_PAGES);
	if (s != GMEM_NONE && (g->slots[s].valid & mask) != mask) {
		/*
		 * A page was not guest memory when the chunk was mapped; it may be
		 * now (memory populated again): map afresh, or, while the chunk is
		 * in use, map this range on its own.
		 */
		if (g->slots[s].refs)
			return gmem_map_uncached(g, addr, len, write, ret_ptr);
		gmem_slot_release(g, s);
		s = GMEM_NONE;
	}
	if (s != GMEM_NONE) {
		g->stats.hits++;
	} else {
		s = gmem_fill(g, first / GMEM_CHUNK_PAGES);
		if (s == GMEM_NONE)
			return gmem_map_uncached(g, addr, len, write, ret_ptr);
		if ((g->slots[s].valid & mask) != mask)
			return -EFAULT;
	}
	if (g->slots[s].refs++ == 0)
		gmem_lru_remove(g, s);
	g->stats.live++;
	*ret_ptr = (uint8_t *)gmem_slot_va(g, s) + (addr & (GMEM_CHUNK_BYTES - 1));
	return 0;
}

static void gmem_unmap_locked(struct gmem *g, void *ptr, uint64_t len)
{
	uint8_t *p = ptr;
	struct gmem_uncached **pp, *u;
	void *base;

	if (p >= g->region && p < g->region + (size_t)g->nslots * GMEM_CHUNK_BYTES) {
		uint32_t s = (uint32_t)((size_t)(p - g->region) / GMEM_CHUNK_BYTES);
		uint32_t e = (uint32_t)((size_t)(p + (len ? len : 1) - 1 - g->region) / GMEM_CHUNK_BYTES);

		if (e >= g->nslots)
			e = g->nslots - 1;
		/* One slot, or the run a range across chunks was served from. */
		for (uint32_t i = s; i <= e; i++)
			if (g->slots[i].refs == 0)
				return;	/* a double release: a bug, but not one to crash on */
		g->stats.live--;
		for (uint32_t i = s; i <= e; i++) {
			if (--g->slots[i].refs)
				continue;
			/* The last user of an invalidated chunk: it goes, it is not cached again. */
			if (g->slots[i].stale)
				gmem_slot_release(g, i);
			else
				gmem_lru_append(g, i);	/* evictable now */
			gmem_room(g);
		}
		return;
	}
	base = (void *)((uintptr_t)ptr & ~(uintptr_t)(GMEM_PAGE_SIZE - 1));
	for (pp = &g->uncached[gmem_ubucket(base)]; (u = *pp); pp = &u->next) {
		if (u->base != base)
			continue;
		*pp = u->next;
		gmem_unmap_pages(g, u->base, u->pages, u->grant);
		g->stats.live--;
		gmem_uncharge(g, u->pages, 1, 0);
		gmem_room(g);
		free(u);
		return;
	}
}

void gmem_unmap(struct gmem *g, void *ptr, uint64_t len)
{
	pthread_mutex_lock(&g->lock);
	gmem_unmap_locked(g, ptr, len);
	pthread_mutex_unlock(&g->lock);
}

void gmem_invalidate(struct gmem *g)
{
	uint32_t s;

	pthread_mutex_lock(&g->lock);
	while (g->lru_head != GMEM_NONE)
		gmem_slot_release(g, g->lru_head);
	/*
	 * Chunks in use keep their mapping for their users, but no new user may
	 * find them: they go when the last one unmaps.
	 */
	for (s = 0; s < g->nslots; s++) {
		if (g->slots[s].mapped && !g->slots[s].stale) {
			gmem_hash_remove(g, s);
			g->slots[s].stale = true;
		}
	}
	pthread_mutex_unlock(&g->lock);
}

void gmem_get_stats(struct gmem *g, struct gmem_stats *ret_stats)
{
	pthread_mutex_lock(&g->lock);
	*ret_stats = g->stats;
	pthread_mutex_unlock(&g->lock);
}
