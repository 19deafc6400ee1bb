// SPDX-License-Identifier: GPL-2.0-only
/* Virtio test helpers: fake RAM transport, RAM block backend and a guest driver model. */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vtest.h"

/* ---- fake transport ------------------------------------------------------------------------ */

static int fm_map(void *opaque, uint64_t gpa, uint64_t len, bool write, void **ret_ptr)
{
	struct fake_mem *m = opaque;

	assert(len > 0 && gpa + len - 1 >= gpa); /* the device checks this before calling */
	/* ... and cuts its buffers into pieces the transport takes */
	assert(!m->t.max_map || len <= m->t.max_map);
	if (gpa >= m->size || len > m->size - gpa)
		return -EFAULT;
	if (m->fail_len && gpa < m->fail_gpa + m->fail_len && m->fail_gpa < gpa + len)
		return m->fail_err ? m->fail_err : -EFAULT;
	/* Atomic: the threads of a device's lanes (vblk.h) map at the same time. */
	long live = __atomic_load_n(&m->maps_live, __ATOMIC_RELAXED);

	if (m->maps_limit && live >= m->maps_limit)
		return -ENOBUFS;
	live = __atomic_add_fetch(&m->maps_live, 1, __ATOMIC_RELAXED);
	if (live > __atomic_load_n(&m->maps_peak, __ATOMIC_RELAXED))
		__atomic_store_n(&m->maps_peak, live, __ATOMIC_RELAXED);
	__atomic_add_fetch(&m->maps_total, 1, __ATOMIC_RELAXED);
	*ret_ptr = m->ram + gpa;
	return 0;
}

static void fm_unmap(void *opaque, void *ptr, uint64_t len)
{
	struct fake_mem *m = opaque;

	assert((uint8_t *)ptr >= m->ram && (uint8_t *)ptr + len <= m->ram + m->size);
	__atomic_sub_fetch(&m->maps_live, 1, __ATOMIC_RELAXED);
}

static void fm_notify(void *opaque)
{
	struct fake_mem *m = opaque;

	__atomic_add_fetch(&m->notifies, 1, __ATOMIC_RELAXED);
}

static const struct virtio_transport_ops fake_mem_ops = {
	.map = fm_map,
	.unmap = fm_unmap,
	.notify = fm_notify,
};

/* As Xen's grants: small pieces by copy, larger ones declined (the device maps them). */
static int fm_copy(void *opaque, const struct virtio_copy *c, unsigned int n)
{
	struct fake_mem *m = opaque;

	for (unsigned int i = 0; i < n; i++) {
		assert(c[i].len > 0 && c[i].gpa + c[i].len - 1 >= c[i].gpa);
		if (c[i].len > (m->copy_max ? m->copy_max : FAKE_MEM_COPY_MAX))
			return -EOPNOTSUPP;
	}
	for (unsigned int i = 0; i < n; i++) {
		uint64_t gpa = c[i].gpa, len = c[i].len;

		if (gpa >= m->size || len > m->size - gpa)
			return -EFAULT;
		if (m->fail_len && gpa < m->fail_gpa + m->fail_len && m->fail_gpa < gpa + len)
			return m->fail_err ? m->fail_err : -EFAULT;
		if (c[i].to_guest)
			memcpy(m->ram + gpa, c[i].buf, len);
		else
			memcpy(c[i].buf, m->ram + gpa, len);
	}
	m->copies_total++;
	return 0;
}

static const struct virtio_transport_ops fake_mem_copy_ops = {
	.map = fm_map,
	.unmap = fm_unmap,
	.copy = fm_copy,
	.notify = fm_notify,
};

void fake_mem_init(struct fake_mem *m, uint64_t size, bool grants)
{
	memset(m, 0, sizeof(*m));
	m->ram = aligned_alloc(4096, size);
	assert(m->ram);
	memset(m->ram, 0, size);
	m->size = size;
	m->alloc_next = 4096; /* keep gpa 0 unused */
	m->t.ops = &fake_mem_ops;
	m->t.opaque = m;
	m->t.grants = grants;
}

void fake_mem_fini(struct fake_mem *m)
{
	free(m->ram);
	m->ram = NULL;
}

