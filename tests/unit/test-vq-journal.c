// SPDX-License-Identifier: GPL-2.0-only
/* Queue journal tests: a process killed at any journal barrier resumes every buffer exactly once. */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "log.h"
#include "virtio-dev.h"
#include "vq.h"
#include "../lib/vtest.h"

/* Called at every barrier of the journal: vq-journal.c is built with VQ_JOURNAL_TEST_HOOK here. */
void (*vq_journal_test_hook)(void);

#define MAX_NUM 8
#define SPLIT_NUM 8
#define PACKED_NUM 7		/* packed sizes need not be powers of two (§2.8) */
#define MAXB 4			/* max_segs: buffers per chain */
#define BUF_BASE 0x200000ull	/* guest buffers (never mapped here) start at 2 MiB */
/* Split: start the indices just short of 65536, so that they wrap during the run. */
#define SPLIT_START 65530

/* ---- the driver's model: what it made available and what it has seen used ---- */

struct offer {
	bool live;			/* made available, not yet seen used */
	uint64_t abs;			/* where its head went, counted from the start of the run */
	uint16_t first, ndesc;		/* split: its descriptors; packed: ring slots it takes */
	unsigned int nbufs;
	struct vt_buf bufs[MAXB];
	uint32_t in_len;		/* the device answers with this many bytes written */
};

struct drv {
	struct offer by_id[MAX_NUM];	/* ids are never reused while live */
	bool desc_busy[MAX_NUM];	/* split: descriptors of live chains */
	unsigned int slots_free;	/* packed: ring slots the driver may fill */
	uint32_t tokens;		/* buffers made available so far */
	uint64_t avail_abs;		/* positions made available so far (split: entries; packed: slots) */
};

/* What a killed process leaves: guest memory (the rings), the journal, and the driver's view. */
struct kill_point {
	uint8_t *ram;
	size_t ram_len;
	uint8_t *j;
	struct vt_queue q;
	struct drv drv;
};

struct bench {
	bool packed;
	uint16_t num;
	struct vt *vt;			/* guest memory and the driver (vtest's model, no device) */
	struct vq_config cfg;
	struct vq *vq;
	void *j;
	size_t jsize;
	struct drv drv;
	/* device side: chains taken and not yet pushed, in the order taken */
	struct vq_elem held[MAX_NUM];
	struct vq_buf held_bufs[MAX_NUM][MAXB];
	unsigned int nheld;
	/* kill points recorded while the run goes on */
	bool recording;
	struct kill_point *kps;
	unsigned int nkp, kp_cap;
	uint32_t rng;
};

static struct bench *recorder;

static uint32_t rnd(struct bench *b)
{
	b->rng = b->rng * 1103515245u + 12345u;
	return b->rng >> 16;
}

/* Modulus of the unrolled positions: split avail indices are 16 bits; packed: slot and lap parity. */
static uint32_t lin_mod(const struct bench *b)
{
	return b->packed ? 2u * b->num : 65536u;
}

static uint32_t lin_of(const struct bench *b, uint16_t pos, bool wrap)
{
	/* §2.8.1: the wrap counter starts at 1 and flips with each lap. */
	return b->packed ? pos + (wrap ? 0u : b->num) : pos;
}

static uint32_t lin_dist(const struct bench *b, uint32_t from, uint32_t to)
{
	return (to + lin_mod(b) - from) % lin_mod(b);
}

/* The driver's next available position. */
static uint32_t drv_avail(const struct bench *b, const struct vt_queue *q)
{
	return b->packed ? lin_of(b, q->next_avail, q->avail_wrap) : q->avail_idx;
}

struct shape {
	unsigned int n;
	bool write[MAXB];
	bool indirect;
};

/* Requests as a block driver makes them: header, data, status; some indirect (§2.7.5.3, §2.8.7). */
static const struct shape shapes[] = {
	{ 2, { false, true }, false },
	{ 3, { false, true, true }, false },
	{ 3, { false, true, true }, true },
	{ 1, { true }, false },
	{ 4, { false, false, true, true }, false },
	{ 2, { false, true }, true },
};

static bool split_room(struct bench *b, unsigned int cnt, uint16_t *ret_first)
{
	for (uint16_t s = 0; s < b->num; s++) {
		unsigned int k;

		for (k = 0; k < cnt && !b->drv.desc_busy[(s + k) % b->num]; k++)
			;
		if (k == cnt) {
			*ret_first = s;
			return true;
		}
	}
	return false;
}

