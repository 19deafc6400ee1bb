// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests of src/vhost/vhost-conn.c: a front end's messages, each malformed one refused and named. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/virtio_ring.h>

#include "../../src/vhost/vhost-proto.h"
#include "log.h"
#include "loop.h"
#include "vhost.h"

#define MEM_SIZE (1u << 20)

struct fixture {
	struct loop *loop;
	struct vhost_conn *c;
	int logfd;
	struct vhost_user_msg rep;
	size_t rep_len;
	int rep_fd;
};

/*
 * Nothing reaches a disk here: every request is refused, the guest would see
 * IOERR; or, while @hold is set, kept in @held (in flight) for the test to complete.
 */
static bool hold;
static struct blk_req *held;

static int fake_submit(void *be, struct blk_req *req)
{
	if (!hold)
		return -EIO;
	assert_null(held);
	held = req;
	return 0;
}

static const struct vblk_backend_ops fake_ops = { .submit = fake_submit };

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct vhost_conn_params p = { .name = "vhost test.sock", .num_queues = 2,
				       .be_ops = &fake_ops };

	assert_non_null(f);
	hold = false;
	held = NULL;
	f->loop = loop_new();
	assert_non_null(f->loop);
	p.loop = f->loop;
	p.info.capacity = 8 << 20;
	p.info.logical_block_size = 512;
	p.info.physical_block_size = 512;
	assert_int_equal(vhost_conn_new(&p, &f->c), 0);
	f->logfd = memfd_create("log", 0);
	log_set_fd(f->logfd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	log_set_fd(-1);
	close(f->logfd);
	vhost_conn_free(f->c);
	loop_free(f->loop);
	free(f);
	return 0;
}

