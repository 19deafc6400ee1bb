// SPDX-License-Identifier: GPL-2.0-only
/* virtio-blk tests: request types with data verified, features, batching, reset, backpressure. */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "../lib/vtest.h"

#define NUM 64
/* Everything offered, on a split ring (the packed ring has its own tests). */
#define SPLIT (VT_ALL & ~VIRTIO_BIT(VIRTIO_F_RING_PACKED))

static struct vt *started(const struct vblk_config *cfg, uint64_t features)
{
	struct vt *vt = vt_new(cfg);

	assert_true(vt_start(vt, features, 1, NUM));
	assert_int_equal(vt_status(vt) & VIRTIO_STATUS_DRIVER_OK, VIRTIO_STATUS_DRIVER_OK);
	return vt;
}

static bool needs_reset(struct vt *vt)
{
	return vt_status(vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

/* Write a segment for DISCARD / WRITE_ZEROES. */
static uint64_t seg(struct vt *vt, uint64_t sector, uint32_t nsec, uint32_t flags)
{
	uint64_t g = fake_mem_alloc(&vt->mem, 16, 8);
	uint8_t *p = vt_ptr(vt, g);
	uint64_t s = htole64(sector);
	uint32_t n = htole32(nsec), f = htole32(flags);

	memcpy(p, &s, 8);
	memcpy(p + 8, &n, 4);
	memcpy(p + 12, &f, 4);
	return g;
}

static void test_write_then_read_round_trips(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t w = vt_fill(vt, 4096, 0x5a), r = vt_fill(vt, 4096, 0);

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 8, w, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt->be.data + 8 * 512, vt_ptr(vt, w), 4096);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 8, r, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt_ptr(vt, r), vt_ptr(vt, w), 4096);
	vt_free(vt);
}

static void test_read_used_len_counts_data_and_status(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t r = vt_fill(vt, 1024, 0), st;
	uint32_t id, len;

	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 0, r, 1024, &st);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_true(vt_used(vt, 0, &id, &len));
	assert_int_equal(len, 1025);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

/* §5.2.6: header, data and status may share or split descriptors in any layout. */
static void test_any_layout_header_data_status_split_oddly(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t area = fake_mem_alloc(&vt->mem, 16 + 1024, 8);
	uint64_t in = fake_mem_alloc(&vt->mem, 1024 + 1, 8);
	uint8_t *h = vt_ptr(vt, area);
	uint32_t t = htole32(VIRTIO_BLK_T_OUT), id, len;
	uint64_t s = htole64(2);

	memcpy(h, &t, 4);
	memcpy(h + 8, &s, 8);
	memset(h + 16, 0xab, 1024);
	/* header split 10 + 6, with the 6 sharing a descriptor with the first data bytes */
	struct vt_buf b[4] = {
		{ area, 10, false },
		{ area + 10, 6 + 100, false },
		{ area + 116, 924, false },
		{ in, 1, true },
	};
	*(uint8_t *)vt_ptr(vt, in) = 0xff;
	vt_add(vt, 0, b, 4, false);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_true(vt_used(vt, 0, &id, &len));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, in), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt->be.data + 1024, h + 16, 1024);

	/* and a read whose data and status share one writable descriptor */
	memcpy(h, &(uint32_t){ htole32(VIRTIO_BLK_T_IN) }, 4);
	struct vt_buf b2[2] = { { area, 16, false }, { in, 1025, true } };
	uint8_t *ip = vt_ptr(vt, in);
	ip[1024] = 0xff;
	vt_add(vt, 0, b2, 2, false);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_true(vt_used(vt, 0, &id, &len));
	assert_int_equal(ip[1024], VIRTIO_BLK_S_OK);
	assert_memory_equal(ip, vt->be.data + 1024, 1024);
	vt_free(vt);
}

static void test_flush_reaches_backend(void **state)
{
	struct vt *vt = started(NULL, SPLIT);

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.ops_seen[BLK_OP_FLUSH], 1);
	vt_free(vt);
}

static void test_get_id_returns_serial(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t id = vt_fill(vt, 20, 0xee);

	uint64_t st;
	uint32_t used_id, len;

	vt_blk(vt, 0, VIRTIO_BLK_T_GET_ID, 0, id, 20, &st);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_true(vt_used(vt, 0, &used_id, &len));
	assert_int_equal(len, 21);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt_ptr(vt, id), "vblkd-test-serial\0\0\0", 20);
	vt_free(vt);
}

static void test_get_id_short_buffer_gets_prefix(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t id = vt_fill(vt, 8, 0xee);

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_GET_ID, 0, id, 5), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt_ptr(vt, id), "vblkd\xee", 6);
	vt_free(vt);
}

static uint8_t dz(struct vt *vt, uint32_t type, uint64_t segs_gpa, uint32_t segs_len)
{
	return vt_blk_sync(vt, 0, type, 0, segs_gpa, segs_len);
}

static void test_discard_zeroes_range(void **state)
{
	struct vt *vt = started(NULL, SPLIT);

	memset(vt->be.data, 0x77, 8192);
	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, seg(vt, 2, 4, 0), 16), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.ops_seen[BLK_OP_DISCARD], 1);
	assert_int_equal(vt->be.data[2 * 512 - 1], 0x77);
	assert_int_equal(vt->be.data[2 * 512], 0);
	assert_int_equal(vt->be.data[6 * 512 - 1], 0);
	assert_int_equal(vt->be.data[6 * 512], 0x77);
	vt_free(vt);
}

static void test_write_zeroes_with_unmap_flag_may_unmap(void **state)
{
	struct vt *vt = started(NULL, SPLIT);

	memset(vt->be.data, 0x77, 4096);
	assert_int_equal(dz(vt, VIRTIO_BLK_T_WRITE_ZEROES, seg(vt, 1, 1, 1), 16), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.ops_seen[BLK_OP_WRITE_ZEROES], 1);
	assert_int_equal(vt->be.last_flags, BLK_REQ_MAY_UNMAP);
	assert_int_equal(vt->be.data[512], 0);
	assert_int_equal(vt->be.data[1024], 0x77);
	assert_int_equal(dz(vt, VIRTIO_BLK_T_WRITE_ZEROES, seg(vt, 1, 1, 0), 16), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.last_flags, 0);
	vt_free(vt);
}

static void test_discard_with_unmap_flag_unsupported(void **state)
{
	struct vt *vt = started(NULL, SPLIT);

	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, seg(vt, 0, 1, 1), 16), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(vt->be.submits, 0);
	vt_free(vt);
}

static void test_discard_unknown_flags_unsupported(void **state)
{
	struct vt *vt = started(NULL, SPLIT);

	assert_int_equal(dz(vt, VIRTIO_BLK_T_WRITE_ZEROES, seg(vt, 0, 1, 0x80), 16),
			 VIRTIO_BLK_S_UNSUPP);
	vt_free(vt);
}

static void test_discard_two_segments_over_limit_unsupported(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t s = seg(vt, 0, 1, 0);

	seg(vt, 4, 1, 0); /* adjacent: the second segment */
	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, s, 32), VIRTIO_BLK_S_UNSUPP);
	vt_free(vt);
}

static void test_discard_oversized_ioerr(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .max_discard_sectors = 8 };
	struct vt *vt = started(&cfg, SPLIT);

	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, seg(vt, 0, 9, 0), 16), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, seg(vt, 0, 8, 0), 16), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

static void test_discard_past_capacity_ioerr(void **state)
{
	struct vt *vt = started(NULL, SPLIT);

	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, seg(vt, 2047, 2, 0), 16), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, seg(vt, UINT64_MAX, 2, 0), 16),
			 VIRTIO_BLK_S_IOERR);
	vt_free(vt);
}

static void test_discard_segment_misshapen_ioerr(void **state)
{
	struct vt *vt = started(NULL, SPLIT);

	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, seg(vt, 0, 1, 0), 12), VIRTIO_BLK_S_IOERR);
	vt_free(vt);
}

static void test_discard_not_negotiated_unsupported(void **state)
{
	struct vt *vt = started(NULL, SPLIT & ~VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));

	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, seg(vt, 0, 1, 0), 16), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(vt->be.submits, 0);
	vt_free(vt);
}

static void test_discard_not_offered_without_backend_support(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info() };
	struct vt *vt;

	cfg.info.discard = false;
	cfg.info.write_zeroes = false;
	vt = started(&cfg, SPLIT);
	assert_false(vt->offered & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD));
	assert_false(vt->offered & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES));
	assert_int_equal(dz(vt, VIRTIO_BLK_T_WRITE_ZEROES, seg(vt, 0, 1, 0), 16),
			 VIRTIO_BLK_S_UNSUPP);
	vt_free(vt);
}

static void test_unknown_type_unsupported(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 512, 0);

	assert_int_equal(vt_blk_sync(vt, 0, 0x7777, 0, d, 512), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_GET_LIFETIME, 0, d, 512),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_SECURE_ERASE, 0, d, 512),
			 VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(vt->be.submits, 0);
	vt_free(vt);
}

static void test_read_past_capacity_ioerr(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 1024, 0);

	/* 1 MiB disk = 2048 sectors: the last sector is fine, one more is not. */
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 2047, d, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 2047, d, 1024), VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 2048, d, 512), VIRTIO_BLK_S_IOERR);
	vt_free(vt);
}

static void test_sector_overflow_ioerr(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 1024, 0);

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, UINT64_MAX, d, 1024),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, UINT64_MAX / 512, d, 1024),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt->be.submits, 0);
	vt_free(vt);
}

static void test_data_not_multiple_of_512_ioerr(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 1024, 0);

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 0, d, 513), VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, d, 100), VIRTIO_BLK_S_IOERR);
	vt_free(vt);
}

static void test_unaligned_to_logical_block_ioerr(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info() };
	struct vt *vt;
	uint64_t d;

	cfg.info.logical_block_size = 4096;
	vt = started(&cfg, SPLIT);
	d = vt_fill(vt, 8192, 1);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_BLK_SIZE, 4), 4096);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 1, d, 4096), VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 8, d, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 8, d, 8192), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

