/* SPDX-License-Identifier: GPL-2.0-only */
/* Virtqueues: one device-side interface over the split (§2.7) and packed (§2.8) layouts. */
#ifndef VBLKD_VQ_H
#define VBLKD_VQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "virtio-platform.h"
#include "virtio-types.h"

/* Largest queue the device accepts (§2.6: split queue sizes are powers of two <= 32768). */
#define VQ_NUM_MAX 32768u
/* Largest indirect descriptor table accepted, in descriptors (§2.7.5.3). */
#define VQ_INDIRECT_MAX 1024u

struct vq;

struct vq_config {
	uint16_t num;			/* queue size, 1..VQ_NUM_MAX (power of two for split) */
	uint64_t desc_addr;		/* guest address of the descriptor ring */
	uint64_t driver_addr;		/* available ring / driver event suppression (packed) */
	uint64_t device_addr;		/* used ring (split) / device event suppression (packed) */
	bool packed;			/* VIRTIO_F_RING_PACKED negotiated */
	bool event_idx;			/* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;			/* VIRTIO_F_INDIRECT_DESC negotiated */
	unsigned int max_segs;		/* most buffers per chain (room in vq_elem.bufs), >= 1 */
	uint32_t max_seg_len;		/* longest single buffer accepted; 0 = no limit */
	/* Legacy split layout (virtio-mmio Version 1, §4.2.4): rings follow the table in one area. */
	bool legacy;
	uint32_t legacy_align;		/* QueueAlign, power of two */
};

/* One guest buffer of a chain as the driver described it; checked, but not mapped. */
struct vq_buf {
	uint64_t addr;			/* guest (or grant) address */
	uint32_t len;			/* >= 1 */
	bool write;			/* device-writable */
};

/*
 * One buffer chain taken from the ring.  vq_pop() fills @bufs (room for
 * max_segs entries, from the caller): the device-readable buffers first
 * (out_num), then the device-writable ones (in_num), with their total
 * lengths, and maps nothing: the device checks a request's shape and length
 * first, then maps only the byte ranges it uses with vq_elem_map(), whose
 * mappings land in @iov (room for iov_cap entries, from the caller) and stay
 * valid until vq_elem_unmap().
 */
struct vq_elem {
	uint16_t id;			/* head index (split) / buffer id (packed), < num */
	uint16_t ndesc;			/* ring slots the chain used (packed) */
	unsigned int out_num;
	unsigned int in_num;
	uint64_t out_len;		/* bytes in the readable buffers */
	uint64_t in_len;		/* bytes in the writable buffers */
	struct vq_buf *bufs;
	struct iovec *iov;
	unsigned int iov_cap;
	unsigned int iov_num;		/* mappings made by vq_elem_map() */
};

/*
 * Map the rings of a queue the driver made ready and check their placement
 * (alignment §2.7 / §2.8.10, no wrap, inside guest memory).  -EINVAL for a
 * bad config, -EFAULT when a ring cannot be mapped, -ENOMEM.
 */
int vq_create(const struct virtio_transport *t, const struct vq_config *cfg, struct vq **ret_vq);
/* Unmap the rings.  Elements already popped stay valid (their buffers are unmapped separately). */
void vq_destroy(struct vq *vq);

/*
 * Take the next available chain.  Returns 1 with *elem filled, 0 when the
 * ring is empty (with EVENT_IDX the driver has been asked to notify for the
 * next buffer, §2.7.10), or a negative errno when the driver broke a ring
 * rule; the queue is then broken for good (vq_broken()) and the caller must
 * put the device into DEVICE_NEEDS_RESET (§2.1.2).  Every guest value is
 * checked: head/id < num, at most num new entries (§2.7.6), chain length,
 * loops, indirect tables (§2.7.5.3), readable before writable (§2.7.4.2),
 * no zero-length buffer, no range that wraps, lengths overflow-safe, head
 * not already in flight.  Buffers are not mapped (vq_elem_map()).  The
 * transport's -ENOBUFS or -ENOMEM when mapping an indirect table is returned
 * as is, with nothing taken and the queue intact: try again later.
 */
int vq_pop(struct vq *vq, struct vq_elem *elem);

