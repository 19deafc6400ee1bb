// SPDX-License-Identifier: GPL-2.0-only
/* Tests of service notification: what a service manager listening on $NOTIFY_SOCKET receives. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify.h"

struct listener {
	int fd;
	char path[108];
	char dir[64];
};

/* A datagram socket standing in for systemd's notification socket. */
static void listen_at(struct listener *l, bool abstract)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;

	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	if (abstract) {
		l->dir[0] = '\0';
		snprintf(l->path, sizeof(l->path), "@vblkd-test-notify-%d", (int)getpid());
		memcpy(sa.sun_path, l->path, strlen(l->path));
		sa.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(l->path));
	} else {
		snprintf(l->dir, sizeof(l->dir), "/tmp/vblkd-notify.XXXXXX");
		assert_non_null(mkdtemp(l->dir));
		snprintf(l->path, sizeof(l->path), "%s/notify", l->dir);
		strcpy(sa.sun_path, l->path);
		len = sizeof(sa);
	}
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, len), 0);
	setenv("NOTIFY_SOCKET", l->path, 1);
}

static void listener_close(struct listener *l)
{
	close(l->fd);
	if (l->dir[0]) {
		unlink(l->path);
		rmdir(l->dir);
	}
	unsetenv("NOTIFY_SOCKET");
}

