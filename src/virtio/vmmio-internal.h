/* SPDX-License-Identifier: GPL-2.0-only */
/* Private to src/virtio: the virtio-mmio decoder's state, shared by its modern and legacy halves. */
#ifndef VBLKD_VMMIO_INTERNAL_H
#define VBLKD_VMMIO_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "virtio-dev.h"
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

/* The transport's own registers; everything else is the device's (virtio-dev.h). */
struct vmmio_dev {
	struct virtio_dev *vdev;
	struct log_ratelimit rl;
	uint32_t dev_features_sel;
	uint32_t drv_features_sel;
	uint32_t queue_sel;
	uint32_t guest_page_size;	/* legacy */
};

#define vmmio_warn(m, fmt, ...)                                                                  \
	log_ratelimited(&(m)->rl, LOG_LEVEL_WARNING, "%s: " fmt, virtio_dev_name((m)->vdev),      \
			##__VA_ARGS__)

/* Legacy-only registers (§4.2.4): true when @off is one of them (then handled). */
bool vmmio_legacy_read(struct vmmio_dev *m, uint32_t off, uint32_t *ret_val);
bool vmmio_legacy_write(struct vmmio_dev *m, uint32_t off, uint32_t val);

#endif
