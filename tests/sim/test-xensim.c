// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the Xen simulator itself, through the libxen* API of libxensim and its control API. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xen/hvm/dm_op.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

#include "xensim.h"

#define RAM_GFN (XSIM_GUEST_RAM_BASE >> 12)
#define DISK_BASE XSIM_VIRTIO_MMIO_BASE
#define DISK_IRQ 33

static struct xensim_proc sim_proc;
static struct xensim *sim;
static char disk_path[128];

static unsigned int count_fds(void)
{
	struct dirent *e;
	unsigned int n = 0;
	DIR *d = opendir("/proc/self/fd");

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;
}

static bool maps_contain(const char *what)
{
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "re");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, what))
			found = true;
	fclose(f);
	return found;
}

static int group_setup(void **state)
{
	static const char *const args[] = { "--timeout", "1000", "--libxl-timeout", "3000",
					    "--log-level", "err", NULL };
	int fd;

	if (xensim_spawn(XENSIM_BIN, args, &sim_proc) < 0)
		return -1;
	if (xensim_connect(&sim) < 0)
		return -1;
	snprintf(disk_path, sizeof(disk_path), "%s/disk.img", sim_proc.dir);
	fd = open(disk_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		return -1;
	close(fd);
	return 0;
}

static int group_teardown(void **state)
{
	int st;

	xensim_disconnect(sim);
	unlink(disk_path);
	st = xensim_reap(&sim_proc);
	/* The simulator must exit cleanly (no sanitizer report, no crash). */
	return st == 0 ? 0 : -1;
}

static uint32_t create(const char *spec)
{
	uint32_t domid = 0;

	assert_int_equal(xensim_domain_create(sim, spec, XSIM_CREATE_NO_WAIT, &domid, NULL), 0);
	assert_true(domid > 0);
	return domid;
}

static uint32_t create_with_disk(unsigned int vcpus)
{
	char spec[256];

	snprintf(spec, sizeof(spec), "vcpus=%u,mem=4M,disk=%s:rw", vcpus, disk_path);
	return create(spec);
}

static void test_fmap_sees_guest_bytes(void **state)
{
	xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
	xen_pfn_t gfns[2] = { RAM_GFN + 1, RAM_GFN + 3 };
	uint8_t buf[16];
	uint32_t domid = create("vcpus=1,mem=4M");
	int errs[2] = { -1, -1 };
	uint8_t *p;

	assert_non_null(fm);
	assert_int_equal(xensim_guest_write(sim, domid, XSIM_GUEST_RAM_BASE + 0x1000 + 100,
					    "guest one", 9), 0);
	assert_int_equal(xensim_guest_write(sim, domid, XSIM_GUEST_RAM_BASE + 0x3000,
					    "guest three", 11), 0);
	p = xenforeignmemory_map(fm, domid, PROT_READ | PROT_WRITE, 2, gfns, errs);
	assert_non_null(p);
	assert_int_equal(errs[0], 0);
	assert_int_equal(errs[1], 0);
	/* Two non-adjacent guest frames, one contiguous mapping. */
	assert_memory_equal(p + 100, "guest one", 9);
	assert_memory_equal(p + 4096, "guest three", 11);
	/* And the guest sees what dom0 writes. */
	memcpy(p + 4096 + 200, "from dom0", 9);
	assert_int_equal(xensim_guest_read(sim, domid, XSIM_GUEST_RAM_BASE + 0x3000 + 200, buf, 9), 0);
	assert_memory_equal(buf, "from dom0", 9);
	assert_int_equal(xenforeignmemory_unmap(fm, p, 2), 0);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
	xenforeignmemory_close(fm);
}

static void test_fmap_outside_ram_fails(void **state)
{
	xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
	/* 4 MiB of RAM: frame 1024 is the first past its end; 0x10 is below RAM. */
	xen_pfn_t gfns[3] = { RAM_GFN, RAM_GFN + 1024, 0x10 };
	uint32_t domid = create("vcpus=1,mem=4M");
	int errs[3] = { 1, 1, 1 };
	void *p;

	assert_non_null(fm);
	p = xenforeignmemory_map(fm, domid, PROT_READ, 3, gfns, errs);
	assert_non_null(p);
	assert_int_equal(errs[0], 0);
	assert_int_equal(errs[1], -EINVAL);
	assert_int_equal(errs[2], -EINVAL);
	xenforeignmemory_unmap(fm, p, 3);
	/* Without an error array, one bad frame fails the whole call. */
	errno = 0;
	assert_null(xenforeignmemory_map(fm, domid, PROT_READ, 3, gfns, NULL));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
	xenforeignmemory_close(fm);
}

static void test_fmap_dead_domain_fails(void **state)
{
	xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
	xen_pfn_t gfn = RAM_GFN;
	uint32_t domid = create("vcpus=1,mem=4M");
	int err = 0;

	assert_non_null(fm);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
	errno = 0;
	assert_null(xenforeignmemory_map(fm, domid, PROT_READ, 1, &gfn, &err));
	assert_int_equal(errno, ESRCH);
	errno = 0;
	assert_null(xenforeignmemory_map(fm, 31000, PROT_READ, 1, &gfn, NULL));
	assert_int_equal(errno, ESRCH);
	xenforeignmemory_close(fm);
}

/* The dom0 side of one IOREQ server, set up in xen-notes.md's order. */
struct iosrv {
	xendevicemodel_handle *dm;
	xenforeignmemory_handle *fm;
	xenevtchn_handle *xce;
	xenforeignmemory_resource_handle *res;
	shared_iopage_t *page;
	ioservid_t id;
	uint32_t domid;
	unsigned int nvcpus;
	evtchn_port_t local[8];
	bool mapped;
};

static void iosrv_up(struct iosrv *s, uint32_t domid, bool map_range)
{
	unsigned int i;
	void *addr = NULL;

	memset(s, 0, sizeof(*s));
	s->domid = domid;
	s->dm = xendevicemodel_open(NULL, 0);
	s->fm = xenforeignmemory_open(NULL, 0);
	s->xce = xenevtchn_open(NULL, 0);
	assert_non_null(s->dm);
	assert_non_null(s->fm);
	assert_non_null(s->xce);
	assert_int_equal(xendevicemodel_nr_vcpus(s->dm, domid, &s->nvcpus), 0);
	assert_int_equal(xendevicemodel_create_ioreq_server(s->dm, domid, 0, &s->id), 0);
	s->res = xenforeignmemory_map_resource(s->fm, domid, XENMEM_resource_ioreq_server, s->id,
					       XENMEM_resource_ioreq_server_frame_ioreq(0), 1,
					       &addr, PROT_READ | PROT_WRITE, 0);
	assert_non_null(s->res);
	s->page = addr;
	assert_int_equal(xendevicemodel_set_ioreq_server_state(s->dm, domid, s->id, 1), 0);
	for (i = 0; i < s->nvcpus; i++) {
		int p = xenevtchn_bind_interdomain(s->xce, domid, s->page->vcpu_ioreq[i].vp_eport);

		assert_true(p > 0);
		s->local[i] = (evtchn_port_t)p;
	}
	if (map_range) {
		assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(
					 s->dm, domid, s->id, XEN_DMOP_IO_RANGE_MEMORY, DISK_BASE,
					 DISK_BASE + 0x1ff), 0);
		s->mapped = true;
	}
}

