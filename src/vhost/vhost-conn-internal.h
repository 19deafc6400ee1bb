/* SPDX-License-Identifier: GPL-2.0-only */
/* A vhost-user connection's state, shared by vhost-conn.c (messages) and vhost-inflight.c (the region). */
#ifndef VBLKD_VHOST_CONN_INTERNAL_H
#define VBLKD_VHOST_CONN_INTERNAL_H

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "vblk.h"
#include "vhost-mem.h"
#include "vhost-proto.h"
#include "virtio-dev.h"

/* Largest queue a front end may set up (QEMU's VIRTQUEUE_MAX_SIZE). */
#define VHOST_QUEUE_MAX 1024u

#define VHOST_CONN_PROTOCOL_FEATURES                                                   \
	(VIRTIO_BIT(VHOST_USER_PROTOCOL_F_MQ) | VIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK) | \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIG) |                                      \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) |                              \
	 VIRTIO_BIT(VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS))

struct loop;
struct loop_source;
struct vhost_conn;

struct vhost_queue {
	struct vhost_conn *c;
	unsigned int idx;
	/* What the front end set up (SET_VRING_*). */
	uint32_t num;			/* 0: not yet */
	bool has_addr;
	uint64_t desc_ua, avail_ua, used_ua;
	uint16_t base;			/* next available index: SET_VRING_BASE, or where we stopped */
	bool kicked;			/* a kick fd came: the ring may start */
	bool enabled;
	int kick_fd, call_fd, err_fd;
	struct loop_source *kick_src;
	/* While the device runs with this ring. */
	bool live;
	const uint16_t *used_idx_p;	/* used->idx in guest memory (our mapping) */
	const struct virtq_used_elem *used_ring;
	uint16_t signalled;		/* used index at the last call signal */
	struct vhost_inflight_queue *inflight;	/* its part of the inflight region, or NULL */
};

struct vhost_conn {
	char *name;
	const char *req;		/* the message being handled, for log lines */
	struct loop *loop;
	struct vblk_dev *vblk;
	struct virtio_dev *vdev;
	struct virtio_transport t;
	unsigned int num_queues;
	uint64_t offered;		/* GET_FEATURES: the device's and PROTOCOL_FEATURES */
	uint64_t features;		/* SET_FEATURES */
	bool features_set;
	uint64_t protocol;		/* SET_PROTOCOL_FEATURES */
	struct vhost_mem mem;
	struct vhost_queue q[VBLK_MAX_QUEUES];
	bool running;			/* the device serves the rings */
	bool stopping;			/* waiting for requests in flight before a change */
	bool busy_polling;		/* vhost_conn_busy_poll_begin() .. _end() on the device */
	struct vblk_state blk_state;	/* kept across stops (the driver's writeback choice) */
	struct virtio_dev_state *st;	/* scratch for save/restore */
	size_t st_size;
	/* The inflight region (INFLIGHT_SHMFD), the front end's to keep across our restarts. */
	int inflight_fd;
	void *inflight_map;
	size_t inflight_size;
	unsigned int inflight_nq, inflight_qsize;
	uint64_t counter;		/* order in which heads were taken */
	uint64_t resubmitted;
	uint8_t mark[VHOST_QUEUE_MAX];	/* scratch: heads in flight now */
	struct log_ratelimit rl;
};

/* GET_INFLIGHT_FD / SET_INFLIGHT_FD.  As the other message handlers (vhost-conn.c). */
int vhost_inflight_msg(struct vhost_conn *c, const struct vhost_user_msg *m, int *fds,
		       unsigned int nfds, struct vhost_user_msg *rep);
/*
 * Queue @q (rings laid out in @qs) starts: its positions and heads in flight
 * from its inflight region (or SET_VRING_BASE without one) into @qs->ring and
 * @heads (room for num), their count in *@ret_n.  -errno refuses (logged).
 */
int vhost_inflight_resume(struct vhost_conn *c, struct vhost_queue *q,
			  struct virtio_queue_state *qs, struct vq_inflight *heads,
			  unsigned int *ret_n);
/* Bring @q's region up to date with the device's heads in flight (@st, just saved). */
void vhost_inflight_sync(struct vhost_conn *c, struct vhost_queue *q,
			 const struct virtio_dev_state *st);
void vhost_inflight_unmap(struct vhost_conn *c);

#endif
