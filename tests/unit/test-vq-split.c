// SPDX-License-Identifier: GPL-2.0-only
/* Split virtqueue tests (§2.7) against a hostile driver: each broken rule its own test. */
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

#define NUM 8
#define SPLIT (VT_ALL & ~VIRTIO_BIT(VIRTIO_F_RING_PACKED))
#define F_NEXT VIRTQ_DESC_F_NEXT
#define F_WRITE VIRTQ_DESC_F_WRITE
#define F_IND VIRTQ_DESC_F_INDIRECT

struct bench {
	struct vt *vt;
	uint64_t hdr, data, st;		/* a valid FLUSH header, 4 KiB of data, a status byte */
};

static struct bench *setup_feat(uint64_t features)
{
	struct bench *b = calloc(1, sizeof(*b));
	uint32_t t = htole32(VIRTIO_BLK_T_IN);

	b->vt = vt_new(NULL);
	assert_true(vt_start(b->vt, features, 1, NUM));
	b->hdr = fake_mem_alloc(&b->vt->mem, 16, 16);
	memcpy(fake_mem_ptr(&b->vt->mem, b->hdr), &t, 4);
	b->data = fake_mem_alloc(&b->vt->mem, 4096, 4096);
	b->st = fake_mem_alloc(&b->vt->mem, 1, 1);
	*(uint8_t *)fake_mem_ptr(&b->vt->mem, b->st) = 0xff;
	return b;
}

static int setup(void **state)
{
	*state = setup_feat(SPLIT);
	return 0;
}

static int teardown(void **state)
{
	struct bench *b = *state;

	vt_free(b->vt);
	free(b);
	return 0;
}

