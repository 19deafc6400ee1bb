// SPDX-License-Identifier: GPL-2.0-only
/* virtio-mmio register file tests: handshake, features, queue setup, hostile accesses. */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "../lib/vtest.h"

#define NUM 16
#define SPLIT (VT_ALL & ~VIRTIO_BIT(VIRTIO_F_RING_PACKED))
#define ACK VIRTIO_STATUS_ACKNOWLEDGE
#define DRV VIRTIO_STATUS_DRIVER
#define FOK VIRTIO_STATUS_FEATURES_OK
#define DOK VIRTIO_STATUS_DRIVER_OK
#define NEEDS_RESET VIRTIO_STATUS_DEVICE_NEEDS_RESET

static bool needs_reset(struct vt *vt)
{
	return vt_status(vt) & NEEDS_RESET;
}

/* Modern queue setup with explicit values, for hostile cases. */
static void queue_regs(struct vt *vt, unsigned int sel, uint32_t num, uint64_t desc, uint64_t drv,
		       uint64_t dev)
{
	vt_wr(vt, 0x030, sel);
	vt_wr(vt, 0x038, num);
	vt_wr(vt, 0x080, (uint32_t)desc);
	vt_wr(vt, 0x084, (uint32_t)(desc >> 32));
	vt_wr(vt, 0x090, (uint32_t)drv);
	vt_wr(vt, 0x094, (uint32_t)(drv >> 32));
	vt_wr(vt, 0x0a0, (uint32_t)dev);
	vt_wr(vt, 0x0a4, (uint32_t)(dev >> 32));
	vt_wr(vt, 0x044, 1);
}

static void test_identification_registers(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_int_equal(vt_rd(vt, 0x000), 0x74726976);
	assert_int_equal(vt_rd(vt, 0x004), 2);
	assert_int_equal(vt_rd(vt, 0x008), VIRTIO_ID_BLOCK);
	assert_int_not_equal(vt_rd(vt, 0x00c), 0);
	assert_int_equal(vt_status(vt), 0);
	vt_free(vt);
}

static void test_full_handshake_reaches_driver_ok(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_start(vt, SPLIT, 1, NUM));
	assert_int_equal(vt_status(vt), ACK | DRV | FOK | DOK);
	assert_int_equal(vt_rd(vt, 0x044), 1);
	assert_true(virtio_dev_has_feature(vt->vdev, VIRTIO_F_VERSION_1));
	assert_true(virtio_dev_has_feature(vt->vdev, VIRTIO_F_EVENT_IDX));
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

static void test_offered_features_include_blk_set(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t want = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
			VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_RING_PACKED) |
			VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
			VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |
			VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) | VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE) |
			VIRTIO_BIT(VIRTIO_BLK_F_MQ) | VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
			VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);

	vt_features(vt, VT_ALL);
	assert_int_equal(vt->offered & want, want);
	assert_false(vt->offered & VIRTIO_BIT(VIRTIO_BLK_F_RO));
	vt_free(vt);
}

static void test_features_not_offered_refused(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_false(vt_features_raw(vt, VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(40), false));
	assert_int_equal(vt_status(vt) & FOK, 0);
	/* and the queue cannot be made ready without FEATURES_OK */
	vt_queue_setup(vt, 0, NUM);
	assert_int_equal(vt_rd(vt, 0x044), 0);
	vt_free(vt);
}

static void test_features_without_version_1_refused(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_false(vt_features(vt, VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)));
	vt_free(vt);
}

static void test_driver_ok_refused_without_features_ok(void **state)
{
	struct vt *vt = vt_new(NULL);

	vt_features_raw(vt, VIRTIO_BIT(63), false);
	vt_wr(vt, 0x070, ACK | DRV | DOK);
	assert_int_equal(vt_status(vt), ACK | DRV);
	vt_free(vt);
}

