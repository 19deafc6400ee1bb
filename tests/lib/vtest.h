/* SPDX-License-Identifier: GPL-2.0-only */
/* Virtio test helpers: fake RAM transport, RAM block backend and a guest driver model. */
#ifndef VBLKD_TESTS_VTEST_H
#define VBLKD_TESTS_VTEST_H

#include <stdbool.h>
#include <stdint.h>

#include "blk.h"
#include "vblk.h"
#include "virtio-types.h"
#include "vmmio.h"

/* ---- fake transport: guest RAM is one host buffer, gpa 0 .. size-1 ---- */
struct fake_mem {
	uint8_t *ram;
	uint64_t size;
	uint64_t alloc_next;
	long maps_live;			/* map() minus unmap() calls */
	unsigned long maps_total;
	unsigned int notifies;		/* notify() calls: interrupts raised */
	uint64_t fail_gpa, fail_len;	/* map() of anything touching this range fails ... */
	int fail_err;			/* ... with this (0: -EFAULT) */
	long maps_limit;		/* map() fails with -ENOBUFS at this many live (0: no limit) */
	long maps_peak;
	unsigned long copies_total;	/* copy() calls that copied all their ranges (vt_new_copying()) */
	uint64_t copy_max;		/* copy() declines longer pieces (0: FAKE_MEM_COPY_MAX) */
	struct virtio_transport t;
};
/* vt_new_copying()'s transport copies pieces up to this long, and declines longer ones. */
#define FAKE_MEM_COPY_MAX 64u

void fake_mem_init(struct fake_mem *m, uint64_t size, bool grants);
void fake_mem_fini(struct fake_mem *m);
/* Bump allocator in guest RAM (zeroed, aligned). */
uint64_t fake_mem_alloc(struct fake_mem *m, uint64_t len, uint64_t align);
void *fake_mem_ptr(struct fake_mem *m, uint64_t gpa);

/* ---- RAM block backend implementing the vblk_backend_ops contract ---- */
struct ram_be {
	uint8_t *data;
	uint64_t size;
	unsigned int depth;		/* max accepted and not completed; 0 = unlimited */
	struct blk_req *pending[1024];
	unsigned int npending;
	unsigned int submits, unplugs;
	unsigned int quiets;		/* set_timer(us > 0): a queue stopped asking for notifications */
	unsigned int resumes;		/* set_timer(0): a pass stopped on its budget */
	uint64_t timer_us;		/* the last set_timer() interval */
	int fail_submit;		/* next submit returns this (then reset to 0) */
	int fail_complete;		/* completions report this res */
	bool reverse;			/* complete newest first */
	unsigned int ops_seen[5];	/* per enum blk_op */
	unsigned int last_flags;
};

void ram_be_init(struct ram_be *be, uint64_t size);
void ram_be_fini(struct ram_be *be);
extern const struct vblk_backend_ops ram_be_ops;
/* Execute and complete every pending request (done() may submit more; those are completed too
 * only if @drain). Returns how many were completed. */
unsigned int ram_be_complete(struct ram_be *be, bool drain);

/* ---- the whole test bench: one vblk device over the fakes, and a driver model ---- */
struct vt_queue {
	bool packed;
	uint16_t num;
	uint64_t desc, driver, device;	/* gpa */
	uint16_t next_desc;		/* split: next free descriptor (ring allocation) */
	uint16_t avail_idx;
	uint16_t last_used;
	/* packed */
	uint16_t next_avail;
	bool avail_wrap;
	uint16_t next_used;
	bool used_wrap;
	uint16_t next_id;
	uint16_t ndesc_of[1024];	/* packed: descriptors used per id */
};

struct vt {
	struct fake_mem mem;
	struct ram_be be;
	struct vblk_dev *dev;
	struct virtio_dev *vdev;		/* vblk_virtio_dev(dev) */
	struct vmmio_dev *mmio;			/* its register decoder */
	struct vt_queue q[8];
	uint64_t offered;
};

