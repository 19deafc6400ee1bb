// SPDX-License-Identifier: GPL-2.0-only
/* The simulated guest's virtio-mmio virtio-blk driver: probe, split/packed rings, real ioreqs. */
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gdrv.h"
#include "log.h"

/* Split ring descriptor flags (§2.7.5) and packed ring flags (§2.8.1). */
#define D_NEXT 1u
#define D_WRITE 2u
#define D_INDIRECT 4u
#define D_AVAIL (1u << 7)
#define D_USED (1u << 15)
#define USED_F_NO_NOTIFY 1u	/* §2.7.10 */
#define PACKED_EVENT_DISABLE 1u	/* §2.8.10 */

#define MAX_SEGS 40u

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

struct req {
	bool done;
	uint32_t used_len;
	uint32_t expect_len;
	uint32_t type, len;
	uint64_t sector;
	uint64_t status_gpa;
	bool busy;
	uint64_t t_submit, t_done;	/* CLOCK_MONOTONIC ns, for latency figures */
	uint64_t irq_ns;		/* waited for an interrupt: from its raise until seen done */
};

struct gdrv_vq {
	unsigned int index;
	uint16_t num;
	bool packed;
	pthread_mutex_t lock;
	uint64_t desc_gpa, drv_gpa, dev_gpa;
	uint8_t *desc, *drv, *dev;
	struct req **reqs;	/* by head (split) or buffer id (packed) */
	uint16_t *chain_len;
	uint16_t *link;		/* host copy of our chains' next fields */
	uint16_t free_head, nfree;
	uint16_t avail_idx, last_used;
	/* packed */
	uint16_t next_avail, next_used;
	bool avail_wrap, used_wrap;
	uint16_t *free_ids;
	uint16_t nfree_ids;
	/* indirect tables, one per vCPU sharing the queue */
	uint64_t ind_gpa;
	uint8_t *ind;
	bool broken;
};

struct gdrv_dev {
	struct gdrv_guest *g;
	unsigned int index;
	const struct disk_config *cfg;
	uint64_t base;
	unsigned int irq;
	bool ready;
	uint64_t features;
	uint64_t capacity;
	uint32_t blk_size, seg_max, size_max;
	uint32_t max_discard_sectors, max_write_zeroes_sectors;
	unsigned int nq;
	struct gdrv_vq *vqs;
	unsigned int nvqs;	/* entries of vqs: nq may change before they are made (a probe cut short) */
	pthread_mutex_t lock;
	uint64_t irq_handled;
	uint64_t notifies, interrupts, mmio;	/* counters for the report (atomic) */
	uint64_t config_changes;		/* under lock, with capacity */
	uint64_t ring_mem[64];	/* guest memory of each queue's rings, allocated once */
	uint64_t feature_mask;	/* of the features the driver would take: those it asks for */
	uint16_t queue_size;	/* the largest it asks for (a power of two) */
};

struct vbuf {
	uint64_t gpa;	/* [hdr page][max_io data][status page] */
	uint8_t *host;
};

struct gdrv_vcpu {
	struct gdrv_guest *g;
	unsigned int id;
	char err[512];
	int failed;
	struct vbuf *bufs;	/* per device and slot: bufs[dev * GUEST_MAX_QD + slot] */
	struct req reqs[SIM_MAX_DISKS][GUEST_MAX_QD];
	uint64_t traps, trap_ns;	/* MMIO accesses to devices, and the time waited for them */
};

struct gdrv_guest {
	struct sim_domain *dom;
	pthread_mutex_t alloc_lock;
	uint64_t next;		/* allocation offset in RAM */
	uint32_t max_io;	/* bytes of each slot's data buffer */
	uint32_t *page_ref;	/* grant ref of each RAM page, 0 = none */
	unsigned int ndevs;
	struct gdrv_dev devs[SIM_MAX_DISKS];
	struct gdrv_vcpu *vcpus;
};

int gdrv_vcpu_fail(struct gdrv_vcpu *v, const char *fmt, ...)
{
	va_list ap;

	if (!v->failed) {
		int n = snprintf(v->err, sizeof(v->err), "vcpu %u: ", v->id);

		va_start(ap, fmt);
		vsnprintf(v->err + n, sizeof(v->err) - (size_t)n, fmt, ap);
		va_end(ap);
		v->failed = 1;
	}
	return -EIO;
}

int gdrv_vcpu_ioreq(struct gdrv_vcpu *v, const struct xsim_ioreq *in, uint64_t *ret_data)
{
	return hv_ioreq(v->g->dom, v->id, in, ret_data);
}

const char *gdrv_vcpu_error(const struct gdrv_vcpu *v)
{
	return v->failed ? v->err : NULL;
}

unsigned int gdrv_vcpu_id(const struct gdrv_vcpu *v)
{
	return v->id;
}

static uint8_t *gpa_host(struct gdrv_guest *g, uint64_t gpa)
{
	return g->dom->ram + (gpa - XSIM_GUEST_RAM_BASE);
}

/* Bump allocation of zeroed guest RAM, page-aligned or on @align (a power of two) if larger. */
static int galloc_aligned(struct gdrv_guest *g, uint64_t size, uint64_t align, uint64_t *ret_gpa)
{
	uint64_t off;
	int r = 0;

	if (align < XSIM_PAGE_SIZE)
		align = XSIM_PAGE_SIZE;
	if (align & (align - 1) || !size)
		return -EINVAL;
	if (size > g->dom->ram_bytes)
		return -ENOMEM;
	size = (size + XSIM_PAGE_SIZE - 1) & ~(XSIM_PAGE_SIZE - 1);
	pthread_mutex_lock(&g->alloc_lock);
	/* RAM starts at XSIM_GUEST_RAM_BASE, itself aligned far beyond any sane @align. */
	off = (g->next + align - 1) & ~(align - 1);
	if (off < g->next || off > g->dom->ram_bytes || size > g->dom->ram_bytes - off)
		r = -ENOMEM;
	else
		g->next = off + size;
	pthread_mutex_unlock(&g->alloc_lock);
	if (r < 0)
		return r;
	memset(g->dom->ram + off, 0, size);
	*ret_gpa = XSIM_GUEST_RAM_BASE + off;
	return 0;
}

static int galloc(struct gdrv_guest *g, uint64_t size, uint64_t *ret_gpa)
{
	return galloc_aligned(g, size, XSIM_PAGE_SIZE, ret_gpa);
}

int gdrv_guest_alloc(struct gdrv_guest *g, uint64_t size, uint64_t align, uint64_t *ret_gpa,
		     uint8_t **ret_host)
{
	uint64_t gpa;
	int r = galloc_aligned(g, size, align, &gpa);

	if (r < 0)
		return r;
	*ret_gpa = gpa;
	if (ret_host)
		*ret_host = gpa_host(g, gpa);
	return 0;
}

void gdrv_guest_ram(const struct gdrv_guest *g, uint64_t *ret_base, uint64_t *ret_bytes)
{
	*ret_base = XSIM_GUEST_RAM_BASE;
	*ret_bytes = g->dom->ram_bytes;
}