static void test_status_out_of_order_ignored(void **state)
{
	struct vt *vt = vt_new(NULL);

	vt_wr(vt, 0x070, DRV);
	assert_int_equal(vt_status(vt), 0);
	vt_wr(vt, 0x070, ACK | FOK);
	assert_int_equal(vt_status(vt), 0);
	vt_wr(vt, 0x070, ACK);
	vt_wr(vt, 0x070, ACK | DOK);
	assert_int_equal(vt_status(vt), ACK);
	vt_free(vt);
}

static void test_status_clearing_bits_ignored(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_start(vt, SPLIT, 1, NUM));
	vt_wr(vt, 0x070, ACK | DRV);
	assert_int_equal(vt_status(vt), ACK | DRV | FOK | DOK);
	vt_wr(vt, 0x070, 0x1ff);
	assert_int_equal(vt_status(vt), ACK | DRV | FOK | DOK);
	vt_free(vt);
}

static void test_driver_cannot_set_needs_reset(void **state)
{
	struct vt *vt = vt_new(NULL);

	vt_wr(vt, 0x070, ACK | NEEDS_RESET);
	assert_int_equal(vt_status(vt), ACK);
	vt_free(vt);
}

static void test_failed_status_stops_processing(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_start(vt, SPLIT, 1, NUM));
	vt_wr(vt, 0x070, vt_status(vt) | VIRTIO_STATUS_FAILED);
	assert_true(vt_status(vt) & VIRTIO_STATUS_FAILED);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), 0xff);
	assert_int_equal(vt->be.submits, 0);
	vt_free(vt);
}

static void test_driver_features_frozen_after_features_ok(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_features(vt, VIRTIO_BIT(VIRTIO_F_VERSION_1)));
	vt_wr(vt, 0x024, 0);
	vt_wr(vt, 0x020, 1u << VIRTIO_F_EVENT_IDX);
	vt_queue_setup(vt, 0, NUM);
	vt_driver_ok(vt);
	assert_false(virtio_dev_has_feature(vt->vdev, VIRTIO_F_EVENT_IDX));
	vt_free(vt);
}

static void test_device_features_select_out_of_range_reads_zero(void **state)
{
	struct vt *vt = vt_new(NULL);

	vt_wr(vt, 0x014, 2);
	assert_int_equal(vt_rd(vt, 0x010), 0);
	vt_wr(vt, 0x014, 0xffffffff);
	assert_int_equal(vt_rd(vt, 0x010), 0);
	vt_free(vt);
}

static void test_queue_sel_out_of_range(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_features(vt, SPLIT));
	vt_wr(vt, 0x030, 1);
	assert_int_equal(vt_rd(vt, 0x034), 0); /* §4.2.2: no such queue */
	vt_wr(vt, 0x030, 0xffffffff);
	assert_int_equal(vt_rd(vt, 0x034), 0);
	vt_wr(vt, 0x038, 8);
	vt_wr(vt, 0x044, 1);
	assert_int_equal(vt_rd(vt, 0x044), 0);
	assert_false(needs_reset(vt));
	vt_wr(vt, 0x050, 0xffffffff);
	vt_wr(vt, 0x050, 7);
	assert_false(needs_reset(vt));
	vt_free(vt);
}

static void test_queue_num_not_power_of_two_needs_reset(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t d = fake_mem_alloc(&vt->mem, 4096, 4096);

	assert_true(vt_features(vt, SPLIT));
	queue_regs(vt, 0, 12, d, d + 1024, d + 2048);
	assert_true(needs_reset(vt));
	assert_int_equal(vt_rd(vt, 0x044), 0);
	assert_int_equal(vt->mem.maps_live, 0);
	vt_free(vt);
}

static void test_queue_num_above_max_needs_reset(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t d = fake_mem_alloc(&vt->mem, 65536, 4096);

	assert_true(vt_features(vt, SPLIT));
	assert_int_equal(vt_rd(vt, 0x034), 256);
	queue_regs(vt, 0, 512, d, d + 8192, d + 16384);
	assert_true(needs_reset(vt));
	vt_free(vt);
}

