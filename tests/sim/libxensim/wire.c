// SPDX-License-Identifier: GPL-2.0-only
/* Message framing with descriptor passing, shared by libxensim and the xensim process. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../proto.h"

int xsim_send(int fd, const struct xsim_msg *m, const void *tail, const int *fds, unsigned int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * XSIM_MAX_FDS)];
	struct xsim_msg h = *m;
	struct iovec iov[2];
	struct msghdr mh;
	ssize_t r;

	if (m->n > XSIM_TAIL_MAX || nfds > XSIM_MAX_FDS)
		return -EMSGSIZE;
	h.nfds = nfds;
	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	iov[1].iov_base = (void *)tail;
	iov[1].iov_len = m->n;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = m->n ? 2 : 1;
	if (nfds) {
		struct cmsghdr *c;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do {
		r = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return 0;
}

int xsim_recv(int fd, struct xsim_msg *m, char **ret_tail, int *fds, unsigned int max_fds,
	      int flags)
{
	char cbuf[CMSG_SPACE(sizeof(int) * XSIM_MAX_FDS)];
	struct iovec iov[2];
	struct msghdr mh;
	struct cmsghdr *c;
	char *tail;
	ssize_t r;
	unsigned int i;

	for (i = 0; i < max_fds; i++)
		fds[i] = -1;
	tail = malloc(XSIM_TAIL_MAX + 1);
	if (!tail)
		return -ENOMEM;
	iov[0].iov_base = m;
	iov[0].iov_len = sizeof(*m);
	iov[1].iov_base = tail;
	iov[1].iov_len = XSIM_TAIL_MAX;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	do {
		r = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		free(tail);
		return -errno;
	}
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		unsigned int n;
		int *p;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (unsigned int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		p = (int *)CMSG_DATA(c);
		for (i = 0; i < n; i++) {
			if (i < max_fds)
				fds[i] = p[i];
			else
				close(p[i]);
		}
	}
	if (r == 0) {
		free(tail);
		return -ECONNRESET;
	}
	if ((size_t)r < sizeof(*m) || (mh.msg_flags & MSG_TRUNC) ||
	    (size_t)r - sizeof(*m) != m->n) {
		for (i = 0; i < max_fds; i++)
			if (fds[i] >= 0) {
				close(fds[i]);
				fds[i] = -1;
			}
		free(tail);
		return -EPROTO;
	}
	tail[m->n] = '\0';
	if (ret_tail)
		*ret_tail = tail;
	else
		free(tail);
	return 0;
}

const char *xsim_socket_path(char *buf, unsigned long size)
{
	const char *e = getenv("XENSIM_SOCKET");

	if (e && *e)
		snprintf(buf, size, "%s", e);
	else
		snprintf(buf, size, "/tmp/xensim-%u.sock", (unsigned int)getuid());
	return buf;
}

/*
 * The simulated machine's /run/vblkd/state for vblkd-sim (src/main.c asks
 * through a weak reference): beside the simulator's socket, so that each
 * simulator, like each machine, has records of its own.
 */
const char *xensim_state_dir(void)
{
	static char dir[4200];
	char sock[4096];

	snprintf(dir, sizeof(dir), "%s.state", xsim_socket_path(sock, sizeof(sock)));
	return dir;
}
