// SPDX-License-Identifier: GPL-2.0-only
/* Render the daemon's status document (JSON, parsed with json-c) as an aligned table. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <json.h>

#include "status.h"
#include "util.h"

void status_format_duration(unsigned long long s, char *buf, size_t len)
{
	if (s >= 86400)
		snprintf(buf, len, "%llud%02lluh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%lluh%02llum", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, len, "%llum%02llus", s / 60, s % 60);
	else
		snprintf(buf, len, "%llus", s);
}

void status_format_bytes(unsigned long long b, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)b;
	unsigned int u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", b);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

static unsigned long long status_u64(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	return (unsigned long long)json_object_get_int64(v);
}

static const char *status_str(struct json_object *o, const char *key, const char *def)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return def;
	return json_object_get_string(v);
}

/* "180us", "2.1ms", "1.3s". */
void status_format_latency(unsigned long long us, char *buf, size_t len)
{
	if (us >= 1000000)
		snprintf(buf, len, "%.1fs", (double)us / 1e6);
	else if (us >= 1000)
		snprintf(buf, len, "%.1fms", (double)us / 1e3);
	else
		snprintf(buf, len, "%lluus", us);
}

/* "read p50 180us p99 2.1ms 3.2 MiB/s" of the disk's last minute, or "read idle". */
static void status_print_recent_dir(FILE *out, struct json_object *k, const char *dir)
{
	struct json_object *lat, *jd;
	char key[32], p50[24], p99[24], rate[24];

	snprintf(key, sizeof(key), "%s_bytes_per_second", dir);
	if (!json_object_object_get_ex(k, "latency_us", &lat) ||
	    !json_object_object_get_ex(lat, dir, &jd) || !status_u64(jd, "requests")) {
		fprintf(out, " %s idle", dir);
		return;
	}
	status_format_latency(status_u64(jd, "p50"), p50, sizeof(p50));
	status_format_latency(status_u64(jd, "p99"), p99, sizeof(p99));
	status_format_bytes(status_u64(k, key), rate, sizeof(rate));
	fprintf(out, " %s p50 %s p99 %s %s/s (%llu requests)", dir, p50, p99, rate,
		status_u64(jd, "requests"));
}

/* @gthread: the IO thread of the disk's guest's IOREQ server, NULL if the document has none. */
static void status_print_disk(FILE *out, unsigned long long domid, const char *gname,
			      const char *gthread, struct json_object *k)
{
	char disk[40], rb[24], wb[24], up[24];
	struct json_object *feats;
	size_t i, n;

	snprintf(disk, sizeof(disk), "%llu %s", status_u64(k, "devid"), status_str(k, "vdev", "-"));
	status_format_bytes(status_u64(k, "read_bytes"), rb, sizeof(rb));
	status_format_bytes(status_u64(k, "write_bytes"), wb, sizeof(wb));
	status_format_duration(status_u64(k, "uptime_seconds"), up, sizeof(up));
	fprintf(out, "%5llu %-12.12s %-12s %-4s %-6s %6llu %9llu %11s %9llu %11s %6llu %8llu %7s  %s\n",
		domid, gname, disk, status_str(k, "mode", "?"), status_str(k, "engine", "?"),
		status_u64(k, "queues"), status_u64(k, "read_requests"), rb,
		status_u64(k, "write_requests"), wb, status_u64(k, "errors"),
		status_u64(k, "in_flight"), up, status_str(k, "path", "?"));
	fprintf(out, "      %s;", status_str(k, "state", "?"));
	if (json_object_object_get_ex(k, "features", &feats) &&
	    json_object_is_type(feats, json_type_array)) {
		n = json_object_array_length(feats);
		fprintf(out, " features:");
		for (i = 0; i < n; i++)
			fprintf(out, " %s", json_object_get_string(json_object_array_get_idx(feats, i)));
		if (!n)
			fprintf(out, " (none negotiated yet)");
	}
	/* Documents of older daemons have no fast path: nothing said. */
	if (json_object_object_get_ex(k, "notify", &feats))
		fprintf(out, "; notify %s, interrupts %s", status_str(k, "notify", "?"),
			status_str(k, "interrupts", "?"));
	/* Nor which way guest memory is mapped (grant_usage in xenstore and in the document). */
	if (json_object_object_get_ex(k, "grant_usage", &feats))
		fprintf(out, "; guest memory: %s",
			json_object_get_boolean(feats) ? "grants (grant_usage=1)" : "foreign mappings");
	/* A disk whose queues several IO threads serve (--guest-threads, --queues): which. */
	if (json_object_object_get_ex(k, "queue_threads", &feats) &&
	    json_object_is_type(feats, json_type_array)) {
		n = json_object_array_length(feats);
		fprintf(out, "; queues on");
		for (i = 0; i < n; i++)
			fprintf(out, "%s %s", i ? "," : "",
				json_object_get_string(json_object_array_get_idx(feats, i)));
	}
	/* A disk served by another IO thread than its guest's (--guest-threads): which. */
	if (gthread && strcmp(status_str(k, "io_thread", gthread), gthread))
		fprintf(out, "; on %s (its guest's accesses handed over from %s)",
			status_str(k, "io_thread", "?"), gthread);
	fputc('\n', out);
	if (status_u64(k, "adoptions"))
		fprintf(out, "      adopted from a previous vblkd %llu time%s, last at %s\n",
			status_u64(k, "adoptions"), status_u64(k, "adoptions") == 1 ? "" : "s",
			status_str(k, "last_adopted", "?"));
	/* Documents of older daemons have no latency: no line. */
	if (json_object_object_get_ex(k, "latency_us", &feats)) {
		fprintf(out, "      last minute:");
		status_print_recent_dir(out, k, "read");
		fputc(';', out);
		status_print_recent_dir(out, k, "write");
		fputc('\n', out);
	}
}

