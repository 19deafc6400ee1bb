// SPDX-License-Identifier: GPL-2.0-only
/* The virtqueue interface: creation, checked buffer mapping, head bookkeeping for both layouts. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vq-internal.h"

static bool range_ok(uint64_t gpa, uint64_t len)
{
	/* Overflow-safe: the range must be non-empty and must not wrap past 2^64. */
	return len > 0 && gpa + len - 1 >= gpa;
}

int vq_map_ring(struct vq *vq, unsigned int slot, uint64_t gpa, uint64_t len, bool write,
		void **ret_ptr)
{
	void *p = NULL;
	int r;

	assert(slot < 3 && !vq->maps[slot].ptr);
	if (!range_ok(gpa, len))
		return -EFAULT;
	r = vq->t.ops->map(vq->t.opaque, gpa, len, write, &p);
	if (r < 0)
		return r;
	if (!p)
		return -EFAULT;
	vq->maps[slot].ptr = p;
	vq->maps[slot].len = len;
	*ret_ptr = p;
	return 0;
}

int vq_map_indirect(struct vq *vq, uint64_t addr, uint32_t len, void **ret_ptr)
{
	void *p = NULL;
	int r;

	/* §2.7.5.3.1: only with VIRTIO_F_INDIRECT_DESC negotiated. */
	if (!vq->cfg.indirect)
		return -EPROTO;
	/* §2.7.5.3: the table holds len / 16 descriptors, so len must be a non-zero multiple of 16. */
	if (len == 0 || len % sizeof(struct virtq_desc) != 0 ||
	    len / sizeof(struct virtq_desc) > VQ_INDIRECT_MAX)
		return -EPROTO;
	if (!range_ok(addr, len))
		return -EFAULT;
	/* The table must be 16-byte aligned for the descriptors we read from it (§2.7.5). */
	if (addr % 16 != 0)
		return -EPROTO;
	r = vq->t.ops->map(vq->t.opaque, addr, len, false, &p);
	if (r < 0)
		return r;
	if (!p)
		return -EFAULT;
	*ret_ptr = p;
	return 0;
}

int vq_add_buf(struct vq *vq, struct vq_elem *elem, uint64_t addr, uint32_t len, bool write)
{
	unsigned int n = elem->out_num + elem->in_num;

	/*
	 * A zero-length buffer carries nothing and a length-0 mapping is
	 * meaningless; QEMU treats it as a broken ring too.
	 */
	if (len == 0)
		return -EPROTO;
	/* §2.7.4.2 / §2.8.4.1: device-writable buffers come after all device-readable ones. */
	if (!write && elem->in_num > 0)
		return -EPROTO;
	/* Bounded buffer count: the device advertised its limit (e.g. virtio-blk seg_max). */
	if (n >= vq->cfg.max_segs)
		return -E2BIG;
	if (vq->cfg.max_seg_len && len > vq->cfg.max_seg_len)
		return -EMSGSIZE;
	/* §2.7.5 / §2.8.4: a chain is at most 2^32 bytes in total. */
	if (elem->out_len + elem->in_len + len > UINT32_MAX)
		return -EMSGSIZE;
	/* Checked here, where the driver's value is first seen: nothing later wraps. */
	if (!range_ok(addr, len))
		return -EFAULT;
	elem->bufs[n] = (struct vq_buf){ .addr = addr, .len = len, .write = write };
	if (write) {
		elem->in_num++;
		elem->in_len += len;
	} else {
		elem->out_num++;
		elem->out_len += len;
	}
	return 0;
}

int vq_take_id(struct vq *vq, uint16_t id)
{
	uint64_t bit;

	if (id >= vq->cfg.num)
		return -EPROTO;
	bit = 1ull << (id % 64);
	/*
	 * The driver offered a head (or buffer id) we have not returned yet: it
	 * does not own it (§2.7.8 / §2.8.6).  This also bounds requests in flight by num.
	 */
	if (vq->inflight_map[id / 64] & bit)
		return -EPROTO;
	vq->inflight_map[id / 64] |= bit;
	return 0;
}

