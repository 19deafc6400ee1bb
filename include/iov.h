/* SPDX-License-Identifier: GPL-2.0-only */
/* Copies between scatter-gather lists (struct iovec arrays) and flat buffers. */
#ifndef VBLKD_IOV_H
#define VBLKD_IOV_H

#include <stddef.h>

#include "iovec.h"

/* Copy at most @len bytes, starting @skip bytes into the list, into @buf; returns bytes copied. */
size_t iov_to_buf(const struct iovec *iov, unsigned int cnt, size_t skip, void *buf, size_t len);
/* Copy at most @len bytes of @buf into the list from its start; returns bytes copied. */
size_t iov_from_buf(const struct iovec *iov, unsigned int cnt, const void *buf, size_t len);

#endif
