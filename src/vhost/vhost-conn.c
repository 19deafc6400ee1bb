// SPDX-License-Identifier: GPL-2.0-only
/* One vhost-user front end: its messages checked and decoded into a virtio-blk device (virtio-dev.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "vblk.h"
#include "vhost-conn-internal.h"
#include "vhost-mem.h"
#include "vhost.h"
#include "virtio-dev.h"

static void conn_sync(struct vhost_conn *c);

/* ---- the transport seam: lookups in the mapped regions, call eventfds ---- */

static int conn_map(void *opaque, uint64_t gpa, uint64_t len, bool write, void **ret_ptr)
{
	struct vhost_conn *c = opaque;
	void *p = vhost_mem_gpa(&c->mem, gpa, len);

	if (!p)
		return -EFAULT;
	*ret_ptr = p;
	return 0;
}

/* Regions stay mapped for the connection's life: nothing to release per request. */
static void conn_unmap(void *opaque, void *ptr, uint64_t len)
{
}

static uint16_t conn_used_idx(const struct vhost_queue *q)
{
	/* The device's own store (vq_publish()); read back to learn which queue moved. */
	return le16toh(__atomic_load_n(q->used_idx_p, __ATOMIC_RELAXED));
}

/*
 * The device raised its interrupt: vhost-user has one call eventfd per
 * queue, so signal those whose used index moved since their last signal
 * (the device has already decided, with EVENT_IDX or NO_INTERRUPT, that the
 * driver wants one).  A config change has no channel here (no back-end
 * request channel is offered).
 */
