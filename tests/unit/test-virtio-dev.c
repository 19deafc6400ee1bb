// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the transport-neutral virtio device: saved state, restore into a fresh device, host failures. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "virtio-dev.h"
#include "vmmio.h"
#include "../lib/vtest.h"

#define NUM 64
#define SPLIT (VT_ALL & ~VIRTIO_BIT(VIRTIO_F_RING_PACKED))

/* calloc() fails once when this reaches 1 (counting down; 0 = off).  Linked with --wrap=calloc. */
static int calloc_fail_in;
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

void *__wrap_calloc(size_t n, size_t size)
{
	if (calloc_fail_in > 0 && --calloc_fail_in == 0)
		return NULL;
	return __real_calloc(n, size);
}

static struct virtio_dev_state *save(struct vt *vt, size_t *ret_size)
{
	size_t size = virtio_dev_state_size(vt->vdev);
	struct virtio_dev_state *st = calloc(1, size);

	assert_non_null(st);
	assert_int_equal(virtio_dev_save(vt->vdev, st, size), 0);
	assert_int_equal(st->version, VIRTIO_DEV_STATE_VERSION);
	*ret_size = size;
	return st;
}

/*
 * Save mid-IO (one request answered, two taken from the ring and in the
 * backend, one added after the save without a notification), restore into
 * a fresh device: each request is answered exactly once, with its data.
 */