static void iosrv_down(struct iosrv *s, bool domain_alive)
{
	unsigned int i;

	if (domain_alive && s->mapped)
		assert_int_equal(xendevicemodel_unmap_io_range_from_ioreq_server(
					 s->dm, s->domid, s->id, XEN_DMOP_IO_RANGE_MEMORY,
					 DISK_BASE, DISK_BASE + 0x1ff), 0);
	for (i = 0; i < s->nvcpus; i++)
		assert_int_equal(xenevtchn_unbind(s->xce, s->local[i]), 0);
	if (domain_alive)
		assert_int_equal(xendevicemodel_set_ioreq_server_state(s->dm, s->domid, s->id, 0), 0);
	assert_int_equal(xenforeignmemory_unmap_resource(s->fm, s->res), 0);
	if (domain_alive)
		assert_int_equal(xendevicemodel_destroy_ioreq_server(s->dm, s->domid, s->id), 0);
	xenevtchn_close(s->xce);
	xenforeignmemory_close(s->fm);
	xendevicemodel_close(s->dm);
}

static void test_evtchn_round_trip(void **state)
{
	uint32_t domid = create("vcpus=2,mem=4M");
	struct pollfd pfd;
	struct iosrv s;
	evtchn_port_t gport;

	iosrv_up(&s, domid, false);
	assert_int_equal(s.nvcpus, 2);
	assert_int_not_equal(s.page->vcpu_ioreq[0].vp_eport, s.page->vcpu_ioreq[1].vp_eport);
	gport = s.page->vcpu_ioreq[1].vp_eport;
	/*
	 * Xen's evtchn_bind_interdomain() sets every new binding pending (it may
	 * have missed events while unbound): each port once, then nothing.
	 */
	pfd = (struct pollfd){ .fd = xenevtchn_fd(s.xce), .events = POLLIN };
	{
		int a = xenevtchn_pending(s.xce), b = xenevtchn_pending(s.xce);

		assert_true((a == (int)s.local[0] && b == (int)s.local[1]) ||
			    (a == (int)s.local[1] && b == (int)s.local[0]));
	}
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(xenevtchn_unmask(s.xce, s.local[0]), 0);
	assert_int_equal(xenevtchn_unmask(s.xce, s.local[1]), 0);
	assert_int_equal(poll(&pfd, 1, 0), 0);
	/* Guest -> dom0: the handle's fd becomes readable and names the local port. */
	assert_int_equal(xensim_guest_notify(sim, domid, gport), 0);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(xenevtchn_pending(s.xce), (int)s.local[1]);
	/* Masked until unmasked: the fd is quiet meanwhile. */
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(xenevtchn_unmask(s.xce, s.local[1]), 0);
	/* Made non-blocking, like a daemon draining it: EAGAIN once nothing is pending. */
	assert_int_equal(fcntl(xenevtchn_fd(s.xce), F_SETFL,
			       fcntl(xenevtchn_fd(s.xce), F_GETFL) | O_NONBLOCK), 0);
	errno = 0;
	assert_int_equal(xenevtchn_pending(s.xce), -1);
	assert_int_equal(errno, EAGAIN);
	/* Dom0 -> guest. */
	assert_int_equal(xenevtchn_notify(s.xce, s.local[1]), 0);
	assert_int_equal(xensim_guest_wait_event(sim, domid, gport, 5000), 0);
	/* Nothing pending for vCPU 0's port. */
	assert_int_equal(xensim_guest_wait_event(sim, domid, s.page->vcpu_ioreq[0].vp_eport, 20),
			 -ETIMEDOUT);
	iosrv_down(&s, true);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
}

static char **next_watch(struct xs_handle *xs)
{
	struct pollfd pfd = { .fd = xs_fileno(xs), .events = POLLIN };
	unsigned int n;

	assert_int_equal(poll(&pfd, 1, 5000), 1);
	return xs_read_watch(xs, &n);
}

static void test_xs_watch_fires_on_write_and_rm(void **state)
{
	struct xs_handle *xs = xs_open(0);
	char **ev;

	assert_non_null(xs);
	assert_true(xs_watch(xs, "/test/w", "tok"));
	/* A new watch fires once with its own path. */
	ev = next_watch(xs);
	assert_string_equal(ev[XS_WATCH_PATH], "/test/w");
	assert_string_equal(ev[XS_WATCH_TOKEN], "tok");
	free(ev);
	assert_true(xs_write(xs, XBT_NULL, "/test/w/a/b", "1", 1));
	ev = next_watch(xs);
	assert_string_equal(ev[XS_WATCH_PATH], "/test/w/a/b");
	assert_string_equal(ev[XS_WATCH_TOKEN], "tok");
	free(ev);
	/* Unrelated writes do not fire. */
	assert_true(xs_write(xs, XBT_NULL, "/test/other", "x", 1));
	errno = 0;
	assert_null(xs_check_watch(xs));
	assert_int_equal(errno, EAGAIN);
	/* A transaction's writes fire at commit, not before. */
	{
		xs_transaction_t t = xs_transaction_start(xs);

		assert_true(xs_write(xs, t, "/test/w/tx", "1", 1));
		errno = 0;
		assert_null(xs_check_watch(xs));
		assert_int_equal(errno, EAGAIN);
		assert_true(xs_transaction_end(xs, t, false));
		ev = next_watch(xs);
		assert_string_equal(ev[XS_WATCH_PATH], "/test/w/tx");
		free(ev);
	}
	assert_true(xs_rm(xs, XBT_NULL, "/test/w"));
	ev = next_watch(xs);
	assert_string_equal(ev[XS_WATCH_PATH], "/test/w");
	free(ev);
	assert_true(xs_unwatch(xs, "/test/w", "tok"));
	assert_true(xs_write(xs, XBT_NULL, "/test/w", "2", 1));
	assert_null(xs_check_watch(xs));
	assert_true(xs_rm(xs, XBT_NULL, "/test"));
	xs_close(xs);
}

static void test_xs_watch_on_child_fires_on_parent_rm(void **state)
{
	struct xs_handle *xs = xs_open(0);
	char **ev;

	assert_non_null(xs);
	assert_true(xs_write(xs, XBT_NULL, "/test2/dev/state", "1", 1));
	assert_true(xs_watch(xs, "/test2/dev/state", "st"));
	free(next_watch(xs));
	/* A domain's nodes vanish with their parent: the watch on the child fires. */
	assert_true(xs_rm(xs, XBT_NULL, "/test2"));
	ev = next_watch(xs);
	assert_string_equal(ev[XS_WATCH_PATH], "/test2/dev/state");
	free(ev);
	xs_close(xs);
}