/* The driver makes one buffer of @sh available, if it has room; returns its id or -1. */
static int drv_add(struct bench *b, const struct shape *sh)
{
	struct vt_queue *q = &b->vt->q[0];
	unsigned int cnt = sh->indirect ? 1 : sh->n;
	struct vt_buf bufs[MAXB];
	uint16_t first = 0;
	uint32_t token = b->drv.tokens;
	struct offer *o;
	int id;

	if (b->packed) {
		uint16_t i;

		if (b->drv.slots_free < cnt)
			return -1;
		for (i = 0; i < b->num && b->drv.by_id[(q->next_id + i) % b->num].live; i++)
			;
		assert_true(i < b->num);
		q->next_id = (uint16_t)((q->next_id + i) % b->num);
	} else {
		if (!split_room(b, cnt, &first))
			return -1;
		q->next_desc = first;
	}
	for (unsigned int k = 0; k < sh->n; k++)
		bufs[k] = (struct vt_buf){ .gpa = BUF_BASE + (token % 256) * 0x1000 + k * 0x100,
					   .len = 16 + (token % 7) * 64 + k,
					   .write = sh->write[k] };
	id = vt_add(b->vt, 0, bufs, sh->n, sh->indirect);
	assert_true(id >= 0 && id < b->num);
	o = &b->drv.by_id[id];
	assert_false(o->live);
	*o = (struct offer){ .live = true, .abs = b->drv.avail_abs, .first = first,
			     .ndesc = (uint16_t)cnt, .nbufs = sh->n };
	b->drv.avail_abs += b->packed ? cnt : 1;
	memcpy(o->bufs, bufs, sizeof(bufs));
	for (unsigned int k = 0; k < sh->n; k++)
		o->in_len += bufs[k].write ? bufs[k].len : 0;
	if (b->packed) {
		b->drv.slots_free -= cnt;
	} else {
		assert_int_equal(id, first);
		for (unsigned int k = 0; k < cnt; k++)
			b->drv.desc_busy[(first + k) % b->num] = true;
	}
	b->drv.tokens++;
	return id;
}

/*
 * The driver looks at the used ring (at most @max entries): each id it sees
 * must be one it made available and has not seen used yet, with the length
 * the device wrote, and, if @published is given, one the device published
 * (the flag is consumed).  Returns how many it saw.
 */
static unsigned int drv_reap(struct bench *b, struct vt *vt, struct drv *d, unsigned int max,
			     bool *published)
{
	unsigned int n = 0;
	uint32_t id, len;

	while (n < max && vt_used(vt, 0, &id, &len)) {
		struct offer *o;

		if (id >= b->num || !d->by_id[id].live)
			fail_msg("driver sees id %u used: never made available, or seen twice", id);
		o = &d->by_id[id];
		if (published && !published[id])
			fail_msg("driver sees id %u used before the device published it", id);
		if (published)
			published[id] = false;
		assert_int_equal(len, o->in_len);
		o->live = false;
		if (b->packed)
			d->slots_free += o->ndesc;
		else
			for (unsigned int k = 0; k < o->ndesc; k++)
				d->desc_busy[(o->first + k) % b->num] = false;
		n++;
	}
	return n;
}

static unsigned int live_count(const struct bench *b, const struct drv *d)
{
	unsigned int n = 0;

	for (unsigned int id = 0; id < b->num; id++)
		n += d->by_id[id].live;
	return n;
}

/* The device got exactly the buffers the driver described, in order. */
static void assert_same_bufs(const struct offer *o, const struct vq_elem *e)
{
	assert_true(o->live);
	assert_int_equal(e->out_num + e->in_num, o->nbufs);
	for (unsigned int k = 0; k < o->nbufs; k++) {
		assert_int_equal(e->bufs[k].addr, o->bufs[k].gpa);
		assert_int_equal(e->bufs[k].len, o->bufs[k].len);
		assert_int_equal(e->bufs[k].write, o->bufs[k].write);
	}
	assert_int_equal(e->in_len, o->in_len);
}

/* ---- kill points ---- */

