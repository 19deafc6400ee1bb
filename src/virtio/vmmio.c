// SPDX-License-Identifier: GPL-2.0-only
/* virtio-mmio register decoder (virtio 1.2 §4.2.2 modern; legacy registers in vmmio-legacy.c) over a device. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "vmmio-internal.h"

int vmmio_create(struct virtio_dev *vdev, struct vmmio_dev **ret_m)
{
	struct vmmio_dev *m;

	assert(vdev);
	if (virtio_dev_config_size(vdev) > VMMIO_CONFIG_MAX)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->vdev = vdev;
	m->rl = (struct log_ratelimit)LOG_RATELIMIT_GUEST;
	m->guest_page_size = 4096;
	*ret_m = m;
	return 0;
}

void vmmio_destroy(struct vmmio_dev *m)
{
	free(m);
}

/* Registers of the modern layout (§4.2.2) that a legacy device does not have. */
static bool modern_read(struct vmmio_dev *m, uint32_t off, uint32_t *ret_val)
{
	struct virtio_dev *vdev = m->vdev;
	unsigned int sel = m->queue_sel;

	switch (off) {
	case REG_DEVICE_FEATURES:
		/* §4.2.2: word DeviceFeaturesSel of the feature bits. */
		*ret_val = m->dev_features_sel > 1 ? 0 :
			   (uint32_t)(virtio_dev_offered(vdev) >> (32 * m->dev_features_sel));
		return true;
	case REG_QUEUE_NUM_MAX:
		/* §4.2.2: 0 for a queue that does not exist, or one already live. */
		*ret_val = sel >= virtio_dev_num_queues(vdev) || virtio_dev_queue_enabled(vdev, sel) ?
				   0 : virtio_dev_queue_num_max(vdev);
		return true;
	case REG_QUEUE_READY:
		*ret_val = virtio_dev_queue_enabled(vdev, sel);
		return true;
	case REG_QUEUE_PFN:
		*ret_val = 0;
		return true;
	case REG_SHM_LEN_LOW:
	case REG_SHM_LEN_HIGH:
		/* §4.2.2: a non-existent shared memory region reads length -1. */
		*ret_val = 0xffffffffu;
		return true;
	case REG_CONFIG_GENERATION:
		*ret_val = virtio_dev_config_generation(vdev);
		return true;
	default:
		return false;
	}
}

static uint32_t read_reg(struct vmmio_dev *m, uint32_t off)
{
	struct virtio_dev *vdev = m->vdev;
	uint32_t val = 0;

	switch (off) {
	case REG_MAGIC:
		return VMMIO_MAGIC;
	case REG_VERSION:
		return virtio_dev_legacy(vdev) ? 1 : 2;
	case REG_DEVICE_ID:
		return virtio_dev_device_id(vdev);
	case REG_VENDOR_ID:
		return virtio_dev_vendor_id(vdev);
	case REG_INTERRUPT_STATUS:
		return virtio_dev_isr(vdev);
	case REG_STATUS:
		return virtio_dev_status(vdev);
	default:
		break;
	}
	if (virtio_dev_legacy(vdev) ? vmmio_legacy_read(m, off, &val) : modern_read(m, off, &val))
		return val;
	vmmio_warn(m, "read of register 0x%03x ignored", (unsigned int)off);
	return 0;
}