/* Grant dom0 every page of [gpa, gpa+size), in reverse so one buffer's refs are not consecutive. */
/*
 * Grant dom0 the pages of [gpa, gpa+size) with consecutive refs, as Linux's
 * xen-grant-dma does for one DMA mapping (so one descriptor may span them).
 * Separate calls get separate ranges: a request's header, data and status
 * refs are not consecutive with each other.
 */
static int ggrant(struct gdrv_guest *g, uint64_t gpa, uint64_t size)
{
	uint64_t first = (gpa - XSIM_GUEST_RAM_BASE) >> XSIM_PAGE_SHIFT;
	uint32_t n = (uint32_t)((size + XSIM_PAGE_SIZE - 1) >> XSIM_PAGE_SHIFT), i, ref;
	int r;

	pthread_mutex_lock(&sim_lock);
	r = hv_grant_range(g->dom, gpa >> XSIM_PAGE_SHIFT, n, false, &ref);
	pthread_mutex_unlock(&sim_lock);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++)
		g->page_ref[first + i] = ref + i;
	return 0;
}

/* Can one descriptor run from the page of @gpa into the next one? */
static bool dma_contiguous(struct gdrv_dev *d, uint64_t gpa)
{
	uint64_t page = (gpa - XSIM_GUEST_RAM_BASE) >> XSIM_PAGE_SHIFT;

	if (!(d->features & (1ull << F_ACCESS_PLATFORM)))
		return true;
	return d->g->page_ref[page] && d->g->page_ref[page + 1] == d->g->page_ref[page] + 1;
}

/* The address the device sees: a grant address (bit 63, ref << 12) with ACCESS_PLATFORM grants. */
static uint64_t dma(struct gdrv_dev *d, uint64_t gpa)
{
	uint64_t page = (gpa - XSIM_GUEST_RAM_BASE) >> XSIM_PAGE_SHIFT;

	if (!(d->features & (1ull << F_ACCESS_PLATFORM)))
		return gpa;
	return (1ull << 63) | ((uint64_t)d->g->page_ref[page] << XSIM_PAGE_SHIFT) |
	       (gpa & (XSIM_PAGE_SIZE - 1));
}

static int dalloc(struct gdrv_dev *d, uint64_t size, uint64_t *ret_gpa)
{
	int r = galloc(d->g, size, ret_gpa);

	if (r == 0 && d->cfg->grants)
		r = ggrant(d->g, *ret_gpa, size);
	return r;
}

int gdrv_guest_new(struct sim_domain *dom, struct gdrv_guest **ret_g)
{
	struct gdrv_guest *g = calloc(1, sizeof(*g));
	unsigned int i;

	if (!g)
		return -ENOMEM;
	g->dom = dom;
	g->max_io = GUEST_MAX_IO;
	pthread_mutex_init(&g->alloc_lock, NULL);
	g->page_ref = calloc(dom->ram_bytes / XSIM_PAGE_SIZE, sizeof(*g->page_ref));
	g->vcpus = calloc(dom->vcpus, sizeof(*g->vcpus));
	if (!g->page_ref || !g->vcpus) {
		gdrv_guest_free(g);
		return -ENOMEM;
	}
	g->ndevs = dom->cfg.ndisks;
	for (i = 0; i < g->ndevs; i++) {
		struct gdrv_dev *d = &g->devs[i];

		d->g = g;
		d->index = i;
		d->cfg = &dom->cfg.disks[i];
		d->base = d->cfg->base;
		/* A disk configured with an impossible SPI (validation tests) never gets interrupts. */
		d->irq = d->cfg->irq <= XSIM_IRQ_MAX ? d->cfg->irq : 0;
		pthread_mutex_init(&d->lock, NULL);
	}
	for (i = 0; i < dom->vcpus; i++) {
		g->vcpus[i].g = g;
		g->vcpus[i].id = i;
		g->vcpus[i].bufs = calloc(SIM_MAX_DISKS * GUEST_MAX_QD, sizeof(struct vbuf));
		if (!g->vcpus[i].bufs) {
			gdrv_guest_free(g);
			return -ENOMEM;
		}
	}
	*ret_g = g;
	return 0;
}

static void vq_free(struct gdrv_vq *q)
{
	free(q->reqs);
	free(q->chain_len);
	free(q->link);
	free(q->free_ids);
	pthread_mutex_destroy(&q->lock);
}

void gdrv_guest_free(struct gdrv_guest *g)
{
	unsigned int i, j;

	if (!g)
		return;
	for (i = 0; i < g->ndevs; i++) {
		for (j = 0; j < g->devs[i].nvqs; j++)
			vq_free(&g->devs[i].vqs[j]);
		free(g->devs[i].vqs);
		pthread_mutex_destroy(&g->devs[i].lock);
	}
	if (g->page_ref) {
		pthread_mutex_lock(&sim_lock);
		for (i = 0; i < g->dom->ram_bytes / XSIM_PAGE_SIZE; i++)
			if (g->page_ref[i])
				hv_ungrant(g->dom, g->page_ref[i]);
		pthread_mutex_unlock(&sim_lock);
	}
	if (g->vcpus)
		for (i = 0; i < g->dom->vcpus; i++)
			free(g->vcpus[i].bufs);
	free(g->vcpus);
	free(g->page_ref);
	pthread_mutex_destroy(&g->alloc_lock);
	free(g);
}

int gdrv_guest_set_max_io(struct gdrv_guest *g, uint32_t bytes)
{
	unsigned int i;

	if (bytes < GUEST_MAX_IO || bytes > GUEST_BENCH_MAX_IO || bytes % XSIM_PAGE_SIZE)
		return -EINVAL;
	for (i = 0; i < g->ndevs; i++)
		if (g->devs[i].vqs)
			return -EBUSY;	/* buffers already laid out */
	g->max_io = bytes;
	return 0;
}


unsigned int gdrv_guest_ndevs(const struct gdrv_guest *g)
{
	return g->ndevs;
}

uint32_t gdrv_guest_domid(const struct gdrv_guest *g)
{
	return g->dom->domid;
}

unsigned int gdrv_guest_nvcpus(const struct gdrv_guest *g)
{
	return g->dom->vcpus;
}

struct gdrv_dev *gdrv_guest_dev(struct gdrv_guest *g, unsigned int i)
{
	return &g->devs[i];
}

struct gdrv_vcpu *gdrv_guest_vcpu(struct gdrv_guest *g, unsigned int i)
{
	return &g->vcpus[i];
}

void gdrv_dev_get_info(struct gdrv_dev *d, struct gdrv_info *ret)
{
	pthread_mutex_lock(&d->lock);
	*ret = (struct gdrv_info){
		.cfg = d->cfg,
		.capacity = d->capacity,
		.blk_size = d->blk_size,
		.features = d->features,
		.nqueues = d->nq,
		.packed = !!(d->features & (1ull << F_RING_PACKED)),
		.grants = !!(d->features & (1ull << F_ACCESS_PLATFORM)),
		.max_discard_sectors = d->max_discard_sectors,
		.max_write_zeroes_sectors = d->max_write_zeroes_sectors,
		.seg_max = d->seg_max,
		.size_max = d->size_max,
		.notifies = __atomic_load_n(&d->notifies, __ATOMIC_RELAXED),
		.interrupts = __atomic_load_n(&d->interrupts, __ATOMIC_RELAXED),
		.mmio = __atomic_load_n(&d->mmio, __ATOMIC_RELAXED),
		.config_changes = d->config_changes,
	};
	pthread_mutex_unlock(&d->lock);
}