uint64_t fake_mem_alloc(struct fake_mem *m, uint64_t len, uint64_t align)
{
	uint64_t gpa = (m->alloc_next + align - 1) & ~(align - 1);

	assert(gpa + len <= m->size);
	m->alloc_next = gpa + len;
	memset(m->ram + gpa, 0, len);
	return gpa;
}

void *fake_mem_ptr(struct fake_mem *m, uint64_t gpa)
{
	assert(gpa < m->size);
	return m->ram + gpa;
}

/* ---- RAM block backend --------------------------------------------------------------------- */

static int rb_submit(void *opaque, struct blk_req *req)
{
	struct ram_be *be = opaque;

	if (be->fail_submit) {
		int r = be->fail_submit;

		be->fail_submit = 0;
		return r;
	}
	if ((be->depth && be->npending >= be->depth) || be->npending >= 1024)
		return -EAGAIN;
	be->submits++;
	be->pending[be->npending++] = req;
	return 0;
}

static void rb_unplug(void *opaque)
{
	struct ram_be *be = opaque;

	be->unplugs++;
}

/* The device's poll timer: a new quiet spell arms it with an interval, a pass on its budget with 0. */
static int rb_set_timer(void *opaque, uint64_t us)
{
	struct ram_be *be = opaque;

	be->timer_us = us;
	if (us)
		be->quiets++;
	else
		be->resumes++;
	return 0;
}

const struct vblk_backend_ops ram_be_ops = {
	.submit = rb_submit,
	.unplug = rb_unplug,
	.set_timer = rb_set_timer,
};

void ram_be_init(struct ram_be *be, uint64_t size)
{
	memset(be, 0, sizeof(*be));
	be->data = calloc(1, size);
	assert(be->data);
	be->size = size;
}

void ram_be_fini(struct ram_be *be)
{
	free(be->data);
	be->data = NULL;
}

static int rb_execute(struct ram_be *be, struct blk_req *req)
{
	uint64_t off = req->offset, total = 0;

	be->ops_seen[req->op]++;
	be->last_flags = req->flags;
	switch (req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		for (unsigned int i = 0; i < req->iovcnt; i++)
			total += req->iov[i].iov_len;
		if (off > be->size || total > be->size - off)
			return -EIO; /* the device must never let this through */
		for (unsigned int i = 0; i < req->iovcnt; i++) {
			if (req->op == BLK_OP_READ)
				memcpy(req->iov[i].iov_base, be->data + off, req->iov[i].iov_len);
			else
				memcpy(be->data + off, req->iov[i].iov_base, req->iov[i].iov_len);
			off += req->iov[i].iov_len;
		}
		return 0;
	case BLK_OP_FLUSH:
		return 0;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		if (off > be->size || req->len > be->size - off)
			return -EIO;
		memset(be->data + off, 0, req->len);
		return 0;
	}
	return -EINVAL;
}

unsigned int ram_be_complete(struct ram_be *be, bool drain)
{
	unsigned int n = 0;

	do {
		struct blk_req *batch[1024];
		unsigned int cnt = be->npending;

		memcpy(batch, be->pending, cnt * sizeof(batch[0]));
		be->npending = 0;
		for (unsigned int k = 0; k < cnt; k++) {
			struct blk_req *req = batch[be->reverse ? cnt - 1 - k : k];
			int res = rb_execute(be, req);

			if (be->fail_complete)
				res = be->fail_complete;
			n++;
			req->done(req, res);
		}
	} while (drain && be->npending > 0);
	return n;
}

/* ---- test bench ---------------------------------------------------------------------------- */

#define VT_RAM (4u << 20)
#define VT_DISK (1u << 20)

struct blk_info vt_default_info(void)
{
	struct blk_info info = {
		.capacity = VT_DISK,
		.logical_block_size = 512,
		.physical_block_size = 4096,
		.discard = true,
		.write_zeroes = true,
		.write_cache = true,
	};
	return info;
}

