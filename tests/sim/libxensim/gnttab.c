// SPDX-License-Identifier: GPL-2.0-only
/* libxengnttab on the simulator: the hypervisor checks each grant and names its RAM frame. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xen/grant_table.h>
#include <xengnttab.h>

#include "client.h"
#include "frames.h"

struct xengntdev_handle {
	struct xsim_conn *conn;
};
_Static_assert(offsetof(struct xengntdev_handle, conn) == 0, "xsim_handle_open() layout");

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger, unsigned int open_flags)
{
	return xsim_handle_open(sizeof(xengnttab_handle));
}

int xengnttab_close(xengnttab_handle *xgt)
{
	return xsim_handle_close(xgt);
}

int xengnttab_fd(xengnttab_handle *xgt)
{
	return xgt->conn->fd;
}

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
	return 0;
}

/* All refs from one domain (what a virtio backend needs); partial failure maps nothing. */
void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t domid,
				      uint32_t *refs, int prot)
{
	struct xsim_msg m = { .op = XSIM_OP_GNTMAP, .domid = domid,
			      .a = (prot & PROT_WRITE) ? 1 : 0 };
	char *rt = NULL;
	uint8_t *base;
	int fd, r;

	if (!count || count > XSIM_TAIL_MAX / sizeof(uint64_t)) {
		errno = EINVAL;
		return NULL;
	}
	r = xsim_call(xgt->conn, &m, refs, count * sizeof(uint32_t), &rt, &fd, 1);
	if (r == 0 && (m.n != count * sizeof(uint64_t) || fd < 0))
		r = -EPROTO;
	if (r < 0)
		goto err;
	base = mmap(NULL, (size_t)count * XSIM_PAGE_SIZE, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		r = -errno;
		goto err;
	}
	r = xsim_map_frames(base, prot, fd, m.a, (const uint64_t *)rt, NULL, count);
	if (r < 0) {
		munmap(base, (size_t)count * XSIM_PAGE_SIZE);
		goto err;
	}
	close(fd);
	free(rt);
	return base;

err:
	if (fd >= 0)
		close(fd);
	free(rt);
	errno = -r;
	return NULL;
}

void *xengnttab_map_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t *domids,
			       uint32_t *refs, int prot)
{
	uint32_t i;

	for (i = 1; i < count; i++)
		if (domids[i] != domids[0]) {
			/* Mixed domains in one mapping: not needed by a virtio backend. */
			errno = EOPNOTSUPP;
			return NULL;
		}
	return xengnttab_map_domain_grant_refs(xgt, count, count ? domids[0] : 0, refs, prot);
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
	return xengnttab_map_domain_grant_refs(xgt, 1, domid, &ref, prot);
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
	if (!start_address) {
		errno = EINVAL;
		return -1;
	}
	return munmap(start_address, (size_t)count * XSIM_PAGE_SIZE);
}

/*
 * Linux's IOCTL_GNTDEV_GRANT_COPY (drivers/xen/gntdev.c, gntdev_grant_copy_seg()): a segment whose
 * grant side crosses a page fails the whole call with EINVAL, each other one gets its own status
 * from the hypervisor's GNTTABOP_copy (xen/common/grant_table.c, gnttab_copy(): GNTST_bad_gntref
 * for a reference not granted, GNTST_permission_denied for writing a read-only grant).  Here the
 * hypervisor checks each reference by the mapping call, and the copy goes through that mapping.
 */
int xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count, xengnttab_grant_copy_segment_t *segs)
{
	uint32_t i;

	for (i = 0; i < count; i++) {
		const xengnttab_grant_copy_segment_t *g = &segs[i];
		bool to_guest = g->flags & GNTCOPY_dest_gref;
		const union xengnttab_copy_ptr *p = to_guest ? &g->dest : &g->source;

		if (!!(g->flags & GNTCOPY_source_gref) == to_guest ||
		    p->foreign.offset + g->len > XSIM_PAGE_SIZE) {
			errno = EINVAL;
			return -1;
		}
	}
	for (i = 0; i < count; i++) {
		xengnttab_grant_copy_segment_t *g = &segs[i];
		bool to_guest = g->flags & GNTCOPY_dest_gref;
		const union xengnttab_copy_ptr *p = to_guest ? &g->dest : &g->source;
		uint32_t ref = p->foreign.ref;
		uint8_t *page = xengnttab_map_domain_grant_refs(xgt, 1, p->foreign.domid, &ref,
								 to_guest ? PROT_READ | PROT_WRITE : PROT_READ);

		if (!page) {
			/* Granted, but read-only: the write is what is refused. */
			page = to_guest ? xengnttab_map_domain_grant_refs(xgt, 1, p->foreign.domid, &ref,
									  PROT_READ) : NULL;
			g->status = page ? GNTST_permission_denied : GNTST_bad_gntref;
			if (page)
				munmap(page, XSIM_PAGE_SIZE);
			continue;
		}
		if (to_guest)
			memcpy(page + p->foreign.offset, g->source.virt, g->len);
		else
			memcpy(g->dest.virt, page + p->foreign.offset, g->len);
		munmap(page, XSIM_PAGE_SIZE);
		g->status = GNTST_okay;
	}
	return 0;
}
