// SPDX-License-Identifier: GPL-2.0-only
/* The privcmd eventfd ioctls with raw ioctl() on /dev/xen/privcmd (vblkd only; vblkd-sim has libxensim's). */
#define __XEN_TOOLS__ 1
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xen/hvm/dm_op.h>

#include "xpriv.h"

/*
 * Layouts of Linux's include/uapi/xen/privcmd.h (v6.7 and later: pointers as
 * __u64, _IOW numbers).  Debian 12's headers predate them, and the
 * <xen/privcmd.h> on the include path is Xen's, so they are spelt out here.
 */
struct xpriv_k_irqfd {
	uint64_t dm_op;		/* user pointer to the dm_op buffer the kernel issues */
	uint32_t size;
	uint32_t fd;
	uint32_t flags;		/* bit 0: deassign */
	uint16_t dom;
	uint8_t pad[2];
};

struct xpriv_k_ioeventfd {
	uint64_t ioreq;		/* user address of the mapped ioreq page */
	uint64_t ports;		/* user pointer to nr_vcpus local ports (unsigned int) */
	uint64_t addr;		/* device base; the kernel matches addr + VIRTIO_MMIO_QUEUE_NOTIFY */
	uint32_t addr_len;
	uint32_t event_fd;
	uint32_t vcpus;
	uint32_t vq;
	uint32_t flags;		/* bit 0: deassign */
	uint16_t dom;
	uint8_t pad[2];
};

#define XPRIV_FLAG_DEASSIGN 1u
#define XPRIV_IOCTL_IRQFD _IOW('P', 8, struct xpriv_k_irqfd)
#define XPRIV_IOCTL_IOEVENTFD _IOW('P', 9, struct xpriv_k_ioeventfd)

_Static_assert(sizeof(struct xpriv_k_irqfd) == 24, "privcmd_irqfd layout");
_Static_assert(sizeof(struct xpriv_k_ioeventfd) == 48, "privcmd_ioeventfd layout");

struct xpriv {
	int fd;
};

int xpriv_open(struct xpriv **ret_xpriv)
{
	struct xpriv *x = calloc(1, sizeof(*x));

	if (!x)
		return -ENOMEM;
	/*
	 * A descriptor of our own: the ioeventfd ioctl finds the ioreq page by
	 * address in the calling process (find_vma() on current->mm in
	 * privcmd.c), not through the descriptor that mapped it.
	 */
	x->fd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
	if (x->fd < 0) {
		int r = -errno;

		free(x);
		return r;
	}
	*ret_xpriv = x;
	return 0;
}

void xpriv_close(struct xpriv *x)
{
	if (!x)
		return;
	close(x->fd);
	free(x);
}

int xpriv_ioeventfd(struct xpriv *x, const struct xpriv_ioeventfd *io, bool assign)
{
	unsigned int *ports = calloc(io->nr_vcpus ? io->nr_vcpus : 1, sizeof(*ports));
	struct xpriv_k_ioeventfd k = {
		.ioreq = (uintptr_t)io->ioreq_page,
		.addr = io->base,
		.addr_len = io->size,
		.event_fd = (uint32_t)io->fd,
		.vcpus = io->nr_vcpus,
		.vq = io->queue,
		.flags = assign ? 0 : XPRIV_FLAG_DEASSIGN,
		.dom = (uint16_t)io->domid,
	};
	int r;

	if (!ports)
		return -ENOMEM;
	/* DEASSIGN compares dom, ioreq and vcpus, not the ports: a successor has none. */
	for (unsigned int i = 0; io->ports && i < io->nr_vcpus; i++)
		ports[i] = io->ports[i];
	k.ports = (uintptr_t)ports;
	r = ioctl(x->fd, XPRIV_IOCTL_IOEVENTFD, &k) < 0 ? -errno : 0;
	free(ports);
	return r;
}

int xpriv_irqfd(struct xpriv *x, unsigned int domid, unsigned int irq, int fd, bool assign)
{
	/* The dm_op the kernel issues on each signal (copied at assign): the one guest.c makes. */
	struct xen_dm_op op = { .op = XEN_DMOP_set_irq_level };
	struct xpriv_k_irqfd k = {
		.dm_op = (uintptr_t)&op,
		.size = sizeof(op),
		.fd = (uint32_t)fd,
		.flags = assign ? 0 : XPRIV_FLAG_DEASSIGN,
		.dom = (uint16_t)domid,
	};

	op.u.set_irq_level.irq = irq;
	op.u.set_irq_level.level = 1;
	return ioctl(x->fd, XPRIV_IOCTL_IRQFD, &k) < 0 ? -errno : 0;
}