static void test_write_on_read_only_ioerr(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info() };
	struct vt *vt;
	uint64_t d;

	cfg.info.read_only = true;
	vt = started(&cfg, SPLIT);
	d = vt_fill(vt, 512, 0x11);
	assert_true(vt->offered & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, d, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dz(vt, VIRTIO_BLK_T_WRITE_ZEROES, seg(vt, 0, 1, 0), 16), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dz(vt, VIRTIO_BLK_T_DISCARD, seg(vt, 0, 1, 0), 16), VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt->be.data[0], 0);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 0, d, 512), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

static void test_missing_status_descriptor_needs_reset(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = vt_fill(vt, 16, 0), d = vt_fill(vt, 512, 0);
	struct vt_buf b[2] = { { h, 16, false }, { d, 512, false } };

	vt_add(vt, 0, b, 2, false);
	vt_kick(vt, 0);
	assert_true(needs_reset(vt));
	assert_true(vt_rd(vt, 0x060) & VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(vt->be.submits, 0);
	vt_free(vt);
}

static void test_status_in_device_readable_descriptor_needs_reset(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = vt_fill(vt, 16, 0), st = vt_fill(vt, 1, 0xff);
	struct vt_buf b[2] = { { h, 16, false }, { st, 1, false } };

	vt_add(vt, 0, b, 2, false);
	vt_kick(vt, 0);
	assert_true(needs_reset(vt));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), 0xff);
	vt_free(vt);
}

static void test_short_header_needs_reset(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = vt_fill(vt, 8, 0), st = vt_fill(vt, 1, 0xff);
	struct vt_buf b[2] = { { h, 8, false }, { st, 1, true } };

	vt_add(vt, 0, b, 2, false);
	vt_kick(vt, 0);
	assert_true(needs_reset(vt));
	vt_free(vt);
}

static void test_header_in_writable_descriptor_needs_reset(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = vt_fill(vt, 17, 0);
	struct vt_buf b[1] = { { h, 17, true } };

	vt_add(vt, 0, b, 1, false);
	vt_kick(vt, 0);
	assert_true(needs_reset(vt));
	vt_free(vt);
}

static void test_backend_submit_error_answers_ioerr(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 512, 0);

	vt->be.fail_submit = -EIO;
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 0, d, 512), VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 0, d, 512), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

static void write_sector_3(struct vt *vt)
{
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 3, vt_fill(vt, 512, 0), 512),
			 VIRTIO_BLK_S_IOERR);
}

static void flush(struct vt *vt)
{
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_IOERR);
}

/* The guest gets IOERR; the operator gets the operation, the sector and the reason. */
static void test_backend_completion_error_answers_ioerr(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	struct vblk_stats s;
	char *log;

	vt->be.fail_complete = -ENOSPC;
	log = vt_logged(write_sector_3, vt);
	assert_non_null(strstr(log, "write at sector 3 failed: No space left on device"));
	vblk_get_stats(vt->dev, &s);
	assert_int_equal(s.io_errors, 1);
	assert_int_equal(s.write_reqs, 0);
	vt->be.fail_complete = -EIO;
	log = vt_logged(flush, vt);
	assert_non_null(strstr(log, "flush failed: Input/output error"));
	vt_free(vt);
}

/* Backpressure: -EAGAIN stops taking from the ring; completions resume it; nothing is lost. */
static void test_backpressure_eagain_resumes_on_completion(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st[6];
	uint32_t id, len;
	unsigned int n = 0;

	vt->be.depth = 2;
	for (int i = 0; i < 6; i++) {
		uint64_t d = vt_fill(vt, 512, (uint8_t)i);

		vt_blk(vt, 0, VIRTIO_BLK_T_OUT, (uint64_t)i, d, 512, &st[i]);
	}
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 2);
	assert_int_equal(vt->be.unplugs, 1);
	/* each completion lets the device take the next request from inside done() */
	ram_be_complete(&vt->be, false);
	assert_int_equal(vt->be.npending, 2);
	ram_be_complete(&vt->be, true);
	vblk_complete_batch(vt->dev);
	while (vt_used(vt, 0, &id, &len))
		n++;
	assert_int_equal(n, 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(*(uint8_t *)vt_ptr(vt, st[i]), VIRTIO_BLK_S_OK);
		assert_int_equal(vt->be.data[i * 512], i);
	}
	vt_free(vt);
}

/*
 * Queues share the backend: queue 1 stopped by -EAGAIN caused by queue 0's
 * requests resumes on queue 0's completions (its driver, with EVENT_IDX,
 * would not notify again).
 */
static void test_backpressure_other_queue_resumes(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .num_queues = 2 };
	struct vt *vt = vt_new(&cfg);
	uint64_t st0[2], st1;
	uint32_t id, len;

	assert_true(vt_start(vt, SPLIT, 2, 64));
	vt->be.depth = 2;
	for (int i = 0; i < 2; i++)
		vt_blk(vt, 0, VIRTIO_BLK_T_OUT, (uint64_t)i, vt_fill(vt, 512, 1), 512, &st0[i]);
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 2);
	vt_blk(vt, 1, VIRTIO_BLK_T_OUT, 7, vt_fill(vt, 512, 2), 512, &st1);
	vt_kick(vt, 1);			/* the backend is full: queue 1 stops */
	assert_int_equal(vt->be.npending, 2);
	ram_be_complete(&vt->be, true);	/* queue 0's completions, then queue 1's request */
	vblk_complete_batch(vt->dev);
	while (vt_used(vt, 0, &id, &len))
		;
	assert_true(vt_used(vt, 1, &id, &len));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st1), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.data[7 * 512], 2);
	vt_free(vt);
}

/* After a reset, orphans filling the backend resume the new driver's stopped queue when they finish. */
static void test_backpressure_orphans_resume_new_queue(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st;
	uint32_t id, len;

	vt->be.depth = 2;
	for (int i = 0; i < 2; i++)
		vt_blk(vt, 0, VIRTIO_BLK_T_IN, (uint64_t)i, vt_fill(vt, 512, 0), 512, &st);
	vt_kick(vt, 0);
	vt_wr(vt, 0x070, 0);		/* reset: both reads become orphans */
	assert_true(vt_start(vt, SPLIT, 1, 64));
	vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 3, vt_fill(vt, 512, 3), 512, &st);
	vt_kick(vt, 0);			/* -EAGAIN: the orphans hold the backend */
	ram_be_complete(&vt->be, true);
	vblk_complete_batch(vt->dev);
	assert_true(vt_used(vt, 0, &id, &len));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.data[3 * 512], 3);
	vt_free(vt);
}

/*
 * A request larger than seg_max x size_max gets IOERR even from a driver
 * that negotiated neither limit: its size bounds the memory Dom0 spends.
 */
static void test_request_larger_than_limits_refused(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .seg_max = 2, .size_max = 4096 };
	uint64_t feats = SPLIT & ~(VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX));
	struct vt *vt = vt_new(&cfg);
	uint64_t big = vt_fill(vt, 16384, 0x5a), ok = vt_fill(vt, 8192, 0x6b);

	assert_true(vt_start(vt, feats, 1, NUM));
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, big, 16384), VIRTIO_BLK_S_IOERR);
	assert_int_equal(vt->be.data[0], 0);
	/* seg_max x size_max itself is fine. */
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, ok, 8192), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.data[0], 0x6b);
	vt_free(vt);
}

/* A reset with requests in the backend: the device says it is draining until they are done. */
static void test_reset_drains_before_driver_reuses_buffers(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 512, 0), st;

	memset(vt->be.data, 0xAA, 4096);
	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 0, d, 512, &st);
	vt_kick(vt, 0);
	assert_false(vblk_draining(vt->dev));
	vt_wr(vt, 0x070, 0);			/* reset with the read in flight */
	assert_true(vblk_draining(vt->dev));	/* the transport holds the reset write */
	ram_be_complete(&vt->be, true);		/* the read lands in its (old) buffer */
	assert_false(vblk_draining(vt->dev));	/* now the driver may reuse it */
	assert_int_equal(*(uint8_t *)vt_ptr(vt, d), 0xAA);
	/* Only QueueNotify is a write nobody waits on. */
	assert_true(vmmio_write_posted(0x050));
	assert_false(vmmio_write_posted(0x070));
	assert_false(vmmio_write_posted(0x044));
	vt_free(vt);
}

