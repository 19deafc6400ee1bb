// SPDX-License-Identifier: GPL-2.0-only
/*
 * vu-load: a vhost-user-blk front end that drives a back end (vblkd, qemu-storage-daemon) with
 * fio-like workloads over one split ring, checks every byte, and reconnects like QEMU's reconnect=.
 *
 * Written from QEMU's docs/interop/vhost-user.rst and the virtio 1.2 spec (§2.7, §5.2); it shares
 * no code with src/virtio or src/vhost (ring and request layouts come from the kernel's UAPI headers).
 *
 * usage: vu-load --socket=SOCK [--rw=randread|randwrite|read|write] [--bs=4096] [--qd=1]
 *                [--time=SECONDS] [--span=BYTES] [--poll] [--no-inflight] [--cpu-pid=PID]
 *                [--reconnect=SECONDS] [--disconnect-every=MS] [--file=PATH] [--no-stamp]
 * SIGUSR1 ends the timed phase early.  Prints one JSON object on stdout; exit 0 if every request completed exactly once with the right
 * data, 1 on a wrong byte, a lost, repeated or failed request or a protocol error, 2 on usage.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- the vhost-user wire format (vhost-user.rst), spelled out here on purpose ---- */

enum {
	VU_GET_FEATURES = 1, VU_SET_FEATURES = 2, VU_SET_OWNER = 3, VU_SET_MEM_TABLE = 5,
	VU_SET_VRING_NUM = 8, VU_SET_VRING_ADDR = 9, VU_SET_VRING_BASE = 10,
	VU_SET_VRING_KICK = 12, VU_SET_VRING_CALL = 13, VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16, VU_SET_VRING_ENABLE = 18, VU_GET_CONFIG = 24,
	VU_GET_INFLIGHT_FD = 31, VU_SET_INFLIGHT_FD = 32,
};

#define VU_VERSION 0x1u
#define VU_REPLY (1u << 2)
#define VU_F_PROTOCOL_FEATURES 30
#define VU_PROTO_CONFIG 9
#define VU_PROTO_INFLIGHT 12

struct vu_hdr {
	uint32_t request, flags, size;
} __attribute__((packed));

struct vu_msg {
	struct vu_hdr h;
	union {
		uint64_t u64;
		struct { uint32_t index, num; } state;
		struct { uint32_t index, flags; uint64_t desc, used, avail, log; } addr;
		struct { uint32_t n, pad; uint64_t gpa, size, ua, off; } mem;
		struct { uint32_t offset, size, flags; uint8_t data[256]; } cfg;
		struct { uint64_t size, off; uint16_t nq, qsize; uint32_t pad; } infl;
		uint8_t b[512];
	};
} __attribute__((packed));

/* ---- the front end's state ---- */

#define QSIZE 256u
#define SECTOR 512u
#define RING_BYTES (4 * 4096u)	/* desc, avail, used, then request headers and status bytes */
#define HDR_STRIDE 32u

enum op { OP_READ, OP_WRITE };

struct slot {
	bool busy;
	enum op op;
	uint64_t block;
	uint32_t gen;			/* what a write puts there */
	uint64_t t0;			/* submitted, ns */
	bool timed;
};

struct gen {
	/* options */
	const char *socket, *file;
	bool rnd, write, poll, inflight_ok, stamp;
	unsigned int bs, qd;
	unsigned int nslots;		/* the timed phase uses qd of them; stamping and checking all */
	double seconds, reconnect_s;
	uint64_t span;
	unsigned int disconnect_ms;
	int cpu_pid;
	/* the connection */
	int sock, kick, call, infl_fd;
	uint64_t features, protocol, infl_size, capacity;
	uint32_t seg_size;
	unsigned int reconnects;
	uint64_t orphaned;		/* requests in flight when a back end went away, all told */
	/* memory: one memfd, shared, GPA = offset */
	int memfd;
	uint8_t *mem;
	size_t mem_size;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	unsigned int dps;		/* descriptors per request */
	uint16_t avail_idx, last_used, kicked_idx;
	struct slot *slots;
	unsigned int busy;
	/* the data's expected state */
	uint64_t nblocks, next_seq;
	uint32_t *gens;			/* 0: unknown, else what was last written */
	uint8_t *inuse;
	uint32_t gen_now, seed;
	uint64_t rng;
	/* measurements */
	uint32_t *lat;
	size_t nlat, lat_cap;
	uint64_t ops, bytes;
	uint64_t last_drop;		/* --disconnect-every: when the front end last left */
};

