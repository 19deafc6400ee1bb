// SPDX-License-Identifier: GPL-2.0-only
/* virtio-blk device type (virtio 1.2 §5.2) on a virtio device: request parsing, submission, completion. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio-platform.h"
#include "log.h"
#include "util.h"
#include "iov.h"
#include "vblk.h"
#include "vq.h"


#define DEFAULT_QUEUE_NUM_MAX 256
#define DEFAULT_SEG_MAX 126
/*
 * 126 x 256 KiB = 31.5 MiB per request at most: what one request may make the
 * daemon map in a single pass (make bench and Linux guests send at most a few
 * MiB).  With 1 MiB segments (126 MiB requests) a guest spreading them over
 * its RAM held the daemon 125-166 ms per request on the simulator; now 47-60 ms.
 */
#define DEFAULT_SIZE_MAX (256u << 10)
#define DEFAULT_MAX_DISCARD_SECTORS (1u << 22)
#define BLK_HDR_SIZE 16 /* struct virtio_blk_req header: le32 type, le32 reserved, le64 sector */
#define BLK_SEG_SIZE 16 /* struct virtio_blk_discard_write_zeroes */
/*
 * What one pass over a queue may map before it yields to the rest of the
 * loop (other guests' traps among it): each mapped page can be hypercall
 * work on Xen.  A single request may go past it (it is never cut), so the
 * longest pass is bounded by these plus one request of seg_max x size_max.
 */
#define VBLK_PASS_BYTES (16u << 20)
#define VBLK_PASS_MAPS 1024u
/*
 * How long a buffer the driver added without notifying (the device asked it
 * not to while it had requests in flight) can wait when none of them
 * completes meanwhile: a slow flush, say.  A poll after this long that finds
 * nothing asks the driver to notify again instead of polling on: a buffer it
 * adds after that is taken at once, not at a later poll, and a disk whose
 * backing store hangs (a lost NFS server) wakes the daemon no more.
 */
#define VBLK_POLL_US 500u

struct vblk_queue;
struct vblk_pool;
struct vblk_lane;

struct vblk_req {
	struct blk_req breq;		/* handed to the backend; container_of() in done() */
	struct vblk_pool *pool;
	struct vq_elem elem;
	struct iovec *data;		/* the data's mappings, inside elem.iov */
	unsigned int ndata;
	uint8_t *status;		/* last byte of the last writable buffer (§5.2.6), mapped */
	bool status_copy;		/* ... or written by the transport's copy() (Xen grants) */
	uint32_t type;
	uint32_t data_len;
	bool parsed;			/* stalled after parsing (backend full), not before (no room to map) */
	bool flush_after;		/* write-through cache mode: FLUSH before completing a write */
	bool flushing;
};

/*
 * The requests of one queue instance.  It outlives its queue when requests
 * are still in the backend at reset/destroy time ("orphaned", q == NULL).
 */
struct vblk_pool {
	struct vblk_queue *q;		/* NULL once orphaned */
	struct vblk_lane *lane;		/* its queue's lane; NULL once the device is freed */
	struct virtio_transport t;
	unsigned int nreq;
	unsigned int outstanding;	/* in the backend */
	struct vblk_req *reqs;
	struct vq_buf *bufs;
	struct iovec *iovs;
	unsigned int *free;
	unsigned int nfree;
	struct vblk_pool *orphan_prev, *orphan_next;	/* on lane->orphans while orphaned */
};

struct vblk_queue {
	struct vblk_dev *dev;
	struct vblk_lane *lane;		/* queue i: lane i % num_lanes */
	unsigned int idx;
	struct vq *vq;
	struct vblk_pool *pool;
	/*
	 * Popped and not yet in the backend: it said -EAGAIN (parsed), or the
	 * transport had no room to map the request now (not parsed).  Taken up
	 * first next time.
	 */
	struct vblk_req *stalled;
	bool dirty;			/* pushed to the used ring since the last publish */
	bool processing;
	bool quiet;			/* driver notifications off: requests of ours in flight */
	bool backlog;			/* a pass ended on its budget with buffers left in the ring */
	bool map_wait;			/* an indirect table could not be mapped now */
};

/*
 * The queues one thread serves (vblk_config.num_lanes), with everything their
 * requests touch but the device's fixed state: their backend, counters,
 * orphans, poll timer and log rate limit.  Two lanes share nothing written
 * on a request's path, so their threads need no lock between them.
 */
struct vblk_lane {
	struct vblk_dev *dev;
	unsigned int idx;
	void *be;
	struct vblk_stats stats;
	struct log_ratelimit rl;
	struct vblk_pool *orphans;	/* detached pools with requests in the backend */
	bool polling;			/* the owner's timer is armed */
	bool busy_polling;		/* vblk_busy_poll_begin() .. _end(): the owner looks at the rings */
};

struct vblk_dev {
	char name[64];
	char serial[VIRTIO_BLK_ID_BYTES];
	struct vblk_config cfg;
	struct blk_info info;
	struct virtio_transport t;
	const struct vblk_backend_ops *bops;
	struct virtio_dev *vdev;
	struct vblk_queue *queues;
	struct vblk_lane *lanes;	/* cfg.num_lanes */
	uint8_t writeback;
	bool restoring;			/* inside vblk_restore() */
	struct log_ratelimit rl;	/* for what is not a lane's (register accesses) */
};

