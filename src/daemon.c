// SPDX-License-Identifier: GPL-2.0-only
/* The daemon's wiring: a disk found in xenstore becomes a virtio-blk device on its guest's IOREQ server. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>

#include "blk.h"
#include "daemon-internal.h"
#include "daemon-record.h"
#include "disc.h"
#include "disk-cfg.h"
#include "guest.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "util.h"
#include "vblk.h"
#include "vhost.h"
#include "vmmio.h"
#include "xsw.h"

uint64_t daemon_now(void)
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

/* A disk with grants: a request's header and status byte by grant copy, not by mapping. */
static const struct virtio_transport_ops daemon_grant_transport_ops = {
	.map = guest_mmio_map,
	.unmap = guest_mmio_unmap,
	.copy = guest_mmio_copy,
	.wait_room = guest_mmio_wait_room,
	.notify = guest_mmio_notify,
};

/* Keep the device state in the disk's record (after a guest access or a change of ours). */
static void daemon_disk_save(struct ddisk *k)
{
	int r;

	if (!k->rec || !k->vblk)
		return;
	r = drec_disk_save(k->rec, k->regs, k->vblk);
	if (r < 0)
		log_ratelimited(&k->rl, LOG_LEVEL_WARNING,
				"%s: cannot save its state for a restart: %s", k->name, strerror(-r));
}

void daemon_disk_exclude(const struct ddisk *k)
{
	for (unsigned int i = 1; i < k->nlanes; i++)
		pthread_mutex_lock(&k->lanes[i].lock);
}

void daemon_disk_admit(const struct ddisk *k)
{
	for (unsigned int i = k->nlanes; i-- > 1;)
		pthread_mutex_unlock(&k->lanes[i].lock);
}

/* A lane's thread goes into its disk's device (lane 0 is on the disk's thread: no lock). */
static void daemon_lane_lock(struct dlane *l)
{
	if (l->idx)
		pthread_mutex_lock(&l->lock);
}

static void daemon_lane_unlock(struct dlane *l)
{
	if (l->idx)
		pthread_mutex_unlock(&l->lock);
}

static uint64_t daemon_mmio_read(void *dev, uint64_t offset, unsigned int size)
{
	struct ddisk *k = dev;
	uint64_t v;

	/* A closing disk's window reads as nothing until it is unmapped. */
	if (!k->vblk)
		return 0;
	/* InterruptStatus: maybe on its guest's thread (daemon_mmio_ops.any_thread), atomic. */
	if (k->nlanes == 1 || vmmio_any_thread(offset, size, false))
		return vmmio_read(k->regs, offset, size);
	daemon_disk_exclude(k);
	v = vmmio_read(k->regs, offset, size);
	daemon_disk_admit(k);
	return v;
}

/* On a lane's thread: the QueueNotify writes handed to it by the disk's or the guest's thread. */
static void daemon_lane_notify(struct iothread_work *w)
{
	struct dlane *l = container_of(w, struct dlane, notify_work);
	uint64_t queues = __atomic_exchange_n(&l->notify, 0, __ATOMIC_ACQUIRE);

	pthread_mutex_lock(&l->lock);
	for (unsigned int q = 0; l->k->vblk && queues; q++, queues >>= 1)
		if (queues & 1)
			virtio_dev_queue_notify(vblk_virtio_dev(l->k->vblk), q);
	pthread_mutex_unlock(&l->lock);
}

/* On a lane's thread (1..): its guest's mappings may go on; its queues waiting for them look. */
static void daemon_lane_room(struct iothread_work *w)
{
	struct dlane *l = container_of(w, struct dlane, room_work);

	pthread_mutex_lock(&l->lock);
	if (l->k->vblk)
		vblk_lane_poll_soon(l->k->vblk, l->idx);
	pthread_mutex_unlock(&l->lock);
}

/* The lane whose thread takes a QueueNotify of @value: lane 0 also for a queue not there. */
static struct dlane *daemon_notify_lane(struct ddisk *k, uint64_t value)
{
	if (value >= virtio_dev_num_queues(vblk_virtio_dev(k->vblk)))
		return &k->lanes[0];
	return &k->lanes[value % k->nlanes];
}

/*
 * A QueueNotify of a disk with several lanes: taken here for lane 0's queues
 * (this is its thread), handed to the lane's thread for the others, from
 * the disk's thread or straight from the guest's (daemon_mmio_any_thread()).
 * The vCPU waits for neither (vmmio_write_posted()).
 */
static void daemon_lanes_notify(struct ddisk *k, uint64_t offset, unsigned int size,
				uint64_t value)
{
	struct dlane *l = daemon_notify_lane(k, value);

	if (l->idx == 0) {
		vmmio_write(k->regs, offset, size, value);
		return;
	}
	__atomic_fetch_or(&l->notify, 1ull << value, __ATOMIC_RELEASE);
	__atomic_add_fetch(iothread_is_current(k->th->t) ? &l->handed_on : &l->from_guest_thread,
			   1, __ATOMIC_RELAXED);
	iothread_queue(l->th->t, &l->notify_work);
}

/*
 * What the guest's thread does itself when the disk is another thread's
 * (guest.c, under the lock that keeps the window, so k->vblk and k->regs
 * stay): InterruptStatus and its ACK, and a QueueNotify for a queue of lane
 * 1.., handed straight to that lane's thread rather than through the disk's.
 */
static bool daemon_mmio_any_thread(void *dev, uint64_t offset, unsigned int size, bool write,
				   uint64_t value)
{
	struct ddisk *k = dev;

	if (vmmio_any_thread(offset, size, write))
		return true;
	return write && k->nlanes > 1 && k->vblk && vmmio_is_queue_notify(offset, size) &&
	       daemon_notify_lane(k, value)->idx != 0;
}

static bool daemon_mmio_write(void *dev, uint64_t offset, unsigned int size, uint64_t value)
{
	struct ddisk *k = dev;
	bool done;

	if (!k->vblk)
		return true;
	/* Maybe on its guest's thread (daemon_mmio_ops.any_thread): nothing else of k's is touched. */
	if (vmmio_any_thread(offset, size, true)) {
		vmmio_write(k->regs, offset, size, value);
		return true;
	}
	if (k->nlanes > 1 && vmmio_is_queue_notify(offset, size)) {
		daemon_lanes_notify(k, offset, size, value);
		return true;
	}
	daemon_disk_exclude(k);
	vmmio_write(k->regs, offset, size, value);
	/* Saved before the vCPU is answered: a successor repeats the access or starts after it. */
	if (k->rec && vmmio_write_saves(offset))
		daemon_disk_save(k);
	/*
	 * A reset with requests still in the backend: the vCPU waits until they
	 * are done, so the driver cannot reuse buffers they may still write.
	 * Each lane with some tells the disk's thread when they are (k->resume).
	 */
	done = !vblk_draining(k->vblk);
	for (unsigned int i = 0; !done && k->nlanes > 1 && i < k->nlanes; i++)
		k->lanes[i].draining = vblk_lane_draining(k->vblk, i);
	daemon_disk_admit(k);
	return done;
}

/* On the disk's thread: a lane's reset orphans are done; answer the vCPU if all lanes' are. */
static void daemon_disk_resume(struct iothread_work *w)
{
	struct ddisk *k = container_of(w, struct ddisk, resume);
	bool draining;

	if (!k->vblk)
		return;
	daemon_disk_exclude(k);
	draining = vblk_draining(k->vblk);
	daemon_disk_admit(k);
	if (!draining)
		guest_mmio_resume(k->mmio);
}

static const struct guest_mmio_ops daemon_mmio_ops = {
	.read = daemon_mmio_read,
	.write = daemon_mmio_write,
	.posted = vmmio_write_posted,
	.any_thread = daemon_mmio_any_thread,
};

/* The backend of each lane of a disk's device is the lane (vblk_set_lane_backend()). */
static int daemon_be_submit(void *be, struct blk_req *req)
{
	struct dlane *l = be;

	return blk_submit(l->blk, req);
}

static void daemon_be_unplug(void *be)
{
	struct dlane *l = be;

	blk_unplug(l->blk);
}