/*
 * Map bytes [off, off + len) of the element's readable (@write false) or
 * writable part, appending them to elem->iov in pieces that never cross a
 * multiple of the transport's max_map.  Returns the number of entries added
 * (the first is at the old iov_num), or -errno with nothing new mapped:
 * -EINVAL the range is outside that part, -E2BIG no room in iov, or what the
 * transport's map() said (-EFAULT not guest memory, -ENOBUFS the guest's
 * mapping budget is used up for now, -ENOMEM).
 */
int vq_elem_map(const struct virtio_transport *t, struct vq_elem *elem, bool write, uint64_t off,
		uint64_t len);

/* Copy bytes [off, off + len) of the readable part into @buf; nothing stays mapped.  As vq_elem_map(). */
int vq_elem_read(const struct virtio_transport *t, const struct vq_elem *elem, uint64_t off,
		 void *buf, uint64_t len);
/* Copy @buf into bytes [off, off + len) of the writable part; nothing stays mapped.  As vq_elem_map(). */
int vq_elem_write(const struct virtio_transport *t, const struct vq_elem *elem, uint64_t off,
		  const void *buf, uint64_t len);
/*
 * Several ranges of the chain by one copy() call of the transport (struct
 * virtio_transport_ops): bytes [off, off + len) of the readable part, or of
 * the writable part (@write), to or from @buf.  Each range must lie in one
 * buffer.  0 when all were copied; -EOPNOTSUPP, nothing copied, when the
 * transport has no copy() for them or a range spans buffers (the caller maps
 * instead); else what copy() said, as vq_elem_map().
 */
#define VQ_COPY_MAX 4u
struct vq_copy {
	bool write;
	uint64_t off;
	void *buf;
	uint64_t len;
	bool to_guest;
};
int vq_elem_copy(const struct virtio_transport *t, const struct vq_elem *elem,
		 const struct vq_copy *c, unsigned int n);

/* Release the element's mappings (needs only the transport: works after vq_destroy()). */
void vq_elem_unmap(const struct virtio_transport *t, struct vq_elem *elem);

/*
 * Return an element to the driver with @written bytes written into its
 * writable buffers.  Not visible to the driver until vq_publish().
 */
void vq_push(struct vq *vq, const struct vq_elem *elem, uint32_t written);

/*
 * Publish everything pushed since the last publish (one used index update,
 * §2.7.8 / §2.8.6) and say whether the driver wants an interrupt for it:
 * VIRTQ_AVAIL_F_NO_INTERRUPT or used_event (§2.7.7, §2.7.10), or the packed
 * driver event suppression structure (§2.8.10).
 */
bool vq_publish(struct vq *vq);

/*
 * Notification suppression, for a device that will look at the ring again by
 * itself (requests of its own in flight): vq_notify_off() tells the driver it
 * need not notify for new buffers (§2.7.7 VIRTQ_USED_F_NO_NOTIFY, §2.7.10
 * avail_event, §2.8.10 device event suppression); vq_pop() then no longer
 * asks for a notification when it finds the ring empty.  vq_notify_on()
 * asks again and returns true if buffers arrived meanwhile, which the caller
 * must then take (the driver may have skipped its notification for them).
 * Queues start with notifications on.
 */
void vq_notify_off(struct vq *vq);
bool vq_notify_on(struct vq *vq);
/*
 * Whether vq_pop() would find a buffer now, without asking for a
 * notification or taking anything: a cheap look for a device that polls the
 * ring (a read of the avail index, or of the next descriptor's flags).
 */
bool vq_has_avail(const struct vq *vq);

uint16_t vq_num(const struct vq *vq);

/* ---- saved state (see virtio-dev.h) ---- */

/* Ring positions and event suppression of a live queue. */
struct vq_state {
	uint16_t last_avail;		/* split: next available entry; packed: next descriptor */
	uint16_t used_idx;		/* split: used index; packed: next used descriptor */
	uint8_t avail_wrap;		/* packed wrap counters (§2.8.1) */
	uint8_t used_wrap;
	uint8_t notify_off;		/* vq_notify_off() in force */
	uint8_t pad;
};