#define vblk_warn(dev, fmt, ...)                                                                 \
	log_ratelimited(&(dev)->rl, LOG_LEVEL_WARNING, "%s: " fmt, (dev)->name, ##__VA_ARGS__)
/* What a lane's thread logs (its own rate limit). */
#define lane_warn(l, fmt, ...)                                                                   \
	log_ratelimited(&(l)->rl, LOG_LEVEL_WARNING, "%s: " fmt, (l)->dev->name, ##__VA_ARGS__)

/* A lane's queues: idx, idx + num_lanes, ... (lanes <= queues: a lane has one at least). */
#define for_each_lane_queue(q, l)                                                                \
	for (struct vblk_queue *q = &(l)->dev->queues[(l)->idx]; q; q = lane_next_queue(l, q))

static struct vblk_queue *lane_next_queue(const struct vblk_lane *l, struct vblk_queue *q)
{
	unsigned int i = q->idx + l->dev->cfg.num_lanes;

	return i < l->dev->cfg.num_queues ? &l->dev->queues[i] : NULL;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static void put_le16(uint8_t *p, uint16_t v)
{
	v = virtio_htole16(v);
	memcpy(p, &v, 2);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = virtio_htole32(v);
	memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = virtio_htole64(v);
	memcpy(p, &v, 8);
}

static bool has(const struct vblk_dev *dev, unsigned int bit)
{
	return virtio_dev_has_feature(dev->vdev, bit);
}

/* ---- request pool ------------------------------------------------------------------------- */

static void pool_free(struct vblk_pool *pool)
{
	if (!pool)
		return;
	free(pool->reqs);
	free(pool->bufs);
	free(pool->iovs);
	free(pool->free);
	free(pool);
}

/*
 * Mappings one request may need: its status byte, and its data cut into
 * pieces by the buffers that carry it and by the transport's max_map.  A
 * buffer of L bytes is at most L / max_map + 2 pieces (a short one across a
 * boundary is two), and a request carries at most seg_max x size_max bytes
 * of data in at most max_segs buffers (parse_rw(), vq_add_buf()).
 */
static unsigned int req_iov_cap(const struct vblk_dev *dev, unsigned int max_segs)
{
	uint64_t pieces = max_segs + 1;

	if (dev->t.max_map)
		pieces += max_segs + (uint64_t)dev->cfg.seg_max * dev->cfg.size_max / dev->t.max_map;
	return (unsigned int)pieces;
}

static struct vblk_pool *pool_new(struct vblk_queue *q, unsigned int nreq, unsigned int max_segs)
{
	struct vblk_pool *pool = calloc(1, sizeof(*pool));
	unsigned int iov_cap = req_iov_cap(q->dev, max_segs);

	if (!pool)
		return NULL;
	pool->q = q;
	pool->lane = q->lane;
	pool->t = q->dev->t;
	pool->nreq = nreq;
	pool->reqs = calloc(nreq, sizeof(*pool->reqs));
	pool->bufs = calloc((size_t)nreq * max_segs, sizeof(*pool->bufs));
	pool->iovs = calloc((size_t)nreq * iov_cap, sizeof(*pool->iovs));
	pool->free = calloc(nreq, sizeof(*pool->free));
	if (!pool->reqs || !pool->bufs || !pool->iovs || !pool->free) {
		pool_free(pool);
		return NULL;
	}
	for (unsigned int i = 0; i < nreq; i++) {
		struct vblk_req *req = &pool->reqs[i];

		req->pool = pool;
		req->elem.bufs = &pool->bufs[(size_t)i * max_segs];
		req->elem.iov = &pool->iovs[(size_t)i * iov_cap];
		req->elem.iov_cap = iov_cap;
		pool->free[pool->nfree++] = nreq - 1 - i;
	}
	return pool;
}

static struct vblk_req *pool_get(struct vblk_pool *pool)
{
	if (pool->nfree == 0)
		return NULL;
	return &pool->reqs[pool->free[--pool->nfree]];
}

static void pool_put(struct vblk_pool *pool, struct vblk_req *req)
{
	assert(pool->nfree < pool->nreq);
	pool->free[pool->nfree++] = (unsigned int)(req - pool->reqs);
}

/* ---- completion --------------------------------------------------------------------------- */

static void count_status(struct vblk_lane *l, struct vblk_req *req, uint8_t status)
{
	struct vblk_stats *s = &l->stats;

	if (status == VIRTIO_BLK_S_IOERR) {
		s->io_errors++;
		return;
	}
	if (status == VIRTIO_BLK_S_UNSUPP) {
		s->unsupported++;
		return;
	}
	switch (req->type) {
	case VIRTIO_BLK_T_IN:
		s->read_reqs++;
		s->read_bytes += req->data_len;
		break;
	case VIRTIO_BLK_T_OUT:
		s->write_reqs++;
		s->write_bytes += req->data_len;
		break;
	case VIRTIO_BLK_T_FLUSH:
		s->flush_reqs++;
		break;
	case VIRTIO_BLK_T_DISCARD:
		s->discard_reqs++;
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		s->write_zeroes_reqs++;
		break;
	case VIRTIO_BLK_T_GET_ID:
		s->get_id_reqs++;
		break;
	default:
		break;
	}
}

static void ring_broken(struct vblk_queue *q, int err);

/*
 * Answer a request of a live queue: status byte, used entry (published with
 * the batch), buffers unmapped.  §5.2.6.2: exactly one status per request.
 */
static void complete(struct vblk_queue *q, struct vblk_req *req, uint8_t status, uint32_t written)
{
	struct vblk_pool *pool = req->pool;
	int r;

	if (req->status) {
		*req->status = status;
	} else if ((r = vq_elem_write(&pool->t, &req->elem, req->elem.in_len - 1, &status, 1)) < 0) {
		/* The status byte the request was parsed with is gone (a grant ended early). */
		vq_elem_unmap(&pool->t, &req->elem);
		pool_put(pool, req);
		ring_broken(q, r);
		return;
	}
	count_status(q->lane, req, status);
	vq_push(q->vq, &req->elem, written);
	vq_elem_unmap(&pool->t, &req->elem);
	pool_put(pool, req);
	q->dirty = true;
}

static void complete_status(struct vblk_queue *q, struct vblk_req *req, uint8_t status)
{
	uint32_t written = 1;

	/* Used length: the bytes written into the driver's buffers (§2.7.8), status included. */
	if (status == VIRTIO_BLK_S_OK &&
	    (req->type == VIRTIO_BLK_T_IN || req->type == VIRTIO_BLK_T_GET_ID))
		written += req->data_len;
	complete(q, req, status, written);
}

static unsigned int process_queue(struct vblk_queue *q);
static void lane_publish(struct vblk_lane *l);

/*
 * The backend has room again: every queue of the lane that -EAGAIN stopped
 * takes up its ring.  The queues of a lane share one backend, so a queue may
 * be stopped by another queue's requests (or by orphans of a reset) and must
 * be resumed by their completions: with EVENT_IDX its driver will not notify
 * again.
 */
static void resume_stalled(struct vblk_lane *l)
{
	for_each_lane_queue(q, l)
		if (q->stalled)
			process_queue(q);
}

/*
 * The backing store failed a request: the guest gets IOERR, the operator the
 * reason.  A FLUSH that fails with EIO on a file usually reports an earlier
 * failed write-back (the kernel's errseq), e.g. the collision it logs when the
 * same file is written with and without O_DIRECT.
 */
static void log_backend_error(struct vblk_lane *l, const struct vblk_req *req, int res)
{
	const char *what = req->flushing ? "flush after a write-through write" :
			   req->type == VIRTIO_BLK_T_IN ? "read" :
			   req->type == VIRTIO_BLK_T_OUT ? "write" :
			   req->type == VIRTIO_BLK_T_FLUSH ? "flush" :
			   req->type == VIRTIO_BLK_T_DISCARD ? "discard" :
			   req->type == VIRTIO_BLK_T_WRITE_ZEROES ? "write-zeroes" : "request";

	if (req->type == VIRTIO_BLK_T_FLUSH || req->flushing)
		lane_warn(l, "%s failed: %s (the guest gets IOERR)", what, strerror(-res));
	else
		lane_warn(l, "%s at sector %llu failed: %s (the guest gets IOERR)", what,
			  (unsigned long long)(req->breq.offset / VIRTIO_BLK_SECTOR_SIZE),
			  strerror(-res));
}

static void req_done(struct blk_req *breq, int res)
{
	struct vblk_req *req = container_of(breq, struct vblk_req, breq);
	struct vblk_pool *pool = req->pool;
	struct vblk_queue *q = pool->q;
	struct vblk_lane *l = pool->lane;

	assert(pool->outstanding > 0);
	pool->outstanding--;
	if (l)
		l->stats.in_flight--;
	if (!q) {
		/* Orphaned by a reset or destroy: the old rings are gone, only release the buffers. */
		vq_elem_unmap(&pool->t, &req->elem);
		pool_put(pool, req);
		if (pool->outstanding == 0) {
			if (l) {
				if (pool->orphan_prev)
					pool->orphan_prev->orphan_next = pool->orphan_next;
				else
					l->orphans = pool->orphan_next;
				if (pool->orphan_next)
					pool->orphan_next->orphan_prev = pool->orphan_prev;
			}
			pool_free(pool);
		}
		if (l)
			resume_stalled(l);
		return;
	}
	if (res == 0 && req->flush_after && !req->flushing) {
		/* Write-through (§5.2.5, writeback = 0): a write is done once it is stable. */
		int r;

		req->flushing = true;
		memset(&req->breq, 0, sizeof(req->breq));
		req->breq.op = BLK_OP_FLUSH;
		req->breq.done = req_done;
		r = q->dev->bops->submit(l->be, &req->breq);
		if (r == 0) {
			pool->outstanding++;
			l->stats.in_flight++;
			return;
		}
		res = r;
	}
	if (res < 0)
		log_backend_error(l, req, res);
	complete_status(q, req, res == 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR);
	resume_stalled(l);
}

/* ---- request parsing (§5.2.6) ------------------------------------------------------------- */

enum parse_result {
	PARSE_SUBMIT,		/* req->breq is ready for the backend */
	PARSE_DONE,		/* completed with a status */
	PARSE_BROKEN,		/* the driver broke the protocol: device needs reset */
	PARSE_WAIT,		/* the transport cannot map it now: nothing kept mapped, try later */
};

static bool range_ok(const struct vblk_dev *dev, uint64_t sector, uint64_t nsec)
{
	uint64_t cap = dev->info.capacity / VIRTIO_BLK_SECTOR_SIZE;
	uint64_t lbs = dev->info.logical_block_size / VIRTIO_BLK_SECTOR_SIZE;

	/* Overflow-safe: sector + nsec <= capacity without computing the sum. */
	if (sector > cap || nsec > cap - sector)
		return false;
	/* The backend works in logical blocks (blk_size, §5.2.4); partial blocks are refused. */
	if (lbs > 1 && (sector % lbs != 0 || nsec % lbs != 0))
		return false;
	return true;
}

static bool writethrough(const struct vblk_dev *dev)
{
	if (!dev->info.write_cache)
		return false;
	/* §5.2.5: no FLUSH negotiated means the driver cannot flush, so the device must not cache. */
	if (!has(dev, VIRTIO_BLK_F_FLUSH))
		return true;
	return has(dev, VIRTIO_BLK_F_CONFIG_WCE) && dev->writeback == 0;
}

/*
 * A mapping of the request failed: an address that is not the guest's
 * memory breaks the ring (as a bad descriptor always did); a transport out
 * of room or memory is nobody's fault here and the request waits; anything
 * else fails the request if it can be answered.
 */
static enum parse_result map_failed(const struct vblk_req *req, int r, uint8_t *ret_status)
{
	if (r == -ENOBUFS || r == -ENOMEM)
		return PARSE_WAIT;
	if (r == -EFAULT || (!req->status && !req->status_copy))
		return PARSE_BROKEN;
	*ret_status = VIRTIO_BLK_S_IOERR;
	return PARSE_DONE;
}

/* Map @len bytes of data at @off of the readable or writable part: req->data. */
static enum parse_result map_data(struct vblk_dev *dev, struct vblk_req *req, bool write,
				  uint64_t off, uint64_t len, uint8_t *ret_status)
{
	struct vq_elem *e = &req->elem;
	unsigned int first = e->iov_num;
	int r = vq_elem_map(&dev->t, e, write, off, len);

	if (r < 0)
		return map_failed(req, r, ret_status);
	req->data = &e->iov[first];
	req->ndata = (unsigned int)r;
	return PARSE_SUBMIT;
}

static enum parse_result parse_rw(struct vblk_dev *dev, struct vblk_req *req, uint64_t sector,
				  uint8_t *ret_status)
{
	struct vq_elem *e = &req->elem;
	bool in = req->type == VIRTIO_BLK_T_IN;
	/*
	 * IN: the writable buffers before the status byte; the readable ones
	 * after the header are none of the device's business and stay unmapped.
	 * OUT: the readable buffers after the header; writable ones before the
	 * status byte likewise.
	 */
	uint64_t len = in ? e->in_len - 1 : e->out_len - BLK_HDR_SIZE;
	enum parse_result pr;

	/* §5.2.6.1: IN/OUT data is a multiple of 512 bytes. */
	if (len % VIRTIO_BLK_SECTOR_SIZE != 0) {
		*ret_status = VIRTIO_BLK_S_IOERR;
		return PARSE_DONE;
	}
	/* §5.2.6.2: writes to a read-only device fail with IOERR. */
	if (!in && dev->info.read_only) {
		*ret_status = VIRTIO_BLK_S_IOERR;
		return PARSE_DONE;
	}
	if (!range_ok(dev, sector, len / VIRTIO_BLK_SECTOR_SIZE)) {
		*ret_status = VIRTIO_BLK_S_IOERR;
		return PARSE_DONE;
	}
	/*
	 * At most seg_max x size_max bytes (§5.2.4), what the device offers,
	 * whether or not the driver negotiated those limits: a request's size
	 * decides how much Dom0 memory it may need.  Checked before anything
	 * of the data is mapped.
	 */
	if (len > (uint64_t)dev->cfg.seg_max * dev->cfg.size_max) {
		lane_warn(req->pool->lane, "request of %llu bytes is larger than seg_max x size_max: refused",
			  (unsigned long long)len);
		*ret_status = VIRTIO_BLK_S_IOERR;
		return PARSE_DONE;
	}
	req->data_len = (uint32_t)len;
	if (len == 0) {
		*ret_status = VIRTIO_BLK_S_OK;
		return PARSE_DONE;
	}
	pr = map_data(dev, req, in, in ? 0 : BLK_HDR_SIZE, len, ret_status);
	if (pr != PARSE_SUBMIT)
		return pr;
	req->breq.op = in ? BLK_OP_READ : BLK_OP_WRITE;
	req->breq.offset = sector * VIRTIO_BLK_SECTOR_SIZE;
	req->breq.iov = req->data;
	req->breq.iovcnt = req->ndata;
	req->flush_after = !in && writethrough(dev);
	return PARSE_SUBMIT;
}

static enum parse_result parse_dz(struct vblk_dev *dev, struct vblk_req *req, uint8_t *ret_status)
{
	struct vq_elem *e = &req->elem;
	bool discard = req->type == VIRTIO_BLK_T_DISCARD;
	uint64_t len = e->out_len - BLK_HDR_SIZE;
	uint8_t seg[BLK_SEG_SIZE];
	uint64_t sector;
	uint32_t nsec, flags;
	int r;

	if (!has(dev, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) {
		*ret_status = VIRTIO_BLK_S_UNSUPP;
		return PARSE_DONE;
	}
	/* §5.2.6: the data is an array of 16-byte segments. */
	if (len == 0 || len % BLK_SEG_SIZE != 0) {
		*ret_status = VIRTIO_BLK_S_IOERR;
		return PARSE_DONE;
	}
	/* We advertise max_discard_seg = max_write_zeroes_seg = 1 (§5.2.4); more is unsupported. */
	if (len / BLK_SEG_SIZE > 1) {
		*ret_status = VIRTIO_BLK_S_UNSUPP;
		return PARSE_DONE;
	}
	r = vq_elem_read(&dev->t, e, BLK_HDR_SIZE, seg, sizeof(seg));
	if (r < 0)
		return map_failed(req, r, ret_status);
	memcpy(&sector, seg, 8);
	memcpy(&nsec, seg + 8, 4);
	memcpy(&flags, seg + 12, 4);
	sector = virtio_le64toh(sector);
	nsec = virtio_le32toh(nsec);
	flags = virtio_le32toh(flags);
	/*
	 * §5.2.6.2: unknown flags, and the unmap flag on DISCARD, are answered
	 * UNSUPP.
	 */
	if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP ||
	    (discard && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))) {
		*ret_status = VIRTIO_BLK_S_UNSUPP;
		return PARSE_DONE;
	}
	/* §5.2.6.2: more than max_*_sectors, or outside the disk, is an error. */
	if (dev->info.read_only || nsec > dev->cfg.max_discard_sectors ||
	    !range_ok(dev, sector, nsec)) {
		*ret_status = VIRTIO_BLK_S_IOERR;
		return PARSE_DONE;
	}
	if (nsec == 0) {
		*ret_status = VIRTIO_BLK_S_OK;
		return PARSE_DONE;
	}
	req->breq.op = discard ? BLK_OP_DISCARD : BLK_OP_WRITE_ZEROES;
	req->breq.offset = sector * VIRTIO_BLK_SECTOR_SIZE;
	req->breq.len = (uint64_t)nsec * VIRTIO_BLK_SECTOR_SIZE;
	/* write_zeroes_may_unmap is offered only when discard works on this store. */
	if (!discard && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) && dev->info.discard)
		req->breq.flags |= BLK_REQ_MAY_UNMAP;
	return PARSE_SUBMIT;
}

/*
 * The status byte and the header, before anything else.  Where the transport
 * copies (a grant's map and unmap cost more than copies), one copy() call
 * reads the header and the status byte, proving the status is the guest's,
 * and another writes the status at completion: no mapping.  Else the status
 * byte is mapped and the header read.
 */
static int status_and_header(struct vblk_dev *dev, struct vblk_req *req, uint8_t *hdr)
{
	struct vq_elem *e = &req->elem;
	uint8_t old;
	struct vq_copy c[2] = {
		{ .write = false, .off = 0, .buf = hdr, .len = BLK_HDR_SIZE },
		{ .write = true, .off = e->in_len - 1, .buf = &old, .len = 1 },
	};
	int r = vq_elem_copy(&dev->t, e, c, 2);

	if (r == 0) {
		req->status_copy = true;
		return 0;
	}
	if (r != -EOPNOTSUPP)
		return r;
	r = vq_elem_map(&dev->t, e, true, e->in_len - 1, 1);
	if (r < 0)
		return r;
	req->status = e->iov[e->iov_num - 1].iov_base;
	return vq_elem_read(&dev->t, e, 0, hdr, BLK_HDR_SIZE);
}

/*
 * Check a popped chain's shape, then map only what its type uses: the status
 * byte, the header (copied), and the data of IN/OUT/GET_ID.  A FLUSH's or
 * GET_ID's extra buffers, an IN's readable ones past the header and an OUT's
 * writable ones before the status are never mapped.
 */
static enum parse_result parse(struct vblk_dev *dev, struct vblk_req *req, uint8_t *ret_status)
{
	struct vq_elem *e = &req->elem;
	uint8_t hdr[BLK_HDR_SIZE];
	uint32_t type;
	uint64_t sector;
	int r;

	req->status = NULL;
	req->status_copy = false;
	req->data = NULL;
	req->type = 0;
	req->data_len = 0;
	req->ndata = 0;
	req->flush_after = false;
	req->flushing = false;
	memset(&req->breq, 0, sizeof(req->breq));
	req->breq.done = req_done;
	/*
	 * §5.2.6: a request is a 16-byte device-readable header, data, and a
	 * device-writable status byte at the very end.  Without the header or the
	 * status byte the request cannot be answered at all: like QEMU we treat
	 * that as a broken driver.
	 */
	if (e->out_len < BLK_HDR_SIZE || e->in_len < 1)
		return PARSE_BROKEN;
	r = status_and_header(dev, req, hdr);
	if (r < 0)
		return map_failed(req, r, ret_status);
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	type = virtio_le32toh(type);
	sector = virtio_le64toh(sector);
	req->type = type;

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return parse_rw(dev, req, sector, ret_status);
	case VIRTIO_BLK_T_FLUSH:
		req->breq.op = BLK_OP_FLUSH;
		return PARSE_SUBMIT;
	case VIRTIO_BLK_T_GET_ID: {
		/* §5.2.6: up to 20 bytes of serial, not NUL-terminated when all 20 are used. */
		uint64_t room = e->in_len - 1;
		size_t n = room < VIRTIO_BLK_ID_BYTES ? (size_t)room : VIRTIO_BLK_ID_BYTES;
		enum parse_result pr;

		*ret_status = VIRTIO_BLK_S_OK;
		if (n == 0)
			return PARSE_DONE;
		pr = map_data(dev, req, true, 0, n, ret_status);
		if (pr != PARSE_SUBMIT)
			return pr;
		iov_from_buf(req->data, req->ndata, dev->serial, n);
		req->data_len = (uint32_t)n;
		return PARSE_DONE;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return parse_dz(dev, req, ret_status);
	default:
		/* §5.2.6.2: unknown (and unoffered, e.g. GET_LIFETIME, SECURE_ERASE) types: UNSUPP. */
		*ret_status = VIRTIO_BLK_S_UNSUPP;
		return PARSE_DONE;
	}
}

/* ---- queue processing --------------------------------------------------------------------- */

/* Publish a queue's used entries; returns whether the driver wants an interrupt. */
static bool queue_publish(struct vblk_queue *q)
{
	if (!q->dirty || !q->vq)
		return false;
	q->dirty = false;
	return vq_publish(q->vq);
}

static void ring_broken(struct vblk_queue *q, int err)
{
	q->lane->stats.ring_errors++;
	/* Logged here, once: the device core only sets the status bit. */
	lane_warn(q->lane, "queue %u: ring violation: %s; device needs reset", q->idx,
		  strerror(-err));
	virtio_dev_set_needs_reset(q->dev->vdev);
}

/* Returns 0 when accepted, -EAGAIN when the backend is full, else completed with IOERR. */
static int submit(struct vblk_queue *q, struct vblk_req *req)
{
	struct vblk_lane *l = q->lane;
	int r = q->dev->bops->submit(l->be, &req->breq);

	if (r == 0) {
		q->pool->outstanding++;
		l->stats.in_flight++;
		return 0;
	}
	if (r == -EAGAIN)
		return r;
	log_backend_error(l, req, r);
	complete_status(q, req, VIRTIO_BLK_S_IOERR);
	return r;
}

/* ---- ring poll policy (the owner provides the timer) ------------------------------------ */

static void poll_arm(struct vblk_lane *l, uint64_t us)
{
	const struct vblk_backend_ops *ops = l->dev->bops;

	/* Without the timer, waiting for the next completion is still correct (the owner logs why). */
	l->polling = ops->set_timer && ops->set_timer(l->be, us) == 0;
}

/* A queue stopped asking for notifications: the timer bounds how long a buffer may wait. */
static void poll_quiet(struct vblk_lane *l)
{
	if (!l->polling)
		poll_arm(l, VBLK_POLL_US);
}

void vblk_lane_poll_soon(struct vblk_dev *dev, unsigned int lane)
{
	poll_arm(&dev->lanes[lane], 0);
}

void vblk_poll_soon(struct vblk_dev *dev)
{
	for (unsigned int i = 0; i < dev->cfg.num_lanes; i++)
		vblk_lane_poll_soon(dev, i);
}

/*
 * The requests in flight are slow: ask the driver to notify again for every
 * quiet queue (unless the owner's busy polling looks at the rings), taking
 * what it added meanwhile.
 */
static void poll_give_up(struct vblk_lane *l)
{
	unsigned int taken = 0;

	for_each_lane_queue(q, l) {
		/* Waiting for the backend's room or the mapping budget: woken by those, not polled. */
		if (!q->quiet || q->stalled || q->map_wait)
			continue;
		q->quiet = false;
		if (q->vq && !l->busy_polling && vq_notify_on(q->vq))
			taken += process_queue(q);
	}
	if (taken)
		lane_publish(l);
}

void vblk_lane_timer_expired(struct vblk_dev *dev, unsigned int lane)
{
	struct vblk_lane *l = &dev->lanes[lane];
	bool quiet = false;
	unsigned int taken;

	l->polling = false;	/* one-shot: expired */
	taken = vblk_lane_poll(dev, lane, &quiet);
	/* Done, or armed again from inside (a pass that ended on its budget). */
	if (!quiet || l->polling)
		return;
	if (taken)
		poll_arm(l, VBLK_POLL_US);
	else
		poll_give_up(l);
}

void vblk_timer_expired(struct vblk_dev *dev)
{
	for (unsigned int i = 0; i < dev->cfg.num_lanes; i++)
		vblk_lane_timer_expired(dev, i);
}

/* Mapped bytes and mappings a request cost (its header read counted as one more). */
static void pass_charge(const struct vblk_req *req, uint64_t *bytes, unsigned int *maps)
{
	const struct vq_elem *e = &req->elem;

	for (unsigned int i = 0; i < e->iov_num; i++)
		*bytes += e->iov[i].iov_len;
	*maps += e->iov_num + 1;
}

/* One pass over a queue: what it may still take and map, what it did. */
struct vblk_pass {
	/*
	 * A driver that follows the rules cannot offer more than num buffers
	 * before it sees used ones, and nothing is published inside a pass;
	 * the budget only stops a guest that keeps re-offering heads from another
	 * vCPU from holding the daemon here.  One pop more than the ring holds:
	 * the pop that finds it empty is the one that asks for the next
	 * notification (EVENT_IDX), even after a full ring answered inline.
	 */
	unsigned int budget;
	/*
	 * What one pass may map: on Xen each page is hypercall work, and the
	 * thread that does it serves every other guest too.  A pass that spends
	 * it leaves the rest of the ring for a pass of its own after the loop
	 * has dispatched everything else that is ready (vblk_poll_soon()).
	 */
	uint64_t bytes;
	unsigned int maps;
	unsigned int taken;
	bool plugged;			/* submitted since the last unplug */
};

/* The transport cannot map now: the queue waits for releases (its own completions, or room()). */
static void wait_room(struct vblk_queue *q)
{
	const struct virtio_transport *t = &q->dev->t;

	q->lane->stats.map_waits++;
	if (t->ops->wait_room)
		t->ops->wait_room(t->opaque);
}

/* The request to work on next: the stalled one, or one taken from the ring; NULL ends the pass. */
static struct vblk_req *next_request(struct vblk_queue *q, struct vblk_pass *p)
{
	struct vblk_req *req = q->stalled;
	int r;

	if (req) {
		q->stalled = NULL;
		return req;
	}
	if (p->budget == 0)
		return NULL;
	if (p->bytes >= VBLK_PASS_BYTES || p->maps >= VBLK_PASS_MAPS) {
		q->backlog = true;
		return NULL;
	}
	p->budget--;
	req = pool_get(q->pool);
	if (!req)
		return NULL; /* every id is in flight: the ring cannot hold more */
	r = vq_pop(q->vq, &req->elem);
	if (r <= 0) {
		pool_put(q->pool, req);
		if (r == -ENOBUFS || r == -ENOMEM) {
			/* An indirect table the transport cannot map now: the ring waits. */
			q->map_wait = true;
			wait_room(q);
		} else if (r < 0) {
			ring_broken(q, r);
		}
		return NULL;
	}
	p->taken++;
	req->parsed = false;
	return req;
}

enum vblk_step {
	STEP_SUBMIT,		/* hand it to the backend */
	STEP_NEXT,		/* answered already: take the next one */
	STEP_STOP,		/* the pass ends */
};

static enum vblk_step parse_request(struct vblk_queue *q, struct vblk_req *req,
				    struct vblk_pass *p)
{
	uint8_t status = VIRTIO_BLK_S_IOERR;
	enum parse_result pr;

	if (req->parsed)
		return STEP_SUBMIT;
	pr = parse(q->dev, req, &status);
	pass_charge(req, &p->bytes, &p->maps);
	switch (pr) {
	case PARSE_SUBMIT:
		req->parsed = true;
		return STEP_SUBMIT;
	case PARSE_DONE:
		complete_status(q, req, status);
		return STEP_NEXT;
	case PARSE_WAIT:
		/*
		 * No room to map it now: like a full backend, the queue waits
		 * with this request first in line; the completions that release
		 * mappings bring us back.
		 */
		vq_elem_unmap(&q->pool->t, &req->elem);
		q->stalled = req;
		wait_room(q);
		return STEP_STOP;
	case PARSE_BROKEN:
		vq_elem_unmap(&q->pool->t, &req->elem);
		pool_put(q->pool, req);
		ring_broken(q, -EPROTO);
		return STEP_STOP;
	}
	return STEP_STOP;
}

/*
 * After a pass: ask the driver for notifications, or not.  Returns true
 * when buffers arrived while they were off: the caller must take them.
 */
static bool pass_end(struct vblk_queue *q)
{
	struct vblk_dev *dev = q->dev;

	if (!q->vq || !virtio_dev_running(dev->vdev)) {
		/* Needs a reset (or has no rings): nothing to take until the driver resets it. */
		q->quiet = false;
		q->backlog = false;
		q->map_wait = false;
		return false;
	}
	/*
	 * While requests of this queue are in the backend, their completions
	 * bring us back here (vblk_complete_batch()), so the driver need not
	 * notify: on Xen every notification is a trap and a round trip through
	 * this daemon while the vCPU waits.  The poll timer bounds how long a
	 * buffer can wait if they are slow, and comes back at once for a backlog.
	 */
	if (q->pool->outstanding || q->stalled || q->backlog || q->map_wait) {
		if (!q->quiet) {
			q->quiet = true;
			vq_notify_off(q->vq);
			poll_quiet(q->lane);
		}
		if (q->backlog)
			poll_arm(q->lane, 0);
		return false;
	}
	/* Off by a restored state (vq_restore()) counts as ours too: the driver must be asked again. */
	if (!q->quiet && !vq_notify_is_off(q->vq))
		return false;
	q->quiet = false;
	/* The owner's busy polling looks at the ring; its end asks for notifications. */
	if (q->lane->busy_polling)
		return false;
	return vq_notify_on(q->vq);
}

/*
 * Take requests from the ring until it is empty, the backend is full, the
 * pass's budget is spent, or the driver misbehaves.  Returns how many it took.
 */
static unsigned int process_queue(struct vblk_queue *q)
{
	struct vblk_dev *dev = q->dev;
	struct vblk_pass p = { .budget = q->vq ? vq_num(q->vq) + 1u : 0 };
	struct vblk_req *req;
	enum vblk_step step;
	int r;

	if (q->processing)
		return 0;
	q->processing = true;
	q->backlog = false;
	q->map_wait = false;
	do {
		while (q->vq && virtio_dev_running(dev->vdev) && (req = next_request(q, &p))) {
			step = parse_request(q, req, &p);
			if (step == STEP_NEXT)
				continue;
			if (step == STEP_STOP)
				break;
			r = submit(q, req);
			if (r == 0) {
				p.plugged = true;
			} else if (r == -EAGAIN) {
				q->stalled = req;
				break;
			}
		}
		/* The end of a burst; the block layer hands small batches over by itself (BLK_SUBMIT_BATCH). */
		if (p.plugged && dev->bops->unplug)
			dev->bops->unplug(q->lane->be);
		p.plugged = false;
		p.budget = q->vq ? vq_num(q->vq) + 1u : 0;
	} while (pass_end(q));
	q->processing = false;
	return p.taken;
}

unsigned int vblk_lane_poll(struct vblk_dev *dev, unsigned int lane, bool *ret_quiet)
{
	struct vblk_lane *l = &dev->lanes[lane];
	unsigned int taken = 0;
	bool quiet = false;

	for_each_lane_queue(q, l) {
		if (q->quiet)
			taken += process_queue(q);
		quiet |= q->quiet;
	}
	lane_publish(l);
	if (ret_quiet)
		*ret_quiet = quiet;
	return taken;
}

unsigned int vblk_poll(struct vblk_dev *dev, bool *ret_quiet)
{
	unsigned int taken = 0;
	bool quiet = false, lq;

	for (unsigned int i = 0; dev && i < dev->cfg.num_lanes; i++) {
		taken += vblk_lane_poll(dev, i, &lq);
		quiet |= lq;
	}
	if (ret_quiet)
		*ret_quiet = quiet;
	return taken;
}

/* ---- busy polling by the owner's loop ------------------------------------------------------ */

void vblk_lane_busy_poll_begin(struct vblk_dev *dev, unsigned int lane)
{
	struct vblk_lane *l = &dev->lanes[lane];

	l->busy_polling = true;
	for_each_lane_queue(q, l)
		if (q->vq && virtio_dev_running(dev->vdev))
			vq_notify_off(q->vq);
}

bool vblk_lane_busy_poll(struct vblk_dev *dev, unsigned int lane)
{
	struct vblk_lane *l = &dev->lanes[lane];
	unsigned int taken = 0;

	for_each_lane_queue(q, l) {
		/* A queue waiting for the backend's room or the guest's mapping budget is not polled. */
		if (q->vq && !q->stalled && !q->map_wait && !q->backlog &&
		    virtio_dev_running(dev->vdev) && vq_has_avail(q->vq))
			taken += process_queue(q);
	}
	if (taken)
		lane_publish(l);
	return taken > 0;
}

bool vblk_lane_busy_poll_end(struct vblk_dev *dev, unsigned int lane)
{
	struct vblk_lane *l = &dev->lanes[lane];
	unsigned int taken = 0;

	l->busy_polling = false;
	for_each_lane_queue(q, l) {
		/* A quiet queue keeps them off: its completions look at the ring. */
		if (!q->vq || q->quiet || !vq_notify_is_off(q->vq) || !virtio_dev_running(dev->vdev))
			continue;
		if (vq_notify_on(q->vq))
			taken += process_queue(q);
	}
	if (taken)
		lane_publish(l);
	return taken > 0;
}

void vblk_busy_poll_begin(struct vblk_dev *dev)
{
	for (unsigned int i = 0; i < dev->cfg.num_lanes; i++)
		vblk_lane_busy_poll_begin(dev, i);
}

bool vblk_busy_poll(struct vblk_dev *dev)
{
	bool taken = false;

	for (unsigned int i = 0; i < dev->cfg.num_lanes; i++)
		taken |= vblk_lane_busy_poll(dev, i);
	return taken;
}

bool vblk_busy_poll_end(struct vblk_dev *dev)
{
	bool taken = false;

	for (unsigned int i = 0; i < dev->cfg.num_lanes; i++)
		taken |= vblk_lane_busy_poll_end(dev, i);
	return taken;
}

bool vblk_lane_draining(const struct vblk_dev *dev, unsigned int lane)
{
	return dev->lanes[lane].orphans != NULL;
}

bool vblk_draining(const struct vblk_dev *dev)
{
	for (unsigned int i = 0; i < dev->cfg.num_lanes; i++)
		if (vblk_lane_draining(dev, i))
			return true;
	return false;
}

/* Publish the used entries of a lane's queues, with at most one interrupt. */
static void lane_publish(struct vblk_lane *l)
{
	bool irq = false;

	for_each_lane_queue(q, l)
		irq |= queue_publish(q);
	/* §2.7.7 / §2.7.10: one interrupt per batch, and only if the driver asked for it. */
	if (irq) {
		l->stats.interrupts++;
		virtio_dev_raise(l->dev->vdev, VIRTIO_MMIO_INT_VRING);
	}
}

void vblk_lane_complete_batch(struct vblk_dev *dev, unsigned int lane)
{
	/* The driver hears of these completions first ... */
	lane_publish(&dev->lanes[lane]);
	/*
	 * ... then the queues that are not being notified take what the driver
	 * added meanwhile (publishing what that answers without the backend).
	 */
	vblk_lane_poll(dev, lane, NULL);
}

void vblk_complete_batch(struct vblk_dev *dev)
{
	for (unsigned int i = 0; dev && i < dev->cfg.num_lanes; i++)
		vblk_lane_complete_batch(dev, i);
}

/* ---- device ops -------------------------------------------------------------------------- */

static void blk_config_get(void *opaque, uint8_t *buf)
{
	struct vblk_dev *dev = opaque;
	uint32_t lbs = dev->info.logical_block_size, pbs = dev->info.physical_block_size;
	uint8_t exp = 0;

	memset(buf, 0, VBLK_CONFIG_SIZE);
	put_le64(buf + VBLK_CFG_CAPACITY, dev->info.capacity / VIRTIO_BLK_SECTOR_SIZE);
	put_le32(buf + VBLK_CFG_SIZE_MAX, dev->cfg.size_max);
	put_le32(buf + VBLK_CFG_SEG_MAX, dev->cfg.seg_max);
	put_le32(buf + VBLK_CFG_BLK_SIZE, lbs);
	while (exp < 16 && ((uint64_t)lbs << (exp + 1)) <= pbs)
		exp++;
	buf[VBLK_CFG_PHYS_BLOCK_EXP] = exp;
	put_le16(buf + VBLK_CFG_MIN_IO_SIZE, (uint16_t)(1u << exp));
	buf[VBLK_CFG_WRITEBACK] = dev->writeback;
	put_le16(buf + VBLK_CFG_NUM_QUEUES, (uint16_t)dev->cfg.num_queues);
	put_le32(buf + VBLK_CFG_MAX_DISCARD_SECTORS, dev->cfg.max_discard_sectors);
	put_le32(buf + VBLK_CFG_MAX_DISCARD_SEG, 1);
	put_le32(buf + VBLK_CFG_DISCARD_ALIGN, lbs / VIRTIO_BLK_SECTOR_SIZE);
	put_le32(buf + VBLK_CFG_MAX_WZ_SECTORS, dev->cfg.max_discard_sectors);
	put_le32(buf + VBLK_CFG_MAX_WZ_SEG, 1);
	buf[VBLK_CFG_WZ_MAY_UNMAP] = dev->info.discard ? 1 : 0;
}

static void blk_config_write(void *opaque, uint32_t offset, unsigned int size, uint64_t value)
{
	struct vblk_dev *dev = opaque;

	/* §5.2.4: only writeback is writable, and only with CONFIG_WCE negotiated. */
	if (offset == VBLK_CFG_WRITEBACK && size == 1 && value <= 1 &&
	    has(dev, VIRTIO_BLK_F_CONFIG_WCE)) {
		dev->writeback = (uint8_t)value;
		return;
	}
	vblk_warn(dev, "config write of %u bytes at %u ignored", size, (unsigned int)offset);
}

static bool blk_features_ok(void *opaque, uint64_t features)
{
	/* No virtio-blk feature depends on another one (§5.2.3). */
	return true;
}

static void blk_queue_limits(void *opaque, unsigned int idx, struct vq_config *cfg)
{
	struct vblk_dev *dev = opaque;

	/* §5.2.4: seg_max data segments, plus the header and the status. */
	if (has(dev, VIRTIO_BLK_F_SEG_MAX))
		cfg->max_segs = dev->cfg.seg_max + 2;
	else
		cfg->max_segs = cfg->num;
	if (cfg->max_segs < 3)
		cfg->max_segs = 3;
	cfg->max_seg_len = has(dev, VIRTIO_BLK_F_SIZE_MAX) ? dev->cfg.size_max : 0;
}

static int blk_queue_start(void *opaque, unsigned int idx, struct vq *vq)
{
	struct vblk_dev *dev = opaque;
	struct vblk_queue *q = &dev->queues[idx];
	struct vq_config lim = { .num = vq_num(vq) };

	blk_queue_limits(dev, idx, &lim);
	q->pool = pool_new(q, vq_num(vq), lim.max_segs);
	if (!q->pool)
		return -ENOMEM;
	q->vq = vq;
	q->dirty = false;
	q->quiet = false;
	return 0;
}

/* Detach a queue's requests from its rings (reset, QueueReady = 0, destroy). */
static void blk_queue_stop(void *opaque, unsigned int idx)
{
	struct vblk_dev *dev = opaque;
	struct vblk_queue *q = &dev->queues[idx];
	struct vblk_pool *pool = q->pool;

	if (!pool)
		return;
	if (q->stalled) {
		vq_elem_unmap(&pool->t, &q->stalled->elem);
		pool_put(pool, q->stalled);
		q->stalled = NULL;
	}
	/* §2.4: after reset the old rings are off limits; in-flight requests become orphans. */
	if (pool->outstanding == 0) {
		pool_free(pool);
	} else {
		struct vblk_lane *l = q->lane;

		pool->q = NULL;
		pool->orphan_prev = NULL;
		pool->orphan_next = l->orphans;
		if (l->orphans)
			l->orphans->orphan_prev = pool;
		l->orphans = pool;
	}
	q->pool = NULL;
	q->vq = NULL;
	q->dirty = false;
	q->quiet = false;
}

static void blk_queue_notify(void *opaque, unsigned int idx)
{
	struct vblk_dev *dev = opaque;
	struct vblk_queue *q = &dev->queues[idx];

	process_queue(q);
	/* A notify is a batch of its own: requests answered without the backend are published now. */
	lane_publish(q->lane);
}

static void blk_reset(void *opaque)
{
	struct vblk_dev *dev = opaque;

	/* A restore resets the device first: the driver's setting is what it restores. */
	if (!dev->restoring)
		dev->writeback = dev->info.write_cache ? 1 : 0;
}

static const struct virtio_dev_ops vblk_dev_ops = {
	.config_get = blk_config_get,
	.config_write = blk_config_write,
	.features_ok = blk_features_ok,
	.queue_limits = blk_queue_limits,
	.queue_start = blk_queue_start,
	.queue_stop = blk_queue_stop,
	.queue_notify = blk_queue_notify,
	.reset = blk_reset,
};

/* ---- public API --------------------------------------------------------------------------- */

/* §5.2.3: what the device offers (the core adds VERSION_1 / ACCESS_PLATFORM as the transport needs). */
static uint64_t offered_features(const struct vblk_dev *dev)
{
	uint64_t f;

	f = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
	    VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_RING_PACKED) |
	    VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
	    VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |
	    VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |
	    VIRTIO_BIT(VIRTIO_BLK_F_MQ);
	if (dev->info.read_only)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
	if (dev->info.discard)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
	if (dev->info.write_zeroes)
		f |= VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	return f;
}

