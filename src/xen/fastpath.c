// SPDX-License-Identifier: GPL-2.0-only
/* The kernel fast path of a guest: privcmd's ioeventfd for QueueNotify, its irqfd for interrupts, else the plain path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fastpath.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "util.h"
#include "xpriv.h"

/*
 * How the kernel's ioeventfd and vblkd's ioreq handling share a guest
 * (Linux drivers/xen/privcmd.c, v6.7: privcmd_ioeventfd_assign(),
 * alloc_ioreq(), ioeventfd_interrupt(); drivers/xen/evtchn.c):
 *
 * - IOCTL_PRIVCMD_IOEVENTFD takes the vCPUs' *local* ports, the ones this
 *   process bound with xenevtchn_bind_interdomain(), and binds a second
 *   handler to each (bind_evtchn_to_irqhandler_lateeoi(..., IRQF_SHARED));
 *   /dev/xen/evtchn binds its ports shared for exactly this.  So vblkd keeps
 *   binding every vCPU's port as on the plain path, and must: the kernel
 *   binds no port of its own, and its handler does no EOI, so the port is
 *   re-enabled by vblkd's xenevtchn_unmask().
 * - Every event runs both handlers, /dev/xen/evtchn's first (registered
 *   first): vblkd still wakes for every ioreq, QueueNotify or not.  The
 *   kernel's then looks at the vCPU's slot: for STATE_IOREQ_READY, type COPY,
 *   a write, it sets INPROCESS, and if addr is a registered base + 0x50, size
 *   the registered length and (data & 0xffff) the registered queue, signals
 *   that eventfd, sets IORESP_READY and notifies the vCPU; otherwise it puts
 *   the slot back to READY for user space.
 * - So what reaches vblkd's ioreq handler is everything but the matching
 *   QueueNotify writes: reads, the other registers, QueueNotify with a size
 *   or value nobody registered (hostile or legacy guests), data_is_ptr and
 *   rep accesses, INVALIDATE.  Those it answers as before.
 * - The two look at one slot without a lock between them, so the handler
 *   (guest.c) must (1) leave alone a READY slot the kernel will complete
 *   (fastpath_claims(): vblkd may get there first, the kernel's handler runs
 *   after the wake-up), else both would answer it; and (2) look again at a
 *   slot it finds INPROCESS without having taken it itself: the kernel's
 *   transient mark, which goes back to READY without a further event.
 * - What is left: the kernel stores the slot's state without a compare
 *   (INPROCESS, then READY or IORESP_READY).  Should vblkd take and answer
 *   an unclaimed ioreq between the kernel's load of READY and its store of
 *   READY (a window of a few instructions in the interrupt handler, which
 *   vblkd's wake-up follows), the vCPU would see READY again and wait; only
 *   a Dom0 vCPU preempted inside that handler makes it wide.  Not closable
 *   from user space; check-xen should run hostile workloads on the fast path.
 * - Registrations are the kernel's, on a list of its own, until DEASSIGN:
 *   vblkd removes them when it lets a guest go, also when it leaves the guest
 *   to a successor (which registers its own).
 * - A process killed (kill -9, a crash) cannot: DEASSIGN must name the very
 *   eventfd (privcmd_ioeventfd_deassign() compares the eventfd_ctx, with the
 *   ioreq page's address in the old process, dom and vcpus), and while the
 *   registration lives the kernel holds the local ports it hangs on, so a
 *   successor's xenevtchn_bind_interdomain() to the guest's ends fails
 *   (EINVAL: not unbound) and the guest hangs.  So each ioeventfd goes to the
 *   service manager's file descriptor store (FDSTORE=1, before the ASSIGN:
 *   a kill in between leaves a stored fd the successor's DEASSIGN finds
 *   nothing for, never a registration without its fd), named with what
 *   DEASSIGN needs; FDSTOREREMOVE=1 after a DEASSIGN.  A successor gets them
 *   back (LISTEN_FDS) and removes the registrations (fastpath_reclaim())
 *   before it binds a port.  The irqfds need none of this: the kernel drops
 *   an irqfd when its eventfd's file goes (EPOLLHUP, irqfd_wakeup()).
 *
 * Interrupts: IOCTL_PRIVCMD_IRQFD stores the dm_op (set_irq_level, level 1:
 * the one guest_mmio_notify() makes) and issues it when the eventfd is
 * signalled (privcmd.c irqfd_inject()); several signals before it runs make
 * one interrupt, which is all an edge-triggered virtio-mmio SPI needs.  The
 * kernel drops an irqfd when its eventfd is released (EPOLLHUP).
 */

