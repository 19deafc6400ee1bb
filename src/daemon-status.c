// SPDX-License-Identifier: GPL-2.0-only
/* The daemon's status document for `vblkd --status`: every guest and disk with its counters, as JSON. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json.h>

#include "blk.h"
#include "daemon-internal.h"
#include "daemon-status.h"
#include "guest.h"
#include "iostat.h"
#include "loop.h"
#include "util.h"
#include "vblk.h"
#include "vhost.h"
#include "virtio-dev.h"

static const struct {
	unsigned int bit;
	const char *name;
} daemon_feature_names[] = {
	{ VIRTIO_BLK_F_SIZE_MAX, "SIZE_MAX" },
	{ VIRTIO_BLK_F_SEG_MAX, "SEG_MAX" },
	{ VIRTIO_BLK_F_GEOMETRY, "GEOMETRY" },
	{ VIRTIO_BLK_F_RO, "RO" },
	{ VIRTIO_BLK_F_BLK_SIZE, "BLK_SIZE" },
	{ VIRTIO_BLK_F_FLUSH, "FLUSH" },
	{ VIRTIO_BLK_F_TOPOLOGY, "TOPOLOGY" },
	{ VIRTIO_BLK_F_CONFIG_WCE, "CONFIG_WCE" },
	{ VIRTIO_BLK_F_MQ, "MQ" },
	{ VIRTIO_BLK_F_DISCARD, "DISCARD" },
	{ VIRTIO_BLK_F_WRITE_ZEROES, "WRITE_ZEROES" },
	{ VIRTIO_F_INDIRECT_DESC, "INDIRECT_DESC" },
	{ VIRTIO_F_EVENT_IDX, "EVENT_IDX" },
	{ VIRTIO_F_VERSION_1, "VERSION_1" },
	{ VIRTIO_F_ACCESS_PLATFORM, "ACCESS_PLATFORM" },
	{ VIRTIO_F_RING_PACKED, "RING_PACKED" },
};

static void daemon_add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

/* "latency_us": {"read": {"p50", "p99", "requests"}, "write": {...}} over the last minute. */
static struct json_object *daemon_latency_json(const struct iostat_summary *io)
{
	static const char *const names[IOSTAT_NR_DIRS] = { "read", "write" };
	struct json_object *o = json_object_new_object();
	unsigned int d;

	for (d = 0; d < IOSTAT_NR_DIRS; d++) {
		struct json_object *jd = json_object_new_object();

		daemon_add_u64(jd, "p50", io->dir[d].p50_us);
		daemon_add_u64(jd, "p99", io->dir[d].p99_us);
		daemon_add_u64(jd, "requests", io->dir[d].requests);
		json_object_object_add(o, names[d], jd);
	}
	return o;
}

/* A CLOCK_REALTIME second as RFC 3339 UTC; 0 is null (never). */
static struct json_object *daemon_time_json(int64_t t)
{
	char buf[32];
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		return NULL;
	return json_object_new_string(buf);
}

/*
 * The last minute of all of @k's lanes' engines: requests and bytes added,
 * each percentile the slowest lane's.
 */
static void daemon_disk_iostat(const struct ddisk *k, struct iostat_summary *ret)
{
	blk_get_iostat(k->lanes[0].blk, ret);
	for (unsigned int i = 1; i < k->nlanes; i++) {
		struct iostat_summary l;

		blk_get_iostat(k->lanes[i].blk, &l);
		for (unsigned int d = 0; d < IOSTAT_NR_DIRS; d++) {
			struct iostat_dir_summary *a = &ret->dir[d];
			const struct iostat_dir_summary *b = &l.dir[d];

			a->requests += b->requests;
			a->bytes += b->bytes;
			a->bytes_per_second += b->bytes_per_second;
			a->p50_us = a->p50_us > b->p50_us ? a->p50_us : b->p50_us;
			a->p99_us = a->p99_us > b->p99_us ? a->p99_us : b->p99_us;
		}
	}
}

/* A disk's queue lanes' threads, in lane order (queue i on lane i % n). */
static struct json_object *daemon_lanes_json(const struct ddisk *k)
{
	struct json_object *a = json_object_new_array();

	for (unsigned int i = 0; i < k->nlanes; i++)
		json_object_array_add(a, json_object_new_string(iothread_name(k->lanes[i].th->t)));
	return a;
}

/*
 * How the QueueNotify writes of lanes 1.. reached them, in lane order (lane
 * 0, the disk's thread, takes its own: null): from their own eventfds (the
 * fast path), or handed on by the disk's thread or by the guest's.
 */
static struct json_object *daemon_lane_notifies_json(const struct ddisk *k)
{
	struct json_object *a = json_object_new_array();

