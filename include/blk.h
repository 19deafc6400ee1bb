/* SPDX-License-Identifier: GPL-2.0-only */
/* Block layer: asynchronous engines (libaio, io_uring) executing requests on a file or block device. */
#ifndef VBLKD_BLK_H
#define VBLKD_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "iovec.h"

enum blk_op {
	BLK_OP_READ,
	BLK_OP_WRITE,
	BLK_OP_FLUSH,
	BLK_OP_DISCARD,
	BLK_OP_WRITE_ZEROES,
};

/* WRITE_ZEROES may deallocate the range instead of writing zeroes. */
#define BLK_REQ_MAY_UNMAP (1u << 0)

/* Offsets and lengths are multiples of this (and of the logical block size). */
#define BLK_SECTOR_SIZE 512u

struct blk_req;

/* @res is 0 or -errno.  Called exactly once per accepted request. */
typedef void (*blk_done_fn)(struct blk_req *req, int res);

/*
 * One request, owned by the caller (embed it and use container_of) until
 * done() is called.  READ and WRITE transfer iov (total length = bytes at
 * @offset); FLUSH ignores offset and length; DISCARD and WRITE_ZEROES use
 * @offset and @len.  The iovec array and the buffers it points to must stay
 * valid until done(); the block layer never writes to the array itself.
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

/* How requests reach the kernel; chosen per daemon. */
enum blk_engine {
	BLK_ENGINE_AIO,			/* libaio */
	BLK_ENGINE_URING,		/* io_uring; falls back to AIO where the kernel refuses it */
	BLK_ENGINE_NULL,		/* no IO: everything succeeds, reads return zeroes (benchmarks) */
	/*
	 * Per device, the faster where it is opened: libaio with O_DIRECT (the
	 * shared aio context), io_uring through the page cache, where a read of
	 * cached data completes inside io_uring_enter() instead of going to a
	 * worker thread (libaio cannot do buffered IO asynchronously).  The
	 * default.  blk_info.engine says which one a device got.
	 */
	BLK_ENGINE_AUTO,
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
	/* Added by the block layer itself: */
	uint64_t st_dev;		/* the open file's identity (fstat), to tell shared ones */
	uint64_t st_ino;
	bool direct;			/* opened with O_DIRECT (aligned buffers bypass the page cache) */
	enum blk_engine engine;		/* the engine actually in use */
	/*
	 * -errno why io_uring could not be used when BLK_ENGINE_URING was asked
	 * for and the device fell back to BLK_ENGINE_AIO (the caller logs it); 0
	 * otherwise.
	 */
	int engine_fallback_err;
};

#define BLK_QUEUE_DEPTH_DEFAULT 128u
#define BLK_BOUNCE_BUDGET_DEFAULT (64ull << 20)
#define BLK_QUEUE_DEPTH_MAX 4096u
/*
 * Requests handed to the kernel per system call (io_submit/io_uring_enter)
 * when blk_open_opts.submit_batch asks for it.  Linux plugs a submission of
 * more than two requests (fs/aio.c AIO_PLUG_THRESHOLD, io_uring's
 * need_plug): none of them reaches the disk before the last is prepared, a
 * few microseconds each, so the first of a ring of 32 waits for the other 31
 * while the disk idles, and the ring's requests move in lock-step.  Two at a
 * time is the largest unplugged batch.  make bench, 4k QD32 on one disk:
 * 64-65k -> 76-80k IOPS reading, 81-83k -> 114-134k writing (libaio;
 * io_uring alike); 4 per call gave less for writes, 1 the same for more CPU.
 */
#define BLK_SUBMIT_BATCH 2u

struct blk_ctx;

struct blk_open_opts {
	enum blk_engine engine;
	/*
	 * Share this completion context with the other devices opened with it
	 * (blk_ctx_new()); NULL: the device has its own.  A device the context
	 * cannot take (another engine, no room left) has its own anyway:
	 * blk_in_ctx() says which.
	 */
	struct blk_ctx *ctx;
	bool read_only;
	/*
	 * The toolstack says O_DIRECT is safe for this backend (xenstore
	 * "direct-io-safe").  O_DIRECT is then used if the file system accepts
	 * it with 512-byte alignment; otherwise IO goes through the page cache.
	 */
	bool direct_io_safe;
	/* Requests accepted at once (1..BLK_QUEUE_DEPTH_MAX); 0 = BLK_QUEUE_DEPTH_DEFAULT. */
	unsigned int queue_depth;
	/*
	 * Bytes of bounce buffers (copies of misaligned guest buffers for
	 * O_DIRECT) outstanding at once; beyond it blk_submit() says -EAGAIN, so a
	 * guest cannot make Dom0 allocate without bound.  One request is always
	 * taken when none is bounced.  0 = BLK_BOUNCE_BUDGET_DEFAULT.
	 */
	uint64_t bounce_budget;
	/*
	 * blk_submit() hands the queued requests to the kernel by itself each
	 * time this many are waiting (BLK_SUBMIT_BATCH); 0 = only blk_unplug() does.
	 */
	unsigned int submit_batch;
};

/*
 * Use: blk_open(); watch blk_get_fd() for EPOLLIN and call blk_process() when
 * it is readable; blk_submit() a burst of requests, then blk_unplug() once.
 * On -EAGAIN stop taking requests until a done() callback has run.  All of
 * it from one thread (the block layer's own worker threads never call back).
 */
struct blk_dev;