static void test_queue_num_zero_needs_reset(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t d = fake_mem_alloc(&vt->mem, 4096, 4096);

	assert_true(vt_features(vt, SPLIT));
	queue_regs(vt, 0, 0, d, d + 1024, d + 2048);
	assert_true(needs_reset(vt));
	vt_free(vt);
}

static void test_queue_num_huge_value_needs_reset(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t d = fake_mem_alloc(&vt->mem, 4096, 4096);

	assert_true(vt_features(vt, SPLIT));
	queue_regs(vt, 0, 0x10010, d, d + 1024, d + 2048); /* would truncate to 16 in 16 bits */
	assert_true(needs_reset(vt));
	vt_free(vt);
}

static void test_ring_outside_guest_memory_needs_reset(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_features(vt, SPLIT));
	queue_regs(vt, 0, NUM, 0x100000000ull, 0x100001000ull, 0x100002000ull);
	assert_true(needs_reset(vt));
	assert_int_equal(vt->mem.maps_live, 0);
	vt_free(vt);
}

static void test_ring_address_wrapping_needs_reset(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t d = fake_mem_alloc(&vt->mem, 4096, 4096);

	assert_true(vt_features(vt, SPLIT));
	queue_regs(vt, 0, NUM, d, d + 1024, 0xfffffffffffffff0ull);
	assert_true(needs_reset(vt));
	assert_int_equal(vt->mem.maps_live, 0);
	vt_free(vt);
}

static void test_ring_straddling_end_of_memory_needs_reset(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t d = fake_mem_alloc(&vt->mem, 4096, 4096);

	assert_true(vt_features(vt, SPLIT));
	queue_regs(vt, 0, NUM, vt->mem.size - 64, d + 1024, d + 2048);
	assert_true(needs_reset(vt));
	vt_free(vt);
}

static void test_misaligned_rings_need_reset(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t d = fake_mem_alloc(&vt->mem, 4096, 4096);

	assert_true(vt_features(vt, SPLIT));
	queue_regs(vt, 0, NUM, d + 8, d + 1024, d + 2048); /* §2.7: table 16-aligned */
	assert_true(needs_reset(vt));
	vt_free(vt);
	vt = vt_new(NULL);
	d = fake_mem_alloc(&vt->mem, 4096, 4096);
	assert_true(vt_features(vt, SPLIT));
	queue_regs(vt, 0, NUM, d, d + 1024, d + 2050); /* used ring 4-aligned */
	assert_true(needs_reset(vt));
	vt_free(vt);
}

static void test_queue_registers_frozen_while_ready(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_start(vt, SPLIT, 1, NUM));
	vt_wr(vt, 0x030, 0);
	vt_wr(vt, 0x038, 4);
	vt_wr(vt, 0x080, 0x1234000);
	assert_int_equal(vt_rd(vt, 0x034), 0); /* QueueNumMax reads 0 for a live queue */
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