static void test_xs_read_directory_transactions(void **state)
{
	struct xs_handle *xs = xs_open(0), *other = xs_open(0);
	unsigned int n, len;
	xs_transaction_t t;
	char **dir, *v;

	assert_non_null(xs);
	assert_non_null(other);
	assert_true(xs_write(xs, XBT_NULL, "/t3/a", "alpha", 5));
	assert_true(xs_write(xs, XBT_NULL, "/t3/b", "", 0));
	v = xs_read(xs, XBT_NULL, "/t3/a", &len);
	assert_non_null(v);
	assert_int_equal(len, 5);
	assert_string_equal(v, "alpha");
	free(v);
	errno = 0;
	assert_null(xs_read(xs, XBT_NULL, "/t3/missing", &len));
	assert_int_equal(errno, ENOENT);
	dir = xs_directory(xs, XBT_NULL, "/t3", &n);
	assert_non_null(dir);
	assert_int_equal(n, 2);
	assert_string_equal(dir[0], "a");
	assert_string_equal(dir[1], "b");
	free(dir);
	/* A transaction's writes appear at commit, atomically. */
	t = xs_transaction_start(xs);
	assert_int_not_equal(t, XBT_NULL);
	assert_true(xs_write(xs, t, "/t3/c", "3", 1));
	assert_null(xs_read(other, XBT_NULL, "/t3/c", &len));
	assert_true(xs_transaction_end(xs, t, false));
	v = xs_read(other, XBT_NULL, "/t3/c", &len);
	assert_non_null(v);
	free(v);
	/* A node the transaction read changed meanwhile: EAGAIN, as with xenstored. */
	t = xs_transaction_start(xs);
	v = xs_read(xs, t, "/t3/a", &len);
	assert_string_equal(v, "alpha");
	free(v);
	assert_true(xs_write(xs, t, "/t3/d", "4", 1));
	assert_true(xs_write(other, XBT_NULL, "/t3/a", "changed", 7));
	errno = 0;
	assert_false(xs_transaction_end(xs, t, false));
	assert_int_equal(errno, EAGAIN);
	assert_null(xs_read(xs, XBT_NULL, "/t3/d", &len));
	/* Changes elsewhere do not conflict, and survive the commit. */
	t = xs_transaction_start(xs);
	assert_true(xs_write(xs, t, "/t3/e", "5", 1));
	assert_true(xs_write(other, XBT_NULL, "/t3/b", "other", 5));
	assert_true(xs_transaction_end(xs, t, false));
	v = xs_read(xs, XBT_NULL, "/t3/b", &len);
	assert_string_equal(v, "other");
	free(v);
	v = xs_read(xs, XBT_NULL, "/t3/e", &len);
	assert_string_equal(v, "5");
	free(v);
	assert_true(xs_rm(xs, XBT_NULL, "/t3"));
	xs_close(other);
	xs_close(xs);
}

static void test_xs_relative_paths(void **state)
{
	struct xs_handle *xs = xs_open(0);
	unsigned int len;
	char **ev, *v;

	assert_non_null(xs);
	/* Dom0's own domid, as a daemon finds out who it is. */
	v = xs_read(xs, XBT_NULL, "domid", &len);
	assert_non_null(v);
	assert_string_equal(v, "0");
	free(v);
	/* A relative watch reports relative paths, as xenstored does. */
	assert_true(xs_watch(xs, "backend/reltest", "r"));
	ev = next_watch(xs);
	assert_string_equal(ev[XS_WATCH_PATH], "backend/reltest");
	free(ev);
	assert_true(xs_write(xs, XBT_NULL, "/local/domain/0/backend/reltest/x", "1", 1));
	ev = next_watch(xs);
	assert_string_equal(ev[XS_WATCH_PATH], "backend/reltest/x");
	free(ev);
	assert_true(xs_rm(xs, XBT_NULL, "backend/reltest"));
	free(next_watch(xs));
	xs_close(xs);
}

/* ---- libxl handshake ---- */
struct create_args {
	char spec[256];
	uint32_t domid;
	uint64_t wait_us;
	bool graceful;
	int ret;
};

static void *create_thread(void *arg)
{
	struct create_args *a = arg;
	struct xensim *s;

	a->ret = xensim_connect(&s);
	if (a->ret == 0) {
		a->ret = xensim_domain_create(s, a->spec, 0, &a->domid, &a->wait_us);
		xensim_disconnect(s);
	}
	return NULL;
}

static void *destroy_thread(void *arg)
{
	struct create_args *a = arg;
	struct xensim *s;

	a->ret = xensim_connect(&s);
	if (a->ret == 0) {
		a->ret = xensim_domain_destroy(s, a->domid, a->graceful, &a->wait_us);
		xensim_disconnect(s);
	}
	return NULL;
}

static char *xs_get(struct xs_handle *xs, const char *fmt, ...)
{
	char path[256];
	unsigned int len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return xs_read(xs, XBT_NULL, path, &len);
}

/* Wait (watch-driven) until @path reads @want. */
static void wait_value(struct xs_handle *xs, const char *path, const char *want)
{
	for (;;) {
		unsigned int len;
		char *v = xs_read(xs, XBT_NULL, path, &len);
		bool ok = v && !strcmp(v, want);

		free(v);
		if (ok)
			return;
		free(next_watch(xs));
	}
}

static void test_handshake_initwait_and_closed(void **state)
{
	struct create_args a = { 0 };
	struct xs_handle *xs = xs_open(0);
	char be[128], path[160], *v;
	pthread_t t;
	unsigned int n;

	assert_non_null(xs);
	snprintf(a.spec, sizeof(a.spec), "vcpus=1,mem=4M,disk=%s:ro", disk_path);
	assert_true(xs_watch(xs, "/local/domain/0/backend/virtio_disk", "be"));
	assert_int_equal(pthread_create(&t, NULL, create_thread, &a), 0);
	/* Act as the backend: wait for the device dir, check it, answer InitWait. */
	for (;;) {
		char **dom = xs_directory(xs, XBT_NULL, "/local/domain/0/backend/virtio_disk", &n);

		if (dom && n) {
			snprintf(be, sizeof(be), "/local/domain/0/backend/virtio_disk/%s/51712",
				 dom[0]);
			free(dom);
			snprintf(path, sizeof(path), "%s/state", be);
			v = xs_read(xs, XBT_NULL, path, &n);
			if (v && !strcmp(v, "1")) {
				free(v);
				break;
			}
			free(v);
		} else {
			free(dom);
		}
		free(next_watch(xs));
	}
	v = xs_get(xs, "%s/params", be);
	assert_string_equal(v, disk_path);
	free(v);
	v = xs_get(xs, "%s/base", be);
	assert_string_equal(v, "33554432");
	free(v);
	v = xs_get(xs, "%s/irq", be);
	assert_string_equal(v, "33");
	free(v);
	v = xs_get(xs, "%s/mode", be);
	assert_string_equal(v, "r");
	free(v);
	v = xs_get(xs, "%s/type", be);
	assert_string_equal(v, "standalone");
	free(v);
	assert_true(xs_write(xs, XBT_NULL, path, "2", 1));
	pthread_join(t, NULL);
	assert_int_equal(a.ret, 0);
	assert_true(a.wait_us < 10000000ull);
	v = xs_get(xs, "/local/domain/%u/device/virtio_disk/51712/backend", a.domid);
	assert_string_equal(v, be);
	free(v);
	/* xl destroy: online=0, state=5, and it waits for our 6. */
	a.graceful = true;
	assert_int_equal(pthread_create(&t, NULL, destroy_thread, &a), 0);
	wait_value(xs, path, "5");
	v = xs_get(xs, "%s/online", be);
	assert_string_equal(v, "0");
	free(v);
	assert_true(xs_write(xs, XBT_NULL, path, "6", 1));
	pthread_join(t, NULL);
	assert_int_equal(a.ret, 0);
	/* Then the nodes are gone. */
	assert_null(xs_get(xs, "%s/state", be));
	assert_null(xs_get(xs, "/local/domain/%u", a.domid));
	xs_close(xs);
}