/* The lane's ring poll timer (vblk decides when and how it backs off). */
static int daemon_be_set_timer(void *be, uint64_t us)
{
	struct dlane *l = be;
	int r = loop_timer_set(l->poll_timer, us, 0);

	if (r < 0)
		log_ratelimited(&l->rl, LOG_LEVEL_WARNING, "%s: cannot arm the ring poll timer: %s",
				l->k->name, strerror(-r));
	return r;
}

static void daemon_poll_timer(struct loop_source *src, uint64_t expirations, void *data)
{
	struct dlane *l = data;

	daemon_lane_lock(l);
	if (l->k->vblk)
		vblk_lane_timer_expired(l->k->vblk, l->idx);
	daemon_lane_unlock(l);
}

static bool daemon_busy_poll_phase(struct vblk_dev *vblk, unsigned int lane,
				   enum loop_poll_phase phase)
{
	switch (phase) {
	case LOOP_POLL_BEGIN:
		vblk_lane_busy_poll_begin(vblk, lane);
		return false;
	case LOOP_POLL_RUN:
		return vblk_lane_busy_poll(vblk, lane);
	case LOOP_POLL_END:
		return vblk_lane_busy_poll_end(vblk, lane);
	}
	return false;
}

/* The loop's busy polling (daemon_opts.poll_us): the lane looks at its rings by itself. */
static bool daemon_busy_poll(struct loop_source *src, enum loop_poll_phase phase, void *data)
{
	struct dlane *l = data;
	bool r = false;

	daemon_lane_lock(l);
	if (l->k->vblk)
		r = daemon_busy_poll_phase(l->k->vblk, l->idx, phase);
	daemon_lane_unlock(l);
	return r;
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

/* On @l's thread: its engine and what watches it go (nothing in flight; its device is gone). */
static void daemon_lane_close(struct dlane *l)
{
	for (unsigned int i = 0; i < l->nqueues; i++)
		loop_remove(l->queues[i].src);
	free(l->queues);
	l->queues = NULL;
	l->nqueues = 0;
	if (l->th) {
		iothread_cancel(l->th->t, &l->notify_work);
		iothread_cancel(l->th->t, &l->room_work);
	}
	loop_remove(l->blk_src);
	loop_remove(l->poll_timer);
	loop_remove(l->busy_poll);
	blk_close(l->blk);
	l->blk_src = l->poll_timer = l->busy_poll = NULL;
	l->blk = NULL;
}

static void daemon_lane_close_run(void *data)
{
	daemon_lane_close(data);
}

/* Lanes 1.. of @k closed on their threads (main thread), before @k is freed on its own. */
static void daemon_disk_lanes_close(struct ddisk *k)
{
	for (unsigned int i = 1; i < k->nlanes; i++)
		if (k->lanes[i].th)
			daemon_thread_call(k->lanes[i].th, daemon_lane_close_run, &k->lanes[i]);
}

/* Release what @k holds, however far it was set up (NULL too); nothing may be in flight. */
static void daemon_disk_free(struct ddisk *k)
{
	if (!k)
		return;
	/* On k's thread, which queues the work: once taken off here, it never runs. */
	iothread_cancel(k->dg->d->main, &k->idle);
	if (k->th)
		iothread_cancel(k->th->t, &k->resume);
	guest_mmio_close(k->mmio);
	vmmio_destroy(k->regs);
	vblk_destroy(k->vblk);
	/* Lanes 1.. were closed on their threads before (daemon_disk_lanes_close()). */
	if (k->lanes)
		daemon_lane_close(&k->lanes[0]);
	guest_mmio_remove(k->mmio);
	/* A successor needs the record only while Xen still routes the guest's accesses to it. */
	drec_disk_close(k->rec, !k->dg->d->detaching);
	for (unsigned int i = 0; i < k->nlanes; i++)
		pthread_mutex_destroy(&k->lanes[i].lock);
	free(k->lanes);
	free(k->path);
	free(k->vdev);
	free(k);
}

/* On @g's thread: it is served no more. */
static void daemon_guest_unserve(void *data)
{
	struct dguest *g = data;

	slist_remove(&g->th->guests, g, tnext);
	guest_free(g->guest, g->dead);
}

/* Off its thread's and the daemon's lists, its IOREQ server released (or left, detaching). */
static void daemon_guest_forget(struct dguest *g)
{
	/*
	 * Its disks are gone; what its threads had queued for it before (a
	 * vCPU's access handed over, a room call) has run, or is cancelled.
	 */
	daemon_threads_barrier(g->d);
	daemon_guest_room_free(g);
	daemon_thread_call(g->th, daemon_guest_unserve, g);
	g->th->nguests--;
	slist_remove(&g->d->guests, g, next);
}

static void daemon_guest_release(struct dguest *g)
{
	struct daemon *d = g->d;

	daemon_guest_forget(g);
	if (d->detaching) {
		log_info("dom %u: left to the next vblkd", g->domid);
	} else {
		if (d->rec_dir)
			drec_guest_remove(d->rec_dir, g->domid);
		log_info("dom %u: released%s", g->domid, g->dead ? " (guest gone)" : "");
	}
	free(g->name);
	free(g);
	daemon_maybe_stop(d);
}

/* On @k's thread: off its thread's list, and freed. */
static void daemon_disk_unserve(void *data)
{
	struct ddisk *k = data;

	slist_remove(&k->th->disks, k, tnext);
	daemon_disk_free(k);	/* nothing in flight: blk_close() does not block */
}

/* Everything of the disk is idle: free it, and the guest with its last disk.  On the main thread. */
static void daemon_disk_release(struct ddisk *k)
{
	struct dguest *g = k->dg;
	struct daemon *d = g->d;
	bool answer = k->state == DDISK_CLOSING && !d->shutting_down;
	bool released = k->state == DDISK_CLOSING && d->releasing;
	unsigned int domid = g->domid, devid = k->devid;

	log_info("%s: %s", k->name, d->detaching ? "detached" : "closed");
	for (unsigned int i = 0; i < k->nlanes; i++)
		k->lanes[i].th->ndisks--;	/* lane 0's is k->th */
	slist_remove(&g->disks, k, next);
	daemon_disk_lanes_close(k);
	daemon_thread_call(k->th, daemon_disk_unserve, k);
	/* Everything is released before Closed is written: the toolstack may destroy the domain then. */
	if (!g->disks)
		daemon_guest_release(g);
	if (answer)
		disc_closed(d->disc, domid, devid);
	else if (released && d->disc)
		disc_released(d->disc, domid, devid);
	daemon_changed(d);
}

static void daemon_disk_idle(struct iothread_work *w)
{
	daemon_disk_release(container_of(w, struct ddisk, idle));
}

/* The end of a batch of @l's completions (delivered already), on its thread, in its lock. */
void daemon_blk_done(struct dlane *l)
{
	struct ddisk *k = l->k;

	if (k->vblk) {
		/* One used-index update and at most one interrupt for the whole batch. */
		vblk_lane_complete_batch(k->vblk, l->idx);
		if (k->nlanes == 1) {
			if (!vblk_draining(k->vblk))
				guest_mmio_resume(k->mmio);
		} else if (l->draining && !vblk_lane_draining(k->vblk, l->idx)) {
			/* Other lanes' orphans may hold the vCPU still: the disk's thread looks. */
			l->draining = false;
			iothread_queue(k->th->t, &k->resume);
		}
	} else if (l->busy && blk_inflight(l->blk) == 0) {
		/* Stopped and idle, the last lane of it: the lists and xenstore are the main thread's. */
		l->busy = false;
		if (__atomic_sub_fetch(&k->busy_lanes, 1, __ATOMIC_ACQ_REL) > 0)
			return;
		if (iothread_is_current(k->dg->d->main))
			daemon_disk_release(k);
		else
			iothread_queue(k->dg->d->main, &k->idle);
	}
}

static void daemon_blk_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct dlane *l = data;
	/* Lane 0 on the main loop (--io-threads=0) may be freed by daemon_blk_done(). */
	bool locked = l->idx != 0;
	int r;

	if (locked)
		pthread_mutex_lock(&l->lock);
	r = blk_process(l->blk);
	if (r < 0)
		log_ratelimited(&l->rl, LOG_LEVEL_ERR, "%s: reaping IO completions failed: %s",
				l->k->name, strerror(-r));
	daemon_blk_done(l);
	if (locked)
		pthread_mutex_unlock(&l->lock);
}

