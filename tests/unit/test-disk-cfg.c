// SPDX-License-Identifier: GPL-2.0-only
/* Tests of xenstore disk-directory parsing: libxl's layout accepted, every bad value named. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "disk-cfg.h"

/* The keys libxl 4.17 wrote for a first disk (../shared/xen-qemu/README.md). */
struct kv {
	const char *key;
	const char *value;
};

#define MAX_KEYS 24

struct dir {
	struct kv kv[MAX_KEYS];
};

static const struct dir libxl_dir = { {
	{ "frontend", "/local/domain/1/device/virtio_disk/51712" },
	{ "params", "/var/disk.img" },
	{ "frontend-id", "1" },
	{ "online", "1" },
	{ "removable", "0" },
	{ "bootable", "1" },
	{ "state", "1" },
	{ "dev", "xvda" },
	{ "type", "standalone" },
	{ "mode", "w" },
	{ "device-type", "disk" },
	{ "discard-enable", "1" },
	{ "specification", "virtio" },
	{ "transport", "mmio" },
	{ "base", "33554432" },
	{ "irq", "33" },
} };

static const char *get(void *ctx, const char *key)
{
	struct dir *d = ctx;

	for (int i = 0; i < MAX_KEYS && d->kv[i].key; i++)
		if (!strcmp(d->kv[i].key, key))
			return d->kv[i].value;
	return NULL;
}

/* Set @key to @value in @d, adding it if absent; NULL removes it. */
static void set(struct dir *d, const char *key, const char *value)
{
	int i;

	for (i = 0; i < MAX_KEYS && d->kv[i].key; i++) {
		if (!strcmp(d->kv[i].key, key)) {
			if (value) {
				d->kv[i].value = value;
			} else {
				memmove(&d->kv[i], &d->kv[i + 1],
					sizeof(d->kv[0]) * (MAX_KEYS - 1 - (size_t)i));
				d->kv[MAX_KEYS - 1].key = NULL;
			}
			return;
		}
	}
	assert_true(i < MAX_KEYS);
	if (value) {
		d->kv[i].key = key;
		d->kv[i].value = value;
	}
}

/* A copy of libxl's directory with @key set to @value (NULL removes it). */
static struct dir with(const char *key, const char *value)
{
	struct dir d = libxl_dir;

	set(&d, key, value);
	return d;
}

/* Parse @d and expect it to fail on @key with @value, the reason containing @why. */
static void expect_bad(struct dir d, const char *key, const char *value, const char *why)
{
	struct disk_cfg cfg;
	struct disk_cfg_error err = { 0 };

	assert_int_equal(disk_cfg_parse(3, 51712, get, &d, &cfg, &err), -EINVAL);
	assert_string_equal(err.key, key);
	assert_string_equal(err.value, value);
	assert_non_null(strstr(err.reason, why));
}

static void test_libxl_layout(void **state)
{
	struct dir d = libxl_dir;
	struct disk_cfg cfg;
	struct disk_cfg_error err;

	assert_int_equal(disk_cfg_parse(1, 51712, get, &d, &cfg, &err), 0);
	assert_int_equal(cfg.domid, 1);
	assert_int_equal(cfg.devid, 51712);
	assert_string_equal(cfg.path, "/var/disk.img");
	assert_string_equal(cfg.vdev, "xvda");
	assert_false(cfg.read_only);
	assert_false(cfg.cdrom);
	assert_true(cfg.discard);
	assert_false(cfg.direct_io_safe);
	assert_false(cfg.grants);
	assert_int_equal(cfg.base, 0x2000000);
	assert_int_equal(cfg.irq, 33);
	disk_cfg_clear(&cfg);
	disk_cfg_clear(&cfg);	/* idempotent */
}

static void test_second_disk_read_only(void **state)
{
	struct dir d = with("mode", "r");
	struct disk_cfg cfg;
	struct disk_cfg_error err;

	/* libxl's second disk (access=ro): the next window and SPI. */
	set(&d, "base", "33554944");
	set(&d, "irq", "34");
	assert_int_equal(disk_cfg_parse(1, 51728, get, &d, &cfg, &err), 0);
	assert_true(cfg.read_only);
	assert_int_equal(cfg.base, 0x2000200);
	assert_int_equal(cfg.irq, 34);
	disk_cfg_clear(&cfg);
}

static void test_hex_base_and_options(void **state)
{
	struct dir d = with("base", "0x20FFE00");
	struct disk_cfg cfg;
	struct disk_cfg_error err;

	set(&d, "device-type", "cdrom");
	set(&d, "discard-enable", "0");
	set(&d, "direct-io-safe", "1");
	set(&d, "grant_usage", "1");
	assert_int_equal(disk_cfg_parse(1, 51712, get, &d, &cfg, &err), 0);
	assert_int_equal(cfg.base, 0x20ffe00);	/* the last window of the range */
	assert_true(cfg.cdrom);
	assert_true(cfg.read_only);	/* a cdrom is never written */
	assert_false(cfg.discard);
	assert_true(cfg.direct_io_safe);
	assert_true(cfg.grants);
	disk_cfg_clear(&cfg);
}

