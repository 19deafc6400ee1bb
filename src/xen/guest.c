// SPDX-License-Identifier: GPL-2.0-only
/* One guest's IOREQ server: ioreqs from its vCPUs dispatched by address to its devices, answered always. */
/* The tools-only parts of Xen's public headers (HVM_IOREQSRV_*), as xenctrl.h enables them. */
#define __XEN_TOOLS__ 1
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xenctrl.h>
#include <xendevicemodel.h>
#include <xenevtchn.h>
#include <xenforeignmemory.h>
#include <xengnttab.h>
#include <xen/hvm/dm_op.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/ioreq.h>
#include <xen/memory.h>

#include "fastpath.h"
#include "gmem.h"
#include "guest.h"
#include "iothread.h"
#include "log.h"
#include "loop.h"
#include "util.h"
#include "xpriv.h"

#define GUEST_PAGE_SIZE 4096u
/* One ioreq page holds this many vCPUs' slots. */
#define GUEST_IOREQ_MAX_VCPUS (GUEST_PAGE_SIZE / sizeof(ioreq_t))
/* IOREQ servers a domain can have (MAX_NR_IOREQ_SERVERS in xen/common/ioreq.c). */
#define GUEST_MAX_SERVERS 8u
/* Longest "rep" access honoured; Xen never asks for more than fits a page. */
#define GUEST_MAX_REPS 4096u
/* Chunks of the guest-memory cache: 1024 x 256 KiB = 256 MiB of address space per guest. */
#define GUEST_GMEM_CHUNKS 1024u
/* Memory areas the daemon keeps for itself out of vm.max_map_count (libraries, heap, rings). */
#define GUEST_OWN_MAPS 8192u
/* A slot the kernel's ioeventfd handler holds for a moment is looked at again this much later. */
#define GUEST_RECHECK_US 20u

struct guest_sys {
	xc_interface *xch;		/* domain handles (NULL: cannot tell a reused domid apart) */
	xendevicemodel_handle *dmod;
	xenforeignmemory_handle *fmem;
	xengnttab_handle *xgt;	/* NULL when grant mapping is unavailable */
	struct gmem_budget budget;	/* shared by every guest's mappings */
	void (*room)(void *data, struct guest *guest);
	void *room_data;
	bool fast_path;			/* try the kernel fast path (not --no-fast-path) */
	struct xpriv *xpriv;		/* NULL: off, or no privcmd device (xpriv_err) */
	int xpriv_err;
};

struct guest_mmio {
	struct guest *guest;
	uint64_t base;
	uint64_t size;
	unsigned int irq;
	bool grants;
	bool enabled;
	bool closed;			/* guest_mmio_close(): any_thread() accesses are handed over too */
	const struct guest_mmio_ops *ops;
	void *dev;
	unsigned int waiting;		/* vCPUs whose write to this window is not answered yet */
	struct fastpath_window *fpw;	/* NULL until guest_mmio_fast_path() */
	struct iothread *t;		/* the thread its accesses go to (NULL: the guest's) */
	struct log_ratelimit rl;	/* for what is logged on that thread */
	struct guest_mmio *next;
};

/*
 * A vCPU's access to a window another thread serves (guest_mmio_serve_on()),
 * handed over; one per vCPU, since a vCPU waits for each answer.
 */
struct guest_fwd {
	struct iothread_work w;
	struct guest *g;
	unsigned int vcpu;
	struct iothread *t;		/* where it went */
	ioreq_t req;
	bool away;			/* atomic: not answered yet, another thread's */
};

struct guest {
	struct guest_sys *sys;
	unsigned int domid;
	ioservid_t id;
	bool server_created;
	bool server_enabled;
	xenforeignmemory_resource_handle *iopage_res;
	shared_iopage_t *iopage;
	xenevtchn_handle *xce;
	struct loop_source *xce_src;
	unsigned int nr_vcpus;
	evtchn_port_t *local_ports;	/* per vCPU */
	uint32_t *vcpu_of_port;		/* local port -> vCPU + 1 (0: not ours) */
	/*
	 * Per vCPU: the window its unanswered write went to.  Written by the
	 * thread that serves that window, read by others: atomic (relaxed).
	 */
	struct guest_mmio **waiting;
	struct guest_fwd *fwd;		/* per vCPU */
	evtchn_port_t max_port;
	struct gmem *gmem;
	struct fastpath *fp;		/* the kernel fast path (fastpath.c: how it shares the slots) */
	struct loop_source *recheck;	/* one-shot: slots the kernel held when we looked */
	/*
	 * The windows and the fast path's: the guest's thread finds a window
	 * on every access while threads serving its disks add and remove
	 * theirs.  Taken for a list walk, and across only the handlers a
	 * window's any_thread() approves (atomic registers, hand-overs).
	 */
	pthread_mutex_t lock;
	struct guest_mmio *mmios;
	struct guest_stats stats;	/* counters: atomic (relaxed), several threads count */
	struct log_ratelimit rl;
	bool dead;
	bool adopting;			/* guest_adopt() until guest_adopt_resume(): slots wait */
	bool keep;			/* guest_detach(): Xen's side stays for a successor */
	void *data;			/* guest_set_data() */
};

/*
 * A vCPU slot's state: the low 4 bits (ioreq_t's state:4, on the
 * little-endian ABIs Xen runs on: checked by guest_sys_open()) of the byte
 * after _pad0.  Loaded with acquire and stored with release: the thread that
 * takes a vCPU's next ioreq may not be the one that answered its last
 * (guest_fwd_run()), and what orders the two runs through Xen, out of
 * ThreadSanitizer's sight; the barriers Xen pairs with are these too.
 */
#define GUEST_STATE_BYTE (offsetof(ioreq_t, _pad0) + sizeof(uint16_t))

static volatile uint8_t *guest_state_byte(volatile ioreq_t *slot)
{
	return (volatile uint8_t *)slot + GUEST_STATE_BYTE;
}

static uint8_t guest_slot_state(volatile ioreq_t *slot)
{
	return __atomic_load_n(guest_state_byte(slot), __ATOMIC_ACQUIRE) & 0xf;
}