/* What was logged so far. */
static const char *logged(struct fixture *f)
{
	static char buf[8192];
	ssize_t n = pread(f->logfd, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static int send_msg(struct fixture *f, uint32_t req, const void *payload, uint32_t size,
		    int *fds, unsigned int nfds)
{
	struct vhost_user_msg m = { .hdr = { .request = req, .flags = VHOST_USER_VERSION,
					     .size = size } };

	memcpy(m.bytes, payload, size);
	return vhost_conn_handle(f->c, &m, sizeof(m.hdr) + size, fds, nfds, &f->rep, &f->rep_len,
				 &f->rep_fd);
}

static int send_u64(struct fixture *f, uint32_t req, uint64_t v, int *fds, unsigned int nfds)
{
	return send_msg(f, req, &v, sizeof(v), fds, nfds);
}

static int send_state(struct fixture *f, uint32_t req, uint32_t idx, uint32_t num)
{
	struct vhost_user_state s = { .index = idx, .num = num };

	return send_msg(f, req, &s, sizeof(s), NULL, 0);
}

static int memfd(size_t size)
{
	int fd = memfd_create("guest", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

static int send_mem_table(struct fixture *f, const struct vhost_user_region *regs, uint32_t n,
			  size_t fd_size)
{
	struct vhost_user_mem_table t = { .nregions = n };
	int fds[VHOST_USER_MEM_TABLE_MAX];

	for (uint32_t i = 0; i < n; i++) {
		t.regions[i] = regs[i];
		fds[i] = memfd(fd_size);
	}
	return send_msg(f, VHOST_USER_SET_MEM_TABLE, &t, 8 + n * sizeof(regs[0]), fds, n);
}

/* The refusal is logged naming the message. */
static void assert_refused(struct fixture *f, int r, const char *what)
{
	char want[64];

	assert_true(r < 0 && r != -EINPROGRESS);
	snprintf(want, sizeof(want), "%s refused", what);
	assert_non_null(strstr(logged(f), want));
}

static const struct vhost_user_region one_region = { .gpa = 0, .size = MEM_SIZE, .ua = 0x7f0000000000ull };

/* ---- what QEMU does: a whole start ---- */

static void test_qemu_handshake_starts_device(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_addr a = { .index = 0, .desc = 0x7f0000000000ull,
				     .avail = 0x7f0000001000ull, .used = 0x7f0000002000ull };
	uint64_t features;
	int kick = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC);

	assert_int_equal(send_msg(f, VHOST_USER_GET_FEATURES, NULL, 0, NULL, 0), 0);
	assert_int_equal(f->rep_len, 12 + 8);
	features = f->rep.u64;
	assert_true(features & VIRTIO_BIT(VHOST_USER_F_PROTOCOL_FEATURES));
	assert_false(features & VIRTIO_BIT(VIRTIO_F_RING_PACKED));
	assert_int_equal(send_msg(f, VHOST_USER_GET_PROTOCOL_FEATURES, NULL, 0, NULL, 0), 0);
	assert_int_equal(send_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, f->rep.u64, NULL, 0), 0);
	assert_int_equal(send_msg(f, VHOST_USER_GET_QUEUE_NUM, NULL, 0, NULL, 0), 0);
	assert_int_equal(f->rep.u64, 2);
	assert_int_equal(send_u64(f, VHOST_USER_SET_FEATURES, features, NULL, 0), 0);
	assert_int_equal(send_mem_table(f, &one_region, 1, MEM_SIZE), 0);
	assert_int_equal(send_state(f, VHOST_USER_SET_VRING_NUM, 0, 64), 0);
	assert_int_equal(send_state(f, VHOST_USER_SET_VRING_BASE, 0, 0), 0);
	assert_int_equal(send_msg(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	assert_int_equal(send_u64(f, VHOST_USER_SET_VRING_KICK, 0, &kick, 1), 0);
	assert_int_equal(send_u64(f, VHOST_USER_SET_VRING_CALL, 0, &call, 1), 0);
	assert_false(vhost_conn_running(f->c));
	assert_int_equal(send_state(f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	assert_true(vhost_conn_running(f->c));
	assert_non_null(strstr(logged(f), "device started (2 queues"));
	/* Stopped: the index it would go on from. */
	assert_int_equal(send_state(f, VHOST_USER_GET_VRING_BASE, 0, 0), 0);
	assert_int_equal(f->rep.state.num, 0);
	assert_false(vhost_conn_running(f->c));
}

/* ---- busy polling (--poll-us): requests taken without a kick ---- */

/* A request's header (virtio 1.2 §5.2.6), and GET_ID's answer size. */
struct test_blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};
#define TEST_BLK_ID_BYTES 20

/* The guest's memory as the test's front end sees it: rings at 0, 0x1000, 0x2000; buffers above. */
struct poll_guest {
	uint8_t *mem;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
};

/* A device started on queue 0 of 64 entries in @g's memory; without EVENT_IDX (flags suppress kicks). */
static void poll_start(struct fixture *f, struct poll_guest *g)
{
	struct vhost_user_addr a = { .index = 0, .desc = 0x7f0000000000ull,
				     .avail = 0x7f0000001000ull, .used = 0x7f0000002000ull };
	struct vhost_user_mem_table t = { .nregions = 1, .regions = { one_region } };
	int fd = memfd(MEM_SIZE), kick = eventfd(0, EFD_CLOEXEC), call = eventfd(0, EFD_CLOEXEC);
	uint64_t features;

	g->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(g->mem != MAP_FAILED);
	g->desc = (struct vring_desc *)g->mem;
	g->avail = (struct vring_avail *)(g->mem + 0x1000);
	g->used = (struct vring_used *)(g->mem + 0x2000);
	assert_int_equal(send_msg(f, VHOST_USER_GET_FEATURES, NULL, 0, NULL, 0), 0);
	features = f->rep.u64 & ~VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX);
	assert_int_equal(send_u64(f, VHOST_USER_SET_FEATURES, features, NULL, 0), 0);
	assert_int_equal(send_msg(f, VHOST_USER_SET_MEM_TABLE, &t, 8 + sizeof(one_region), &fd, 1), 0);
	assert_int_equal(send_state(f, VHOST_USER_SET_VRING_NUM, 0, 64), 0);
	assert_int_equal(send_state(f, VHOST_USER_SET_VRING_BASE, 0, 0), 0);
	assert_int_equal(send_msg(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
	assert_int_equal(send_u64(f, VHOST_USER_SET_VRING_KICK, 0, &kick, 1), 0);
	assert_int_equal(send_u64(f, VHOST_USER_SET_VRING_CALL, 0, &call, 1), 0);
	assert_int_equal(send_state(f, VHOST_USER_SET_VRING_ENABLE, 0, 1), 0);
	assert_true(vhost_conn_running(f->c));
}

/* The driver adds a GET_ID request (heads 0..2, buffers at 0x3000) without kicking. */
static void poll_add_get_id(struct poll_guest *g, uint16_t at)
{
	struct test_blk_hdr *h = (struct test_blk_hdr *)(g->mem + 0x3000);

	*h = (struct test_blk_hdr){ .type = htole32(VIRTIO_BLK_T_GET_ID) };
	memset(g->mem + 0x4000, 0, TEST_BLK_ID_BYTES);
	g->mem[0x5000] = 0xff;
	g->desc[0] = (struct vring_desc){ .addr = 0x3000, .len = sizeof(*h), .flags = VRING_DESC_F_NEXT,
					  .next = 1 };
	g->desc[1] = (struct vring_desc){ .addr = 0x4000, .len = TEST_BLK_ID_BYTES,
					  .flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, .next = 2 };
	g->desc[2] = (struct vring_desc){ .addr = 0x5000, .len = 1, .flags = VRING_DESC_F_WRITE };
	g->avail->ring[at % 64] = 0;
	__atomic_store_n(&g->avail->idx, (uint16_t)(at + 1), __ATOMIC_RELEASE);
}

static void test_busy_poll_takes_requests_without_kicks(void **state)
{
	struct fixture *f = *state;
	struct poll_guest g;

	poll_start(f, &g);
	assert_int_equal(g.used->flags & VRING_USED_F_NO_NOTIFY, 0);
	vhost_conn_busy_poll_begin(f->c);
	/* §2.7.10: the driver is told not to notify while the device looks by itself. */
	assert_int_equal(g.used->flags & VRING_USED_F_NO_NOTIFY, VRING_USED_F_NO_NOTIFY);
	assert_false(vhost_conn_busy_poll(f->c));
	poll_add_get_id(&g, 0);
	assert_true(vhost_conn_busy_poll(f->c));
	assert_int_equal(g.used->idx, 1);
	assert_int_equal(g.mem[0x5000], VIRTIO_BLK_S_OK);
	assert_false(vhost_conn_busy_poll(f->c));
	/* One added between the last look and the end is taken by the end. */
	poll_add_get_id(&g, 1);
	assert_true(vhost_conn_busy_poll_end(f->c));
	assert_int_equal(g.used->idx, 2);
	assert_int_equal(g.used->flags & VRING_USED_F_NO_NOTIFY, 0);
	assert_false(vhost_conn_busy_poll_end(f->c));
	munmap(g.mem, MEM_SIZE);
}

/* A device stopped during a spell: nothing polled; started again, it asks for kicks again. */
static void test_busy_poll_spell_across_a_stop(void **state)
{
	struct fixture *f = *state;
	struct test_blk_hdr *h;
	struct poll_guest g;

	poll_start(f, &g);
	vhost_conn_busy_poll_begin(f->c);
	assert_int_equal(send_state(f, VHOST_USER_GET_VRING_BASE, 0, 0), 0);
	assert_false(vhost_conn_running(f->c));
	poll_add_get_id(&g, 0);
	assert_false(vhost_conn_busy_poll(f->c));
	assert_int_equal(g.used->idx, 0);
	assert_false(vhost_conn_busy_poll_end(f->c));
	/* Not started by a spell either. */
	vhost_conn_busy_poll_begin(f->c);
	assert_false(vhost_conn_busy_poll(f->c));
	assert_false(vhost_conn_busy_poll_end(f->c));
	/* The request is a READ now, kept in flight by the backend. */
	h = (struct test_blk_hdr *)(g.mem + 0x3000);
	h->type = htole32(VIRTIO_BLK_T_IN);
	g.desc[1].len = 512;
	hold = true;
	held = NULL;
	/* Started again (QEMU sends the base and a kick fd again): the request is taken at the start. */
	{
		int kick = eventfd(0, EFD_CLOEXEC);

		assert_int_equal(send_state(f, VHOST_USER_SET_VRING_BASE, 0, 0), 0);
		assert_int_equal(send_u64(f, VHOST_USER_SET_VRING_KICK, 0, &kick, 1), 0);
	}
	assert_true(vhost_conn_running(f->c));
	assert_non_null(held);
	/* In flight: its completion will look at the ring, the driver need not notify. */
	assert_int_equal(g.used->flags & VRING_USED_F_NO_NOTIFY, VRING_USED_F_NO_NOTIFY);
	held->done(held, 0);
	held = NULL;
	hold = false;
	vhost_conn_complete(f->c);
	assert_int_equal(g.used->idx, 1);
	assert_int_equal(g.mem[0x5000], VIRTIO_BLK_S_OK);
	/* Nothing in flight: the driver is asked to notify, not left waiting for a spell that ended. */
	assert_int_equal(g.used->flags & VRING_USED_F_NO_NOTIFY, 0);
	munmap(g.mem, MEM_SIZE);
}

static void test_get_config_has_capacity(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_config cf = { .offset = 0, .size = 60 };
	uint64_t cap;

	assert_int_equal(send_msg(f, VHOST_USER_GET_CONFIG, &cf, 12 + 60, NULL, 0), 0);
	assert_int_equal(f->rep_len, 12 + 12 + 60);
	memcpy(&cap, f->rep.config.data, 8);
	assert_int_equal(cap, (8 << 20) / 512);
}

static void test_reply_ack_when_asked(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_msg m = { .hdr = { .request = VHOST_USER_SET_OWNER,
					     .flags = VHOST_USER_VERSION | VHOST_USER_NEED_REPLY } };

	assert_int_equal(send_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES,
				  VIRTIO_BIT(VHOST_USER_PROTOCOL_F_REPLY_ACK), NULL, 0), 0);
	assert_int_equal(vhost_conn_handle(f->c, &m, 12, NULL, 0, &f->rep, &f->rep_len, &f->rep_fd), 0);
	assert_int_equal(f->rep_len, 20);
	assert_int_equal(f->rep.u64, 0);
	assert_int_equal(f->rep.hdr.flags, VHOST_USER_VERSION | VHOST_USER_REPLY);
}

/* ---- malformed messages: each refused, the message named in the log ---- */

static void test_short_message(void **state)
{
	struct fixture *f = *state;
	uint8_t b[8] = { 1 };

	assert_refused(f, vhost_conn_handle(f->c, b, sizeof(b), NULL, 0, &f->rep, &f->rep_len,
					    &f->rep_fd), "a message");
}

static void test_payload_size_mismatch(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_msg m = { .hdr = { .request = VHOST_USER_SET_FEATURES,
					     .flags = VHOST_USER_VERSION, .size = 8 } };

	assert_refused(f, vhost_conn_handle(f->c, &m, 12 + 4, NULL, 0, &f->rep, &f->rep_len,
					    &f->rep_fd), "SET_FEATURES");
}

static void test_unknown_request(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_msg(f, 99, NULL, 0, NULL, 0), "a message");
	assert_non_null(strstr(logged(f), "request 99 is not supported"));
}

static void test_bad_header_flags(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_msg m = { .hdr = { .request = VHOST_USER_GET_FEATURES, .flags = 2 } };

	assert_refused(f, vhost_conn_handle(f->c, &m, 12, NULL, 0, &f->rep, &f->rep_len, &f->rep_fd),
		       "GET_FEATURES");
}

static void test_wrong_payload_size(void **state)
{
	struct fixture *f = *state;
	uint32_t v = 1;

	assert_refused(f, send_msg(f, VHOST_USER_SET_FEATURES, &v, sizeof(v), NULL, 0), "SET_FEATURES");
}

static void test_fd_where_none_belongs(void **state)
{
	struct fixture *f = *state;
	int fd = eventfd(0, EFD_CLOEXEC);

	assert_refused(f, send_u64(f, VHOST_USER_SET_FEATURES, 0, &fd, 1), "SET_FEATURES");
	/* The connection closed the fd it refused. */
	assert_int_equal(fcntl(fd, F_GETFD), -1);
}

static void test_features_not_offered(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_u64(f, VHOST_USER_SET_FEATURES, VIRTIO_BIT(VIRTIO_F_RING_PACKED),
				   NULL, 0), "SET_FEATURES");
	assert_non_null(strstr(logged(f), "were not offered"));
}

static void test_protocol_features_not_offered(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, 1ull << 14, NULL, 0),
		       "SET_PROTOCOL_FEATURES");
}

static void test_mem_table_no_regions(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_mem_table(f, &one_region, 0, MEM_SIZE), "SET_MEM_TABLE");
}