struct fastpath_queue {
	struct fastpath_window *w;
	unsigned int index;
	int fd;
	struct loop_source *src;
	bool assigned;
};

struct fastpath_window {
	struct fastpath *fp;
	struct loop *loop;	/* where its queues' eventfds are watched */
	uint64_t base;
	unsigned int irq;
	unsigned int num_queues;
	struct fastpath_queue *queues;
	bool notify_on;		/* every queue has its ioeventfd */
	int irq_fd;		/* -1: set_irq_level */
	bool irq_assigned;
	void (*notify)(void *data, unsigned int queue);
	void *data;
	struct fastpath_window *next;
};

struct fastpath {
	struct xpriv *xpriv;
	struct loop *loop;
	unsigned int domid;
	void *ioreq_page;
	const uint32_t *ports;
	unsigned int nr_vcpus;
	enum fastpath_state notify_state, irq_state;
	int notify_err, irq_err;	/* what the kernel said (-errno), 0 when on */
	bool logged;
	char why[256];
	struct fastpath_window *windows;
};

enum fastpath_state fastpath_classify(int err)
{
	switch (err) {
	case 0:
		return FASTPATH_ON;
	case -ENOTTY:		/* privcmd without the ioctl: Linux before 6.6 (irqfd) or 6.7 */
	case -EOPNOTSUPP:	/* built without CONFIG_XEN_PRIVCMD_EVENTFD (the stubs in privcmd.c) */
	case -EINVAL:		/* a layout or flag this kernel does not know */
	case -ENOENT:		/* no /dev/xen/privcmd */
	case -ENOSYS:
		return FASTPATH_UNSUPPORTED;
	default:
		return FASTPATH_FAILED;
	}
}

const char *fastpath_state_name(enum fastpath_state state)
{
	switch (state) {
	case FASTPATH_UNTRIED:
		return "untried";
	case FASTPATH_ON:
		return "on";
	case FASTPATH_OFF:
		return "off";
	case FASTPATH_UNSUPPORTED:
		return "unsupported";
	case FASTPATH_FAILED:
		return "failed";
	}
	return "?";
}

int fastpath_new(struct xpriv *xpriv, bool enabled, int open_err, struct loop *loop,
		 unsigned int domid, void *ioreq_page, const uint32_t *ports, unsigned int nr_vcpus,
		 struct fastpath **ret_fastpath)
{
	struct fastpath *fp = calloc(1, sizeof(*fp));

	if (!fp)
		return -ENOMEM;
	fp->xpriv = enabled ? xpriv : NULL;
	fp->loop = loop;
	fp->domid = domid;
	fp->ioreq_page = ioreq_page;
	fp->ports = ports;
	fp->nr_vcpus = nr_vcpus;
	if (!enabled) {
		fp->notify_state = fp->irq_state = FASTPATH_OFF;
	} else if (!xpriv) {
		fp->notify_err = fp->irq_err = open_err ? open_err : -ENOENT;
		fp->notify_state = fastpath_classify(fp->notify_err);
		fp->irq_state = fp->notify_state;
	}
	*ret_fastpath = fp;
	return 0;
}

static void fastpath_queue_ready(struct loop_source *src, int fd, uint32_t events, void *data)
{
	struct fastpath_queue *q = data;
	eventfd_t cnt;

	/* Several writes since the last look are one notification: the ring says what is new. */
	if (eventfd_read(fd, &cnt) < 0)
		return;
	q->w->notify(q->w->data, q->index);
}

static struct xpriv_ioeventfd fastpath_ioeventfd_args(const struct fastpath_queue *q)
{
	const struct fastpath *fp = q->w->fp;

	return (struct xpriv_ioeventfd){
		.domid = fp->domid,
		.ioreq_page = fp->ioreq_page,
		.ports = fp->ports,
		.nr_vcpus = fp->nr_vcpus,
		.base = q->w->base,
		.size = FASTPATH_NOTIFY_SIZE,
		.queue = q->index,
		.fd = q->fd,
	};
}

/*
 * The fd store name of a queue's ioeventfd: what a successor's DEASSIGN
 * needs (dom, the ioreq page's address here, vCPUs), then the window and
 * queue for the log.  systemd allows any printable ASCII but ':' in 255.
 */
#define FASTPATH_FDNAME_PREFIX "vblkd-ioeventfd."

static void fastpath_fd_name(const struct xpriv_ioeventfd *io, char *buf, size_t len)
{
	snprintf(buf, len, FASTPATH_FDNAME_PREFIX "%u.%llx.%u.%llx.%u", io->domid,
		 (unsigned long long)(uintptr_t)io->ioreq_page, io->nr_vcpus,
		 (unsigned long long)io->base, io->queue);
}

