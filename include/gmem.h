/* SPDX-License-Identifier: GPL-2.0-only */
/* Guest memory access for one guest: foreign mappings through a bounded cache, grant mappings. */
#ifndef VBLKD_GMEM_H
#define VBLKD_GMEM_H

#include <stdbool.h>
#include <stdint.h>

#include <xenforeignmemory.h>
#include <xengnttab.h>

/* Guest addresses with this bit set are grant references (virtio ACCESS_PLATFORM on Xen). */
#define GMEM_GRANT_BIT (1ull << 63)

struct gmem;

struct gmem_stats {
	uint64_t hits;		/* map() served from a cached chunk */
	uint64_t misses;	/* chunks mapped */
	uint64_t evictions;	/* cached chunks unmapped to make room */
	uint64_t uncached;	/* mappings made outside the cache (chunk-crossing ranges, grants) */
	unsigned int cached_chunks;
	unsigned int live;	/* mappings handed out and not yet released */
};

/*
 * @chunks bounds the cache: at most @chunks chunks of GMEM_CHUNK_PAGES pages
 * each stay mapped.  The handles are shared and outlive the gmem.
 */
#define GMEM_CHUNK_PAGES 64u
int gmem_new(xenforeignmemory_handle *fmem, xengnttab_handle *xgt, unsigned int domid,
	     unsigned int chunks, struct gmem **ret_gmem);
/* Unmaps everything; mappings still handed out become invalid (the caller drained IO first). */
void gmem_free(struct gmem *gmem);

/*
 * Map [addr, addr + len) of guest memory contiguously.  @addr is a guest
 * physical address, or a grant address (GMEM_GRANT_BIT set, references
 * consecutive per page).  -EFAULT when any page is not the guest's memory.
 */
int gmem_map(struct gmem *gmem, uint64_t addr, uint64_t len, bool write, void **ret_ptr);
/* Release what gmem_map() returned (the same pointer and length). */
void gmem_unmap(struct gmem *gmem, void *ptr, uint64_t len);

/* Drop every cached chunk nobody uses (the guest changed its memory map: IOREQ_TYPE_INVALIDATE). */
void gmem_invalidate(struct gmem *gmem);

void gmem_get_stats(const struct gmem *gmem, struct gmem_stats *ret_stats);

#endif
