// SPDX-License-Identifier: GPL-2.0-only
/* The flood workload: legal requests cheap for a guest and dear for its backend (issue 16). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flood.h"

#define TRY_FL(expr)                  \
	do {                          \
		int r_ = (expr);      \
		if (r_ < 0)           \
			return r_;    \
	} while (0)

/* Split ring descriptor flags (§2.7.5). */
#define D_NEXT 1u
#define D_WRITE 2u
#define D_INDIRECT 4u

#define FEAT(f) (1ull << (f))

/* in-junk, flush-junk: each readable buffer; 254 of them and a header stay below 2^32 (§2.7.5). */
#define JUNK_BYTES (16ull << 20)
/* spread: segments this far apart or more, so that no two share one of vblkd's mapping chunks. */
#define SPREAD_CHUNK (256ull << 10)
#define SPREAD_HEADS 64u
#define SPREAD_SEG 1048576u	/* segment size without SIZE_MAX */
/* bigseg: one segment above size_max (1 MiB) and above the 16 MiB a single mapping may take today. */
#define BIGSEG_BYTES (17u << 20)
#define PATTERN_IO (64u << 10)

/*
 * A request's indirect table with its header and status: two pages, the
 * table (up to GUEST_MAX_QUEUE_SIZE descriptors) filling the first.
 */
#define TB_HDR XSIM_PAGE_SIZE
#define TB_STATUS (XSIM_PAGE_SIZE + 64)
#define TB_BYTES (2 * XSIM_PAGE_SIZE)

struct tblock {
	uint64_t gpa;
	uint8_t *host;
};

/* What the rounds of one attack did. */
struct flood_result {
	unsigned int rounds;
	unsigned int heads;		/* offered per round */
	uint64_t ns_max, ns_total;	/* QueueNotify until all used or DEVICE_NEEDS_RESET */
	uint64_t completed;		/* used entries */
	unsigned int needs_reset;	/* rounds the device ended with DEVICE_NEEDS_RESET */
	uint64_t ok, ioerr, unsupp, nostatus, other;	/* status bytes of completed requests */
	unsigned int descs;		/* junk: descriptors in the table */
	uint64_t buf_bytes;		/* junk: each readable buffer */
	unsigned int segs;		/* spread: data segments per request */
	uint32_t seg_bytes;
	uint64_t places;		/* spread: distinct segment addresses */
	unsigned int data_same, data_differs;	/* bigseg: rounds whose read was checked */
};

struct flood {
	struct gdrv_guest *g;
	struct gdrv_vcpu *v;
	struct gdrv_dev *d;
	const char *vdev;
	const char *path;
	unsigned int spec_heads;	/* flood_spec.heads */
	uint64_t ram_base, ram_bytes;
	/* Guest memory, allocated on first use and kept for the next rounds. */
	struct tblock junk;
	struct tblock spread[GUEST_MAX_QUEUE_SIZE];
	struct tblock big;		/* [one page][BIGSEG_BYTES of data]: data at an odd page */
	struct tblock big_hs;		/* its header and status */
	bool pattern_on_disk;		/* the bigseg stamps are on disk (spread writes over them) */
	struct flood_result res[FLOOD_ALL];
};

static const char *const attack_names[] = {
	[FLOOD_IN_JUNK] = "in-junk",
	[FLOOD_FLUSH_JUNK] = "flush-junk",
	[FLOOD_SPREAD] = "spread",
	[FLOOD_BIGSEG] = "bigseg",
	[FLOOD_ALL] = "all",
};

int flood_attack_parse(const char *name, enum flood_attack *ret)
{
	unsigned int i;

	for (i = 0; i <= FLOOD_ALL; i++)
		if (!strcmp(name, attack_names[i])) {
			*ret = (enum flood_attack)i;
			return 0;
		}
	return -EINVAL;
}






static void put_desc(uint8_t *e, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	st64(e, addr);
	st32(e + 8, len);
	st16(e + 12, flags);
	st16(e + 14, next);
}

/* struct virtio_blk_req's header (§5.2.6): le32 type, le32 reserved, le64 sector. */
static void put_header(uint8_t *p, uint32_t type, uint64_t sector)
{
	st32(p, type);
	st32(p + 4, 0);
	st64(p + 8, sector);
}