static void record_kill_point(void)
{
	struct bench *b = recorder;
	struct kill_point *kp;

	if (!b || !b->recording)
		return;
	if (b->nkp == b->kp_cap) {
		b->kp_cap = b->kp_cap ? 2 * b->kp_cap : 64;
		b->kps = realloc(b->kps, b->kp_cap * sizeof(*b->kps));
		assert_non_null(b->kps);
	}
	kp = &b->kps[b->nkp++];
	kp->ram_len = b->vt->mem.alloc_next;
	kp->ram = malloc(kp->ram_len);
	kp->j = malloc(b->jsize);
	assert_true(kp->ram && kp->j);
	memcpy(kp->ram, b->vt->mem.ram, kp->ram_len);
	memcpy(kp->j, b->j, b->jsize);
	kp->q = b->vt->q[0];
	kp->drv = b->drv;
}

/* ---- the bench ---- */

static struct bench *bench_new(bool packed)
{
	struct bench *b = calloc(1, sizeof(*b));

	assert_non_null(b);
	b->packed = packed;
	b->num = packed ? PACKED_NUM : SPLIT_NUM;
	b->rng = 12345;
	b->vt = vt_new_rings(1, b->num, packed);
	b->cfg = (struct vq_config){ .num = b->num, .desc_addr = b->vt->q[0].desc,
				     .driver_addr = b->vt->q[0].driver,
				     .device_addr = b->vt->q[0].device, .packed = packed,
				     .event_idx = true, .indirect = true, .max_segs = MAXB };
	b->drv.slots_free = b->num;
	for (unsigned int i = 0; i < MAX_NUM; i++)
		b->held[i].bufs = b->held_bufs[i];
	assert_int_equal(vq_create(&b->vt->mem.t, &b->cfg, &b->vq), 0);
	b->jsize = vq_journal_size(b->num, MAXB);
	b->j = calloc(1, b->jsize);
	assert_non_null(b->j);
	if (!packed) {
		/* Positions near the end of the 16-bit index space, for both sides. */
		struct vq_state st = { .last_avail = SPLIT_START, .used_idx = SPLIT_START };
		uint16_t *used = vt_ptr(b->vt, b->vt->q[0].device);

		assert_int_equal(vq_restore(b->vq, &st, NULL, 0), 0);
		b->vt->q[0].avail_idx = SPLIT_START;
		b->vt->q[0].last_used = SPLIT_START;
		vt_avail(b->vt, 0)[1] = htole16(SPLIT_START);
		used[1] = htole16(SPLIT_START);
	}
	assert_int_equal(vq_journal_start(b->vq, b->j, b->jsize), 0);
	return b;
}

static void bench_free(struct bench *b)
{
	if (!b)
		return;
	for (unsigned int i = 0; i < b->nkp; i++) {
		free(b->kps[i].ram);
		free(b->kps[i].j);
	}
	free(b->kps);
	vq_destroy(b->vq);
	free(b->j);
	vt_free(b->vt);
	free(b);
}

/* The device takes up to @n chains. */
static void dev_pop(struct bench *b, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		struct vq_elem *e = &b->held[b->nheld];
		int r = vq_pop(b->vq, e);

		assert_true(r >= 0);
		if (r == 0)
			return;
		assert_same_bufs(&b->drv.by_id[e->id], e);
		b->nheld++;
	}
}

/* The device returns the @k-th chain it holds. */
static void dev_push(struct bench *b, unsigned int k)
{
	struct vq_elem *e = &b->held[k];
	struct vq_buf *bufs = e->bufs;

	vq_push(b->vq, e, (uint32_t)e->in_len);
	/* Keep the slots' buffer arrays: swap the returned one to the end. */
	memmove(&b->held[k], &b->held[k + 1], (b->nheld - k - 1) * sizeof(b->held[0]));
	b->nheld--;
	b->held[b->nheld].bufs = bufs;
}

/*
 * A realistic run: the driver adds requests of every shape while it has
 * room, the device takes some, answers some out of order (one of them stays
 * in flight for most of the run, while the rings wrap around it), publishes
 * in batches, and the driver reaps the used ring now and then.  Then
 * everything is answered.  A kill point is recorded at every journal barrier.
 */
