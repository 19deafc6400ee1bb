/* SPDX-License-Identifier: GPL-2.0-only */
/* Guest memory access for one guest: foreign mappings through a bounded cache, grant mappings. */
#ifndef VBLKD_GMEM_H
#define VBLKD_GMEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <xenforeignmemory.h>
#include <xengnttab.h>

#include "virtio-types.h"

/* Guest addresses with this bit set are grant references (virtio ACCESS_PLATFORM on Xen). */
#define GMEM_GRANT_BIT (1ull << 63)

struct gmem;

/*
 * What the guests' mappings may take of this process, shared by every gmem
 * (all fields set by the owner; @maps and @waiting kept by gmem).  Every
 * page mapped counts against its guest's @guest_pages, a cached chunk as a
 * whole; every mapping (cached chunk or not) against @guest_maps and, with
 * the gap it may cut into its reservation, against @max_maps for all guests
 * together: what the kernel's vm.max_map_count leaves after the daemon's own
 * mappings.  Beyond a limit, cached chunks nobody uses are dropped first;
 * if that is not enough gmem_map() fails with -ENOBUFS and, once something
 * is released, @room is called for the guest that waits (or for all of them,
 * after a wait on @max_maps), from inside gmem_unmap(): it must not map.
 */
struct gmem_budget {
	uint64_t guest_pages;		/* per guest: pages mapped at once */
	unsigned int guest_maps;	/* per guest: mappings at once */
	uint64_t max_maps;		/* all guests: mappings, counting reservation gaps */
	/*
	 * Guests on several IO threads share these two: atomic, no lock.  Two
	 * threads mapping at once may both fit and pass @max_maps by their
	 * sizes; the daemon's own share of vm.max_map_count (guest.c) is far
	 * above that.
	 */
	_Atomic uint64_t maps;		/* all guests, now */
	_Atomic bool waiting;		/* a gmem_map() failed on @max_maps since the last @room */
	/* @owner: the gmem's owner (gmem_set_owner()) whose limits were in the way, or NULL for all. */
	void (*room)(void *data, void *owner);
	void *data;
};

/*
 * Defaults (vblkd(8), "GUEST MEMORY"): 256 MiB and 2048 mappings per guest,
 * half of them for its cache of chunks (guest.c), so at most about 3,000 of
 * the process's memory areas.
 */
#define GMEM_GUEST_PAGES_DEFAULT 65536u
#define GMEM_GUEST_MAPS_DEFAULT 2048u

struct gmem_stats {
	uint64_t hits;		/* map() served from a cached chunk */
	uint64_t misses;	/* chunks mapped */
	uint64_t evictions;	/* cached chunks unmapped to make room */
	uint64_t uncached;	/* mappings made outside the cache (chunk-crossing ranges, grants) */
	uint64_t budget_waits;	/* map() refused for the budget (-ENOBUFS) */
	uint64_t copies;	/* gmem_copy() calls that copied (grants) */
	unsigned int cached_chunks;
	unsigned int live;	/* mappings handed out and not yet released */
	uint64_t pages;		/* pages mapped now (cached chunks whole) */
	unsigned int maps;	/* mappings now (cached chunks and others) */
	uint64_t peak_pages;
	unsigned int peak_maps;
};

/*
 * @chunks bounds the cache: at most @chunks chunks of GMEM_CHUNK_PAGES pages
 * each stay mapped.  The handles and @budget (NULL: no limits) are shared
 * and outlive the gmem.
 */
#define GMEM_CHUNK_PAGES 64u
int gmem_new(xenforeignmemory_handle *fmem, xengnttab_handle *xgt, unsigned int domid,
	     unsigned int chunks, struct gmem_budget *budget, struct gmem **ret_gmem);
/* What the budget's room() callback is told when this guest may map again. */
void gmem_set_owner(struct gmem *gmem, void *owner);
/* Unmaps everything; mappings still handed out become invalid (the caller drained IO first). */
void gmem_free(struct gmem *gmem);

/*
 * Map [addr, addr + len) of guest memory contiguously.  @addr is a guest
 * physical address, or a grant address (GMEM_GRANT_BIT set, references
 * consecutive per page).  -EFAULT when any page is not the guest's memory,
 * -E2BIG for a range over GMEM_MAX_MAP bytes, -ENOBUFS when the budget has
 * no room for it now.
 */
#define GMEM_MAX_MAP (4ull << 20)
int gmem_map(struct gmem *gmem, uint64_t addr, uint64_t len, bool write, void **ret_ptr);
/* Release what gmem_map() returned (the same pointer and length). */
void gmem_unmap(struct gmem *gmem, void *ptr, uint64_t len);
/*
 * Copy each of @n ranges between grant memory at @gpa (GMEM_GRANT_BIT set,
 * references consecutive per page as for gmem_map()) and @buf (@to_guest:
 * into the guest), with one grant copy call and no mapping: a grant mapping
 * costs a map and an unmap with its TLB flush, too much for a request's
 * header and status byte.  -EOPNOTSUPP, nothing copied, for a guest
 * physical address (a mapping from the cache is cheaper) or more than
 * GMEM_COPY_PAGES pages in all (the caller maps instead); -EFAULT when a
 * reference is not the guest's or is read-only and @to_guest; what the grant
 * copy call said when it failed.
 */
#define GMEM_COPY_PAGES 4u
int gmem_copy(struct gmem *gmem, const struct virtio_copy *c, unsigned int n);
/*
 * After gmem_map() said -ENOBUFS and the caller released what it held for
 * that attempt: call the budget's room() at the next release by anyone else.
 */
void gmem_wait_room(struct gmem *gmem);

/* Drop every cached chunk nobody uses (the guest changed its memory map: IOREQ_TYPE_INVALIDATE). */
void gmem_invalidate(struct gmem *gmem);

void gmem_get_stats(struct gmem *gmem, struct gmem_stats *ret_stats);

#endif