/* The content the flood gives sector @sector: its number, then bytes derived from it. */
static void stamp(uint8_t *buf, uint64_t sector, uint32_t nsect)
{
	uint32_t i, k;

	for (i = 0; i < nsect; i++) {
		uint64_t x = (sector + i) * 0x9e3779b97f4a7c15ull ^ 0x666c6f6f64ull;

		st64(buf + 512u * i, sector + i);
		for (k = 8; k < 512; k += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(buf + 512u * i + k, &x, 8);
		}
	}
}

static int tblock_get(struct flood *f, struct tblock *t, uint64_t size, uint64_t align)
{
	if (t->gpa)
		return 0;
	return gdrv_guest_alloc(f->g, size, align, &t->gpa, &t->host);
}

/* Reset, then set up with only the features of @mask and queues of up to @queue_size. */
static int setup(struct flood *f, const char *what, uint64_t mask, unsigned int queue_size,
		 uint64_t need, struct gdrv_info *ret_info)
{
	TRY_FL(gdrv_dev_reset(f->v, f->d));
	TRY_FL(gdrv_dev_init_features(f->v, f->d, mask, queue_size));
	gdrv_dev_get_info(f->d, ret_info);
	if ((ret_info->features & need) != need)
		return gdrv_vcpu_fail(f->v, "%s: flood '%s': device does not offer features 0x%llx",
				      f->vdev, what, (unsigned long long)(need & ~ret_info->features));
	return 0;
}

/*
 * Make heads 0..@n-1, whose descriptors are written, available with one
 * avail idx update, and notify once: the time of the notify in *ret_t0.
 */