static void run(struct bench *b)
{
	const unsigned int rounds = 24;
	unsigned int shape = 0;
	uint16_t slow_id = UINT16_MAX;

	recorder = b;
	vq_journal_test_hook = record_kill_point;
	b->recording = true;
	for (unsigned int round = 0; round < rounds; round++) {
		for (unsigned int i = 0; i < 3; i++) {
			if (drv_add(b, &shapes[shape % (sizeof(shapes) / sizeof(shapes[0]))]) < 0)
				break;
			shape++;
		}
		dev_pop(b, 1 + rnd(b) % 3);
		if (slow_id == UINT16_MAX && b->nheld)
			slow_id = b->held[0].id;
		for (unsigned int batch = 0; batch < 1 + round % 2; batch++) {
			/* About half of what it holds, picked out of order. */
			for (unsigned int n = b->nheld / 2 + 1; n > 0 && b->nheld; n--) {
				unsigned int k = rnd(b) % b->nheld;

				if (b->held[k].id == slow_id && round < rounds - 3)
					continue;
				dev_push(b, k);
			}
			vq_publish(b->vq);
			if (batch == 0)
				dev_pop(b, rnd(b) % 2);
		}
		if (rnd(b) % 3)
			drv_reap(b, b->vt, &b->drv, UINT_MAX, NULL);
	}
	/* Answer everything. */
	dev_pop(b, MAX_NUM);
	while (b->nheld)
		dev_push(b, b->nheld - 1);
	vq_publish(b->vq);
	b->recording = false;
	vq_journal_test_hook = NULL;
	recorder = NULL;
	drv_reap(b, b->vt, &b->drv, UINT_MAX, NULL);
	assert_int_equal(live_count(b, &b->drv), 0);
	assert_true(b->drv.tokens >= 30);
}

/*
 * A new process starts from kill point @k: a fresh queue over that guest
 * memory resumes from that journal.  Every buffer the driver made available
 * is then exactly one of: redone (vq_pop() returns it first, with its
 * buffers), still available in the ring, or seen used by the driver.  Then
 * the new process answers everything, one batch per buffer in the reverse
 * order, and the driver sees each buffer used exactly once, and only once
 * the device published it.
 */
static void check_kill_point(struct bench *b, struct vt *vt, void *j, unsigned int k)
{
	const struct kill_point *kp = &b->kps[k];
	struct vq_inflight heads[MAX_NUM];
	struct vq_elem el[MAX_NUM];
	struct vq_buf bufs[MAX_NUM][MAXB];
	bool redo[MAX_NUM] = { false }, published[MAX_NUM] = { false };
	struct drv d = kp->drv;
	struct vq_state st;
	struct vq *vq;
	uint32_t dev_avail, drv_end;
	uint64_t dev_abs, last_abs = 0;
	unsigned int nredo, live, n = 0;
	int r;

	memcpy(vt->mem.ram, kp->ram, kp->ram_len);
	vt->mem.alloc_next = kp->ram_len;
	vt->q[0] = kp->q;
	memcpy(j, kp->j, b->jsize);
	assert_int_equal(vq_create(&vt->mem.t, &b->cfg, &vq), 0);
	r = vq_journal_resume(vq, j, b->jsize);
	if (r != 0)
		fail_msg("kill point %u of %u: resume returned %d", k, b->nkp, r);
	nredo = vq_inflight_list(vq, heads, MAX_NUM);
	assert_int_equal(vq_save(vq, &st), 0);
	dev_avail = lin_of(b, st.last_avail, st.avail_wrap);
	drv_end = drv_avail(b, &kp->q);

	/* What the dead process published, the driver sees now. */
	drv_reap(b, vt, &d, UINT_MAX, NULL);
	live = live_count(b, &d);
	for (unsigned int i = 0; i < nredo; i++) {
		uint16_t id = heads[i].id;

		if (id >= b->num || !d.by_id[id].live)
			fail_msg("kill point %u: id %u redone, but the driver saw it used or never "
				 "offered it", k, id);
		redo[id] = true;
	}
	if (lin_dist(b, dev_avail, drv_end) > b->num)
		fail_msg("kill point %u: resumed avail position %u beyond the driver's %u", k,
			 dev_avail, drv_end);
	/* The driver's positions wrap; a buffer may stay in flight for laps: count from the start. */
	dev_abs = d.avail_abs - lin_dist(b, dev_avail, drv_end);
	for (uint16_t id = 0; id < b->num; id++) {
		const struct offer *o = &d.by_id[id];
		bool avail;

		if (!o->live)
			continue;
		avail = o->abs >= dev_abs;
		if (avail == redo[id])
			fail_msg("kill point %u of %u: id %u is %s", k, b->nkp, id,
				 avail ? "both redone and still available" :
					 "lost: neither redone, available nor seen used");
	}

	/* The new process takes everything: the redone buffers first, then the ring in order. */
	for (;;) {
		struct vq_elem *e = &el[n];
		const struct offer *o;

		e->bufs = bufs[n];
		e->iov = NULL;
		e->iov_cap = 0;
		r = vq_pop(vq, e);
		if (r < 0)
			fail_msg("kill point %u: pop %u after the resume failed: %d", k, n, r);
		if (r == 0)
			break;
		assert_true(n < live && e->id < b->num);
		o = &d.by_id[e->id];
		assert_same_bufs(o, e);
		if (n < nredo) {
			assert_true(redo[e->id]);
		} else {
			assert_false(redo[e->id]);
			assert_true(o->abs >= dev_abs && (n == nredo || o->abs > last_abs));
			last_abs = o->abs;
		}
		n++;
	}
	assert_int_equal(n, live);
	/* Answered in the reverse order, one batch each: the driver sees each once, when published. */
	while (n > 0) {
		n--;
		vq_push(vq, &el[n], (uint32_t)el[n].in_len);
		vq_publish(vq);
		published[el[n].id] = true;
		drv_reap(b, vt, &d, UINT_MAX, published);
	}
	assert_int_equal(live_count(b, &d), 0);
	assert_int_equal(vq_pop(vq, &el[0]), 0);
	vq_destroy(vq);
}

