// SPDX-License-Identifier: GPL-2.0-only
/* Block layer core: opening the backing store, request checks, bounce buffers, plugging, completions. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "blk-internal.h"
#include "iostat.h"
#include "iov.h"
#include "util.h"

#define BLK_BOUNCE_MIN_ALIGN 64u

static bool blk_is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

const char *blk_engine_name(enum blk_engine engine)
{
	switch (engine) {
	case BLK_ENGINE_AIO:
		return "aio";
	case BLK_ENGINE_URING:
		return "uring";
	case BLK_ENGINE_NULL:
		return "null";
	case BLK_ENGINE_AUTO:
		return "auto";
	}
	return "unknown";
}

int blk_engine_parse(const char *s, enum blk_engine *ret_engine)
{
	enum blk_engine e;

	if (!s)
		return -EINVAL;
	if (!strcmp(s, "aio") || !strcmp(s, "libaio"))
		e = BLK_ENGINE_AIO;
	else if (!strcmp(s, "uring") || !strcmp(s, "io_uring"))
		e = BLK_ENGINE_URING;
	else if (!strcmp(s, "null"))
		e = BLK_ENGINE_NULL;
	else if (!strcmp(s, "auto"))
		e = BLK_ENGINE_AUTO;
	else
		return -EINVAL;
	*ret_engine = e;
	return 0;
}

/* ------------------------------------------------------------------------- */
/* Opening */

/* Read a number from the block device's sysfs queue directory (a partition has its disk's). */
static int blk_sysfs_read(dev_t rdev, const char *attr, char *buf, size_t size)
{
	static const char *const subdirs[] = { "queue", "../queue" };
	char path[128];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(subdirs); i++) {
		FILE *f;
		bool ok;

		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s/%s", major(rdev), minor(rdev),
			 subdirs[i], attr);
		f = fopen(path, "re");
		if (!f)
			continue;
		ok = fgets(buf, (int)size, f) != NULL;
		fclose(f);
		if (ok)
			return 0;
	}
	return -ENOENT;
}

static uint64_t blk_sysfs_u64(dev_t rdev, const char *attr)
{
	char buf[64];

	if (blk_sysfs_read(rdev, attr, buf, sizeof(buf)) < 0)
		return 0;
	return strtoull(buf, NULL, 10);
}

static int blk_read_capacity(const struct blk_dev *dev, uint64_t *ret_capacity)
{
	struct stat st;
	uint64_t size;

	if (dev->info.block_device) {
		if (ioctl(dev->fd, BLKGETSIZE64, &size) < 0)
			return -errno;
	} else {
		if (fstat(dev->fd, &st) < 0)
			return -errno;
		size = (uint64_t)st.st_size;
	}
	*ret_capacity = size;
	return 0;
}

/* Not in <linux/magic.h>: private to Linux's fs/configfs/mount.c. */
#ifndef CONFIGFS_MAGIC
#define CONFIGFS_MAGIC 0x62656570
#endif

#define BLK_NOT_A_DISK ", not a regular file or block device"
#define BLK_PSEUDO_FS(magic, name) { magic, "is on " name ", a kernel interface, not a disk image" }

/*
 * File systems whose files are kernel interfaces: a sysfs attribute looks
 * like a 4 KiB regular file, and a guest writing to one would be writing
 * kernel settings.  statfs(2) f_type values.
 */
static const struct {
	uint32_t magic;
	const char *why;
} blk_pseudo_fs[] = {
	BLK_PSEUDO_FS(PROC_SUPER_MAGIC, "/proc (procfs)"),
	BLK_PSEUDO_FS(SYSFS_MAGIC, "/sys (sysfs)"),
	BLK_PSEUDO_FS(DEBUGFS_MAGIC, "debugfs"),
	BLK_PSEUDO_FS(TRACEFS_MAGIC, "tracefs"),
	BLK_PSEUDO_FS(SECURITYFS_MAGIC, "securityfs"),
	BLK_PSEUDO_FS(SELINUX_MAGIC, "selinuxfs"),
	BLK_PSEUDO_FS(SMACK_MAGIC, "smackfs"),
	BLK_PSEUDO_FS(CGROUP_SUPER_MAGIC, "a cgroup file system"),
	BLK_PSEUDO_FS(CGROUP2_SUPER_MAGIC, "a cgroup2 file system"),
	BLK_PSEUDO_FS(DEVPTS_SUPER_MAGIC, "devpts"),
	BLK_PSEUDO_FS(CONFIGFS_MAGIC, "configfs"),
	BLK_PSEUDO_FS(BPF_FS_MAGIC, "a bpf file system"),
	BLK_PSEUDO_FS(PSTOREFS_MAGIC, "pstore"),
	BLK_PSEUDO_FS(EFIVARFS_MAGIC, "efivarfs"),
	BLK_PSEUDO_FS(BINFMTFS_MAGIC, "binfmt_misc"),
	BLK_PSEUDO_FS(NSFS_MAGIC, "nsfs"),
};

