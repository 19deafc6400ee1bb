// SPDX-License-Identifier: GPL-2.0-only
/* Tests of `vblkd --status` rendering: the table an operator reads, from a status document. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "status.h"

static const char two_guests[] =
	"{ \"version\": \"0.1.0\", \"backend_domid\": 0, \"uptime_seconds\": 3723, \"engine\": \"aio\","
	"  \"guests\": ["
	"   { \"domid\": 3, \"name\": \"web\", \"vcpus\": 2, \"disks\": ["
	"     { \"devid\": 51712, \"vdev\": \"xvda\", \"path\": \"/srv/web.img\", \"mode\": \"rw\","
	"       \"engine\": \"aio\", \"state\": \"running\", \"features\": [\"VERSION_1\", \"FLUSH\"],"
	"       \"queues\": 2, \"read_requests\": 1204, \"read_bytes\": 4928307,"
	"       \"write_requests\": 800, \"write_bytes\": 512, \"errors\": 1, \"in_flight\": 3,"
	"       \"uptime_seconds\": 59, \"read_bytes_per_second\": 3355443, \"write_bytes_per_second\": 0,"
	"       \"latency_us\": { \"read\": { \"p50\": 180, \"p99\": 2100, \"requests\": 1204 },"
	"                     \"write\": { \"p50\": 0, \"p99\": 0, \"requests\": 0 } } },"
	"     { \"devid\": 51728, \"vdev\": null, \"path\": \"/srv/ro.img\", \"mode\": \"ro\","
	"       \"engine\": \"aio\", \"state\": \"waiting for driver\", \"features\": [],"
	"       \"queues\": 1, \"uptime_seconds\": 90000 } ] },"
	"   { \"domid\": 4, \"name\": null, \"memory_cache\": { \"mapped_pages\": 3072,"
	"       \"mappings\": 40, \"peak_mapped_pages\": 65536, \"peak_mappings\": 2048,"
	"       \"budget_waits\": 7 }, \"disks\": ["
	"     { \"devid\": 51712, \"vdev\": \"xvda\", \"path\": \"/dev/vg/db\", \"mode\": \"rw\","
	"       \"engine\": \"uring\", \"state\": \"running\", \"features\": [\"VERSION_1\"],"
	"       \"queues\": 1 } ] } ] }";

static char *render(const char *json, int *ret)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	*ret = status_print_table(f, json);
	fclose(f);
	return buf;
}

static void test_table_two_guests(void **state)
{
	char *out;
	int r;

	out = render(two_guests, &r);
	assert_int_equal(r, 0);
	assert_non_null(strstr(out, "vblkd 0.1.0: backend domain 0, up 1h02m, engine aio, "
				    "2 guests, 3 disks\n"));
	assert_non_null(strstr(out, "DOMID NAME"));
	/* One row per disk with its counters and path. */
	assert_non_null(strstr(out, "    3 web          51712 xvda   rw   aio         2      1204     4.7 MiB"));
	assert_non_null(strstr(out, "/srv/web.img\n      running; features: VERSION_1 FLUSH\n"));
	/* The last minute: a slow disk apart from a busy one. */
	assert_non_null(strstr(out, "FLUSH\n      last minute: read p50 180us p99 2.1ms 3.2 MiB/s "
				    "(1204 requests); write idle\n"));
	/* Only the first disk's document has latencies (older daemons: none). */
	assert_null(strstr(strstr(out, "last minute") + 1, "last minute"));
	assert_non_null(strstr(out, "51728 -"));
	assert_non_null(strstr(out, "1d01h  /srv/ro.img\n      waiting for driver; features: "
				    "(none negotiated yet)\n"));
	assert_non_null(strstr(out, "    4 -            51712 xvda   rw   uring"));
	assert_non_null(strstr(out, "\n      dom 4 guest memory: 12.0 MiB in 40 mappings (peak 256.0 MiB in "
				    "2048); 7 waits for the mapping budget\n"));
	assert_null(strstr(out, "dom 3 guest memory"));
	free(out);
}

/* A Xen disk's line says which way its notifies and interrupts go, and how guest memory is mapped. */
static void test_grant_usage(void **state)
{
	static const char doc[] =
		"{ \"version\": \"0.1.0\", \"guests\": [ { \"domid\": 5, \"name\": \"g\", \"disks\": ["
		"  { \"devid\": 51712, \"vdev\": \"xvda\", \"path\": \"/a.img\", \"mode\": \"rw\","
		"    \"state\": \"running\", \"features\": [\"VERSION_1\", \"ACCESS_PLATFORM\"],"
		"    \"notify\": \"ioeventfd\", \"interrupts\": \"irqfd\", \"grant_usage\": true },"
		"  { \"devid\": 51728, \"vdev\": \"xvdb\", \"path\": \"/b.img\", \"mode\": \"ro\","
		"    \"state\": \"running\", \"features\": [\"VERSION_1\"],"
		"    \"notify\": \"ioreq\", \"interrupts\": \"set_irq_level\", \"grant_usage\": false } ] } ] }";
	char *out;
	int r;

	(void)state;
	out = render(doc, &r);
	assert_int_equal(r, 0);
	assert_non_null(strstr(out, "/a.img\n      running; features: VERSION_1 ACCESS_PLATFORM; notify "
				    "ioeventfd, interrupts irqfd; guest memory: grants (grant_usage=1)\n"));
	assert_non_null(strstr(out, "/b.img\n      running; features: VERSION_1; notify ioreq, interrupts "
				    "set_irq_level; guest memory: foreign mappings\n"));
	free(out);
}

