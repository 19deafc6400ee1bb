// SPDX-License-Identifier: GPL-2.0-only
/* sd_notify(3)'s datagram protocol, written out: one message per datagram to $NOTIFY_SOCKET. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

/*
 * One datagram to $NOTIFY_SOCKET, with @fd attached (SCM_RIGHTS) when >= 0;
 * with @wait, up to NOTIFY_WAIT_MS for room in the manager's queue.
 */
static int notify_sendmsg(const char *state, int fd, bool wait)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = { .iov_base = (void *)state, .iov_len = strlen(state) };
	struct msghdr msg = { .msg_name = &sa, .msg_iov = &iov, .msg_iovlen = 1 };
	size_t len;
	int sock, r = 1;

	if (!path || !*path)
		return 0;
	len = strlen(path);
	/* A path, or an abstract socket written with a leading '@' (systemd.exec(5)). */
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	msg.msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}

	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	if (wait) {
		struct timeval tv = { .tv_sec = NOTIFY_WAIT_MS / 1000,
				      .tv_usec = NOTIFY_WAIT_MS % 1000 * 1000 };

		setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	/*
	 * Status updates never wait: a manager that does not read its socket
	 * must not stall the main loop, and a full queue drops one (-EAGAIN).
	 */
	if (sendmsg(sock, &msg, MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT)) < 0)
		r = -errno;
	close(sock);
	return r;
}

int notify_send(const char *state)
{
	return notify_sendmsg(state, -1, false);
}

int notify_send_fd(const char *state, int fd)
{
	return fd < 0 ? -EBADF : notify_sendmsg(state, fd, true);
}

int notify_send_wait(const char *state)
{
	return notify_sendmsg(state, -1, true);
}

/* printf-style, waiting for room or not. */
static int notify_vsendf(bool wait, const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	return notify_sendmsg(buf, -1, wait);
}

int notify_sendf_wait(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = notify_vsendf(true, fmt, ap);
	va_end(ap);
	return r;
}

int notify_sendf(const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = notify_vsendf(false, fmt, ap);
	va_end(ap);
	return r;
}

uint64_t notify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (!usec)
		return 0;
	/* WATCHDOG_PID, when set, names the process meant (sd_watchdog_enabled(3)). */
	if (pid && strtol(pid, &end, 10) != (long)getpid())
		return 0;
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno || end == usec || *end || v == 0)
		return 0;
	return v;
}

/* A decimal number that is all of @s, within [@min, @max]. */
static bool notify_number(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	if (!s || !*s)
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

int notify_listen_fds(struct notify_fd **ret_fds, unsigned int *ret_n)
{
	const char *pid = getenv("LISTEN_PID"), *count = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	struct notify_fd *fds = NULL;
	long p, n;
	int r = 0;

	*ret_fds = NULL;
	*ret_n = 0;
	if (!count)
		goto out;
	/* sd_listen_fds(3): meant for this process only, and only when LISTEN_PID says so. */
	if (!notify_number(pid, 1, INT32_MAX, &p) || (pid_t)p != getpid())
		goto out;
	if (!notify_number(count, 0, NOTIFY_LISTEN_FDS_MAX, &n)) {
		r = -EINVAL;
		goto out;
	}
	if (n == 0)
		goto out;
	fds = calloc((size_t)n, sizeof(*fds));
	if (!fds) {
		r = -ENOMEM;
		goto out;
	}
	for (long i = 0; i < n; i++) {
		int fd = NOTIFY_LISTEN_FDS_START + (int)i, flags = fcntl(fd, F_GETFD);

		/* A number the manager never opened for us is not ours to use. */
		fds[i].fd = flags < 0 ? -1 : fd;
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
		strcpy(fds[i].name, "unknown");
	}
	/* Colon-separated, one per descriptor; sd_listen_fds_with_names() says "unknown" when missing. */
	for (long i = 0; names && *names && i < n; i++) {
		const char *colon = strchr(names, ':');
		size_t len = colon ? (size_t)(colon - names) : strlen(names);

		if (len > 0 && len < sizeof(fds[i].name)) {
			memcpy(fds[i].name, names, len);
			fds[i].name[len] = '\0';
		}
		if (!colon)
			break;
		names = colon + 1;
	}
	*ret_fds = fds;
	*ret_n = (unsigned int)n;
out:
	/* Not for our children. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}