static const char *mmio_err(int r)
{
	switch (r) {
	case -ETIMEDOUT:
		return "no ioreq response (hang)";
	case -EFAULT:
		return "no IOREQ server claims the address (data abort)";
	case -ESRCH:
		return "domain destroyed";
	case -ENODEV:
		return "IOREQ server destroyed while the access was pending";
	case -EPROTO:
		return "answered without an event channel notification (the vCPU would never wake)";
	default:
		return strerror(-r);
	}
}

int gdrv_dev_mmio(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int off, unsigned int size,
		  bool write,
	      uint64_t *val)
{
	uint64_t t0 = now_ns();
	int r;

	__atomic_fetch_add(&d->mmio, 1, __ATOMIC_RELAXED);
	r = hv_mmio(v->g->dom, v->id, d->base + off, size, write, val);
	v->traps++;
	v->trap_ns += now_ns() - t0;
	return r;
}

void gdrv_vcpu_traps(const struct gdrv_vcpu *v, uint64_t *ret_traps, uint64_t *ret_ns)
{
	*ret_traps = v->traps;
	*ret_ns = v->trap_ns;
}

static int rd(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int off, unsigned int size,
	      uint32_t *ret)
{
	uint64_t x = 0;
	int r = gdrv_dev_mmio(v, d, off, size, false, &x);

	if (r < 0) {
		if (r != -ESRCH)
			gdrv_vcpu_fail(v, "%s: read 0x%03x: %s", d->cfg->vdev, off, mmio_err(r));
		return r;
	}
	*ret = (uint32_t)x;
	return 0;
}

static int wr(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int off, uint32_t val)
{
	uint64_t x = val;
	int r = gdrv_dev_mmio(v, d, off, 4, true, &x);

	if (r < 0 && r != -ESRCH)
		gdrv_vcpu_fail(v, "%s: write 0x%03x: %s", d->cfg->vdev, off, mmio_err(r));
	return r;
}

#define TRY(expr)                     \
	do {                          \
		int r_ = (expr);      \
		if (r_ < 0)           \
			return r_;    \
	} while (0)

int gdrv_dev_reset(struct gdrv_vcpu *v, struct gdrv_dev *d)
{
	uint32_t st = 1;
	unsigned int i;

	d->ready = false;
	TRY(wr(v, d, VM_STATUS, 0));
	/* §4.2.3.1: after writing 0 the driver waits for Status to read back 0. */
	for (i = 0; i < 100; i++) {
		TRY(rd(v, d, VM_STATUS, 4, &st));
		if (!st)
			return 0;
	}
	return gdrv_vcpu_fail(v, "%s: Status still 0x%x after reset", d->cfg->vdev, st);
}

/* Device configuration (§5.2.4), read with the generation check of §4.2.2.2. */
static int read_config(struct gdrv_vcpu *v, struct gdrv_dev *d)
{
	uint32_t gen0, gen1, lo, hi, x;
	unsigned int tries;

	for (tries = 0; tries < 10; tries++) {
		TRY(rd(v, d, VM_CONFIG_GENERATION, 4, &gen0));
		/* 64-bit fields as two 32-bit accesses (§4.2.2.2). */
		TRY(rd(v, d, VM_CONFIG + 0, 4, &lo));
		TRY(rd(v, d, VM_CONFIG + 4, 4, &hi));
		d->capacity = (uint64_t)hi << 32 | lo;
		d->size_max = 0;
		d->seg_max = 0;
		d->blk_size = 512;
		if (d->features & (1ull << F_BLK_SIZE_MAX))
			TRY(rd(v, d, VM_CONFIG + 8, 4, &d->size_max));
		if (d->features & (1ull << F_BLK_SEG_MAX))
			TRY(rd(v, d, VM_CONFIG + 12, 4, &d->seg_max));
		if (d->features & (1ull << F_BLK_BLK_SIZE))
			TRY(rd(v, d, VM_CONFIG + 20, 4, &d->blk_size));
		d->nq = 1;
		if (d->features & (1ull << F_BLK_MQ)) {
			TRY(rd(v, d, VM_CONFIG + 34, 2, &x));
			d->nq = x;
		}
		d->max_discard_sectors = 0;
		if (d->features & (1ull << F_BLK_DISCARD))
			TRY(rd(v, d, VM_CONFIG + 36, 4, &d->max_discard_sectors));
		d->max_write_zeroes_sectors = 0;
		if (d->features & (1ull << F_BLK_WRITE_ZEROES))
			TRY(rd(v, d, VM_CONFIG + 48, 4, &d->max_write_zeroes_sectors));
		TRY(rd(v, d, VM_CONFIG_GENERATION, 4, &gen1));
		if (gen0 == gen1)
			return 0;
	}
	return gdrv_vcpu_fail(v, "%s: config generation never settles", d->cfg->vdev);
}

static uint64_t page_up(uint64_t n)
{
	return (n + XSIM_PAGE_SIZE - 1) & ~(XSIM_PAGE_SIZE - 1);
}

/*
 * Rings of one queue of up to GUEST_MAX_QUEUE_SIZE entries, each part
 * page-aligned (the split ring's three, §2.7, take the most), plus the
 * vCPUs' indirect tables.
 */
static uint64_t ring_area_size(struct gdrv_dev *d)
{
	return page_up(16ull * GUEST_MAX_QUEUE_SIZE) + page_up(6 + 2ull * GUEST_MAX_QUEUE_SIZE) +
	       page_up(6 + 8ull * GUEST_MAX_QUEUE_SIZE) +
	       (uint64_t)d->g->dom->vcpus * GUEST_MAX_QD * MAX_SEGS * 16;
}

/* A slot's buffer: [page ending with the header][max_io data][status page], made on first use. */
static int slot_buf(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot, struct vbuf **ret)
{
	struct vbuf *b = &v->bufs[d->index * GUEST_MAX_QD + slot];

	if (!b->gpa) {
		TRY(galloc(d->g, 2 * XSIM_PAGE_SIZE + d->g->max_io, &b->gpa));
		b->host = gpa_host(d->g, b->gpa);
		if (d->cfg->grants) {
			/* Data first, then header and status pages: three unrelated ref ranges. */
			TRY(ggrant(d->g, b->gpa + XSIM_PAGE_SIZE, d->g->max_io));
			TRY(ggrant(d->g, b->gpa, XSIM_PAGE_SIZE));
			TRY(ggrant(d->g, b->gpa + XSIM_PAGE_SIZE + d->g->max_io, XSIM_PAGE_SIZE));
		}
	}
	if (ret)
		*ret = b;
	return 0;
}

