// SPDX-License-Identifier: GPL-2.0-only
/* vblkd-sim's privcmd eventfd ioctls (include/xpriv.h): the simulator's stand-in for the kernel's. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "xpriv.h"

struct xpriv {
	struct xsim_conn *conn;	/* first: xsim_handle_open() */
};

int xpriv_open(struct xpriv **ret_xpriv)
{
	struct xpriv *x = xsim_handle_open(sizeof(*x));

	if (!x)
		return -errno;
	*ret_xpriv = x;
	return 0;
}

void xpriv_close(struct xpriv *x)
{
	xsim_handle_close(x);
}

int xpriv_ioeventfd(struct xpriv *x, const struct xpriv_ioeventfd *io, bool assign)
{
	struct xsim_msg m = { .op = XSIM_OP_IOEVENTFD, .domid = io->domid, .a = io->base,
			      .b = io->size | (uint64_t)io->queue << 32, .c = assign ? 0 : 1,
			      .d = io->nr_vcpus };
	size_t plen = (size_t)io->nr_vcpus * sizeof(uint32_t);
	uint64_t uioreq = (uintptr_t)io->ioreq_page;
	char *tail;
	int r = 0;

	if (!io->nr_vcpus || io->nr_vcpus > 4096)
		return -EINVAL;
	/* The kernel finds the ioreq page behind the address in this process (find_vma()). */
	if (assign) {
		uint32_t domid, id;

		r = xsim_resource_find(io->ioreq_page, &domid, &id);
		if (r < 0)
			return r;
		if (domid != io->domid)
			return -EINVAL;
		m.id = id;
	}
	/* The ports (zero when not given: DEASSIGN), then the address (privcmd_ioeventfd.ioreq). */
	tail = calloc(1, plen + sizeof(uioreq));
	if (!tail)
		return -ENOMEM;
	if (io->ports)
		memcpy(tail, io->ports, plen);
	memcpy(tail + plen, &uioreq, sizeof(uioreq));
	r = xsim_call_fds(x->conn, &m, tail, plen + sizeof(uioreq), &io->fd, 1, NULL, NULL, 0);
	free(tail);
	return r;
}

int xpriv_irqfd(struct xpriv *x, unsigned int domid, unsigned int irq, int fd, bool assign)
{
	struct xsim_msg m = { .op = XSIM_OP_IRQFD, .domid = domid, .a = irq, .c = assign ? 0 : 1 };

	return xsim_call_fds(x->conn, &m, NULL, 0, &fd, 1, NULL, NULL, 0);
}
