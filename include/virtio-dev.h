/* SPDX-License-Identifier: GPL-2.0-only */
/* A transport-neutral virtio device (virtio 1.2 §2, §3): features, status, queues, config, saved state. */
#ifndef VBLKD_VIRTIO_DEV_H
#define VBLKD_VIRTIO_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio-types.h"
#include "vq.h"

#define VIRTIO_DEV_MAX_QUEUES 64u
#define VIRTIO_DEV_CONFIG_MAX 256u

struct virtio_dev;

/*
 * What a device type (e.g. virtio-blk) plugs into the device.  Every
 * callback gets @opaque from virtio_dev_create().  The table is only read.
 */
struct virtio_dev_ops {
	/* Fill @buf (config_size bytes) with the device config space, little-endian (§2.5). */
	void (*config_get)(void *opaque, uint8_t *buf);
	/* A driver write of @size bytes at @offset, already inside config_size. */
	void (*config_write)(void *opaque, uint32_t offset, unsigned int size, uint64_t value);
	/* The driver asks for FEATURES_OK with @features (already a subset of those offered). */
	bool (*features_ok)(void *opaque, uint64_t features);
	/* Fill max_segs / max_seg_len of a queue about to be created (features are known). */
	void (*queue_limits)(void *opaque, unsigned int idx, struct vq_config *cfg);
	/*
	 * Queue @idx is live (the device owns @vq); -errno refuses it: a host
	 * failure (-ENOMEM), never the driver's, but the device needs a reset.
	 */
	int (*queue_start)(void *opaque, unsigned int idx, struct vq *vq);
	/* Queue @idx is about to be destroyed (reset, disabled): stop touching its vq. */
	void (*queue_stop)(void *opaque, unsigned int idx);
	/* The driver notified a live queue while the device is running (virtio_dev_running()). */
	void (*queue_notify)(void *opaque, unsigned int idx);
	/* Status went to 0: the queues are stopped already; drop device-side state. */
	void (*reset)(void *opaque);
};

struct virtio_dev_params {
	const char *name;		/* log prefix, e.g. "dom 3 disk 51712" (copied) */
	bool legacy;			/* legacy interface (§2.2 "Legacy Interface"s, virtio-mmio Version 1) */
	uint32_t device_id;
	uint32_t vendor_id;
	uint64_t features;		/* offered; VERSION_1 added/removed to match @legacy */
	unsigned int num_queues;	/* 1..VIRTIO_DEV_MAX_QUEUES */
	uint16_t queue_num_max;		/* 1..VQ_NUM_MAX */
	uint32_t config_size;		/* bytes of device config space, <= VIRTIO_DEV_CONFIG_MAX */
};

/* @t and @ops must outlive the device; *@t is copied. */
int virtio_dev_create(const struct virtio_dev_params *p, const struct virtio_transport *t,
		      const struct virtio_dev_ops *ops, void *opaque, struct virtio_dev **ret_vdev);
/* Stops the queues (queue_stop) and frees.  Accepts NULL. */
void virtio_dev_destroy(struct virtio_dev *vdev);

/* What the device is. */
const char *virtio_dev_name(const struct virtio_dev *vdev);
bool virtio_dev_legacy(const struct virtio_dev *vdev);
uint32_t virtio_dev_device_id(const struct virtio_dev *vdev);
uint32_t virtio_dev_vendor_id(const struct virtio_dev *vdev);
uint64_t virtio_dev_offered(const struct virtio_dev *vdev);
unsigned int virtio_dev_num_queues(const struct virtio_dev *vdev);
uint16_t virtio_dev_queue_num_max(const struct virtio_dev *vdev);
uint32_t virtio_dev_config_size(const struct virtio_dev *vdev);

/*
 * The driver's side, for a transport that decodes its traps or messages.
 * Every value is the driver's and is checked; a refused one returns -errno
 * (nothing changed) and the transport says so, rate-limited, in its log.
 */
uint8_t virtio_dev_status(const struct virtio_dev *vdev);
/* §2.1, §3.1.1: 0 resets the device (§2.4). */
int virtio_dev_set_status(struct virtio_dev *vdev, uint32_t value);
/* Word @word (32 bits each) of the driver's features, before FEATURES_OK (§3.1.1 step 5). */
int virtio_dev_set_driver_features(struct virtio_dev *vdev, uint32_t word, uint32_t value);
uint64_t virtio_dev_driver_features(const struct virtio_dev *vdev);
uint32_t virtio_dev_isr(const struct virtio_dev *vdev);	/* VIRTIO_MMIO_INT_* bits (§4.1.4.5 ISR) */
void virtio_dev_isr_ack(struct virtio_dev *vdev, uint32_t bits);
uint32_t virtio_dev_config_generation(const struct virtio_dev *vdev);
/* 1, 2, 4 or 8 bytes fully inside config_size (§2.5), little-endian; else -EINVAL. */
int virtio_dev_config_read(struct virtio_dev *vdev, uint32_t offset, unsigned int size,
			   uint64_t *ret_value);
int virtio_dev_config_write(struct virtio_dev *vdev, uint32_t offset, unsigned int size,
			    uint64_t value);

/* Queue layout, while the queue is not live (§4.2.3.2): -EINVAL bad index, -EBUSY live. */
enum virtio_queue_area {
	VIRTIO_QUEUE_DESC,		/* descriptor table / area (legacy: the whole ring area) */
	VIRTIO_QUEUE_DRIVER,		/* available ring / driver area */
	VIRTIO_QUEUE_DEVICE,		/* used ring / device area */
};
int virtio_dev_queue_set_num(struct virtio_dev *vdev, unsigned int idx, uint32_t num);
int virtio_dev_queue_set_addr(struct virtio_dev *vdev, unsigned int idx,
			      enum virtio_queue_area area, uint64_t addr);
