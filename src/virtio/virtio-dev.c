// SPDX-License-Identifier: GPL-2.0-only
/* A transport-neutral virtio device (virtio 1.2 §2, §3.1): status, features, queues, config, state. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "virtio-dev.h"

struct vdev_queue {
	struct virtio_queue_state s;	/* layout and enable; ring fields filled by a save */
	struct vq *vq;
	void *journal;			/* virtio_dev_set_journal(), NULL if none */
	size_t journal_size;
	bool journaled;			/* vq keeps its state in the journal */
};

struct virtio_dev {
	char name[64];
	struct virtio_dev_params p;
	struct virtio_transport t;
	const struct virtio_dev_ops *ops;
	void *opaque;
	struct log_ratelimit rl;

	uint8_t status;
	/*
	 * Atomic: the device raises it on the thread that serves its queues,
	 * and a transport may read and acknowledge it from another
	 * (vmmio_any_thread()), as a real device's is set under its driver.
	 */
	uint32_t isr;
	uint32_t config_gen;
	uint64_t driver_features;	/* as written by the driver */
	uint64_t features;		/* negotiated (latched at FEATURES_OK / legacy queue start) */
	bool features_latched;
	struct vdev_queue *queues;
	uint8_t *config_buf;
};

#define vdev_warn(vdev, fmt, ...)                                                                \
	log_ratelimited(&(vdev)->rl, LOG_LEVEL_WARNING, "%s: " fmt, (vdev)->name, ##__VA_ARGS__)

int virtio_dev_create(const struct virtio_dev_params *p, const struct virtio_transport *t,
		      const struct virtio_dev_ops *ops, void *opaque, struct virtio_dev **ret_vdev)
{
	struct virtio_dev *vdev;

	assert(p && t && t->ops && ops);
	if (p->num_queues == 0 || p->num_queues > VIRTIO_DEV_MAX_QUEUES || p->queue_num_max == 0 ||
	    p->queue_num_max > VQ_NUM_MAX || p->config_size > VIRTIO_DEV_CONFIG_MAX)
		return -EINVAL;
	vdev = calloc(1, sizeof(*vdev));
	if (!vdev)
		return -ENOMEM;
	snprintf(vdev->name, sizeof(vdev->name), "%s", p->name ? p->name : "virtio");
	vdev->p = *p;
	vdev->p.name = vdev->name;
	/* §6.1: VERSION_1 is what tells a modern driver from a legacy one. */
	if (p->legacy)
		vdev->p.features &= ~(VIRTIO_BIT(VIRTIO_F_VERSION_1) |
				      VIRTIO_BIT(VIRTIO_F_RING_PACKED) |
				      VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM));
	else
		vdev->p.features |= VIRTIO_BIT(VIRTIO_F_VERSION_1);
	if (t->grants && !p->legacy)
		vdev->p.features |= VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM);
	vdev->t = *t;
	vdev->ops = ops;
	vdev->opaque = opaque;
	vdev->rl = (struct log_ratelimit)LOG_RATELIMIT_GUEST;
	vdev->queues = calloc(p->num_queues, sizeof(*vdev->queues));
	vdev->config_buf = calloc(1, p->config_size ? p->config_size : 1);
	if (!vdev->queues || !vdev->config_buf) {
		virtio_dev_destroy(vdev);
		return -ENOMEM;
	}
	*ret_vdev = vdev;
	return 0;
}

static void queue_stop(struct virtio_dev *vdev, unsigned int idx)
{
	struct vdev_queue *q = &vdev->queues[idx];

	if (!q->vq)
		return;
	vdev->ops->queue_stop(vdev->opaque, idx);
	vq_destroy(q->vq);
	q->vq = NULL;
}

void virtio_dev_destroy(struct virtio_dev *vdev)
{
	if (!vdev)
		return;
	if (vdev->queues)
		for (unsigned int i = 0; i < vdev->p.num_queues; i++)
			queue_stop(vdev, i);
	free(vdev->queues);
	free(vdev->config_buf);
	free(vdev);
}

