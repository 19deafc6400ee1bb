/* SPDX-License-Identifier: GPL-2.0-only */
/* The simulated guest's virtio-mmio virtio-blk driver (from the virtio 1.2 spec) for the workloads. */
#ifndef XENSIM_GDRV_H
#define XENSIM_GDRV_H

#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "sim.h"

/* Little-endian fields of the guest's rings and requests, and a monotonic clock (ns). */
static inline uint16_t ld16(const uint8_t *p)
{
	uint16_t x;

	memcpy(&x, p, 2);
	return le16toh(x);
}

static inline uint32_t ld32(const uint8_t *p)
{
	uint32_t x;

	memcpy(&x, p, 4);
	return le32toh(x);
}

static inline void st16(uint8_t *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static inline void st32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static inline void st64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* virtio-mmio registers (virtio 1.2 §4.2.2). */
enum vm_reg {
	VM_MAGIC = 0x000,
	VM_VERSION = 0x004,
	VM_DEVICE_ID = 0x008,
	VM_VENDOR_ID = 0x00c,
	VM_DEVICE_FEATURES = 0x010,
	VM_DEVICE_FEATURES_SEL = 0x014,
	VM_DRIVER_FEATURES = 0x020,
	VM_DRIVER_FEATURES_SEL = 0x024,
	VM_QUEUE_SEL = 0x030,
	VM_QUEUE_NUM_MAX = 0x034,
	VM_QUEUE_NUM = 0x038,
	VM_QUEUE_READY = 0x044,
	VM_QUEUE_NOTIFY = 0x050,
	VM_INTERRUPT_STATUS = 0x060,
	VM_INTERRUPT_ACK = 0x064,
	VM_STATUS = 0x070,
	VM_QUEUE_DESC_LOW = 0x080,
	VM_QUEUE_DESC_HIGH = 0x084,
	VM_QUEUE_DRIVER_LOW = 0x090,
	VM_QUEUE_DRIVER_HIGH = 0x094,
	VM_QUEUE_DEVICE_LOW = 0x0a0,
	VM_QUEUE_DEVICE_HIGH = 0x0a4,
	VM_CONFIG_GENERATION = 0x0fc,
	VM_CONFIG = 0x100,
};

#define VM_MAGIC_VALUE 0x74726976u	/* "virt" */

/* Device status bits (§2.1). */
#define ST_ACKNOWLEDGE 1u
#define ST_DRIVER 2u
#define ST_DRIVER_OK 4u
#define ST_FEATURES_OK 8u
#define ST_NEEDS_RESET 64u
#define ST_FAILED 128u

/* Feature bits (§5.2.3, §6). */
#define F_BLK_SIZE_MAX 1
#define F_BLK_SEG_MAX 2
#define F_BLK_GEOMETRY 4
#define F_BLK_RO 5
#define F_BLK_BLK_SIZE 6
#define F_BLK_FLUSH 9
#define F_BLK_TOPOLOGY 10
#define F_BLK_CONFIG_WCE 11
#define F_BLK_MQ 12
#define F_BLK_DISCARD 13
#define F_BLK_WRITE_ZEROES 14
#define F_INDIRECT_DESC 28
#define F_EVENT_IDX 29
#define F_VERSION_1 32
#define F_ACCESS_PLATFORM 33
#define F_RING_PACKED 34

/* Request types and statuses (§5.2.6). */
#define BLK_T_IN 0u
#define BLK_T_OUT 1u
#define BLK_T_FLUSH 4u
#define BLK_T_GET_ID 8u
#define BLK_T_DISCARD 11u
#define BLK_T_WRITE_ZEROES 13u
#define BLK_S_OK 0u
#define BLK_S_IOERR 1u
#define BLK_S_UNSUPP 2u
#define BLK_S_NONE 0xffu	/* our marker: the device never wrote a status */

#define GUEST_MAX_IO (64u * 1024)
#define GUEST_BENCH_MAX_IO (1024u * 1024)	/* gdrv_guest_set_max_io() limit (bench workload) */
#define GUEST_QUEUE_SIZE 128u
#define GUEST_MAX_QUEUE_SIZE 256u	/* gdrv_dev_init_features() limit */
#define GUEST_MAX_QD 32u	/* requests in flight per vCPU and disk */

struct gdrv_guest;
struct gdrv_dev;
struct gdrv_vcpu;

/* A guest's driver state for one workload run; vCPU 0 probes every disk. */
int gdrv_guest_new(struct sim_domain *dom, struct gdrv_guest **ret_g);
void gdrv_guest_free(struct gdrv_guest *g);
/* Before any gdrv_dev_init(): each slot buffer holds @bytes (GUEST_MAX_IO..GUEST_BENCH_MAX_IO). */
int gdrv_guest_set_max_io(struct gdrv_guest *g, uint32_t bytes);
unsigned int gdrv_guest_ndevs(const struct gdrv_guest *g);
unsigned int gdrv_guest_nvcpus(const struct gdrv_guest *g);
uint32_t gdrv_guest_domid(const struct gdrv_guest *g);
struct gdrv_dev *gdrv_guest_dev(struct gdrv_guest *g, unsigned int i);
struct gdrv_vcpu *gdrv_guest_vcpu(struct gdrv_guest *g, unsigned int i);
/*
 * Zeroed guest RAM for a workload's own buffers, from the allocator the
 * driver uses (never freed; not granted, so not for disks with :grants):
 * @size bytes at a multiple of @align (a power of two; at least a page).
 * -ENOMEM when the guest's RAM is used up.
 */
int gdrv_guest_alloc(struct gdrv_guest *g, uint64_t size, uint64_t align, uint64_t *ret_gpa,
		     uint8_t **ret_host);
/* Where the guest's RAM is (XSIM_GUEST_RAM_BASE) and how large (its mem=). */
void gdrv_guest_ram(const struct gdrv_guest *g, uint64_t *ret_base, uint64_t *ret_bytes);

/* Probe, negotiate, set up queues, DRIVER_OK (§3.1.1); a failure is explained in the vCPU's error. */
int gdrv_dev_init(struct gdrv_vcpu *v, struct gdrv_dev *d);
/*
 * The same negotiating only those of the features it would take that are in
 * @mask (which must keep VIRTIO_F_VERSION_1), with queues of @queue_size
 * entries (a power of two up to GUEST_MAX_QUEUE_SIZE, halved down to
 * QueueNumMax; 0: GUEST_QUEUE_SIZE).  gdrv_dev_init() is (~0, 0).
 */
int gdrv_dev_init_features(struct gdrv_vcpu *v, struct gdrv_dev *d, uint64_t mask,
			   unsigned int queue_size);
/* Write 0 to Status and wait for the reset to complete (§4.2.3.1 / §2.4). */
int gdrv_dev_reset(struct gdrv_vcpu *v, struct gdrv_dev *d);

struct gdrv_info {
	const struct disk_config *cfg;
	uint64_t capacity;	/* 512-byte sectors */
	uint32_t blk_size;
	uint64_t features;
	unsigned int nqueues;
	bool packed;
	bool grants;
	uint32_t max_discard_sectors;
	uint32_t max_write_zeroes_sectors;
	uint32_t seg_max;
	uint32_t size_max;	/* 0: SIZE_MAX not negotiated */
	uint64_t notifies;	/* QueueNotify writes */
	uint64_t interrupts;	/* interrupts handled (InterruptStatus read) */
	uint64_t mmio;		/* MMIO accesses, each one ioreq */
	uint64_t config_changes;	/* configuration change interrupts (capacity re-read) */
};
void gdrv_dev_get_info(struct gdrv_dev *d, struct gdrv_info *ret);

/* How a request is laid out in descriptors (the device must not assume a framing, §2.6.4). */
struct req_layout {
	unsigned int data_segs;	/* split the data into this many descriptors (>= 1) */
	bool merge;		/* header+data (out) or data+status (in) in one descriptor */
	bool indirect;		/* through an indirect table, if negotiated */
};

/*
 * One block request from vCPU @v on its queue of @d, waiting for the
 * interrupt and the used entry.  @buf is the vCPU's data buffer for this
 * device (guest memory, GUEST_MAX_IO bytes).  Returns 0 with *ret_status
 * set, or -errno (-ETIMEDOUT: hang, -ESRCH: domain died, -EIO: protocol
 * violation by the device, explained in the vCPU's error).
 */
int gdrv_request(struct gdrv_vcpu *v, struct gdrv_dev *d, uint32_t type, uint64_t sector, uint32_t len,
		 const struct req_layout *lay, uint8_t *ret_status);
uint8_t *gdrv_buffer(struct gdrv_vcpu *v, struct gdrv_dev *d);
/*
 * The same in two halves, for several requests in flight per vCPU: @slot
 * (< GUEST_MAX_QD) names the request and its buffer (gdrv_slot_buffer()).
 * Completions may be waited for in any order.
 */
int gdrv_submit(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot, uint32_t type,
		uint64_t sector, uint32_t len, const struct req_layout *lay);
int gdrv_wait(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot, uint8_t *ret_status);
/* Wait for whichever of the vCPU's requests on @d finishes first (-EINVAL: none in flight). */
int gdrv_wait_any(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int *ret_slot,
		  uint8_t *ret_status);
uint8_t *gdrv_slot_buffer(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot);
/*
 * Nanoseconds from the slot's last gdrv_submit() until the guest first saw
 * its used entry (when any vCPU reaped the queue): the request's latency.
 */
uint64_t gdrv_slot_latency_ns(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot);
/* When that request was seen done (CLOCK_MONOTONIC, ns); 0 for none. */
uint64_t gdrv_slot_done_ns(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot);
/*
 * For a request whose completion the vCPU slept for: nanoseconds from the
 * interrupt's raise (the backend's set_irq_level) until the vCPU saw the
 * request done, the ISR read and ACK in between; 0 if it did not sleep.
 */
uint64_t gdrv_slot_irq_ns(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int slot);
unsigned int gdrv_dev_index(const struct gdrv_dev *d);
/* The address the device sees for guest physical @gpa (a grant address with ACCESS_PLATFORM). */
uint64_t gdrv_dev_dma(struct gdrv_dev *d, uint64_t gpa);
bool gdrv_dev_ready(const struct gdrv_dev *d);

/* Raw MMIO on @d's window for hostile scripts; and the vCPU's error text. */
int gdrv_dev_mmio(struct gdrv_vcpu *v, struct gdrv_dev *d, unsigned int off, unsigned int size,
		  bool write,
	      uint64_t *val);
/* A raw ioreq from vCPU @v (hv_ioreq). */
int gdrv_vcpu_ioreq(struct gdrv_vcpu *v, const struct xsim_ioreq *in, uint64_t *ret_data);
/* Record the first failure of this vCPU (returns -EIO). */
int gdrv_vcpu_fail(struct gdrv_vcpu *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *gdrv_vcpu_error(const struct gdrv_vcpu *v);
unsigned int gdrv_vcpu_id(const struct gdrv_vcpu *v);
/*
 * The vCPU's MMIO accesses to its devices so far (each a trap to the IOREQ
 * server) and the nanoseconds it spent waiting for their answers.
 */
void gdrv_vcpu_traps(const struct gdrv_vcpu *v, uint64_t *ret_traps, uint64_t *ret_ns);

/* For hostile scripts: the split ring of the vCPU's queue, and its notify. */
struct gdrv_raw {
	unsigned int index;
	uint16_t num;
	bool packed;
	uint8_t *desc, *avail, *used;	/* host pointers */
	uint64_t desc_gpa;
	uint8_t *buf;			/* scratch data buffer */
	uint64_t buf_gpa;
	uint16_t next_avail;		/* packed: where the driver writes next */
	bool avail_wrap;		/* packed: its wrap counter */
};
/* Lock the vCPU's queue for raw access (no other request in flight on it). */
int gdrv_raw_begin(struct gdrv_vcpu *v, struct gdrv_dev *d, struct gdrv_raw *ret);
void gdrv_raw_end(struct gdrv_vcpu *v, struct gdrv_dev *d);
/*
 * Wait until the used idx moves past @old_used (split) or the next used slot
 * is written (packed), or the device needs a reset: 1 completed, 0 needs
 * reset, -errno.
 */
int gdrv_raw_wait(struct gdrv_vcpu *v, struct gdrv_dev *d, uint16_t old_used, unsigned int timeout_ms);

#endif
