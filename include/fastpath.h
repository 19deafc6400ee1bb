/* SPDX-License-Identifier: GPL-2.0-only */
/* The kernel fast path: QueueNotify through privcmd's ioeventfd, interrupts through its irqfd. */
#ifndef VBLKD_FASTPATH_H
#define VBLKD_FASTPATH_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct xpriv;
struct fastpath;
struct fastpath_window;
struct notify_fd;
struct xpriv_ioeventfd;

/* virtio-mmio's QueueNotify register (virtio 1.2 §4.2.2), which privcmd's ioeventfd matches. */
#define FASTPATH_QUEUE_NOTIFY 0x50u
/* The access size it matches: QueueNotify is a 32-bit register. */
#define FASTPATH_NOTIFY_SIZE 4u

/* How one of the two halves (notifications, interrupts) of a guest's fast path went. */
enum fastpath_state {
	FASTPATH_UNTRIED,	/* no disk yet */
	FASTPATH_ON,		/* the kernel does it */
	FASTPATH_OFF,		/* --no-fast-path */
	FASTPATH_UNSUPPORTED,	/* the kernel lacks it (ENOTTY, EOPNOTSUPP, EINVAL, ENOENT): plain path */
	FASTPATH_FAILED,	/* the kernel refused otherwise: plain path, with a warning */
};

/* What an ioctl's result means for the fast path (0: FASTPATH_ON; both others fall back). */
enum fastpath_state fastpath_classify(int err);
/* "on", "off", "unsupported", "failed", "untried": the words of --status. */
const char *fastpath_state_name(enum fastpath_state state);

/*
 * One guest's fast path.  @xpriv NULL: off (@enabled false, --no-fast-path)
 * or no privcmd device (@open_err, -errno of xpriv_open()).  @ports are the
 * guest's vCPUs' local event channel ports, which this process has bound
 * (the kernel shares them, see fastpath.c); @ioreq_page the server's ioreq
 * page mapped by this process.  Both must outlive the fastpath.
 */
int fastpath_new(struct xpriv *xpriv, bool enabled, int open_err, struct loop *loop,
		 unsigned int domid, void *ioreq_page, const uint32_t *ports, unsigned int nr_vcpus,
		 struct fastpath **ret_fastpath);
/* Unregister every window (the kernel keeps ioeventfds until told) and free. */
void fastpath_free(struct fastpath *fp);

/*
 * Try the fast path for the register window at @base with @num_queues
 * queues and SPI @irq: an ioeventfd per queue, calling @notify(@data, queue)
 * from @loop (NULL: the guest's; called on @loop's thread, which removes the
 * window too) when the guest wrote that queue's index to QueueNotify, and
 * an irqfd for fastpath_window_raise().  Whatever the kernel says, the
 * window works (on the plain path where it must); the guest's first window
 * logs which path the guest got and why.  -ENOMEM only.
 */
int fastpath_window_add(struct fastpath *fp, struct loop *loop, uint64_t base, unsigned int irq,
			unsigned int num_queues, void (*notify)(void *data, unsigned int queue),
			void *data, struct fastpath_window **ret_window);
void fastpath_window_remove(struct fastpath_window *w);
/* Raise the window's interrupt through its irqfd: false when it has none (use set_irq_level). */
bool fastpath_window_raise(struct fastpath_window *w);
/*
 * @queue's notifications are for another thread to watch: the window's loop
 * (on its thread) stops watching its eventfd and returns the descriptor, or
 * -1 when the window is not on the fast path.  The other thread reads it
 * (eventfd_read(): notifications since the last read) and stops watching
 * it before the window is removed, which closes it.
 */
int fastpath_window_queue_handoff(struct fastpath_window *w, unsigned int queue);
bool fastpath_window_notify_on(const struct fastpath_window *w);
bool fastpath_window_irq_on(const struct fastpath_window *w);

/*
 * Whether the kernel completes this ioreq itself (privcmd.c
 * ioeventfd_interrupt(): an MMIO write of @size bytes to a registered
 * window's QueueNotify whose low 16 bits name a registered queue): the
 * ioreq handler must leave such a slot alone.
 */
bool fastpath_claims(const struct fastpath *fp, uint64_t addr, unsigned int size, uint64_t data);
/* True once some window's QueueNotify goes through the kernel. */
bool fastpath_notify_active(const struct fastpath *fp);

/* The guest's halves, and why (a sentence, "" when on), for --status. */
enum fastpath_state fastpath_notify_state(const struct fastpath *fp);
enum fastpath_state fastpath_irq_state(const struct fastpath *fp);
const char *fastpath_why(const struct fastpath *fp);

/*
 * At start, before any guest's ports are bound: the ioeventfds a killed
 * predecessor left in the service manager's fd store (notify_listen_fds()),
 * their kernel registrations removed (DEASSIGN with that eventfd), dropped
 * from the store and closed; other descriptors are closed and dropped with
 * a warning.  @xpriv NULL: no privcmd (each is logged).  Returns how many
 * registrations were removed.
 */
int fastpath_reclaim(struct xpriv *xpriv, const struct notify_fd *fds, unsigned int n);
/* Parse a stored ioeventfd's name: 0, -ENOENT (not one of ours) or -EINVAL. */
int fastpath_fd_name_parse(const char *name, struct xpriv_ioeventfd *ret_io);
#endif
