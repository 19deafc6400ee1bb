// SPDX-License-Identifier: GPL-2.0-only
/* The daemon's wiring: a disk found in xenstore becomes a virtio-blk device on its guest's IOREQ server. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json.h>

#include "blk.h"
#include "daemon.h"
#include "disc.h"
#include "disk-cfg.h"
#include "guest.h"
#include "log.h"
#include "loop.h"
#include "vblk.h"
#include "vmmio.h"
#include "xsw.h"

struct dguest;

struct ddisk {
	struct dguest *dg;
	unsigned int devid;
	char name[48];			/* "dom 3 disk 51712" */
	char *path;
	struct blk_dev *blk;
	struct loop_source *blk_src;
	struct loop_source *poll_timer;	/* the device's ring poll timer (set_timer()) */
	struct vblk_dev *vblk;		/* NULL once closing */
	struct vmmio_dev *regs;		/* its virtio-mmio register decoder (with vblk) */
	struct guest_mmio *mmio;
	uint64_t base;			/* the register window's guest physical address */
	unsigned int irq;		/* its SPI */
	struct virtio_transport transport;
	char *vdev;			/* "dev" (xvda), may be NULL */
	bool read_only;			/* "mode" r or a cdrom */
	bool discard;			/* "discard-enable" */
	uint64_t started;		/* CLOCK_MONOTONIC seconds */
	bool closing;			/* waiting for in-flight IO before release */
	bool dead;			/* the guest is gone: do not answer in xenstore */
	struct log_ratelimit rl;
	struct ddisk *next;
};

struct dguest {
	struct daemon *d;
	unsigned int domid;
	char *name;			/* /local/domain/<domid>/name, may be NULL */
	struct guest *guest;
	struct ddisk *disks;
	bool dead;
	struct dguest *next;
};

struct daemon {
	struct loop *loop;
	struct daemon_opts opts;
	unsigned int backend_domid;
	struct xsw *xsw;
	struct guest_sys *sys;
	struct disc *disc;
	struct dguest *guests;
	bool shutting_down;
	int exit_code;
	uint64_t started;
	char why[192];			/* a disk_add() reason that names things (fits disc's) */
};

static uint64_t daemon_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static const struct virtio_transport_ops daemon_transport_ops = {
	.map = guest_mmio_map,
	.unmap = guest_mmio_unmap,
	.wait_room = guest_mmio_wait_room,
	.notify = guest_mmio_notify,
};

static uint64_t daemon_mmio_read(void *dev, uint64_t offset, unsigned int size)
{
	struct ddisk *k = dev;

	/* A closing disk's window reads as nothing until it is unmapped. */
	return k->vblk ? vmmio_read(k->regs, offset, size) : 0;
}

static bool daemon_mmio_write(void *dev, uint64_t offset, unsigned int size, uint64_t value)
{
	struct ddisk *k = dev;

	if (!k->vblk)
		return true;
	vmmio_write(k->regs, offset, size, value);
	/*
	 * A reset with requests still in the backend: the vCPU waits until they
	 * are done, so the driver cannot reuse buffers they may still write.
	 */
	return !vblk_draining(k->vblk);
}

static const struct guest_mmio_ops daemon_mmio_ops = {
	.read = daemon_mmio_read,
	.write = daemon_mmio_write,
	.posted = vmmio_write_posted,
};

static int daemon_be_submit(void *be, struct blk_req *req)
{
	struct ddisk *k = be;

	return blk_submit(k->blk, req);
}

static void daemon_be_unplug(void *be)
{
	struct ddisk *k = be;

	blk_unplug(k->blk);
}

/* The device's ring poll timer (vblk decides when and how it backs off). */
static int daemon_be_set_timer(void *be, uint64_t us)
{
	struct ddisk *k = be;
	int r = loop_timer_set(k->poll_timer, us, 0);

	if (r < 0)
		log_ratelimited(&k->rl, LOG_LEVEL_WARNING, "%s: cannot arm the ring poll timer: %s",
				k->name, strerror(-r));
	return r;
}

static void daemon_poll_timer(struct loop_source *src, uint64_t expirations, void *data)
{
	struct ddisk *k = data;

	if (k->vblk)
		vblk_timer_expired(k->vblk);
}

static const struct vblk_backend_ops daemon_backend_ops = {
	.submit = daemon_be_submit,
	.unplug = daemon_be_unplug,
	.set_timer = daemon_be_set_timer,
};

