// SPDX-License-Identifier: GPL-2.0-only
/* virtio-mmio register file (virtio 1.2 §4.2.2 modern, §4.2.4 legacy) driving a device's ops. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vmmio.h"

/* Register offsets, §4.2.2 (and §4.2.4 for the legacy-only ones). */
enum {
	REG_MAGIC = 0x000,
	REG_VERSION = 0x004,
	REG_DEVICE_ID = 0x008,
	REG_VENDOR_ID = 0x00c,
	REG_DEVICE_FEATURES = 0x010,
	REG_DEVICE_FEATURES_SEL = 0x014,
	REG_DRIVER_FEATURES = 0x020,
	REG_DRIVER_FEATURES_SEL = 0x024,
	REG_GUEST_PAGE_SIZE = 0x028,	/* legacy */
	REG_QUEUE_SEL = 0x030,
	REG_QUEUE_NUM_MAX = 0x034,
	REG_QUEUE_NUM = 0x038,
	REG_QUEUE_ALIGN = 0x03c,	/* legacy */
	REG_QUEUE_PFN = 0x040,		/* legacy */
	REG_QUEUE_READY = 0x044,
	REG_QUEUE_NOTIFY = 0x050,
	REG_INTERRUPT_STATUS = 0x060,
	REG_INTERRUPT_ACK = 0x064,
	REG_STATUS = 0x070,
	REG_QUEUE_DESC_LOW = 0x080,
	REG_QUEUE_DESC_HIGH = 0x084,
	REG_QUEUE_DRIVER_LOW = 0x090,
	REG_QUEUE_DRIVER_HIGH = 0x094,
	REG_QUEUE_DEVICE_LOW = 0x0a0,
	REG_QUEUE_DEVICE_HIGH = 0x0a4,
	REG_SHM_SEL = 0x0ac,
	REG_SHM_LEN_LOW = 0x0b0,
	REG_SHM_LEN_HIGH = 0x0b4,
	REG_SHM_BASE_LOW = 0x0b8,
	REG_SHM_BASE_HIGH = 0x0bc,
	REG_CONFIG_GENERATION = 0x0fc,
};

struct vmmio_queue {
	uint32_t num;
	bool ready;			/* modern QueueReady as last written (and accepted) */
	uint64_t desc, driver, device;
	uint32_t pfn;			/* legacy */
	uint32_t align;			/* legacy */
	struct vq *vq;
};

struct vmmio_dev {
	char name[64];
	struct vmmio_params p;
	struct virtio_transport t;
	const struct vmmio_device_ops *ops;
	void *dev;
	struct log_ratelimit rl;

	uint8_t status;
	uint32_t int_status;
	uint32_t config_gen;
	uint32_t dev_features_sel;
	uint32_t drv_features_sel;
	uint64_t driver_features;	/* as written by the driver */
	uint64_t features;		/* negotiated (latched at FEATURES_OK / legacy queue start) */
	bool features_latched;
	uint32_t queue_sel;
	uint32_t guest_page_size;	/* legacy */
	struct vmmio_queue *queues;
	uint8_t *config_buf;
};

