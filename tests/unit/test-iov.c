// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the iovec copy helpers: skips across segments, limits, empty segments without a base. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "iov.h"

static void test_to_buf_skips_across_segments(void **state)
{
	char a[] = "abc", b[] = "defgh", c[] = "ij", out[16];
	struct iovec iov[] = { { a, 3 }, { NULL, 0 }, { b, 5 }, { c, 2 } };

	memset(out, 0, sizeof(out));
	/* Skip the first segment and part of the second real one. */
	assert_int_equal(iov_to_buf(iov, 4, 4, out, sizeof(out)), 6);
	assert_string_equal(out, "efghij");
	/* A limit shorter than what is there. */
	memset(out, 0, sizeof(out));
	assert_int_equal(iov_to_buf(iov, 4, 1, out, 4), 4);
	assert_string_equal(out, "bcde");
	/* Skipping past the end copies nothing. */
	assert_int_equal(iov_to_buf(iov, 4, 10, out, sizeof(out)), 0);
}

static void test_from_buf_fills_in_order(void **state)
{
	char a[3], b[4], c[8];
	struct iovec iov[] = { { a, 3 }, { NULL, 0 }, { b, 4 }, { c, 8 } };

	/* The empty segment has no base: it must be passed over, not copied to. */
	assert_int_equal(iov_from_buf(iov, 4, "0123456789", 9), 9);
	assert_memory_equal(a, "012", 3);
	assert_memory_equal(b, "3456", 4);
	assert_memory_equal(c, "78", 2);
	/* More source than room: only the room is filled. */
	assert_int_equal(iov_from_buf(iov, 3, "abcdefghijklmnop", 16), 7);
	assert_memory_equal(b, "defg", 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_to_buf_skips_across_segments),
		cmocka_unit_test(test_from_buf_fills_in_order),
	};

	return cmocka_run_group_tests_name("iov", tests, NULL, NULL);
}