/* ---- a tiny responder written against the libxen API ---- */
struct responder {
	struct iosrv *s;
	bool stop;			/* atomic */
	bool no_notify;			/* answer but forget the event channel */
	pthread_mutex_t lock;		/* the test thread reads what the responder saw */
	uint64_t last_write_addr, last_write_data;
	unsigned int answered;
	ioreq_t last;
};

/* What the responder saw last, read under its lock. */
static ioreq_t responder_last(struct responder *r)
{
	ioreq_t last;

	pthread_mutex_lock(&r->lock);
	last = r->last;
	pthread_mutex_unlock(&r->lock);
	return last;
}

static void *responder_thread(void *arg)
{
	struct responder *r = arg;
	struct iosrv *s = r->s;
	struct pollfd pfd = { .fd = xenevtchn_fd(s->xce), .events = POLLIN };

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		int port;
		unsigned int i;

		if (poll(&pfd, 1, 50) <= 0)
			continue;
		port = xenevtchn_pending(s->xce);
		if (port < 0)
			continue;
		xenevtchn_unmask(s->xce, (evtchn_port_t)port);
		for (i = 0; i < s->nvcpus; i++) {
			ioreq_t *req = &s->page->vcpu_ioreq[i];

			if (s->local[i] != (evtchn_port_t)port || req->state != STATE_IOREQ_READY)
				continue;
			/* Pairs with the vCPU's release when it published the request. */
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			pthread_mutex_lock(&r->lock);
			r->last = *req;
			if (req->dir == IOREQ_READ)
				req->data = req->addr == DISK_BASE ? 0x74726976u : 0;
			else {
				r->last_write_addr = req->addr;
				r->last_write_data = req->data;
			}
			r->answered++;
			pthread_mutex_unlock(&r->lock);
			__atomic_thread_fence(__ATOMIC_RELEASE);	/* data before the state */
			req->state = STATE_IORESP_READY;
			if (!r->no_notify)
				xenevtchn_notify(s->xce, (evtchn_port_t)port);
		}
	}
	return NULL;
}

static void test_ioreq_round_trip(void **state)
{
	uint32_t domid = create_with_disk(2);
	struct responder r = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct iosrv s;
	uint64_t data = 0, irqs = 0;
	ioreq_t last;
	pthread_t t;

	iosrv_up(&s, domid, true);
	r.s = &s;
	assert_int_equal(pthread_create(&t, NULL, responder_thread, &r), 0);
	assert_int_equal(xensim_guest_mmio(sim, domid, 0, DISK_BASE, 4, false, &data), 0);
	assert_int_equal(data, 0x74726976u);
	data = 0;
	assert_int_equal(xensim_guest_mmio(sim, domid, 1, DISK_BASE, 4, false, &data), 0);
	assert_int_equal(data, 0x74726976u);
	data = 0x1234;
	assert_int_equal(xensim_guest_mmio(sim, domid, 1, DISK_BASE + 0x70, 4, true, &data), 0);
	last = responder_last(&r);
	assert_int_equal(last.type, IOREQ_TYPE_COPY);
	assert_int_equal(last.count, 1);
	assert_int_equal(last.size, 4);
	assert_int_equal(last.data_is_ptr, 0);
	/* A hostile ioreq arrives with exactly the fields asked for. */
	{
		struct xsim_ioreq odd = { .addr = DISK_BASE + 8, .data = XSIM_GUEST_RAM_BASE,
					  .count = 3, .size = 2, .dir = IOREQ_READ,
					  .type = IOREQ_TYPE_PIO, .data_is_ptr = 1, .df = 1 };

		assert_int_equal(xensim_guest_ioreq(sim, domid, 0, &odd, &data), 0);
		last = responder_last(&r);
		assert_int_equal(last.addr, DISK_BASE + 8);
		assert_int_equal(last.count, 3);
		assert_int_equal(last.size, 2);
		assert_int_equal(last.type, IOREQ_TYPE_PIO);
		assert_int_equal(last.data_is_ptr, 1);
		assert_int_equal(last.df, 1);
		assert_int_equal(last.dir, IOREQ_READ);
		assert_int_equal(last.data, XSIM_GUEST_RAM_BASE);
	}
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_int_equal(r.last_write_addr, DISK_BASE + 0x70);
	assert_int_equal(r.last_write_data, 0x1234);
	assert_int_equal(r.answered, 4);
	/* The slot is free again after the response was consumed. */
	assert_int_equal(s.page->vcpu_ioreq[0].state, STATE_IOREQ_NONE);
	/* An SPI raised by dom0 reaches the guest. */
	assert_int_equal(xendevicemodel_set_irq_level(s.dm, domid, DISK_IRQ, 1), 0);
	assert_int_equal(xendevicemodel_set_irq_level(s.dm, domid, DISK_IRQ, 0), 0);
	assert_int_equal(xensim_irq_count(sim, domid, DISK_IRQ, &irqs), 0);
	assert_int_equal(irqs, 1);
	iosrv_down(&s, true);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
}

static void test_ioreq_answer_without_notify_is_a_hang(void **state)
{
	uint32_t domid = create_with_disk(1);
	struct responder r = { .lock = PTHREAD_MUTEX_INITIALIZER, .no_notify = true };
	struct iosrv s;
	uint64_t data = 0;
	pthread_t t;

	iosrv_up(&s, domid, true);
	r.s = &s;
	assert_int_equal(pthread_create(&t, NULL, responder_thread, &r), 0);
	/* On Xen the vCPU sleeps until notified: a silent answer is reported, not accepted. */
	assert_int_equal(xensim_guest_mmio(sim, domid, 0, DISK_BASE, 4, false, &data), -EPROTO);
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	iosrv_down(&s, true);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
}