static int offer(struct flood *f, const char *what, struct gdrv_raw *q, unsigned int n,
		 uint16_t *ret_used0, uint64_t *ret_t0)
{
	uint16_t aidx, i;
	uint64_t val = q->index;
	int r;

	/* The driver's own index: no one else writes it. */
	memcpy(&aidx, q->avail + 2, 2);
	aidx = le16toh(aidx);
	*ret_used0 = le16toh(__atomic_load_n((uint16_t *)(q->used + 2), __ATOMIC_ACQUIRE));
	for (i = 0; i < n; i++)
		st16(q->avail + 4 + 2u * ((uint16_t)(aidx + i) % q->num), i);
	/* Descriptors, tables and ring entries before the index (§2.7.13): release. */
	__atomic_store_n((uint16_t *)(q->avail + 2), htole16((uint16_t)(aidx + n)),
			 __ATOMIC_RELEASE);
	/* And the index before the notify that makes the device read it (§2.7.13.4). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	*ret_t0 = now_ns();
	r = gdrv_dev_mmio(f->v, f->d, VM_QUEUE_NOTIFY, 4, true, &val);
	if (r == -ETIMEDOUT) {
		gdrv_vcpu_fail(f->v, "%s: flood '%s': QueueNotify not answered within %u ms (hang)",
			       f->vdev, what, sim_timeout_ms);
		return r;
	}
	if (r < 0 && r != -ESRCH)
		return gdrv_vcpu_fail(f->v, "%s: flood '%s': QueueNotify: %s", f->vdev, what,
				      strerror(-r));
	return r;
}

/*
 * Wait until the device has used all @heads offered after @used0, or set
 * DEVICE_NEEDS_RESET.  A hang is neither, nor any new used entry, for
 * --timeout ms: a slow device that makes progress is only slow.
 */
static int wait_heads(struct flood *f, const char *what, struct gdrv_raw *q, uint16_t used0,
		      unsigned int heads, unsigned int *ret_used, bool *ret_needs_reset)
{
	for (;;) {
		/* Acquire pairs with the device's barrier before it bumps used idx (§2.7.8). */
		uint16_t used = le16toh(__atomic_load_n((uint16_t *)(q->used + 2),
							 __ATOMIC_ACQUIRE));
		unsigned int n = (uint16_t)(used - used0);
		int r;

		if (n > heads)
			return gdrv_vcpu_fail(f->v, "%s: flood '%s': used idx moved by %u, %u heads offered",
					      f->vdev, what, n, heads);
		if (n == heads) {
			*ret_used = n;
			*ret_needs_reset = false;
			return 0;
		}
		r = gdrv_raw_wait(f->v, f->d, used, sim_timeout_ms);
		if (r == 1)
			continue;
		if (r == 0) {
			used = le16toh(__atomic_load_n((uint16_t *)(q->used + 2), __ATOMIC_ACQUIRE));
			n = (uint16_t)(used - used0);
			*ret_used = n < heads ? n : heads;
			*ret_needs_reset = true;
			return 0;
		}
		if (r == -ETIMEDOUT) {
			gdrv_vcpu_fail(f->v, "%s: flood '%s': %u of %u heads used, then no used entry and no DEVICE_NEEDS_RESET within %u ms (the guest would hang)",
				       f->vdev, what, n, heads, sim_timeout_ms);
			return r;
		}
		return r;
	}
}

static void count_status(struct flood_result *res, uint8_t status)
{
	switch (status) {
	case BLK_S_OK: res->ok++; break;
	case BLK_S_IOERR: res->ioerr++; break;
	case BLK_S_UNSUPP: res->unsupp++; break;
	case BLK_S_NONE: res->nostatus++; break;
	default: res->other++; break;
	}
}

static void account(struct flood_result *res, unsigned int heads, uint64_t ns, unsigned int used,
		    bool needs_reset)
{
	res->rounds++;
	res->heads = heads;
	res->ns_total += ns;
	if (ns > res->ns_max)
		res->ns_max = ns;
	res->completed += used;
	res->needs_reset += needs_reset;
}

/*
 * in-junk / flush-junk: every head points at one indirect table as long as
 * the queue (§2.7.5.3.1): a header, readable 16 MiB buffers all at the
 * start of RAM, and the status byte that all heads share.  An IN request
 * without data (or a FLUSH) reads none of them.
 */
static int round_junk(struct flood *f, bool flush)
{
	const char *what = attack_names[flush ? FLOOD_FLUSH_JUNK : FLOOD_IN_JUNK];
	struct flood_result *res = &f->res[flush ? FLOOD_FLUSH_JUNK : FLOOD_IN_JUNK];
	uint64_t mask = FEAT(F_VERSION_1) | FEAT(F_INDIRECT_DESC) | (flush ? FEAT(F_BLK_FLUSH) : 0);
	uint64_t len = f->ram_bytes < JUNK_BYTES ? f->ram_bytes : JUNK_BYTES, t0;
	struct gdrv_info in;
	struct gdrv_raw q;
	unsigned int heads, descs, i, used = 0;
	bool needs_reset = false;
	uint16_t used0 = 0;
	int r;

	TRY_FL(setup(f, what, mask, GUEST_MAX_QUEUE_SIZE, FEAT(F_INDIRECT_DESC), &in));
	TRY_FL(tblock_get(f, &f->junk, TB_BYTES, 16));
	TRY_FL(gdrv_raw_begin(f->v, f->d, &q));
	descs = q.num;
	heads = f->spec_heads && f->spec_heads < q.num ? f->spec_heads : q.num;
	if (descs < 3) {
		gdrv_raw_end(f->v, f->d);
		return gdrv_vcpu_fail(f->v, "%s: flood '%s': queue of %u entries", f->vdev, what,
				      descs);
	}
	put_header(f->junk.host + TB_HDR, flush ? BLK_T_FLUSH : BLK_T_IN, 0);
	f->junk.host[TB_STATUS] = BLK_S_NONE;
	put_desc(f->junk.host, f->junk.gpa + TB_HDR, 16, D_NEXT, 1);
	for (i = 1; i + 1 < descs; i++)
		put_desc(f->junk.host + 16u * i, f->ram_base, (uint32_t)len, D_NEXT,
			 (uint16_t)(i + 1));
	put_desc(f->junk.host + 16u * (descs - 1), f->junk.gpa + TB_STATUS, 1, D_WRITE, 0);
	for (i = 0; i < heads; i++)
		put_desc(q.desc + 16u * i, f->junk.gpa, 16u * descs, D_INDIRECT, 0);
	r = offer(f, what, &q, heads, &used0, &t0);
	if (r == 0)
		r = wait_heads(f, what, &q, used0, heads, &used, &needs_reset);
	if (r == 0) {
		account(res, heads, now_ns() - t0, used, needs_reset);
		res->descs = descs;
		res->buf_bytes = len;
		/* One status byte for all the round's heads. */
		if (used)
			count_status(res, f->junk.host[TB_STATUS]);
	}
	gdrv_raw_end(f->v, f->d);
	return r;
}

/*
 * spread: writes of seg_max segments of size_max bytes each, every segment
 * somewhere else in guest RAM (a chunk apart, wrapping when RAM runs out),
 * each request through its own indirect table.  Writes: the device only
 * reads guest RAM, rings and tables included.
 */
static int round_spread(struct flood *f)
{
	const char *what = attack_names[FLOOD_SPREAD];
	struct flood_result *res = &f->res[FLOOD_SPREAD];
	uint64_t mask = FEAT(F_VERSION_1) | FEAT(F_INDIRECT_DESC) | FEAT(F_BLK_SIZE_MAX) |
			FEAT(F_BLK_SEG_MAX);
	uint64_t stride, places, t0;
	uint32_t seg;
	unsigned int heads, segs, h, j, used = 0;
	struct gdrv_info in;
	struct gdrv_raw q;
	bool needs_reset = false;
	uint16_t used0 = 0;
	int r;

	f->pattern_on_disk = false;	/* its writes start at sector 0 */
	TRY_FL(setup(f, what, mask, GUEST_MAX_QUEUE_SIZE, FEAT(F_INDIRECT_DESC), &in));
	seg = in.size_max ? in.size_max & ~511u : SPREAD_SEG;
	if (!seg || seg > f->ram_bytes)
		return gdrv_vcpu_fail(f->v, "%s: flood '%s': size_max %u with %llu bytes of RAM",
				      f->vdev, what, in.size_max, (unsigned long long)f->ram_bytes);
	TRY_FL(gdrv_raw_begin(f->v, f->d, &q));
	/* A chain no longer than the queue (§2.7.5.3.1), of at most 2^32 bytes (§2.7.5). */
	segs = in.seg_max && in.seg_max < q.num - 2u ? in.seg_max : q.num - 2u;
	if ((uint64_t)segs * seg > UINT32_MAX - 17)
		segs = (UINT32_MAX - 17) / seg;
	/* The request fits in the disk: the attacker's own, written from sector 0. */
	if ((uint64_t)segs * seg / 512 > in.capacity)
		segs = (unsigned int)(in.capacity * 512 / seg);
	heads = f->spec_heads ? f->spec_heads : SPREAD_HEADS;
	if (heads > q.num)
		heads = q.num;
	if (!segs) {
		gdrv_raw_end(f->v, f->d);
		return gdrv_vcpu_fail(f->v, "%s: flood '%s': disk of %llu sectors, segments of %u bytes",
				      f->vdev, what, (unsigned long long)in.capacity, seg);
	}
	stride = (seg + SPREAD_CHUNK - 1) / SPREAD_CHUNK * SPREAD_CHUNK;
	places = (f->ram_bytes - seg) / stride + 1;
	for (h = 0; h < heads; h++) {
		struct tblock *t = &f->spread[h];

		r = tblock_get(f, t, TB_BYTES, 16);
		if (r < 0) {
			gdrv_raw_end(f->v, f->d);
			return gdrv_vcpu_fail(f->v, "%s: flood '%s': no guest RAM for table %u: %s",
					      f->vdev, what, h, strerror(-r));
		}
		put_header(t->host + TB_HDR, BLK_T_OUT, 0);
		t->host[TB_STATUS] = BLK_S_NONE;
		put_desc(t->host, t->gpa + TB_HDR, 16, D_NEXT, 1);
		for (j = 0; j < segs; j++) {
			uint64_t k = (uint64_t)h * segs + j;

			put_desc(t->host + 16u * (1 + j), f->ram_base + k % places * stride, seg,
				 D_NEXT, (uint16_t)(j + 2));
		}
		put_desc(t->host + 16u * (segs + 1), t->gpa + TB_STATUS, 1, D_WRITE, 0);
		put_desc(q.desc + 16u * h, t->gpa, 16u * (segs + 2), D_INDIRECT, 0);
	}
	r = offer(f, what, &q, heads, &used0, &t0);
	if (r == 0)
		r = wait_heads(f, what, &q, used0, heads, &used, &needs_reset);
	if (r == 0) {
		account(res, heads, now_ns() - t0, used, needs_reset);
		res->segs = segs;
		res->seg_bytes = seg;
		res->places = places < (uint64_t)heads * segs ? places : (uint64_t)heads * segs;
		/* Each used entry names its head (§2.7.8), whose table has its own status byte. */
		for (j = 0; j < used; j++) {
			uint32_t id = ld32(q.used + 4 + 8u * ((uint16_t)(used0 + j) % q.num));

			count_status(res, id < heads ? f->spread[id].host[TB_STATUS] : BLK_S_NONE);
		}
	}
	gdrv_raw_end(f->v, f->d);
	return r;
}

/* Through the normal driver: the first BIGSEG_BYTES of the disk get the flood's stamps. */
static int write_pattern(struct flood *f)
{
	uint8_t *buf = gdrv_buffer(f->v, f->d);
	struct gdrv_info in;
	uint8_t status;
	uint64_t s;

	if (!buf)
		return -ENOMEM;
	for (s = 0; s < BIGSEG_BYTES / 512; s += PATTERN_IO / 512) {
		stamp(buf, s, PATTERN_IO / 512);
		TRY_FL(gdrv_request(f->v, f->d, BLK_T_OUT, s, PATTERN_IO, NULL, &status));
		if (status != BLK_S_OK)
			return gdrv_vcpu_fail(f->v, "%s: flood 'bigseg': writing the pattern at sector %llu: status %u",
					      f->vdev, (unsigned long long)s, status);
	}
	gdrv_dev_get_info(f->d, &in);
	if (in.features & FEAT(F_BLK_FLUSH)) {
		TRY_FL(gdrv_request(f->v, f->d, BLK_T_FLUSH, 0, 0, NULL, &status));
		if (status != BLK_S_OK)
			return gdrv_vcpu_fail(f->v, "%s: flood 'bigseg': flush: status %u", f->vdev,
					      status);
	}
	return 0;
}

/* What the guest read must be the backing file's bytes: 1 same, 0 differs (explained), -errno. */
static int same_as_file(struct flood *f, const uint8_t *data, uint32_t len)
{
	uint8_t *buf = malloc(1u << 20);
	int fd = open(f->path, O_RDONLY | O_CLOEXEC), r = 1;
	uint32_t off, i;

	if (!buf || fd < 0) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return gdrv_vcpu_fail(f->v, "%s: open backing file %s: %m", f->vdev, f->path);
	}
	for (off = 0; off < len && r == 1; off += 1u << 20) {
		uint32_t n = len - off < (1u << 20) ? len - off : 1u << 20;

		if (pread(fd, buf, n, off) != (ssize_t)n) {
			r = gdrv_vcpu_fail(f->v, "%s: short read of backing file %s", f->vdev, f->path);
			break;
		}
		if (!memcmp(buf, data + off, n))
			continue;
		for (i = 0; buf[i] == data[off + i]; i++)
			;
		gdrv_vcpu_fail(f->v, "%s: flood 'bigseg': status OK but byte %u of the %u-byte read differs from the backing file (0x%02x, file 0x%02x)",
			       f->vdev, off + i, len, data[off + i], buf[i]);
		r = 0;
	}
	close(fd);
	free(buf);
	return r;
}