static void test_notify_before_driver_ok_ignored(void **state)
{
	struct vt *vt = vt_new(NULL);
	uint64_t st;

	assert_true(vt_features(vt, SPLIT));
	vt_queue_setup(vt, 0, NUM);
	vt_blk(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, &st);
	vt_kick(vt, 0);
	assert_int_equal(vt->be.submits, 0);
	vt_driver_ok(vt);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_int_equal(*(uint8_t *)fake_mem_ptr(&vt->mem, st), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

static void test_control_register_wrong_width_ignored(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_int_equal(vmmio_read(vt->mmio, 0x000, 1), 0);
	assert_int_equal(vmmio_read(vt->mmio, 0x000, 2), 0);
	assert_int_equal(vmmio_read(vt->mmio, 0x000, 8), 0);
	assert_int_equal(vmmio_read(vt->mmio, 0x000, 3), 0);
	assert_int_equal(vmmio_read(vt->mmio, 0x000, 0), 0);
	vmmio_write(vt->mmio, 0x070, 1, ACK);
	vmmio_write(vt->mmio, 0x070, 8, ACK);
	vmmio_write(vt->mmio, 0x070, 2, ACK);
	assert_int_equal(vt_status(vt), 0);
	vt_free(vt);
}

static void test_unaligned_and_unknown_offsets_read_zero(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_int_equal(vmmio_read(vt->mmio, 0x002, 4), 0);
	assert_int_equal(vt_rd(vt, 0x0c4), 0);
	assert_int_equal(vt_rd(vt, 0x018), 0);
	assert_int_equal(vmmio_read(vt->mmio, 0x200, 4), 0);
	assert_int_equal(vmmio_read(vt->mmio, UINT64_MAX - 3, 4), 0);
	vmmio_write(vt->mmio, UINT64_MAX, 4, 1);
	vmmio_write(vt->mmio, 0x0c4, 4, 1);
	vmmio_write(vt->mmio, 0x000, 4, 0); /* read-only register */
	assert_int_equal(vt_rd(vt, 0x000), 0x74726976);
	vt_free(vt);
}

static void test_shared_memory_length_reads_no_region(void **state)
{
	struct vt *vt = vt_new(NULL);

	vt_wr(vt, 0x0ac, 0);
	assert_int_equal(vt_rd(vt, 0x0b0), 0xffffffff);
	assert_int_equal(vt_rd(vt, 0x0b4), 0xffffffff);
	vt_free(vt);
}

static void test_config_reads_every_width(void **state)
{
	struct vt *vt = vt_new(NULL);

	/* capacity: 1 MiB = 2048 = 0x800 sectors */
	assert_int_equal(vmmio_read(vt->mmio, 0x100, 8), 2048);
	assert_int_equal(vmmio_read(vt->mmio, 0x100, 4), 2048);
	assert_int_equal(vmmio_read(vt->mmio, 0x100, 2), 2048);
	assert_int_equal(vmmio_read(vt->mmio, 0x101, 1), 8);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_BLK_SIZE, 4), 512);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_PHYS_BLOCK_EXP, 1), 3);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_SEG_MAX, 4), 126);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_MAX_DISCARD_SEG, 4), 1);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_NUM_QUEUES, 2), 1);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_WRITEBACK, 1), 1);
	vt_free(vt);
}

static void test_config_access_past_end_ignored(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CONFIG_SIZE, 1), 0);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CONFIG_SIZE - 2, 4), 0); /* straddles */
	assert_int_equal(vmmio_read(vt->mmio, 0x1ff, 8), 0);
	assert_int_equal(vmmio_read(vt->mmio, 0x100, 3), 0);
	assert_int_equal(vmmio_read(vt->mmio, 0x100, 16), 0);
	vmmio_write(vt->mmio, 0x1fc, 8, ~0ull);
	vmmio_write(vt->mmio, 0x100 + VBLK_CONFIG_SIZE - 1, 2, ~0ull);
	assert_int_equal(vmmio_read(vt->mmio, 0x100, 8), 2048);
	vt_free(vt);
}

static void test_config_read_only_fields_ignore_writes(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_start(vt, SPLIT, 1, NUM));
	vmmio_write(vt->mmio, 0x100, 8, 1);
	vmmio_write(vt->mmio, 0x100 + VBLK_CFG_WRITEBACK, 1, 7); /* not 0 or 1 */
	vmmio_write(vt->mmio, 0x100 + VBLK_CFG_WRITEBACK, 4, 0); /* wrong width */
	assert_int_equal(vmmio_read(vt->mmio, 0x100, 8), 2048);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_WRITEBACK, 1), 1);
	vt_free(vt);
}