static void test_no_guests(void **state)
{
	char *out;
	int r;

	out = render("{\"version\":\"0.1.0\",\"backend_domid\":0,\"uptime_seconds\":5,"
		     "\"engine\":\"uring\",\"guests\":[]}", &r);
	assert_int_equal(r, 0);
	assert_string_equal(out, "vblkd 0.1.0: backend domain 0, up 5s, engine uring, 0 guests, 0 disks\n"
				 "no guest has a virtio disk served by this daemon\n");
	free(out);
}

/* Each IO thread: its guests, disks and exports, and the CPU time it used. */
static void test_io_threads(void **state)
{
	char *out;
	int r;

	out = render("{\"version\":\"0.1.0\",\"backend_domid\":0,\"uptime_seconds\":5,"
		     "\"engine\":\"aio\",\"guests\":[],\"io_threads\":["
		     "{\"name\":\"vblkd-io0\",\"guests\":[3,7],\"disks\":3,\"vhost_user\":0,"
		     "\"cpu_seconds\":12.345},"
		     "{\"name\":\"vblkd-io1\",\"guests\":[],\"disks\":0,\"vhost_user\":1,"
		     "\"cpu_seconds\":0.5}]}", &r);
	assert_int_equal(r, 0);
	assert_non_null(strstr(out, "\nIO THREAD    GUESTS  DISKS VHOST-USER       CPU  DOMIDS\n"
				    "vblkd-io0         2      3          0    12.35s  3,7\n"
				    "vblkd-io1         0      0          1     0.50s  -\n"));
	free(out);
}

/* A disk on another IO thread than its guest (--guest-threads) says which; one on its guest's, nothing. */
static void test_disk_on_another_thread(void **state)
{
	static const char doc[] =
		"{ \"version\": \"0.1.0\", \"guests\": [ { \"domid\": 5, \"name\": \"g\","
		"  \"io_thread\": \"vblkd-io0\", \"disks\": ["
		"  { \"devid\": 51712, \"vdev\": \"xvda\", \"path\": \"/a.img\", \"mode\": \"rw\","
		"    \"state\": \"running\", \"features\": [], \"io_thread\": \"vblkd-io0\" },"
		"  { \"devid\": 51728, \"vdev\": \"xvdb\", \"path\": \"/b.img\", \"mode\": \"rw\","
		"    \"state\": \"running\", \"features\": [], \"io_thread\": \"vblkd-io1\" } ] } ] }";
	char *out;
	int r;

	(void)state;
	out = render(doc, &r);
	assert_int_equal(r, 0);
	assert_non_null(strstr(out, "/a.img\n      running; features: (none negotiated yet)\n"));
	assert_non_null(strstr(out, "/b.img\n      running; features: (none negotiated yet); on "
				    "vblkd-io1 (its guest's accesses handed over from vblkd-io0)\n"));
	free(out);
}

static void test_not_a_status_document(void **state)
{
	char *out;
	int r;

	out = render("error: unknown command 'status'\n", &r);
	assert_int_equal(r, -EINVAL);
	free(out);
	out = render("{\"guests\": 7}", &r);
	assert_int_equal(r, -EINVAL);
	free(out);
}

static void test_units(void **state)
{
	char b[32];

	status_format_bytes(0, b, sizeof(b));
	assert_string_equal(b, "0 B");
	status_format_bytes(1023, b, sizeof(b));
	assert_string_equal(b, "1023 B");
	status_format_bytes(1536, b, sizeof(b));
	assert_string_equal(b, "1.5 KiB");
	status_format_bytes(3ull << 40, b, sizeof(b));
	assert_string_equal(b, "3.0 TiB");
	status_format_latency(7, b, sizeof(b));
	assert_string_equal(b, "7us");
	status_format_latency(2150, b, sizeof(b));
	assert_string_equal(b, "2.1ms");
	status_format_latency(1300000, b, sizeof(b));
	assert_string_equal(b, "1.3s");
	status_format_duration(0, b, sizeof(b));
	assert_string_equal(b, "0s");
	status_format_duration(61, b, sizeof(b));
	assert_string_equal(b, "1m01s");
	status_format_duration(86400 * 3 + 3600 * 5, b, sizeof(b));
	assert_string_equal(b, "3d05h");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_two_guests),
		cmocka_unit_test(test_grant_usage),
		cmocka_unit_test(test_no_guests),
		cmocka_unit_test(test_not_a_status_document),
		cmocka_unit_test(test_io_threads),
		cmocka_unit_test(test_disk_on_another_thread),
		cmocka_unit_test(test_units),
	};

	return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
