/* SPDX-License-Identifier: GPL-2.0-only */
/* virtio-blk device (virtio 1.2 §5.2): a device type on a virtio device (virtio-dev.h), over a block backend. */
#ifndef VBLKD_VBLK_H
#define VBLKD_VBLK_H

#include <stdbool.h>
#include <stdint.h>

#include "blk.h"
#include "virtio-types.h"
#include "virtio-dev.h"

/* Feature bits, §5.2.3. */
#define VIRTIO_BLK_F_SIZE_MAX		1
#define VIRTIO_BLK_F_SEG_MAX		2
#define VIRTIO_BLK_F_GEOMETRY		4
#define VIRTIO_BLK_F_RO			5
#define VIRTIO_BLK_F_BLK_SIZE		6
#define VIRTIO_BLK_F_FLUSH		9
#define VIRTIO_BLK_F_TOPOLOGY		10
#define VIRTIO_BLK_F_CONFIG_WCE		11
#define VIRTIO_BLK_F_MQ			12
#define VIRTIO_BLK_F_DISCARD		13
#define VIRTIO_BLK_F_WRITE_ZEROES	14

/* Request types and status values, §5.2.6. */
#define VIRTIO_BLK_T_IN			0
#define VIRTIO_BLK_T_OUT		1
#define VIRTIO_BLK_T_FLUSH		4
#define VIRTIO_BLK_T_GET_ID		8
#define VIRTIO_BLK_T_GET_LIFETIME	10
#define VIRTIO_BLK_T_DISCARD		11
#define VIRTIO_BLK_T_WRITE_ZEROES	13
#define VIRTIO_BLK_T_SECURE_ERASE	14
#define VIRTIO_BLK_S_OK			0
#define VIRTIO_BLK_S_IOERR		1
#define VIRTIO_BLK_S_UNSUPP		2
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1u
#define VIRTIO_BLK_ID_BYTES		20
#define VIRTIO_BLK_SECTOR_SIZE		512u
#define VIRTIO_ID_BLOCK			2

/* struct virtio_blk_config offsets (§5.2.4), relative to the config space. */
#define VBLK_CFG_CAPACITY		0
#define VBLK_CFG_SIZE_MAX		8
#define VBLK_CFG_SEG_MAX		12
#define VBLK_CFG_BLK_SIZE		20
#define VBLK_CFG_PHYS_BLOCK_EXP		24
#define VBLK_CFG_MIN_IO_SIZE		26
#define VBLK_CFG_OPT_IO_SIZE		28
#define VBLK_CFG_WRITEBACK		32
#define VBLK_CFG_NUM_QUEUES		34
#define VBLK_CFG_MAX_DISCARD_SECTORS	36
#define VBLK_CFG_MAX_DISCARD_SEG	40
#define VBLK_CFG_DISCARD_ALIGN		44
#define VBLK_CFG_MAX_WZ_SECTORS		48
#define VBLK_CFG_MAX_WZ_SEG		52
#define VBLK_CFG_WZ_MAY_UNMAP		56
#define VBLK_CONFIG_SIZE		60

#define VBLK_MAX_QUEUES 64u

/*
 * Wiring (single-threaded, all calls from the one event loop; for several
 * threads on one device see "Lanes" below):
 *
 *   vblk_create(&cfg, &transport, &backend_ops, backend, &dev);
 *   a transport over vblk_virtio_dev(dev), e.g. vmmio_create(vblk_virtio_dev(dev), &m)
 *       (a queue notification submits to the backend before it returns)
 *   backend completion batch (e.g. aio eventfd readable): the engine calls
 *       req->done() for each request, then the owner calls vblk_complete_batch(dev) once
 *   backing file grew: vblk_set_info(dev, &new_info)
 *   teardown: vblk_destroy(dev), then close the backend (which completes or
 *       cancels what is left), then drop the transport
 */
struct vblk_dev;

/*
 * The block layer seam.  submit(): 0 = accepted, and req->done(req, res) is
 * called exactly once later, never from inside submit(), with res 0 or
 * -errno; -EAGAIN = queue full, not accepted: the device stops taking
 * requests from its rings and resumes when one of its completions arrives
 * (it may call submit() again from inside done()); any other -errno = not
 * accepted, the guest gets VIRTIO_BLK_S_IOERR.  unplug() ends each burst of
 * submits (may be NULL); how many requests reach the kernel per system call
 * within a burst is the backend's choice (blk: BLK_SUBMIT_BATCH).
 */