#define vmmio_warn(vdev, fmt, ...)                                                               \
	log_ratelimited(&(vdev)->rl, LOG_LEVEL_WARNING, "%s: " fmt, (vdev)->name, ##__VA_ARGS__)

static bool legacy(const struct vmmio_dev *vdev)
{
	return vdev->p.version == 1;
}

int vmmio_create(const struct vmmio_params *p, const struct virtio_transport *t,
		 const struct vmmio_device_ops *ops, void *dev, struct vmmio_dev **ret_vdev)
{
	struct vmmio_dev *vdev;
	int r;

	assert(p && t && t->ops && ops);
	if ((p->version != 1 && p->version != 2) || p->num_queues == 0 || p->queue_num_max == 0 ||
	    p->queue_num_max > VQ_NUM_MAX || p->config_size > VMMIO_CONFIG_MAX)
		return -EINVAL;
	vdev = calloc(1, sizeof(*vdev));
	if (!vdev)
		return -ENOMEM;
	snprintf(vdev->name, sizeof(vdev->name), "%s", p->name ? p->name : "virtio");
	vdev->p = *p;
	vdev->p.name = vdev->name;
	/* §6.1: VERSION_1 is what tells a modern driver from a legacy one. */
	if (legacy(vdev))
		vdev->p.features &= ~(VIRTIO_BIT(VIRTIO_F_VERSION_1) |
				      VIRTIO_BIT(VIRTIO_F_RING_PACKED) |
				      VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM));
	else
		vdev->p.features |= VIRTIO_BIT(VIRTIO_F_VERSION_1);
	if (t->grants && !legacy(vdev))
		vdev->p.features |= VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM);
	vdev->t = *t;
	vdev->ops = ops;
	vdev->dev = dev;
	vdev->rl = (struct log_ratelimit)LOG_RATELIMIT_GUEST;
	vdev->guest_page_size = 4096;
	vdev->queues = calloc(p->num_queues, sizeof(*vdev->queues));
	vdev->config_buf = calloc(1, p->config_size ? p->config_size : 1);
	if (!vdev->queues || !vdev->config_buf) {
		r = -ENOMEM;
		goto err_free;
	}
	*ret_vdev = vdev;
	return 0;

err_free:
	vmmio_destroy(vdev);
	return r;
}

static void queue_stop(struct vmmio_dev *vdev, unsigned int idx)
{
	struct vmmio_queue *q = &vdev->queues[idx];

	if (!q->vq)
		return;
	vdev->ops->queue_stop(vdev->dev, idx);
	vq_destroy(q->vq);
	q->vq = NULL;
}

void vmmio_destroy(struct vmmio_dev *vdev)
{
	unsigned int i;

	if (!vdev)
		return;
	if (vdev->queues)
		for (i = 0; i < vdev->p.num_queues; i++)
			queue_stop(vdev, i);
	free(vdev->queues);
	free(vdev->config_buf);
	free(vdev);
}

/* Status 0: §2.4 / §4.2.2 device reset.  The device orphans in-flight requests (queue_stop). */
static void device_reset(struct vmmio_dev *vdev)
{
	unsigned int i;

	for (i = 0; i < vdev->p.num_queues; i++) {
		queue_stop(vdev, i);
		memset(&vdev->queues[i], 0, sizeof(vdev->queues[i]));
	}
	vdev->ops->reset(vdev->dev);
	vdev->status = 0;
	vdev->int_status = 0;
	vdev->dev_features_sel = 0;
	vdev->drv_features_sel = 0;
	vdev->driver_features = 0;
	vdev->features = 0;
	vdev->features_latched = false;
	vdev->queue_sel = 0;
	/*
	 * GuestPageSize survives a reset: Linux writes it once at probe time,
	 * before the reset that starts every driver initialisation (§4.2.4).
	 */
}

void vmmio_raise(struct vmmio_dev *vdev, uint32_t bits)
{
	vdev->int_status |= bits;
	if (vdev->t.ops->notify)
		vdev->t.ops->notify(vdev->t.opaque);
}

void vmmio_set_needs_reset(struct vmmio_dev *vdev)
{
	if (vdev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	vmmio_warn(vdev, "driver broke the virtio protocol, device needs reset");
	vdev->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	/* §2.1.2: with DRIVER_OK set, DEVICE_NEEDS_RESET comes with a config change notification. */
	if (vdev->status & VIRTIO_STATUS_DRIVER_OK)
		vmmio_raise(vdev, VIRTIO_MMIO_INT_CONFIG);
}

void vmmio_config_changed(struct vmmio_dev *vdev)
{
	/* §2.5.1: the generation changes whenever config space may read differently. */
	vdev->config_gen++;
	if (vdev->status & VIRTIO_STATUS_DRIVER_OK)
		vmmio_raise(vdev, VIRTIO_MMIO_INT_CONFIG);
}

static void latch_features(struct vmmio_dev *vdev)
{
	vdev->features = vdev->driver_features & vdev->p.features;
	vdev->features_latched = true;
}

/* §3.1.1 steps 5-6 and §2.2.1: decide FEATURES_OK. */
static bool features_acceptable(struct vmmio_dev *vdev)
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
	return vdev->ops->features_ok(vdev->dev, f);
}