struct vt_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* Host pointer of guest address @gpa; a fresh 512-aligned buffer of @len bytes set to @fill. */
/* What was logged (warnings and up) while @fn ran; a static buffer. */
char *vt_logged(void (*fn)(struct vt *vt), struct vt *vt);
void *vt_ptr(struct vt *vt, uint64_t gpa);
uint64_t vt_fill(struct vt *vt, uint32_t len, uint8_t fill);

/* cfg may be NULL: 1 MiB disk, 512-byte blocks, write cache, discard, write zeroes. */
struct vt *vt_new(const struct vblk_config *cfg);
struct vt *vt_new_grants(const struct vblk_config *cfg, bool grants);
/* A transport with copy(), as Xen's grants: small pieces copied, the rest mapped. */
struct vt *vt_new_copying(const struct vblk_config *cfg);
/* The transport maps at most @max_map bytes at once (a power of two). */
struct vt *vt_new_max_map(const struct vblk_config *cfg, uint64_t max_map);
/*
 * Guest memory and @nq queue layouts of @num entries (split or packed), and
 * no device: a driver model for tests that drive a vq of their own over
 * vt->mem.t.  vt_add(), vt_used() and friends work on it; nothing that
 * needs the device does.
 */
struct vt *vt_new_rings(unsigned int nq, uint16_t num, bool packed);
void vt_free(struct vt *vt);
/*
 * The old process goes away: its device and decoder are freed (requests in
 * the backend become orphans that touch no ring), its engine finishes what
 * it had; then a fresh device over the same guest memory and disk.
 */
void vt_replace_device(struct vt *vt);
struct blk_info vt_default_info(void);

uint32_t vt_rd(struct vt *vt, uint32_t off);
void vt_wr(struct vt *vt, uint32_t off, uint32_t val);
uint8_t vt_status(struct vt *vt);

/*
 * Handshake up to FEATURES_OK with @features & offered (VT_ALL: everything
 * offered); returns the FEATURES_OK bit as read back (§3.1.1).  _raw with
 * mask = false writes @features as given.
 */
#define VT_ALL UINT64_MAX
bool vt_features(struct vt *vt, uint64_t features);
bool vt_features_raw(struct vt *vt, uint64_t features, bool mask);
/* Set up queue @idx (modern registers) with @num entries; packed if RING_PACKED was accepted. */
void vt_queue_setup(struct vt *vt, unsigned int idx, uint16_t num);
/* Legacy: QueuePFN setup (GuestPageSize 4096, QueueAlign 4096). */
void vt_queue_setup_legacy(struct vt *vt, unsigned int idx, uint16_t num);
void vt_driver_ok(struct vt *vt);
/* All of the above: features, @nq queues of @num, DRIVER_OK.  Returns the FEATURES_OK result. */
bool vt_start(struct vt *vt, uint64_t features, unsigned int nq, uint16_t num);

/* Driver side of a queue. */
int vt_add(struct vt *vt, unsigned int qi, const struct vt_buf *bufs, unsigned int n,
	   bool indirect);
void vt_kick(struct vt *vt, unsigned int qi);
bool vt_used(struct vt *vt, unsigned int qi, uint32_t *ret_id, uint32_t *ret_len);
struct virtq_desc *vt_desc(struct vt *vt, unsigned int qi, uint16_t i);
uint16_t *vt_avail(struct vt *vt, unsigned int qi);	/* flags, idx, ring[], used_event */
uint16_t vt_used_idx(struct vt *vt, unsigned int qi);
/* Publish a raw head in the split available ring. */
void vt_avail_push(struct vt *vt, unsigned int qi, uint16_t head);

/* virtio-blk request: header, optional data, status; returns the id.  *ret_status is the status gpa. */
int vt_blk(struct vt *vt, unsigned int qi, uint32_t type, uint64_t sector, uint64_t data_gpa,
	   uint32_t data_len, uint64_t *ret_status);
/* Submit, kick, complete everything, flush; returns the status byte (0xff if unanswered). */
uint8_t vt_blk_sync(struct vt *vt, unsigned int qi, uint32_t type, uint64_t sector,
		    uint64_t data_gpa, uint32_t data_len);
/* Backend completes everything, then vblk_complete_batch(), until nothing is left in flight. */
void vt_complete(struct vt *vt);

#endif