static void test_mem_table_fds_not_regions(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_mem_table t = { .nregions = 2 };
	int fd = memfd(MEM_SIZE);

	t.regions[0] = one_region;
	t.regions[1] = one_region;
	assert_refused(f, send_msg(f, VHOST_USER_SET_MEM_TABLE, &t, 8 + 2 * 32, &fd, 1),
		       "SET_MEM_TABLE");
}

static void test_mem_table_beyond_fd_size(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_region r = one_region;

	r.mmap_offset = 4096;
	assert_refused(f, send_mem_table(f, &r, 1, MEM_SIZE), "SET_MEM_TABLE");
	assert_non_null(strstr(logged(f), "beyond its file's size"));
}

static void test_mem_table_overlap(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_region r[2] = { one_region, one_region };

	r[1].gpa = MEM_SIZE / 2;
	r[1].ua = 0x7e0000000000ull;
	assert_refused(f, send_mem_table(f, r, 2, MEM_SIZE), "SET_MEM_TABLE");
	assert_non_null(strstr(logged(f), "overlaps another region in guest addresses"));
}

static void test_mem_table_user_overlap(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_region r[2] = { one_region, one_region };

	r[1].gpa = 0x100000000ull;
	assert_refused(f, send_mem_table(f, r, 2, MEM_SIZE), "SET_MEM_TABLE");
	assert_non_null(strstr(logged(f), "in user addresses"));
}

