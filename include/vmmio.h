/* SPDX-License-Identifier: GPL-2.0-only */
/* virtio-mmio register decoder (virtio 1.2 §4.2): guest accesses to a window become device operations. */
#ifndef VBLKD_VMMIO_H
#define VBLKD_VMMIO_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio-dev.h"

/* Size of one device's register window (§4.2.2: registers 0x000-0x0ff, config space from 0x100). */
#define VMMIO_WINDOW_SIZE 0x200u
#define VMMIO_CONFIG_OFFSET 0x100u
#define VMMIO_CONFIG_MAX (VMMIO_WINDOW_SIZE - VMMIO_CONFIG_OFFSET)
#define VMMIO_MAGIC 0x74726976u /* "virt" */

struct vmmio_dev;

/*
 * A register window over @vdev (borrowed: destroy the decoder first).  Its
 * Version is 1 (legacy, §4.2.4) for a legacy device, 2 (§4.2.2) otherwise.
 */
int vmmio_create(struct virtio_dev *vdev, struct vmmio_dev **ret_m);
/* Accepts NULL. */
void vmmio_destroy(struct vmmio_dev *m);

/*
 * Guest accesses to the register window, @offset relative to its base.  Any
 * offset and @size (1, 2, 4, 8, or anything else a hostile guest sends) is
 * safe: bad ones read as 0 or are ignored, with a rate-limited warning.
 * Control registers take 32-bit aligned accesses only (§4.2.2); the config
 * space takes 1, 2, 4 and 8 byte accesses inside its size.  A QueueNotify
 * write runs the device's ring processing synchronously.
 */
uint64_t vmmio_read(struct vmmio_dev *m, uint64_t offset, unsigned int size);
/*
 * True for registers whose writes the driver does not wait on (QueueNotify):
 * a transport may let the vCPU run on before the write is acted upon.
 */
bool vmmio_write_posted(uint64_t offset);
void vmmio_write(struct vmmio_dev *m, uint64_t offset, unsigned int size, uint64_t value);
/*
 * Whether this access touches nothing but the device's InterruptStatus
 * (reading it, or InterruptACK), which is atomic: it may be made on another
 * thread than the one that serves the device, while the device exists.
 * Such a write changes nothing vmmio_save() keeps and never waits.
 */
bool vmmio_any_thread(uint64_t offset, unsigned int size, bool write);
/* A QueueNotify write (its value is the queue's index): a device's lanes route it (vblk.h). */
bool vmmio_is_queue_notify(uint64_t offset, unsigned int size);
/* Whether a write at @offset may change the state vmmio_save() and virtio_dev_save() keep. */
bool vmmio_write_saves(uint64_t offset);

/* The decoder's own registers, for a restarted process (see virtio_dev_save()). */
struct vmmio_state {
	uint32_t dev_features_sel;
	uint32_t drv_features_sel;
	uint32_t queue_sel;
	uint32_t guest_page_size;	/* legacy */
};
void vmmio_save(const struct vmmio_dev *m, struct vmmio_state *st);
/* -EINVAL: a field no driver could have written (nothing changed then). */
int vmmio_restore(struct vmmio_dev *m, const struct vmmio_state *st);

#endif