static void write_status(struct vmmio_dev *vdev, uint32_t value)
{
	uint8_t old = vdev->status, v, added;

	if (value == 0) {
		device_reset(vdev);
		return;
	}
	if (value > 0xff) {
		vmmio_warn(vdev, "status 0x%" PRIx32 " out of range ignored", value);
		return;
	}
	/* DEVICE_NEEDS_RESET is the device's bit (§2.1); the driver's copy of it means nothing. */
	v = (uint8_t)(((uint8_t)value & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) |
		      (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET));
	/* §2.1.1: the driver MUST NOT clear a device status bit (only a reset does). */
	if ((old & ~v) != 0) {
		vmmio_warn(vdev, "status write 0x%x clears bits of 0x%x, ignored", v, old);
		return;
	}
	added = v & ~old;
	if (added & VIRTIO_STATUS_FAILED) {
		/* §3.1.1 step 8 failure path: the driver gave up; keep the bit, stop processing. */
		vdev->status |= VIRTIO_STATUS_FAILED;
		added &= (uint8_t)~VIRTIO_STATUS_FAILED;
	}
	/* §3.1.1: ACKNOWLEDGE, then DRIVER, then FEATURES_OK (modern), then DRIVER_OK, in order. */
	if ((added & VIRTIO_STATUS_DRIVER) && !(v & VIRTIO_STATUS_ACKNOWLEDGE))
		goto out_of_order;
	if (added & VIRTIO_STATUS_FEATURES_OK) {
		if (legacy(vdev) || !(v & VIRTIO_STATUS_DRIVER) || (old & VIRTIO_STATUS_DRIVER_OK))
			goto out_of_order;
		if (!features_acceptable(vdev)) {
			/* §2.2.2 / §3.1.1 step 6: FEATURES_OK stays clear: the driver sees the refusal. */
			vmmio_warn(vdev, "driver features 0x%" PRIx64 " refused",
				   vdev->driver_features);
			v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
			added &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
			if (added & VIRTIO_STATUS_DRIVER_OK)
				goto out_of_order;
		} else {
			latch_features(vdev);
		}
	}
	if (added & VIRTIO_STATUS_DRIVER_OK) {
		if (legacy(vdev) ? !(v & VIRTIO_STATUS_DRIVER) : !(v & VIRTIO_STATUS_FEATURES_OK))
			goto out_of_order;
		if (legacy(vdev) && !vdev->features_latched) {
			/* §4.2.4 legacy: features are final once the driver goes live. */
			if (vdev->driver_features & ~vdev->p.features) {
				vmmio_warn(vdev, "legacy driver features not offered, ignored");
				vdev->driver_features &= vdev->p.features;
			}
			latch_features(vdev);
		}
	}
	vdev->status = v | (vdev->status & VIRTIO_STATUS_FAILED);
	return;

out_of_order:
	vmmio_warn(vdev, "status 0x%x after 0x%x out of order, ignored", v, old);
}

static struct vmmio_queue *sel_queue(struct vmmio_dev *vdev)
{
	/* QueueSel is guest-controlled: only selects an existing queue (§4.2.2). */
	if (vdev->queue_sel >= vdev->p.num_queues)
		return NULL;
	return &vdev->queues[vdev->queue_sel];
}