static void test_mem_table_zero_size(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_region r = one_region;

	r.size = 0;
	assert_refused(f, send_mem_table(f, &r, 1, MEM_SIZE), "SET_MEM_TABLE");
}

static void test_mem_table_wraps(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_region r = one_region;

	r.gpa = UINT64_MAX - 4096;
	assert_refused(f, send_mem_table(f, &r, 1, MEM_SIZE), "SET_MEM_TABLE");
	assert_non_null(strstr(logged(f), "wraps"));
}

static void test_add_mem_reg_without_fd(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_mem_reg m = { .region = one_region };

	assert_refused(f, send_msg(f, VHOST_USER_ADD_MEM_REG, &m, sizeof(m), NULL, 0), "ADD_MEM_REG");
}

static void test_rem_mem_reg_unknown(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_mem_reg m = { .region = one_region };

	assert_refused(f, send_msg(f, VHOST_USER_REM_MEM_REG, &m, sizeof(m), NULL, 0), "REM_MEM_REG");
}

static void test_vring_num_bad_queue(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_state(f, VHOST_USER_SET_VRING_NUM, 2, 64), "SET_VRING_NUM");
	assert_non_null(strstr(logged(f), "queue 2 does not exist"));
}

static void test_vring_num_not_power_of_two(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_state(f, VHOST_USER_SET_VRING_NUM, 0, 100), "SET_VRING_NUM");
}

