// SPDX-License-Identifier: GPL-2.0-only
/* Packed virtqueue layout (virtio 1.2 §2.8): one descriptor ring, wrap counters, event suppression. */
#include <errno.h>
#include <stdlib.h>

#include "vq-internal.h"

#define EVENT_OFF_WRAP 0
#define EVENT_FLAGS 1

static int packed_init(struct vq *vq)
{
	uint16_t num = vq->cfg.num;
	void *p;
	int r;

	/* §2.8.10.1: descriptor ring 16-byte, event suppression structures 4-byte aligned. */
	if (vq->cfg.desc_addr % 16 || vq->cfg.driver_addr % 4 || vq->cfg.device_addr % 4)
		return -EINVAL;
	vq->pending = calloc(num, sizeof(*vq->pending));
	vq->start = calloc(num, sizeof(*vq->start));
	if (!vq->pending || !vq->start)
		return -ENOMEM;
	r = vq_map_ring(vq, 0, vq->cfg.desc_addr, 16ull * num, true, &p);
	if (r < 0)
		return r;
	vq->pdesc = p;
	r = vq_map_ring(vq, 1, vq->cfg.driver_addr, 4, false, &p);
	if (r < 0)
		return r;
	vq->driver_event = p;
	r = vq_map_ring(vq, 2, vq->cfg.device_addr, 4, true, &p);
	if (r < 0)
		return r;
	vq->device_event = p;
	/* §2.8.1: both wrap counters start at 1. */
	vq->avail_wrap = true;
	vq->used_wrap = true;
	/* We never suppress driver notifications: QueueNotify is how work arrives (§2.8.10). */
	vq_store(&vq->device_event[EVENT_FLAGS], virtio_htole16(VIRTQ_EVENT_F_ENABLE));
	return 0;
}

/* §2.8.7: an indirect table of packed descriptors, laid out in order without NEXT links. */
static int packed_walk_indirect(struct vq *vq, struct vq_elem *elem, uint64_t addr, uint32_t len)
{
	struct virtq_packed_desc *table;
	unsigned int i, n = len / sizeof(*table);
	void *p;
	int r;

	r = vq_map_indirect(vq, addr, len, &p);
	if (r < 0)
		return r;
	table = p;
	for (i = 0; i < n; i++) {
		uint64_t a = virtio_le64toh(vq_load(&table[i].addr));
		uint32_t l = virtio_le32toh(vq_load(&table[i].len));
		uint16_t f = virtio_le16toh(vq_load(&table[i].flags));

		/* §2.8.19: only WRITE may be set inside an indirect table; INDIRECT would nest. */
		if (f & VIRTQ_DESC_F_INDIRECT) {
			r = -EPROTO;
			break;
		}
		r = vq_add_buf(vq, elem, a, l, f & VIRTQ_DESC_F_WRITE);
		if (r < 0)
			break;
	}
	vq->t.ops->unmap(vq->t.opaque, p, len);
	return r;
}

static bool desc_is_avail(uint16_t flags, bool wrap)
{
	/* §2.8.1: available when AVAIL matches the driver's wrap counter and USED does not. */
	return !!(flags & VIRTQ_DESC_F_AVAIL) == wrap && !!(flags & VIRTQ_DESC_F_USED) != wrap;
}

/*
 * Walk the list that starts at *@io_i (its head's @flags already read and
 * found available): the buffers into @elem, *@io_i / *@io_wrap past it, its
 * buffer id into *@ret_id.
 */
static int packed_walk(struct vq *vq, struct vq_elem *elem, uint16_t flags, uint16_t *io_i,
		       bool *io_wrap, uint16_t *ret_id)
{
	uint16_t num = vq->cfg.num, i = *io_i, id = 0;
	bool wrap = *io_wrap;
	unsigned int count = 0;
	int r;

	/*
	 * Read the rest of the chain only after its head's flags: pairs with the
	 * driver's write barrier before it stores the head flags (§2.8.21.1.1).
	 */
	vq_rmb();
	for (;;) {
		uint64_t addr;
		uint32_t len;

		/* §2.8.17: a list is never longer than the queue size (so no loops either). */
		if (count++ >= num)
			return -ELOOP;
		addr = virtio_le64toh(vq_load(&vq->pdesc[i].addr));
		len = virtio_le32toh(vq_load(&vq->pdesc[i].len));
		id = virtio_le16toh(vq_load(&vq->pdesc[i].id));
		if (count > 1)
			flags = virtio_le16toh(vq_load(&vq->pdesc[i].flags));
		if (flags & VIRTQ_DESC_F_INDIRECT) {
			/*
			 * §2.8.19: an indirect descriptor stands alone, never in a
			 * list linked by NEXT (unlike the split ring, §2.7.5.3.2).
			 */
			if ((flags & VIRTQ_DESC_F_NEXT) || count > 1)
				return -EPROTO;
			r = packed_walk_indirect(vq, elem, addr, len);
		} else {
			r = vq_add_buf(vq, elem, addr, len, flags & VIRTQ_DESC_F_WRITE);
		}
		if (r < 0)
			return r;
		if (++i == num) {
			i = 0;
			wrap = !wrap;
		}
		if (!(flags & VIRTQ_DESC_F_NEXT))
			break;
	}
	elem->ndesc = (uint16_t)count;
	*io_i = i;
	*io_wrap = wrap;
	*ret_id = id;
	return 0;
}

