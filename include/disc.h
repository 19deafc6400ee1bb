/* SPDX-License-Identifier: GPL-2.0-only */
/* Disk discovery: follows libxl's virtio_disk backend directories in xenstore and its state handshake. */
#ifndef VBLKD_DISC_H
#define VBLKD_DISC_H

#include <stdbool.h>

struct disk_cfg;
struct disc;
struct xsw;

/* XenbusState values libxl uses in the backend "state" node (xen/io/xenbus.h). */
enum disc_state {
	DISC_STATE_INITIALISING = 1,
	DISC_STATE_INIT_WAIT = 2,
	DISC_STATE_CLOSING = 5,
	DISC_STATE_CLOSED = 6,
};

struct disc_ops {
	/*
	 * A complete, valid disk was written by libxl (state 1).  Return 0 once
	 * the guest can use it (the MMIO range is claimed): state 2 (InitWait) is
	 * written right after, and the guest may run from then on.  On -errno the
	 * disk is failed: its "error" node says why and its state becomes 6.
	 * @ret_why may point to a static or per-disk string explaining a failure.
	 * @state is what the disk was found in: 1, or 2 when a previous vblkd
	 * served it (the guest may be using it).
	 */
	int (*disk_add)(void *data, const struct disk_cfg *cfg, enum disc_state state,
			const char **ret_why);
	/*
	 * libxl asks to close the disk (state 5).  Return 0 when everything is
	 * released (state 6 is written at once), or 1 when in-flight IO must
	 * finish first: then call disc_closed() when done.
	 */
	int (*disk_close)(void *data, unsigned int domid, unsigned int devid);
	/*
	 * The directory vanished without a close (domain destroyed or crashed):
	 * release everything without touching the guest's memory.  No state is
	 * written.  Also called for a disk whose close was pending.
	 */
	void (*disk_gone)(void *data, unsigned int domid, unsigned int devid);
};

/*
 * Watch /local/domain/<backend_domid>/backend/virtio_disk and report disks
 * through @ops.  Disks present at start-up are taken too.
 */
int disc_new(struct xsw *xsw, unsigned int backend_domid, const struct disc_ops *ops, void *data,
	     struct disc **ret_disc);
/*
 * Look at every disk now, before returning (disc_new()'s first look comes
 * from the loop): for a caller that must know what exists, e.g. to adopt
 * disks after a restart before it answers their guests.
 */
void disc_scan(struct disc *disc);
/* Stops watching; reports nothing more. Disks are left as they are in xenstore. */
void disc_free(struct disc *disc);

/*
 * vblkd lets go of the disk for good (vblkd --release) without the
 * toolstack asking: state 6 is written, so that a later xl destroy does not
 * wait for an answer.
 */
void disc_released(struct disc *disc, unsigned int domid, unsigned int devid);

/* A close that disk_close() left pending is finished: state 6 is written. */
void disc_closed(struct disc *disc, unsigned int domid, unsigned int devid);

#endif