static void test_completions_in_any_order(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st[4];
	uint32_t ids[4], len;

	vt->be.reverse = true;
	for (int i = 0; i < 4; i++)
		vt_blk(vt, 0, VIRTIO_BLK_T_OUT, (uint64_t)i, vt_fill(vt, 512, (uint8_t)(i + 1)), 512,
		       &st[i]);
	vt_kick(vt, 0);
	vt_complete(vt);
	for (int i = 0; i < 4; i++)
		assert_true(vt_used(vt, 0, &ids[i], &len));
	/* heads were 0, 3, 6, 9 (3 descriptors each); reversed completion order */
	assert_int_equal(ids[0], 9);
	assert_int_equal(ids[3], 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(*(uint8_t *)vt_ptr(vt, st[i]), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

/* Batching: one used index update and one interrupt per batch. */
static void test_batch_publishes_once_with_one_interrupt(void **state)
{
	struct vt *vt = started(NULL, SPLIT & ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	uint64_t st;
	unsigned int before;

	for (int i = 0; i < 5; i++)
		vt_blk(vt, 0, VIRTIO_BLK_T_IN, (uint64_t)i, vt_fill(vt, 512, 0), 512, &st);
	vt_kick(vt, 0);
	before = vt->mem.notifies;
	ram_be_complete(&vt->be, true);
	/* completed but not published until the owner ends the batch */
	assert_int_equal(vt_used_idx(vt, 0), 0);
	assert_int_equal(vt->mem.notifies, before);
	vblk_complete_batch(vt->dev);
	assert_int_equal(vt_used_idx(vt, 0), 5);
	assert_int_equal(vt->mem.notifies, before + 1);
	assert_true(vt_rd(vt, 0x060) & VIRTIO_MMIO_INT_VRING);
	vblk_complete_batch(vt->dev);
	assert_int_equal(vt->mem.notifies, before + 1);
	vt_free(vt);
}

static void test_no_interrupt_flag_suppresses_interrupt(void **state)
{
	struct vt *vt = started(NULL, SPLIT & ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	unsigned int before = vt->mem.notifies;

	vt_avail(vt, 0)[0] = htole16(VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(vt_used_idx(vt, 0), 1);
	assert_int_equal(vt->mem.notifies, before);
	vt_free(vt);
}

static void test_event_idx_used_event_controls_interrupt(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint16_t *avail = vt_avail(vt, 0);
	unsigned int before = vt->mem.notifies;

	/* used_event = 1: no interrupt for the first used entry (idx 0 -> 1) ... */
	avail[2 + NUM] = htole16(1);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->mem.notifies, before);
	/* ... but one when the used index passes 1 (1 -> 2). */
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->mem.notifies, before + 1);
	/* NO_INTERRUPT is ignored with EVENT_IDX (§2.7.10): used_event rules. */
	vt_avail(vt, 0)[0] = htole16(VIRTQ_AVAIL_F_NO_INTERRUPT);
	avail[2 + NUM] = htole16(2);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->mem.notifies, before + 2);
	vt_free(vt);
}

static void test_event_idx_device_publishes_avail_event(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint16_t *avail_event = (uint16_t *)((uint8_t *)vt_ptr(vt, vt->q[0].device) + 4 + 8 * NUM);

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	/* the device asks to be kicked for the next entry it has not seen */
	assert_int_equal(le16toh(*avail_event), 2);
	vt_free(vt);
}

/* §2.7.10: what Linux's virtqueue_kick_prepare_split decides after moving avail->idx old -> new. */
static bool split_driver_kicks(struct vt *vt, unsigned int qi, uint16_t old, uint16_t new_idx)
{
	uint16_t *avail_event = (uint16_t *)((uint8_t *)vt_ptr(vt, vt->q[qi].device) + 4 + 8 * NUM);
	uint16_t event = le16toh(*avail_event);

	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

/*
 * While the device has requests in the backend it asks for no kicks (on Xen
 * each is a trap and a round trip through the daemon): a request added
 * meanwhile is taken at the next completion; once nothing is in flight, the
 * driver is asked to kick again.
 */
static void test_event_idx_no_kicks_while_requests_in_flight(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st[3];
	uint32_t id, len;

	vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 0, vt_fill(vt, 512, 0xa1), 512, &st[0]);
	assert_true(split_driver_kicks(vt, 0, 0, 1));
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 1);
	assert_int_equal(vt->be.quiets, 1);
	/* The driver adds two more and, following avail_event, does not kick. */
	vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 1, vt_fill(vt, 512, 0xa2), 512, &st[1]);
	assert_false(split_driver_kicks(vt, 0, 1, 2));
	vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 2, vt_fill(vt, 512, 0xa3), 512, &st[2]);
	assert_false(split_driver_kicks(vt, 0, 2, 3));
	assert_int_equal(vt->be.npending, 1);
	/* The first completion batch takes them. */
	ram_be_complete(&vt->be, false);
	vblk_complete_batch(vt->dev);
	assert_int_equal(vt->be.npending, 2);
	assert_true(vt_used(vt, 0, &id, &len));
	assert_false(split_driver_kicks(vt, 0, 3, 4));
	/* Nothing in flight any more: the next request is kicked for. */
	vt_complete(vt);
	assert_int_equal(vt->be.npending, 0);
	assert_true(split_driver_kicks(vt, 0, 3, 4));
	for (int i = 0; i < 3; i++) {
		assert_int_equal(*(uint8_t *)vt_ptr(vt, st[i]), VIRTIO_BLK_S_OK);
		assert_int_equal(vt->be.data[i * 512], 0xa1 + i);
	}
	vt_free(vt);
}

/*
 * A full ring of requests the device answers by itself (here UNSUPP types, in
 * indirect tables: one descriptor each): the device must still ask for the
 * driver's next kick, or the queue stops for good.
 */
static void test_full_ring_answered_inline_still_asks_for_kicks(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint32_t id, len;
	unsigned int n = 0;

	for (int i = 0; i < NUM; i++) {
		uint64_t hdr = fake_mem_alloc(&vt->mem, 16, 8), st = fake_mem_alloc(&vt->mem, 1, 1);
		struct vt_buf bufs[2] = { { hdr, 16, false }, { st, 1, true } };
		uint32_t t = htole32(0x7f);

		memcpy(vt_ptr(vt, hdr), &t, 4);
		assert_true(vt_add(vt, 0, bufs, 2, true) >= 0);
	}
	vt_kick(vt, 0);
	while (vt_used(vt, 0, &id, &len))
		n++;
	assert_int_equal(n, NUM);
	assert_true(split_driver_kicks(vt, 0, NUM, NUM + 1));
	vt_free(vt);
}

/* A request added while the only one in flight is slow is taken by vblk_poll(), not left waiting. */
static void test_poll_takes_requests_while_in_flight_is_slow(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	bool quiet = false;
	uint64_t st[2];

	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[0]);
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 1);
	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 0, vt_fill(vt, 512, 0), 512, &st[1]);
	assert_int_equal(vblk_poll(vt->dev, &quiet), 1);	/* took the read ... */
	assert_true(quiet);			/* ... and is still quiet: requests in flight */
	assert_int_equal(vt->be.npending, 2);
	assert_int_equal(vblk_poll(vt->dev, &quiet), 0);	/* nothing new */
	assert_true(quiet);
	vt_complete(vt);
	assert_int_equal(vblk_poll(vt->dev, &quiet), 0);
	assert_false(quiet);			/* nothing in flight: the owner may stop polling */
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st[0]), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st[1]), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

/*
 * The device's own poll policy: 500 us after a queue goes quiet; a poll that
 * finds a buffer arms it again, one that finds nothing asks the driver to kick
 * again (a slow flush in flight must not leave a new request waiting for a
 * timer, nor a hung backing store wake the daemon again and again).
 */
static void test_poll_timer_finding_nothing_asks_for_kicks(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	unsigned int quiets;
	uint64_t st[3];

	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[0]);
	vt_kick(vt, 0);
	assert_int_equal(vt->be.timer_us, 500);
	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 0, vt_fill(vt, 512, 0), 512, &st[1]);
	assert_false(split_driver_kicks(vt, 0, 1, 2));
	quiets = vt->be.quiets;
	vblk_timer_expired(vt->dev);		/* takes the read, stays quiet: armed again */
	assert_int_equal(vt->be.npending, 2);
	assert_int_equal(vt->be.quiets, quiets + 1);
	quiets = vt->be.quiets;
	vblk_timer_expired(vt->dev);		/* nothing new: kicks wanted, no timer */
	assert_int_equal(vt->be.quiets, quiets);
	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 1, vt_fill(vt, 512, 0), 512, &st[2]);
	assert_true(split_driver_kicks(vt, 0, 2, 3));
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 3);
	vt_complete(vt);
	for (int i = 0; i < 3; i++)
		assert_int_equal(*(uint8_t *)vt_ptr(vt, st[i]), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

/*
 * A queue stopped on a full backend waits for its completions, not for the
 * timer: an empty poll leaves it alone (no new timer, no kicks asked for),
 * and the next completion takes the rest.
 */
static void test_poll_timer_leaves_stalled_queue_to_completions(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	unsigned int quiets;
	uint64_t st[4];
	uint32_t id, len;
	unsigned int n = 0;

	vt->be.depth = 2;
	for (int i = 0; i < 4; i++)
		vt_blk(vt, 0, VIRTIO_BLK_T_OUT, (uint64_t)i, vt_fill(vt, 512, (uint8_t)(0x10 + i)),
		       512, &st[i]);
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 2);
	quiets = vt->be.quiets;
	vblk_timer_expired(vt->dev);		/* the backend is still full */
	assert_int_equal(vt->be.npending, 2);
	assert_int_equal(vt->be.quiets, quiets);
	assert_false(split_driver_kicks(vt, 0, 4, 5));
	ram_be_complete(&vt->be, true);
	vblk_complete_batch(vt->dev);
	ram_be_complete(&vt->be, true);
	vblk_complete_batch(vt->dev);
	while (vt_used(vt, 0, &id, &len))
		n++;
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(*(uint8_t *)vt_ptr(vt, st[i]), VIRTIO_BLK_S_OK);
		assert_int_equal(vt->be.data[i * 512], 0x10 + i);
	}
	vt_free(vt);
}

/* A device that needs a reset takes nothing more: its owner can stop polling. */
static void test_poll_stops_when_device_needs_reset(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st;
	bool quiet = false;

	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st);
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 1);
	vt_avail_push(vt, 0, NUM + 5);	/* a head out of range: a ring violation */
	vblk_poll(vt->dev, &quiet);
	assert_true(needs_reset(vt));
	assert_false(quiet);
	vt_complete(vt);
	vt_free(vt);
}

/* §2.7.7: without EVENT_IDX the device sets VIRTQ_USED_F_NO_NOTIFY while it is busy. */
static void test_no_notify_flag_while_requests_in_flight(void **state)
{
	struct vt *vt = started(NULL, SPLIT & ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	uint16_t *used_flags = vt_ptr(vt, vt->q[0].device);
	uint64_t st[2];

	assert_int_equal(le16toh(*used_flags) & VIRTQ_USED_F_NO_NOTIFY, 0);
	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[0]);
	vt_kick(vt, 0);
	assert_int_equal(le16toh(*used_flags) & VIRTQ_USED_F_NO_NOTIFY, VIRTQ_USED_F_NO_NOTIFY);
	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[1]);
	vt_complete(vt);	/* takes the second on the first's completion, and completes it */
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st[1]), VIRTIO_BLK_S_OK);
	assert_int_equal(le16toh(*used_flags) & VIRTQ_USED_F_NO_NOTIFY, 0);
	vt_free(vt);
}