/* Only the state's bits: the others are the ioreq's (data_is_ptr, dir, df). */
static void guest_slot_set_state(volatile ioreq_t *slot, uint8_t state)
{
	volatile uint8_t *p = guest_state_byte(slot);
	uint8_t b = __atomic_load_n(p, __ATOMIC_RELAXED);

	__atomic_store_n(p, (uint8_t)((b & 0xf0) | state), __ATOMIC_RELEASE);
}

/*
 * The guests' share of the process's memory areas: vm.max_map_count less
 * what the daemon needs itself, so that no guest can make the daemon's own
 * mmap() (malloc, io_uring rings, libraries) fail.
 */
static void guest_budget_init(struct gmem_budget *b)
{
	unsigned long long max_map_count = 65530;	/* the kernel's default (DEFAULT_MAX_MAP_COUNT) */
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	uint64_t per_guest;

	if (f) {
		if (fscanf(f, "%llu", &max_map_count) != 1)
			max_map_count = 65530;
		fclose(f);
	}
	b->guest_pages = GMEM_GUEST_PAGES_DEFAULT;
	b->guest_maps = GMEM_GUEST_MAPS_DEFAULT;
	b->max_maps = max_map_count > 2ull * GUEST_OWN_MAPS ? max_map_count - GUEST_OWN_MAPS :
							     max_map_count / 2;
	/* A guest at its limits: its mappings and the gaps its cached chunks cut. */
	per_guest = (uint64_t)b->guest_maps + GUEST_GMEM_CHUNKS;
	log_info("guest memory: at most %llu MiB in %u mappings per guest; vm.max_map_count %llu "
		 "holds %llu guests at those limits",
		 (unsigned long long)(b->guest_pages * GUEST_PAGE_SIZE >> 20), b->guest_maps,
		 max_map_count, (unsigned long long)(b->max_maps / per_guest));
}

int guest_sys_open(struct guest_sys **ret_sys)
{
	struct guest_sys *sys;
	ioreq_t probe = { 0 };
	int r;

	probe.state = 0xf;
	if (((const uint8_t *)&probe)[GUEST_STATE_BYTE] != 0xf) {
		log_err("this build's ioreq_t keeps its state elsewhere than vblkd expects");
		return -ENOTSUP;
	}
	sys = calloc(1, sizeof(*sys));
	if (!sys)
		return -ENOMEM;
	sys->dmod = xendevicemodel_open(NULL, 0);
	if (!sys->dmod) {
		r = -errno;
		log_err("cannot open the Xen device model interface: %m; is this Dom0 with "
			"/dev/xen/privcmd (xen-privcmd loaded, xenfs mounted)?");
		goto err_free;
	}
	sys->fmem = xenforeignmemory_open(NULL, 0);
	if (!sys->fmem) {
		r = -errno;
		log_err("cannot open Xen foreign memory: %m");
		goto err_dmod;
	}
	/* Only to tell a guest from another one under the same domid (restarts). */
	sys->xch = xc_interface_open(NULL, NULL, 0);
	if (!sys->xch)
		log_warn("cannot open the Xen control interface (%m): a guest adopted after a "
			 "restart is recognised by its domid alone");
	/* Grant mapping is only needed for guests that use grants (backend outside Dom0). */
	sys->xgt = xengnttab_open(NULL, 0);
	if (!sys->xgt)
		log_info("grant mapping unavailable (%m): disks with grant_usage=1 cannot be served");
	guest_budget_init(&sys->budget);
	*ret_sys = sys;
	return 0;

err_dmod:
	xendevicemodel_close(sys->dmod);
err_free:
	free(sys);
	return r;
}

/* gmem's owner is its struct guest (guest_new()). */
static void guest_room(void *data, void *owner)
{
	struct guest_sys *sys = data;

	sys->room(sys->room_data, owner);
}

void guest_sys_set_room(struct guest_sys *sys, void (*room)(void *data, struct guest *guest),
			void *data)
{
	sys->room = room;
	sys->room_data = data;
	sys->budget.room = guest_room;
	sys->budget.data = sys;
}

void guest_sys_set_fast_path(struct guest_sys *sys, bool on)
{
	int r = 0;

	sys->fast_path = on;
	if (on && !sys->xpriv)
		r = xpriv_open(&sys->xpriv);
	else if (!on) {
		xpriv_close(sys->xpriv);
		sys->xpriv = NULL;
	}
	sys->xpriv_err = r;
	if (r < 0)
		log_info("no kernel fast path: cannot open /dev/xen/privcmd: %s", strerror(-r));
}

void guest_sys_reclaim(struct guest_sys *sys, const struct notify_fd *fds, unsigned int n)
{
	struct xpriv *x = sys->xpriv;

	if (!n)
		return;
	/* Also with --no-fast-path: a predecessor's registrations hold its guests' ports. */
	if (!x && xpriv_open(&x) < 0)
		x = NULL;
	fastpath_reclaim(x, fds, n);
	if (x != sys->xpriv)
		xpriv_close(x);
}

void guest_sys_close(struct guest_sys *sys)
{
	if (!sys)
		return;
	xpriv_close(sys->xpriv);
	if (sys->xgt)
		xengnttab_close(sys->xgt);
	if (sys->xch)
		xc_interface_close(sys->xch);
	xenforeignmemory_close(sys->fmem);
	xendevicemodel_close(sys->dmod);
	free(sys);
}

/* Under g->lock. */
static struct guest_mmio *guest_find_mmio(struct guest *g, uint64_t addr)
{
	struct guest_mmio *m;

	for (m = g->mmios; m; m = m->next)
		if (m->enabled && addr - m->base < m->size)
			return m;
	return NULL;
}

static uint64_t guest_size_mask(unsigned int size)
{
	return size >= 8 ? UINT64_MAX : (1ull << (size * 8)) - 1;
}

