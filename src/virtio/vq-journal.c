// SPDX-License-Identifier: GPL-2.0-only
/* A queue's journal: positions and buffers in flight, kept where a killed process leaves them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vq-internal.h"

/*
 * The journal is read by another process only after this one is gone, and a
 * process stops between two instructions: what matters is the order of the
 * stores in the program, so a compiler barrier is all the ordering needed.
 */
#ifdef VQ_JOURNAL_TEST_HOOK
/*
 * Built so for tests/unit/test-vq-journal.c only: each barrier is also a
 * point where the test stops the world and keeps a copy of what a killed
 * process would leave behind.
 */
extern void (*vq_journal_test_hook)(void);
#define jbarrier()                                          \
	do {                                                \
		__atomic_signal_fence(__ATOMIC_SEQ_CST);    \
		if (vq_journal_test_hook)                   \
			vq_journal_test_hook();             \
		__atomic_signal_fence(__ATOMIC_SEQ_CST);    \
	} while (0)
#else
#define jbarrier() __atomic_signal_fence(__ATOMIC_SEQ_CST)
#endif
#define jstore(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define jload(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/* The position words: position in bits 0-15, wrap counter in bit 16. */
#define POS(w) ((uint16_t)((w) & 0xffffu))
#define WRAP(w) ((bool)(((w) >> 16) & 1u))
#define POSWORD(pos, wrap) ((uint32_t)(pos) | ((uint32_t)!!(wrap) << 16))

/* pub: bit 63 announced; from (bits 0-16) and to (bits 32-48) as position words. */
#define PUB_ON (1ull << 63)

static size_t slots_offset(unsigned int num)
{
	size_t off = sizeof(struct vq_journal) + (size_t)num * sizeof(uint16_t);

	return (off + 7) & ~(size_t)7;
}

static size_t slot_stride(unsigned int max_bufs)
{
	return sizeof(struct vq_journal_slot) + (size_t)max_bufs * sizeof(struct vq_journal_buf);
}

size_t vq_journal_size(unsigned int num, unsigned int max_bufs)
{
	return slots_offset(num) + (size_t)num * slot_stride(max_bufs);
}

static struct vq_journal_slot *jslot(const struct vq *vq, uint16_t id)
{
	return (struct vq_journal_slot *)((uint8_t *)vq->jslots + (size_t)id * vq->jstride);
}

static void attach(struct vq *vq, struct vq_journal *j)
{
	vq->j = j;
	vq->jslots = (struct vq_journal_slot *)((uint8_t *)j + slots_offset(j->num));
	vq->jstride = slot_stride(j->max_bufs);
}

static uint32_t avail_word(const struct vq *vq)
{
	return vq->cfg.packed ? POSWORD(vq->next_avail, vq->avail_wrap) : POSWORD(vq->last_avail, 0);
}

static uint32_t used_word(const struct vq *vq)
{
	return vq->cfg.packed ? POSWORD(vq->next_used, vq->used_wrap) : POSWORD(vq->used_idx, 0);
}

int vq_journal_start(struct vq *vq, void *mem, size_t size)
{
	struct vq_journal *j = mem;
	unsigned int num = vq->cfg.num, max_bufs = vq->cfg.max_segs;

	vq->j = NULL;
	if (max_bufs > UINT16_MAX || size < vq_journal_size(num, max_bufs))
		return -ENOSPC;
	/* Not trusted while it is being laid out. */
	jstore(&j->magic, 0);
	jbarrier();
	j->num = (uint16_t)num;
	j->max_bufs = (uint16_t)max_bufs;
	jstore(&j->avail, avail_word(vq));
	jstore(&j->used, used_word(vq));
	jstore(&j->pub, 0);
	j->pub_n = 0;
	j->taking = 0;
	attach(vq, j);
	for (unsigned int id = 0; id < num; id++)
		jslot(vq, (uint16_t)id)->taken = 0;
	jbarrier();
	jstore(&j->magic, VQ_JOURNAL_MAGIC);
	return 0;
}