/*
 * bigseg: without SIZE_MAX a driver may put any length in one descriptor;
 * one read of BIGSEG_BYTES from sector 0 into one segment at an odd page of
 * a fresh allocation, checked against the backing file.
 */
static int round_bigseg(struct flood *f)
{
	const char *what = attack_names[FLOOD_BIGSEG];
	struct flood_result *res = &f->res[FLOOD_BIGSEG];
	uint64_t mask = ~(FEAT(F_BLK_SIZE_MAX) | FEAT(F_RING_PACKED)), data_gpa, t0;
	struct gdrv_info in;
	struct gdrv_raw q;
	unsigned int used = 0;
	bool needs_reset = false;
	uint16_t used0 = 0;
	uint8_t *data, status;
	int r;

	gdrv_dev_get_info(f->d, &in);
	if (in.capacity < BIGSEG_BYTES / 512)
		return gdrv_vcpu_fail(f->v, "%s: flood '%s' needs a disk of at least %u MiB",
				      f->vdev, what, BIGSEG_BYTES >> 20);
	/*
	 * Known data first (the device is set up as usual here), once: later
	 * rounds read it again (recover() writes the same stamps).  A read-only
	 * disk has its own.
	 */
	if (!(in.features & FEAT(F_BLK_RO)) && !f->pattern_on_disk) {
		TRY_FL(write_pattern(f));
		f->pattern_on_disk = true;
	}
	TRY_FL(setup(f, what, mask, 0, 0, &in));
	/* Chunk-aligned, so the data starts at page 1 of a chunk and ends inside another. */
	r = tblock_get(f, &f->big, XSIM_PAGE_SIZE + BIGSEG_BYTES, SPREAD_CHUNK);
	if (r == 0)
		r = tblock_get(f, &f->big_hs, XSIM_PAGE_SIZE, 16);
	if (r < 0)
		return gdrv_vcpu_fail(f->v, "%s: flood '%s': no guest RAM for a %u-byte buffer: %s",
				      f->vdev, what, BIGSEG_BYTES, strerror(-r));
	data_gpa = f->big.gpa + XSIM_PAGE_SIZE;
	data = f->big.host + XSIM_PAGE_SIZE;
	/* Not what the disk holds: a read that writes nothing shows. */
	memset(data, 0x5a, BIGSEG_BYTES);
	put_header(f->big_hs.host, BLK_T_IN, 0);
	f->big_hs.host[64] = BLK_S_NONE;
	TRY_FL(gdrv_raw_begin(f->v, f->d, &q));
	put_desc(q.desc, f->big_hs.gpa, 16, D_NEXT, 1);
	put_desc(q.desc + 16, data_gpa, BIGSEG_BYTES, D_WRITE | D_NEXT, 2);
	put_desc(q.desc + 32, f->big_hs.gpa + 64, 1, D_WRITE, 0);
	r = offer(f, what, &q, 1, &used0, &t0);
	if (r == 0)
		r = wait_heads(f, what, &q, used0, 1, &used, &needs_reset);
	gdrv_raw_end(f->v, f->d);
	if (r < 0)
		return r;
	account(res, 1, now_ns() - t0, used, needs_reset);
	res->buf_bytes = BIGSEG_BYTES;
	status = f->big_hs.host[64];
	if (used)
		count_status(res, status);
	if (!used || status != BLK_S_OK)
		return 0;
	r = same_as_file(f, data, BIGSEG_BYTES);
	if (r < 0)
		return r;
	if (r == 0) {
		res->data_differs++;
		return -EIO;
	}
	res->data_same++;
	return 0;
}