static int vq_setup(struct gdrv_vcpu *v, struct gdrv_dev *d, struct gdrv_vq *q, unsigned int index)
{
	uint32_t max, ready;
	uint16_t num;
	unsigned int i;
	uint64_t dsz, drsz, dvsz;

	q->index = index;
	q->packed = !!(d->features & (1ull << F_RING_PACKED));
	pthread_mutex_init(&q->lock, NULL);
	TRY(wr(v, d, VM_QUEUE_SEL, index));
	TRY(rd(v, d, VM_QUEUE_READY, 4, &ready));
	if (ready)
		return gdrv_vcpu_fail(v, "%s: queue %u ready before setup", d->cfg->vdev, index);
	TRY(rd(v, d, VM_QUEUE_NUM_MAX, 4, &max));
	if (!max)
		return gdrv_vcpu_fail(v, "%s: queue %u not available (QueueNumMax 0)", d->cfg->vdev,
				 index);
	/* Split rings need a power of two (§2.7); use it for both. */
	for (num = d->queue_size; num > max; num /= 2)
		;
	if (!num)
		return gdrv_vcpu_fail(v, "%s: queue %u: QueueNumMax %u too small", d->cfg->vdev, index,
				 max);
	q->num = num;
	if (q->packed) {
		dsz = 16ull * num;	/* §2.8.13 */
		drsz = dvsz = 4;
	} else {
		dsz = 16ull * num;		/* §2.7.5 */
		drsz = 6 + 2ull * num;		/* §2.7.6 */
		dvsz = 6 + 8ull * num;		/* §2.7.8 */
	}
	/* One area per queue, kept across re-initialisation (hostile scripts reset often). */
	if (!d->ring_mem[index])
		TRY(dalloc(d, ring_area_size(d), &d->ring_mem[index]));
	memset(gpa_host(d->g, d->ring_mem[index]), 0, ring_area_size(d));
	q->desc_gpa = d->ring_mem[index];
	q->drv_gpa = q->desc_gpa + page_up(dsz);
	q->dev_gpa = q->drv_gpa + page_up(drsz);
	q->ind_gpa = q->dev_gpa + page_up(dvsz);
	q->desc = gpa_host(d->g, q->desc_gpa);
	q->drv = gpa_host(d->g, q->drv_gpa);
	q->dev = gpa_host(d->g, q->dev_gpa);
	q->ind = gpa_host(d->g, q->ind_gpa);
	q->reqs = calloc(num, sizeof(*q->reqs));
	q->chain_len = calloc(num, sizeof(*q->chain_len));
	q->link = calloc(num, sizeof(*q->link));
	q->free_ids = calloc(num, sizeof(*q->free_ids));
	if (!q->reqs || !q->chain_len || !q->link || !q->free_ids)
		return -ENOMEM;
	for (i = 0; i < num; i++) {
		q->link[i] = (uint16_t)(i + 1);
		q->free_ids[i] = (uint16_t)i;
	}
	q->free_head = 0;
	q->nfree = num;
	q->nfree_ids = num;
	q->avail_wrap = true;	/* §2.8.1: both wrap counters start at 1 */
	q->used_wrap = true;
	TRY(wr(v, d, VM_QUEUE_NUM, num));
	TRY(wr(v, d, VM_QUEUE_DESC_LOW, (uint32_t)dma(d, q->desc_gpa)));
	TRY(wr(v, d, VM_QUEUE_DESC_HIGH, (uint32_t)(dma(d, q->desc_gpa) >> 32)));
	TRY(wr(v, d, VM_QUEUE_DRIVER_LOW, (uint32_t)dma(d, q->drv_gpa)));
	TRY(wr(v, d, VM_QUEUE_DRIVER_HIGH, (uint32_t)(dma(d, q->drv_gpa) >> 32)));
	TRY(wr(v, d, VM_QUEUE_DEVICE_LOW, (uint32_t)dma(d, q->dev_gpa)));
	TRY(wr(v, d, VM_QUEUE_DEVICE_HIGH, (uint32_t)(dma(d, q->dev_gpa) >> 32)));
	TRY(wr(v, d, VM_QUEUE_READY, 1));
	TRY(rd(v, d, VM_QUEUE_READY, 4, &ready));
	if (ready != 1)
		return gdrv_vcpu_fail(v, "%s: queue %u: QueueReady reads %u after enabling",
				 d->cfg->vdev, index, ready);
	return 0;
}

int gdrv_dev_init(struct gdrv_vcpu *v, struct gdrv_dev *d)
{
	return gdrv_dev_init_features(v, d, ~0ull, 0);
}

int gdrv_dev_init_features(struct gdrv_vcpu *v, struct gdrv_dev *d, uint64_t mask,
			   unsigned int queue_size)
{
	uint32_t x, lo, hi, st;
	uint64_t offered, want;
	unsigned int i;

	if (!queue_size)
		queue_size = GUEST_QUEUE_SIZE;
	if (queue_size > GUEST_MAX_QUEUE_SIZE || queue_size & (queue_size - 1))
		return -EINVAL;
	/* §6.1: a driver that takes VERSION_1 away is a legacy one, which this one is not. */
	if (!(mask & (1ull << F_VERSION_1)))
		return -EINVAL;
	d->feature_mask = mask;
	d->queue_size = (uint16_t)queue_size;

	TRY(rd(v, d, VM_MAGIC, 4, &x));
	if (x != VM_MAGIC_VALUE)
		return gdrv_vcpu_fail(v, "%s: MagicValue 0x%08x", d->cfg->vdev, x);
	TRY(rd(v, d, VM_VERSION, 4, &x));
	if (x != 2)
		return gdrv_vcpu_fail(v, "%s: Version %u, want 2 (non-legacy)", d->cfg->vdev, x);
	TRY(rd(v, d, VM_DEVICE_ID, 4, &x));
	if (x != 2)
		return gdrv_vcpu_fail(v, "%s: DeviceID %u, want 2 (block)", d->cfg->vdev, x);
	TRY(gdrv_dev_reset(v, d));
	TRY(wr(v, d, VM_STATUS, ST_ACKNOWLEDGE));
	TRY(wr(v, d, VM_STATUS, ST_ACKNOWLEDGE | ST_DRIVER));
	TRY(wr(v, d, VM_DEVICE_FEATURES_SEL, 0));
	TRY(rd(v, d, VM_DEVICE_FEATURES, 4, &lo));
	TRY(wr(v, d, VM_DEVICE_FEATURES_SEL, 1));
	TRY(rd(v, d, VM_DEVICE_FEATURES, 4, &hi));
	offered = (uint64_t)hi << 32 | lo;
	if (!(offered & (1ull << F_VERSION_1)))
		return gdrv_vcpu_fail(v, "%s: VIRTIO_F_VERSION_1 not offered (0x%llx)", d->cfg->vdev,
				 (unsigned long long)offered);
	want = (1ull << F_VERSION_1) | (1ull << F_BLK_SIZE_MAX) | (1ull << F_BLK_SEG_MAX) |
	       (1ull << F_BLK_BLK_SIZE) | (1ull << F_BLK_FLUSH) | (1ull << F_BLK_RO) |
	       (1ull << F_BLK_MQ) | (1ull << F_BLK_DISCARD) | (1ull << F_BLK_WRITE_ZEROES) |
	       (1ull << F_INDIRECT_DESC) | (1ull << F_BLK_TOPOLOGY);
	if (d->g->dom->cfg.packed)
		want |= 1ull << F_RING_PACKED;
	/* Linux guests use EVENT_IDX whenever offered; so does this one unless told not to. */
	if (!d->g->dom->cfg.no_event_idx)
		want |= 1ull << F_EVENT_IDX;
	if (d->cfg->grants)
		want |= 1ull << F_ACCESS_PLATFORM;
	else if (offered & (1ull << F_ACCESS_PLATFORM))
		/* §6.1: a driver may refuse ACCESS_PLATFORM; the device then may fail FEATURES_OK. */
		want &= ~(1ull << F_ACCESS_PLATFORM);
	d->features = offered & want & mask;
	TRY(wr(v, d, VM_DRIVER_FEATURES_SEL, 0));
	TRY(wr(v, d, VM_DRIVER_FEATURES, (uint32_t)d->features));
	TRY(wr(v, d, VM_DRIVER_FEATURES_SEL, 1));
	TRY(wr(v, d, VM_DRIVER_FEATURES, (uint32_t)(d->features >> 32)));
	TRY(wr(v, d, VM_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK));
	TRY(rd(v, d, VM_STATUS, 4, &st));
	if (!(st & ST_FEATURES_OK))
		return gdrv_vcpu_fail(v, "%s: device refused features 0x%llx (Status 0x%x)",
				 d->cfg->vdev, (unsigned long long)d->features, st);
	TRY(read_config(v, d));
	if (!d->nq || d->nq > 64)
		return gdrv_vcpu_fail(v, "%s: num_queues %u", d->cfg->vdev, d->nq);
	if (d->blk_size < 512 || (d->blk_size & (d->blk_size - 1)))
		return gdrv_vcpu_fail(v, "%s: blk_size %u", d->cfg->vdev, d->blk_size);
	/* One queue per vCPU at most, as Linux does. */
	if (d->nq > d->g->dom->vcpus)
		d->nq = d->g->dom->vcpus;
	for (i = 0; i < d->nvqs; i++)
		vq_free(&d->vqs[i]);
	free(d->vqs);
	d->nvqs = 0;
	d->vqs = calloc(d->nq, sizeof(*d->vqs));
	if (!d->vqs)
		return -ENOMEM;
	d->nvqs = d->nq;
	for (i = 0; i < d->nq; i++)
		TRY(vq_setup(v, d, &d->vqs[i], i));
	for (i = 0; i < d->g->dom->vcpus; i++)
		TRY(slot_buf(&d->g->vcpus[i], d, 0, NULL));
	TRY(wr(v, d, VM_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK));
	TRY(rd(v, d, VM_STATUS, 4, &st));
	if (st & (ST_NEEDS_RESET | ST_FAILED) || !(st & ST_DRIVER_OK))
		return gdrv_vcpu_fail(v, "%s: Status 0x%x after DRIVER_OK", d->cfg->vdev, st);
	d->ready = true;
	return 0;
}

