// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the simulator's bench workload (make bench) against the real daemon, vblkd-sim. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "util.h"
#include "xensim.h"

#define DISK_BYTES (2u << 20)

static struct xensim_proc sim_proc;
static struct xensim *sim;
static char disk_path[128], disk2_path[128];
static pid_t daemon_pid;

static int start_daemon(const char *engine)
{
	char ctl[160], eng[32];

	snprintf(ctl, sizeof(ctl), "--control-socket=%s/ctl", sim_proc.dir);
	snprintf(eng, sizeof(eng), "--engine=%s", engine);
	daemon_pid = fork();
	if (daemon_pid < 0)
		return -1;
	if (daemon_pid == 0) {
		execl(VBLKD_SIM_BIN, VBLKD_SIM_BIN, "--foreground", "--log-level=err", eng, ctl,
		      (char *)NULL);
		_exit(127);
	}
	return 0;
}

static int stop_daemon(void)
{
	int st;

	kill(daemon_pid, SIGTERM);
	if (waitpid(daemon_pid, &st, 0) != daemon_pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup_engine(const char *engine)
{
	static const char *const args[] = { "--timeout", "5000", "--libxl-timeout", "10000",
					    "--log-level", "err", NULL };
	int fd;

	if (xensim_spawn(XENSIM_BIN, args, &sim_proc) < 0)
		return -1;
	if (xensim_connect(&sim) < 0)
		return -1;
	snprintf(disk_path, sizeof(disk_path), "%s/disk.img", sim_proc.dir);
	snprintf(disk2_path, sizeof(disk2_path), "%s/disk2.img", sim_proc.dir);
	for (int i = 0; i < 2; i++) {
		fd = open(i ? disk2_path : disk_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, DISK_BYTES) < 0)
			return -1;
		close(fd);
	}
	return start_daemon(engine);
}

static int setup_aio(void **state)
{
	return setup_engine("aio");
}

static int setup_null(void **state)
{
	return setup_engine("null");
}

static int teardown(void **state)
{
	int d = stop_daemon(), s;

	xensim_disconnect(sim);
	unlink(disk_path);
	unlink(disk2_path);
	s = xensim_reap(&sim_proc);
	/* Both must exit cleanly (no sanitizer report, no crash). */
	return d == 0 && s == 0 ? 0 : -1;
}

static uint32_t create_guest(unsigned int vcpus, unsigned int ndisks)
{
	char spec[512];
	uint32_t domid = 0;
	int n = snprintf(spec, sizeof(spec), "vcpus=%u,mem=32M", vcpus);

	for (unsigned int i = 0; i < ndisks; i++)
		n += snprintf(spec + n, sizeof(spec) - (size_t)n, ",disk=%s:rw:dio",
			      i ? disk2_path : disk_path);
	/* Waits for the daemon's InitWait, like libxl. */
	assert_int_equal(xensim_domain_create(sim, spec, 0, &domid, NULL), 0);
	return domid;
}

/* The value of @key= in the report's first bench line for disk @vdev, or -1. */
static double bench_value(const char *rep, const char *vdev, const char *key)
{
	char want[32], k[40];
	const char *line = rep;

	snprintf(want, sizeof(want), " disk=%s ", vdev);
	snprintf(k, sizeof(k), " %s=", key);
	while ((line = strstr(line, "bench dom="))) {
		const char *end = strchr(line, '\n'), *at = strstr(line, k);

		if (!end)
			end = line + strlen(line);
		if (strstr(line, want) && strstr(line, want) < end && at && at < end)
			return strtod(at + strlen(k), NULL);
		line = end;
	}
	return -1;
}

/* Every 512-byte sector of [0, bytes) of the file starts with its own sector number. */
static void assert_file_stamped(uint64_t bytes)
{
	uint8_t sec[512];
	int fd = open(disk_path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	for (uint64_t s = 0; s < bytes / 512; s++) {
		uint64_t v;

		assert_int_equal(pread(fd, sec, sizeof(sec), (off_t)(s * 512)), (ssize_t)sizeof(sec));
		memcpy(&v, sec, 8);
		assert_int_equal(le64toh(v), s);
	}
	close(fd);
}

static void test_bench_randwrite_reports_and_stamps_the_file(void **state)
{
	uint32_t domid = create_guest(1, 1);
	char *rep = NULL;

	assert_int_equal(xensim_workload(sim, domid, "bench,rw=randwrite,bs=4096,qd=4,time=200,span=1M",
					 &rep), 0);
	assert_non_null(rep);
	assert_non_null(strstr(rep, "rw=randwrite bs=4096 qd=4"));
	assert_true(bench_value(rep, "xvda", "ops") > 0);
	assert_true(bench_value(rep, "xvda", "iops") > 0);
	assert_true(bench_value(rep, "xvda", "lat_p50_us") > 0);
	assert_true(bench_value(rep, "xvda", "lat_p99_us") >= bench_value(rep, "xvda", "lat_p50_us"));
	/* Exact, where the percentiles are a bucket's middle (within 1.6 %). */
	assert_true(bench_value(rep, "xvda", "lat_max_us") * 1.02 >= bench_value(rep, "xvda", "lat_p99_us"));
	free(rep);
	assert_file_stamped(1u << 20);
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), 0);
}