void vq_journal_taken(struct vq *vq, const struct vq_elem *elem, uint16_t pos, bool wrap)
{
	struct vq_journal_slot *s = jslot(vq, elem->id);
	unsigned int n = elem->out_num + elem->in_num;

	s->pos = pos;
	s->wrap = wrap;
	s->ndesc = elem->ndesc;
	s->nbufs = (uint16_t)n;
	for (unsigned int i = 0; i < n; i++)
		s->bufs[i] = (struct vq_journal_buf){ .addr = elem->bufs[i].addr,
						      .len = elem->bufs[i].len,
						      .write = elem->bufs[i].write };
	/*
	 * Named before it is marked: only this slot can be marked with its
	 * position not yet committed.  Another one in flight may sit at the
	 * same position (a packed ring comes back to it every two laps).
	 */
	jstore(&vq->j->taking, (uint16_t)(elem->id + 1));
	jbarrier();
	/* Marked before the position moves past it: a resume tells which happened. */
	s->taken = 1;
	jbarrier();
	jstore(&vq->j->avail, avail_word(vq));
}

void vq_journal_pushed(struct vq *vq, unsigned int n, uint16_t id)
{
	if (n < vq->j->num)
		vq->j->batch[n] = id;
}

void vq_journal_publishing(struct vq *vq, uint16_t to, bool to_wrap, unsigned int n)
{
	struct vq_journal *j = vq->j;
	uint32_t from = jload(&j->used);

	j->pub_n = (uint16_t)(n < j->num ? n : j->num);
	jbarrier();
	jstore(&j->pub, PUB_ON | from | (uint64_t)POSWORD(to, to_wrap) << 32);
	jbarrier();
}

void vq_journal_published(struct vq *vq)
{
	struct vq_journal *j = vq->j;
	uint64_t pub = jload(&j->pub);

	/* After the store that made the batch visible (a relaxed store may move otherwise). */
	jbarrier();
	for (unsigned int i = 0; i < j->pub_n; i++)
		if (j->batch[i] < j->num)
			jslot(vq, j->batch[i])->taken = 0;
	jbarrier();
	jstore(&j->used, (uint32_t)(pub >> 32) & 0x1ffffu);
	jbarrier();
	jstore(&j->pub, 0);
}

int vq_journal_repop(struct vq *vq, struct vq_elem *elem, const struct vq_inflight *h)
{
	const struct vq_journal_slot *s = jslot(vq, h->id);
	int r;

	for (unsigned int i = 0; i < s->nbufs; i++) {
		/* Checked again as the driver's: the journal is only as good as its writer. */
		r = vq_add_buf(vq, elem, s->bufs[i].addr, s->bufs[i].len, s->bufs[i].write != 0);
		if (r < 0)
			return r;
	}
	elem->id = h->id;
	elem->ndesc = s->ndesc;
	return 1;
}

/* The header against the queue: 0, or -EINVAL. */
static int check_header(const struct vq *vq, const struct vq_journal *j, size_t size)
{
	uint32_t avail, used;
	uint64_t pub;

	if (size < sizeof(*j) || jload(&j->magic) != VQ_JOURNAL_MAGIC || j->num != vq->cfg.num ||
	    j->max_bufs != vq->cfg.max_segs || size < vq_journal_size(j->num, j->max_bufs))
		return -EINVAL;
	/* Read only once the header is known to be inside @size. */
	avail = jload(&j->avail);
	used = jload(&j->used);
	pub = jload(&j->pub);
	if ((avail | used) >> 17 || (pub & ~PUB_ON) >> 49 || ((pub >> 17) & 0x7fff) ||
	    j->pub_n > j->num)
		return -EINVAL;
	if (!vq->cfg.packed)
		return (WRAP(avail) || WRAP(used) || WRAP(pub) || WRAP(pub >> 32)) ? -EINVAL : 0;
	if (POS(avail) >= j->num || POS(used) >= j->num || POS(pub) >= j->num ||
	    POS(pub >> 32) >= j->num)
		return -EINVAL;
	return 0;
}

