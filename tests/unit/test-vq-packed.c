// SPDX-License-Identifier: GPL-2.0-only
/* Packed virtqueue tests (§2.8): wrap counters, indirect, event suppression, hostile drivers. */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "../lib/vtest.h"

#define NUM 4
#define F_NEXT VIRTQ_DESC_F_NEXT
#define F_WRITE VIRTQ_DESC_F_WRITE
#define F_IND VIRTQ_DESC_F_INDIRECT
#define F_AVAIL VIRTQ_DESC_F_AVAIL
#define F_USED VIRTQ_DESC_F_USED

struct bench {
	struct vt *vt;
	uint64_t hdr, data, st;
};

static struct bench *setup_feat(uint64_t features, uint16_t num)
{
	struct bench *b = calloc(1, sizeof(*b));
	uint32_t t = htole32(VIRTIO_BLK_T_IN);

	b->vt = vt_new(NULL);
	assert_true(vt_start(b->vt, features, 1, num));
	assert_true(b->vt->q[0].packed);
	b->hdr = fake_mem_alloc(&b->vt->mem, 16, 16);
	memcpy(fake_mem_ptr(&b->vt->mem, b->hdr), &t, 4);
	b->data = fake_mem_alloc(&b->vt->mem, 4096, 4096);
	b->st = fake_mem_alloc(&b->vt->mem, 1, 1);
	*(uint8_t *)fake_mem_ptr(&b->vt->mem, b->st) = 0xff;
	return b;
}

static int setup(void **state)
{
	*state = setup_feat(VT_ALL, NUM);
	return 0;
}

static int teardown(void **state)
{
	struct bench *b = *state;

	vt_free(b->vt);
	free(b);
	return 0;
}

static struct virtq_packed_desc *ring(struct bench *b)
{
	return fake_mem_ptr(&b->vt->mem, b->vt->q[0].desc);
}

/* Write ring slot @i; AVAIL/USED bits for the first lap (wrap counter 1). */
static void pdesc(struct bench *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t id,
		  uint16_t flags)
{
	struct virtq_packed_desc *d = &ring(b)[i];

	d->addr = htole64(addr);
	d->len = htole32(len);
	d->id = htole16(id);
	d->flags = htole16(flags | F_AVAIL);
}

static uint8_t status(struct bench *b)
{
	return *(uint8_t *)fake_mem_ptr(&b->vt->mem, b->st);
}

static void go(struct bench *b)
{
	vt_kick(b->vt, 0);
	vt_complete(b->vt);
}

static void assert_broken(struct bench *b)
{
	assert_true(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(vt_rd(b->vt, 0x060) & VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(b->vt->be.submits, 0);
	assert_int_equal(status(b), 0xff);
	assert_int_equal(b->vt->mem.maps_live, 3);
	assert_true(vt_start(b->vt, VT_ALL, 1, NUM));
	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
}

static void test_many_requests_wrap_the_ring(void **state)
{
	struct bench *b = *state;
	uint64_t d = b->data;

	for (unsigned int i = 0; i < 40; i++) {
		memset(fake_mem_ptr(&b->vt->mem, d), (int)i, 512);
		assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_OUT, i % 16, d, 512),
				 VIRTIO_BLK_S_OK);
		assert_int_equal(b->vt->be.data[(i % 16) * 512], i);
	}
	assert_false(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void test_chain_wraps_inside_ring(void **state)
{
	struct bench *b = *state;
	uint64_t r = b->data;

	/* one FLUSH (2 slots), so the next 3-slot chain starts at slot 2 and wraps */
	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	memset(b->vt->be.data, 0x5c, 512);
	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_IN, 0, r, 512), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)fake_mem_ptr(&b->vt->mem, r + 511), 0x5c);
	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_IN, 0, r, 512), VIRTIO_BLK_S_OK);
}

static void test_indirect_request(void **state)
{
	struct bench *b = *state;
	struct vt_buf bufs[3] = { { b->hdr, 16, false }, { b->data, 1024, true }, { b->st, 1, true } };
	uint32_t id, len;

	memset(b->vt->be.data, 0x21, 1024);
	vt_add(b->vt, 0, bufs, 3, true);
	go(b);
	assert_true(vt_used(b->vt, 0, &id, &len));
	assert_int_equal(len, 1025);
	assert_int_equal(status(b), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)fake_mem_ptr(&b->vt->mem, b->data + 1023), 0x21);
}

static void test_out_of_order_completion(void **state)
{
	struct bench *b = *state;
	uint64_t st[2];
	uint32_t id, len;

	b->vt->be.reverse = true;
	vt_blk(b->vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[0]);
	vt_blk(b->vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st[1]);
	go(b);
	assert_true(vt_used(b->vt, 0, &id, &len));
	assert_int_equal(id, 1);
	assert_true(vt_used(b->vt, 0, &id, &len));
	assert_int_equal(id, 0);
	assert_false(vt_used(b->vt, 0, &id, &len));
}