static void test_writeback_not_writable_without_config_wce(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_start(vt, SPLIT & ~VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE), 1, NUM));
	vmmio_write(vt->mmio, 0x100 + VBLK_CFG_WRITEBACK, 1, 0);
	assert_int_equal(vmmio_read(vt->mmio, 0x100 + VBLK_CFG_WRITEBACK, 1), 1);
	vt_free(vt);
}

static void test_interrupt_ack_clears_bits(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_start(vt, SPLIT & ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX), 1, NUM));
	vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	assert_int_equal(vt_rd(vt, 0x060), VIRTIO_MMIO_INT_VRING);
	vt_wr(vt, 0x064, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(vt_rd(vt, 0x060), VIRTIO_MMIO_INT_VRING);
	vt_wr(vt, 0x064, VIRTIO_MMIO_INT_VRING);
	assert_int_equal(vt_rd(vt, 0x060), 0);
	vt_free(vt);
}

static void test_reset_clears_device_state(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_start(vt, SPLIT & ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX), 1, NUM));
	vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	vt_wr(vt, 0x070, 0);
	assert_int_equal(vt_status(vt), 0);
	assert_int_equal(vt_rd(vt, 0x060), 0);
	vt_wr(vt, 0x030, 0);
	assert_int_equal(vt_rd(vt, 0x044), 0);
	assert_int_equal(vt_rd(vt, 0x034), 256);
	assert_int_equal(virtio_dev_features(vt->vdev), 0);
	assert_int_equal(vt->mem.maps_live, 0);
	vt_free(vt);
}

static void test_config_generation_bumps_on_capacity_change(void **state)
{
	struct vt *vt = vt_new(NULL);
	struct blk_info info = vt_default_info();
	uint32_t gen;

	assert_true(vt_start(vt, SPLIT, 1, NUM));
	gen = vt_rd(vt, 0x0fc);
	info.capacity = 4u << 20;
	vblk_set_info(vt->dev, &info);
	assert_int_equal(vt_rd(vt, 0x0fc), gen + 1);
	assert_int_equal(vmmio_read(vt->mmio, 0x100, 8), 8192);
	assert_true(vt_rd(vt, 0x060) & VIRTIO_MMIO_INT_CONFIG);
	vt_free(vt);
}

static void test_needs_reset_raises_config_interrupt_once(void **state)
{
	struct vt *vt = vt_new(NULL);
	unsigned int before;

	assert_true(vt_start(vt, SPLIT, 1, NUM));
	before = vt->mem.notifies;
	vt_avail_push(vt, 0, NUM + 3); /* head out of range */
	vt_kick(vt, 0);
	vt_kick(vt, 0);
	assert_true(needs_reset(vt));
	assert_int_equal(vt_rd(vt, 0x060), VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(vt->mem.notifies, before + 1);
	vt_free(vt);
}

static void test_legacy_registers(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .version = 1 };
	struct vt *vt = vt_new(&cfg);

	assert_int_equal(vt_rd(vt, 0x004), 1);
	vt_wr(vt, 0x014, 1);
	assert_int_equal(vt_rd(vt, 0x010), 0); /* legacy: 32 feature bits */
	vt_wr(vt, 0x014, 0);
	assert_int_equal(vt_rd(vt, 0x010) & (1u << VIRTIO_F_EVENT_IDX), 1u << VIRTIO_F_EVENT_IDX);
	vt_wr(vt, 0x070, ACK);
	vt_wr(vt, 0x070, ACK | DRV);
	vt_wr(vt, 0x070, ACK | DRV | FOK); /* no FEATURES_OK in legacy */
	assert_int_equal(vt_status(vt), ACK | DRV);
	vt_wr(vt, 0x028, 3000);		/* not a power of two: ignored */
	vt_wr(vt, 0x044, 1);		/* modern-only register */
	assert_int_equal(vt_rd(vt, 0x044), 0);
	assert_int_equal(vt_rd(vt, 0x0fc), 0);
	vt_queue_setup_legacy(vt, 0, NUM);
	assert_false(needs_reset(vt));
	vt_driver_ok(vt);
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	vt_wr(vt, 0x040, 0); /* stop the queue */
	assert_int_equal(vt->mem.maps_live, 0);
	vt_free(vt);
}

