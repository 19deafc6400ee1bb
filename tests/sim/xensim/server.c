// SPDX-License-Identifier: GPL-2.0-only
/* The simulator's socket server: connections from libxensim, request dispatch, watch event queues. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "sim.h"

struct out_msg {
	struct out_msg *next;
	size_t len;
	char data[];
};

struct sim_conn {
	int fd;
	enum xsim_conn_kind kind;
	uint64_t cookie;
	int refs;		/* under conns_lock */
	bool dead;
	struct loop_source *src;
	struct sim_conn *events;	/* XS conn: its watch event conn */
	struct sim_conn *xs;		/* events conn: its XS conn */
	pthread_mutex_t send_lock;
	struct out_msg *q_head, *q_tail;
	bool want_out;
	struct sim_conn *next;
};

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_conn *conns;
static uint64_t next_cookie = 1;
static struct loop *srv_loop;
static int srv_fd = -1;
static int kick_fd = -1;
static char srv_path[108];
static unsigned int nconns;

/*
 * The irqfds of the privcmd stand-in (Linux drivers/xen/privcmd.c
 * privcmd_irqfd_assign(), irqfd_inject()): each wake-up of the eventfd is one
 * set_irq_level(irq, 1), however many signals it gathered; it goes with its
 * connection, as the kernel drops an irqfd when its eventfd is released.
 * All on the server's thread.
 */
struct sim_irqfd {
	struct sim_conn *owner;
	uint32_t domid;
	uint32_t irq;
	int fd;
	struct loop_source *src;
	struct sim_irqfd *next;
};
static struct sim_irqfd *irqfds;

static void irqfd_free(struct sim_irqfd *q)
{
	loop_remove(q->src);
	close(q->fd);
	free(q);
}

static void on_irqfd(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct sim_irqfd *q = data;
	struct sim_domain *dom;
	uint64_t cnt;

	if (read(fd, &cnt, sizeof(cnt)) != sizeof(cnt))
		return;
	pthread_mutex_lock(&sim_lock);
	dom = hv_domain_find(q->domid);
	if (dom && !__atomic_load_n(&dom->irqs->dying, __ATOMIC_SEQ_CST)) {
		xsim_irq_set(dom->irqs, q->irq, 1);
		dom->irqfd_raises++;
	}
	pthread_mutex_unlock(&sim_lock);
}

static void irqfd_drop_owner(struct sim_conn *c)
{
	struct sim_irqfd **pp = &irqfds, *q;

	while ((q = *pp)) {
		if (q->owner == c) {
			*pp = q->next;
			irqfd_free(q);
		} else {
			pp = &q->next;
		}
	}
}

/* IOCTL_PRIVCMD_IRQFD; takes *fd on success. */
static int irqfd_ioctl(struct sim_conn *c, const struct xsim_msg *m, int *fd)
{
	struct sim_irqfd *q, **pp;
	bool known;
	int r;

	if (!sim_privcmd_eventfd)
		return -ENOTTY;
	if (m->c & ~1ull)
		return -EINVAL;
	if (*fd < 0)
		return -EBADF;
	if (m->c) {
		for (pp = &irqfds; (q = *pp); pp = &q->next)
			if (sim_same_file(q->fd, *fd)) {
				*pp = q->next;
				irqfd_free(q);
				return 0;
			}
		return -ENOENT;
	}
	pthread_mutex_lock(&sim_lock);
	known = hv_domain_find(m->domid) != NULL;
	pthread_mutex_unlock(&sim_lock);
	/* The dm_op it stores fails later for a bad domain or line; the simulator says so now. */
	if (!known)
		return -ESRCH;
	if (m->a < XSIM_IRQ_MIN || m->a > XSIM_IRQ_MAX)
		return -EINVAL;
	for (q = irqfds; q; q = q->next)
		if (sim_same_file(q->fd, *fd))
			return -EBUSY;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	*q = (struct sim_irqfd){ .owner = c, .domid = m->domid, .irq = (uint32_t)m->a, .fd = *fd };
	r = loop_add_fd(srv_loop, q->fd, EPOLLIN, on_irqfd, q, &q->src);
	if (r < 0) {
		free(q);
		return r;
	}
	*fd = -1;
	q->next = irqfds;
	irqfds = q;
	return 0;
}

static void conn_put(struct sim_conn *c)
{
	bool last;

	pthread_mutex_lock(&conns_lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&conns_lock);
	if (!last)
		return;
	while (c->q_head) {
		struct out_msg *m = c->q_head;

		c->q_head = m->next;
		free(m);
	}
	close(c->fd);
	pthread_mutex_destroy(&c->send_lock);
	free(c);
}