int fastpath_fd_name_parse(const char *name, struct xpriv_ioeventfd *ret_io)
{
	unsigned long long page, base;
	unsigned int domid, vcpus, queue;
	int end = 0;

	if (strncmp(name, FASTPATH_FDNAME_PREFIX, strlen(FASTPATH_FDNAME_PREFIX)) != 0)
		return -ENOENT;
	name += strlen(FASTPATH_FDNAME_PREFIX);
	if (sscanf(name, "%u.%llx.%u.%llx.%u%n", &domid, &page, &vcpus, &base, &queue, &end) != 5 ||
	    name[end] != '\0' || domid >= 0x7ff0 || !page || !vcpus || vcpus > 4096 ||
	    page != (uintptr_t)page || queue > 0xffff)
		return -EINVAL;
	*ret_io = (struct xpriv_ioeventfd){
		.domid = domid,
		.ioreq_page = (void *)(uintptr_t)page,
		.nr_vcpus = vcpus,
		.base = base,
		.size = FASTPATH_NOTIFY_SIZE,
		.queue = queue,
		.fd = -1,
	};
	return 0;
}

/* Hand @q's eventfd to the service manager's fd store, before the kernel gets it. */
static void fastpath_store(const struct fastpath_queue *q, const struct xpriv_ioeventfd *io)
{
	static bool warned;
	char name[128], msg[192];
	int r;

	fastpath_fd_name(io, name, sizeof(name));
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	r = notify_send_fd(msg, q->fd);
	if (r > 0 || __atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
		return;
	log_warn("dom %u: %s: should vblkd be killed (kill -9, a crash), guests on the kernel fast "
		 "path hang until they are destroyed; run vblkd under systemd (vblkd.service keeps the "
		 "eventfds in its FileDescriptorStore) or with --no-fast-path", q->w->fp->domid,
		 r == 0 ? "no service manager to keep the fast path's eventfds ($NOTIFY_SOCKET unset)"
			: "the service manager did not take the fast path's eventfd");
	if (r < 0)
		log_warn("fd store: %s", strerror(-r));
}

static void fastpath_unstore(const struct xpriv_ioeventfd *io)
{
	char name[128], msg[192];

	fastpath_fd_name(io, name, sizeof(name));
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	notify_send_wait(msg);
}

/* Unregister and close the window's ioeventfds (all, or those made so far). */
static void fastpath_notify_off(struct fastpath_window *w)
{
	for (unsigned int i = 0; w->queues && i < w->num_queues; i++) {
		struct fastpath_queue *q = &w->queues[i];

		if (q->assigned) {
			struct xpriv_ioeventfd io = fastpath_ioeventfd_args(q);
			int r = xpriv_ioeventfd(w->fp->xpriv, &io, false);

			if (r < 0)
				log_warn("dom %u: cannot unregister the ioeventfd of MMIO 0x%llx queue "
					 "%u: %s", w->fp->domid, (unsigned long long)w->base, i,
					 strerror(-r));
			q->assigned = false;
			fastpath_unstore(&io);
		}
		loop_remove(q->src);
		q->src = NULL;
		if (q->fd >= 0)
			close(q->fd);
		q->fd = -1;
	}
	w->notify_on = false;
}

/* 0, or the kernel's -errno for the first queue it refused (the window stays plain). */
static int fastpath_notify_on(struct fastpath_window *w)
{
	struct fastpath *fp = w->fp;
	int r = 0;

	w->queues = calloc(w->num_queues, sizeof(*w->queues));
	if (!w->queues)
		return -ENOMEM;
	for (unsigned int i = 0; i < w->num_queues; i++)
		w->queues[i] = (struct fastpath_queue){ .w = w, .index = i, .fd = -1 };
	for (unsigned int i = 0; i < w->num_queues && r == 0; i++) {
		struct fastpath_queue *q = &w->queues[i];
		struct xpriv_ioeventfd io;

		q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->fd < 0) {
			r = -errno;
			break;
		}
		r = loop_add_fd(w->loop, q->fd, EPOLLIN, fastpath_queue_ready, q, &q->src);
		if (r < 0)
			break;
		io = fastpath_ioeventfd_args(q);
		fastpath_store(q, &io);
		r = xpriv_ioeventfd(fp->xpriv, &io, true);
		q->assigned = r == 0;
		if (r < 0)
			fastpath_unstore(&io);
	}
	if (r < 0)
		fastpath_notify_off(w);
	else
		w->notify_on = true;
	return r;
}

