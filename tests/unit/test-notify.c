// SPDX-License-Identifier: GPL-2.0-only
/* Tests of service notification: what a service manager listening on $NOTIFY_SOCKET receives. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
		cmocka_unit_test(test_watchdog),
	};

	return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