static struct vt *vt_create(const struct vblk_config *cfg, bool grants, uint64_t max_map,
			    bool copying)
{
	struct vt *vt = calloc(1, sizeof(*vt));
	struct vblk_config c = { 0 };
	int r;

	assert(vt);
	fake_mem_init(&vt->mem, VT_RAM, grants);
	vt->mem.t.max_map = max_map;
	if (copying)
		vt->mem.t.ops = &fake_mem_copy_ops;
	if (cfg) {
		c = *cfg;
	} else {
		c.info = vt_default_info();
		c.serial = "vblkd-test-serial";
	}
	if (!c.info.capacity)
		c.info.capacity = VT_DISK;
	if (!c.info.logical_block_size)
		c.info.logical_block_size = 512;
	ram_be_init(&vt->be, c.info.capacity);
	r = vblk_create(&c, &vt->mem.t, &ram_be_ops, &vt->be, &vt->dev);
	assert(r == 0);
	vt->vdev = vblk_virtio_dev(vt->dev);
	r = vmmio_create(vt->vdev, &vt->mmio);
	assert(r == 0);
	return vt;
}

struct vt *vt_new_grants(const struct vblk_config *cfg, bool grants)
{
	return vt_create(cfg, grants, 0, false);
}

struct vt *vt_new_copying(const struct vblk_config *cfg)
{
	return vt_create(cfg, true, 0, true);
}

struct vt *vt_new_max_map(const struct vblk_config *cfg, uint64_t max_map)
{
	return vt_create(cfg, false, max_map, false);
}