	json_object_array_add(a, NULL);
	for (unsigned int i = 1; i < k->nlanes; i++) {
		struct json_object *o = json_object_new_object();

		daemon_add_u64(o, "direct", __atomic_load_n(&k->lanes[i].direct, __ATOMIC_RELAXED));
		daemon_add_u64(o, "handed_on",
			       __atomic_load_n(&k->lanes[i].handed_on, __ATOMIC_RELAXED));
		daemon_add_u64(o, "from_guest_thread",
			       __atomic_load_n(&k->lanes[i].from_guest_thread, __ATOMIC_RELAXED));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *daemon_disk_json(const struct ddisk *k, uint64_t now)
{
	struct json_object *o = json_object_new_object(), *feats = json_object_new_array();
	struct vblk_stats st = { 0 };
	struct iostat_summary io;
	struct virtio_dev *v = k->vblk ? vblk_virtio_dev(k->vblk) : NULL;
	const struct blk_info *bi = blk_get_info(k->lanes[0].blk);
	uint64_t f = v ? virtio_dev_features(v) : 0;
	size_t i;

	unsigned int in_flight = 0;

	/* Lanes 1.. are another thread's: kept out while their figures are read. */
	daemon_disk_exclude(k);
	if (k->vblk)
		vblk_get_stats(k->vblk, &st);
	daemon_disk_iostat(k, &io);
	for (i = 0; i < k->nlanes; i++)
		in_flight += blk_inflight(k->lanes[i].blk);
	daemon_disk_admit(k);
	for (i = 0; i < ARRAY_SIZE(daemon_feature_names); i++)
		if (f & (1ull << daemon_feature_names[i].bit))
			json_object_array_add(feats, json_object_new_string(daemon_feature_names[i].name));
	daemon_add_u64(o, "devid", k->devid);
	json_object_object_add(o, "vdev", k->vdev ? json_object_new_string(k->vdev) : NULL);
	json_object_object_add(o, "path", json_object_new_string(k->path));
	json_object_object_add(o, "mode", json_object_new_string(k->read_only ? "ro" : "rw"));
	json_object_object_add(o, "engine", json_object_new_string(blk_engine_name(bi->engine)));
	/* O_DIRECT (direct-io-safe, and the file system took it), or through Dom0's page cache. */
	json_object_object_add(o, "direct", json_object_new_boolean(bi->direct));
	json_object_object_add(o, "state", json_object_new_string(
		k->state != DDISK_SERVING ? "closing" :
		v && virtio_dev_running(v) ? "running" : "waiting for driver"));
	json_object_object_add(o, "features", feats);
	daemon_add_u64(o, "queues", v ? virtio_dev_num_queues(v) : 0);
	if (k->nlanes > 1) {
		json_object_object_add(o, "queue_threads", daemon_lanes_json(k));
		json_object_object_add(o, "queue_notifies", daemon_lane_notifies_json(k));
	}
	daemon_add_u64(o, "capacity_bytes", bi->capacity);
	daemon_add_u64(o, "read_requests", st.read_reqs);
	daemon_add_u64(o, "read_bytes", st.read_bytes);
	daemon_add_u64(o, "write_requests", st.write_reqs);
	daemon_add_u64(o, "write_bytes", st.write_bytes);
	daemon_add_u64(o, "flush_requests", st.flush_reqs);
	daemon_add_u64(o, "discard_requests", st.discard_reqs + st.write_zeroes_reqs);
	daemon_add_u64(o, "errors", st.io_errors + st.unsupported + st.ring_errors);
	daemon_add_u64(o, "map_waits", st.map_waits);
	daemon_add_u64(o, "in_flight", in_flight);
	/* The last minute: a slow disk (high latency) apart from a busy one (many bytes). */
	json_object_object_add(o, "latency_us", daemon_latency_json(&io));
	daemon_add_u64(o, "read_bytes_per_second", io.dir[IOSTAT_READ].bytes_per_second);
	daemon_add_u64(o, "write_bytes_per_second", io.dir[IOSTAT_WRITE].bytes_per_second);
	daemon_add_u64(o, "uptime_seconds", now - k->started);
	if (k->mmio) {
		bool n, irq;

		/* Which way its QueueNotify writes and interrupts go (vblkd(8), FAST PATH). */
		guest_mmio_get_fast_path(k->mmio, &n, &irq);
		json_object_object_add(o, "notify", json_object_new_string(n ? "ioeventfd" : "ioreq"));
		json_object_object_add(o, "interrupts",
				       json_object_new_string(irq ? "irqfd" : "set_irq_level"));
		/* How its guest addresses are mapped: grant references (grant_usage=1) or foreign. */
		json_object_object_add(o, "grant_usage", json_object_new_boolean(k->transport.grants));
	}
	daemon_add_u64(o, "adoptions", k->rec ? drec_disk_adoptions(k->rec) : 0);
	json_object_object_add(o, "last_adopted",
			       daemon_time_json(k->rec ? drec_disk_last_adopted(k->rec) : 0));
	return o;
}

static struct json_object *daemon_features_json(uint64_t f)
{
	struct json_object *feats = json_object_new_array();

	for (size_t i = 0; i < ARRAY_SIZE(daemon_feature_names); i++)
		if (f & (1ull << daemon_feature_names[i].bit))
			json_object_array_add(feats, json_object_new_string(daemon_feature_names[i].name));
	return feats;
}

/* A vhost-user export: its socket, its front end's state, and the counters of all its front ends. */
static struct json_object *daemon_vhost_json(const struct vhost_export *e)
{
	struct json_object *o = json_object_new_object();
	struct vhost_export_info in;

	vhost_export_get_info(e, &in);
	json_object_object_add(o, "socket", json_object_new_string(in.socket));
	json_object_object_add(o, "path", json_object_new_string(in.path));
	json_object_object_add(o, "mode", json_object_new_string(in.read_only ? "ro" : "rw"));
	json_object_object_add(o, "engine", json_object_new_string(blk_engine_name(in.engine)));
	json_object_object_add(o, "direct", json_object_new_boolean(in.direct));
	json_object_object_add(o, "state", json_object_new_string(in.state));
	json_object_object_add(o, "features", daemon_features_json(in.features));
	daemon_add_u64(o, "queues", in.queues);
	daemon_add_u64(o, "capacity_bytes", in.capacity);
	daemon_add_u64(o, "connections", in.connections);
	daemon_add_u64(o, "resubmitted", in.resubmitted);
	daemon_add_u64(o, "read_requests", in.stats.read_reqs);
	daemon_add_u64(o, "read_bytes", in.stats.read_bytes);
	daemon_add_u64(o, "write_requests", in.stats.write_reqs);
	daemon_add_u64(o, "write_bytes", in.stats.write_bytes);
	daemon_add_u64(o, "flush_requests", in.stats.flush_reqs);
	daemon_add_u64(o, "errors", in.stats.io_errors + in.stats.unsupported + in.stats.ring_errors);
	daemon_add_u64(o, "in_flight", in.in_flight);
	daemon_add_u64(o, "uptime_seconds", in.uptime_seconds);
	return o;
}

static struct json_object *daemon_memory_json(const struct gmem_stats *m)
{
	struct json_object *mc = json_object_new_object();

	daemon_add_u64(mc, "hits", m->hits);
	daemon_add_u64(mc, "misses", m->misses);
	daemon_add_u64(mc, "evictions", m->evictions);
	daemon_add_u64(mc, "uncached", m->uncached);
	daemon_add_u64(mc, "grant_copies", m->copies);
	daemon_add_u64(mc, "cached_chunks", m->cached_chunks);
	daemon_add_u64(mc, "in_use", m->live);
	daemon_add_u64(mc, "mapped_pages", m->pages);
	daemon_add_u64(mc, "mappings", m->maps);
	daemon_add_u64(mc, "peak_mapped_pages", m->peak_pages);
	daemon_add_u64(mc, "peak_mappings", m->peak_maps);
	daemon_add_u64(mc, "budget_waits", m->budget_waits);
	return mc;
}

/* The guest's own part (its disks are added by the caller, each from its thread). */
static struct json_object *daemon_guest_json(const struct dguest *g)
{
	struct json_object *jg = json_object_new_object();
	struct guest_stats gs;

	guest_get_stats(g->guest, &gs);
	daemon_add_u64(jg, "domid", g->domid);
	json_object_object_add(jg, "name", g->name ? json_object_new_string(g->name) : NULL);
	daemon_add_u64(jg, "vcpus", guest_nr_vcpus(g->guest));
	daemon_add_u64(jg, "mmio_accesses", gs.ioreqs);
	daemon_add_u64(jg, "bad_accesses", gs.bad_ioreqs);
	daemon_add_u64(jg, "interrupts", gs.irqs);
	json_object_object_add(jg, "memory_cache", daemon_memory_json(&gs.mem));
	{
		const char *why, *fp = guest_fast_path(g->guest, &why);

		json_object_object_add(jg, "fast_path", json_object_new_string(fp));
		json_object_object_add(jg, "fast_path_why", json_object_new_string(why));
	}
	return jg;
}

/* A guest's, a disk's or an export's part, built on the thread that serves it while main waits. */
struct daemon_status_part {
	const struct daemon *d;
	const struct dguest *g;
	const struct ddisk *k;
	unsigned int vhost;		/* export index, when neither */
	uint64_t now;
	struct json_object *o;
};

static void daemon_status_part(void *data)
{
	struct daemon_status_part *p = data;

	if (p->k)
		p->o = daemon_disk_json(p->k, p->now);
	else if (p->g)
		p->o = daemon_guest_json(p->g);
	else
		p->o = daemon_vhost_json(p->d->vhost[p->vhost]);
}

static struct json_object *daemon_part_json(struct daemon_status_part *p, struct dthread *th)
{
	daemon_thread_call(th, daemon_status_part, p);
	json_object_object_add(p->o, "io_thread", json_object_new_string(iothread_name(th->t)));
	return p->o;
}

/* A guest with its disks: its IOREQ server's thread, each disk's own. */
static struct json_object *daemon_guest_part(const struct daemon *d, const struct dguest *g,
					     uint64_t now)
{
	struct daemon_status_part p = { .d = d, .g = g, .now = now };
	struct json_object *jg = daemon_part_json(&p, g->th), *disks = json_object_new_array();

	for (const struct ddisk *k = g->disks; k; k = k->next) {
		struct daemon_status_part pk = { .d = d, .k = k, .now = now };

		json_object_array_add(disks, daemon_part_json(&pk, k->th));
	}
	json_object_object_add(jg, "disks", disks);
	return jg;
}

/* Each IO thread: what it serves, and the CPU time it used ("main": --io-threads=0). */
static struct json_object *daemon_threads_json(const struct daemon *d)
{
	struct json_object *a = json_object_new_array();

	for (unsigned int i = 0; i < d->nthreads; i++) {
		const struct dthread *th = &d->threads[i];
		struct json_object *o = json_object_new_object(), *domids = json_object_new_array();

		/* Whose IOREQ server it serves or some of whose disks. */
		for (const struct dguest *g = d->guests; g; g = g->next) {
			bool ours = g->th == th;

			for (const struct ddisk *k = g->disks; k && !ours; k = k->next)
				for (unsigned int l = 0; l < k->nlanes && !ours; l++)
					ours = k->lanes[l].th == th;
			if (ours)
				json_object_array_add(domids, json_object_new_int64(g->domid));
		}
		json_object_object_add(o, "name", json_object_new_string(iothread_name(th->t)));
		json_object_object_add(o, "guests", domids);
		daemon_add_u64(o, "disks", th->ndisks);
		daemon_add_u64(o, "vhost_user", th->nvhost);
		json_object_object_add(o, "cpu_seconds",
				       json_object_new_double((double)iothread_cpu_ns(th->t) / 1e9));
		json_object_array_add(a, o);
	}
	return a;
}

/* One thread's loop polling figures, read on that thread; summed into @sum. */
struct daemon_poll_part {
	struct loop *loop;
	struct loop_poll_stats sum;
};

static void daemon_status_poll_part(void *data)
{
	struct daemon_poll_part *p = data;
	struct loop_poll_stats one;

	loop_get_poll_stats(p->loop, &one);
	p->sum.hits += one.hits;
	if (one.window_ns > p->sum.window_ns)
		p->sum.window_ns = one.window_ns;
}

/* The loops' busy polling (--poll-us): its limit, the widest window now, the spells that found work. */
static void daemon_status_polling(const struct daemon *d, struct json_object *root)
{
	struct daemon_poll_part p = { 0 };

	for (unsigned int i = 0; i < d->nthreads; i++) {
		p.loop = d->threads[i].loop;
		daemon_thread_call(&d->threads[i], daemon_status_poll_part, &p);
	}
	daemon_add_u64(root, "poll_max_us", d->opts.poll_us);
	daemon_add_u64(root, "poll_window_us", p.sum.window_ns / 1000u);
	daemon_add_u64(root, "poll_hits", p.sum.hits);
}

char *daemon_status_json(const struct daemon *d)
{
	struct json_object *root = json_object_new_object(), *guests = json_object_new_array();
	struct json_object *vhost = json_object_new_array();
	const struct dguest *g;
	uint64_t now = daemon_now();
	char *out;

	json_object_object_add(root, "version", json_object_new_string(VBLKD_VERSION));
	daemon_add_u64(root, "backend_domid", d->backend_domid);
	daemon_add_u64(root, "uptime_seconds", now - d->started);
	json_object_object_add(root, "engine", json_object_new_string(blk_engine_name(d->opts.engine)));
	daemon_status_polling(d, root);
	for (g = d->guests; g; g = g->next)
		json_object_array_add(guests, daemon_guest_part(d, g, now));
	json_object_object_add(root, "guests", guests);
	json_object_object_add(root, "xen", json_object_new_boolean(d->xen));
	for (unsigned int i = 0; i < daemon_vhost_count(d); i++) {
		struct daemon_status_part p = { .d = d, .vhost = i, .now = now };

		json_object_array_add(vhost, daemon_part_json(&p, d->vhost_th[i]));
	}
	json_object_object_add(root, "vhost_user", vhost);
	json_object_object_add(root, "io_threads", daemon_threads_json(d));
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return out;
}