struct daemon_stop {
	struct ddisk *k;
	enum ddisk_state state;
	unsigned int inflight;
};

/* On the disk's thread: the device goes; what is in flight then. */
static void daemon_disk_stop_run(void *data)
{
	struct daemon_stop *s = data;
	struct ddisk *k = s->k;
	unsigned int busy = 0;

	/* Its guest's thread no longer reads InterruptStatus itself (daemon_mmio_ops.any_thread). */
	guest_mmio_close(k->mmio);
	daemon_disk_exclude(k);
	vmmio_destroy(k->regs);
	k->regs = NULL;
	vblk_destroy(k->vblk);
	k->vblk = NULL;
	k->state = s->state;
	for (unsigned int i = 0; i < k->nlanes; i++) {
		struct dlane *l = &k->lanes[i];
		unsigned int n = l->blk ? blk_inflight(l->blk) : 0;	/* NULL: setup failed */

		l->busy = n > 0;
		busy += l->busy;
		s->inflight += n;
	}
	/* Each busy lane counts itself off when its engine is idle (daemon_blk_done()). */
	__atomic_store_n(&k->busy_lanes, busy, __ATOMIC_RELEASE);
	daemon_disk_admit(k);
}

/*
 * Stop serving @k, which goes to @state: the device goes away at once
 * (requests still in the engine are orphaned and only unmap their buffers
 * when they finish); the rest is released when the engine is idle.  Returns
 * 1 if that is later.
 */
static int daemon_disk_stop(struct ddisk *k, enum ddisk_state state)
{
	struct daemon_stop s = { .k = k, .state = state };

	daemon_thread_call(k->th, daemon_disk_stop_run, &s);
	if (s.inflight) {
		log_info("%s: closing after %u requests in flight", k->name, s.inflight);
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
		.ctx = k->th->blk_ctx,
	};
	const struct blk_info *info;
	const char *why = NULL;
	int r;

	r = blk_open(cfg->path, &bo, &k->lanes[0].blk, &why);
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
	info = blk_get_info(k->lanes[0].blk);
	if (info->engine_fallback_err)
		log_warn("%s: io_uring unavailable (%s): using libaio", k->name,
			 strerror(-info->engine_fallback_err));
	if (info->capacity < VIRTIO_BLK_SECTOR_SIZE)
		log_warn("%s: '%s' is smaller than one sector: the guest sees an empty disk", k->name,
			 cfg->path);
	return 0;
}

struct blk_info daemon_disk_info(const struct ddisk *k)
{
	struct blk_info info = *blk_get_info(k->lanes[0].blk);

	info.read_only = info.read_only || k->read_only;
	info.discard = info.discard && k->discard && !info.read_only;
	return info;
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
		log_err("%s: %s%s; not served", k->name, d->why,
			o->state != DDISK_SERVING ? " (being closed)" : "");
		*ret_why = d->why;
		return r;
	}
	return 0;
}

/* Forget every record of @domid (the guest's and its disks'). */
struct daemon_drop {
	struct drec_dir *dir;
	unsigned int domid;
};

static void daemon_drop_records_cb(void *data, unsigned int domid, int devid)
{
	const struct daemon_drop *drop = data;

	if (domid != drop->domid)
		return;
	if (devid < 0)
		drec_guest_remove(drop->dir, domid);
	else
		drec_disk_remove(drop->dir, domid, (unsigned int)devid);
}

static void daemon_drop_records(struct daemon *d, unsigned int domid)
{
	struct daemon_drop drop = { .dir = d->rec_dir, .domid = domid };

	drec_list(d->rec_dir, daemon_drop_records_cb, &drop);
}

/*
 * A previous vblkd was killed while it created a server for the guest of
 * @rec (same domain): a server that exists now and did not then is that
 * one, unknown to anyone else and with no range mapped yet.
 */
static void daemon_destroy_orphans(struct daemon *d, const struct drec_guest *rec)
{
	uint32_t orphans = guest_sys_servers(d->sys, rec->domid) & ~rec->servers_before;

	for (unsigned int id = 0; orphans >> id; id++) {
		if (!(orphans & (1u << id)))
			continue;
		guest_sys_destroy_server(d->sys, rec->domid, id);
		log_notice("dom %u: IOREQ server %u was left by a vblkd killed while creating it: "
			   "destroyed", rec->domid, id);
	}
}

/* Record that a server is about to be created for @g (see DREC_SERVER_PENDING). */
static void daemon_guest_record_pending(struct daemon *d, const struct dguest *g)
{
	struct drec_guest rec = { .domid = g->domid, .server_id = DREC_SERVER_PENDING };

	rec.servers_before = guest_sys_servers(d->sys, g->domid);
	memcpy(rec.handle, g->handle, sizeof(rec.handle));
	if (drec_guest_write(d->rec_dir, &rec) < 0)
		log_warn("dom %u: cannot write its record in %s: %m", g->domid,
			 drec_dir_path(d->rec_dir));
}

/*
 * At start-up, the IOREQ server a previous vblkd recorded for @g's domain,
 * if the record is of this very domain (domid and handle).  Records that do
 * not fit are dropped with a log line.  0 adopted; else set up afresh.
 */
static int daemon_guest_adopt(struct daemon *d, struct dguest *g)
{
	struct drec_guest rec;
	int r = drec_guest_read(d->rec_dir, g->domid, &rec);

	if (r == -ENOENT)
		return r;
	if (r == 0 && rec.server_id == DREC_SERVER_PENDING) {
		if (!memcmp(rec.handle, g->handle, sizeof(rec.handle)))
			daemon_destroy_orphans(d, &rec);
		drec_guest_remove(d->rec_dir, g->domid);
		return -ENOENT;
	}
	if (r < 0) {
		log_warn("dom %u: its record in %s is %s: dropped", g->domid,
			 drec_dir_path(d->rec_dir),
			 r == -EPROTONOSUPPORT ? "of another vblkd version" : "unusable");
		daemon_drop_records(d, g->domid);
		return r;
	}
	if (memcmp(rec.handle, g->handle, sizeof(rec.handle))) {
		log_notice("dom %u: the record of IOREQ server %u is of an earlier domain with this "
			   "domid (another UUID): dropped", g->domid, rec.server_id);
		daemon_drop_records(d, g->domid);
		return -ESTALE;
	}
	r = guest_adopt(d->sys, g->th->loop, g->domid, rec.server_id, &g->guest);
	if (r < 0) {
		log_warn("dom %u: cannot adopt IOREQ server %u: %s; its record is dropped", g->domid,
			 rec.server_id, strerror(-r));
		daemon_drop_records(d, g->domid);
		return r;
	}
	g->adopted = true;
	return 0;
}

struct daemon_guest_start {
	struct dguest *g;
	int r;
};

/* On the guest's thread: its IOREQ server, adopted or new, watched by that thread's loop. */
static void daemon_guest_start(void *data)
{
	struct daemon_guest_start *s = data;
	struct dguest *g = s->g;
	struct daemon *d = g->d;
	unsigned int domid = g->domid;
	int r;

	if (!d->adopting || !d->rec_dir || daemon_guest_adopt(d, g) < 0) {
		if (d->rec_dir)
			daemon_guest_record_pending(d, g);
		r = guest_new(d->sys, g->th->loop, domid, &g->guest);
		if (r < 0) {
			if (d->rec_dir)
				drec_guest_remove(d->rec_dir, domid);
			s->r = r;
			return;
		}
		if (d->rec_dir) {
			struct drec_guest rec = { .domid = domid,
						  .server_id = guest_server_id(g->guest) };

			memcpy(rec.handle, g->handle, sizeof(rec.handle));
			r = drec_guest_write(d->rec_dir, &rec);
			if (r < 0)
				log_warn("dom %u: cannot record its IOREQ server in %s: %s; a restarted "
					 "vblkd cannot serve it", domid, drec_dir_path(d->rec_dir),
					 strerror(-r));
		}
	}
	guest_set_data(g->guest, g);
	slist_push(&g->th->guests, g, tnext);
}