static struct dguest *daemon_find_guest(struct daemon *d, unsigned int domid)
{
	struct dguest *g;

	for (g = d->guests; g; g = g->next)
		if (g->domid == domid)
			return g;
	return NULL;
}

static struct ddisk *daemon_find_disk(struct daemon *d, unsigned int domid, unsigned int devid)
{
	struct dguest *g = daemon_find_guest(d, domid);
	struct ddisk *k;

	for (k = g ? g->disks : NULL; k; k = k->next)
		if (k->devid == devid)
			return k;
	return NULL;
}

static void daemon_changed(struct daemon *d)
{
	if (d->opts.changed)
		d->opts.changed(d, d->opts.changed_data);
}

static void daemon_maybe_stop(struct daemon *d)
{
	if (d->shutting_down && !d->guests)
		loop_stop(d->loop, d->exit_code);
}

static void daemon_guest_release(struct dguest *g)
{
	struct daemon *d = g->d;
	struct dguest **pp;

	for (pp = &d->guests; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	guest_free(g->guest, g->dead);
	log_info("dom %u: released%s", g->domid, g->dead ? " (guest gone)" : "");
	free(g->name);
	free(g);
	daemon_maybe_stop(d);
}

/* Everything of the disk is idle: free it, and the guest with its last disk. */
static void daemon_disk_release(struct ddisk *k)
{
	struct dguest *g = k->dg;
	struct daemon *d = g->d;
	struct ddisk **pp;
	bool answer = k->closing && !k->dead && !d->shutting_down;
	unsigned int domid = g->domid, devid = k->devid;

	loop_remove(k->blk_src);
	loop_remove(k->poll_timer);
	blk_close(k->blk);	/* nothing in flight: does not block */
	guest_mmio_remove(k->mmio);
	for (pp = &g->disks; *pp; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	}
	log_info("%s: closed", k->name);
	free(k->path);
	free(k->vdev);
	free(k);
	/* Everything is released before Closed is written: the toolstack may destroy the domain then. */
	if (!g->disks)
		daemon_guest_release(g);
	if (answer)
		disc_closed(d->disc, domid, devid);
	daemon_changed(d);
}

static void daemon_blk_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct ddisk *k = data;
	int r = blk_process(k->blk);

	if (r < 0)
		log_ratelimited(&k->rl, LOG_LEVEL_ERR,
				"%s: reaping IO completions failed: %s", k->name, strerror(-r));
	if (k->vblk) {
		/* One used-index update and at most one interrupt for the whole batch. */
		vblk_complete_batch(k->vblk);
		if (!vblk_draining(k->vblk))
			guest_mmio_resume(k->mmio);
	} else if (blk_inflight(k->blk) == 0) {
		daemon_disk_release(k);
	}
}

/*
 * Stop serving @k: the device goes away at once (requests still in the
 * engine are orphaned and only unmap their buffers when they finish); the
 * rest is released when the engine is idle.  Returns 1 if that is later.
 */
static int daemon_disk_stop(struct ddisk *k)
{
	vmmio_destroy(k->regs);
	k->regs = NULL;
	vblk_destroy(k->vblk);
	k->vblk = NULL;
	k->closing = true;
	if (blk_inflight(k->blk)) {
		log_info("%s: closing after %u requests in flight", k->name, blk_inflight(k->blk));
		return 1;
	}
	daemon_disk_release(k);
	return 0;
}

/*
 * "'@path' @what" as the reason for xenstore, a long path cut at its start
 * so that @what (a short phrase) is never cut off.
 */
static void daemon_why_path(struct daemon *d, const char *path, const char *what)
{
	size_t len = strlen(path), keep = sizeof(d->why) / 2;

	if (len > keep)
		snprintf(d->why, sizeof(d->why), "'...%s' %s", path + len - keep, what);
	else
		snprintf(d->why, sizeof(d->why), "'%s' %s", path, what);
}