static void kill_everywhere(bool packed)
{
	struct bench *b = bench_new(packed);
	struct vt *vt = vt_new_rings(1, b->num, packed);
	void *j = malloc(b->jsize);

	assert_non_null(j);
	run(b);
	assert_true(b->nkp > 100);
	for (unsigned int k = 0; k < b->nkp; k++)
		check_kill_point(b, vt, j, k);
	free(j);
	vt_free(vt);
	bench_free(b);
}

static void test_kill_at_every_barrier_split(void **state)
{
	kill_everywhere(false);
}

static void test_kill_at_every_barrier_packed(void **state)
{
	kill_everywhere(true);
}

/* ---- hostile journals: stale, torn or written by someone else ---- */

/* vq.h: bit 63 of pub says a batch is announced. */
#define PUB_ANNOUNCED (1ull << 63)

/* A journaled queue with buffers in flight: three taken, one answered and published. */
static struct bench *hostile_bench(bool packed)
{
	struct bench *b = bench_new(packed);

	for (unsigned int i = 0; i < 3; i++)
		assert_true(drv_add(b, &shapes[i]) >= 0);
	dev_pop(b, 3);
	assert_int_equal(b->nheld, 3);
	dev_push(b, 0);
	vq_publish(b->vq);
	return b;
}

static struct vq_journal *jhdr(struct bench *b)
{
	return b->j;
}

static struct vq_journal_slot *jslot(struct bench *b, uint16_t id)
{
	size_t stride = sizeof(struct vq_journal_slot) + MAXB * sizeof(struct vq_journal_buf);
	size_t off = b->jsize - b->num * stride;

	return (struct vq_journal_slot *)((uint8_t *)b->j + off + id * stride);
}

/* The slot of the buffer in flight a resumed queue redoes first (lowest id). */
static struct vq_journal_slot *first_inflight(struct bench *b)
{
	uint16_t id = b->held[0].id < b->held[1].id ? b->held[0].id : b->held[1].id;

	return jslot(b, id);
}

/* A new process resumes a fresh queue from the journal: what vq_journal_resume() says. */
static int resume_from(struct bench *b, void *j, size_t size, struct vq **ret_vq)
{
	int r;

	assert_int_equal(vq_create(&b->vt->mem.t, &b->cfg, ret_vq), 0);
	r = vq_journal_resume(*ret_vq, j, size);
	return r;
}

static void expect_refused(struct bench *b)
{
	struct vq *vq;

	assert_int_equal(resume_from(b, b->j, b->jsize, &vq), -EINVAL);
	vq_destroy(vq);
	bench_free(b);
}

/* Resumed, but the first buffer redone breaks a ring rule: the queue fails, cleanly. */
static void expect_pop_fails(struct bench *b)
{
	struct vq_buf bufs[MAXB];
	struct vq_elem e = { .bufs = bufs };
	struct vq *vq;

	assert_int_equal(resume_from(b, b->j, b->jsize, &vq), 0);
	assert_true(vq_pop(vq, &e) < 0);
	assert_int_equal(vq_pop(vq, &e), -EPIPE);
	vq_destroy(vq);
	bench_free(b);
}