struct vblk_backend_ops {
	int (*submit)(void *be, struct blk_req *req);
	void (*unplug)(void *be);
	/*
	 * The owner's one-shot timer for this device: call vblk_timer_expired()
	 * in @us microseconds (0: as soon as the loop has served what else is
	 * ready), replacing any earlier setting.  The device decides when it
	 * polls its rings and how it backs off.  0 or -errno (the owner logs
	 * it; the device then waits for its completions instead).  May be NULL.
	 */
	int (*set_timer)(void *be, uint64_t us);
};

struct vblk_config {
	const char *name;		/* log prefix, e.g. "dom 3 disk 51712" (copied) */
	struct blk_info info;		/* capacity, block sizes, read_only, discard, ... */
	unsigned int version;		/* 2 (modern, 0 = 2) or 1 (legacy interface, virtio-mmio Version 1) */
	unsigned int num_queues;	/* 1..VBLK_MAX_QUEUES (0 = 1); offered with VIRTIO_BLK_F_MQ */
	unsigned int num_lanes;		/* queue i is served by lane i % num_lanes (0 = 1; at most num_queues) */
	uint16_t queue_num_max;		/* QueueNumMax (0 = 256) */
	uint32_t seg_max;		/* data segments per request (0 = 126) */
	uint32_t size_max;		/* bytes per segment (0 = 256 KiB) */
	uint32_t max_discard_sectors;	/* per DISCARD / WRITE_ZEROES segment (0 = 2 GiB worth) */
	const char *serial;		/* GET_ID answer, at most 20 bytes used (NULL = "") */
	uint64_t disable_features;	/* feature bits never offered (tests, compatibility knobs) */
};

struct vblk_stats {
	uint64_t read_reqs, read_bytes;
	uint64_t write_reqs, write_bytes;
	uint64_t flush_reqs, discard_reqs, write_zeroes_reqs, get_id_reqs;
	uint64_t io_errors;		/* requests answered VIRTIO_BLK_S_IOERR */
	uint64_t unsupported;		/* requests answered VIRTIO_BLK_S_UNSUPP */
	uint64_t ring_errors;		/* driver protocol violations (device needed reset) */
	uint64_t map_waits;		/* a request waited: the guest's mapping budget was used up */
	uint64_t interrupts;		/* used-buffer interrupts raised */
	unsigned int in_flight;		/* in the backend, orphans of a reset included */
};

/*
 * Create a virtio-blk device.  @t, @ops and @be are borrowed and must stay
 * valid until the device is destroyed AND every request it submitted has
 * completed (see vblk_destroy()).  Features offered: VERSION_1, SIZE_MAX,
 * SEG_MAX, BLK_SIZE, TOPOLOGY, FLUSH, CONFIG_WCE, MQ, INDIRECT_DESC,
 * EVENT_IDX, RING_PACKED, RO (read_only), DISCARD (info.discard),
 * WRITE_ZEROES (info.write_zeroes), ACCESS_PLATFORM (t->grants),
 * minus cfg->disable_features.
 */
int vblk_create(const struct vblk_config *cfg, const struct virtio_transport *t,
		const struct vblk_backend_ops *ops, void *be, struct vblk_dev **ret_dev);

/*
 * Free the device.  Requests still in flight in the backend are orphaned:
 * their done() later only unmaps their guest buffers through the transport
 * and frees the small orphan pool with the last one; they never touch the
 * rings or the freed device.  So keep the transport usable until the backend
 * has completed or cancelled all of them (close the backend after this).
 * Accepts NULL.
 */
void vblk_destroy(struct vblk_dev *dev);

/* The virtio device a transport decodes its guest's accesses into (owned by @dev). */
struct virtio_dev *vblk_virtio_dev(struct vblk_dev *dev);

/*
 * End of a batch of backend completions: publish the used entries collected
 * since the last call, one used-index update per queue, and raise at most
 * one interrupt (honouring EVENT_IDX / NO_INTERRUPT).  Call it after the
 * backend has delivered a batch of done() callbacks (e.g. at the end of the
 * aio eventfd handler).  QueueNotify processing publishes by itself.  Then
 * takes the buffers the driver added without notifying (see vblk_poll()):
 * what it answers at once (errors, UNSUPP) is published with a second
 * interrupt if the driver asks for one.
 */
void vblk_complete_batch(struct vblk_dev *dev);

/*
 * While a queue has requests in the backend the driver is told not to
 * notify (vq_notify_off()): the next completion batch
 * (vblk_complete_batch()) looks at the ring instead.  If every request in
 * flight is slow, buffers added meanwhile wait; the device bounds that with
 * the owner's timer (set_timer()): 500 us after a queue goes quiet (a poll
 * that finds nothing then asks the driver to notify again, so nothing added
 * later waits for a timer), at once after a pass that stopped on its
 * mapping budget.  vblk_poll() takes them now: returns how many buffers
 * it took; *ret_quiet (may be NULL) says whether a queue is still quiet.
 */