/*
 * Whether the file behind @fd (an O_PATH descriptor; @st its stat) may be a
 * backing store: 0, or -EISDIR / -ENOTBLK (not a regular file or block
 * device) / -EMEDIUMTYPE (on a pseudo file system) with a phrase in @ret_why.
 */
static int blk_check_file(int fd, const struct stat *st, const char **ret_why)
{
	struct statfs sfs;
	size_t i;

	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
	case S_IFBLK:
		break;
	case S_IFDIR:
		*ret_why = "is a directory" BLK_NOT_A_DISK;
		return -EISDIR;
	case S_IFIFO:
		*ret_why = "is a FIFO" BLK_NOT_A_DISK;
		return -ENOTBLK;
	case S_IFCHR:
		*ret_why = "is a character device" BLK_NOT_A_DISK;
		return -ENOTBLK;
	case S_IFSOCK:
		*ret_why = "is a socket" BLK_NOT_A_DISK;
		return -ENOTBLK;
	default:
		*ret_why = "is not a regular file or block device";
		return -ENOTBLK;
	}
	if (fstatfs(fd, &sfs) < 0)
		return -errno;
	for (i = 0; i < ARRAY_SIZE(blk_pseudo_fs); i++) {
		/* f_type is a signed word: 32-bit magics compare as 32 bits. */
		if ((uint32_t)sfs.f_type == blk_pseudo_fs[i].magic) {
			*ret_why = blk_pseudo_fs[i].why;
			return -EMEDIUMTYPE;
		}
	}
	return 0;
}

/*
 * Open @path as a backing store without ever waiting: a FIFO opened
 * read-only blocks until a writer comes (fifo(7)), which would stop the
 * whole daemon, and again at each restart.  The file is looked at first
 * through an O_PATH descriptor, which opens nothing: a FIFO is not waited
 * on, and a device (a watchdog, a tape) is not touched.  A block device is
 * opened with O_EXCL, so that one mounted or claimed elsewhere is refused with
 * EBUSY (open(2), "O_EXCL ... block device").
 */
static int blk_open_fd(const char *path, bool read_only, bool direct, int *ret_fd,
		       struct stat *ret_st, const char **ret_why)
{
	/*
	 * O_NONBLOCK and O_NOCTTY: should @path be replaced by a FIFO or a
	 * terminal between the look and the open, the open still returns (and
	 * the check below refuses it).
	 */
	int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK | O_NOCTTY |
		    (direct ? O_DIRECT : 0);
	struct stat st, st2;
	int fd, fl, r;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fstat(fd, &st) < 0 ? -errno : blk_check_file(fd, &st, ret_why);
	close(fd);
	if (r < 0)
		return r;

	fd = open(path, flags | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st2) < 0)
		goto err_errno;
	if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino ||
	    (st2.st_mode & S_IFMT) != (st.st_mode & S_IFMT) || st2.st_rdev != st.st_rdev) {
		/* @path was replaced between the look and the open. */
		close(fd);
		return -ESTALE;
	}
	/*
	 * Back to waiting IO: the engines must not see EAGAIN, which io_uring
	 * hands back for an O_NONBLOCK file rather than waiting (early Linux 5.x
	 * io_prep_rw(): "don't allow async punt for O_NONBLOCK").
	 */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		goto err_errno;
	*ret_fd = fd;
	*ret_st = st2;
	return 0;

err_errno:
	r = -errno;
	close(fd);
	return r;
}

/* Ask the file system for its O_DIRECT alignment (statx STATX_DIOALIGN, Linux 6.1). */
static void blk_dio_alignment(int fd, uint32_t *mem_align, uint32_t *offset_align)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) < 0 || !(stx.stx_mask & STATX_DIOALIGN))
		return;
	*mem_align = stx.stx_dio_mem_align;
	*offset_align = stx.stx_dio_offset_align;
}