/* The guest of @domid, with its IOREQ server set up if it is new (then *@ret_new).  Logged. */
static int daemon_guest_get(struct daemon *d, unsigned int domid, struct dguest **ret_guest,
			    bool *ret_new, const char **ret_why)
{
	struct dguest *g = daemon_find_guest(d, domid);
	struct daemon_guest_start s = { 0 };
	char path[64];

	if (g) {
		*ret_guest = g;
		*ret_new = false;
		return 0;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		log_err("dom %u: cannot set up the guest: %s", domid, strerror(ENOMEM));
		return -ENOMEM;
	}
	g->d = d;
	g->domid = domid;
	g->th = daemon_thread_pick(d);
	if (daemon_guest_room_new(g) < 0) {
		log_err("dom %u: cannot set up the guest: %s", domid, strerror(ENOMEM));
		free(g);
		return -ENOMEM;
	}
	if (d->rec_dir && guest_sys_domain_handle(d->sys, domid, g->handle) < 0)
		log_warn("dom %u: no such domain (dying?)", domid);
	s.g = g;
	daemon_thread_call(g->th, daemon_guest_start, &s);
	if (s.r < 0) {
		daemon_guest_room_free(g);
		free(g);
		*ret_why = "cannot set up an IOREQ server for the guest (see the vblkd log)";
		return s.r;
	}
	g->th->nguests++;
	slist_push(&d->guests, g, next);
	if (d->opts.io_threads)
		log_info("dom %u: served by %s", domid, iothread_name(g->th->t));
	snprintf(path, sizeof(path), "/local/domain/%u/name", domid);
	g->name = xsw_read(d->xsw, path);	/* for operators only: may be absent */
	*ret_guest = g;
	*ret_new = true;
	return 0;
}

/* A guest set up for a disk that was then refused goes again (quietly: it served nothing). */
static void daemon_guest_drop_unused(struct dguest *g)
{
	if (g->disks)
		return;
	daemon_guest_forget(g);
	if (g->d->rec_dir)
		drec_guest_remove(g->d->rec_dir, g->domid);
	free(g->name);
	free(g);
}

/*
 * A disk of @g as @cfg describes it, with @nlanes lanes (no threads yet), on
 * no list and serving nothing yet; NULL if out of memory.
 */
static struct ddisk *daemon_disk_new(struct dguest *g, const struct disk_cfg *cfg,
				     unsigned int nlanes)
{
	struct ddisk *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	k->lanes = calloc(nlanes, sizeof(*k->lanes));
	if (!k->lanes) {
		free(k);
		return NULL;
	}
	k->nlanes = nlanes;
	for (unsigned int i = 0; i < nlanes; i++) {
		struct dlane *l = &k->lanes[i];

		*l = (struct dlane){ .k = k, .idx = i, .rl = LOG_RATELIMIT_GUEST };
		l->notify_work.fn = daemon_lane_notify;
		l->room_work.fn = daemon_lane_room;
		pthread_mutex_init(&l->lock, NULL);
	}
	k->dg = g;
	k->idle.fn = daemon_disk_idle;
	k->resume.fn = daemon_disk_resume;
	k->devid = cfg->devid;
	k->state = DDISK_SERVING;
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
		daemon_disk_free(k);
		return NULL;
	}
	return k;
}

/* What a disk's record must match to be adopted. */
static void daemon_disk_identity(const struct ddisk *k, const struct disk_cfg *cfg,
				 unsigned int num_queues, struct drec_disk_id *id)
{
	memset(id, 0, sizeof(*id));
	id->domid = k->dg->domid;
	id->devid = k->devid;
	memcpy(id->handle, k->dg->handle, sizeof(id->handle));
	id->base = cfg->base;
	id->irq = cfg->irq;
	id->grants = cfg->grants;
	id->read_only = daemon_disk_info(k).read_only;
	id->num_queues = num_queues;
	id->queue_num_max = virtio_dev_queue_num_max(vblk_virtio_dev(k->vblk));
	id->journal_size = virtio_dev_journal_size(vblk_virtio_dev(k->vblk));
	snprintf(id->path, sizeof(id->path), "%s", cfg->path);
}

/* Hand each queue its journal in the record. */
static int daemon_disk_journals(struct ddisk *k, unsigned int num_queues)
{
	for (unsigned int i = 0; i < num_queues; i++) {
		size_t size;
		void *j = drec_disk_journal(k->rec, i, &size);
		int r = virtio_dev_set_journal(vblk_virtio_dev(k->vblk), i, j, size);

		if (r < 0)
			return r;
	}
	return 0;
}

/* A record for a successor, from now on (logged; the disk is served without one on failure). */
static void daemon_disk_record(struct daemon *d, struct ddisk *k, const struct disk_cfg *cfg,
			       unsigned int num_queues)
{
	struct drec_disk_id *id = malloc(sizeof(*id));
	int r = id ? 0 : -ENOMEM;

	if (r == 0) {
		daemon_disk_identity(k, cfg, num_queues, id);
		r = drec_disk_create(d->rec_dir, id, &k->rec);
	}
	free(id);
	if (r == 0)
		r = daemon_disk_journals(k, num_queues);
	if (r == 0)
		r = drec_disk_save(k->rec, k->regs, k->vblk);
	if (r < 0) {
		log_warn("%s: cannot keep its record in %s: %s; a restarted vblkd cannot serve it",
			 k->name, drec_dir_path(d->rec_dir), strerror(-r));
		drec_disk_close(k->rec, true);
		k->rec = NULL;
		for (unsigned int i = 0; i < num_queues; i++)
			virtio_dev_set_journal(vblk_virtio_dev(k->vblk), i, NULL, 0);
	}
}

/*
 * Take up the device where the previous process left it: its registers,
 * features, queues from their journals (requests in flight resubmitted),
 * then an interrupt in case one was lost.  -errno when the record cannot
 * be used (logged): the device is then as new.
 */
static int daemon_disk_restore(struct ddisk *k, unsigned int num_queues)
{
	struct virtio_dev_state *vst = NULL;
	struct vmmio_state regs;
	struct vblk_state bs;
	size_t size;
	int r;

	r = drec_disk_load(k->rec, &regs, &bs, &vst, &size);
	if (r == 0)
		r = daemon_disk_journals(k, num_queues);
	if (r == 0)
		r = vmmio_restore(k->regs, &regs);
	if (r == 0)
		r = vblk_restore(k->vblk, &bs, vst, size);
	free(vst);
	if (r < 0) {
		log_err("%s: its recorded state is unusable (%s): serving it as a new device; the "
			"guest's driver may need a reset or a reboot", k->name,
			r == -ENOENT ? "never saved whole" : strerror(-r));
		return r;
	}
	/* InterruptStatus is not kept on every change: raise it, a spurious one is harmless. */
	if (virtio_dev_running(vblk_virtio_dev(k->vblk)))
		virtio_dev_raise(vblk_virtio_dev(k->vblk), VIRTIO_MMIO_INT_VRING);
	drec_disk_adopted(k->rec);
	return 0;
}

/* The kernel fast path for @k's queues and interrupt, where the kernel has it (fastpath.c). */
static int daemon_disk_fast_path(struct ddisk *k, unsigned int num_queues, const char **ret_why)
{
	int r = guest_mmio_fast_path(k->mmio, num_queues);

	if (r < 0) {
		log_err("%s: cannot set up the fast path: %s", k->name, strerror(-r));
		*ret_why = "out of memory";
	}
	return r;
}

/* The virtio-blk device, each lane's engine behind its queues, and its register decoder.  Logged. */
static int daemon_disk_device(struct ddisk *k, const struct vblk_config *vc, const char **ret_why)
{
	int r = vblk_create(vc, &k->transport, &daemon_backend_ops, &k->lanes[0], &k->vblk);

	for (unsigned int i = 1; r == 0 && i < vblk_num_lanes(k->vblk); i++)
		vblk_set_lane_backend(k->vblk, i, &k->lanes[i]);
	if (r == 0)
		r = vmmio_create(vblk_virtio_dev(k->vblk), &k->regs);
	if (r < 0) {
		log_err("%s: cannot create the virtio-blk device: %s", k->name, strerror(-r));
		*ret_why = "cannot create the virtio device";
	}
	return r;
}

