// SPDX-License-Identifier: GPL-2.0-only
/* Harness self-test backend: the xenstore handshake plus an IOREQ server with an empty virtio-mmio slot. */

/*
 * Not vblkd, and sharing no code with it: this checks the harness itself (the rebuilt hypervisor's IOREQ
 * server, Debian's Dom0 kernel and libraries, the guest's virtio_mmio driver) before any vblkd exists.
 * For every virtio_disk backend directory libxl makes it creates one IOREQ server per guest, claims
 * the device's 0x200-byte MMIO window and answers InitWait (2); the guest's register reads then come
 * here and see a virtio-mmio device whose DeviceID is 0, which virtio_mmio ignores (no disk appears).
 * Closing (5) is answered with Closed (6); when libxl removes a guest's last backend directory the
 * server is torn down and its page unmapped, so the domain can die.  Every request is logged:
 *   access dom D addr 0x... size N read|write value 0x... type T
 * Single-threaded: one poll() over the xenstore and event-channel fds.
 */
#define __XEN_TOOLS__ 1
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xenstore.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

#define MAX_GUESTS 16
#define MAX_VCPUS 8
#define MAX_DEVS 8
#define MMIO_SIZE 0x200u

struct guest {
	bool used;
	unsigned int domid;
	ioservid_t id;
	xenforeignmemory_resource_handle *res;
	shared_iopage_t *page;
	unsigned int nr_vcpus;
	evtchn_port_t ports[MAX_VCPUS];
	unsigned int nr_devs;
	unsigned int devids[MAX_DEVS];
	uint64_t bases[MAX_DEVS];
};

static struct xs_handle *xs;
static xendevicemodel_handle *dmod;
static xenforeignmemory_handle *fmem;
static xenevtchn_handle *xce;
static struct guest guests[MAX_GUESTS];
static char be_root[64];

static struct guest *guest_find(unsigned int domid)
{
	for (unsigned int i = 0; i < MAX_GUESTS; i++)
		if (guests[i].used && guests[i].domid == domid)
			return &guests[i];
	return NULL;
}

static void guest_teardown(struct guest *g)
{
	for (unsigned int i = 0; i < g->nr_devs; i++)
		xendevicemodel_unmap_io_range_from_ioreq_server(dmod, (domid_t)g->domid, g->id, 1,
								 g->bases[i], g->bases[i] + MMIO_SIZE - 1);
	for (unsigned int i = 0; i < g->nr_vcpus; i++)
		xenevtchn_unbind(xce, g->ports[i]);
	xendevicemodel_set_ioreq_server_state(dmod, (domid_t)g->domid, g->id, 0);
	if (g->res)
		xenforeignmemory_unmap_resource(fmem, g->res);
	xendevicemodel_destroy_ioreq_server(dmod, (domid_t)g->domid, g->id);
	printf("released dom %u\n", g->domid);
	memset(g, 0, sizeof(*g));
}

/* One IOREQ server per guest, for all of its devices; returns NULL on failure (already logged). */
static struct guest *guest_get(unsigned int domid)
{
	struct guest *g = guest_find(domid);
	void *addr = NULL;
	int ret;