/* §2.8.10: the packed ring's device event suppression says DISABLE while the device is busy. */
static void test_packed_events_disabled_while_requests_in_flight(void **state)
{
	struct vt *vt = started(NULL, VT_ALL);
	uint16_t *dev_event = vt_ptr(vt, vt->q[0].device);
	uint64_t st[2];

	assert_true(vt->q[0].packed);
	assert_int_equal(le16toh(dev_event[1]), VIRTQ_EVENT_F_ENABLE);
	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[0]);
	vt_kick(vt, 0);
	assert_int_equal(le16toh(dev_event[1]), VIRTQ_EVENT_F_DISABLE);
	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[1]);
	vt_complete(vt);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st[1]), VIRTIO_BLK_S_OK);
	assert_int_equal(le16toh(dev_event[1]), VIRTQ_EVENT_F_ENABLE);
	vt_free(vt);
}

/*
 * Busy polling by the owner's loop: between begin and end the driver is told
 * not to kick (on Xen a kick is a trap), and vblk_busy_poll() takes what it
 * adds; end asks for kicks again.
 */
static void test_busy_poll_driver_need_not_kick(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st;

	assert_true(split_driver_kicks(vt, 0, 0, 1));
	vblk_busy_poll_begin(vt->dev);
	assert_false(vblk_busy_poll(vt->dev));		/* nothing there yet */
	vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 0, vt_fill(vt, 512, 0xb1), 512, &st);
	assert_false(split_driver_kicks(vt, 0, 0, 1));
	assert_true(vblk_busy_poll(vt->dev));		/* taken without a kick */
	assert_int_equal(vt->be.npending, 1);
	vt_complete(vt);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.data[0], 0xb1);
	/* Nothing in flight and still polling: still no kicks wanted. */
	assert_false(split_driver_kicks(vt, 0, 1, 2));
	assert_false(vblk_busy_poll_end(vt->dev));
	assert_true(split_driver_kicks(vt, 0, 1, 2));
	vt_free(vt);
}

/* A buffer added between the last poll and the end is taken by the end, not left waiting for a kick. */
static void test_busy_poll_end_takes_what_arrived(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st;

	vblk_busy_poll_begin(vt->dev);
	assert_false(vblk_busy_poll(vt->dev));
	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 0, vt_fill(vt, 512, 0), 512, &st);
	assert_true(vblk_busy_poll_end(vt->dev));
	assert_int_equal(vt->be.npending, 1);
	vt_complete(vt);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	/* The completion found nothing more: kicks wanted again. */
	assert_true(split_driver_kicks(vt, 0, 1, 2));
	vt_free(vt);
}

/* At the end a queue with requests in the backend stays quiet: their completions look at the ring. */
static void test_busy_poll_end_leaves_busy_queue_quiet(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st[2];

	vblk_busy_poll_begin(vt->dev);
	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[0]);
	assert_true(vblk_busy_poll(vt->dev));
	assert_false(vblk_busy_poll_end(vt->dev));
	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[1]);
	assert_false(split_driver_kicks(vt, 0, 1, 2));
	vt_complete(vt);			/* takes the second, and completes it */
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st[0]), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st[1]), VIRTIO_BLK_S_OK);
	assert_true(split_driver_kicks(vt, 0, 2, 3));
	vt_free(vt);
}

/* §2.8.10: on a packed ring busy polling says DISABLE, and its end ENABLE. */
static void test_busy_poll_packed_event_flags(void **state)
{
	struct vt *vt = started(NULL, VT_ALL);
	uint16_t *dev_event = vt_ptr(vt, vt->q[0].device);
	uint64_t st;

	assert_true(vt->q[0].packed);
	vblk_busy_poll_begin(vt->dev);
	assert_int_equal(le16toh(dev_event[1]), VIRTQ_EVENT_F_DISABLE);
	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st);
	assert_true(vblk_busy_poll(vt->dev));
	vt_complete(vt);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_int_equal(le16toh(dev_event[1]), VIRTQ_EVENT_F_DISABLE);
	assert_false(vblk_busy_poll_end(vt->dev));
	assert_int_equal(le16toh(dev_event[1]), VIRTQ_EVENT_F_ENABLE);
	vt_free(vt);
}

/* A device that needs a reset is not polled: a broken ring is not read again. */
static void test_busy_poll_skips_device_needing_reset(void **state)
{
	struct vt *vt = started(NULL, SPLIT);

	vblk_busy_poll_begin(vt->dev);
	vt_avail_push(vt, 0, NUM + 5);	/* a head out of range */
	vblk_busy_poll(vt->dev);
	assert_true(needs_reset(vt));
	assert_false(vblk_busy_poll(vt->dev));
	assert_false(vblk_busy_poll_end(vt->dev));
	assert_int_equal(vt->be.npending, 0);
	vt_free(vt);
}

/* §2.4: reset with requests in flight; they finish later without touching the new rings. */
static void test_reset_with_requests_in_flight(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 512, 0), st;
	struct vblk_stats s;

	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 0, d, 512, &st);
	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 1, d, 512, &st);
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 2);
	vt_wr(vt, 0x070, 0);
	assert_int_equal(vt_status(vt), 0);
	/* new driver instance, new rings */
	assert_true(vt_start(vt, SPLIT, 1, NUM));
	ram_be_complete(&vt->be, true);
	vblk_complete_batch(vt->dev);
	assert_int_equal(vt_used_idx(vt, 0), 0);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), 0xff); /* orphan status not written */
	vblk_get_stats(vt->dev, &s);
	assert_int_equal(s.in_flight, 0);
	/* only the three ring mappings of the new queue remain */
	assert_int_equal(vt->mem.maps_live, 3);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

static void test_queue_ready_zero_with_requests_in_flight(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st;

	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 0, vt_fill(vt, 512, 0), 512, &st);
	vt_kick(vt, 0);
	vt_wr(vt, 0x030, 0);
	vt_wr(vt, 0x044, 0);
	assert_int_equal(vt_rd(vt, 0x044), 0);
	vt_complete(vt);
	assert_int_equal(vt->mem.maps_live, 0);
	vt_free(vt);
}

static void test_destroy_with_requests_in_flight(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t st;

	for (int i = 0; i < 3; i++)
		vt_blk(vt, 0, VIRTIO_BLK_T_OUT, (uint64_t)i, vt_fill(vt, 512, 9), 512, &st);
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 3);
	vblk_destroy(vt->dev);
	vt->dev = NULL;
	ram_be_complete(&vt->be, true); /* must not touch freed memory (ASan) */
	assert_int_equal(vt->mem.maps_live, 0);
	vt_free(vt);
}

/* §5.2.5: with writeback = 0 every write is followed by a flush before it completes. */
static void test_writethrough_mode_flushes_each_write(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t d;

	assert_true(vt_features(vt, VT_ALL));
	vmmio_write(vt->mmio, 0x100 + VBLK_CFG_WRITEBACK, 1, 0);
	vt_queue_setup(vt, 0, NUM);
	vt_driver_ok(vt);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_WRITEBACK, 1), 0);
	d = vt_fill(vt, 512, 3);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, d, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.ops_seen[BLK_OP_WRITE], 1);
	assert_int_equal(vt->be.ops_seen[BLK_OP_FLUSH], 1);
	vmmio_write(vt->mmio, 0x100 + VBLK_CFG_WRITEBACK, 1, 1);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, d, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.ops_seen[BLK_OP_FLUSH], 1);
	vt_free(vt);
}

static void test_without_flush_feature_writes_are_flushed(void **state)
{
	struct vt *vt = started(NULL, SPLIT & ~VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, vt_fill(vt, 512, 1), 512),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.ops_seen[BLK_OP_FLUSH], 1);
	vt_free(vt);
}

static void test_multiqueue_requests_on_second_queue(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .num_queues = 3 };
	struct vt *vt = vt_new(&cfg);
	uint64_t d;

	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_NUM_QUEUES, 2), 3);
	assert_true(vt_start(vt, SPLIT, 3, NUM));
	d = vt_fill(vt, 512, 0x42);
	assert_int_equal(vt_blk_sync(vt, 2, VIRTIO_BLK_T_OUT, 5, d, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.data[5 * 512], 0x42);
	assert_int_equal(vt_used_idx(vt, 0), 0);
	assert_int_equal(vt_used_idx(vt, 2), 1);
	vt_free(vt);
}

/* ---- lanes: one device's queues on two threads (vblk.h "Lanes") ---- */

#define LANE_ROUNDS 64
#define LANE_BATCH 8
#define LANE_SECTORS 1024	/* each lane's part of the 1 MiB disk */

struct lane_run {
	struct vt *vt;
	struct ram_be *be;
	unsigned int lane;		/* = its queue */
	uint64_t hdr, st, data;		/* LANE_BATCH of each, allocated before the threads run */
	bool broken;			/* then offer a request without a status byte */
	pthread_barrier_t *done;	/* ... once both lanes are through their rounds */
	unsigned int bad_status, used;
};

static void lane_add_write(struct lane_run *r, unsigned int k, uint64_t sector)
{
	uint8_t *h = vt_ptr(r->vt, r->hdr + 16 * k), *d = vt_ptr(r->vt, r->data + 512 * k);
	uint32_t t = htole32(VIRTIO_BLK_T_OUT);
	uint64_t s = htole64(sector);
	struct vt_buf bufs[3] = {
		{ r->hdr + 16 * k, 16, false },
		{ r->data + 512 * k, 512, false },
		{ r->st + k, 1, true },
	};

	memcpy(h, &t, 4);
	memset(h + 4, 0, 4);
	memcpy(h + 8, &s, 8);
	memset(d, (int)(sector & 0xff) ^ (int)r->lane, 512);
	*(uint8_t *)vt_ptr(r->vt, r->st + k) = 0xff;
	assert_true(vt_add(r->vt, r->lane, bufs, 3, false) >= 0);
}