static void conn_close(struct sim_conn *c)
{
	struct sim_conn **pp;

	if (c->dead)
		return;
	c->dead = true;
	loop_remove(c->src);
	pthread_mutex_lock(&sim_lock);
	store_drop_owner(c);
	hv_drop_owner(c);
	irqfd_drop_owner(c);
	if (c->events)
		c->events->xs = NULL;
	if (c->xs)
		c->xs->events = NULL;
	pthread_mutex_unlock(&sim_lock);
	pthread_mutex_lock(&conns_lock);
	for (pp = &conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	nconns--;
	pthread_mutex_unlock(&conns_lock);
	conn_put(c);
}

static int conn_reply(struct sim_conn *c, struct xsim_msg *m, int ret, const void *tail,
		      uint32_t n, const int *fds, unsigned int nfds)
{
	int r;

	m->ret = ret;
	m->n = n;
	pthread_mutex_lock(&c->send_lock);
	r = xsim_send(c->fd, m, tail, fds, nfds);
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

/* Called under sim_lock by the store: queue a watch event on the owner's event connection. */
static void store_event_cb(void *owner, const char *path, const char *token)
{
	struct sim_conn *xs = owner, *ev = xs ? xs->events : NULL;
	size_t pl = strlen(path) + 1, tl = strlen(token) + 1;
	struct xsim_msg m = { .op = XSIM_OP_XS_EVENT, .n = (uint32_t)(pl + tl) };
	struct out_msg *om;
	bool kick = false;
	uint64_t one = 1;
	ssize_t s;

	if (!ev || ev->dead)
		return;
	om = malloc(sizeof(*om) + sizeof(m) + pl + tl);
	if (!om) {
		log_err("watch event for %s dropped: out of memory", path);
		return;
	}
	om->next = NULL;
	om->len = sizeof(m) + pl + tl;
	memcpy(om->data, &m, sizeof(m));
	memcpy(om->data + sizeof(m), path, pl);
	memcpy(om->data + sizeof(m) + pl, token, tl);
	pthread_mutex_lock(&ev->send_lock);
	if (!ev->q_head) {
		s = send(ev->fd, om->data, om->len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (s == (ssize_t)om->len) {
			free(om);
			om = NULL;
		} else if (s < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			free(om);
			om = NULL;	/* the client is gone; the hang-up handler cleans up */
		}
	}
	if (om) {
		/* Like xenstored: events queue up until the client reads them. */
		if (ev->q_tail)
			ev->q_tail->next = om;
		else
			ev->q_head = om;
		ev->q_tail = om;
		if (!ev->want_out) {
			ev->want_out = true;
			kick = true;
		}
	}
	pthread_mutex_unlock(&ev->send_lock);
	if (kick && write(kick_fd, &one, sizeof(one)) < 0)
		log_warn("server kick: %m");
}

static void conn_flush(struct sim_conn *c)
{
	pthread_mutex_lock(&c->send_lock);
	while (c->q_head) {
		struct out_msg *m = c->q_head;
		ssize_t s = send(c->fd, m->data, m->len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		c->q_head = m->next;
		if (!c->q_head)
			c->q_tail = NULL;
		free(m);
	}
	if (!c->q_head && c->want_out) {
		c->want_out = false;
		loop_modify_fd(c->src, EPOLLIN);
	}
	pthread_mutex_unlock(&c->send_lock);
}

static void on_kick(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct sim_conn *c;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("kick read: %m");
	pthread_mutex_lock(&conns_lock);
	for (c = conns; c; c = c->next) {
		pthread_mutex_lock(&c->send_lock);
		if (c->want_out && !c->dead)
			loop_modify_fd(c->src, EPOLLIN | EPOLLOUT);
		pthread_mutex_unlock(&c->send_lock);
	}
	pthread_mutex_unlock(&conns_lock);
}

static unsigned int count_fds(void)
{
	struct dirent *e;
	unsigned int n = 0;
	DIR *d = opendir("/proc/self/fd");

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

/* ---- blocking control operations run in their own thread ---- */
struct work {
	struct sim_conn *conn;
	struct xsim_msg m;
	char *tail;
};

static void *worker(void *arg)
{
	struct work *w = arg;
	struct xsim_msg *m = &w->m;
	struct sim_domain *dom = NULL;
	struct sbuf rep = { 0 };
	int r = 0;

	switch (m->op) {
	case XSIM_OP_CTL_CREATE: {
		struct guest_config cfg;
		char err[200];
		uint32_t domid = 0;
		uint64_t wait = 0;

		r = toolstack_parse_guest(w->tail ? w->tail : "", &cfg, err, sizeof(err));
		if (r < 0) {
			sbuf_printf(&rep, "%s\n", err);
			break;
		}
		r = toolstack_create(&cfg, (unsigned int)m->a, &domid, &wait, &rep);
		m->domid = domid;
		m->a = wait;
		break;
	}
	case XSIM_OP_CTL_DESTROY: {
		uint64_t wait = 0;

		r = toolstack_destroy(m->domid, m->a != 0, &wait, &rep);
		m->a = wait;
		break;
	}
	default:
		pthread_mutex_lock(&sim_lock);
		dom = hv_domain_find(m->domid);
		if (dom)
			hv_domain_get(dom);
		pthread_mutex_unlock(&sim_lock);
		if (!dom) {
			r = -ESRCH;
			break;
		}
		if (m->op == XSIM_OP_CTL_MMIO) {
			uint64_t data = m->d;

			r = hv_mmio(dom, (unsigned int)m->a, m->b, (unsigned int)(m->c & 0xff),
				    (m->c & 0x100) != 0, &data);
			m->d = data;
		} else if (m->op == XSIM_OP_CTL_IOREQ) {
			struct xsim_ioreq in;
			uint64_t data = 0;

			if (m->n != sizeof(in)) {
				r = -EINVAL;
			} else {
				memcpy(&in, w->tail, sizeof(in));
				r = hv_ioreq(dom, (unsigned int)m->a, &in, &data);
				m->d = data;
			}
		} else if (m->op == XSIM_OP_CTL_WAIT_EVENT) {
			r = hv_guest_wait(dom, (uint32_t)m->a, (unsigned int)m->b);
		} else if (m->op == XSIM_OP_CTL_WORKLOAD) {
			r = workload_run(dom, w->tail ? w->tail : "", &rep);
		} else {
			r = -ENOSYS;
		}
		hv_domain_put(dom);
		break;
	}
	conn_reply(w->conn, m, r, rep.s, (uint32_t)rep.len, NULL, 0);
	free(rep.s);
	conn_put(w->conn);
	free(w->tail);
	free(w);
	return NULL;
}

static int spawn_worker(struct sim_conn *c, const struct xsim_msg *m, char *tail)
{
	struct work *w = calloc(1, sizeof(*w));
	pthread_attr_t a;
	pthread_t t;
	int r;

	if (!w)
		return -ENOMEM;
	w->conn = c;
	w->m = *m;
	w->tail = tail;
	pthread_mutex_lock(&conns_lock);
	c->refs++;
	pthread_mutex_unlock(&conns_lock);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&t, &a, worker, w);
	pthread_attr_destroy(&a);
	if (r < 0) {
		conn_put(c);
		free(w);
	}
	return r;
}

static struct sim_conn *find_cookie(uint64_t cookie)
{
	struct sim_conn *c;

	for (c = conns; c; c = c->next)
		if (c->cookie == cookie && c->kind == XSIM_CONN_XS && !c->dead)
			return c;
	return NULL;
}

/* Requests on xenstore paths; tail is NUL-terminated by xsim_recv. */
static int handle_xs(struct sim_conn *c, struct xsim_msg *m, char *tail, char **ret_tail,
		     uint32_t *ret_n)
{
	const char *path = tail ? tail : "";
	size_t pl = strnlen(path, m->n);
	uint32_t cnt, len, id;
	struct xsim_perm *perms;

	if (m->op != XSIM_OP_XS_TX_START && m->op != XSIM_OP_XS_TX_END &&
	    m->op != XSIM_OP_XS_INTRODUCED && pl >= m->n)
		return -EINVAL;
	switch (m->op) {
	case XSIM_OP_XS_READ:
		return store_read(m->id, c, path, ret_tail, ret_n);
	case XSIM_OP_XS_WRITE:
		if (m->a != pl)
			return -EINVAL;
		return store_write(m->id, c, path, tail + pl + 1, (uint32_t)(m->n - pl - 1));
	case XSIM_OP_XS_MKDIR:
		return store_mkdir(m->id, c, path);
	case XSIM_OP_XS_RM:
		return store_rm(m->id, c, path);
	case XSIM_OP_XS_DIR: {
		int r = store_dir(m->id, c, path, ret_tail, &len, &cnt);

		if (r == 0) {
			*ret_n = len;
			m->a = cnt;
		}
		return r;
	}
	case XSIM_OP_XS_WATCH:
	case XSIM_OP_XS_UNWATCH: {
		const char *token = tail + pl + 1;

		if (strnlen(token, m->n - pl - 1) >= m->n - pl - 1)
			return -EINVAL;
		return m->op == XSIM_OP_XS_WATCH ? store_watch(c, path, token)
						  : store_unwatch(c, path, token);
	}
	case XSIM_OP_XS_TX_START: {
		int r = store_tx_start(c, &id);

		if (r == 0)
			m->id = id;
		return r;
	}
	case XSIM_OP_XS_TX_END:
		return store_tx_end(c, m->id, m->a != 0);
	case XSIM_OP_XS_GET_PERMS: {
		int r = store_get_perms(m->id, c, path, &perms, &cnt);

		if (r == 0) {
			*ret_tail = (char *)perms;
			*ret_n = cnt * (uint32_t)sizeof(*perms);
		}
		return r;
	}
	case XSIM_OP_XS_SET_PERMS:
		if (m->a != pl || (m->n - pl - 1) % sizeof(struct xsim_perm))
			return -EINVAL;
		{
			uint32_t n = (uint32_t)((m->n - pl - 1) / sizeof(struct xsim_perm));
			struct xsim_perm *p = malloc(n ? n * sizeof(*p) : 1);
			int r;

			if (!p)
				return -ENOMEM;
			memcpy(p, tail + pl + 1, n * sizeof(*p));
			r = store_set_perms(m->id, c, path, p, n);
			free(p);
			return r;
		}
	case XSIM_OP_XS_INTRODUCED:
		m->a = m->domid == 0 || hv_domain_find(m->domid) != NULL;
		return 0;
	default:
		return -ENOSYS;
	}
}

static void handle(struct sim_conn *c, struct xsim_msg *m, char *tail, int *in_fds)
{
	int fds[XSIM_MAX_FDS];
	unsigned int nfds = 0;
	char *rt = NULL;
	uint32_t rn = 0;
	int r;

	switch (m->op) {
	case XSIM_OP_HELLO:
		if (m->a == XSIM_CONN_XS_EVENTS) {
			struct sim_conn *xs;

			pthread_mutex_lock(&sim_lock);
			pthread_mutex_lock(&conns_lock);
			xs = find_cookie(m->b);
			if (xs && !xs->events) {
				xs->events = c;
				c->xs = xs;
				r = 0;
			} else {
				r = -ENOENT;
			}
			pthread_mutex_unlock(&conns_lock);
			pthread_mutex_unlock(&sim_lock);
		} else {
			r = m->a <= XSIM_CONN_XS ? 0 : -EINVAL;
		}
		if (r == 0)
			c->kind = (enum xsim_conn_kind)m->a;
		m->a = c->cookie;
		conn_reply(c, m, r, NULL, 0, NULL, 0);
		break;
	case XSIM_OP_XS_READ: case XSIM_OP_XS_WRITE: case XSIM_OP_XS_MKDIR: case XSIM_OP_XS_RM:
	case XSIM_OP_XS_DIR: case XSIM_OP_XS_WATCH: case XSIM_OP_XS_UNWATCH:
	case XSIM_OP_XS_TX_START: case XSIM_OP_XS_TX_END: case XSIM_OP_XS_GET_PERMS:
	case XSIM_OP_XS_SET_PERMS: case XSIM_OP_XS_INTRODUCED:
		pthread_mutex_lock(&sim_lock);
		r = handle_xs(c, m, tail, &rt, &rn);
		pthread_mutex_unlock(&sim_lock);
		conn_reply(c, m, r, r == 0 ? rt : NULL, r == 0 ? rn : 0, NULL, 0);
		break;
	case XSIM_OP_IOEVENTFD:
		pthread_mutex_lock(&sim_lock);
		r = hv_ioeventfd(c, m, tail, &in_fds[0]);
		pthread_mutex_unlock(&sim_lock);
		conn_reply(c, m, r, NULL, 0, NULL, 0);
		break;
	case XSIM_OP_IRQFD:
		r = irqfd_ioctl(c, m, &in_fds[0]);
		conn_reply(c, m, r, NULL, 0, NULL, 0);
		break;
	case XSIM_OP_CTL_STATS: {
		struct xsim_stats st = { 0 };

		pthread_mutex_lock(&sim_lock);
		hv_stats(&st);
		store_stats(&st);
		pthread_mutex_unlock(&sim_lock);
		st.open_fds = count_fds();
		st.connections = nconns;
		conn_reply(c, m, 0, &st, sizeof(st), NULL, 0);
		break;
	}
	case XSIM_OP_CTL_PROGRESS: {
		struct sim_domain *dom;
		uint32_t phase = 0;

		pthread_mutex_lock(&sim_lock);
		dom = hv_domain_find(m->domid);
		r = dom ? 0 : -ESRCH;
		if (dom) {
			iolog_progress(dom, &m->a, &m->b, &phase);
			m->c = phase;
		}
		pthread_mutex_unlock(&sim_lock);
		conn_reply(c, m, r, NULL, 0, NULL, 0);
		break;
	}
	case XSIM_OP_CTL_GAPS: {
		struct xsim_gap *gaps = NULL;
		uint32_t n = 0;

		r = iolog_gaps(m->a, &gaps, &n);
		conn_reply(c, m, r, gaps, r == 0 ? n * (uint32_t)sizeof(*gaps) : 0, NULL, 0);
		free(gaps);
		break;
	}
	case XSIM_OP_CTL_CREATE: case XSIM_OP_CTL_DESTROY: case XSIM_OP_CTL_MMIO:
	case XSIM_OP_CTL_WAIT_EVENT: case XSIM_OP_CTL_WORKLOAD: case XSIM_OP_CTL_IOREQ:
		r = spawn_worker(c, m, tail);
		if (r == 0)
			return;	/* the worker owns tail and replies */
		conn_reply(c, m, r, NULL, 0, NULL, 0);
		break;
	default:
		/* Hypervisor operations: reply (with descriptors) while the domain cannot go away. */
		pthread_mutex_lock(&sim_lock);
		r = hv_handle(c, m, tail, &rt, &rn, fds, &nfds);
		conn_reply(c, m, r, r == 0 ? rt : NULL, r == 0 ? rn : 0, fds, r == 0 ? nfds : 0);
		pthread_mutex_unlock(&sim_lock);
		break;
	}
	free(rt);
	free(tail);
}

static void on_conn(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct sim_conn *c = data;
	struct xsim_msg m;
	char *tail = NULL;
	int in_fds[XSIM_MAX_FDS];
	int r;

	if (events & EPOLLOUT)
		conn_flush(c);
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	r = xsim_recv(fd, &m, &tail, in_fds, XSIM_MAX_FDS, MSG_DONTWAIT);
	if (r == -EAGAIN)
		return;
	if (r < 0) {
		conn_close(c);
		return;
	}
	if (c->kind == XSIM_CONN_XS_EVENTS && m.op != XSIM_OP_HELLO)
		free(tail);
	else
		handle(c, &m, tail, in_fds);
	/* Descriptors a request brought and its handler did not keep. */
	for (unsigned int i = 0; i < XSIM_MAX_FDS; i++)
		if (in_fds[i] >= 0)
			close(in_fds[i]);
}

static void on_accept(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct sim_conn *c;
	int cfd, sz = 1 << 20;

	cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return;
	}
	/* Room for many queued watch events before the queue in memory is needed. */
	setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	c->fd = cfd;
	c->refs = 1;
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_lock(&conns_lock);
	c->cookie = next_cookie++;
	c->next = conns;
	conns = c;
	nconns++;
	pthread_mutex_unlock(&conns_lock);
	if (loop_add_fd(srv_loop, cfd, EPOLLIN, on_conn, c, &c->src) < 0)
		conn_close(c);
}

int server_start(struct loop *loop, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	srv_loop = loop;
	store_init(store_event_cb);
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	snprintf(srv_path, sizeof(srv_path), "%s", path);
	srv_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (srv_fd < 0)
		return -errno;
	unlink(path);
	if (bind(srv_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(srv_fd, 64) < 0) {
		r = -errno;
		goto err_sock;
	}
	kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (kick_fd < 0) {
		r = -errno;
		goto err_sock;
	}
	r = loop_add_fd(loop, srv_fd, EPOLLIN, on_accept, NULL, NULL);
	if (r == 0)
		r = loop_add_fd(loop, kick_fd, EPOLLIN, on_kick, NULL, NULL);
	if (r < 0)
		goto err_kick;
	return 0;

err_kick:
	close(kick_fd);
	kick_fd = -1;
err_sock:
	close(srv_fd);
	srv_fd = -1;
	return r;
}

void server_stop(void)
{
	while (conns)
		conn_close(conns);
	if (srv_fd >= 0) {
		close(srv_fd);
		unlink(srv_path);
		srv_fd = -1;
	}
	if (kick_fd >= 0) {
		close(kick_fd);
		kick_fd = -1;
	}
}
