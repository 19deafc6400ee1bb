// SPDX-License-Identifier: GPL-2.0-only
/* The check-xen guest's IO tool for the restart steps: known data to write and check, and an IO pulse. */

/*
 * usage: domu-io pattern SEED FIRST NBLOCKS      4 KiB blocks FIRST.. of the pattern SEED, to stdout
 *        domu-io check SEED FIRST NBLOCKS        compare stdin with them; names the blocks that differ
 *        domu-io pulse DEVICE STOPFILE           small O_DIRECT reads until STOPFILE exists
 *
 * Each pattern block starts with a line naming its seed and block number, then pseudo-random bytes
 * that depend on both: a block written at the wrong place, a write lost, or an old write redone
 * over a newer one (another seed) shows as a block holding someone else's header, or the right
 * header and wrong bytes.  `dd` moves the blocks to and from the disk (tests/xen/domu/init).
 *
 * pulse keeps one 4 KiB read at a time going to DEVICE, the read-only disk of known data (each sector
 * starts "vblkd-ro sector N", mkinitrd.sh), through its first 64 blocks, checks each, and timestamps
 * every completion.  On the read-only disk's own queue it does not wait behind the other disk's
 * writeback, so a long gap between two completions is a pause of the back end.  At the end it prints
 *   pulse ops=N errors=E mismatches=M longest_gap_ms=G at_s=T next_gap_ms=H
 * (the longest time between two completions, when it began on the guest's CLOCK_MONOTONIC, and the
 * second longest, a measure of the noise), then one line per gap above 200 ms: gap_ms=G at_s=T.
 * An IO error ends it.
 *
 *        domu-io lat DEVICE FIRST N read|write   N 4 KiB O_DIRECT requests, one at a time (QD1)
 *
 * lat times each request on CLOCK_MONOTONIC, cycling through blocks FIRST..FIRST+63 of DEVICE; writes
 * write pattern blocks (seed LAT_SEED) and read them all back at the end to check them.  It prints
 *   lat op=read|write n=N avg_us=A p50_us=M p99_us=P max_us=X
 * and fails on any IO error or wrong data.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define PULSE_BLOCKS 64
#define PULSE_REPORT_MS 200.0
#define PULSE_MAX_GAPS 32
#define LAT_BLOCKS 64
#define LAT_MAX 100000
#define LAT_SEED 4242

static uint64_t parse_u64(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || !*s || *end) {
		fprintf(stderr, "domu-io: '%s' is not a number\n", s);
		exit(2);
	}
	return v;
}

/* splitmix64: every block's bytes from (seed, block) alone, so any block can be checked by itself. */
static uint64_t mix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void pattern_block(uint64_t seed, uint64_t block, unsigned char *buf)
{
	uint64_t x = seed * 0x100000001b3ULL ^ block;
	int n;

	memset(buf, 0, BLOCK);
	n = snprintf((char *)buf, BLOCK, "vblkd-pattern seed %" PRIu64 " block %" PRIu64 "\n", seed, block);

	for (size_t i = (size_t)n; i + 8 <= BLOCK; i += 8) {
		uint64_t v = mix(&x);

		memcpy(buf + i, &v, 8);
	}
}

static int full_io(int fd, unsigned char *buf, size_t len, int writing)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = writing ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return (int)done;
		done += (size_t)n;
	}
	return (int)done;
}

static int cmd_pattern(uint64_t seed, uint64_t first, uint64_t n)
{
	static unsigned char buf[BLOCK];

	for (uint64_t b = first; b < first + n; b++) {
		pattern_block(seed, b, buf);
		if (full_io(STDOUT_FILENO, buf, BLOCK, 1) != BLOCK) {
			perror("domu-io pattern: write");
			return 1;
		}
	}
	return 0;
}

