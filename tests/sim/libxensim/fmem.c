// SPDX-License-Identifier: GPL-2.0-only
/* libxenforeignmemory on the simulator: guest frames are mmaps of the guest's RAM memfd. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xenforeignmemory.h>

#include "client.h"
#include "frames.h"

struct xenforeignmemory_handle {
	struct xsim_conn *conn;
};
_Static_assert(offsetof(struct xenforeignmemory_handle, conn) == 0, "xsim_handle_open() layout");

struct xenforeignmemory_resource_handle {
	void *addr;
	unsigned long nr_frames;
	uint32_t domid;
	uint32_t id;
	struct xenforeignmemory_resource_handle *next;
};

/* The process's resource mappings, for xsim_resource_find() (privcmd's VMAs). */
static pthread_mutex_t fres_lock = PTHREAD_MUTEX_INITIALIZER;
static xenforeignmemory_resource_handle *fres_list;

int xsim_resource_find(const void *addr, uint32_t *ret_domid, uint32_t *ret_id)
{
	int r = -EFAULT;

	pthread_mutex_lock(&fres_lock);
	for (xenforeignmemory_resource_handle *f = fres_list; f; f = f->next)
		if ((const char *)addr >= (const char *)f->addr &&
		    (const char *)addr < (const char *)f->addr + f->nr_frames * XSIM_PAGE_SIZE) {
			*ret_domid = f->domid;
			*ret_id = f->id;
			r = 0;
			break;
		}
	pthread_mutex_unlock(&fres_lock);
	return r;
}

xenforeignmemory_handle *xenforeignmemory_open(struct xentoollog_logger *logger,
					       unsigned int open_flags)
{
	return xsim_handle_open(sizeof(xenforeignmemory_handle));
}

int xenforeignmemory_close(xenforeignmemory_handle *fmem)
{
	return xsim_handle_close(fmem);
}

int xsim_map_frames(uint8_t *base, int prot, int fd, uint64_t ram_base_gfn, const uint64_t *gfns,
		    const int *errs, size_t n)
{
	size_t i = 0, j;

	while (i < n) {
		if (errs && errs[i]) {
			i++;
			continue;
		}
		/* Coalesce a run of consecutive frames into one mmap. */
		for (j = i + 1; j < n && !(errs && errs[j]) && gfns[j] == gfns[j - 1] + 1; j++)
			;
		if (mmap(base + i * XSIM_PAGE_SIZE, (j - i) * XSIM_PAGE_SIZE, prot,
			 MAP_SHARED | MAP_FIXED, fd,
			 (off_t)((gfns[i] - ram_base_gfn) << XSIM_PAGE_SHIFT)) == MAP_FAILED)
			return -errno;
		i = j;
	}
	return 0;
}

void *xenforeignmemory_map2(xenforeignmemory_handle *fmem, uint32_t dom, void *addr, int prot,
			    int flags, size_t pages, const xen_pfn_t arr[], int err[])
{
	const size_t chunk = XSIM_TAIL_MAX / sizeof(uint64_t);
	int *errs = err;
	uint8_t *base;
	size_t done;
	int r = 0;

	if (!pages || (flags & ~(MAP_SHARED | MAP_PRIVATE | MAP_FIXED))) {
		errno = EINVAL;
		return NULL;
	}
	if (!errs) {
		errs = calloc(pages, sizeof(*errs));
		if (!errs) {
			errno = ENOMEM;
			return NULL;
		}
	}
	/* Reserve the whole range first: the result must be contiguous. */
	base = mmap(addr, pages * XSIM_PAGE_SIZE, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | (flags & MAP_FIXED), -1, 0);
	if (base == MAP_FAILED) {
		r = -errno;
		goto err_free;
	}
	for (done = 0; done < pages; done += chunk) {
		size_t n = pages - done < chunk ? pages - done : chunk, i;
		struct xsim_msg m = { .op = XSIM_OP_FMAP, .domid = dom };
		uint64_t *gfns = malloc(n * sizeof(*gfns));
		char *rt = NULL;
		int fd;

		if (!gfns) {
			r = -ENOMEM;
			goto err_unmap;
		}
		for (i = 0; i < n; i++)
			gfns[i] = arr[done + i];
		r = xsim_call(fmem->conn, &m, gfns, n * sizeof(*gfns), &rt, &fd, 1);
		if (r == 0 && (m.n != n * sizeof(int32_t) || fd < 0))
			r = -EPROTO;
		if (r == 0) {
			memcpy(errs + done, rt, n * sizeof(int32_t));
			r = xsim_map_frames(base + done * XSIM_PAGE_SIZE, prot, fd, m.a, gfns,
					    errs + done, n);
		}
		if (fd >= 0)
			close(fd);
		free(rt);
		free(gfns);
		if (r < 0)
			goto err_unmap;
	}
	if (!err) {
		/* Without an error array any failed frame fails the whole call. */
		for (done = 0; done < pages; done++)
			if (errs[done]) {
				r = errs[done];
				goto err_unmap;
			}
		free(errs);
	}
	return base;

err_unmap:
	munmap(base, pages * XSIM_PAGE_SIZE);
err_free:
	if (!err)
		free(errs);
	errno = -r;
	return NULL;
}