/* SIGUSR1: the timed phase ends now (a test that decides when it has seen enough). */
static volatile sig_atomic_t stop_now;

static void on_usr1(int sig)
{
	stop_now = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vu-load: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* ---- messages ---- */

static int vu_send(struct gen *g, uint32_t req, const void *payload, uint32_t size, const int *fds,
		   unsigned int nfds)
{
	struct vu_msg m = { .h = { .request = req, .flags = VU_VERSION, .size = size } };
	char cbuf[CMSG_SPACE(8 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m.h) + size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (size)
		memcpy(m.b, payload, size);
	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	return sendmsg(g->sock, &mh, MSG_NOSIGNAL) == (ssize_t)iov.iov_len ? 0 : -1;
}

/* A reply to @req into @rep; an fd that came with it into *@ret_fd (if not NULL). */
static int vu_recv(struct gen *g, uint32_t req, struct vu_msg *rep, int *ret_fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = rep, .iov_len = sizeof(rep->h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;

	if (recvmsg(g->sock, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC) != (ssize_t)sizeof(rep->h))
		return -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (ret_fd)
		*ret_fd = -1;
	if (cm && cm->cmsg_type == SCM_RIGHTS && ret_fd)
		memcpy(ret_fd, CMSG_DATA(cm), sizeof(int));
	if (rep->h.request != req || !(rep->h.flags & VU_REPLY) || rep->h.size > sizeof(rep->b))
		return -1;
	if (rep->h.size && recv(g->sock, rep->b, rep->h.size, MSG_WAITALL) != (ssize_t)rep->h.size)
		return -1;
	return 0;
}

static int vu_get_u64(struct gen *g, uint32_t req, uint64_t *ret)
{
	struct vu_msg rep;

	if (vu_send(g, req, NULL, 0, NULL, 0) < 0 || vu_recv(g, req, &rep, NULL) < 0 ||
	    rep.h.size != 8)
		return -1;
	*ret = rep.u64;
	return 0;
}

static int vu_set_u64(struct gen *g, uint32_t req, uint64_t v)
{
	return vu_send(g, req, &v, sizeof(v), NULL, 0);
}

static int vu_state(struct gen *g, uint32_t req, uint32_t num)
{
	struct { uint32_t index, num; } s = { 0, num };

	return vu_send(g, req, &s, sizeof(s), NULL, 0);
}

/* ---- memory and the ring ---- */

static size_t slot_stride(const struct gen *g)
{
	return ((size_t)g->bs + 4095) & ~(size_t)4095;
}

static uint8_t *slot_data(const struct gen *g, unsigned int s)
{
	return g->mem + RING_BYTES + (size_t)s * slot_stride(g);
}

static void mem_setup(struct gen *g)
{
	g->nslots = g->qd < 16 ? 16 : g->qd;
	g->mem_size = RING_BYTES + (size_t)g->nslots * slot_stride(g);
	g->memfd = memfd_create("vu-load", MFD_CLOEXEC);
	if (g->memfd < 0 || ftruncate(g->memfd, (off_t)g->mem_size) < 0)
		die("memfd: %s", strerror(errno));
	g->mem = mmap(NULL, g->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
	if (g->mem == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	g->desc = (void *)g->mem;
	g->avail = (void *)(g->mem + 4096);
	g->used = (void *)(g->mem + 8192);
	g->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	g->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->kick < 0 || g->call < 0)
		die("eventfd: %s", strerror(errno));
}

/* The ring's driver-written event index: used_event, after the available ring (§2.7.10). */
static volatile uint16_t *used_event(struct gen *g)
{
	return &g->avail->ring[QSIZE];
}

static volatile uint16_t *avail_event(struct gen *g)
{
	return (volatile uint16_t *)&g->used->ring[QSIZE];
}

/* ---- negotiation ---- */

static int vu_features(struct gen *g)
{
	/*
	 * FLUSH as Linux's driver takes it: without it the device must write
	 * through (§5.2.5: writeback only if FLUSH is negotiated), a sync per write.
	 */
	uint64_t f, want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_EVENT_IDX) |
			   (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VU_F_PROTOCOL_FEATURES);
	uint64_t p, pwant = (1ull << VU_PROTO_CONFIG) | (g->inflight_ok ? 1ull << VU_PROTO_INFLIGHT : 0);

	if (vu_get_u64(g, VU_GET_FEATURES, &f) < 0)
		return -1;
	if (!(f & (1ull << VIRTIO_F_VERSION_1)) || !(f & (1ull << VU_F_PROTOCOL_FEATURES)))
		die("the back end offers no VERSION_1 or PROTOCOL_FEATURES (0x%" PRIx64 ")", f);
	if (g->features && (f & want) != g->features)
		die("the back end's features changed across a reconnect");
	g->features = f & want;
	if (vu_get_u64(g, VU_GET_PROTOCOL_FEATURES, &p) < 0 ||
	    vu_set_u64(g, VU_SET_PROTOCOL_FEATURES, p & pwant) < 0)
		return -1;
	if (!(p & (1ull << VU_PROTO_CONFIG)))
		die("the back end offers no CONFIG protocol feature");
	g->protocol = p & pwant;
	if (vu_send(g, VU_SET_OWNER, NULL, 0, NULL, 0) < 0 ||
	    vu_set_u64(g, VU_SET_FEATURES, g->features) < 0)
		return -1;
	return 0;
}

/* virtio_blk_config (§5.2.4): capacity, size_max, seg_max. */
static int vu_config(struct gen *g)
{
	struct vu_msg rep, m = { 0 };
	uint32_t size_max, seg_max;

	m.cfg.size = 16;
	if (vu_send(g, VU_GET_CONFIG, &m.cfg, 12 + m.cfg.size, NULL, 0) < 0 ||
	    vu_recv(g, VU_GET_CONFIG, &rep, NULL) < 0 || rep.h.size < 12 + 16)
		return -1;
	memcpy(&g->capacity, rep.cfg.data, 8);
	memcpy(&size_max, rep.cfg.data + 8, 4);
	memcpy(&seg_max, rep.cfg.data + 12, 4);
	/* virtio-blk's config space is little-endian (§5.2.4). */
	g->capacity = le64toh(g->capacity) * SECTOR;
	size_max = le32toh(size_max);
	seg_max = le32toh(seg_max);
	/* Data in pieces of at most size_max (a page multiple), within seg_max and the ring. */
	g->seg_size = size_max >= 4096 && size_max < g->bs ? size_max & ~4095u : g->bs;
	g->dps = 2 + (g->bs + g->seg_size - 1) / g->seg_size;
	if (seg_max && g->dps - 2 > seg_max)
		die("%u-byte requests need %u segments, the back end takes %u", g->bs, g->dps - 2,
		    seg_max);
	while (g->nslots > g->qd && g->dps * g->nslots > QSIZE)
		g->nslots--;
	if (g->dps * g->qd > QSIZE)
		die("queue depth %u of %u-byte requests does not fit a %u-entry ring", g->qd, g->bs,
		    QSIZE);
	return 0;
}

/* INFLIGHT_SHMFD: ask for the region once, hand it back on every connection (as QEMU does). */
static int vu_inflight(struct gen *g)
{
	struct vu_msg rep;
	struct { uint64_t size, off; uint16_t nq, qsize; uint32_t pad; } in = { 0, 0, 1, QSIZE, 0 };

	if (!(g->protocol & (1ull << VU_PROTO_INFLIGHT)))
		return 0;
	if (g->infl_fd < 0) {
		if (vu_send(g, VU_GET_INFLIGHT_FD, &in, sizeof(in), NULL, 0) < 0 ||
		    vu_recv(g, VU_GET_INFLIGHT_FD, &rep, &g->infl_fd) < 0 || g->infl_fd < 0)
			return -1;
		g->infl_size = rep.infl.size;
	}
	in.size = g->infl_size;
	return vu_send(g, VU_SET_INFLIGHT_FD, &in, sizeof(in), &g->infl_fd, 1);
}

static int vu_rings(struct gen *g)
{
	struct { uint32_t n, pad; uint64_t gpa, size, ua, off; } mt = {
		1, 0, 0, g->mem_size, (uintptr_t)g->mem, 0 };
	struct { uint32_t index, flags; uint64_t desc, used, avail, log; } a = {
		0, 0, (uintptr_t)g->desc, (uintptr_t)g->used, (uintptr_t)g->avail, 0 };
	uint64_t idx = 0;
	uint16_t used = le16toh(__atomic_load_n(&g->used->idx, __ATOMIC_ACQUIRE));

	if (vu_send(g, VU_SET_MEM_TABLE, &mt, sizeof(mt), &g->memfd, 1) < 0 ||
	    vu_state(g, VU_SET_VRING_NUM, QSIZE) < 0 ||
	    /* As QEMU after a back end went away: resume where the used ring is. */
	    vu_state(g, VU_SET_VRING_BASE, used) < 0 || vu_send(g, VU_SET_VRING_ADDR, &a, sizeof(a),
								 NULL, 0) < 0 ||
	    vu_send(g, VU_SET_VRING_KICK, &idx, sizeof(idx), &g->kick, 1) < 0 ||
	    vu_send(g, VU_SET_VRING_CALL, &idx, sizeof(idx), &g->call, 1) < 0 ||
	    vu_state(g, VU_SET_VRING_ENABLE, 1) < 0)
		return -1;
	return 0;
}

static int vu_connect_once(struct gen *g)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g->socket);
	g->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (g->sock < 0)
		die("socket: %s", strerror(errno));
	if (connect(g->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || vu_features(g) < 0 ||
	    vu_config(g) < 0 || vu_inflight(g) < 0 || vu_rings(g) < 0) {
		close(g->sock);
		g->sock = -1;
		return -1;
	}
	return 0;
}

/* Connect, retrying for up to @secs (a restarting back end), as QEMU's reconnect= does. */
static void vu_connect(struct gen *g, double secs)
{
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
	struct timespec pause = { 0, 20 * 1000 * 1000 };

	for (;;) {
		if (vu_connect_once(g) == 0)
			return;
		if (now_ns() >= end)
			die("cannot connect to %s: %s", g->socket, strerror(errno));
		nanosleep(&pause, NULL);
	}
}

/* ---- data: each sector carries its number and the generation that wrote it ---- */

static uint64_t pattern_word(uint64_t sector, uint32_t gen, uint32_t seed, unsigned int i)
{
	uint64_t x = (sector * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)gen << 32 | seed);

	return x + i * 0xd1b54a32d192ed03ull;
}

static void fill(uint8_t *buf, uint64_t off, unsigned int len, uint32_t gen, uint32_t seed)
{
	for (unsigned int s = 0; s < len / SECTOR; s++) {
		uint64_t *w = (uint64_t *)(buf + (size_t)s * SECTOR), sector = off / SECTOR + s;

		w[0] = sector;
		w[1] = (uint64_t)gen << 32 | seed;
		for (unsigned int i = 2; i < SECTOR / 8; i++)
			w[i] = pattern_word(sector, gen, seed, i);
	}
}

/* 0, or -1 with the first wrong sector described on stderr. */
static int check(const uint8_t *buf, uint64_t off, unsigned int len, uint32_t gen, uint32_t seed,
		 const char *where)
{
	for (unsigned int s = 0; s < len / SECTOR; s++) {
		const uint64_t *w = (const uint64_t *)(buf + (size_t)s * SECTOR);
		uint64_t sector = off / SECTOR + s;
		bool ok = w[0] == sector && w[1] == ((uint64_t)gen << 32 | seed);

		for (unsigned int i = 2; ok && i < SECTOR / 8; i++)
			ok = w[i] == pattern_word(sector, gen, seed, i);
		if (!ok) {
			fprintf(stderr, "vu-load: %s: sector %" PRIu64 " is wrong: want generation %u, "
				"found sector %" PRIu64 " generation %" PRIu64 "\n", where, sector, gen,
				w[0], w[1] >> 32);
			return -1;
		}
	}
	return 0;
}

/* ---- requests ---- */

static uint64_t rng_next(struct gen *g)
{
	g->rng ^= g->rng << 13;
	g->rng ^= g->rng >> 7;
	g->rng ^= g->rng << 17;
	return g->rng;
}

/* Build slot @s's chain (header, data in pieces, status) and put its head in the available ring. */
/* One descriptor, in the ring's little-endian order (§2.7.5). */
static void put_desc(struct gen *g, unsigned int d, const void *p, uint32_t len, uint16_t flags)
{
	g->desc[d] = (struct vring_desc){ .addr = htole64((uintptr_t)p - (uintptr_t)g->mem),
					  .len = htole32(len), .flags = htole16(flags),
					  .next = htole16((uint16_t)(d + 1)) };
}

static void submit(struct gen *g, unsigned int s, enum op op, uint64_t block, bool timed)
{
	struct slot *sl = &g->slots[s];
	struct virtio_blk_outhdr *h = (void *)(g->mem + 3 * 4096 + s * HDR_STRIDE);
	uint64_t off = block * g->bs;
	unsigned int head = s * g->dps, d = head;
	uint8_t *data = slot_data(g, s);

	*sl = (struct slot){ .busy = true, .op = op, .block = block, .timed = timed };
	if (op == OP_WRITE) {
		sl->gen = ++g->gen_now;
		fill(data, off, g->bs, sl->gen, g->seed);
	}
	h->type = htole32(op == OP_WRITE ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
	h->ioprio = 0;
	h->sector = htole64(off / SECTOR);
	((uint8_t *)h)[16] = 0xff;	/* the status the back end must overwrite */
	put_desc(g, d, h, 16, VRING_DESC_F_NEXT);
	for (unsigned int done = 0; done < g->bs; done += g->seg_size)
		put_desc(g, ++d, data + done, g->bs - done < g->seg_size ? g->bs - done : g->seg_size,
			 VRING_DESC_F_NEXT | (op == OP_READ ? VRING_DESC_F_WRITE : 0));
	put_desc(g, ++d, (uint8_t *)h + 16, 1, VRING_DESC_F_WRITE);
	g->avail->ring[g->avail_idx++ % QSIZE] = htole16((uint16_t)head);
	g->inuse[block] = 1;
	g->busy++;
	sl->t0 = now_ns();
}

/* Publish what submit() added and kick the back end if it asked for it (§2.7.13 with EVENT_IDX). */
static void publish(struct gen *g)
{
	uint16_t old = g->kicked_idx, now = g->avail_idx;
	bool need;

	if (old == now)
		return;
	/* The chains before the index that offers them (pairs with the back end's read of idx). */
	__atomic_store_n(&g->avail->idx, htole16(now), __ATOMIC_RELEASE);
	/* The index before we read whether it wants a kick (pairs with its avail_event write). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (g->features & (1ull << VIRTIO_RING_F_EVENT_IDX))
		need = vring_need_event(le16toh(*avail_event(g)), now, old);
	else
		need = !(le16toh(__atomic_load_n(&g->used->flags, __ATOMIC_RELAXED)) &
			 VRING_USED_F_NO_NOTIFY);
	g->kicked_idx = now;
	if (need && g->sock >= 0) {
		uint64_t one = 1;

		if (write(g->kick, &one, sizeof(one)) != sizeof(one))
			die("kick: %s", strerror(errno));
	}
}

static void record(struct gen *g, const struct slot *sl, uint64_t t)
{
	if (!sl->timed)
		return;
	g->ops++;
	g->bytes += g->bs;
	if (g->nlat == g->lat_cap) {
		g->lat_cap = g->lat_cap ? 2 * g->lat_cap : 1 << 16;
		g->lat = realloc(g->lat, g->lat_cap * sizeof(*g->lat));
		if (!g->lat)
			die("out of memory");
	}
	g->lat[g->nlat++] = (uint32_t)((t - sl->t0) / 100 > UINT32_MAX ? UINT32_MAX : (t - sl->t0) / 100);
}

/* One used element: the head must be one we have in flight, its status OK, its data right. */
static void complete(struct gen *g, uint32_t id, uint64_t t)
{
	unsigned int s = id / g->dps;
	struct slot *sl;
	uint8_t status;

	if (id >= QSIZE || id % g->dps || s >= g->nslots || !g->slots[s].busy)
		die("the back end completed head %u, which is not in flight (lost or repeated)", id);
	sl = &g->slots[s];
	status = g->mem[3 * 4096 + s * HDR_STRIDE + 16];
	if (status != VIRTIO_BLK_S_OK)
		die("%s of block %" PRIu64 " failed: status %u", sl->op == OP_WRITE ? "write" : "read",
		    sl->block, status);
	if (sl->op == OP_WRITE)
		g->gens[sl->block] = sl->gen;
	else if (g->gens[sl->block] &&
		 check(slot_data(g, s), sl->block * g->bs, g->bs, g->gens[sl->block], g->seed, "read") < 0)
		exit(1);
	sl->busy = false;
	g->inuse[sl->block] = 0;
	g->busy--;
	record(g, sl, t);
}

/* Take what the used ring holds; returns how many. */
static unsigned int reap(struct gen *g)
{
	/* The elements before the index that shows them (pairs with the back end's release). */
	uint16_t idx = le16toh(__atomic_load_n(&g->used->idx, __ATOMIC_ACQUIRE));
	uint64_t t = now_ns();
	unsigned int n = 0;

	if ((uint16_t)(idx - g->last_used) > g->busy)
		die("used index moved by %u with %u requests in flight", (uint16_t)(idx - g->last_used),
		    g->busy);
	while (g->last_used != idx) {
		struct vring_used_elem *e = &g->used->ring[g->last_used % QSIZE];

		g->last_used++;
		complete(g, le32toh(e->id), t);
		n++;
	}
	return n;
}

/* ---- waiting, and a back end that goes away ---- */

static void reconnect(struct gen *g, const char *why)
{
	uint64_t one = 1;

	if (g->sock >= 0)
		close(g->sock);
	g->sock = -1;
	if (g->reconnect_s <= 0)
		die("the back end %s with %u requests in flight", why, g->busy);
	g->reconnects++;
	g->orphaned += g->busy;
	vu_connect(g, g->reconnect_s);
	/* The new back end looks at the ring once by itself; a kick costs nothing and covers a lazy one. */
	if (write(g->kick, &one, sizeof(one)) != sizeof(one))
		die("kick: %s", strerror(errno));
}

/* The socket is readable or hung up: a back end sends nothing unasked, so it is gone. */
static bool sock_gone(struct gen *g)
{
	char c;
	ssize_t n = recv(g->sock, &c, 1, MSG_DONTWAIT | MSG_PEEK);

	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

/* Ask for a call at the next completion, then sleep until it comes (or poll the used index). */
static void wait_event(struct gen *g)
{
	struct pollfd p[2] = { { .fd = g->call, .events = POLLIN }, { .fd = g->sock, .events = POLLIN } };
	static unsigned int spins;
	uint64_t v;
	int r;

	if (g->poll) {
		if (++spins % 4096 == 0 && sock_gone(g))
			reconnect(g, "hung up");
		return;
	}
	if (g->features & (1ull << VIRTIO_RING_F_EVENT_IDX))
		*used_event(g) = htole16(g->last_used);
	else
		__atomic_store_n(&g->avail->flags, 0, __ATOMIC_RELAXED);
	/* Our request for a call before we look at the used index again (pairs with its fence). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (le16toh(__atomic_load_n(&g->used->idx, __ATOMIC_ACQUIRE)) != g->last_used)
		return;
	r = poll(p, 2, 30000);
	if (r == 0)
		die("no completion in 30 s with %u requests in flight", g->busy);
	if (p[0].revents & POLLIN && read(g->call, &v, sizeof(v)) < 0 && errno != EAGAIN)
		die("call fd: %s", strerror(errno));
	if (p[1].revents && sock_gone(g))
		reconnect(g, "hung up");
}

static void interrupts_off(struct gen *g)
{
	/* Polling: no calls wanted (§2.7.10: with EVENT_IDX, an index far from the used one). */
	if (g->features & (1ull << VIRTIO_RING_F_EVENT_IDX))
		*used_event(g) = htole16((uint16_t)(g->last_used + 0x7fff));
	else
		__atomic_store_n(&g->avail->flags, htole16(VRING_AVAIL_F_NO_INTERRUPT), __ATOMIC_RELAXED);
}

/* ---- phases: what the next request is, or none ---- */

enum phase { PH_STAMP, PH_TIMED, PH_VERIFY };

struct phase_ctl {
	enum phase ph;
	uint64_t deadline;
};

static bool next_block(struct gen *g, const struct phase_ctl *pc, enum op *op, uint64_t *block)
{
	if (pc->ph == PH_TIMED) {
		if (stop_now || now_ns() >= pc->deadline)
			return false;
		*op = g->write ? OP_WRITE : OP_READ;
		for (unsigned int tries = 0; tries < 4 * g->nblocks; tries++) {
			*block = g->rnd ? rng_next(g) % g->nblocks : g->next_seq++ % g->nblocks;
			/* Never two requests on one block: each block's contents stay known. */
			if (!g->inuse[*block])
				return true;
		}
		return false;
	}
	*op = pc->ph == PH_STAMP ? OP_WRITE : OP_READ;
	while (g->next_seq < g->nblocks) {
		*block = g->next_seq++;
		if (pc->ph == PH_STAMP || g->gens[*block])
			return true;
	}
	return false;
}

static void run_phase(struct gen *g, enum phase ph, double secs)
{
	struct phase_ctl pc = { .ph = ph, .deadline = now_ns() + (uint64_t)(secs * 1e9) };
	unsigned int depth = ph == PH_TIMED ? g->qd : g->nslots;
	bool more = true;

	g->next_seq = 0;
	while (more || g->busy) {
		enum op op;
		uint64_t block;

		for (unsigned int s = 0; more && s < depth; s++) {
			if (g->slots[s].busy)
				continue;
			more = next_block(g, &pc, &op, &block);
			if (more)
				submit(g, s, op, block, ph == PH_TIMED);
		}
		if (!more && !g->busy)
			break;
		publish(g);
		if (g->disconnect_ms && now_ns() - g->last_drop > g->disconnect_ms * 1000000ull) {
			g->last_drop = now_ns();
			reconnect(g, "was left");
		}
		if (!reap(g))
			wait_event(g);
		else if (g->poll)
			interrupts_off(g);
	}
}

/* The file itself, read past the back end: every block written holds its last generation. */
static void check_file(struct gen *g)
{
	uint8_t *buf = slot_data(g, 0);
	int fd = open(g->file, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("%s: %s", g->file, strerror(errno));
	for (uint64_t b = 0; b < g->nblocks; b++) {
		if (!g->gens[b])
			continue;
		if (pread(fd, buf, g->bs, (off_t)(b * g->bs)) != (ssize_t)g->bs)
			die("%s: short read at block %" PRIu64, g->file, b);
		if (check(buf, b * g->bs, g->bs, g->gens[b], g->seed, g->file) < 0)
			exit(1);
	}
	close(fd);
}

/* ---- measurements ---- */

/* The back end's user + system CPU seconds, all threads (/proc/PID/stat utime, stime). */
static double backend_cpu(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		die("%s: %s", path, strerror(errno));
	fclose(f);
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		die("%s: cannot parse", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(const struct gen *g, double q)
{
	size_t i = (size_t)(q * (double)(g->nlat - 1));

	return g->nlat ? g->lat[i] / 10.0 : 0;
}

static void report(struct gen *g, double secs, double cpu)
{
	double sum = 0;

	qsort(g->lat, g->nlat, sizeof(*g->lat), cmp_u32);
	for (size_t i = 0; i < g->nlat; i++)
		sum += g->lat[i] / 10.0;
	printf("{\"rw\": \"%s%s\", \"bs\": %u, \"qd\": %u, \"seconds\": %.3f, \"ops\": %" PRIu64
	       ", \"iops\": %.1f, \"mbps\": %.2f, \"lat_p50_us\": %.1f, \"lat_p99_us\": %.1f, "
	       "\"lat_mean_us\": %.1f, \"backend_cpu_s\": %.3f, \"cpu_us_per_req\": %.3f, "
	       "\"reconnects\": %u, \"in_flight_at_disconnects\": %" PRIu64 ", \"inflight_region\": %s, \"event_idx\": %s}\n",
	       g->rnd ? "rand" : "", g->write ? "write" : "read", g->bs, g->qd, secs, g->ops,
	       g->ops / secs, g->bytes / secs / 1e6, pct_us(g, 0.5), pct_us(g, 0.99),
	       g->nlat ? sum / (double)g->nlat : 0, cpu, g->ops ? cpu / (double)g->ops * 1e6 : 0,
	       g->reconnects, g->orphaned, g->protocol & (1ull << VU_PROTO_INFLIGHT) ? "true" : "false",
	       g->features & (1ull << VIRTIO_RING_F_EVENT_IDX) ? "true" : "false");
}

/* ---- options ---- */

static void usage(void)
{
	fprintf(stderr, "usage: vu-load --socket=SOCK [--rw=randread|randwrite|read|write] [--bs=N] "
		"[--qd=N] [--time=S] [--span=BYTES] [--poll] [--no-inflight] [--no-stamp] "
		"[--cpu-pid=PID] [--reconnect=S] [--disconnect-every=MS] [--file=PATH]\n");
	exit(2);
}

/* A byte count with an optional K, M or G suffix. */
static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': return v << 10;
	case 'm': case 'M': return v << 20;
	case 'g': case 'G': return v << 30;
	case 0: return v;
	default: usage();
	}
	return 0;
}

static void parse_rw(struct gen *g, const char *s)
{
	g->rnd = !strncmp(s, "rand", 4);
	s += g->rnd ? 4 : 0;
	if (strcmp(s, "read") && strcmp(s, "write"))
		usage();
	g->write = !strcmp(s, "write");
}

static void parse(struct gen *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", 1, NULL, 's' }, { "rw", 1, NULL, 'r' }, { "bs", 1, NULL, 'b' },
		{ "qd", 1, NULL, 'q' }, { "time", 1, NULL, 't' }, { "span", 1, NULL, 'S' },
		{ "poll", 0, NULL, 'p' }, { "no-inflight", 0, NULL, 'I' }, { "no-stamp", 0, NULL, 'N' },
		{ "cpu-pid", 1, NULL, 'c' }, { "reconnect", 1, NULL, 'R' },
		{ "disconnect-every", 1, NULL, 'D' }, { "file", 1, NULL, 'f' }, { 0 } };
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': g->socket = optarg; break;
		case 'r': parse_rw(g, optarg); break;
		case 'b': g->bs = (unsigned int)parse_size(optarg); break;
		case 'q': g->qd = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 't': g->seconds = strtod(optarg, NULL); break;
		case 'S': g->span = parse_size(optarg); break;
		case 'p': g->poll = true; break;
		case 'I': g->inflight_ok = false; break;
		case 'N': g->stamp = false; break;
		case 'c': g->cpu_pid = atoi(optarg); break;
		case 'R': g->reconnect_s = strtod(optarg, NULL); break;
		case 'D': g->disconnect_ms = (unsigned int)strtoul(optarg, NULL, 0); break;
		case 'f': g->file = optarg; break;
		default: usage();
		}
	}
	if (!g->socket || optind != argc || !g->bs || g->bs % SECTOR || !g->qd || g->qd > QSIZE / 3)
		usage();
}

static void setup(struct gen *g)
{
	vu_connect(g, g->reconnect_s > 0 ? g->reconnect_s : 0);
	if (!g->span || g->span > g->capacity)
		g->span = g->capacity;
	g->nblocks = g->span / g->bs;
	if (g->nblocks < 2ull * g->nslots)
		die("%" PRIu64 " bytes hold too few %u-byte blocks for queue depth %u", g->span, g->bs,
		    g->qd);
	g->slots = calloc(g->nslots, sizeof(*g->slots));
	g->gens = calloc(g->nblocks, sizeof(*g->gens));
	g->inuse = calloc(g->nblocks, 1);
	if (!g->slots || !g->gens || !g->inuse)
		die("out of memory");
	g->seed = (uint32_t)(now_ns() ^ (uint64_t)getpid() << 16);
	g->rng = now_ns() | 1;
	g->last_drop = now_ns();
	if (g->poll)
		interrupts_off(g);
}

int main(int argc, char **argv)
{
	struct gen g = { .bs = 4096, .qd = 1, .seconds = 4, .inflight_ok = true, .stamp = true,
			 .sock = -1, .infl_fd = -1 };
	uint64_t t0;
	double cpu0, secs;

	parse(&g, argc, argv);
	signal(SIGUSR1, on_usr1);
	mem_setup(&g);
	setup(&g);
	/* Reads need known contents: stamp the span first (untimed). */
	if (!g.write && g.stamp)
		run_phase(&g, PH_STAMP, 0);
	g.last_drop = now_ns();
	cpu0 = backend_cpu(g.cpu_pid);
	t0 = now_ns();
	run_phase(&g, PH_TIMED, g.seconds);
	secs = (double)(now_ns() - t0) / 1e9;
	report(&g, secs, backend_cpu(g.cpu_pid) - cpu0);
	fflush(stdout);
	/* Every block written, read back through the back end, then from the file. */
	g.disconnect_ms = 0;
	if (g.write)
		run_phase(&g, PH_VERIFY, 0);
	if (g.file)
		check_file(&g);
	return 0;
}
