/* SPDX-License-Identifier: GPL-2.0-only */
/* Internal interfaces of the xensim process: hypervisor, xenstore, toolstack, guests, server. */
#ifndef XENSIM_SIM_H
#define XENSIM_SIM_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/xen.h>
#include <xen/hvm/ioreq.h>

#include "../proto.h"

/*
 * One big lock protects the hypervisor and xenstore state; sim_cond is
 * broadcast on every xenstore change, domain death and unpause, so the
 * toolstack and paused vCPUs wait for events instead of polling (interrupts
 * wake vCPUs through the futexes of struct xsim_irq_page).
 */
extern pthread_mutex_t sim_lock;
extern pthread_cond_t sim_cond;
/* ioreq / interrupt wait limit of a guest, in ms (--timeout). */
extern unsigned int sim_timeout_ms;
/* How long the toolstack waits for InitWait / Closed: libxl's 10 s unless --libxl-timeout. */
extern unsigned int sim_libxl_timeout_ms;

/* Initialise sim_lock/sim_cond (sim_cond on CLOCK_MONOTONIC). */
void sim_init(void);

uint64_t sim_now_us(void);
/* Wait on sim_cond until @deadline_us (CLOCK_MONOTONIC); false once it passed. */
bool sim_cond_wait_until(uint64_t deadline_us);

/* ---- text buffer for reports ---- */
struct sbuf {
	char *s;
	size_t len, cap;
};
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- guest configuration (xensim --guest SPEC) ---- */
#define SIM_MAX_DISKS 8

struct disk_config {
	char path[256];
	char vdev[8];
	bool readonly;
	bool discard;
	bool grants;
	uint32_t devid;
	uint64_t base;
	unsigned int irq;
	/* Toolstack variations for the daemon's tests (bad or unusual xenstore contents). */
	bool base_set, irq_set, devid_set;
	bool hexbase;		/* base in hex, as Xen 4.18's generic virtio option writes it */
	bool dio;		/* direct-io-safe = 1 */
	bool params_set;
	char params[256];	/* written instead of path */
	unsigned int nomit;
	char omit[4][24];	/* backend keys not written */
};

struct guest_config {
	char name[32];
	unsigned int vcpus;
	uint64_t mem;
	uint32_t backend;
	bool packed;	/* use the packed ring when offered */
	bool no_event_idx;	/* do not negotiate VIRTIO_F_EVENT_IDX */
	unsigned int ndisks;
	struct disk_config disks[SIM_MAX_DISKS];
};

int toolstack_parse_guest(const char *spec, struct guest_config *ret_cfg, char *err, size_t errlen);

/* ---- hypervisor (hv.c) ---- */
struct sim_port {
	uint32_t port;		/* the guest's port number (the "remote" port for dom0) */
	int to_dom0;		/* eventfd: the guest signals, dom0 polls */
	int to_guest;		/* eventfd: dom0 signals, the guest polls */
	uint32_t local_port;	/* dom0's port while bound, else 0 */
	/* Time without a dom0 end (us, under sim_lock): a back end's outage is not its hang. */
	uint64_t unbound_since_us;	/* 0 while bound */
	uint64_t unbound_total_us;	/* earlier spells */
};

struct sim_range {
	uint32_t type;
	uint64_t start, end;
};

#define SIM_MAX_RANGES 256

/*
 * An ioeventfd the privcmd stand-in holds (Linux drivers/xen/privcmd.c
 * struct privcmd_kernel_ioeventfd, with its kioreq's ports).
 */
struct sim_ioeventfd {
	void *owner;		/* the connection that assigned it */
	uint64_t uioreq;	/* the ioreq page's address in that process (kioreq->uioreq) */
	uint64_t base;
	uint32_t size;
	uint32_t queue;
	int fd;
	uint32_t *ports;	/* per vCPU: the local port its handler hangs on */
	unsigned int nr_vcpus;
	struct sim_ioeventfd *next;
};

struct sim_ioserv {
	struct sim_ioeventfd *ioeventfds;
	uint16_t id;
	bool enabled;
	bool dead;
	int refs;
	int page_fd;
	int dead_fd;		/* eventfd, readable once destroyed: wakes waiting vCPUs */
	shared_iopage_t *page;
	struct sim_port **ports;	/* per vCPU */
	unsigned int nr_ranges;
	struct sim_range ranges[SIM_MAX_RANGES];
};