	if (g)
		return g;
	for (unsigned int i = 0; i < MAX_GUESTS && !g; i++)
		if (!guests[i].used)
			g = &guests[i];
	if (!g) {
		printf("dom %u: too many guests\n", domid);
		return NULL;
	}
	g->used = true;
	g->domid = domid;
	if (xendevicemodel_nr_vcpus(dmod, (domid_t)domid, &g->nr_vcpus) < 0 || g->nr_vcpus > MAX_VCPUS) {
		printf("dom %u: nr_vcpus: %s\n", domid, strerror(errno));
		goto err;
	}
	/* Arm has no buffered ioreqs. */
	if (xendevicemodel_create_ioreq_server(dmod, (domid_t)domid, HVM_IOREQSRV_BUFIOREQ_OFF, &g->id) < 0) {
		printf("dom %u: create_ioreq_server: %s\n", domid, strerror(errno));
		goto err;
	}
	g->res = xenforeignmemory_map_resource(fmem, (domid_t)domid, XENMEM_resource_ioreq_server, g->id,
					       XENMEM_resource_ioreq_server_frame_ioreq(0), 1, &addr,
					       PROT_READ | PROT_WRITE, 0);
	if (!g->res) {
		printf("dom %u: map_resource: %s\n", domid, strerror(errno));
		goto err_server;
	}
	g->page = addr;
	if (xendevicemodel_set_ioreq_server_state(dmod, (domid_t)domid, g->id, 1) < 0) {
		printf("dom %u: set_ioreq_server_state: %s\n", domid, strerror(errno));
		goto err_server;
	}
	for (unsigned int v = 0; v < g->nr_vcpus; v++) {
		ret = xenevtchn_bind_interdomain(xce, domid, g->page->vcpu_ioreq[v].vp_eport);
		if (ret < 0) {
			printf("dom %u: bind vcpu %u: %s\n", domid, v, strerror(errno));
			goto err_server;
		}
		g->ports[v] = (evtchn_port_t)ret;
		g->nr_vcpus = v + 1;
	}
	printf("dom %u: ioreq server %u, %u vcpus\n", domid, g->id, g->nr_vcpus);
	return g;

err_server:
	guest_teardown(g);
	return NULL;
err:
	memset(g, 0, sizeof(*g));
	return NULL;
}

static char *xs_get(unsigned int domid, unsigned int devid, const char *key)
{
	char path[256];
	unsigned int len;

	snprintf(path, sizeof(path), "%s/%u/%u/%s", be_root, domid, devid, key);
	return xs_read(xs, XBT_NULL, path, &len);
}

static void xs_set_state(unsigned int domid, unsigned int devid, const char *state)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%u/%u/state", be_root, domid, devid);
	if (!xs_write(xs, XBT_NULL, path, state, strlen(state)))
		printf("write %s: %s\n", path, strerror(errno));
	else
		printf("dom %u dev %u: state %s\n", domid, devid, state);
}

static void device_init(unsigned int domid, unsigned int devid)
{
	struct guest *g;
	char *base_s = xs_get(domid, devid, "base");
	uint64_t base;

	if (!base_s) {
		printf("dom %u dev %u: no base\n", domid, devid);
		return;
	}
	base = strtoull(base_s, NULL, 0);
	free(base_s);
	g = guest_get(domid);
	if (!g || g->nr_devs == MAX_DEVS)
		return;
	if (xendevicemodel_map_io_range_to_ioreq_server(dmod, (domid_t)domid, g->id, 1, base,
							base + MMIO_SIZE - 1) < 0) {
		printf("dom %u dev %u: map_io_range 0x%" PRIx64 ": %s\n", domid, devid, base, strerror(errno));
		return;
	}
	g->devids[g->nr_devs] = devid;
	g->bases[g->nr_devs++] = base;
	/* The range is claimed: the guest may run now. */
	xs_set_state(domid, devid, "2");
}

/* Any change below the backend root: look at every device, tear down guests whose directory went. */
static void rescan(void)
{
	unsigned int nd = 0, nv;
	char **doms = xs_directory(xs, XBT_NULL, be_root, &nd);

	for (unsigned int i = 0; i < nd; i++) {
		unsigned int domid = (unsigned int)strtoul(doms[i], NULL, 10);
		char path[128];
		char **devs;

		snprintf(path, sizeof(path), "%s/%u", be_root, domid);
		nv = 0;
		devs = xs_directory(xs, XBT_NULL, path, &nv);
		for (unsigned int j = 0; j < nv; j++) {
			unsigned int devid = (unsigned int)strtoul(devs[j], NULL, 10);
			char *st = xs_get(domid, devid, "state");
			struct guest *g = guest_find(domid);
			bool known = false;

			for (unsigned int k = 0; g && k < g->nr_devs; k++)
				known |= g->devids[k] == devid;
			if (st && !strcmp(st, "1") && !known)
				device_init(domid, devid);
			else if (st && !strcmp(st, "5"))
				xs_set_state(domid, devid, "6");
			free(st);
		}
		free(devs);
	}
	for (unsigned int i = 0; i < MAX_GUESTS; i++) {
		bool present = false;

		for (unsigned int j = 0; guests[i].used && j < nd; j++)
			present |= strtoul(doms[j], NULL, 10) == guests[i].domid;
		if (guests[i].used && !present)
			guest_teardown(&guests[i]);
	}
	free(doms);
}

