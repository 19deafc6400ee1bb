/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Records a restarted vblkd adopts its guests from (vblkd(8), RESTARTS):
 * files in the state directory (/run/vblkd/state), which outlive the
 * process that wrote them.  One per guest (its IOREQ server) and one per
 * disk (identity, device state, a journal per queue), mapped and written as
 * the data path runs, so that a process killed at any instruction leaves
 * records a new one can trust or tell apart as unusable.
 */
#ifndef VBLKD_DAEMON_RECORD_H
#define VBLKD_DAEMON_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vblk.h"
#include "virtio-dev.h"
#include "vmmio.h"

#define DREC_VERSION 1u
#define DREC_PATH_MAX 4096u

struct drec_dir;
struct drec_disk;

/*
 * Create @path (mode 0700) if needed and lock it: -EBUSY when another vblkd
 * holds it.  Errors are logged.
 */
int drec_dir_open(const char *path, struct drec_dir **ret_dir);
void drec_dir_close(struct drec_dir *dir);
const char *drec_dir_path(const struct drec_dir *dir);

/*
 * A guest: the domain (domid and handle) and the IOREQ server it was given.
 * Written before the server is created too, with DREC_SERVER_PENDING and
 * the servers the domain had then: a process killed in between leaves a
 * server no record names, which its successor finds by the difference.
 */
#define DREC_SERVER_PENDING UINT32_MAX

struct drec_guest {
	uint32_t domid;
	uint8_t handle[16];
	uint32_t server_id;
	uint32_t servers_before;	/* with DREC_SERVER_PENDING: bit i, server i existed */
};
int drec_guest_write(struct drec_dir *dir, const struct drec_guest *g);
/* -ENOENT none; -EINVAL unusable (another version, torn, another domid). */
int drec_guest_read(struct drec_dir *dir, unsigned int domid, struct drec_guest *ret_g);
void drec_guest_remove(struct drec_dir *dir, unsigned int domid);

/* What a disk record must match to be adopted. */
struct drec_disk_id {
	uint32_t domid;
	uint32_t devid;
	uint8_t handle[16];
	uint64_t base;
	uint32_t irq;
	bool grants;
	bool read_only;
	uint32_t num_queues;
	uint32_t queue_num_max;
	uint64_t journal_size;		/* per queue (virtio_dev_journal_size()) */
	char path[DREC_PATH_MAX];
};

/* A new record (any old one replaced), with no device state yet (drec_disk_save()). */
int drec_disk_create(struct drec_dir *dir, const struct drec_disk_id *id,
		     struct drec_disk **ret_rec);
/* The record of a disk: -ENOENT none, -EPROTONOSUPPORT another version, -EINVAL unusable. */
int drec_disk_open(struct drec_dir *dir, unsigned int domid, unsigned int devid,
		   struct drec_disk **ret_rec);
const struct drec_disk_id *drec_disk_id(const struct drec_disk *rec);
/* Queue @idx's journal (8-aligned), *@ret_size bytes. */
void *drec_disk_journal(struct drec_disk *rec, unsigned int idx, size_t *ret_size);
/* The device state as of now (between two guest accesses); 0 or -errno (logged once by the caller). */
int drec_disk_save(struct drec_disk *rec, const struct vmmio_dev *regs, const struct vblk_dev *vblk);
/*
 * The last state saved whole: *@ret_vst is malloc()ed, *@ret_size bytes.
 * -ENOENT none saved whole.
 */
int drec_disk_load(struct drec_disk *rec, struct vmmio_state *ret_regs,
		   struct vblk_state *ret_blk, struct virtio_dev_state **ret_vst, size_t *ret_size);
/* Count an adoption, now. */
void drec_disk_adopted(struct drec_disk *rec);
unsigned int drec_disk_adoptions(const struct drec_disk *rec);
int64_t drec_disk_last_adopted(const struct drec_disk *rec);	/* CLOCK_REALTIME s, 0 never */
/* Unmap; @remove deletes the file too.  Accepts NULL. */
void drec_disk_close(struct drec_disk *rec, bool remove);

/*
 * Every record in @dir: @fn gets the domid, and the devid of a disk record
 * (-1 for a guest's).  Files that are not records are left alone; partial
 * ones from a process that died writing them are removed.
 */
void drec_list(struct drec_dir *dir, void (*fn)(void *data, unsigned int domid, int devid),
	       void *data);
void drec_disk_remove(struct drec_dir *dir, unsigned int domid, unsigned int devid);

#endif