static void test_vring_num_too_large(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_state(f, VHOST_USER_SET_VRING_NUM, 0, 2048), "SET_VRING_NUM");
}

static void test_vring_addr_outside_regions(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_addr a = { .index = 0, .desc = 0x7f0000000000ull + MEM_SIZE - 8,
				     .avail = 0x7f0000001000ull, .used = 0x7f0000002000ull };

	assert_int_equal(send_mem_table(f, &one_region, 1, MEM_SIZE), 0);
	assert_int_equal(send_state(f, VHOST_USER_SET_VRING_NUM, 0, 64), 0);
	assert_refused(f, send_msg(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0),
		       "SET_VRING_ADDR");
	assert_non_null(strstr(logged(f), "outside the memory regions"));
}

static void test_vring_addr_log_flag(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_addr a = { .index = 0, .flags = 1 };

	assert_refused(f, send_msg(f, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0),
		       "SET_VRING_ADDR");
}

static void test_vring_base_beyond_16_bits(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_state(f, VHOST_USER_SET_VRING_BASE, 0, 0x10000), "SET_VRING_BASE");
}

static void test_get_vring_base_bad_queue(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_state(f, VHOST_USER_GET_VRING_BASE, 7, 0), "GET_VRING_BASE");
}

static void test_vring_kick_nofd_with_fd(void **state)
{
	struct fixture *f = *state;
	int fd = eventfd(0, EFD_CLOEXEC);

	assert_refused(f, send_u64(f, VHOST_USER_SET_VRING_KICK, VHOST_USER_VRING_NOFD, &fd, 1),
		       "SET_VRING_KICK");
}

static void test_vring_kick_reserved_bits(void **state)
{
	struct fixture *f = *state;
	int fd = eventfd(0, EFD_CLOEXEC);

	assert_refused(f, send_u64(f, VHOST_USER_SET_VRING_KICK, 1u << 12, &fd, 1), "SET_VRING_KICK");
}

