// SPDX-License-Identifier: GPL-2.0-only
/* A vhost-user-blk export: its listening socket, one front end at a time, and the backing file's engine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "vhost-proto.h"
#include "vhost.h"

struct vhost_export {
	struct loop *loop;
	struct vhost_export_cfg cfg;
	char name[128];			/* "vhost /run/vblkd/disk0.sock" */
	struct blk_dev *blk;
	struct loop_source *blk_src;
	struct loop_source *poll_timer;
	struct loop_source *busy_poll;	/* the loop's busy polling (vhost_export_opts.busy_poll) */
	int listen_fd;
	struct loop_source *listen_src;
	int sock_fd;
	struct loop_source *sock_src;
	struct vhost_conn *conn;	/* the front end served now */
	struct vhost_conn *dead;	/* a dropped one whose requests still run */
	/* The message being read, or waiting for the device to go quiet. */
	struct vhost_user_msg rx;
	size_t rx_len;
	int rx_fds[VHOST_USER_MAX_FDS];
	unsigned int rx_nfds;
	bool waiting;
	uint64_t connections;
	uint64_t resubmitted;		/* of dropped connections */
	struct vblk_stats old;		/* counters of dropped connections */
	uint64_t started;
	struct log_ratelimit rl;
};

static uint64_t export_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* ---- configuration ---- */

void vhost_export_cfg_clear(struct vhost_export_cfg *cfg)
{
	free(cfg->socket);
	free(cfg->path);
	*cfg = (struct vhost_export_cfg){ 0 };
}

static int cfg_option(struct vhost_export_cfg *cfg, const char *opt, const char **ret_why)
{
	char *end;
	unsigned long v;

	if (!strncmp(opt, "path=", 5) && opt[5]) {
		free(cfg->path);
		cfg->path = strdup(opt + 5);
		return cfg->path ? 0 : -ENOMEM;
	}
	if (!strcmp(opt, "ro")) {
		cfg->read_only = true;
		return 0;
	}
	if (!strcmp(opt, "direct")) {
		cfg->direct = true;
		return 0;
	}
	if (!strncmp(opt, "queues=", 7)) {
		errno = 0;
		v = strtoul(opt + 7, &end, 10);
		if (errno || *end || end == opt + 7 || v < 1 || v > VBLK_MAX_QUEUES) {
			*ret_why = "queues= takes a number from 1 to 64";
			return -EINVAL;
		}
		cfg->queues = (unsigned int)v;
		return 0;
	}
	*ret_why = "unknown option (path=, ro, direct, queues=)";
	return -EINVAL;
}

int vhost_export_cfg_parse(const char *arg, struct vhost_export_cfg *ret_cfg, const char **ret_why)
{
	struct vhost_export_cfg cfg = { 0 };
	char *s = strdup(arg), *save = NULL, *tok;
	int r = 0;

	*ret_why = NULL;
	if (!s)
		return -ENOMEM;
	tok = strtok_r(s, ",", &save);
	if (!tok || !tok[0] || strlen(tok) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		*ret_why = "the socket path is missing or too long";
		r = -EINVAL;
		goto out;
	}
	cfg.socket = strdup(tok);
	if (!cfg.socket)
		r = -ENOMEM;
	while (r == 0 && (tok = strtok_r(NULL, ",", &save)))
		r = cfg_option(&cfg, tok, ret_why);
	if (r == 0 && !cfg.path) {
		*ret_why = "path= is missing";
		r = -EINVAL;
	}
out:
	free(s);
	if (r < 0)
		vhost_export_cfg_clear(&cfg);
	else
		*ret_cfg = cfg;
	return r;
}

/* ---- the block engine, as the device's backend ---- */

static int export_be_submit(void *be, struct blk_req *req)
{
	struct vhost_export *e = be;

	return blk_submit(e->blk, req);
}

static void export_be_unplug(void *be)
{
	struct vhost_export *e = be;

	blk_unplug(e->blk);
}

static int export_be_set_timer(void *be, uint64_t us)
{
	struct vhost_export *e = be;
	int r = loop_timer_set(e->poll_timer, us, 0);

	if (r < 0)
		log_ratelimited(&e->rl, LOG_LEVEL_WARNING, "%s: cannot arm the ring poll timer: %s",
				e->name, strerror(-r));
	return r;
}

static const struct vblk_backend_ops export_backend_ops = {
	.submit = export_be_submit,
	.unplug = export_be_unplug,
	.set_timer = export_be_set_timer,
};

static void export_poll_timer(struct loop_source *src, uint64_t expirations, void *data)
{
	struct vhost_export *e = data;

	if (e->conn)
		vhost_conn_timer(e->conn);
}

