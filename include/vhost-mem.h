/* SPDX-License-Identifier: GPL-2.0-only */
/* A vhost-user front end's memory: regions mapped once from its fds, guest and user addresses looked up. */
#ifndef VBLKD_VHOST_MEM_H
#define VBLKD_VHOST_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Regions at once (GET_MAX_MEM_SLOTS answers this); SET_MEM_TABLE carries at most 8. */
#define VHOST_MEM_MAX_REGIONS 32u

struct vhost_mem_region {
	uint64_t gpa;			/* guest physical address */
	uint64_t size;			/* bytes, >= 1 */
	uint64_t ua;			/* the front end's user address of the same bytes */
	uint8_t *host;			/* our mapping of gpa */
	void *map;			/* what mmap() returned (page-aligned, before host) */
	size_t map_len;
};

struct vhost_mem {
	unsigned int n;
	struct vhost_mem_region r[VHOST_MEM_MAX_REGIONS];
};

/*
 * Map [@off, @off + @size) of @fd (left open: the caller closes it) as guest
 * memory at @gpa, seen by the front end at @ua.  Every value is the front
 * end's: -EINVAL with a phrase in *@ret_why for a zero size, a range that
 * wraps, one beyond the fd's size (fstat) or overlapping another region in
 * guest or user addresses; -ENOSPC no slot left; -errno of fstat or mmap.
 */
int vhost_mem_add(struct vhost_mem *m, uint64_t gpa, uint64_t size, uint64_t ua, uint64_t off,
		  int fd, const char **ret_why);
/* Unmap the region with exactly this @gpa, @size and @ua: -ENOENT when there is none. */
int vhost_mem_remove(struct vhost_mem *m, uint64_t gpa, uint64_t size, uint64_t ua);
/* Unmap everything.  The caller makes sure no request still uses it. */
void vhost_mem_clear(struct vhost_mem *m);

/* Our pointer to guest bytes [gpa, gpa + len) when they lie inside one region; else NULL. */
void *vhost_mem_gpa(const struct vhost_mem *m, uint64_t gpa, uint64_t len);
/* The guest address of the front end's user range [ua, ua + len) inside one region; -EFAULT if none. */
int vhost_mem_ua_to_gpa(const struct vhost_mem *m, uint64_t ua, uint64_t len, uint64_t *ret_gpa);

#endif