/* Copy between a device register and guest memory for a data_is_ptr ioreq. */
static bool guest_copy(struct guest *g, uint64_t gpa, unsigned int size, bool to_guest,
		       uint64_t *val)
{
	void *p;

	if (gmem_map(g->gmem, gpa, size, to_guest, &p) < 0)
		return false;
	if (to_guest)
		memcpy(p, val, size);	/* little-endian hosts only, as Xen on Arm and x86 */
	else
		memcpy(val, p, size);
	gmem_unmap(g->gmem, p, size);
	return true;
}

/* A write the device could not finish at once: the vCPU's ioreq waits for guest_mmio_resume(). */
static bool guest_write(struct guest *g, unsigned int vcpu, struct guest_mmio *m, uint64_t off,
			unsigned int size, uint64_t val)
{
	if (m->ops->write(m->dev, off, size, val))
		return true;
	__atomic_store_n(&g->waiting[vcpu], m, __ATOMIC_RELAXED);
	m->waiting++;
	return false;
}

static void guest_count(uint64_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/*
 * Handle one MMIO ioreq; false when its answer must wait (guest_mmio_resume()).
 * @rl: for the warning about an access to no device (NULL: none).
 * Xen routes only our ranges to us, but the values come from a guest's
 * instruction: size, count and data_is_ptr are checked.
 */
static bool guest_handle_mmio(struct guest *g, unsigned int vcpu, struct guest_mmio *m,
			      ioreq_t *req, struct log_ratelimit *rl)
{
	unsigned int size = req->size, i, count = req->count ? req->count : 1;
	uint64_t mask, step, val = 0;

	if (!m || (size != 1 && size != 2 && size != 4 && size != 8) || count > GUEST_MAX_REPS ||
	    req->addr + size - 1 - m->base >= m->size) {
		guest_count(&g->stats.bad_ioreqs);
		if (rl)
			log_ratelimited(rl, LOG_LEVEL_WARNING, "dom %u: ignoring MMIO %s of %u x %u "
					"bytes at 0x%llx: no device there", g->domid,
					req->dir == IOREQ_READ ? "read" : "write", count, size,
					(unsigned long long)req->addr);
		if (req->dir == IOREQ_READ && !req->data_is_ptr)
			req->data = UINT64_MAX;
		return true;
	}
	mask = guest_size_mask(size);
	guest_count(&g->stats.ioreqs);
	if (count == 1 && !req->data_is_ptr) {
		/* What Xen on Arm sends (one access, value in the ioreq): the hot path. */
		if (req->dir == IOREQ_READ) {
			req->data = m->ops->read(m->dev, req->addr - m->base, size) & mask;
			return true;
		}
		return guest_write(g, vcpu, m, req->addr - m->base, size, req->data & mask);
	}
	step = req->df ? -(uint64_t)size : size;

	for (i = 0; i < count; i++) {
		/* "rep movs": the device register is fixed, guest memory advances. */
		uint64_t off = req->addr - m->base;

		if (req->dir == IOREQ_READ) {
			val = m->ops->read(m->dev, off, size) & mask;
			if (req->data_is_ptr &&
			    !guest_copy(g, req->data + i * step, size, true, &val))
				break;
		} else {
			val = req->data;
			if (req->data_is_ptr &&
			    !guest_copy(g, req->data + i * step, size, false, &val))
				break;
			/* A write that must wait ends the repetitions (a guest's odd choice). */
			if (!guest_write(g, vcpu, m, off, size, val & mask))
				return false;
		}
	}
	if (req->dir == IOREQ_READ && !req->data_is_ptr)
		req->data = val;
	return true;
}

/*
 * Hand @vcpu its answer (whatever is in slot->data) and wake it.  The answer
 * must be visible before the state says so: pairs with Xen's read barrier
 * after it sees STATE_IORESP_READY.
 */
static void guest_respond(struct guest *g, unsigned int vcpu)
{
	volatile ioreq_t *slot = &g->iopage->vcpu_ioreq[vcpu];

	/* Before the answer: the vCPU's next access may be handed over again. */
	__atomic_store_n(&g->fwd[vcpu].away, false, __ATOMIC_RELAXED);
	guest_slot_set_state(slot, STATE_IORESP_READY);
	xenevtchn_notify(g->xce, g->local_ports[vcpu]);
}

/* Whether @vcpu's ioreq is being handled here or elsewhere (its answer will come). */
static bool guest_vcpu_busy(struct guest *g, unsigned int vcpu)
{
	return __atomic_load_n(&g->waiting[vcpu], __ATOMIC_RELAXED) ||
	       __atomic_load_n(&g->fwd[vcpu].away, __ATOMIC_RELAXED);
}

/*
 * Handle @vcpu's taken ioreq @req (a copy; its slot is INPROCESS) for window
 * @m (NULL: no device there), on the thread that serves @m, and answer it
 * unless the device makes it wait (guest_mmio_resume()).
 */
static void guest_serve(struct guest *g, unsigned int vcpu, struct guest_mmio *m, ioreq_t *req,
			struct log_ratelimit *rl)
{
	volatile ioreq_t *slot = &g->iopage->vcpu_ioreq[vcpu];

	/*
	 * A posted write (QueueNotify) returns nothing the vCPU waits for:
	 * answer it first, so the guest runs on while the device acts on it
	 * (submitting IO to the kernel takes a while).  Nothing is reordered:
	 * this vCPU's next access, and every other ioreq to this window, is
	 * handled after the write's effects (on this thread, or for what
	 * any_thread() approves, after them on the guest's).  Writes from guest
	 * memory (data_is_ptr) still wait: the vCPU must not change the source
	 * under us.
	 */
	if (m && req->dir == IOREQ_WRITE && !req->data_is_ptr && m->ops->posted &&
	    m->ops->posted(req->addr - m->base)) {
		guest_respond(g, vcpu);
		if (!guest_handle_mmio(g, vcpu, m, req, rl)) {
			/* Answered already: nothing to wait for after all. */
			__atomic_store_n(&g->waiting[vcpu], NULL, __ATOMIC_RELAXED);
			m->waiting--;
		}
		return;
	}

	switch (req->type) {
	case IOREQ_TYPE_COPY:
		if (!guest_handle_mmio(g, vcpu, m, req, rl))
			return;	/* answered by guest_mmio_resume() */
		break;
	case IOREQ_TYPE_INVALIDATE:
		/* The guest's memory map changed (e.g. ballooning): drop idle mappings. */
		gmem_invalidate(g->gmem);
		break;
	case IOREQ_TYPE_TIMEOFFSET:
		break;
	default:
		guest_count(&g->stats.bad_ioreqs);
		log_ratelimited(&g->rl, LOG_LEVEL_WARNING, "dom %u: ignoring ioreq of type %u",
				g->domid, req->type);
		if (req->dir == IOREQ_READ && !req->data_is_ptr)
			req->data = UINT64_MAX;
		break;
	}

	slot->data = req->data;
	guest_respond(g, vcpu);
}

/* On the thread a vCPU's access was handed to: its window, if it is still there and ours. */
static void guest_fwd_run(struct iothread_work *w)
{
	struct guest_fwd *f = container_of(w, struct guest_fwd, w);
	struct guest *g = f->g;
	/* A copy: once a posted write is answered, the vCPU's next access may be handed over. */
	ioreq_t req = f->req;
	struct guest_mmio *m;

	pthread_mutex_lock(&g->lock);
	m = guest_find_mmio(g, req.addr);
	pthread_mutex_unlock(&g->lock);
	/* Removed meanwhile (its disk closed): answered as an access to no device, unlogged. */
	if (m && m->t != f->t)
		m = NULL;
	guest_serve(g, f->vcpu, m, &req, m ? &m->rl : NULL);
}

/*
 * Handle @vcpu's ioreq if it is STATE_IOREQ_READY, or with @taken also
 * INPROCESS (taken by a previous process that died before answering).
 */
static void guest_handle_vcpu(struct guest *g, unsigned int vcpu, bool taken)
{
	volatile ioreq_t *slot = &g->iopage->vcpu_ioreq[vcpu];
	struct guest_mmio *m = NULL;
	struct iothread *t = NULL;
	uint8_t state = guest_slot_state(slot);
	bool claimed = false, elsewhere;
	ioreq_t req;

	if (state != STATE_IOREQ_READY && !(taken && state == STATE_IOREQ_INPROCESS)) {
		/*
		 * INPROCESS and not ours: the kernel's ioeventfd handler holds
		 * it while it compares, and puts a write it does not take back
		 * to READY with no further event (fastpath.c): look again soon.
		 */
		if (state == STATE_IOREQ_INPROCESS && !guest_vcpu_busy(g, vcpu)) {
			pthread_mutex_lock(&g->lock);
			if (fastpath_notify_active(g->fp))
				loop_timer_set(g->recheck, GUEST_RECHECK_US, 0);
			pthread_mutex_unlock(&g->lock);
		}
		return;	/* spurious or already answered */
	}
	/* After the state's load (acquire): pairs with Xen's write barrier before it set READY. */
	memcpy(&req, (const void *)slot, sizeof(req));
	pthread_mutex_lock(&g->lock);
	/*
	 * A QueueNotify the kernel completes (ioeventfd): its handler runs
	 * after ours woke us, so we may be first; both answering would hand
	 * the vCPU two answers.  Not when adopting (@taken): the kernel acts
	 * on events only, and the one of this ioreq came before it was told.
	 */
	if (!taken && state == STATE_IOREQ_READY && req.type == IOREQ_TYPE_COPY &&
	    req.dir == IOREQ_WRITE)
		claimed = fastpath_claims(g->fp, req.addr, req.size, req.data);
	if (!claimed && req.type == IOREQ_TYPE_COPY) {
		m = guest_find_mmio(g, req.addr);
		t = m ? m->t : NULL;
	}
	elsewhere = t && !iothread_is_current(t);
	if (claimed) {
		pthread_mutex_unlock(&g->lock);
		return;
	}
	/* Forward only: Xen crashes a domain whose slot goes back (xen/common/ioreq.c wait_for_io). */
	if (state == STATE_IOREQ_READY)
		guest_slot_set_state(slot, STATE_IOREQ_INPROCESS);
	/*
	 * Another thread's window, but an access to what its device keeps
	 * atomic (the interrupt handler's InterruptStatus and InterruptACK) or
	 * one it hands on to a third thread anyway (a QueueNotify for a queue
	 * another thread serves): made here, under the lock that keeps the
	 * device from going (guest_mmio_close()), and the vCPU spared a second
	 * thread's wake-up.
	 */
	if (elsewhere && !m->closed && m->ops->any_thread && req.count <= 1 &&
	    !req.data_is_ptr &&
	    m->ops->any_thread(m->dev, req.addr - m->base, req.size, req.dir == IOREQ_WRITE,
			       req.data & guest_size_mask(req.size))) {
		guest_serve(g, vcpu, m, &req, &g->rl);
		pthread_mutex_unlock(&g->lock);
		return;
	}
	pthread_mutex_unlock(&g->lock);
	if (elsewhere) {
		/* The window is served by another thread: the access goes there, answered there. */
		struct guest_fwd *f = &g->fwd[vcpu];

		f->req = req;
		f->t = t;
		__atomic_store_n(&f->away, true, __ATOMIC_RELAXED);
		iothread_queue(t, &f->w);
		return;
	}
	guest_serve(g, vcpu, m, &req, &g->rl);
}

static void guest_evtchn_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct guest *g = data;
	xenevtchn_port_or_error_t port;

	/*
	 * One port per wakeup: the fd is level-triggered, so the loop calls
	 * again at once while more are pending.  Draining until EAGAIN would
	 * cost a failing read() on every wakeup, and usually one port is all
	 * there is (a vCPU waits in its ioreq).
	 */
	port = xenevtchn_pending(g->xce);
	if (port < 0)
		return;
	xenevtchn_unmask(g->xce, (evtchn_port_t)port);
	/* Adopted, its disks not all back yet: guest_adopt_resume() looks at every slot. */
	if (g->adopting)
		return;
	if ((evtchn_port_t)port <= g->max_port && g->vcpu_of_port[port])
		guest_handle_vcpu(g, g->vcpu_of_port[port] - 1, false);
}