static void expect_message(struct listener *l, const char *want)
{
	char buf[600];
	ssize_t n = recv(l->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void test_ready_and_status(void **state)
{
	struct listener l;

	listen_at(&l, false);
	assert_int_equal(notify_send("READY=1\nSTATUS=watching xenstore"), 1);
	expect_message(&l, "READY=1\nSTATUS=watching xenstore");
	assert_int_equal(notify_sendf("STATUS=serving %u disks of %u guests", 3, 2), 1);
	expect_message(&l, "STATUS=serving 3 disks of 2 guests");
	listener_close(&l);
}

static void test_abstract_socket(void **state)
{
	struct listener l;

	listen_at(&l, true);
	assert_int_equal(notify_send("WATCHDOG=1"), 1);
	expect_message(&l, "WATCHDOG=1");
	listener_close(&l);
}

static void test_no_manager(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_send("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(notify_send("READY=1"), 0);
	unsetenv("NOTIFY_SOCKET");
}

static void test_bad_socket(void **state)
{
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(notify_send("READY=1"), -EINVAL);
	/* Nobody listening there: the error is reported, not hidden. */
	setenv("NOTIFY_SOCKET", "/nonexistent/vblkd-notify", 1);
	assert_int_equal(notify_send("READY=1"), -ENOENT);
	unsetenv("NOTIFY_SOCKET");
}

static void test_full_queue_does_not_block(void **state)
{
	struct listener l;
	int i, r = 1;

	/* A manager that never reads: the queue fills, and sending fails at once instead of waiting. */
	listen_at(&l, false);
	for (i = 0; i < 100000 && r == 1; i++)
		r = notify_send("STATUS=busy");
	assert_int_equal(r, -EAGAIN);
	assert_true(i > 1);
	/* Once it reads again, messages get through. */
	while (recv(l.fd, (char[64]){ 0 }, 64, MSG_DONTWAIT) > 0)
		;
	assert_int_equal(notify_send("READY=1"), 1);
	listener_close(&l);
}

/* FDSTORE=1 with the descriptor: the manager receives the same open file. */
static void test_fd_sent_with_fdstore(void **state)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	char text[128];
	struct iovec iov = { .iov_base = text, .iov_len = sizeof(text) - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	struct listener l;
	uint64_t v = 0;
	ssize_t n;
	int efd, got;

	listen_at(&l, false);
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);
	assert_int_equal(notify_send_fd("FDSTORE=1\nFDNAME=vblkd-ioeventfd.1.1000.1.2000000.0", efd), 1);
	n = recvmsg(l.fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	assert_true(n > 0);
	text[n] = '\0';
	assert_string_equal(text, "FDSTORE=1\nFDNAME=vblkd-ioeventfd.1.1000.1.2000000.0");
	assert_non_null(CMSG_FIRSTHDR(&msg));
	assert_int_equal(CMSG_FIRSTHDR(&msg)->cmsg_type, SCM_RIGHTS);
	memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof(got));
	/* One file: what is written through ours is read through the manager's. */
	assert_int_equal(eventfd_write(efd, 5), 0);
	assert_int_equal(eventfd_read(got, &v), 0);
	assert_int_equal(v, 5);
	close(got);
	close(efd);
	assert_int_equal(notify_send_fd("FDSTORE=1", -1), -EBADF);
	listener_close(&l);
}

static void set_listen(const char *pid, const char *fds, const char *names)
{
	char self[16];

	snprintf(self, sizeof(self), "%d", (int)getpid());
	setenv("LISTEN_PID", pid ? pid : self, 1);
	if (fds)
		setenv("LISTEN_FDS", fds, 1);
	else
		unsetenv("LISTEN_FDS");
	if (names)
		setenv("LISTEN_FDNAMES", names, 1);
	else
		unsetenv("LISTEN_FDNAMES");
}

/* Descriptors 3 and 4 open (as the manager passes them), @n of them. */
static void open_at_3(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		int fd = eventfd(0, 0);

		assert_true(fd >= 0);
		if (fd != 3 + (int)i) {
			assert_int_equal(dup2(fd, 3 + (int)i), 3 + (int)i);
			close(fd);
		}
	}
}

static void test_listen_fds_with_names(void **state)
{
	struct notify_fd *fds;
	unsigned int n;

	open_at_3(2);
	set_listen(NULL, "2", "vblkd-ioeventfd.1.1000.1.2000000.0:other");
	assert_int_equal(notify_listen_fds(&fds, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(fds[0].fd, 3);
	assert_string_equal(fds[0].name, "vblkd-ioeventfd.1.1000.1.2000000.0");
	assert_int_equal(fds[1].fd, 4);
	assert_string_equal(fds[1].name, "other");
	/* Not passed on to what vblkd runs, and the variables are gone. */
	assert_true(fcntl(3, F_GETFD) & FD_CLOEXEC);
	assert_null(getenv("LISTEN_FDS"));
	assert_null(getenv("LISTEN_PID"));
	free(fds);
	close(3);
	close(4);
}

static void test_listen_fds_missing_names_unknown(void **state)
{
	struct notify_fd *fds;
	unsigned int n;

	open_at_3(2);
	set_listen(NULL, "2", "only-one");
	assert_int_equal(notify_listen_fds(&fds, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(fds[0].name, "only-one");
	assert_string_equal(fds[1].name, "unknown");
	free(fds);
	close(3);
	close(4);
}

static void test_listen_fds_of_another_process_ignored(void **state)
{
	struct notify_fd *fds;
	unsigned int n;

	set_listen("1", "2", "a:b");
	assert_int_equal(notify_listen_fds(&fds, &n), 0);
	assert_int_equal(n, 0);
	assert_null(fds);
	assert_null(getenv("LISTEN_FDS"));
}

static void test_listen_fds_not_a_count_refused(void **state)
{
	struct notify_fd *fds;
	unsigned int n;

	set_listen(NULL, "2x", NULL);
	assert_int_equal(notify_listen_fds(&fds, &n), -EINVAL);
	assert_int_equal(n, 0);
	set_listen(NULL, "-1", NULL);
	assert_int_equal(notify_listen_fds(&fds, &n), -EINVAL);
	set_listen(NULL, "100000000", NULL);
	assert_int_equal(notify_listen_fds(&fds, &n), -EINVAL);
	assert_null(getenv("LISTEN_FDS"));
}

static void test_listen_fds_number_not_open_marked(void **state)
{
	struct notify_fd *fds;
	unsigned int n;

	/* Nothing at 3: a manager's count beyond what it passed. */
	close(3);
	set_listen(NULL, "1", "x");
	assert_int_equal(notify_listen_fds(&fds, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(fds[0].fd, -1);
	free(fds);
}

static void test_watchdog(void **state)
{
	char pid[16];

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(notify_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(notify_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(notify_watchdog_usec(), 30000000);
	/* Meant for another process. */
	setenv("WATCHDOG_PID", "1", 1);
	assert_int_equal(notify_watchdog_usec(), 0);
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "soon", 1);
	assert_int_equal(notify_watchdog_usec(), 0);
	unsetenv("WATCHDOG_USEC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_and_status),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_no_manager),
		cmocka_unit_test(test_bad_socket),
		cmocka_unit_test(test_full_queue_does_not_block),
		cmocka_unit_test(test_fd_sent_with_fdstore),
		cmocka_unit_test(test_listen_fds_with_names),
		cmocka_unit_test(test_listen_fds_missing_names_unknown),
		cmocka_unit_test(test_listen_fds_of_another_process_ignored),
		cmocka_unit_test(test_listen_fds_not_a_count_refused),
		cmocka_unit_test(test_listen_fds_number_not_open_marked),
		cmocka_unit_test(test_watchdog),
	};

	return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