struct sim_grant {
	uint64_t gfn;
	bool used;
	bool readonly;
};

#define SIM_MAX_PORTS 1024

struct gdrv_guest;

/* A guest's requests as it sees them (iolog.c), for completion gaps and progress. */
struct sim_iolog {
	uint64_t pending;	/* submitted, not yet seen used */
	uint64_t wait_start_ns;	/* when pending last became non-zero */
	uint64_t last_done_ns;
	uint64_t completions;
	uint32_t phase;		/* enum xsim_phase, atomic */
};

struct sim_domain {
	uint32_t domid;
	uint8_t handle[16];	/* random, as xl makes one per created domain (libxl_uuid_generate) */
	struct guest_config cfg;
	unsigned int vcpus;
	uint64_t ram_bytes;
	int ram_fd;
	uint8_t *ram;
	bool dying;
	bool paused;
	bool destroying;
	int kill_fd;		/* eventfd, readable once dying */
	int refs;
	struct sim_ioserv *servers[XSIM_MAX_IOREQ_SERVERS];
	struct sim_port *ports[SIM_MAX_PORTS];
	struct sim_grant grants[XSIM_GRANT_ENTRIES];
	int irq_fd;		/* memfd of *irqs, handed to injecting backends */
	struct xsim_irq_page *irqs;
	pthread_mutex_t *vcpu_locks;
	struct sim_iolog iolog;
	/* QueueNotify writes (0x50, 4 bytes, in a virtio-mmio window): who completed them. */
	uint64_t notifies_kernel;
	uint64_t notifies_backend;
	uint64_t irqfd_raises;
	struct sim_domain *next;
};

/* All under sim_lock. */
struct sim_domain *hv_domain_find(uint32_t domid);	/* live (not dying) only */
struct sim_domain *hv_domain_any(void);	/* any live domain, or NULL */
int hv_domain_create(const struct guest_config *cfg, struct sim_domain **ret_dom);
/* Mark dying, wake everyone, unlink; the memory goes when the last ref is dropped. */
void hv_domain_kill(struct sim_domain *dom);
void hv_domain_get(struct sim_domain *dom);
void hv_domain_put(struct sim_domain *dom);	/* takes sim_lock itself */
unsigned int hv_domain_count(void);
void hv_stats(struct xsim_stats *st);
/* Unbind every port bound by connection @owner (it closed), and drop its ioeventfds. */
void hv_drop_owner(void *owner);
/* Whether the privcmd eventfd stand-in is there (--privcmd-eventfd). */
extern bool sim_privcmd_eventfd;
/* IOCTL_PRIVCMD_IOEVENTFD of @owner (XSIM_OP_IOEVENTFD); takes *fd on success.  Under sim_lock. */
int hv_ioeventfd(void *owner, struct xsim_msg *m, const char *tail, int *fd);
/* Same file? (kcmp(2)): how the kernel tells eventfds apart (one eventfd_ctx per file). */
bool sim_same_file(int a, int b);

/* Request handlers for the hypervisor ops; under sim_lock. fds go to ret_fds. */
int hv_handle(void *owner, struct xsim_msg *m, const char *tail, char **ret_tail, uint32_t *ret_n,
	      int *ret_fds, unsigned int *ret_nfds);

/*
 * One MMIO access of vCPU @vcpu, through its ioreq slot and event channel
 * (takes sim_lock itself; blocks up to sim_timeout_ms for the answer).
 * -EFAULT: no IOREQ server claims the address (a data abort on Arm);
 * -ETIMEDOUT: nobody answered (a hang); -EPROTO: answered but never
 * notified (a hang on Xen); -ESRCH: the domain died.
 */
int hv_mmio(struct sim_domain *dom, unsigned int vcpu, uint64_t addr, unsigned int size,
	    bool write, uint64_t *data);
/* The same with every ioreq field chosen by the caller (hostile tests). */
int hv_ioreq(struct sim_domain *dom, unsigned int vcpu, const struct xsim_ioreq *in,
	     uint64_t *ret_data);
