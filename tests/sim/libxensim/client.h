/* SPDX-License-Identifier: GPL-2.0-only */
/* Internal to libxensim: one connection to the simulator and a synchronous call on it. */
#ifndef XENSIM_CLIENT_H
#define XENSIM_CLIENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto.h"

struct xsim_conn {
	int fd;
	pthread_mutex_t lock;
};

/* Connect and say hello; *ret_cookie (may be NULL) identifies the conn to a later hello. */
int xsim_conn_open(enum xsim_conn_kind kind, uint64_t cookie, uint64_t *ret_cookie,
		   struct xsim_conn **ret_conn);
void xsim_conn_close(struct xsim_conn *c);

/*
 * The dmod, fmem, gnttab and xc handles hold only their connection, as
 * their first member: allocate one of @size bytes and connect it (NULL and
 * errno on failure), and close and free one (NULL is fine).
 */
void *xsim_handle_open(size_t size);
int xsim_handle_close(void *handle);

/*
 * Send @m (op and arguments) with @tail, wait for the reply and return its
 * ret (0 or -errno; -ENOTCONN when the simulator is gone).  The reply header
 * replaces *m; *ret_tail (if not NULL) gets the reply tail (free() it) and
 * ret_fds up to @max_fds descriptors (-1 when absent).
 */
int xsim_call(struct xsim_conn *c, struct xsim_msg *m, const void *tail, size_t tail_len,
	      char **ret_tail, int *ret_fds, unsigned int max_fds);

/* xsim_call() that also sends @nsend descriptors (SCM_RIGHTS) with the request. */
int xsim_call_fds(struct xsim_conn *c, struct xsim_msg *m, const void *tail, size_t tail_len,
		  const int *send_fds, unsigned int nsend, char **ret_tail, int *ret_fds,
		  unsigned int max_fds);

/*
 * The IOREQ server whose ioreq page this process mapped at @addr
 * (xenforeignmemory_map_resource()): 0, or -EFAULT as privcmd's find_vma().
 */
int xsim_resource_find(const void *addr, uint32_t *ret_domid, uint32_t *ret_id);

/* Set errno from a -errno result and return -1 (the libxen* convention). */
int xsim_fail(int neg_errno);

#endif
