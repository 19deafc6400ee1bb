/* SPDX-License-Identifier: GPL-2.0-only */
/* Block layer: asynchronous engines (libaio, io_uring) executing requests on a file or block device. */
#ifndef VBLKD_BLK_H
#define VBLKD_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,
	BLK_OP_WRITE_ZEROES,
};

/* WRITE_ZEROES may deallocate the range instead of writing zeroes. */
#define BLK_REQ_MAY_UNMAP (1u << 0)

struct blk_req;

/* @res is 0 or -errno.  Called exactly once per accepted request. */
typedef void (*blk_done_fn)(struct blk_req *req, int res);

/*
 * One request, owned by the caller (embed it and use container_of) until
 * done() is called.  READ and WRITE transfer iov (total length = bytes at
 * @offset); FLUSH ignores offset and length; DISCARD and WRITE_ZEROES use
 * @offset and @len.
 */
struct blk_req {
	enum blk_op op;
	unsigned int flags;		/* BLK_REQ_* */
	uint64_t offset;		/* bytes */
	uint64_t len;			/* bytes, DISCARD and WRITE_ZEROES only */
	const struct iovec *iov;
	unsigned int iovcnt;
	blk_done_fn done;
};

/* What the backing store offers; filled in by blk_open(). */
struct blk_info {
	uint64_t capacity;		/* bytes */
	uint32_t logical_block_size;	/* bytes, power of two, >= 512 */
	uint32_t physical_block_size;	/* bytes */
	bool read_only;
	bool discard;			/* DISCARD does something */
	bool write_zeroes;		/* WRITE_ZEROES is done efficiently */
	bool write_cache;		/* writes may sit in a volatile cache until FLUSH */
	bool block_device;
};

#endif
