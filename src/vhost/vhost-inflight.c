// SPDX-License-Identifier: GPL-2.0-only
/* INFLIGHT_SHMFD: the split-queue inflight region of vhost-user.rst, kept from the device's saved state. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhost-conn-internal.h"
#include "vhost.h"

/* The region can never be larger than this (64 queues of 1024 entries take 1 MiB). */
#define INFLIGHT_SIZE_MAX (64ull << 20)

static size_t inflight_queue_bytes(unsigned int qsize)
{
	size_t n = sizeof(struct vhost_inflight_queue) + (size_t)qsize * sizeof(struct vhost_inflight_desc);

	return (n + VHOST_INFLIGHT_ALIGN - 1) & ~(size_t)(VHOST_INFLIGHT_ALIGN - 1);
}

void vhost_inflight_unmap(struct vhost_conn *c)
{
	if (c->inflight_map)
		munmap(c->inflight_map, c->inflight_size);
	if (c->inflight_fd >= 0)
		close(c->inflight_fd);
	c->inflight_map = NULL;
	c->inflight_size = 0;
	c->inflight_fd = -1;
	c->inflight_nq = 0;
	c->inflight_qsize = 0;
	for (unsigned int i = 0; i < VBLK_MAX_QUEUES; i++)
		c->q[i].inflight = NULL;
}

static int inflight_log(struct vhost_conn *c, int err, const char *why, unsigned int a,
			unsigned int b)
{
	log_warn("%s: %s refused: %s (%u, %u); dropping the front end", c->name, c->req, why, a, b);
	return err;
}

static int inflight_get(struct vhost_conn *c, const struct vhost_user_inflight *in,
			struct vhost_user_msg *rep)
{
	size_t size = in->num_queues * inflight_queue_bytes(in->queue_size);
	void *p;
	int fd;

	fd = memfd_create("vblkd-inflight", MFD_CLOEXEC);
	if (fd < 0)
		return inflight_log(c, -errno, "cannot create the region", in->num_queues,
				    in->queue_size);
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return inflight_log(c, -errno, "cannot size the region", in->num_queues,
				    in->queue_size);
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return inflight_log(c, -errno, "cannot map the region", in->num_queues,
				    in->queue_size);
	}
	vhost_inflight_unmap(c);
	c->inflight_fd = fd;
	c->inflight_map = p;
	c->inflight_size = size;
	c->inflight_nq = in->num_queues;
	c->inflight_qsize = in->queue_size;
	/* A fresh memfd reads as zeroes: every queue's version is 0, laid out when it starts. */
	rep->hdr.size = sizeof(rep->inflight);
	rep->inflight.mmap_size = size;
	rep->inflight.mmap_offset = 0;
	rep->inflight.num_queues = in->num_queues;
	rep->inflight.queue_size = in->queue_size;
	return 0;
}

static int inflight_set(struct vhost_conn *c, const struct vhost_user_inflight *in, int *fds)
{
	size_t need = in->num_queues * inflight_queue_bytes(in->queue_size);
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct stat sb;
	void *p;

	if (in->mmap_size < need || in->mmap_size > INFLIGHT_SIZE_MAX)
		return inflight_log(c, -EINVAL, "the region's size does not fit its queues",
				    (unsigned int)in->mmap_size, (unsigned int)need);
	if (in->mmap_offset & (page - 1))
		return inflight_log(c, -EINVAL, "the region's offset is not page-aligned",
				    (unsigned int)in->mmap_offset, (unsigned int)page);
	if (fstat(fds[0], &sb) < 0)
		return inflight_log(c, -errno, "cannot fstat the region's fd", 0, 0);
	if (sb.st_size < 0 || in->mmap_offset > (uint64_t)sb.st_size ||
	    in->mmap_size > (uint64_t)sb.st_size - in->mmap_offset)
		return inflight_log(c, -EINVAL, "the region ends beyond its file's size",
				    (unsigned int)in->mmap_size, (unsigned int)sb.st_size);
	p = mmap(NULL, (size_t)in->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0],
		 (off_t)in->mmap_offset);
	if (p == MAP_FAILED)
		return inflight_log(c, -errno, "cannot map the region", 0, 0);
	vhost_inflight_unmap(c);
	c->inflight_fd = fds[0];
	fds[0] = -1;
	c->inflight_map = p;
	c->inflight_size = (size_t)in->mmap_size;
	c->inflight_nq = in->num_queues;
	c->inflight_qsize = in->queue_size;
	return 0;
}