unsigned int gdrv_dev_index(const struct gdrv_dev *d)
{
	return d->index;
}

uint64_t gdrv_dev_dma(struct gdrv_dev *d, uint64_t gpa)
{
	return dma(d, gpa);
}

bool gdrv_dev_ready(const struct gdrv_dev *d)
{
	return d->ready;
}

uint8_t *gdrv_buffer(struct gdrv_vcpu *v, struct gdrv_dev *d)
{
	return gdrv_slot_buffer(v, d, 0);
}

uint8_t *gdrv_slot_buffer(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot)
{
	struct vbuf *b;

	if (slot >= GUEST_MAX_QD || slot_buf(v, d, slot, &b) < 0)
		return NULL;
	return b->host + XSIM_PAGE_SIZE;
}

static struct gdrv_vq *vq_of(struct gdrv_vcpu *v, struct gdrv_dev *d)
{
	return &d->vqs[v->id % d->nq];
}






/* Collect completions (q->lock held).  A device error is recorded and breaks the queue. */
static int vq_reap(struct gdrv_vcpu *v, struct gdrv_dev *d, struct gdrv_vq *q)
{
	if (q->broken)
		return -EIO;
	if (!q->packed) {
		/* Acquire pairs with the device's write barrier before it bumps used->idx (§2.7.8). */
		uint16_t used_idx = le16toh(__atomic_load_n((uint16_t *)(q->dev + 2),
							    __ATOMIC_ACQUIRE));

		if ((uint16_t)(used_idx - q->last_used) > q->num) {
			q->broken = true;
			return gdrv_vcpu_fail(v, "%s: queue %u: used idx jumped from %u to %u",
					 d->cfg->vdev, q->index, q->last_used, used_idx);
		}
		while (q->last_used != used_idx) {
			uint8_t *e = q->dev + 4 + 8u * (q->last_used % q->num);
			uint32_t id = ld32(e), len = ld32(e + 4);
			uint16_t i, n, last;

			if (id >= q->num || !q->reqs[id]) {
				q->broken = true;
				return gdrv_vcpu_fail(v, "%s: queue %u: used id %u was not in flight",
						 d->cfg->vdev, q->index, id);
			}
			q->reqs[id]->used_len = len;
			q->reqs[id]->t_done = now_ns();
			iolog_done(d->g->dom, q->reqs[id]->t_done);
			__atomic_store_n(&q->reqs[id]->done, true, __ATOMIC_RELEASE);
			q->reqs[id] = NULL;
			n = q->chain_len[id];
			for (i = 1, last = (uint16_t)id; i < n; i++)
				last = q->link[last];
			q->link[last] = q->free_head;
			q->free_head = (uint16_t)id;
			q->nfree = (uint16_t)(q->nfree + n);
			q->last_used++;
		}
		return 0;
	}
	for (;;) {
		uint8_t *e = q->desc + 16u * q->next_used;
		uint16_t flags = le16toh(__atomic_load_n((uint16_t *)(e + 14), __ATOMIC_ACQUIRE));
		bool avail = flags & D_AVAIL, used = flags & D_USED;
		uint16_t id;
		uint32_t len;

		/* §2.8.1: used when both flags equal the driver's used wrap counter. */
		if (avail != used || used != q->used_wrap)
			return 0;
		id = ld16(e + 12);
		len = ld32(e + 8);
		if (id >= q->num || !q->reqs[id]) {
			q->broken = true;
			return gdrv_vcpu_fail(v, "%s: queue %u: used buffer id %u was not in flight",
					 d->cfg->vdev, q->index, id);
		}
		q->reqs[id]->used_len = len;
		q->reqs[id]->t_done = now_ns();
		iolog_done(d->g->dom, q->reqs[id]->t_done);
		__atomic_store_n(&q->reqs[id]->done, true, __ATOMIC_RELEASE);
		q->reqs[id] = NULL;
		q->next_used = (uint16_t)(q->next_used + q->chain_len[id]);
		if (q->next_used >= q->num) {
			q->next_used = (uint16_t)(q->next_used - q->num);
			q->used_wrap = !q->used_wrap;
		}
		q->nfree = (uint16_t)(q->nfree + q->chain_len[id]);
		q->free_ids[q->nfree_ids++] = id;
	}
}

/*
 * Before sleeping: with EVENT_IDX ask for an interrupt at the next used
 * entry (used_event, §2.7.10), then look again, since the device may have
 * published before it could see the new used_event.
 */