static int blk_fill_info(struct blk_dev *dev, const struct stat *st, bool read_only, bool direct)
{
	struct blk_info *info = &dev->info;
	uint32_t mem_align = 0, dio_align = 0;
	int r;

	info->read_only = read_only;
	info->block_device = S_ISBLK(st->st_mode);
	if (info->block_device) {
		int lbs = 0;
		unsigned int pbs = 0;
		char buf[64];

		if (ioctl(dev->fd, BLKSSZGET, &lbs) < 0)
			return -errno;
		if (ioctl(dev->fd, BLKPBSZGET, &pbs) < 0)
			pbs = (unsigned int)lbs;
		if (lbs < (int)BLK_SECTOR_SIZE || !blk_is_pow2((uint64_t)lbs))
			return -EINVAL;
		info->logical_block_size = (uint32_t)lbs;
		info->physical_block_size = blk_is_pow2(pbs) && pbs >= (unsigned int)lbs ? pbs
											  : (uint32_t)lbs;
		info->discard = !read_only && blk_sysfs_u64(st->st_rdev, "discard_max_bytes") > 0;
		info->write_zeroes = !read_only &&
				     blk_sysfs_u64(st->st_rdev, "write_zeroes_max_bytes") > 0;
		/* Through the page cache every write is cached; with O_DIRECT, ask the disk. */
		info->write_cache = !direct ||
				    blk_sysfs_read(st->st_rdev, "write_cache", buf, sizeof(buf)) < 0 ||
				    strncmp(buf, "write through", 13) != 0;
	} else {
		info->logical_block_size = BLK_SECTOR_SIZE;
		info->physical_block_size = blk_is_pow2((uint64_t)st->st_blksize) &&
							    st->st_blksize >= (blksize_t)BLK_SECTOR_SIZE &&
							    st->st_blksize <= 65536
						    ? (uint32_t)st->st_blksize
						    : BLK_SECTOR_SIZE;
		/* fallocate PUNCH_HOLE / ZERO_RANGE; a file system without them fails the request. */
		info->discard = !read_only;
		info->write_zeroes = !read_only;
		info->write_cache = true;
	}

	if (direct) {
		mem_align = info->logical_block_size;
		dio_align = info->logical_block_size;
		blk_dio_alignment(dev->fd, &mem_align, &dio_align);
		/*
		 * Requests are only aligned to the logical block size: a file
		 * system wanting more (or no O_DIRECT for this file) gets
		 * buffered IO.
		 */
		if (!dio_align || dio_align > info->logical_block_size || !mem_align ||
		    !blk_is_pow2(mem_align)) {
			int fl = fcntl(dev->fd, F_GETFL);

			if (fl < 0 || fcntl(dev->fd, F_SETFL, fl & ~O_DIRECT) < 0)
				return -errno;
			direct = false;
		}
	}
	info->direct = direct;
	dev->mem_align = direct ? mem_align : 1;
	dev->dio_align = direct ? dio_align : 1;

	r = blk_read_capacity(dev, &info->capacity);
	if (r < 0)
		return r;
	return 0;
}

/* The worker threads' lock and condition. */
static int blk_worker_sync_init(struct blk_dev *dev)
{
	int r = pthread_mutex_init(&dev->worker.lock, NULL);

	if (r)
		return -r;
	r = pthread_cond_init(&dev->worker.cond, NULL);
	if (r) {
		pthread_mutex_destroy(&dev->worker.lock);
		return -r;
	}
	return 0;
}

/* The request slots, all on the free list. */
/* CLOCK_MONOTONIC in ns: what request latencies are measured with. */
static uint64_t blk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The request slots and the recent-IO statistics. */
static int blk_alloc_ios(struct blk_dev *dev)
{
	unsigned int i;

	dev->ios = calloc(dev->queue_depth, sizeof(*dev->ios));
	dev->iostat = iostat_new(blk_now_ns());
	if (!dev->ios || !dev->iostat) {
		free(dev->ios);
		iostat_free(dev->iostat);
		return -ENOMEM;
	}
	for (i = dev->queue_depth; i-- > 0;) {
		dev->ios[i].index = i;
		dev->ios[i].dev = dev;
		dev->ios[i].next = dev->free_list;
		dev->free_list = &dev->ios[i];
	}
	return 0;
}

/* The engine's ops, set up; io_uring falls back to libaio (the reason in info.engine_fallback_err). */
static int blk_engine_start(struct blk_dev *dev, enum blk_engine engine)
{
	int r;

	dev->info.engine = engine;
	switch (engine) {
	case BLK_ENGINE_URING:
		dev->ops = &blk_uring_ops;
		r = dev->ops->init(dev);
		if (r >= 0)
			return r;
		/* io_uring refused (old kernel, seccomp, io_uring_disabled): the caller logs this. */
		dev->info.engine_fallback_err = r;
		dev->info.engine = BLK_ENGINE_AIO;
		dev->ops = &blk_aio_ops;
		break;
	case BLK_ENGINE_AIO:
		dev->ops = &blk_aio_ops;
		break;
	case BLK_ENGINE_NULL:
		dev->ops = &blk_null_ops;
		break;
	case BLK_ENGINE_AUTO:
		return -EINVAL;		/* resolved by blk_open() */
	}
	return dev->ops->init(dev);
}

