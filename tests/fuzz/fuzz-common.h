/* SPDX-License-Identifier: GPL-2.0-only */
/* Shared by the libFuzzer targets: guest RAM transport and in-memory block backend. */
#ifndef VBLKD_FUZZ_COMMON_H
#define VBLKD_FUZZ_COMMON_H

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vblk.h"
#include "vmmio.h"

#define FZ_RAM (64u * 1024)
#define FZ_DISK (256u * 1024)

struct fz {
	uint8_t ram[FZ_RAM] __attribute__((aligned(4096)));
	uint8_t disk[FZ_DISK];
	long maps_live;
	struct virtio_transport t;
	struct blk_req *pending[4096];
	unsigned int npending;
	unsigned int depth;
	int fail;
	struct vblk_dev *dev;
	struct vmmio_dev *mmio;
};

static int fz_map(void *opaque, uint64_t gpa, uint64_t len, bool write, void **ret_ptr)
{
	struct fz *f = opaque;

	if (len == 0 || gpa + len - 1 < gpa)
		abort(); /* the device promised to check this */
	if (gpa >= FZ_RAM || len > FZ_RAM - gpa)
		return -EFAULT;
	f->maps_live++;
	*ret_ptr = f->ram + gpa;
	return 0;
}

static void fz_unmap(void *opaque, void *ptr, uint64_t len)
{
	struct fz *f = opaque;

	if ((uint8_t *)ptr < f->ram || (uint8_t *)ptr + len > f->ram + FZ_RAM)
		abort();
	f->maps_live--;
}

static void fz_notify(void *opaque)
{
}

static const struct virtio_transport_ops fz_tops = {
	.map = fz_map,
	.unmap = fz_unmap,
	.notify = fz_notify,
};

/* As Xen's grants: pieces up to 64 bytes by copy(), longer ones declined (mapped). */
static int fz_copy(void *opaque, const struct virtio_copy *c, unsigned int n)
{
	struct fz *f = opaque;

	for (unsigned int i = 0; i < n; i++) {
		if (c[i].len == 0 || c[i].gpa + c[i].len - 1 < c[i].gpa)
			abort(); /* the device promised to check this */
		if (c[i].len > 64)
			return -EOPNOTSUPP;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (c[i].gpa >= FZ_RAM || c[i].len > FZ_RAM - c[i].gpa)
			return -EFAULT;
		if (c[i].to_guest)
			memcpy(f->ram + c[i].gpa, c[i].buf, c[i].len);
		else
			memcpy(c[i].buf, f->ram + c[i].gpa, c[i].len);
	}
	return 0;
}

static const struct virtio_transport_ops fz_tops_copy = {
	.map = fz_map,
	.unmap = fz_unmap,
	.copy = fz_copy,
	.notify = fz_notify,
};

/* The next fz_new()'s transport copies small pieces (fz_tops_copy). */
static bool fz_copying;

static int fz_submit(void *opaque, struct blk_req *req)
{
	struct fz *f = opaque;

	if (f->npending >= 4096 || (f->depth && f->npending >= f->depth))
		return -EAGAIN;
	if (f->fail) {
		int r = f->fail;

		f->fail = 0;
		return r;
	}
	f->pending[f->npending++] = req;
	return 0;
}

static const struct vblk_backend_ops fz_bops = { .submit = fz_submit };

/* Execute like a real engine would, aborting on anything the device must never pass on. */
static int fz_exec(struct fz *f, struct blk_req *req)
{
	uint64_t off = req->offset, total = 0;

	switch (req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		for (unsigned int i = 0; i < req->iovcnt; i++) {
			if ((uint8_t *)req->iov[i].iov_base < f->ram ||
			    (uint8_t *)req->iov[i].iov_base + req->iov[i].iov_len > f->ram + FZ_RAM)
				abort();
			total += req->iov[i].iov_len;
		}
		if (off > FZ_DISK || total > FZ_DISK - off || total % 512)
			abort();
		for (unsigned int i = 0; i < req->iovcnt; i++) {
			if (req->op == BLK_OP_READ)
				memcpy(req->iov[i].iov_base, f->disk + off, req->iov[i].iov_len);
			else
				memcpy(f->disk + off, req->iov[i].iov_base, req->iov[i].iov_len);
			off += req->iov[i].iov_len;
		}
		return 0;
	case BLK_OP_FLUSH:
		return 0;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		if (off > FZ_DISK || req->len > FZ_DISK - off)
			abort();
		memset(f->disk + off, 0, req->len);
		return 0;
	}
	abort();
}

