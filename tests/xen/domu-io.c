// SPDX-License-Identifier: GPL-2.0-only
/* The check-xen guest's IO tool for the restart steps: known data to write and check, and an IO pulse. */

/*
 * usage: domu-io pattern SEED FIRST NBLOCKS      4 KiB blocks FIRST.. of the pattern SEED, to stdout
 *        domu-io check SEED FIRST NBLOCKS        compare stdin with them; names the blocks that differ
 *        domu-io pulse DEVICE STOPFILE           small O_DIRECT reads until STOPFILE exists
 *        domu-io now                             the time of day (CLOCK_REALTIME), in seconds
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
 *   pulse ops=N errors=E mismatches=M longest_gap_ms=G from_wall=T
 * then one line per gap above 200 ms: gap_ms=G from_wall=T to_wall=U.  Times are the time of day
 * (CLOCK_REALTIME, which Xen's wallclock gives Dom0 and the guest alike), so Dom0 can find the gap
 * around the moment it stopped vblkd; gap lengths come from CLOCK_MONOTONIC.  An IO error ends it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define PULSE_BLOCKS 64
#define PULSE_REPORT_MS 200.0
#define PULSE_MAX_GAPS 32

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

static double clock_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmd_pulse(const char *dev, const char *stopfile)
{
	struct { double start, end, wall; } gaps[PULSE_MAX_GAPS], longest = { 0, 0, 0 };
	unsigned char *buf;
	uint64_t ops = 0, errors = 0, mismatches = 0;
	unsigned int ngaps = 0;
	double last, last_wall;
	char want[32];
	int fd;

	if (posix_memalign((void **)&buf, BLOCK, BLOCK))
		return 1;
	fd = open(dev, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		perror(dev);
		return 1;
	}
	last = clock_s(CLOCK_MONOTONIC);
	last_wall = clock_s(CLOCK_REALTIME);
	while (access(stopfile, F_OK) != 0) {
		uint64_t block = ops % PULSE_BLOCKS;
		ssize_t n = pread(fd, buf, BLOCK, (off_t)(block * BLOCK));
		double t = clock_s(CLOCK_MONOTONIC), wall = clock_s(CLOCK_REALTIME);

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
		if (t - last > longest.end - longest.start) {
			longest.start = last;
			longest.end = t;
			longest.wall = last_wall;
		}
		if ((t - last) * 1000.0 > PULSE_REPORT_MS && ngaps < PULSE_MAX_GAPS) {
			gaps[ngaps].start = last;
			gaps[ngaps].end = t;
			gaps[ngaps++].wall = last_wall;
		}
		last = t;
		last_wall = wall;
		ops++;
	}
	close(fd);
	printf("pulse ops=%" PRIu64 " errors=%" PRIu64 " mismatches=%" PRIu64 " longest_gap_ms=%.0f"
	       " from_wall=%.3f\n", ops, errors, mismatches, (longest.end - longest.start) * 1000.0,
	       longest.wall);
	for (unsigned int g = 0; g < ngaps; g++)
		printf("gap_ms=%.0f from_wall=%.3f to_wall=%.3f\n", (gaps[g].end - gaps[g].start) * 1000.0,
		       gaps[g].wall, gaps[g].wall + gaps[g].end - gaps[g].start);
	return errors || mismatches ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "pattern"))
		return cmd_pattern(parse_u64(argv[2]), parse_u64(argv[3]), parse_u64(argv[4]));
	if (argc == 5 && !strcmp(argv[1], "check"))
		return cmd_check(parse_u64(argv[2]), parse_u64(argv[3]), parse_u64(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "pulse"))
		return cmd_pulse(argv[2], argv[3]);
	if (argc == 2 && !strcmp(argv[1], "now")) {
		printf("%.3f\n", clock_s(CLOCK_REALTIME));
		return 0;
	}
	fprintf(stderr, "usage: domu-io pattern|check SEED FIRST NBLOCKS\n"
			"       domu-io pulse DEVICE STOPFILE\n"
			"       domu-io now\n");
	return 2;
}