/*
 * The loop's busy polling (--poll-us), as for a Xen guest's disks: the front
 * end's rings are looked at before the loop sleeps, with its kicks off, so a
 * request it adds meanwhile costs it no eventfd write and us no wakeup.
 */
static bool export_busy_poll(struct loop_source *src, enum loop_poll_phase phase, void *data)
{
	struct vhost_export *e = data;

	if (!e->conn)
		return false;
	switch (phase) {
	case LOOP_POLL_BEGIN:
		vhost_conn_busy_poll_begin(e->conn);
		return false;
	case LOOP_POLL_RUN:
		return vhost_conn_busy_poll(e->conn);
	case LOOP_POLL_END:
		return vhost_conn_busy_poll_end(e->conn);
	}
	return false;
}

/* ---- the front end's connection ---- */

static void export_rx_reset(struct vhost_export *e)
{
	for (unsigned int i = 0; i < e->rx_nfds; i++)
		if (e->rx_fds[i] >= 0)
			close(e->rx_fds[i]);
	e->rx_nfds = 0;
	e->rx_len = 0;
	e->waiting = false;
}

/* A dropped front end's memory goes once its requests are done; then the next one may come. */
static void export_reap(struct vhost_export *e)
{
	if (!e->dead || blk_inflight(e->blk))
		return;
	vhost_conn_free(e->dead);
	e->dead = NULL;
	if (!e->conn)
		loop_modify_fd(e->listen_src, EPOLLIN);
}

static void export_drop(struct vhost_export *e, const char *why)
{
	struct vblk_stats s;

	if (!e->conn)
		return;
	log_notice("%s: front end %s", e->name, why);
	loop_remove(e->sock_src);
	e->sock_src = NULL;
	close(e->sock_fd);
	e->sock_fd = -1;
	export_rx_reset(e);
	vhost_conn_get_stats(e->conn, &s);
	e->old.read_reqs += s.read_reqs;
	e->old.read_bytes += s.read_bytes;
	e->old.write_reqs += s.write_reqs;
	e->old.write_bytes += s.write_bytes;
	e->old.flush_reqs += s.flush_reqs;
	e->old.io_errors += s.io_errors;
	e->old.unsupported += s.unsupported;
	e->old.ring_errors += s.ring_errors;
	e->resubmitted += vhost_conn_resubmitted(e->conn);
	vhost_conn_close(e->conn);
	e->dead = e->conn;
	e->conn = NULL;
	export_reap(e);
}

static int export_send(struct vhost_export *e, const void *buf, size_t len, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	/* A front end that does not read its replies is dropped rather than waited for. */
	n = sendmsg(e->sock_fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EAGAIN;
}

/* The message in rx is whole: hand it to the connection.  0, -EINPROGRESS (wait), or -errno (drop). */
static int export_dispatch(struct vhost_export *e)
{
	struct vhost_user_msg rep;
	size_t rep_len;
	int r, rep_fd;

	r = vhost_conn_handle(e->conn, &e->rx, e->rx_len, e->rx_fds, e->rx_nfds, &rep, &rep_len,
			      &rep_fd);
	if (r == -EINPROGRESS) {
		e->waiting = true;
		return r;
	}
	/* The connection took or closed the fds. */
	e->rx_nfds = 0;
	export_rx_reset(e);
	if (r == 0 && rep_len)
		r = export_send(e, &rep, rep_len, rep_fd);
	return r;
}

/* Collect the fds that came with the bytes just read (SCM_RIGHTS). */
static int export_take_fds(struct vhost_export *e, struct msghdr *mh)
{
	struct cmsghdr *cm;

	if (mh->msg_flags & MSG_CTRUNC)
		return -EMSGSIZE;
	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (e->rx_nfds >= VHOST_USER_MAX_FDS) {
				close(fd);
				return -EMSGSIZE;
			}
			e->rx_fds[e->rx_nfds++] = fd;
		}
	}
	return 0;
}