static int daemon_open_backing(struct daemon *d, const struct disk_cfg *cfg, struct ddisk *k,
			       const char **ret_why)
{
	struct blk_open_opts bo = {
		.engine = d->opts.engine,
		.read_only = cfg->read_only,
		.direct_io_safe = cfg->direct_io_safe,
		.queue_depth = d->opts.queue_depth,
		.submit_batch = BLK_SUBMIT_BATCH,
	};
	const struct blk_info *info;
	const char *why = NULL;
	int r;

	r = blk_open(cfg->path, &bo, &k->blk, &why);
	if (r < 0 && why) {
		log_err("%s: params '%s' %s; not served", k->name, cfg->path, why);
		daemon_why_path(d, cfg->path, why);
		*ret_why = d->why;
		return r;
	}
	if (r < 0) {
		log_err("%s: params '%s': %s%s", k->name, cfg->path, strerror(-r),
			r == -EBUSY ? " (the block device is mounted or in use elsewhere)" :
			r == -ESTALE ? " (it was replaced while being opened)" : "");
		*ret_why = r == -ENOENT ? "backing file not found" :
			   r == -EBUSY	? "backing device in use elsewhere" :
			   r == -EACCES || r == -EPERM ? "backing file not accessible" :
							 "cannot open the backing file";
		return r;
	}
	info = blk_get_info(k->blk);
	if (info->engine_fallback_err)
		log_warn("%s: io_uring unavailable (%s): using libaio", k->name,
			 strerror(-info->engine_fallback_err));
	if (info->capacity < VIRTIO_BLK_SECTOR_SIZE)
		log_warn("%s: '%s' is smaller than one sector: the guest sees an empty disk", k->name,
			 cfg->path);
	return 0;
}

/* What the guest is told about the backing store: the disk's configuration may only restrict it. */
static struct blk_info daemon_disk_info(const struct ddisk *k)
{
	struct blk_info info = *blk_get_info(k->blk);

	info.read_only = info.read_only || k->read_only;
	info.discard = info.discard && k->discard && !info.read_only;
	return info;
}

/*
 * One backing file under two disks, at least one of them writable: each guest
 * caches the disk as its own, so their writes corrupt each other's file
 * systems (and a file written both with and without O_DIRECT makes the kernel
 * fail later flushes with EIO).  Refused, as Xen's block hotplug script
 * refuses a device another domain uses, unless --allow-shared (cluster file
 * systems): then only warned about.  Disks being closed do not count: a
 * rebooting guest's new disk may come before its old one is gone.
 */
static int daemon_check_shared(struct daemon *d, const struct ddisk *k, const char **ret_why)
{
	const struct blk_info *ki = blk_get_info(k->blk);
	bool k_ro = daemon_disk_info(k).read_only;
	const struct dguest *g;
	const struct ddisk *o;

	for (g = d->guests; g; g = g->next)
		for (o = g->disks; o; o = o->next) {
			const struct blk_info *oi = blk_get_info(o->blk);

			/* @k is not on a guest's list yet. */
			if (o->closing || oi->st_dev != ki->st_dev || oi->st_ino != ki->st_ino)
				continue;
			if (k_ro && daemon_disk_info(o).read_only)
				continue;
			if (d->opts.allow_shared) {
				log_warn("%s: '%s' is also the backing file of %s, and one of them "
					 "writes it: the guests can corrupt each other's data%s",
					 k->name, k->path, o->name, ki->direct != oi->direct ?
					 "; written with and without O_DIRECT, its flushes may also fail" :
					 "");
				return 0;
			}
			log_err("%s: '%s' is already the backing file of %s, and one of them would "
				"write it: not served, the guests would corrupt each other's data "
				"(--allow-shared serves it, for cluster file systems)", k->name,
				k->path, o->name);
			snprintf(d->why, sizeof(d->why), "backing file in use by %s", o->name);
			*ret_why = d->why;
			return -EBUSY;
		}
	return 0;
}

/*
 * A disk whose register window or SPI is another disk's of the same guest
 * (disk_cfg_clash()) is refused, naming that disk; the other one is served on.
 * Disks being closed count: their windows are still claimed.
 */
static int daemon_check_clash(struct daemon *d, const struct dguest *g, const struct ddisk *k,
			      const char **ret_why)
{
	const struct ddisk *o;
	int r;

	for (o = g->disks; o; o = o->next) {
		r = disk_cfg_clash(k->base, k->irq, o->base, o->irq);
		if (!r)
			continue;
		if (r == -EADDRINUSE)
			snprintf(d->why, sizeof(d->why), "MMIO window 0x%llx-0x%llx overlaps disk %u",
				 (unsigned long long)k->base,
				 (unsigned long long)(k->base + DISK_CFG_MMIO_SIZE - 1), o->devid);
		else
			snprintf(d->why, sizeof(d->why), "irq %u is already used by disk %u", k->irq,
				 o->devid);
		log_err("%s: %s%s; not served", k->name, d->why, o->closing ? " (being closed)" : "");
		*ret_why = d->why;
		return r;
	}
	return 0;
}