int vhost_inflight_msg(struct vhost_conn *c, const struct vhost_user_msg *m, int *fds,
		       unsigned int nfds, struct vhost_user_msg *rep)
{
	const struct vhost_user_inflight *in = &m->inflight;
	unsigned int qs = in->queue_size;

	if (in->num_queues < 1 || in->num_queues > c->num_queues)
		return inflight_log(c, -EINVAL, "queues in the region (of the device's)",
				    in->num_queues, c->num_queues);
	if (!qs || qs > VHOST_QUEUE_MAX || (qs & (qs - 1)))
		return inflight_log(c, -EINVAL, "queue size (a power of two up to)", qs,
				    VHOST_QUEUE_MAX);
	/* The device must not mark heads in a region that is going away. */
	if (c->running) {
		c->stopping = true;
		if (!vhost_conn_quiet(c))
			return -EINPROGRESS;
		return inflight_log(c, -EBUSY, "the device is running; its queues", c->num_queues,
				    qs);
	}
	if (m->hdr.request == VHOST_USER_GET_INFLIGHT_FD)
		return inflight_get(c, in, rep);
	return inflight_set(c, in, fds);
}

/* Lay out a queue's part of the region afresh: nothing in flight, at used index @used. */
static void inflight_init(struct vhost_inflight_queue *r, unsigned int num, unsigned int qsize,
			  uint16_t used)
{
	memset(r, 0, inflight_queue_bytes(qsize));
	r->desc_num = (uint16_t)num;
	r->used_idx = used;
	/* Version last: a region torn here reads as not laid out. */
	__atomic_store_n(&r->version, VHOST_INFLIGHT_VERSION, __ATOMIC_RELEASE);
}

static bool inflight_any(const struct vhost_inflight_queue *r, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (r->desc[i].inflight)
			return true;
	return false;
}

/* Heads @r marks in flight, oldest first (by counter): into @heads; returns how many. */
static unsigned int inflight_collect(struct vhost_conn *c, struct vhost_queue *q,
				     struct vhost_inflight_queue *r, struct vq_inflight *heads)
{
	unsigned int n = 0;

	for (unsigned int id = 0; id < q->num; id++) {
		uint64_t cnt = r->desc[id].counter;
		unsigned int j;

		if (!r->desc[id].inflight)
			continue;
		j = n++;
		/* Insertion by counter: resubmitted in the order they were first taken. */
		while (j > 0 && r->desc[heads[j - 1].id].counter > cnt) {
			heads[j] = heads[j - 1];
			j--;
		}
		heads[j] = (struct vq_inflight){ .queue = (uint16_t)q->idx, .id = (uint16_t)id,
						 .pos = (uint16_t)id };
		if (cnt >= c->counter)
			c->counter = cnt + 1;
	}
	return n;
}

/* The region's used index is behind the ring's: the heads published since were not cleared yet. */
static int inflight_catch_up(struct vhost_conn *c, struct vhost_queue *q,
			     struct vhost_inflight_queue *r, uint16_t used)
{
	uint16_t behind = (uint16_t)(used - r->used_idx);

	if (behind > q->num)
		return inflight_log(c, -EINVAL, "the used ring is too far past the inflight region",
				    used, r->used_idx);
	for (uint16_t j = 0; j < behind; j++) {
		uint32_t id = le32toh(q->used_ring[(uint16_t)(r->used_idx + j) & (q->num - 1)].id);

		if (id < q->num)
			r->desc[id].inflight = 0;
	}
	r->used_idx = used;
	return 0;
}

