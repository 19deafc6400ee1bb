// SPDX-License-Identifier: GPL-2.0-only
/* xensim: the Xen simulator process (hypervisor, xenstore, toolstack, guests) and its command line. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "sim.h"

#define MAX_GUESTS 16
#define MAX_WORKLOADS 16

struct guest_run {
	struct guest_config cfg;
	uint32_t domid;
	bool alive;
	int status;
	struct sbuf out;
	pthread_t thread;
};

static struct loop *main_loop;
static int quit_fd = -1;
static int got_signal;	/* written by the loop thread, read everywhere: atomic */

static int signalled(void)
{
	return __atomic_load_n(&got_signal, __ATOMIC_ACQUIRE);
}
static const char *workloads[MAX_WORKLOADS];
static char *owned_workloads[MAX_WORKLOADS];	/* those read from --config */
static unsigned int nworkloads;
static long destroy_after_ms = -1, crash_after_ms = -1, reboot_after_ms = -1;
static bool show_progress;
static volatile bool script_done;
static const char *event_target;	/* the guest named after MS:, or NULL for all */

/* Is guest @gr hit by --destroy-after / --crash-after / --reboot-after? */
static bool targeted(const struct guest_run *gr)
{
	return !event_target || !strcmp(event_target, gr->cfg.name);
}

/* "MS" or "MS:NAME" */
static long parse_event(const char *arg)
{
	const char *colon = strchr(arg, ':');

	if (colon)
		event_target = colon + 1;
	return atol(arg);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xensim [options]\n"
		"Simulates Xen on Arm for a virtio-mmio block backend linked with libxensim:\n"
		"hypervisor (IOREQ servers, event channels, foreign/grant mappings, SPIs), xenstored,\n"
		"the libxl disk handshake, and guests running their own virtio-blk driver.\n\n"
		"  --socket PATH        listen here (default $XENSIM_SOCKET, else /tmp/xensim-<uid>.sock)\n"
		"  --guest SPEC         create a guest, e.g. vcpus=2,mem=64M,disk=/tmp/a.img:rw,disk=/tmp/b.img:ro\n"
		"                       disk options: ro|rw, discard, grants; guest options: name=, backend=, packed, noevent\n"
		"                       toolstack variations: base=N, irq=N, devid=N, hexbase, dio, params=V, omit=KEY\n"
		"  --config FILE        lines 'guest SPEC' and 'workload SPEC' ('#' comments)\n"
		"  --workload SPEC[:NAME]  run on every guest (or guest NAME), in order:\n"
		"                       verify|random|sequential|trim|hostile|bench|flood\n"
		"                       [,seed=N][,ops=N][,bs=N][,span=BYTES][,qd=N]\n"
		"                       bench: [,rw=randread|randwrite|read|write][,time=MS][,check=0]\n"
		"                       flood: [,attack=in-junk|flush-junk|spread|bigseg|all][,heads=N][,seconds=S]\n"
		"  --destroy-after MS[:NAME]  xl destroy every guest (or guest NAME) MS ms after the\n"
		"                       workloads start\n"
		"  --crash-after MS[:NAME]    the guest(s) die suddenly (no Closing handshake)\n"
		"  --reboot-after MS[:NAME]   destroy, create again (new domid), rerun the workloads\n"
		"  --timeout MS         limit for each ioreq and interrupt wait (default %u)\n"
		"  --libxl-timeout MS   toolstack wait for InitWait / Closed (default 10000, as libxl)\n"
		"  --serve              keep serving after the script (until SIGTERM/SIGINT)\n"
		"  --progress           a progress line per second on stderr while workloads run\n"
		"  --ready-fd N         write one byte to fd N once listening\n"
		"  --log-level LEVEL    err|warning|notice|info|debug\n"
		"Exit status: 0 if every guest was created, every workload passed and every destroy\n"
		"got Closed in time; 1 otherwise; 2 on usage errors.\n",
		sim_timeout_ms);
}

static void on_quit(struct loop_source *src, int fd, uint32_t events, void *data)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("quit read: %m");
	loop_stop(main_loop, 0);
}

static void kill_all_domains(void)
{
	for (;;) {
		struct sim_domain *d;
		uint32_t domid = 0;

		pthread_mutex_lock(&sim_lock);
		d = hv_domain_any();
		if (d)
			domid = d->domid;
		pthread_mutex_unlock(&sim_lock);
		if (!d)
			break;
		toolstack_destroy(domid, false, NULL, NULL);
	}
}