static int daemon_disk_add(void *data, const struct disk_cfg *cfg, const char **ret_why)
{
	struct daemon *d = data;
	struct dguest *g = daemon_find_guest(d, cfg->domid);
	bool new_guest = !g;
	struct vblk_config vc = { 0 };
	struct blk_info info;
	struct ddisk *k;
	int r;

	if (d->shutting_down) {
		*ret_why = "vblkd is shutting down";
		return -ESHUTDOWN;
	}
	if (!g) {
		g = calloc(1, sizeof(*g));
		if (!g)
			return -ENOMEM;
		g->d = d;
		g->domid = cfg->domid;
		r = guest_new(d->sys, d->loop, cfg->domid, &g->guest);
		if (r < 0) {
			free(g);
			*ret_why = "cannot set up an IOREQ server for the guest (see the vblkd log)";
			return r;
		}
		g->next = d->guests;
		d->guests = g;
		{
			char path[64];

			snprintf(path, sizeof(path), "/local/domain/%u/name", cfg->domid);
			g->name = xsw_read(d->xsw, path);	/* for operators only: may be absent */
		}
	}

	k = calloc(1, sizeof(*k));
	if (!k) {
		r = -ENOMEM;
		goto err_guest;
	}
	k->dg = g;
	k->devid = cfg->devid;
	k->rl = (struct log_ratelimit)LOG_RATELIMIT_GUEST;
	snprintf(k->name, sizeof(k->name), "dom %u disk %u", cfg->domid, cfg->devid);
	k->path = strdup(cfg->path);
	k->vdev = cfg->vdev ? strdup(cfg->vdev) : NULL;
	k->read_only = cfg->read_only;
	k->discard = cfg->discard;
	k->started = daemon_now();
	k->base = cfg->base;
	k->irq = cfg->irq;
	if (!k->path || (cfg->vdev && !k->vdev)) {
		r = -ENOMEM;
		goto err_disk;
	}
	/* Checked before the backing file is opened: the keys alone decide it. */
	r = daemon_check_clash(d, g, k, ret_why);
	if (r < 0)
		goto err_disk;
	r = daemon_open_backing(d, cfg, k, ret_why);
	if (r < 0)
		goto err_disk;
	r = daemon_check_shared(d, k, ret_why);
	if (r < 0)
		goto err_blk;

	r = guest_mmio_add(g->guest, cfg->base, DISK_CFG_MMIO_SIZE, cfg->irq, cfg->grant_usage,
			   &daemon_mmio_ops, k, &k->mmio);
	if (r < 0) {
		log_err("%s: base 0x%llx irq %u: %s", k->name, (unsigned long long)cfg->base,
			cfg->irq,
			r == -EADDRINUSE ? "register window overlaps another disk of this guest" :
			r == -EOPNOTSUPP ? "grant mapping is unavailable in this domain" :
					   strerror(-r));
		*ret_why = r == -EADDRINUSE ? "base overlaps another disk" : "cannot claim the MMIO window";
		goto err_blk;
	}
	k->transport.ops = &daemon_transport_ops;
	k->transport.opaque = k->mmio;
	k->transport.grants = cfg->grant_usage;
	k->transport.max_map = GUEST_MAX_MAP;

	info = daemon_disk_info(k);
	vc.name = k->name;
	vc.info = info;
	vc.num_queues = d->opts.queues;
	vc.serial = cfg->vdev;
	r = loop_add_timer(d->loop, LOOP_TIMER_DISARM, 0, daemon_poll_timer, k, &k->poll_timer);
	if (r < 0) {
		log_err("%s: cannot create a timer: %s", k->name, strerror(-r));
		*ret_why = "cannot create a timer";
		goto err_mmio;
	}
	r = vblk_create(&vc, &k->transport, &daemon_backend_ops, k, &k->vblk);
	if (r == 0) {
		r = vmmio_create(vblk_virtio_dev(k->vblk), &k->regs);
		if (r < 0)
			vblk_destroy(k->vblk);
	}
	if (r < 0) {
		log_err("%s: cannot create the virtio-blk device: %s", k->name, strerror(-r));
		*ret_why = "cannot create the virtio device";
		goto err_timer;
	}
	r = loop_add_fd(d->loop, blk_get_fd(k->blk), EPOLLIN, daemon_blk_ready, k, &k->blk_src);
	if (r < 0)
		goto err_vblk;
	/* Last: from here the guest's accesses reach the device. */
	r = guest_mmio_enable(k->mmio);
	if (r < 0) {
		log_err("%s: cannot route MMIO 0x%llx to the IOREQ server: %s", k->name,
			(unsigned long long)cfg->base, strerror(-r));
		*ret_why = "cannot map the MMIO range to the IOREQ server";
		goto err_src;
	}
	k->next = g->disks;
	g->disks = k;
	log_info("%s: serving '%s' (%s%s, %llu bytes, %s engine) at 0x%llx irq %u", k->name,
		 cfg->path, info.read_only ? "read-only" : "read-write",
		 blk_get_info(k->blk)->direct ? ", O_DIRECT" : "",
		 (unsigned long long)info.capacity, blk_engine_name(blk_get_info(k->blk)->engine),
		 (unsigned long long)cfg->base, cfg->irq);
	daemon_changed(d);
	return 0;

err_src:
	loop_remove(k->blk_src);
err_vblk:
	vmmio_destroy(k->regs);
	vblk_destroy(k->vblk);
err_timer:
	loop_remove(k->poll_timer);
err_mmio:
	guest_mmio_remove(k->mmio);
err_blk:
	blk_close(k->blk);
err_disk:
	free(k->path);
	free(k->vdev);
	free(k);
err_guest:
	if (new_guest && !g->disks) {
		d->guests = g->next;
		guest_free(g->guest, false);
		free(g->name);
		free(g);
	}
	if (!*ret_why)
		*ret_why = strerror(-r);
	return r;
}

