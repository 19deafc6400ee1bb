// SPDX-License-Identifier: GPL-2.0-only
/* virtio-mmio legacy registers (Version 1, virtio 1.2 §4.2.4): GuestPageSize, QueueAlign, QueuePFN. */
#include "vmmio-internal.h"

bool vmmio_legacy_read(struct vmmio_dev *m, uint32_t off, uint32_t *ret_val)
{
	unsigned int sel = m->queue_sel;

	switch (off) {
	case REG_DEVICE_FEATURES:
		/* §4.2.4: legacy has only word 0 of the feature bits. */
		*ret_val = m->dev_features_sel > 0 ? 0 : (uint32_t)virtio_dev_offered(m->vdev);
		return true;
	case REG_QUEUE_NUM_MAX:
		*ret_val = sel < virtio_dev_num_queues(m->vdev) ? virtio_dev_queue_num_max(m->vdev) : 0;
		return true;
	case REG_QUEUE_PFN:
		/* The page number as written: the area starts at QueuePFN x GuestPageSize. */
		*ret_val = (uint32_t)(virtio_dev_queue_addr(m->vdev, sel, VIRTIO_QUEUE_DESC) /
				      m->guest_page_size);
		return true;
	case REG_QUEUE_READY:
	case REG_SHM_LEN_LOW:
	case REG_SHM_LEN_HIGH:
	case REG_CONFIG_GENERATION:
		*ret_val = 0;	/* modern registers read as 0 in a legacy device */
		return true;
	default:
		return false;
	}
}

/* QueuePFN (§4.2.4): 0 stops the queue, anything else places its rings and starts it. */
static bool write_pfn(struct vmmio_dev *m, unsigned int sel, uint32_t val)
{
	struct virtio_dev *vdev = m->vdev;

	if (sel >= virtio_dev_num_queues(vdev))
		return false;
	if (val == 0) {
		virtio_dev_queue_disable(vdev, sel);
		virtio_dev_queue_set_addr(vdev, sel, VIRTIO_QUEUE_DESC, 0);
		return true;
	}
	if (virtio_dev_queue_live(vdev, sel) || !(virtio_dev_status(vdev) & VIRTIO_STATUS_DRIVER))
		return false;
	if (virtio_dev_queue_align(vdev, sel) == 0)
		virtio_dev_queue_set_align(vdev, sel, 4096); /* §4.2.4 does not default it; Linux writes PAGE_SIZE */
	/* Overflow-free: a 32-bit page number times a 32-bit page size. */
	virtio_dev_queue_set_addr(vdev, sel, VIRTIO_QUEUE_DESC, (uint64_t)val * m->guest_page_size);
	virtio_dev_queue_enable(vdev, sel);
	return true;
}

bool vmmio_legacy_write(struct vmmio_dev *m, uint32_t off, uint32_t val)
{
	switch (off) {
	case REG_GUEST_PAGE_SIZE:
		/* §4.2.4: a power of two; anything else would misplace every ring. */
		if (val == 0 || (val & (val - 1)) != 0)
			return false;
		m->guest_page_size = val;
		return true;
	case REG_QUEUE_ALIGN:
		return virtio_dev_queue_set_align(m->vdev, m->queue_sel, val) == 0;
	case REG_QUEUE_PFN:
		return write_pfn(m, m->queue_sel, val);
	default:
		/* The modern queue registers (QueueReady, addresses) mean nothing here. */
		return false;
	}
}