/*
 * At QD1 the guest sleeps for (nearly) every completion: the report gives the
 * interrupt path (vblkd's set_irq_level to the guest seeing the request done),
 * which make bench subtracts as the simulator's share of the latency.
 */
static void test_bench_qd1_reports_interrupt_path(void **state)
{
	uint32_t domid = create_guest(1, 1);
	char *rep = NULL;
	double share, irq;

	assert_int_equal(xensim_workload(sim, domid, "bench,rw=randread,bs=4096,qd=1,time=300,span=1M",
					 &rep), 0);
	assert_non_null(rep);
	share = bench_value(rep, "xvda", "irq_share");
	irq = bench_value(rep, "xvda", "irq_p50_us");
	assert_true(share > 0 && share <= 1);
	assert_true(irq > 0);
	/* Part of each such request's latency, never more than all of it. */
	assert_true(irq <= bench_value(rep, "xvda", "lat_p99_us"));
	free(rep);
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), 0);
}

/*
 * The guest's MMIO traps, which make bench reports to show what bounds a
 * figure: at QD1 each request costs its QueueNotify (the queue is idle when it
 * is added) and, when the vCPU slept for it, the InterruptStatus read and the
 * ACK.  The vCPU waits for them inside the requests' latency.
 */
static void test_bench_qd1_reports_guest_traps(void **state)
{
	uint32_t domid = create_guest(1, 1);
	char *rep = NULL;
	double per_op, mean, share;

	assert_int_equal(xensim_workload(sim, domid, "bench,rw=randread,bs=4096,qd=1,time=300,span=1M",
					 &rep), 0);
	assert_non_null(rep);
	per_op = bench_value(rep, "xvda", "traps_per_op");
	mean = bench_value(rep, "xvda", "trap_mean_us");
	share = bench_value(rep, "xvda", "trap_share");
	assert_true(per_op >= 1 && per_op <= 3);
	assert_true(mean > 0);
	assert_true(share > 0 && share < 1);
	/* Only the timed phase counts: the traps fit in the requests' own time. */
	assert_true(per_op * mean <= bench_value(rep, "xvda", "lat_mean_us"));
	free(rep);
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), 0);
}

static double mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/*
 * The timed phase's bounds on the monotonic clock, which make bench measures
 * the daemon's CPU over: after the untimed stamping, as long as the run.
 */
static void test_bench_reports_timed_phase_bounds(void **state)
{
	uint32_t domid = create_guest(1, 1);
	double before = mono_us(), after, start, end, off;
	char *rep = NULL;

	assert_int_equal(xensim_workload(sim, domid, "bench,rw=randread,bs=4096,qd=4,time=300,span=1M",
					 &rep), 0);
	after = mono_us();
	assert_non_null(rep);
	start = bench_value(rep, "xvda", "start_us");
	end = bench_value(rep, "xvda", "end_us");
	assert_true(start > before && end < after && start < end);
	/* Its length is the reported run time (rounded to ms), and the run asked for 300 ms. */
	off = (end - start) / 1e6 - bench_value(rep, "xvda", "seconds");
	assert_true(off > -0.002 && off < 0.002);
	assert_true(end - start >= 300e3);
	free(rep);
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), 0);
}

static char latlog_path[128];

/* As setup_aio, the simulator told to log every timed request ($XENSIM_LATLOG, make bench's). */
static int setup_latlog(void **state)
{
	snprintf(latlog_path, sizeof(latlog_path), "%s/vblkd-latlog.%d.bin",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	unlink(latlog_path);
	setenv("XENSIM_LATLOG", latlog_path, 1);
	return setup_engine("aio");
}

static int teardown_latlog(void **state)
{
	unsetenv("XENSIM_LATLOG");
	unlink(latlog_path);
	return teardown(state);
}

/* The larger (@max) or smaller of @key's values for the two disks xvda and xvdb. */
static double both_disks(const char *rep, const char *key, bool max)
{
	double a = bench_value(rep, "xvda", key), b = bench_value(rep, "xvdb", key);

	return (a > b) == max ? a : b;
}

/*
 * make bench's tail outside the machine's stops reads each request of the
 * timed phase from this log: one (done ns, latency ns) pair per request the
 * report counts, of both disks, each done within the timed phase and sent
 * after it began; the slowest is the report's lat_max_us.
 */
static void test_bench_logs_each_timed_request(void **state)
{
	uint32_t domid = create_guest(2, 2);
	uint64_t (*e)[2] = NULL, max_ns = 0;
	double start, end, ops, slowest;
	char *rep = NULL;
	struct stat st;
	size_t n;
	FILE *f;

	assert_int_equal(xensim_workload(sim, domid, "bench,rw=randread,bs=4096,qd=4,time=200,span=1M",
					 &rep), 0);
	start = both_disks(rep, "start_us", false);
	end = both_disks(rep, "end_us", true);
	slowest = both_disks(rep, "lat_max_us", true);
	ops = bench_value(rep, "xvda", "ops") + bench_value(rep, "xvdb", "ops");
	assert_int_equal(stat(latlog_path, &st), 0);
	n = (size_t)st.st_size / sizeof(*e);
	assert_int_equal(st.st_size % sizeof(*e), 0);
	assert_true(n == (size_t)ops && n > 0);
	e = malloc((size_t)st.st_size);
	f = fopen(latlog_path, "rb");
	assert_true(e && f && fread(e, sizeof(*e), n, f) == n);
	fclose(f);
	for (size_t i = 0; i < n; i++) {
		double done_us = (double)le64toh(e[i][0]) / 1e3, lat_us = (double)le64toh(e[i][1]) / 1e3;

		assert_true(lat_us > 0 && done_us <= end + 1 && done_us - lat_us >= start - 1);
		if (le64toh(e[i][1]) > max_ns)
			max_ns = le64toh(e[i][1]);
	}
	assert_true((double)max_ns / 1e3 - slowest < 0.01 && slowest - (double)max_ns / 1e3 < 0.01);
	free(e);
	free(rep);
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), 0);
}