static void guest_recheck(struct loop_source *src, uint64_t expirations, void *data)
{
	struct guest *g = data;

	if (g->adopting)
		return;
	for (unsigned int i = 0; i < g->nr_vcpus; i++)
		guest_handle_vcpu(g, i, false);
}

static int guest_bind_vcpus(struct guest *g)
{
	unsigned int i;

	g->local_ports = calloc(g->nr_vcpus, sizeof(*g->local_ports));
	g->waiting = calloc(g->nr_vcpus, sizeof(*g->waiting));
	g->fwd = calloc(g->nr_vcpus, sizeof(*g->fwd));
	if (!g->local_ports || !g->waiting || !g->fwd)
		goto err_nomem;
	for (i = 0; i < g->nr_vcpus; i++)
		g->fwd[i] = (struct guest_fwd){ .w.fn = guest_fwd_run, .g = g, .vcpu = i };
	for (i = 0; i < g->nr_vcpus; i++) {
		xenevtchn_port_or_error_t lp;

		lp = xenevtchn_bind_interdomain(g->xce, g->domid, g->iopage->vcpu_ioreq[i].vp_eport);
		if (lp < 0) {
			int r = -errno;

			/*
			 * EINVAL: the guest's end is bound already.  A vblkd killed while on the
			 * kernel fast path leaves it so: privcmd keeps that process's ioeventfd
			 * registration, and with it a reference to its local port, until a
			 * DEASSIGN naming its eventfd (Linux 6.12 drivers/xen/privcmd.c,
			 * alloc_ioreq(); evtchn's ports are refcounted).  Only an fd store gives
			 * a successor that eventfd (fastpath_reclaim()).  Seen on Xen 4.20 with
			 * Linux 6.12 (check-xen, issue 20).
			 */
			log_err("dom %u: cannot bind the event channel of vCPU %u (remote port %u): %s%s",
				g->domid, i, g->iopage->vcpu_ioreq[i].vp_eport, strerror(-r),
				r == -EINVAL ? " (still bound: privcmd keeps the ioeventfds of a vblkd "
					       "killed while on the kernel fast path, and its ports with "
					       "them, until the guest is destroyed, unless the service "
					       "manager's fd store hands them to the next vblkd: "
					       "FileDescriptorStoreMax= in vblkd.service)" : "");
			return r;
		}
		g->local_ports[i] = (evtchn_port_t)lp;
		if ((evtchn_port_t)lp > g->max_port)
			g->max_port = (evtchn_port_t)lp;
	}
	g->vcpu_of_port = calloc((size_t)g->max_port + 1, sizeof(*g->vcpu_of_port));
	if (!g->vcpu_of_port)
		goto err_nomem;
	for (i = 0; i < g->nr_vcpus; i++)
		g->vcpu_of_port[g->local_ports[i]] = i + 1;
	return 0;

err_nomem:
	log_err("dom %u: cannot bind the event channels of %u vCPUs: %s", g->domid, g->nr_vcpus,
		strerror(ENOMEM));
	return -ENOMEM;
}