static void test_legacy_guest_page_size_survives_reset(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .version = 1 };
	struct vt *vt = vt_new(&cfg);
	uint64_t base = fake_mem_alloc(&vt->mem, 3 * 8192, 8192);
	uint16_t *avail = fake_mem_ptr(&vt->mem, base + 16 * NUM);
	struct virtq_desc *d = fake_mem_ptr(&vt->mem, base);
	uint64_t h = fake_mem_alloc(&vt->mem, 16, 16), st = fake_mem_alloc(&vt->mem, 1, 1);
	uint32_t t = htole32(VIRTIO_BLK_T_FLUSH);

	vt_wr(vt, 0x028, 8192); /* probe time */
	vt_wr(vt, 0x070, 0);
	vt_wr(vt, 0x070, ACK);
	vt_wr(vt, 0x070, ACK | DRV);
	vt_wr(vt, 0x030, 0);
	vt_wr(vt, 0x038, NUM);
	vt_wr(vt, 0x03c, 4096);
	vt_wr(vt, 0x040, (uint32_t)(base / 8192));
	vt_wr(vt, 0x070, ACK | DRV | DOK);
	assert_false(needs_reset(vt));
	/* a FLUSH placed where an 8 KiB page size puts the rings completes */
	memcpy(fake_mem_ptr(&vt->mem, h), &t, 4);
	d[0] = (struct virtq_desc){ htole64(h), htole32(16), htole16(VIRTQ_DESC_F_NEXT), htole16(1) };
	d[1] = (struct virtq_desc){ htole64(st), htole32(1), htole16(VIRTQ_DESC_F_WRITE), 0 };
	avail[2] = 0;
	avail[1] = htole16(1);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_int_equal(vt->be.ops_seen[BLK_OP_FLUSH], 1);
	vt_free(vt);
}

static void test_legacy_tiny_queue_align_needs_reset(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .version = 1 };
	struct vt *vt = vt_new(&cfg);
	uint64_t base = fake_mem_alloc(&vt->mem, 8192, 4096);

	vt_wr(vt, 0x070, ACK);
	vt_wr(vt, 0x070, ACK | DRV);
	vt_wr(vt, 0x028, 1);		/* GuestPageSize 1: the PFN is a byte address */
	vt_wr(vt, 0x038, NUM);
	vt_wr(vt, 0x03c, 2);		/* used ring would not be 4-byte aligned */
	vt_wr(vt, 0x040, (uint32_t)base);
	assert_true(needs_reset(vt));
	assert_int_equal(vt->mem.maps_live, 0);
	vt_free(vt);
}

static void test_legacy_pfn_outside_memory_needs_reset(void **state)
{
	struct vblk_config cfg = { .info = vt_default_info(), .version = 1 };
	struct vt *vt = vt_new(&cfg);

	vt_wr(vt, 0x070, ACK);
	vt_wr(vt, 0x070, ACK | DRV);
	vt_wr(vt, 0x038, NUM);
	vt_wr(vt, 0x040, 0xffffffff);
	assert_true(needs_reset(vt));
	vt_free(vt);
}

static void test_packed_queue_size_need_not_be_power_of_two(void **state)
{
	struct vt *vt = vt_new(NULL);

	assert_true(vt_features(vt, VT_ALL));
	vt_queue_setup(vt, 0, 12);
	vt_driver_ok(vt);
	assert_false(needs_reset(vt));
	assert_int_equal(vt_blk_sync(vt, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0), VIRTIO_BLK_S_OK);
	vt_free(vt);
}