static int packed_pop(struct vq *vq, struct vq_elem *elem)
{
	uint16_t i = vq->next_avail, id, flags;
	bool wrap = vq->avail_wrap;
	int r;

	flags = virtio_le16toh(vq_load(&vq->pdesc[i].flags));
	if (!desc_is_avail(flags, wrap))
		return 0;
	r = packed_walk(vq, elem, flags, &i, &wrap, &id);
	/* §2.8.6: the buffer id is in the list's last descriptor; ids are < num (as Linux uses them). */
	if (r == 0)
		r = vq_take_id(vq, id);
	if (r < 0)
		return vq_fail(vq, r);
	elem->id = id;
	/* Where the chain began, for a saved state (one store per request). */
	vq->start[id] = (struct vq_inflight){ .id = id, .pos = vq->next_avail,
					      .wrap = vq->avail_wrap };
	vq->next_avail = i;
	vq->avail_wrap = wrap;
	return 1;
}

static int packed_repop(struct vq *vq, struct vq_elem *elem, const struct vq_inflight *h)
{
	uint16_t i = h->pos, id, flags;
	bool wrap = h->wrap;
	int r;

	/*
	 * Used entries are written in order of completion over the ring
	 * (§2.8.5), so one may have covered the descriptors of a buffer still
	 * in flight: then its chain is gone and cannot be taken again.
	 */
	flags = virtio_le16toh(vq_load(&vq->pdesc[i].flags));
	if (!desc_is_avail(flags, wrap))
		return -ESTALE;
	r = packed_walk(vq, elem, flags, &i, &wrap, &id);
	if (r < 0)
		return r;
	if (id != h->id)
		return -ESTALE;
	elem->id = id;
	return 1;
}

static bool packed_publish(struct vq *vq);

static void packed_push(struct vq *vq, const struct vq_elem *elem, uint32_t written)
{
	struct vq_used_pending *p;

	/*
	 * A driver that plays by the rules never has more than num buffers
	 * between two publishes (it cannot reuse an id before seeing it used).  A
	 * hostile one that re-offers ids can: publish early rather than drop.
	 */
	if (vq->npending >= vq->cfg.num)
		vq->notify_pending |= packed_publish(vq);
	p = &vq->pending[vq->npending++];
	p->id = elem->id;
	p->ndesc = elem->ndesc;
	p->len = written;
}

static bool packed_publish(struct vq *vq)
{
	uint16_t num = vq->cfg.num, old = vq->next_used, first_slot = vq->next_used;
	uint16_t first_flags = 0, off_wrap, dflags;
	int32_t off, old_i, new_i;
	unsigned int k;

	if (vq->npending == 0) {
		bool n = vq->notify_pending;

		vq->notify_pending = false;
		return n;
	}
	for (k = 0; k < vq->npending; k++) {
		struct vq_used_pending *p = &vq->pending[k];
		struct virtq_packed_desc *d = &vq->pdesc[vq->next_used];
		/* §2.8.1: a used descriptor has AVAIL and USED both equal to the used wrap counter. */
		uint16_t f = vq->used_wrap ? (VIRTQ_DESC_F_AVAIL | VIRTQ_DESC_F_USED) : 0;

		/* §2.8.3 / §2.8.4: WRITE in a used descriptor says len bytes were written. */
		if (p->len)
			f |= VIRTQ_DESC_F_WRITE;

		vq_store(&d->id, virtio_htole16(p->id));
		vq_store(&d->len, virtio_htole32(p->len));
		if (k == 0) {
			first_flags = f;
		} else {
			/* id/len before flags: pairs with the driver's rmb after it reads flags. */
			vq_wmb();
			vq_store(&d->flags, virtio_htole16(f));
		}
		vq->next_used = (uint16_t)(vq->next_used + p->ndesc);
		if (vq->next_used >= num) {
			vq->next_used -= num;
			vq->used_wrap = !vq->used_wrap;
		}
	}
	if (vq->j)
		vq_journal_publishing(vq, vq->next_used, vq->used_wrap, vq->npending);
	vq->npending = 0;
	/*
	 * The first descriptor's flags last, so the whole batch becomes visible at
	 * once (§2.8.9); pairs with the driver's rmb after reading the flags (§2.8.22).
	 */
	vq_wmb();
	vq_store(&vq->pdesc[first_slot].flags, virtio_htole16(first_flags));
	if (vq->j)
		vq_journal_published(vq);
	/* Publish before reading the driver's event suppression: pairs with its mb after writing it. */
	vq_mb();
	dflags = virtio_le16toh(vq_load(&vq->driver_event[EVENT_FLAGS]));
	if (vq->notify_pending) {
		/* an early publish (see packed_push) already decided to interrupt */
		vq->notify_pending = false;
		return dflags != VIRTQ_EVENT_F_DISABLE;
	}
	if (dflags == VIRTQ_EVENT_F_DISABLE)
		return false;
	if (dflags != VIRTQ_EVENT_F_DESC || !vq->cfg.event_idx)
		return true; /* ENABLE, or a value we do not know: interrupt rather than hang */
	/*
	 * §2.8.10: notify when the used position passes the driver's off_wrap.
	 * Indices are compared in one numbering that unrolls the ring wrap.
	 */
	off_wrap = virtio_le16toh(vq_load(&vq->driver_event[EVENT_OFF_WRAP]));
	off = off_wrap & 0x7fff;
	new_i = vq->next_used;
	old_i = old;
	if (new_i <= old_i)
		old_i -= num;
	if (!!(off_wrap >> 15) != vq->used_wrap)
		off -= num;
	return vq_need_event((uint16_t)off, (uint16_t)new_i, (uint16_t)old_i);
}