/* @k's register window in its guest, served on @k's thread, and the transport over it.  Logged. */
static int daemon_disk_window(struct ddisk *k, const struct disk_cfg *cfg, const char **ret_why)
{
	int r = guest_mmio_add(k->dg->guest, cfg->base, DISK_CFG_MMIO_SIZE, cfg->irq, cfg->grants,
			       &daemon_mmio_ops, k, &k->mmio);

	if (r < 0) {
		log_err("%s: base 0x%llx irq %u: %s", k->name, (unsigned long long)cfg->base,
			cfg->irq,
			r == -EADDRINUSE ? "register window overlaps another disk of this guest" :
			r == -EOPNOTSUPP ? "grant mapping is unavailable in this domain" :
					   strerror(-r));
		*ret_why = r == -EADDRINUSE ? "base overlaps another disk" : "cannot claim the MMIO window";
		return r;
	}
	/* Its guest's vCPUs' accesses come to this thread (handed over unless it is the guest's). */
	guest_mmio_serve_on(k->mmio, k->th->t);
	k->transport.ops = cfg->grants ? &daemon_grant_transport_ops : &daemon_transport_ops;
	k->transport.opaque = k->mmio;
	k->transport.grants = cfg->grants;
	k->transport.max_map = GUEST_MAX_MAP;
	return 0;
}

/*
 * On @l's thread: its ring poll timer, busy polling and engine watched by
 * its loop (the engine through the thread's shared context if it is in one).
 * Logged.
 */
static int daemon_lane_watch(struct dlane *l, const char **ret_why)
{
	struct daemon *d = l->k->dg->d;
	int r;

	r = loop_add_timer(l->th->loop, LOOP_TIMER_DISARM, 0, daemon_poll_timer, l,
			   &l->poll_timer);
	if (r < 0) {
		log_err("%s: cannot create a timer: %s", l->k->name, strerror(-r));
		*ret_why = "cannot create a timer";
		return r;
	}
	if (d->opts.poll_us)
		r = loop_add_poll(l->th->loop, daemon_busy_poll, l, &l->busy_poll);
	if (r < 0) {
		log_err("%s: cannot poll its rings: %s", l->k->name, strerror(-r));
		*ret_why = "out of memory";
		return r;
	}
	/* A member of the shared context is watched through it (daemon_ctx_ready()). */
	blk_set_owner(l->blk, l);
	r = blk_in_ctx(l->blk) ? 0 :
		loop_add_fd(l->th->loop, blk_get_fd(l->blk), EPOLLIN, daemon_blk_ready, l,
			    &l->blk_src);
	if (r < 0) {
		log_err("%s: cannot watch the block engine: %s", l->k->name, strerror(-r));
		*ret_why = "cannot watch the block engine";
	}
	return r;
}

/* The queues of a new disk: --queues, or what an adopted device's driver knows. */
static unsigned int daemon_disk_num_queues(const struct daemon *d, const struct drec_disk *adopt)
{
	return adopt ? drec_disk_id(adopt)->num_queues : d->opts.queues;
}

/*
 * Claim @k's register window, create the device behind it and watch the
 * engine; the guest's accesses reach the device once the window is enabled,
 * last.  With @adopt (a record of a previous process that fits), the device
 * and its register window are taken over instead.  Logged; what
 * daemon_disk_free() releases is left to the caller.
 */
static int daemon_disk_start(struct daemon *d, struct ddisk *k, const struct disk_cfg *cfg,
			     struct drec_disk *adopt, const char **ret_why)
{
	struct vblk_config vc = { 0 };
	struct blk_info info;
	int r;

	r = daemon_disk_window(k, cfg, ret_why);
	if (r < 0)
		return r;
	info = daemon_disk_info(k);
	vc.name = k->name;
	vc.info = info;
	/* An adopted device keeps the shape its driver knows, whatever --queues says now. */
	vc.num_queues = daemon_disk_num_queues(d, adopt);
	vc.num_lanes = k->nlanes;
	vc.serial = cfg->vdev;
	r = daemon_lane_watch(&k->lanes[0], ret_why);
	if (r < 0)
		return r;
	r = daemon_disk_device(k, &vc, ret_why);
	if (r < 0)
		return r;
	if (adopt) {
		k->rec = adopt;
		if (daemon_disk_restore(k, vc.num_queues) == 0) {
			guest_mmio_adopt(k->mmio);
			return daemon_disk_fast_path(k, vc.num_queues, ret_why);
		}
		/* As new: a fresh record, and the range taken over by guest_mmio_enable(). */
		drec_disk_close(k->rec, true);
		k->rec = NULL;
		vmmio_destroy(k->regs);
		vblk_destroy(k->vblk);
		k->regs = NULL;
		k->vblk = NULL;
		r = daemon_disk_device(k, &vc, ret_why);
		if (r < 0)
			return r;
	}
	if (d->rec_dir)
		daemon_disk_record(d, k, cfg, vc.num_queues);
	r = guest_mmio_enable(k->mmio);
	if (r < 0) {
		log_err("%s: cannot route MMIO 0x%llx to the IOREQ server: %s", k->name,
			(unsigned long long)cfg->base, strerror(-r));
		*ret_why = "cannot map the MMIO range to the IOREQ server";
		return r;
	}
	/* After the range: a QueueNotify before this reaches the ioreq handler, as without it. */
	return daemon_disk_fast_path(k, vc.num_queues, ret_why);
}

/*
 * The record a previous vblkd left for this disk, if it fits the disk as
 * xenstore describes it now (and its guest was adopted); else NULL, the
 * record dropped with a log line.
 */
static struct drec_disk *daemon_disk_find_record(struct daemon *d, const struct dguest *g,
						 const struct disk_cfg *cfg)
{
	const struct drec_disk_id *id;
	struct drec_disk *rec;
	const char *why = NULL;
	int r;

	r = drec_disk_open(d->rec_dir, cfg->domid, cfg->devid, &rec);
	if (r == -ENOENT)
		return NULL;
	if (r < 0) {
		log_warn("dom %u disk %u: its record is %s: dropped", cfg->domid, cfg->devid,
			 r == -EPROTONOSUPPORT ? "of another vblkd version" : "unusable");
		drec_disk_remove(d->rec_dir, cfg->domid, cfg->devid);
		return NULL;
	}
	id = drec_disk_id(rec);
	if (!g->adopted)
		why = "its guest's IOREQ server was not adopted";
	else if (memcmp(id->handle, g->handle, sizeof(id->handle)))
		why = "it is of an earlier domain with this domid";
	else if (id->base != cfg->base || id->irq != cfg->irq || id->grants != cfg->grants)
		why = "the disk's base, irq or grant use changed";
	else if (strcmp(id->path, cfg->path))
		why = "the disk's backing file changed";
	if (why) {
		log_warn("dom %u disk %u: not adopted: %s; record dropped", cfg->domid, cfg->devid,
			 why);
		drec_disk_close(rec, true);
		return NULL;
	}
	return rec;
}

struct daemon_setup {
	struct ddisk *k;
	const struct disk_cfg *cfg;
	struct drec_disk *adopt;	/* the disk's now, whatever happens */
	const char *why;
	int r;
};

/* On @k's thread: @k checked and its backing file opened, lane 0's engine. */
static void daemon_disk_setup_open(void *data)
{
	struct daemon_setup *s = data;
	struct ddisk *k = s->k;
	struct daemon *d = k->dg->d;

	/* The clash is checked before the backing file is opened: the keys alone decide it. */
	s->r = daemon_check_clash(d, k->dg, k, &s->why);
	if (s->r >= 0)
		s->r = daemon_open_backing(d, s->cfg, k, &s->why);
	if (s->r >= 0)
		s->r = daemon_shared_check(d, k, &s->why);
}

