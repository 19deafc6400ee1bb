// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the control socket: what a client gets back, refusals, stale sockets, permissions. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl.h"
#include "log.h"
#include "loop.h"

struct fixture {
	char dir[64];
	char path[128];
	struct loop *loop;
	struct ctl *ctl;
	int requests;
};

static char *handler(const char *request, void *data)
{
	struct fixture *f = data;
	char *reply;

	f->requests++;
	if (strcmp(request, "status") && strcmp(request, "big"))
		return NULL;
	if (!strcmp(request, "big")) {
		/* Larger than a socket buffer: needs several non-blocking writes. */
		reply = malloc(1 << 20);
		memset(reply, 'x', (1 << 20) - 2);
		reply[(1 << 20) - 2] = '\n';
		reply[(1 << 20) - 1] = '\0';
		return reply;
	}
	return strdup("{\"guests\":[]}\n");
}

static int setup(void **state)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	snprintf(f.dir, sizeof(f.dir), "/tmp/vblkd-ctl.XXXXXX");
	assert_non_null(mkdtemp(f.dir));
	snprintf(f.path, sizeof(f.path), "%s/run/control", f.dir);
	f.loop = loop_new();
	assert_non_null(f.loop);
	assert_int_equal(ctl_listen(f.loop, f.path, handler, &f, &f.ctl), 0);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char sub[128];

	ctl_close(f->ctl);
	loop_free(f->loop);
	snprintf(sub, sizeof(sub), "%s/run", f->dir);
	rmdir(sub);
	rmdir(f->dir);
	return 0;
}

struct child {
	pid_t pid;
	int out;		/* the child's result: "<rc> <reply>" */
	bool done;
};

static void child_done(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct child *c = data;

	c->done = true;
	loop_remove(src);
}

