/* SPDX-License-Identifier: GPL-2.0-only */
/* One Xen guest: its IOREQ server, per-vCPU event channels, guest memory and MMIO register windows. */
#ifndef VBLKD_GUEST_H
#define VBLKD_GUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "gmem.h"

struct loop;
struct guest;
struct guest_mmio;
struct guest_sys;
struct gmem;

/* A device behind a register window; @offset is relative to the window base. */
struct guest_mmio_ops {
	uint64_t (*read)(void *dev, uint64_t offset, unsigned int size);
	/*
	 * True when the write is complete.  False: the device needs time (e.g. a
	 * reset waiting for old requests); the vCPU's ioreq stays unanswered, and
	 * the vCPU waits, until guest_mmio_resume().
	 */
	bool (*write)(void *dev, uint64_t offset, unsigned int size, uint64_t value);
	/* Optional: writes at @offset need no waiting: answer the vCPU before acting on them. */
	bool (*posted)(uint64_t offset);
	/*
	 * Optional: this access (@value: a write's) touches only what the
	 * device keeps atomic (InterruptStatus), or hands itself on to another
	 * thread (a QueueNotify for a queue served elsewhere): the guest's
	 * thread makes it itself, not handing it to the window's thread
	 * (guest_mmio_serve_on()), until guest_mmio_close().  Called under the
	 * lock that keeps the window.  A write it approves must complete at
	 * once (write() returns true): nothing waits on the guest's thread.
	 */
	bool (*any_thread)(void *dev, uint64_t offset, unsigned int size, bool write,
			   uint64_t value);
};

/* Daemon-wide Xen handles (device model, foreign memory, grant tables). */
int guest_sys_open(struct guest_sys **ret_sys);
void guest_sys_close(struct guest_sys *sys);
/*
 * Try the kernel fast path (privcmd's ioeventfd and irqfd, see fastpath.c)
 * for guests set up from now on; off: today's path only (--no-fast-path).
 */
void guest_sys_set_fast_path(struct guest_sys *sys, bool on);
/*
 * The service manager's descriptors passed at start (notify_listen_fds()):
 * the kernel fast path registrations a killed predecessor left are removed
 * (fastpath_reclaim()), with or without the fast path now, before any
 * guest's event channels are bound; every descriptor is closed.
 */
struct notify_fd;
void guest_sys_reclaim(struct guest_sys *sys, const struct notify_fd *fds, unsigned int n);
/*
 * @room is called when a mapping of @guest was refused for the budget and
 * something has been released since (@guest NULL: a wait on the limit of all
 * guests, any guest may try again): its devices waiting for room may try
 * again.  Called from inside an unmap: it must not map.
 */
void guest_sys_set_room(struct guest_sys *sys, void (*room)(void *data, struct guest *guest),
			void *data);

/*
 * Create the guest's one IOREQ server (for all its disks), map its ioreq
 * page and bind one event channel per vCPU, all watched by @loop.  Errors are
 * logged naming the domain; -errno is returned.
 */
int guest_new(struct guest_sys *sys, struct loop *loop, unsigned int domid,
	      struct guest **ret_guest);
/*
 * Take over IOREQ server @id of @domid that a previous process created (and
 * whose id it recorded): map its ioreq page and bind the vCPUs' event
 * channels again; nothing is created and the ranges stay mapped.  The
 * vCPUs' slots are left alone until guest_adopt_resume(), once the guest's
 * disks are back (guest_mmio_adopt()).  A failure is logged and leaves the
 * server as it was.
 */
int guest_adopt(struct guest_sys *sys, struct loop *loop, unsigned int domid, unsigned int id,
		struct guest **ret_guest);
/* Answer what each vCPU waits for (see guest.c), and go on as a guest_new() guest. */
void guest_adopt_resume(struct guest *guest);
/*
 * From now on, releasing the guest (guest_mmio_remove(), guest_free()) lets
 * go of what is ours (mappings, handles) and leaves Xen's side as it is for
 * a successor process: the server, its ranges and state, vCPUs waiting in
 * their slots.
 */
void guest_detach(struct guest *guest);
/*
 * The IOREQ servers @domid has now (any emulator's), bit i for id i; Xen
 * has at most 8 per domain (MAX_NR_IOREQ_SERVERS, xen/common/ioreq.c).
 */
uint32_t guest_sys_servers(struct guest_sys *sys, unsigned int domid);
/* Destroy server @id of @domid (a previous process's, not adopted).  Quiet. */
void guest_sys_destroy_server(struct guest_sys *sys, unsigned int domid, unsigned int id);
unsigned int guest_server_id(const struct guest *guest);
/*
 * The domain's handle (its UUID, xl's "uuid"), to tell a guest from a later
 * one under the same domid: -ESRCH when there is no such live domain.  All
 * zero when the control interface is unavailable.
 */