/* On a lane's thread: a QueueNotify of one of its queues, from the kernel (fast path). */
static void daemon_lane_queue_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct dlane_queue *lq = data;
	struct dlane *l = lq->l;
	eventfd_t cnt;

	/* Several writes since the last look are one notification: the ring says what is new. */
	if (eventfd_read(fd, &cnt) < 0)
		return;
	pthread_mutex_lock(&l->lock);
	if (l->k->vblk) {
		__atomic_add_fetch(&l->direct, 1, __ATOMIC_RELAXED);
		virtio_dev_queue_notify(vblk_virtio_dev(l->k->vblk), lq->queue);
	}
	pthread_mutex_unlock(&l->lock);
}

/*
 * On the disk's thread (its lanes held off), once its window is on the fast
 * path: the QueueNotify eventfds of lanes 1..'s queues, which their threads
 * watch from now on (daemon_lane_watch_queues()) instead of the disk's
 * thread handing each notification on.  What arrives in between waits in
 * the eventfd: the loops' epoll is level-triggered.  -ENOMEM.
 */
static int daemon_lanes_handoff(struct ddisk *k, unsigned int num_queues)
{
	bool notify, irq;

	guest_mmio_get_fast_path(k->mmio, &notify, &irq);
	if (!notify)
		return 0;	/* the plain path: every QueueNotify comes as an ioreq */
	for (unsigned int i = 1; i < k->nlanes; i++) {
		struct dlane *l = &k->lanes[i];

		l->queues = calloc(num_queues / k->nlanes + 1, sizeof(*l->queues));
		if (!l->queues)
			return -ENOMEM;
		for (unsigned int q = i; q < num_queues; q += k->nlanes)
			l->queues[l->nqueues++] = (struct dlane_queue){
				.l = l, .queue = q, .fd = guest_mmio_queue_handoff(k->mmio, q) };
	}
	return 0;
}

struct daemon_lane_setup {
	struct dlane *l;
	const char *why;
	int r;
};

/* On a lane's thread: its queues' eventfds watched (daemon_lanes_handoff()).  Logged. */
static void daemon_lane_watch_queues(void *data)
{
	struct daemon_lane_setup *s = data;
	struct dlane *l = s->l;

	for (unsigned int i = 0; s->r == 0 && i < l->nqueues; i++) {
		struct dlane_queue *lq = &l->queues[i];

		if (lq->fd >= 0)
			s->r = loop_add_fd(l->th->loop, lq->fd, EPOLLIN, daemon_lane_queue_ready, lq,
					   &lq->src);
	}
	if (s->r < 0) {
		log_err("%s: cannot watch the fast path of queue lane %u: %s", l->k->name, l->idx,
			strerror(-s->r));
		s->why = "cannot watch the kernel fast path's eventfds";
	}
}

/* On a lane's thread (lanes 1..): its own engine over lane 0's file, watched by its loop. */
static void daemon_lane_setup(void *data)
{
	struct daemon_lane_setup *s = data;
	struct dlane *l = s->l;
	struct blk_open_opts bo = {
		.queue_depth = l->k->dg->d->opts.queue_depth,
		.submit_batch = BLK_SUBMIT_BATCH,
	};

	/* Not in the thread's shared context: its completions are reaped in the lane's lock. */
	s->r = blk_open_more(l->k->lanes[0].blk, &bo, &l->blk);
	if (s->r < 0) {
		log_err("%s: cannot open an engine for queue lane %u: %s", l->k->name, l->idx,
			strerror(-s->r));
		s->why = "cannot open the backing file";
		return;
	}
	s->r = daemon_lane_watch(l, &s->why);
}

/* On @k's thread: started (its lanes kept out meanwhile), lanes 1.. given their eventfds. */
static void daemon_disk_setup_start(void *data)
{
	struct daemon_setup *s = data;
	struct ddisk *k = s->k;
	struct daemon *d = k->dg->d;
	const struct disk_cfg *cfg = s->cfg;

	daemon_disk_exclude(k);
	s->r = daemon_disk_start(d, k, cfg, s->adopt, &s->why);
	s->adopt = NULL;	/* k's now */
	if (s->r >= 0 && k->nlanes > 1) {
		s->r = daemon_lanes_handoff(k, virtio_dev_num_queues(vblk_virtio_dev(k->vblk)));
		if (s->r < 0)
			s->why = "out of memory";
	}
	daemon_disk_admit(k);
	/* Live (its window enabled): on its thread's list now, for the room calls. */
	if (s->r >= 0)
		slist_push(&k->th->disks, k, tnext);
}

/* On @k's thread: set up on all its threads, it is served. */
static void daemon_disk_setup_serving(void *data)
{
	struct daemon_setup *s = data;
	struct ddisk *k = s->k;
	struct daemon *d = k->dg->d;
	const struct disk_cfg *cfg = s->cfg;
	struct blk_info info;

	info = daemon_disk_info(k);
	log_info("%s: %s '%s' (%s%s, %llu bytes, %s engine) at 0x%llx irq %u", k->name,
		 k->rec && drec_disk_adoptions(k->rec) && d->adopting ? "adopted, serving" : "serving",
		 cfg->path, info.read_only ? "read-only" : "read-write",
		 info.direct ? ", O_DIRECT" : "",
		 (unsigned long long)info.capacity, blk_engine_name(info.engine),
		 (unsigned long long)cfg->base, cfg->irq);
}

/* Unless @s failed already: @fn on each of lanes 1.. on its thread, until one fails. */
static void daemon_lanes_call(struct daemon_setup *s, void (*fn)(void *data))
{
	for (unsigned int i = 1; s->r >= 0 && i < s->k->nlanes; i++) {
		struct daemon_lane_setup ls = { .l = &s->k->lanes[i] };

		daemon_thread_call(ls.l->th, fn, &ls);
		s->r = ls.r;
		s->why = ls.why;
	}
}

/*
 * Set @s->k up on its threads (main thread): lane 0's checks and engine, the
 * other lanes' engines, the device, the other lanes' QueueNotify eventfds,
 * then it is served.  On failure everything is released (the record to
 * adopt too) and s->r < 0.
 */
static void daemon_disk_setup(struct daemon_setup *s)
{
	struct ddisk *k = s->k;

	daemon_thread_call(k->th, daemon_disk_setup_open, s);
	daemon_lanes_call(s, daemon_lane_setup);
	if (s->r >= 0)
		daemon_thread_call(k->th, daemon_disk_setup_start, s);
	daemon_lanes_call(s, daemon_lane_watch_queues);
	if (s->r >= 0) {
		daemon_thread_call(k->th, daemon_disk_setup_serving, s);
		return;
	}
	drec_disk_close(s->adopt, true);
	s->adopt = NULL;
	/* The device may have been live (its window enabled): gone first, then its lanes. */
	if (k->nlanes > 1) {
		struct daemon_stop st = { .k = k, .state = DDISK_GONE };

		daemon_thread_call(k->th, daemon_disk_stop_run, &st);
	}
	daemon_disk_lanes_close(k);
	/* Off its thread's list if it got there (a lane's watch failed), and freed. */
	daemon_thread_call(k->th, daemon_disk_unserve, k);
}

/*
 * How many threads a new disk's queues go to: with --guest-threads above 1,
 * as many as it has queues, up to that many (and the threads there are).
 */
static unsigned int daemon_disk_lanes(const struct daemon *d, unsigned int num_queues)
{
	unsigned int n = d->opts.guest_threads;

	if (n > d->nthreads)
		n = d->nthreads;
	if (n > num_queues)
		n = num_queues;
	return n ? n : 1;
}

/* A new disk of @g on its threads; NULL (logged) if out of memory. */
static struct ddisk *daemon_disk_place(struct daemon *d, struct dguest *g,
				       const struct disk_cfg *cfg, unsigned int nlanes)
{
	struct ddisk *k = daemon_disk_new(g, cfg, nlanes);
	struct dthread *th[VBLK_MAX_QUEUES];

	if (!k) {
		log_err("dom %u disk %u: cannot set up the disk: %s", cfg->domid, cfg->devid,
			strerror(ENOMEM));
		return NULL;
	}
	k->th = daemon_disk_thread_pick(d, g);
	k->lanes[0].th = k->th;
	daemon_lane_threads_pick(d, g, k->th, nlanes, th);
	for (unsigned int i = 1; i < nlanes; i++)
		k->lanes[i].th = th[i - 1];
	return k;
}