int vblk_create(const struct vblk_config *cfg, const struct virtio_transport *t,
		const struct vblk_backend_ops *ops, void *be, struct vblk_dev **ret_dev)
{
	struct virtio_dev_params p = { 0 };
	struct vblk_dev *dev;
	uint64_t f;
	int r;

	assert(cfg && t && ops && ops->submit);
	if (cfg->num_queues > VBLK_MAX_QUEUES || cfg->num_lanes > VBLK_MAX_QUEUES ||
	    cfg->info.logical_block_size < 512 ||
	    (cfg->info.logical_block_size & (cfg->info.logical_block_size - 1)) != 0 ||
	    (cfg->version != 0 && cfg->version != 1 && cfg->version != 2))
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	snprintf(dev->name, sizeof(dev->name), "%s", cfg->name ? cfg->name : "vblk");
	if (cfg->serial)
		for (size_t i = 0; i < sizeof(dev->serial) && cfg->serial[i]; i++)
			dev->serial[i] = cfg->serial[i];	/* strnlen() is POSIX, not C11 */
	dev->cfg = *cfg;
	dev->cfg.name = dev->name;
	dev->cfg.serial = NULL;
	if (!dev->cfg.num_queues)
		dev->cfg.num_queues = 1;
	if (!dev->cfg.num_lanes)
		dev->cfg.num_lanes = 1;
	if (dev->cfg.num_lanes > dev->cfg.num_queues)
		dev->cfg.num_lanes = dev->cfg.num_queues;
	if (!dev->cfg.queue_num_max)
		dev->cfg.queue_num_max = DEFAULT_QUEUE_NUM_MAX;
	if (!dev->cfg.seg_max)
		dev->cfg.seg_max = DEFAULT_SEG_MAX;
	if (!dev->cfg.size_max)
		dev->cfg.size_max = DEFAULT_SIZE_MAX;
	if (!dev->cfg.max_discard_sectors)
		dev->cfg.max_discard_sectors = DEFAULT_MAX_DISCARD_SECTORS;
	if (!dev->cfg.version)
		dev->cfg.version = 2;
	dev->info = cfg->info;
	if (dev->info.physical_block_size < dev->info.logical_block_size)
		dev->info.physical_block_size = dev->info.logical_block_size;
	dev->t = *t;
	dev->bops = ops;
	dev->writeback = dev->info.write_cache ? 1 : 0;
	dev->rl = (struct log_ratelimit)LOG_RATELIMIT_GUEST;
	dev->queues = calloc(dev->cfg.num_queues, sizeof(*dev->queues));
	dev->lanes = calloc(dev->cfg.num_lanes, sizeof(*dev->lanes));
	if (!dev->queues || !dev->lanes) {
		r = -ENOMEM;
		goto err_free;
	}
	for (unsigned int i = 0; i < dev->cfg.num_lanes; i++)
		dev->lanes[i] = (struct vblk_lane){ .dev = dev, .idx = i, .be = be,
						    .rl = LOG_RATELIMIT_GUEST };
	for (unsigned int i = 0; i < dev->cfg.num_queues; i++) {
		dev->queues[i].dev = dev;
		dev->queues[i].lane = &dev->lanes[i % dev->cfg.num_lanes];
		dev->queues[i].idx = i;
	}

	f = offered_features(dev) & ~cfg->disable_features;

	p.name = dev->name;
	p.legacy = dev->cfg.version == 1;
	p.device_id = VIRTIO_ID_BLOCK;
	p.vendor_id = 0x554d4551; /* "QEMU": what Linux and most guests expect of virtio-mmio */
	p.features = f;
	p.num_queues = dev->cfg.num_queues;
	p.queue_num_max = dev->cfg.queue_num_max;
	p.config_size = VBLK_CONFIG_SIZE;
	r = virtio_dev_create(&p, t, &vblk_dev_ops, dev, &dev->vdev);
	if (r < 0)
		goto err_free;
	*ret_dev = dev;
	return 0;

err_free:
	free(dev->queues);
	free(dev->lanes);
	free(dev);
	return r;
}