/* Create the vq of the selected queue from its registers, or put the device into needs-reset. */
static void queue_activate(struct vmmio_dev *vdev, unsigned int idx)
{
	struct vmmio_queue *q = &vdev->queues[idx];
	struct vq_config cfg = { 0 };
	struct vq *vq;
	int r;

	if (legacy(vdev) && !vdev->features_latched)
		latch_features(vdev);
	/* §4.2.2: QueueNum <= QueueNumMax; §2.7: a power of two for split rings. */
	if (q->num == 0 || q->num > vdev->p.queue_num_max) {
		vmmio_warn(vdev, "queue %u size %" PRIu32 " invalid", idx, q->num);
		goto err;
	}
	cfg.num = (uint16_t)q->num;
	cfg.packed = vmmio_has_feature(vdev, VIRTIO_F_RING_PACKED);
	cfg.event_idx = vmmio_has_feature(vdev, VIRTIO_F_EVENT_IDX);
	cfg.indirect = vmmio_has_feature(vdev, VIRTIO_F_INDIRECT_DESC);
	if (legacy(vdev)) {
		/* §4.2.4: the ring area starts at QueuePFN * GuestPageSize; overflow-checked. */
		uint64_t gpa = (uint64_t)q->pfn * vdev->guest_page_size;

		cfg.legacy = true;
		cfg.legacy_align = q->align;
		cfg.desc_addr = gpa;
	} else {
		cfg.desc_addr = q->desc;
		cfg.driver_addr = q->driver;
		cfg.device_addr = q->device;
	}
	cfg.max_segs = q->num;
	vdev->ops->queue_limits(vdev->dev, idx, &cfg);
	r = vq_create(&vdev->t, &cfg, &vq);
	if (r < 0) {
		vmmio_warn(vdev, "queue %u rings unusable: %s", idx, strerror(-r));
		goto err;
	}
	q->vq = vq;
	r = vdev->ops->queue_start(vdev->dev, idx, vq);
	if (r < 0) {
		q->vq = NULL;
		vq_destroy(vq);
		goto err;
	}
	q->ready = true;
	return;

err:
	vmmio_set_needs_reset(vdev);
}

static bool queue_regs_writable(struct vmmio_dev *vdev, struct vmmio_queue *q)
{
	/* §4.2.3.2: a live queue's layout cannot change under the device. */
	if (!q)
		return false;
	if (q->vq || q->ready)
		return false;
	return true;
}

static uint32_t read_reg(struct vmmio_dev *vdev, uint32_t off)
{
	struct vmmio_queue *q = sel_queue(vdev);

	switch (off) {
	case REG_MAGIC:
		return VMMIO_MAGIC;
	case REG_VERSION:
		return vdev->p.version;
	case REG_DEVICE_ID:
		return vdev->p.device_id;
	case REG_VENDOR_ID:
		return vdev->p.vendor_id;
	case REG_DEVICE_FEATURES:
		/* §4.2.2: word DeviceFeaturesSel of the feature bits; legacy has only word 0. */
		if (vdev->dev_features_sel > 1 || (legacy(vdev) && vdev->dev_features_sel > 0))
			return 0;
		return (uint32_t)(vdev->p.features >> (32 * vdev->dev_features_sel));
	case REG_QUEUE_NUM_MAX:
		/* §4.2.2: 0 for a queue that does not exist, or one already live (modern). */
		if (!q || (!legacy(vdev) && q->ready))
			return 0;
		return vdev->p.queue_num_max;
	case REG_QUEUE_READY:
		return !legacy(vdev) && q ? q->ready : 0;
	case REG_QUEUE_PFN:
		return legacy(vdev) && q ? q->pfn : 0;
	case REG_INTERRUPT_STATUS:
		return vdev->int_status;
	case REG_STATUS:
		return vdev->status;
	case REG_SHM_LEN_LOW:
	case REG_SHM_LEN_HIGH:
		/* §4.2.2: a non-existent shared memory region reads length -1. */
		return legacy(vdev) ? 0 : 0xffffffffu;
	case REG_CONFIG_GENERATION:
		return legacy(vdev) ? 0 : vdev->config_gen;
	default:
		vmmio_warn(vdev, "read of register 0x%03" PRIx32 " ignored", off);
		return 0;
	}
}