/* A member of a shared context gets its eventfd (and, libaio, its aio context); else its own. */
static int blk_open_efd(struct blk_dev *dev, const struct blk_open_opts *opts,
			enum blk_engine engine)
{
	if (opts->ctx && engine == BLK_ENGINE_AIO &&
	    blk_aio_ctx_reserve(opts->ctx, dev->queue_depth)) {
		dev->ctx = opts->ctx;
		dev->efd = opts->ctx->efd;
		return 0;
	}
	dev->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return dev->efd < 0 ? -errno : 0;
}

/* Open @path into dev->fd (O_DIRECT where asked and taken) and fill dev->info; nothing kept on error. */
static int blk_open_backing(struct blk_dev *dev, const char *path, const struct blk_open_opts *opts,
			    const char **ret_why)
{
	bool direct = opts->direct_io_safe && opts->engine != BLK_ENGINE_NULL;
	const char *why = NULL;
	struct stat st;
	int r;

	r = blk_open_fd(path, opts->read_only, direct, &dev->fd, &st, &why);
	if (r == -EINVAL && direct) {
		/* The file system refuses O_DIRECT at open: go through the page cache. */
		direct = false;
		r = blk_open_fd(path, opts->read_only, false, &dev->fd, &st, &why);
	}
	if (r < 0 && why && ret_why)
		*ret_why = why;
	if (r < 0)
		return r;
	r = blk_fill_info(dev, &st, opts->read_only, direct);
	if (r < 0) {
		close(dev->fd);
		return r;
	}
	dev->info.st_dev = st.st_dev;
	dev->info.st_ino = st.st_ino;
	return 0;
}

static struct blk_dev *blk_dev_new(const struct blk_open_opts *opts)
{
	struct blk_dev *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return NULL;
	dev->fd = -1;
	dev->efd = -1;
	dev->queue_depth = opts->queue_depth ? opts->queue_depth : BLK_QUEUE_DEPTH_DEFAULT;
	dev->bounce_budget = opts->bounce_budget ? opts->bounce_budget : BLK_BOUNCE_BUDGET_DEFAULT;
	dev->submit_batch = opts->submit_batch;
	return dev;
}

/* The engine over dev->fd (opened, info filled): on error dev->fd is closed and dev freed. */
static int blk_dev_start(struct blk_dev *dev, const struct blk_open_opts *opts,
			 enum blk_engine engine, struct blk_dev **ret_dev)
{
	int r = blk_open_efd(dev, opts, engine);

	if (r < 0)
		goto err_close_fd;
	r = blk_alloc_ios(dev);
	if (r < 0)
		goto err_close_efd;
	r = blk_worker_sync_init(dev);
	if (r < 0)
		goto err_free_ios;
	r = blk_engine_start(dev, engine);
	if (r < 0)
		goto err_cond;
	if (dev->ctx) {
		dev->ctx_next = dev->ctx->devs;
		dev->ctx->devs = dev;
	}
	*ret_dev = dev;
	return 0;

err_cond:
	pthread_cond_destroy(&dev->worker.cond);
	pthread_mutex_destroy(&dev->worker.lock);
err_free_ios:
	free(dev->ios);
	iostat_free(dev->iostat);
err_close_efd:
	if (dev->ctx)
		blk_aio_ctx_unreserve(dev->ctx, dev->queue_depth);
	else
		close(dev->efd);
err_close_fd:
	close(dev->fd);
	free(dev);
	return r;
}

static bool blk_opts_bad(const struct blk_open_opts *opts)
{
	/* The engine comes from configuration: an out-of-range value is refused, not asserted. */
	return opts->queue_depth > BLK_QUEUE_DEPTH_MAX ||
	       (unsigned int)opts->engine > (unsigned int)BLK_ENGINE_AUTO;
}

int blk_open(const char *path, const struct blk_open_opts *opts, struct blk_dev **ret_dev,
	     const char **ret_why)
{
	static const struct blk_open_opts default_opts = { .engine = BLK_ENGINE_AUTO };
	enum blk_engine engine;
	struct blk_dev *dev;
	int r;

	if (!opts)
		opts = &default_opts;
	if (!path || blk_opts_bad(opts))
		return -EINVAL;
	dev = blk_dev_new(opts);
	if (!dev)
		return -ENOMEM;
	r = blk_open_backing(dev, path, opts, ret_why);
	if (r < 0) {
		free(dev);
		return r;
	}
	engine = opts->engine;
	if (engine == BLK_ENGINE_AUTO)
		engine = dev->info.direct ? BLK_ENGINE_AIO : BLK_ENGINE_URING;
	return blk_dev_start(dev, opts, engine, ret_dev);
}