bool vq_release_id(struct vq *vq, uint16_t id)
{
	uint64_t bit;

	if (id >= vq->cfg.num)
		return false;
	bit = 1ull << (id % 64);
	if (!(vq->inflight_map[id / 64] & bit))
		return false;
	vq->inflight_map[id / 64] &= ~bit;
	return true;
}

int vq_fail(struct vq *vq, int err)
{
	/* The transport ran out of room or memory: not the driver's fault, try again later. */
	if (err == -ENOBUFS || err == -ENOMEM)
		return err;
	vq->broken = true;
	return err;
}

/* Call @fn on each piece of [off, off + len) of the readable or writable part; stops at an error. */
static int elem_pieces(const struct virtio_transport *t, const struct vq_elem *elem, bool write,
		       uint64_t off, uint64_t len,
		       int (*fn)(const struct virtio_transport *t, uint64_t gpa, uint64_t len,
				 void *ctx),
		       void *ctx)
{
	unsigned int first = write ? elem->out_num : 0, n = write ? elem->in_num : elem->out_num;
	uint64_t total = write ? elem->in_len : elem->out_len;

	if (len == 0 || off > total || len > total - off)
		return -EINVAL;
	for (unsigned int i = first; i < first + n && len > 0; i++) {
		const struct vq_buf *b = &elem->bufs[i];

		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		for (uint64_t pos = off; pos < b->len && len > 0;) {
			uint64_t gpa = b->addr + pos, l = b->len - pos;
			int r;

			/* Cut at the next multiple of max_map: what the transport maps in one piece. */
			if (t->max_map && l > t->max_map - (gpa & (t->max_map - 1)))
				l = t->max_map - (gpa & (t->max_map - 1));
			if (l > len)
				l = len;
			r = fn(t, gpa, l, ctx);
			if (r < 0)
				return r;
			pos += l;
			len -= l;
		}
		off = 0;
	}
	return 0;
}

struct map_ctx {
	struct vq_elem *elem;
	bool write;
};

static int map_piece(const struct virtio_transport *t, uint64_t gpa, uint64_t len, void *ctx)
{
	struct map_ctx *m = ctx;
	struct vq_elem *elem = m->elem;
	void *p = NULL;
	int r;

	if (elem->iov_num >= elem->iov_cap)
		return -E2BIG;
	r = t->ops->map(t->opaque, gpa, len, m->write, &p);
	if (r < 0)
		return r;
	if (!p)
		return -EFAULT;
	elem->iov[elem->iov_num].iov_base = p;
	elem->iov[elem->iov_num].iov_len = len;
	elem->iov_num++;
	return 0;
}

/*
 * The buffer of the readable or writable part that holds [off, off + len)
 * whole, and the range's guest address, if the transport takes it in one
 * piece: the common case (a header, a status byte, a page of data) without
 * the general walk.  NULL otherwise.
 */
static const struct vq_buf *one_piece(const struct virtio_transport *t,
				      const struct vq_elem *elem, bool write, uint64_t off,
				      uint64_t len, uint64_t *ret_gpa)
{
	unsigned int i = write ? elem->out_num : 0, end = i + (write ? elem->in_num : elem->out_num);
	uint64_t total = write ? elem->in_len : elem->out_len;
	const struct vq_buf *b;

	if (len == 0 || off > total || len > total - off)
		return NULL;
	/* A status byte sits in the last buffer: look there first. */
	b = &elem->bufs[end - 1];
	if (off >= total - b->len) {
		off -= total - b->len;
	} else {
		for (b = &elem->bufs[i]; off >= b->len; b++)
			off -= b->len;
	}
	if (len > b->len - off)
		return NULL;
	*ret_gpa = b->addr + off;
	if (t->max_map && ((*ret_gpa ^ (*ret_gpa + len - 1)) & ~(t->max_map - 1)))
		return NULL;
	return b;
}

