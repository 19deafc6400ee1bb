// SPDX-License-Identifier: GPL-2.0-only
/* Control socket on the main loop: bounded connections, one request line, one answer, never blocking. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "loop.h"
#include "util.h"

/* At most this many clients at once; a client that says nothing is dropped after the timeout. */
#define CTL_MAX_CONNS 16u
#define CTL_IDLE_US 5000000u
/*
 * accept() out of fds or memory leaves the connection queued, so the level-triggered listener
 * would fire again at once: it is left unwatched for this long, doubling up to the maximum.
 */
#define CTL_BACKOFF_MIN_US 100000u
#define CTL_BACKOFF_MAX_US 1000000u

struct ctl_conn {
	struct ctl *ctl;
	int fd;
	struct loop_source *src;
	struct loop_source *timer;
	char req[CTL_MAX_REQUEST + 1];
	size_t req_len;
	char *reply;
	size_t reply_len;
	size_t reply_off;
	struct ctl_conn *next;
};

struct ctl {
	struct loop *loop;
	int fd;
	struct loop_source *src;
	char *path;
	ctl_handler_fn fn;
	void *data;
	struct ctl_conn *conns;
	unsigned int nconns;
	/* Created with the listener: when accept() is short of fds, a timerfd could not be had. */
	struct loop_source *backoff;
	uint64_t backoff_us;	/* 0: accepting normally */
	struct log_ratelimit backoff_rl;
};

static void ctl_conn_close(struct ctl_conn *c)
{
	slist_remove(&c->ctl->conns, c, next);
	c->ctl->nconns--;
	loop_remove(c->src);
	loop_remove(c->timer);
	close(c->fd);
	free(c->reply);
	free(c);
}

static void ctl_conn_timeout(struct loop_source *src, uint64_t expirations, void *data)
{
	ctl_conn_close(data);
}

static void ctl_conn_answer(struct ctl_conn *c)
{
	char *reply;

	c->req[c->req_len] = '\0';
	reply = c->ctl->fn(c->req, c->ctl->data);
	if (!reply && asprintf(&reply, "error: unknown command '%.64s'\n", c->req) < 0)
		reply = NULL;
	c->reply = reply;
	c->reply_len = reply ? strlen(reply) : 0;
	if (!reply || loop_modify_fd(c->src, EPOLLOUT) < 0)
		ctl_conn_close(c);
}

static void ctl_conn_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct ctl_conn *c = data;
	ssize_t n;

	if (c->reply) {
		n = write(fd, c->reply + c->reply_off, c->reply_len - c->reply_off);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			ctl_conn_close(c);
			return;
		}
		c->reply_off += (size_t)n;
		if (c->reply_off == c->reply_len)
			ctl_conn_close(c);	/* the client reads until end of file */
		return;
	}

	n = read(fd, c->req + c->req_len, CTL_MAX_REQUEST - c->req_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* End of file: a request without its newline still counts. */
		if (n == 0 && c->req_len)
			ctl_conn_answer(c);
		else
			ctl_conn_close(c);
		return;
	}
	c->req_len += (size_t)n;
	{
		char *nl = memchr(c->req, '\n', c->req_len);

		if (nl) {
			c->req_len = (size_t)(nl - c->req);
			ctl_conn_answer(c);
			return;
		}
	}
	if (c->req_len == CTL_MAX_REQUEST) {
		c->reply = strdup("error: request too long\n");
		c->reply_len = c->reply ? strlen(c->reply) : 0;
		if (!c->reply || loop_modify_fd(c->src, EPOLLOUT) < 0)
			ctl_conn_close(c);
	}
}

/* The back-off is over: watch the listener again; a failing accept() starts the next one. */
static void ctl_backoff_done(struct loop_source *src, uint64_t expirations, void *data)
{
	struct ctl *ctl = data;
	int r = loop_modify_fd(ctl->src, EPOLLIN);

	if (r < 0)
		log_err("control socket %s: cannot watch it again: %s", ctl->path, strerror(-r));
}