static int daemon_disk_close(void *data, unsigned int domid, unsigned int devid)
{
	struct daemon *d = data;
	struct ddisk *k = daemon_find_disk(d, domid, devid);

	if (!k || k->closing)
		return k ? 1 : 0;
	log_info("%s: the toolstack closes it", k->name);
	return daemon_disk_stop(k);
}

static void daemon_disk_gone(void *data, unsigned int domid, unsigned int devid)
{
	struct daemon *d = data;
	struct ddisk *k = daemon_find_disk(d, domid, devid);

	if (!k)
		return;
	log_info("%s: removed from xenstore without a close: the guest is gone", k->name);
	k->dead = true;
	k->dg->dead = true;
	if (!k->closing)
		daemon_disk_stop(k);
}

static const struct disc_ops daemon_disc_ops = {
	.disk_add = daemon_disk_add,
	.disk_close = daemon_disk_close,
	.disk_gone = daemon_disk_gone,
};

static int daemon_read_domid(struct daemon *d, unsigned int *ret_domid)
{
	uint64_t v;
	char *s;

	/* A relative path is relative to our own domain's home: /local/domain/<self>/domid. */
	s = xsw_read(d->xsw, "domid");
	if (!s) {
		log_err("cannot read our domain id from xenstore key 'domid': %m; "
			"use --backend-domid");
		return -ENOENT;
	}
	if (disk_cfg_parse_u64(s, &v) < 0 || v >= 0x7ff0) {
		log_err("xenstore key 'domid' is '%.16s', not a domain id; use --backend-domid", s);
		free(s);
		return -EINVAL;
	}
	free(s);
	*ret_domid = (unsigned int)v;
	return 0;
}

/*
 * A mapping of @guest was refused for its budget and something was released
 * since: its disks' queues that wait may map again.  @guest NULL: the limit
 * of all guests was in the way, and room may have come from any of them.
 */
static void daemon_room(void *data, struct guest *guest)
{
	struct daemon *d = data;

	for (struct dguest *g = d->guests; g; g = g->next) {
		if (guest && g->guest != guest)
			continue;
		for (struct ddisk *k = g->disks; k; k = k->next)
			if (k->vblk)
				vblk_poll_soon(k->vblk);
	}
}

