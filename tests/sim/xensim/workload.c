// SPDX-License-Identifier: GPL-2.0-only
/* Guest workloads: verify, random (seeded, shadow-checked), sequential, trim, rebind, hostile, bench, flood. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flood.h"
#include "gdrv.h"
#include "log.h"
#include "util.h"

#define TRY_WL(expr)                  \
	do {                          \
		int r_ = (expr);      \
		if (r_ < 0)           \
			return r_;    \
	} while (0)

enum wl_kind {
	WL_VERIFY,
	WL_RANDOM,
	WL_SEQUENTIAL,
	WL_TRIM,
	WL_REBIND,
	WL_HOSTILE,
	WL_BENCH,
	WL_FLOOD,
};

/* What a bench workload does in its timed phase (fio's rw= names). */
enum bench_rw {
	BENCH_RANDREAD,
	BENCH_RANDWRITE,
	BENCH_READ,
	BENCH_WRITE,
};

/* Latency histogram: exact below 64 ns, then 64 buckets per power of two (error < 1.6 %). */
#define LAT_SUB 64u
#define LAT_BUCKETS (LAT_SUB * 40u)

struct wl_spec {
	enum wl_kind kind;
	uint64_t seed;
	unsigned int ops;
	uint32_t bs;
	uint64_t span;		/* bytes per vCPU region cap */
	unsigned int qd;	/* requests in flight per vCPU and disk (sequential, bench) */
	enum bench_rw rw;	/* bench */
	unsigned int time_ms;	/* bench: length of the timed phase */
	bool nocheck;		/* bench: no data checks (a backend that does no IO) */
	struct flood_spec flood;
};

struct wl_stats {
	uint64_t reads, writes, flushes, discards, zeroes, bytes_read, bytes_written;
	uint64_t unsupported;
};

/*
 * The timed phase's requests one by one, for make bench ($XENSIM_LATLOG names
 * the file): when each was seen done (CLOCK_MONOTONIC ns) and its latency (ns),
 * so that the requests a stop of the whole machine held up can be told apart
 * (scripts/bench.py, tests/bench/stall-probe).
 */
#define LAT_LOG_MAX (4u << 20)	/* entries per vCPU: 64 MiB */

struct lat_log {
	uint64_t (*e)[2];
	size_t n, cap;
};

static void lat_log_add(struct lat_log *l, uint64_t done_ns, uint64_t lat_ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 65536;
		void *p = cap <= LAT_LOG_MAX ? realloc(l->e, cap * sizeof(*l->e)) : NULL;

		/* Past the cap: the histogram still has it; make bench sees the count differ. */
		if (!p)
			return;
		l->e = p;
		l->cap = cap;
	}
	l->e[l->n][0] = htole64(done_ns);
	l->e[l->n][1] = htole64(lat_ns);
	l->n++;
}

/* Append @l to $XENSIM_LATLOG as little-endian uint64 pairs (one write: domains append at once). */
static void lat_log_save(const struct lat_log *l)
{
	const char *path = getenv("XENSIM_LATLOG");
	ssize_t n;
	int fd;

	if (!path || !l->n)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_warn("XENSIM_LATLOG %s: %s", path, strerror(errno));
		return;
	}
	n = write(fd, l->e, l->n * sizeof(*l->e));
	if (n != (ssize_t)(l->n * sizeof(*l->e)))
		log_warn("XENSIM_LATLOG %s: %s", path, n < 0 ? strerror(errno) : "short write");
	close(fd);
}

struct wl_ctx {
	struct sim_domain *dom;
	struct gdrv_guest *g;
	const struct wl_spec *spec;
	struct gdrv_vcpu *v;
	struct wl_stats st[SIM_MAX_DISKS];
	/* bench: the timed phase of this vCPU's disk */
	uint64_t *lat;		/* LAT_BUCKETS counts */
	uint64_t *irq_lat;	/* the same for the interrupt path (gdrv_slot_irq_ns()) */
	uint64_t bench_ops, bench_us;
	uint64_t bench_t0_us;	/* the timed phase's start, CLOCK_MONOTONIC */
	uint64_t bench_lat_max_ns;	/* the slowest request of the timed phase, exact */
	uint64_t bench_traps, bench_trap_ns;	/* the vCPU's MMIO traps in the timed phase */
	struct lat_log *lat_log;	/* with $XENSIM_LATLOG: each request of the timed phase */
	int bench_disk;		/* -1: none */
	int ret;
	pthread_t thread;
};

static const char *kind_name(enum wl_kind k)
{
	switch (k) {
	case WL_VERIFY: return "verify";
	case WL_RANDOM: return "random";
	case WL_SEQUENTIAL: return "sequential";
	case WL_TRIM: return "trim";
	case WL_REBIND: return "rebind";
	case WL_HOSTILE: return "hostile";
	case WL_BENCH: return "bench";
	case WL_FLOOD: return "flood";
	}
	return "?";
}

static const char *const bench_rw_names[] = {
	[BENCH_RANDREAD] = "randread",
	[BENCH_RANDWRITE] = "randwrite",
	[BENCH_READ] = "read",
	[BENCH_WRITE] = "write",
};

static int parse_spec(const char *s, struct wl_spec *w, struct sbuf *rep)
{
	char *copy = strdup(s), *tok, *save = NULL;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	*w = (struct wl_spec){ .kind = WL_VERIFY, .seed = 1, .ops = 0, .bs = 0,
			       .span = 4u << 20, .rw = BENCH_RANDREAD, .time_ms = 1000,
			       .flood = { .attack = FLOOD_ALL } };
	tok = strtok_r(copy, ", \t\n", &save);
	if (!tok || !strcmp(tok, "verify"))
		w->kind = WL_VERIFY;
	else if (!strcmp(tok, "random"))
		w->kind = WL_RANDOM;
	else if (!strcmp(tok, "sequential"))
		w->kind = WL_SEQUENTIAL;
	else if (!strcmp(tok, "trim"))
		w->kind = WL_TRIM;
	else if (!strcmp(tok, "rebind"))
		w->kind = WL_REBIND;
	else if (!strcmp(tok, "hostile"))
		w->kind = WL_HOSTILE;
	else if (!strcmp(tok, "bench"))
		w->kind = WL_BENCH;
	else if (!strcmp(tok, "flood"))
		w->kind = WL_FLOOD;
	else
		goto bad;
	while ((tok = strtok_r(NULL, ", \t\n", &save))) {
		char *eq = strchr(tok, '=');
		unsigned long long v;
		char *end;

		if (!eq)
			goto bad;
		*eq = '\0';
		if (!strcmp(tok, "rw")) {
			unsigned int i;

			for (i = 0; i < ARRAY_SIZE(bench_rw_names); i++)
				if (!strcmp(eq + 1, bench_rw_names[i]))
					break;
			if (i == ARRAY_SIZE(bench_rw_names))
				goto bad;
			w->rw = (enum bench_rw)i;
			continue;
		}
		if (!strcmp(tok, "attack")) {
			if (w->kind != WL_FLOOD || flood_attack_parse(eq + 1, &w->flood.attack) < 0)
				goto bad;
			continue;
		}
		v = strtoull(eq + 1, &end, 0);
		if (*end == 'k' || *end == 'K')
			v <<= 10, end++;
		else if (*end == 'm' || *end == 'M')
			v <<= 20, end++;
		if (*end)
			goto bad;
		if (!strcmp(tok, "seed"))
			w->seed = v;
		else if (!strcmp(tok, "ops") && v <= 10000000)
			w->ops = (unsigned int)v;
		else if (!strcmp(tok, "bs") && v >= 512 && !(v % 512) &&
			 v <= (w->kind == WL_BENCH ? GUEST_BENCH_MAX_IO : GUEST_MAX_IO))
			w->bs = (uint32_t)v;
		else if (!strcmp(tok, "time") && v >= 1 && v <= 3600000)
			w->time_ms = (unsigned int)v;
		else if (!strcmp(tok, "check") && v <= 1)
			w->nocheck = !v;
		else if (!strcmp(tok, "span") && v >= 4096)
			w->span = v;
		else if (!strcmp(tok, "qd") && v >= 1 && v <= GUEST_MAX_QD)
			w->qd = (unsigned int)v;
		else if (!strcmp(tok, "heads") && w->kind == WL_FLOOD && v >= 1 &&
			 v <= GUEST_MAX_QUEUE_SIZE)
			w->flood.heads = (unsigned int)v;
		else if (!strcmp(tok, "seconds") && w->kind == WL_FLOOD && v <= 3600)
			w->flood.seconds = (unsigned int)v;
		else
			goto bad;
	}
	free(copy);
	return 0;
bad:
	sbuf_printf(rep, "bad workload '%s' (verify|random|sequential|trim|rebind|hostile|bench[,seed=N][,ops=N][,bs=N][,span=N][,qd=N][,rw=randread|randwrite|read|write][,time=MS][,check=0|1] or flood[,attack=in-junk|flush-junk|spread|bigseg|all][,heads=N][,seconds=S])\n",
		    s);
	r = -EINVAL;
	free(copy);
	return r;
}