static int guest_get_vcpus(struct guest *g)
{
	int r;

	if (xendevicemodel_nr_vcpus(g->sys->dmod, (domid_t)g->domid, &g->nr_vcpus) < 0) {
		r = -errno;
		log_err("dom %u: cannot get the number of vCPUs: %s", g->domid, strerror(-r));
		return r;
	}
	if (g->nr_vcpus == 0 || g->nr_vcpus > GUEST_IOREQ_MAX_VCPUS) {
		log_err("dom %u: %u vCPUs: vblkd serves guests with 1 to %zu vCPUs", g->domid,
			g->nr_vcpus, (size_t)GUEST_IOREQ_MAX_VCPUS);
		return -ERANGE;
	}
	return 0;
}

static int guest_map_iopage(struct guest *g)
{
	void *addr = NULL;
	int r;

	g->iopage_res = xenforeignmemory_map_resource(g->sys->fmem, (domid_t)g->domid,
						      XENMEM_resource_ioreq_server, g->id,
						      XENMEM_resource_ioreq_server_frame_ioreq(0), 1,
						      &addr, PROT_READ | PROT_WRITE, 0);
	if (!g->iopage_res) {
		r = -errno;
		log_err("dom %u: cannot map the ioreq page of IOREQ server %u: %s", g->domid, g->id,
			strerror(-r));
		return r;
	}
	g->iopage = addr;
	return 0;
}

/* The sequence of ../shared/xen-notes.md: vCPUs, server, ioreq page, enable.  Errors are logged. */
static int guest_start_server(struct guest *g)
{
	struct guest_sys *sys = g->sys;
	unsigned int domid = g->domid;
	int r;

	r = guest_get_vcpus(g);
	if (r < 0)
		return r;
	/* Arm has no buffered ioreqs (xen-notes.md): synchronous ones only. */
	if (xendevicemodel_create_ioreq_server(sys->dmod, (domid_t)domid, HVM_IOREQSRV_BUFIOREQ_OFF,
					       &g->id) < 0) {
		r = -errno;
		log_err("dom %u: cannot create an IOREQ server: %s%s", domid, strerror(-r),
			r == -EOPNOTSUPP || r == -ENOSYS ?
				"; the hypervisor needs CONFIG_IOREQ_SERVER=y" :
				"");
		return r;
	}
	g->server_created = true;
	r = guest_map_iopage(g);
	if (r < 0)
		return r;
	if (xendevicemodel_set_ioreq_server_state(sys->dmod, (domid_t)domid, g->id, 1) < 0) {
		r = -errno;
		log_err("dom %u: cannot enable IOREQ server %u: %s", domid, g->id, strerror(-r));
		return r;
	}
	g->server_enabled = true;
	return 0;
}

