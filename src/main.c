// SPDX-License-Identifier: GPL-2.0-only
/* vblkd's entry point: options, logging, signals, and the main loop around the daemon. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "blk.h"
#include "ctl.h"
#include "daemon.h"
#include "daemon-status.h"
#include "disk-cfg.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "status.h"
#include "vhost.h"
#include "vblk.h"

#ifndef VBLKD_VERSION
#define VBLKD_VERSION "unknown"
#endif

enum {
	EXIT_USAGE = 2,
	EXIT_NOT_RUNNING = 3,	/* --status: no daemon answers */
};

/* Where records for a restarted vblkd are kept (the unit's RuntimeDirectory=vblkd). */
#define STATE_DIR_DEFAULT "/run/vblkd/state"
/* --vhost-user= exports on one command line. */
#define VHOST_EXPORTS_MAX 64u
/* --io-threads: at most this many; by default one per CPU we may run on, at most the second. */
#define IO_THREADS_MAX 64u
#define IO_THREADS_DEFAULT_MAX 8u

/*
 * vblkd-sim links the simulator's libxensim, which names the simulated
 * machine's own state directory; vblkd has no such symbol.
 */
extern const char *xensim_state_dir(void) __attribute__((weak));

struct options {
	bool foreground;
	bool status;
	bool release;
	bool json;
	bool io_threads_set;
	const char *control;
	struct daemon_opts daemon;
	struct vhost_export_cfg vhost[VHOST_EXPORTS_MAX];
};

/*
 * --poll-us: QEMU's IOThread polls up to 32 us by default (poll-max-ns).
 * Polling spends a CPU other work could use: by default only where vblkd
 * may run on POLL_MIN_CPUS or more (see vblkd(8)).
 */
#define POLL_US_MAX 1000u
#define POLL_US_UNSET UINT32_MAX
#define POLL_US_BIG_HOST 32u
#define POLL_MIN_CPUS 4

/* The CPUs this process may run on (sched_getaffinity()); 1 if it cannot tell. */
static unsigned int cpus_available(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	n = CPU_COUNT(&set);
	return n > 0 ? (unsigned int)n : 1;
}

static unsigned int poll_us_default(void)
{
	return cpus_available() >= POLL_MIN_CPUS ? POLL_US_BIG_HOST : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: vblkd [OPTION]...\n"
		"Serve virtio-blk disks to Xen guests (virtio-mmio over IOREQ servers)\n"
		"and to vhost-user front ends (QEMU's vhost-user-blk).\n"
		"\n"
		"  -f, --foreground          stay in the foreground (as under systemd)\n"
		"  -l, --log-level=LEVEL     err, warning, notice, info (default) or debug\n"
		"      --backend-domid=ID    serve backend/virtio_disk of domain ID\n"
		"                            (default: our own, from xenstore key 'domid')\n"
		"  -e, --engine=ENGINE       auto (default: aio with O_DIRECT, uring through the\n"
		"                            page cache), aio, uring, or null (no IO: benchmarks)\n"
		"  -q, --queues=N            virtqueues per disk, 1..%u (default 1)\n"
		"      --io-threads=N        threads serving guests and exports, 0..%u; each\n"
		"                            guest is served by one (0: all on the main loop;\n"
		"                            default: one per CPU vblkd may run on, at most %u)\n"
		"      --guest-threads=N     IO threads one guest's disks (and a disk's queues) may\n"
		"                            spread over, 1..%u\n"
		"                            (default 1: a guest and its disks on one thread)\n"
		"      --queue-depth=N       requests in flight per disk, 1..%u (default %u)\n"
		"      --allow-shared        serve an image to several disks even if one of them\n"
		"                            writes it (cluster file systems; default: refuse)\n"
		"      --vhost-user=SOCKET,path=PATH[,ro][,direct][,queues=N]\n"
		"                            serve PATH to a vhost-user front end on SOCKET\n"
		"                            (repeatable; without Xen, these alone are served)\n"
		"      --poll-us=N           busy-poll the rings for up to N microseconds before\n"
		"                            sleeping, adapted to the load (0..%u; default %u\n"
		"                            with %u or more CPUs available, else 0: never)\n"
		"      --no-fast-path        never use the kernel fast path (privcmd ioeventfd\n"
		"                            and irqfd, Linux 6.7+): every QueueNotify and\n"
		"                            interrupt through vblkd (default: where available)\n"
		"      --control-socket=PATH control socket (default " CTL_DEFAULT_PATH ")\n"
		"      --state-dir=DIR       records from which a restarted vblkd adopts the\n"
		"                            guests (default " STATE_DIR_DEFAULT "; empty: none,\n"
		"                            guests are released when vblkd stops)\n"
		"  -s, --status              show the running daemon's guests and disks, and exit\n"
		"      --release             tell the running daemon to release every guest and\n"
		"                            stop (a stop for good: guests lose their disks)\n"
		"      --json                with --status: print the status as JSON\n"
		"  -h, --help                show this help and exit\n"
		"  -V, --version             show the version and exit\n"
		"\n"
		"See vblkd(8).\n",
		VBLK_MAX_QUEUES, IO_THREADS_MAX, IO_THREADS_DEFAULT_MAX, IO_THREADS_MAX,
		BLK_QUEUE_DEPTH_MAX,
		BLK_QUEUE_DEPTH_DEFAULT, POLL_US_MAX, POLL_US_BIG_HOST, POLL_MIN_CPUS);
}