static void resumes_sane(bool packed)
{
	struct bench *b = hostile_bench(packed);
	struct vq_buf bufs[MAXB];
	struct vq_elem e = { .bufs = bufs };
	struct vq *vq;

	assert_int_equal(resume_from(b, b->j, b->jsize, &vq), 0);
	for (unsigned int i = 0; i < 2; i++) {
		assert_int_equal(vq_pop(vq, &e), 1);
		assert_same_bufs(&b->drv.by_id[e.id], &e);
	}
	assert_int_equal(vq_pop(vq, &e), 0);
	vq_destroy(vq);
	bench_free(b);
}

static void test_sane_journal_resumes_split(void **state)
{
	resumes_sane(false);
}

static void test_sane_journal_resumes_packed(void **state)
{
	resumes_sane(true);
}

static void test_hostile_wrong_magic(void **state)
{
	struct bench *b = hostile_bench(false);

	jhdr(b)->magic ^= 1;
	expect_refused(b);
}

static void test_hostile_num_mismatch(void **state)
{
	struct bench *b = hostile_bench(false);

	jhdr(b)->num = SPLIT_NUM / 2;
	expect_refused(b);
}

static void test_hostile_max_bufs_mismatch(void **state)
{
	struct bench *b = hostile_bench(true);

	jhdr(b)->max_bufs = MAXB + 1;
	expect_refused(b);
}

static void test_hostile_size_too_small(void **state)
{
	struct bench *b = hostile_bench(false);
	struct vq *vq;

	assert_int_equal(resume_from(b, b->j, b->jsize - 1, &vq), -EINVAL);
	vq_destroy(vq);
	bench_free(b);
}

static void test_hostile_size_below_header(void **state)
{
	struct bench *b = hostile_bench(false);
	/* Exactly what the caller says it has: ASan catches a read past it. */
	void *j = malloc(8);
	struct vq *vq;

	assert_non_null(j);
	memcpy(j, b->j, 8);
	assert_int_equal(resume_from(b, j, 8, &vq), -EINVAL);
	vq_destroy(vq);
	free(j);
	bench_free(b);
}

static void test_hostile_split_position_with_wrap_bit(void **state)
{
	struct bench *b = hostile_bench(false);

	jhdr(b)->avail |= 1u << 16;
	expect_refused(b);
}

static void test_hostile_position_high_bits(void **state)
{
	struct bench *b = hostile_bench(true);

	jhdr(b)->used |= 1u << 20;
	expect_refused(b);
}

static void test_hostile_packed_avail_out_of_range(void **state)
{
	struct bench *b = hostile_bench(true);

	jhdr(b)->avail = (jhdr(b)->avail & (1u << 16)) | PACKED_NUM;
	expect_refused(b);
}

static void test_hostile_packed_used_out_of_range(void **state)
{
	struct bench *b = hostile_bench(true);

	jhdr(b)->used = (jhdr(b)->used & (1u << 16)) | 0xffff;
	expect_refused(b);
}

static void test_hostile_packed_positions_laps_apart(void **state)
{
	struct bench *b = hostile_bench(true);

	/* avail a lap further on than it can be: more than num slots in flight */
	jhdr(b)->avail ^= 1u << 16;
	expect_refused(b);
}

static void test_hostile_packed_batch_end_out_of_range(void **state)
{
	struct bench *b = hostile_bench(true);
	struct vq_journal *j = jhdr(b);

	j->pub = PUB_ANNOUNCED | j->used | (uint64_t)PACKED_NUM << 32;
	j->pub_n = 1;
	expect_refused(b);
}

static void test_hostile_batch_longer_than_queue(void **state)
{
	struct bench *b = hostile_bench(false);
	struct vq_journal *j = jhdr(b);

	j->pub = PUB_ANNOUNCED | j->used | (uint64_t)((j->used + 1) & 0xffff) << 32;
	j->pub_n = SPLIT_NUM + 1;
	expect_refused(b);
}

