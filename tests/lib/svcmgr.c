// SPDX-License-Identifier: GPL-2.0-only
/* The service manager's side of sd_notify(3) and of systemd's file descriptor store, for tests. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "svcmgr.h"

void svcmgr_init(struct svcmgr *m, bool fdstore)
{
	memset(m, 0, sizeof(*m));
	m->sock = -1;
	m->fdstore = fdstore;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
}

int svcmgr_listen(struct svcmgr *m, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	svcmgr_unlisten(m);
	/* What the previous process said is not this one's. */
	while (m->qlen) {
		free(m->queue[m->qhead]);
		m->qhead = (m->qhead + 1) % SVCMGR_QUEUE;
		m->qlen--;
	}
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	unlink(path);
	m->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (m->sock < 0)
		return -errno;
	if (bind(m->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(m->sock);
		m->sock = -1;
		return r;
	}
	return 0;
}

static const char *receive(struct svcmgr *m, int timeout_ms);

/* Wait (20 ms at most, so that a stop is seen soon) for a datagram. */
static bool readable(int sock, int timeout_ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };

	return poll(&p, 1, timeout_ms) > 0;
}

/* Queue @text for svcmgr_recv(); when full, the oldest goes. */
static void queue_text(struct svcmgr *m, const char *text)
{
	unsigned int tail;

	if (m->qlen == SVCMGR_QUEUE) {
		free(m->queue[m->qhead]);
		m->qhead = (m->qhead + 1) % SVCMGR_QUEUE;
		m->qlen--;
	}
	tail = (m->qhead + m->qlen) % SVCMGR_QUEUE;
	m->queue[tail] = strdup(text);
	if (m->queue[tail])
		m->qlen++;
}

static void *reader(void *arg)
{
	struct svcmgr *m = arg;
	bool stop = false;

	while (!stop) {
		bool ready = readable(m->sock, 20);

		pthread_mutex_lock(&m->lock);
		if (ready) {
			const char *text;

			m->busy = true;
			text = receive(m, 0);
			m->busy = false;
			if (text)
				queue_text(m, text);
			pthread_cond_broadcast(&m->cond);
		}
		stop = m->stop;
		pthread_mutex_unlock(&m->lock);
	}
	return NULL;
}

int svcmgr_listen_reader(struct svcmgr *m, const char *path)
{
	int r = svcmgr_listen(m, path);

	if (r < 0)
		return r;
	m->stop = false;
	r = -pthread_create(&m->thread, NULL, reader, m);
	if (r == 0)
		m->threaded = true;
	return r;
}

void svcmgr_unlisten(struct svcmgr *m)
{
	if (m->threaded) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thread, NULL);
		m->threaded = false;
	}
	/* What was sent before counts, as for a manager that reads all the time. */
	if (m->sock >= 0) {
		svcmgr_drain(m);
		close(m->sock);
	}
	m->sock = -1;
}

void svcmgr_stats(struct svcmgr *m, unsigned int *ret_nfds, unsigned int *ret_stored,
		  unsigned int *ret_removed)
{
	pthread_mutex_lock(&m->lock);
	*ret_nfds = m->nfds;
	*ret_stored = m->stored;
	*ret_removed = m->removed;
	pthread_mutex_unlock(&m->lock);
}

/* The value of line "@key=" in @text, copied to @buf, or NULL. */
static const char *field(const char *text, const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		size_t n = strcspn(l, "\n");

		if (n > klen && !strncmp(l, key, klen) && l[klen] == '=') {
			n -= klen + 1;
			if (n >= len)
				n = len - 1;
			memcpy(buf, l + klen + 1, n);
			buf[n] = '\0';
			return buf;
		}
	}
	return NULL;
}

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, line, n) && (l[n] == '\n' || l[n] == '\0'))
			return true;
	return false;
}

static void handle(struct svcmgr *m, const int *fds, unsigned int nfds)
{
	char name[256];
	unsigned int i, k;

	if (!field(m->msg, "FDNAME", name, sizeof(name)))
		strcpy(name, "stored");
	if (has_line(m->msg, "FDSTORE=1")) {
		m->stored++;
		for (i = 0; i < nfds; i++) {
			if (!m->fdstore || m->nfds == SVCMGR_MAX_FDS) {
				close(fds[i]);
				continue;
			}
			m->fds[m->nfds].fd = fds[i];
			snprintf(m->fds[m->nfds].name, sizeof(m->fds[0].name), "%s", name);
			m->nfds++;
		}
		return;
	}
	/* Descriptors sent with anything else are not kept (systemd closes them too). */
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	if (has_line(m->msg, "FDSTOREREMOVE=1")) {
		m->removed++;
		for (i = k = 0; i < m->nfds; i++) {
			if (!strcmp(m->fds[i].name, name))
				close(m->fds[i].fd);
			else
				m->fds[k++] = m->fds[i];
		}
		m->nfds = k;
	}
}

