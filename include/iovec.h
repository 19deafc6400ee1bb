/* SPDX-License-Identifier: GPL-2.0-only */
/* struct iovec for the Xen-free layers: the kernel's on Linux (readv, io_submit take it as is), plain C elsewhere. */
#ifndef VBLKD_IOVEC_H
#define VBLKD_IOVEC_H

#include <stddef.h>

#if defined(__linux__)
#include <sys/uio.h>
#else
struct iovec {
	void *iov_base;
	size_t iov_len;
};
#endif

#endif