static void write_reg(struct vmmio_dev *vdev, uint32_t off, uint32_t val)
{
	struct vmmio_queue *q = sel_queue(vdev);

	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		vdev->dev_features_sel = val;
		return;
	case REG_DRIVER_FEATURES:
		/* §3.1.1: features are written before FEATURES_OK and fixed after it. */
		if ((vdev->status & (VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)) ||
		    vdev->features_latched || vdev->drv_features_sel > 1 ||
		    (legacy(vdev) && vdev->drv_features_sel > 0)) {
			vmmio_warn(vdev, "driver features write ignored");
			return;
		}
		vdev->driver_features &= ~(0xffffffffull << (32 * vdev->drv_features_sel));
		vdev->driver_features |= (uint64_t)val << (32 * vdev->drv_features_sel);
		return;
	case REG_DRIVER_FEATURES_SEL:
		vdev->drv_features_sel = val;
		return;
	case REG_GUEST_PAGE_SIZE:
		/* §4.2.4: a power of two; anything else would misplace every ring. */
		if (!legacy(vdev) || val == 0 || (val & (val - 1)) != 0)
			goto ignored;
		vdev->guest_page_size = val;
		return;
	case REG_QUEUE_SEL:
		vdev->queue_sel = val;
		return;
	case REG_QUEUE_NUM:
		if (!queue_regs_writable(vdev, q))
			goto ignored;
		q->num = val;
		return;
	case REG_QUEUE_ALIGN:
		if (!legacy(vdev) || !queue_regs_writable(vdev, q) || val == 0 || (val & (val - 1)))
			goto ignored;
		q->align = val;
		return;
	case REG_QUEUE_PFN:
		if (!legacy(vdev) || !q)
			goto ignored;
		if (val == 0) {
			/* §4.2.4: writing 0 stops using the queue. */
			queue_stop(vdev, vdev->queue_sel);
			q->pfn = 0;
			q->ready = false;
			return;
		}
		if (q->vq || !(vdev->status & VIRTIO_STATUS_DRIVER))
			goto ignored;
		if (q->align == 0)
			q->align = 4096; /* §4.2.4 does not default it; Linux writes PAGE_SIZE */
		q->pfn = val;
		queue_activate(vdev, vdev->queue_sel);
		return;
	case REG_QUEUE_READY:
		if (legacy(vdev) || !q)
			goto ignored;
		if (val == 0) {
			queue_stop(vdev, vdev->queue_sel);
			q->ready = false;
			return;
		}
		if (val != 1 || q->ready)
			goto ignored;
		/* §3.1.1 step 7: queues are set up after FEATURES_OK. */
		if (!(vdev->status & VIRTIO_STATUS_FEATURES_OK) ||
		    (vdev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET))
			goto ignored;
		queue_activate(vdev, vdev->queue_sel);
		return;
	case REG_QUEUE_NOTIFY:
		/* §3.1.1: no buffers are consumed before DRIVER_OK; none after a failure. */
		if (val >= vdev->p.num_queues || !vdev->queues[val].vq || !vmmio_running(vdev))
			goto ignored;
		vdev->ops->queue_notify(vdev->dev, val);
		return;
	case REG_INTERRUPT_ACK:
		vdev->int_status &= ~val;
		return;
	case REG_STATUS:
		write_status(vdev, val);
		return;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH: {
		uint64_t *field;
		unsigned int shift = (off & 4) ? 32 : 0;

		if (legacy(vdev) || !queue_regs_writable(vdev, q))
			goto ignored;
		field = off < REG_QUEUE_DRIVER_LOW ? &q->desc :
			off < REG_QUEUE_DEVICE_LOW ? &q->driver : &q->device;
		*field = (*field & ~(0xffffffffull << shift)) | ((uint64_t)val << shift);
		return;
	}
	case REG_SHM_SEL:
		return;
	default:
		break;
	}