static void on_signal(struct loop_source *src, const struct signalfd_siginfo *si, void *data)
{
	__atomic_store_n(&got_signal, (int)si->ssi_signo, __ATOMIC_RELEASE);
	loop_stop(main_loop, 0);
	/* Guests in the middle of a script end with their domains. */
	pthread_mutex_lock(&sim_lock);
	pthread_cond_broadcast(&sim_cond);
	pthread_mutex_unlock(&sim_lock);
}

static void *server_thread(void *arg)
{
	loop_run(main_loop);
	if (signalled())
		kill_all_domains();
	return NULL;
}

static void print_sbuf(struct sbuf *b)
{
	if (b->s) {
		fputs(b->s, stdout);
		fflush(stdout);
		free(b->s);
	}
	*b = (struct sbuf){ 0 };
}

/* Run every workload on the guest; a destroy/crash/reboot may cut one short on purpose. */
static void *guest_thread(void *arg)
{
	struct guest_run *gr = arg;
	bool rebooted = false;
	unsigned int i;
	int r;

again:
	for (i = 0; i < nworkloads && !signalled(); i++) {
		const char *spec = workloads[i], *only = strchr(spec, ':');
		struct sim_domain *d;
		struct sbuf rep = { 0 };
		char own[512];

		/* SPEC:NAME runs on guest NAME alone. */
		if (only) {
			if (strcmp(only + 1, gr->cfg.name))
				continue;
			snprintf(own, sizeof(own), "%.*s", (int)(only - spec), spec);
			spec = own;
		}
		pthread_mutex_lock(&sim_lock);
		d = hv_domain_find(gr->domid);
		if (d)
			hv_domain_get(d);
		pthread_mutex_unlock(&sim_lock);
		if (!d)
			break;
		r = workload_run(d, spec, &rep);
		hv_domain_put(d);
		pthread_mutex_lock(&sim_lock);
		sbuf_printf(&gr->out, "%s", rep.s ? rep.s : "");
		pthread_mutex_unlock(&sim_lock);
		free(rep.s);
		if (r == -ESRCH && targeted(gr) &&
		    (destroy_after_ms >= 0 || crash_after_ms >= 0 ||
		     (reboot_after_ms >= 0 && !rebooted)))
			break;	/* cut short on purpose */
		if (r < 0)
			gr->status = 1;
	}
	if (reboot_after_ms >= 0 && targeted(gr) && !rebooted && !signalled()) {
		uint64_t deadline;

		/* Wait for the reboot timer to take the old domain down. */
		pthread_mutex_lock(&sim_lock);
		deadline = sim_now_us() + (uint64_t)reboot_after_ms * 1000 + 15000000ull;
		while (hv_domain_find(gr->domid) && sim_now_us() < deadline)
			sim_cond_wait_until(deadline);
		pthread_mutex_unlock(&sim_lock);
		r = toolstack_create(&gr->cfg, 0, &gr->domid, NULL, &gr->out);
		if (r < 0) {
			gr->status = 1;
			gr->alive = false;
			return NULL;
		}
		sbuf_printf(&gr->out, "%s rebooted as dom %u\n", gr->cfg.name, gr->domid);
		rebooted = true;
		goto again;
	}
	return NULL;
}

