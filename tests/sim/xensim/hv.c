// SPDX-License-Identifier: GPL-2.0-only
/* The simulated hypervisor: memfd RAM, IOREQ servers and slots, event channels, grants, SPIs. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <linux/kcmp.h>
#include <unistd.h>
#include <xen/memory.h>
#include <xen/hvm/dm_op.h>

#include "log.h"
#include "sim.h"

/* xen/include/public/hvm/hvm_op.h (visible to toolstacks only). */
#define HVM_IOREQSRV_BUFIOREQ_OFF 0

static struct sim_domain *hv_domains;
static uint32_t hv_next_domid = 1;
/* Dom0's ports are allocated lowest-free like Xen's; the first few stand for dom0's own channels. */
#define HV_FIRST_LOCAL_PORT 5

/* Dom0's side of an interdomain channel. */
struct hv_binding {
	uint32_t local_port;
	struct sim_domain *dom;	/* NULL once the domain is gone */
	uint32_t remote_port;
	void *owner;
	struct hv_binding *next;
};

static struct hv_binding *hv_bindings;

struct sim_domain *hv_domain_find(uint32_t domid)
{
	struct sim_domain *d;

	for (d = hv_domains; d; d = d->next)
		if (d->domid == domid && !d->dying)
			return d;
	return NULL;
}

struct sim_domain *hv_domain_any(void)
{
	struct sim_domain *d;

	for (d = hv_domains; d; d = d->next)
		if (!d->dying && !d->destroying)
			return d;
	return NULL;
}

unsigned int hv_domain_count(void)
{
	struct sim_domain *d;
	unsigned int n = 0;

	for (d = hv_domains; d; d = d->next)
		n++;
	return n;
}

static struct sim_port *port_new(struct sim_domain *dom)
{
	struct sim_port *p;
	uint32_t i;

	/* Port 0 is never valid in Xen. */
	for (i = 1; i < SIM_MAX_PORTS; i++)
		if (!dom->ports[i])
			break;
	if (i == SIM_MAX_PORTS)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->port = i;
	p->unbound_since_us = sim_now_us();
	p->to_dom0 = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->to_guest = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->to_dom0 < 0 || p->to_guest < 0) {
		if (p->to_dom0 >= 0)
			close(p->to_dom0);
		if (p->to_guest >= 0)
			close(p->to_guest);
		free(p);
		return NULL;
	}
	dom->ports[i] = p;
	return p;
}

static void port_free(struct sim_domain *dom, struct sim_port *p)
{
	struct hv_binding *b;

	if (!p)
		return;
	for (b = hv_bindings; b; b = b->next)
		if (b->dom == dom && b->remote_port == p->port)
			b->dom = NULL;
	dom->ports[p->port] = NULL;
	close(p->to_dom0);
	close(p->to_guest);
	free(p);
}

/*
 * @len bytes of memory shared with the backend process: a memfd (*ret_fd),
 * mapped here too.  NULL with errno set if it cannot be had.
 */
static void *shared_mem(const char *name, size_t len, int *ret_fd)
{
	int fd = memfd_create(name, MFD_CLOEXEC), err;
	void *p;

	if (fd < 0)
		return NULL;
	if (ftruncate(fd, (off_t)len) < 0 ||
	    (p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		err = errno;
		close(fd);
		errno = err;
		return NULL;
	}
	*ret_fd = fd;
	return p;
}

int hv_domain_create(const struct guest_config *cfg, struct sim_domain **ret_dom)
{
	struct sim_domain *d;
	unsigned int i;
	int r;

	if (!cfg->vcpus || cfg->vcpus > XSIM_MAX_VCPUS || !cfg->mem ||
	    cfg->mem > XSIM_GUEST_RAM_MAX || (cfg->mem & (XSIM_PAGE_SIZE - 1)))
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->cfg = *cfg;
	d->vcpus = cfg->vcpus;
	d->ram_bytes = cfg->mem;
	d->refs = 1;
	d->kill_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->kill_fd < 0) {
		r = -errno;
		goto err_free;
	}
	d->irqs = shared_mem("xensim-irqs", XSIM_IRQ_PAGE_BYTES, &d->irq_fd);
	if (!d->irqs) {
		r = -errno;
		goto err_kill;
	}
	d->ram = shared_mem("xensim-guest-ram", d->ram_bytes, &d->ram_fd);
	if (!d->ram) {
		r = -errno;
		goto err_irq;
	}
	d->vcpu_locks = calloc(d->vcpus, sizeof(*d->vcpu_locks));
	if (!d->vcpu_locks) {
		r = -ENOMEM;
		goto err_map;
	}
	for (i = 0; i < d->vcpus; i++)
		pthread_mutex_init(&d->vcpu_locks[i], NULL);
	d->domid = hv_next_domid++;
	if (getrandom(d->handle, sizeof(d->handle), 0) != sizeof(d->handle))
		memcpy(d->handle, &d->domid, sizeof(d->domid));
	d->next = hv_domains;
	hv_domains = d;
	*ret_dom = d;
	return 0;

err_map:
	munmap(d->ram, d->ram_bytes);
	close(d->ram_fd);
err_irq:
	munmap(d->irqs, XSIM_IRQ_PAGE_BYTES);
	close(d->irq_fd);
err_kill:
	close(d->kill_fd);
err_free:
	free(d);
	return r;
}

bool sim_privcmd_eventfd;

static void ioeventfd_free(struct sim_ioeventfd *e)
{
	close(e->fd);
	free(e->ports);
	free(e);
}

static void ports_release(const struct sim_ioeventfd *gone);