static int cmd_check(uint64_t seed, uint64_t first, uint64_t n)
{
	static unsigned char want[BLOCK], got[BLOCK];
	uint64_t bad = 0;

	for (uint64_t b = first; b < first + n; b++) {
		int r = full_io(STDIN_FILENO, got, BLOCK, 0);

		if (r != BLOCK) {
			printf("check: input ends at block %" PRIu64 " (%d bytes of it)\n", b, r);
			return 1;
		}
		pattern_block(seed, b, want);
		if (!memcmp(want, got, BLOCK))
			continue;
		if (bad++ < 10) {
			size_t i = 0, hl = strcspn((char *)got, "\n");

			while (i < BLOCK && want[i] == got[i])
				i++;
			printf("check: block %" PRIu64 " differs from byte %zu; it starts '%.*s'\n", b, i,
			       (int)(hl < 60 ? hl : 60), got);
		}
	}
	if (bad) {
		printf("check: %" PRIu64 " of %" PRIu64 " blocks differ\n", bad, n);
		return 1;
	}
	printf("check: %" PRIu64 " blocks of seed %" PRIu64 " match\n", n, seed);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_pulse(const char *dev, const char *stopfile)
{
	double gaps[PULSE_MAX_GAPS][2], longest = 0, next = 0, longest_at = 0, last;
	unsigned char *buf;
	uint64_t ops = 0, errors = 0, mismatches = 0;
	unsigned int ngaps = 0;
	char want[32];
	int fd;

	if (posix_memalign((void **)&buf, BLOCK, BLOCK))
		return 1;
	/* Ahead of the dd, the pattern and e2fsck for the guest's vCPUs: its gaps are then the back
	 * end's, less the guest's own scheduling.  (Best effort: busybox here has no nice.) */
	if (setpriority(PRIO_PROCESS, 0, -10) < 0)
		perror("pulse: setpriority");
	fd = open(dev, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		perror(dev);
		return 1;
	}
	last = now_s();
	while (access(stopfile, F_OK) != 0) {
		uint64_t block = ops % PULSE_BLOCKS;
		ssize_t n = pread(fd, buf, BLOCK, (off_t)(block * BLOCK));
		double t = now_s(), gap = t - last;

		if (n != BLOCK) {
			fprintf(stderr, "pulse: read at byte %ju: %s\n", (uintmax_t)(block * BLOCK),
				n < 0 ? strerror(errno) : "short");
			errors++;
			break;
		}
		/* The read-only disk's known data (mkinitrd.sh): sector N starts "vblkd-ro sector N". */
		snprintf(want, sizeof(want), "vblkd-ro sector %08ju\n", (uintmax_t)(block * BLOCK / 512));
		if (memcmp(buf, want, strlen(want)) && mismatches++ < 5)
			fprintf(stderr, "pulse: block %ju reads '%.24s'\n", (uintmax_t)block, buf);
		if (gap > longest) {
			next = longest;
			longest = gap;
			longest_at = last;
		} else if (gap > next) {
			next = gap;
		}
		if (gap * 1000.0 > PULSE_REPORT_MS && ngaps < PULSE_MAX_GAPS) {
			gaps[ngaps][0] = last;
			gaps[ngaps++][1] = gap;
		}
		last = t;
		ops++;
	}
	close(fd);
	printf("pulse ops=%" PRIu64 " errors=%" PRIu64 " mismatches=%" PRIu64 " longest_gap_ms=%.0f"
	       " at_s=%.3f next_gap_ms=%.0f\n", ops, errors, mismatches, longest * 1000.0, longest_at,
	       next * 1000.0);
	for (unsigned int g = 0; g < ngaps; g++)
		printf("gap_ms=%.0f at_s=%.3f\n", gaps[g][1] * 1000.0, gaps[g][0]);
	return errors || mismatches ? 1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Read back the blocks a write run wrote: the latency figures count only if the data landed. */
static int lat_verify(int fd, uint64_t first, unsigned char *buf, unsigned char *want)
{
	uint64_t b;

	for (b = first; b < first + LAT_BLOCKS; b++) {
		pattern_block(LAT_SEED, b, want);
		if (pread(fd, buf, BLOCK, (off_t)(b * BLOCK)) != BLOCK || memcmp(buf, want, BLOCK)) {
			fprintf(stderr, "domu-io: lat: block %" PRIu64 " reads back wrong\n", b);
			return 1;
		}
	}
	return 0;
}

static int cmd_lat(const char *dev, uint64_t first, uint64_t n, const char *op)
{
	int writing = !strcmp(op, "write"), fd, rc = 0;
	unsigned char *buf, *want;
	double *us, t0, sum = 0;
	uint64_t i, b;

	if ((!writing && strcmp(op, "read")) || !n || n > LAT_MAX) {
		fprintf(stderr, "domu-io: lat: read or write, 1..%d requests\n", LAT_MAX);
		return 2;
	}
	fd = open(dev, (writing ? O_RDWR : O_RDONLY) | O_DIRECT);
	us = calloc(n, sizeof(*us));
	if (fd < 0 || !us || posix_memalign((void **)&buf, BLOCK, BLOCK) ||
	    posix_memalign((void **)&want, BLOCK, BLOCK)) {
		perror("domu-io: lat");
		return 1;
	}
	for (i = 0; i < n && !rc; i++) {
		b = first + i % LAT_BLOCKS;
		if (writing)
			pattern_block(LAT_SEED, b, buf);
		t0 = now_s();
		if ((writing ? pwrite(fd, buf, BLOCK, (off_t)(b * BLOCK)) :
			       pread(fd, buf, BLOCK, (off_t)(b * BLOCK))) != BLOCK) {
			perror("domu-io: lat: request failed");
			rc = 1;
		}
		us[i] = (now_s() - t0) * 1e6;
		sum += us[i];
	}
	if (!rc && writing)
		rc = lat_verify(fd, first, buf, want);
	if (!rc) {
		qsort(us, n, sizeof(*us), cmp_double);
		printf("lat op=%s n=%" PRIu64 " avg_us=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f\n", op, n,
		       sum / (double)n, us[n / 2], us[n * 99 / 100], us[n - 1]);
	}
	close(fd);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "pattern"))
		return cmd_pattern(parse_u64(argv[2]), parse_u64(argv[3]), parse_u64(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "check"))
		return cmd_check(parse_u64(argv[2]), parse_u64(argv[3]), parse_u64(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "pulse"))
		return cmd_pulse(argv[2], argv[3]);
	if (argc == 6 && !strcmp(argv[1], "lat"))
		return cmd_lat(argv[2], parse_u64(argv[3]), parse_u64(argv[4]), argv[5]);
	fprintf(stderr, "usage: domu-io pattern|check SEED FIRST NBLOCKS\n"
			"       domu-io pulse DEVICE STOPFILE\n"
			"       domu-io lat DEVICE FIRST N read|write\n");
	return 2;
}
