// SPDX-License-Identifier: GPL-2.0-only
/* libxensim's connection to the simulator: connect to $XENSIM_SOCKET, synchronous calls. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

int xsim_fail(int neg_errno)
{
	errno = neg_errno < 0 ? -neg_errno : EIO;
	return -1;
}

int xsim_conn_open(enum xsim_conn_kind kind, uint64_t cookie, uint64_t *ret_cookie,
		   struct xsim_conn **ret_conn)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct xsim_conn *c;
	struct xsim_msg m;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	xsim_socket_path(sa.sun_path, sizeof(sa.sun_path));
	c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		r = -errno;
		goto err_free;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		/* What the real libraries report when /dev/xen/ or xenstored is absent. */
		r = -errno;
		goto err_close;
	}
	memset(&m, 0, sizeof(m));
	m.op = XSIM_OP_HELLO;
	m.a = kind;
	m.b = cookie;
	r = xsim_call(c, &m, NULL, 0, NULL, NULL, 0);
	if (r < 0)
		goto err_close;
	if (ret_cookie)
		*ret_cookie = m.a;
	*ret_conn = c;
	return 0;

err_close:
	close(c->fd);
err_free:
	pthread_mutex_destroy(&c->lock);
	free(c);
	return r;
}

void xsim_conn_close(struct xsim_conn *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int xsim_call(struct xsim_conn *c, struct xsim_msg *m, const void *tail, size_t tail_len,
	      char **ret_tail, int *ret_fds, unsigned int max_fds)
{
	return xsim_call_fds(c, m, tail, tail_len, NULL, 0, ret_tail, ret_fds, max_fds);
}

int xsim_call_fds(struct xsim_conn *c, struct xsim_msg *m, const void *tail, size_t tail_len,
		  const int *send_fds, unsigned int nsend, char **ret_tail, int *ret_fds,
		  unsigned int max_fds)
{
	int fds[XSIM_MAX_FDS];
	uint32_t op = m->op;
	char *rt = NULL;
	unsigned int i;
	int r;

	for (i = 0; ret_fds && i < max_fds; i++)
		ret_fds[i] = -1;
	if (ret_tail)
		*ret_tail = NULL;
	if (tail_len > XSIM_TAIL_MAX)
		return -E2BIG;
	m->n = (uint32_t)tail_len;
	m->ret = 0;
	pthread_mutex_lock(&c->lock);
	r = xsim_send(c->fd, m, tail, send_fds, nsend);
	if (r == 0)
		r = xsim_recv(c->fd, m, &rt, fds, XSIM_MAX_FDS, 0);
	pthread_mutex_unlock(&c->lock);
	if (r < 0) {
		/* The simulator went away: report it like a dead hypervisor interface. */
		return r == -ECONNRESET || r == -EPIPE ? -ENOTCONN : r;
	}
	if (m->op != op) {
		for (i = 0; i < XSIM_MAX_FDS; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		free(rt);
		return -EPROTO;
	}
	for (i = 0; i < XSIM_MAX_FDS; i++) {
		if (ret_fds && i < max_fds)
			ret_fds[i] = fds[i];
		else if (fds[i] >= 0)
			close(fds[i]);
	}
	if (ret_tail)
		*ret_tail = rt;
	else
		free(rt);
	return m->ret;
}

void *xsim_handle_open(size_t size)
{
	struct xsim_conn **h = calloc(1, size);
	int r;

	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	r = xsim_conn_open(XSIM_CONN_GENERIC, 0, NULL, h);
	if (r < 0) {
		free(h);
		errno = -r;
		return NULL;
	}
	return h;
}

int xsim_handle_close(void *handle)
{
	if (handle) {
		xsim_conn_close(*(struct xsim_conn **)handle);
		free(handle);
	}
	return 0;
}