/* After an attack: reset, set up as usual, and prove the device works with a write and a read. */
static int recover(struct flood *f, const char *after)
{
	uint8_t *buf, want[4096], status;
	struct gdrv_info in;
	uint64_t x = 0;
	int r;

	r = gdrv_dev_mmio(f->v, f->d, VM_MAGIC, 4, false, &x);
	if (r == -ESRCH)
		return r;
	if (r < 0 || x != VM_MAGIC_VALUE)
		return gdrv_vcpu_fail(f->v, "%s: device dead after flood '%s': MagicValue read %s (0x%llx)",
				      f->vdev, after, r < 0 ? strerror(-r) : "wrong",
				      (unsigned long long)x);
	TRY_FL(gdrv_dev_reset(f->v, f->d));
	TRY_FL(gdrv_dev_init(f->v, f->d));
	gdrv_dev_get_info(f->d, &in);
	buf = gdrv_buffer(f->v, f->d);
	if (!buf)
		return -ENOMEM;
	stamp(want, 0, 8);
	if (!(in.features & FEAT(F_BLK_RO))) {
		memcpy(buf, want, sizeof(want));
		TRY_FL(gdrv_request(f->v, f->d, BLK_T_OUT, 0, sizeof(want), NULL, &status));
		if (status != BLK_S_OK)
			return gdrv_vcpu_fail(f->v, "%s: after flood '%s': write status %u", f->vdev,
					      after, status);
	}
	memset(buf, 0x5a, sizeof(want));
	TRY_FL(gdrv_request(f->v, f->d, BLK_T_IN, 0, sizeof(want), NULL, &status));
	if (status != BLK_S_OK)
		return gdrv_vcpu_fail(f->v, "%s: after flood '%s': read status %u", f->vdev, after,
				      status);
	if (!(in.features & FEAT(F_BLK_RO)) && memcmp(buf, want, sizeof(want)))
		return gdrv_vcpu_fail(f->v, "%s: after flood '%s': read back differs from the write",
				      f->vdev, after);
	return 0;
}