/* A whole decimal number in [min, max], or a usage error naming the option. */
static int parse_uint(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v;

	if (disk_cfg_parse_u64(s, &v) < 0 || v < min || v > max) {
		fprintf(stderr, "vblkd: %s '%s': expected a number from %llu to %llu\n", opt, s,
			(unsigned long long)min, (unsigned long long)max);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

enum {
	OPT_BACKEND_DOMID = 256,
	OPT_QUEUE_DEPTH,
	OPT_ALLOW_SHARED,
	OPT_CONTROL,
	OPT_JSON,
	OPT_STATE_DIR,
	OPT_RELEASE,
	OPT_VHOST_USER,
	OPT_NO_FAST_PATH,
	OPT_POLL_US,
	OPT_IO_THREADS,
	OPT_GUEST_THREADS,
};

static int parse_vhost_user(const char *arg, struct options *o)
{
	const char *why = NULL;
	int r;

	if (o->daemon.nvhost >= VHOST_EXPORTS_MAX) {
		fprintf(stderr, "vblkd: --vhost-user: at most %u exports\n", VHOST_EXPORTS_MAX);
		return -1;
	}
	r = vhost_export_cfg_parse(arg, &o->vhost[o->daemon.nvhost], &why);
	if (r < 0) {
		fprintf(stderr, "vblkd: --vhost-user '%s': %s\n", arg, why ? why : strerror(-r));
		return -1;
	}
	o->daemon.nvhost++;
	return 0;
}

static int parse_log_level(const char *arg)
{
	enum log_level level;

	if (log_parse_level(arg, &level) < 0) {
		fprintf(stderr, "vblkd: --log-level '%s': expected err, warning, notice, info or "
				"debug\n", arg);
		return -1;
	}
	log_set_level(level);
	return 0;
}

static int parse_io_threads(const char *arg, struct options *o)
{
	uint64_t v;

	if (parse_uint("--io-threads", arg, 0, IO_THREADS_MAX, &v) < 0)
		return -1;
	o->daemon.io_threads = (unsigned int)v;
	o->io_threads_set = true;
	return 0;
}

/* The options that take a number (parse_option()'s rest). */
static int parse_number_option(int c, const char *arg, struct options *o)
{
	uint64_t v;

	switch (c) {
	case OPT_BACKEND_DOMID:
		if (parse_uint("--backend-domid", arg, 0, 0x7fef, &v) < 0)
			return -1;
		o->daemon.backend_domid = (uint32_t)v;
		return 0;
	case 'q':
		if (parse_uint("--queues", arg, 1, VBLK_MAX_QUEUES, &v) < 0)
			return -1;
		o->daemon.queues = (unsigned int)v;
		return 0;
	case OPT_QUEUE_DEPTH:
		if (parse_uint("--queue-depth", arg, 1, BLK_QUEUE_DEPTH_MAX, &v) < 0)
			return -1;
		o->daemon.queue_depth = (unsigned int)v;
		return 0;
	case OPT_POLL_US:
		if (parse_uint("--poll-us", arg, 0, POLL_US_MAX, &v) < 0)
			return -1;
		o->daemon.poll_us = (unsigned int)v;
		return 0;
	case OPT_GUEST_THREADS:
		if (parse_uint("--guest-threads", arg, 1, IO_THREADS_MAX, &v) < 0)
			return -1;
		o->daemon.guest_threads = (unsigned int)v;
		return 0;
	default:
		fprintf(stderr, "Try 'vblkd --help' for more information.\n");
		return -1;
	}
}

/* One option (flat dispatch): 0 to go on, 1 to exit 0 (help, version), -1 on a usage error. */
static int parse_option(int c, const char *arg, struct options *o)
{
	switch (c) {
	case 'f':
		o->foreground = true;
		return 0;
	case 'l':
		return parse_log_level(arg);
	case 'e':
		if (blk_engine_parse(arg, &o->daemon.engine) < 0) {
			fprintf(stderr, "vblkd: --engine '%s': expected auto, aio, uring or null\n",
				arg);
			return -1;
		}
		return 0;
	case OPT_IO_THREADS:
		return parse_io_threads(arg, o);
	case OPT_NO_FAST_PATH:
		o->daemon.no_fast_path = true;
		return 0;
	case OPT_ALLOW_SHARED:
		o->daemon.allow_shared = true;
		return 0;
	case OPT_CONTROL:
		if (arg[0] != '/') {
			fprintf(stderr, "vblkd: --control-socket '%s': expected an absolute path\n",
				arg);
			return -1;
		}
		o->control = arg;
		return 0;
	case OPT_STATE_DIR:
		if (arg[0] && arg[0] != '/') {
			fprintf(stderr, "vblkd: --state-dir '%s': expected an absolute path (or "
					"nothing, for none)\n", arg);
			return -1;
		}
		o->daemon.state_dir = arg[0] ? arg : NULL;
		return 0;
	case OPT_RELEASE:
		o->release = true;
		return 0;
	case OPT_VHOST_USER:
		return parse_vhost_user(arg, o);
	case 's':
		o->status = true;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case 'h':
		usage(stdout);
		return 1;
	case 'V':
		printf("vblkd %s\n", VBLKD_VERSION);
		return 1;
	default:
		return parse_number_option(c, arg, o);
	}
}

/* Returns 0 to run, 1 to exit 0 (help, version), -1 on a usage error (already reported). */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "backend-domid", required_argument, NULL, OPT_BACKEND_DOMID },
		{ "engine", required_argument, NULL, 'e' },
		{ "queues", required_argument, NULL, 'q' },
		{ "queue-depth", required_argument, NULL, OPT_QUEUE_DEPTH },
		{ "io-threads", required_argument, NULL, OPT_IO_THREADS },
		{ "guest-threads", required_argument, NULL, OPT_GUEST_THREADS },
		{ "allow-shared", no_argument, NULL, OPT_ALLOW_SHARED },
		{ "no-fast-path", no_argument, NULL, OPT_NO_FAST_PATH },
		{ "poll-us", required_argument, NULL, OPT_POLL_US },
		{ "control-socket", required_argument, NULL, OPT_CONTROL },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "release", no_argument, NULL, OPT_RELEASE },
		{ "vhost-user", required_argument, NULL, OPT_VHOST_USER },
		{ "status", no_argument, NULL, 's' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	while ((c = getopt_long(argc, argv, "fl:e:q:shV", longopts, NULL)) != -1) {
		r = parse_option(c, optarg, o);
		if (r != 0)
			return r;
	}
	if (o->release && o->status) {
		fprintf(stderr, "vblkd: --release and --status do not go together\n");
		return -1;
	}
	if (o->json && !o->status) {
		fprintf(stderr, "vblkd: --json goes with --status\n");
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "vblkd: unexpected argument '%s'\n", argv[optind]);
		fprintf(stderr, "Try 'vblkd --help' for more information.\n");
		return -1;
	}
	return 0;
}

