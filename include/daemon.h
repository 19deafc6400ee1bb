/* SPDX-License-Identifier: GPL-2.0-only */
/* The daemon: wires xenstore discovery, guests' IOREQ servers, virtio-blk devices and block engines. */
#ifndef VBLKD_DAEMON_H
#define VBLKD_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "blk.h"

struct loop;
struct daemon;
struct vhost_export_cfg;

#define DAEMON_DOMID_SELF UINT32_MAX

struct daemon_opts {
	uint32_t backend_domid;		/* DAEMON_DOMID_SELF: read "domid" from xenstore */
	enum blk_engine engine;
	unsigned int queues;		/* virtqueues per disk (virtio-blk MQ), >= 1 */
	/*
	 * IO threads serving the guests and exports, each with its own loop
	 * (0: everything on the caller's loop, as with one thread).
	 */
	unsigned int io_threads;
	/*
	 * How many IO threads one guest's disks may spread over (0 or 1: its
	 * disks are served by its own thread; more: a guest with several
	 * disks keeps several threads busy, its vCPUs' accesses to the disks
	 * of other threads handed over to them).
	 */
	unsigned int guest_threads;
	unsigned int queue_depth;	/* block engine requests in flight per disk (0: default) */
	/* Serve one backing file under several disks even if one of them writes it (else refused). */
	bool allow_shared;
	/*
	 * The longest busy-polling window, in microseconds, before the loop
	 * sleeps (0: none): rings are looked at without the guest notifying.
	 */
	unsigned int poll_us;
	/* Never use the kernel fast path (privcmd's ioeventfd and irqfd): today's path only. */
	bool no_fast_path;
	/*
	 * Where the records a restarted vblkd adopts guests from are kept
	 * (NULL: none; guests are released when vblkd stops).
	 */
	const char *state_dir;
	/* vhost-user exports (--vhost-user=), served beside the Xen guests or, without Xen, alone. */
	const struct vhost_export_cfg *vhost;
	unsigned int nvhost;
	/* Called after a disk was added or released (may be NULL): e.g. for a STATUS= line. */
	void (*changed)(struct daemon *d, void *data);
	void *changed_data;
};

/*
 * Open the vhost-user exports; connect to xenstore and Xen and start watching
 * for disks.  Without xenstore, vhost-user exports are served alone (logged);
 * with none, that is an error.  Errors are logged.
 */
int daemon_new(struct loop *loop, const struct daemon_opts *opts, struct daemon **ret_daemon);
void daemon_free(struct daemon *d);

/*
 * Stop taking new disks and requests, let in-flight IO finish, release every
 * guest, then stop the loop with @code.  The xenstore state of the disks is
 * left as it is, so a restarted vblkd takes them over.
 */
void daemon_shutdown(struct daemon *d, int code);

/*
 * Stop at once and leave every guest to a successor: their IOREQ servers,
 * ranges and waiting vCPUs stay, and so do the records, from which the next
 * vblkd adopts them; requests in flight are taken again by it.  Without
 * records (daemon_keeps_guests() false) this is daemon_shutdown().
 */
void daemon_detach(struct daemon *d, int code);
/*
 * The stop for good (vblkd --release): daemon_shutdown(), each disk's
 * xenstore state then set to Closed and its records dropped, so that the
 * toolstack's xl destroy does not wait for an answer.
 */
void daemon_release(struct daemon *d, int code);
bool daemon_keeps_guests(const struct daemon *d);

/*
 * Re-read the size of every backing file or device; a disk that grew (or
 * shrank) gets its new capacity and a configuration change interrupt.
 */
void daemon_refresh(struct daemon *d);

unsigned int daemon_guest_count(const struct daemon *d);
unsigned int daemon_disk_count(const struct daemon *d);
/* Xen guests are served (xenstore was there). */
bool daemon_has_xen(const struct daemon *d);
/* vhost-user exports served. */
unsigned int daemon_vhost_count(const struct daemon *d);

#endif
