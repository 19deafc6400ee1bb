/* SPDX-License-Identifier: GPL-2.0-only */
/* Wire protocol between libxensim (in the daemon or a test) and the xensim simulator process. */
#ifndef XENSIM_PROTO_H
#define XENSIM_PROTO_H

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * Transport: one AF_UNIX SOCK_SEQPACKET connection per library handle (an
 * xs handle has two: requests, and watch events so that xs_fileno() is a real
 * pollable fd).  Every message is one struct xsim_msg followed by @n bytes of
 * tail; file descriptors (guest RAM and ioreq page memfds, event channel
 * eventfds) travel as SCM_RIGHTS on the reply.  Requests are answered in
 * order, with ret = 0 or -errno.
 */
#define XSIM_TAIL_MAX 65536
#define XSIM_MAX_FDS 4

/* Address space of a simulated Arm guest (xen/include/public/arch-arm.h). */
#define XSIM_PAGE_SHIFT 12
#define XSIM_PAGE_SIZE 4096ull
#define XSIM_GUEST_RAM_BASE 0x40000000ull
#define XSIM_GUEST_RAM_MAX 0xc0000000ull
#define XSIM_VIRTIO_MMIO_BASE 0x02000000ull
#define XSIM_VIRTIO_MMIO_SIZE 0x00100000ull
#define XSIM_VIRTIO_MMIO_DEV_SIZE 0x200ull
#define XSIM_VIRTIO_SPI_FIRST 33
#define XSIM_VIRTIO_SPI_LAST 43
/* SPIs the simulated vGIC has (Xen rejects set_irq_level outside 32..vgic lines). */
#define XSIM_IRQ_MIN 32
#define XSIM_IRQ_MAX 127
/* Xen's limit on IOREQ servers per domain. */
#define XSIM_MAX_IOREQ_SERVERS 8
#define XSIM_MAX_VCPUS 64
#define XSIM_GRANT_ENTRIES 32768	/* v1 entries of Xen's default 64 grant frames */