int blk_open_more(const struct blk_dev *src, const struct blk_open_opts *opts,
		  struct blk_dev **ret_dev)
{
	struct blk_dev *dev;

	if (!src || !opts || blk_opts_bad(opts))
		return -EINVAL;
	dev = blk_dev_new(opts);
	if (!dev)
		return -ENOMEM;
	/* The same open file: a block device opened O_EXCL cannot be opened again. */
	dev->fd = fcntl(src->fd, F_DUPFD_CLOEXEC, 0);
	if (dev->fd < 0) {
		free(dev);
		return -errno;
	}
	dev->info = src->info;
	dev->info.engine_fallback_err = 0;
	dev->mem_align = src->mem_align;
	dev->dio_align = src->dio_align;
	return blk_dev_start(dev, opts, src->info.engine, ret_dev);
}

const struct blk_info *blk_get_info(const struct blk_dev *dev)
{
	return &dev->info;
}

int blk_refresh_info(struct blk_dev *dev)
{
	uint64_t capacity = 0;
	int r;

	r = blk_read_capacity(dev, &capacity);
	if (r < 0)
		return r;
	if (capacity == dev->info.capacity)
		return 0;
	dev->info.capacity = capacity;
	return 1;
}

int blk_get_fd(const struct blk_dev *dev)
{
	return dev->efd;
}

void blk_get_iostat(const struct blk_dev *dev, struct iostat_summary *ret_summary)
{
	iostat_get(dev->iostat, blk_now_ns(), ret_summary);
}

unsigned int blk_inflight(const struct blk_dev *dev)
{
	return dev->inflight;
}

/* ------------------------------------------------------------------------- */
/* Submission */

void blk_kick(struct blk_dev *dev)
{
	uint64_t one = 1;

	/* Only fails when the counter would overflow, i.e. it is readable anyway. */
	if (write(dev->efd, &one, sizeof(one)) < 0)
		return;
}

void blk_io_finish(struct blk_dev *dev, struct blk_io *io, int res)
{
	io->res = res;
	blk_list_push(&dev->completed, io);
}

static void blk_io_release(struct blk_dev *dev, struct blk_io *io)
{
	unsigned int index = io->index;

	dev->bounce_bytes -= io->bounce_len;
	free(io->bounce);
	free(io->iov_heap);
	memset(io, 0, sizeof(*io));
	io->index = index;
	io->dev = dev;
	io->next = dev->free_list;
	dev->free_list = io;
	assert(dev->inflight > 0);
	dev->inflight--;
}

/* O_DIRECT needs each segment's address and length aligned (iomap_dio_bio_iter()). */
static bool blk_iov_direct_ok(const struct blk_dev *dev, const struct iovec *iov,
			      unsigned int iovcnt)
{
	unsigned int i;

	if (iovcnt > IOV_MAX)
		return false;
	if (!dev->info.direct)
		return true;
	for (i = 0; i < iovcnt; i++) {
		if (((uintptr_t)iov[i].iov_base & (dev->mem_align - 1)) ||
		    (iov[i].iov_len & (dev->dio_align - 1)))
			return false;
	}
	return true;
}

void blk_iov_zero(const struct iovec *iov, unsigned int iovcnt)
{
	unsigned int i;

	for (i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len)
			memset(iov[i].iov_base, 0, iov[i].iov_len);
	}
}

/* Checks that need no state: -EINVAL / -EROFS, total length into @ret_len. */
static int blk_req_check(const struct blk_dev *dev, const struct blk_req *req, uint64_t *ret_len)
{
	uint64_t mask = dev->info.logical_block_size - 1;
	uint64_t len = 0;
	unsigned int i;

	if (!req->done || (unsigned int)req->op > (unsigned int)BLK_OP_WRITE_ZEROES)
		return -EINVAL;
	switch (req->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		if (req->iovcnt && !req->iov)
			return -EINVAL;
		for (i = 0; i < req->iovcnt; i++) {
			if (req->iov[i].iov_len && !req->iov[i].iov_base)
				return -EINVAL;
			if (len + req->iov[i].iov_len < len)
				return -EINVAL;
			len += req->iov[i].iov_len;
		}
		if (req->op == BLK_OP_WRITE && dev->info.read_only)
			return -EROFS;
		break;
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		len = req->len;
		if (dev->info.read_only)
			return -EROFS;
		break;
	case BLK_OP_FLUSH:
		*ret_len = 0;
		return 0;
	}
	if ((req->offset & mask) || (len & mask))
		return -EINVAL;
	/* off_t is signed; size_t sized for the bounce buffer. */
	if (len > (uint64_t)SSIZE_MAX || req->offset > (uint64_t)INT64_MAX - len)
		return -EINVAL;
	*ret_len = len;
	return 0;
}