static void fastpath_irq_off(struct fastpath_window *w)
{
	if (w->irq_assigned) {
		int r = xpriv_irqfd(w->fp->xpriv, w->fp->domid, w->irq, w->irq_fd, false);

		if (r < 0)
			log_warn("dom %u: cannot unregister the irqfd of IRQ %u: %s", w->fp->domid,
				 w->irq, strerror(-r));
		w->irq_assigned = false;
	}
	if (w->irq_fd >= 0)
		close(w->irq_fd);
	w->irq_fd = -1;
}

static int fastpath_irq_on(struct fastpath_window *w)
{
	int r;

	w->irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->irq_fd < 0)
		return -errno;
	r = xpriv_irqfd(w->fp->xpriv, w->fp->domid, w->irq, w->irq_fd, true);
	w->irq_assigned = r == 0;
	if (r < 0)
		fastpath_irq_off(w);
	return r;
}

/* Record a half's outcome: the guest's state is its first window's, unless a later one fails. */
static void fastpath_note(enum fastpath_state *state, int *err, int r)
{
	enum fastpath_state s = fastpath_classify(r);

	if (*state == FASTPATH_UNTRIED || (*state == FASTPATH_ON && s != FASTPATH_ON)) {
		*state = s;
		*err = r;
	}
}

static const char *fastpath_hint(int err)
{
	switch (err) {
	case -ENOTTY:
		return ": this kernel has no such ioctl (IRQFD: Linux 6.6+, IOEVENTFD: 6.7+)";
	case -EOPNOTSUPP:
		return ": this kernel was built without CONFIG_XEN_PRIVCMD_EVENTFD";
	case -ENOENT:
		return ": no /dev/xen/privcmd";
	default:
		return "";
	}
}

static void fastpath_explain(struct fastpath *fp)
{
	char n[128] = "", i[128] = "";

	if (fp->notify_state == FASTPATH_OFF) {
		snprintf(fp->why, sizeof(fp->why), "turned off (--no-fast-path)");
		return;
	}
	if (fp->notify_state != FASTPATH_ON)
		snprintf(n, sizeof(n), "IOCTL_PRIVCMD_IOEVENTFD: %s%s", strerror(-fp->notify_err),
			 fastpath_hint(fp->notify_err));
	if (fp->irq_state != FASTPATH_ON)
		snprintf(i, sizeof(i), "IOCTL_PRIVCMD_IRQFD: %s%s", strerror(-fp->irq_err),
			 fastpath_hint(fp->irq_err));
	snprintf(fp->why, sizeof(fp->why), "%s%s%s", n, *n && *i ? "; " : "", i);
}

static void fastpath_log(struct fastpath *fp)
{
	bool n = fp->notify_state == FASTPATH_ON, i = fp->irq_state == FASTPATH_ON;
	bool warn = fp->notify_state == FASTPATH_FAILED || fp->irq_state == FASTPATH_FAILED;

	fastpath_explain(fp);
	log_msg(warn ? LOG_LEVEL_WARNING : LOG_LEVEL_INFO,
		"dom %u: %s: QueueNotify through %s, interrupts through %s%s%s", fp->domid,
		n && i ? "kernel fast path" : n || i ? "partial kernel fast path" : "plain path",
		n ? "the kernel (ioeventfd)" : "vblkd's ioreq handling",
		i ? "the kernel (irqfd)" : "set_irq_level", *fp->why ? "; " : "", fp->why);
}

int fastpath_window_add(struct fastpath *fp, struct loop *loop, uint64_t base, unsigned int irq,
			unsigned int num_queues, void (*notify)(void *data, unsigned int queue),
			void *data, struct fastpath_window **ret_window)
{
	struct fastpath_window *w = calloc(1, sizeof(*w));
	enum fastpath_state before_n = fp->notify_state, before_i = fp->irq_state;
	int r;

	if (!w)
		return -ENOMEM;
	*w = (struct fastpath_window){ .fp = fp, .loop = loop ? loop : fp->loop, .base = base, .irq = irq,
				       .num_queues = num_queues, .irq_fd = -1, .notify = notify,
				       .data = data };
	/*
	 * Once the kernel said it lacks an ioctl, the guest's other windows do
	 * not ask again; a refusal for other reasons is per window.
	 */
	if (fp->xpriv && fp->notify_state != FASTPATH_UNSUPPORTED && num_queues) {
		r = fastpath_notify_on(w);
		if (r == -ENOMEM) {
			free(w);
			return r;
		}
		fastpath_note(&fp->notify_state, &fp->notify_err, r);
	}
	if (fp->xpriv && fp->irq_state != FASTPATH_UNSUPPORTED) {
		r = fastpath_irq_on(w);
		fastpath_note(&fp->irq_state, &fp->irq_err, r);
	}
	/* One line per guest, and another only if a later window changed the verdict. */
	if (!fp->logged || before_n != fp->notify_state || before_i != fp->irq_state)
		fastpath_log(fp);
	fp->logged = true;
	slist_push(&fp->windows, w, next);
	*ret_window = w;
	return 0;
}

