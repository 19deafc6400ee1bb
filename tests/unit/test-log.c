// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the log module: levels, journald and plain prefixes, truncation, rate limiting. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static int pipefd[2];

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static int setup(void **state)
{
	assert_int_equal(pipe2(pipefd, O_NONBLOCK | O_CLOEXEC), 0);
	unsetenv("JOURNAL_STREAM");
	log_set_journal(-1);
	log_init("vblkd");
	log_set_fd(pipefd[1]);
	log_set_level(LOG_LEVEL_INFO);
	fake_now = 1000000000ull;
	log_set_clock(fake_clock);
	return 0;
}

static int teardown(void **state)
{
	log_set_fd(-1);
	log_set_clock(NULL);
	log_set_journal(-1);
	unsetenv("JOURNAL_STREAM");
	close(pipefd[0]);
	close(pipefd[1]);
	return 0;
}

/* Everything logged since the last call. */
static const char *drain(void)
{
	static char buf[8192];
	ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_levels(void **state)
{
	log_set_level(LOG_LEVEL_WARNING);
	log_info("hidden %d", 1);
	log_debug("hidden too");
	assert_string_equal(drain(), "");
	log_warn("shown %d", 2);
	log_err("also shown");
	assert_string_equal(drain(), "vblkd: warning: shown 2\nvblkd: error: also shown\n");

	log_set_level(LOG_LEVEL_DEBUG);
	assert_true(log_enabled(LOG_LEVEL_DEBUG));
	log_debug("dbg %s", "x");
	log_info("plain");
	assert_string_equal(drain(), "vblkd: debug: dbg x\nvblkd: plain\n");
}

static void test_parse_level(void **state)
{
	enum log_level l = LOG_LEVEL_INFO;

	assert_int_equal(log_parse_level("debug", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_parse_level("WARNING", &l), 0);
	assert_int_equal(l, LOG_LEVEL_WARNING);
	assert_int_equal(log_parse_level("3", &l), 0);
	assert_int_equal(l, LOG_LEVEL_ERR);
	assert_int_equal(log_parse_level("verbose", &l), -EINVAL);
	assert_int_equal(log_parse_level("8", &l), -EINVAL);
	assert_int_equal(log_parse_level("", &l), -EINVAL);
	assert_int_equal(log_parse_level(NULL, &l), -EINVAL);
	/* Failed parses leave the output alone. */
	assert_int_equal(l, LOG_LEVEL_ERR);
	assert_string_equal(log_level_name(LOG_LEVEL_NOTICE), "notice");
}

static void test_journal_prefix(void **state)
{
	struct stat st;
	char env[64];

	/* JOURNAL_STREAM naming our output fd: priorities as "<N>" prefixes. */
	assert_int_equal(fstat(pipefd[1], &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	log_set_fd(pipefd[1]);
	log_warn("dom %d disk %d: bad", 3, 51712);
	log_info("hello");
	assert_string_equal(drain(), "<4>dom 3 disk 51712: bad\n<6>hello\n");
}

static void test_journal_stream_elsewhere(void **state)
{
	/* JOURNAL_STREAM set but stderr redirected elsewhere: plain text. */
	setenv("JOURNAL_STREAM", "1:2", 1);
	log_set_fd(pipefd[1]);
	log_warn("w");
	assert_string_equal(drain(), "vblkd: warning: w\n");
	setenv("JOURNAL_STREAM", "garbage", 1);
	log_set_fd(pipefd[1]);
	log_notice("n");
	assert_string_equal(drain(), "vblkd: n\n");
}

static void test_errno_and_newline(void **state)
{
	errno = ENOENT;
	log_err("open: %m\n");
	/* Exactly one newline, and errno survives logging. */
	assert_string_equal(drain(), "vblkd: error: open: No such file or directory\n");
	assert_int_equal(errno, ENOENT);
}

static void test_truncation(void **state)
{
	char big[5000];
	const char *out;
	size_t n;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_info("%s", big);
	out = drain();
	n = strlen(out);
	assert_true(n < sizeof(big));
	assert_int_equal(out[n - 1], '\n');
	assert_memory_equal(out + n - 4, "...\n", 4);
	assert_ptr_equal(strchr(out, '\n'), out + n - 1);	/* one line only */
}

static void test_ratelimit(void **state)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 3);
	const char *out;
	int i, lines = 0;

	for (i = 0; i < 10; i++)
		log_ratelimited(&rl, LOG_LEVEL_WARNING, "guest poke %d", i);
	out = drain();
	for (const char *p = out; (p = strchr(p, '\n')); p++)
		lines++;
	assert_int_equal(lines, 3);
	assert_non_null(strstr(out, "guest poke 2"));
	assert_null(strstr(out, "guest poke 3"));

	/* Still inside the interval: nothing. */
	fake_now += 999999999ull;
	log_ratelimited(&rl, LOG_LEVEL_WARNING, "guest poke %d", 10);
	assert_string_equal(drain(), "");

	/* A new interval: the count of dropped lines, then the message. */
	fake_now += 1;
	log_ratelimited(&rl, LOG_LEVEL_WARNING, "guest poke %d", 11);
	assert_string_equal(drain(), "vblkd: warning: 8 similar messages suppressed\n"
				     "vblkd: warning: guest poke 11\n");
}

static void test_ratelimit_independent_sources(void **state)
{
	struct log_ratelimit a = LOG_RATELIMIT_INIT(1000, 1);
	struct log_ratelimit b = LOG_RATELIMIT_INIT(1000, 1);

	/* One noisy device does not silence another. */
	log_ratelimited(&a, LOG_LEVEL_WARNING, "a1");
	log_ratelimited(&a, LOG_LEVEL_WARNING, "a2");
	log_ratelimited(&b, LOG_LEVEL_WARNING, "b1");
	assert_string_equal(drain(), "vblkd: warning: a1\nvblkd: warning: b1\n");
}

static void test_ratelimit_below_level(void **state)
{
	struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 1);

	/* Messages filtered by level do not use up the budget. */
	log_ratelimited(&rl, LOG_LEVEL_DEBUG, "dbg");
	log_ratelimited(&rl, LOG_LEVEL_WARNING, "warn");
	assert_string_equal(drain(), "vblkd: warning: warn\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_stream_elsewhere, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errno_and_newline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ratelimit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ratelimit_independent_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ratelimit_below_level, setup, teardown),
	};

	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
