/* SPDX-License-Identifier: GPL-2.0-only */
/* virtio-mmio register file (virtio 1.2 §4.2): status, features, queues, interrupts, config. */
#ifndef VBLKD_VMMIO_H
#define VBLKD_VMMIO_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio-types.h"
#include "vq.h"

/* Size of one device's register window (§4.2.2: registers 0x000-0x0ff, config space from 0x100). */
#define VMMIO_WINDOW_SIZE 0x200u
#define VMMIO_CONFIG_OFFSET 0x100u
#define VMMIO_CONFIG_MAX (VMMIO_WINDOW_SIZE - VMMIO_CONFIG_OFFSET)
#define VMMIO_MAGIC 0x74726976u /* "virt" */

struct vmmio_dev;

/*
 * What a device type (e.g. virtio-blk) plugs into the register file.  Every
 * callback gets @dev from vmmio_create().  The table is only read.
 */
struct vmmio_device_ops {
	/* Fill @buf (config_size bytes) with the device config space, little-endian (§2.5). */
	void (*config_get)(void *dev, uint8_t *buf);
	/* A driver write of @size bytes at @offset, already inside config_size. */
	void (*config_write)(void *dev, uint32_t offset, unsigned int size, uint64_t value);
	/* The driver asks for FEATURES_OK with @features (already a subset of those offered). */
	bool (*features_ok)(void *dev, uint64_t features);
	/* Fill max_segs / max_seg_len of a queue about to be created (features are known). */
	void (*queue_limits)(void *dev, unsigned int idx, struct vq_config *cfg);
	/* Queue @idx is live (vmmio owns @vq); -errno refuses it (the device then needs a reset). */
	int (*queue_start)(void *dev, unsigned int idx, struct vq *vq);
	/* Queue @idx is about to be destroyed (reset, QueueReady = 0): stop touching its vq. */
	void (*queue_stop)(void *dev, unsigned int idx);
	/* QueueNotify for a live queue while DRIVER_OK and not needing reset. */
	void (*queue_notify)(void *dev, unsigned int idx);
	/* Status went to 0: the queues are stopped already; drop device-side state. */
	void (*reset)(void *dev);
};

struct vmmio_params {
	const char *name;		/* log prefix, e.g. "dom 3 disk 51712" (copied) */
	unsigned int version;		/* 2 = modern (§4.2.2), 1 = legacy (§4.2.4) */
	uint32_t device_id;
	uint32_t vendor_id;
	uint64_t features;		/* offered; VERSION_1 added/removed to match @version */
	unsigned int num_queues;	/* >= 1 */
	uint16_t queue_num_max;		/* QueueNumMax, 1..VQ_NUM_MAX */
	uint32_t config_size;		/* bytes of device config space, <= VMMIO_CONFIG_MAX */
};

/* @t and @ops must outlive the device; *@t is copied. */
int vmmio_create(const struct vmmio_params *p, const struct virtio_transport *t,
		 const struct vmmio_device_ops *ops, void *dev, struct vmmio_dev **ret_vdev);
/* Stops the queues (queue_stop) and frees.  Accepts NULL. */
void vmmio_destroy(struct vmmio_dev *vdev);

/*
 * Guest accesses to the register window, @offset relative to its base.  Any
 * offset and @size (1, 2, 4, 8, or anything else a hostile guest sends) is
 * safe: bad ones read as 0 or are ignored, with a rate-limited warning.
 * Control registers take 32-bit aligned accesses only (§4.2.2); the config
 * space takes 1, 2, 4 and 8 byte accesses inside its size.  A QueueNotify
 * write runs the device's ring processing synchronously.
 */
uint64_t vmmio_read(struct vmmio_dev *vdev, uint64_t offset, unsigned int size);
/*
 * True for registers whose writes the driver does not wait on (QueueNotify):
 * a transport may let the vCPU run on before the write is acted upon.
 */
bool vmmio_write_posted(uint64_t offset);
void vmmio_write(struct vmmio_dev *vdev, uint64_t offset, unsigned int size, uint64_t value);

/* For the device type. */
struct vq *vmmio_queue(struct vmmio_dev *vdev, unsigned int idx);
unsigned int vmmio_num_queues(const struct vmmio_dev *vdev);
uint64_t vmmio_features(const struct vmmio_dev *vdev);	/* negotiated */
bool vmmio_has_feature(const struct vmmio_dev *vdev, unsigned int bit);
/* Device may process queues: DRIVER_OK set, no NEEDS_RESET, no FAILED. */
bool vmmio_running(const struct vmmio_dev *vdev);
/* Set InterruptStatus bits and call the transport's notify(). */
void vmmio_raise(struct vmmio_dev *vdev, uint32_t bits);
/* §2.1.2: enter DEVICE_NEEDS_RESET and send a configuration change notification (once). */
void vmmio_set_needs_reset(struct vmmio_dev *vdev);
/* §2.5.1 / §4.2.2: config space changed: bump ConfigGeneration, notify when the driver is live. */
void vmmio_config_changed(struct vmmio_dev *vdev);

#endif