/* Complete everything pending (newest first when @reverse), then end the batch. */
static void fz_complete(struct fz *f, bool reverse, int res)
{
	while (f->npending) {
		struct blk_req *batch[4096];
		unsigned int n = f->npending;

		memcpy(batch, f->pending, n * sizeof(batch[0]));
		f->npending = 0;
		for (unsigned int i = 0; i < n; i++) {
			struct blk_req *r = batch[reverse ? n - 1 - i : i];
			int e = fz_exec(f, r);

			r->done(r, res ? res : e);
		}
	}
	vblk_complete_batch(f->dev);
}

/* One bench reused by every run: a fresh 300 KiB heap block per run made ASan the bottleneck. */
static struct fz fz_bench;

static struct fz *fz_new(unsigned int version, unsigned int nq, bool grants)
{
	struct fz *f = &fz_bench;
	struct vblk_config cfg = { 0 };

	memset(f, 0, sizeof(*f));
	f->t.ops = fz_copying ? &fz_tops_copy : &fz_tops;
	f->t.opaque = f;
	f->t.grants = grants;
	cfg.name = "fuzz";
	cfg.info.capacity = FZ_DISK;
	cfg.info.logical_block_size = 512;
	cfg.info.physical_block_size = 4096;
	cfg.info.discard = true;
	cfg.info.write_zeroes = true;
	cfg.info.write_cache = true;
	cfg.version = version;
	cfg.num_queues = nq;
	cfg.queue_num_max = 64;
	cfg.seg_max = 16;
	cfg.size_max = 16384;
	cfg.max_discard_sectors = 64;
	cfg.serial = "fuzz";
	if (vblk_create(&cfg, &f->t, &fz_bops, f, &f->dev) < 0)
		abort();
	if (vmmio_create(vblk_virtio_dev(f->dev), &f->mmio) < 0)
		abort();
	log_set_level(LOG_LEVEL_ERR);
	return f;
}

/* Destroy with whatever is in flight, then let the backend finish: nothing may leak or crash. */
static void fz_free(struct fz *f)
{
	vmmio_destroy(f->mmio);
	vblk_destroy(f->dev);
	while (f->npending) {
		struct blk_req *r = f->pending[--f->npending];

		r->done(r, -ECANCELED);
	}
	if (f->maps_live != 0)
		abort();
}

static void fz_wr(struct fz *f, uint32_t off, uint32_t v)
{
	vmmio_write(f->mmio, off, 4, v);
}

/* Modern handshake with @features & offered; queue @idx at the given addresses. */
static bool fz_handshake(struct fz *f, uint64_t features)
{
	uint64_t offered;

	fz_wr(f, 0x070, 1);
	fz_wr(f, 0x070, 3);
	fz_wr(f, 0x014, 0);
	offered = vmmio_read(f->mmio, 0x010, 4);
	fz_wr(f, 0x014, 1);
	offered |= vmmio_read(f->mmio, 0x010, 4) << 32;
	features &= offered;
	fz_wr(f, 0x024, 0);
	fz_wr(f, 0x020, (uint32_t)features);
	fz_wr(f, 0x024, 1);
	fz_wr(f, 0x020, (uint32_t)(features >> 32));
	fz_wr(f, 0x070, 11);
	return vmmio_read(f->mmio, 0x070, 4) & 8;
}

static void fz_queue(struct fz *f, unsigned int idx, uint32_t num, uint64_t desc, uint64_t drv,
		     uint64_t dev)
{
	fz_wr(f, 0x030, idx);
	fz_wr(f, 0x038, num);
	fz_wr(f, 0x080, (uint32_t)desc);
	fz_wr(f, 0x084, (uint32_t)(desc >> 32));
	fz_wr(f, 0x090, (uint32_t)drv);
	fz_wr(f, 0x094, (uint32_t)(drv >> 32));
	fz_wr(f, 0x0a0, (uint32_t)dev);
	fz_wr(f, 0x0a4, (uint32_t)(dev >> 32));
	fz_wr(f, 0x044, 1);
}

#endif