enum xsim_op {
	XSIM_OP_HELLO = 1,	/* a = enum xsim_conn_kind, b = cookie of the xs request conn */
	XSIM_OP_DOMINFO,	/* domid -> a = vcpus, b = ram pages, c = XSIM_DOMF_* */
	XSIM_OP_DOMLIST,	/* domid = first, a = max -> tail = struct xsim_dominfo[] */
	XSIM_OP_IOREQ_CREATE,	/* domid, a = handle_bufioreq -> id */
	XSIM_OP_IOREQ_INFO,	/* domid, id -> a = bufioreq port */
	XSIM_OP_IOREQ_RANGE,	/* domid, id, a = type, b = start, c = end, d = 1 map / 0 unmap */
	XSIM_OP_IOREQ_STATE,	/* domid, id, a = enabled */
	XSIM_OP_IOREQ_DESTROY,	/* domid, id */
	XSIM_OP_RESOURCE,	/* domid, id, a = type, b = frame, c = nr -> fd 0, a = offset in fd */
	XSIM_OP_FMAP,		/* domid, tail = u64 gfns -> fd 0 (RAM), a = RAM base gfn,
				   tail = i32 errs */
	XSIM_OP_GNTMAP,		/* domid, a = writable, tail = u32 refs -> fd 0,
				   a = RAM base gfn, tail = u64 gfns */
	XSIM_OP_EVT_BIND,	/* domid, a = remote port -> id = local port,
				   fds: 0 = to dom0, 1 = to guest */
	XSIM_OP_EVT_UNBIND,	/* id = local port */
	XSIM_OP_XS_READ,	/* id = tx, tail = path -> tail = value */
	XSIM_OP_XS_WRITE,	/* id = tx, a = path length, tail = path NUL value */
	XSIM_OP_XS_MKDIR,	/* id = tx, tail = path */
	XSIM_OP_XS_RM,		/* id = tx, tail = path */
	XSIM_OP_XS_DIR,		/* id = tx, tail = path -> a = count, tail = NUL-separated names */
	XSIM_OP_XS_WATCH,	/* tail = path NUL token NUL */
	XSIM_OP_XS_UNWATCH,	/* tail = path NUL token NUL */
	XSIM_OP_XS_TX_START,	/* -> id */
	XSIM_OP_XS_TX_END,	/* id, a = abort */
	XSIM_OP_XS_GET_PERMS,	/* id = tx, tail = path -> tail = struct xsim_perm[] */
	XSIM_OP_XS_SET_PERMS,	/* id = tx, a = path length, tail = path NUL struct xsim_perm[] */
	XSIM_OP_XS_INTRODUCED,	/* domid -> a = 0/1 */
	XSIM_OP_XS_EVENT,	/* server -> client on the watch conn: tail = path NUL token NUL */
	/* Control operations for tests and the front end. */
	XSIM_OP_CTL_CREATE,	/* a = XSIM_CREATE_*, tail = guest spec -> domid,
				   a = InitWait wait in us */
	XSIM_OP_CTL_DESTROY,	/* domid, a = 1 graceful (libxl) / 0 sudden death
				   -> a = Closed wait in us */
	XSIM_OP_CTL_MMIO,	/* domid, a = vcpu, b = addr, c = size | write << 8, d = data -> d */
	XSIM_OP_CTL_MEM,	/* domid, a = gpa, b = len, c = 1 write, tail = data -> tail = data */
	XSIM_OP_CTL_NOTIFY,	/* domid, a = guest port: raise it towards dom0 */
	XSIM_OP_CTL_WAIT_EVENT,	/* domid, a = guest port, b = timeout ms -> 0 or -ETIMEDOUT */
	XSIM_OP_CTL_IRQS,	/* domid, a = irq -> a = number of raises seen */
	XSIM_OP_CTL_STATS,	/* -> struct xsim_stats in tail */
	XSIM_OP_CTL_WORKLOAD,	/* domid, tail = workload spec -> tail = report text */
	XSIM_OP_CTL_GRANT,	/* domid, a = gfn, b = readonly -> id = ref */
	XSIM_OP_CTL_IOREQ,	/* domid, a = vcpu, tail = struct xsim_ioreq -> d = data */
	XSIM_OP_IRQ_PAGE,	/* domid -> fd 0: the domain's struct xsim_irq_page */
	XSIM_OP_CTL_PROGRESS,	/* domid -> a = requests completed, b = CLOCK_MONOTONIC ns of
				   the latest, c = enum xsim_phase */
	XSIM_OP_CTL_GAPS,	/* a = since (CLOCK_MONOTONIC ns) -> tail = struct xsim_gap[]
				   that ended at or after it */
	/*
	 * The kernel's privcmd eventfd ioctls (include/xpriv.h; -ENOTTY unless
	 * xensim runs with --privcmd-eventfd, like a kernel without them).
	 */
	XSIM_OP_IOEVENTFD,	/* domid, id = IOREQ server, a = base, b = size | queue << 32,
				   c = 1 deassign, d = vCPUs, tail = u32 local ports then u64 address
				   of the ioreq page in the caller, fd 0 = eventfd; deassign: no id */
	XSIM_OP_IRQFD,		/* domid, a = irq, c = 1 deassign, fd 0 = eventfd */
	XSIM_OP_CTL_NOTIFIES,	/* domid -> a = QueueNotify writes the kernel stand-in completed,
				   b = QueueNotify writes a back end answered, c = irqfd raises */
	XSIM_OP_MAX,
};

/*
 * A domain's interrupt lines, in memory shared with the backends that inject
 * them: like Xen's, xendevicemodel_set_irq_level() then runs on the caller's
 * CPU (a hypercall), with no round trip through the simulator's threads.
 * A vCPU waiting for a line sleeps on its seq, a futex: a raise wakes only
 * the vCPUs waiting for that line, as the vGIC interrupts only its target.
 */
struct xsim_irq_page {
	uint32_t seq[XSIM_IRQ_MAX + 1];	/* bumped after every raise, and when dying is set */
	uint32_t dying;			/* the domain is being destroyed: injection fails (ESRCH) */
	uint64_t raised[XSIM_IRQ_MAX + 1];	/* level-1 calls per line: one interrupt each */
	uint64_t raised_ns[XSIM_IRQ_MAX + 1];	/* CLOCK_MONOTONIC of the latest raise (figures) */
};
#define XSIM_IRQ_PAGE_BYTES 4096u
_Static_assert(sizeof(struct xsim_irq_page) <= XSIM_IRQ_PAGE_BYTES, "irq page");