int fastpath_window_queue_handoff(struct fastpath_window *w, unsigned int queue)
{
	struct fastpath_queue *q;

	if (!w || !w->notify_on || queue >= w->num_queues)
		return -1;
	q = &w->queues[queue];
	loop_remove(q->src);
	q->src = NULL;
	return q->fd;
}

void fastpath_window_remove(struct fastpath_window *w)
{
	if (!w)
		return;
	fastpath_notify_off(w);
	fastpath_irq_off(w);
	slist_remove(&w->fp->windows, w, next);
	free(w->queues);
	free(w);
}

void fastpath_free(struct fastpath *fp)
{
	if (!fp)
		return;
	while (fp->windows)
		fastpath_window_remove(fp->windows);
	free(fp);
}

bool fastpath_window_raise(struct fastpath_window *w)
{
	if (!w || !w->irq_assigned)
		return false;
	/* Only EAGAIN at a counter near 2^64: an interrupt is pending anyway. */
	if (eventfd_write(w->irq_fd, 1) < 0 && errno != EAGAIN)
		return false;
	return true;
}

bool fastpath_window_notify_on(const struct fastpath_window *w)
{
	return w && w->notify_on;
}

bool fastpath_window_irq_on(const struct fastpath_window *w)
{
	return w && w->irq_assigned;
}

bool fastpath_claims(const struct fastpath *fp, uint64_t addr, unsigned int size, uint64_t data)
{
	const struct fastpath_window *w;

	if (!fp || size != FASTPATH_NOTIFY_SIZE)
		return false;
	for (w = fp->windows; w; w = w->next)
		if (w->notify_on && addr == w->base + FASTPATH_QUEUE_NOTIFY)
			/* privcmd.c's QUEUE_NOTIFY_VQ_MASK: the low 16 bits name the queue. */
			return (data & 0xffff) < w->num_queues;
	return false;
}

bool fastpath_notify_active(const struct fastpath *fp)
{
	for (const struct fastpath_window *w = fp ? fp->windows : NULL; w; w = w->next)
		if (w->notify_on)
			return true;
	return false;
}

enum fastpath_state fastpath_notify_state(const struct fastpath *fp)
{
	return fp->notify_state;
}

enum fastpath_state fastpath_irq_state(const struct fastpath *fp)
{
	return fp->irq_state;
}

const char *fastpath_why(const struct fastpath *fp)
{
	return fp->why;
}

int fastpath_reclaim(struct xpriv *xpriv, const struct notify_fd *fds, unsigned int n)
{
	unsigned int taken = 0;
	char msg[300];

	for (unsigned int i = 0; i < n; i++) {
		struct xpriv_ioeventfd io;
		int r = fastpath_fd_name_parse(fds[i].name, &io);

		if (r < 0) {
			log_warn("the service manager passed descriptor %d named \"%s\", %s: closed "
				 "and dropped from its store", fds[i].fd, fds[i].name,
				 r == -ENOENT ? "which is not vblkd's" : "a name vblkd cannot read");
		} else if (fds[i].fd < 0) {
			log_warn("the service manager named \"%s\" but passed no open descriptor",
				 fds[i].name);
		} else if (!xpriv) {
			log_warn("dom %u: cannot remove the ioeventfd a killed vblkd left for MMIO "
				 "0x%llx queue %u: no /dev/xen/privcmd", io.domid,
				 (unsigned long long)io.base, io.queue);
		} else {
			io.fd = fds[i].fd;
			r = xpriv_ioeventfd(xpriv, &io, false);
			if (r == 0) {
				taken++;
				log_info("dom %u: removed the kernel's ioeventfd for MMIO 0x%llx queue %u "
					 "that a killed vblkd left (its event channels are free again)",
					 io.domid, (unsigned long long)io.base, io.queue);
			} else {
				/* ENODEV: the kernel has none (the guest is gone, or the kill came before it). */
				log_msg(r == -ENODEV ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARNING,
					"dom %u: the ioeventfd a killed vblkd left for MMIO 0x%llx queue %u: "
					"DEASSIGN: %s", io.domid, (unsigned long long)io.base, io.queue,
					strerror(-r));
			}
		}
		snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", fds[i].name);
		notify_send_wait(msg);
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	}
	return (int)taken;
}