int vq_elem_map(const struct virtio_transport *t, struct vq_elem *elem, bool write, uint64_t off,
		uint64_t len)
{
	struct map_ctx m = { .elem = elem, .write = write };
	unsigned int before = elem->iov_num;
	uint64_t gpa;
	int r;

	if (one_piece(t, elem, write, off, len, &gpa)) {
		r = map_piece(t, gpa, len, &m);
		return r < 0 ? r : 1;
	}
	r = elem_pieces(t, elem, write, off, len, map_piece, &m);

	if (r < 0) {
		/* Nothing new stays mapped. */
		while (elem->iov_num > before) {
			elem->iov_num--;
			t->ops->unmap(t->opaque, elem->iov[elem->iov_num].iov_base,
				      elem->iov[elem->iov_num].iov_len);
		}
		return r;
	}
	return (int)(elem->iov_num - before);
}

struct copy_ctx {
	uint8_t *buf;
	bool to_guest;
	bool map_ok;		/* a piece the transport cannot copy() is mapped; else -EOPNOTSUPP */
};

/* One piece to or from the guest: by the transport's copy() where it has one, else mapped. */
static int copy_piece(const struct virtio_transport *t, uint64_t gpa, uint64_t len, void *ctx)
{
	struct copy_ctx *c = ctx;
	struct virtio_copy one = { .gpa = gpa, .buf = c->buf, .len = len, .to_guest = c->to_guest };
	void *p = NULL;
	int r = t->ops->copy ? t->ops->copy(t->opaque, &one, 1) : -EOPNOTSUPP;

	if (r == -EOPNOTSUPP && c->map_ok) {
		r = t->ops->map(t->opaque, gpa, len, c->to_guest, &p);
		if (r == 0 && !p)
			r = -EFAULT;
		if (r == 0) {
			if (c->to_guest)
				memcpy(p, c->buf, len);
			else
				memcpy(c->buf, p, len);
			t->ops->unmap(t->opaque, p, len);
		}
	}
	if (r == 0)
		c->buf += len;
	return r;
}

static int elem_copy(const struct virtio_transport *t, const struct vq_elem *elem, bool write,
		     uint64_t off, uint64_t len, struct copy_ctx *c)
{
	uint64_t gpa;

	if (one_piece(t, elem, write, off, len, &gpa))
		return copy_piece(t, gpa, len, c);
	return elem_pieces(t, elem, write, off, len, copy_piece, c);
}

int vq_elem_read(const struct virtio_transport *t, const struct vq_elem *elem, uint64_t off,
		 void *buf, uint64_t len)
{
	struct copy_ctx c = { .buf = buf, .to_guest = false, .map_ok = true };

	return elem_copy(t, elem, false, off, len, &c);
}

int vq_elem_write(const struct virtio_transport *t, const struct vq_elem *elem, uint64_t off,
		  const void *buf, uint64_t len)
{
	struct copy_ctx c = { .buf = (uint8_t *)buf, .to_guest = true, .map_ok = true };

	return elem_copy(t, elem, true, off, len, &c);
}

int vq_elem_copy(const struct virtio_transport *t, const struct vq_elem *elem,
		 const struct vq_copy *c, unsigned int n)
{
	struct virtio_copy v[VQ_COPY_MAX];

	if (!t->ops->copy || n > VQ_COPY_MAX)
		return -EOPNOTSUPP;
	for (unsigned int i = 0; i < n; i++) {
		/* A range over two buffers (or over max_map) is left to the general walk. */
		if (!one_piece(t, elem, c[i].write, c[i].off, c[i].len, &v[i].gpa))
			return -EOPNOTSUPP;
		v[i].buf = c[i].buf;
		v[i].len = c[i].len;
		v[i].to_guest = c[i].to_guest;
	}
	return t->ops->copy(t->opaque, v, n);
}

