// SPDX-License-Identifier: GPL-2.0-only
/* Starts vblkd in the check-xen Dom0 the way systemd starts its unit: a child, optionally Type=notify. */

/*
 * usage: notify-run PIDFILE [--notify READYFILE] -- COMMAND [ARG]...
 *
 * Dom0 in the harness has no systemd.  This runs COMMAND as a child (its pid in PIDFILE), forwards
 * SIGTERM and SIGINT to it as systemd's stop would, and exits with its exit status (128 + signal if
 * it was killed), so the scenario can check how vblkd ends.  With --notify it also plays the service
 * manager's side of sd_notify(3): NOTIFY_SOCKET names a datagram socket, every message received is
 * logged to stderr as "notify: ...", and READY=1 creates READYFILE, which the scenario waits for
 * instead of sleeping.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

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

static int notify_socket(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = NOTIFY_PATH };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	unlink(NOTIFY_PATH);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Log the messages waiting on the socket; returns 1 once READY=1 was among them. */
static int notify_read(int fd)
{
	char buf[4096];
	int ready = 0;
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf) - 1, 0)) > 0) {
		buf[n] = '\0';
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
			fprintf(stderr, "notify: %s\n", line);
			if (!strcmp(line, "READY=1"))
				ready = 1;
		}
	}
	return ready;
}

int main(int argc, char **argv)
{
	const char *pidfile, *readyfile = NULL;
	struct pollfd pfd[2];
	char pidtext[32];
	sigset_t mask;
	int argi = 2, nfd = 1, status;
	pid_t child;

	if (argc < 4)
		goto usage;
	pidfile = argv[1];
	if (!strcmp(argv[argi], "--notify") && argi + 1 < argc) {
		readyfile = argv[argi + 1];
		argi += 2;
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
	if (readyfile) {
		unlink(readyfile);
		pfd[1].fd = notify_socket();
		pfd[1].events = POLLIN;
		if (pfd[1].fd < 0) {
			fprintf(stderr, "notify-run: %s: %s\n", NOTIFY_PATH, strerror(-pfd[1].fd));
			return 125;
		}
		nfd = 2;
	}

	child = fork();
	if (child < 0) {
		perror("notify-run: fork");
		return 125;
	}
	if (child == 0) {
		sigprocmask(SIG_UNBLOCK, &mask, NULL);
		if (readyfile)
			setenv("NOTIFY_SOCKET", NOTIFY_PATH, 1);
		execvp(argv[argi], &argv[argi]);
		fprintf(stderr, "notify-run: %s: %s\n", argv[argi], strerror(errno));
		_exit(127);
	}
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)child);
	if (write_file(pidfile, pidtext) < 0)
		perror("notify-run: pidfile");

	for (;;) {
		struct signalfd_siginfo si;

		if (poll(pfd, (nfds_t)nfd, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("notify-run: poll");
			return 125;
		}
		if (nfd == 2 && (pfd[1].revents & POLLIN) && notify_read(pfd[1].fd) && readyfile) {
			if (write_file(readyfile, "READY=1\n") < 0)
				perror("notify-run: readyfile");
		}
		if (!(pfd[0].revents & POLLIN) || read(pfd[0].fd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			kill(child, (int)si.ssi_signo);
			continue;
		}
		if (waitpid(child, &status, WNOHANG) != child)
			continue;
		if (nfd == 2)
			notify_read(pfd[1].fd);
		if (WIFSIGNALED(status))
			return 128 + WTERMSIG(status);
		return WEXITSTATUS(status);
	}

usage:
	fprintf(stderr, "usage: notify-run PIDFILE [--notify READYFILE] -- COMMAND [ARG]...\n");
	return 125;
}
