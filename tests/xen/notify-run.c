// SPDX-License-Identifier: GPL-2.0-only
/* Starts vblkd in the check-xen Dom0 the way systemd starts its unit: a child, optionally Type=notify. */

/*
 * usage: notify-run PIDFILE [--notify READYFILE] [--restart] [--fdstore] -- COMMAND [ARG]...
 *
 * Dom0 in the harness has no systemd.  This runs COMMAND as a child (its pid in PIDFILE), forwards
 * SIGTERM and SIGINT to it as systemd's stop would, and exits with its exit status (128 + signal if
 * it was killed), so the scenario can check how vblkd ends.  With --notify it also plays the service
 * manager's side of sd_notify(3): NOTIFY_SOCKET names a datagram socket, every message received is
 * logged to stderr as "notify: ...", and READY=1 creates READYFILE, which the scenario waits for
 * instead of sleeping.  With --fdstore it keeps the descriptors sent with FDSTORE=1 (the unit's
 * FileDescriptorStoreMax=; FDSTOREREMOVE=1 drops them), and with --restart a child that died
 * without being told to stop (a signal, a failing exit) is started again at once with the stored
 * descriptors (LISTEN_FDS, LISTEN_FDNAMES), its new pid in PIDFILE and READYFILE made anew: the
 * unit's Restart=on-failure.  The store is tests/lib/svcmgr.c, shared with the simulator's tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/svcmgr.h"

#define NOTIFY_PATH "/run/vblkd-test-notify.sock"

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputs(text, f);
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

static struct svcmgr mgr;

/* Log the messages waiting on the socket; returns 1 once READY=1 was among them. */
static int notify_read(void)
{
	const char *m;
	int ready = 0;

	while ((m = svcmgr_recv(&mgr, 0))) {
		char buf[4096];

		snprintf(buf, sizeof(buf), "%s", m);
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
			fprintf(stderr, "notify: %s\n", line);
			if (!strcmp(line, "READY=1"))
				ready = 1;
		}
	}
	return ready;
}

static pid_t start_child(char **argv, const sigset_t *mask, bool notify, const char *pidfile)
{
	char pidtext[32];
	pid_t child = fork();

	if (child < 0) {
		perror("notify-run: fork");
		return -1;
	}
	if (child == 0) {
		sigprocmask(SIG_UNBLOCK, mask, NULL);
		if (notify && svcmgr_child(&mgr, NOTIFY_PATH) < 0) {
			fprintf(stderr, "notify-run: cannot pass the stored descriptors\n");
			_exit(126);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "notify-run: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)child);
	if (write_file(pidfile, pidtext) < 0)
		perror("notify-run: pidfile");
	return child;
}

int main(int argc, char **argv)
{
	const char *pidfile, *readyfile = NULL;
	bool restart = false, fdstore = false, stopping = false;
	struct pollfd pfd[2];
	sigset_t mask;
	int argi = 2, nfd = 1, status;
	pid_t child;

	if (argc < 4)
		goto usage;
	pidfile = argv[1];
	for (;;) {
		if (!strcmp(argv[argi], "--notify") && argi + 1 < argc) {
			readyfile = argv[argi + 1];
			argi += 2;
		} else if (!strcmp(argv[argi], "--restart")) {
			restart = true;
			argi++;
		} else if (!strcmp(argv[argi], "--fdstore")) {
			fdstore = true;
			argi++;
		} else {
			break;
		}
		if (argi >= argc)
			goto usage;
	}
	if (argi >= argc - 1 || strcmp(argv[argi], "--"))
		goto usage;
	argi++;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return 125;
	pfd[0].fd = signalfd(-1, &mask, SFD_CLOEXEC);
	pfd[0].events = POLLIN;
	if (pfd[0].fd < 0) {
		perror("notify-run: signalfd");
		return 125;
	}
	svcmgr_init(&mgr, fdstore);
	if (readyfile) {
		int r;

		unlink(readyfile);
		r = svcmgr_listen(&mgr, NOTIFY_PATH);
		if (r < 0) {
			fprintf(stderr, "notify-run: %s: %s\n", NOTIFY_PATH, strerror(-r));
			return 125;
		}
		pfd[1].fd = mgr.sock;
		pfd[1].events = POLLIN;
		nfd = 2;
	}

	child = start_child(&argv[argi], &mask, readyfile != NULL, pidfile);
	if (child < 0)
		return 125;

	for (;;) {
		struct signalfd_siginfo si;
		bool failed;

		if (poll(pfd, (nfds_t)nfd, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("notify-run: poll");
			return 125;
		}
		if (nfd == 2 && (pfd[1].revents & POLLIN) && notify_read() && readyfile) {
			if (write_file(readyfile, "READY=1\n") < 0)
				perror("notify-run: readyfile");
		}
		if (!(pfd[0].revents & POLLIN) || read(pfd[0].fd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			stopping = true;
			kill(child, (int)si.ssi_signo);
			continue;
		}
		if (waitpid(child, &status, WNOHANG) != child)
			continue;
		if (nfd == 2)
			notify_read();
		failed = WIFSIGNALED(status) || WEXITSTATUS(status) != 0;
		if (restart && failed && !stopping) {
			/* Restart=on-failure, RestartSec= well under a second. */
			fprintf(stderr, "notify-run: pid %d %s %d: restarting it with %u stored "
				"descriptor%s\n", (int)child,
				WIFSIGNALED(status) ? "killed by signal" : "exited with status",
				WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), mgr.nfds,
				mgr.nfds == 1 ? "" : "s");
			if (readyfile)
				unlink(readyfile);
			nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
			child = start_child(&argv[argi], &mask, readyfile != NULL, pidfile);
			if (child < 0)
				return 125;
			continue;
		}
		svcmgr_close(&mgr);
		if (WIFSIGNALED(status))
			return 128 + WTERMSIG(status);
		return WEXITSTATUS(status);
	}

usage:
	fprintf(stderr, "usage: notify-run PIDFILE [--notify READYFILE] [--restart] [--fdstore] -- "
		"COMMAND [ARG]...\n");
	return 125;
}