static uint64_t reg_read(uint64_t off)
{
	switch (off) {
	case 0x000:
		return 0x74726976; /* MagicValue "virt" */
	case 0x004:
		return 2; /* Version: virtio 1.x register layout */
	default:
		return 0; /* DeviceID 0: no device, the driver stops here */
	}
}

static void on_event(void)
{
	xenevtchn_port_or_error_t port = xenevtchn_pending(xce);

	if (port < 0)
		return;
	xenevtchn_unmask(xce, (evtchn_port_t)port);
	for (unsigned int i = 0; i < MAX_GUESTS; i++) {
		struct guest *g = &guests[i];

		for (unsigned int v = 0; g->used && v < g->nr_vcpus; v++) {
			ioreq_t *r;

			if (g->ports[v] != (evtchn_port_t)port)
				continue;
			r = &g->page->vcpu_ioreq[v];
			if (r->state != STATE_IOREQ_READY)
				return;
			/* Read the request only after seeing READY (pairs with Xen's write barrier). */
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (r->type == IOREQ_TYPE_COPY && !r->data_is_ptr && r->dir == IOREQ_READ)
				r->data = reg_read(r->addr & (MMIO_SIZE - 1));
			/* Other types are answered too: Xen on Arm also sends IOREQ_TYPE_INVALIDATE (8). */
			printf("access dom %u addr 0x%" PRIx64 " size %u %s value 0x%" PRIx64 " type %u\n",
			       g->domid, (uint64_t)r->addr, r->size, r->dir == IOREQ_READ ? "read" : "write",
			       (uint64_t)r->data, r->type);
			/* The response data before the state Xen polls. */
			__atomic_thread_fence(__ATOMIC_RELEASE);
			r->state = STATE_IORESP_READY;
			xenevtchn_notify(xce, (evtchn_port_t)port);
			return;
		}
	}
}

/* sd_notify(3) READY=1, as vblkd does under a Type=notify unit: the harness waits for it. */
static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (!path || strlen(path) >= sizeof(sa.sun_path))
		return;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		perror("ioreq-stub: notify");
	close(fd);
}

int main(void)
{
	struct pollfd pfd[2];
	char *self;
	unsigned int len;

	setvbuf(stdout, NULL, _IOLBF, 0);
	xs = xs_open(0);
	dmod = xendevicemodel_open(NULL, 0);
	fmem = xenforeignmemory_open(NULL, 0);
	xce = xenevtchn_open(NULL, 0);
	if (!xs || !dmod || !fmem || !xce) {
		perror("ioreq-stub: open");
		return 1;
	}
	self = xs_read(xs, XBT_NULL, "domid", &len);
	snprintf(be_root, sizeof(be_root), "/local/domain/%s/backend/virtio_disk", self ? self : "0");
	free(self);
	if (!xs_watch(xs, be_root, "be")) {
		perror("ioreq-stub: watch");
		return 1;
	}
	printf("ioreq-stub: watching %s\n", be_root);
	notify_ready();
	pfd[0] = (struct pollfd){ .fd = xs_fileno(xs), .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = xenevtchn_fd(xce), .events = POLLIN };
	for (;;) {
		char **vec;
		bool changed = false;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("ioreq-stub: poll");
			return 1;
		}
		if (pfd[1].revents & POLLIN)
			on_event();
		while ((vec = xs_check_watch(xs))) {
			changed = true;
			free(vec);
		}
		if (changed)
			rescan();
	}
}
