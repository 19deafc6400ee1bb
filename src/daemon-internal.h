/* SPDX-License-Identifier: GPL-2.0-only */
/* The daemon's guests, disks and IO threads, shared by its files (daemon*.c). */
#ifndef VBLKD_DAEMON_INTERNAL_H
#define VBLKD_DAEMON_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "blk.h"
#include "daemon.h"
#include "daemon-record.h"
#include "iothread.h"
#include "log.h"
#include "vblk.h"

struct dguest;

/*
 * An IO thread of the daemon (or, with --io-threads=0, the main loop): the
 * guests, disks and vhost-user exports it serves, with everything of theirs
 * (a guest's IOREQ server event channels; a disk's device, fast-path
 * eventfds, timers, block engine), are touched on that thread only.  A
 * guest's disks may be on other threads than the guest: its vCPUs' accesses
 * to a disk's registers are handed to the disk's thread (guest.c,
 * guest_mmio_serve_on()), and the guest's memory cache is shared (gmem.c,
 * under its own lock).  The main thread acts on them through
 * daemon_thread_call(), which runs there while main waits; an IO thread
 * tells main through work queued on d->main (a disk idle, see daemon.c).
 */
struct dthread {
	struct daemon *d;
	struct iothread *t;		/* its thread, or d->main (--io-threads=0) */
	struct loop *loop;
	struct blk_ctx *blk_ctx;	/* its disks' shared completion context (libaio), or NULL */
	struct loop_source *blk_ctx_src;
	struct dguest *guests;		/* the guests whose IOREQ server it serves (tnext): this thread's */
	struct ddisk *disks;		/* its disks (tnext): written on this thread only */
	/* The main thread's counts, for placing guests and for --status. */
	unsigned int nguests;
	unsigned int ndisks;
	unsigned int nvhost;
	struct iothread_work room;	/* its guests' devices may map again (daemon_room()) */
};

/* Where a disk is in its life; every state but SERVING waits for in-flight IO, then is freed. */
enum ddisk_state {
	DDISK_SERVING,		/* the device answers the guest */
	DDISK_CLOSING,		/* device gone; Closed is written to xenstore once released */
	DDISK_GONE,		/* device gone with its guest (or the daemon): nothing is answered */
};

/*
 * A disk's queues one thread serves (vblk.h, "Lanes"): lane 0 is on the
 * disk's thread, with its register accesses; with --guest-threads and
 * --queues above 1, lanes 1.. are on other threads, each with its own block
 * engine (no shared completion context), ring poll timer, busy polling and,
 * on the kernel fast path, its queues' QueueNotify eventfds.
 * A lane's thread calls into the device only holding the lane's lock; the
 * disk's thread takes every lane's lock for anything else it does with the
 * device (daemon_disk_exclude()).  Lane 0 needs no lock: it is on the disk's
 * thread.  So no two lanes' threads share a lock, and a lane waits only
 * while its disk is being reset, reconfigured, saved or asked for --status.
 */
/* A queue's QueueNotify eventfd (the kernel fast path) that its lane's thread watches. */
struct dlane_queue {
	struct dlane *l;
	unsigned int queue;
	int fd;				/* the window's: -1 without the fast path */
	struct loop_source *src;
};

struct dlane {
	struct ddisk *k;
	unsigned int idx;
	struct dthread *th;
	struct blk_dev *blk;
	struct loop_source *blk_src;
	struct loop_source *poll_timer;	/* the lane's ring poll timer (set_timer()) */
	struct loop_source *busy_poll;	/* its handler for the loop's busy polling, or NULL */
	pthread_mutex_t lock;		/* lanes 1..: see above */
	bool busy;			/* stopped with requests in its engine (daemon_disk_stop()) */
	bool draining;			/* its orphans of a reset hold a vCPU's write (disk's lock) */
	uint64_t notify;		/* atomic: queues whose QueueNotify came to the disk's thread */
	struct iothread_work notify_work;	/* ... handed over to this lane's */
	struct dlane_queue *queues;	/* lanes 1..: its queues' eventfds, watched by its loop */
	unsigned int nqueues;
	/*
	 * Atomic: QueueNotify writes handed on by the disk's thread, by the
	 * guest's thread (when it is not the disk's: daemon_mmio_any_thread()),
	 * and taken by itself from its eventfds (the kernel fast path).
	 */
	uint64_t handed_on, from_guest_thread, direct;
	struct iothread_work room_work;	/* its guest's mappings may go on (lanes 1..) */
	struct log_ratelimit rl;
};

struct ddisk {
	struct dguest *dg;
	struct dthread *th;		/* the thread that serves it (its guest's, or another) */
	unsigned int devid;
	char name[48];			/* "dom 3 disk 51712" */
	char *path;
	struct dlane *lanes;		/* nlanes; lanes[0] on th */
	unsigned int nlanes;
	unsigned int busy_lanes;	/* atomic: lanes still busy after a stop */
	struct iothread_work resume;	/* a lane's reset orphans are done: look at the vCPUs waiting */
	struct vmmio_dev *regs;		/* its virtio-mmio register decoder (with vblk) */
	struct vblk_dev *vblk;		/* NULL unless DDISK_SERVING */
	struct guest_mmio *mmio;
	uint64_t base;			/* the register window's guest physical address */
	unsigned int irq;		/* its SPI */
	struct virtio_transport transport;
	char *vdev;			/* "dev" (xvda), may be NULL */
	bool read_only;			/* "mode" r or a cdrom */
	bool discard;			/* "discard-enable" */
	uint64_t started;		/* CLOCK_MONOTONIC seconds */
	struct drec_disk *rec;		/* its record for a successor, NULL if none is kept */
	enum ddisk_state state;
	struct log_ratelimit rl;
	struct iothread_work idle;	/* stopped and idle: released by the main thread */
	struct ddisk *next;		/* dg->disks: written on the main thread only */
	struct ddisk *tnext;		/* th->disks */
};