static int run_round(struct flood *f, enum flood_attack a)
{
	switch (a) {
	case FLOOD_IN_JUNK: return round_junk(f, false);
	case FLOOD_FLUSH_JUNK: return round_junk(f, true);
	case FLOOD_SPREAD: return round_spread(f);
	case FLOOD_BIGSEG: return round_bigseg(f);
	case FLOOD_ALL: break;
	}
	return -EINVAL;
}

static void report(const struct flood *f, enum flood_attack a, struct sbuf *notes)
{
	const struct flood_result *res = &f->res[a];

	sbuf_printf(notes,
		    "flood dom=%u disk=%s attack=%s rounds=%u heads=%u seconds=%.3f seconds_total=%.3f completed=%llu needs_reset=%u ok=%llu ioerr=%llu unsupp=%llu nostatus=%llu other=%llu",
		    gdrv_guest_domid(f->g), f->vdev, attack_names[a], res->rounds, res->heads,
		    res->ns_max / 1e9, res->ns_total / 1e9, (unsigned long long)res->completed,
		    res->needs_reset, (unsigned long long)res->ok, (unsigned long long)res->ioerr,
		    (unsigned long long)res->unsupp, (unsigned long long)res->nostatus,
		    (unsigned long long)res->other);
	switch (a) {
	case FLOOD_IN_JUNK:
	case FLOOD_FLUSH_JUNK:
		sbuf_printf(notes, " descs=%u buf_bytes=%llu\n", res->descs,
			    (unsigned long long)res->buf_bytes);
		break;
	case FLOOD_SPREAD:
		sbuf_printf(notes, " segs=%u seg_bytes=%u places=%llu\n", res->segs, res->seg_bytes,
			    (unsigned long long)res->places);
		break;
	case FLOOD_BIGSEG:
		sbuf_printf(notes, " bytes=%llu data=%s\n", (unsigned long long)res->buf_bytes,
			    res->data_differs ? "differs" : res->data_same ? "same" : "unchecked");
		break;
	case FLOOD_ALL:
		sbuf_printf(notes, "\n");
		break;
	}
}

