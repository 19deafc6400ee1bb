/* SPDX-License-Identifier: GPL-2.0-only */
/* Control API of the Xen simulator for tests and tools: start it, create/destroy guests, poke them. */
#ifndef XENSIM_H
#define XENSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

/*
 * Where things are found: every libxen* handle opened by libxensim connects
 * to the UNIX socket named by $XENSIM_SOCKET (default /tmp/xensim-<uid>.sock).
 * xensim_spawn() starts build/<cfg>/xensim on a private socket and sets
 * $XENSIM_SOCKET for the calling process and its children.
 */
struct xensim_proc {
	pid_t pid;
	char dir[64];
	char socket[96];
};

/* Run @bin --socket <tmp> --serve --ready-fd N @args... and wait until it listens. */
int xensim_spawn(const char *bin, const char *const *args, struct xensim_proc *ret_proc);
/* SIGTERM it, wait, remove the socket; returns its exit status (or -errno). */
int xensim_reap(struct xensim_proc *proc);

struct xensim;

int xensim_connect(struct xensim **ret_sim);
void xensim_disconnect(struct xensim *sim);

/*
 * Create a guest like `xl create`: @spec as for `xensim --guest`, e.g.
 * "vcpus=2,mem=64M,disk=/tmp/a.img:rw,disk=/tmp/b.img:ro".  Unless
 * XSIM_CREATE_NO_WAIT, waits up to 10 s for every disk's backend state 2
 * (InitWait) and returns the wait in *ret_wait_us; -ETIMEDOUT if the backend
 * never answered (the domain is then gone again, as with libxl).
 */
int xensim_domain_create(struct xensim *sim, const char *spec, unsigned int flags,
			 uint32_t *ret_domid, uint64_t *ret_wait_us);
/*
 * graceful: like `xl destroy` (pause, online=0 + state 5, wait up to 10 s for
 * state 6, remove the nodes, destroy).  Otherwise sudden death: the domain
 * and its nodes vanish at once.  -ETIMEDOUT if the backend never closed
 * (the domain is destroyed anyway).
 */
int xensim_domain_destroy(struct xensim *sim, uint32_t domid, bool graceful,
			  uint64_t *ret_wait_us);

/*
 * One MMIO access by @vcpu through its ioreq slot; -EFAULT: unclaimed,
 * -ETIMEDOUT: no answer, -EPROTO: answered without notifying (a hang on Xen).
 */
int xensim_guest_mmio(struct xensim *sim, uint32_t domid, unsigned int vcpu, uint64_t addr,
		      unsigned int size, bool write, uint64_t *data);
/*
 * An ioreq with arbitrary fields (data_is_ptr, count > 1, odd sizes, other
 * types), routed by address like an MMIO access: what a device model must
 * answer safely.  *ret_data gets the slot's data after the response.
 */
int xensim_guest_ioreq(struct xensim *sim, uint32_t domid, unsigned int vcpu,
		       const struct xsim_ioreq *req, uint64_t *ret_data);
/* Read or write guest RAM at guest physical address @gpa. */
int xensim_guest_read(struct xensim *sim, uint32_t domid, uint64_t gpa, void *buf, size_t len);
int xensim_guest_write(struct xensim *sim, uint32_t domid, uint64_t gpa, const void *buf,
		       size_t len);
/* Raise guest event channel @port towards dom0 / wait for dom0's notification on it. */
int xensim_guest_notify(struct xensim *sim, uint32_t domid, uint32_t port);
int xensim_guest_wait_event(struct xensim *sim, uint32_t domid, uint32_t port,
			    unsigned int timeout_ms);
/* How many times dom0 raised SPI @irq of the guest. */
int xensim_irq_count(struct xensim *sim, uint32_t domid, unsigned int irq, uint64_t *ret_count);
/*
 * QueueNotify writes (4 bytes at a window's 0x50) the guest made that the
 * privcmd stand-in completed (ioeventfd: they never reached the back end's
 * ioreq handling) and that a back end answered; interrupts raised through
 * irqfds.  The stand-in is there with xensim --privcmd-eventfd.
 */
int xensim_notifies(struct xensim *sim, uint32_t domid, uint64_t *ret_kernel,
		    uint64_t *ret_backend, uint64_t *ret_irqfd);
/* The guest grants dom0 access to frame @gfn. */
int xensim_grant(struct xensim *sim, uint32_t domid, uint64_t gfn, bool readonly,
		 uint32_t *ret_ref);
int xensim_stats(struct xensim *sim, struct xsim_stats *ret_stats);
/*
 * Run a workload (spec as for `xensim --workload`) on the guest's disks with
 * its vCPUs; *ret_report (malloc'ed) gets the report.  Returns 0 if every
 * check passed, -EIO on a data or status failure, -ETIMEDOUT on a hang.
 */
int xensim_workload(struct xensim *sim, uint32_t domid, const char *spec, char **ret_report);
/*
 * What the guest's workload sees: requests completed so far, when the
 * latest completed (CLOCK_MONOTONIC ns, comparable with this process's
 * clock), and what its driver is doing.
 */
int xensim_progress(struct xensim *sim, uint32_t domid, uint64_t *ret_completions,
		    uint64_t *ret_last_ns, enum xsim_phase *ret_phase);
/*
 * The completion gaps of at least XSIM_GAP_MIN_NS (struct xsim_gap) of every
 * guest that ended at or after @since_ns, oldest first; *ret_gaps is
 * malloc'ed (NULL when there are none).
 */
int xensim_gaps(struct xensim *sim, uint64_t since_ns, struct xsim_gap **ret_gaps, size_t *ret_n);

#endif