int guest_sys_domain_handle(struct guest_sys *sys, unsigned int domid, uint8_t handle[16]);

/*
 * Release everything: ranges, event channels, the server, mappings.  With
 * @dead set the guest is gone: nothing of its memory is read or written
 * (hypercalls that fail for a dead domain are expected and quiet).
 */
void guest_free(struct guest *guest, bool dead);
unsigned int guest_nr_vcpus(const struct guest *guest);
/* The caller's pointer for @guest (what the room() callback's guest is to it). */
void guest_set_data(struct guest *guest, void *data);
void *guest_data(const struct guest *guest);

/*
 * Claim the register window [base, base + size) for @dev and raise @irq for
 * it.  Accesses start arriving once guest_mmio_enable() has mapped the range
 * in the IOREQ server; the window is checked for overlap with the guest's
 * other windows.  @grants: the device's guest addresses are grant references.
 */
int guest_mmio_add(struct guest *guest, uint64_t base, uint64_t size, unsigned int irq,
		   bool grants, const struct guest_mmio_ops *ops, void *dev,
		   struct guest_mmio **ret_mmio);
/*
 * The window's device is served by @t's thread: the guest's vCPUs' accesses
 * to it are handed to that thread, answered there, and its fast path
 * notifications come from @t's loop (iothread_loop()).  Before
 * guest_mmio_enable() / guest_mmio_adopt(); then the window's functions
 * below (but guest_mmio_get_fast_path()) are called on that thread only,
 * and the window is removed there before its guest is freed (what was
 * handed over and not yet run by then is answered "no device").  Without
 * this call, the guest's own thread serves it.
 */
struct iothread;
void guest_mmio_serve_on(struct guest_mmio *mmio, struct iothread *t);
int guest_mmio_enable(struct guest_mmio *mmio);
/* The window of an adopted server: its range is mapped already (by the previous process). */
void guest_mmio_adopt(struct guest_mmio *mmio);
/*
 * Once the window's device has @num_queues queues: have the kernel complete
 * their QueueNotify writes (each then comes as write(dev, 0x50, 4, queue)
 * from the loop) and raise the window's interrupt, where it can.  The
 * window works either way; -ENOMEM only.
 */
int guest_mmio_fast_path(struct guest_mmio *mmio, unsigned int num_queues);
/*
 * On the window's thread: @queue's QueueNotify eventfd, for another thread
 * to watch (fastpath_window_queue_handoff()); -1 without the fast path.
 */
int guest_mmio_queue_handoff(struct guest_mmio *mmio, unsigned int queue);
/* Whether the window's QueueNotify and interrupt go through the kernel. */
void guest_mmio_get_fast_path(const struct guest_mmio *mmio, bool *ret_notify, bool *ret_irq);
/*
 * The guest's fast path: "on", "partial" (one half), "off" (--no-fast-path),
 * "unsupported", "failed" or "untried" (no disk yet), and why not (a
 * sentence, "" when on).
 */
const char *guest_fast_path(struct guest *guest, const char **ret_why);
/*
 * The window's device is going: from now on no access reaches it from
 * another thread than the window's (ops->any_thread); the window itself
 * stays until guest_mmio_remove().  Accepts NULL.
 */
void guest_mmio_close(struct guest_mmio *mmio);
/* Answer the vCPUs whose writes to this window write() left waiting. */
void guest_mmio_resume(struct guest_mmio *mmio);
/* Unmap the range from the server (if enabled) and forget the window. */
void guest_mmio_remove(struct guest_mmio *mmio);

/* Largest range guest_mmio_map() takes at once: the transport's max_map. */
#define GUEST_MAX_MAP GMEM_MAX_MAP

/*
 * The transport functions of a window, to put into the device's virtio
 * transport ops with the guest_mmio as opaque (signatures as
 * struct virtio_transport_ops): guest memory through the guest's mapping
 * cache, and the interrupt as an edge on the window's SPI.
 */
int guest_mmio_map(void *mmio, uint64_t gpa, uint64_t len, bool write, void **ret_ptr);
void guest_mmio_unmap(void *mmio, void *ptr, uint64_t len);
/* Grants: a request's small pieces by one grant copy (gmem_copy()); -EOPNOTSUPP otherwise. */
int guest_mmio_copy(void *mmio, const struct virtio_copy *c, unsigned int n);
void guest_mmio_wait_room(void *mmio);
void guest_mmio_notify(void *mmio);

struct guest_stats {
	uint64_t ioreqs;	/* register accesses handled */
	uint64_t bad_ioreqs;	/* answered without reaching a device (unknown address, size, type) */
	uint64_t irqs;		/* interrupts raised */
	struct gmem_stats mem;	/* the guest memory mapping cache */
};
void guest_get_stats(const struct guest *guest, struct guest_stats *ret_stats);

#endif