/* The event channel device, non-blocking, and one port per vCPU.  Errors are logged. */
static int guest_open_evtchn(struct guest *g)
{
	int r, fd, fl;

	g->xce = xenevtchn_open(NULL, 0);
	if (!g->xce) {
		r = -errno;
		log_err("dom %u: cannot open the event channel device: %s", g->domid, strerror(-r));
		return r;
	}
	fd = xenevtchn_fd(g->xce);
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		log_err("dom %u: cannot make the event channel device non-blocking: %s", g->domid,
			strerror(-r));
		return r;
	}
	return guest_bind_vcpus(g);
}

static struct guest *guest_alloc(struct guest_sys *sys, unsigned int domid)
{
	struct guest *g = calloc(1, sizeof(*g));

	if (!g) {
		log_err("dom %u: cannot set up the guest: %s", domid, strerror(ENOMEM));
		return NULL;
	}
	g->sys = sys;
	g->domid = domid;
	g->rl = (struct log_ratelimit)LOG_RATELIMIT_GUEST;
	pthread_mutex_init(&g->lock, NULL);
	return g;
}

/* Event channels, guest memory and the loop, once the server's page is mapped. */
static int guest_attach(struct guest *g, struct loop *loop)
{
	struct guest_sys *sys = g->sys;
	unsigned int domid = g->domid;
	int r;

	r = guest_open_evtchn(g);
	if (r < 0)
		return r;
	r = gmem_new(sys->fmem, sys->xgt, domid, GUEST_GMEM_CHUNKS, &sys->budget, &g->gmem);
	if (r < 0) {
		log_err("dom %u: cannot set up the guest memory cache: %s", domid, strerror(-r));
		return r;
	}
	gmem_set_owner(g->gmem, g);
	r = fastpath_new(sys->xpriv, sys->fast_path, sys->xpriv_err, loop, domid, g->iopage,
			 g->local_ports, g->nr_vcpus, &g->fp);
	if (r == 0)
		r = loop_add_timer(loop, LOOP_TIMER_DISARM, 0, guest_recheck, g, &g->recheck);
	if (r < 0) {
		log_err("dom %u: cannot set up the fast path: %s", domid, strerror(-r));
		return r;
	}
	r = loop_add_fd(loop, xenevtchn_fd(g->xce), EPOLLIN, guest_evtchn_ready, g, &g->xce_src);
	if (r < 0) {
		log_err("dom %u: cannot watch the event channel device: %s", domid, strerror(-r));
		return r;
	}
	return 0;
}

int guest_new(struct guest_sys *sys, struct loop *loop, unsigned int domid,
	      struct guest **ret_guest)
{
	struct guest *g = guest_alloc(sys, domid);
	int r;

	if (!g)
		return -ENOMEM;
	r = guest_start_server(g);
	if (r == 0)
		r = guest_attach(g, loop);
	if (r < 0) {
		guest_free(g, false);
		return r;
	}
	log_info("dom %u: IOREQ server %u ready, %u vCPUs", domid, g->id, g->nr_vcpus);
	*ret_guest = g;
	return 0;
}

int guest_adopt(struct guest_sys *sys, struct loop *loop, unsigned int domid, unsigned int id,
		struct guest **ret_guest)
{
	struct guest *g = guest_alloc(sys, domid);
	int r;

	if (!g)
		return -ENOMEM;
	g->id = (ioservid_t)id;
	g->adopting = true;
	r = guest_get_vcpus(g);
	/* Xen's server outlives its creator (xen/common/ioreq.c): map its page again, no create. */
	if (r == 0)
		r = guest_map_iopage(g);
	if (r == 0) {
		/* Ours from now on: released as if we had created it. */
		g->server_created = true;
		g->server_enabled = true;
		r = guest_attach(g, loop);
	}
	if (r < 0) {
		/* Not ours after all: a failed adoption must not destroy what it did not take. */
		guest_detach(g);
		guest_free(g, false);
		return r;
	}
	log_info("dom %u: IOREQ server %u adopted, %u vCPUs", domid, g->id, g->nr_vcpus);
	*ret_guest = g;
	return 0;
}

void guest_adopt_resume(struct guest *g)
{
	if (!g->adopting)
		return;
	g->adopting = false;
	/*
	 * Every bind starts pending, but events from while no one was bound are
	 * lost (xen/common/event_channel.c): the slots say what each vCPU waits
	 * for.  IOREQ_READY: never taken; INPROCESS: taken by the old process
	 * and not answered, so handled again (register accesses are repeatable:
	 * the device state is the one saved after the access, or before it);
	 * IORESP_READY: answered, but its notification may be lost.
	 */
	for (unsigned int i = 0; i < g->nr_vcpus; i++) {
		uint8_t state = guest_slot_state(&g->iopage->vcpu_ioreq[i]);

		if (state == STATE_IOREQ_READY || state == STATE_IOREQ_INPROCESS)
			guest_handle_vcpu(g, i, true);
		else if (state == STATE_IORESP_READY)
			xenevtchn_notify(g->xce, g->local_ports[i]);
	}
}

void guest_detach(struct guest *g)
{
	g->keep = true;
}

uint32_t guest_sys_servers(struct guest_sys *sys, unsigned int domid)
{
	uint32_t mask = 0;

	for (unsigned int id = 0; id < GUEST_MAX_SERVERS; id++) {
		/* No gfns asked for (XEN_DMOP_no_gfns): -ENOENT when there is no such server. */
		if (xendevicemodel_get_ioreq_server_info(sys->dmod, (domid_t)domid, (ioservid_t)id,
							 NULL, NULL, NULL) == 0 ||
		    errno != ENOENT)
			mask |= 1u << id;
	}
	return mask;
}

void guest_sys_destroy_server(struct guest_sys *sys, unsigned int domid, unsigned int id)
{
	xendevicemodel_destroy_ioreq_server(sys->dmod, (domid_t)domid, (ioservid_t)id);
}

unsigned int guest_server_id(const struct guest *g)
{
	return g->id;
}