void vq_elem_unmap(const struct virtio_transport *t, struct vq_elem *elem)
{
	for (unsigned int i = 0; i < elem->iov_num; i++)
		t->ops->unmap(t->opaque, elem->iov[i].iov_base, elem->iov[i].iov_len);
	elem->iov_num = 0;
}

int vq_create(const struct virtio_transport *t, const struct vq_config *cfg, struct vq **ret_vq)
{
	struct vq *vq;
	int r;

	assert(t && t->ops && t->ops->map && t->ops->unmap);
	if (cfg->num == 0 || cfg->num > VQ_NUM_MAX || cfg->max_segs == 0)
		return -EINVAL;
	/* §2.7: a split queue size is a power of two; packed ones need not be (§2.8). */
	if (!cfg->packed && (cfg->num & (cfg->num - 1)) != 0)
		return -EINVAL;
	vq = calloc(1, sizeof(*vq));
	if (!vq)
		return -ENOMEM;
	vq->t = *t;
	vq->cfg = *cfg;
	vq->ops = cfg->packed ? &vq_packed_ops : &vq_split_ops;
	vq->inflight_map = calloc((cfg->num + 63) / 64, sizeof(uint64_t));
	if (!vq->inflight_map) {
		r = -ENOMEM;
		goto err_free;
	}
	r = vq->ops->init(vq);
	if (r < 0)
		goto err_free;
	*ret_vq = vq;
	return 0;

err_free:
	vq_destroy(vq);
	return r;
}

void vq_destroy(struct vq *vq)
{
	unsigned int i;

	if (!vq)
		return;
	for (i = 0; i < 3; i++)
		if (vq->maps[i].ptr)
			vq->t.ops->unmap(vq->t.opaque, vq->maps[i].ptr, vq->maps[i].len);
	free(vq->pending);
	free(vq->start);
	free(vq->redo);
	free(vq->inflight_map);
	free(vq);
}

int vq_pop(struct vq *vq, struct vq_elem *elem)
{
	if (vq->broken)
		return -EPIPE;
	elem->out_num = elem->in_num = 0;
	elem->out_len = elem->in_len = 0;
	elem->ndesc = 0;
	elem->iov_num = 0;
	if (vq->redo_next < vq->nredo) {
		/* Restored heads first: they were taken from the ring before the save. */
		int r;

		vq->redo_next++;

		if (vq->redo_journal)
			r = vq_journal_repop(vq, elem, &vq->redo[vq->redo_next - 1]);
		else
			r = vq->ops->repop(vq, elem, &vq->redo[vq->redo_next - 1]);
		return r < 0 ? vq_fail(vq, r) : r;
	}
	if (vq->j) {
		uint16_t pos = vq->cfg.packed ? vq->next_avail : vq->last_avail;
		bool wrap = vq->avail_wrap;
		int r = vq->ops->pop(vq, elem);

		if (r == 1)
			vq_journal_taken(vq, elem, pos, wrap);
		return r;
	}
	return vq->ops->pop(vq, elem);
}

void vq_push(struct vq *vq, const struct vq_elem *elem, uint32_t written)
{
	/* Only ids this queue handed out go back; a stale element is dropped. */
	if (!vq_release_id(vq, elem->id))
		return;
	if (written > elem->in_len)
		written = (uint32_t)elem->in_len;
	vq->ops->push(vq, elem, written);
	if (vq->j)
		vq_journal_pushed(vq, vq->cfg.packed ? vq->npending - 1 :
						       (uint16_t)(vq->used_idx - vq->used_published - 1),
				  elem->id);
}

bool vq_publish(struct vq *vq)
{
	return vq->ops->publish(vq);
}

void vq_notify_off(struct vq *vq)
{
	if (vq->notify_off || vq->broken)
		return;
	vq->notify_off = true;
	vq->ops->set_notify(vq, false);
}