/* Read what is there of the current message: 1 whole, 0 not yet, -errno. */
static int export_read_msg(struct vhost_export *e)
{
	char cbuf[CMSG_SPACE(VHOST_USER_MAX_FDS * sizeof(int))];
	size_t want = e->rx_len < sizeof(e->rx.hdr) ? sizeof(e->rx.hdr) : sizeof(e->rx.hdr) + e->rx.hdr.size;
	struct iovec iov = { .iov_base = (uint8_t *)&e->rx + e->rx_len, .iov_len = want - e->rx_len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(e->sock_fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	int r;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ECONNRESET;
	r = export_take_fds(e, &mh);
	if (r < 0)
		return r;
	e->rx_len += (size_t)n;
	if (e->rx_len == sizeof(e->rx.hdr) && e->rx.hdr.size > VHOST_USER_PAYLOAD_MAX)
		return -EMSGSIZE;
	if (e->rx_len < sizeof(e->rx.hdr) || e->rx_len < sizeof(e->rx.hdr) + e->rx.hdr.size)
		return e->rx_len == want ? export_read_msg(e) : 0;
	return 1;
}

static void export_sock_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct vhost_export *e = data;
	int r;

	if (e->waiting) {
		/* Not reading while a message waits; a hang-up still ends the connection. */
		if (events & (EPOLLHUP | EPOLLERR))
			export_drop(e, "hung up");
		return;
	}
	for (;;) {
		r = export_read_msg(e);
		if (r == 0)
			return;
		if (r == -ECONNRESET) {
			export_drop(e, "disconnected");
			return;
		}
		if (r == 1)
			r = export_dispatch(e);
		if (r == -EINPROGRESS) {
			loop_modify_fd(e->sock_src, 0);
			return;
		}
		if (r < 0) {
			if (r == -EMSGSIZE)
				log_warn("%s: a message too large, or with too many fds", e->name);
			export_drop(e, r == -EAGAIN || r == -EPIPE ? "stopped reading its replies"
								   : "dropped after a refused message");
			return;
		}
	}
}

/* The device went quiet: the message that waited for it goes on. */
static void export_resume(struct vhost_export *e)
{
	int r;

	if (!e->conn || !e->waiting || !vhost_conn_quiet(e->conn))
		return;
	e->waiting = false;
	r = export_dispatch(e);
	if (r == -EINPROGRESS)
		return;
	if (r < 0) {
		export_drop(e, "dropped after a refused message");
		return;
	}
	loop_modify_fd(e->sock_src, EPOLLIN);
	/* Messages that came meanwhile are read now (level-triggered: epoll reports them again). */
}

static void export_blk_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct vhost_export *e = data;
	int r = blk_process(e->blk);

	if (r < 0)
		log_ratelimited(&e->rl, LOG_LEVEL_ERR, "%s: reaping IO completions failed: %s",
				e->name, strerror(-r));
	if (e->conn) {
		vhost_conn_complete(e->conn);
		export_resume(e);
	}
	export_reap(e);
}

static void export_accept(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct vhost_export *e = data;
	struct vhost_conn_params p = { 0 };
	int s, r;

	s = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (s < 0)
		return;
	p.name = e->name;
	p.loop = e->loop;
	p.info = *blk_get_info(e->blk);
	p.info.read_only |= e->cfg.read_only;
	p.num_queues = e->cfg.queues;
	p.be_ops = &export_backend_ops;
	p.be = e;
	r = vhost_conn_new(&p, &e->conn);
	if (r == 0)
		r = loop_add_fd(e->loop, s, EPOLLIN, export_sock_ready, e, &e->sock_src);
	if (r < 0) {
		log_err("%s: cannot take a front end: %s", e->name, strerror(-r));
		vhost_conn_free(e->conn);
		e->conn = NULL;
		close(s);
		return;
	}
	e->sock_fd = s;
	e->connections++;
	/* One front end at a time (vhost-user has one); the next waits in the backlog. */
	loop_modify_fd(e->listen_src, 0);
	log_notice("%s: front end connected", e->name);
}

/* ---- the export ---- */

static int export_listen(struct vhost_export *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat sb;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->cfg.socket);
	/* A socket left by a previous vblkd is replaced; anything else at that path is not. */
	if (lstat(sa.sun_path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode))
			return -EEXIST;
		unlink(sa.sun_path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	e->listen_fd = fd;
	return loop_add_fd(e->loop, fd, EPOLLIN, export_accept, e, &e->listen_src);
}

static int export_open(struct vhost_export *e, const struct vhost_export_opts *opts)
{
	struct blk_open_opts bo = { .engine = opts->engine, .read_only = e->cfg.read_only,
				    .queue_depth = opts->queue_depth, .direct_io_safe = e->cfg.direct };
	const char *why = NULL;
	int r = blk_open(e->cfg.path, &bo, &e->blk, &why);

	if (r < 0) {
		log_err("%s: '%s': %s", e->name, e->cfg.path, why ? why : strerror(-r));
		return r;
	}
	/* Asked for, O_DIRECT is a promise (no copy in the page cache): not kept, the export fails. */
	if (e->cfg.direct && bo.engine != BLK_ENGINE_NULL && !blk_get_info(e->blk)->direct) {
		log_err("%s: '%s': direct: its file system refuses O_DIRECT (drop ',direct' to go "
			"through the page cache)", e->name, e->cfg.path);
		return -EINVAL;
	}
	r = loop_add_fd(e->loop, blk_get_fd(e->blk), EPOLLIN, export_blk_ready, e, &e->blk_src);
	if (r == 0)
		r = loop_add_timer(e->loop, LOOP_TIMER_DISARM, 0, export_poll_timer, e, &e->poll_timer);
	if (r == 0 && opts->busy_poll)
		r = loop_add_poll(e->loop, export_busy_poll, e, &e->busy_poll);
	if (r < 0)
		log_err("%s: cannot watch the block engine: %s", e->name, strerror(-r));
	return r;
}