/* One lane's thread: rounds of LANE_BATCH writes to its queue, completed on its backend. */
static void *lane_thread(void *arg)
{
	struct lane_run *r = arg;
	uint32_t id, len;

	for (unsigned int round = 0; round < LANE_ROUNDS; round++) {
		unsigned int got = 0;

		for (unsigned int k = 0; k < LANE_BATCH; k++)
			lane_add_write(r, k, r->lane * LANE_SECTORS + round * LANE_BATCH + k);
		vt_kick(r->vt, r->lane);
		while (got < LANE_BATCH) {
			ram_be_complete(r->be, true);
			vblk_lane_complete_batch(r->vt->dev, r->lane);
			while (vt_used(r->vt, r->lane, &id, &len))
				got++;
		}
		for (unsigned int k = 0; k < LANE_BATCH; k++)
			r->bad_status += *(uint8_t *)vt_ptr(r->vt, r->st + k) != VIRTIO_BLK_S_OK;
		r->used += got;
	}
	pthread_barrier_wait(r->done);
	if (r->broken) {
		struct vt_buf hdr_only = { r->hdr, 16, false };

		vt_add(r->vt, r->lane, &hdr_only, 1, false);
		vt_kick(r->vt, r->lane);
	}
	return NULL;
}

static struct vt *lanes_vt(struct ram_be *be1, struct lane_run *runs)
{
	struct vblk_config cfg = { .info = vt_default_info(), .num_queues = 2, .num_lanes = 2 };
	struct vt *vt = vt_new(&cfg);

	assert_int_equal(vblk_num_lanes(vt->dev), 2);
	assert_true(vt_start(vt, SPLIT, 2, NUM));
	/* Lane 1's own backend, over the same disk. */
	*be1 = (struct ram_be){ .data = vt->be.data, .size = vt->be.size };
	vblk_set_lane_backend(vt->dev, 1, be1);
	for (unsigned int i = 0; i < 2; i++)
		runs[i] = (struct lane_run){
			.vt = vt, .be = i ? be1 : &vt->be, .lane = i,
			.hdr = fake_mem_alloc(&vt->mem, 16 * LANE_BATCH, 16),
			.st = fake_mem_alloc(&vt->mem, LANE_BATCH, 1),
			.data = fake_mem_alloc(&vt->mem, 512 * LANE_BATCH, 512),
		};
	return vt;
}

static void lanes_run(struct lane_run *runs)
{
	pthread_barrier_t done;
	pthread_t th[2];

	pthread_barrier_init(&done, NULL, 2);
	for (unsigned int i = 0; i < 2; i++) {
		runs[i].done = &done;
		assert_int_equal(pthread_create(&th[i], NULL, lane_thread, &runs[i]), 0);
	}
	for (unsigned int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	pthread_barrier_destroy(&done);
}

/*
 * Two threads serve one device's two queues at once, each with its own
 * backend: every write lands, each backend saw only its queue's requests,
 * the counters add up, interrupts were raised (ThreadSanitizer: make
 * check-tsan runs this binary too).
 */
static void test_lanes_two_threads_serve_their_queues(void **state)
{
	struct ram_be be1;
	struct lane_run runs[2];
	struct vt *vt = lanes_vt(&be1, runs);
	struct vblk_stats st, l0;
	unsigned int n = LANE_ROUNDS * LANE_BATCH;
	long rings = vt->mem.maps_live;	/* the queues' rings stay mapped */

	lanes_run(runs);
	for (unsigned int i = 0; i < 2; i++) {
		assert_int_equal(runs[i].used, n);
		assert_int_equal(runs[i].bad_status, 0);
		for (unsigned int j = 0; j < n; j++) {
			uint64_t sector = i * LANE_SECTORS + j;

			assert_int_equal(vt->be.data[sector * 512 + 511], (uint8_t)((sector & 0xff) ^ i));
		}
	}
	assert_int_equal(vt->be.submits, n);
	assert_int_equal(be1.submits, n);
	vblk_get_stats(vt->dev, &st);
	vblk_lane_get_stats(vt->dev, 0, &l0);
	assert_int_equal(st.write_reqs, 2 * n);
	assert_int_equal(l0.write_reqs, n);
	assert_int_equal(st.in_flight, 0);
	assert_true(vt->mem.notifies > 0);
	assert_int_equal(vt->mem.maps_live, rings);
	assert_false(needs_reset(vt));
	vt_free(vt);
}

/*
 * Both lanes break their rings at about the same time: DEVICE_NEEDS_RESET
 * and the config interrupt, set by whichever comes first (the other may
 * find the device stopped before it looks at its ring).
 */
static void test_lanes_both_break_needs_reset_once(void **state)
{
	struct ram_be be1;
	struct lane_run runs[2];
	struct vt *vt = lanes_vt(&be1, runs);
	struct vblk_stats st;
	uint64_t stat;

	runs[0].broken = runs[1].broken = true;
	lanes_run(runs);
	assert_true(needs_reset(vt));
	vblk_get_stats(vt->dev, &st);
	assert_in_range(st.ring_errors, 1, 2);
	assert_int_equal(vt_rd(vt, 0x060) & VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_CONFIG);
	/* A reset brings both queues back. */
	vt_wr(vt, 0x070, 0);
	assert_true(vt_start(vt, SPLIT, 2, NUM));
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 15, vt_fill(vt, 512, 0), 512),
			 VIRTIO_BLK_S_OK);
	vt_blk(vt, 1, VIRTIO_BLK_T_IN, 1500, vt_fill(vt, 512, 0), 512, &stat);
	vt_kick(vt, 1);
	assert_int_equal(ram_be_complete(&be1, true), 1);	/* on lane 1's backend */
	vblk_lane_complete_batch(vt->dev, 1);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, stat), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

/* Queues go to lanes round-robin; more lanes than queues are as many as the queues. */
static void test_lanes_capped_at_queues(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .num_queues = 2, .num_lanes = 5 };
	struct vt *vt = vt_new(&cfg);

	assert_int_equal(vblk_num_lanes(vt->dev), 2);
	vt_free(vt);
}

static void test_stats_count_requests_bytes_errors(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 2048, 1);
	struct vblk_stats s;

	vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, d, 2048);
	vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 0, d, 1024);
	vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 4096, d, 512);
	vt_blk_sync(vt, 0, 99, 0, d, 512);
	vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	vblk_get_stats(vt->dev, &s);
	assert_int_equal(s.write_reqs, 1);
	assert_int_equal(s.write_bytes, 2048);
	assert_int_equal(s.read_reqs, 1);
	assert_int_equal(s.read_bytes, 1024);
	assert_int_equal(s.io_errors, 1);
	assert_int_equal(s.unsupported, 1);
	assert_int_equal(s.flush_reqs, 1);
	assert_int_equal(s.in_flight, 0);
	vt_free(vt);
}

static void test_capacity_growth_bumps_generation_and_interrupts(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	struct blk_info info = vt_default_info();
	uint32_t gen = vt_rd(vt, 0x0fc);
	unsigned int before = vt->mem.notifies;
	uint64_t d = vt_fill(vt, 512, 0);

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 2048, d, 512), VIRTIO_BLK_S_IOERR);
	vblk_set_info(vt->dev, &info); /* unchanged: nothing happens */
	assert_int_equal(vt_rd(vt, 0x0fc), gen);
	info.capacity *= 2;
	vblk_set_info(vt->dev, &info);
	assert_int_not_equal(vt_rd(vt, 0x0fc), gen);
	assert_true(vt_rd(vt, 0x060) & VIRTIO_MMIO_INT_CONFIG);
	assert_true(vt->mem.notifies > before);
	assert_int_equal(vmmio_read(vt->mmio, 0x100, 8), 4096);
	vt->be.size = 0; /* the RAM backend keeps its 1 MiB: only check the device accepts it */
	vt->be.size = 1 << 20;
	vt_free(vt);
}

static void test_indirect_request_round_trips(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = fake_mem_alloc(&vt->mem, 16, 8), d = vt_fill(vt, 1024, 0x3c), st = vt_fill(vt, 1, 0xff);
	uint32_t t = htole32(VIRTIO_BLK_T_OUT), id, len;
	struct vt_buf b[4] = { { h, 16, false }, { d, 512, false }, { d + 512, 512, false },
			       { st, 1, true } };

	memcpy(vt_ptr(vt, h), &t, 4);
	vt_add(vt, 0, b, 4, true);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_true(vt_used(vt, 0, &id, &len));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt->be.data, vt_ptr(vt, d), 1024);
	vt_free(vt);
}

static void test_packed_ring_round_trips(void **state)
{
	struct vt *vt = started(NULL, VT_ALL);
	uint64_t w = vt_fill(vt, 1024, 0x99), r = vt_fill(vt, 1024, 0);

	assert_true(virtio_dev_has_feature(vt->vdev, VIRTIO_F_RING_PACKED));
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 3, w, 1024), VIRTIO_BLK_S_OK);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 3, r, 1024), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt_ptr(vt, r), vt_ptr(vt, w), 1024);
	vt_free(vt);
}

static void test_legacy_layout_round_trips(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .version = 1 };
	struct vt *vt = vt_new(&cfg);
	uint64_t w, r;

	assert_int_equal(vt_rd(vt, 0x004), 1);
	vt_wr(vt, 0x070, VIRTIO_STATUS_ACKNOWLEDGE);
	vt_wr(vt, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vt_wr(vt, 0x014, 0);
	vt_wr(vt, 0x020, vt_rd(vt, 0x010));
	vt_queue_setup_legacy(vt, 0, NUM);
	assert_int_not_equal(vt_rd(vt, 0x040), 0);
	vt_driver_ok(vt);
	assert_false(needs_reset(vt));
	w = vt_fill(vt, 1024, 0x61);
	r = vt_fill(vt, 1024, 0);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 7, w, 1024), VIRTIO_BLK_S_OK);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 7, r, 1024), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt_ptr(vt, r), vt_ptr(vt, w), 1024);
	vt_free(vt);
}

static void test_seg_max_exceeded_needs_reset(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .seg_max = 2 };
	struct vt *vt = started(&cfg, SPLIT);
	uint64_t h = fake_mem_alloc(&vt->mem, 16, 8), d = vt_fill(vt, 1536, 0), st = vt_fill(vt, 1, 0xff);
	struct vt_buf b[5] = { { h, 16, false }, { d, 512, true }, { d + 512, 512, true },
			       { d + 1024, 512, true }, { st, 1, true } };

	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_SEG_MAX, 4), 2);
	vt_add(vt, 0, b, 5, false);
	vt_kick(vt, 0);
	assert_true(needs_reset(vt));
	assert_int_equal(vt->mem.maps_live, 3);
	vt_free(vt);
}