int daemon_new(struct loop *loop, const struct daemon_opts *opts, struct daemon **ret_daemon)
{
	struct daemon *d = calloc(1, sizeof(*d));
	int r;

	if (!d)
		return -ENOMEM;
	d->loop = loop;
	d->opts = *opts;
	d->started = daemon_now();
	r = xsw_open(loop, &d->xsw);
	if (r < 0) {
		log_err("cannot connect to xenstore: %s; is xenstored running?", strerror(-r));
		goto err_free;
	}
	if (opts->backend_domid == DAEMON_DOMID_SELF) {
		r = daemon_read_domid(d, &d->backend_domid);
		if (r < 0)
			goto err_xsw;
	} else {
		d->backend_domid = opts->backend_domid;
	}
	r = guest_sys_open(&d->sys);
	if (r < 0)
		goto err_xsw;
	guest_sys_set_room(d->sys, daemon_room, d);
	r = disc_new(d->xsw, d->backend_domid, &daemon_disc_ops, d, &d->disc);
	if (r < 0) {
		log_err("cannot watch /local/domain/%u/backend/virtio_disk: %s", d->backend_domid,
			strerror(-r));
		goto err_sys;
	}
	log_info("watching /local/domain/%u/backend/virtio_disk (engine %s, %u queue%s per disk)",
		 d->backend_domid, blk_engine_name(opts->engine), opts->queues,
		 opts->queues == 1 ? "" : "s");
	*ret_daemon = d;
	return 0;

err_sys:
	guest_sys_close(d->sys);
err_xsw:
	xsw_close(d->xsw);
err_free:
	free(d);
	return r;
}

void daemon_refresh(struct daemon *d)
{
	struct dguest *g;
	struct ddisk *k;

	for (g = d->guests; g; g = g->next) {
		for (k = g->disks; k; k = k->next) {
			struct blk_info info;
			int r;

			if (!k->vblk)
				continue;
			r = blk_refresh_info(k->blk);
			if (r < 0) {
				log_warn("%s: cannot re-read the size of '%s': %s", k->name, k->path,
					 strerror(-r));
				continue;
			}
			if (r == 0)
				continue;
			info = daemon_disk_info(k);
			/* New capacity in the config space, ConfigGeneration bumped, config interrupt. */
			vblk_set_info(k->vblk, &info);
			log_info("%s: '%s' is now %llu bytes; the guest is told", k->name, k->path,
				 (unsigned long long)info.capacity);
		}
	}
}

void daemon_shutdown(struct daemon *d, int code)
{
	struct dguest *g, *gnext;
	struct ddisk *k, *knext;

	if (d->shutting_down)
		return;
	d->shutting_down = true;
	d->exit_code = code;
	/* No new disks; existing ones stop taking requests and drain. */
	disc_free(d->disc);
	d->disc = NULL;
	for (g = d->guests; g; g = gnext) {
		gnext = g->next;
		for (k = g->disks; k; k = knext) {
			knext = k->next;
			/* The last disk's release may free g; gnext was taken before. */
			if (!k->closing)
				daemon_disk_stop(k);
		}
	}
	daemon_maybe_stop(d);
}

void daemon_free(struct daemon *d)
{
	if (!d)
		return;
	/* Anything left (loop stopped early) is released synchronously. */
	while (d->guests) {
		struct dguest *g = d->guests;
		struct ddisk *k = g->disks;

		if (!k) {
			daemon_guest_release(g);
			continue;
		}
		vmmio_destroy(k->regs);
		k->regs = NULL;
		vblk_destroy(k->vblk);
		k->vblk = NULL;
		/* blk_close() waits for what is in flight; the orphans unmap through the guest. */
		k->closing = false;
		daemon_disk_release(k);	/* frees g with its last disk */
	}
	disc_free(d->disc);
	guest_sys_close(d->sys);
	xsw_close(d->xsw);
	free(d);
}

unsigned int daemon_guest_count(const struct daemon *d)
{
	const struct dguest *g;
	unsigned int n = 0;

	for (g = d->guests; g; g = g->next)
		n++;
	return n;
}

unsigned int daemon_disk_count(const struct daemon *d)
{
	const struct dguest *g;
	const struct ddisk *k;
	unsigned int n = 0;

	for (g = d->guests; g; g = g->next)
		for (k = g->disks; k; k = k->next)
			n++;
	return n;
}

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

static struct json_object *daemon_disk_json(const struct ddisk *k, uint64_t now)
{
	struct json_object *o = json_object_new_object(), *feats = json_object_new_array();
	struct vblk_stats st = { 0 };
	struct virtio_dev *v = k->vblk ? vblk_virtio_dev(k->vblk) : NULL;
	uint64_t f = v ? virtio_dev_features(v) : 0;
	size_t i;