/*
 * The accesses another thread may make (the guest's, while an IO thread
 * serves the device): reading InterruptStatus and writing InterruptACK,
 * 32 bits wide; nothing else, not even their wrong directions or widths.
 */
static void test_any_thread_only_interrupt_status_and_ack(void **state)
{
	assert_true(vmmio_any_thread(0x060, 4, false));
	assert_true(vmmio_any_thread(0x064, 4, true));
	assert_false(vmmio_any_thread(0x060, 4, true));
	assert_false(vmmio_any_thread(0x064, 4, false));
	assert_false(vmmio_any_thread(0x060, 2, false));
	assert_false(vmmio_any_thread(0x064, 8, true));
	assert_false(vmmio_any_thread(0x050, 4, true));	/* QueueNotify runs the rings */
	assert_false(vmmio_any_thread(0x070, 4, true));	/* Status may reset the device */
	assert_false(vmmio_any_thread(0x070, 4, false));
	assert_false(vmmio_any_thread(0x100, 4, false));	/* config space */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identification_registers),
		cmocka_unit_test(test_full_handshake_reaches_driver_ok),
		cmocka_unit_test(test_offered_features_include_blk_set),
		cmocka_unit_test(test_features_not_offered_refused),
		cmocka_unit_test(test_features_without_version_1_refused),
		cmocka_unit_test(test_driver_ok_refused_without_features_ok),
		cmocka_unit_test(test_status_out_of_order_ignored),
		cmocka_unit_test(test_status_clearing_bits_ignored),
		cmocka_unit_test(test_driver_cannot_set_needs_reset),
		cmocka_unit_test(test_failed_status_stops_processing),
		cmocka_unit_test(test_driver_features_frozen_after_features_ok),
		cmocka_unit_test(test_device_features_select_out_of_range_reads_zero),
		cmocka_unit_test(test_queue_sel_out_of_range),
		cmocka_unit_test(test_queue_num_not_power_of_two_needs_reset),
		cmocka_unit_test(test_queue_num_above_max_needs_reset),
		cmocka_unit_test(test_queue_num_zero_needs_reset),
		cmocka_unit_test(test_queue_num_huge_value_needs_reset),
		cmocka_unit_test(test_ring_outside_guest_memory_needs_reset),
		cmocka_unit_test(test_ring_address_wrapping_needs_reset),
		cmocka_unit_test(test_ring_straddling_end_of_memory_needs_reset),
		cmocka_unit_test(test_misaligned_rings_need_reset),
		cmocka_unit_test(test_queue_registers_frozen_while_ready),
		cmocka_unit_test(test_notify_before_driver_ok_ignored),
		cmocka_unit_test(test_control_register_wrong_width_ignored),
		cmocka_unit_test(test_unaligned_and_unknown_offsets_read_zero),
		cmocka_unit_test(test_shared_memory_length_reads_no_region),
		cmocka_unit_test(test_config_reads_every_width),
		cmocka_unit_test(test_config_access_past_end_ignored),
		cmocka_unit_test(test_config_read_only_fields_ignore_writes),
		cmocka_unit_test(test_writeback_not_writable_without_config_wce),
		cmocka_unit_test(test_interrupt_ack_clears_bits),
		cmocka_unit_test(test_reset_clears_device_state),
		cmocka_unit_test(test_config_generation_bumps_on_capacity_change),
		cmocka_unit_test(test_needs_reset_raises_config_interrupt_once),
		cmocka_unit_test(test_legacy_registers),
		cmocka_unit_test(test_legacy_guest_page_size_survives_reset),
		cmocka_unit_test(test_legacy_tiny_queue_align_needs_reset),
		cmocka_unit_test(test_legacy_pfn_outside_memory_needs_reset),
		cmocka_unit_test(test_packed_queue_size_need_not_be_power_of_two),
		cmocka_unit_test(test_any_thread_only_interrupt_status_and_ack),
	};

	log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