/* The guest's mapped memory against its budget (vblkd(8), "GUEST MEMORY"). */
static void status_print_memory(FILE *out, struct json_object *g)
{
	struct json_object *mc;
	char now[24], peak[24];

	if (!json_object_object_get_ex(g, "memory_cache", &mc))
		return;
	status_format_bytes(status_u64(mc, "mapped_pages") * 4096, now, sizeof(now));
	status_format_bytes(status_u64(mc, "peak_mapped_pages") * 4096, peak, sizeof(peak));
	fprintf(out, "      dom %llu guest memory: %s in %llu mappings (peak %s in %llu); "
		"%llu waits for the mapping budget\n",
		status_u64(g, "domid"), now, status_u64(mc, "mappings"), peak,
		status_u64(mc, "peak_mappings"), status_u64(mc, "budget_waits"));
}

/* The vhost-user exports (vblkd(8), VHOST-USER), after the Xen guests. */
static void status_print_vhost(FILE *out, struct json_object *root)
{
	struct json_object *vu, *feats;
	size_t n;

	if (!json_object_object_get_ex(root, "vhost_user", &vu) ||
	    !json_object_is_type(vu, json_type_array) || !(n = json_object_array_length(vu)))
		return;
	fprintf(out, "\n%-32s %-4s %-6s %6s %9s %11s %9s %11s %6s %8s %7s  %s\n", "VHOST-USER SOCKET",
		"MODE", "ENGINE", "QUEUES", "READS", "READ", "WRITES", "WRITTEN", "ERRORS", "INFLIGHT",
		"UPTIME", "PATH");
	for (size_t i = 0; i < n; i++) {
		struct json_object *k = json_object_array_get_idx(vu, i);
		char rb[24], wb[24], up[24];

		status_format_bytes(status_u64(k, "read_bytes"), rb, sizeof(rb));
		status_format_bytes(status_u64(k, "write_bytes"), wb, sizeof(wb));
		status_format_duration(status_u64(k, "uptime_seconds"), up, sizeof(up));
		fprintf(out, "%-32s %-4s %-6s %6llu %9llu %11s %9llu %11s %6llu %8llu %7s  %s\n",
			status_str(k, "socket", "?"), status_str(k, "mode", "?"),
			status_str(k, "engine", "?"), status_u64(k, "queues"),
			status_u64(k, "read_requests"), rb, status_u64(k, "write_requests"), wb,
			status_u64(k, "errors"), status_u64(k, "in_flight"), up,
			status_str(k, "path", "?"));
		fprintf(out, "      %s; %llu front end%s so far, %llu request%s taken again;",
			status_str(k, "state", "?"), status_u64(k, "connections"),
			status_u64(k, "connections") == 1 ? "" : "s", status_u64(k, "resubmitted"),
			status_u64(k, "resubmitted") == 1 ? "" : "s");
		if (json_object_object_get_ex(k, "features", &feats) &&
		    json_object_is_type(feats, json_type_array) && json_object_array_length(feats)) {
			fprintf(out, " features:");
			for (size_t j = 0; j < json_object_array_length(feats); j++)
				fprintf(out, " %s",
					json_object_get_string(json_object_array_get_idx(feats, j)));
		}
		fputc('\n', out);
	}
}