static void conn_notify(void *opaque)
{
	struct vhost_conn *c = opaque;
	static const uint64_t one = 1;

	for (unsigned int i = 0; i < c->num_queues; i++) {
		struct vhost_queue *q = &c->q[i];
		uint16_t idx;

		if (!q->live)
			continue;
		idx = conn_used_idx(q);
		if (idx == q->signalled)
			continue;
		q->signalled = idx;
		if (q->call_fd >= 0 && write(q->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_ratelimited(&c->rl, LOG_LEVEL_WARNING, "%s: queue %u: cannot signal "
					"the call eventfd: %m", c->name, i);
	}
}

static const struct virtio_transport_ops conn_transport_ops = {
	.map = conn_map,
	.unmap = conn_unmap,
	.notify = conn_notify,
};

/* ---- names and logging ---- */

static const char *conn_req_name(uint32_t req)
{
	static const char *const names[] = {
		[VHOST_USER_GET_FEATURES] = "GET_FEATURES",
		[VHOST_USER_SET_FEATURES] = "SET_FEATURES",
		[VHOST_USER_SET_OWNER] = "SET_OWNER",
		[VHOST_USER_RESET_OWNER] = "RESET_OWNER",
		[VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
		[VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
		[VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
		[VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
		[VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
		[VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
		[VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
		[VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
		[VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
		[VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
		[VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
		[VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
		[VHOST_USER_GET_CONFIG] = "GET_CONFIG",
		[VHOST_USER_SET_CONFIG] = "SET_CONFIG",
		[VHOST_USER_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
		[VHOST_USER_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
		[VHOST_USER_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
		[VHOST_USER_ADD_MEM_REG] = "ADD_MEM_REG",
		[VHOST_USER_REM_MEM_REG] = "REM_MEM_REG",
	};

	return req < sizeof(names) / sizeof(names[0]) && names[req] ? names[req] : NULL;
}

/* A refused message: one log line naming it and why; the front end is dropped by the caller. */
static int conn_refuse(struct vhost_conn *c, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int conn_refuse(struct vhost_conn *c, int err, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn("%s: %s refused: %s; dropping the front end", c->name, c->req, why);
	return err;
}

/* ---- creation ---- */

int vhost_conn_new(const struct vhost_conn_params *p, struct vhost_conn **ret_conn)
{
	struct vhost_conn *c = calloc(1, sizeof(*c));
	struct vblk_config vc = { 0 };
	int r = -ENOMEM;

	if (!c)
		return -ENOMEM;
	c->rl = (struct log_ratelimit)LOG_RATELIMIT_GUEST;
	c->loop = p->loop;
	c->num_queues = p->num_queues;
	c->inflight_fd = -1;
	c->req = "?";
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++) {
		c->q[i] = (struct vhost_queue){ .c = c, .idx = i, .kick_fd = -1, .call_fd = -1,
						.err_fd = -1 };
	}
	c->name = strdup(p->name);
	c->st_size = sizeof(*c->st) + (size_t)p->num_queues * VHOST_QUEUE_MAX * sizeof(c->st->inflight[0]);
	c->st = calloc(1, c->st_size);
	if (!c->name || !c->st)
		goto err;
	c->t.ops = &conn_transport_ops;
	c->t.opaque = c;
	vc.name = p->name;
	vc.info = p->info;
	vc.num_queues = p->num_queues;
	vc.queue_num_max = VHOST_QUEUE_MAX;
	/* Only the split layout of the inflight region is kept (see the README, vblkd(8)). */
	vc.disable_features = VIRTIO_BIT(VIRTIO_F_RING_PACKED);
	r = vblk_create(&vc, &c->t, p->be_ops, p->be, &c->vblk);
	if (r < 0)
		goto err;
	c->vdev = vblk_virtio_dev(c->vblk);
	c->offered = virtio_dev_offered(c->vdev) | VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	vblk_save(c->vblk, &c->blk_state);
	*ret_conn = c;
	return 0;

err:
	vhost_conn_free(c);
	return r;
}

/* ---- the device: started from the rings the front end set up, stopped when it asks ---- */

static void conn_kick(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct vhost_queue *q = data;
	struct vhost_conn *c = q->c;
	uint64_t v;

	/* Reading resets the eventfd's count; EAGAIN only means someone read it first. */
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_ratelimited(&c->rl, LOG_LEVEL_WARNING, "%s: queue %u: kick eventfd: %m",
				c->name, q->idx);
	/* A device that is stopping takes nothing new; starting again looks at every ring. */
	if (!c->running || c->stopping || !q->live)
		return;
	virtio_dev_queue_notify(c->vdev, q->idx);
	conn_sync(c);
}

static void queue_drop_kick(struct vhost_queue *q)
{
	loop_remove(q->kick_src);
	q->kick_src = NULL;
	if (q->kick_fd >= 0)
		close(q->kick_fd);
	q->kick_fd = -1;
	q->kicked = false;
}

static void queue_set_fd(int *slot, int fd)
{
	if (*slot >= 0)
		close(*slot);
	*slot = fd;
}

/* Every queue the front end gave rings to is ready to go: the device can start with them. */
static bool conn_ready(const struct vhost_conn *c)
{
	bool any = false, need_enable = c->features & VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES);

	if (c->running || !c->features_set || !c->mem.n)
		return false;
	for (unsigned int i = 0; i < c->num_queues; i++) {
		const struct vhost_queue *q = &c->q[i];

		if (!q->has_addr)
			continue;
		if (!q->num || !q->kicked || (need_enable && !q->enabled))
			return false;
		any = true;
	}
	return any;
}

/* Ring sizes (§2.7): descriptor table, available ring (with used_event), used ring (with avail_event). */
static uint64_t ring_desc_len(uint32_t num) { return 16ull * num; }
static uint64_t ring_avail_len(uint32_t num) { return 6 + 2ull * num; }
static uint64_t ring_used_len(uint32_t num) { return 6 + 8ull * num; }

/* The front end's user addresses of a queue's rings as guest addresses; -EFAULT names the ring. */
static int queue_layout(struct vhost_conn *c, struct vhost_queue *q, struct virtio_queue_state *qs)
{
	if (vhost_mem_ua_to_gpa(&c->mem, q->desc_ua, ring_desc_len(q->num), &qs->desc) < 0)
		return conn_refuse(c, -EFAULT, "queue %u: its descriptor table at 0x%llx lies outside "
				   "the memory regions", q->idx, (unsigned long long)q->desc_ua);
	if (vhost_mem_ua_to_gpa(&c->mem, q->avail_ua, ring_avail_len(q->num), &qs->driver) < 0)
		return conn_refuse(c, -EFAULT, "queue %u: its available ring at 0x%llx lies outside "
				   "the memory regions", q->idx, (unsigned long long)q->avail_ua);
	if (vhost_mem_ua_to_gpa(&c->mem, q->used_ua, ring_used_len(q->num), &qs->device) < 0)
		return conn_refuse(c, -EFAULT, "queue %u: its used ring at 0x%llx lies outside "
				   "the memory regions", q->idx, (unsigned long long)q->used_ua);
	q->used_idx_p = vhost_mem_gpa(&c->mem, qs->device + 2, 2);
	q->used_ring = vhost_mem_gpa(&c->mem, qs->device + 4, 8ull * q->num);
	qs->num = q->num;
	qs->enabled = 1;
	qs->live = 1;
	return 0;
}

/* Start the device from the rings: positions from SET_VRING_BASE or the inflight region. */
static int conn_start(struct vhost_conn *c)
{
	struct virtio_dev_state *st = c->st;
	unsigned int n = 0, k;
	int r;

	memset(st, 0, c->st_size);
	st->version = VIRTIO_DEV_STATE_VERSION;
	st->features = c->features & ~VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES);
	st->driver_features = st->features;
	st->features_latched = 1;
	st->status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		     VIRTIO_STATUS_DRIVER_OK;
	st->num_queues = c->num_queues;
	for (unsigned int i = 0; i < c->num_queues; i++) {
		struct vhost_queue *q = &c->q[i];
		struct virtio_queue_state *qs = &st->queues[i];

		if (!q->has_addr)
			continue;
		r = queue_layout(c, q, qs);
		if (r == 0)
			r = vhost_inflight_resume(c, q, qs, &st->inflight[n], &k);
		if (r < 0)
			return r;
		qs->first_inflight = n;
		qs->ninflight = k;
		n += k;
	}
	st->ninflight = n;
	st->size = (uint32_t)(sizeof(*st) + n * sizeof(st->inflight[0]));
	for (unsigned int i = 0; i < c->num_queues; i++) {
		c->q[i].live = c->q[i].has_addr;
		c->q[i].signalled = c->q[i].live ? conn_used_idx(&c->q[i]) : 0;
	}
	c->running = true;
	/* Requests in flight are taken again and every ring is looked at once. */
	r = vblk_restore(c->vblk, &c->blk_state, st, st->size);
	if (r < 0) {
		c->running = false;
		for (unsigned int i = 0; i < c->num_queues; i++)
			c->q[i].live = false;
		return conn_refuse(c, r, "the device refused the rings it was given: %s",
				   strerror(-r));
	}
	c->resubmitted += n;
	conn_sync(c);
	log_info("%s: device started (%u queue%s, features 0x%llx%s)", c->name,
		 virtio_dev_num_queues(c->vdev), c->num_queues == 1 ? "" : "s",
		 (unsigned long long)st->features, n ? ", requests in flight taken again" : "");
	return 0;
}

/* Nothing is in flight: remember the positions, reset the device. */
static void conn_stop(struct vhost_conn *c)
{
	if (virtio_dev_save(c->vdev, c->st, c->st_size) == 0) {
		for (unsigned int i = 0; i < c->num_queues; i++)
			if (c->st->queues[i].live)
				c->q[i].base = c->st->queues[i].ring.last_avail;
	}
	conn_sync(c);
	vblk_save(c->vblk, &c->blk_state);
	virtio_dev_set_status(c->vdev, 0);
	/*
	 * A polling spell ends with the device (after the reset, so that it
	 * takes nothing): left on, the device would never ask for kicks again
	 * once started (vblk_busy_poll_end()).
	 */
	if (c->busy_polling) {
		c->busy_polling = false;
		vblk_busy_poll_end(c->vblk);
	}
	for (unsigned int i = 0; i < c->num_queues; i++) {
		c->q[i].live = false;
		c->q[i].used_idx_p = NULL;
		c->q[i].used_ring = NULL;
	}
	c->running = false;
	c->stopping = false;
	log_debug("%s: device stopped", c->name);
}

/*
 * Before the rings or memory change under a running device, its requests in
 * flight finish (vhost-user.rst: the back end completes them before a ring
 * is stopped): 0 once stopped, -EINPROGRESS while they run.
 */
static int conn_quiesce(struct vhost_conn *c)
{
	if (!c->running)
		return 0;
	c->stopping = true;
	if (!vhost_conn_quiet(c))
		return -EINPROGRESS;
	conn_stop(c);
	return 0;
}

bool vhost_conn_quiet(const struct vhost_conn *c)
{
	struct vblk_stats s;

	vblk_get_stats(c->vblk, &s);
	return s.in_flight == 0 && !vblk_draining(c->vblk);
}

/* ---- the inflight region kept current after every pass over the rings ---- */

static void conn_sync(struct vhost_conn *c)
{
	if (!c->running || !c->inflight_map)
		return;
	/* -EBUSY: entries pushed and not yet published; the publish is followed by another sync. */
	if (virtio_dev_save(c->vdev, c->st, c->st_size) < 0)
		return;
	for (unsigned int i = 0; i < c->num_queues; i++)
		if (c->q[i].live && c->q[i].inflight)
			vhost_inflight_sync(c, &c->q[i], c->st);
}

void vhost_conn_complete(struct vhost_conn *c)
{
	/* One used-index update per queue and at most one interrupt for the batch. */
	vblk_complete_batch(c->vblk);
	conn_sync(c);
}

void vhost_conn_timer(struct vhost_conn *c)
{
	vblk_timer_expired(c->vblk);
	conn_sync(c);
}

void vhost_conn_busy_poll_begin(struct vhost_conn *c)
{
	/* As conn_kick(): a device that is stopping takes nothing new. */
	if (!c->running || c->stopping)
		return;
	c->busy_polling = true;
	vblk_busy_poll_begin(c->vblk);
}

bool vhost_conn_busy_poll(struct vhost_conn *c)
{
	if (!c->busy_polling || !c->running || c->stopping || !vblk_busy_poll(c->vblk))
		return false;
	conn_sync(c);
	return true;
}

bool vhost_conn_busy_poll_end(struct vhost_conn *c)
{
	bool took;

	/* A device stopped meanwhile asks for kicks by itself when it starts again. */
	if (!c->busy_polling)
		return false;
	c->busy_polling = false;
	if (!c->running)
		return false;
	took = vblk_busy_poll_end(c->vblk);
	if (took)
		conn_sync(c);
	return took;
}

bool vhost_conn_running(const struct vhost_conn *c)
{
	return c->running;
}

uint64_t vhost_conn_features(const struct vhost_conn *c)
{
	return c->running ? virtio_dev_features(c->vdev) : 0;
}

uint64_t vhost_conn_resubmitted(const struct vhost_conn *c)
{
	return c->resubmitted;
}

void vhost_conn_get_stats(const struct vhost_conn *c, struct vblk_stats *ret_stats)
{
	vblk_get_stats(c->vblk, ret_stats);
}

/* ---- messages ---- */

static void reply_u64(struct vhost_user_msg *rep, uint64_t v)
{
	rep->hdr.size = sizeof(rep->u64);
	rep->u64 = v;
}

static int conn_queue_index(struct vhost_conn *c, uint32_t idx)
{
	if (idx >= c->num_queues)
		return conn_refuse(c, -EINVAL, "queue %u does not exist (%u queue%s)", idx,
				   c->num_queues, c->num_queues == 1 ? "" : "s");
	return 0;
}

static int msg_set_features(struct vhost_conn *c, const struct vhost_user_msg *m)
{
	uint64_t f = m->u64;
	int r;

	if (f & ~c->offered)
		return conn_refuse(c, -EINVAL, "feature bits 0x%llx were not offered",
				   (unsigned long long)(f & ~c->offered));
	r = conn_quiesce(c);
	if (r < 0)
		return r;
	c->features = f;
	c->features_set = true;
	return 0;
}

static int msg_set_protocol_features(struct vhost_conn *c, const struct vhost_user_msg *m)
{
	if (m->u64 & ~VHOST_CONN_PROTOCOL_FEATURES)
		return conn_refuse(c, -EINVAL, "protocol feature bits 0x%llx were not offered",
				   (unsigned long long)(m->u64 & ~VHOST_CONN_PROTOCOL_FEATURES));
	c->protocol = m->u64;
	return 0;
}

static int conn_add_region(struct vhost_conn *c, const struct vhost_user_region *reg, int fd,
			   unsigned int n)
{
	const char *why = NULL;
	int r = vhost_mem_add(&c->mem, reg->gpa, reg->size, reg->ua, reg->mmap_offset, fd, &why);

	if (r < 0)
		return conn_refuse(c, r, "region %u (guest 0x%llx, %llu bytes, offset %llu): %s", n,
				   (unsigned long long)reg->gpa, (unsigned long long)reg->size,
				   (unsigned long long)reg->mmap_offset, why ? why : strerror(-r));
	return 0;
}

static int msg_set_mem_table(struct vhost_conn *c, const struct vhost_user_msg *m, int *fds,
			     unsigned int nfds)
{
	uint32_t n = m->mem.nregions;
	int r;

	if (n < 1 || n > VHOST_USER_MEM_TABLE_MAX)
		return conn_refuse(c, -EINVAL, "%u regions (1 to %u)", n, VHOST_USER_MEM_TABLE_MAX);
	if (m->hdr.size != 8 + n * sizeof(struct vhost_user_region))
		return conn_refuse(c, -EINVAL, "%u bytes for %u regions", m->hdr.size, n);
	if (nfds != n)
		return conn_refuse(c, -EINVAL, "%u fds for %u regions", nfds, n);
	r = conn_quiesce(c);
	if (r < 0)
		return r;
	vhost_mem_clear(&c->mem);
	for (unsigned int i = 0; i < n; i++) {
		r = conn_add_region(c, &m->mem.regions[i], fds[i], i);
		if (r < 0) {
			vhost_mem_clear(&c->mem);
			return r;
		}
	}
	return 0;
}

static int msg_mem_reg(struct vhost_conn *c, const struct vhost_user_msg *m, int *fds,
		       unsigned int nfds)
{
	const struct vhost_user_region *reg = &m->reg.region;
	int r;

	if (m->hdr.request == VHOST_USER_ADD_MEM_REG && nfds != 1)
		return conn_refuse(c, -EINVAL, "%u fds, not 1", nfds);
	r = conn_quiesce(c);
	if (r < 0)
		return r;
	if (m->hdr.request == VHOST_USER_ADD_MEM_REG)
		return conn_add_region(c, reg, fds[0], c->mem.n);
	if (vhost_mem_remove(&c->mem, reg->gpa, reg->size, reg->ua) < 0)
		return conn_refuse(c, -ENOENT, "no region at guest 0x%llx of %llu bytes",
				   (unsigned long long)reg->gpa, (unsigned long long)reg->size);
	return 0;
}

static int msg_set_vring_num(struct vhost_conn *c, const struct vhost_user_msg *m)
{
	uint32_t num = m->state.num;
	int r = conn_queue_index(c, m->state.index);

	if (r < 0)
		return r;
	/* §2.7: a split queue's size is a power of two. */
	if (!num || num > VHOST_QUEUE_MAX || (num & (num - 1)))
		return conn_refuse(c, -EINVAL, "queue %u: size %u (a power of two up to %u)",
				   m->state.index, num, VHOST_QUEUE_MAX);
	r = conn_quiesce(c);
	if (r < 0)
		return r;
	c->q[m->state.index].num = num;
	return 0;
}

static int msg_set_vring_addr(struct vhost_conn *c, const struct vhost_user_msg *m)
{
	const struct vhost_user_addr *a = &m->addr;
	uint64_t gpa, len;
	struct vhost_queue *q;
	int r = conn_queue_index(c, a->index);

	if (r < 0)
		return r;
	q = &c->q[a->index];
	if (a->flags)
		return conn_refuse(c, -EINVAL, "queue %u: flags 0x%x (dirty logging was not offered)",
				   a->index, a->flags);
	/* Checked now when the memory is known; again when the device starts. */
	len = q->num ? q->num : 1;
	if (c->mem.n && (vhost_mem_ua_to_gpa(&c->mem, a->desc, ring_desc_len((uint32_t)len), &gpa) < 0 ||
			 vhost_mem_ua_to_gpa(&c->mem, a->avail, ring_avail_len((uint32_t)len), &gpa) < 0 ||
			 vhost_mem_ua_to_gpa(&c->mem, a->used, ring_used_len((uint32_t)len), &gpa) < 0))
		return conn_refuse(c, -EFAULT, "queue %u: a ring lies outside the memory regions "
				   "(desc 0x%llx avail 0x%llx used 0x%llx)", a->index,
				   (unsigned long long)a->desc, (unsigned long long)a->avail,
				   (unsigned long long)a->used);
	r = conn_quiesce(c);
	if (r < 0)
		return r;
	q->desc_ua = a->desc;
	q->avail_ua = a->avail;
	q->used_ua = a->used;
	q->has_addr = true;
	return 0;
}

static int msg_set_vring_base(struct vhost_conn *c, const struct vhost_user_msg *m)
{
	int r = conn_queue_index(c, m->state.index);

	if (r < 0)
		return r;
	if (m->state.num > 0xffff)
		return conn_refuse(c, -EINVAL, "queue %u: index %u is beyond 16 bits",
				   m->state.index, m->state.num);
	r = conn_quiesce(c);
	if (r < 0)
		return r;
	c->q[m->state.index].base = (uint16_t)m->state.num;
	return 0;
}

static int msg_get_vring_base(struct vhost_conn *c, const struct vhost_user_msg *m,
			      struct vhost_user_msg *rep)
{
	struct vhost_queue *q;
	int r = conn_queue_index(c, m->state.index);

	if (r < 0)
		return r;
	r = conn_quiesce(c);
	if (r < 0)
		return r;
	q = &c->q[m->state.index];
	/* The ring is stopped: it starts again with a new kick fd. */
	queue_drop_kick(q);
	queue_set_fd(&q->call_fd, -1);
	rep->hdr.size = sizeof(rep->state);
	rep->state.index = m->state.index;
	rep->state.num = q->base;
	return 0;
}

static int queue_watch_kick(struct vhost_conn *c, struct vhost_queue *q, int fd)
{
	int r = loop_add_fd(c->loop, fd, EPOLLIN, conn_kick, q, &q->kick_src);

	if (r < 0)
		return conn_refuse(c, r, "queue %u: cannot watch its kick fd: %s", q->idx,
				   strerror(-r));
	q->kick_fd = fd;
	q->kicked = true;
	return 0;
}

/* SET_VRING_KICK/CALL/ERR: the index, and the "no fd" flag that must match what came. */
static int msg_vring_fd(struct vhost_conn *c, const struct vhost_user_msg *m, unsigned int nfds,
			struct vhost_queue **ret_q, bool *ret_nofd)
{
	uint64_t v = m->u64;
	bool nofd = v & VHOST_USER_VRING_NOFD;
	int r;

	if (v & ~(uint64_t)(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD))
		return conn_refuse(c, -EINVAL, "reserved bits set in 0x%llx", (unsigned long long)v);
	r = conn_queue_index(c, (uint32_t)(v & VHOST_USER_VRING_IDX_MASK));
	if (r < 0)
		return r;
	if (nofd != (nfds == 0))
		return conn_refuse(c, -EINVAL, "%u fds with the no-fd flag %s", nfds,
				   nofd ? "set" : "clear");
	*ret_q = &c->q[v & VHOST_USER_VRING_IDX_MASK];
	*ret_nofd = nofd;
	return 0;
}

static int msg_set_vring_kick(struct vhost_conn *c, const struct vhost_user_msg *m, int *fds,
			      unsigned int nfds)
{
	struct vhost_queue *q;
	bool nofd;
	int r = msg_vring_fd(c, m, nfds, &q, &nofd);

	if (r < 0)
		return r;
	if (nofd)
		return conn_refuse(c, -EOPNOTSUPP, "queue %u: polled rings (no kick fd) are not "
				   "supported", q->idx);
	/* A live ring only changes its fd; a new one changes what the device is made of. */
	if (!q->live) {
		r = conn_quiesce(c);
		if (r < 0)
			return r;
	}
	queue_drop_kick(q);
	r = queue_watch_kick(c, q, fds[0]);
	if (r < 0)
		return r;
	fds[0] = -1;
	return 0;
}

static int msg_set_vring_call_err(struct vhost_conn *c, const struct vhost_user_msg *m, int *fds,
				  unsigned int nfds)
{
	struct vhost_queue *q;
	bool nofd;
	int r = msg_vring_fd(c, m, nfds, &q, &nofd);

	if (r < 0)
		return r;
	queue_set_fd(m->hdr.request == VHOST_USER_SET_VRING_CALL ? &q->call_fd : &q->err_fd,
		     nofd ? -1 : fds[0]);
	if (!nofd)
		fds[0] = -1;
	return 0;
}

static int msg_set_vring_enable(struct vhost_conn *c, const struct vhost_user_msg *m)
{
	struct vhost_queue *q;
	int r = conn_queue_index(c, m->state.index);

	if (r < 0)
		return r;
	if (m->state.num > 1)
		return conn_refuse(c, -EINVAL, "queue %u: %u is neither 0 nor 1", m->state.index,
				   m->state.num);
	q = &c->q[m->state.index];
	if (q->enabled == (m->state.num == 1))
		return 0;
	r = conn_quiesce(c);
	if (r < 0)
		return r;
	q->enabled = m->state.num == 1;
	return 0;
}

/* GET_CONFIG / SET_CONFIG: a byte range of the config space (§5.2.4), inside 256 bytes. */
static int msg_config_range(struct vhost_conn *c, const struct vhost_user_msg *m)
{
	const struct vhost_user_config *cf = &m->config;

	if (cf->size != m->hdr.size - VHOST_USER_CONFIG_HDR)
		return conn_refuse(c, -EINVAL, "%u bytes of config in a %u-byte message", cf->size,
				   m->hdr.size);
	if (cf->offset > sizeof(cf->data) || cf->size > sizeof(cf->data) - cf->offset)
		return conn_refuse(c, -EINVAL, "bytes %u..+%u are beyond the config space",
				   cf->offset, cf->size);
	if (cf->flags > 1)
		return conn_refuse(c, -EINVAL, "flags 0x%x", cf->flags);
	return 0;
}

static int msg_get_config(struct vhost_conn *c, const struct vhost_user_msg *m,
			  struct vhost_user_msg *rep)
{
	int r = msg_config_range(c, m);

	if (r < 0)
		return r;
	rep->hdr.size = m->hdr.size;
	rep->config.offset = m->config.offset;
	rep->config.size = m->config.size;
	rep->config.flags = m->config.flags;
	for (uint32_t i = 0; i < m->config.size; i++) {
		uint64_t v = 0;

		/* Bytes past the device's config space read as 0. */
		virtio_dev_config_read(c->vdev, m->config.offset + i, 1, &v);
		rep->config.data[i] = (uint8_t)v;
	}
	return 0;
}

static int msg_set_config(struct vhost_conn *c, const struct vhost_user_msg *m)
{
	int r = msg_config_range(c, m);

	if (r < 0)
		return r;
	for (uint32_t i = 0; i < m->config.size; i++)
		if (virtio_dev_config_write(c->vdev, m->config.offset + i, 1, m->config.data[i]) < 0)
			log_debug("%s: SET_CONFIG: byte %u not written", c->name,
				  m->config.offset + i);
	return 0;
}

static const struct {
	uint32_t size_min, size_max;
	uint8_t fds_min, fds_max;
} conn_msg_shape[] = {
	[VHOST_USER_GET_FEATURES] = { 0, 0, 0, 0 },
	[VHOST_USER_SET_FEATURES] = { 8, 8, 0, 0 },
	[VHOST_USER_SET_OWNER] = { 0, 0, 0, 0 },
	[VHOST_USER_SET_MEM_TABLE] = { 8, sizeof(struct vhost_user_mem_table), 1, VHOST_USER_MAX_FDS },
	[VHOST_USER_SET_VRING_NUM] = { 8, 8, 0, 0 },
	[VHOST_USER_SET_VRING_ADDR] = { 40, 40, 0, 0 },
	[VHOST_USER_SET_VRING_BASE] = { 8, 8, 0, 0 },
	[VHOST_USER_GET_VRING_BASE] = { 8, 8, 0, 0 },
	[VHOST_USER_SET_VRING_KICK] = { 8, 8, 0, 1 },
	[VHOST_USER_SET_VRING_CALL] = { 8, 8, 0, 1 },
	[VHOST_USER_SET_VRING_ERR] = { 8, 8, 0, 1 },
	[VHOST_USER_GET_PROTOCOL_FEATURES] = { 0, 0, 0, 0 },
	[VHOST_USER_SET_PROTOCOL_FEATURES] = { 8, 8, 0, 0 },
	[VHOST_USER_GET_QUEUE_NUM] = { 0, 0, 0, 0 },
	[VHOST_USER_SET_VRING_ENABLE] = { 8, 8, 0, 0 },
	[VHOST_USER_GET_CONFIG] = { VHOST_USER_CONFIG_HDR, sizeof(struct vhost_user_config), 0, 0 },
	[VHOST_USER_SET_CONFIG] = { VHOST_USER_CONFIG_HDR, sizeof(struct vhost_user_config), 0, 0 },
	[VHOST_USER_GET_INFLIGHT_FD] = { 20, 24, 0, 0 },
	[VHOST_USER_SET_INFLIGHT_FD] = { 20, 24, 1, 1 },
	[VHOST_USER_GET_MAX_MEM_SLOTS] = { 0, 0, 0, 0 },
	[VHOST_USER_ADD_MEM_REG] = { 40, 40, 1, 1 },
	[VHOST_USER_REM_MEM_REG] = { 40, 40, 0, 1 },
};

/* The header, the payload size and the fd count of a message, before anything reads its payload. */
static int conn_check_shape(struct vhost_conn *c, const struct vhost_user_msg *m, size_t len,
			    unsigned int nfds)
{
	uint32_t req = m->hdr.request;

	c->req = conn_req_name(req);
	if (!c->req) {
		c->req = "a message";
		return conn_refuse(c, -EOPNOTSUPP, "request %u is not supported", req);
	}
	if ((m->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION ||
	    (m->hdr.flags & ~(VHOST_USER_VERSION_MASK | VHOST_USER_NEED_REPLY)))
		return conn_refuse(c, -EINVAL, "header flags 0x%x", m->hdr.flags);
	if (m->hdr.size != len - sizeof(m->hdr))
		return conn_refuse(c, -EINVAL, "the header says %u payload bytes, %zu came",
				   m->hdr.size, len - sizeof(m->hdr));
	if (req == VHOST_USER_RESET_OWNER)
		return conn_refuse(c, -EOPNOTSUPP, "not supported (deprecated)");
	if (m->hdr.size < conn_msg_shape[req].size_min || m->hdr.size > conn_msg_shape[req].size_max)
		return conn_refuse(c, -EINVAL, "%u payload bytes (%u to %u)", m->hdr.size,
				   conn_msg_shape[req].size_min, conn_msg_shape[req].size_max);
	if (nfds < conn_msg_shape[req].fds_min || nfds > conn_msg_shape[req].fds_max)
		return conn_refuse(c, -EINVAL, "%u fds (%u to %u)", nfds, conn_msg_shape[req].fds_min,
				   conn_msg_shape[req].fds_max);
	return 0;
}

static int conn_dispatch(struct vhost_conn *c, const struct vhost_user_msg *m, int *fds,
			 unsigned int nfds, struct vhost_user_msg *rep)
{
	switch ((enum vhost_req)m->hdr.request) {
	case VHOST_USER_GET_FEATURES:
		reply_u64(rep, c->offered);
		return 0;
	case VHOST_USER_SET_FEATURES:
		return msg_set_features(c, m);
	case VHOST_USER_SET_OWNER:
		return 0;
	case VHOST_USER_RESET_OWNER:
		return -EOPNOTSUPP;
	case VHOST_USER_SET_MEM_TABLE:
		return msg_set_mem_table(c, m, fds, nfds);
	case VHOST_USER_SET_VRING_NUM:
		return msg_set_vring_num(c, m);
	case VHOST_USER_SET_VRING_ADDR:
		return msg_set_vring_addr(c, m);
	case VHOST_USER_SET_VRING_BASE:
		return msg_set_vring_base(c, m);
	case VHOST_USER_GET_VRING_BASE:
		return msg_get_vring_base(c, m, rep);
	case VHOST_USER_SET_VRING_KICK:
		return msg_set_vring_kick(c, m, fds, nfds);
	case VHOST_USER_SET_VRING_CALL:
	case VHOST_USER_SET_VRING_ERR:
		return msg_set_vring_call_err(c, m, fds, nfds);
	case VHOST_USER_GET_PROTOCOL_FEATURES:
		reply_u64(rep, VHOST_CONN_PROTOCOL_FEATURES);
		return 0;
	case VHOST_USER_SET_PROTOCOL_FEATURES:
		return msg_set_protocol_features(c, m);
	case VHOST_USER_GET_QUEUE_NUM:
		reply_u64(rep, c->num_queues);
		return 0;
	case VHOST_USER_SET_VRING_ENABLE:
		return msg_set_vring_enable(c, m);
	case VHOST_USER_GET_CONFIG:
		return msg_get_config(c, m, rep);
	case VHOST_USER_SET_CONFIG:
		return msg_set_config(c, m);
	case VHOST_USER_GET_INFLIGHT_FD:
	case VHOST_USER_SET_INFLIGHT_FD:
		return vhost_inflight_msg(c, m, fds, nfds, rep);
	case VHOST_USER_GET_MAX_MEM_SLOTS:
		reply_u64(rep, VHOST_MEM_MAX_REGIONS);
		return 0;
	case VHOST_USER_ADD_MEM_REG:
	case VHOST_USER_REM_MEM_REG:
		return msg_mem_reg(c, m, fds, nfds);
	}
	return -EOPNOTSUPP;
}

int vhost_conn_handle(struct vhost_conn *c, const void *msg, size_t len, int *fds,
		      unsigned int nfds, void *reply, size_t *ret_reply_len, int *ret_reply_fd)
{
	struct vhost_user_msg m = { 0 }, *rep = reply;
	int r;

	*ret_reply_len = 0;
	*ret_reply_fd = -1;
	if (len < sizeof(m.hdr) || len > sizeof(m)) {
		c->req = "a message";
		r = conn_refuse(c, -EINVAL, "%zu bytes", len);
		goto out;
	}
	/* A copy, zero-filled: a short payload reads as zeroes, never as old bytes. */
	memcpy(&m, msg, len);
	r = conn_check_shape(c, &m, len, nfds);
	if (r < 0)
		goto out;
	log_debug("%s: %s (%u bytes, %u fds)", c->name, c->req, m.hdr.size, nfds);
	memset(rep, 0, sizeof(*rep));
	rep->hdr.request = m.hdr.request;
	rep->hdr.flags = VHOST_USER_VERSION | VHOST_USER_REPLY;
	r = conn_dispatch(c, &m, fds, nfds, rep);
	if (r == -EINPROGRESS)
		return r;
	if (r == 0 && (rep->hdr.size || rep->hdr.request == VHOST_USER_GET_INFLIGHT_FD)) {
		*ret_reply_len = sizeof(rep->hdr) + rep->hdr.size;
		*ret_reply_fd = rep->hdr.request == VHOST_USER_GET_INFLIGHT_FD ? c->inflight_fd : -1;
	} else if (r == 0 && (m.hdr.flags & VHOST_USER_NEED_REPLY) &&
		   (c->protocol & VIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK))) {
		/* REPLY_ACK: 0 is success (failures drop the front end instead). */
		reply_u64(rep, 0);
		*ret_reply_len = sizeof(rep->hdr) + rep->hdr.size;
	}
	if (r == 0 && !c->running && conn_ready(c))
		r = conn_start(c);
out:
	for (unsigned int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return r;
}

/* ---- teardown ---- */

void vhost_conn_close(struct vhost_conn *c)
{
	if (!c)
		return;
	/* Requests in flight become orphans: they finish into memory that stays mapped. */
	vblk_destroy(c->vblk);
	c->vblk = NULL;
	c->running = false;
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++) {
		struct vhost_queue *q = &c->q[i];

		queue_drop_kick(q);
		queue_set_fd(&q->call_fd, -1);
		queue_set_fd(&q->err_fd, -1);
		q->live = false;
	}
	vhost_inflight_unmap(c);
}

void vhost_conn_free(struct vhost_conn *c)
{
	if (!c)
		return;
	vhost_conn_close(c);
	vhost_mem_clear(&c->mem);
	free(c->st);
	free(c->name);
	free(c);
}