int vhost_inflight_resume(struct vhost_conn *c, struct vhost_queue *q,
			  struct virtio_queue_state *qs, struct vq_inflight *heads,
			  unsigned int *ret_n)
{
	uint16_t used = le16toh(__atomic_load_n(q->used_idx_p, __ATOMIC_ACQUIRE));
	struct vhost_inflight_queue *r;
	unsigned int n = 0;
	int ret;

	q->inflight = NULL;
	if (c->inflight_map && q->idx < c->inflight_nq) {
		if (q->num > c->inflight_qsize)
			return inflight_log(c, -EINVAL, "queue size beyond the inflight region's",
					    q->num, c->inflight_qsize);
		r = (void *)((uint8_t *)c->inflight_map + q->idx * inflight_queue_bytes(c->inflight_qsize));
		if (r->version > VHOST_INFLIGHT_VERSION)
			return inflight_log(c, -EINVAL, "inflight region version", r->version, q->idx);
		/* Nothing in flight: whatever it held before (another ring, a reset) is moot. */
		if (r->version == 0 || r->desc_num > c->inflight_qsize ||
		    !inflight_any(r, r->desc_num)) {
			inflight_init(r, q->num, c->inflight_qsize, used);
		} else if (r->desc_num != q->num) {
			return inflight_log(c, -EINVAL, "requests in flight in a queue of another size",
					    r->desc_num, q->num);
		}
		ret = inflight_catch_up(c, q, r, used);
		if (ret < 0)
			return ret;
		n = inflight_collect(c, q, r, heads);
		q->inflight = r;
	} else if (q->base != used) {
		log_info("%s: queue %u: resuming at its used index %u, not at %u (no inflight "
			 "region)", c->name, q->idx, used, q->base);
	}
	qs->ring.used_idx = used;
	qs->ring.last_avail = (uint16_t)(used + n);
	*ret_n = n;
	return 0;
}

void vhost_inflight_sync(struct vhost_conn *c, struct vhost_queue *q,
			 const struct virtio_dev_state *st)
{
	const struct virtio_queue_state *qs = &st->queues[q->idx];
	struct vhost_inflight_queue *r = q->inflight;
	uint16_t head = r->last_batch_head, used;
	unsigned int num = q->num;
	bool batch = false;

	memset(c->mark, 0, num);
	for (unsigned int j = 0; j < qs->ninflight; j++)
		if (st->inflight[qs->first_inflight + j].id < num)
			c->mark[st->inflight[qs->first_inflight + j].id] = 1;
	/*
	 * Returned heads first, as a batch list (vhost-user.rst), then the used
	 * index, then the new heads: killed anywhere here, a successor clears what
	 * the used ring shows returned, and finds the heads taken since this pass
	 * began, unmarked, at the end of the available ring (it resumes at the
	 * used index plus the marked ones).
	 */
	for (unsigned int id = 0; id < num; id++) {
		if (r->desc[id].inflight && !c->mark[id]) {
			r->desc[id].next = head;
			head = (uint16_t)id;
			batch = true;
		}
	}
	if (batch) {
		r->last_batch_head = head;
		for (unsigned int id = 0; id < num; id++)
			if (r->desc[id].inflight && !c->mark[id])
				r->desc[id].inflight = 0;
	}
	/* Pairs with the acquire load of a successor's vhost_inflight_resume(): cleared before moved. */
	used = le16toh(__atomic_load_n(q->used_idx_p, __ATOMIC_RELAXED));
	__atomic_store_n(&r->used_idx, used, __ATOMIC_RELEASE);
	for (unsigned int id = 0; id < num; id++) {
		if (c->mark[id] && !r->desc[id].inflight) {
			r->desc[id].counter = c->counter++;
			/* The counter is in place before the mark that makes it count. */
			__atomic_store_n(&r->desc[id].inflight, 1, __ATOMIC_RELEASE);
		}
	}
}