/* The queue layout registers of the modern layout (§4.2.2): QueueReady and the three addresses. */
static bool modern_write(struct vmmio_dev *m, uint32_t off, uint32_t val)
{
	struct virtio_dev *vdev = m->vdev;
	unsigned int sel = m->queue_sel;
	enum virtio_queue_area area;
	uint64_t addr;
	unsigned int shift = (off & 4) ? 32 : 0;

	switch (off) {
	case REG_QUEUE_READY:
		if (sel >= virtio_dev_num_queues(vdev))
			return false;
		if (val == 0) {
			virtio_dev_queue_disable(vdev, sel);
			return true;
		}
		/* §3.1.1 step 7: queues are set up after FEATURES_OK. */
		if (val != 1 || virtio_dev_queue_enabled(vdev, sel) ||
		    !(virtio_dev_status(vdev) & VIRTIO_STATUS_FEATURES_OK) ||
		    (virtio_dev_status(vdev) & VIRTIO_STATUS_DEVICE_NEEDS_RESET))
			return false;
		virtio_dev_queue_enable(vdev, sel);
		return true;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
		area = VIRTIO_QUEUE_DESC;
		break;
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
		area = VIRTIO_QUEUE_DRIVER;
		break;
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		area = VIRTIO_QUEUE_DEVICE;
		break;
	default:
		return false;
	}
	addr = virtio_dev_queue_addr(vdev, sel, area);
	addr = (addr & ~(0xffffffffull << shift)) | ((uint64_t)val << shift);
	/* §4.2.3.2: a live queue's layout cannot change under the device (-EBUSY). */
	return virtio_dev_queue_set_addr(vdev, sel, area, addr) == 0;
}

/* Registers both layouts share; false when @off is not one of them or the write is refused. */
static bool common_write(struct vmmio_dev *m, uint32_t off, uint32_t val, bool *ret_handled)
{
	struct virtio_dev *vdev = m->vdev;

	*ret_handled = true;
	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		m->dev_features_sel = val;
		return true;
	case REG_DRIVER_FEATURES:
		return virtio_dev_set_driver_features(vdev, m->drv_features_sel, val) == 0;
	case REG_DRIVER_FEATURES_SEL:
		m->drv_features_sel = val;
		return true;
	case REG_QUEUE_SEL:
		m->queue_sel = val;
		return true;
	case REG_QUEUE_NUM:
		return virtio_dev_queue_set_num(vdev, m->queue_sel, val) == 0;
	case REG_QUEUE_NOTIFY:
		return virtio_dev_queue_notify(vdev, val) == 0;
	case REG_INTERRUPT_ACK:
		virtio_dev_isr_ack(vdev, val);
		return true;
	case REG_SHM_SEL:
		return true;
	default:
		*ret_handled = false;
		return false;
	}
}

static void write_status(struct vmmio_dev *m, uint32_t val)
{
	uint8_t old = virtio_dev_status(m->vdev);
	int r = virtio_dev_set_status(m->vdev, val);

	if (val == 0) {
		/* §4.2.2: the reset covers the transport's selectors too. */
		m->dev_features_sel = 0;
		m->drv_features_sel = 0;
		m->queue_sel = 0;
		/*
		 * GuestPageSize survives a reset: Linux writes it once at probe time,
		 * before the reset that starts every driver initialisation (§4.2.4).
		 */
		return;
	}
	if (r == -EINVAL)
		vmmio_warn(m, "status 0x%x out of range ignored", (unsigned int)val);
	else if (r == -EPERM)
		vmmio_warn(m, "status write 0x%x clears bits of 0x%x, ignored",
			   (unsigned int)(val & 0xff & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) |
				   (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET), old);
	else if (r < 0)
		vmmio_warn(m, "status 0x%x after 0x%x out of order, ignored",
			   (unsigned int)(val & 0xff & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) |
				   (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET), old);
}

static void write_reg(struct vmmio_dev *m, uint32_t off, uint32_t val)
{
	bool handled, ok;

	if (off == REG_STATUS) {
		write_status(m, val);
		return;
	}
	ok = common_write(m, off, val, &handled);
	if (!handled)
		ok = virtio_dev_legacy(m->vdev) ? vmmio_legacy_write(m, off, val) :
						  modern_write(m, off, val);
	if (ok)
		return;
	if (off == REG_DRIVER_FEATURES)
		vmmio_warn(m, "driver features write ignored");
	else
		vmmio_warn(m, "write of 0x%x to register 0x%03x ignored", (unsigned int)val,
			   (unsigned int)off);
}

