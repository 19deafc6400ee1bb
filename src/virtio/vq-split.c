// SPDX-License-Identifier: GPL-2.0-only
/* Split virtqueue layout (virtio 1.2 §2.7): descriptor table, available ring, used ring, EVENT_IDX. */
#include <errno.h>
#include <stdlib.h>

#include "vq-internal.h"

/* Offsets inside the rings, in their own units (§2.7.6, §2.7.8). */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 1
#define AVAIL_RING 2
#define USED_HDR 4 /* bytes: flags, idx */

static uint64_t avail_size(uint16_t num)
{
	return 2 * 3 + 2ull * num; /* flags, idx, ring[num], used_event */
}

static uint64_t used_size(uint16_t num)
{
	return 2 * 3 + 8ull * num; /* flags, idx, ring[num], avail_event */
}

static uint16_t *used_flags_ptr(struct vq *vq)
{
	return (uint16_t *)vq->used;
}

static uint16_t *used_idx_ptr(struct vq *vq)
{
	return (uint16_t *)(vq->used + 2);
}

static uint16_t *avail_event_ptr(struct vq *vq)
{
	return (uint16_t *)(vq->used + USED_HDR + 8ull * vq->cfg.num);
}

static int split_init(struct vq *vq)
{
	uint16_t num = vq->cfg.num;
	uint64_t dsize = 16ull * num;
	void *p;
	int r;

	if (vq->cfg.legacy) {
		/*
		 * §2.7.2 legacy layout (virtio-mmio Version 1, §4.2.4): the available
		 * ring follows the table, the used ring starts at the next QueueAlign
		 * boundary; one area, one mapping.
		 */
		uint64_t align = vq->cfg.legacy_align, used_off, total;

		if (align == 0 || (align & (align - 1)) != 0)
			return -EINVAL;
		/*
		 * The ring fields must still be naturally aligned for us to access
		 * them: a QueueAlign or GuestPageSize below 16 cannot give that.
		 */
		if (align < 16 || vq->cfg.desc_addr % 16 != 0)
			return -EINVAL;
		used_off = (dsize + avail_size(num) + align - 1) & ~(align - 1);
		total = used_off + used_size(num);
		r = vq_map_ring(vq, 0, vq->cfg.desc_addr, total, true, &p);
		if (r < 0)
			return r;
		vq->desc = p;
		vq->avail = (uint16_t *)((uint8_t *)p + dsize);
		vq->used = (uint8_t *)p + used_off;
		return 0;
	}

	/* §2.7 alignment table, §2.7.1: table 16, available ring 2, used ring 4 bytes. */
	if (vq->cfg.desc_addr % 16 || vq->cfg.driver_addr % 2 || vq->cfg.device_addr % 4)
		return -EINVAL;
	r = vq_map_ring(vq, 0, vq->cfg.desc_addr, dsize, false, &p);
	if (r < 0)
		return r;
	vq->desc = p;
	r = vq_map_ring(vq, 1, vq->cfg.driver_addr, avail_size(num), false, &p);
	if (r < 0)
		return r;
	vq->avail = p;
	r = vq_map_ring(vq, 2, vq->cfg.device_addr, used_size(num), true, &p);
	if (r < 0)
		return r;
	vq->used = p;
	return 0;
}

