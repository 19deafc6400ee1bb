// SPDX-License-Identifier: GPL-2.0-only
/* libxenevtchn on the simulator: a bound port is two eventfds; xenevtchn_fd() polls them all. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <xenevtchn.h>

#include "client.h"

struct xsim_port {
	evtchn_port_t port;
	int in_fd;	/* the guest signals dom0 on it */
	int out_fd;	/* dom0 signals the guest on it */
	bool masked;	/* returned by xenevtchn_pending(), not unmasked yet */
	bool pending;	/* fired while masked: delivered again at unmask */
	struct xsim_port *next;
};

struct xenevtchn_handle {
	struct xsim_conn *conn;
	int epfd;
	struct xsim_port *ports;
};

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned int open_flags)
{
	xenevtchn_handle *h = calloc(1, sizeof(*h));
	int r;

	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (h->epfd < 0) {
		r = -errno;
		goto err_free;
	}
	r = xsim_conn_open(XSIM_CONN_GENERIC, 0, NULL, &h->conn);
	if (r < 0)
		goto err_ep;
	return h;

err_ep:
	close(h->epfd);
err_free:
	free(h);
	errno = -r;
	return NULL;
}

xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd, unsigned int open_flags)
{
	errno = EOPNOTSUPP;
	return NULL;
}

static void port_free(struct xsim_port *p)
{
	close(p->in_fd);
	close(p->out_fd);
	free(p);
}

int xenevtchn_close(xenevtchn_handle *xce)
{
	struct xsim_port *p, *n;

	if (!xce)
		return 0;
	/* Closing the connection unbinds every port in the simulator. */
	xsim_conn_close(xce->conn);
	for (p = xce->ports; p; p = n) {
		n = p->next;
		port_free(p);
	}
	close(xce->epfd);
	free(xce);
	return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
	return xce->epfd;
}

static struct xsim_port *port_find(xenevtchn_handle *xce, evtchn_port_t port,
				   struct xsim_port ***ret_link)
{
	struct xsim_port **pp;

	for (pp = &xce->ports; *pp; pp = &(*pp)->next)
		if ((*pp)->port == port) {
			if (ret_link)
				*ret_link = pp;
			return *pp;
		}
	return NULL;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
	struct xsim_port *p = port_find(xce, port, NULL);
	uint64_t one = 1;

	if (!p)
		return xsim_fail(-EINVAL);
	if (write(p->out_fd, &one, sizeof(one)) != sizeof(one))
		return -1;
	return 0;
}

xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *xce, uint32_t domid)
{
	return xsim_fail(-EOPNOTSUPP);
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
						      evtchn_port_t remote_port)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct xsim_msg m = { .op = XSIM_OP_EVT_BIND, .domid = domid, .a = remote_port };
	struct xsim_port *p;
	int fds[2];
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return xsim_fail(-ENOMEM);
	r = xsim_call(xce->conn, &m, NULL, 0, NULL, fds, 2);
	if (r < 0) {
		if (fds[0] >= 0)
			close(fds[0]);
		if (fds[1] >= 0)
			close(fds[1]);
		free(p);
		return xsim_fail(r);
	}
	if (fds[0] < 0 || fds[1] < 0) {
		free(p);
		return xsim_fail(-EPROTO);
	}
	p->port = m.id;
	p->in_fd = fds[0];
	p->out_fd = fds[1];
	ev.data.u32 = p->port;
	if (epoll_ctl(xce->epfd, EPOLL_CTL_ADD, p->in_fd, &ev) < 0) {
		r = -errno;
		port_free(p);
		return xsim_fail(r);
	}
	p->next = xce->ports;
	xce->ports = p;
	return (xenevtchn_port_or_error_t)p->port;
}

xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
	return xsim_fail(-EOPNOTSUPP);
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
	struct xsim_msg m = { .op = XSIM_OP_EVT_UNBIND, .id = port };
	struct xsim_port **link;
	struct xsim_port *p = port_find(xce, port, &link);

	if (!p)
		return xsim_fail(-EINVAL);
	*link = p->next;
	epoll_ctl(xce->epfd, EPOLL_CTL_DEL, p->in_fd, NULL);
	port_free(p);
	/* Unbinding a port whose domain already died is not an error for the caller. */
	xsim_call(xce->conn, &m, NULL, 0, NULL, NULL, 0);
	return 0;
}

/*
 * Like /dev/xen/evtchn: returns one pending port and leaves it masked until
 * xenevtchn_unmask() (an event meanwhile stays pending and is delivered at
 * unmask).  With none pending it blocks, or fails with EAGAIN once the
 * caller made xenevtchn_fd() non-blocking (as a read() of the device would).
 * Masking is a flag here, as it is a bit in shared memory on Xen: a pending()
 * and unmask() pair costs one epoll_wait() and one read().
 */
xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
	struct epoll_event ev;
	struct xsim_port *p;
	bool nonblock = false, asked = false;
	uint64_t cnt;
	int n;

	for (;;) {
		n = epoll_wait(xce->epfd, &ev, 1, asked && !nonblock ? -1 : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			if (!asked) {
				/* Nothing pending: only now does the fd's mode matter. */
				int fl = fcntl(xce->epfd, F_GETFL);

				nonblock = fl >= 0 && (fl & O_NONBLOCK);
				asked = true;
				continue;
			}
			errno = EAGAIN;
			return -1;
		}
		p = port_find(xce, ev.data.u32, NULL);
		if (!p)
			continue;
		if (read(p->in_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			return -1;
		if (p->masked) {
			p->pending = true;
			continue;
		}
		p->masked = true;
		return (xenevtchn_port_or_error_t)p->port;
	}
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
	struct xsim_port *p = port_find(xce, port, NULL);
	uint64_t one = 1;

	if (!p)
		return xsim_fail(-EINVAL);
	p->masked = false;
	if (p->pending) {
		p->pending = false;
		/* Raise it again for the next xenevtchn_pending(). */
		if (write(p->in_fd, &one, sizeof(one)) != sizeof(one))
			return -1;
	}
	return 0;
}

int xenevtchn_restrict(xenevtchn_handle *xce, domid_t domid)
{
	return 0;
}