/* Guest-side event channel operations (control API). */
int hv_guest_wait(struct sim_domain *dom, uint32_t port, unsigned int timeout_ms);
/* Under sim_lock: grant dom0 access to @gfn. */
int hv_grant(struct sim_domain *dom, uint64_t gfn, bool readonly, uint32_t *ret_ref);
/* Under sim_lock: grant @n frames from @gfn with consecutive refs from *ret_first. */
int hv_grant_range(struct sim_domain *dom, uint64_t gfn, uint32_t n, bool readonly,
		   uint32_t *ret_first);
void hv_ungrant(struct sim_domain *dom, uint32_t ref);

/* ---- xenstore (store.c), all under sim_lock ---- */
typedef void (*store_event_fn)(void *owner, const char *path, const char *token);
void store_init(store_event_fn fn);
int store_read(uint32_t tx, void *owner, const char *path, char **ret_val, uint32_t *ret_len);
int store_write(uint32_t tx, void *owner, const char *path, const void *val, uint32_t len);
int store_mkdir(uint32_t tx, void *owner, const char *path);
int store_rm(uint32_t tx, void *owner, const char *path);
int store_dir(uint32_t tx, void *owner, const char *path, char **ret_names, uint32_t *ret_len,
	      uint32_t *ret_count);
int store_get_perms(uint32_t tx, void *owner, const char *path, struct xsim_perm **ret_perms,
		    uint32_t *ret_n);
int store_set_perms(uint32_t tx, void *owner, const char *path, const struct xsim_perm *perms,
		    uint32_t n);
int store_watch(void *owner, const char *path, const char *token);
int store_unwatch(void *owner, const char *path, const char *token);
int store_tx_start(void *owner, uint32_t *ret_id);
int store_tx_end(void *owner, uint32_t id, bool abort);
void store_drop_owner(void *owner);
void store_fire_special(const char *name);
void store_stats(struct xsim_stats *st);
/* Convenience for the toolstack: printf-formatted value. */
int store_writef(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Value of @path compared with @want; false if absent. */
bool store_equals(const char *path, const char *want);
bool store_exists(const char *path);

/* ---- toolstack (toolstack.c): what libxl does for xl create / xl destroy ---- */
int toolstack_create(const struct guest_config *cfg, unsigned int flags, uint32_t *ret_domid,
		     uint64_t *ret_wait_us, struct sbuf *log);
int toolstack_destroy(uint32_t domid, bool graceful, uint64_t *ret_wait_us, struct sbuf *log);

/* ---- guests (gdrv.c: the driver, workload.c) ---- */
/* Run workload @spec on every disk of @dom with all its vCPUs; 0, -EIO, -ETIMEDOUT, -ESRCH. */
int workload_run(struct sim_domain *dom, const char *spec, struct sbuf *report);
/* Requests completed and bytes moved by all workloads so far. */
void workload_progress(uint64_t *ret_reqs, uint64_t *ret_bytes);

/* ---- what guests see of their requests (iolog.c); takes its own lock ---- */
/* A workload starts: nothing of an earlier one is in flight any more. */
void iolog_begin(struct sim_domain *dom);
/* A request made available at @t_ns / seen used at @t_ns (CLOCK_MONOTONIC). */
void iolog_submit(struct sim_domain *dom, uint64_t t_ns);
void iolog_done(struct sim_domain *dom, uint64_t t_ns);
void iolog_phase(struct sim_domain *dom, enum xsim_phase phase);
void iolog_progress(struct sim_domain *dom, uint64_t *ret_completions, uint64_t *ret_last_ns,
		    uint32_t *ret_phase);
/* The logged gaps that ended at or after @since_ns, oldest first (malloc'ed array). */
int iolog_gaps(uint64_t since_ns, struct xsim_gap **ret_gaps, uint32_t *ret_n);

/* ---- server (server.c) ---- */
struct loop;
/* Listen on @path and serve on @loop (run by one thread). */
int server_start(struct loop *loop, const char *path);
/* Stop serving: close every connection and the socket, remove it. */
void server_stop(void);

#endif