static bool packed_set_notify(struct vq *vq, bool on)
{
	/* §2.8.10: the device event suppression structure; DESC mode is not used. */
	vq_store(&vq->device_event[EVENT_FLAGS],
		 virtio_htole16(on ? VIRTQ_EVENT_F_ENABLE : VIRTQ_EVENT_F_DISABLE));
	if (!on)
		return false;
	/*
	 * Flags before the next descriptor: pairs with the driver's mb between
	 * making a descriptor available and reading these flags
	 * (virtqueue_kick_prepare_packed).
	 */
	vq_mb();
	return desc_is_avail(virtio_le16toh(vq_load(&vq->pdesc[vq->next_avail].flags)), vq->avail_wrap);
}

static bool packed_has_avail(const struct vq *vq)
{
	return desc_is_avail(virtio_le16toh(vq_load(&vq->pdesc[vq->next_avail].flags)), vq->avail_wrap);
}

static int packed_journal_published(struct vq *vq, const struct vq_journal *j)
{
	uint64_t pub = __atomic_load_n(&j->pub, __ATOMIC_RELAXED);
	uint16_t from = (uint16_t)pub, flags;
	bool wrap = (pub >> 16) & 1;

	/*
	 * The batch's first descriptor becomes used last (packed_publish()).
	 * Until then it is the available one we took, USED = !wrap; once used,
	 * USED = wrap, and it stays so when the driver makes it available again
	 * (with the other wrap counter, §2.8.1).
	 */
	flags = virtio_le16toh(vq_load(&vq->pdesc[from].flags));
	return !!(flags & VIRTQ_DESC_F_USED) == wrap;
}

/*
 * A process killed in packed_publish() may have written used descriptors
 * after the first of its batch, whose flags it writes last: invisible while
 * that first one is not used, they would be read as new ones once a later
 * batch makes it so, and their buffers are in flight again.  Every slot from
 * the used to the avail position is the device's (taken, not yet returned,
 * §2.8.6), so it is marked as not used in the driver's lap.
 */
static int packed_journal_resumed(struct vq *vq)
{
	uint16_t num = vq->cfg.num, i = vq->next_used;
	bool wrap = vq->used_wrap;
	int n = vq->next_avail - vq->next_used;

	/* One lap ahead at most (§2.8.1): at most num slots in flight. */
	if (vq->avail_wrap != vq->used_wrap)
		n += num;
	if (n < 0 || n > num)
		return -EINVAL;
	for (; n > 0; n--) {
		/* §2.8.1: used is AVAIL == USED == the wrap counter; this is neither. */
		vq_store(&vq->pdesc[i].flags,
			 virtio_htole16(wrap ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED));
		if (++i == num) {
			i = 0;
			wrap = !wrap;
		}
	}
	return 0;
}

const struct vq_layout_ops vq_packed_ops = {
	.init = packed_init,
	.pop = packed_pop,
	.push = packed_push,
	.publish = packed_publish,
	.set_notify = packed_set_notify,
	.has_avail = packed_has_avail,
	.repop = packed_repop,
	.journal_published = packed_journal_published,
	.journal_resumed = packed_journal_resumed,
};