/*
 * --io-threads by default: one per CPU of our affinity mask (taskset, the
 * unit's CPUAffinity=), so that the guests' queues spread over the CPUs
 * Dom0 gives us without two of our threads sharing one; at most
 * IO_THREADS_DEFAULT_MAX, as a Dom0 with more vCPUs runs other back ends too.
 */
static unsigned int io_threads_default(void)
{
	unsigned int n = cpus_available();

	return n < IO_THREADS_DEFAULT_MAX ? n : IO_THREADS_DEFAULT_MAX;
}

/* What depends on the CPUs we may run on, where the command line did not say. */
static void options_defaults(struct options *o)
{
	if (o->daemon.poll_us == POLL_US_UNSET)
		o->daemon.poll_us = poll_us_default();
	if (!o->io_threads_set)
		o->daemon.io_threads = io_threads_default();
}

/* `vblkd --status`: ask the running daemon. */
static int show_status(const struct options *o)
{
	char *reply = NULL;
	int r;

	r = ctl_request(o->control, "status", 5000, &reply);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		fprintf(stderr, "vblkd: no daemon is running (nothing answers on %s)\n", o->control);
		return EXIT_NOT_RUNNING;
	}
	if (r < 0) {
		fprintf(stderr, "vblkd: cannot get the status from %s: %s%s\n", o->control,
			strerror(-r), r == -EACCES ? " (the control socket is root's)" : "");
		return EXIT_FAILURE;
	}
	if (o->json) {
		fputs(reply, stdout);
	} else if (status_print_table(stdout, reply) < 0) {
		fprintf(stderr, "vblkd: unexpected answer from %s: %.200s\n", o->control, reply);
		free(reply);
		return EXIT_FAILURE;
	}
	free(reply);
	return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* `vblkd --release`: ask the running daemon to let every guest go and stop. */