unsigned int vblk_poll(struct vblk_dev *dev, bool *ret_quiet);

/*
 * The owner's timer fired: poll; if that found buffers, set the timer again
 * while a queue is quiet; if not, ask the driver to notify again.
 */
void vblk_timer_expired(struct vblk_dev *dev);

/* Poll as soon as the loop has served what else is ready (e.g. the guest's mapping budget has room). */
void vblk_poll_soon(struct vblk_dev *dev);

/*
 * Busy polling by the owner's loop (QEMU's aio polling, vhost's busyloop):
 * between begin and end the driver is told not to notify for any queue, and
 * the owner calls vblk_busy_poll() in a tight loop for a short while, which
 * takes what the driver adds (true when it took something).  end() asks for
 * notifications again where no request of the queue is in flight, taking
 * (true) what arrived meanwhile.  On Xen this saves the guest the trap of
 * a QueueNotify while the daemon is busy anyway.
 */
void vblk_busy_poll_begin(struct vblk_dev *dev);
bool vblk_busy_poll(struct vblk_dev *dev);
bool vblk_busy_poll_end(struct vblk_dev *dev);

/*
 * Requests from before a reset (or QueueReady = 0) are still in the backend
 * and may still write into the buffers the driver gave them.  A transport
 * should not let the driver's reset write complete until this is false
 * (§2.4: after a reset the device must not touch the old buffers); it turns
 * false from inside the backend's completions.
 */
bool vblk_draining(const struct vblk_dev *dev);

/*
 * The backing store changed (e.g. the file grew): capacity and write cache
 * are updated; a changed capacity bumps ConfigGeneration and sends a
 * configuration change interrupt (§5.2.4, §2.5.1).  Offered features do not change.
 */
void vblk_set_info(struct vblk_dev *dev, const struct blk_info *info);

void vblk_get_stats(const struct vblk_dev *dev, struct vblk_stats *ret_stats);

/*
 * Lanes: one device's queues served by several threads (num_lanes > 1).
 * Queue i belongs to lane i % num_lanes, and each lane has its own backend
 * (vblk_set_lane_backend(); all start with vblk_create()'s @be), request
 * pool, counters, orphans, ring poll timer (set_timer() on its backend) and
 * log rate limit.  What one lane's thread calls (the vblk_lane_*() functions
 * below for its lane, its backend's done() callbacks, and QueueNotify of its
 * queues through the transport) touches nothing another lane's thread
 * writes: those may run at the same time, and raise the interrupt through
 * the transport's notify() (which must allow that) and InterruptStatus
 * atomically.  Everything else (the transport's other register accesses,
 * vblk_set_info(), the stats, save, restore and destroy) must run while no
 * lane's call does: the owner's exclusion (daemon.c: each lane's mutex, all
 * taken for those).  The whole-device functions above act on every lane in
 * turn: for owners of one lane, or under that exclusion.
 */
void vblk_set_lane_backend(struct vblk_dev *dev, unsigned int lane, void *be);
unsigned int vblk_num_lanes(const struct vblk_dev *dev);
void vblk_lane_complete_batch(struct vblk_dev *dev, unsigned int lane);
unsigned int vblk_lane_poll(struct vblk_dev *dev, unsigned int lane, bool *ret_quiet);
void vblk_lane_timer_expired(struct vblk_dev *dev, unsigned int lane);
void vblk_lane_poll_soon(struct vblk_dev *dev, unsigned int lane);
void vblk_lane_busy_poll_begin(struct vblk_dev *dev, unsigned int lane);
bool vblk_lane_busy_poll(struct vblk_dev *dev, unsigned int lane);
bool vblk_lane_busy_poll_end(struct vblk_dev *dev, unsigned int lane);
/* Whether requests of the lane from before a reset are still in its backend (vblk_draining()). */
bool vblk_lane_draining(const struct vblk_dev *dev, unsigned int lane);
void vblk_lane_get_stats(const struct vblk_dev *dev, unsigned int lane,
			 struct vblk_stats *ret_stats);

/* What the driver set in virtio-blk beside the virtio device's state (virtio-dev.h). */
struct vblk_state {
	uint8_t writeback;		/* §5.2.4 config writeback */
	uint8_t pad[7];
};
void vblk_save(const struct vblk_dev *dev, struct vblk_state *st);
/*
 * Restore a device just created with the same configuration from @st and
 * @vst (virtio_dev_restore()): requests in flight at the save are taken
 * again and resubmitted.  -EINVAL / -EPROTONOSUPPORT as virtio_dev_restore();
 * the device is reset then.
 */
int vblk_restore(struct vblk_dev *dev, const struct vblk_state *st,
		 const struct virtio_dev_state *vst, size_t size);

#endif