static void test_mmio_unclaimed_is_a_data_abort(void **state)
{
	uint32_t domid = create_with_disk(1);
	struct iosrv s;
	uint64_t data = 0;

	iosrv_up(&s, domid, true);
	assert_int_equal(xensim_guest_mmio(sim, domid, 0, DISK_BASE + 0x200, 4, false, &data),
			 -EFAULT);
	/* A disabled server claims nothing either. */
	assert_int_equal(xendevicemodel_set_ioreq_server_state(s.dm, domid, s.id, 0), 0);
	assert_int_equal(xensim_guest_mmio(sim, domid, 0, DISK_BASE, 4, false, &data), -EFAULT);
	iosrv_down(&s, true);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
}

static void test_ioreq_unanswered_is_a_hang(void **state)
{
	uint32_t domid = create_with_disk(1);
	struct iosrv s;
	uint64_t data = 0;

	iosrv_up(&s, domid, true);
	/* Nobody answers: reported as a hang after the simulator's --timeout, never a stall. */
	assert_int_equal(xensim_guest_mmio(sim, domid, 0, DISK_BASE, 4, false, &data), -ETIMEDOUT);
	iosrv_down(&s, true);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
}

static void test_ioreq_server_rules(void **state)
{
	xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
	uint32_t domid = create("vcpus=1,mem=4M");
	ioservid_t ids[9];
	xen_pfn_t gfn;
	unsigned int i;

	assert_non_null(dm);
	/* Arm: no buffered ioreqs, no legacy gfns, SPIs only. */
	assert_int_equal(xendevicemodel_create_ioreq_server(dm, domid, 1, &ids[0]), -1);
	for (i = 0; i < 8; i++)
		assert_int_equal(xendevicemodel_create_ioreq_server(dm, domid, 0, &ids[i]), 0);
	errno = 0;
	assert_int_equal(xendevicemodel_create_ioreq_server(dm, domid, 0, &ids[8]), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(xendevicemodel_get_ioreq_server_info(dm, domid, ids[0], &gfn, NULL, NULL), -1);
	assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, domid, ids[0], 1, 0x1000,
								     0x1fff), 0);
	errno = 0;
	assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(dm, domid, ids[0], 1, 0x1800,
								     0x27ff), -1);
	assert_int_equal(errno, EEXIST);
	errno = 0;
	assert_int_equal(xendevicemodel_set_irq_level(dm, domid, 5, 1), -1);
	assert_int_equal(errno, EINVAL);
	for (i = 0; i < 8; i++)
		assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, domid, ids[i]), 0);
	errno = 0;
	assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, domid, ids[0]), -1);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
	errno = 0;
	assert_int_equal(xendevicemodel_create_ioreq_server(dm, domid, 0, &ids[0]), -1);
	assert_int_equal(errno, ESRCH);
	xendevicemodel_close(dm);
}

/* ---- the back end's process dies: what outlives it, as on Xen ---- */

/*
 * The body of a back-end process: its own handles, an IOREQ server for
 * @domid with its ioreq page mapped, every vCPU's port bound, the first
 * disk's range mapped if asked, enabled; the server id goes to @out (what a
 * restarted vblkd remembers).  Then it returns to _exit() without undoing any
 * of it, as after kill -9.  No cmocka here: the exit status tells.
 */
static int backend_body(uint32_t domid, bool map_range, int out)
{
	xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
	xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
	xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
	shared_iopage_t *page;
	void *addr = NULL;
	unsigned int n, i;
	ioservid_t id;

	if (!dm || !fm || !xce || xendevicemodel_nr_vcpus(dm, domid, &n) < 0 ||
	    xendevicemodel_create_ioreq_server(dm, domid, 0, &id) < 0)
		return 1;
	if (!xenforeignmemory_map_resource(fm, domid, XENMEM_resource_ioreq_server, id,
					   XENMEM_resource_ioreq_server_frame_ioreq(0), 1, &addr,
					   PROT_READ | PROT_WRITE, 0))
		return 2;
	page = addr;
	for (i = 0; i < n; i++)
		if (xenevtchn_bind_interdomain(xce, domid, page->vcpu_ioreq[i].vp_eport) < 0)
			return 3;
	if (map_range && xendevicemodel_map_io_range_to_ioreq_server(
				 dm, domid, id, XEN_DMOP_IO_RANGE_MEMORY, DISK_BASE,
				 DISK_BASE + 0x1ff) < 0)
		return 4;
	if (xendevicemodel_set_ioreq_server_state(dm, domid, id, 1) < 0)
		return 5;
	return write(out, &id, sizeof(id)) == sizeof(id) ? 0 : 6;
}

/*
 * Run backend_body() in a child process and wait until it is dead (its
 * connections to the simulator closed; the simulator sees those hang-ups
 * before anything this process sends it afterwards).  Returns the server id.
 */
static ioservid_t backend_dies(uint32_t domid, bool map_range)
{
	ioservid_t id = 0xffff;
	int fds[2], st;
	pid_t pid;

	assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		_exit(backend_body(domid, map_range, fds[1]));
	}
	close(fds[1]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(read(fds[0], &id, sizeof(id)), sizeof(id));
	close(fds[0]);
	return id;
}

/* A guest's MMIO access on its own thread (it blocks until answered). */
struct mmio_args {
	uint32_t domid;
	unsigned int vcpu;
	uint64_t addr;
	uint64_t data;
	int ret;
	bool done;	/* atomic */
};