ignored:
	vmmio_warn(vdev, "write of 0x%" PRIx32 " to register 0x%03" PRIx32 " ignored", val, off);
}

uint64_t vmmio_read(struct vmmio_dev *vdev, uint64_t offset, unsigned int size)
{
	if (offset >= VMMIO_CONFIG_OFFSET && offset < VMMIO_WINDOW_SIZE) {
		uint64_t coff = offset - VMMIO_CONFIG_OFFSET, v = 0;

		/* Config space: 1, 2, 4, 8 byte reads fully inside config_size (§4.2.2, §2.5). */
		if ((size != 1 && size != 2 && size != 4 && size != 8) ||
		    coff + size > vdev->p.config_size) {
			vmmio_warn(vdev, "config read of %u bytes at 0x%" PRIx64 " out of range", size,
				   coff);
			return 0;
		}
		vdev->ops->config_get(vdev->dev, vdev->config_buf);
		for (unsigned int i = 0; i < size; i++)
			v |= (uint64_t)vdev->config_buf[coff + i] << (8 * i);
		return v;
	}
	/* §4.2.2: control registers take 32-bit wide, aligned accesses only. */
	if (size != 4 || offset % 4 != 0 || offset >= VMMIO_CONFIG_OFFSET) {
		vmmio_warn(vdev, "read of %u bytes at 0x%" PRIx64 " ignored", size, offset);
		return 0;
	}
	return read_reg(vdev, (uint32_t)offset);
}

bool vmmio_write_posted(uint64_t offset)
{
	/* §4.2.2: QueueNotify only tells the device to look at a ring; the driver waits for nothing. */
	return offset == REG_QUEUE_NOTIFY;
}

void vmmio_write(struct vmmio_dev *vdev, uint64_t offset, unsigned int size, uint64_t value)
{
	if (offset >= VMMIO_CONFIG_OFFSET && offset < VMMIO_WINDOW_SIZE) {
		uint64_t coff = offset - VMMIO_CONFIG_OFFSET;

		if ((size != 1 && size != 2 && size != 4 && size != 8) ||
		    coff + size > vdev->p.config_size) {
			vmmio_warn(vdev, "config write of %u bytes at 0x%" PRIx64 " out of range", size,
				   coff);
			return;
		}
		if (size < 8)
			value &= (1ull << (8 * size)) - 1;
		vdev->ops->config_write(vdev->dev, (uint32_t)coff, size, value);
		return;
	}
	if (size != 4 || offset % 4 != 0 || offset >= VMMIO_CONFIG_OFFSET) {
		vmmio_warn(vdev, "write of %u bytes at 0x%" PRIx64 " ignored", size, offset);
		return;
	}
	write_reg(vdev, (uint32_t)offset, (uint32_t)value);
}

struct vq *vmmio_queue(struct vmmio_dev *vdev, unsigned int idx)
{
	return idx < vdev->p.num_queues ? vdev->queues[idx].vq : NULL;
}

unsigned int vmmio_num_queues(const struct vmmio_dev *vdev)
{
	return vdev->p.num_queues;
}

uint64_t vmmio_features(const struct vmmio_dev *vdev)
{
	return vdev->features;
}

bool vmmio_has_feature(const struct vmmio_dev *vdev, unsigned int bit)
{
	return bit < 64 && (vdev->features & VIRTIO_BIT(bit));
}

bool vmmio_running(const struct vmmio_dev *vdev)
{
	return (vdev->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(vdev->status & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FAILED));
}