/* A guest's mappings may go on: its disks on one thread look again (daemon_guest_room()). */
struct dguest_room {
	struct iothread_work w;
	struct dguest *g;
	struct dthread *th;
};

struct dguest {
	struct daemon *d;
	unsigned int domid;
	char *name;			/* /local/domain/<domid>/name, may be NULL */
	struct guest *guest;
	struct ddisk *disks;
	bool dead;
	bool adopted;			/* its IOREQ server is a previous process's */
	uint8_t handle[16];		/* the domain's (guest_sys_domain_handle()) */
	struct dthread *th;		/* the thread that serves its IOREQ server */
	struct dguest_room *room;	/* one per thread (d->nthreads) */
	struct dguest *next;		/* d->guests: written on the main thread only */
	struct dguest *tnext;		/* th->guests */
};

struct daemon {
	struct loop *loop;
	struct iothread *main;		/* the main loop's channel */
	struct dthread *threads;	/* nthreads: opts.io_threads, or 1 on the main loop */
	unsigned int nthreads;
	struct dthread **vhost_th;	/* each export's thread */
	struct vhost_export **vhost;	/* opts.nvhost exports */
	bool xen;			/* xenstore and Xen are there: guests are served */
	struct daemon_opts opts;
	unsigned int backend_domid;
	struct xsw *xsw;
	struct guest_sys *sys;
	struct disc *disc;
	struct dguest *guests;
	bool shutting_down;
	bool detaching;			/* daemon_detach(): guests stay for a successor */
	bool releasing;			/* daemon_release(): guests let go for good */
	bool adopting;			/* the first look at xenstore, records in hand */
	struct drec_dir *rec_dir;	/* NULL: no records, guests released at exit */
	int exit_code;
	uint64_t started;
	char why[192];			/* a disk_add() reason that names things (fits disc's) */
};

/* CLOCK_MONOTONIC in seconds. */
uint64_t daemon_now(void);

/* What the guest is told about the backing store: the disk's configuration may only restrict it. */
struct blk_info daemon_disk_info(const struct ddisk *k);

/*
 * Whether @k (not on its guest's list yet) may be served beside the other
 * disks that have its backing file: 0, or -EBUSY (logged, with a reason for
 * xenstore in *@ret_why).  See daemon-shared.c.
 */
int daemon_shared_check(struct daemon *d, const struct ddisk *k, const char **ret_why);

/* The end of a batch of @l's completions (on its thread); daemon.c. */
void daemon_blk_done(struct dlane *l);
/* On @k's thread: no other lane's thread is in @k's device until daemon_disk_admit(). */
void daemon_disk_exclude(const struct ddisk *k);
void daemon_disk_admit(const struct ddisk *k);

/* daemon-thread.c: the IO threads (d->opts.io_threads of them, or the main loop's one). */
int daemon_threads_open(struct daemon *d);
/* The threads stop looking at their loops (calls still run there): see iothread_halt(). */
void daemon_threads_halt(struct daemon *d);
/* After every guest and export is gone: stop and join the threads. */
void daemon_threads_close(struct daemon *d);
/* The thread that serves least (disks and exports, then guests), for a new guest or export. */
struct dthread *daemon_thread_pick(struct daemon *d);
/*
 * The thread for a new disk of @g: its guest's (--guest-threads=1, the
 * default); else the one that serves fewest disks and exports, among those
 * the one with fewest of @g's disks, then its guest's own, without @g's
 * disks going to more than --guest-threads threads.
 */
struct dthread *daemon_disk_thread_pick(struct daemon *d, const struct dguest *g);
/*
 * The threads for lanes 1..@n-1 of a new disk of @g whose lane 0 is on
 * @first (main thread): the least busy others, preferring those @g is on
 * already once it is on --guest-threads of them.  Into @ret (n - 1 of them).
 */
void daemon_lane_threads_pick(struct daemon *d, const struct dguest *g, struct dthread *first,
			      unsigned int n, struct dthread **ret);
/* @g's per-thread room work (g->room); -ENOMEM.  Cancelled by daemon_guest_room_free(). */
int daemon_guest_room_new(struct dguest *g);
void daemon_guest_room_free(struct dguest *g);
/* Every thread has run what was queued to it before this call (main only). */
void daemon_threads_barrier(struct daemon *d);
/* Run @fn(@data) on @th's thread while the caller (the main thread) waits. */
void daemon_thread_call(struct dthread *th, void (*fn)(void *data), void *data);
/* Every thread's guests' devices may try to map again (on theirs). */
void daemon_threads_room(struct daemon *d);
/* The devices of @g that wait for room try again (on their threads; from any thread). */
void daemon_guest_room(struct dguest *g);

#endif
