/* SPDX-License-Identifier: GPL-2.0-only */
/* Private to src/virtio: the state shared by vq.c and the two ring layouts behind it. */
#ifndef VBLKD_VQ_INTERNAL_H
#define VBLKD_VQ_INTERNAL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio-platform.h"
#include "vq.h"

/*
 * Barriers for memory shared with the guest.  Each call site says which
 * driver-side barrier it pairs with (§2.7.13, §2.7.14, §2.8.21, §2.8.22 and Linux virtio_ring.c).
 */
#define vq_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define vq_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define vq_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)

/* Read or write a ring field exactly once (the guest may change it at any time). */
#define vq_load(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define vq_store(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

struct vq_layout_ops {
	int (*init)(struct vq *vq);
	int (*pop)(struct vq *vq, struct vq_elem *elem);
	void (*push)(struct vq *vq, const struct vq_elem *elem, uint32_t written);
	bool (*publish)(struct vq *vq);
	bool (*set_notify)(struct vq *vq, bool on);
	/* Whether the driver made a buffer available that pop() has not taken (no side effect). */
	bool (*has_avail)(const struct vq *vq);
	/* Walk an in-flight chain again after a restore (vq_restore()). */
	int (*repop)(struct vq *vq, struct vq_elem *elem, const struct vq_inflight *h);
	/*
	 * Whether the batch the journal announced became visible to the
	 * driver: 1 yes, 0 no, -EINVAL the ring says neither.
	 */
	int (*journal_published)(struct vq *vq, const struct vq_journal *j);
	/*
	 * After a resume set the positions: make sure nothing the device owns
	 * looks used to the driver (NULL: nothing can).  -EINVAL when the
	 * positions contradict each other.
	 */
	int (*journal_resumed)(struct vq *vq);
};

struct vq_map {
	void *ptr;
	uint64_t len;
};

struct vq_used_pending {
	uint16_t id;
	uint16_t ndesc;
	uint32_t len;
};

struct vq {
	const struct vq_layout_ops *ops;	/* read-only table of the layout */
	struct virtio_transport t;
	struct vq_config cfg;
	bool broken;
	bool notify_off;			/* vq_notify_off(): the driver need not notify */
	uint64_t *inflight_map;			/* one bit per head / buffer id */
	struct vq_map maps[3];			/* ring mappings, unmapped by vq_destroy() */
	struct vq_inflight *redo;		/* restored heads vq_pop() returns first */
	unsigned int nredo, redo_next;

	/* split */
	struct virtq_desc *desc;
	uint16_t *avail;			/* flags, idx, ring[num], used_event */
	uint8_t *used;				/* flags, idx, ring[num] (used elems), avail_event */
	uint16_t last_avail;
	uint16_t used_idx;			/* next used index to write */
	uint16_t used_published;		/* last value written to used->idx */

	/* packed */
	struct virtq_packed_desc *pdesc;
	uint16_t *driver_event;			/* off_wrap, flags */
	uint16_t *device_event;
	uint16_t next_avail;
	bool avail_wrap;
	uint16_t next_used;
	bool used_wrap;
	struct vq_used_pending *pending;
	unsigned int npending;
	bool notify_pending;			/* an early publish wanted an interrupt */
	struct vq_inflight *start;		/* per id: where its chain began (for a save) */

	/* the journal (vq_journal_start()), NULL when none */
	struct vq_journal *j;
	struct vq_journal_slot *jslots;
	size_t jstride;				/* bytes per slot */
	bool redo_journal;			/* redo[] heads are walked from the journal */
};

extern const struct vq_layout_ops vq_split_ops;
extern const struct vq_layout_ops vq_packed_ops;

/* Map [gpa, gpa + len) for the rings, remembered in vq->maps[slot]. */
int vq_map_ring(struct vq *vq, unsigned int slot, uint64_t gpa, uint64_t len, bool write,
		void **ret_ptr);
/* Add one guest buffer to @elem: checks length, order, segment count, overflow (maps nothing). */
int vq_add_buf(struct vq *vq, struct vq_elem *elem, uint64_t addr, uint32_t len, bool write);
/* Map an indirect table given by a descriptor (§2.7.5.3 / §2.8.7 rules on its length). */
int vq_map_indirect(struct vq *vq, uint64_t addr, uint32_t len, void **ret_ptr);
/* Head/id bookkeeping: -EPROTO if @id is out of range or already in flight. */
int vq_take_id(struct vq *vq, uint16_t id);
bool vq_release_id(struct vq *vq, uint16_t id);
/*
 * A pop failed with @err: a broken ring rule marks the queue broken; the
 * transport's -ENOBUFS / -ENOMEM (an indirect table it could not map now) do
 * not.  Returns @err.
 */
int vq_fail(struct vq *vq, int err);

/* Journal hooks (vq-journal.c); each does nothing without a journal. */
void vq_journal_taken(struct vq *vq, const struct vq_elem *elem, uint16_t pos, bool wrap);
void vq_journal_pushed(struct vq *vq, unsigned int n, uint16_t id);
void vq_journal_publishing(struct vq *vq, uint16_t to, bool to_wrap, unsigned int n);
void vq_journal_published(struct vq *vq);
/* A restored head walked again from its journal slot. */
int vq_journal_repop(struct vq *vq, struct vq_elem *elem, const struct vq_inflight *h);

/* §2.7.7 (used_event) / §2.7.10: has the index moved past @event in the step old -> new_idx? */
static inline bool vq_need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

#endif