static void test_size_max_exceeded_needs_reset(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .size_max = 4096 };
	struct vt *vt = started(&cfg, SPLIT);
	uint64_t d = vt_fill(vt, 8192, 0);

	vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 0, d, 8192);
	assert_true(needs_reset(vt));
	vt_free(vt);
}

/* A broken guest cannot affect another device. */
static void test_broken_device_does_not_affect_another(void **state)
{
	struct vt *a = started(NULL, SPLIT), *b = started(NULL, SPLIT);
	uint64_t h = vt_fill(a, 16, 0);
	struct vt_buf bad[1] = { { h, 16, false } };

	vt_add(a, 0, bad, 1, false);
	vt_kick(a, 0);
	assert_true(needs_reset(a));
	assert_false(needs_reset(b));
	assert_int_equal(vt_blk_sync(b, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	/* and the broken one recovers after a reset */
	assert_true(vt_start(a, SPLIT, 1, NUM));
	assert_int_equal(vt_blk_sync(a, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	vt_free(a);
	vt_free(b);
}

static void test_requests_ignored_after_needs_reset(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = vt_fill(vt, 16, 0);
	struct vt_buf bad[1] = { { h, 16, false } };

	vt_add(vt, 0, bad, 1, false);
	vt_kick(vt, 0);
	assert_true(needs_reset(vt));
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), 0xff);
	assert_int_equal(vt->be.submits, 0);
	vt_free(vt);
}

static void test_grants_offer_access_platform(void **state)
{
	struct vt *vt = vt_new_grants(NULL, true);

	assert_true(vt_features(vt, VT_ALL));
	assert_true(vt->offered & VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM));
	/* a driver that ignores the grant addressing is refused (§6.1) */
	assert_false(vt_features(vt, VT_ALL & ~VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM)));
	vt_free(vt);
	vt = vt_new(NULL);
	vt_features(vt, VT_ALL);
	assert_false(vt->offered & VIRTIO_BIT(VIRTIO_F_ACCESS_PLATFORM));
	vt_free(vt);
}

static void test_disabled_features_not_offered(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(),
				   .disable_features = VIRTIO_BIT(VIRTIO_F_RING_PACKED) |
						       VIRTIO_BIT(VIRTIO_BLK_F_MQ) };
	struct vt *vt = vt_new(&cfg);

	vt_features(vt, VT_ALL);
	assert_false(vt->offered & VIRTIO_BIT(VIRTIO_F_RING_PACKED));
	assert_false(vt->offered & VIRTIO_BIT(VIRTIO_BLK_F_MQ));
	assert_true(vt->offered & VIRTIO_BIT(VIRTIO_F_VERSION_1));
	assert_false(vt_features_raw(vt, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
					     VIRTIO_BIT(VIRTIO_F_RING_PACKED), false));
	vt_free(vt);
}

static void test_zero_length_read_completes_ok(void **state)
{
	struct vt *vt = started(NULL, SPLIT);

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->be.submits, 0);
	vt_free(vt);
}

/* Without SIZE_MAX/SEG_MAX negotiated the device takes what the queue size allows. */
/* Not negotiated, the per-segment limits do not apply (only the total, seg_max x size_max). */
static void test_limits_not_negotiated_allow_larger_requests(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .seg_max = 4, .size_max = 4096 };
	struct vt *vt = started(&cfg, SPLIT & ~(VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
						VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX)));
	uint64_t h = fake_mem_alloc(&vt->mem, 16, 8), d = vt_fill(vt, 16384, 0), st = vt_fill(vt, 1, 0xff);
	struct vt_buf b[6] = { { h, 16, false },	  { d, 8192, true },
			       { d + 8192, 2048, true }, { d + 10240, 2048, true },
			       { d + 12288, 4096, true }, { st, 1, true } };
	uint32_t id, len;

	memset(vt->be.data, 0x1f, 16384);
	vt_add(vt, 0, b, 6, false);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_true(vt_used(vt, 0, &id, &len));
	assert_int_equal(len, 16385);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, d + 16383), 0x1f);
	vt_free(vt);
}

static void test_config_reports_block_topology(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .size_max = 65536, .seg_max = 30 };
	struct vt *vt;

	cfg.info.logical_block_size = 4096;
	cfg.info.physical_block_size = 16384;
	vt = vt_new(&cfg);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_SIZE_MAX, 4), 65536);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_SEG_MAX, 4), 30);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_BLK_SIZE, 4), 4096);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_PHYS_BLOCK_EXP, 1), 2);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_MIN_IO_SIZE, 2), 4);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_DISCARD_ALIGN, 4), 8);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_WZ_MAY_UNMAP, 1), 1);
	vt_free(vt);
}

/* A full ring of requests answered without the backend is taken in one notify. */
static void test_full_ring_of_immediate_answers_in_one_kick(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .queue_num_max = 8 };
	struct vt *vt = vt_new(&cfg);
	uint64_t h = fake_mem_alloc(&vt->mem, 16, 8), st = vt_fill(vt, 8, 0xff);
	unsigned int n = 0;
	uint32_t id, len, t = htole32(77);

	assert_true(vt_start(vt, SPLIT, 1, 8));
	memcpy(vt_ptr(vt, h), &t, 4);
	for (int i = 0; i < 4; i++) {
		struct vt_buf b[2] = { { h, 16, false }, { st + (uint64_t)i, 1, true } };

		vt_add(vt, 0, b, 2, false);
	}
	vt_kick(vt, 0);
	while (vt_used(vt, 0, &id, &len))
		n++;
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(*(uint8_t *)vt_ptr(vt, st + (uint64_t)i), VIRTIO_BLK_S_UNSUPP);
	vt_free(vt);
}

static void test_read_only_flag_tightens_on_set_info(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	struct blk_info info = vt_default_info();

	info.read_only = true;
	vblk_set_info(vt->dev, &info);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, vt_fill(vt, 512, 1), 512),
			 VIRTIO_BLK_S_IOERR);
	vt_free(vt);
}

/* ---- hostile shapes: only what a request type uses is mapped, within budgets ---------------- */

/* A 16-byte request header in guest memory. */
static uint64_t hdr(struct vt *vt, uint32_t type, uint64_t sector)
{
	uint64_t g = fake_mem_alloc(&vt->mem, 16, 16);
	uint32_t t = htole32(type);
	uint64_t s = htole64(sector);

	memcpy(vt_ptr(vt, g), &t, 4);
	memcpy((uint8_t *)vt_ptr(vt, g) + 8, &s, 8);
	return g;
}

/* A status byte, preset to 0xff (unanswered). */
static uint64_t status_byte(struct vt *vt)
{
	uint64_t g = fake_mem_alloc(&vt->mem, 1, 1);

	*(uint8_t *)vt_ptr(vt, g) = 0xff;
	return g;
}

/* Add @n buffers as one chain on queue 0 and kick. */
static void add_kick(struct vt *vt, const struct vt_buf *b, unsigned int n, bool indirect)
{
	assert_true(vt_add(vt, 0, b, n, indirect) >= 0);
	vt_kick(vt, 0);
}

/*
 * Junk buffers the request type does not use lie in memory the transport
 * refuses to map: a device that maps them breaks the ring (-EFAULT); one that
 * leaves them alone answers OK.
 */
static uint64_t junk(struct vt *vt, uint32_t len)
{
	uint64_t g = fake_mem_alloc(&vt->mem, len, 4096);

	vt->mem.fail_gpa = g;
	vt->mem.fail_len = len;
	return g;
}

static void test_in_readable_junk_never_mapped(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = hdr(vt, VIRTIO_BLK_T_IN, 2), d = vt_fill(vt, 4096, 0), st = status_byte(vt);
	uint64_t j = junk(vt, 8192);

	memset(vt->be.data + 1024, 0x3c, 4096);
	add_kick(vt, (struct vt_buf[]){ { h, 16, false }, { j, 4096, false }, { j + 4096, 4096, false },
					{ d, 4096, true }, { st, 1, true } }, 5, true);
	vt_complete(vt);
	assert_false(needs_reset(vt));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt_ptr(vt, d), vt->be.data + 1024, 4096);
	assert_int_equal(vt->mem.maps_live, 3);
	vt_free(vt);
}

static void test_out_writable_junk_never_mapped(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = hdr(vt, VIRTIO_BLK_T_OUT, 4), d = vt_fill(vt, 1024, 0x77), st = status_byte(vt);
	uint64_t j = junk(vt, 4096);

	add_kick(vt, (struct vt_buf[]){ { h, 16, false }, { d, 1024, false }, { j, 4096, true },
					{ st, 1, true } }, 4, false);
	vt_complete(vt);
	assert_false(needs_reset(vt));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt->be.data + 4 * 512, vt_ptr(vt, d), 1024);
	vt_free(vt);
}

static void test_flush_extra_buffers_never_mapped(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = hdr(vt, VIRTIO_BLK_T_FLUSH, 0), st = status_byte(vt), j = junk(vt, 65536);

	add_kick(vt, (struct vt_buf[]){ { h, 16, false }, { j, 32768, false }, { j + 32768, 32768, true },
					{ st, 1, true } }, 4, true);
	/* In flight: the FLUSH holds its status byte, nothing of the junk. */
	assert_int_equal(vt->be.npending, 1);
	assert_int_equal(vt->mem.maps_live, 3 + 1);
	vt_complete(vt);
	assert_false(needs_reset(vt));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_int_equal(vt->mem.maps_live, 3);
	vt_free(vt);
}