static int release_guests(const struct options *o)
{
	char *reply = NULL;
	int r;

	r = ctl_request(o->control, "release", 5000, &reply);
	if (r == -ENOENT || r == -ECONNREFUSED) {
		fprintf(stderr, "vblkd: no daemon is running (nothing answers on %s)\n", o->control);
		return EXIT_NOT_RUNNING;
	}
	if (r < 0) {
		fprintf(stderr, "vblkd: cannot ask %s to release its guests: %s\n", o->control,
			strerror(-r));
		return EXIT_FAILURE;
	}
	fputs(reply, stdout);
	free(reply);
	return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static char *on_control(const char *request, void *data)
{
	struct daemon *d = data;
	char *reply;

	if (!strcmp(request, "status"))
		return daemon_status_json(d);
	if (!strcmp(request, "release")) {
		if (asprintf(&reply, "releasing %u disk%s of %u guest%s, then stopping\n",
			     daemon_disk_count(d), daemon_disk_count(d) == 1 ? "" : "s",
			     daemon_guest_count(d), daemon_guest_count(d) == 1 ? "" : "s") < 0)
			reply = NULL;
		log_notice("release asked for: finishing in-flight IO and releasing all guests");
		notify_send_wait("STOPPING=1\nSTATUS=releasing all guests");
		daemon_release(d, 0);
		return reply;
	}
	return NULL;
}

static void on_watchdog(struct loop_source *src, uint64_t expirations, void *data)
{
	notify_send("WATCHDOG=1");
}

static void on_disks_changed(struct daemon *d, void *data)
{
	notify_sendf("STATUS=serving %u disk%s of %u guest%s", daemon_disk_count(d),
		     daemon_disk_count(d) == 1 ? "" : "s", daemon_guest_count(d),
		     daemon_guest_count(d) == 1 ? "" : "s");
}

static void on_stop_signal(struct loop_source *src, const struct signalfd_siginfo *si, void *data)
{
	struct daemon *d = data;

	if (daemon_keeps_guests(d)) {
		/* A restart or an upgrade: the next vblkd adopts the guests (vblkd(8), RESTARTS). */
		if (daemon_guest_count(d))
			log_notice("%s: stopping; the guests stay attached for the next vblkd "
				   "(vblkd --release lets them go)", strsignal((int)si->ssi_signo));
		else
			log_notice("%s: stopping (no guest to leave attached)",
				   strsignal((int)si->ssi_signo));
		notify_send_wait("STOPPING=1\nSTATUS=leaving the guests to the next vblkd");
		daemon_detach(d, 0);
		return;
	}
	log_notice("%s: finishing in-flight IO and releasing all guests", strsignal((int)si->ssi_signo));
	notify_send_wait("STOPPING=1\nSTATUS=finishing in-flight IO");
	daemon_shutdown(d, 0);
}

static void on_hup(struct loop_source *src, const struct signalfd_siginfo *si, void *data)
{
	log_info("SIGHUP: re-reading the size of every backing file");
	daemon_refresh(data);
}

/*
 * Each disk holds about 3 fds (backing file, completion eventfd, timerfd;
 * io_uring adds its ring) and each guest its event channel handle: the usual
 * soft limit of 1024 is reached at about 330 disks.  The hard limit is what
 * the administrator (or the unit's LimitNOFILE=) allows us; nothing here uses
 * select(), so a high soft limit costs nothing.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t old;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot read the open file limit: %m");
		return;
	}
	old = rl.rlim_cur;
	if (old >= rl.rlim_max) {
		log_debug("open file limit: %llu", (unsigned long long)old);
		return;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot raise the open file limit from %llu to %llu: %m; "
			 "about %llu disks can be served", (unsigned long long)old,
			 (unsigned long long)rl.rlim_max, (unsigned long long)old / 3);
		return;
	}
	log_info("open file limit raised from %llu to %llu", (unsigned long long)old,
		 (unsigned long long)rl.rlim_cur);
}

/*
 * Go to the background; the parent exits once the child reports through
 * @ready_fd (written by the child after start-up), so `vblkd && xl create`
 * works.  Returns in the child only.
 */
static int daemonize(int *ret_ready_fd)
{
	int p[2], fd;
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		/* The child writes one byte once it serves, or closes the pipe on failure. */
		_exit(read(p[0], &c, 1) == 1 ? EXIT_SUCCESS : EXIT_FAILURE);
	}
	close(p[0]);
	if (setsid() < 0)
		return -errno;
	if (chdir("/") < 0)
		return -errno;
	umask(022);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		/* stderr stays: with no terminal, log lines would go nowhere otherwise. */
		if (fd > STDERR_FILENO)
			close(fd);
	}
	*ret_ready_fd = p[1];
	return 0;
}

