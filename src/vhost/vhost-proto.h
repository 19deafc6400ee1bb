/* SPDX-License-Identifier: GPL-2.0-only */
/* The vhost-user wire format (QEMU docs/interop/vhost-user.rst): the only file that spells it out. */
#ifndef VBLKD_VHOST_PROTO_H
#define VBLKD_VHOST_PROTO_H

#include <stdint.h>

/* Front-end requests ("Front-end message types"). */
enum vhost_req {
	VHOST_USER_GET_FEATURES = 1,
	VHOST_USER_SET_FEATURES = 2,
	VHOST_USER_SET_OWNER = 3,
	VHOST_USER_RESET_OWNER = 4,
	VHOST_USER_SET_MEM_TABLE = 5,
	VHOST_USER_SET_VRING_NUM = 8,
	VHOST_USER_SET_VRING_ADDR = 9,
	VHOST_USER_SET_VRING_BASE = 10,
	VHOST_USER_GET_VRING_BASE = 11,
	VHOST_USER_SET_VRING_KICK = 12,
	VHOST_USER_SET_VRING_CALL = 13,
	VHOST_USER_SET_VRING_ERR = 14,
	VHOST_USER_GET_PROTOCOL_FEATURES = 15,
	VHOST_USER_SET_PROTOCOL_FEATURES = 16,
	VHOST_USER_GET_QUEUE_NUM = 17,
	VHOST_USER_SET_VRING_ENABLE = 18,
	VHOST_USER_GET_CONFIG = 24,
	VHOST_USER_SET_CONFIG = 25,
	VHOST_USER_GET_INFLIGHT_FD = 31,
	VHOST_USER_SET_INFLIGHT_FD = 32,
	VHOST_USER_GET_MAX_MEM_SLOTS = 36,
	VHOST_USER_ADD_MEM_REG = 37,
	VHOST_USER_REM_MEM_REG = 38,
};

/* Header flags: version 1 in the low two bits, reply, need_reply (REPLY_ACK). */
#define VHOST_USER_VERSION		0x1u
#define VHOST_USER_VERSION_MASK		0x3u
#define VHOST_USER_REPLY		(1u << 2)
#define VHOST_USER_NEED_REPLY		(1u << 3)

/* Not a virtio bit: the back end speaks GET/SET_PROTOCOL_FEATURES. */
#define VHOST_USER_F_PROTOCOL_FEATURES	30

#define VHOST_USER_PROTOCOL_F_MQ		0
#define VHOST_USER_PROTOCOL_F_REPLY_ACK		3
#define VHOST_USER_PROTOCOL_F_CONFIG		9
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD	12
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15

/* SET_VRING_KICK/CALL/ERR payload: the queue index and a "no fd" flag; other bits are reserved. */
#define VHOST_USER_VRING_IDX_MASK	0xffu
#define VHOST_USER_VRING_NOFD		(1u << 8)

/* Most fds one message carries (VHOST_MEMORY_BASELINE_NREGIONS) and regions SET_MEM_TABLE describes. */
#define VHOST_USER_MAX_FDS		8u
#define VHOST_USER_MEM_TABLE_MAX	8u

struct vhost_user_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;			/* payload bytes that follow */
} __attribute__((packed));

struct vhost_user_state {
	uint32_t index;
	uint32_t num;
} __attribute__((packed));

struct vhost_user_addr {
	uint32_t index;
	uint32_t flags;			/* VHOST_VRING_F_LOG (bit 0): dirty logging, not offered */
	uint64_t desc;			/* front-end user addresses */
	uint64_t used;
	uint64_t avail;
	uint64_t log;
} __attribute__((packed));

struct vhost_user_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t ua;			/* front-end user address */
	uint64_t mmap_offset;		/* where the region starts in the fd */
} __attribute__((packed));

struct vhost_user_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct vhost_user_region regions[VHOST_USER_MEM_TABLE_MAX];
} __attribute__((packed));

/* ADD_MEM_REG / REM_MEM_REG. */
struct vhost_user_mem_reg {
	uint64_t padding;
	struct vhost_user_region region;
} __attribute__((packed));

#define VHOST_USER_CONFIG_HDR 12u
struct vhost_user_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t data[256];
} __attribute__((packed));

struct vhost_user_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t padding;		/* QEMU's struct is not packed: 24 bytes */
} __attribute__((packed));

#define VHOST_USER_PAYLOAD_MAX 512u

struct vhost_user_msg {
	struct vhost_user_hdr hdr;
	union {
		uint64_t u64;
		struct vhost_user_state state;
		struct vhost_user_addr addr;
		struct vhost_user_mem_table mem;
		struct vhost_user_mem_reg reg;
		struct vhost_user_config config;
		struct vhost_user_inflight inflight;
		uint8_t bytes[VHOST_USER_PAYLOAD_MAX];
	};
} __attribute__((packed));

/*
 * The inflight region of a split queue ("Inflight I/O tracking"): it belongs
 * to the front end, which keeps it across our restarts; every field is ours
 * to check when we take it up again.
 */
struct vhost_inflight_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;			/* the last batch of used heads, as a list */
	uint64_t counter;		/* the order heads were taken in */
};

struct vhost_inflight_queue {
	uint64_t features;
	uint16_t version;		/* 1; 0: not yet laid out */
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct vhost_inflight_desc desc[];
};

#define VHOST_INFLIGHT_VERSION 1u
#define VHOST_INFLIGHT_ALIGN 64u

#endif