int vhost_export_new(struct loop *loop, const struct vhost_export_cfg *cfg,
		     const struct vhost_export_opts *opts, struct vhost_export **ret_export)
{
	struct vhost_export *e = calloc(1, sizeof(*e));
	int r = -ENOMEM;

	if (!e)
		return -ENOMEM;
	e->loop = loop;
	e->listen_fd = -1;
	e->sock_fd = -1;
	e->rl = (struct log_ratelimit)LOG_RATELIMIT_GUEST;
	e->started = export_now();
	e->cfg.socket = strdup(cfg->socket);
	e->cfg.path = strdup(cfg->path);
	e->cfg.read_only = cfg->read_only;
	e->cfg.direct = cfg->direct;
	e->cfg.queues = cfg->queues ? cfg->queues : 1;
	snprintf(e->name, sizeof(e->name), "vhost %s", cfg->socket);
	if (!e->cfg.socket || !e->cfg.path)
		goto err;
	r = export_open(e, opts);
	if (r < 0)
		goto err;
	r = export_listen(e);
	if (r < 0) {
		log_err("%s: cannot listen: %s%s", e->name, strerror(-r),
			r == -EEXIST ? " (something other than a socket is there; not removed)" : "");
		goto err;
	}
	log_info("%s: serving '%s' (%s, %s, %u queue%s, %llu bytes) to a vhost-user front end",
		 e->name, e->cfg.path, e->cfg.read_only ? "read-only" : "read-write",
		 blk_get_info(e->blk)->direct ? "O_DIRECT" : "page cache", e->cfg.queues,
		 e->cfg.queues == 1 ? "" : "s", (unsigned long long)blk_get_info(e->blk)->capacity);
	*ret_export = e;
	return 0;

err:
	vhost_export_free(e);
	return r;
}

void vhost_export_free(struct vhost_export *e)
{
	if (!e)
		return;
	export_drop(e, "dropped: vblkd stops");
	loop_remove(e->listen_src);
	if (e->listen_fd >= 0) {
		close(e->listen_fd);
		unlink(e->cfg.socket);
	}
	loop_remove(e->blk_src);
	loop_remove(e->poll_timer);
	loop_remove(e->busy_poll);
	/* Waits for the orphans, which finish into the dropped front end's memory: freed after. */
	blk_close(e->blk);
	vhost_conn_free(e->dead);
	vhost_export_cfg_clear(&e->cfg);
	free(e);
}

void vhost_export_get_info(const struct vhost_export *e, struct vhost_export_info *ret_info)
{
	struct vhost_export_info in = { 0 };
	struct vblk_stats s = { 0 };

	in.socket = e->cfg.socket;
	in.path = e->cfg.path;
	in.read_only = e->cfg.read_only;
	in.queues = e->cfg.queues;
	in.state = !e->conn ? (e->dead ? "closing" : "listening") :
		   vhost_conn_running(e->conn) ? "running" : "connected";
	in.connections = e->connections;
	in.resubmitted = e->resubmitted + (e->conn ? vhost_conn_resubmitted(e->conn) : 0);
	in.capacity = blk_get_info(e->blk)->capacity;
	in.engine = blk_get_info(e->blk)->engine;
	in.direct = blk_get_info(e->blk)->direct;
	in.features = e->conn ? vhost_conn_features(e->conn) : 0;
	in.in_flight = blk_inflight(e->blk);
	in.uptime_seconds = export_now() - e->started;
	if (e->conn)
		vhost_conn_get_stats(e->conn, &s);
	in.stats = e->old;
	in.stats.read_reqs += s.read_reqs;
	in.stats.read_bytes += s.read_bytes;
	in.stats.write_reqs += s.write_reqs;
	in.stats.write_bytes += s.write_bytes;
	in.stats.flush_reqs += s.flush_reqs;
	in.stats.io_errors += s.io_errors;
	in.stats.unsupported += s.unsupported;
	in.stats.ring_errors += s.ring_errors;
	*ret_info = in;
}
