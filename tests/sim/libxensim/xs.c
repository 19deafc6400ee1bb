// SPDX-License-Identifier: GPL-2.0-only
/* libxenstore on the simulator: requests on one connection, watch events on another (xs_fileno). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <xenstore.h>

#include "client.h"

struct xs_handle {
	struct xsim_conn *conn;
	struct xsim_conn *events;
};

struct xs_handle *xs_open(unsigned long flags)
{
	struct xs_handle *h = calloc(1, sizeof(*h));
	uint64_t cookie;
	int r;

	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	r = xsim_conn_open(XSIM_CONN_XS, 0, &cookie, &h->conn);
	if (r < 0)
		goto err_free;
	r = xsim_conn_open(XSIM_CONN_XS_EVENTS, cookie, NULL, &h->events);
	if (r < 0)
		goto err_conn;
	return h;

err_conn:
	xsim_conn_close(h->conn);
err_free:
	free(h);
	errno = -r;
	return NULL;
}

void xs_close(struct xs_handle *xsh)
{
	if (!xsh)
		return;
	/* The simulator drops this connection's watches and transactions. */
	xsim_conn_close(xsh->events);
	xsim_conn_close(xsh->conn);
	free(xsh);
}

struct xs_handle *xs_daemon_open(void)
{
	return xs_open(0);
}

struct xs_handle *xs_domain_open(void)
{
	return xs_open(0);
}

struct xs_handle *xs_daemon_open_readonly(void)
{
	return xs_open(XS_OPEN_READONLY);
}

void xs_daemon_close(struct xs_handle *h)
{
	xs_close(h);
}

void xs_daemon_destroy_postfork(struct xs_handle *h)
{
	xs_close(h);
}

int xs_fileno(struct xs_handle *h)
{
	return h->events->fd;
}

/* One request with a path (and more) in the tail; returns 0 or -1 with errno. */
static int xs_call(struct xs_handle *h, struct xsim_msg *m, const void *tail, size_t len,
		   char **ret_tail)
{
	int r = xsim_call(h->conn, m, tail, len, ret_tail, NULL, 0);

	if (r < 0) {
		if (ret_tail) {
			free(*ret_tail);
			*ret_tail = NULL;
		}
		return xsim_fail(r);
	}
	return 0;
}

static int xs_path_call(struct xs_handle *h, uint32_t op, xs_transaction_t t, const char *path,
			char **ret_tail, struct xsim_msg *ret_m)
{
	struct xsim_msg m = { .op = op, .id = t };

	if (!path) {
		errno = EINVAL;
		return -1;
	}
	if (xs_call(h, &m, path, strlen(path) + 1, ret_tail) < 0)
		return -1;
	if (ret_m)
		*ret_m = m;
	return 0;
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
	struct xsim_msg m;
	char *v = NULL;

	if (xs_path_call(h, XSIM_OP_XS_READ, t, path, &v, &m) < 0)
		return NULL;
	if (!v) {
		v = calloc(1, 1);
		if (!v) {
			errno = ENOMEM;
			return NULL;
		}
	}
	if (len)
		*len = m.n;
	return v;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path, const void *data,
	      unsigned int len)
{
	struct xsim_msg m = { .op = XSIM_OP_XS_WRITE, .id = t };
	size_t pl;
	char *buf;
	int r;

	if (!path || (!data && len)) {
		errno = EINVAL;
		return false;
	}
	pl = strlen(path);
	buf = malloc(pl + 1 + len);
	if (!buf) {
		errno = ENOMEM;
		return false;
	}
	memcpy(buf, path, pl + 1);
	if (len)
		memcpy(buf + pl + 1, data, len);
	m.a = pl;
	r = xs_call(h, &m, buf, pl + 1 + len, NULL);
	free(buf);
	return r == 0;
}

bool xs_mkdir(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	return xs_path_call(h, XSIM_OP_XS_MKDIR, t, path, NULL, NULL) == 0;
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	return xs_path_call(h, XSIM_OP_XS_RM, t, path, NULL, NULL) == 0;
}

/* Pack @count NUL-separated strings into one allocation, array first (the caller frees once). */
static char **xs_strings(const char *s, size_t len, unsigned int count)
{
	char **v = malloc(sizeof(char *) * (count + 1) + len + 1);
	char *p;
	unsigned int i;

	if (!v) {
		errno = ENOMEM;
		return NULL;
	}
	p = (char *)(v + count + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	for (i = 0; i < count; i++) {
		v[i] = p;
		p += strlen(p) + 1;
	}
	v[count] = NULL;
	return v;
}

char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *num)
{
	struct xsim_msg m;
	char *rt = NULL;
	char **v;

	if (xs_path_call(h, XSIM_OP_XS_DIR, t, path, &rt, &m) < 0)
		return NULL;
	v = xs_strings(rt ? rt : "", m.n, (unsigned int)m.a);
	free(rt);
	if (v)
		*num = (unsigned int)m.a;
	return v;
}