static int vq_arm(struct gdrv_vcpu *v, struct gdrv_dev *d, struct gdrv_vq *q)
{
	int r = 0;

	if (q->packed || !(d->features & (1ull << F_EVENT_IDX)))
		return 0;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		uint16_t armed = q->last_used;

		st16(q->drv + 4 + 2u * q->num, armed);
		/* Pairs with the device's barrier between writing used idx and reading used_event. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		r = vq_reap(v, d, q);
		/*
		 * Entries reaped here moved last_used past used_event: a device
		 * that published them already compares its next batch with a
		 * used_event behind it and sends no interrupt (§2.7.10).  Ask
		 * again from where we are, as Linux's virtqueue_enable_cb_delayed
		 * callers do when it reports more used buffers.
		 */
		if (r < 0 || q->last_used == armed)
			break;
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

static uint64_t irq_count(struct gdrv_dev *d)
{
	return __atomic_load_n(&d->g->dom->irqs->raised[d->irq], __ATOMIC_SEQ_CST);
}

/* The interrupt handler: whoever sees a new edge first reads and acknowledges InterruptStatus. */
static int handle_irq(struct gdrv_vcpu *v, struct gdrv_dev *d, uint64_t count)
{
	bool mine = false;
	uint32_t isr;

	pthread_mutex_lock(&d->lock);
	if (d->irq_handled < count) {
		d->irq_handled = count;
		mine = true;
	}
	pthread_mutex_unlock(&d->lock);
	if (!mine)
		return 0;
	__atomic_fetch_add(&d->interrupts, 1, __ATOMIC_RELAXED);
	TRY(rd(v, d, VM_INTERRUPT_STATUS, 4, &isr));
	if (isr)
		TRY(wr(v, d, VM_INTERRUPT_ACK, isr));
	if (isr & 2u) {
		/* Configuration change (§4.2.2, §5.2.4): the capacity may have changed. */
		uint32_t gen0, gen1, lo, hi;

		do {
			TRY(rd(v, d, VM_CONFIG_GENERATION, 4, &gen0));
			TRY(rd(v, d, VM_CONFIG + 0, 4, &lo));
			TRY(rd(v, d, VM_CONFIG + 4, 4, &hi));
			TRY(rd(v, d, VM_CONFIG_GENERATION, 4, &gen1));
		} while (gen0 != gen1);
		pthread_mutex_lock(&d->lock);
		d->capacity = (uint64_t)hi << 32 | lo;
		d->config_changes++;
		pthread_mutex_unlock(&d->lock);
	}
	return 0;
}

/* Wait for an interrupt after @seen: 0, -ETIMEDOUT or -ESRCH. */
static int wait_irq(struct gdrv_dev *d, uint64_t seen, uint64_t deadline)
{
	struct xsim_irq_page *ip = d->g->dom->irqs;

	for (;;) {
		/* seq first: a raise after these loads bumps it, and the futex wait returns. */
		uint32_t seq = __atomic_load_n(&ip->seq[d->irq], __ATOMIC_SEQ_CST);
		uint64_t now;

		if (__atomic_load_n(&ip->dying, __ATOMIC_SEQ_CST))
			return -ESRCH;
		if (__atomic_load_n(&ip->raised[d->irq], __ATOMIC_SEQ_CST) != seen)
			return 0;
		now = sim_now_us();
		if (now >= deadline)
			return -ETIMEDOUT;
		xsim_futex_wait(&ip->seq[d->irq], seq, deadline - now);
	}
}

/* A finished request among the vCPU's: slot @want, or any busy one when @want < 0; -1 if none. */
static int done_slot(struct gdrv_vcpu *v, struct gdrv_dev *d, int want)
{
	const struct req *reqs = v->reqs[d->index];
	unsigned int i;

	if (want >= 0)
		return __atomic_load_n(&reqs[want].done, __ATOMIC_ACQUIRE) ? want : -1;
	for (i = 0; i < GUEST_MAX_QD; i++)
		if (reqs[i].busy && __atomic_load_n(&reqs[i].done, __ATOMIC_ACQUIRE))
			return (int)i;
	return -1;
}

/*
 * Wait until slot @want (or, with @want < 0, any of the vCPU's requests on
 * @d: what fio's io_getevents(min_nr = 1) waits for) is done; its slot in
 * *ret_slot.
 */
static int wait_done(struct gdrv_vcpu *v, struct gdrv_dev *d, struct gdrv_vq *q, int want,
		     unsigned int timeout_ms, unsigned int *ret_slot)
{
	uint64_t deadline = sim_now_us() + (uint64_t)timeout_ms * 1000, raised = 0;

	for (;;) {
		uint64_t seen = irq_count(d);
		int r, slot;

		pthread_mutex_lock(&q->lock);
		r = vq_reap(v, d, q);
		pthread_mutex_unlock(&q->lock);
		if (r < 0)
			return r;
		slot = done_slot(v, d, want);
		if (slot < 0) {
			if (vq_arm(v, d, q) < 0)
				return -EIO;
			slot = done_slot(v, d, want);
		}
		if (slot >= 0) {
			struct req *rq = &v->reqs[d->index][slot];

			/*
			 * The interrupt path, for make bench to tell the simulator's
			 * share of a request's latency: raise (vblkd's hypercall) to
			 * wake-up, ISR read, ACK and reap.
			 */
			rq->irq_ns = raised && rq->t_done > raised ? rq->t_done - raised : 0;
			*ret_slot = (unsigned int)slot;
			/* Take the interrupt that came with it, as a real guest would (ISR read + ACK). */
			return handle_irq(v, d, irq_count(d));
		}
		r = wait_irq(d, seen, deadline);
		if (r == -ETIMEDOUT) {
			uint32_t st = 0;

			pthread_mutex_lock(&q->lock);
			vq_reap(v, d, q);
			pthread_mutex_unlock(&q->lock);
			if (done_slot(v, d, want) >= 0)
				return gdrv_vcpu_fail(v, "%s: queue %u: request completed without an interrupt",
						 d->cfg->vdev, q->index);
			rd(v, d, VM_STATUS, 4, &st);
			gdrv_vcpu_fail(v, "%s: queue %u: no completion within %u ms (Status 0x%x%s)",
				  d->cfg->vdev, q->index, timeout_ms, st,
				  st & ST_NEEDS_RESET ? ", DEVICE_NEEDS_RESET" : "");
			return -ETIMEDOUT;
		}
		if (r < 0)
			return r;
		raised = __atomic_load_n(&d->g->dom->irqs->raised_ns[d->irq], __ATOMIC_SEQ_CST);
		TRY(handle_irq(v, d, irq_count(d)));
	}
}

/* Put a chain of @n segments on the queue (q->lock held) and return whether to notify. */
static int vq_add(struct gdrv_dev *d, struct gdrv_vq *q, const struct seg *s, unsigned int n,
		  struct req *rq, bool indirect, uint8_t *ind, uint64_t ind_gpa, bool *ret_notify)
{
	unsigned int i, ndesc = indirect ? 1 : n;

	if (!q->packed) {
		uint16_t head = q->free_head, idx = head, avail;

		if (q->nfree < ndesc)
			return -EAGAIN;
		for (i = 0; i < ndesc; i++) {
			uint8_t *e = q->desc + 16u * idx;
			uint16_t fl;

			if (indirect) {
				unsigned int k;

				for (k = 0; k < n; k++) {
					uint8_t *ie = ind + 16u * k;

					st64(ie, dma(d, s[k].gpa));
					st32(ie + 8, s[k].len);
					st16(ie + 12, (uint16_t)((s[k].write ? D_WRITE : 0) |
								 (k + 1 < n ? D_NEXT : 0)));
					st16(ie + 14, (uint16_t)(k + 1));
				}
				st64(e, dma(d, ind_gpa));
				st32(e + 8, 16u * n);
				fl = D_INDIRECT;
			} else {
				st64(e, dma(d, s[i].gpa));
				st32(e + 8, s[i].len);
				fl = (uint16_t)((s[i].write ? D_WRITE : 0) | (i + 1 < n ? D_NEXT : 0));
			}
			st16(e + 12, fl);
			st16(e + 14, q->link[idx]);
			if (i + 1 < ndesc)
				idx = q->link[idx];
		}
		q->free_head = q->link[idx];
		q->nfree = (uint16_t)(q->nfree - ndesc);
		q->reqs[head] = rq;
		q->chain_len[head] = (uint16_t)ndesc;
		avail = q->avail_idx;
		st16(q->drv + 4 + 2u * (avail % q->num), head);
		/* The ring entry and descriptors before the index (§2.7.13): release. */
		q->avail_idx++;
		__atomic_store_n((uint16_t *)(q->drv + 2), htole16(q->avail_idx), __ATOMIC_RELEASE);
		/* Full barrier: the idx store before reading the device's suppression (§2.7.13.4). */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (d->features & (1ull << F_EVENT_IDX)) {
			/* §2.7.10: notify if avail_event lies in (old idx, new idx]. */
			uint16_t ev = ld16(q->dev + 4 + 8u * q->num);

			*ret_notify = (uint16_t)(q->avail_idx - ev - 1) <
				      (uint16_t)(q->avail_idx - avail);
		} else {
			*ret_notify = !(ld16(q->dev) & USED_F_NO_NOTIFY);
		}
		return 0;
	}
	{
		uint16_t id, first = q->next_avail, first_flags = 0;

		if (q->nfree < ndesc || !q->nfree_ids)
			return -EAGAIN;
		id = q->free_ids[--q->nfree_ids];
		for (i = 0; i < ndesc; i++) {
			uint8_t *e = q->desc + 16u * q->next_avail;
			uint16_t fl;

			if (indirect) {
				unsigned int k;

				for (k = 0; k < n; k++) {
					uint8_t *ie = ind + 16u * k;

					st64(ie, dma(d, s[k].gpa));
					st32(ie + 8, s[k].len);
					st16(ie + 12, 0);
					st16(ie + 14, (uint16_t)(s[k].write ? D_WRITE : 0));
				}
				st64(e, dma(d, ind_gpa));
				st32(e + 8, 16u * n);
				fl = D_INDIRECT;
			} else {
				st64(e, dma(d, s[i].gpa));
				st32(e + 8, s[i].len);
				fl = (uint16_t)((s[i].write ? D_WRITE : 0) | (i + 1 < n ? D_NEXT : 0));
			}
			/* §2.8.1: AVAIL = wrap counter, USED = its inverse. */
			fl = (uint16_t)(fl | (q->avail_wrap ? D_AVAIL : D_USED));
			st16(e + 12, id);
			if (i == 0)
				first_flags = fl;
			else
				st16(e + 14, fl);
			if (++q->next_avail == q->num) {
				q->next_avail = 0;
				q->avail_wrap = !q->avail_wrap;
			}
		}
		q->nfree = (uint16_t)(q->nfree - ndesc);
		q->reqs[id] = rq;
		q->chain_len[id] = (uint16_t)ndesc;
		/* The head's flags last, with release: makes the whole chain available (§2.8.21). */
		__atomic_store_n((uint16_t *)(q->desc + 16u * first + 14), htole16(first_flags),
				 __ATOMIC_RELEASE);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		/* Device event suppression (§2.8.10): flags in the second u16 of the device area. */
		*ret_notify = (ld16(q->dev + 2) & 3u) != PACKED_EVENT_DISABLE;
		return 0;
	}
}

/* Split [gpa, gpa+len) into @want pieces, and at page boundaries when grants are in use. */
static unsigned int add_data(struct gdrv_dev *d, struct seg *s, unsigned int n, uint64_t gpa,
			     uint32_t len, bool write, unsigned int want)
{
	uint32_t piece = want > 1 ? (len + want - 1) / want : len;

	if (!piece)
		piece = len;
	while (len && n < MAX_SEGS - 1) {
		uint32_t l = len < piece ? len : piece;
		uint64_t at;

		if (n == MAX_SEGS - 2)
			l = len;	/* the last piece takes the rest */
		/* §5.2.4: with SIZE_MAX negotiated no segment is longer than size_max (as Linux). */
		if (d->size_max && l > d->size_max)
			l = d->size_max;
		/* With grants, a descriptor may only cross into a page whose ref follows on. */
		for (at = (gpa & ~(XSIM_PAGE_SIZE - 1)) + XSIM_PAGE_SIZE; at < gpa + l;
		     at += XSIM_PAGE_SIZE)
			if (!dma_contiguous(d, at - XSIM_PAGE_SIZE)) {
				l = (uint32_t)(at - gpa);
				break;
			}
		s[n++] = (struct seg){ .gpa = gpa, .len = l, .write = write };
		gpa += l;
		len -= l;
	}
	return n;
}

int gdrv_submit(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot, uint32_t type,
		uint64_t sector, uint32_t len, const struct req_layout *lay)
{
	bool in = type == BLK_T_IN || type == BLK_T_GET_ID;
	struct req_layout def = { .data_segs = 1 };
	struct gdrv_vq *q = vq_of(v, d);
	struct seg s[MAX_SEGS];
	bool notify = false, indirect;
	uint64_t hdr, data, status, ind_off;
	unsigned int n = 0;
	struct vbuf *b;
	struct req *rq;
	uint8_t *hp;
	int r;

	if (!d->ready)
		return gdrv_vcpu_fail(v, "%s: request on a device that is not set up", d->cfg->vdev);
	if (len > d->g->max_io || slot >= GUEST_MAX_QD)
		return -EINVAL;
	rq = &v->reqs[d->index][slot];
	if (rq->busy)
		return -EBUSY;
	TRY(slot_buf(v, d, slot, &b));
	hdr = b->gpa + XSIM_PAGE_SIZE - 16;
	data = b->gpa + XSIM_PAGE_SIZE;
	status = b->gpa + XSIM_PAGE_SIZE + d->g->max_io + 64;
	hp = gpa_host(d->g, hdr);
	if (!lay)
		lay = &def;
	/* struct virtio_blk_req header (§5.2.6): le32 type, le32 reserved, le64 sector. */
	st32(hp, type);
	st32(hp + 4, 0);
	st64(hp + 8, sector);
	if (lay->merge && len && in)
		status = data + len;	/* data and status in one device-writable buffer */
	*gpa_host(d->g, status) = BLK_S_NONE;
	if (lay->merge && len && !in) {
		n = add_data(d, s, n, hdr, 16 + len, false, lay->data_segs);
	} else {
		s[n++] = (struct seg){ .gpa = hdr, .len = 16, .write = false };
		if (len)
			n = add_data(d, s, n, data, len + (lay->merge && in ? 1 : 0), in,
				     lay->data_segs);
	}
	if (!(lay->merge && len && in))
		s[n++] = (struct seg){ .gpa = status, .len = 1, .write = true };
	indirect = lay->indirect && (d->features & (1ull << F_INDIRECT_DESC));
	*rq = (struct req){ .expect_len = (in ? len : 0) + 1, .type = type, .len = len,
			    .sector = sector, .status_gpa = status, .busy = true,
			    .t_submit = now_ns() };
	ind_off = ((uint64_t)v->id * GUEST_MAX_QD + slot) * MAX_SEGS * 16;
	for (;;) {
		uint64_t seen = irq_count(d);

		pthread_mutex_lock(&q->lock);
		r = vq_reap(v, d, q);
		if (r == 0)
			r = vq_add(d, q, s, n, rq, indirect, q->ind + ind_off, q->ind_gpa + ind_off,
				   &notify);
		/* Under q->lock: counted before any vCPU can reap it. */
		if (r == 0)
			iolog_submit(d->g->dom, rq->t_submit);
		pthread_mutex_unlock(&q->lock);
		if (r != -EAGAIN)
			break;
		if (vq_arm(v, d, q) < 0) {
			rq->busy = false;
			return -EIO;
		}
		/* Ring full: wait for completions (ours or of the vCPUs sharing this queue). */
		r = wait_irq(d, seen, sim_now_us() + (uint64_t)sim_timeout_ms * 1000);
		if (r == -ETIMEDOUT)
			r = gdrv_vcpu_fail(v, "%s: queue %u full and no completion within %u ms",
				      d->cfg->vdev, q->index, sim_timeout_ms);
		if (r == 0)
			r = handle_irq(v, d, irq_count(d));
		if (r < 0) {
			rq->busy = false;
			return r;
		}
	}
	if (r < 0) {
		rq->busy = false;
		return r;
	}
	if (notify) {
		__atomic_fetch_add(&d->notifies, 1, __ATOMIC_RELAXED);
		TRY(wr(v, d, VM_QUEUE_NOTIFY, q->index));
	}
	return 0;
}

/* The end of a request: its status byte and used length checked. */
static int finish(struct gdrv_vcpu *v, struct gdrv_dev *d, struct req *rq, uint8_t *ret_status)
{
	rq->busy = false;
	*ret_status = *gpa_host(d->g, rq->status_gpa);
	if (*ret_status == BLK_S_NONE)
		return gdrv_vcpu_fail(v, "%s: request type %u sector %llu completed without a status byte",
				 d->cfg->vdev, rq->type, (unsigned long long)rq->sector);
	/* §2.7.8.1: len is the number of bytes written into the device-writable buffers. */
	if (*ret_status == BLK_S_OK && rq->type == BLK_T_IN && rq->used_len != rq->expect_len)
		return gdrv_vcpu_fail(v, "%s: read of %u bytes: used len %u, want %u", d->cfg->vdev,
				 rq->len, rq->used_len, rq->expect_len);
	return 0;
}

int gdrv_wait(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot, uint8_t *ret_status)
{
	unsigned int done;

	if (slot >= GUEST_MAX_QD || !v->reqs[d->index][slot].busy)
		return -EINVAL;
	TRY(wait_done(v, d, vq_of(v, d), (int)slot, sim_timeout_ms, &done));
	return finish(v, d, &v->reqs[d->index][slot], ret_status);
}

int gdrv_wait_any(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int *ret_slot,
		  uint8_t *ret_status)
{
	unsigned int i;

	for (i = 0; i < GUEST_MAX_QD && !v->reqs[d->index][i].busy; i++)
		;
	if (i == GUEST_MAX_QD)
		return -EINVAL;
	TRY(wait_done(v, d, vq_of(v, d), -1, sim_timeout_ms, ret_slot));
	return finish(v, d, &v->reqs[d->index][*ret_slot], ret_status);
}

uint64_t gdrv_slot_irq_ns(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot)
{
	return slot < GUEST_MAX_QD ? v->reqs[d->index][slot].irq_ns : 0;
}

uint64_t gdrv_slot_latency_ns(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot)
{
	const struct req *rq;

	if (slot >= GUEST_MAX_QD)
		return 0;
	rq = &v->reqs[d->index][slot];
	return rq->t_done > rq->t_submit ? rq->t_done - rq->t_submit : 0;
}

uint64_t gdrv_slot_done_ns(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot)
{
	return slot < GUEST_MAX_QD ? v->reqs[d->index][slot].t_done : 0;
}

int gdrv_request(struct gdrv_vcpu *v, struct gdrv_dev *d, uint32_t type, uint64_t sector, uint32_t len,
		 const struct req_layout *lay, uint8_t *ret_status)
{
	TRY(gdrv_submit(v, d, 0, type, sector, len, lay));
	return gdrv_wait(v, d, 0, ret_status);
}

int gdrv_raw_begin(struct gdrv_vcpu *v, struct gdrv_dev *d, struct gdrv_raw *ret)
{
	struct gdrv_vq *q = vq_of(v, d);
	struct vbuf *b = &v->bufs[d->index * GUEST_MAX_QD];

	if (!d->ready)
		return -ENODEV;
	pthread_mutex_lock(&q->lock);
	*ret = (struct gdrv_raw){ .index = q->index, .num = q->num, .packed = q->packed,
				.desc = q->desc, .avail = q->drv, .used = q->dev,
				.desc_gpa = q->desc_gpa, .buf = b->host + XSIM_PAGE_SIZE,
				.buf_gpa = b->gpa + XSIM_PAGE_SIZE, .next_avail = q->next_avail,
				.avail_wrap = q->avail_wrap };
	return 0;
}

void gdrv_raw_end(struct gdrv_vcpu *v, struct gdrv_dev *d)
{
	pthread_mutex_unlock(&vq_of(v, d)->lock);
}

int gdrv_raw_wait(struct gdrv_vcpu *v, struct gdrv_dev *d, uint16_t old_used, unsigned int timeout_ms)
{
	uint64_t deadline = sim_now_us() + (uint64_t)timeout_ms * 1000;
	struct gdrv_vq *q = vq_of(v, d);

	for (;;) {
		uint64_t seen = irq_count(d);
		uint32_t st;
		int r;

		if (q->packed) {
			uint16_t f = ld16(q->desc + 16u * q->next_used + 14);

			if (!!(f & D_AVAIL) == !!(f & D_USED) && !!(f & D_USED) == q->used_wrap)
				return 1;
		} else if (ld16(q->dev + 2) != old_used) {
			return 1;
		}
		TRY(rd(v, d, VM_STATUS, 4, &st));
		if (st & ST_NEEDS_RESET)
			return 0;
		r = wait_irq(d, seen, deadline);
		if (r < 0)
			return r;
		TRY(handle_irq(v, d, irq_count(d)));
	}
}