static void test_bench_large_requests_beyond_guest_max_io(void **state)
{
	uint32_t domid = create_guest(1, 1);
	char *rep = NULL;

	/* 1 MiB requests: larger than the other workloads' 64 KiB buffers. */
	assert_int_equal(xensim_workload(sim, domid, "bench,rw=read,bs=1M,qd=2,time=100,span=2M",
					 &rep), 0);
	assert_non_null(strstr(rep, "rw=read bs=1048576 qd=2"));
	assert_true(bench_value(rep, "xvda", "ops") > 0);
	/* MB/s is IOPS times the request size. */
	assert_true(bench_value(rep, "xvda", "mbps") > bench_value(rep, "xvda", "iops"));
	free(rep);
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), 0);
}

static void test_bench_one_vcpu_per_disk(void **state)
{
	uint32_t domid = create_guest(2, 2);
	char *rep = NULL;

	/* vCPU 0 drives xvda, vCPU 1 xvdb, at the same time. */
	assert_int_equal(xensim_workload(sim, domid, "bench,rw=randread,bs=4096,qd=32,time=100,span=1M",
					 &rep), 0);
	assert_true(bench_value(rep, "xvda", "ops") > 0);
	assert_true(bench_value(rep, "xvdb", "ops") > 0);
	assert_true(bench_value(rep, "xvda", "vcpus") == 1);
	assert_true(bench_value(rep, "xvdb", "vcpus") == 1);
	free(rep);
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), 0);
}

static void test_bench_bad_specs(void **state)
{
	uint32_t domid = create_guest(1, 1);
	char *rep = NULL;
	static const char *const bad[] = { "bench,rw=sideways", "bench,bs=2M", "bench,qd=33",
					   "bench,time=0", "bench,check=2", "sequential,bs=1M" };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(xensim_workload(sim, domid, bad[i], &rep), -EINVAL);
		assert_non_null(strstr(rep, "bad workload"));
		free(rep);
		rep = NULL;
	}
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), 0);
}

static void test_bench_null_engine_fails_the_data_check(void **state)
{
	uint32_t domid = create_guest(1, 1);
	char *rep = NULL;

	/* The null engine reads zeroes: the stamps are missing, and that is a failure... */
	assert_int_equal(xensim_workload(sim, domid, "bench,rw=randread,time=50,span=1M", &rep),
			 -EIO);
	assert_non_null(strstr(rep, "stamp"));
	free(rep);
	rep = NULL;
	/* ...unless the checks are off, as make bench does to measure the notification cost. */
	assert_int_equal(xensim_workload(sim, domid, "bench,rw=randread,time=50,span=1M,check=0",
					 &rep), 0);
	assert_true(bench_value(rep, "xvda", "ops") > 0);
	free(rep);
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bench_randwrite_reports_and_stamps_the_file,
						setup_aio, teardown),
		cmocka_unit_test_setup_teardown(test_bench_qd1_reports_interrupt_path, setup_aio,
						teardown),
		cmocka_unit_test_setup_teardown(test_bench_qd1_reports_guest_traps, setup_aio, teardown),
		cmocka_unit_test_setup_teardown(test_bench_reports_timed_phase_bounds, setup_aio,
						teardown),
		cmocka_unit_test_setup_teardown(test_bench_logs_each_timed_request, setup_latlog,
						teardown_latlog),
		cmocka_unit_test_setup_teardown(test_bench_large_requests_beyond_guest_max_io,
						setup_aio, teardown),
		cmocka_unit_test_setup_teardown(test_bench_one_vcpu_per_disk, setup_aio, teardown),
		cmocka_unit_test_setup_teardown(test_bench_bad_specs, setup_aio, teardown),
		cmocka_unit_test_setup_teardown(test_bench_null_engine_fails_the_data_check,
						setup_null, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