/* Walk one chain starting at @head (§2.7.5, §2.7.5.3). */
static int split_walk(struct vq *vq, struct vq_elem *elem, uint16_t head)
{
	const struct virtq_desc *table = vq->desc;
	struct virtq_desc *ind = NULL;
	uint64_t ind_len = 0;
	unsigned int tmax = vq->cfg.num, steps = 0;
	uint16_t i = head;
	int r;

	for (;;) {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;

		/*
		 * §2.7.5.3.1: a chain is never longer than the queue size (or the
		 * indirect table); a longer walk means the driver built a loop.
		 */
		if (steps++ >= tmax) {
			r = -ELOOP;
			goto err;
		}
		/* Each field read once into a local: the guest may rewrite the table under us. */
		addr = virtio_le64toh(vq_load(&table[i].addr));
		len = virtio_le32toh(vq_load(&table[i].len));
		flags = virtio_le16toh(vq_load(&table[i].flags));
		next = virtio_le16toh(vq_load(&table[i].next));

		if (flags & VIRTQ_DESC_F_INDIRECT) {
			void *p;

			/*
			 * §2.7.5.3.1: no INDIRECT inside an indirect table, and never
			 * INDIRECT together with NEXT.  §2.7.5.3.2: WRITE is ignored here.
			 */
			if (ind || (flags & VIRTQ_DESC_F_NEXT)) {
				r = -EPROTO;
				goto err;
			}
			r = vq_map_indirect(vq, addr, len, &p);
			if (r < 0)
				goto err;
			ind = p;
			ind_len = len;
			table = ind;
			tmax = len / sizeof(struct virtq_desc);
			steps = 0;
			i = 0; /* §2.7.5.3: the first indirect descriptor is at index 0 */
			continue;
		}
		r = vq_add_buf(vq, elem, addr, len, flags & VIRTQ_DESC_F_WRITE);
		if (r < 0)
			goto err;
		if (!(flags & VIRTQ_DESC_F_NEXT))
			break;
		if (next >= tmax) {
			r = -EPROTO;
			goto err;
		}
		i = next;
	}
	if (ind)
		vq->t.ops->unmap(vq->t.opaque, ind, ind_len);
	return 0;

err:
	if (ind)
		vq->t.ops->unmap(vq->t.opaque, ind, ind_len);
	return vq_fail(vq, r);
}

static int split_pop(struct vq *vq, struct vq_elem *elem)
{
	uint16_t num = vq->cfg.num, avail_idx, head;
	int r;

	avail_idx = virtio_le16toh(vq_load(&vq->avail[AVAIL_IDX]));
	if (avail_idx == vq->last_avail) {
		/* Notifications off: the caller looks again without being asked. */
		if (!vq->cfg.event_idx || vq->notify_off)
			return 0;
		/*
		 * §2.7.10: ask for a notification when the driver adds the next
		 * entry, then look again: the driver may have added one before it
		 * saw our avail_event.  The full barrier orders our avail_event
		 * store before the idx re-read; it pairs with the driver's mb
		 * between its avail->idx store and its avail_event load
		 * (virtqueue_kick_prepare_split).
		 */
		vq_store(avail_event_ptr(vq), virtio_htole16(vq->last_avail));
		vq_mb();
		avail_idx = virtio_le16toh(vq_load(&vq->avail[AVAIL_IDX]));
		if (avail_idx == vq->last_avail)
			return 0;
	}
	/* §2.7.6: the driver can have made at most num entries available beyond ours. */
	if ((uint16_t)(avail_idx - vq->last_avail) > num)
		return vq_fail(vq, -EPROTO);
	/*
	 * Read the ring entry only after seeing idx: pairs with the driver's
	 * write barrier between filling ring[] and updating idx (§2.7.13.3).
	 */
	vq_rmb();
	head = virtio_le16toh(vq_load(&vq->avail[AVAIL_RING + vq->last_avail % num]));
	/* §2.7.6: ring entries are heads of descriptor chains, < queue size. */
	if (head >= num)
		return vq_fail(vq, -EPROTO);
	r = vq_take_id(vq, head);
	if (r < 0)
		return vq_fail(vq, r);
	r = split_walk(vq, elem, head);
	if (r < 0) {
		vq_release_id(vq, head);
		return r;
	}
	elem->id = head;
	elem->ndesc = 1;
	vq->last_avail++;
	return 1;
}

static void split_push(struct vq *vq, const struct vq_elem *elem, uint32_t written)
{
	struct virtq_used_elem *ring = (struct virtq_used_elem *)(vq->used + USED_HDR);
	struct virtq_used_elem *u = &ring[vq->used_idx % vq->cfg.num];

	/* Invisible to the driver until used->idx moves in split_publish(). */
	vq_store(&u->id, virtio_htole32(elem->id));
	vq_store(&u->len, virtio_htole32(written));
	vq->used_idx++;
}

