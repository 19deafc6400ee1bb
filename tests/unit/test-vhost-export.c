// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests of src/vhost/vhost-export.c: the --vhost-user= option as a user writes it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vhost.h"

/* Every option at once: each lands in its field. */
static void test_all_options(void **state)
{
	struct vhost_export_cfg cfg;
	const char *why;

	assert_int_equal(vhost_export_cfg_parse("/run/d.sock,path=/srv/d.img,ro,direct,queues=4", &cfg,
						&why), 0);
	assert_string_equal(cfg.socket, "/run/d.sock");
	assert_string_equal(cfg.path, "/srv/d.img");
	assert_true(cfg.read_only);
	assert_true(cfg.direct);
	assert_int_equal(cfg.queues, 4);
	vhost_export_cfg_clear(&cfg);
}

/* Without ',direct' the file goes through the page cache. */
static void test_page_cache_by_default(void **state)
{
	struct vhost_export_cfg cfg;
	const char *why;

	assert_int_equal(vhost_export_cfg_parse("/run/d.sock,path=/srv/d.img", &cfg, &why), 0);
	assert_false(cfg.direct);
	assert_false(cfg.read_only);
	vhost_export_cfg_clear(&cfg);
}

/* 'direct' takes no value: 'direct=on' is an unknown option, and the message lists the known ones. */
static void test_direct_takes_no_value(void **state)
{
	struct vhost_export_cfg cfg = { 0 };
	const char *why = NULL;

	assert_int_equal(vhost_export_cfg_parse("/run/d.sock,path=/srv/d.img,direct=on", &cfg, &why),
			 -EINVAL);
	assert_non_null(why);
	assert_non_null(strstr(why, "direct"));
	assert_null(cfg.socket);
}

static void test_path_missing(void **state)
{
	struct vhost_export_cfg cfg = { 0 };
	const char *why = NULL;

	assert_int_equal(vhost_export_cfg_parse("/run/d.sock,direct", &cfg, &why), -EINVAL);
	assert_string_equal(why, "path= is missing");
}

static void test_queues_out_of_range(void **state)
{
	struct vhost_export_cfg cfg = { 0 };
	const char *why = NULL;

	assert_int_equal(vhost_export_cfg_parse("/run/d.sock,path=/x,queues=0", &cfg, &why), -EINVAL);
	assert_non_null(why);
	assert_int_equal(vhost_export_cfg_parse("/run/d.sock,path=/x,queues=65", &cfg, &why), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_page_cache_by_default),
		cmocka_unit_test(test_direct_takes_no_value),
		cmocka_unit_test(test_path_missing),
		cmocka_unit_test(test_queues_out_of_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
