/* SPDX-License-Identifier: GPL-2.0-only */
/* A virtio disk as libxl describes it in xenstore: parsing and validation of the backend directory. */
#ifndef VBLKD_DISK_CFG_H
#define VBLKD_DISK_CFG_H

#include <stdbool.h>
#include <stdint.h>

/* Size of one virtio-mmio register window (libxl allocates 0x200 per device). */
#define DISK_CFG_MMIO_SIZE 0x200u

/* Xen's virtio-mmio window and SPI range for guests on Arm (xen/include/public/arch-arm.h). */
extern const uint64_t disk_cfg_mmio_window_base;
extern const uint64_t disk_cfg_mmio_window_size;
extern const unsigned int disk_cfg_irq_first;
extern const unsigned int disk_cfg_irq_last;

struct disk_cfg {
	unsigned int domid;
	unsigned int devid;
	char *path;		/* "params", without a format prefix */
	char *vdev;		/* "dev" (e.g. xvda), NULL if absent: for messages only */
	bool read_only;		/* "mode" = r, or a cdrom */
	bool cdrom;		/* "device-type" = cdrom */
	bool discard;		/* "discard-enable" (default on, as Xen's blkback) */
	bool direct_io_safe;	/* "direct-io-safe" */
	bool grants;		/* "grant_usage": guest addresses are grant references */
	uint64_t base;		/* "base": guest physical address of the register window */
	unsigned int irq;	/* "irq": the SPI raised for this device */
};

/*
 * What was wrong: the key, its value (truncated, "" when missing) and why.
 * The caller logs it, e.g. "dom 3 disk 51712: base '0x1000': outside ...".
 */
struct disk_cfg_error {
	const char *key;
	char value[80];
	const char *reason;
};

/* Returns the value of @key in the device directory, or NULL if it is absent. */
typedef const char *(*disk_cfg_get_fn)(void *ctx, const char *key);

/*
 * Read and check every key of one device directory (values come from
 * xenstore, so they are untrusted).  On success fills @ret_cfg (free its
 * strings with disk_cfg_clear()); on failure returns -EINVAL (or -ENOMEM) and
 * describes the first bad key in @ret_err.
 */
int disk_cfg_parse(unsigned int domid, unsigned int devid, disk_cfg_get_fn get, void *ctx,
		   struct disk_cfg *ret_cfg, struct disk_cfg_error *ret_err);

void disk_cfg_clear(struct disk_cfg *cfg);

/*
 * Whether two disks of one guest can be served side by side: 0, or
 * -EADDRINUSE when their register windows ([base, base + DISK_CFG_MMIO_SIZE))
 * overlap, else -EBUSY when they have the same SPI.  Symmetric.
 */
int disk_cfg_clash(uint64_t base, unsigned int irq, uint64_t other_base, unsigned int other_irq);

/*
 * Parse an unsigned number the way xenstore values come: decimal (libxl's
 * virtio_disk keys) or 0x-prefixed hexadecimal (Xen 4.18's generic virtio
 * keys).  No sign, no spaces, no trailing characters, no overflow.
 */
int disk_cfg_parse_u64(const char *s, uint64_t *ret_value);

#endif