void *xenforeignmemory_map(xenforeignmemory_handle *fmem, uint32_t dom, int prot, size_t pages,
			   const xen_pfn_t arr[], int err[])
{
	return xenforeignmemory_map2(fmem, dom, NULL, prot, 0, pages, arr, err);
}

int xenforeignmemory_unmap(xenforeignmemory_handle *fmem, void *addr, size_t pages)
{
	return munmap(addr, pages * XSIM_PAGE_SIZE);
}

int xenforeignmemory_restrict(xenforeignmemory_handle *fmem, domid_t domid)
{
	return 0;
}

xenforeignmemory_resource_handle *xenforeignmemory_map_resource(
	xenforeignmemory_handle *fmem, domid_t domid, unsigned int type, unsigned int id,
	unsigned long frame, unsigned long nr_frames, void **paddr, int prot, int flags)
{
	struct xsim_msg m = { .op = XSIM_OP_RESOURCE, .domid = domid, .id = id, .a = type,
			      .b = frame, .c = nr_frames };
	xenforeignmemory_resource_handle *fres;
	void *addr;
	int fd, r;

	fres = calloc(1, sizeof(*fres));
	if (!fres) {
		errno = ENOMEM;
		return NULL;
	}
	r = xsim_call(fmem->conn, &m, NULL, 0, NULL, &fd, 1);
	if (r == 0 && fd < 0)
		r = -EPROTO;
	if (r < 0)
		goto err;
	addr = mmap(*paddr, nr_frames * XSIM_PAGE_SIZE, prot, MAP_SHARED | flags, fd, (off_t)m.a);
	close(fd);
	if (addr == MAP_FAILED) {
		r = -errno;
		goto err;
	}
	fres->addr = addr;
	fres->nr_frames = nr_frames;
	fres->domid = domid;
	fres->id = id;
	pthread_mutex_lock(&fres_lock);
	fres->next = fres_list;
	fres_list = fres;
	pthread_mutex_unlock(&fres_lock);
	*paddr = addr;
	return fres;

err:
	free(fres);
	errno = -r;
	return NULL;
}

int xenforeignmemory_unmap_resource(xenforeignmemory_handle *fmem,
				    xenforeignmemory_resource_handle *fres)
{
	int r = 0;

	if (!fres)
		return 0;
	pthread_mutex_lock(&fres_lock);
	for (xenforeignmemory_resource_handle **pp = &fres_list; *pp; pp = &(*pp)->next)
		if (*pp == fres) {
			*pp = fres->next;
			break;
		}
	pthread_mutex_unlock(&fres_lock);
	if (fres->addr)
		r = munmap(fres->addr, fres->nr_frames * XSIM_PAGE_SIZE);
	free(fres);
	return r;
}

int xenforeignmemory_resource_size(xenforeignmemory_handle *fmem, domid_t domid,
				   unsigned int type, unsigned int id, size_t *size)
{
	struct xsim_msg m = { .op = XSIM_OP_RESOURCE, .domid = domid, .id = id, .a = type,
			      .b = 0, .c = 0 };
	int r = xsim_call(fmem->conn, &m, NULL, 0, NULL, NULL, 0);

	if (r < 0)
		return xsim_fail(r);
	*size = (size_t)m.b * XSIM_PAGE_SIZE;
	return 0;
}