static void ctl_backoff(struct ctl *ctl, int err)
{
	struct rlimit rl = { 0 };
	char limit[64] = "";
	int r;

	ctl->backoff_us = ctl->backoff_us ? ctl->backoff_us * 2 : CTL_BACKOFF_MIN_US;
	if (ctl->backoff_us > CTL_BACKOFF_MAX_US)
		ctl->backoff_us = CTL_BACKOFF_MAX_US;
	if (err == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
		snprintf(limit, sizeof(limit), " (RLIMIT_NOFILE %llu)", (unsigned long long)rl.rlim_cur);
	else if (err == ENFILE)
		snprintf(limit, sizeof(limit), " (the system's limit, fs.file-max)");
	log_ratelimited(&ctl->backoff_rl, LOG_LEVEL_WARNING,
			"control socket %s: cannot accept a connection: %s%s; retrying in %llu ms",
			ctl->path, strerror(err), limit, (unsigned long long)ctl->backoff_us / 1000);
	/* Both calls only change what is armed: they need no new fd or memory. */
	r = loop_timer_set(ctl->backoff, ctl->backoff_us, 0);
	if (r == 0)
		r = loop_modify_fd(ctl->src, 0);
	if (r < 0)
		log_err("control socket %s: cannot pause accepting: %s", ctl->path, strerror(-r));
}

static void ctl_accept(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct ctl *ctl = data;
	struct ctl_conn *c;
	int cfd;

	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			ctl_backoff(ctl, errno);
		/* Anything else (ECONNABORTED, EAGAIN, EINTR, EPROTO) concerns one client only. */
		return;
	}
	ctl->backoff_us = 0;
	if (ctl->nconns >= CTL_MAX_CONNS) {
		close(cfd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(cfd);
		return;
	}
	c->ctl = ctl;
	c->fd = cfd;
	if (loop_add_fd(ctl->loop, cfd, EPOLLIN, ctl_conn_ready, c, &c->src) < 0 ||
	    loop_add_timer(ctl->loop, CTL_IDLE_US, 0, ctl_conn_timeout, c, &c->timer) < 0) {
		loop_remove(c->src);
		close(cfd);
		free(c);
		return;
	}
	slist_push(&ctl->conns, c, next);
	ctl->nconns++;
}

static int ctl_sockaddr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/*
 * A socket file nobody listens on is left from a daemon that died: it may
 * go.  Anything else at the path (a file named by mistake: connect() says
 * ECONNREFUSED for those too) is not ours to remove.
 */
static int ctl_check_stale(const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r = 0;

	if (lstat(sa->sun_path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
		r = -EADDRINUSE;
	else if (errno == ECONNREFUSED)
		unlink(sa->sun_path);
	close(fd);
	return r;
}

static int ctl_mkdir_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int ctl_listen(struct loop *loop, const char *path, ctl_handler_fn fn, void *data,
	       struct ctl **ret_ctl)
{
	struct sockaddr_un sa;
	struct ctl *ctl;
	mode_t old;
	int r;

	r = ctl_sockaddr(path, &sa);
	if (r < 0)
		return r;
	r = ctl_mkdir_parent(path);
	if (r < 0)
		return r;
	r = ctl_check_stale(&sa);
	if (r < 0)
		return r;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->loop = loop;
	ctl->fn = fn;
	ctl->data = data;
	ctl->backoff_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(10000, 1);
	ctl->path = strdup(path);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!ctl->path || ctl->fd < 0) {
		r = ctl->path ? -errno : -ENOMEM;
		goto err_free;
	}
	/* Root only: the socket is created 0600. */
	old = umask(0177);
	r = bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0) {
		r = -errno;
		goto err_close;
	}
	if (listen(ctl->fd, (int)CTL_MAX_CONNS) < 0) {
		r = -errno;
		goto err_unlink;
	}
	r = loop_add_timer(loop, LOOP_TIMER_DISARM, 0, ctl_backoff_done, ctl, &ctl->backoff);
	if (r < 0)
		goto err_unlink;
	r = loop_add_fd(loop, ctl->fd, EPOLLIN, ctl_accept, ctl, &ctl->src);
	if (r < 0)
		goto err_timer;
	*ret_ctl = ctl;
	return 0;

err_timer:
	loop_remove(ctl->backoff);
err_unlink:
	unlink(path);
err_close:
	close(ctl->fd);
err_free:
	free(ctl->path);
	free(ctl);
	return r;
}

void ctl_close(struct ctl *ctl)
{
	if (!ctl)
		return;
	while (ctl->conns)
		ctl_conn_close(ctl->conns);
	loop_remove(ctl->src);
	loop_remove(ctl->backoff);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

static int64_t ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_request(const char *path, const char *request, int timeout_ms, char **ret_reply)
{
	struct sockaddr_un sa;
	size_t len = 0, cap = 4096;
	int64_t deadline = ctl_now_ms() + timeout_ms;
	char *buf = NULL, *line = NULL;
	int fd, r;

	r = ctl_sockaddr(path, &sa);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto out;
	}
	if (asprintf(&line, "%s\n", request) < 0) {
		r = -ENOMEM;
		goto out;
	}
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) != (ssize_t)strlen(line)) {
		r = -EIO;
		goto out;
	}
	buf = malloc(cap);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - ctl_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			r = -ETIMEDOUT;
			goto out;
		}
		if (len + 1 == cap) {
			char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;

			if (!nb) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*ret_reply = buf;
	buf = NULL;
	r = 0;
out:
	free(line);
	free(buf);
	close(fd);
	return r;
}