static void save_restore_mid_io(uint64_t features)
{
	struct vt *vt = vt_new(NULL);
	uint64_t st[4], d[4];
	unsigned int seen[NUM] = { 0 };
	struct virtio_dev_state *s;
	uint32_t id, len;
	int ids[4];
	size_t size;

	assert_true(vt_start(vt, features, 1, NUM));
	memset(vt->be.data + 5 * 512, 0x5a, 512);
	d[0] = vt_fill(vt, 512, 0xa0);
	ids[0] = vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 0, d[0], 512, &st[0]);
	vt_kick(vt, 0);
	vt_complete(vt);
	assert_true(vt_used(vt, 0, &id, &len));
	seen[id]++;
	d[1] = vt_fill(vt, 512, 0xa1);
	ids[1] = vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 1, d[1], 512, &st[1]);
	d[2] = vt_fill(vt, 512, 0);
	ids[2] = vt_blk(vt, 0, VIRTIO_BLK_T_IN, 5, d[2], 512, &st[2]);
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 2);		/* in the backend, not completed */
	s = save(vt, &size);
	assert_int_equal(s->ninflight, 2);
	d[3] = vt_fill(vt, 512, 0xa3);
	ids[3] = vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 3, d[3], 512, &st[3]);
	for (int i = 1; i < 4; i++)
		*(uint8_t *)vt_ptr(vt, st[i]) = 0xff;
	memset(vt->be.data + 512, 0, 512);		/* as if the old write never reached the disk */

	vt_replace_device(vt);
	assert_int_equal(virtio_dev_restore(vt->vdev, s, size), 0);
	assert_true(virtio_dev_running(vt->vdev));
	vt_complete(vt);
	while (vt_used(vt, 0, &id, &len))
		seen[id]++;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(seen[ids[i]], 1);
		assert_int_equal(*(uint8_t *)vt_ptr(vt, st[i]), VIRTIO_BLK_S_OK);
	}
	assert_int_equal(vt->be.data[0], 0xa0);
	assert_int_equal(vt->be.data[512], 0xa1);
	assert_int_equal(*(uint8_t *)vt_ptr(vt, d[2]), 0x5a);
	assert_int_equal(vt->be.data[3 * 512], 0xa3);
	assert_false(vt_status(vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	free(s);
	vt_free(vt);
}

static void test_save_restore_mid_io_split(void **state)
{
	save_restore_mid_io(SPLIT);
}

static void test_save_restore_mid_io_packed(void **state)
{
	save_restore_mid_io(VT_ALL);
}

/* A state to break: one read in flight on a split ring. */
static struct virtio_dev_state *inflight_state(struct vt **ret_vt, size_t *ret_size)
{
	struct vt *vt = vt_new(NULL);
	uint64_t st;

	assert_true(vt_start(vt, SPLIT, 1, NUM));
	vt_blk(vt, 0, VIRTIO_BLK_T_IN, 0, vt_fill(vt, 512, 0), 512, &st);
	vt_kick(vt, 0);
	*ret_vt = vt;
	return save(vt, ret_size);
}

/* The restore refuses @s (-@err) and leaves the fresh device as it was: reset. */
static void expect_refused(struct vt *vt, struct virtio_dev_state *s, size_t size, int err)
{
	vt_replace_device(vt);
	assert_int_equal(virtio_dev_restore(vt->vdev, s, size), err);
	assert_int_equal(virtio_dev_status(vt->vdev), 0);
	assert_false(virtio_dev_queue_live(vt->vdev, 0));
	free(s);
	vt_free(vt);
}

static void test_restore_rejects_other_version(void **state)
{
	struct vt *vt;
	size_t size;
	struct virtio_dev_state *s = inflight_state(&vt, &size);

	s->version = VIRTIO_DEV_STATE_VERSION + 1;
	expect_refused(vt, s, size, -EPROTONOSUPPORT);
}

static void test_restore_rejects_split_size_not_power_of_two(void **state)
{
	struct vt *vt;
	size_t size;
	struct virtio_dev_state *s = inflight_state(&vt, &size);

	s->queues[0].num = 48;
	expect_refused(vt, s, size, -EINVAL);
}

static void test_restore_rejects_head_out_of_range(void **state)
{
	struct vt *vt;
	size_t size;
	struct virtio_dev_state *s = inflight_state(&vt, &size);

	s->inflight[0].id = NUM + 5;
	s->inflight[0].pos = NUM + 5;
	expect_refused(vt, s, size, -EINVAL);
}

static void test_restore_rejects_heads_not_matching_ring(void **state)
{
	struct vt *vt;
	size_t size;
	struct virtio_dev_state *s = inflight_state(&vt, &size);

	s->queues[0].ring.last_avail++;		/* one more taken than listed */
	expect_refused(vt, s, size, -EINVAL);
}

static void test_restore_rejects_truncated_state(void **state)
{
	struct vt *vt;
	size_t size;
	struct virtio_dev_state *s = inflight_state(&vt, &size);

	(void)size;
	expect_refused(vt, s, s->size - 1, -EINVAL);	/* its last head cut off */
}

static void test_restore_rejects_features_not_offered(void **state)
{
	struct vt *vt;
	size_t size;
	struct virtio_dev_state *s = inflight_state(&vt, &size);

	s->features |= VIRTIO_BIT(50);
	s->driver_features |= VIRTIO_BIT(50);
	expect_refused(vt, s, size, -EINVAL);
}

static void setup_queue(struct vt *vt)
{
	vt_queue_setup(vt, 0, NUM);
}

/* The queue set up with the host out of memory at its first allocation. */
static void setup_queue_without_memory(struct vt *vt)
{
	calloc_fail_in = 1;
	setup_queue(vt);
	calloc_fail_in = 0;
}

/* No memory for a queue on the host: NEEDS_RESET, and the log does not blame the driver. */
static void test_enomem_at_queue_start_is_not_the_drivers_fault(void **state)
{
	struct vt *vt = vt_new(NULL);
	const char *out;

	assert_true(vt_features(vt, SPLIT));
	out = vt_logged(setup_queue_without_memory, vt);
	assert_true(vt_status(vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	assert_non_null(strstr(out, "out of memory on this host"));
	assert_null(strstr(out, "driver"));
	assert_null(strstr(out, "violation"));
	/* logged once */
	assert_ptr_equal(strchr(out, '\n'), strrchr(out, '\n'));
	vt_free(vt);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_save_restore_mid_io_split),
		cmocka_unit_test(test_save_restore_mid_io_packed),
		cmocka_unit_test(test_restore_rejects_other_version),
		cmocka_unit_test(test_restore_rejects_split_size_not_power_of_two),
		cmocka_unit_test(test_restore_rejects_head_out_of_range),
		cmocka_unit_test(test_restore_rejects_heads_not_matching_ring),
		cmocka_unit_test(test_restore_rejects_truncated_state),
		cmocka_unit_test(test_restore_rejects_features_not_offered),
		cmocka_unit_test(test_enomem_at_queue_start_is_not_the_drivers_fault),
	};

	log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