static int read_config(const char *path, struct guest_run *runs, unsigned int *nruns)
{
	char line[1024];
	FILE *f = fopen(path, "re");
	int r = 0;

	if (!f) {
		fprintf(stderr, "xensim: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f) && r == 0) {
		char *p = line + strspn(line, " \t"), err[200];

		p[strcspn(p, "#\n")] = '\0';
		if (!*p)
			continue;
		if (!strncmp(p, "guest ", 6) && *nruns < MAX_GUESTS) {
			r = toolstack_parse_guest(p + 6, &runs[*nruns].cfg, err, sizeof(err));
			if (r < 0)
				fprintf(stderr, "xensim: %s: %s\n", path, err);
			else
				(*nruns)++;
		} else if (!strncmp(p, "workload ", 9) && nworkloads < MAX_WORKLOADS) {
			owned_workloads[nworkloads] = strdup(p + 9);
			workloads[nworkloads] = owned_workloads[nworkloads];
			nworkloads++;
		} else {
			fprintf(stderr, "xensim: %s: cannot parse '%s'\n", path, p);
			r = -EINVAL;
		}
	}
	fclose(f);
	return r;
}

/* --progress: one line a second on stderr while the workloads run. */
static void *progress_thread(void *arg)
{
	uint64_t t0 = sim_now_us(), next = t0 + 1000000;

	for (;;) {
		uint64_t reqs, bytes;

		pthread_mutex_lock(&sim_lock);
		while (!script_done && !signalled() && sim_cond_wait_until(next))
			;
		pthread_mutex_unlock(&sim_lock);
		if (script_done || signalled())
			return NULL;
		workload_progress(&reqs, &bytes);
		fprintf(stderr, "xensim: %.0f s: %llu requests, %.1f MiB\n", (next - t0) / 1e6,
			(unsigned long long)reqs, bytes / 1048576.0);
		next += 1000000;
	}
}

/* Timer for --destroy-after / --crash-after / --reboot-after. */
static void *killer_thread(void *arg)
{
	struct guest_run *runs = arg;
	long ms = destroy_after_ms >= 0 ? destroy_after_ms
					: crash_after_ms >= 0 ? crash_after_ms : reboot_after_ms;
	bool graceful = crash_after_ms < 0;
	uint64_t deadline = sim_now_us() + (uint64_t)ms * 1000;
	unsigned int i;

	pthread_mutex_lock(&sim_lock);
	while (!signalled() && sim_cond_wait_until(deadline))
		;
	pthread_mutex_unlock(&sim_lock);
	for (i = 0; runs[i].cfg.vcpus; i++) {
		struct sbuf log = { 0 };
		uint64_t wait = 0;
		int r;

		if (!runs[i].alive || !targeted(&runs[i]))
			continue;
		r = toolstack_destroy(runs[i].domid, graceful, &wait, &log);
		pthread_mutex_lock(&sim_lock);
		sbuf_printf(&runs[i].out, "dom %u: %s mid-IO after %ld ms%s\n%s", runs[i].domid,
			    graceful ? "destroyed" : "crashed", ms,
			    r == -ETIMEDOUT ? " (backend never closed)" : "", log.s ? log.s : "");
		if (r == -ETIMEDOUT)
			runs[i].status = 1;
		if (reboot_after_ms < 0)
			runs[i].alive = false;
		pthread_mutex_unlock(&sim_lock);
		free(log.s);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "guest", required_argument, NULL, 'g' },
		{ "config", required_argument, NULL, 'c' },
		{ "workload", required_argument, NULL, 'w' },
		{ "destroy-after", required_argument, NULL, 'D' },
		{ "crash-after", required_argument, NULL, 'C' },
		{ "reboot-after", required_argument, NULL, 'R' },
		{ "timeout", required_argument, NULL, 't' },
		{ "libxl-timeout", required_argument, NULL, 'L' },
		{ "serve", no_argument, NULL, 'S' },
		{ "progress", no_argument, NULL, 'P' },
		{ "privcmd-eventfd", no_argument, NULL, 'E' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct guest_run runs[MAX_GUESTS + 1];
	unsigned int nruns = 0, i;
	char path[108], err[200];
	bool serve = false;
	pthread_t srv, killer = 0, progress = 0;
	int ready_fd = -1, c, r, status = 0;
	enum log_level lvl;

	log_init("xensim");
	xsim_socket_path(path, sizeof(path));
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': snprintf(path, sizeof(path), "%s", optarg); break;
		case 'g':
			if (nruns == MAX_GUESTS ||
			    toolstack_parse_guest(optarg, &runs[nruns].cfg, err, sizeof(err)) < 0) {
				fprintf(stderr, "xensim: --guest %s: %s\n", optarg,
					nruns == MAX_GUESTS ? "too many guests" : err);
				return 2;
			}
			nruns++;
			break;
		case 'c':
			if (read_config(optarg, runs, &nruns) < 0)
				return 2;
			break;
		case 'w':
			if (nworkloads == MAX_WORKLOADS)
				return 2;
			workloads[nworkloads++] = optarg;
			break;
		case 'D': destroy_after_ms = parse_event(optarg); break;
		case 'C': crash_after_ms = parse_event(optarg); break;
		case 'R': reboot_after_ms = parse_event(optarg); break;
		case 't': sim_timeout_ms = (unsigned int)atoi(optarg); break;
		case 'L': sim_libxl_timeout_ms = (unsigned int)atoi(optarg); break;
		case 'S': serve = true; break;
		case 'P': show_progress = true; break;
		case 'E': sim_privcmd_eventfd = true; break;
		case 'r': ready_fd = atoi(optarg); break;
		case 'l':
			if (log_parse_level(optarg, &lvl) < 0) {
				fprintf(stderr, "xensim: bad log level '%s'\n", optarg);
				return 2;
			}
			log_set_level(lvl);
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || (!serve && !nruns)) {
		usage(stderr);
		return 2;
	}
	sim_init();
	main_loop = loop_new();
	if (!main_loop)
		return 1;
	/* Before any thread starts, so the signals stay blocked everywhere else. */
	loop_add_signal(main_loop, SIGTERM, on_signal, NULL, NULL);
	loop_add_signal(main_loop, SIGINT, on_signal, NULL, NULL);
	signal(SIGPIPE, SIG_IGN);
	quit_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (quit_fd < 0 || loop_add_fd(main_loop, quit_fd, EPOLLIN, on_quit, NULL, NULL) < 0)
		return 1;
	r = server_start(main_loop, path);
	if (r < 0) {
		fprintf(stderr, "xensim: listen on %s: %s\n", path, strerror(-r));
		return 1;
	}
	log_info("listening on %s", path);
	if (ready_fd >= 0) {
		if (write(ready_fd, "r", 1) != 1)
			log_warn("ready fd: %m");
		close(ready_fd);
	}
	if (pthread_create(&srv, NULL, server_thread, NULL) != 0)
		return 1;

	/* The script: create the guests (each waits for its backend like libxl), run workloads. */
	for (i = 0; i < nruns && !signalled(); i++) {
		uint64_t wait;

		r = toolstack_create(&runs[i].cfg, 0, &runs[i].domid, &wait, &runs[i].out);
		print_sbuf(&runs[i].out);
		if (r < 0) {
			printf("%s: not created: %s\n", runs[i].cfg.name, strerror(-r));
			status = 1;
			continue;
		}
		runs[i].alive = true;
	}
	if (nworkloads && (destroy_after_ms >= 0 || crash_after_ms >= 0 || reboot_after_ms >= 0))
		pthread_create(&killer, NULL, killer_thread, runs);
	if (show_progress && nworkloads)
		pthread_create(&progress, NULL, progress_thread, NULL);
	for (i = 0; i < nruns; i++)
		if (runs[i].alive && nworkloads)
			pthread_create(&runs[i].thread, NULL, guest_thread, &runs[i]);
	for (i = 0; i < nruns; i++) {
		if (runs[i].thread)
			pthread_join(runs[i].thread, NULL);
	}
	if (killer)
		pthread_join(killer, NULL);
	if (progress) {
		pthread_mutex_lock(&sim_lock);
		script_done = true;
		pthread_cond_broadcast(&sim_cond);
		pthread_mutex_unlock(&sim_lock);
		pthread_join(progress, NULL);
	}
	for (i = 0; i < nruns; i++) {
		print_sbuf(&runs[i].out);
		if (runs[i].status)
			status = 1;
	}
	/* xl destroy what is left, expecting the backend to close each disk promptly. */
	for (i = 0; i < nruns && !signalled(); i++) {
		uint64_t wait;

		if (!runs[i].alive)
			continue;
		r = toolstack_destroy(runs[i].domid, true, &wait, &runs[i].out);
		print_sbuf(&runs[i].out);
		if (r < 0 && r != -ESRCH)
			status = 1;
	}
	if (serve && !signalled()) {
		/* The script's verdict now; the simulated Xen stays up until SIGTERM. */
		if (nruns) {
			printf("xensim: %s\n", status ? "FAILED" : "all passed");
			fflush(stdout);
		}
		pthread_join(srv, NULL);
	} else {
		uint64_t one = 1;

		if (write(quit_fd, &one, sizeof(one)) < 0)
			log_warn("quit: %m");
		pthread_join(srv, NULL);
	}
	/* A signal cuts a script short (a failure); it is how --serve normally ends. */
	if (signalled() && !serve)
		status = 1;
	kill_all_domains();
	server_stop();
	loop_free(main_loop);
	close(quit_fd);
	for (i = 0; i < MAX_WORKLOADS; i++)
		free(owned_workloads[i]);
	if (!serve)
		printf("xensim: %s\n", status ? "FAILED" : "all passed");
	return status;
}