static void ioserv_release(struct sim_domain *dom, struct sim_ioserv *s)
{
	unsigned int i;

	/*
	 * Linux keeps a registration until DEASSIGN even when its guest is gone
	 * (the kioreq names dom, address and vcpus, not a live domain); here it
	 * goes with the server, the ports it held with it, and a later DEASSIGN
	 * gets ENODEV: what a successor does either way is the same.
	 */
	while (s->ioeventfds) {
		struct sim_ioeventfd *e = s->ioeventfds;

		s->ioeventfds = e->next;
		ports_release(e);
		ioeventfd_free(e);
	}

	for (i = 0; i < dom->vcpus; i++)
		port_free(dom, s->ports[i]);
	free(s->ports);
	munmap(s->page, XSIM_PAGE_SIZE);
	close(s->page_fd);
	close(s->dead_fd);
	free(s);
}

static void ioserv_put(struct sim_domain *dom, struct sim_ioserv *s)
{
	if (--s->refs == 0)
		ioserv_release(dom, s);
}

/* Destroy: no new ioreqs; vCPUs waiting on it wake up and fail. */
static void ioserv_kill(struct sim_domain *dom, struct sim_ioserv *s)
{
	uint64_t one = 1;
	unsigned int i;

	for (i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++)
		if (dom->servers[i] == s)
			dom->servers[i] = NULL;
	s->dead = true;
	if (write(s->dead_fd, &one, sizeof(one)) < 0)
		log_warn("ioreq server wake-up: %m");
	ioserv_put(dom, s);
}

void hv_domain_kill(struct sim_domain *dom)
{
	struct sim_domain **pp;
	uint64_t one = 1;
	unsigned int i;

	if (dom->dying)
		return;
	dom->dying = true;
	if (write(dom->kill_fd, &one, sizeof(one)) < 0)
		log_warn("domain wake-up: %m");
	/* vCPUs asleep in wait for an interrupt wake up and see the end. */
	__atomic_store_n(&dom->irqs->dying, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i <= XSIM_IRQ_MAX; i++) {
		__atomic_fetch_add(&dom->irqs->seq[i], 1, __ATOMIC_SEQ_CST);
		xsim_futex_wake(&dom->irqs->seq[i]);
	}
	for (i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++)
		if (dom->servers[i])
			ioserv_kill(dom, dom->servers[i]);
	for (pp = &hv_domains; *pp; pp = &(*pp)->next)
		if (*pp == dom) {
			*pp = dom->next;
			break;
		}
	dom->next = NULL;
	pthread_cond_broadcast(&sim_cond);
}

void hv_domain_get(struct sim_domain *dom)
{
	dom->refs++;
}

static void domain_release(struct sim_domain *d)
{
	unsigned int i;

	for (i = 0; i < SIM_MAX_PORTS; i++)
		port_free(d, d->ports[i]);
	for (i = 0; i < d->vcpus; i++)
		pthread_mutex_destroy(&d->vcpu_locks[i]);
	free(d->vcpu_locks);
	munmap(d->ram, d->ram_bytes);
	close(d->ram_fd);
	munmap(d->irqs, XSIM_IRQ_PAGE_BYTES);
	close(d->irq_fd);
	close(d->kill_fd);
	free(d);
}

void hv_domain_put(struct sim_domain *dom)
{
	bool last;

	pthread_mutex_lock(&sim_lock);
	last = --dom->refs == 0;
	if (last && !dom->dying)
		log_err("dom %u: last reference dropped while alive", dom->domid);
	if (last)
		domain_release(dom);
	pthread_mutex_unlock(&sim_lock);
}

void hv_stats(struct xsim_stats *st)
{
	struct sim_domain *d;
	struct hv_binding *b;
	unsigned int i;

	st->domains = 0;
	st->ioreq_servers = 0;
	st->bound_ports = 0;
	st->grants = 0;
	for (d = hv_domains; d; d = d->next) {
		st->domains++;
		for (i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++)
			if (d->servers[i])
				st->ioreq_servers++;
		for (i = 0; i < XSIM_GRANT_ENTRIES; i++)
			if (d->grants[i].used)
				st->grants++;
	}
	for (b = hv_bindings; b; b = b->next)
		st->bound_ports++;
}

/*
 * Close dom0's end of a binding, as evtchn_close() (xen/common/event_channel.c)
 * does for ECS_INTERDOMAIN: dom0's channel is freed, pending bit and all, and
 * the guest's end reverts to ECS_UNBOUND with dom0 as its remote domain, so
 * that any process of dom0 may bind it again.  The guest's port, its number in
 * the ioreq page and the IOREQ server are untouched.
 */