/* One datagram from the socket, handled (the caller holds the lock when threaded). */
static const char *receive(struct svcmgr *m, int timeout_ms)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 16)];
	} control;
	struct iovec iov = { .iov_base = m->msg, .iov_len = sizeof(m->msg) - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	struct pollfd p = { .fd = m->sock, .events = POLLIN };
	int fds[16];
	unsigned int nfds = 0;
	ssize_t n;

	if (m->sock < 0)
		return NULL;
	if (poll(&p, 1, timeout_ms) <= 0)
		return NULL;
	n = recvmsg(m->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return NULL;
	m->msg[n] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t j = 0; j < k && nfds < 16; j++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + j * sizeof(int), sizeof(int));
	}
	handle(m, fds, nfds);
	return m->msg;
}

const char *svcmgr_recv(struct svcmgr *m, int timeout_ms)
{
	struct timespec until;
	const char *r = NULL;

	if (!m->threaded)
		return receive(m, timeout_ms);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&m->lock);
	while (!m->qlen && timeout_ms != 0)
		if (pthread_cond_timedwait(&m->cond, &m->lock, &until) != 0)
			break;
	if (m->qlen) {
		snprintf(m->out, sizeof(m->out), "%s", m->queue[m->qhead]);
		free(m->queue[m->qhead]);
		m->qhead = (m->qhead + 1) % SVCMGR_QUEUE;
		m->qlen--;
		r = m->out;
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

unsigned int svcmgr_drain(struct svcmgr *m)
{
	unsigned int n = 0, quiet = 0;

	if (!m->threaded) {
		while (receive(m, 0))
			n++;
		return n;
	}
	/* Until the socket has had nothing for the thread twice in a row, 5 ms apart. */
	while (quiet < 2) {
		bool busy;

		pthread_mutex_lock(&m->lock);
		busy = m->busy;
		pthread_mutex_unlock(&m->lock);
		quiet = !busy && !readable(m->sock, 0) ? quiet + 1 : 0;
		nanosleep(&(struct timespec){ .tv_nsec = 5000000 }, NULL);
	}
	return n;
}

unsigned int svcmgr_count(struct svcmgr *m, const char *prefix)
{
	unsigned int n = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < m->nfds; i++)
		n += !strncmp(m->fds[i].name, prefix, strlen(prefix));
	pthread_mutex_unlock(&m->lock);
	return n;
}

int svcmgr_child(struct svcmgr *m, const char *path)
{
	static char names[SVCMGR_MAX_FDS * 257];
	char num[32];
	int high[SVCMGR_MAX_FDS];
	size_t off = 0;

	if (setenv("NOTIFY_SOCKET", path, 1) < 0)
		return -errno;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (!m->nfds)
		return 0;
	/* Out of the way first, so that moving one to 3 + i clobbers no other. */
	for (unsigned int i = 0; i < m->nfds; i++) {
		high[i] = fcntl(m->fds[i].fd, F_DUPFD_CLOEXEC, 3 + (int)m->nfds);
		if (high[i] < 0)
			return -errno;
	}
	for (unsigned int i = 0; i < m->nfds; i++) {
		/* dup2() leaves the new descriptor without FD_CLOEXEC: it goes through exec. */
		if (dup2(high[i], 3 + (int)i) < 0)
			return -errno;
		close(high[i]);
		off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? ":" : "",
					m->fds[i].name);
	}
	snprintf(num, sizeof(num), "%d", (int)getpid());
	setenv("LISTEN_PID", num, 1);
	snprintf(num, sizeof(num), "%u", m->nfds);
	setenv("LISTEN_FDS", num, 1);
	setenv("LISTEN_FDNAMES", names, 1);
	return 0;
}

void svcmgr_close(struct svcmgr *m)
{
	svcmgr_unlisten(m);
	for (unsigned int i = 0; i < m->nfds; i++)
		close(m->fds[i].fd);
	m->nfds = 0;
	while (m->qlen) {
		free(m->queue[m->qhead]);
		m->qhead = (m->qhead + 1) % SVCMGR_QUEUE;
		m->qlen--;
	}
}