static void test_get_id_extra_buffers_never_mapped(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = hdr(vt, VIRTIO_BLK_T_GET_ID, 0), id = vt_fill(vt, 20, 0), st = status_byte(vt);
	uint64_t j = junk(vt, 4096);

	add_kick(vt, (struct vt_buf[]){ { h, 16, false }, { j, 512, false }, { id, 20, true },
					{ j + 512, 512, true }, { st, 1, true } }, 5, false);
	vt_complete(vt);
	assert_false(needs_reset(vt));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt_ptr(vt, id), "vblkd-test-serial", 17);
	vt_free(vt);
}

/*
 * Without SIZE_MAX a segment may be as long as the driver likes (within
 * seg_max x size_max for the request): it is served in pieces the transport
 * can map, cut at multiples of max_map, never refused, never a broken ring.
 */
static void test_segment_longer_than_transport_map_served_in_pieces(void **state)
{
	struct vt *vt = vt_new_max_map(NULL, 4096);
	uint64_t h, d, st;

	assert_true(vt_start(vt, SPLIT & ~VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX), 1, NUM));
	h = hdr(vt, VIRTIO_BLK_T_IN, 0);
	d = fake_mem_alloc(&vt->mem, 65536 + 4096, 4096) + 512;	/* odd offset: 17 pieces */
	st = status_byte(vt);
	for (unsigned int i = 0; i < 65536; i++)
		vt->be.data[i] = (uint8_t)(i * 7 + (i >> 9));
	add_kick(vt, (struct vt_buf[]){ { h, 16, false }, { d, 65536, true }, { st, 1, true } }, 3,
		 false);
	assert_int_equal(vt->mem.maps_live, 3 + 1 + 17);
	vt_complete(vt);
	assert_false(needs_reset(vt));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt_ptr(vt, d), vt->be.data, 65536);
	/* and a write of the same shape */
	memset(vt_ptr(vt, d), 0xe1, 65536);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 0, d, 65536), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt->be.data, vt_ptr(vt, d), 65536);
	vt_free(vt);
}

/*
 * One notify does a bounded amount of mapping: a ring full of requests that
 * each need many mappings is taken over several passes, the device asking
 * its owner (resume()) to come back once the loop has served others.
 */
static void test_pass_budget_leaves_rest_for_next_pass(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .queue_num_max = 256 };
	struct vt *vt = vt_new_max_map(&cfg, 4096);
	unsigned int n = 200, first, passes = 1;
	uint64_t d, st[200];

	assert_true(vt_start(vt, SPLIT, 1, 256));
	d = vt_fill(vt, 65536, 0x11);	/* 16 pieces of 4 KiB, 18 mappings with header and status */
	for (unsigned int i = 0; i < n; i++) {
		uint64_t h = hdr(vt, VIRTIO_BLK_T_OUT, (uint64_t)(i % 16) * 128);

		st[i] = status_byte(vt);
		assert_true(vt_add(vt, 0, (struct vt_buf[]){ { h, 16, false }, { d, 65536, false },
							     { st[i], 1, true } }, 3, true) >= 0);
	}
	vt_kick(vt, 0);
	first = vt->be.submits;
	assert_true(first > 0 && first < n);
	assert_int_equal(vt->be.resumes, 1);
	while (vt->be.submits < n && passes < 10) {
		bool quiet;

		vblk_poll(vt->dev, &quiet);
		passes++;
	}
	assert_int_equal(vt->be.submits, n);
	assert_true(passes >= 2);
	vt_complete(vt);
	for (unsigned int i = 0; i < n; i++)
		assert_int_equal(*(uint8_t *)vt_ptr(vt, st[i]), VIRTIO_BLK_S_OK);
	assert_false(needs_reset(vt));
	vt_free(vt);
}

/*
 * The guest's mapping budget is used up (-ENOBUFS): requests wait as at a
 * full queue, and go on when completions release mappings; no IOERR, no reset.
 */
static void test_mapping_budget_waits_for_completions(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d1 = vt_fill(vt, 4096, 1), d2 = vt_fill(vt, 4096, 2), s1, s2;
	struct vblk_stats s;

	vt->mem.maps_limit = 3 + 2;	/* the rings and one request (status + data) */
	vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 0, d1, 4096, &s1);
	vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 8, d2, 4096, &s2);
	*(uint8_t *)vt_ptr(vt, s2) = 0xff;
	vt_kick(vt, 0);
	assert_int_equal(vt->be.submits, 1);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, s2), 0xff);
	vblk_get_stats(vt->dev, &s);
	assert_true(s.map_waits >= 1);
	vt_complete(vt);	/* the first completes; its mappings let the second through */
	assert_int_equal(vt->be.submits, 2);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, s1), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, s2), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt->be.data + 8 * 512, vt_ptr(vt, d2), 4096);
	assert_int_equal(s.io_errors, 0);
	assert_false(needs_reset(vt));
	assert_true(vt->mem.maps_peak <= 5);
	vt_free(vt);
}

/* With nothing of its own in flight the queue waits quietly; the owner's poll takes it up later. */
static void test_mapping_budget_waits_with_nothing_in_flight(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 4096, 3), st;
	unsigned int quiets = vt->be.quiets;
	bool quiet = false;

	vt->mem.maps_limit = 3;	/* another disk of the guest holds the rest */
	vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 0, d, 4096, &st);
	*(uint8_t *)vt_ptr(vt, st) = 0xff;
	vt_kick(vt, 0);
	assert_int_equal(vt->be.submits, 0);
	assert_int_equal(vt->be.quiets, quiets + 1);	/* the owner is asked to poll */
	assert_int_equal(vblk_poll(vt->dev, &quiet), 0);
	assert_true(quiet);
	vt->mem.maps_limit = 0;	/* room again */
	vblk_poll(vt->dev, &quiet);
	vt_complete(vt);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_false(needs_reset(vt));
	vt_free(vt);
}

/* A host out of memory while mapping is not the driver's fault: no NEEDS_RESET, the request waits. */
static void test_host_enomem_when_mapping_is_not_a_ring_error(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t d = vt_fill(vt, 4096, 4), st;
	struct vblk_stats s;
	bool quiet;

	vt->mem.fail_gpa = d;
	vt->mem.fail_len = 4096;
	vt->mem.fail_err = -ENOMEM;
	vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 0, d, 4096, &st);
	*(uint8_t *)vt_ptr(vt, st) = 0xff;
	vt_kick(vt, 0);
	assert_false(needs_reset(vt));
	vblk_get_stats(vt->dev, &s);
	assert_int_equal(s.ring_errors, 0);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), 0xff);
	vt->mem.fail_len = 0;
	vblk_poll(vt->dev, &quiet);
	vt_complete(vt);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

/* A data buffer outside guest memory still breaks the ring, as it did when it was mapped at pop. */
static void test_data_outside_guest_memory_needs_reset(void **state)
{
	struct vt *vt = started(NULL, SPLIT);
	uint64_t h = hdr(vt, VIRTIO_BLK_T_IN, 0), st = status_byte(vt), j = junk(vt, 4096);

	add_kick(vt, (struct vt_buf[]){ { h, 16, false }, { j, 4096, true }, { st, 1, true } }, 3,
		 false);
	assert_true(needs_reset(vt));
	assert_int_equal(vt->be.submits, 0);
	assert_int_equal(vt->mem.maps_live, 3);
	vt_free(vt);
}

/*
 * Each buffer may be cut twice by the transport's max_map (a small buffer
 * across a boundary is two pieces): a legal read whose every data buffer
 * straddles one is still served, not refused for want of room to map it.
 */
static void test_every_buffer_across_a_map_boundary_served(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .seg_max = 2, .size_max = 4096 };
	struct vt *vt = vt_new_max_map(&cfg, 4096);
	uint64_t h, area, st;
	struct vt_buf b[8];
	unsigned int i;

	/* Without SEG_MAX/SIZE_MAX a chain may have as many buffers as the queue has entries. */
	assert_true(vt_start(vt, SPLIT & ~(VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
					   VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX)), 1, 8));
	h = hdr(vt, VIRTIO_BLK_T_IN, 0);
	area = fake_mem_alloc(&vt->mem, 8 * 4096, 4096);
	b[0] = (struct vt_buf){ h, 16, false };
	/* Seven data buffers of 1 KiB, each across a 4 KiB boundary; the last holds the status. */
	for (i = 0; i < 7; i++)
		b[1 + i] = (struct vt_buf){ area + 4096 * (i + 1) - 512, i < 6 ? 1024 : 1025, true };
	st = b[7].gpa + 1024;
	*(uint8_t *)vt_ptr(vt, st) = 0xff;
	for (i = 0; i < 7 * 1024; i++)
		vt->be.data[i] = (uint8_t)(i * 13 + (i >> 10));
	assert_true(vt_add(vt, 0, b, 8, true) >= 0);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_false(needs_reset(vt));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	for (i = 0; i < 7; i++)
		assert_memory_equal(vt_ptr(vt, b[1 + i].gpa), vt->be.data + 1024 * i, 1024);
	vt_free(vt);
}

/* ---- a transport that copies small pieces (Xen's grants): header and status by copy() -------- */

static struct vt *started_copying(void)
{
	struct vt *vt = vt_new_copying(NULL);

	assert_true(vt_start(vt, SPLIT, 1, NUM));
	return vt;
}

/* A request's header and status byte cost copies, not mappings: only the data is mapped. */
static void test_copying_transport_maps_only_data(void **state)
{
	struct vt *vt = started_copying();
	uint64_t w = vt_fill(vt, 4096, 0x6b), r = vt_fill(vt, 4096, 0);
	unsigned long maps0 = vt->mem.maps_total;

	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 16, w, 4096), VIRTIO_BLK_S_OK);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_IN, 16, r, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt->be.data + 16 * 512, vt_ptr(vt, w), 4096);
	assert_memory_equal(vt_ptr(vt, r), vt_ptr(vt, w), 4096);
	assert_int_equal(vt->mem.maps_total - maps0, 2);
	/* Per request: the header and the status byte (it must be the guest's) in one call, the status at the end. */
	assert_int_equal(vt->mem.copies_total, 4);
	vt_free(vt);
}