const char *virtio_dev_name(const struct virtio_dev *vdev) { return vdev->name; }
bool virtio_dev_legacy(const struct virtio_dev *vdev) { return vdev->p.legacy; }
uint32_t virtio_dev_device_id(const struct virtio_dev *vdev) { return vdev->p.device_id; }
uint32_t virtio_dev_vendor_id(const struct virtio_dev *vdev) { return vdev->p.vendor_id; }
uint64_t virtio_dev_offered(const struct virtio_dev *vdev) { return vdev->p.features; }
unsigned int virtio_dev_num_queues(const struct virtio_dev *vdev) { return vdev->p.num_queues; }
uint16_t virtio_dev_queue_num_max(const struct virtio_dev *vdev) { return vdev->p.queue_num_max; }
uint32_t virtio_dev_config_size(const struct virtio_dev *vdev) { return vdev->p.config_size; }
uint8_t virtio_dev_status(const struct virtio_dev *vdev) { return vdev->status; }
uint64_t virtio_dev_driver_features(const struct virtio_dev *vdev) { return vdev->driver_features; }
uint32_t virtio_dev_isr(const struct virtio_dev *vdev)
{
	return __atomic_load_n(&vdev->isr, __ATOMIC_ACQUIRE);
}

uint32_t virtio_dev_config_generation(const struct virtio_dev *vdev) { return vdev->config_gen; }
uint64_t virtio_dev_features(const struct virtio_dev *vdev) { return vdev->features; }

void virtio_dev_isr_ack(struct virtio_dev *vdev, uint32_t bits)
{
	__atomic_fetch_and(&vdev->isr, ~bits, __ATOMIC_ACQ_REL);
}

bool virtio_dev_has_feature(const struct virtio_dev *vdev, unsigned int bit)
{
	return bit < 64 && (vdev->features & VIRTIO_BIT(bit));
}