int flood_run(struct gdrv_guest *g, struct gdrv_vcpu *v, struct gdrv_dev *d,
	      const struct flood_spec *spec, struct sbuf *notes)
{
	enum flood_attack first = spec->attack == FLOOD_ALL ? FLOOD_IN_JUNK : spec->attack;
	enum flood_attack last = spec->attack == FLOOD_ALL ? FLOOD_BIGSEG : spec->attack;
	uint64_t end = sim_now_us() + (uint64_t)spec->seconds * 1000000;
	struct gdrv_info in;
	struct flood *f;
	unsigned int a;
	int r = 0;

	gdrv_dev_get_info(d, &in);
	/* Its buffers are plain guest addresses; grants would need a grant per buffer. */
	if (in.grants)
		return gdrv_vcpu_fail(v, "%s: flood: not for disks with :grants", in.cfg->vdev);
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	*f = (struct flood){ .g = g, .v = v, .d = d, .vdev = in.cfg->vdev, .path = in.cfg->path,
			     .spec_heads = spec->heads };
	gdrv_guest_ram(g, &f->ram_base, &f->ram_bytes);
	do {
		for (a = first; a <= last && r == 0; a++) {
			r = run_round(f, (enum flood_attack)a);
			if (r == 0)
				r = recover(f, attack_names[a]);
		}
	} while (r == 0 && sim_now_us() < end);
	for (a = first; a <= last; a++)
		if (f->res[a].rounds)
			report(f, (enum flood_attack)a, notes);
	free(f);
	return r;
}