static void blk_dispatch(struct blk_dev *dev);

int blk_submit(struct blk_dev *dev, struct blk_req *req)
{
	struct blk_io *io;
	uint64_t len;
	int r;

	if (dev->closing)
		return -ESHUTDOWN;
	r = blk_req_check(dev, req, &len);
	if (r < 0)
		return r;
	if (dev->inflight >= dev->queue_depth || !dev->free_list)
		return -EAGAIN;

	io = dev->free_list;
	io->op = req->op;
	io->flags = req->flags;
	io->offset = req->offset;
	io->len = len;
	io->total_len = len;
	io->req = req;

	if ((req->op == BLK_OP_READ || req->op == BLK_OP_WRITE) && len && !dev->ops->no_kernel_io &&
	    !blk_iov_direct_ok(dev, req->iov, req->iovcnt)) {
		size_t align = dev->mem_align > BLK_BOUNCE_MIN_ALIGN ? dev->mem_align
								     : BLK_BOUNCE_MIN_ALIGN;

		/* Bounded: a bounced request waits for others to finish (their completion resumes it). */
		if (dev->bounce_bytes && dev->bounce_bytes + len > dev->bounce_budget)
			return -EAGAIN;
		r = posix_memalign(&io->bounce, align, len);
		if (r) {
			io->bounce = NULL;
			return -r;
		}
		io->bounce_len = len;
		dev->bounce_bytes += len;
		if (req->op == BLK_OP_WRITE)
			iov_to_buf(req->iov, req->iovcnt, 0, io->bounce, len);
		io->bounce_iov.iov_base = io->bounce;
		io->bounce_iov.iov_len = len;
		io->iov_own = &io->bounce_iov;
		io->iov = io->iov_own;
		io->iovcnt = 1;
	} else {
		io->iov = req->iov;
		io->iovcnt = req->iovcnt;
	}

	dev->free_list = io->next;
	dev->inflight++;
	/* From here to done(): queueing in vblkd, the kernel or the worker, and the device. */
	io->submit_ns = blk_now_ns();
	if (!len && req->op != BLK_OP_FLUSH) {
		/* Nothing to do: complete from the next blk_process(). */
		io->submitted = true;
		blk_io_finish(dev, io, 0);
		blk_kick(dev);
		return 0;
	}
	blk_list_push(&dev->pending, io);
	/* Small batches reach the kernel at once (BLK_SUBMIT_BATCH says why). */
	if (dev->submit_batch && ++dev->plugged >= dev->submit_batch)
		blk_dispatch(dev);
	return 0;
}

static void blk_dispatch(struct blk_dev *dev)
{
	struct blk_io *io;
	bool finished = !blk_list_empty(&dev->completed);
	int r;

	dev->plugged = 0;
	while ((io = blk_list_pop(&dev->pending))) {
		if (io->to_worker || !dev->ops->wants(dev, io)) {
			io->submitted = true;
			blk_worker_queue(dev, io);
			continue;
		}
		r = dev->ops->prep(dev, io);
		if (r == -EAGAIN) {
			/* No room in the engine: retried at the next unplug or completion. */
			blk_list_push_front(&dev->pending, io);
			break;
		}
		io->submitted = true;
		if (r < 0)
			blk_io_finish(dev, io, r);
	}
	dev->ops->submit_prepared(dev);
	/* Submission failures land on the completed list: make blk_process() run. */
	if (finished || !blk_list_empty(&dev->completed))
		blk_kick(dev);
}

void blk_unplug(struct blk_dev *dev)
{
	blk_dispatch(dev);
}

/* ------------------------------------------------------------------------- */
/* Completion */

/* Skip @n transferred bytes of @io's iovec, taking a private copy of the array first. */
static int blk_io_advance(struct blk_io *io, size_t n)
{
	struct iovec *v;
	unsigned int cnt;

	if (!io->iov_own) {
		io->iov_heap = malloc(io->iovcnt * sizeof(*io->iov_heap));
		if (!io->iov_heap)
			return -ENOMEM;
		memcpy(io->iov_heap, io->iov, io->iovcnt * sizeof(*io->iov_heap));
		io->iov_own = io->iov_heap;
	}
	v = io->iov_own;
	cnt = io->iovcnt;
	io->offset += n;
	io->len -= n;
	while (cnt && (n >= v->iov_len)) {
		n -= v->iov_len;
		v++;
		cnt--;
	}
	if (cnt && n) {
		v->iov_base = (char *)v->iov_base + n;
		v->iov_len -= n;
	}
	io->iov_own = v;
	io->iov = v;
	io->iovcnt = cnt;
	return 0;
}