bool vq_notify_on(struct vq *vq)
{
	if (vq->broken)
		return false;
	vq->notify_off = false;
	return vq->ops->set_notify(vq, true);
}

bool vq_has_avail(const struct vq *vq)
{
	if (vq->broken)
		return false;
	return vq->redo_next < vq->nredo || vq->ops->has_avail(vq);
}

uint16_t vq_num(const struct vq *vq)
{
	return vq->cfg.num;
}

bool vq_notify_is_off(const struct vq *vq)
{
	return vq->notify_off;
}

int vq_save(const struct vq *vq, struct vq_state *st)
{
	/* Pushed entries are only the device's until published: save between batches. */
	if (vq->used_idx != vq->used_published || vq->npending || vq->notify_pending)
		return -EBUSY;
	*st = (struct vq_state){ 0 };
	st->last_avail = vq->cfg.packed ? vq->next_avail : vq->last_avail;
	st->used_idx = vq->cfg.packed ? vq->next_used : vq->used_idx;
	st->avail_wrap = vq->avail_wrap;
	st->used_wrap = vq->used_wrap;
	st->notify_off = vq->notify_off;
	return 0;
}

unsigned int vq_inflight_list(const struct vq *vq, struct vq_inflight *out, unsigned int max)
{
	unsigned int n = 0;

	for (unsigned int id = 0; id < vq->cfg.num; id++) {
		if (!(vq->inflight_map[id / 64] & (1ull << (id % 64))))
			continue;
		if (n < max) {
			out[n] = (struct vq_inflight){ .id = (uint16_t)id, .pos = (uint16_t)id };
			if (vq->start)
				out[n] = vq->start[id];
		}
		n++;
	}
	return n;
}

static int restore_check(const struct vq *vq, const struct vq_state *st,
			 const struct vq_inflight *heads, unsigned int n)
{
	uint16_t num = vq->cfg.num;

	if (st->avail_wrap > 1 || st->used_wrap > 1 || st->notify_off > 1 || n > num)
		return -EINVAL;
	/* Split: every entry taken and not yet used is in flight, no more, no fewer (§2.7.6, §2.7.8). */
	if (!vq->cfg.packed && (uint16_t)(st->last_avail - st->used_idx) != n)
		return -EINVAL;
	if (vq->cfg.packed && (st->last_avail >= num || st->used_idx >= num))
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		if (heads[i].id >= num || heads[i].pos >= num || heads[i].wrap > 1)
			return -EINVAL;
		if (!vq->cfg.packed && heads[i].pos != heads[i].id)
			return -EINVAL;
	}
	return 0;
}

int vq_restore(struct vq *vq, const struct vq_state *st, const struct vq_inflight *heads,
	       unsigned int n)
{
	unsigned int i;
	int r = restore_check(vq, st, heads, n);

	if (r < 0)
		return r;
	if (n) {
		vq->redo = calloc(n, sizeof(*vq->redo));
		if (!vq->redo)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		r = vq_take_id(vq, heads[i].id);
		if (r < 0)
			goto err;	/* the same id twice */
		vq->redo[i] = heads[i];
		if (vq->start)
			vq->start[heads[i].id] = heads[i];
	}
	vq->nredo = n;
	vq->redo_next = 0;
	if (vq->cfg.packed) {
		vq->next_avail = st->last_avail;
		vq->next_used = st->used_idx;
		vq->avail_wrap = st->avail_wrap;
		vq->used_wrap = st->used_wrap;
	} else {
		vq->last_avail = st->last_avail;
		vq->used_idx = vq->used_published = st->used_idx;
	}
	/* The driver-visible suppression fields are written again from the saved intent. */
	vq->notify_off = st->notify_off;
	vq->ops->set_notify(vq, !st->notify_off);
	return 0;

err:
	memset(vq->inflight_map, 0, (vq->cfg.num + 63) / 64 * sizeof(uint64_t));
	free(vq->redo);
	vq->redo = NULL;
	return -EINVAL;
}