static void *mmio_thread(void *arg)
{
	struct mmio_args *a = arg;
	struct xensim *s;

	a->ret = xensim_connect(&s);
	if (a->ret == 0) {
		a->ret = xensim_guest_mmio(s, a->domid, a->vcpu, a->addr, 4, false, &a->data);
		xensim_disconnect(s);
	}
	__atomic_store_n(&a->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* Map server @id's ioreq page from this process (a new one for the server). */
static shared_iopage_t *map_ioreq_page(xenforeignmemory_handle *fm, uint32_t domid,
				       ioservid_t id, xenforeignmemory_resource_handle **ret_res)
{
	void *addr = NULL;

	*ret_res = xenforeignmemory_map_resource(fm, domid, XENMEM_resource_ioreq_server, id,
						 XENMEM_resource_ioreq_server_frame_ioreq(0), 1,
						 &addr, PROT_READ | PROT_WRITE, 0);
	assert_non_null(*ret_res);
	return addr;
}

static void test_restart_ioreq_server_outlives_its_process(void **state)
{
	struct mmio_args a = { .vcpu = 1, .addr = DISK_BASE + 0x100 };
	struct xsim_stats before, after;
	xenforeignmemory_resource_handle *res;
	xendevicemodel_handle *dm;
	xenforeignmemory_handle *fm;
	xenevtchn_handle *xce;
	evtchn_port_t local[2];
	volatile ioreq_t *slot;
	shared_iopage_t *page;
	unsigned int i, seen = 0;
	ioservid_t id;
	pthread_t t;

	assert_int_equal(xensim_stats(sim, &before), 0);
	a.domid = create_with_disk(2);
	id = backend_dies(a.domid, true);
	/* Its event channels closed with it; its server did not. */
	assert_int_equal(xensim_stats(sim, &after), 0);
	assert_int_equal(after.ioreq_servers, before.ioreq_servers + 1);
	assert_int_equal(after.bound_ports, before.bound_ports);
	assert_int_equal(after.connections, before.connections);

	/* The guest's access goes to the orphaned server (enabled, range mapped): it waits. */
	assert_int_equal(pthread_create(&t, NULL, mmio_thread, &a), 0);
	dm = xendevicemodel_open(NULL, 0);
	fm = xenforeignmemory_open(NULL, 0);
	xce = xenevtchn_open(NULL, 0);
	assert_non_null(dm);
	assert_non_null(fm);
	assert_non_null(xce);
	page = map_ioreq_page(fm, a.domid, id, &res);
	slot = &page->vcpu_ioreq[1];
	/*
	 * Nothing tells this process that the vCPU asked (Xen drops the event on
	 * the unbound port), so look at the slot until the request is there,
	 * well within the simulator's 1 s --timeout.
	 */
	for (i = 0; i < 500 && slot->state != STATE_IOREQ_READY; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	assert_int_equal(slot->state, STATE_IOREQ_READY);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	assert_false(__atomic_load_n(&a.done, __ATOMIC_ACQUIRE));
	assert_int_equal(slot->addr, DISK_BASE + 0x100);
	assert_int_equal(slot->size, 4);
	assert_int_equal(slot->dir, IOREQ_READ);
	assert_int_equal(slot->type, IOREQ_TYPE_COPY);
	assert_int_equal(page->vcpu_ioreq[0].state, STATE_IOREQ_NONE);

	/* Binding again sets each port pending: the new process hears of the waiting vCPU. */
	for (i = 0; i < 2; i++) {
		int lp = xenevtchn_bind_interdomain(xce, a.domid, page->vcpu_ioreq[i].vp_eport);

		assert_true(lp > 0);
		local[i] = (evtchn_port_t)lp;
	}
	for (i = 0; i < 2; i++) {
		int p = xenevtchn_pending(xce);

		assert_true(p == (int)local[0] || p == (int)local[1]);
		seen |= p == (int)local[0] ? 1u : 2u;
	}
	assert_int_equal(seen, 3);
	assert_int_equal(xenevtchn_unmask(xce, local[0]), 0);
	assert_int_equal(xenevtchn_unmask(xce, local[1]), 0);

	/* Answer it like a device model: the access completes with the data. */
	slot->state = STATE_IOREQ_INPROCESS;
	slot->data = 0x5678abcd;
	__atomic_thread_fence(__ATOMIC_RELEASE);	/* data before the state */
	slot->state = STATE_IORESP_READY;
	assert_int_equal(xenevtchn_notify(xce, local[1]), 0);
	pthread_join(t, NULL);
	assert_int_equal(a.ret, 0);
	assert_int_equal(a.data, 0x5678abcd);

	/* Any process of dom0 manages it by its id. */
	assert_int_equal(xendevicemodel_unmap_io_range_from_ioreq_server(
				 dm, a.domid, id, XEN_DMOP_IO_RANGE_MEMORY, DISK_BASE,
				 DISK_BASE + 0x1ff), 0);
	assert_int_equal(xendevicemodel_set_ioreq_server_state(dm, a.domid, id, 0), 0);
	assert_int_equal(xenevtchn_unbind(xce, local[0]), 0);
	assert_int_equal(xenevtchn_unbind(xce, local[1]), 0);
	assert_int_equal(xenforeignmemory_unmap_resource(fm, res), 0);
	assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, a.domid, id), 0);
	assert_int_equal(xensim_stats(sim, &after), 0);
	assert_int_equal(after.ioreq_servers, before.ioreq_servers);
	xenevtchn_close(xce);
	xenforeignmemory_close(fm);
	xendevicemodel_close(dm);
	assert_int_equal(xensim_domain_destroy(sim, a.domid, false, NULL), 0);
}

static void test_restart_guest_port_bound_again(void **state)
{
	uint32_t domid = create_with_disk(1);
	xenforeignmemory_resource_handle *res;
	xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
	xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
	xenevtchn_handle *xce = xenevtchn_open(NULL, 0), *other = xenevtchn_open(NULL, 0);
	struct pollfd pfd;
	evtchn_port_t gport;
	ioservid_t id;
	int lp;

	assert_non_null(dm);
	assert_non_null(fm);
	assert_non_null(xce);
	assert_non_null(other);
	id = backend_dies(domid, false);
	gport = map_ioreq_page(fm, domid, id, &res)->vcpu_ioreq[0].vp_eport;
	/* Sent while nobody has it bound: evtchn_send() succeeds and drops it. */
	assert_int_equal(xensim_guest_notify(sim, domid, gport), 0);
	lp = xenevtchn_bind_interdomain(xce, domid, gport);
	assert_true(lp > 0);
	/* One event: the one Xen sets at every bind, in case one was lost. */
	pfd = (struct pollfd){ .fd = xenevtchn_fd(xce), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(xenevtchn_pending(xce), lp);
	assert_int_equal(xenevtchn_unmask(xce, (evtchn_port_t)lp), 0);
	assert_int_equal(poll(&pfd, 1, 0), 0);
	/* Bound again, it is bound: no second binding, from this process or another. */
	errno = 0;
	assert_int_equal(xenevtchn_bind_interdomain(other, domid, gport), -1);
	assert_int_equal(errno, EINVAL);
	/* Later notifications arrive, both ways. */
	assert_int_equal(xensim_guest_notify(sim, domid, gport), 0);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(xenevtchn_pending(xce), lp);
	assert_int_equal(xenevtchn_unmask(xce, (evtchn_port_t)lp), 0);
	assert_int_equal(xenevtchn_notify(xce, (evtchn_port_t)lp), 0);
	assert_int_equal(xensim_guest_wait_event(sim, domid, gport, 5000), 0);
	/* A handle closed (as at a process's death) leaves the port to the next one. */
	xenevtchn_close(xce);
	assert_true(xenevtchn_bind_interdomain(other, domid, gport) > 0);
	assert_int_equal(xenforeignmemory_unmap_resource(fm, res), 0);
	assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, domid, id), 0);
	xenevtchn_close(other);
	xenforeignmemory_close(fm);
	xendevicemodel_close(dm);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
}