void blk_io_kernel_done(struct blk_dev *dev, struct blk_io *io, long res)
{
	int r;

	switch (io->op) {
	case BLK_OP_READ:
	case BLK_OP_WRITE:
		if (res < 0) {
			blk_io_finish(dev, io, (int)res);
			return;
		}
		if ((uint64_t)res >= io->len) {
			blk_io_finish(dev, io, 0);
			return;
		}
		if (res == 0) {
			/* End of file: a sparse image reads as zeroes up to its capacity. */
			if (io->op == BLK_OP_READ && !dev->info.block_device) {
				blk_iov_zero(io->iov, io->iovcnt);
				blk_io_finish(dev, io, 0);
			} else {
				blk_io_finish(dev, io, io->op == BLK_OP_WRITE ? -ENOSPC : -EIO);
			}
			return;
		}
		/* Short transfer: the rest goes out again with the next dispatch. */
		r = blk_io_advance(io, (size_t)res);
		if (r < 0) {
			blk_io_finish(dev, io, r);
			return;
		}
		blk_list_push(&dev->pending, io);
		return;
	case BLK_OP_FLUSH:
	case BLK_OP_DISCARD:
	case BLK_OP_WRITE_ZEROES:
		blk_io_finish(dev, io, res < 0 ? (int)res : 0);
		return;
	}
	blk_io_finish(dev, io, -EINVAL);
}

static void blk_drain_eventfd(struct blk_dev *dev)
{
	uint64_t v;

	/* EAGAIN: nothing signalled; the completions are still worth looking for. */
	if (read(dev->efd, &v, sizeof(v)) < 0)
		return;
}

/* Call done() for everything on the completed list at this point. */
static int blk_deliver(struct blk_dev *dev)
{
	struct blk_list batch = dev->completed;
	struct blk_io *io;
	uint64_t now = 0;
	int n = 0;

	dev->completed.head = dev->completed.tail = NULL;
	if (batch.head)
		now = blk_now_ns();
	while ((io = blk_list_pop(&batch))) {
		struct blk_req *req = io->req;
		int res = io->res;

		if (io->op == BLK_OP_READ || io->op == BLK_OP_WRITE)
			iostat_record(dev->iostat, io->op == BLK_OP_READ ? IOSTAT_READ : IOSTAT_WRITE,
				      now, now - io->submit_ns, res ? 0 : io->total_len);
		if (!res && io->bounce && io->op == BLK_OP_READ)
			iov_from_buf(req->iov, req->iovcnt, io->bounce, io->bounce_len);
		/* Free the slot first, so that done() can submit again. */
		blk_io_release(dev, io);
		req->done(req, res);
		n++;
	}
	return n;
}