static int daemon_disk_add(void *data, const struct disk_cfg *cfg, enum disc_state state,
			   const char **ret_why)
{
	struct daemon *d = data;
	struct daemon_setup s = { .cfg = cfg };
	struct dguest *g = NULL;
	bool new_guest = false;
	int r;

	if (d->shutting_down) {
		*ret_why = "vblkd is shutting down";
		return -ESHUTDOWN;
	}
	r = daemon_guest_get(d, cfg->domid, &g, &new_guest, ret_why);
	if (r < 0)
		return r;
	if (state == DISC_STATE_INIT_WAIT && d->adopting && d->rec_dir)
		s.adopt = daemon_disk_find_record(d, g, cfg);
	if (state == DISC_STATE_INIT_WAIT && !s.adopt)
		log_warn("dom %u disk %u: found in state %d with no record to adopt it from: "
			 "serving it afresh; the guest may need a reboot to use it", cfg->domid,
			 cfg->devid, (int)state);
	s.k = daemon_disk_place(d, g, cfg,
				daemon_disk_lanes(d, daemon_disk_num_queues(d, s.adopt)));
	if (!s.k) {
		drec_disk_close(s.adopt, true);
		s.r = -ENOMEM;
	} else {
		daemon_disk_setup(&s);
	}
	if (s.r < 0) {
		if (new_guest)
			daemon_guest_drop_unused(g);
		*ret_why = s.why ? s.why : strerror(-s.r);
		return s.r;
	}
	slist_push(&g->disks, s.k, next);
	for (unsigned int i = 0; i < s.k->nlanes; i++)
		s.k->lanes[i].th->ndisks++;	/* lane 0's is s.k->th */
	if (d->opts.io_threads > 1 && s.k->th != g->th)
		log_info("%s: served by %s (its guest's accesses handed over from %s)", s.k->name,
			 iothread_name(s.k->th->t), iothread_name(g->th->t));
	for (unsigned int i = 1; i < s.k->nlanes; i++)
		log_info("%s: queue %u (and every %u-th after it) served by %s", s.k->name, i,
			 s.k->nlanes, iothread_name(s.k->lanes[i].th->t));
	daemon_changed(d);
	return 0;
}

static int daemon_disk_close(void *data, unsigned int domid, unsigned int devid)
{
	struct daemon *d = data;
	struct ddisk *k = daemon_find_disk(d, domid, devid);

	if (!k || k->state != DDISK_SERVING)
		return k ? 1 : 0;
	log_info("%s: the toolstack closes it", k->name);
	return daemon_disk_stop(k, DDISK_CLOSING);
}

static void daemon_disk_gone(void *data, unsigned int domid, unsigned int devid)
{
	struct daemon *d = data;
	struct ddisk *k = daemon_find_disk(d, domid, devid);

	if (!k)
		return;
	log_info("%s: removed from xenstore without a close: the guest is gone", k->name);
	k->dg->dead = true;
	if (k->state == DDISK_SERVING)
		daemon_disk_stop(k, DDISK_GONE);
	else
		k->state = DDISK_GONE;	/* closing already: Closed is no longer written */
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

	/* Called on the thread of the guest that released something: its own guest is its own. */
	if (!guest)
		daemon_threads_room(d);
	else if (guest_data(guest))
		daemon_guest_room(guest_data(guest));
}

/* A record nothing adopted at start-up: the disk or the guest is gone (or was refused). */
static void daemon_adopt_leftover(void *data, unsigned int domid, int devid)
{
	struct daemon *d = data;
	struct drec_guest rec;
	uint8_t handle[16];

	if (devid >= 0) {
		if (daemon_find_disk(d, domid, (unsigned int)devid))
			return;
		log_info("dom %u disk %u: no such disk in xenstore any more: its record is dropped",
			 domid, (unsigned int)devid);
		drec_disk_remove(d->rec_dir, domid, (unsigned int)devid);
		return;
	}
	if (daemon_find_guest(d, domid))
		return;
	/* The same domain still there, none of its disks served: its server goes (ranges too). */
	if (drec_guest_read(d->rec_dir, domid, &rec) == 0 &&
	    guest_sys_domain_handle(d->sys, domid, handle) == 0 &&
	    !memcmp(handle, rec.handle, sizeof(handle))) {
		if (rec.server_id == DREC_SERVER_PENDING) {
			daemon_destroy_orphans(d, &rec);
			drec_guest_remove(d->rec_dir, domid);
			return;
		}
		guest_sys_destroy_server(d->sys, domid, rec.server_id);
		log_notice("dom %u: none of its disks is to be served any more: IOREQ server %u "
			   "destroyed", domid, rec.server_id);
	} else {
		log_info("dom %u: the guest is gone: its record is dropped", domid);
	}
	drec_guest_remove(d->rec_dir, domid);
}

/* On the guest's thread: its vCPUs answered (those at its disks' registers handed over). */
static void daemon_guest_resume(void *data)
{
	struct dguest *g = data;

	guest_adopt_resume(g->guest);
}

/* After the first look at xenstore: drop what was not adopted, then answer the adopted vCPUs. */
static void daemon_adopt_finish(struct daemon *d)
{
	unsigned int guests = 0, disks = 0;

	drec_list(d->rec_dir, daemon_adopt_leftover, d);
	for (struct dguest *g = d->guests; g; g = g->next) {
		if (!g->adopted)
			continue;
		guests++;
		for (struct ddisk *k = g->disks; k; k = k->next)
			disks += k->rec && drec_disk_adoptions(k->rec) > 0;
		daemon_thread_call(g->th, daemon_guest_resume, g);
	}
	if (guests)
		log_notice("adopted %u disk%s of %u guest%s from the previous vblkd", disks,
			   disks == 1 ? "" : "s", guests, guests == 1 ? "" : "s");
}

struct daemon_export {
	struct daemon *d;
	unsigned int i;
	int r;
};

/* On its thread: export @i, watched by that thread's loop. */
static void daemon_export_open(void *data)
{
	struct daemon_export *s = data;
	struct daemon *d = s->d;
	struct vhost_export_opts vo = { .engine = d->opts.engine, .queue_depth = d->opts.queue_depth,
					.busy_poll = d->opts.poll_us > 0 };
	struct vhost_export_cfg cfg = d->opts.vhost[s->i];

	if (!cfg.queues)
		cfg.queues = d->opts.queues;
	s->r = vhost_export_new(d->vhost_th[s->i]->loop, &cfg, &vo, &d->vhost[s->i]);
}

static void daemon_export_close(void *data)
{
	struct daemon_export *s = data;

	vhost_export_free(s->d->vhost[s->i]);
}

/* The --vhost-user exports, each on the thread that serves least; a failure of one is fatal. */
static int daemon_vhost_open(struct daemon *d)
{
	if (!d->opts.nvhost)
		return 0;
	d->vhost = calloc(d->opts.nvhost, sizeof(*d->vhost));
	d->vhost_th = calloc(d->opts.nvhost, sizeof(*d->vhost_th));
	if (!d->vhost || !d->vhost_th)
		return -ENOMEM;
	for (unsigned int i = 0; i < d->opts.nvhost; i++) {
		struct daemon_export s = { .d = d, .i = i };

		d->vhost_th[i] = daemon_thread_pick(d);
		daemon_thread_call(d->vhost_th[i], daemon_export_open, &s);
		if (s.r < 0)
			return s.r;
		d->vhost_th[i]->nvhost++;
	}
	return 0;
}

static void daemon_vhost_close(struct daemon *d)
{
	for (unsigned int i = 0; d->vhost && i < d->opts.nvhost; i++) {
		struct daemon_export s = { .d = d, .i = i };

		if (!d->vhost[i])
			continue;
		daemon_thread_call(d->vhost_th[i], daemon_export_close, &s);
		d->vhost_th[i]->nvhost--;
	}
	free(d->vhost);
	d->vhost = NULL;
	free(d->vhost_th);
	d->vhost_th = NULL;
}

