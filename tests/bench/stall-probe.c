// SPDX-License-Identifier: GPL-2.0-only
/*
 * stall-probe: how long this machine stopped running programs, measured beside a benchmark.
 *
 * One thread at SCHED_FIFO (when allowed) sleeps --period-us at a time on an absolute
 * CLOCK_MONOTONIC deadline and counts how late it wakes.  A real-time thread that wakes late
 * by milliseconds was not kept waiting by the programs it shares the CPU with: the machine
 * itself did not run (a virtual machine whose host stopped its vCPUs, as a CPU quota does when
 * the VM's vCPUs and its host's IO threads together use more than the quota), or its kernel
 * held interrupts off.  make bench runs it beside every run of vblkd and of fio and prints
 * the share of each run the machine lost, so that the tail of a run that was stopped more
 * is read for what it is.
 *
 * usage: stall-probe [--period-us=1000] [--threshold-us=2000]
 * Runs until SIGTERM, SIGINT or end of standard input, then prints one JSON object:
 *   {"realtime": true, "seconds": 4.02, "wakeups": 4000, "stalls": 35,
 *    "stalled_ms": 502.1, "max_ms": 15.7, "list": [[END_US, LATE_US], ...]}
 * A wake-up later than the threshold counts as a stall of its lateness (the stop may have begun
 * up to a period before the missed deadline: the length is a lower bound); "list" has each
 * one's end (CLOCK_MONOTONIC, microseconds: Python's time.monotonic() * 1e6) and length, the
 * first STALL_LIST_MAX of them ("stalls" counts them all).  Exit 0; 2 on usage.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STALL_LIST_MAX 100000

/* Set by the signal handler and by the stdin watcher thread. */
static atomic_int stop;
static int64_t (*list)[2];
static size_t nlist, list_cap;

/* Note a stall of @late ns that ended at @end (ns); past the cap or out of memory, only counted. */
static void note_stall(int64_t end, int64_t late)
{
	if (nlist == list_cap) {
		size_t cap = list_cap ? list_cap * 2 : 256;
		void *p;

		if (cap > STALL_LIST_MAX)
			cap = STALL_LIST_MAX;
		p = cap > list_cap ? realloc(list, cap * sizeof(*list)) : NULL;
		if (!p)
			return;
		list = p;
		list_cap = cap;
	}
	list[nlist][0] = end / 1000;
	list[nlist][1] = late / 1000;
	nlist++;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* End of standard input also ends the probe (its parent went away without a signal). */
static void *watch_stdin(void *arg)
{
	char buf[64];

	(void)arg;
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	stop = 1;
	return NULL;
}

static bool parse_us(const char *s, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 10 || v > 1000000)
		return false;
	*ret = v;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "period-us", required_argument, NULL, 'p' },
		{ "threshold-us", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct sched_param sp = { .sched_priority = 1 };
	long period_us = 1000, threshold_us = 2000;
	int64_t start, next, woke, late, stalled = 0, max = 0;
	uint64_t wakeups = 0, stalls = 0;
	struct sigaction sa = { .sa_handler = on_signal };
	bool realtime;
	pthread_t t;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((o == 'p' && parse_us(optarg, &period_us)) ||
		    (o == 't' && parse_us(optarg, &threshold_us)))
			continue;
		if (o == 'p' || o == 't')
			fprintf(stderr, "stall-probe: --%s=%s: not a number of microseconds "
					"from 10 to 1000000\n", o == 'p' ? "period-us" : "threshold-us",
				optarg);
		fprintf(stderr, "usage: stall-probe [--period-us=US] [--threshold-us=US]\n");
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "stall-probe: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (pthread_create(&t, NULL, watch_stdin, NULL) == 0)
		pthread_detach(t);
	/* After the watcher: it inherits nothing real-time, the probe alone is. */
	realtime = sched_setscheduler(0, SCHED_FIFO, &sp) == 0;
	start = next = now_ns();
	while (!stop) {
		struct timespec ts;

		next += period_us * 1000;
		ts.tv_sec = next / 1000000000;
		ts.tv_nsec = next % 1000000000;
		/* A signal: sleep on to the same deadline, unless it said stop. */
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop)
			;
		if (stop)
			break;
		wakeups++;
		woke = now_ns();
		late = woke - next;
		if (late > threshold_us * 1000) {
			stalls++;
			stalled += late;
			if (late > max)
				max = late;
			note_stall(woke, late);
			/* The next deadline from now: one stall is counted once. */
			next = woke;
		}
	}
	printf("{\"realtime\": %s, \"seconds\": %.3f, \"wakeups\": %llu, \"stalls\": %llu, "
	       "\"stalled_ms\": %.1f, \"max_ms\": %.1f, \"list\": [",
	       realtime ? "true" : "false", (double)(now_ns() - start) / 1e9,
	       (unsigned long long)wakeups, (unsigned long long)stalls, (double)stalled / 1e6,
	       (double)max / 1e6);
	for (size_t i = 0; i < nlist; i++)
		printf("%s[%lld, %lld]", i ? ", " : "", (long long)list[i][0], (long long)list[i][1]);
	printf("]}\n");
	free(list);
	return 0;
}