/* Legacy QueueAlign (§4.2.4): a power of two. */
int virtio_dev_queue_set_align(struct virtio_dev *vdev, unsigned int idx, uint32_t align);
uint64_t virtio_dev_queue_addr(const struct virtio_dev *vdev, unsigned int idx,
			       enum virtio_queue_area area);
uint32_t virtio_dev_queue_align(const struct virtio_dev *vdev, unsigned int idx);
/* Enabled by the driver and accepted (modern QueueReady reads 1). */
bool virtio_dev_queue_enabled(const struct virtio_dev *vdev, unsigned int idx);
/* The queue's rings are in use (enabled, or legacy: started by QueuePFN). */
bool virtio_dev_queue_live(const struct virtio_dev *vdev, unsigned int idx);
/*
 * Start the queue from its layout.  A layout the driver got wrong, or a
 * host failure, puts the device into DEVICE_NEEDS_RESET (logged once, the
 * cause named).  0 when live.
 */
int virtio_dev_queue_enable(struct virtio_dev *vdev, unsigned int idx);
/* Stop using the queue (QueueReady = 0, legacy QueuePFN = 0); its layout stays. */
void virtio_dev_queue_disable(struct virtio_dev *vdev, unsigned int idx);
/* The driver notified queue @idx: -EINVAL when there is no such live queue or the device is not running. */
int virtio_dev_queue_notify(struct virtio_dev *vdev, unsigned int idx);

/* For the device type. */
uint64_t virtio_dev_features(const struct virtio_dev *vdev);	/* negotiated */
bool virtio_dev_has_feature(const struct virtio_dev *vdev, unsigned int bit);
/* Device may process queues: DRIVER_OK set, no NEEDS_RESET, no FAILED. */
bool virtio_dev_running(const struct virtio_dev *vdev);
/* Set ISR bits and call the transport's notify(). */
void virtio_dev_raise(struct virtio_dev *vdev, uint32_t bits);
/*
 * §2.1.2: enter DEVICE_NEEDS_RESET and send a configuration change
 * notification (once).  Logs nothing: the caller that decided logs why.
 */
void virtio_dev_set_needs_reset(struct virtio_dev *vdev);
/* §2.5.1: config space changed: bump the generation, notify when the driver is live. */
void virtio_dev_config_changed(struct virtio_dev *vdev);

/*
 * The device's guest-visible state, one plain structure: what a restarted
 * process needs to go on serving the same driver.  Little-endian host order
 * is not assumed by the reader: restore checks every field as hostile input
 * (it may come from a file written by another version).  Device-type state
 * (e.g. virtio-blk's writeback) and the transport's own registers (selectors,
 * legacy GuestPageSize) are not in it.
 */
#define VIRTIO_DEV_STATE_VERSION 1u

struct virtio_queue_state {
	uint32_t num;
	uint32_t align;			/* legacy QueueAlign */
	uint64_t desc, driver, device;
	uint8_t enabled;		/* driver-enabled (modern QueueReady) */
	uint8_t live;			/* rings in use: the fields below mean something */
	uint8_t pad[2];
	uint32_t first_inflight;	/* its heads: inflight[first_inflight .. + ninflight) */
	uint32_t ninflight;
	struct vq_state ring;		/* positions, wrap counters, event suppression */
};

struct virtio_dev_state {
	uint32_t version;		/* VIRTIO_DEV_STATE_VERSION */
	uint32_t size;			/* bytes, inflight[] included */
	uint64_t features;		/* negotiated */
	uint64_t driver_features;	/* as written */
	uint32_t isr;
	uint32_t config_generation;
	uint8_t status;
	uint8_t features_latched;
	uint8_t pad[2];
	uint32_t num_queues;
	struct virtio_queue_state queues[VIRTIO_DEV_MAX_QUEUES];
	uint32_t ninflight;
	/*
	 * Every buffer taken from a ring and not yet returned: after a restore
	 * the device takes them again (vq_pop() returns them first), so the
	 * requests they carry can be resubmitted.
	 */
	struct vq_inflight inflight[];
};

/*
 * Journals (vq.h): queue @idx, whenever it is started, keeps its positions
 * and buffers in flight in @mem (@size bytes, 8-aligned, the caller's until
 * the device is destroyed; NULL for none).  Only while the queue is not
 * live.  Then virtio_dev_save() leaves that queue's ring state out (so it
 * never returns -EBUSY for it) and virtio_dev_restore() resumes the queue
 * from its journal.  virtio_dev_journal_size() is enough for any queue the
 * driver may set up.
 */
size_t virtio_dev_journal_size(const struct virtio_dev *vdev);
int virtio_dev_set_journal(struct virtio_dev *vdev, unsigned int idx, void *mem, size_t size);

/* Bytes virtio_dev_save() needs now. */
size_t virtio_dev_state_size(const struct virtio_dev *vdev);
/* -ENOSPC @size too small; -EBUSY used entries pushed and not yet published (save between batches). */
int virtio_dev_save(const struct virtio_dev *vdev, struct virtio_dev_state *st, size_t size);
/*
 * Into a freshly created device of the same shape (num_queues, offered
 * features, legacy): -EPROTONOSUPPORT another version, -EINVAL any field
 * out of range (nothing changed then), or what starting a queue returned.
 * Live queues are started (queue_start()), their in-flight heads queued to
 * be taken again, and every running queue is notified once, since a
 * notification may have been lost with the old process.
 */
int virtio_dev_restore(struct virtio_dev *vdev, const struct virtio_dev_state *st, size_t size);

#endif