static bool xs_watch_call(struct xs_handle *h, uint32_t op, const char *path, const char *token)
{
	struct xsim_msg m = { .op = op };
	size_t pl, tl;
	char *buf;
	int r;

	if (!path || !token) {
		errno = EINVAL;
		return false;
	}
	pl = strlen(path);
	tl = strlen(token);
	buf = malloc(pl + tl + 2);
	if (!buf) {
		errno = ENOMEM;
		return false;
	}
	memcpy(buf, path, pl + 1);
	memcpy(buf + pl + 1, token, tl + 1);
	r = xs_call(h, &m, buf, pl + tl + 2, NULL);
	free(buf);
	return r == 0;
}

bool xs_watch(struct xs_handle *h, const char *path, const char *token)
{
	return xs_watch_call(h, XSIM_OP_XS_WATCH, path, token);
}

bool xs_unwatch(struct xs_handle *h, const char *path, const char *token)
{
	return xs_watch_call(h, XSIM_OP_XS_UNWATCH, path, token);
}

static char **xs_next_watch(struct xs_handle *h, unsigned int *num, int flags)
{
	struct xsim_msg m;
	char *rt = NULL;
	char **v;
	int r;

	for (;;) {
		r = xsim_recv(h->events->fd, &m, &rt, NULL, 0, flags);
		if (r < 0) {
			errno = r == -ECONNRESET ? ENOTCONN : -r;
			return NULL;
		}
		if (m.op == XSIM_OP_XS_EVENT)
			break;
		free(rt);
		rt = NULL;
	}
	v = xs_strings(rt ? rt : "", m.n, 2);
	free(rt);
	if (v && num)
		*num = 2;
	return v;
}

char **xs_read_watch(struct xs_handle *h, unsigned int *num)
{
	return xs_next_watch(h, num, 0);
}

char **xs_check_watch(struct xs_handle *h)
{
	return xs_next_watch(h, NULL, MSG_DONTWAIT);
}

xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
	struct xsim_msg m = { .op = XSIM_OP_XS_TX_START };

	if (xs_call(h, &m, NULL, 0, NULL) < 0)
		return XBT_NULL;
	return m.id;
}

bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort)
{
	struct xsim_msg m = { .op = XSIM_OP_XS_TX_END, .id = t, .a = abort ? 1 : 0 };

	return xs_call(h, &m, NULL, 0, NULL) == 0;
}

struct xs_permissions *xs_get_permissions(struct xs_handle *h, xs_transaction_t t,
					  const char *path, unsigned int *num)
{
	struct xs_permissions *p;
	struct xsim_perm *sp;
	struct xsim_msg m;
	char *rt = NULL;
	unsigned int i, n;

	if (xs_path_call(h, XSIM_OP_XS_GET_PERMS, t, path, &rt, &m) < 0)
		return NULL;
	n = m.n / sizeof(*sp);
	sp = (struct xsim_perm *)rt;
	p = calloc(n ? n : 1, sizeof(*p));
	if (!p) {
		free(rt);
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < n; i++) {
		p[i].id = sp[i].id;
		p[i].perms = sp[i].perms;
	}
	free(rt);
	*num = n;
	return p;
}

bool xs_set_permissions(struct xs_handle *h, xs_transaction_t t, const char *path,
			struct xs_permissions *perms, unsigned int num_perms)
{
	struct xsim_msg m = { .op = XSIM_OP_XS_SET_PERMS, .id = t };
	struct xsim_perm *sp;
	size_t pl;
	char *buf;
	unsigned int i;
	int r;

	if (!path || !num_perms) {
		errno = EINVAL;
		return false;
	}
	pl = strlen(path);
	buf = malloc(pl + 1 + num_perms * sizeof(*sp));
	if (!buf) {
		errno = ENOMEM;
		return false;
	}
	memcpy(buf, path, pl + 1);
	sp = (struct xsim_perm *)(buf + pl + 1);
	for (i = 0; i < num_perms; i++) {
		struct xsim_perm one = { .id = perms[i].id, .perms = perms[i].perms };

		memcpy(&sp[i], &one, sizeof(one));
	}
	m.a = pl;
	r = xs_call(h, &m, buf, pl + 1 + num_perms * sizeof(*sp), NULL);
	free(buf);
	return r == 0;
}

char *xs_get_domain_path(struct xs_handle *h, unsigned int domid)
{
	char *p;

	if (asprintf(&p, "/local/domain/%u", domid) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

bool xs_is_domain_introduced(struct xs_handle *h, unsigned int domid)
{
	struct xsim_msg m = { .op = XSIM_OP_XS_INTRODUCED, .domid = domid };

	return xs_call(h, &m, NULL, 0, NULL) == 0 && m.a;
}

bool xs_path_is_subpath(const char *parent, const char *child)
{
	size_t l = strlen(parent);

	if (l && parent[l - 1] == '/')
		l--;
	return !strncmp(parent, child, l) && (child[l] == '/' || child[l] == '\0');
}

bool xs_restrict(struct xs_handle *h, unsigned int domid)
{
	errno = EOPNOTSUPP;
	return false;
}

/* Toolstack operations: the simulator's own toolstack does these. */
bool xs_introduce_domain(struct xs_handle *h, unsigned int domid, unsigned long mfn,
			 unsigned int eventchn)
{
	errno = EPERM;
	return false;
}

bool xs_release_domain(struct xs_handle *h, unsigned int domid)
{
	errno = EPERM;
	return false;
}

bool xs_resume_domain(struct xs_handle *h, unsigned int domid)
{
	errno = EPERM;
	return false;
}