static void test_restart_guest_destroy_destroys_orphaned_server(void **state)
{
	xenforeignmemory_handle *fm = xenforeignmemory_open(NULL, 0);
	struct xsim_stats before, after;
	void *addr = NULL;
	uint32_t domid;
	ioservid_t id;

	assert_non_null(fm);
	assert_int_equal(xensim_stats(sim, &before), 0);
	domid = create_with_disk(2);
	id = backend_dies(domid, true);
	assert_int_equal(xensim_stats(sim, &after), 0);
	assert_int_equal(after.ioreq_servers, before.ioreq_servers + 1);
	/* ioreq_server_destroy_all(): the domain's end is its servers' end. */
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
	assert_int_equal(xensim_stats(sim, &after), 0);
	assert_int_equal(after.ioreq_servers, before.ioreq_servers);
	assert_int_equal(after.bound_ports, before.bound_ports);
	assert_int_equal(after.domains, before.domains);
	errno = 0;
	assert_null(xenforeignmemory_map_resource(fm, domid, XENMEM_resource_ioreq_server, id,
						  XENMEM_resource_ioreq_server_frame_ioreq(0), 1,
						  &addr, PROT_READ | PROT_WRITE, 0));
	assert_int_equal(errno, ESRCH);
	xenforeignmemory_close(fm);
}

static void test_restart_create_again_is_a_second_server(void **state)
{
	xendevicemodel_handle *dm = xendevicemodel_open(NULL, 0);
	uint32_t domid = create("vcpus=1,mem=4M");
	ioservid_t old, ids[8];
	unsigned int i;

	assert_non_null(dm);
	old = backend_dies(domid, false);
	/* The old one lives on: creating again makes another, up to Xen's 8 per domain. */
	for (i = 0; i < 7; i++) {
		assert_int_equal(xendevicemodel_create_ioreq_server(dm, domid, 0, &ids[i]), 0);
		assert_int_not_equal(ids[i], old);
	}
	errno = 0;
	assert_int_equal(xendevicemodel_create_ioreq_server(dm, domid, 0, &ids[7]), -1);
	assert_int_equal(errno, ENOSPC);
	/* Any process of dom0 may use the old one by its id, and destroy it. */
	assert_int_equal(xendevicemodel_map_io_range_to_ioreq_server(
				 dm, domid, old, XEN_DMOP_IO_RANGE_MEMORY, DISK_BASE,
				 DISK_BASE + 0x1ff), 0);
	assert_int_equal(xendevicemodel_set_ioreq_server_state(dm, domid, old, 0), 0);
	assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, domid, old), 0);
	assert_int_equal(xendevicemodel_create_ioreq_server(dm, domid, 0, &ids[7]), 0);
	for (i = 0; i < 8; i++)
		assert_int_equal(xendevicemodel_destroy_ioreq_server(dm, domid, ids[i]), 0);
	xendevicemodel_close(dm);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
}

static void test_grant_map(void **state)
{
	xengnttab_handle *gt = xengnttab_open(NULL, 0);
	uint32_t domid = create("vcpus=1,mem=4M");
	uint32_t refs[2], bad = 3;
	uint8_t *p;

	assert_non_null(gt);
	assert_int_equal(xensim_guest_write(sim, domid, XSIM_GUEST_RAM_BASE + 0x5000, "granted", 7), 0);
	assert_int_equal(xensim_grant(sim, domid, RAM_GFN + 5, false, &refs[1]), 0);
	assert_int_equal(xensim_grant(sim, domid, RAM_GFN + 9, true, &refs[0]), 0);
	p = xengnttab_map_domain_grant_refs(gt, 2, domid, refs, PROT_READ);
	assert_non_null(p);
	assert_memory_equal(p + 4096, "granted", 7);
	assert_int_equal(xengnttab_unmap(gt, p, 2), 0);
	/* A read-only grant cannot be mapped writable; an unknown ref not at all. */
	errno = 0;
	assert_null(xengnttab_map_domain_grant_refs(gt, 2, domid, refs, PROT_READ | PROT_WRITE));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(xengnttab_map_domain_grant_refs(gt, 1, domid, &bad, PROT_READ));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
	xengnttab_close(gt);
}

static void test_xc_and_xs_know_live_domains(void **state)
{
	xc_interface *xch = xc_interface_open(NULL, NULL, 0);
	uint32_t domid = create("vcpus=3,mem=4M");
	struct xs_handle *xs = xs_open(0);
	xc_domaininfo_t info[4];
	int n;

	assert_non_null(xch);
	assert_non_null(xs);
	assert_true(xs_is_domain_introduced(xs, 0));
	assert_true(xs_is_domain_introduced(xs, domid));
	n = xc_domain_getinfolist(xch, domid, 1, info);
	assert_int_equal(n, 1);
	assert_int_equal(info[0].domain, domid);
	assert_int_equal(info[0].max_vcpu_id, 2);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
	n = xc_domain_getinfolist(xch, domid, 1, info);
	assert_true(n == 0 || info[0].domain != domid);
	assert_false(xs_is_domain_introduced(xs, domid));
	xs_close(xs);
	xc_interface_close(xch);
}

static void test_destroy_releases_everything(void **state)
{
	struct xsim_stats before, after;
	xenforeignmemory_handle *fm;
	unsigned int fds_before = count_fds();
	xen_pfn_t gfn = RAM_GFN;
	struct iosrv s;
	uint32_t domid;
	void *p;

	assert_int_equal(xensim_stats(sim, &before), 0);
	domid = create_with_disk(2);
	iosrv_up(&s, domid, true);
	fm = xenforeignmemory_open(NULL, 0);
	p = xenforeignmemory_map(fm, domid, PROT_READ, 1, &gfn, NULL);
	assert_non_null(p);
	/* Sudden death with everything set up. */
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
	assert_int_equal(xensim_stats(sim, &after), 0);
	assert_int_equal(after.domains, before.domains);
	assert_int_equal(after.ioreq_servers, before.ioreq_servers);
	errno = 0;
	assert_int_equal(xendevicemodel_set_irq_level(s.dm, domid, DISK_IRQ, 1), -1);
	assert_int_equal(errno, ESRCH);
	/* Dom0 tears down its side without the domain. */
	xenforeignmemory_unmap(fm, p, 1);
	xenforeignmemory_close(fm);
	iosrv_down(&s, false);
	assert_int_equal(xensim_stats(sim, &after), 0);
	assert_int_equal(after.bound_ports, before.bound_ports);
	assert_int_equal(after.open_fds, before.open_fds);
	assert_int_equal(after.connections, before.connections);
	assert_int_equal(count_fds(), fds_before);
	assert_false(maps_contain("xensim-guest-ram"));
	assert_false(maps_contain("xensim-ioreq-page"));
}