static void blk_worker_reap(struct blk_dev *dev)
{
	struct blk_list done;
	struct blk_io *io;

	/*
	 * Nothing done: no lock taken (a shared context looks at every member
	 * on each wakeup).  A completion pushed after this look kicks the
	 * eventfd again, so it is not missed.
	 */
	if (!dev->worker.nthreads || !__atomic_load_n(&dev->worker.has_done, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&dev->worker.lock);
	done = dev->worker.done;
	dev->worker.done.head = dev->worker.done.tail = NULL;
	__atomic_store_n(&dev->worker.has_done, false, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&dev->worker.lock);
	while ((io = blk_list_pop(&done)))
		blk_io_kernel_done(dev, io, io->res);
}

/*
 * Everything the members of @ctx have finished onto their completed lists:
 * the shared eventfd, the shared aio context, each one's worker.
 */
static int blk_ctx_collect(struct blk_ctx *ctx)
{
	struct blk_dev *m;
	uint64_t v;
	int r;

	if (read(ctx->efd, &v, sizeof(v)) < 0) {
		/* EAGAIN: nothing signalled; completions are still worth looking for. */
	}
	r = blk_aio_ctx_reap(ctx);
	for (m = ctx->devs; m; m = m->ctx_next)
		blk_worker_reap(m);
	return r;
}

/* Members other than @dev with completions not yet delivered: the owner must look again. */
static void blk_ctx_rekick(struct blk_ctx *ctx, const struct blk_dev *dev)
{
	for (struct blk_dev *m = ctx->devs; m; m = m->ctx_next) {
		if (m != dev && !blk_list_empty(&m->completed)) {
			blk_kick(m);
			return;
		}
	}
}

int blk_process(struct blk_dev *dev)
{
	int r = 0, n;

	/* Programmer errors: blk_process() from a done() callback, or after blk_close() began. */
	assert(!dev->processing);
	dev->processing = true;
	if (dev->ctx) {
		r = blk_ctx_collect(dev->ctx);
		blk_ctx_rekick(dev->ctx, dev);
	} else {
		blk_drain_eventfd(dev);
		r = dev->ops->reap(dev);
		blk_worker_reap(dev);
	}
	n = blk_deliver(dev);
	/* Remainders of short transfers, and whatever done() queued without unplugging. */
	if (!blk_list_empty(&dev->pending) || !blk_list_empty(&dev->completed))
		blk_dispatch(dev);
	dev->processing = false;
	return r < 0 && !n ? r : n;
}

void blk_close(struct blk_dev *dev)
{
	struct blk_list keep = { NULL, NULL };
	struct blk_io *io;

	if (!dev)
		return;
	/* Programmer error: blk_close() from a done() callback. */
	assert(!dev->processing && !dev->closing);
	dev->closing = true;
	/* Its requests a plugged context holds (blk_ctx_process()) go to the kernel first. */
	if (dev->ctx)
		blk_aio_ctx_unplug(dev->ctx);

	/* Accepted but never handed to the kernel: cancelled. */
	while ((io = blk_list_pop(&dev->pending))) {
		if (io->submitted)
			blk_list_push(&keep, io);
		else
			blk_io_finish(dev, io, -ECANCELED);
	}
	dev->pending = keep;

	while (dev->inflight) {
		struct pollfd pfd = { .fd = dev->efd, .events = POLLIN };

		blk_dispatch(dev);
		blk_deliver(dev);
		if (!dev->inflight)
			break;
		/* Blocking on purpose: the kernel and the worker still own buffers. */
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			break;
		blk_process(dev);
	}

	blk_worker_stop(dev);
	if (dev->ctx) {
		struct blk_dev **pp = &dev->ctx->devs;

		while (*pp != dev)
			pp = &(*pp)->ctx_next;
		*pp = dev->ctx_next;
		/* The shared eventfd may have been drained for the others' completions too. */
		blk_ctx_rekick(dev->ctx, dev);
	}
	dev->ops->fini(dev);
	pthread_cond_destroy(&dev->worker.cond);
	pthread_mutex_destroy(&dev->worker.lock);
	free(dev->ios);
	iostat_free(dev->iostat);
	if (!dev->ctx)
		close(dev->efd);
	close(dev->fd);
	free(dev);
}

int blk_ctx_new(struct blk_ctx **ret_ctx)
{
	struct blk_ctx *ctx = calloc(1, sizeof(*ctx));
	int r;

	if (!ctx)
		return -ENOMEM;
	ctx->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ctx->efd < 0) {
		r = -errno;
		free(ctx);
		return r;
	}
	r = blk_aio_ctx_init(ctx);
	if (r < 0) {
		close(ctx->efd);
		free(ctx);
		return r;
	}
	*ret_ctx = ctx;
	return 0;
}

void blk_ctx_free(struct blk_ctx *ctx)
{
	if (!ctx)
		return;
	assert(!ctx->devs);
	blk_aio_ctx_fini(ctx);
	close(ctx->efd);
	free(ctx);
}

int blk_ctx_get_fd(const struct blk_ctx *ctx)
{
	return ctx->efd;
}

bool blk_in_ctx(const struct blk_dev *dev)
{
	return dev->ctx != NULL;
}

void blk_set_owner(struct blk_dev *dev, void *owner)
{
	dev->owner = owner;
}

int blk_ctx_process(struct blk_ctx *ctx, void (*fn)(void *owner, struct blk_dev *dev))
{
	struct blk_dev *m, *next;
	unsigned int busy = 0;
	int r, n = 0;

	r = blk_ctx_collect(ctx);
	/*
	 * Several members with completions: what they submit as these bring
	 * their guests' next requests goes to the kernel at once, after the
	 * last of them.  One alone submits as it goes, before its @fn (its
	 * interrupt) rather than after.
	 */
	for (m = ctx->devs; m && busy < 2; m = m->ctx_next)
		busy += !blk_list_empty(&m->completed);
	if (busy > 1)
		blk_aio_ctx_plug(ctx);
	for (m = ctx->devs; m; m = next) {
		next = m->ctx_next;	/* @fn may close @m */
		if (blk_list_empty(&m->completed) && blk_list_empty(&m->pending))
			continue;
		m->processing = true;
		n += blk_deliver(m);
		if (!blk_list_empty(&m->pending) || !blk_list_empty(&m->completed))
			blk_dispatch(m);
		m->processing = false;
		fn(m->owner, m);
	}
	blk_aio_ctx_unplug(ctx);
	return r < 0 && !n ? r : n;
}