/*
 * Open a regular file or block device; never waits (a FIFO is not opened).
 * A block device is opened with O_EXCL: one mounted or held exclusively
 * elsewhere gives -EBUSY.  Errors are -errno; the caller logs them naming
 * @path.  A file refused for what it is also gets a phrase saying so in
 * @ret_why (if not NULL; a static string, to follow the path, e.g. "is a
 * FIFO, not a regular file or block device"):
 *   -EISDIR       a directory
 *   -ENOTBLK      a FIFO, character device or socket
 *   -EMEDIUMTYPE  a file of /proc, /sys or another pseudo file system
 * @opts may be NULL (aio, read-write, no O_DIRECT, default depth).
 */
int blk_open(const char *path, const struct blk_open_opts *opts, struct blk_dev **ret_dev,
	     const char **ret_why);

/*
 * Complete every accepted request, then free the device.  Requests accepted
 * but never handed to the kernel (blk_unplug() not called since) complete
 * with -ECANCELED; requests in the kernel or the worker are waited for
 * (blocking) and complete with their real result.  So done() callbacks run
 * from inside blk_close(); blk_submit() called from them returns -ESHUTDOWN.
 * Must not be called from a done() callback.  Accepts NULL.
 */
/*
 * A second engine over @src's open file, for another thread: the descriptor
 * is duplicated (a block device opened O_EXCL cannot be opened again), the
 * info and the engine are @src's; its own queue, completions, eventfd and
 * statistics.  From @opts: ctx, queue_depth, bounce_budget, submit_batch.
 */
int blk_open_more(const struct blk_dev *src, const struct blk_open_opts *opts,
		  struct blk_dev **ret_dev);
void blk_close(struct blk_dev *dev);

const struct blk_info *blk_get_info(const struct blk_dev *dev);

/* Re-read the capacity (a file or device that grew or shrank): 1 if it changed, 0 if not, -errno. */
int blk_refresh_info(struct blk_dev *dev);

/*
 * Accept @req: 0 when accepted (req->done() will be called exactly once,
 * later, from blk_process() or blk_close(), never from blk_submit() or
 * blk_unplug()).  Not accepted, done() never called:
 *   -EAGAIN     queue_depth requests are in flight, or the bounce budget is
 *               used up; retry after a completion
 *   -EROFS      WRITE, DISCARD or WRITE_ZEROES on a read-only device
 *   -EINVAL     bad op, offset or length not a multiple of the logical block
 *               size, offset + length overflows, iov missing
 *   -ENOMEM     no memory for a bounce buffer
 *   -ESHUTDOWN  blk_close() is running
 * Offsets are not checked against the capacity (the caller does that); a
 * request beyond it fails or reads zeroes, as the kernel decides.
 * The request may wait in a plug list until blk_unplug().
 */
int blk_submit(struct blk_dev *dev, struct blk_req *req);

/*
 * Hand every request queued by blk_submit() to the kernel, one system call
 * per batch; inside blk_ctx_process() a member's join the context's batch,
 * which goes to the kernel before that returns.
 */
void blk_unplug(struct blk_dev *dev);

/* An eventfd (owned by @dev) readable when blk_process() has work; watch it for EPOLLIN. */
int blk_get_fd(const struct blk_dev *dev);

/*
 * Reap completions and call their done() callbacks; returns how many
 * completed, or -errno.  Call when blk_get_fd() is readable.  done() may call
 * blk_submit() and blk_unplug() (not blk_process() or blk_close()).
 */
int blk_process(struct blk_dev *dev);

/* Accepted requests whose done() has not been called yet. */
unsigned int blk_inflight(const struct blk_dev *dev);

struct iostat_summary;
/*
 * READ and WRITE over the last minute (iostat.h): latency from blk_submit() to done(), that is
 * queueing here and in the kernel and the device's own time, and bytes per second.
 */
void blk_get_iostat(const struct blk_dev *dev, struct iostat_summary *ret_summary);

/*
 * One completion context for several devices (libaio engine): one aio
 * context and one eventfd, so that a wakeup and one io_getevents() serve
 * all of them.  The owner watches blk_ctx_get_fd() instead of each member's
 * blk_get_fd() and calls blk_ctx_process() when it is readable.
 */
int blk_ctx_new(struct blk_ctx **ret_ctx);
/* Every member must be closed first.  Accepts NULL. */
void blk_ctx_free(struct blk_ctx *ctx);
int blk_ctx_get_fd(const struct blk_ctx *ctx);
/* Whether @dev is a member of the context it was opened with. */
bool blk_in_ctx(const struct blk_dev *dev);
/* What blk_ctx_process() hands to @fn for @dev (its owner's pointer). */
void blk_set_owner(struct blk_dev *dev, void *owner);
/*
 * Reap the completions of every member, deliver them (done() callbacks)
 * device by device, and after each member that had any call @fn(owner,
 * dev) (the end of its batch: blk_process() for a member).  @fn may close
 * that member, not another.  When more than one member had completions,
 * what they all submit meanwhile goes to the kernel in one system call
 * before this returns.  Returns the number of requests delivered, or
 * -errno when reaping failed and nothing was delivered.
 */
int blk_ctx_process(struct blk_ctx *ctx, void (*fn)(void *owner, struct blk_dev *dev));

/* "aio", "uring", "null". */
const char *blk_engine_name(enum blk_engine engine);
/* Parse "aio", "uring" (or "io_uring"), "null"; -EINVAL otherwise. */
int blk_engine_parse(const char *s, enum blk_engine *ret_engine);

#endif