/* An announced batch: cleared when the ring shows it, else its buffers stay in flight. */
static int settle_publish(struct vq *vq, struct vq_journal *j)
{
	uint64_t pub = jload(&j->pub);
	int r;

	if (!(pub & PUB_ON))
		return 0;
	r = vq->ops->journal_published(vq, j);
	if (r < 0)
		return r;
	if (r == 1) {
		for (unsigned int i = 0; i < j->pub_n; i++)
			if (j->batch[i] < j->num)
				jslot(vq, j->batch[i])->taken = 0;
		jstore(&j->used, (uint32_t)(pub >> 32) & 0x1ffffu);
	}
	jstore(&j->pub, 0);
	return 0;
}

/*
 * The slot last marked, if its position was not committed, was never taken:
 * it is still available.  Any other slot at that position is in flight.
 */
static bool uncommitted(const struct vq *vq, const struct vq_journal_slot *s, uint16_t id,
			uint32_t avail)
{
	return jload(&vq->j->taking) == id + 1 && s->pos == POS(avail) &&
	       (!vq->cfg.packed || s->wrap == WRAP(avail));
}

static int check_slot(const struct vq *vq, const struct vq_journal_slot *s)
{
	if (s->nbufs == 0 || s->nbufs > vq->j->max_bufs || s->ndesc == 0 || s->ndesc > vq->cfg.num ||
	    s->wrap > 1)
		return -EINVAL;
	/*
	 * Split: any avail index.  Used entries come in any order (§2.7.8), so
	 * a chain may stay in flight while later ones are used past it: its
	 * index can be behind the used index, by up to 65535.
	 */
	return !vq->cfg.packed || s->pos < vq->cfg.num ? 0 : -EINVAL;
}

int vq_journal_resume(struct vq *vq, void *mem, size_t size)
{
	struct vq_journal *j = mem;
	uint32_t avail, used;
	unsigned int n = 0;
	int r;

	r = check_header(vq, j, size);
	if (r < 0)
		return r;
	attach(vq, j);
	r = settle_publish(vq, j);
	if (r < 0)
		goto err;
	avail = jload(&j->avail);
	used = jload(&j->used);
	vq->redo = calloc(vq->cfg.num, sizeof(*vq->redo));
	if (!vq->redo) {
		r = -ENOMEM;
		goto err;
	}
	for (unsigned int id = 0; id < vq->cfg.num; id++) {
		struct vq_journal_slot *s = jslot(vq, (uint16_t)id);

		if (s->taken != 1) {
			if (s->taken) {
				r = -EINVAL;
				goto err;
			}
			continue;
		}
		if (uncommitted(vq, s, (uint16_t)id, avail)) {
			s->taken = 0;
			continue;
		}
		r = check_slot(vq, s);
		if (r == 0)
			r = vq_take_id(vq, (uint16_t)id) < 0 ? -EINVAL : 0;
		if (r < 0)
			goto err;
		vq->redo[n++] = (struct vq_inflight){ .id = (uint16_t)id, .pos = s->pos,
						      .wrap = s->wrap };
		if (vq->start)
			vq->start[id] = vq->redo[n - 1];
	}
	/* Split: every entry taken and not used is in flight (§2.7.6, §2.7.8), no more, no fewer. */
	if (!vq->cfg.packed && (uint16_t)(POS(avail) - POS(used)) != n) {
		r = -EINVAL;
		goto err;
	}
	vq->nredo = n;
	vq->redo_next = 0;
	vq->redo_journal = true;
	if (vq->cfg.packed) {
		vq->next_avail = POS(avail);
		vq->avail_wrap = WRAP(avail);
		vq->next_used = POS(used);
		vq->used_wrap = WRAP(used);
	} else {
		vq->last_avail = POS(avail);
		vq->used_idx = vq->used_published = POS(used);
	}
	if (vq->ops->journal_resumed) {
		r = vq->ops->journal_resumed(vq);
		if (r < 0)
			goto err;
	}
	/* Notifications on: the driver may notify again (a suppression is only ever advice). */
	vq->notify_off = false;
	vq->ops->set_notify(vq, true);
	return 0;

err:
	memset(vq->inflight_map, 0, (vq->cfg.num + 63) / 64 * sizeof(uint64_t));
	free(vq->redo);
	vq->redo = NULL;
	vq->nredo = 0;
	vq->j = NULL;
	return r;
}