static void desc(struct bench *b, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	struct virtq_desc *d = vt_desc(b->vt, 0, i);

	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

static struct virtq_desc *table(struct bench *b, unsigned int n, uint64_t *ret_gpa)
{
	*ret_gpa = fake_mem_alloc(&b->vt->mem, 16ull * n, 16);
	return fake_mem_ptr(&b->vt->mem, *ret_gpa);
}

static void tdesc(struct virtq_desc *t, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next)
{
	t[i].addr = htole64(addr);
	t[i].len = htole32(len);
	t[i].flags = htole16(flags);
	t[i].next = htole16(next);
}

static void go(struct bench *b, uint16_t head)
{
	vt_avail_push(b->vt, 0, head);
	vt_kick(b->vt, 0);
	vt_complete(b->vt);
}

static uint8_t status(struct bench *b)
{
	return *(uint8_t *)fake_mem_ptr(&b->vt->mem, b->st);
}

/* What the guest sees of a ring violation: NEEDS_RESET, a config interrupt, nothing submitted. */
static void assert_broken(struct bench *b)
{
	assert_true(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_true(vt_rd(b->vt, 0x060) & VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(b->vt->be.submits, 0);
	assert_int_equal(status(b), 0xff);
	/* no buffer mapping leaked: only the three rings stay mapped */
	assert_int_equal(b->vt->mem.maps_live, 3);
	/* the device recovers with a reset */
	assert_true(vt_start(b->vt, SPLIT, 1, NUM));
	assert_int_equal(vt_blk_sync(b->vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
}

static void assert_ok(struct bench *b)
{
	assert_false(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(status(b), VIRTIO_BLK_S_OK);
}

static void valid_chain(struct bench *b)
{
	desc(b, 0, b->hdr, 16, F_NEXT, 1);
	desc(b, 1, b->data, 512, F_WRITE | F_NEXT, 2);
	desc(b, 2, b->st, 1, F_WRITE, 0);
}

static void test_valid_chain_works(void **state)
{
	struct bench *b = *state;

	valid_chain(b);
	go(b, 0);
	assert_ok(b);
}

static void test_head_out_of_range(void **state)
{
	struct bench *b = *state;

	valid_chain(b);
	go(b, NUM);
	assert_broken(b);
}

static void test_head_far_out_of_range(void **state)
{
	struct bench *b = *state;

	go(b, 0xffff);
	assert_broken(b);
}

static void test_avail_index_jump_beyond_queue_size(void **state)
{
	struct bench *b = *state;
	uint16_t *avail = vt_avail(b->vt, 0);

	valid_chain(b);
	avail[1] = htole16(NUM + 1);
	vt_kick(b->vt, 0);
	assert_broken(b);
}

static void test_avail_index_moving_backwards(void **state)
{
	struct bench *b = *state;
	uint16_t *avail = vt_avail(b->vt, 0);

	avail[1] = htole16(0xffff);
	vt_kick(b->vt, 0);
	assert_broken(b);
}

static void test_looped_chain(void **state)
{
	struct bench *b = *state;

	desc(b, 0, b->hdr, 16, F_NEXT, 1);
	desc(b, 1, b->data, 512, F_WRITE | F_NEXT, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_self_looped_descriptor(void **state)
{
	struct bench *b = *state;

	desc(b, 0, b->hdr, 16, F_NEXT, 1);
	desc(b, 1, b->st, 1, F_WRITE | F_NEXT, 1);
	go(b, 0);
	assert_broken(b);
}

static void test_next_out_of_range(void **state)
{
	struct bench *b = *state;

	desc(b, 0, b->hdr, 16, F_NEXT, NUM);
	go(b, 0);
	assert_broken(b);
}

static void test_readable_after_writable(void **state)
{
	struct bench *b = *state;

	desc(b, 0, b->hdr, 16, F_NEXT, 1);
	desc(b, 1, b->st, 1, F_WRITE | F_NEXT, 2);
	desc(b, 2, b->data, 512, 0, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_buffer_outside_guest_memory(void **state)
{
	struct bench *b = *state;

	valid_chain(b);
	desc(b, 1, 1ull << 40, 512, F_WRITE | F_NEXT, 2);
	go(b, 0);
	assert_broken(b);
}

static void test_buffer_address_wraps(void **state)
{
	struct bench *b = *state;

	valid_chain(b);
	desc(b, 1, UINT64_MAX - 100, 512, F_WRITE | F_NEXT, 2);
	go(b, 0);
	assert_broken(b);
}

static void test_buffer_straddles_end_of_memory(void **state)
{
	struct bench *b = *state;

	valid_chain(b);
	desc(b, 1, b->vt->mem.size - 256, 512, F_WRITE | F_NEXT, 2);
	go(b, 0);
	assert_broken(b);
}

static void test_buffer_transport_refuses_to_map(void **state)
{
	struct bench *b = *state;

	valid_chain(b);
	b->vt->mem.fail_gpa = b->data + 100;
	b->vt->mem.fail_len = 1;
	go(b, 0);
	b->vt->mem.fail_len = 0;
	assert_broken(b);
}

static void test_zero_length_buffer(void **state)
{
	struct bench *b = *state;

	valid_chain(b);
	desc(b, 1, b->data, 0, F_WRITE | F_NEXT, 2);
	go(b, 0);
	assert_broken(b);
}

static void test_chain_longer_than_4gib(void **state)
{
	struct bench *b = *state;

	teardown(state);
	b = setup_feat(SPLIT & ~VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX));
	*state = b;
	desc(b, 0, b->hdr, 16, F_NEXT, 1);
	desc(b, 1, b->data, 0xfffffff0u, F_WRITE | F_NEXT, 2);
	desc(b, 2, b->data, 0x100u, F_WRITE, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_same_head_twice_in_flight(void **state)
{
	struct bench *b = *state;

	valid_chain(b);
	vt_avail_push(b->vt, 0, 0);
	vt_avail_push(b->vt, 0, 0);
	vt_kick(b->vt, 0);
	assert_true(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* the first one was legitimately taken and still completes */
	assert_int_equal(b->vt->be.submits, 1);
	vt_complete(b->vt);
	assert_int_equal(b->vt->mem.maps_live, 3);
}

static void test_indirect_without_feature(void **state)
{
	struct bench *b = *state;
	uint64_t tg;
	struct virtq_desc *t;

	teardown(state);
	b = setup_feat(SPLIT & ~VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC));
	*state = b;
	t = table(b, 2, &tg);
	tdesc(t, 0, b->hdr, 16, F_NEXT, 1);
	tdesc(t, 1, b->st, 1, F_WRITE, 0);
	desc(b, 0, tg, 32, F_IND, 0);
	go(b, 0);
	assert_true(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_int_equal(status(b), 0xff);
}

static void test_indirect_valid_table(void **state)
{
	struct bench *b = *state;
	uint64_t tg;
	struct virtq_desc *t = table(b, 3, &tg);

	tdesc(t, 0, b->hdr, 16, F_NEXT, 2); /* table order need not be index order */
	tdesc(t, 2, b->data, 512, F_WRITE | F_NEXT, 1);
	tdesc(t, 1, b->st, 1, F_WRITE, 0);
	desc(b, 0, tg, 48, F_IND | F_WRITE, 0); /* §2.7.5.3.2: WRITE on the table is ignored */
	go(b, 0);
	assert_ok(b);
}

static void test_direct_descriptors_then_indirect(void **state)
{
	struct bench *b = *state;
	uint64_t tg;
	struct virtq_desc *t = table(b, 2, &tg);

	/* §2.7.5.3.2: zero or more direct descriptors followed by one indirect one */
	tdesc(t, 0, b->data, 512, F_WRITE | F_NEXT, 1);
	tdesc(t, 1, b->st, 1, F_WRITE, 0);
	desc(b, 0, b->hdr, 16, F_NEXT, 1);
	desc(b, 1, tg, 32, F_IND, 0);
	go(b, 0);
	assert_ok(b);
}

static void test_indirect_length_not_multiple_of_16(void **state)
{
	struct bench *b = *state;
	uint64_t tg;
	struct virtq_desc *t = table(b, 2, &tg);

	tdesc(t, 0, b->hdr, 16, F_NEXT, 1);
	tdesc(t, 1, b->st, 1, F_WRITE, 0);
	desc(b, 0, tg, 24, F_IND, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_indirect_length_zero(void **state)
{
	struct bench *b = *state;

	desc(b, 0, b->data, 0, F_IND, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_indirect_table_too_large(void **state)
{
	struct bench *b = *state;

	desc(b, 0, b->data, 16 * (VQ_INDIRECT_MAX + 1), F_IND, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_indirect_nested(void **state)
{
	struct bench *b = *state;
	uint64_t tg, tg2;
	struct virtq_desc *t = table(b, 2, &tg), *t2 = table(b, 1, &tg2);

	tdesc(t2, 0, b->st, 1, F_WRITE, 0);
	tdesc(t, 0, b->hdr, 16, F_NEXT, 1);
	tdesc(t, 1, tg2, 16, F_IND, 0);
	desc(b, 0, tg, 32, F_IND, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_indirect_with_next_flag(void **state)
{
	struct bench *b = *state;
	uint64_t tg;
	struct virtq_desc *t = table(b, 2, &tg);

	tdesc(t, 0, b->hdr, 16, F_NEXT, 1);
	tdesc(t, 1, b->st, 1, F_WRITE, 0);
	desc(b, 0, tg, 32, F_IND | F_NEXT, 1);
	desc(b, 1, b->st, 1, F_WRITE, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_indirect_table_outside_memory(void **state)
{
	struct bench *b = *state;

	desc(b, 0, 1ull << 41, 32, F_IND, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_indirect_table_misaligned(void **state)
{
	struct bench *b = *state;

	desc(b, 0, b->data + 4, 32, F_IND, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_indirect_next_out_of_table(void **state)
{
	struct bench *b = *state;
	uint64_t tg;
	struct virtq_desc *t = table(b, 2, &tg);

	tdesc(t, 0, b->hdr, 16, F_NEXT, 2);
	tdesc(t, 1, b->st, 1, F_WRITE, 0);
	desc(b, 0, tg, 32, F_IND, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_indirect_loop(void **state)
{
	struct bench *b = *state;
	uint64_t tg;
	struct virtq_desc *t = table(b, 2, &tg);

	tdesc(t, 0, b->hdr, 16, F_NEXT, 1);
	tdesc(t, 1, b->st, 1, F_WRITE | F_NEXT, 0);
	desc(b, 0, tg, 32, F_IND, 0);
	go(b, 0);
	assert_broken(b);
}

static void test_avail_index_wraps_past_65535(void **state)
{
	struct bench *b = *state;
	unsigned int ok = 0;
	uint32_t id, len;

	b->vt->be.reverse = false;
	for (unsigned int i = 0; i < 65540; i++) {
		desc(b, (uint16_t)(i % NUM), b->hdr, 16, F_NEXT, (uint16_t)((i + 1) % NUM));
		desc(b, (uint16_t)((i + 1) % NUM), b->st, 1, F_WRITE, 0);
		*(uint8_t *)fake_mem_ptr(&b->vt->mem, b->st) = 0xff;
		go(b, (uint16_t)(i % NUM));
		if (status(b) == VIRTIO_BLK_S_OK)
			ok++;
		while (vt_used(b->vt, 0, &id, &len))
			;
	}
	assert_int_equal(ok, 65540);
	assert_int_equal(vt_used_idx(b->vt, 0), (uint16_t)65540);
	assert_false(vt_status(b->vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static void test_descriptor_rewritten_after_pop_is_not_reread(void **state)
{
	struct bench *b = *state;

	/* the device copies what it needs at pop time: a later rewrite cannot redirect the status */
	valid_chain(b);
	vt_avail_push(b->vt, 0, 0);
	vt_kick(b->vt, 0);
	desc(b, 2, 1ull << 40, 1, F_WRITE, 0);
	vt_complete(b->vt);
	assert_ok(b);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_valid_chain_works),
		T(test_head_out_of_range),
		T(test_head_far_out_of_range),
		T(test_avail_index_jump_beyond_queue_size),
		T(test_avail_index_moving_backwards),
		T(test_looped_chain),
		T(test_self_looped_descriptor),
		T(test_next_out_of_range),
		T(test_readable_after_writable),
		T(test_buffer_outside_guest_memory),
		T(test_buffer_address_wraps),
		T(test_buffer_straddles_end_of_memory),
		T(test_buffer_transport_refuses_to_map),
		T(test_zero_length_buffer),
		T(test_chain_longer_than_4gib),
		T(test_same_head_twice_in_flight),
		T(test_indirect_without_feature),
		T(test_indirect_valid_table),
		T(test_direct_descriptors_then_indirect),
		T(test_indirect_length_not_multiple_of_16),
		T(test_indirect_length_zero),
		T(test_indirect_table_too_large),
		T(test_indirect_nested),
		T(test_indirect_with_next_flag),
		T(test_indirect_table_outside_memory),
		T(test_indirect_table_misaligned),
		T(test_indirect_next_out_of_table),
		T(test_indirect_loop),
		T(test_avail_index_wraps_past_65535),
		T(test_descriptor_rewritten_after_pop_is_not_reread),
	};

	log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