/* What the daemon logged while @fn ran (warnings and up). */
char *vt_logged(void (*fn)(struct vt *vt), struct vt *vt)
{
	static char out[4096];
	FILE *f = tmpfile();
	size_t n;

	assert(f);
	log_set_level(LOG_LEVEL_WARNING);
	log_set_fd(fileno(f));
	fn(vt);
	log_set_fd(-1);
	log_set_level(LOG_LEVEL_ERR);
	rewind(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = 0;
	fclose(f);
	return out;
}

void *vt_ptr(struct vt *vt, uint64_t gpa)
{
	return fake_mem_ptr(&vt->mem, gpa);
}

uint64_t vt_fill(struct vt *vt, uint32_t len, uint8_t fill)
{
	uint64_t g = fake_mem_alloc(&vt->mem, len, 512);

	memset(vt_ptr(vt, g), fill, len);
	return g;
}

struct vt *vt_new(const struct vblk_config *cfg)
{
	return vt_new_grants(cfg, false);
}

static void vt_queue_init(struct vt *vt, unsigned int idx, uint16_t num, bool packed);

struct vt *vt_new_rings(unsigned int nq, uint16_t num, bool packed)
{
	struct vt *vt = calloc(1, sizeof(*vt));

	assert(vt && nq <= sizeof(vt->q) / sizeof(vt->q[0]));
	fake_mem_init(&vt->mem, VT_RAM, false);
	for (unsigned int i = 0; i < nq; i++)
		vt_queue_init(vt, i, num, packed);
	return vt;
}

void vt_free(struct vt *vt)
{
	if (!vt)
		return;
	vmmio_destroy(vt->mmio);
	vblk_destroy(vt->dev);
	/* Orphans complete after the device is gone, as the real engine would on close. */
	ram_be_complete(&vt->be, true);
	ram_be_fini(&vt->be);
	fake_mem_fini(&vt->mem);
	free(vt);
}

void vt_replace_device(struct vt *vt)
{
	struct vblk_config c = { .info = vt_default_info(), .serial = "vblkd-test-serial" };
	int r;

	vmmio_destroy(vt->mmio);
	vblk_destroy(vt->dev);
	ram_be_complete(&vt->be, true);
	c.info.capacity = vt->be.size;
	r = vblk_create(&c, &vt->mem.t, &ram_be_ops, &vt->be, &vt->dev);
	assert(r == 0);
	vt->vdev = vblk_virtio_dev(vt->dev);
	r = vmmio_create(vt->vdev, &vt->mmio);
	assert(r == 0);
}

uint32_t vt_rd(struct vt *vt, uint32_t off)
{
	return (uint32_t)vmmio_read(vt->mmio, off, 4);
}

void vt_wr(struct vt *vt, uint32_t off, uint32_t val)
{
	vmmio_write(vt->mmio, off, 4, val);
}

uint8_t vt_status(struct vt *vt)
{
	return (uint8_t)vt_rd(vt, 0x070);
}

bool vt_features(struct vt *vt, uint64_t features)
{
	return vt_features_raw(vt, features, true);
}

bool vt_features_raw(struct vt *vt, uint64_t features, bool mask)
{
	uint64_t offered;

	vt_wr(vt, 0x070, 0);
	vt_wr(vt, 0x070, VIRTIO_STATUS_ACKNOWLEDGE);
	vt_wr(vt, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vt_wr(vt, 0x014, 0);
	offered = vt_rd(vt, 0x010);
	vt_wr(vt, 0x014, 1);
	offered |= (uint64_t)vt_rd(vt, 0x010) << 32;
	vt->offered = offered;
	if (mask)
		features &= offered;
	vt_wr(vt, 0x024, 0);
	vt_wr(vt, 0x020, (uint32_t)features);
	vt_wr(vt, 0x024, 1);
	vt_wr(vt, 0x020, (uint32_t)(features >> 32));
	vt_wr(vt, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	return vt_status(vt) & VIRTIO_STATUS_FEATURES_OK;
}

static void vt_queue_init(struct vt *vt, unsigned int idx, uint16_t num, bool packed)
{
	struct vt_queue *q = &vt->q[idx];

	memset(q, 0, sizeof(*q));
	q->packed = packed;
	q->num = num;
	q->avail_wrap = true;
	q->used_wrap = true;
	if (packed) {
		q->desc = fake_mem_alloc(&vt->mem, 16ull * num, 16);
		q->driver = fake_mem_alloc(&vt->mem, 4, 4);
		q->device = fake_mem_alloc(&vt->mem, 4, 4);
	} else {
		q->desc = fake_mem_alloc(&vt->mem, 16ull * num, 16);
		q->driver = fake_mem_alloc(&vt->mem, 6 + 2ull * num, 2);
		q->device = fake_mem_alloc(&vt->mem, 6 + 8ull * num, 4);
	}
}

void vt_queue_setup(struct vt *vt, unsigned int idx, uint16_t num)
{
	struct vt_queue *q;
	bool packed = virtio_dev_has_feature(vt->vdev, VIRTIO_F_RING_PACKED);

	vt_queue_init(vt, idx, num, packed);
	q = &vt->q[idx];
	vt_wr(vt, 0x030, idx);
	vt_wr(vt, 0x038, num);
	vt_wr(vt, 0x080, (uint32_t)q->desc);
	vt_wr(vt, 0x084, (uint32_t)(q->desc >> 32));
	vt_wr(vt, 0x090, (uint32_t)q->driver);
	vt_wr(vt, 0x094, (uint32_t)(q->driver >> 32));
	vt_wr(vt, 0x0a0, (uint32_t)q->device);
	vt_wr(vt, 0x0a4, (uint32_t)(q->device >> 32));
	vt_wr(vt, 0x044, 1);
}

void vt_queue_setup_legacy(struct vt *vt, unsigned int idx, uint16_t num)
{
	struct vt_queue *q = &vt->q[idx];
	uint64_t used_off, total, base;

	memset(q, 0, sizeof(*q));
	q->num = num;
	used_off = (16ull * num + 6 + 2ull * num + 4095) & ~4095ull;
	total = used_off + 6 + 8ull * num;
	base = fake_mem_alloc(&vt->mem, total, 4096);
	q->desc = base;
	q->driver = base + 16ull * num;
	q->device = base + used_off;
	vt_wr(vt, 0x028, 4096);
	vt_wr(vt, 0x030, idx);
	vt_wr(vt, 0x038, num);
	vt_wr(vt, 0x03c, 4096);
	vt_wr(vt, 0x040, (uint32_t)(base / 4096));
}

void vt_driver_ok(struct vt *vt)
{
	vt_wr(vt, 0x070, vt_status(vt) | VIRTIO_STATUS_DRIVER_OK);
}

bool vt_start(struct vt *vt, uint64_t features, unsigned int nq, uint16_t num)
{
	if (!vt_features(vt, features))
		return false;
	for (unsigned int i = 0; i < nq; i++)
		vt_queue_setup(vt, i, num);
	vt_driver_ok(vt);
	return true;
}

struct virtq_desc *vt_desc(struct vt *vt, unsigned int qi, uint16_t i)
{
	return (struct virtq_desc *)fake_mem_ptr(&vt->mem, vt->q[qi].desc + 16ull * i);
}

uint16_t *vt_avail(struct vt *vt, unsigned int qi)
{
	return fake_mem_ptr(&vt->mem, vt->q[qi].driver);
}

uint16_t vt_used_idx(struct vt *vt, unsigned int qi)
{
	uint16_t *u = fake_mem_ptr(&vt->mem, vt->q[qi].device);

	return le16toh(u[1]);
}

void vt_avail_push(struct vt *vt, unsigned int qi, uint16_t head)
{
	struct vt_queue *q = &vt->q[qi];
	uint16_t *a = vt_avail(vt, qi);

	a[2 + q->avail_idx % q->num] = htole16(head);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	q->avail_idx++;
	a[1] = htole16(q->avail_idx);
}

static void put_desc(struct virtq_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

static int vt_add_packed(struct vt *vt, unsigned int qi, const struct vt_buf *bufs, unsigned int n,
			 bool indirect)
{
	struct vt_queue *q = &vt->q[qi];
	struct virtq_packed_desc *ring = fake_mem_ptr(&vt->mem, q->desc);
	uint16_t id = q->next_id, head = q->next_avail, head_flags = 0;
	uint16_t avail_bits = q->avail_wrap ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED;
	unsigned int cnt = indirect ? 1 : n;

	q->next_id = (uint16_t)((q->next_id + 1) % q->num);
	q->ndesc_of[id] = (uint16_t)cnt;
	if (indirect) {
		uint64_t tgpa = fake_mem_alloc(&vt->mem, 16ull * n, 16);
		struct virtq_packed_desc *t = fake_mem_ptr(&vt->mem, tgpa);

		for (unsigned int i = 0; i < n; i++) {
			t[i].addr = htole64(bufs[i].gpa);
			t[i].len = htole32(bufs[i].len);
			t[i].id = 0;
			t[i].flags = htole16(bufs[i].write ? VIRTQ_DESC_F_WRITE : 0);
		}
		ring[head].addr = htole64(tgpa);
		ring[head].len = htole32(16u * n);
		ring[head].id = htole16(id);
		head_flags = VIRTQ_DESC_F_INDIRECT | avail_bits;
	} else {
		uint16_t i = head;
		bool wrap = q->avail_wrap;

		for (unsigned int k = 0; k < n; k++) {
			uint16_t f = (bufs[k].write ? VIRTQ_DESC_F_WRITE : 0) |
				     (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0) |
				     (wrap ? VIRTQ_DESC_F_AVAIL : VIRTQ_DESC_F_USED);

			ring[i].addr = htole64(bufs[k].gpa);
			ring[i].len = htole32(bufs[k].len);
			ring[i].id = htole16(id);
			if (k == 0)
				head_flags = f;
			else
				ring[i].flags = htole16(f);
			if (++i == q->num) {
				i = 0;
				wrap = !wrap;
			}
		}
	}
	for (unsigned int k = 0; k < cnt; k++)
		if (++q->next_avail == q->num) {
			q->next_avail = 0;
			q->avail_wrap = !q->avail_wrap;
		}
	__atomic_thread_fence(__ATOMIC_RELEASE);
	ring[head].flags = htole16(head_flags);
	return id;
}

int vt_add(struct vt *vt, unsigned int qi, const struct vt_buf *bufs, unsigned int n,
	   bool indirect)
{
	struct vt_queue *q = &vt->q[qi];
	uint16_t head;

	if (q->packed)
		return vt_add_packed(vt, qi, bufs, n, indirect);
	head = q->next_desc;
	if (indirect) {
		uint64_t tgpa = fake_mem_alloc(&vt->mem, 16ull * n, 16);
		struct virtq_desc *t = fake_mem_ptr(&vt->mem, tgpa);

		for (unsigned int i = 0; i < n; i++)
			put_desc(&t[i], bufs[i].gpa, bufs[i].len,
				 (bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					 (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0),
				 (uint16_t)(i + 1));
		put_desc(vt_desc(vt, qi, head), tgpa, 16u * n, VIRTQ_DESC_F_INDIRECT, 0);
		q->next_desc = (uint16_t)((q->next_desc + 1) % q->num);
	} else {
		for (unsigned int i = 0; i < n; i++) {
			uint16_t d = q->next_desc, nx = (uint16_t)((d + 1) % q->num);

			put_desc(vt_desc(vt, qi, d), bufs[i].gpa, bufs[i].len,
				 (bufs[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					 (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0),
				 nx);
			q->next_desc = nx;
		}
	}
	vt_avail_push(vt, qi, head);
	return head;
}

void vt_kick(struct vt *vt, unsigned int qi)
{
	vt_wr(vt, 0x050, qi);
}

bool vt_used(struct vt *vt, unsigned int qi, uint32_t *ret_id, uint32_t *ret_len)
{
	struct vt_queue *q = &vt->q[qi];

	if (q->packed) {
		struct virtq_packed_desc *ring = fake_mem_ptr(&vt->mem, q->desc);
		uint16_t f = le16toh(ring[q->next_used].flags);
		bool avail = f & VIRTQ_DESC_F_AVAIL, used = f & VIRTQ_DESC_F_USED;
		uint16_t id;

		if (avail != used || used != q->used_wrap)
			return false;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		id = le16toh(ring[q->next_used].id);
		*ret_id = id;
		*ret_len = le32toh(ring[q->next_used].len);
		q->next_used = (uint16_t)(q->next_used + (id < q->num ? q->ndesc_of[id] : 1));
		if (q->next_used >= q->num) {
			q->next_used -= q->num;
			q->used_wrap = !q->used_wrap;
		}
		return true;
	} else {
		uint8_t *u = fake_mem_ptr(&vt->mem, q->device);
		struct virtq_used_elem *e;

		if (vt_used_idx(vt, qi) == q->last_used)
			return false;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		e = (struct virtq_used_elem *)(u + 4) + q->last_used % q->num;
		*ret_id = le32toh(e->id);
		*ret_len = le32toh(e->len);
		q->last_used++;
		return true;
	}
}

int vt_blk(struct vt *vt, unsigned int qi, uint32_t type, uint64_t sector, uint64_t data_gpa,
	   uint32_t data_len, uint64_t *ret_status)
{
	uint64_t hdr = fake_mem_alloc(&vt->mem, 16, 8), st = fake_mem_alloc(&vt->mem, 1, 1);
	uint8_t *h = fake_mem_ptr(&vt->mem, hdr);
	uint32_t t = htole32(type);
	uint64_t s = htole64(sector);
	bool data_write = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	struct vt_buf bufs[3] = {
		{ hdr, 16, false },
		{ data_gpa, data_len, data_write },
		{ st, 1, true },
	};

	memcpy(h, &t, 4);
	memset(h + 4, 0, 4);
	memcpy(h + 8, &s, 8);
	*(uint8_t *)fake_mem_ptr(&vt->mem, st) = 0xff;
	*ret_status = st;
	if (data_len == 0) {
		bufs[1] = bufs[2];
		return vt_add(vt, qi, bufs, 2, false);
	}
	return vt_add(vt, qi, bufs, 3, false);
}

void vt_complete(struct vt *vt)
{
	/* A flush may take more requests (added without a kick while the device was busy). */
	do {
		ram_be_complete(&vt->be, true);
		vblk_complete_batch(vt->dev);
	} while (vt->be.npending > 0);
}

uint8_t vt_blk_sync(struct vt *vt, unsigned int qi, uint32_t type, uint64_t sector,
		    uint64_t data_gpa, uint32_t data_len)
{
	uint64_t st;
	uint32_t id, len;

	vt_blk(vt, qi, type, sector, data_gpa, data_len, &st);
	vt_kick(vt, qi);
	vt_complete(vt);
	while (vt_used(vt, qi, &id, &len))
		;
	return *(uint8_t *)fake_mem_ptr(&vt->mem, st);
}
