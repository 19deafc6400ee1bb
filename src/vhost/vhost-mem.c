// SPDX-License-Identifier: GPL-2.0-only
/* A vhost-user front end's memory regions: checked, mapped once, and looked up per guest buffer. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhost-mem.h"

/* [a, a + alen) and [b, b + blen) share a byte (neither wraps). */
static int ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static int mem_check(const struct vhost_mem *m, uint64_t gpa, uint64_t size, uint64_t ua,
		     uint64_t off, int fd, const char **ret_why)
{
	struct stat st;

	if (!size) {
		*ret_why = "its size is 0";
		return -EINVAL;
	}
	if (gpa + size < gpa || ua + size < ua || off + size < off || size > SIZE_MAX / 2) {
		*ret_why = "its range wraps around";
		return -EINVAL;
	}
	/* The front end says where in the fd the region is: it must be there (a short memfd would SIGBUS). */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size < 0 || off + size > (uint64_t)st.st_size) {
		*ret_why = "it ends beyond its file's size";
		return -EINVAL;
	}
	for (unsigned int i = 0; i < m->n; i++) {
		if (ranges_overlap(gpa, size, m->r[i].gpa, m->r[i].size)) {
			*ret_why = "it overlaps another region in guest addresses";
			return -EINVAL;
		}
		if (ranges_overlap(ua, size, m->r[i].ua, m->r[i].size)) {
			*ret_why = "it overlaps another region in user addresses";
			return -EINVAL;
		}
	}
	if (m->n >= VHOST_MEM_MAX_REGIONS) {
		*ret_why = "no memory slot is left";
		return -ENOSPC;
	}
	return 0;
}

int vhost_mem_add(struct vhost_mem *m, uint64_t gpa, uint64_t size, uint64_t ua, uint64_t off,
		  int fd, const char **ret_why)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), start, lead;
	struct vhost_mem_region *r;
	void *p;
	int ret;

	*ret_why = NULL;
	ret = mem_check(m, gpa, size, ua, off, fd, ret_why);
	if (ret < 0)
		return ret;
	/* mmap offsets are page-aligned: map from the page the region starts in. */
	start = off & ~(page - 1);
	lead = off - start;
	p = mmap(NULL, (size_t)(size + lead), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
		 (off_t)start);
	if (p == MAP_FAILED)
		return -errno;
	r = &m->r[m->n++];
	r->gpa = gpa;
	r->size = size;
	r->ua = ua;
	r->map = p;
	r->map_len = (size_t)(size + lead);
	r->host = (uint8_t *)p + lead;
	return 0;
}

static void mem_unmap(struct vhost_mem_region *r)
{
	munmap(r->map, r->map_len);
	memset(r, 0, sizeof(*r));
}

int vhost_mem_remove(struct vhost_mem *m, uint64_t gpa, uint64_t size, uint64_t ua)
{
	for (unsigned int i = 0; i < m->n; i++) {
		struct vhost_mem_region *r = &m->r[i];

		if (r->gpa != gpa || r->size != size || r->ua != ua)
			continue;
		mem_unmap(r);
		m->r[i] = m->r[--m->n];
		memset(&m->r[m->n], 0, sizeof(m->r[m->n]));
		return 0;
	}
	return -ENOENT;
}

void vhost_mem_clear(struct vhost_mem *m)
{
	while (m->n)
		mem_unmap(&m->r[--m->n]);
}

void *vhost_mem_gpa(const struct vhost_mem *m, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < m->n; i++) {
		const struct vhost_mem_region *r = &m->r[i];

		/* Written so that nothing overflows: gpa + len may wrap (the caller checks, we do too). */
		if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

int vhost_mem_ua_to_gpa(const struct vhost_mem *m, uint64_t ua, uint64_t len, uint64_t *ret_gpa)
{
	for (unsigned int i = 0; i < m->n; i++) {
		const struct vhost_mem_region *r = &m->r[i];

		if (ua >= r->ua && ua - r->ua < r->size && len <= r->size - (ua - r->ua)) {
			*ret_gpa = r->gpa + (ua - r->ua);
			return 0;
		}
	}
	return -EFAULT;
}
