/* SPDX-License-Identifier: GPL-2.0-only */
/* The one platform seam of src/virtio (C11 otherwise): struct iovec, little-endian helpers, logging. */
#ifndef VBLKD_VIRTIO_PLATFORM_H
#define VBLKD_VIRTIO_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "iovec.h"	/* on Linux the kernel's: mappings go to readv/io_submit as they are */

/*
 * Logging hooks: log_msg(), log_enabled() and log_ratelimit_ok() of log.h
 * (plain C); another platform supplies its own implementation of them.
 */
#include "log.h"

/*
 * Ring fields are little-endian (§2.4 of virtio 1.2 for modern devices).
 * The compiler says the byte order; on a little-endian CPU these are no-ops.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define VIRTIO_SWAP16(v) __builtin_bswap16(v)
#define VIRTIO_SWAP32(v) __builtin_bswap32(v)
#define VIRTIO_SWAP64(v) __builtin_bswap64(v)
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define VIRTIO_SWAP16(v) (v)
#define VIRTIO_SWAP32(v) (v)
#define VIRTIO_SWAP64(v) (v)
#else
#error "virtio-platform.h: byte order unknown (__BYTE_ORDER__)"
#endif

static inline uint16_t virtio_le16toh(uint16_t v) { return VIRTIO_SWAP16(v); }
static inline uint32_t virtio_le32toh(uint32_t v) { return VIRTIO_SWAP32(v); }
static inline uint64_t virtio_le64toh(uint64_t v) { return VIRTIO_SWAP64(v); }
static inline uint16_t virtio_htole16(uint16_t v) { return VIRTIO_SWAP16(v); }
static inline uint32_t virtio_htole32(uint32_t v) { return VIRTIO_SWAP32(v); }
static inline uint64_t virtio_htole64(uint64_t v) { return VIRTIO_SWAP64(v); }

#endif