uint64_t vmmio_read(struct vmmio_dev *m, uint64_t offset, unsigned int size)
{
	if (offset >= VMMIO_CONFIG_OFFSET && offset < VMMIO_WINDOW_SIZE) {
		uint64_t coff = offset - VMMIO_CONFIG_OFFSET, v = 0;

		/* Config space: 1, 2, 4, 8 byte reads fully inside config_size (§4.2.2, §2.5). */
		if (virtio_dev_config_read(m->vdev, (uint32_t)coff, size, &v) < 0) {
			vmmio_warn(m, "config read of %u bytes at 0x%llx out of range", size,
				   (unsigned long long)coff);
			return 0;
		}
		return v;
	}
	/* §4.2.2: control registers take 32-bit wide, aligned accesses only. */
	if (size != 4 || offset % 4 != 0 || offset >= VMMIO_CONFIG_OFFSET) {
		vmmio_warn(m, "read of %u bytes at 0x%llx ignored", size,
			   (unsigned long long)offset);
		return 0;
	}
	return read_reg(m, (uint32_t)offset);
}

bool vmmio_write_posted(uint64_t offset)
{
	/* §4.2.2: QueueNotify only tells the device to look at a ring; the driver waits for nothing. */
	return offset == REG_QUEUE_NOTIFY;
}

bool vmmio_any_thread(uint64_t offset, unsigned int size, bool write)
{
	/* InterruptStatus and InterruptACK, well formed: the device's ISR, atomic, and nothing else. */
	return size == 4 && offset == (write ? REG_INTERRUPT_ACK : REG_INTERRUPT_STATUS);
}

bool vmmio_is_queue_notify(uint64_t offset, unsigned int size)
{
	return offset == REG_QUEUE_NOTIFY && size == 4;
}

bool vmmio_write_saves(uint64_t offset)
{
	/*
	 * The two data-path registers change nothing a restarted device needs:
	 * a notification is taken again from the rings, and InterruptStatus is
	 * raised again after a restore.  Everything else (status, features,
	 * selectors, queue layout, config) does.
	 */
	return offset != REG_QUEUE_NOTIFY && offset != REG_INTERRUPT_ACK;
}

void vmmio_write(struct vmmio_dev *m, uint64_t offset, unsigned int size, uint64_t value)
{
	if (offset >= VMMIO_CONFIG_OFFSET && offset < VMMIO_WINDOW_SIZE) {
		uint64_t coff = offset - VMMIO_CONFIG_OFFSET;

		if (virtio_dev_config_write(m->vdev, (uint32_t)coff, size, value) < 0)
			vmmio_warn(m, "config write of %u bytes at 0x%llx out of range", size,
				   (unsigned long long)coff);
		return;
	}
	if (size != 4 || offset % 4 != 0 || offset >= VMMIO_CONFIG_OFFSET) {
		vmmio_warn(m, "write of %u bytes at 0x%llx ignored", size,
			   (unsigned long long)offset);
		return;
	}
	write_reg(m, (uint32_t)offset, (uint32_t)value);
}

void vmmio_save(const struct vmmio_dev *m, struct vmmio_state *st)
{
	*st = (struct vmmio_state){
		.dev_features_sel = m->dev_features_sel,
		.drv_features_sel = m->drv_features_sel,
		.queue_sel = m->queue_sel,
		.guest_page_size = m->guest_page_size,
	};
}

int vmmio_restore(struct vmmio_dev *m, const struct vmmio_state *st)
{
	/* Selectors are the driver's values as written (checked where they are used). */
	if (st->guest_page_size == 0 || (st->guest_page_size & (st->guest_page_size - 1)))
		return -EINVAL;
	m->dev_features_sel = st->dev_features_sel;
	m->drv_features_sel = st->drv_features_sel;
	m->queue_sel = st->queue_sel;
	m->guest_page_size = st->guest_page_size;
	return 0;
}