static void test_discard_defaults_on(void **state)
{
	struct dir d = with("discard-enable", NULL);
	struct disk_cfg cfg;
	struct disk_cfg_error err;

	assert_int_equal(disk_cfg_parse(1, 51712, get, &d, &cfg, &err), 0);
	assert_true(cfg.discard);
	disk_cfg_clear(&cfg);
}

static void test_format_prefix_raw(void **state)
{
	struct dir d = with("params", "raw:/srv/g.img");
	struct disk_cfg cfg;
	struct disk_cfg_error err;

	assert_int_equal(disk_cfg_parse(1, 51712, get, &d, &cfg, &err), 0);
	assert_string_equal(cfg.path, "/srv/g.img");
	disk_cfg_clear(&cfg);
}

static void test_path_with_colon(void **state)
{
	struct dir d = with("params", "/srv/a:b.img");
	struct disk_cfg cfg;
	struct disk_cfg_error err;

	assert_int_equal(disk_cfg_parse(1, 51712, get, &d, &cfg, &err), 0);
	assert_string_equal(cfg.path, "/srv/a:b.img");
	disk_cfg_clear(&cfg);
}

static void test_missing_params(void **state)
{
	expect_bad(with("params", NULL), "params", "", "missing");
}

static void test_empty_params(void **state)
{
	expect_bad(with("params", ""), "params", "", "empty path");
}

static void test_relative_params(void **state)
{
	expect_bad(with("params", "disk.img"), "params", "disk.img", "not an absolute path");
}

static void test_qcow2_params(void **state)
{
	expect_bad(with("params", "qcow2:/srv/g.qcow2"), "params", "qcow2:/srv/g.qcow2",
		   "unsupported format");
}

static void test_prefix_without_path(void **state)
{
	expect_bad(with("params", "raw:"), "params", "raw:", "empty path");
}

static void test_missing_mode(void **state)
{
	expect_bad(with("mode", NULL), "mode", "", "missing");
}

static void test_bad_mode(void **state)
{
	expect_bad(with("mode", "rw"), "mode", "rw", "expected r or w");
}

static void test_bad_device_type(void **state)
{
	expect_bad(with("device-type", "floppy"), "device-type", "floppy", "disk or cdrom");
}

static void test_bad_discard_enable(void **state)
{
	expect_bad(with("discard-enable", "yes"), "discard-enable", "yes", "0 or 1");
}

static void test_bad_direct_io_safe(void **state)
{
	expect_bad(with("direct-io-safe", "2"), "direct-io-safe", "2", "0 or 1");
}

static void test_missing_base(void **state)
{
	expect_bad(with("base", NULL), "base", "", "missing");
}

static void test_base_misaligned(void **state)
{
	expect_bad(with("base", "33554433"), "base", "33554433", "aligned");
}

static void test_base_below_window(void **state)
{
	expect_bad(with("base", "0x1000"), "base", "0x1000", "outside");
}

static void test_base_past_window(void **state)
{
	/* 0x2100000 is the first address after the window. */
	expect_bad(with("base", "34603008"), "base", "34603008", "outside");
}

static void test_base_overflow(void **state)
{
	expect_bad(with("base", "99999999999999999999999"), "base", "99999999999999999999999",
		   "too large");
	expect_bad(with("base", "0x10000000000000000"), "base", "0x10000000000000000", "too large");
}

static void test_base_not_a_number(void **state)
{
	expect_bad(with("base", "-33554432"), "base", "-33554432", "not a decimal");
	expect_bad(with("base", " 33554432"), "base", " 33554432", "not a decimal");
	expect_bad(with("base", "33554432x"), "base", "33554432x", "not a decimal");
	expect_bad(with("base", "0x"), "base", "0x", "not a decimal");
	expect_bad(with("base", ""), "base", "", "not a decimal");
}

static void test_missing_irq(void **state)
{
	expect_bad(with("irq", NULL), "irq", "", "missing");
}

static void test_irq_out_of_range(void **state)
{
	expect_bad(with("irq", "32"), "irq", "32", "33..43");
	expect_bad(with("irq", "44"), "irq", "44", "33..43");
	expect_bad(with("irq", "4294967329"), "irq", "4294967329", "33..43");
}

static void test_irq_not_a_number(void **state)
{
	expect_bad(with("irq", "thirty"), "irq", "thirty", "not a number");
}