static void test_descriptor_not_yet_available_is_left_alone(void **state)
{
	struct bench *b = *state;

	pdesc(b, 0, b->hdr, 16, 0, F_NEXT);
	pdesc(b, 1, b->st, 1, 0, F_WRITE);
	/* AVAIL and USED both set = a used descriptor in lap 1: not for the device */
	ring(b)[0].flags = htole16(F_NEXT | F_AVAIL | F_USED);
	go(b);
	assert_int_equal(b->vt->be.submits, 0);
	assert_false(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void test_buffer_id_out_of_range(void **state)
{
	struct bench *b = *state;

	pdesc(b, 1, b->st, 1, NUM, F_WRITE);
	pdesc(b, 0, b->hdr, 16, NUM, F_NEXT);
	go(b);
	assert_broken(b);
}

static void test_buffer_id_already_in_flight(void **state)
{
	struct bench *b = *state;
	uint32_t flush = htole32(VIRTIO_BLK_T_FLUSH);

	/* a FLUSH stays in the backend, so its id is still the device's */
	memcpy(fake_mem_ptr(&b->vt->mem, b->hdr), &flush, 4);
	pdesc(b, 0, b->hdr, 16, 1, F_NEXT);
	pdesc(b, 1, b->st, 1, 1, F_WRITE);
	pdesc(b, 2, b->hdr, 16, 1, F_NEXT);
	pdesc(b, 3, b->st, 1, 1, F_WRITE);
	vt_kick(b->vt, 0);
	assert_true(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(b->vt->be.submits, 1);
	vt_complete(b->vt);
	assert_int_equal(b->vt->mem.maps_live, 3);
}

static void test_chain_longer_than_ring(void **state)
{
	struct bench *b = *state;

	/* every slot says NEXT and the wrapped-around slot 0 still looks available */
	pdesc(b, 1, b->data, 16, 0, F_NEXT | F_WRITE);
	pdesc(b, 2, b->data, 16, 0, F_NEXT | F_WRITE);
	pdesc(b, 3, b->data, 16, 0, F_NEXT | F_WRITE);
	pdesc(b, 0, b->hdr, 16, 0, F_NEXT);
	go(b);
	assert_true(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(b->vt->be.submits, 0);
	assert_int_equal(b->vt->mem.maps_live, 3);
}

static void test_readable_after_writable(void **state)
{
	struct bench *b = *state;

	pdesc(b, 1, b->st, 1, 0, F_WRITE | F_NEXT);
	pdesc(b, 2, b->data, 512, 0, 0);
	pdesc(b, 0, b->hdr, 16, 0, F_NEXT);
	go(b);
	assert_broken(b);
}

static void test_buffer_outside_guest_memory(void **state)
{
	struct bench *b = *state;

	pdesc(b, 1, 1ull << 42, 1, 0, F_WRITE);
	pdesc(b, 0, b->hdr, 16, 0, F_NEXT);
	go(b);
	assert_broken(b);
}

static void test_zero_length_buffer(void **state)
{
	struct bench *b = *state;

	pdesc(b, 1, b->st, 0, 0, F_WRITE);
	pdesc(b, 0, b->hdr, 16, 0, F_NEXT);
	go(b);
	assert_broken(b);
}

static uint64_t ptable(struct bench *b, unsigned int n, struct virtq_packed_desc **ret)
{
	uint64_t g = fake_mem_alloc(&b->vt->mem, 16ull * n, 16);

	*ret = fake_mem_ptr(&b->vt->mem, g);
	return g;
}

static void tset(struct virtq_packed_desc *t, unsigned int i, uint64_t addr, uint32_t len,
		 uint16_t flags)
{
	t[i].addr = htole64(addr);
	t[i].len = htole32(len);
	t[i].id = 0;
	t[i].flags = htole16(flags);
}

static void test_indirect_nested(void **state)
{
	struct bench *b = *state;
	struct virtq_packed_desc *t;
	uint64_t g = ptable(b, 2, &t);

	tset(t, 0, b->hdr, 16, 0);
	tset(t, 1, g, 32, F_IND);
	pdesc(b, 0, g, 32, 0, F_IND);
	go(b);
	assert_broken(b);
}

static void test_indirect_with_next(void **state)
{
	struct bench *b = *state;
	struct virtq_packed_desc *t;
	uint64_t g = ptable(b, 2, &t);

	tset(t, 0, b->hdr, 16, 0);
	tset(t, 1, b->st, 1, F_WRITE);
	pdesc(b, 1, b->st, 1, 0, F_WRITE);
	pdesc(b, 0, g, 32, 0, F_IND | F_NEXT);
	go(b);
	assert_broken(b);
}

static void test_indirect_bad_length(void **state)
{
	struct bench *b = *state;
	struct virtq_packed_desc *t;
	uint64_t g = ptable(b, 2, &t);

	tset(t, 0, b->hdr, 16, 0);
	tset(t, 1, b->st, 1, F_WRITE);
	pdesc(b, 0, g, 20, 0, F_IND);
	go(b);
	assert_broken(b);
}

static void test_indirect_without_feature(void **state)
{
	struct bench *b = *state;
	struct virtq_packed_desc *t;
	uint64_t g;

	teardown(state);
	b = setup_feat(VT_ALL & ~VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC), NUM);
	*state = b;
	g = ptable(b, 2, &t);
	tset(t, 0, b->hdr, 16, 0);
	tset(t, 1, b->st, 1, F_WRITE);
	pdesc(b, 0, g, 32, 0, F_IND);
	go(b);
	assert_true(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(status(b), 0xff);
}

static void test_driver_event_disable_suppresses_interrupt(void **state)
{
	struct bench *b = *state;
	uint16_t *drv = fake_mem_ptr(&b->vt->mem, b->vt->q[0].driver);
	unsigned int before = b->vt->mem.notifies;

	drv[1] = htole16(VIRTQ_EVENT_F_DISABLE);
	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(b->vt->mem.notifies, before);
	drv[1] = htole16(VIRTQ_EVENT_F_ENABLE);
	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(b->vt->mem.notifies, before + 1);
}

static void test_driver_event_desc_with_event_idx(void **state)
{
	struct bench *b = *state;
	uint16_t *drv = fake_mem_ptr(&b->vt->mem, b->vt->q[0].driver);
	unsigned int before = b->vt->mem.notifies;

	/* notify only once the used position passes slot 2 of lap 1 (wrap bit 1) */
	drv[0] = htole16(2 | 0x8000);
	drv[1] = htole16(VIRTQ_EVENT_F_DESC);
	/* first FLUSH uses slots 0-1: the used descriptor is written at slot 0 */
	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(b->vt->mem.notifies, before);
	/* second one is written at slot 2: the driver asked for exactly that */
	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	assert_int_equal(b->vt->mem.notifies, before + 1);
}

static void test_device_event_enables_notifications(void **state)
{
	struct bench *b = *state;
	uint16_t *dev = fake_mem_ptr(&b->vt->mem, b->vt->q[0].device);

	assert_int_equal(le16toh(dev[1]), VIRTQ_EVENT_F_ENABLE);
}

static void test_indirect_inside_a_list(void **state)
{
	struct bench *b = *state;
	struct virtq_packed_desc *t;
	uint64_t g = ptable(b, 1, &t);

	/* §2.8.19: unlike the split ring, an indirect descriptor may not end a NEXT list */
	tset(t, 0, b->st, 1, F_WRITE);
	pdesc(b, 1, g, 16, 0, F_IND);
	pdesc(b, 0, b->hdr, 16, 0, F_NEXT);
	go(b);
	assert_broken(b);
}

static void test_used_descriptor_reports_written_length(void **state)
{
	struct bench *b = *state;
	struct virtq_packed_desc *d = &ring(b)[0];

	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_IN, 0, b->data, 512), VIRTIO_BLK_S_OK);
	/* the used descriptor overwrote slot 0: id 0, 513 bytes written, WRITE, AVAIL|USED of lap 1 */
	assert_int_equal(le16toh(d->id), 0);
	assert_int_equal(le32toh(d->len), 513);
	assert_int_equal(le16toh(d->flags), F_WRITE | F_AVAIL | F_USED);
}

static void test_misaligned_packed_ring_needs_reset(void **state)
{
	struct bench *b = *state;
	uint64_t d = fake_mem_alloc(&b->vt->mem, 4096, 4096);

	vt_features(b->vt, VT_ALL);
	vt_wr(b->vt, 0x030, 0);
	vt_wr(b->vt, 0x038, NUM);
	vt_wr(b->vt, 0x080, (uint32_t)d + 8);
	vt_wr(b->vt, 0x090, (uint32_t)d + 1024);
	vt_wr(b->vt, 0x0a0, (uint32_t)d + 2048);
	vt_wr(b->vt, 0x044, 1);
	assert_true(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void test_odd_queue_size_wraps(void **state)
{
	struct bench *b = *state;

	teardown(state);
	b = setup_feat(VT_ALL, 5);
	*state = b;
	for (unsigned int i = 0; i < 13; i++)
		assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_IN, i, b->data, 512),
				 VIRTIO_BLK_S_OK);
	assert_false(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_many_requests_wrap_the_ring),
		T(test_chain_wraps_inside_ring),
		T(test_indirect_request),
		T(test_out_of_order_completion),
		T(test_descriptor_not_yet_available_is_left_alone),
		T(test_buffer_id_out_of_range),
		T(test_buffer_id_already_in_flight),
		T(test_chain_longer_than_ring),
		T(test_readable_after_writable),
		T(test_buffer_outside_guest_memory),
		T(test_zero_length_buffer),
		T(test_indirect_nested),
		T(test_indirect_with_next),
		T(test_indirect_bad_length),
		T(test_indirect_without_feature),
		T(test_driver_event_disable_suppresses_interrupt),
		T(test_driver_event_desc_with_event_idx),
		T(test_device_event_enables_notifications),
		T(test_indirect_inside_a_list),
		T(test_used_descriptor_reports_written_length),
		T(test_misaligned_packed_ring_needs_reset),
		T(test_odd_queue_size_wraps),
	};

	log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