int guest_sys_domain_handle(struct guest_sys *sys, unsigned int domid, uint8_t handle[16])
{
	xc_domaininfo_t info;

	if (!sys->xch) {
		memset(handle, 0, 16);
		return 0;
	}
	if (xc_domain_getinfolist(sys->xch, domid, 1, &info) != 1 || info.domain != domid)
		return -ESRCH;
	if (info.flags & XEN_DOMINF_dying)
		return -ESRCH;
	memcpy(handle, info.handle, 16);
	return 0;
}

static void guest_unmap_range(struct guest_mmio *m, bool quiet)
{
	struct guest *g = m->guest;

	if (!m->enabled)
		return;
	pthread_mutex_lock(&g->lock);
	m->enabled = false;
	pthread_mutex_unlock(&g->lock);
	if (xendevicemodel_unmap_io_range_from_ioreq_server(g->sys->dmod, (domid_t)g->domid, g->id,
							    1, m->base, m->base + m->size - 1) < 0 &&
	    !quiet)
		log_warn("dom %u: cannot unmap MMIO 0x%llx from IOREQ server %u: %m", g->domid,
			 (unsigned long long)m->base, g->id);
}

void guest_free(struct guest *g, bool dead)
{
	unsigned int i;

	if (!g)
		return;
	g->dead = dead;
	/*
	 * Reverse order of guest_new(); a dead domain makes the hypercalls fail:
	 * stay quiet.  Kept for a successor (guest_detach()): the server, its
	 * ranges and the vCPUs waiting in their slots stay as they are, and the
	 * guest's ends of the event channels become unbound when ours close.
	 */
	/* Windows of other threads went with their disks, before (guest_mmio_serve_on()). */
	while (g->mmios)
		guest_mmio_remove(g->mmios);
	/* Nothing is still handed over then; should something be, it never runs. */
	for (i = 0; g->fwd && i < g->nr_vcpus; i++)
		if (g->fwd[i].t)
			iothread_cancel(g->fwd[i].t, &g->fwd[i].w);
	/* The kernel's registrations go before the ports they hang on (fastpath.c). */
	fastpath_free(g->fp);
	loop_remove(g->recheck);
	loop_remove(g->xce_src);
	if (g->xce) {
		for (i = 0; !g->keep && g->local_ports && i < g->nr_vcpus; i++)
			if (g->local_ports[i])
				xenevtchn_unbind(g->xce, g->local_ports[i]);
		xenevtchn_close(g->xce);
	}
	if (g->server_enabled && !g->keep)
		xendevicemodel_set_ioreq_server_state(g->sys->dmod, (domid_t)g->domid, g->id, 0);
	if (g->iopage_res)
		xenforeignmemory_unmap_resource(g->sys->fmem, g->iopage_res);
	if (g->server_created && !g->keep &&
	    xendevicemodel_destroy_ioreq_server(g->sys->dmod, (domid_t)g->domid, g->id) < 0 && !dead)
		log_warn("dom %u: cannot destroy IOREQ server %u: %m", g->domid, g->id);
	gmem_free(g->gmem);
	free(g->vcpu_of_port);
	free(g->waiting);
	free(g->fwd);
	free(g->local_ports);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

unsigned int guest_nr_vcpus(const struct guest *g)
{
	return g->nr_vcpus;
}

void guest_set_data(struct guest *g, void *data)
{
	g->data = data;
}

void *guest_data(const struct guest *g)
{
	return g->data;
}

int guest_mmio_add(struct guest *g, uint64_t base, uint64_t size, unsigned int irq, bool grants,
		   const struct guest_mmio_ops *ops, void *dev, struct guest_mmio **ret_mmio)
{
	struct guest_mmio *m, *o;

	if (size == 0 || base + size < base)
		return -EINVAL;
	if (grants && !g->sys->xgt)
		return -EOPNOTSUPP;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->guest = g;
	m->base = base;
	m->size = size;
	m->irq = irq;
	m->grants = grants;
	m->ops = ops;
	m->dev = dev;
	m->rl = (struct log_ratelimit)LOG_RATELIMIT_GUEST;
	pthread_mutex_lock(&g->lock);
	for (o = g->mmios; o; o = o->next) {
		if (base < o->base + o->size && o->base < base + size) {
			pthread_mutex_unlock(&g->lock);
			free(m);
			return -EADDRINUSE;
		}
	}
	slist_push(&g->mmios, m, next);
	pthread_mutex_unlock(&g->lock);
	*ret_mmio = m;
	return 0;
}

void guest_mmio_serve_on(struct guest_mmio *m, struct iothread *t)
{
	m->t = t;
}

int guest_mmio_enable(struct guest_mmio *m)
{
	struct guest *g = m->guest;

	if (m->enabled)
		return 0;
	/* 1: MMIO (not port IO); the range end is inclusive. */
	if (xendevicemodel_map_io_range_to_ioreq_server(g->sys->dmod, (domid_t)g->domid, g->id, 1,
							m->base, m->base + m->size - 1) < 0) {
		if (errno != EEXIST)
			return -errno;
		/*
		 * Mapped already: an adopted server whose previous process died
		 * between mapping the range and recording the disk.  Ours now.
		 */
		log_info("dom %u: MMIO 0x%llx was mapped to IOREQ server %u already: taken over",
			 g->domid, (unsigned long long)m->base, g->id);
	}
	pthread_mutex_lock(&g->lock);
	m->enabled = true;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

void guest_mmio_adopt(struct guest_mmio *m)
{
	pthread_mutex_lock(&m->guest->lock);
	m->enabled = true;
	pthread_mutex_unlock(&m->guest->lock);
}

void guest_mmio_close(struct guest_mmio *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->guest->lock);
	m->closed = true;
	pthread_mutex_unlock(&m->guest->lock);
}

void guest_mmio_resume(struct guest_mmio *m)
{
	struct guest *g = m->guest;
	unsigned int i;

	for (i = 0; m->waiting && i < g->nr_vcpus; i++) {
		if (__atomic_load_n(&g->waiting[i], __ATOMIC_RELAXED) != m)
			continue;
		__atomic_store_n(&g->waiting[i], NULL, __ATOMIC_RELAXED);
		m->waiting--;
		/* A write: nothing to return.  A dead guest's memory is not to be touched. */
		if (!g->dead)
			guest_respond(g, i);
	}
}

void guest_mmio_remove(struct guest_mmio *m)
{
	struct guest *g;

	if (!m)
		return;
	g = m->guest;
	pthread_mutex_lock(&g->lock);
	fastpath_window_remove(m->fpw);
	m->fpw = NULL;
	pthread_mutex_unlock(&g->lock);
	/* A window going away answers whoever still waits on it, unless kept for a successor. */
	if (g->keep) {
		for (unsigned int i = 0; m->waiting && i < g->nr_vcpus; i++)
			if (__atomic_load_n(&g->waiting[i], __ATOMIC_RELAXED) == m)
				__atomic_store_n(&g->waiting[i], NULL, __ATOMIC_RELAXED);
		pthread_mutex_lock(&g->lock);
		m->enabled = false;
		pthread_mutex_unlock(&g->lock);
	}
	guest_mmio_resume(m);
	guest_unmap_range(m, g->dead);
	pthread_mutex_lock(&g->lock);
	slist_remove(&g->mmios, m, next);
	pthread_mutex_unlock(&g->lock);
	free(m);
}

int guest_mmio_map(void *opaque, uint64_t gpa, uint64_t len, bool write, void **ret_ptr)
{
	struct guest_mmio *m = opaque;

	/* A device without grants must not be handed grant addresses, and the reverse. */
	if (!!(gpa & GMEM_GRANT_BIT) != m->grants)
		return -EFAULT;
	return gmem_map(m->guest->gmem, gpa, len, write, ret_ptr);
}

int guest_mmio_copy(void *opaque, const struct virtio_copy *c, unsigned int n)
{
	struct guest_mmio *m = opaque;

	for (unsigned int i = 0; i < n; i++)
		if (!!(c[i].gpa & GMEM_GRANT_BIT) != m->grants)
			return -EFAULT;
	return gmem_copy(m->guest->gmem, c, n);
}

void guest_mmio_unmap(void *opaque, void *ptr, uint64_t len)
{
	struct guest_mmio *m = opaque;

	gmem_unmap(m->guest->gmem, ptr, len);
}

void guest_mmio_wait_room(void *opaque)
{
	struct guest_mmio *m = opaque;

	gmem_wait_room(m->guest->gmem);
}

void guest_mmio_notify(void *opaque)
{
	struct guest_mmio *m = opaque;
	struct guest *g = m->guest;

	/*
	 * The virtio-mmio SPI is edge-rising in the guest's device tree, and
	 * Arm's vGIC injects on every call whatever the level, so one call with
	 * level 1 is one interrupt (never follow it with 0: that would be a
	 * second one).  With an irqfd the kernel makes that very call.
	 */
	if (fastpath_window_raise(m->fpw)) {
		guest_count(&g->stats.irqs);
		return;
	}
	if (xendevicemodel_set_irq_level(g->sys->dmod, (domid_t)g->domid, m->irq, 1) < 0) {
		log_ratelimited(&m->rl, LOG_LEVEL_WARNING, "dom %u: cannot raise IRQ %u: %m",
				g->domid, m->irq);
		return;
	}
	guest_count(&g->stats.irqs);
}

void guest_get_stats(const struct guest *g, struct guest_stats *ret_stats)
{
	*ret_stats = (struct guest_stats){
		.ioreqs = __atomic_load_n(&g->stats.ioreqs, __ATOMIC_RELAXED),
		.bad_ioreqs = __atomic_load_n(&g->stats.bad_ioreqs, __ATOMIC_RELAXED),
		.irqs = __atomic_load_n(&g->stats.irqs, __ATOMIC_RELAXED),
	};
	gmem_get_stats(g->gmem, &ret_stats->mem);
}

static void guest_mmio_queue_notify(void *data, unsigned int queue)
{
	struct guest_mmio *m = data;

	/*
	 * What the ioreq handler does for this write, after the kernel answered
	 * the vCPU (as for any posted write): nothing left to wait for.
	 */
	m->ops->write(m->dev, FASTPATH_QUEUE_NOTIFY, FASTPATH_NOTIFY_SIZE, queue);
}

int guest_mmio_fast_path(struct guest_mmio *m, unsigned int num_queues)
{
	struct guest *g = m->guest;
	int r = 0;

	pthread_mutex_lock(&g->lock);
	if (!m->fpw)
		r = fastpath_window_add(g->fp, m->t ? iothread_loop(m->t) : NULL, m->base, m->irq,
					num_queues, guest_mmio_queue_notify, m, &m->fpw);
	pthread_mutex_unlock(&g->lock);
	return r;
}

int guest_mmio_queue_handoff(struct guest_mmio *m, unsigned int queue)
{
	int fd;

	pthread_mutex_lock(&m->guest->lock);
	fd = fastpath_window_queue_handoff(m->fpw, queue);
	pthread_mutex_unlock(&m->guest->lock);
	return fd;
}

void guest_mmio_get_fast_path(const struct guest_mmio *m, bool *ret_notify, bool *ret_irq)
{
	pthread_mutex_lock(&m->guest->lock);
	*ret_notify = fastpath_window_notify_on(m->fpw);
	*ret_irq = fastpath_window_irq_on(m->fpw);
	pthread_mutex_unlock(&m->guest->lock);
}

const char *guest_fast_path(struct guest *g, const char **ret_why)
{
	enum fastpath_state n, i;

	pthread_mutex_lock(&g->lock);
	n = fastpath_notify_state(g->fp);
	i = fastpath_irq_state(g->fp);
	*ret_why = fastpath_why(g->fp);	/* its text changes only when a window is added */
	pthread_mutex_unlock(&g->lock);
	if (n == FASTPATH_ON && i == FASTPATH_ON)
		return "on";
	if (n == FASTPATH_ON || i == FASTPATH_ON)
		return "partial";
	return fastpath_state_name(n == FASTPATH_UNTRIED ? i : n);
}
