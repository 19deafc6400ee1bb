/* SPDX-License-Identifier: GPL-2.0-only */
/* The kernel's eventfd ioctls of /dev/xen/privcmd (ioeventfd, irqfd): a seam the simulator fills for vblkd-sim. */
#ifndef VBLKD_XPRIV_H
#define VBLKD_XPRIV_H

#include <stdbool.h>
#include <stdint.h>

/*
 * No Xen library wraps these ioctls (Xen 4.17 to 4.20), so they are not part
 * of the libxen* API the simulator stands in for: vblkd links
 * src/xen/xpriv-linux.c (raw ioctl() on /dev/xen/privcmd with the structs of
 * Linux's include/uapi/xen/privcmd.h), vblkd-sim links
 * tests/sim/libxensim/xpriv.c (asks the simulator).  Every function returns
 * 0 or -errno as the kernel would: -ENOTTY from a kernel without the ioctl
 * (before 6.6 for IRQFD, 6.7 for IOEVENTFD), -EOPNOTSUPP from one built
 * without CONFIG_XEN_PRIVCMD_EVENTFD.
 */
struct xpriv;

/* -ENOENT (or another -errno) when there is no privcmd device. */
int xpriv_open(struct xpriv **ret_xpriv);
void xpriv_close(struct xpriv *xpriv);

/* IOCTL_PRIVCMD_IOEVENTFD's arguments (struct privcmd_ioeventfd). */
struct xpriv_ioeventfd {
	unsigned int domid;
	void *ioreq_page;		/* the server's ioreq page, mapped by this process */
	const uint32_t *ports;		/* per vCPU: this process's local port of its event channel
					 * (DEASSIGN: may be NULL, the kernel does not compare them) */
	unsigned int nr_vcpus;
	uint64_t base;			/* the virtio-mmio window; the kernel adds QueueNotify's 0x50 */
	unsigned int size;		/* access size to match (4) */
	unsigned int queue;		/* value to match (data & 0xffff) */
	int fd;				/* the eventfd signalled */
};
int xpriv_ioeventfd(struct xpriv *xpriv, const struct xpriv_ioeventfd *io, bool assign);
/* IOCTL_PRIVCMD_IRQFD: each signal of @fd becomes set_irq_level(@domid, @irq, 1). */
int xpriv_irqfd(struct xpriv *xpriv, unsigned int domid, unsigned int irq, int fd, bool assign);

#endif