static void test_hostile_split_used_idx_neither_end_of_batch(void **state)
{
	struct bench *b = hostile_bench(false);
	struct vq_journal *j = jhdr(b);
	uint16_t *used = vt_ptr(b->vt, b->vt->q[0].device);

	j->batch[0] = b->held[0].id;
	j->pub_n = 1;
	j->pub = PUB_ANNOUNCED | j->used | (uint64_t)((j->used + 1) & 0xffff) << 32;
	/* the driver (or anyone) wrote used->idx: it is neither where the batch began nor ended */
	used[1] = htole16((uint16_t)(j->used + 5));
	expect_refused(b);
}

static void test_hostile_slot_taken_not_boolean(void **state)
{
	struct bench *b = hostile_bench(true);

	first_inflight(b)->taken = 2;
	expect_refused(b);
}

static void test_hostile_slot_without_buffers(void **state)
{
	struct bench *b = hostile_bench(false);

	first_inflight(b)->nbufs = 0;
	expect_refused(b);
}

static void test_hostile_slot_more_buffers_than_room(void **state)
{
	struct bench *b = hostile_bench(true);

	first_inflight(b)->nbufs = MAXB + 1;
	expect_refused(b);
}

static void test_hostile_slot_without_descriptors(void **state)
{
	struct bench *b = hostile_bench(true);

	first_inflight(b)->ndesc = 0;
	expect_refused(b);
}

static void test_hostile_packed_slot_position_out_of_range(void **state)
{
	struct bench *b = hostile_bench(true);

	first_inflight(b)->pos = PACKED_NUM;
	expect_refused(b);
}

static void test_hostile_split_fewer_taken_than_in_flight(void **state)
{
	struct bench *b = hostile_bench(false);

	first_inflight(b)->taken = 0;
	expect_refused(b);
}

static void test_hostile_split_more_taken_than_in_flight(void **state)
{
	struct bench *b = hostile_bench(false);
	struct vq_journal_slot *s = jslot(b, 7);

	*s = *first_inflight(b);
	memcpy(s->bufs, first_inflight(b)->bufs, MAXB * sizeof(s->bufs[0]));
	s->pos = (uint16_t)(s->pos - 3);
	expect_refused(b);
}

static void test_hostile_buffer_zero_length(void **state)
{
	struct bench *b = hostile_bench(false);

	first_inflight(b)->bufs[0].len = 0;
	expect_pop_fails(b);
}

static void test_hostile_buffer_writable_before_readable(void **state)
{
	struct bench *b = hostile_bench(true);
	struct vq_journal_slot *s = first_inflight(b);

	s->bufs[0].write = 1;
	s->bufs[1].write = 0;
	expect_pop_fails(b);
}

static void test_hostile_buffer_address_wraps(void **state)
{
	struct bench *b = hostile_bench(false);

	first_inflight(b)->bufs[0].addr = UINT64_MAX - 4;
	expect_pop_fails(b);
}

/* ---- virtio-dev: a device whose queue keeps a journal ---- */

/*
 * A virtio-blk device with a journal on its queue: two writes answered
 * (pushed, not yet published), one in the backend, one added without a
 * notification.  virtio_dev_save() succeeds there (a journaled queue's ring
 * state is in its journal); then the process is killed: guest memory and
 * the journal stay as they are.  A fresh device given the same journal
 * restores, and the driver sees each request used exactly once, answered.
 */