void vblk_destroy(struct vblk_dev *dev)
{
	if (!dev)
		return;
	/* Stops every queue: in-flight requests become orphans that no longer know the device. */
	virtio_dev_destroy(dev->vdev);
	dev->vdev = NULL;
	for (unsigned int i = 0; i < dev->cfg.num_lanes; i++)
		for (struct vblk_pool *p = dev->lanes[i].orphans; p; p = p->orphan_next)
			p->lane = NULL;
	free(dev->queues);
	free(dev->lanes);
	free(dev);
}

struct virtio_dev *vblk_virtio_dev(struct vblk_dev *dev)
{
	return dev->vdev;
}

void vblk_set_info(struct vblk_dev *dev, const struct blk_info *info)
{
	bool changed = info->capacity != dev->info.capacity;
	bool ro = dev->info.read_only;
	uint32_t lbs = dev->info.logical_block_size, pbs = dev->info.physical_block_size;

	dev->info = *info;
	/* Offered features and block sizes stay fixed; read-only can only tighten. */
	dev->info.read_only = ro || info->read_only;
	dev->info.logical_block_size = lbs;
	dev->info.physical_block_size = pbs;
	if (changed)
		virtio_dev_config_changed(dev->vdev);
}

void vblk_set_lane_backend(struct vblk_dev *dev, unsigned int lane, void *be)
{
	dev->lanes[lane].be = be;
}