static bool split_publish(struct vq *vq)
{
	uint16_t old = vq->used_published, new_idx = vq->used_idx;

	if (old == new_idx)
		return false;
	/*
	 * Used elements before the index: pairs with the driver's read barrier
	 * after it loads used->idx and before it reads ring[] (§2.7.13 /
	 * virtqueue_get_buf_ctx_split's virtio_rmb).
	 */
	vq_wmb();
	if (vq->j)
		vq_journal_publishing(vq, new_idx, false, (uint16_t)(new_idx - old));
	vq_store(used_idx_ptr(vq), virtio_htole16(new_idx));
	vq->used_published = new_idx;
	if (vq->j)
		vq_journal_published(vq);
	/*
	 * Publish the index before reading the driver's suppression state: pairs
	 * with the driver's mb between writing used_event (or flags) and
	 * re-checking used->idx (virtqueue_enable_cb_delayed_split).
	 */
	vq_mb();
	if (vq->cfg.event_idx) {
		/* §2.7.7: used_event sits after the available ring. */
		uint16_t event = virtio_le16toh(vq_load(&vq->avail[AVAIL_RING + vq->cfg.num]));

		return vq_need_event(event, new_idx, old);
	}
	/* §2.7.7.2: without EVENT_IDX, VIRTQ_AVAIL_F_NO_INTERRUPT asks us not to interrupt. */
	return !(virtio_le16toh(vq_load(&vq->avail[AVAIL_FLAGS])) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

static bool split_set_notify(struct vq *vq, bool on)
{
	uint16_t avail_idx;

	if (!on) {
		/*
		 * §2.7.10: with EVENT_IDX, an avail_event behind every entry the
		 * driver can still add asks for nothing (its vring_need_event() is
		 * false until the index wraps); split_pop() then leaves it there.
		 * §2.7.7: without it, VIRTQ_USED_F_NO_NOTIFY (advice only).
		 */
		if (vq->cfg.event_idx)
			vq_store(avail_event_ptr(vq), virtio_htole16((uint16_t)(vq->last_avail - 1)));
		else
			vq_store(used_flags_ptr(vq), virtio_htole16(VIRTQ_USED_F_NO_NOTIFY));
		return false;
	}
	if (vq->cfg.event_idx)
		vq_store(avail_event_ptr(vq), virtio_htole16(vq->last_avail));
	else
		vq_store(used_flags_ptr(vq), 0);
	/* As in split_pop(): our store before the idx re-read, against the driver's kick check. */
	vq_mb();
	avail_idx = virtio_le16toh(vq_load(&vq->avail[AVAIL_IDX]));
	return avail_idx != vq->last_avail;
}

static bool split_has_avail(const struct vq *vq)
{
	return virtio_le16toh(vq_load(&vq->avail[AVAIL_IDX])) != vq->last_avail;
}

static int split_repop(struct vq *vq, struct vq_elem *elem, const struct vq_inflight *h)
{
	/* §2.7.8: the chain of a head not yet used is still the device's to read. */
	int r = split_walk(vq, elem, h->id);

	if (r < 0)
		return r;
	elem->id = h->id;
	elem->ndesc = 1;
	return 1;
}

static int split_journal_published(struct vq *vq, const struct vq_journal *j)
{
	uint16_t idx = virtio_le16toh(vq_load(used_idx_ptr(vq)));
	uint64_t pub = __atomic_load_n(&j->pub, __ATOMIC_RELAXED);

	/* Only the device writes used->idx: it holds either end of the batch. */
	if (idx == (uint16_t)(pub >> 32))
		return 1;
	return idx == (uint16_t)pub ? 0 : -EINVAL;
}

const struct vq_layout_ops vq_split_ops = {
	.init = split_init,
	.pop = split_pop,
	.push = split_push,
	.publish = split_publish,
	.set_notify = split_set_notify,
	.has_avail = split_has_avail,
	.repop = split_repop,
	.journal_published = split_journal_published,
};