static void test_vring_kick_polling(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_u64(f, VHOST_USER_SET_VRING_KICK, VHOST_USER_VRING_NOFD, NULL, 0),
		       "SET_VRING_KICK");
}

static void test_vring_call_missing_fd(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_u64(f, VHOST_USER_SET_VRING_CALL, 0, NULL, 0), "SET_VRING_CALL");
}

static void test_vring_enable_not_boolean(void **state)
{
	struct fixture *f = *state;

	assert_refused(f, send_state(f, VHOST_USER_SET_VRING_ENABLE, 0, 2), "SET_VRING_ENABLE");
}

static void test_get_config_beyond_space(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_config cf = { .offset = 250, .size = 16 };

	assert_refused(f, send_msg(f, VHOST_USER_GET_CONFIG, &cf, 12 + 16, NULL, 0), "GET_CONFIG");
}

static void test_set_config_size_mismatch(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_config cf = { .offset = 32, .size = 4 };

	assert_refused(f, send_msg(f, VHOST_USER_SET_CONFIG, &cf, 12 + 1, NULL, 0), "SET_CONFIG");
}

static void test_inflight_bad_queue_size(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_inflight in = { .num_queues = 1, .queue_size = 100 };

	assert_refused(f, send_msg(f, VHOST_USER_GET_INFLIGHT_FD, &in, sizeof(in), NULL, 0),
		       "GET_INFLIGHT_FD");
}

static void test_inflight_too_many_queues(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_inflight in = { .num_queues = 3, .queue_size = 128 };

	assert_refused(f, send_msg(f, VHOST_USER_GET_INFLIGHT_FD, &in, sizeof(in), NULL, 0),
		       "GET_INFLIGHT_FD");
}

static void test_inflight_beyond_fd(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_inflight in = { .mmap_size = 1 << 20, .num_queues = 1, .queue_size = 128 };
	int fd = memfd(4096);

	assert_refused(f, send_msg(f, VHOST_USER_SET_INFLIGHT_FD, &in, sizeof(in), &fd, 1),
		       "SET_INFLIGHT_FD");
}

static void test_get_inflight_gives_region(void **state)
{
	struct fixture *f = *state;
	struct vhost_user_inflight in = { .num_queues = 2, .queue_size = 128 };

	assert_int_equal(send_msg(f, VHOST_USER_GET_INFLIGHT_FD, &in, sizeof(in), NULL, 0), 0);
	assert_int_equal(f->rep_len, 12 + 24);
	assert_true(f->rep_fd >= 0);
	/* Two queues of 16 + 128 * 16 bytes, each rounded up to 64. */
	assert_int_equal(f->rep.inflight.mmap_size, 2 * 2112);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_qemu_handshake_starts_device),
		T(test_busy_poll_takes_requests_without_kicks),
		T(test_busy_poll_spell_across_a_stop),
		T(test_get_config_has_capacity),
		T(test_reply_ack_when_asked),
		T(test_get_inflight_gives_region),
		T(test_short_message),
		T(test_payload_size_mismatch),
		T(test_unknown_request),
		T(test_bad_header_flags),
		T(test_wrong_payload_size),
		T(test_fd_where_none_belongs),
		T(test_features_not_offered),
		T(test_protocol_features_not_offered),
		T(test_mem_table_no_regions),
		T(test_mem_table_fds_not_regions),
		T(test_mem_table_beyond_fd_size),
		T(test_mem_table_overlap),
		T(test_mem_table_user_overlap),
		T(test_mem_table_zero_size),
		T(test_mem_table_wraps),
		T(test_add_mem_reg_without_fd),
		T(test_rem_mem_reg_unknown),
		T(test_vring_num_bad_queue),
		T(test_vring_num_not_power_of_two),
		T(test_vring_num_too_large),
		T(test_vring_addr_outside_regions),
		T(test_vring_addr_log_flag),
		T(test_vring_base_beyond_16_bits),
		T(test_get_vring_base_bad_queue),
		T(test_vring_kick_nofd_with_fd),
		T(test_vring_kick_reserved_bits),
		T(test_vring_kick_polling),
		T(test_vring_call_missing_fd),
		T(test_vring_enable_not_boolean),
		T(test_get_config_beyond_space),
		T(test_set_config_size_mismatch),
		T(test_inflight_bad_queue_size),
		T(test_inflight_too_many_queues),
		T(test_inflight_beyond_fd),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