unsigned int vblk_num_lanes(const struct vblk_dev *dev)
{
	return dev->cfg.num_lanes;
}

void vblk_lane_get_stats(const struct vblk_dev *dev, unsigned int lane,
			 struct vblk_stats *ret_stats)
{
	*ret_stats = dev->lanes[lane].stats;
}

void vblk_get_stats(const struct vblk_dev *dev, struct vblk_stats *ret_stats)
{
	struct vblk_stats sum = { 0 };

	for (unsigned int i = 0; i < dev->cfg.num_lanes; i++) {
		const struct vblk_stats *s = &dev->lanes[i].stats;

		sum.read_reqs += s->read_reqs;
		sum.read_bytes += s->read_bytes;
		sum.write_reqs += s->write_reqs;
		sum.write_bytes += s->write_bytes;
		sum.flush_reqs += s->flush_reqs;
		sum.discard_reqs += s->discard_reqs;
		sum.write_zeroes_reqs += s->write_zeroes_reqs;
		sum.get_id_reqs += s->get_id_reqs;
		sum.io_errors += s->io_errors;
		sum.unsupported += s->unsupported;
		sum.ring_errors += s->ring_errors;
		sum.map_waits += s->map_waits;
		sum.interrupts += s->interrupts;
		sum.in_flight += s->in_flight;
	}
	*ret_stats = sum;
}

void vblk_save(const struct vblk_dev *dev, struct vblk_state *st)
{
	*st = (struct vblk_state){ .writeback = dev->writeback };
}

int vblk_restore(struct vblk_dev *dev, const struct vblk_state *st,
		 const struct virtio_dev_state *vst, size_t size)
{
	int r;

	if (st->writeback > 1)
		return -EINVAL;
	/* Set before the requests in flight are resubmitted: it decides their flushes. */
	dev->writeback = st->writeback;
	dev->restoring = true;
	r = virtio_dev_restore(dev->vdev, vst, size);
	dev->restoring = false;
	if (r < 0)
		dev->writeback = dev->info.write_cache ? 1 : 0;
	return r;
}