/* xorshift64*: reproducible from the seed. */
static uint64_t rnd(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Content of a sector written in generation @gen (>= 2); generation 1 means zeroes. */
static void fill_sector(uint8_t *p, uint64_t sector, uint32_t gen)
{
	uint64_t s = sector * 0x100000001b3ull ^ ((uint64_t)gen << 32) ^ 0xcbf29ce484222325ull;
	unsigned int i;

	if (gen == 1) {
		memset(p, 0, 512);
		return;
	}
	memcpy(p, &sector, 8);
	memcpy(p + 8, &gen, 4);
	memset(p + 12, 0, 4);
	for (i = 16; i < 512; i += 8) {
		uint64_t x = rnd(&s);

		memcpy(p + i, &x, 8);
	}
}

static int check_sectors(struct gdrv_vcpu *v, const char *what, const uint8_t *buf, uint64_t sector,
			 uint32_t nsect, const uint32_t *gens)
{
	uint8_t want[512];
	uint32_t i;

	for (i = 0; i < nsect; i++) {
		if (!gens[i])
			continue;	/* unknown content (discarded, or never written) */
		fill_sector(want, sector + i, gens[i]);
		if (memcmp(want, buf + 512u * i, 512)) {
			unsigned int off = 0;

			while (off < 512 && want[off] == buf[512u * i + off])
				off++;
			return gdrv_vcpu_fail(v, "%s: sector %llu differs at byte %u (generation %u)",
					 what, (unsigned long long)(sector + i), off, gens[i]);
		}
	}
	return 0;
}

struct region {
	uint64_t start, nsect;	/* in 512-byte sectors, aligned to the block size */
	uint32_t align;		/* sectors per logical block */
};

static struct region vcpu_region(const struct gdrv_info *in, unsigned int vcpu,
				 unsigned int nvcpus, uint64_t span)
{
	struct region r = { .align = in->blk_size / 512 };
	uint64_t per = in->capacity / nvcpus;

	per -= per % (r.align * 8);
	if (per > span / 512)
		per = (span / 512) - (span / 512) % (r.align * 8);
	r.start = per * vcpu;
	r.nsect = per;
	return r;
}

/* All guests' completed requests and bytes, for --progress. */
static uint64_t progress_reqs, progress_bytes;

void workload_progress(uint64_t *ret_reqs, uint64_t *ret_bytes)
{
	*ret_reqs = __atomic_load_n(&progress_reqs, __ATOMIC_RELAXED);
	*ret_bytes = __atomic_load_n(&progress_bytes, __ATOMIC_RELAXED);
}

static void account(struct wl_ctx *c, struct gdrv_dev *d, uint32_t type, uint32_t len)
{
	struct wl_stats *st = &c->st[gdrv_dev_index(d)];

	__atomic_fetch_add(&progress_reqs, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&progress_bytes, len, __ATOMIC_RELAXED);

	switch (type) {
	case BLK_T_IN: st->reads++; st->bytes_read += len; break;
	case BLK_T_OUT: st->writes++; st->bytes_written += len; break;
	case BLK_T_FLUSH: st->flushes++; break;
	case BLK_T_DISCARD: st->discards++; break;
	case BLK_T_WRITE_ZEROES: st->zeroes++; break;
	default: break;
	}
}

static int check_status(struct wl_ctx *c, struct gdrv_dev *d, uint32_t type, uint64_t sector,
			uint32_t len, uint8_t status, uint8_t want)
{
	if (status != want) {
		struct gdrv_info in;

		gdrv_dev_get_info(d, &in);
		return gdrv_vcpu_fail(c->v, "%s: request type %u sector %llu len %u: status %u, want %u",
				 in.cfg->vdev, type, (unsigned long long)sector, len, status, want);
	}
	account(c, d, type, len);
	return 0;
}

static int do_req(struct wl_ctx *c, struct gdrv_dev *d, uint32_t type, uint64_t sector, uint32_t len,
		  const struct req_layout *lay, uint8_t want)
{
	uint8_t status;
	int r;

	r = gdrv_request(c->v, d, type, sector, len, lay, &status);
	if (r < 0)
		return r;
	return check_status(c, d, type, sector, len, status, want);
}

/* Compare what the guest wrote with the backing file itself. */
static int check_file(struct wl_ctx *c, const struct gdrv_info *in, uint64_t sector,
		      uint64_t nsect, const uint32_t *gens)
{
	uint8_t buf[512 * 16];
	uint64_t i;
	int fd = open(in->cfg->path, O_RDONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return gdrv_vcpu_fail(c->v, "%s: open backing file %s: %m", in->cfg->vdev, in->cfg->path);
	for (i = 0; i < nsect && r == 0; i += 16) {
		uint32_t n = nsect - i < 16 ? (uint32_t)(nsect - i) : 16;
		ssize_t got = pread(fd, buf, 512u * n, (off_t)((sector + i) * 512));

		if (got != (ssize_t)(512u * n)) {
			r = gdrv_vcpu_fail(c->v, "%s: short read of backing file at sector %llu",
				      in->cfg->vdev, (unsigned long long)(sector + i));
			break;
		}
		r = check_sectors(c->v, "backing file", buf, sector + i, n, gens + i);
	}
	close(fd);
	return r;
}

/* Read the whole region into the shadow check, in chunks of @bs (or random sizes). */
static int read_region(struct wl_ctx *c, struct gdrv_dev *d, const struct region *rg,
		       const uint32_t *gens, uint32_t bs, uint64_t *rng, const char *what)
{
	uint8_t *buf = gdrv_buffer(c->v, d);
	uint64_t i = 0;

	while (i < rg->nsect) {
		uint32_t n = bs ? bs / 512 : (uint32_t)(1 + rnd(rng) % (GUEST_MAX_IO / 512));
		struct req_layout lay = { .data_segs = 1 + (bs ? 0 : (unsigned int)(rnd(rng) % 4)) };

		n -= n % rg->align;
		if (!n)
			n = rg->align;
		if (n > rg->nsect - i)
			n = (uint32_t)(rg->nsect - i);
		TRY_WL(do_req(c, d, BLK_T_IN, rg->start + i, 512 * n, &lay, BLK_S_OK));
		TRY_WL(check_sectors(c->v, what, buf, rg->start + i, n, gens + i));
		i += n;
	}
	return 0;
}

static uint32_t rand_len(uint64_t *rng, const struct region *rg, uint64_t at, uint32_t max_sect)
{
	uint32_t n = (uint32_t)(1 + rnd(rng) % max_sect);

	n -= n % rg->align;
	if (!n)
		n = rg->align;
	if (n > rg->nsect - at)
		n = (uint32_t)(rg->nsect - at);
	return n;
}

static void fill(uint8_t *buf, uint64_t sector, uint32_t nsect, uint32_t gen, uint32_t *gens)
{
	uint32_t i;

	for (i = 0; i < nsect; i++) {
		fill_sector(buf + 512u * i, sector + i, gen);
		if (gens)
			gens[i] = gen;
	}
}

/* Read-only disk: what the guest reads must be the backing file's bytes. */
static int ro_verify(struct wl_ctx *c, struct gdrv_dev *d, const struct gdrv_info *in,
		     const struct region *rg)
{
	uint8_t *buf = gdrv_buffer(c->v, d), *file;
	uint64_t i;
	int fd, r = 0;

	file = malloc(GUEST_MAX_IO);
	fd = open(in->cfg->path, O_RDONLY | O_CLOEXEC);
	if (!file || fd < 0) {
		free(file);
		if (fd >= 0)
			close(fd);
		return gdrv_vcpu_fail(c->v, "%s: open %s: %m", in->cfg->vdev, in->cfg->path);
	}
	for (i = 0; i < rg->nsect && r == 0; i += GUEST_MAX_IO / 512) {
		uint32_t n = rg->nsect - i < GUEST_MAX_IO / 512 ? (uint32_t)(rg->nsect - i)
							       : GUEST_MAX_IO / 512;

		r = do_req(c, d, BLK_T_IN, rg->start + i, 512 * n, NULL, BLK_S_OK);
		if (r == 0 && pread(fd, file, 512u * n, (off_t)(512 * (rg->start + i))) !=
				      (ssize_t)(512u * n))
			r = gdrv_vcpu_fail(c->v, "%s: short read of %s", in->cfg->vdev, in->cfg->path);
		if (r == 0 && memcmp(buf, file, 512u * n))
			r = gdrv_vcpu_fail(c->v, "%s: read-only data at sector %llu differs from the file",
				      in->cfg->vdev, (unsigned long long)(rg->start + i));
	}
	close(fd);
	free(file);
	return r;
}

static int wl_verify(struct wl_ctx *c, struct gdrv_dev *d, const struct gdrv_info *in,
		     const struct region *rg, bool sequential)
{
	uint64_t rng = c->spec->seed * 0x9e3779b97f4a7c15ull + gdrv_vcpu_id(c->v) + 1;
	uint32_t gen = 2 + (uint32_t)(c->spec->seed % 0x3fffffff), bs = c->spec->bs;
	uint8_t *buf = gdrv_buffer(c->v, d);
	uint32_t *gens;
	uint64_t i;
	int r = 0;

	if (in->features & (1ull << F_BLK_RO))
		return ro_verify(c, d, in, rg);
	if (sequential && !bs)
		bs = GUEST_MAX_IO;
	gens = calloc(rg->nsect ? rg->nsect : 1, sizeof(*gens));
	if (!gens)
		return -ENOMEM;
	for (i = 0; i < rg->nsect && r == 0;) {
		uint32_t n = bs ? (uint32_t)(bs / 512 < rg->nsect - i ? bs / 512 : rg->nsect - i)
				: rand_len(&rng, rg, i, GUEST_MAX_IO / 512);
		struct req_layout lay = {
			.data_segs = bs ? 1 : 1 + (unsigned int)(rnd(&rng) % 4),
			.merge = !bs && rnd(&rng) % 4 == 0,
			.indirect = !bs && rnd(&rng) % 4 == 0,
		};

		fill(buf, rg->start + i, n, gen, gens + i);
		r = do_req(c, d, BLK_T_OUT, rg->start + i, 512 * n, &lay, BLK_S_OK);
		i += n;
	}
	if (r == 0 && (in->features & (1ull << F_BLK_FLUSH)))
		r = do_req(c, d, BLK_T_FLUSH, 0, 0, NULL, BLK_S_OK);
	if (r == 0)
		r = read_region(c, d, rg, gens, bs, &rng, in->cfg->vdev);
	if (r == 0)
		r = check_file(c, in, rg->start, rg->nsect, gens);
	free(gens);
	return r;
}

/* Sequential passes with up to qd requests in flight per vCPU (a benchmark-like stream). */
static int seq_pass(struct wl_ctx *c, struct gdrv_dev *d, const struct region *rg, uint32_t type,
		    uint32_t bs, unsigned int qd, uint32_t gen, uint32_t *gens, const char *what)
{
	uint64_t at[GUEST_MAX_QD], i = 0;
	uint32_t nsect[GUEST_MAX_QD];
	bool busy[GUEST_MAX_QD] = { false };
	unsigned int k = 0, left = 0, slot;
	uint8_t status;

	for (;;) {
		slot = k++ % qd;
		if (busy[slot]) {
			TRY_WL(gdrv_wait(c->v, d, slot, &status));
			TRY_WL(check_status(c, d, type, at[slot], 512 * nsect[slot], status, BLK_S_OK));
			if (type == BLK_T_IN)
				TRY_WL(check_sectors(c->v, what, gdrv_slot_buffer(c->v, d, slot),
						     at[slot], nsect[slot],
						     gens + (at[slot] - rg->start)));
			busy[slot] = false;
			left--;
		}
		if (i >= rg->nsect) {
			if (!left)
				return 0;
			continue;
		}
		nsect[slot] = bs / 512 < rg->nsect - i ? bs / 512 : (uint32_t)(rg->nsect - i);
		at[slot] = rg->start + i;
		if (type == BLK_T_OUT) {
			uint8_t *buf = gdrv_slot_buffer(c->v, d, slot);

			if (!buf)
				return -ENOMEM;
			fill(buf, at[slot], nsect[slot], gen, gens + i);
		}
		TRY_WL(gdrv_submit(c->v, d, slot, type, at[slot], 512 * nsect[slot], NULL));
		busy[slot] = true;
		left++;
		i += nsect[slot];
	}
}

static int wl_sequential(struct wl_ctx *c, struct gdrv_dev *d, const struct gdrv_info *in,
			 const struct region *rg)
{
	uint32_t gen = 2 + (uint32_t)(c->spec->seed % 0x3fffffff);
	uint32_t bs = c->spec->bs ? c->spec->bs : GUEST_MAX_IO;
	unsigned int qd = c->spec->qd ? c->spec->qd : 1;
	uint32_t *gens;
	int r;

	if (in->features & (1ull << F_BLK_RO))
		return ro_verify(c, d, in, rg);
	bs -= bs % (512 * rg->align);
	if (!bs)
		bs = 512 * rg->align;
	gens = calloc(rg->nsect ? rg->nsect : 1, sizeof(*gens));
	if (!gens)
		return -ENOMEM;
	r = seq_pass(c, d, rg, BLK_T_OUT, bs, qd, gen, gens, in->cfg->vdev);
	if (r == 0 && (in->features & (1ull << F_BLK_FLUSH)))
		r = do_req(c, d, BLK_T_FLUSH, 0, 0, NULL, BLK_S_OK);
	if (r == 0)
		r = seq_pass(c, d, rg, BLK_T_IN, bs, qd, gen, gens, in->cfg->vdev);
	if (r == 0)
		r = check_file(c, in, rg->start, rg->nsect, gens);
	free(gens);
	return r;
}

static int seg_req(struct wl_ctx *c, struct gdrv_dev *d, uint32_t type, uint64_t sector,
		   uint32_t nsect)
{
	uint8_t *buf = gdrv_buffer(c->v, d);
	uint64_t s = htole64(sector);
	uint32_t n = htole32(nsect), fl = 0;

	/* struct virtio_blk_discard_write_zeroes (§5.2.6): le64 sector, le32 num, le32 flags. */
	memcpy(buf, &s, 8);
	memcpy(buf + 8, &n, 4);
	memcpy(buf + 12, &fl, 4);
	return do_req(c, d, type, 0, 16, NULL, BLK_S_OK);
}

static int wl_random(struct wl_ctx *c, struct gdrv_dev *d, const struct gdrv_info *in,
		     const struct region *rg)
{
	uint64_t rng = c->spec->seed * 0x9e3779b97f4a7c15ull + gdrv_vcpu_id(c->v) * 7919 + 1;
	unsigned int ops = c->spec->ops ? c->spec->ops : 500, k;
	bool ro = in->features & (1ull << F_BLK_RO);
	uint8_t *buf = gdrv_buffer(c->v, d);
	uint32_t gen = 2 + (uint32_t)(c->spec->seed % 0x3fff) * 0x10000;
	uint32_t *gens;
	int r = 0;

	gens = calloc(rg->nsect ? rg->nsect : 1, sizeof(*gens));
	if (!gens)
		return -ENOMEM;
	for (k = 0; k < ops && r == 0; k++) {
		uint64_t at = (rnd(&rng) % rg->nsect) / rg->align * rg->align;
		uint32_t n = rand_len(&rng, rg, at, GUEST_MAX_IO / 512);
		unsigned int pick = (unsigned int)(rnd(&rng) % 100);
		struct req_layout lay = {
			.data_segs = 1 + (unsigned int)(rnd(&rng) % 5),
			.merge = rnd(&rng) % 5 == 0,
			.indirect = rnd(&rng) % 3 == 0,
		};

		if (ro || pick < 45) {
			r = do_req(c, d, BLK_T_IN, rg->start + at, 512 * n, &lay, BLK_S_OK);
			if (r == 0)
				r = check_sectors(c->v, in->cfg->vdev, buf, rg->start + at, n,
						  gens + at);
		} else if (pick < 85) {
			fill(buf, rg->start + at, n, gen, gens + at);
			gen++;
			r = do_req(c, d, BLK_T_OUT, rg->start + at, 512 * n, &lay, BLK_S_OK);
		} else if (pick < 90) {
			if (in->features & (1ull << F_BLK_FLUSH))
				r = do_req(c, d, BLK_T_FLUSH, 0, 0, &lay, BLK_S_OK);
		} else if (pick < 95) {
			if (in->max_discard_sectors) {
				if (n > in->max_discard_sectors)
					n = in->max_discard_sectors -
					    in->max_discard_sectors % rg->align;
				if (n) {
					r = seg_req(c, d, BLK_T_DISCARD, rg->start + at, n);
					memset(gens + at, 0, n * sizeof(*gens));
				}
			}
		} else if (in->max_write_zeroes_sectors) {
			if (n > in->max_write_zeroes_sectors)
				n = in->max_write_zeroes_sectors -
				    in->max_write_zeroes_sectors % rg->align;
			if (n) {
				r = seg_req(c, d, BLK_T_WRITE_ZEROES, rg->start + at, n);
				for (uint32_t i = 0; i < n; i++)
					gens[at + i] = 1;
			}
		}
	}
	if (r == 0 && !ro)
		r = read_region(c, d, rg, gens, 0, &rng, in->cfg->vdev);
	free(gens);
	return r;
}

static int wl_trim(struct wl_ctx *c, struct gdrv_dev *d, const struct gdrv_info *in,
		   const struct region *rg)
{
	uint8_t *buf = gdrv_buffer(c->v, d);
	bool ro = in->features & (1ull << F_BLK_RO);
	uint32_t gens[64], n = rg->nsect < 64 ? (uint32_t)rg->nsect : 64, i;
	uint64_t rng = c->spec->seed;
	uint8_t status;

	if (in->features & (1ull << F_BLK_FLUSH))
		TRY_WL(do_req(c, d, BLK_T_FLUSH, 0, 0, NULL, BLK_S_OK));
	/* GET_ID is optional: OK with an id string, or UNSUPP. */
	TRY_WL(gdrv_request(c->v, d, BLK_T_GET_ID, 0, 20, NULL, &status));
	if (status != BLK_S_OK && status != BLK_S_UNSUPP)
		return gdrv_vcpu_fail(c->v, "%s: GET_ID status %u", in->cfg->vdev, status);
	/* §5.2.6: an unknown request type gets VIRTIO_BLK_S_UNSUPP. */
	TRY_WL(do_req(c, d, 0x55, 0, 0, NULL, BLK_S_UNSUPP));
	if (ro || n < 48)
		return 0;
	fill(buf, rg->start, n, 7, gens);
	TRY_WL(do_req(c, d, BLK_T_OUT, rg->start, 512 * n, NULL, BLK_S_OK));
	if (in->max_write_zeroes_sectors >= 16) {
		TRY_WL(seg_req(c, d, BLK_T_WRITE_ZEROES, rg->start + 8, 16));
		for (i = 8; i < 24; i++)
			gens[i] = 1;
	}
	if (in->max_discard_sectors >= 16) {
		TRY_WL(seg_req(c, d, BLK_T_DISCARD, rg->start + 32, 16));
		for (i = 32; i < 48; i++)
			gens[i] = 0;
	}
	TRY_WL(read_region(c, d, &(struct region){ .start = rg->start, .nsect = n,
						   .align = rg->align }, gens, 0, &rng,
			   in->cfg->vdev));
	return check_file(c, in, rg->start, n, gens);
}

/*
 * The driver unbound and bound again, @ops times per disk (a driver reload,
 * or a guest kernel's kexec): reset, the whole probe, then one 4 KiB write
 * and read back (a read alone on a read-only disk).  A guest's time goes to
 * resets and probes, not to IO.
 */
static int wl_rebind(struct wl_ctx *c, struct gdrv_dev *d, const struct gdrv_info *in,
		     const struct region *rg)
{
	unsigned int ops = c->spec->ops ? c->spec->ops : 20, k;
	uint32_t gen = 2 + (uint32_t)(c->spec->seed % 0x3fff) * 0x10000, gens[8];
	bool ro = in->features & (1ull << F_BLK_RO);
	uint64_t blocks = rg->nsect / 8;

	for (k = 0; k < ops; k++) {
		uint64_t at = rg->start + (k % blocks) * 8;

		iolog_phase(c->dom, XSIM_PHASE_RESET);
		TRY_WL(gdrv_dev_reset(c->v, d));
		iolog_phase(c->dom, XSIM_PHASE_PROBE);
		TRY_WL(gdrv_dev_init(c->v, d));
		iolog_phase(c->dom, XSIM_PHASE_IO);
		if (!ro) {
			fill(gdrv_buffer(c->v, d), at, 8, gen + k, gens);
			TRY_WL(do_req(c, d, BLK_T_OUT, at, 4096, NULL, BLK_S_OK));
		}
		TRY_WL(do_req(c, d, BLK_T_IN, at, 4096, NULL, BLK_S_OK));
		if (!ro)
			TRY_WL(check_sectors(c->v, in->cfg->vdev, gdrv_buffer(c->v, d), at, 8, gens));
	}
	return 0;
}

/* ---- hostile scripts: the device must answer every access and never hang the guest ---- */

static int alive(struct wl_ctx *c, struct gdrv_dev *d, const char *after)
{
	uint64_t x = 0;
	int r = gdrv_dev_mmio(c->v, d, VM_MAGIC, 4, false, &x);

	if (r == -ESRCH)
		return r;
	if (r < 0 || x != VM_MAGIC_VALUE)
		return gdrv_vcpu_fail(c->v, "device dead after '%s': MagicValue read %s (0x%llx)", after,
				 r < 0 ? strerror(-r) : "wrong", (unsigned long long)x);
	return 0;
}

/* After an attack: reset, set up again, and prove the device works with a write + read. */
static int recover(struct wl_ctx *c, struct gdrv_dev *d, const struct gdrv_info *in,
		   const struct region *rg, const char *after)
{
	uint32_t gens[8];
	uint64_t rng = 5;
	uint8_t *buf;

	TRY_WL(alive(c, d, after));
	TRY_WL(gdrv_dev_reset(c->v, d));
	TRY_WL(gdrv_dev_init(c->v, d));
	buf = gdrv_buffer(c->v, d);
	if (in->features & (1ull << F_BLK_RO) || rg->nsect < 8)
		return do_req(c, d, BLK_T_IN, rg->start, 4096, NULL, BLK_S_OK);
	fill(buf, rg->start, 8, 3, gens);
	TRY_WL(do_req(c, d, BLK_T_OUT, rg->start, 4096, NULL, BLK_S_OK));
	return read_region(c, d, &(struct region){ .start = rg->start, .nsect = 8, .align = 1 },
			   gens, 4096, &rng, after);
}

static int poke(struct wl_ctx *c, struct gdrv_dev *d, unsigned int off, unsigned int size, bool write,
		uint64_t val, const char *what)
{
	int r = gdrv_dev_mmio(c->v, d, off, size, write, &val);

	if (r == -ETIMEDOUT)
		return gdrv_vcpu_fail(c->v, "%s: %s of %u bytes at 0x%03x: no ioreq response (hang)",
				 what, write ? "write" : "read", size, off);
	if (r == -ESRCH || r == -EFAULT)
		return r == -EFAULT ? gdrv_vcpu_fail(c->v, "%s: 0x%03x not claimed", what, off) : r;
	return 0;
}

static void outcome(struct sbuf *notes, struct gdrv_dev *d, const char *what, int r, uint8_t status)
{
	struct gdrv_info in;

	gdrv_dev_get_info(d, &in);
	if (r == 0)
		sbuf_printf(notes, "  %s hostile '%s': device set DEVICE_NEEDS_RESET\n", in.cfg->vdev, what);
	else if (r == 1 && status == BLK_S_NONE)
		sbuf_printf(notes, "  %s hostile '%s': completed without a status byte\n", in.cfg->vdev, what);
	else if (r == 1)
		sbuf_printf(notes, "  %s hostile '%s': completed with status %u\n", in.cfg->vdev, what, status);
}

static void split_desc(uint8_t *e, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(e, &a, 8);
	memcpy(e + 8, &l, 4);
	memcpy(e + 12, &f, 2);
	memcpy(e + 14, &n, 2);
}

enum attack {
	ATTACK_OUTSIDE_RAM,
	ATTACK_LOOP,
	ATTACK_HEAD_RANGE,
	ATTACK_IDX_JUMP,
	ATTACK_SHORT_HEADER,
	ATTACK_NO_STATUS,
	ATTACK_COUNT,
};

static const char *attack_name(enum attack a)
{
	switch (a) {
	case ATTACK_OUTSIDE_RAM: return "descriptor outside guest RAM";
	case ATTACK_LOOP: return "descriptor chain loop";
	case ATTACK_HEAD_RANGE: return "avail head out of range";
	case ATTACK_IDX_JUMP: return "avail idx jump > queue size";
	case ATTACK_SHORT_HEADER: return "8-byte request header";
	case ATTACK_NO_STATUS: return "no device-writable status";
	case ATTACK_COUNT: break;
	}
	return "?";
}

static int ring_attack(struct wl_ctx *c, struct gdrv_dev *d, enum attack a, struct sbuf *notes)
{
	const char *what = attack_name(a);
	struct gdrv_raw q;
	uint16_t aidx, used, head = 0, step = 1;
	uint64_t hdr, st, ok_done;
	uint8_t *hp;
	int r;

	TRY_WL(gdrv_raw_begin(c->v, d, &q));
	hdr = q.buf_gpa;
	st = q.buf_gpa + 512;
	hp = q.buf;
	memset(hp, 0, 16);	/* IN, sector 0 */
	q.buf[512] = BLK_S_NONE;
	aidx = le16toh(*(uint16_t *)(q.avail + 2));
	used = le16toh(*(uint16_t *)(q.used + 2));
	switch (a) {
	case ATTACK_OUTSIDE_RAM:
		split_desc(q.desc, gdrv_dev_dma(d, hdr), 16, 1u, 1);
		/* 0x10000: a hole below the MMIO window, never RAM on the Arm guest layout. */
		split_desc(q.desc + 16, 0x10000, 4096, 1u | 2u, 2);
		split_desc(q.desc + 32, gdrv_dev_dma(d, st), 1, 2u, 0);
		break;
	case ATTACK_LOOP:
		split_desc(q.desc, gdrv_dev_dma(d, hdr), 16, 1u, 1);
		split_desc(q.desc + 16, gdrv_dev_dma(d, hdr + 1024), 512, 1u | 2u, 1);
		break;
	case ATTACK_HEAD_RANGE:
		head = (uint16_t)(q.num + 5);
		break;
	case ATTACK_IDX_JUMP:
		split_desc(q.desc, gdrv_dev_dma(d, hdr), 16, 1u, 1);
		split_desc(q.desc + 16, gdrv_dev_dma(d, st), 1, 2u, 0);
		step = (uint16_t)(q.num + 10);
		break;
	case ATTACK_SHORT_HEADER:
		split_desc(q.desc, gdrv_dev_dma(d, hdr), 8, 1u, 1);
		split_desc(q.desc + 16, gdrv_dev_dma(d, st), 1, 2u, 0);
		break;
	case ATTACK_NO_STATUS:
		split_desc(q.desc, gdrv_dev_dma(d, hdr), 16, 1u, 1);
		split_desc(q.desc + 16, gdrv_dev_dma(d, hdr + 1024), 512, 0, 0);
		break;
	case ATTACK_COUNT:
		break;
	}
	{
		uint16_t h = htole16(head);

		memcpy(q.avail + 4 + 2u * (aidx % q.num), &h, 2);
	}
	__atomic_store_n((uint16_t *)(q.avail + 2), htole16((uint16_t)(aidx + step)),
			 __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	r = poke(c, d, VM_QUEUE_NOTIFY, 4, true, q.index, what);
	if (r == 0) {
		r = gdrv_raw_wait(c->v, d, used, sim_timeout_ms);
		if (r == -ETIMEDOUT)
			r = gdrv_vcpu_fail(c->v, "'%s': no completion and no DEVICE_NEEDS_RESET within %u ms (the guest would hang)",
				      what, sim_timeout_ms);
	}
	ok_done = r == 1 && q.buf[512] == BLK_S_OK && a != ATTACK_NO_STATUS;
	gdrv_raw_end(c->v, d);
	outcome(notes, d, what, r, q.buf[512]);
	if (ok_done)
		return gdrv_vcpu_fail(c->v, "'%s' completed with status OK", what);
	return r < 0 ? r : 0;
}

static int raw_ioreqs(struct wl_ctx *c, struct gdrv_dev *d, uint64_t base)
{
	/* A pointer into guest RAM that stays harmless: the start of RAM (our rings live higher). */
	const uint64_t ptr = XSIM_GUEST_RAM_BASE;
#define RQ(what_, addr_, data_, count_, size_, dir_, type_, ptr_, df_)                            \
	{ what_, { .addr = (addr_), .data = (data_), .count = (count_), .size = (size_),        \
		   .dir = (dir_), .type = (type_), .data_is_ptr = (ptr_), .df = (df_) } }
	const struct {
		const char *what;
		struct xsim_ioreq rq;
	} cases[] = {
		RQ("data_is_ptr read, count 4", base + VM_STATUS, ptr, 4, 4, IOREQ_READ,
		   IOREQ_TYPE_COPY, 1, 0),
		RQ("data_is_ptr write, count 2", base + VM_QUEUE_SEL, ptr, 2, 4, IOREQ_WRITE,
		   IOREQ_TYPE_COPY, 1, 0),
		RQ("count 0", base + VM_MAGIC, 0, 0, 4, IOREQ_READ, IOREQ_TYPE_COPY, 0, 0),
		RQ("count 1000 write", base + VM_QUEUE_SEL, 1, 1000, 4, IOREQ_WRITE, IOREQ_TYPE_COPY,
		   0, 0),
		RQ("size 0", base + VM_MAGIC, 0, 1, 0, IOREQ_READ, IOREQ_TYPE_COPY, 0, 0),
		RQ("size 3", base + VM_MAGIC, 0, 1, 3, IOREQ_READ, IOREQ_TYPE_COPY, 0, 0),
		RQ("size 16", base + VM_MAGIC, 0, 1, 16, IOREQ_READ, IOREQ_TYPE_COPY, 0, 0),
		RQ("port I/O type", base + VM_MAGIC, 0, 1, 4, IOREQ_READ, IOREQ_TYPE_PIO, 0, 0),
		RQ("PCI config type", base + VM_MAGIC, 0, 1, 4, IOREQ_READ, IOREQ_TYPE_PCI_CONFIG, 0,
		   0),
		RQ("invalidate type", base, 0, 1, 4, IOREQ_WRITE, IOREQ_TYPE_INVALIDATE, 0, 0),
		RQ("unknown type 0x77", base + VM_MAGIC, 0, 1, 4, IOREQ_READ, 0x77, 0, 0),
		RQ("df with count 2", base + VM_STATUS, ptr + 64, 2, 4, IOREQ_READ, IOREQ_TYPE_COPY,
		   1, 1),
	};
#undef RQ
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t data;
		int r = gdrv_vcpu_ioreq(c->v, &cases[i].rq, &data);

		if (r == -ESRCH)
			return r;
		if (r < 0)
			return gdrv_vcpu_fail(c->v, "ioreq '%s': %s", cases[i].what,
					 r == -ETIMEDOUT ? "no response (hang)" : strerror(-r));
	}
	return 0;
}

static void packed_desc(uint8_t *ring, uint16_t num, uint16_t pos, bool wrap, uint64_t addr,
			uint32_t len, uint16_t flags, bool publish)
{
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t id = htole16(0), f;
	uint8_t *e = ring + 16u * (pos % num);

	/* §2.8.1: AVAIL = the driver's wrap counter, USED = its inverse. */
	f = htole16((uint16_t)(flags | (wrap ? 1u << 7 : 1u << 15)));
	memcpy(e, &a, 8);
	memcpy(e + 8, &l, 4);
	memcpy(e + 12, &id, 2);
	if (publish)
		__atomic_store_n((uint16_t *)(e + 14), f, __ATOMIC_RELEASE);
	else
		memcpy(e + 14, &f, 2);
}

enum pattack {
	PATTACK_OUTSIDE_RAM,
	PATTACK_ENDLESS_CHAIN,
	PATTACK_SHORT_HEADER,
	PATTACK_COUNT,
};

static const char *pattack_name(enum pattack a)
{
	switch (a) {
	case PATTACK_OUTSIDE_RAM: return "packed: descriptor outside guest RAM";
	case PATTACK_ENDLESS_CHAIN: return "packed: chain through the whole ring";
	case PATTACK_SHORT_HEADER: return "packed: 8-byte request header";
	case PATTACK_COUNT: break;
	}
	return "?";
}

/* The packed ring's version of ring_attack: descriptors written at the driver's next position. */
static int packed_attack(struct wl_ctx *c, struct gdrv_dev *d, enum pattack a, struct sbuf *notes)
{
	const char *what = pattack_name(a);
	struct gdrv_raw q;
	uint64_t hdr, st;
	uint16_t p0, i;
	bool w0, ok_done;
	int r;

	TRY_WL(gdrv_raw_begin(c->v, d, &q));
	hdr = q.buf_gpa;
	st = q.buf_gpa + 512;
	memset(q.buf, 0, 16);
	q.buf[512] = BLK_S_NONE;
	p0 = q.next_avail;
	w0 = q.avail_wrap;
	/* Later descriptors first; the head's flags last make the chain available (§2.8.21). */
#define PD(k, addr, len, fl) packed_desc(q.desc, q.num, (uint16_t)(p0 + (k)), \
					 (p0 + (k)) / q.num % 2 ? !w0 : w0, addr, len, fl, false)
	switch (a) {
	case PATTACK_OUTSIDE_RAM:
		PD(1, 0x10000, 4096, 1u | 2u);
		PD(2, gdrv_dev_dma(d, st), 1, 2u);
		PD(0, gdrv_dev_dma(d, hdr), 16, 1u);
		break;
	case PATTACK_ENDLESS_CHAIN:
		for (i = 1; i < q.num; i++)
			PD(i, gdrv_dev_dma(d, hdr + 1024), 512, 1u | 2u);
		PD(0, gdrv_dev_dma(d, hdr), 16, 1u);
		break;
	case PATTACK_SHORT_HEADER:
		PD(1, gdrv_dev_dma(d, st), 1, 2u);
		PD(0, gdrv_dev_dma(d, hdr), 8, 1u);
		break;
	case PATTACK_COUNT:
		break;
	}
#undef PD
	{
		/* Publish the head: rewrite its flags with release. */
		uint8_t *e = q.desc + 16u * p0;
		uint16_t f;

		memcpy(&f, e + 14, 2);
		__atomic_store_n((uint16_t *)(e + 14), f, __ATOMIC_RELEASE);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	r = poke(c, d, VM_QUEUE_NOTIFY, 4, true, q.index, what);
	if (r == 0) {
		r = gdrv_raw_wait(c->v, d, 0, sim_timeout_ms);
		if (r == -ETIMEDOUT)
			r = gdrv_vcpu_fail(c->v, "'%s': no completion and no DEVICE_NEEDS_RESET within %u ms (the guest would hang)",
				      what, sim_timeout_ms);
	}
	ok_done = r == 1 && q.buf[512] == BLK_S_OK;
	gdrv_raw_end(c->v, d);
	outcome(notes, d, what, r, q.buf[512]);
	if (ok_done)
		return gdrv_vcpu_fail(c->v, "'%s' completed with status OK", what);
	return r < 0 ? r : 0;
}

static int wl_hostile(struct wl_ctx *c, struct gdrv_dev *d, const struct gdrv_info *in,
		      const struct region *rg, struct sbuf *notes)
{
	static const unsigned int ro_regs[] = { VM_MAGIC, VM_VERSION, VM_DEVICE_ID, VM_VENDOR_ID,
						VM_DEVICE_FEATURES, VM_QUEUE_NUM_MAX,
						VM_INTERRUPT_STATUS, VM_CONFIG_GENERATION };
	uint64_t cap_before = in->capacity, x;
	struct gdrv_info now;
	unsigned int off, i;
	uint8_t status;
	int a;

	/* 1. Every register, reserved ones included, is answered. */
	for (off = 0; off < XSIM_VIRTIO_MMIO_DEV_SIZE; off += 4)
		TRY_WL(poke(c, d, off, 4, false, 0, "register sweep"));
	for (i = 0; i < ARRAY_SIZE(ro_regs); i++)
		TRY_WL(poke(c, d, ro_regs[i], 4, true, 0xffffffffu, "write to read-only register"));
	for (off = VM_CONFIG; off < VM_CONFIG + 64; off += 4)
		TRY_WL(poke(c, d, off, 4, true, 0xdeadbeefu, "write to config space"));
	/* 2. Odd sizes and alignments. */
	TRY_WL(poke(c, d, VM_STATUS, 1, false, 0, "1-byte read"));
	TRY_WL(poke(c, d, VM_STATUS, 2, false, 0, "2-byte read"));
	TRY_WL(poke(c, d, VM_CONFIG, 8, false, 0, "8-byte read"));
	TRY_WL(poke(c, d, VM_CONFIG + 1, 4, false, 0, "unaligned read"));
	TRY_WL(poke(c, d, VM_QUEUE_NOTIFY, 1, true, 0, "1-byte notify"));
	TRY_WL(poke(c, d, VM_QUEUE_SEL, 8, true, 0, "8-byte write"));
	/* 3. Bad queue numbers. */
	TRY_WL(poke(c, d, VM_QUEUE_SEL, 4, true, 0xffff, "QueueSel 0xffff"));
	x = 1;
	if (gdrv_dev_mmio(c->v, d, VM_QUEUE_NUM_MAX, 4, false, &x) == 0 && x != 0)
		gdrv_vcpu_fail(c->v, "QueueNumMax of a missing queue reads %llu, want 0 (§4.2.2)",
			  (unsigned long long)x);
	TRY_WL(poke(c, d, VM_QUEUE_NUM, 4, true, 16, "QueueNum on a missing queue"));
	TRY_WL(poke(c, d, VM_QUEUE_READY, 4, true, 1, "QueueReady on a missing queue"));
	TRY_WL(poke(c, d, VM_QUEUE_NOTIFY, 4, true, 1000, "notify of queue 1000"));
	TRY_WL(recover(c, d, in, rg, "register pokes"));
	gdrv_dev_get_info(d, &now);
	if (now.capacity != cap_before)
		return gdrv_vcpu_fail(c->v, "capacity changed from %llu to %llu by writes to config space",
				 (unsigned long long)cap_before, (unsigned long long)now.capacity);
	/* 4. Queue size not a power of two, before DRIVER_OK. */
	TRY_WL(gdrv_dev_reset(c->v, d));
	TRY_WL(poke(c, d, VM_STATUS, 4, true, ST_ACKNOWLEDGE | ST_DRIVER, "status"));
	TRY_WL(poke(c, d, VM_QUEUE_SEL, 4, true, 0, "QueueSel"));
	TRY_WL(poke(c, d, VM_QUEUE_NUM, 4, true, 3, "QueueNum 3"));
	TRY_WL(poke(c, d, VM_QUEUE_READY, 4, true, 1, "QueueReady with QueueNum 3"));
	TRY_WL(poke(c, d, VM_STATUS, 4, true, ST_ACKNOWLEDGE | ST_DRIVER | ST_DRIVER_OK,
		    "DRIVER_OK without FEATURES_OK"));
	TRY_WL(recover(c, d, in, rg, "QueueNum 3"));
	/* 5. ioreqs Xen on Arm never sends, but a device model must still answer. */
	TRY_WL(raw_ioreqs(c, d, in->cfg->base));
	TRY_WL(recover(c, d, in, rg, "odd ioreqs"));
	/* 6. Malformed rings (split ring only). */
	if (now.packed) {
		for (a = 0; a < PATTACK_COUNT; a++) {
			TRY_WL(packed_attack(c, d, (enum pattack)a, notes));
			TRY_WL(recover(c, d, in, rg, pattack_name((enum pattack)a)));
		}
	} else {
		for (a = 0; a < ATTACK_COUNT; a++) {
			TRY_WL(ring_attack(c, d, (enum attack)a, notes));
			TRY_WL(recover(c, d, in, rg, attack_name((enum attack)a)));
		}
	}
	/* 7. Requests the device must refuse. */
	TRY_WL(do_req(c, d, BLK_T_IN, now.capacity, 512, NULL, BLK_S_IOERR));
	TRY_WL(do_req(c, d, BLK_T_IN, now.capacity - 1, 1024, NULL, BLK_S_IOERR));
	TRY_WL(do_req(c, d, BLK_T_IN, UINT64_MAX - 1, 4096, NULL, BLK_S_IOERR));
	TRY_WL(gdrv_request(c->v, d, BLK_T_IN, 0, 100, NULL, &status));
	if (status == BLK_S_OK)
		return gdrv_vcpu_fail(c->v, "read of 100 bytes (not a sector multiple) succeeded");
	if (now.features & (1ull << F_BLK_RO)) {
		memset(gdrv_buffer(c->v, d), 0xa5, 512);
		TRY_WL(do_req(c, d, BLK_T_OUT, 0, 512, NULL, BLK_S_IOERR));
		TRY_WL(ro_verify(c, d, &now, &(struct region){ .start = 0, .nsect = 8, .align = 1 }));
	}
	return recover(c, d, in, rg, "refused requests");
}

/* ---- bench: fixed-size requests for a fixed time, with latency percentiles (make bench) ---- */

static unsigned int lat_bucket(uint64_t ns)
{
	unsigned int shift, idx;

	if (ns < LAT_SUB)
		return (unsigned int)ns;
	shift = (unsigned int)(63 - __builtin_clzll(ns)) - 6;	/* ns >> shift in [64, 128) */
	idx = LAT_SUB * (shift + 1) + (unsigned int)(ns >> shift) - LAT_SUB;
	return idx < LAT_BUCKETS ? idx : LAT_BUCKETS - 1;
}

/* The middle of bucket @idx, in ns. */
static uint64_t lat_value(unsigned int idx)
{
	unsigned int shift;

	if (idx < LAT_SUB)
		return idx;
	shift = idx / LAT_SUB - 1;
	return ((uint64_t)(idx % LAT_SUB + LAT_SUB) << shift) + ((1ull << shift) >> 1);
}

/* The latency below which @pct percent of the requests completed (ns). */
static uint64_t lat_percentile(const uint64_t *h, uint64_t total, double pct)
{
	uint64_t want = (uint64_t)(pct / 100.0 * (double)total + 0.999999), seen = 0;
	unsigned int i;

	if (!want)
		want = 1;
	for (i = 0; i < LAT_BUCKETS; i++) {
		seen += h[i];
		if (seen >= want)
			return lat_value(i);
	}
	return 0;
}

/*
 * Each 512-byte sector carries a stamp: its own sector number and the pass
 * that wrote it.  Cheap enough not to slow the guest down, and a request
 * served from the wrong place, a lost write or a stale read all show.
 */
static void bench_stamp(uint8_t *buf, uint64_t sector, uint32_t nsect, uint32_t gen)
{
	uint32_t i;

	for (i = 0; i < nsect; i++) {
		uint64_t s = htole64(sector + i);
		uint32_t g = htole32(gen);

		memcpy(buf + 512u * i, &s, 8);
		memcpy(buf + 512u * i + 8, &g, 4);
	}
}

static int bench_check(struct gdrv_vcpu *v, const char *what, const uint8_t *buf, uint64_t sector,
		       uint32_t nsect, uint32_t gen)
{
	uint32_t i;

	for (i = 0; i < nsect; i++) {
		uint64_t s;
		uint32_t g;

		memcpy(&s, buf + 512u * i, 8);
		memcpy(&g, buf + 512u * i + 8, 4);
		if (le64toh(s) != sector + i || le32toh(g) != gen)
			return gdrv_vcpu_fail(v, "%s: sector %llu holds the stamp of sector %llu pass %u, want pass %u",
					      what, (unsigned long long)(sector + i),
					      (unsigned long long)le64toh(s), le32toh(g), gen);
	}
	return 0;
}

struct bench_pass {
	uint32_t type;
	uint32_t bsect;		/* sectors per request */
	uint64_t nblk;		/* requests of bsect sectors in the region */
	bool random;
	uint64_t deadline_us;	/* 0: one sequential pass over the region */
	uint32_t gen_fill, gen_run;
	uint8_t *written;	/* blocks (of the timed phase's size) written with gen_run */
	uint32_t run_bsect;
	uint64_t *lat;		/* NULL: no latency figures */
	uint64_t *irq_lat;
	bool check;		/* compare what is read with the stamps */
	uint64_t ops;
	uint64_t lat_max_ns;	/* with lat: the slowest request, exact (the histogram rounds) */
	struct lat_log *log;	/* NULL: none */
};

static uint32_t bench_gen(const struct bench_pass *p, uint64_t rel_sector)
{
	return p->written && p->written[rel_sector / p->run_bsect] ? p->gen_run : p->gen_fill;
}

/*
 * Keep qd requests in flight; like fio (io_getevents with min_nr = 1), the
 * slot of whichever request finishes first is refilled at once.
 */
static int bench_pass(struct wl_ctx *c, struct gdrv_dev *d, const struct region *rg,
		      struct bench_pass *p, unsigned int qd, uint64_t *rng, const char *what)
{
	uint64_t blk[GUEST_MAX_QD], next = 0;
	unsigned int left = 0, slot = 0;
	uint8_t status;

	for (;;) {
		uint64_t sector;
		uint32_t n;

		if (left == qd || (left && (p->deadline_us ? sim_now_us() >= p->deadline_us :
							     next >= p->nblk))) {
			TRY_WL(gdrv_wait_any(c->v, d, &slot, &status));
			sector = rg->start + blk[slot] * p->bsect;
			n = p->bsect < rg->nsect - blk[slot] * p->bsect ?
				    p->bsect : (uint32_t)(rg->nsect - blk[slot] * p->bsect);
			TRY_WL(check_status(c, d, p->type, sector, 512 * n, status, BLK_S_OK));
			if (p->type == BLK_T_IN && p->check)
				TRY_WL(bench_check(c->v, what, gdrv_slot_buffer(c->v, d, slot), sector, n,
						   bench_gen(p, blk[slot] * p->bsect)));
			if (p->lat) {
				uint64_t ns = gdrv_slot_latency_ns(c->v, d, slot);

				p->lat[lat_bucket(ns)]++;
				if (ns > p->lat_max_ns)
					p->lat_max_ns = ns;
				if (p->log)
					lat_log_add(p->log, gdrv_slot_done_ns(c->v, d, slot), ns);
			}
			if (p->irq_lat && gdrv_slot_irq_ns(c->v, d, slot))
				p->irq_lat[lat_bucket(gdrv_slot_irq_ns(c->v, d, slot))]++;
			p->ops++;
			left--;
		} else {
			slot = left;	/* still filling: slots 0..left-1 are busy */
		}
		if (p->deadline_us ? sim_now_us() >= p->deadline_us : next >= p->nblk) {
			if (!left)
				return 0;
			continue;
		}
		blk[slot] = p->random ? rnd(rng) % p->nblk : next++ % p->nblk;
		sector = rg->start + blk[slot] * p->bsect;
		n = p->bsect < rg->nsect - blk[slot] * p->bsect ?
			    p->bsect : (uint32_t)(rg->nsect - blk[slot] * p->bsect);
		if (p->type == BLK_T_OUT) {
			uint8_t *buf = gdrv_slot_buffer(c->v, d, slot);

			if (!buf)
				return -ENOMEM;
			if (p->written)
				p->written[blk[slot]] = 1;
			bench_stamp(buf, sector, n, p->written ? p->gen_run : p->gen_fill);
		}
		TRY_WL(gdrv_submit(c->v, d, slot, p->type, sector, 512 * n, NULL));
		left++;
	}
}

/* After the run: every sector of the region in the backing file has the stamp of its last write. */
static int bench_check_file(struct wl_ctx *c, const struct gdrv_info *in, const struct region *rg,
			    const struct bench_pass *p, uint64_t nsect)
{
	uint8_t *buf = malloc(GUEST_MAX_IO);
	int fd = open(in->cfg->path, O_RDONLY | O_CLOEXEC);
	uint64_t i, j;
	int r = 0;

	if (!buf || fd < 0) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return gdrv_vcpu_fail(c->v, "%s: open backing file %s: %m", in->cfg->vdev, in->cfg->path);
	}
	for (i = 0; i < nsect && r == 0; i += GUEST_MAX_IO / 512) {
		uint32_t n = nsect - i < GUEST_MAX_IO / 512 ? (uint32_t)(nsect - i) : GUEST_MAX_IO / 512;

		if (pread(fd, buf, 512u * n, (off_t)(512 * (rg->start + i))) != (ssize_t)(512u * n)) {
			r = gdrv_vcpu_fail(c->v, "%s: short read of backing file at sector %llu",
					   in->cfg->vdev, (unsigned long long)(rg->start + i));
			break;
		}
		for (j = 0; j < n && r == 0; j++)
			r = bench_check(c->v, "backing file", buf + 512 * j, rg->start + i + j, 1,
					bench_gen(p, i + j));
	}
	close(fd);
	free(buf);
	return r;
}

/*
 * Untimed: stamp the whole region (large sequential writes).  Timed: for
 * time_ms, bs-sized requests at qd in flight, random or sequential (wrapping),
 * reads checked against the stamps; then the file itself is checked.
 */
static int wl_bench(struct wl_ctx *c, struct gdrv_dev *d, const struct gdrv_info *in,
		    const struct region *rg)
{
	const struct wl_spec *sp = c->spec;
	uint32_t bsect = (sp->bs ? sp->bs : 4096) / 512;
	unsigned int qd = sp->qd ? sp->qd : 1;
	bool write = sp->rw == BENCH_RANDWRITE || sp->rw == BENCH_WRITE;
	uint64_t rng = sp->seed * 0x9e3779b97f4a7c15ull + gdrv_vcpu_id(c->v) * 104729 + 1, t0;
	uint64_t traps0, trap_ns0;
	struct bench_pass fill, run;
	int r;

	if (in->features & (1ull << F_BLK_RO))
		return gdrv_vcpu_fail(c->v, "%s: bench needs a writable disk", in->cfg->vdev);
	bsect -= bsect % rg->align;
	if (!bsect || rg->nsect < bsect)
		return gdrv_vcpu_fail(c->v, "%s: bench: region of %llu sectors, requests of %u",
				      in->cfg->vdev, (unsigned long long)rg->nsect, bsect);
	run = (struct bench_pass){
		.type = write ? BLK_T_OUT : BLK_T_IN,
		.bsect = bsect,
		.nblk = rg->nsect / bsect,
		.random = sp->rw == BENCH_RANDREAD || sp->rw == BENCH_RANDWRITE,
		.gen_fill = 2 + (uint32_t)(sp->seed % 0x3fffffff) * 2,
		.run_bsect = bsect,
		.lat = c->lat,
		.irq_lat = c->irq_lat,
		.log = c->lat_log,
		.check = !sp->nocheck,
	};
	run.gen_run = run.gen_fill + 1;
	run.written = calloc(run.nblk, 1);
	if (!run.written)
		return -ENOMEM;
	fill = run;
	fill.type = BLK_T_OUT;
	fill.bsect = GUEST_MAX_IO / 512 - (GUEST_MAX_IO / 512) % rg->align;
	fill.nblk = (run.nblk * bsect + fill.bsect - 1) / fill.bsect;
	fill.random = false;
	fill.written = NULL;
	fill.lat = NULL;
	fill.irq_lat = NULL;
	fill.log = NULL;
	r = bench_pass(c, d, &(struct region){ .start = rg->start, .nsect = run.nblk * bsect,
					       .align = rg->align }, &fill, qd, &rng, in->cfg->vdev);
	if (r < 0)
		goto out;
	gdrv_vcpu_traps(c->v, &traps0, &trap_ns0);
	t0 = sim_now_us();
	run.deadline_us = t0 + (uint64_t)sp->time_ms * 1000;
	r = bench_pass(c, d, rg, &run, qd, &rng, in->cfg->vdev);
	c->bench_t0_us = t0;
	c->bench_us = sim_now_us() - t0;
	c->bench_ops = run.ops;
	c->bench_lat_max_ns = run.lat_max_ns;
	gdrv_vcpu_traps(c->v, &c->bench_traps, &c->bench_trap_ns);
	c->bench_traps -= traps0;
	c->bench_trap_ns -= trap_ns0;
	if (r == 0 && write && (in->features & (1ull << F_BLK_FLUSH)))
		r = do_req(c, d, BLK_T_FLUSH, 0, 0, NULL, BLK_S_OK);
	if (r == 0 && run.check)
		r = bench_check_file(c, in, rg, &run, run.nblk * bsect);
out:
	free(run.written);
	return r;
}

/* A bench vCPU's latency histograms, and its request log with $XENSIM_LATLOG. */
static int wl_ctx_alloc_bench(struct wl_ctx *c)
{
	c->lat = calloc(LAT_BUCKETS, sizeof(*c->lat));
	c->irq_lat = calloc(LAT_BUCKETS, sizeof(*c->irq_lat));
	if (!c->lat || !c->irq_lat)
		return -ENOMEM;
	if (getenv("XENSIM_LATLOG") && !(c->lat_log = calloc(1, sizeof(*c->lat_log))))
		return -ENOMEM;
	return 0;
}

struct wl_run {
	struct wl_ctx *ctx;
	struct sbuf *notes;
	pthread_mutex_t *notes_lock;
};

static void *wl_thread(void *arg)
{
	struct wl_run *run = arg;
	struct wl_ctx *c = run->ctx;
	struct gdrv_guest *g = c->g;
	unsigned int i;

	/*
	 * Hostile scripts and rebind run on vCPU 0 alone: it resets and sets up
	 * devices under the others' feet.
	 */
	if ((c->spec->kind == WL_HOSTILE || c->spec->kind == WL_FLOOD ||
	     c->spec->kind == WL_REBIND) && gdrv_vcpu_id(c->v) != 0)
		return NULL;
	for (i = 0; i < gdrv_guest_ndevs(g) && c->ret == 0; i++) {
		unsigned int vcpu = gdrv_vcpu_id(c->v), nv = gdrv_guest_nvcpus(g);
		unsigned int nd = gdrv_guest_ndevs(g);
		struct gdrv_dev *d = gdrv_guest_dev(g, i);
		struct gdrv_info in;
		struct region rg;
		struct sbuf notes = { 0 };

		if (!gdrv_dev_ready(d))
			continue;
		/* The flood attacks the guest's first disk. */
		if (c->spec->kind == WL_FLOOD && i != 0)
			break;
		gdrv_dev_get_info(d, &in);
		if (c->spec->kind == WL_BENCH) {
			/* vCPU v drives disk v % ndisks alone (with the other vCPUs of that disk). */
			if (vcpu % nd != i)
				continue;
			rg = vcpu_region(&in, vcpu / nd, (nv - i + nd - 1) / nd, c->spec->span);
			c->bench_disk = (int)i;
		} else {
			rg = vcpu_region(&in, vcpu, nv, c->spec->span);
		}
		if (rg.nsect < rg.align * 8 && c->spec->kind != WL_HOSTILE &&
		    c->spec->kind != WL_FLOOD)
			continue;
		switch (c->spec->kind) {
		case WL_VERIFY: c->ret = wl_verify(c, d, &in, &rg, false); break;
		case WL_SEQUENTIAL: c->ret = wl_sequential(c, d, &in, &rg); break;
		case WL_RANDOM: c->ret = wl_random(c, d, &in, &rg); break;
		case WL_TRIM: c->ret = wl_trim(c, d, &in, &rg); break;
		case WL_REBIND: c->ret = wl_rebind(c, d, &in, &rg); break;
		case WL_HOSTILE: c->ret = wl_hostile(c, d, &in, &rg, &notes); break;
		case WL_BENCH: c->ret = wl_bench(c, d, &in, &rg); break;
		case WL_FLOOD: c->ret = flood_run(g, c->v, d, &c->spec->flood, &notes); break;
		}
		if (notes.s) {
			pthread_mutex_lock(run->notes_lock);
			sbuf_printf(run->notes, "%s", notes.s);
			pthread_mutex_unlock(run->notes_lock);
			free(notes.s);
		}
	}
	return NULL;
}

/* One line per disk, key=value, for scripts (make bench): the timed phase of all its vCPUs. */
static void bench_report(const struct sim_domain *dom, const struct wl_spec *spec,
			 const struct wl_ctx *ctx, unsigned int nv, unsigned int nd, struct sbuf *rep)
{
	uint64_t *h = calloc(2 * LAT_BUCKETS, sizeof(*h)), *hi = h + LAT_BUCKETS;
	unsigned int i, j, k, nvd;

	if (!h)
		return;
	for (i = 0; i < nd; i++) {
		uint64_t ops = 0, us = 0, slept = 0, traps = 0, trap_ns = 0, vcpu_us = 0, max_ns = 0;
		uint64_t start_us = UINT64_MAX, end_us = 0;
		double sum_ns = 0;

		memset(h, 0, 2 * LAT_BUCKETS * sizeof(*h));
		for (j = 0, nvd = 0; j < nv; j++) {
			if (ctx[j].bench_disk != (int)i)
				continue;
			nvd++;
			ops += ctx[j].bench_ops;
			traps += ctx[j].bench_traps;
			trap_ns += ctx[j].bench_trap_ns;
			vcpu_us += ctx[j].bench_us;
			if (ctx[j].bench_us > us)
				us = ctx[j].bench_us;
			if (ctx[j].bench_t0_us < start_us)
				start_us = ctx[j].bench_t0_us;
			if (ctx[j].bench_t0_us + ctx[j].bench_us > end_us)
				end_us = ctx[j].bench_t0_us + ctx[j].bench_us;
			if (ctx[j].bench_lat_max_ns > max_ns)
				max_ns = ctx[j].bench_lat_max_ns;
			for (k = 0; k < LAT_BUCKETS; k++) {
				h[k] += ctx[j].lat[k];
				sum_ns += (double)ctx[j].lat[k] * (double)lat_value(k);
				hi[k] += ctx[j].irq_lat[k];
				slept += ctx[j].irq_lat[k];
			}
		}
		if (!nvd || !ops || !us)
			continue;
		sbuf_printf(rep,
			    "bench dom=%u disk=%s rw=%s bs=%u qd=%u vcpus=%u ops=%llu seconds=%.3f iops=%.0f mbps=%.1f lat_p50_us=%.2f lat_p99_us=%.2f lat_max_us=%.2f lat_mean_us=%.2f irq_share=%.3f irq_p50_us=%.2f traps_per_op=%.2f trap_mean_us=%.2f trap_share=%.3f start_us=%llu end_us=%llu\n",
			    dom->domid, dom->cfg.disks[i].vdev, bench_rw_names[spec->rw],
			    spec->bs ? spec->bs : 4096, spec->qd ? spec->qd : 1, nvd,
			    (unsigned long long)ops, us / 1e6, ops / (us / 1e6),
			    ops * (double)(spec->bs ? spec->bs : 4096) / us,
			    lat_percentile(h, ops, 50) / 1e3, lat_percentile(h, ops, 99) / 1e3,
			    max_ns / 1e3, sum_ns / (double)ops / 1e3, (double)slept / (double)ops,
			    slept ? lat_percentile(hi, slept, 50) / 1e3 : 0.0,
			    (double)traps / (double)ops, traps ? trap_ns / 1e3 / (double)traps : 0.0,
			    vcpu_us ? trap_ns / 1e3 / (double)vcpu_us : 0.0,
			    (unsigned long long)start_us, (unsigned long long)end_us);
	}
	free(h);
}

int workload_run(struct sim_domain *dom, const char *spec_str, struct sbuf *rep)
{
	pthread_mutex_t notes_lock = PTHREAD_MUTEX_INITIALIZER;
	struct sbuf notes = { 0 };
	struct wl_ctx *ctx = NULL;
	struct wl_run *runs = NULL;
	struct wl_spec spec;
	struct gdrv_guest *g = NULL;
	unsigned int i, j, nv = dom->vcpus;
	uint64_t t0, el;
	int r, ret = 0;
	bool died = false, hang = false;

	r = parse_spec(spec_str, &spec, rep);
	if (r < 0)
		return r;
	r = gdrv_guest_new(dom, &g);
	if (r < 0)
		return r;
	iolog_begin(dom);
	if (spec.kind == WL_BENCH && spec.bs > GUEST_MAX_IO) {
		ret = gdrv_guest_set_max_io(g, (spec.bs + XSIM_PAGE_SIZE - 1) & ~(XSIM_PAGE_SIZE - 1));
		if (ret < 0)
			goto out_guest;
	}
	ctx = calloc(nv, sizeof(*ctx));
	runs = calloc(nv, sizeof(*runs));
	if (!ctx || !runs) {
		ret = -ENOMEM;
		goto out;
	}
	t0 = sim_now_us();
	/* vCPU 0 probes the disks, as the guest kernel would at boot. */
	iolog_phase(dom, XSIM_PHASE_PROBE);
	for (i = 0; i < gdrv_guest_ndevs(g); i++) {
		r = gdrv_dev_init(gdrv_guest_vcpu(g, 0), gdrv_guest_dev(g, i));
		if (r == -ESRCH) {
			died = true;
			break;
		}
		if (r < 0) {
			sbuf_printf(rep, "dom %u %s: setup failed: %s\n", dom->domid,
				    dom->cfg.disks[i].vdev,
				    gdrv_vcpu_error(gdrv_guest_vcpu(g, 0)) ? gdrv_vcpu_error(gdrv_guest_vcpu(g, 0))
								  : strerror(-r));
			ret = r == -ETIMEDOUT ? r : -EIO;
			goto out;
		}
	}
	/* Every vCPU's buffers before any starts: a failure then stops no running thread. */
	for (i = 0; i < nv && !died; i++) {
		ctx[i] = (struct wl_ctx){ .dom = dom, .g = g, .spec = &spec, .v = gdrv_guest_vcpu(g, i),
					  .bench_disk = -1 };
		if (spec.kind == WL_BENCH && wl_ctx_alloc_bench(&ctx[i]) < 0) {
			ret = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < nv && !died; i++) {
		if (i == 0)
			iolog_phase(dom, XSIM_PHASE_IO);
		runs[i] = (struct wl_run){ .ctx = &ctx[i], .notes = &notes,
					   .notes_lock = &notes_lock };
		if (pthread_create(&ctx[i].thread, NULL, wl_thread, &runs[i]) != 0) {
			ctx[i].ret = -EAGAIN;
			ctx[i].thread = 0;
		}
	}
	for (i = 0; i < nv && !died; i++)
		if (ctx[i].thread)
			pthread_join(ctx[i].thread, NULL);
	el = sim_now_us() - t0;
	/* Leave the devices reset, so the backend stops using this run's rings. */
	iolog_phase(dom, XSIM_PHASE_RESET);
	for (i = 0; i < gdrv_guest_ndevs(g) && !died; i++)
		if (gdrv_dev_ready(gdrv_guest_dev(g, i)) &&
		    gdrv_dev_reset(gdrv_guest_vcpu(g, 0), gdrv_guest_dev(g, i)) == -ESRCH)
			died = true;
	for (i = 0; i < gdrv_guest_ndevs(g); i++) {
		struct wl_stats t = { 0 };

		for (j = 0; j < nv; j++) {
			t.reads += ctx[j].st[i].reads;
			t.writes += ctx[j].st[i].writes;
			t.flushes += ctx[j].st[i].flushes;
			t.discards += ctx[j].st[i].discards;
			t.zeroes += ctx[j].st[i].zeroes;
			t.bytes_read += ctx[j].st[i].bytes_read;
			t.bytes_written += ctx[j].st[i].bytes_written;
		}
		sbuf_printf(rep,
			    "dom %u %s (%u): %s seed %llu, %u vCPUs: %llu reads (%.1f MiB), %llu writes (%.1f MiB), %llu flushes, %llu discards, %llu write-zeroes in %.3f s (%.1f MiB/s)\n",
			    dom->domid, dom->cfg.disks[i].vdev, dom->cfg.disks[i].devid,
			    kind_name(spec.kind), (unsigned long long)spec.seed, nv,
			    (unsigned long long)t.reads, t.bytes_read / 1048576.0,
			    (unsigned long long)t.writes, t.bytes_written / 1048576.0,
			    (unsigned long long)t.flushes, (unsigned long long)t.discards,
			    (unsigned long long)t.zeroes, el / 1e6,
			    (t.bytes_read + t.bytes_written) / 1048576.0 / (el ? el / 1e6 : 1));
		{
			struct gdrv_info in;

			gdrv_dev_get_info(gdrv_guest_dev(g, i), &in);
			sbuf_printf(rep, "  %s: %llu ioreqs, %llu notifies, %llu interrupts, %u queues, %s ring%s%s\n",
				    dom->cfg.disks[i].vdev, (unsigned long long)in.mmio,
				    (unsigned long long)in.notifies, (unsigned long long)in.interrupts,
				    in.nqueues, in.packed ? "packed" : "split",
				    in.features & (1ull << F_EVENT_IDX) ? ", event idx" : "",
				    in.grants ? ", grants" : "");
			if (in.config_changes)
				sbuf_printf(rep, "  %s: %llu configuration changes, capacity now %llu sectors\n",
					    dom->cfg.disks[i].vdev,
					    (unsigned long long)in.config_changes,
					    (unsigned long long)in.capacity);
		}
	}
	if (spec.kind == WL_BENCH)
		bench_report(dom, &spec, ctx, nv, gdrv_guest_ndevs(g), rep);
	if (notes.s)
		sbuf_printf(rep, "%s", notes.s);
	for (j = 0; j < nv; j++) {
		if (ctx[j].ret == -ESRCH)
			died = true;
		else if (ctx[j].ret == -ETIMEDOUT)
			hang = true;
		if (ctx[j].ret < 0 || gdrv_vcpu_error(gdrv_guest_vcpu(g, j))) {
			if (ctx[j].ret != -ESRCH)
				sbuf_printf(rep, "dom %u FAILED: %s\n", dom->domid,
					    gdrv_vcpu_error(gdrv_guest_vcpu(g, j)) ? gdrv_vcpu_error(gdrv_guest_vcpu(g, j))
									  : strerror(-ctx[j].ret));
			if (!ret && ctx[j].ret != -ESRCH)
				ret = -EIO;
		}
	}
	if (hang)
		ret = -ETIMEDOUT;
	if (died) {
		sbuf_printf(rep, "dom %u: destroyed during the workload\n", dom->domid);
		if (!ret)
			ret = -ESRCH;
	}
out:
	for (i = 0; ctx && i < nv; i++) {
		free(ctx[i].lat);
		free(ctx[i].irq_lat);
		if (ctx[i].lat_log) {
			lat_log_save(ctx[i].lat_log);
			free(ctx[i].lat_log->e);
			free(ctx[i].lat_log);
		}
	}
	free(notes.s);
	free(runs);
	free(ctx);
out_guest:
	iolog_phase(dom, XSIM_PHASE_IDLE);
	gdrv_guest_free(g);
	return ret;
}