bool virtio_dev_running(const struct virtio_dev *vdev)
{
	/* Atomic: threads serving different queues may set DEVICE_NEEDS_RESET at once. */
	uint8_t status = __atomic_load_n(&vdev->status, __ATOMIC_RELAXED);

	return (status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(status & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

void virtio_dev_raise(struct virtio_dev *vdev, uint32_t bits)
{
	__atomic_fetch_or(&vdev->isr, bits, __ATOMIC_ACQ_REL);
	if (vdev->t.ops->notify)
		vdev->t.ops->notify(vdev->t.opaque);
}

void virtio_dev_set_needs_reset(struct virtio_dev *vdev)
{
	/* Atomic: the threads of a device's lanes (vblk.h) may both find their rings broken. */
	uint8_t old = __atomic_fetch_or(&vdev->status, VIRTIO_STATUS_DEVICE_NEEDS_RESET,
					__ATOMIC_RELAXED);

	if (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	/* §2.1.2: with DRIVER_OK set, DEVICE_NEEDS_RESET comes with a config change notification. */
	if (old & VIRTIO_STATUS_DRIVER_OK)
		virtio_dev_raise(vdev, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_dev_config_changed(struct virtio_dev *vdev)
{
	/* §2.5.1: the generation changes whenever config space may read differently. */
	vdev->config_gen++;
	if (vdev->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_dev_raise(vdev, VIRTIO_MMIO_INT_CONFIG);
}

/* ---- status and features (§2.1, §2.2, §3.1.1) ---------------------------------------------- */

/* Status 0: §2.4 device reset.  The device type orphans in-flight requests (queue_stop). */
static void device_reset(struct virtio_dev *vdev)
{
	for (unsigned int i = 0; i < vdev->p.num_queues; i++) {
		struct vdev_queue *q = &vdev->queues[i];

		queue_stop(vdev, i);
		/* The host's, not the driver's: a reset (§2.4) keeps the journal for the next start. */
		*q = (struct vdev_queue){ .journal = q->journal, .journal_size = q->journal_size };
	}
	vdev->ops->reset(vdev->opaque);
	vdev->status = 0;
	__atomic_store_n(&vdev->isr, 0, __ATOMIC_RELEASE);
	vdev->driver_features = 0;
	vdev->features = 0;
	vdev->features_latched = false;
}

static void latch_features(struct virtio_dev *vdev)
{
	vdev->features = vdev->driver_features & vdev->p.features;
	vdev->features_latched = true;
}

/* §3.1.1 steps 5-6 and §2.2.1: decide FEATURES_OK. */
static bool features_acceptable(struct virtio_dev *vdev)
{
	uint64_t f = vdev->driver_features;

	/* §2.2.1: the driver MUST NOT accept a feature the device did not offer. */
	if (f & ~vdev->p.features)
		return false;
	/* §6.1: a modern device may refuse a driver that does not accept VERSION_1. */
	if (!(f & VIRTIO_BIT(VIRTIO_F_VERSION_1)))
		return false;
	/* §6.1: with grant addresses the device cannot work without ACCESS_PLATFORM. */
	if ((vdev->p.features & VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM)) &&
	    !(f & VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM)))
		return false;
	return vdev->ops->features_ok(vdev->opaque, f);
}

/* FEATURES_OK added: returns false (and clears it from *@v) when the features are refused. */
static bool add_features_ok(struct virtio_dev *vdev, uint8_t *v)
{
	if (features_acceptable(vdev)) {
		latch_features(vdev);
		return true;
	}
	/* §2.2.2 / §3.1.1 step 6: FEATURES_OK stays clear: the driver sees the refusal. */
	vdev_warn(vdev, "driver features 0x%llx refused",
		  (unsigned long long)vdev->driver_features);
	*v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	return false;
}

int virtio_dev_set_status(struct virtio_dev *vdev, uint32_t value)
{
	uint8_t old = vdev->status, v, added;
	bool legacy = vdev->p.legacy;

	if (value == 0) {
		device_reset(vdev);
		return 0;
	}
	if (value > 0xff)
		return -EINVAL;
	/* DEVICE_NEEDS_RESET is the device's bit (§2.1); the driver's copy of it means nothing. */
	v = (uint8_t)(((uint8_t)value & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) |
		      (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET));
	/* §2.1.1: the driver MUST NOT clear a device status bit (only a reset does). */
	if ((old & ~v) != 0)
		return -EPERM;
	added = v & ~old;
	if (added & VIRTIO_STATUS_FAILED) {
		/* §3.1.1 step 8 failure path: the driver gave up; keep the bit, stop processing. */
		vdev->status |= VIRTIO_STATUS_FAILED;
		added &= (uint8_t)~VIRTIO_STATUS_FAILED;
	}
	/* §3.1.1: ACKNOWLEDGE, then DRIVER, then FEATURES_OK (modern), then DRIVER_OK, in order. */
	if ((added & VIRTIO_STATUS_DRIVER) && !(v & VIRTIO_STATUS_ACKNOWLEDGE))
		return -EPROTO;
	if (added & VIRTIO_STATUS_FEATURES_OK) {
		if (legacy || !(v & VIRTIO_STATUS_DRIVER) || (old & VIRTIO_STATUS_DRIVER_OK))
			return -EPROTO;
		if (!add_features_ok(vdev, &v)) {
			added &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
			if (added & VIRTIO_STATUS_DRIVER_OK)
				return -EPROTO;
		}
	}
	if (added & VIRTIO_STATUS_DRIVER_OK) {
		if (legacy ? !(v & VIRTIO_STATUS_DRIVER) : !(v & VIRTIO_STATUS_FEATURES_OK))
			return -EPROTO;
		if (legacy && !vdev->features_latched) {
			/* §4.2.4 legacy: features are final once the driver goes live. */
			if (vdev->driver_features & ~vdev->p.features) {
				vdev_warn(vdev, "legacy driver features not offered, ignored");
				vdev->driver_features &= vdev->p.features;
			}
			latch_features(vdev);
		}
	}
	vdev->status = v | (vdev->status & VIRTIO_STATUS_FAILED);
	return 0;
}

int virtio_dev_set_driver_features(struct virtio_dev *vdev, uint32_t word, uint32_t value)
{
	/* §3.1.1: features are written before FEATURES_OK and fixed after it; legacy has word 0 only. */
	if ((vdev->status & (VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)) ||
	    vdev->features_latched || word > 1 || (vdev->p.legacy && word > 0))
		return -EPERM;
	vdev->driver_features &= ~(0xffffffffull << (32 * word));
	vdev->driver_features |= (uint64_t)value << (32 * word);
	return 0;
}

/* ---- config space (§2.5) -------------------------------------------------------------------- */

static bool config_range_ok(const struct virtio_dev *vdev, uint32_t offset, unsigned int size)
{
	return (size == 1 || size == 2 || size == 4 || size == 8) &&
	       (uint64_t)offset + size <= vdev->p.config_size;
}

int virtio_dev_config_read(struct virtio_dev *vdev, uint32_t offset, unsigned int size,
			   uint64_t *ret_value)
{
	uint64_t v = 0;

	if (!config_range_ok(vdev, offset, size))
		return -EINVAL;
	vdev->ops->config_get(vdev->opaque, vdev->config_buf);
	for (unsigned int i = 0; i < size; i++)
		v |= (uint64_t)vdev->config_buf[offset + i] << (8 * i);
	*ret_value = v;
	return 0;
}

int virtio_dev_config_write(struct virtio_dev *vdev, uint32_t offset, unsigned int size,
			    uint64_t value)
{
	if (!config_range_ok(vdev, offset, size))
		return -EINVAL;
	if (size < 8)
		value &= (1ull << (8 * size)) - 1;
	vdev->ops->config_write(vdev->opaque, offset, size, value);
	return 0;
}

/* ---- queues (§2.6, §3.1.1 step 7) ------------------------------------------------------------ */

/* A queue whose layout the driver may still change: it exists and is not in use (§4.2.3.2). */
static struct vdev_queue *layout_queue(struct virtio_dev *vdev, unsigned int idx, int *ret_err)
{
	struct vdev_queue *q;

	/* The index is guest-controlled (e.g. QueueSel): only an existing queue. */
	if (idx >= vdev->p.num_queues) {
		*ret_err = -EINVAL;
		return NULL;
	}
	q = &vdev->queues[idx];
	if (q->vq || q->s.enabled) {
		*ret_err = -EBUSY;
		return NULL;
	}
	return q;
}

int virtio_dev_queue_set_num(struct virtio_dev *vdev, unsigned int idx, uint32_t num)
{
	int r = 0;
	struct vdev_queue *q = layout_queue(vdev, idx, &r);

	if (!q)
		return r;
	q->s.num = num;
	return 0;
}

int virtio_dev_queue_set_addr(struct virtio_dev *vdev, unsigned int idx,
			      enum virtio_queue_area area, uint64_t addr)
{
	int r = 0;
	struct vdev_queue *q = layout_queue(vdev, idx, &r);

	if (!q)
		return r;
	switch (area) {
	case VIRTIO_QUEUE_DESC:
		q->s.desc = addr;
		break;
	case VIRTIO_QUEUE_DRIVER:
		q->s.driver = addr;
		break;
	case VIRTIO_QUEUE_DEVICE:
		q->s.device = addr;
		break;
	}
	return 0;
}

int virtio_dev_queue_set_align(struct virtio_dev *vdev, unsigned int idx, uint32_t align)
{
	int r = 0;
	struct vdev_queue *q = layout_queue(vdev, idx, &r);

	if (!q)
		return r;
	if (align == 0 || (align & (align - 1)))
		return -EINVAL;
	q->s.align = align;
	return 0;
}

uint64_t virtio_dev_queue_addr(const struct virtio_dev *vdev, unsigned int idx,
			       enum virtio_queue_area area)
{
	const struct vdev_queue *q;

	if (idx >= vdev->p.num_queues)
		return 0;
	q = &vdev->queues[idx];
	switch (area) {
	case VIRTIO_QUEUE_DESC:
		return q->s.desc;
	case VIRTIO_QUEUE_DRIVER:
		return q->s.driver;
	case VIRTIO_QUEUE_DEVICE:
		return q->s.device;
	}
	return 0;
}

uint32_t virtio_dev_queue_align(const struct virtio_dev *vdev, unsigned int idx)
{
	return idx < vdev->p.num_queues ? vdev->queues[idx].s.align : 0;
}

bool virtio_dev_queue_enabled(const struct virtio_dev *vdev, unsigned int idx)
{
	return idx < vdev->p.num_queues && vdev->queues[idx].s.enabled;
}

bool virtio_dev_queue_live(const struct virtio_dev *vdev, unsigned int idx)
{
	return idx < vdev->p.num_queues && vdev->queues[idx].vq;
}

/* The vq configuration of queue @idx from its layout and the negotiated features. */
static int queue_config(struct virtio_dev *vdev, unsigned int idx, struct vq_config *cfg)
{
	struct vdev_queue *q = &vdev->queues[idx];

	/* §4.2.2: QueueNum <= QueueNumMax (vq_create() checks the power of two of split rings, §2.7). */
	if (q->s.num == 0 || q->s.num > vdev->p.queue_num_max)
		return -EINVAL;
	*cfg = (struct vq_config){ 0 };
	cfg->num = (uint16_t)q->s.num;
	cfg->packed = virtio_dev_has_feature(vdev, VIRTIO_F_RING_PACKED);
	cfg->event_idx = virtio_dev_has_feature(vdev, VIRTIO_F_EVENT_IDX);
	cfg->indirect = virtio_dev_has_feature(vdev, VIRTIO_F_INDIRECT_DESC);
	cfg->desc_addr = q->s.desc;
	if (vdev->p.legacy) {
		/* §2.7.2 legacy layout: one area from desc, the used ring at QueueAlign. */
		cfg->legacy = true;
		cfg->legacy_align = q->s.align;
	} else {
		cfg->driver_addr = q->s.driver;
		cfg->device_addr = q->s.device;
	}
	cfg->max_segs = q->s.num;
	vdev->ops->queue_limits(vdev->opaque, idx, cfg);
	return 0;
}

/* Hand queue @idx its new @vq (the device type starts it); on failure the vq is gone. */
static int queue_attach(struct virtio_dev *vdev, unsigned int idx, struct vq *vq)
{
	struct vdev_queue *q = &vdev->queues[idx];
	int r;

	q->vq = vq;
	r = vdev->ops->queue_start(vdev->opaque, idx, vq);
	if (r < 0) {
		q->vq = NULL;
		vq_destroy(vq);
	}
	return r;
}

/* Create queue @idx's vq; -errno names whose fault it was (-ENOMEM: the host's). */
static int queue_start(struct virtio_dev *vdev, unsigned int idx)
{
	struct vdev_queue *q = &vdev->queues[idx];
	struct vq_config cfg;
	struct vq *vq;
	int r;

	if (vdev->p.legacy && !vdev->features_latched)
		latch_features(vdev);
	r = queue_config(vdev, idx, &cfg);
	if (r < 0) {
		vdev_warn(vdev, "queue %u size %u invalid; device needs reset", idx,
			  (unsigned int)q->s.num);
		return r;
	}
	r = vq_create(&vdev->t, &cfg, &vq);
	q->journaled = false;
	if (r == 0 && q->journal) {
		q->journaled = vq_journal_start(vq, q->journal, q->journal_size) == 0;
		if (!q->journaled)
			vdev_warn(vdev, "queue %u: no room to journal %u entries: its requests in "
					"flight would be lost with the process", idx, cfg.num);
	}
	if (r == 0)
		r = queue_attach(vdev, idx, vq);
	if (r == -ENOMEM)
		vdev_warn(vdev, "queue %u: out of memory on this host starting it; device needs reset",
			  idx);
	else if (r < 0)
		vdev_warn(vdev, "queue %u rings unusable: %s; device needs reset", idx, strerror(-r));
	return r;
}

int virtio_dev_queue_enable(struct virtio_dev *vdev, unsigned int idx)
{
	int r;

	if (idx >= vdev->p.num_queues)
		return -EINVAL;
	if (vdev->queues[idx].vq)
		return -EBUSY;
	r = queue_start(vdev, idx);
	if (r < 0) {
		virtio_dev_set_needs_reset(vdev);
		return r;
	}
	vdev->queues[idx].s.enabled = 1;
	return 0;
}

void virtio_dev_queue_disable(struct virtio_dev *vdev, unsigned int idx)
{
	if (idx >= vdev->p.num_queues)
		return;
	queue_stop(vdev, idx);
	vdev->queues[idx].s.enabled = 0;
}

int virtio_dev_queue_notify(struct virtio_dev *vdev, unsigned int idx)
{
	/* §3.1.1: no buffers are consumed before DRIVER_OK; none after a failure. */
	if (idx >= vdev->p.num_queues || !vdev->queues[idx].vq || !virtio_dev_running(vdev))
		return -EINVAL;
	vdev->ops->queue_notify(vdev->opaque, idx);
	return 0;
}

/* ---- saved state ------------------------------------------------------------------------------ */

size_t virtio_dev_state_size(const struct virtio_dev *vdev)
{
	size_t n = 0;

	for (unsigned int i = 0; i < vdev->p.num_queues; i++)
		if (vdev->queues[i].vq && !vdev->queues[i].journaled)
			n += vq_num(vdev->queues[i].vq);
	return sizeof(struct virtio_dev_state) + n * sizeof(struct vq_inflight);
}

int virtio_dev_save(const struct virtio_dev *vdev, struct virtio_dev_state *st, size_t size)
{
	size_t room;
	uint32_t n = 0;
	int r;

	if (size < virtio_dev_state_size(vdev))
		return -ENOSPC;
	room = (size - sizeof(*st)) / sizeof(st->inflight[0]);
	memset(st, 0, sizeof(*st));
	st->version = VIRTIO_DEV_STATE_VERSION;
	st->features = vdev->features;
	st->driver_features = vdev->driver_features;
	st->isr = virtio_dev_isr(vdev);
	st->config_generation = vdev->config_gen;
	st->status = vdev->status;
	st->features_latched = vdev->features_latched;
	st->num_queues = vdev->p.num_queues;
	for (unsigned int i = 0; i < vdev->p.num_queues; i++) {
		const struct vdev_queue *q = &vdev->queues[i];
		struct virtio_queue_state *qs = &st->queues[i];
		unsigned int k;

		*qs = q->s;
		qs->live = q->vq != NULL;
		qs->first_inflight = n;
		qs->ninflight = 0;
		/* A journaled queue's positions and buffers in flight are in its journal. */
		if (!q->vq || q->journaled)
			continue;
		r = vq_save(q->vq, &qs->ring);
		if (r < 0)
			return r;
		k = vq_inflight_list(q->vq, &st->inflight[n], (unsigned int)(room - n));
		for (unsigned int j = 0; j < k; j++)
			st->inflight[n + j].queue = (uint16_t)i;
		qs->ninflight = k;
		n += k;
	}
	st->ninflight = n;
	st->size = (uint32_t)(sizeof(*st) + n * sizeof(st->inflight[0]));
	return 0;
}

/* Fields that do not depend on the rings: checked before anything changes. */
static int restore_check(const struct virtio_dev *vdev, const struct virtio_dev_state *st,
			 size_t size)
{
	if (size < sizeof(st->version))
		return -EINVAL;
	if (st->version != VIRTIO_DEV_STATE_VERSION)
		return -EPROTONOSUPPORT;
	if (size < sizeof(*st))
		return -EINVAL;
	if (st->size > size || st->ninflight > (st->size - sizeof(*st)) / sizeof(st->inflight[0]))
		return -EINVAL;
	if (st->num_queues != vdev->p.num_queues || st->features_latched > 1 ||
	    (st->features & ~vdev->p.features) || (st->features & ~st->driver_features) ||
	    (st->isr & ~(uint32_t)(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG)))
		return -EINVAL;
	for (unsigned int i = 0; i < st->num_queues; i++) {
		const struct virtio_queue_state *qs = &st->queues[i];

		if (qs->enabled > 1 || qs->live > 1 || (qs->live && !qs->num) ||
		    qs->num > vdev->p.queue_num_max || (qs->align & (qs->align - 1)) ||
		    qs->first_inflight > st->ninflight ||
		    qs->ninflight > st->ninflight - qs->first_inflight || qs->ninflight > qs->num)
			return -EINVAL;
		for (unsigned int j = 0; j < qs->ninflight; j++)
			if (st->inflight[qs->first_inflight + j].queue != i)
				return -EINVAL;
	}
	return 0;
}

/* Start a saved live queue and hand it its ring positions and heads in flight. */
static int restore_queue(struct virtio_dev *vdev, const struct virtio_dev_state *st,
			 unsigned int idx)
{
	const struct virtio_queue_state *qs = &st->queues[idx];
	struct vdev_queue *q = &vdev->queues[idx];
	struct vq_config cfg;
	struct vq *vq;
	int r;

	r = queue_config(vdev, idx, &cfg);
	if (r == 0)
		r = vq_create(&vdev->t, &cfg, &vq);
	if (r < 0)
		return r;
	q->journaled = q->journal != NULL;
	if (q->journal)
		r = vq_journal_resume(vq, q->journal, q->journal_size);
	else
		r = vq_restore(vq, &qs->ring, &st->inflight[qs->first_inflight], qs->ninflight);
	if (r < 0) {
		q->journaled = false;
		vq_destroy(vq);
		return r;
	}
	return queue_attach(vdev, idx, vq);
}

int virtio_dev_restore(struct virtio_dev *vdev, const struct virtio_dev_state *st, size_t size)
{
	unsigned int i;
	int r = restore_check(vdev, st, size);

	if (r < 0)
		return r;
	device_reset(vdev);
	vdev->features = st->features;
	vdev->driver_features = st->driver_features;
	vdev->features_latched = st->features_latched;
	vdev->status = st->status;
	__atomic_store_n(&vdev->isr, st->isr, __ATOMIC_RELEASE);
	vdev->config_gen = st->config_generation;
	for (i = 0; i < vdev->p.num_queues; i++) {
		vdev->queues[i].s = st->queues[i];
		vdev->queues[i].s.live = 0;
		vdev->queues[i].s.ring = (struct vq_state){ 0 };
		if (!st->queues[i].live)
			continue;
		r = restore_queue(vdev, st, i);
		if (r < 0)
			goto err;
	}
	/* A notification may have been lost with the old process: look at every ring once. */
	for (i = 0; i < vdev->p.num_queues; i++)
		virtio_dev_queue_notify(vdev, i);
	return 0;

err:
	device_reset(vdev);
	return r;
}

size_t virtio_dev_journal_size(const struct virtio_dev *vdev)
{
	struct vq_config cfg = { .num = vdev->p.queue_num_max, .max_segs = vdev->p.queue_num_max };
	unsigned int max_segs;

	/* The most buffers a chain may have under any features the driver picks. */
	vdev->ops->queue_limits(vdev->opaque, 0, &cfg);
	max_segs = cfg.max_segs > vdev->p.queue_num_max ? cfg.max_segs : vdev->p.queue_num_max;
	return vq_journal_size(vdev->p.queue_num_max, max_segs);
}

int virtio_dev_set_journal(struct virtio_dev *vdev, unsigned int idx, void *mem, size_t size)
{
	struct vdev_queue *q;

	if (idx >= vdev->p.num_queues || ((uintptr_t)mem & 7))
		return -EINVAL;
	q = &vdev->queues[idx];
	if (q->vq)
		return -EBUSY;
	q->journal = mem;
	q->journal_size = size;
	return 0;
}