/* What a killed predecessor left in the service manager's fd store (the fast path's eventfds). */
static void daemon_reclaim(struct daemon *d)
{
	struct notify_fd *fds;
	unsigned int n;

	if (notify_listen_fds(&fds, &n) < 0)
		log_warn("LISTEN_FDS from the service manager is not a count: ignored");
	guest_sys_reclaim(d->sys, fds, n);
	free(fds);
}

/* Xen's side: xenstore, the hypervisor, records, discovery.  Errors are logged. */
static int daemon_xen_open(struct daemon *d, const struct daemon_opts *opts)
{
	int r;

	if (opts->backend_domid == DAEMON_DOMID_SELF) {
		r = daemon_read_domid(d, &d->backend_domid);
		if (r < 0)
			return r;
	} else {
		d->backend_domid = opts->backend_domid;
	}
	r = guest_sys_open(&d->sys);
	if (r < 0)
		return r;
	guest_sys_set_room(d->sys, daemon_room, d);
	guest_sys_set_fast_path(d->sys, !opts->no_fast_path);
	daemon_reclaim(d);
	r = opts->state_dir ? drec_dir_open(opts->state_dir, &d->rec_dir) : 0;
	if (r == -EBUSY)
		return r;
	if (r < 0)
		log_warn("guests will not survive a restart of vblkd: it cannot keep their records");
	r = disc_new(d->xsw, d->backend_domid, &daemon_disc_ops, d, &d->disc);
	if (r < 0) {
		log_err("cannot watch /local/domain/%u/backend/virtio_disk: %s", d->backend_domid,
			strerror(-r));
		return r;
	}
	if (d->rec_dir) {
		/* Before anything answers a guest: what a previous vblkd served is adopted first. */
		d->adopting = true;
		disc_scan(d->disc);
		d->adopting = false;
		daemon_adopt_finish(d);
	}
	d->xen = true;
	log_info("watching /local/domain/%u/backend/virtio_disk (engine %s, %u queue%s per disk)",
		 d->backend_domid, blk_engine_name(opts->engine), opts->queues,
		 opts->queues == 1 ? "" : "s");
	return 0;
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
	r = daemon_threads_open(d);
	if (r == 0)
		r = daemon_vhost_open(d);
	if (r < 0)
		goto err;
	r = xsw_open(loop, &d->xsw);
	if (r < 0 && opts->nvhost) {
		/* A machine without Xen: the vhost-user exports are all there is to serve. */
		log_notice("no xenstore (%s): serving the %u vhost-user export%s only, no Xen guests",
			   strerror(-r), opts->nvhost, opts->nvhost == 1 ? "" : "s");
		*ret_daemon = d;
		return 0;
	}
	if (r < 0) {
		log_err("cannot connect to xenstore: %s; is xenstored running?", strerror(-r));
		goto err;
	}
	r = daemon_xen_open(d, opts);
	if (r < 0)
		goto err;
	*ret_daemon = d;
	return 0;

err:
	disc_free(d->disc);
	drec_dir_close(d->rec_dir);
	daemon_vhost_close(d);
	daemon_threads_close(d);
	guest_sys_close(d->sys);
	xsw_close(d->xsw);
	free(d);
	return r;
}

/* On the disk's thread: its size read again, and its guest told of a change. */
static void daemon_disk_refresh(void *data)
{
	struct ddisk *k = data;
	struct blk_info info;
	int r;

	if (k->state != DDISK_SERVING)
		return;
	r = blk_refresh_info(k->lanes[0].blk);
	if (r < 0) {
		log_warn("%s: cannot re-read the size of '%s': %s", k->name, k->path, strerror(-r));
		return;
	}
	if (r == 0)
		return;
	info = daemon_disk_info(k);
	daemon_disk_exclude(k);
	for (unsigned int i = 1; i < k->nlanes; i++)
		blk_refresh_info(k->lanes[i].blk);	/* the same file: its size */
	/* New capacity in the config space, ConfigGeneration bumped, config interrupt. */
	vblk_set_info(k->vblk, &info);
	daemon_disk_save(k);
	daemon_disk_admit(k);
	log_info("%s: '%s' is now %llu bytes; the guest is told", k->name, k->path,
		 (unsigned long long)info.capacity);
}

void daemon_refresh(struct daemon *d)
{
	for (struct dguest *g = d->guests; g; g = g->next)
		for (struct ddisk *k = g->disks; k; k = k->next)
			daemon_thread_call(k->th, daemon_disk_refresh, k);
}

/* On the guest's thread: Xen's side of it stays for a successor. */
static void daemon_guest_detach(void *data)
{
	struct dguest *g = data;

	guest_detach(g->guest);
}

bool daemon_keeps_guests(const struct daemon *d)
{
	return d->rec_dir != NULL;
}

void daemon_detach(struct daemon *d, int code)
{
	if (!d->rec_dir) {
		daemon_shutdown(d, code);
		return;
	}
	if (d->shutting_down)
		return;
	d->shutting_down = true;
	d->detaching = true;
	d->exit_code = code;
	/* A front end reconnects to the next vblkd, which takes its requests again (INFLIGHT_SHMFD). */
	daemon_vhost_close(d);
	disc_free(d->disc);
	d->disc = NULL;
	/* daemon_free() lets go of ours only: Xen's side and the records stay for the successor. */
	for (struct dguest *g = d->guests; g; g = g->next)
		daemon_thread_call(g->th, daemon_guest_detach, g);
	loop_stop(d->loop, code);
}

void daemon_release(struct daemon *d, int code)
{
	if (d->shutting_down)
		return;
	d->releasing = true;
	daemon_shutdown(d, code);
}

void daemon_shutdown(struct daemon *d, int code)
{
	struct dguest *g, *gnext;
	struct ddisk *k, *knext;

	if (d->shutting_down)
		return;
	d->shutting_down = true;
	d->exit_code = code;
	/* The front ends are dropped at once: their requests finish before the exports close. */
	daemon_vhost_close(d);
	/*
	 * No new disks (disk_add() refuses them); existing ones stop taking
	 * requests and drain.  Released for good, each disk says Closed
	 * (disc_released()): discovery stays until then.
	 */
	if (!d->releasing) {
		disc_free(d->disc);
		d->disc = NULL;
	}
	for (g = d->guests; g; g = gnext) {
		gnext = g->next;
		for (k = g->disks; k; k = knext) {
			knext = k->next;
			/* The last disk's release may free g; gnext was taken before. */
			if (k->state == DDISK_SERVING)
				daemon_disk_stop(k, DDISK_CLOSING);
		}
	}
	daemon_maybe_stop(d);
}

void daemon_free(struct daemon *d)
{
	if (!d)
		return;
	/*
	 * Anything left (loop stopped early, or detached) is released
	 * synchronously, as on one thread: the IO threads look at no guest's
	 * event any more (a vCPU's access to a window already released would
	 * be answered "no device" instead of waiting for a successor).
	 */
	daemon_threads_halt(d);
	for (;;) {
		struct dguest *g;
		struct ddisk *k;
		/* Nothing is answered in xenstore (GONE). */
		struct daemon_stop s = { .state = DDISK_GONE };

		/* Disks the IO threads found idle meanwhile: released as the loop would have. */
		iothread_run_queued(d->main);
		g = d->guests;
		if (!g)
			break;
		k = g->disks;
		if (!k) {
			daemon_guest_release(g);
			continue;
		}
		s.k = k;
		daemon_thread_call(k->th, daemon_disk_stop_run, &s);
		/* blk_close() waits for what is in flight; the orphans unmap through the guest. */
		daemon_disk_release(k);	/* frees g with its last disk */
	}
	daemon_vhost_close(d);
	disc_free(d->disc);
	drec_dir_close(d->rec_dir);
	daemon_threads_close(d);
	guest_sys_close(d->sys);
	xsw_close(d->xsw);
	free(d);
}

bool daemon_has_xen(const struct daemon *d)
{
	return d->xen;
}

unsigned int daemon_vhost_count(const struct daemon *d)
{
	return d->vhost ? d->opts.nvhost : 0;
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