/* Read @fd to its end into @out, a string. */
static void read_all(int fd, char *out, size_t cap)
{
	size_t len = 0;
	ssize_t n;

	while ((n = read(fd, out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
}

/* Run ctl_request() in a child while the parent serves from its loop. */
static int request(struct fixture *f, const char *req, char *reply, size_t cap)
{
	struct child c = { 0 };
	int p[2], status;

	assert_int_equal(pipe(p), 0);
	c.pid = fork();
	assert_true(c.pid >= 0);
	if (c.pid == 0) {
		char *r = NULL;
		int rc = ctl_request(f->path, req, 5000, &r);
		FILE *out = fdopen(p[1], "w");

		fprintf(out, "%d %s", rc, r ? r : "");
		fclose(out);
		_exit(0);
	}
	close(p[1]);
	c.out = p[0];
	assert_int_equal(loop_add_fd(f->loop, p[0], EPOLLIN | EPOLLHUP, child_done, &c, NULL), 0);
	while (!c.done)
		assert_true(loop_iterate(f->loop, 10000) > 0);
	read_all(p[0], reply, cap);
	close(p[0]);
	assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
	return atoi(reply);
}

static void test_status_roundtrip(void **state)
{
	struct fixture *f = *state;
	char out[256];

	assert_int_equal(request(f, "status", out, sizeof(out)), 0);
	assert_string_equal(out, "0 {\"guests\":[]}\n");
	assert_int_equal(f->requests, 1);
}

static void test_unknown_command(void **state)
{
	struct fixture *f = *state;
	char out[256];

	assert_int_equal(request(f, "reboot-everything", out, sizeof(out)), 0);
	assert_string_equal(out, "0 error: unknown command 'reboot-everything'\n");
}

static void test_large_reply(void **state)
{
	struct fixture *f = *state;
	static char out[(1 << 20) + 64];

	assert_int_equal(request(f, "big", out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 2 + (1 << 20) - 1);
	assert_int_equal(out[strlen(out) - 1], '\n');
}

/* A raw client: connect, send @data, return the socket. */
static int raw_client(struct fixture *f, const char *data, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(sa.sun_path, f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (len)
		assert_int_equal(write(fd, data, len), (ssize_t)len);
	return fd;
}

static void test_request_too_long(void **state)
{
	struct fixture *f = *state;
	char big[CTL_MAX_REQUEST + 40], out[128];
	int fd, i;

	memset(big, 'a', sizeof(big));
	fd = raw_client(f, big, sizeof(big));
	/* Serve until the daemon has answered and closed. */
	for (i = 0; i < 10; i++)
		loop_iterate(f->loop, 100);
	read_all(fd, out, sizeof(out));
	assert_string_equal(out, "error: request too long\n");
	assert_int_equal(f->requests, 0);
	close(fd);
}

static void test_too_many_clients(void **state)
{
	struct fixture *f = *state;
	int fds[20], i, closed = 0;
	char c;

	for (i = 0; i < 20; i++) {
		fds[i] = raw_client(f, NULL, 0);
		loop_iterate(f->loop, 100);
	}
	/* Past the limit a connection is closed at once; the first ones stay. */
	for (i = 0; i < 20; i++) {
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
		if (read(fds[i], &c, 1) == 0)
			closed++;
		else
			assert_true(i < 16);
	}
	assert_int_equal(closed, 4);
	for (i = 0; i < 20; i++)
		close(fds[i]);
}

static void test_no_daemon(void **state)
{
	struct fixture *f = *state;
	char path[160], *reply = NULL;

	snprintf(path, sizeof(path), "%s/none", f->dir);
	assert_int_equal(ctl_request(path, "status", 1000, &reply), -ENOENT);
	assert_null(reply);
}

static void test_socket_root_only(void **state)
{
	struct fixture *f = *state;
	char dir[128];
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(dir, sizeof(dir), "%s/run", f->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_second_daemon_refused(void **state)
{
	struct fixture *f = *state;
	struct ctl *other;

	assert_int_equal(ctl_listen(f->loop, f->path, handler, f, &other), -EADDRINUSE);
	/* The running daemon still answers. */
	{
		char out[256];

		assert_int_equal(request(f, "status", out, sizeof(out)), 0);
		assert_string_equal(out, "0 {\"guests\":[]}\n");
	}
}

static void test_stale_socket_replaced(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[160], *reply = NULL;
	struct ctl *ctl;
	int fd;

	/* A socket file whose daemon died: bound, never listening. */
	snprintf(path, sizeof(path), "%s/stale", f->dir);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(ctl_request(path, "status", 1000, &reply), -ECONNREFUSED);
	assert_int_equal(ctl_listen(f->loop, path, handler, f, &ctl), 0);
	ctl_close(ctl);
	assert_int_equal(access(path, F_OK), -1);
}

/* A file that is not a socket, named by mistake, is left alone. */
static void test_path_of_a_file_not_removed(void **state)
{
	struct fixture *f = *state;
	char path[160];
	struct ctl *ctl;
	int fd;

	snprintf(path, sizeof(path), "%s/precious", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "data", 4), 4);
	close(fd);
	assert_int_equal(ctl_listen(f->loop, path, handler, f, &ctl), -EEXIST);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Out of fds, accept() fails and the client stays queued: the listener must
 * pause instead of firing again at once (100% CPU), and serve the client once
 * fds are back.
 */
static void test_fd_limit_reached_no_busy_loop(void **state)
{
	struct fixture *f = *state;
	struct rlimit old, low;
	char logbuf[1024], out[128];
	int fd, logfd, lowest, batches = 0, served = 0;
	int64_t end;
	ssize_t n;

	fd = raw_client(f, "status\n", 7);
	logfd = memfd_create("ctl-log", MFD_CLOEXEC);
	assert_true(logfd >= 0);
	log_set_fd(logfd);
	lowest = dup(0);
	assert_true(lowest >= 0);
	close(lowest);
	/* No new fd fits under the limit: accept() fails with EMFILE. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)lowest;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

	end = now_ms() + 300;
	while (now_ms() < end)
		if (loop_iterate(f->loop, (int)(end - now_ms())) > 0)
			batches++;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	log_set_fd(-1);

	/* Failures at 0 and 100 ms, the timers between them: nothing like a spinning loop. */
	assert_in_range(batches, 1, 5);
	assert_int_equal(f->requests, 0);
	n = pread(logfd, logbuf, sizeof(logbuf) - 1, 0);
	assert_true(n > 0);
	logbuf[n] = '\0';
	close(logfd);
	snprintf(out, sizeof(out), "Too many open files (RLIMIT_NOFILE %d)", lowest);
	assert_non_null(strstr(logbuf, out));
	/* Rate-limited: one line for the whole episode. */
	assert_null(strstr(strstr(logbuf, out) + 1, out));

	/* With fds back, the waiting client is answered within the longest back-off (1 s). */
	end = now_ms() + 1500;
	while (!served && now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		loop_iterate(f->loop, 50);
		served = poll(&p, 1, 0) == 1;
	}
	assert_true(served);
	read_all(fd, out, sizeof(out));
	assert_string_equal(out, "{\"guests\":[]}\n");
	assert_int_equal(f->requests, 1);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_reply, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_daemon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_socket_root_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_daemon_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_path_of_a_file_not_removed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_limit_reached_no_busy_loop, setup, teardown),
	};

	return cmocka_run_group_tests_name("ctl", tests, NULL, NULL);
}