/* Process-shared futex on a word of a MAP_SHARED mapping. */
static inline void xsim_futex_wake(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* One set_irq_level call on a line in range; level 1 is one interrupt (Arm's vGIC). */
static inline void xsim_irq_set(struct xsim_irq_page *p, unsigned int irq, unsigned int level)
{
	if (!level)
		return;
	{
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		__atomic_store_n(&p->raised_ns[irq],
				 (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec,
				 __ATOMIC_SEQ_CST);
	}
	__atomic_fetch_add(&p->raised[irq], 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&p->seq[irq], 1, __ATOMIC_SEQ_CST);
	xsim_futex_wake(&p->seq[irq]);
}

/* Sleep while *word == @val, at most @timeout_us. */
static inline void xsim_futex_wait(uint32_t *word, uint32_t val, uint64_t timeout_us)
{
	struct timespec ts = { .tv_sec = (time_t)(timeout_us / 1000000),
			       .tv_nsec = (long)(timeout_us % 1000000) * 1000 };

	syscall(SYS_futex, word, FUTEX_WAIT, val, &ts, NULL, 0);
}

enum xsim_conn_kind {
	XSIM_CONN_GENERIC = 0,	/* evtchn, fmem, dmod, gnttab, xc, ctl */
	XSIM_CONN_XS = 1,
	XSIM_CONN_XS_EVENTS = 2,
};

#define XSIM_DOMF_DYING 1u
#define XSIM_DOMF_PAUSED 2u

/* XSIM_OP_CTL_CREATE flags. */
#define XSIM_CREATE_NO_WAIT 1u	/* do not wait for the backend's InitWait */

struct xsim_msg {
	uint32_t op;
	int32_t ret;
	uint32_t domid;
	uint32_t id;
	uint64_t a, b, c, d;
	uint32_t n;	/* tail bytes */
	uint32_t nfds;	/* informational */
};

struct xsim_dominfo {
	uint32_t domid;
	uint32_t vcpus;
	uint32_t flags;
	uint32_t pad;
	uint64_t ram_pages;
	uint8_t handle[16];	/* xen_domain_handle_t: the domain's UUID (xl's "uuid") */
};

struct xsim_perm {
	uint32_t id;
	uint32_t perms;	/* XS_PERM_* */
};

/* A raw ioreq as a hostile (or non-Arm) guest could make Xen send it (struct ioreq fields). */
struct xsim_ioreq {
	uint64_t addr;
	uint64_t data;
	uint32_t count;
	uint32_t size;
	uint8_t dir;		/* IOREQ_READ 1 / IOREQ_WRITE 0 */
	uint8_t type;		/* IOREQ_TYPE_* */
	uint8_t data_is_ptr;
	uint8_t df;
	uint32_t pad;
};

/* What a guest's workload is doing (XSIM_OP_CTL_PROGRESS). */
enum xsim_phase {
	XSIM_PHASE_IDLE = 0,	/* no workload */
	XSIM_PHASE_PROBE,	/* the driver sets a device up (§3.1.1) */
	XSIM_PHASE_IO,		/* requests */
	XSIM_PHASE_RESET,	/* the driver resets a device (Status 0, §4.2.3.1) */
};

/*
 * A completion gap of one guest: from @start_ns (its latest completion, or
 * the submission that ended an idle spell) to @end_ns (its next completion),
 * with at least one request in flight all along; only gaps of at least
 * XSIM_GAP_MIN_NS are kept (the last XSIM_GAP_LOG of all guests).
 */
struct xsim_gap {
	uint32_t domid;
	uint32_t pad;
	uint64_t start_ns;
	uint64_t end_ns;
};
#define XSIM_GAP_MIN_NS 1000000ull
#define XSIM_GAP_LOG 2048u
_Static_assert(XSIM_GAP_LOG * sizeof(struct xsim_gap) <= XSIM_TAIL_MAX, "gap log fits a reply");

struct xsim_stats {
	uint32_t domains;
	uint32_t ioreq_servers;
	uint32_t bound_ports;
	uint32_t open_fds;
	uint32_t connections;
	uint32_t watches;
	uint32_t transactions;
	uint32_t grants;
};

/* Send one message with @nfds descriptors; 0 or -errno. */
int xsim_send(int fd, const struct xsim_msg *m, const void *tail, const int *fds, unsigned int nfds);
/*
 * Receive one message: the tail (NUL-terminated, in a malloc'ed buffer the
 * caller frees, NULL when empty) and up to @max_fds descriptors (the rest are
 * closed; unused slots set to -1).  Returns 0, -ECONNRESET on EOF, or -errno.
 */
int xsim_recv(int fd, struct xsim_msg *m, char **ret_tail, int *fds, unsigned int max_fds,
	      int flags);
/* Path of the simulator's socket: $XENSIM_SOCKET, else /tmp/xensim-<uid>.sock. */
const char *xsim_socket_path(char *buf, unsigned long size);
/* vblkd-sim's default state directory: "<socket>.state" (see wire.c). */
const char *xensim_state_dir(void);

#endif