/* READY=1 for systemd, with what is served. */
static void notify_ready(const struct daemon *d)
{
	if (daemon_has_xen(d))
		notify_send_wait("READY=1\nSTATUS=watching xenstore for virtio disks");
	else
		notify_sendf_wait("READY=1\nSTATUS=serving %u vhost-user export%s",
				  daemon_vhost_count(d), daemon_vhost_count(d) == 1 ? "" : "s");
}

/* The systemd watchdog (if asked for) and the signals that stop or refresh @d.  Errors are logged. */
static int add_timers_and_signals(struct loop *loop, struct daemon *d)
{
	uint64_t wd = notify_watchdog_usec();
	int r;

	r = wd ? loop_add_timer(loop, wd / 2, wd / 2, on_watchdog, NULL, NULL) : 0;
	if (r < 0) {
		log_err("cannot set up the systemd watchdog timer: %s", strerror(-r));
		return r;
	}
	r = loop_add_signal(loop, SIGTERM, on_stop_signal, d, NULL);
	if (r >= 0)
		r = loop_add_signal(loop, SIGINT, on_stop_signal, d, NULL);
	if (r >= 0)
		r = loop_add_signal(loop, SIGHUP, on_hup, d, NULL);
	if (r < 0)
		log_err("cannot set up signal handling: %s", strerror(-r));
	return r;
}

int main(int argc, char **argv)
{
	struct options o = {
		.daemon = {
			.backend_domid = DAEMON_DOMID_SELF,
			.engine = BLK_ENGINE_AUTO,
			.queues = 1,
			.poll_us = POLL_US_UNSET,
		},
	};
	struct daemon *d = NULL;
	struct ctl *ctl = NULL;
	struct loop *loop;
	int r, ready_fd = -1;

	log_init("vblkd");
	o.daemon.vhost = o.vhost;
	o.control = CTL_DEFAULT_PATH;
	o.daemon.state_dir = xensim_state_dir ? xensim_state_dir() : STATE_DIR_DEFAULT;
	r = parse_options(argc, argv, &o);
	if (r)
		return r > 0 ? EXIT_SUCCESS : EXIT_USAGE;
	if (o.status)
		return show_status(&o);
	if (o.release)
		return release_guests(&o);
	options_defaults(&o);

	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	if (!o.foreground) {
		r = daemonize(&ready_fd);
		if (r < 0) {
			log_err("cannot go to the background: %s", strerror(-r));
			return EXIT_FAILURE;
		}
	}

	loop = loop_new();
	if (!loop) {
		log_err("cannot create the event loop: %m");
		return EXIT_FAILURE;
	}
	o.daemon.changed = on_disks_changed;
	r = daemon_new(loop, &o.daemon, &d);
	if (r < 0)
		goto out;
	r = ctl_listen(loop, o.control, on_control, d, &ctl);
	if (r < 0) {
		log_err("control socket %s: %s%s", o.control, strerror(-r),
			r == -EADDRINUSE ? ": another vblkd is running" :
			r == -EEXIST ? " (something other than a socket is there; not removed)" : "");
		goto out;
	}
	r = add_timers_and_signals(loop, d);
	if (r < 0)
		goto out;
	log_notice("vblkd %s started", VBLKD_VERSION);
	notify_ready(d);
	if (ready_fd >= 0) {
		if (write(ready_fd, "", 1) != 1)
			log_warn("cannot tell the parent process we are ready: %m");
		close(ready_fd);
		ready_fd = -1;
	}
	r = loop_run(loop);
	if (r > 0)
		log_err("stopping after a fatal error");
	else if (r < 0)
		log_err("event loop failed: %s", strerror(-r));
	else
		log_notice("stopped");
out:
	ctl_close(ctl);
	daemon_free(d);
	loop_free(loop);
	for (unsigned int i = 0; i < o.daemon.nvhost; i++)
		vhost_export_cfg_clear(&o.vhost[i]);
	if (ready_fd >= 0)
		close(ready_fd);
	return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