/* A buffer taken from the ring and not returned: its head (split) or id, and where it began (packed). */
struct vq_inflight {
	uint16_t queue;			/* for the device's list; vq ignores it */
	uint16_t id;
	uint16_t pos;			/* packed: its first descriptor; split: = id */
	uint8_t wrap;			/* packed: the driver's wrap counter there */
	uint8_t pad;
};

/* -EBUSY: entries pushed and not yet published. */
int vq_save(const struct vq *vq, struct vq_state *st);
/* Heads in flight, at most @max written to @out; returns how many there are. */
unsigned int vq_inflight_list(const struct vq *vq, struct vq_inflight *out, unsigned int max);
/*
 * A queue just created (same config) takes up @st and @n heads in flight:
 * vq_pop() returns those first, walking their chains again.  Every field is
 * checked (-EINVAL: positions and ids < num, ids unique, split: exactly
 * last_avail - used_idx heads).  Sets the driver-visible suppression state
 * again (§2.7.7, §2.7.10, §2.8.10).
 */
int vq_restore(struct vq *vq, const struct vq_state *st, const struct vq_inflight *heads,
	       unsigned int n);
bool vq_notify_is_off(const struct vq *vq);

/* ---- the journal: a queue's state in memory that outlives the process ---- */

/*
 * A live queue can keep its positions and every buffer in flight in memory
 * the caller provides (a file mapped MAP_SHARED, for example), updated as
 * the data path runs, so that a process killed at any instruction leaves a
 * journal a new process can resume from (the idea of vhost-user's inflight
 * region, §"Inflight I/O tracking" of QEMU's vhost-user.rst):
 *  - a buffer is marked taken, with its guest buffers, before its position
 *    is committed, and both before the caller submits it;
 *  - a batch of used entries is announced (its ids, where it ends) before
 *    the store that makes it visible to the driver, and its marks cleared
 *    after; a resumed queue looks at the ring to see whether that store
 *    happened.
 * The layout is native-endian and private to this version (callers keep a
 * version of their own around it).  Everything in it is checked when it is
 * resumed: it may be stale, torn by a crash, or written by someone else.
 */
struct vq_journal_buf {
	uint64_t addr;
	uint32_t len;
	uint32_t write;
};

struct vq_journal_slot {
	uint8_t taken;			/* 1: in flight */
	uint8_t wrap;			/* packed: the driver's wrap counter at pos */
	uint16_t pos;			/* split: its avail index; packed: its first descriptor */
	uint16_t ndesc;
	uint16_t nbufs;
	struct vq_journal_buf bufs[];	/* max_bufs entries */
};

#define VQ_JOURNAL_MAGIC 0x4a515656u	/* "VVQJ" */

struct vq_journal {
	uint32_t magic;
	uint16_t num;			/* the queue size it is laid out for */
	uint16_t max_bufs;		/* room in each slot */
	uint32_t avail;			/* next available position (split: index), wrap in bit 16 */
	uint32_t used;			/* published used position, wrap in bit 16 */
	uint64_t pub;			/* bit 63: a batch announced, from (bits 0-16) to (32-48) */
	uint16_t pub_n;			/* its ids: batch[0 .. pub_n) */
	uint16_t taking;		/* id + 1 of the slot last marked (0: none) */
	uint16_t pad[2];
	uint16_t batch[];		/* num ids, then the slots (vq_journal_size()); 8-aligned */
};

/* Bytes a journal for a queue of @num entries and @max_bufs buffers per chain needs. */
size_t vq_journal_size(unsigned int num, unsigned int max_bufs);
/*
 * From now on keep @vq's state in @j (@size bytes), starting afresh from
 * the queue's current positions with nothing in flight: call it on a queue
 * just created, before its first vq_pop().  -ENOSPC: @size is too small for
 * this queue (nothing is kept then).
 */
int vq_journal_start(struct vq *vq, void *j, size_t size);
/*
 * A queue just created (the same config as the journal's) resumes from @j
 * and keeps it from then on: its positions, and the buffers in flight, which
 * vq_pop() returns first (walked from the journal, checked again as the
 * driver's).  A batch announced but not visible in the ring is in flight
 * still.  -EINVAL: the journal does not fit this queue or contradicts itself
 * or the ring (the caller then starts the device afresh).
 */
int vq_journal_resume(struct vq *vq, void *j, size_t size);

#endif