static void test_create_without_backend_times_out(void **state)
{
	struct xs_handle *xs = xs_open(0);
	struct xsim_stats before, after;
	uint32_t domid = 0;
	uint64_t wait = 0;
	char spec[256];
	unsigned int n;

	assert_non_null(xs);
	assert_int_equal(xensim_stats(sim, &before), 0);
	snprintf(spec, sizeof(spec), "vcpus=1,mem=4M,disk=%s:rw", disk_path);
	/* Nobody answers InitWait: like libxl, give up after the wait and remove the domain. */
	assert_int_equal(xensim_domain_create(sim, spec, 0, &domid, &wait), -ETIMEDOUT);
	assert_int_equal(xensim_stats(sim, &after), 0);
	assert_int_equal(after.domains, before.domains);
	assert_null(xs_directory(xs, XBT_NULL, "/local/domain/0/backend/virtio_disk/1", &n));
	xs_close(xs);
}

static void test_destroy_without_closed_times_out(void **state)
{
	struct xsim_stats before, after;
	uint32_t domid;

	assert_int_equal(xensim_stats(sim, &before), 0);
	domid = create_with_disk(1);
	/* No backend writes Closed: the wait is reported and the domain goes anyway. */
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), -ETIMEDOUT);
	assert_int_equal(xensim_stats(sim, &after), 0);
	assert_int_equal(after.domains, before.domains);
	assert_int_equal(xensim_domain_destroy(sim, domid, true, NULL), -ESRCH);
}

static void test_toolstack_variations(void **state)
{
	struct xs_handle *xs = xs_open(0);
	char spec[512], *v;
	uint32_t domid;

	assert_non_null(xs);
	/* Unusual or broken xenstore contents, for the daemon's validation tests. */
	snprintf(spec, sizeof(spec),
		 "vcpus=1,mem=4M,disk=%s:hexbase:irq=50:omit=params:dio,"
		 "disk=%s:params=/nonexistent:base=0x2000100", disk_path, disk_path);
	domid = create(spec);
	v = xs_get(xs, "/local/domain/0/backend/virtio_disk/%u/51712/base", domid);
	assert_string_equal(v, "0x2000000");
	free(v);
	v = xs_get(xs, "/local/domain/0/backend/virtio_disk/%u/51712/irq", domid);
	assert_string_equal(v, "50");
	free(v);
	assert_null(xs_get(xs, "/local/domain/0/backend/virtio_disk/%u/51712/params", domid));
	v = xs_get(xs, "/local/domain/0/backend/virtio_disk/%u/51712/direct-io-safe", domid);
	assert_string_equal(v, "1");
	free(v);
	v = xs_get(xs, "/local/domain/0/backend/virtio_disk/%u/51728/params", domid);
	assert_string_equal(v, "/nonexistent");
	free(v);
	v = xs_get(xs, "/local/domain/0/backend/virtio_disk/%u/51728/base", domid);
	assert_string_equal(v, "33554688");
	free(v);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
	xs_close(xs);
}

static void test_workload_without_backend_fails_cleanly(void **state)
{
	uint32_t domid = create_with_disk(2);
	char *rep = NULL;

	/* No IOREQ server: the guest's first MMIO access is a data abort, reported, not a hang. */
	assert_int_equal(xensim_workload(sim, domid, "verify", &rep), -EIO);
	assert_non_null(rep);
	assert_non_null(strstr(rep, "no IOREQ server claims"));
	free(rep);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
}

/* Run the xensim command line on its own socket; returns its exit status and output. */
static int run_cli(const char *extra, char *out, size_t size)
{
	char cmd[1024];
	size_t got;
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "%s --socket %s/cli.sock %s 2>&1", XENSIM_BIN, sim_proc.dir, extra);
	f = popen(cmd, "r");
	assert_non_null(f);
	got = fread(out, 1, size - 1, f);
	out[got] = '\0';
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_workload_bad_spec(void **state)
{
	uint32_t domid = create("vcpus=1,mem=4M");
	char *rep = NULL;

	assert_int_equal(xensim_workload(sim, domid, "verify,qd=99", &rep), -EINVAL);
	assert_non_null(rep);
	assert_non_null(strstr(rep, "bad workload"));
	free(rep);
	rep = NULL;
	assert_int_equal(xensim_workload(sim, domid, "nonsense", &rep), -EINVAL);
	free(rep);
	assert_int_equal(xensim_domain_destroy(sim, domid, false, NULL), 0);
}

static void test_cli_usage_error(void **state)
{
	char out[4096];

	assert_int_equal(run_cli("--guest vcpus=0", out, sizeof(out)), 2);
	assert_non_null(strstr(out, "vcpus"));
	assert_int_equal(run_cli("--no-such-option", out, sizeof(out)), 2);
}

static void test_cli_fails_without_backend(void **state)
{
	char out[8192], extra[512];

	snprintf(extra, sizeof(extra),
		 "--libxl-timeout 300 --log-level err --guest vcpus=2,mem=8M,disk=%s --workload verify",
		 disk_path);
	/* Started before any backend, it waits like libxl, then reports and fails. */
	assert_int_equal(run_cli(extra, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "did not reach InitWait"));
	assert_non_null(strstr(out, "FAILED"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fmap_sees_guest_bytes),
		cmocka_unit_test(test_fmap_outside_ram_fails),
		cmocka_unit_test(test_fmap_dead_domain_fails),
		cmocka_unit_test(test_evtchn_round_trip),
		cmocka_unit_test(test_xs_watch_fires_on_write_and_rm),
		cmocka_unit_test(test_xs_watch_on_child_fires_on_parent_rm),
		cmocka_unit_test(test_xs_read_directory_transactions),
		cmocka_unit_test(test_xs_relative_paths),
		cmocka_unit_test(test_handshake_initwait_and_closed),
		cmocka_unit_test(test_ioreq_round_trip),
		cmocka_unit_test(test_ioreq_answer_without_notify_is_a_hang),
		cmocka_unit_test(test_mmio_unclaimed_is_a_data_abort),
		cmocka_unit_test(test_ioreq_unanswered_is_a_hang),
		cmocka_unit_test(test_ioreq_server_rules),
		cmocka_unit_test(test_restart_ioreq_server_outlives_its_process),
		cmocka_unit_test(test_restart_guest_port_bound_again),
		cmocka_unit_test(test_restart_guest_destroy_destroys_orphaned_server),
		cmocka_unit_test(test_restart_create_again_is_a_second_server),
		cmocka_unit_test(test_grant_map),
		cmocka_unit_test(test_xc_and_xs_know_live_domains),
		cmocka_unit_test(test_destroy_releases_everything),
		cmocka_unit_test(test_create_without_backend_times_out),
		cmocka_unit_test(test_destroy_without_closed_times_out),
		cmocka_unit_test(test_toolstack_variations),
		cmocka_unit_test(test_workload_without_backend_fails_cleanly),
		cmocka_unit_test(test_workload_bad_spec),
		cmocka_unit_test(test_cli_usage_error),
		cmocka_unit_test(test_cli_fails_without_backend),
	};

	return cmocka_run_group_tests_name("xensim", tests, group_setup, group_teardown);
}
