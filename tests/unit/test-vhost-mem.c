// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests of src/vhost/vhost-mem.c: a front end's regions, mapped once and looked up. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vhost-mem.h"

static int memfd(size_t size)
{
	int fd = memfd_create("guest", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	return fd;
}

/* Bytes written through one address are read through the other: one mapping of the fd. */
static void test_lookup_at_offset(void **state)
{
	struct vhost_mem m = { 0 };
	const char *why;
	int fd = memfd(3 * 4096);
	uint64_t gpa;
	char *p;

	assert_int_equal(vhost_mem_add(&m, 0x100000, 8192, 0x7f0000000000ull, 4096 + 100, fd, &why), -EINVAL);
	assert_int_equal(vhost_mem_add(&m, 0x100000, 8192, 0x7f0000000000ull, 4096, fd, &why), 0);
	assert_int_equal(pwrite(fd, "guest", 5, 4096 + 10), 5);
	p = vhost_mem_gpa(&m, 0x100000 + 10, 5);
	assert_non_null(p);
	assert_memory_equal(p, "guest", 5);
	assert_null(vhost_mem_gpa(&m, 0x100000 + 8190, 4));
	assert_null(vhost_mem_gpa(&m, 0xfffff, 2));
	assert_null(vhost_mem_gpa(&m, UINT64_MAX, 2));
	assert_int_equal(vhost_mem_ua_to_gpa(&m, 0x7f0000000010ull, 16, &gpa), 0);
	assert_int_equal(gpa, 0x100010);
	assert_int_equal(vhost_mem_ua_to_gpa(&m, 0x7f0000001ff0ull, 32, &gpa), -EFAULT);
	vhost_mem_clear(&m);
	close(fd);
}

static void test_overlaps_refused(void **state)
{
	struct vhost_mem m = { 0 };
	const char *why;
	int fd = memfd(8192);

	assert_int_equal(vhost_mem_add(&m, 0, 8192, 0x1000000, 0, fd, &why), 0);
	assert_int_equal(vhost_mem_add(&m, 4096, 8192, 0x2000000, 0, fd, &why), -EINVAL);
	assert_string_equal(why, "it overlaps another region in guest addresses");
	assert_int_equal(vhost_mem_add(&m, 0x10000, 8192, 0x1001000, 0, fd, &why), -EINVAL);
	assert_string_equal(why, "it overlaps another region in user addresses");
	assert_int_equal(m.n, 1);
	vhost_mem_clear(&m);
	close(fd);
}

static void test_remove_exact_only(void **state)
{
	struct vhost_mem m = { 0 };
	const char *why;
	int fd = memfd(8192);

	assert_int_equal(vhost_mem_add(&m, 0, 8192, 0x1000000, 0, fd, &why), 0);
	assert_int_equal(vhost_mem_remove(&m, 0, 4096, 0x1000000), -ENOENT);
	assert_int_equal(vhost_mem_remove(&m, 0, 8192, 0x1000000), 0);
	assert_null(vhost_mem_gpa(&m, 0, 1));
	close(fd);
}

static void test_slots_run_out(void **state)
{
	struct vhost_mem m = { 0 };
	const char *why;
	int fd = memfd(4096);

	for (unsigned int i = 0; i < VHOST_MEM_MAX_REGIONS; i++)
		assert_int_equal(vhost_mem_add(&m, i * 4096ull, 4096, 0x1000000 + i * 4096ull, 0, fd,
					       &why), 0);
	assert_int_equal(vhost_mem_add(&m, 1ull << 30, 4096, 1ull << 40, 0, fd, &why), -ENOSPC);
	vhost_mem_clear(&m);
	assert_int_equal(m.n, 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_at_offset),
		cmocka_unit_test(test_overlaps_refused),
		cmocka_unit_test(test_remove_exact_only),
		cmocka_unit_test(test_slots_run_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