static void binding_close(struct hv_binding *b)
{
	struct sim_port *p = b->dom ? b->dom->ports[b->remote_port] : NULL;
	uint64_t cnt;

	if (!p)
		return;
	__atomic_store_n(&p->local_port, 0, __ATOMIC_SEQ_CST);
	p->unbound_since_us = sim_now_us();
	/* Non-blocking: EAGAIN when nothing was pending. */
	if (read(p->to_dom0, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		log_warn("dom %u port %u: clearing dom0's pending event: %m", b->dom->domid,
			 p->port);
}

/*
 * A connection closed, the way a process's /dev/xen/evtchn file is released
 * when it dies: each of its ports is closed (evtchn_close()).  This is all
 * that dies with a backend process here: IOREQ servers belong to the guest
 * domain (xen/common/ioreq.c keeps them until ioreq_server_destroy() or
 * ioreq_server_destroy_all() when the domain goes), and foreign mappings were
 * mmaps in the dead process.
 */
/*
 * Whether privcmd's ioeventfd handler hangs on local port @b: the kernel's
 * alloc_ioreq() bound its own handler to each vCPU's port (shared with
 * /dev/xen/evtchn's, refcounted: drivers/xen/events/events_base.c
 * bind_evtchn_to_irq_chip()), so the port stays bound while a registration
 * of that guest names it, whoever closed their end (ioreq_free() unbinds).
 */
static bool binding_held(const struct hv_binding *b)
{
	if (!b->dom)
		return false;
	for (unsigned int i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++)
		for (const struct sim_ioeventfd *e = b->dom->servers[i] ?
			     b->dom->servers[i]->ioeventfds : NULL; e; e = e->next)
			for (unsigned int v = 0; v < e->nr_vcpus; v++)
				if (e->ports[v] == b->local_port)
					return true;
	return false;
}

void hv_drop_owner(void *owner)
{
	struct hv_binding **pp = &hv_bindings, *b;

	/*
	 * A dead process's ioeventfds stay: Linux keeps them on privcmd's
	 * global list until a DEASSIGN naming the same eventfd (privcmd.c
	 * privcmd_ioeventfd_deassign()), and the ports they hang on stay bound,
	 * the kernel's now (owner NULL): a successor cannot bind the guest's
	 * ends (EINVAL) until it removes them.
	 */
	while ((b = *pp)) {
		if (b->owner == owner && binding_held(b)) {
			b->owner = NULL;
			pp = &b->next;
		} else if (b->owner == owner) {
			binding_close(b);
			*pp = b->next;
			free(b);
		} else {
			pp = &b->next;
		}
	}
}

/*
 * privcmd.c ioreq_free(), when the last registration of a (dom, ioreq page,
 * vcpus) goes: the kernel's handlers come off the ports; a port no process
 * holds any more (its binder died) is closed, the guest's end unbound.
 */
static void ports_release(const struct sim_ioeventfd *gone)
{
	struct hv_binding **pp = &hv_bindings, *b;

	while ((b = *pp)) {
		bool named = false;

		for (unsigned int v = 0; v < gone->nr_vcpus; v++)
			named |= gone->ports[v] == b->local_port;
		if (named && !b->owner && !binding_held(b)) {
			binding_close(b);
			*pp = b->next;
			free(b);
		} else {
			pp = &b->next;
		}
	}
}

static struct sim_ioserv *ioserv_find(struct sim_domain *dom, uint32_t id)
{
	if (id >= XSIM_MAX_IOREQ_SERVERS)
		return NULL;
	return dom->servers[id];
}

static int ioserv_create(struct sim_domain *dom, uint64_t bufioreq, uint32_t *ret_id)
{
	struct sim_ioserv *s;
	unsigned int i, id;
	int r;

	/* Arm's Xen has no buffered ioreqs (only HVM_IOREQSRV_BUFIOREQ_OFF). */
	if (bufioreq != HVM_IOREQSRV_BUFIOREQ_OFF)
		return -EOPNOTSUPP;
	for (id = 0; id < XSIM_MAX_IOREQ_SERVERS; id++)
		if (!dom->servers[id])
			break;
	if (id == XSIM_MAX_IOREQ_SERVERS)
		return -ENOSPC;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->id = (uint16_t)id;
	s->refs = 1;
	s->page_fd = -1;
	s->dead_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->ports = calloc(dom->vcpus, sizeof(*s->ports));
	if (s->dead_fd < 0 || !s->ports) {
		r = -ENOMEM;
		goto err;
	}
	s->page = shared_mem("xensim-ioreq-page", XSIM_PAGE_SIZE, &s->page_fd);
	if (!s->page) {
		r = -errno;
		goto err;
	}
	/* Like Xen: one unbound event channel per vCPU, its number in the slot. */
	for (i = 0; i < dom->vcpus; i++) {
		s->ports[i] = port_new(dom);
		if (!s->ports[i]) {
			r = -ENOSPC;
			goto err;
		}
		s->page->vcpu_ioreq[i].vp_eport = s->ports[i]->port;
	}
	dom->servers[id] = s;
	*ret_id = id;
	return 0;

err:
	if (s->ports)
		for (i = 0; i < dom->vcpus; i++)
			port_free(dom, s->ports[i]);
	free(s->ports);
	if (s->page)
		munmap(s->page, XSIM_PAGE_SIZE);
	if (s->page_fd >= 0)
		close(s->page_fd);
	if (s->dead_fd >= 0)
		close(s->dead_fd);
	free(s);
	return r;
}

static int ioserv_range(struct sim_ioserv *s, uint32_t type, uint64_t start, uint64_t end,
			bool map)
{
	unsigned int i;

	if (type != XEN_DMOP_IO_RANGE_PORT && type != XEN_DMOP_IO_RANGE_MEMORY &&
	    type != XEN_DMOP_IO_RANGE_PCI)
		return -EINVAL;
	if (start > end)
		return -EINVAL;
	if (!map) {
		for (i = 0; i < s->nr_ranges; i++)
			if (s->ranges[i].type == type && s->ranges[i].start == start &&
			    s->ranges[i].end == end) {
				s->ranges[i] = s->ranges[--s->nr_ranges];
				return 0;
			}
		return -ENOENT;
	}
	/* rangeset_add_range() refuses overlaps within one server. */
	for (i = 0; i < s->nr_ranges; i++)
		if (s->ranges[i].type == type && start <= s->ranges[i].end &&
		    s->ranges[i].start <= end)
			return -EEXIST;
	if (s->nr_ranges == SIM_MAX_RANGES)
		return -ENOSPC;
	s->ranges[s->nr_ranges++] = (struct sim_range){ .type = type, .start = start, .end = end };
	return 0;
}

int hv_grant(struct sim_domain *dom, uint64_t gfn, bool readonly, uint32_t *ret_ref)
{
	uint32_t i;

	/* Refs 0..7 are reserved in Xen's grant table (GNTTAB_NR_RESERVED_ENTRIES). */
	for (i = 8; i < XSIM_GRANT_ENTRIES; i++)
		if (!dom->grants[i].used) {
			dom->grants[i] = (struct sim_grant){ .gfn = gfn, .used = true,
							     .readonly = readonly };
			*ret_ref = i;
			return 0;
		}
	return -ENOSPC;
}

int hv_grant_range(struct sim_domain *dom, uint64_t gfn, uint32_t n, bool readonly,
		   uint32_t *ret_first)
{
	uint32_t first, i;

	if (!n)
		return -EINVAL;
	for (first = 8; first + n <= XSIM_GRANT_ENTRIES; first++) {
		for (i = 0; i < n && !dom->grants[first + i].used; i++)
			;
		if (i < n) {
			first += i;
			continue;
		}
		for (i = 0; i < n; i++)
			dom->grants[first + i] = (struct sim_grant){ .gfn = gfn + i, .used = true,
								     .readonly = readonly };
		*ret_first = first;
		return 0;
	}
	return -ENOSPC;
}

void hv_ungrant(struct sim_domain *dom, uint32_t ref)
{
	if (ref < XSIM_GRANT_ENTRIES)
		dom->grants[ref].used = false;
}

static bool gfn_in_ram(struct sim_domain *dom, uint64_t gfn)
{
	uint64_t first = XSIM_GUEST_RAM_BASE >> XSIM_PAGE_SHIFT;

	return gfn >= first && gfn - first < dom->ram_bytes / XSIM_PAGE_SIZE;
}

/*
 * The guest (or Xen on a vCPU's behalf) raises its port towards dom0: set
 * pending on dom0's end if it is bound.  An unbound port drops the event, as
 * evtchn_send() does for ECS_UNBOUND ("silently drop the notification") and
 * notify_via_xen_event_channel() for any state but ECS_INTERDOMAIN
 * (xen/common/event_channel.c); what a vCPU asked for stays in its ioreq
 * slot, and the next bind sets pending anyway (hv_bind()).  The load pairs
 * with the stores in hv_bind() and binding_close(); the caller's earlier
 * stores (an ioreq's state) come before it.
 */
static int guest_send(struct sim_port *p)
{
	uint64_t one = 1;

	if (!__atomic_load_n(&p->local_port, __ATOMIC_SEQ_CST))
		return 0;
	return write(p->to_dom0, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

static uint32_t hv_free_local_port(void)
{
	uint32_t port;

	for (port = HV_FIRST_LOCAL_PORT;; port++) {
		struct hv_binding *b;

		for (b = hv_bindings; b; b = b->next)
			if (b->local_port == port)
				break;
		if (!b)
			return port;
	}
}

static int hv_bind(void *owner, struct sim_domain *dom, uint32_t remote, uint32_t *ret_local,
		   int *fds)
{
	struct hv_binding *b;
	struct sim_port *p;

	if (remote == 0 || remote >= SIM_MAX_PORTS || !(p = dom->ports[remote]))
		return -EINVAL;
	/*
	 * Only an ECS_UNBOUND port whose remote is dom0 can be bound: one bound
	 * already (by this process or another of dom0's) is EINVAL, as in Xen's
	 * evtchn_bind_interdomain().  A port whose binder died is unbound again
	 * (binding_close()), so a new process binds it.
	 */
	if (p->local_port)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->local_port = hv_free_local_port();
	b->dom = dom;
	b->remote_port = remote;
	b->owner = owner;
	b->next = hv_bindings;
	hv_bindings = b;
	__atomic_store_n(&p->local_port, b->local_port, __ATOMIC_SEQ_CST);
	if (p->unbound_since_us) {
		p->unbound_total_us += sim_now_us() - p->unbound_since_us;
		p->unbound_since_us = 0;
	}
	/*
	 * evtchn_bind_interdomain(): "We may have lost notifications on the
	 * remote unbound port. Fix that up here by conservatively always setting
	 * a notification on the local port."  So every bind starts pending: a
	 * process that binds the port of a vCPU already waiting in its ioreq
	 * hears of it.  After the store above: a vCPU that found the port unbound
	 * (and so sent nothing) had published its ioreq before this event.
	 */
	if (guest_send(p) < 0)
		log_warn("dom %u port %u: pending at bind: %m", dom->domid, remote);
	fds[0] = p->to_dom0;
	fds[1] = p->to_guest;
	*ret_local = b->local_port;
	return 0;
}

static int hv_unbind(void *owner, uint32_t local)
{
	struct hv_binding **pp, *b;

	for (pp = &hv_bindings; (b = *pp); pp = &b->next)
		if (b->local_port == local && b->owner == owner) {
			/* The process's handler goes; privcmd's keeps the port (binding_held()). */
			if (binding_held(b)) {
				b->owner = NULL;
				return 0;
			}
			binding_close(b);
			*pp = b->next;
			free(b);
			return 0;
		}
	return -EINVAL;
}

static int hv_list(uint32_t first, uint64_t max, char **ret_tail, uint32_t *ret_n)
{
	struct xsim_dominfo *l;
	struct sim_domain *d;
	uint32_t n = 0, id;
	uint32_t cap = 1 + hv_domain_count();

	if (max > XSIM_TAIL_MAX / sizeof(*l))
		max = XSIM_TAIL_MAX / sizeof(*l);
	l = calloc(cap, sizeof(*l));
	if (!l)
		return -ENOMEM;
	/* In domid order, dom0 (the simulator's dom0 is always there) first. */
	for (id = first; n < max && n < cap; id++) {
		if (id == 0) {
			l[n++] = (struct xsim_dominfo){ .domid = 0, .vcpus = 1 };
			continue;
		}
		if (id >= hv_next_domid)
			break;
		for (d = hv_domains; d; d = d->next)
			if (d->domid == id) {
				l[n++] = (struct xsim_dominfo){
					.domid = id, .vcpus = d->vcpus,
					.flags = (d->dying ? XSIM_DOMF_DYING : 0) |
						 (d->paused ? XSIM_DOMF_PAUSED : 0),
					.ram_pages = d->ram_bytes / XSIM_PAGE_SIZE };
				memcpy(l[n - 1].handle, d->handle, sizeof(d->handle));
				break;
			}
	}
	*ret_tail = (char *)l;
	*ret_n = n * (uint32_t)sizeof(*l);
	return 0;
}

int hv_handle(void *owner, struct xsim_msg *m, const char *tail, char **ret_tail, uint32_t *ret_n,
	      int *ret_fds, unsigned int *ret_nfds)
{
	struct sim_domain *dom = NULL;
	struct sim_ioserv *s;
	uint32_t id = 0;
	int r;

	if (m->op == XSIM_OP_DOMLIST)
		return hv_list(m->domid, m->a, ret_tail, ret_n);
	if (m->op == XSIM_OP_EVT_UNBIND)
		return hv_unbind(owner, m->id);
	if (m->op == XSIM_OP_DOMINFO && m->domid == 0) {
		m->a = 1;
		m->b = 0;
		m->c = 0;
		return 0;
	}
	dom = hv_domain_find(m->domid);
	if (!dom)
		return -ESRCH;
	switch (m->op) {
	case XSIM_OP_DOMINFO:
		m->a = dom->vcpus;
		m->b = dom->ram_bytes / XSIM_PAGE_SIZE;
		m->c = dom->paused ? XSIM_DOMF_PAUSED : 0;
		return 0;
	case XSIM_OP_IOREQ_CREATE:
		r = ioserv_create(dom, m->a, &id);
		if (r == 0)
			m->id = id;
		return r;
	case XSIM_OP_IOREQ_INFO:
		if (!ioserv_find(dom, m->id))
			return -ENOENT;
		m->a = 0;	/* no buffered ioreq port */
		return 0;
	case XSIM_OP_IOREQ_RANGE:
		s = ioserv_find(dom, m->id);
		if (!s)
			return -ENOENT;
		return ioserv_range(s, (uint32_t)m->a, m->b, m->c, m->d != 0);
	case XSIM_OP_IOREQ_STATE:
		s = ioserv_find(dom, m->id);
		if (!s)
			return -ENOENT;
		s->enabled = m->a != 0;
		return 0;
	case XSIM_OP_IOREQ_DESTROY:
		s = ioserv_find(dom, m->id);
		if (!s)
			return -ENOENT;
		ioserv_kill(dom, s);
		return 0;
	case XSIM_OP_RESOURCE:
		if (m->a != XENMEM_resource_ioreq_server)
			return -EOPNOTSUPP;
		s = ioserv_find(dom, m->id);
		if (!s)
			return -ENOENT;
		if (m->c == 0) {
			/* Size query: frame 0 (bufioreq, absent) and 1 (ioreq). */
			m->b = 2;
			return 0;
		}
		if (m->b != XENMEM_resource_ioreq_server_frame_ioreq(0) || m->c != 1)
			return -EINVAL;
		ret_fds[0] = s->page_fd;
		*ret_nfds = 1;
		m->a = 0;
		return 0;
	case XSIM_OP_FMAP: {
		uint64_t n = m->n / sizeof(uint64_t), i;
		int32_t *errs;

		if (!n || m->n % sizeof(uint64_t))
			return -EINVAL;
		errs = calloc(n, sizeof(*errs));
		if (!errs)
			return -ENOMEM;
		for (i = 0; i < n; i++) {
			uint64_t gfn;

			memcpy(&gfn, tail + i * sizeof(gfn), sizeof(gfn));
			/* Arm's p2m lookup of a hole fails with EINVAL. */
			errs[i] = gfn_in_ram(dom, gfn) ? 0 : -EINVAL;
		}
		*ret_tail = (char *)errs;
		*ret_n = (uint32_t)(n * sizeof(*errs));
		ret_fds[0] = dom->ram_fd;
		*ret_nfds = 1;
		m->a = XSIM_GUEST_RAM_BASE >> XSIM_PAGE_SHIFT;
		return 0;
	}
	case XSIM_OP_GNTMAP: {
		uint64_t n = m->n / sizeof(uint32_t), i;
		uint64_t *gfns;

		if (!n || m->n % sizeof(uint32_t))
			return -EINVAL;
		/* The reply (a u64 per ref) must fit a message too. */
		if (n > XSIM_TAIL_MAX / sizeof(*gfns))
			return -E2BIG;
		gfns = calloc(n, sizeof(*gfns));
		if (!gfns)
			return -ENOMEM;
		for (i = 0; i < n; i++) {
			uint32_t ref;

			memcpy(&ref, tail + i * sizeof(ref), sizeof(ref));
			if (ref >= XSIM_GRANT_ENTRIES || !dom->grants[ref].used ||
			    (m->a && dom->grants[ref].readonly) ||
			    !gfn_in_ram(dom, dom->grants[ref].gfn)) {
				free(gfns);
				return -EINVAL;
			}
			gfns[i] = dom->grants[ref].gfn;
		}
		*ret_tail = (char *)gfns;
		*ret_n = (uint32_t)(n * sizeof(*gfns));
		ret_fds[0] = dom->ram_fd;
		*ret_nfds = 1;
		m->a = XSIM_GUEST_RAM_BASE >> XSIM_PAGE_SHIFT;
		return 0;
	}
	case XSIM_OP_EVT_BIND:
		r = hv_bind(owner, dom, (uint32_t)m->a, &id, ret_fds);
		if (r == 0) {
			m->id = id;
			*ret_nfds = 2;
		}
		return r;
	case XSIM_OP_IRQ_PAGE:
		ret_fds[0] = dom->irq_fd;
		*ret_nfds = 1;
		return 0;
	case XSIM_OP_CTL_NOTIFIES:
		m->a = dom->notifies_kernel;
		m->b = dom->notifies_backend;
		m->c = dom->irqfd_raises;
		return 0;
	case XSIM_OP_CTL_IRQS:
		if (m->a > XSIM_IRQ_MAX)
			return -EINVAL;
		m->a = __atomic_load_n(&dom->irqs->raised[m->a], __ATOMIC_SEQ_CST);
		return 0;
	case XSIM_OP_CTL_GRANT:
		r = hv_grant(dom, m->a, m->b != 0, &id);
		if (r == 0)
			m->id = id;
		return r;
	case XSIM_OP_CTL_NOTIFY:
		if (m->a == 0 || m->a >= SIM_MAX_PORTS || !dom->ports[m->a])
			return -EINVAL;
		/* evtchn_send() succeeds on an unbound port: the event is dropped. */
		return guest_send(dom->ports[m->a]);
	case XSIM_OP_CTL_MEM: {
		uint64_t gpa = m->a, len = m->b;

		if (gpa < XSIM_GUEST_RAM_BASE || len > XSIM_TAIL_MAX ||
		    gpa - XSIM_GUEST_RAM_BASE > dom->ram_bytes ||
		    len > dom->ram_bytes - (gpa - XSIM_GUEST_RAM_BASE))
			return -EFAULT;
		if (m->c) {
			if (m->n != len)
				return -EINVAL;
			memcpy(dom->ram + (gpa - XSIM_GUEST_RAM_BASE), tail, len);
			return 0;
		}
		*ret_tail = malloc(len ? len : 1);
		if (!*ret_tail)
			return -ENOMEM;
		memcpy(*ret_tail, dom->ram + (gpa - XSIM_GUEST_RAM_BASE), len);
		*ret_n = (uint32_t)len;
		return 0;
	}
	default:
		return -ENOSYS;
	}
}

/*
 * The byte after _pad0 of struct ioreq holds state:4, data_is_ptr:1, dir:1,
 * df:1 (xen/include/public/hvm/ioreq.h; GCC allocates bit-fields from the
 * least significant bit on little-endian targets).  The state changes are the
 * hand-over points between vCPU and device model, so that byte is accessed
 * atomically, with release/acquire ordering for the rest of the slot.
 */
#define IOREQ_FLAGS_OFFSET 30

static uint8_t *ioreq_flags(ioreq_t *req)
{
	return (uint8_t *)req + IOREQ_FLAGS_OFFSET;
}

/* Microseconds @p has spent without a dom0 end up to @now (under sim_lock). */
static uint64_t port_unbound_us(const struct sim_port *p, uint64_t now)
{
	return p->unbound_total_us + (p->unbound_since_us ? now - p->unbound_since_us : 0);
}

/*
 * A vCPU waiting for a back end that is not there gives up after this many
 * --timeout periods (Xen waits for ever), so that a back end that never
 * comes back is reported rather than hanging the simulator.
 */
#define HV_OUTAGE_TIMEOUTS 12

static struct sim_ioserv *ioserv_route(struct sim_domain *dom, uint64_t addr, unsigned int size)
{
	unsigned int i, j;

	for (i = 0; i < XSIM_MAX_IOREQ_SERVERS; i++) {
		struct sim_ioserv *s = dom->servers[i];

		if (!s || !s->enabled || s->dead)
			continue;
		for (j = 0; j < s->nr_ranges; j++)
			if (s->ranges[j].type == XEN_DMOP_IO_RANGE_MEMORY &&
			    addr >= s->ranges[j].start && addr + size - 1 <= s->ranges[j].end)
				return s;
	}
	return NULL;
}

bool sim_same_file(int a, int b)
{
	pid_t pid = getpid();

	return syscall(SYS_kcmp, pid, pid, KCMP_FILE, a, b) == 0;
}

/*
 * IOCTL_PRIVCMD_IOEVENTFD (Linux drivers/xen/privcmd.c
 * privcmd_ioctl_ioeventfd(), privcmd_ioeventfd_assign()/_deassign()): the
 * same checks, one entry per eventfd and guest, the ports the caller's
 * (local) ones.  The tail is the ports, then the ioreq page's address in the
 * caller (the kernel's kioreq->uioreq).  ASSIGN names the server by id
 * (libxensim found it from the address, as the kernel finds the page behind
 * the VMA); DEASSIGN, like the kernel's, looks at no mapping: the first
 * registration group of (dom, address, vcpus), and in it the same eventfd.
 */
int hv_ioeventfd(void *owner, struct xsim_msg *m, const char *tail, int *fd)
{
	struct sim_domain *dom;
	struct sim_ioserv *s;
	struct sim_ioeventfd *e, **ep;
	uint32_t size = (uint32_t)m->b, queue = (uint32_t)(m->b >> 32);
	uint64_t uioreq;

	if (!sim_privcmd_eventfd)
		return -ENOTTY;	/* privcmd_ioctl(): an unknown command */
	if (m->c & ~1ull)
		return -EINVAL;
	if (*fd < 0)
		return -EBADF;
	if (!m->d || m->d > 4096 || m->n != m->d * sizeof(uint32_t) + sizeof(uint64_t))
		return -EINVAL;
	memcpy(&uioreq, tail + m->d * sizeof(uint32_t), sizeof(uioreq));
	dom = hv_domain_find(m->domid);
	if (m->c) {
		/* privcmd_ioeventfd_deassign(): -ENODEV when nothing matches. */
		for (unsigned int i = 0; dom && i < XSIM_MAX_IOREQ_SERVERS; i++) {
			if (!(s = dom->servers[i]))
				continue;
			/* The group's entries (one kioreq's list) may sit on several servers. */
			for (ep = &s->ioeventfds; (e = *ep); ep = &e->next) {
				if (e->uioreq != uioreq || e->nr_vcpus != m->d ||
				    !sim_same_file(e->fd, *fd))
					continue;
				*ep = e->next;
				ports_release(e);
				ioeventfd_free(e);
				return 0;
			}
		}
		return -ENODEV;
	}
	if (!dom)
		return -ESRCH;
	s = ioserv_find(dom, m->id);
	if (!s)
		return -EFAULT;	/* no such mapping: find_vma() fails */
	if (m->a + size < m->a || (size != 1 && size != 2 && size != 4 && size != 8))
		return -EINVAL;
	if (m->d != dom->vcpus)
		return -EINVAL;
	for (e = s->ioeventfds; e; e = e->next)
		if (sim_same_file(e->fd, *fd))
			return -EBUSY;	/* get_ioreq(): the same eventfd twice for a guest */
	e = calloc(1, sizeof(*e));
	if (!e || !(e->ports = malloc(m->d * sizeof(uint32_t)))) {
		free(e);
		return -ENOMEM;
	}
	memcpy(e->ports, tail, m->d * sizeof(uint32_t));
	e->nr_vcpus = (unsigned int)m->d;
	e->owner = owner;
	e->uioreq = uioreq;
	e->base = m->a;
	e->size = size;
	e->queue = queue;
	e->fd = *fd;
	*fd = -1;
	e->next = s->ioeventfds;
	s->ioeventfds = e;
	return 0;
}

/*
 * privcmd.c ioeventfd_interrupt(), for the event of @vcpu's new ioreq: a COPY
 * write of a registered queue index (low 16 bits) of the registered size to
 * a registered base + 0x50 signals that eventfd and is answered
 * (IORESP_READY, the vCPU notified), anything else is left to the back end.
 * The kernel runs it in the event's interrupt handler, right after
 * /dev/xen/evtchn's (the back end's) and long before that process can look
 * at the slot; the stand-in decides before the slot is published, so that
 * the back end never sees the kernel's transient INPROCESS mark (it sees the
 * answered slot, and still gets the event: both handlers hang on the port).
 * True when it answered; the caller then publishes nothing itself.
 */
static bool kernel_ioeventfd(struct sim_ioserv *s, unsigned int vcpu, struct sim_port *p,
			     const struct xsim_ioreq *in)
{
	struct sim_ioeventfd *e;
	uint64_t one = 1;

	if (in->type != IOREQ_TYPE_COPY || in->dir != IOREQ_WRITE)
		return false;
	pthread_mutex_lock(&sim_lock);
	for (e = s->ioeventfds; e; e = e->next) {
		/* Its handler hangs on the local port it was given: only while that binding lives. */
		if (vcpu >= e->nr_vcpus || !p->local_port || e->ports[vcpu] != p->local_port)
			continue;
		if (in->addr == e->base + 0x50 && in->size == e->size &&
		    (in->data & 0xffff) == e->queue)
			break;
	}
	if (e && write(e->fd, &one, sizeof(one)) < 0)
		log_warn("ioeventfd signal: %m");
	pthread_mutex_unlock(&sim_lock);
	return e != NULL;
}

/* A QueueNotify write as Xen on Arm forwards it (32-bit, value inline) to a virtio-mmio window. */
static bool is_queue_notify(const struct xsim_ioreq *in)
{
	return in->type == IOREQ_TYPE_COPY && in->dir == IOREQ_WRITE && !in->data_is_ptr &&
	       in->size == 4 && in->addr >= XSIM_VIRTIO_MMIO_BASE &&
	       in->addr - XSIM_VIRTIO_MMIO_BASE < XSIM_VIRTIO_MMIO_SIZE &&
	       (in->addr - XSIM_VIRTIO_MMIO_BASE) % XSIM_VIRTIO_MMIO_DEV_SIZE == 0x50;
}

int hv_ioreq(struct sim_domain *dom, unsigned int vcpu, const struct xsim_ioreq *in,
	     uint64_t *ret_data)
{
	bool by_kernel = false;
	unsigned int route_size = in->size >= 1 && in->size <= 8 ? in->size : 1;
	struct pollfd pfd[3];
	struct sim_ioserv *s;
	struct sim_port *p;
	uint64_t start, deadline, cnt, outage0;
	bool woke = false;
	ioreq_t *req;
	uint8_t st, prev_st = STATE_IOREQ_READY;
	int r = 0;

	if (vcpu >= dom->vcpus)
		return -EINVAL;
	pthread_mutex_lock(&dom->vcpu_locks[vcpu]);
	pthread_mutex_lock(&sim_lock);
	/* A paused vCPU issues nothing until it runs again (or dies). */
	while (dom->paused && !dom->dying)
		pthread_cond_wait(&sim_cond, &sim_lock);
	if (dom->dying) {
		pthread_mutex_unlock(&sim_lock);
		pthread_mutex_unlock(&dom->vcpu_locks[vcpu]);
		return -ESRCH;
	}
	s = ioserv_route(dom, in->addr, route_size);
	if (!s) {
		pthread_mutex_unlock(&sim_lock);
		pthread_mutex_unlock(&dom->vcpu_locks[vcpu]);
		return -EFAULT;
	}
	s->refs++;
	p = s->ports[vcpu];
	req = &s->page->vcpu_ioreq[vcpu];
	start = sim_now_us();
	outage0 = port_unbound_us(p, start);
	pthread_mutex_unlock(&sim_lock);

	st = __atomic_load_n(ioreq_flags(req), __ATOMIC_ACQUIRE) & 0xf;
	if (st != STATE_IOREQ_NONE)
		log_warn("dom %u vcpu %u: ioreq slot in state %u before a new request (device model left it)",
			 dom->domid, vcpu, st);
	req->addr = in->addr;
	req->data = in->dir == IOREQ_READ && !in->data_is_ptr ? 0 : in->data;
	req->count = in->count;
	req->size = in->size;
	req->type = in->type;
	by_kernel = kernel_ioeventfd(s, vcpu, p, in);
	/* Publish: release pairs with the device model's read barrier after it sees READY. */
	__atomic_store_n(ioreq_flags(req),
			 (uint8_t)((by_kernel ? STATE_IORESP_READY : STATE_IOREQ_READY) | (in->data_is_ptr ? 1u << 4 : 0) |
				   (in->dir == IOREQ_READ ? 1u << 5 : 0) | (in->df ? 1u << 6 : 0)),
			 __ATOMIC_RELEASE);
	/*
	 * ioreq_send() notifies through notify_via_xen_event_channel(): nothing
	 * while no process of dom0 has the port bound (its back end died).  The
	 * vCPU still waits (wait_for_io()), its ioreq READY in the page, until a
	 * new process binds the port (which sets it pending) and answers, or the
	 * domain dies; Xen would wait for ever, the simulator reports a hang
	 * after --timeout not counting the time the port had no dom0 end (at
	 * most HV_OUTAGE_TIMEOUTS of them in all).
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (guest_send(p) < 0)
		log_warn("dom %u vcpu %u: notify: %m", dom->domid, vcpu);
	/* notify_remote_via_evtchn(): the kernel's answer wakes the vCPU. */
	if (by_kernel && write(p->to_guest, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		log_warn("dom %u vcpu %u: ioeventfd answer: %m", dom->domid, vcpu);

	/*
	 * Like a vCPU on Xen, look at the slot only when the event channel
	 * fires: a response without a notification would block it forever,
	 * so it is reported (once the wait is over) instead of accepted.
	 */
	deadline = start + (uint64_t)sim_timeout_ms * 1000;
	for (;;) {
		uint64_t now = sim_now_us();
		int n;

		if (now >= deadline) {
			/*
			 * The time no back end had the port (its process died and
			 * the next one had not bound it yet) does not count: Xen's
			 * vCPU just waits, and a restarted back end answers.
			 */
			uint64_t outage, limit = start + HV_OUTAGE_TIMEOUTS *
							 (uint64_t)sim_timeout_ms * 1000;

			pthread_mutex_lock(&sim_lock);
			outage = port_unbound_us(p, now) - outage0;
			pthread_mutex_unlock(&sim_lock);
			deadline = start + (uint64_t)sim_timeout_ms * 1000 + outage;
			if (deadline > limit)
				deadline = limit;
		}

		if (woke) {
			/* Pairs with the device model's write barrier before IORESP_READY. */
			st = __atomic_load_n(ioreq_flags(req), __ATOMIC_ACQUIRE) & 0xf;
			if (st == STATE_IORESP_READY)
				break;
			/*
			 * xen/common/ioreq.c wait_for_io(): a slot whose state goes
			 * back ("Weird HVM ioreq state transition") crashes the domain.
			 */
			if (st < prev_st) {
				log_err("dom %u vcpu %u: weird ioreq state transition %u -> %u: Xen "
					"crashes the domain", dom->domid, vcpu, prev_st, st);
				r = -EPROTO;
				break;
			}
			prev_st = st;
		}
		if (now >= deadline) {
			st = __atomic_load_n(ioreq_flags(req), __ATOMIC_ACQUIRE) & 0xf;
			r = st == STATE_IORESP_READY ? -EPROTO : -ETIMEDOUT;
			if (r == -EPROTO)
				log_warn("dom %u vcpu %u: ioreq answered without an event channel notification",
					 dom->domid, vcpu);
			break;
		}
		pfd[0] = (struct pollfd){ .fd = p->to_guest, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = dom->kill_fd, .events = POLLIN };
		pfd[2] = (struct pollfd){ .fd = s->dead_fd, .events = POLLIN };
		n = poll(pfd, 3, (int)((deadline - now + 999) / 1000));
		if (n < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (pfd[1].revents) {
			r = -ESRCH;
			break;
		}
		if (pfd[2].revents) {
			r = -ENODEV;
			break;
		}
		if (pfd[0].revents) {
			if (read(p->to_guest, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
				log_warn("dom %u vcpu %u: event read: %m", dom->domid, vcpu);
			woke = true;
		}
	}
	if (r == 0)
		*ret_data = req->data;
	/* The backend let go of a paused domain being destroyed: the domain's end, not a fault. */
	if (r == -ENODEV && __atomic_load_n(&dom->paused, __ATOMIC_RELAXED))
		r = -ESRCH;
	if (r == 0 || r == -ETIMEDOUT || r == -EPROTO)
		__atomic_store_n(ioreq_flags(req), (uint8_t)STATE_IOREQ_NONE, __ATOMIC_RELEASE);
	pthread_mutex_lock(&sim_lock);
	if (r == 0 && is_queue_notify(in)) {
		if (by_kernel)
			dom->notifies_kernel++;
		else
			dom->notifies_backend++;
	}
	ioserv_put(dom, s);
	pthread_mutex_unlock(&sim_lock);
	pthread_mutex_unlock(&dom->vcpu_locks[vcpu]);
	return r;
}

/* What Xen on Arm sends for a guest MMIO access (try_fwd_ioserv): one COPY, data inline. */
int hv_mmio(struct sim_domain *dom, unsigned int vcpu, uint64_t addr, unsigned int size,
	    bool is_write, uint64_t *data)
{
	struct xsim_ioreq in = { .addr = addr, .data = is_write ? *data : 0, .count = 1,
				 .size = size, .dir = is_write ? IOREQ_WRITE : IOREQ_READ,
				 .type = IOREQ_TYPE_COPY };
	uint64_t v = 0;
	int r;

	if (!size || size > 8 || (size & (size - 1)))
		return -EINVAL;
	r = hv_ioreq(dom, vcpu, &in, &v);
	if (r == 0 && !is_write)
		*data = size == 8 ? v : v & ((1ull << (size * 8)) - 1);
	return r;
}

int hv_guest_wait(struct sim_domain *dom, uint32_t port, unsigned int timeout_ms)
{
	struct pollfd pfd[2];
	uint64_t cnt;
	int fd, n;

	pthread_mutex_lock(&sim_lock);
	if (port == 0 || port >= SIM_MAX_PORTS || !dom->ports[port]) {
		pthread_mutex_unlock(&sim_lock);
		return -EINVAL;
	}
	/* dup: the port may be closed by a server destroy while we wait. */
	fd = dup(dom->ports[port]->to_guest);
	pthread_mutex_unlock(&sim_lock);
	if (fd < 0)
		return -errno;
	pfd[0] = (struct pollfd){ .fd = fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = dom->kill_fd, .events = POLLIN };
	n = poll(pfd, 2, (int)timeout_ms);
	if (n > 0 && pfd[0].revents && read(fd, &cnt, sizeof(cnt)) == sizeof(cnt)) {
		close(fd);
		return 0;
	}
	close(fd);
	if (n > 0 && pfd[1].revents)
		return -ESRCH;
	return -ETIMEDOUT;
}