	if (k->vblk)
		vblk_get_stats(k->vblk, &st);
	for (i = 0; i < sizeof(daemon_feature_names) / sizeof(daemon_feature_names[0]); i++)
		if (f & (1ull << daemon_feature_names[i].bit))
			json_object_array_add(feats, json_object_new_string(daemon_feature_names[i].name));
	daemon_add_u64(o, "devid", k->devid);
	json_object_object_add(o, "vdev", k->vdev ? json_object_new_string(k->vdev) : NULL);
	json_object_object_add(o, "path", json_object_new_string(k->path));
	json_object_object_add(o, "mode", json_object_new_string(k->read_only ? "ro" : "rw"));
	json_object_object_add(o, "engine",
			       json_object_new_string(blk_engine_name(blk_get_info(k->blk)->engine)));
	json_object_object_add(o, "state", json_object_new_string(
		k->closing ? "closing" : v && virtio_dev_running(v) ? "running" : "waiting for driver"));
	json_object_object_add(o, "features", feats);
	daemon_add_u64(o, "queues", v ? virtio_dev_num_queues(v) : 0);
	daemon_add_u64(o, "capacity_bytes", blk_get_info(k->blk)->capacity);
	daemon_add_u64(o, "read_requests", st.read_reqs);
	daemon_add_u64(o, "read_bytes", st.read_bytes);
	daemon_add_u64(o, "write_requests", st.write_reqs);
	daemon_add_u64(o, "write_bytes", st.write_bytes);
	daemon_add_u64(o, "flush_requests", st.flush_reqs);
	daemon_add_u64(o, "discard_requests", st.discard_reqs + st.write_zeroes_reqs);
	daemon_add_u64(o, "errors", st.io_errors + st.unsupported + st.ring_errors);
	daemon_add_u64(o, "map_waits", st.map_waits);
	daemon_add_u64(o, "in_flight", blk_inflight(k->blk));
	daemon_add_u64(o, "uptime_seconds", now - k->started);
	return o;
}

char *daemon_status_json(const struct daemon *d)
{
	struct json_object *root = json_object_new_object(), *guests = json_object_new_array();
	const struct dguest *g;
	const struct ddisk *k;
	uint64_t now = daemon_now();
	char *out;

	json_object_object_add(root, "version", json_object_new_string(VBLKD_VERSION));
	daemon_add_u64(root, "backend_domid", d->backend_domid);
	daemon_add_u64(root, "uptime_seconds", now - d->started);
	json_object_object_add(root, "engine", json_object_new_string(blk_engine_name(d->opts.engine)));
	for (g = d->guests; g; g = g->next) {
		struct json_object *jg = json_object_new_object(), *disks = json_object_new_array();
		struct guest_stats gs;

		guest_get_stats(g->guest, &gs);
		daemon_add_u64(jg, "domid", g->domid);
		json_object_object_add(jg, "name", g->name ? json_object_new_string(g->name) : NULL);
		daemon_add_u64(jg, "vcpus", guest_nr_vcpus(g->guest));
		daemon_add_u64(jg, "mmio_accesses", gs.ioreqs);
		daemon_add_u64(jg, "bad_accesses", gs.bad_ioreqs);
		daemon_add_u64(jg, "interrupts", gs.irqs);
		{
			struct json_object *mc = json_object_new_object();

			daemon_add_u64(mc, "hits", gs.mem.hits);
			daemon_add_u64(mc, "misses", gs.mem.misses);
			daemon_add_u64(mc, "evictions", gs.mem.evictions);
			daemon_add_u64(mc, "uncached", gs.mem.uncached);
			daemon_add_u64(mc, "cached_chunks", gs.mem.cached_chunks);
			daemon_add_u64(mc, "in_use", gs.mem.live);
			daemon_add_u64(mc, "mapped_pages", gs.mem.pages);
			daemon_add_u64(mc, "mappings", gs.mem.maps);
			daemon_add_u64(mc, "peak_mapped_pages", gs.mem.peak_pages);
			daemon_add_u64(mc, "peak_mappings", gs.mem.peak_maps);
			daemon_add_u64(mc, "budget_waits", gs.mem.budget_waits);
			json_object_object_add(jg, "memory_cache", mc);
		}
		for (k = g->disks; k; k = k->next)
			json_object_array_add(disks, daemon_disk_json(k, now));
		json_object_object_add(jg, "disks", disks);
		json_object_array_add(guests, jg);
	}
	json_object_object_add(root, "guests", guests);
	out = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return out;
}