/* The status byte the guest offered is not its memory: the ring is broken before any IO. */
static void test_copying_transport_bad_status_breaks_ring_before_io(void **state)
{
	struct vt *vt = started_copying();
	uint64_t h = hdr(vt, VIRTIO_BLK_T_OUT, 2), d = vt_fill(vt, 4096, 0x11);
	uint64_t st = fake_mem_alloc(&vt->mem, 4096, 4096);

	vt->mem.fail_gpa = st;
	vt->mem.fail_len = 1;
	add_kick(vt, (struct vt_buf[]){ { h, 16, false }, { d, 4096, false }, { st, 1, true } }, 3, false);
	assert_true(needs_reset(vt));
	assert_int_equal(vt->be.submits, 0);
	assert_int_equal(vt->be.data[2 * 512], 0);
	vt_free(vt);
}

/*
 * The status byte goes away while the request is in the backend (a grant the
 * guest ended early): the request cannot be answered, the ring is broken,
 * nothing stays mapped, and the device takes nothing more until a reset.
 */
static void test_copying_transport_status_gone_at_completion(void **state)
{
	struct vt *vt = started_copying();
	uint64_t h = hdr(vt, VIRTIO_BLK_T_IN, 4), d = vt_fill(vt, 4096, 0);
	uint64_t st = fake_mem_alloc(&vt->mem, 4096, 4096);
	uint32_t id, len;

	add_kick(vt, (struct vt_buf[]){ { h, 16, false }, { d, 4096, true }, { st, 1, true } }, 3, false);
	assert_int_equal(vt->be.submits, 1);
	vt->mem.fail_gpa = st;
	vt->mem.fail_len = 1;
	vt_complete(vt);
	assert_true(needs_reset(vt));
	assert_false(vt_used(vt, 0, &id, &len));
	/* The rings' mappings only. */
	assert_int_equal(vt->mem.maps_live, 3);
	vt_free(vt);
}

/* Pieces the transport declines to copy are mapped, as with a transport that never copies. */
static void test_copying_transport_declined_pieces_mapped(void **state)
{
	struct vt *vt = started_copying();
	uint64_t w = vt_fill(vt, 4096, 0x2d);
	unsigned long maps0 = vt->mem.maps_total;

	vt->mem.copy_max = 8;
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_OUT, 24, w, 4096), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt->be.data + 24 * 512, vt_ptr(vt, w), 4096);
	/* The header (16 bytes) declined: status, header and data mapped; the status written there. */
	assert_int_equal(vt->mem.maps_total - maps0, 3);
	assert_int_equal(vt->mem.copies_total, 0);
	vt_free(vt);
}

/* A header split over two descriptors is not one range: the request is served the mapped way. */
static void test_copying_transport_split_header_mapped(void **state)
{
	struct vt *vt = started_copying();
	uint64_t h = hdr(vt, VIRTIO_BLK_T_OUT, 6), d = vt_fill(vt, 4096, 0x4e), st = status_byte(vt);

	add_kick(vt, (struct vt_buf[]){ { h, 8, false }, { h + 8, 8, false }, { d, 4096, false },
					{ st, 1, true } }, 4, false);
	vt_complete(vt);
	assert_false(needs_reset(vt));
	assert_int_equal(*(uint8_t *)vt_ptr(vt, st), VIRTIO_BLK_S_OK);
	assert_memory_equal(vt->be.data + 6 * 512, vt_ptr(vt, d), 4096);
	vt_free(vt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_then_read_round_trips),
		cmocka_unit_test(test_read_used_len_counts_data_and_status),
		cmocka_unit_test(test_any_layout_header_data_status_split_oddly),
		cmocka_unit_test(test_flush_reaches_backend),
		cmocka_unit_test(test_get_id_returns_serial),
		cmocka_unit_test(test_get_id_short_buffer_gets_prefix),
		cmocka_unit_test(test_discard_zeroes_range),
		cmocka_unit_test(test_write_zeroes_with_unmap_flag_may_unmap),
		cmocka_unit_test(test_discard_with_unmap_flag_unsupported),
		cmocka_unit_test(test_discard_unknown_flags_unsupported),
		cmocka_unit_test(test_discard_two_segments_over_limit_unsupported),
		cmocka_unit_test(test_discard_oversized_ioerr),
		cmocka_unit_test(test_discard_past_capacity_ioerr),
		cmocka_unit_test(test_discard_segment_misshapen_ioerr),
		cmocka_unit_test(test_discard_not_negotiated_unsupported),
		cmocka_unit_test(test_discard_not_offered_without_backend_support),
		cmocka_unit_test(test_unknown_type_unsupported),
		cmocka_unit_test(test_read_past_capacity_ioerr),
		cmocka_unit_test(test_sector_overflow_ioerr),
		cmocka_unit_test(test_data_not_multiple_of_512_ioerr),
		cmocka_unit_test(test_unaligned_to_logical_block_ioerr),
		cmocka_unit_test(test_write_on_read_only_ioerr),
		cmocka_unit_test(test_missing_status_descriptor_needs_reset),
		cmocka_unit_test(test_status_in_device_readable_descriptor_needs_reset),
		cmocka_unit_test(test_short_header_needs_reset),
		cmocka_unit_test(test_header_in_writable_descriptor_needs_reset),
		cmocka_unit_test(test_backend_submit_error_answers_ioerr),
		cmocka_unit_test(test_backend_completion_error_answers_ioerr),
		cmocka_unit_test(test_backpressure_eagain_resumes_on_completion),
		cmocka_unit_test(test_backpressure_other_queue_resumes),
		cmocka_unit_test(test_backpressure_orphans_resume_new_queue),
		cmocka_unit_test(test_request_larger_than_limits_refused),
		cmocka_unit_test(test_reset_drains_before_driver_reuses_buffers),
		cmocka_unit_test(test_completions_in_any_order),
		cmocka_unit_test(test_batch_publishes_once_with_one_interrupt),
		cmocka_unit_test(test_no_interrupt_flag_suppresses_interrupt),
		cmocka_unit_test(test_event_idx_used_event_controls_interrupt),
		cmocka_unit_test(test_event_idx_device_publishes_avail_event),
		cmocka_unit_test(test_event_idx_no_kicks_while_requests_in_flight),
		cmocka_unit_test(test_full_ring_answered_inline_still_asks_for_kicks),
		cmocka_unit_test(test_poll_takes_requests_while_in_flight_is_slow),
		cmocka_unit_test(test_poll_timer_finding_nothing_asks_for_kicks),
		cmocka_unit_test(test_poll_timer_leaves_stalled_queue_to_completions),
		cmocka_unit_test(test_poll_stops_when_device_needs_reset),
		cmocka_unit_test(test_no_notify_flag_while_requests_in_flight),
		cmocka_unit_test(test_busy_poll_driver_need_not_kick),
		cmocka_unit_test(test_busy_poll_end_takes_what_arrived),
		cmocka_unit_test(test_busy_poll_end_leaves_busy_queue_quiet),
		cmocka_unit_test(test_busy_poll_packed_event_flags),
		cmocka_unit_test(test_busy_poll_skips_device_needing_reset),
		cmocka_unit_test(test_packed_events_disabled_while_requests_in_flight),
		cmocka_unit_test(test_reset_with_requests_in_flight),
		cmocka_unit_test(test_queue_ready_zero_with_requests_in_flight),
		cmocka_unit_test(test_destroy_with_requests_in_flight),
		cmocka_unit_test(test_writethrough_mode_flushes_each_write),
		cmocka_unit_test(test_without_flush_feature_writes_are_flushed),
		cmocka_unit_test(test_multiqueue_requests_on_second_queue),
		cmocka_unit_test(test_lanes_two_threads_serve_their_queues),
		cmocka_unit_test(test_lanes_both_break_needs_reset_once),
		cmocka_unit_test(test_lanes_capped_at_queues),
		cmocka_unit_test(test_stats_count_requests_bytes_errors),
		cmocka_unit_test(test_capacity_growth_bumps_generation_and_interrupts),
		cmocka_unit_test(test_indirect_request_round_trips),
		cmocka_unit_test(test_packed_ring_round_trips),
		cmocka_unit_test(test_legacy_layout_round_trips),
		cmocka_unit_test(test_seg_max_exceeded_needs_reset),
		cmocka_unit_test(test_size_max_exceeded_needs_reset),
		cmocka_unit_test(test_broken_device_does_not_affect_another),
		cmocka_unit_test(test_requests_ignored_after_needs_reset),
		cmocka_unit_test(test_grants_offer_access_platform),
		cmocka_unit_test(test_disabled_features_not_offered),
		cmocka_unit_test(test_zero_length_read_completes_ok),
		cmocka_unit_test(test_limits_not_negotiated_allow_larger_requests),
		cmocka_unit_test(test_config_reports_block_topology),
		cmocka_unit_test(test_full_ring_of_immediate_answers_in_one_kick),
		cmocka_unit_test(test_read_only_flag_tightens_on_set_info),
		cmocka_unit_test(test_in_readable_junk_never_mapped),
		cmocka_unit_test(test_copying_transport_maps_only_data),
		cmocka_unit_test(test_copying_transport_bad_status_breaks_ring_before_io),
		cmocka_unit_test(test_copying_transport_status_gone_at_completion),
		cmocka_unit_test(test_copying_transport_declined_pieces_mapped),
		cmocka_unit_test(test_copying_transport_split_header_mapped),
		cmocka_unit_test(test_out_writable_junk_never_mapped),
		cmocka_unit_test(test_flush_extra_buffers_never_mapped),
		cmocka_unit_test(test_get_id_extra_buffers_never_mapped),
		cmocka_unit_test(test_segment_longer_than_transport_map_served_in_pieces),
		cmocka_unit_test(test_every_buffer_across_a_map_boundary_served),
		cmocka_unit_test(test_pass_budget_leaves_rest_for_next_pass),
		cmocka_unit_test(test_mapping_budget_waits_for_completions),
		cmocka_unit_test(test_mapping_budget_waits_with_nothing_in_flight),
		cmocka_unit_test(test_host_enomem_when_mapping_is_not_a_ring_error),
		cmocka_unit_test(test_data_outside_guest_memory_needs_reset),
	};

	log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