static void device_killed_mid_batch(uint64_t features)
{
	struct vt *vt = vt_new(NULL);
	size_t jsize = virtio_dev_journal_size(vt->vdev), ssize;
	void *j = aligned_alloc(8, (jsize + 7) & ~(size_t)7), *jcopy = malloc(jsize);
	uint8_t *ram = malloc(vt->mem.size);
	unsigned int seen[16] = { 0 };
	struct virtio_dev_state *s;
	struct blk_req *slow;
	uint64_t st[4], d[4];
	uint32_t id, len;
	int ids[4];

	assert_true(j && jcopy && ram);
	memset(j, 0, jsize);
	assert_int_equal(virtio_dev_set_journal(vt->vdev, 0, j, jsize), 0);
	assert_true(vt_start(vt, features, 1, 16));
	assert_int_equal(virtio_dev_set_journal(vt->vdev, 0, j, jsize), -EBUSY);
	for (int i = 0; i < 3; i++) {
		d[i] = vt_fill(vt, 512, (uint8_t)(0xb0 + i));
		ids[i] = vt_blk(vt, 0, VIRTIO_BLK_T_OUT, (uint64_t)i, d[i], 512, &st[i]);
	}
	vt_kick(vt, 0);
	assert_int_equal(vt->be.npending, 3);
	/* The backend finishes the first two; the device pushes them and has not published yet. */
	slow = vt->be.pending[2];
	vt->be.npending = 2;
	assert_int_equal(ram_be_complete(&vt->be, false), 2);
	vt->be.pending[0] = slow;
	vt->be.npending = 1;
	assert_false(vt_used(vt, 0, &id, &len));
	d[3] = vt_fill(vt, 512, 0xb3);
	ids[3] = vt_blk(vt, 0, VIRTIO_BLK_T_OUT, 3, d[3], 512, &st[3]);

	ssize = virtio_dev_state_size(vt->vdev);
	s = calloc(1, ssize);
	assert_non_null(s);
	assert_int_equal(virtio_dev_save(vt->vdev, s, ssize), 0);
	/* kill -9: what is in guest memory and in the journal now is what the next process finds */
	memcpy(ram, vt->mem.ram, vt->mem.size);
	memcpy(jcopy, j, jsize);
	vt_replace_device(vt);
	memcpy(vt->mem.ram, ram, vt->mem.size);
	memcpy(j, jcopy, jsize);
	memset(vt->be.data, 0, 4 * 512);	/* as if no write had reached the disk */

	assert_int_equal(virtio_dev_set_journal(vt->vdev, 0, j, jsize), 0);
	assert_int_equal(virtio_dev_restore(vt->vdev, s, ssize), 0);
	assert_true(virtio_dev_running(vt->vdev));
	vt_complete(vt);
	while (vt_used(vt, 0, &id, &len)) {
		assert_true(id < 16);
		seen[id]++;
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(seen[ids[i]], 1);
		assert_int_equal(*(uint8_t *)vt_ptr(vt, st[i]), VIRTIO_BLK_S_OK);
		assert_int_equal(vt->be.data[i * 512], 0xb0 + i);
	}
	assert_false(vt_status(vt) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	free(s);
	vt_free(vt);
	free(ram);
	free(jcopy);
	free(j);
}

static void test_device_killed_mid_batch_split(void **state)
{
	device_killed_mid_batch(VT_ALL & ~VIRTIO_BIT(VIRTIO_F_RING_PACKED));
}

static void test_device_killed_mid_batch_packed(void **state)
{
	device_killed_mid_batch(VT_ALL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill_at_every_barrier_split),
		cmocka_unit_test(test_kill_at_every_barrier_packed),
		cmocka_unit_test(test_sane_journal_resumes_split),
		cmocka_unit_test(test_sane_journal_resumes_packed),
		cmocka_unit_test(test_hostile_wrong_magic),
		cmocka_unit_test(test_hostile_num_mismatch),
		cmocka_unit_test(test_hostile_max_bufs_mismatch),
		cmocka_unit_test(test_hostile_size_too_small),
		cmocka_unit_test(test_hostile_size_below_header),
		cmocka_unit_test(test_hostile_split_position_with_wrap_bit),
		cmocka_unit_test(test_hostile_position_high_bits),
		cmocka_unit_test(test_hostile_packed_avail_out_of_range),
		cmocka_unit_test(test_hostile_packed_used_out_of_range),
		cmocka_unit_test(test_hostile_packed_positions_laps_apart),
		cmocka_unit_test(test_hostile_packed_batch_end_out_of_range),
		cmocka_unit_test(test_hostile_batch_longer_than_queue),
		cmocka_unit_test(test_hostile_split_used_idx_neither_end_of_batch),
		cmocka_unit_test(test_hostile_slot_taken_not_boolean),
		cmocka_unit_test(test_hostile_slot_without_buffers),
		cmocka_unit_test(test_hostile_slot_more_buffers_than_room),
		cmocka_unit_test(test_hostile_slot_without_descriptors),
		cmocka_unit_test(test_hostile_packed_slot_position_out_of_range),
		cmocka_unit_test(test_hostile_split_fewer_taken_than_in_flight),
		cmocka_unit_test(test_hostile_split_more_taken_than_in_flight),
		cmocka_unit_test(test_hostile_buffer_zero_length),
		cmocka_unit_test(test_hostile_buffer_writable_before_readable),
		cmocka_unit_test(test_hostile_buffer_address_wraps),
		cmocka_unit_test(test_device_killed_mid_batch_split),
		cmocka_unit_test(test_device_killed_mid_batch_packed),
	};

	log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