/* The IO threads (vblkd(8), --io-threads): what each serves and the CPU time it used. */
static void status_print_threads(FILE *out, struct json_object *root)
{
	struct json_object *ts, *t, *doms;
	size_t i, j, n;

	if (!json_object_object_get_ex(root, "io_threads", &ts) ||
	    !json_object_is_type(ts, json_type_array) || !(n = json_object_array_length(ts)))
		return;
	fprintf(out, "\n%-12s %6s %6s %10s %9s  %s\n", "IO THREAD", "GUESTS", "DISKS", "VHOST-USER",
		"CPU", "DOMIDS");
	for (i = 0; i < n; i++) {
		struct json_object *cpu;

		t = json_object_array_get_idx(ts, i);
		if (!json_object_object_get_ex(t, "guests", &doms) ||
		    !json_object_is_type(doms, json_type_array))
			continue;
		json_object_object_get_ex(t, "cpu_seconds", &cpu);
		fprintf(out, "%-12s %6zu %6llu %10llu %8.2fs ", status_str(t, "name", "?"),
			json_object_array_length(doms), status_u64(t, "disks"),
			status_u64(t, "vhost_user"), cpu ? json_object_get_double(cpu) : 0.0);
		for (j = 0; j < json_object_array_length(doms); j++)
			fprintf(out, "%s%d", j ? "," : " ",
				json_object_get_int(json_object_array_get_idx(doms, j)));
		fprintf(out, "%s\n", j ? "" : " -");
	}
}

int status_print_table(FILE *out, const char *json)
{
	struct json_object *root = json_tokener_parse(json), *guests, *xen = NULL;
	unsigned long long ndisks = 0;
	size_t i, j, ng;
	char up[24];

	if (!root || !json_object_object_get_ex(root, "guests", &guests) ||
	    !json_object_is_type(guests, json_type_array)) {
		json_object_put(root);
		return -EINVAL;
	}
	ng = json_object_array_length(guests);
	for (i = 0; i < ng; i++) {
		struct json_object *disks;

		if (json_object_object_get_ex(json_object_array_get_idx(guests, i), "disks", &disks))
			ndisks += json_object_array_length(disks);
	}
	status_format_duration(status_u64(root, "uptime_seconds"), up, sizeof(up));
	if (json_object_object_get_ex(root, "xen", &xen) && !json_object_get_boolean(xen))
		fprintf(out, "vblkd %s: no Xen (vhost-user only), up %s, engine %s\n",
			status_str(root, "version", "?"), up, status_str(root, "engine", "?"));
	else
		fprintf(out, "vblkd %s: backend domain %llu, up %s, engine %s, %zu guest%s, "
			"%llu disk%s\n", status_str(root, "version", "?"),
			status_u64(root, "backend_domid"), up, status_str(root, "engine", "?"), ng,
			ng == 1 ? "" : "s", ndisks, ndisks == 1 ? "" : "s");
	if (status_u64(root, "poll_max_us"))
		fprintf(out, "busy polling up to %llu us before sleeping (now %llu us); %llu times it "
			"found work\n", status_u64(root, "poll_max_us"),
			status_u64(root, "poll_window_us"), status_u64(root, "poll_hits"));
	if (!ng) {
		if (!xen || json_object_get_boolean(xen))
			fprintf(out, "no guest has a virtio disk served by this daemon\n");
		status_print_vhost(out, root);
		status_print_threads(out, root);
		json_object_put(root);
		return 0;
	}
	fprintf(out, "\n%5s %-12s %-12s %-4s %-6s %6s %9s %11s %9s %11s %6s %8s %7s  %s\n", "DOMID",
		"NAME", "DISK", "MODE", "ENGINE", "QUEUES", "READS", "READ", "WRITES", "WRITTEN",
		"ERRORS", "INFLIGHT", "UPTIME", "PATH");
	for (i = 0; i < ng; i++) {
		struct json_object *g = json_object_array_get_idx(guests, i), *disks;

		if (!json_object_object_get_ex(g, "disks", &disks))
			continue;
		for (j = 0; j < json_object_array_length(disks); j++)
			status_print_disk(out, status_u64(g, "domid"), status_str(g, "name", "-"),
					  status_str(g, "io_thread", NULL),
					  json_object_array_get_idx(disks, j));
		status_print_memory(out, g);
		if (json_object_object_get_ex(g, "fast_path", &disks)) {
			const char *why = status_str(g, "fast_path_why", "");

			fprintf(out, "      dom %llu fast path: %s%s%s%s\n", status_u64(g, "domid"),
				status_str(g, "fast_path", "?"), *why ? " (" : "", why, *why ? ")" : "");
		}
	}
	status_print_vhost(out, root);
	status_print_threads(out, root);
	json_object_put(root);
	return 0;
}