static void test_long_value_truncated(void **state)
{
	char longpath[300];
	struct dir d;
	struct disk_cfg cfg;
	struct disk_cfg_error err;

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	d = with("params", longpath);
	assert_int_equal(disk_cfg_parse(1, 51712, get, &d, &cfg, &err), -EINVAL);
	assert_string_equal(err.key, "params");
	assert_int_equal(strlen(err.value), sizeof(err.value) - 1);
}

static void test_parse_u64(void **state)
{
	uint64_t v = 7;

	assert_int_equal(disk_cfg_parse_u64("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(disk_cfg_parse_u64("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(disk_cfg_parse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(disk_cfg_parse_u64("0xffffffffffffffff", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(disk_cfg_parse_u64("0xg", &v), -EINVAL);
	assert_int_equal(disk_cfg_parse_u64("1e3", &v), -EINVAL);
	assert_int_equal(disk_cfg_parse_u64(NULL, &v), -EINVAL);
	assert_int_equal(v, UINT64_MAX);	/* untouched on failure */
}

/* Two disks of one guest: libxl's first two (0x2000000 irq 33, 0x2000200 irq 34) fit side by side. */
static void test_clash_libxl_neighbours(void **state)
{
	assert_int_equal(disk_cfg_clash(0x2000000, 33, 0x2000200, 34), 0);
	assert_int_equal(disk_cfg_clash(0x2000200, 34, 0x2000000, 33), 0);
}

static void test_clash_same_window(void **state)
{
	assert_int_equal(disk_cfg_clash(0x2000000, 33, 0x2000000, 34), -EADDRINUSE);
}

/* Not 0x200-aligned (the parser refuses that), but the check does not rely on it. */
static void test_clash_partly_overlapping_window(void **state)
{
	assert_int_equal(disk_cfg_clash(0x2000000, 33, 0x20001ff, 34), -EADDRINUSE);
	assert_int_equal(disk_cfg_clash(0x20001ff, 34, 0x2000000, 33), -EADDRINUSE);
}

static void test_clash_same_irq(void **state)
{
	assert_int_equal(disk_cfg_clash(0x2000000, 33, 0x2000200, 33), -EBUSY);
	assert_int_equal(disk_cfg_clash(0x2000200, 33, 0x2000000, 33), -EBUSY);
}

/* Both at once: the window is named first. */
static void test_clash_window_and_irq(void **state)
{
	assert_int_equal(disk_cfg_clash(0x2000000, 33, 0x2000000, 33), -EADDRINUSE);
}

/* Windows at the ends of the address space: no end address wraps around into a false overlap. */
static void test_clash_no_overflow(void **state)
{
	assert_int_equal(disk_cfg_clash(0, 33, UINT64_MAX - 0x100, 34), 0);
	assert_int_equal(disk_cfg_clash(UINT64_MAX - 0x100, 34, 0, 33), 0);
	assert_int_equal(disk_cfg_clash(UINT64_MAX - 0x100, 34, UINT64_MAX - 0x300, 33), 0);
	assert_int_equal(disk_cfg_clash(UINT64_MAX - 0x100, 34, UINT64_MAX - 0x200, 33), -EADDRINUSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_libxl_layout),
		cmocka_unit_test(test_second_disk_read_only),
		cmocka_unit_test(test_hex_base_and_options),
		cmocka_unit_test(test_discard_defaults_on),
		cmocka_unit_test(test_format_prefix_raw),
		cmocka_unit_test(test_path_with_colon),
		cmocka_unit_test(test_missing_params),
		cmocka_unit_test(test_empty_params),
		cmocka_unit_test(test_relative_params),
		cmocka_unit_test(test_qcow2_params),
		cmocka_unit_test(test_prefix_without_path),
		cmocka_unit_test(test_missing_mode),
		cmocka_unit_test(test_bad_mode),
		cmocka_unit_test(test_bad_device_type),
		cmocka_unit_test(test_bad_discard_enable),
		cmocka_unit_test(test_bad_direct_io_safe),
		cmocka_unit_test(test_missing_base),
		cmocka_unit_test(test_base_misaligned),
		cmocka_unit_test(test_base_below_window),
		cmocka_unit_test(test_base_past_window),
		cmocka_unit_test(test_base_overflow),
		cmocka_unit_test(test_base_not_a_number),
		cmocka_unit_test(test_missing_irq),
		cmocka_unit_test(test_irq_out_of_range),
		cmocka_unit_test(test_irq_not_a_number),
		cmocka_unit_test(test_long_value_truncated),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_clash_libxl_neighbours),
		cmocka_unit_test(test_clash_same_window),
		cmocka_unit_test(test_clash_partly_overlapping_window),
		cmocka_unit_test(test_clash_same_irq),
		cmocka_unit_test(test_clash_window_and_irq),
		cmocka_unit_test(test_clash_no_overflow),
	};

	return cmocka_run_group_tests_name("disk-cfg", tests, NULL, NULL);
}
