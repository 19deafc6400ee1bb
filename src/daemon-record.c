// SPDX-License-Identifier: GPL-2.0-only
/* The records a restarted vblkd adopts its guests from: files in the state directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon-record.h"
#include "log.h"

static const char DREC_GUEST_MAGIC[8] = "VBLKDGST";
static const char DREC_DISK_MAGIC[8] = "VBLKDDSK";

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))

struct drec_dir {
	int dirfd;
	int lockfd;
	char *path;
};

/* A guest record, written whole and renamed into place. */
struct drec_guest_file {
	char magic[8];
	uint32_t version;
	uint32_t domid;
	uint8_t handle[16];
	uint32_t server_id;
	uint32_t servers_before;
	uint64_t check;
};

/* The head of a disk record; the device state and the journals follow. */
struct drec_disk_hdr {
	char magic[8];
	uint32_t version;
	uint32_t pad;
	uint64_t file_size;
	uint64_t snap_off;		/* two slots of snap_size bytes */
	uint64_t snap_size;
	uint64_t journal_off;		/* num_queues journals of journal_stride bytes */
	uint64_t journal_stride;
	struct drec_disk_id id;
	uint64_t check;			/* of everything above */
	/* counters, not part of the identity */
	uint32_t adoptions;
	uint32_t pad2;
	int64_t last_adopted;
};

/* One slot of device state: valid when check matches; the higher seq of two valid ones wins. */
struct drec_snap {
	uint64_t seq;
	uint64_t check;
	uint32_t len;
	uint32_t pad;
	uint8_t body[];			/* vmmio_state, vblk_state, virtio_dev_state */
};

#define SNAP_BODY (sizeof(struct vmmio_state) + sizeof(struct vblk_state) + \
		   sizeof(struct virtio_dev_state))

struct drec_disk {
	struct drec_dir *dir;
	struct drec_disk_hdr *hdr;
	size_t size;
	uint64_t seq;			/* of the last slot written */
};

/* FNV-1a over 64-bit words, then the tail: enough to tell a torn write from a whole one. */
static uint64_t drec_hash(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull, w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, b + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
	}
	for (; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

int drec_dir_open(const char *path, struct drec_dir **ret_dir)
{
	struct drec_dir *dir = calloc(1, sizeof(*dir));
	int r;

	if (!dir || !(dir->path = strdup(path))) {
		free(dir);
		return -ENOMEM;
	}
	dir->lockfd = -1;
	/* Its parent too (/run/vblkd is the unit's RuntimeDirectory=; by hand it may be missing). */
	{
		char *parent = strdup(path), *slash = parent ? strrchr(parent, '/') : NULL;

		if (slash && slash != parent) {
			*slash = '\0';
			mkdir(parent, 0700);
		}
		free(parent);
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		log_err("state directory %s: cannot create it: %s", path, strerror(-r));
		goto err;
	}
	dir->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir->dirfd < 0) {
		r = -errno;
		log_err("state directory %s: %s", path, strerror(-r));
		goto err;
	}
	dir->lockfd = openat(dir->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (dir->lockfd < 0 || flock(dir->lockfd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		if (r == -EWOULDBLOCK)
			r = -EBUSY;
		log_err("state directory %s: %s", path,
			r == -EBUSY ? "another vblkd is using it" : strerror(-r));
		goto err_dirfd;
	}
	*ret_dir = dir;
	return 0;

err_dirfd:
	if (dir->lockfd >= 0)
		close(dir->lockfd);
	close(dir->dirfd);
err:
	free(dir->path);
	free(dir);
	return r;
}

void drec_dir_close(struct drec_dir *dir)
{
	if (!dir)
		return;
	close(dir->lockfd);	/* the lock goes with it */
	close(dir->dirfd);
	free(dir->path);
	free(dir);
}

const char *drec_dir_path(const struct drec_dir *dir)
{
	return dir->path;
}

static void guest_name(char *buf, size_t size, unsigned int domid)
{
	snprintf(buf, size, "dom%u.guest", domid);
}

static void disk_name(char *buf, size_t size, unsigned int domid, unsigned int devid)
{
	snprintf(buf, size, "dom%u-%u.disk", domid, devid);
}

/* Write @len bytes to @name through a temporary file renamed over it: all or nothing. */
static int write_whole(struct drec_dir *dir, const char *name, const void *buf, size_t len)
{
	char tmp[64];
	ssize_t n;
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(dir->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	if (n < 0)
		r = -errno;
	else if ((size_t)n != len)
		r = -ENOSPC;
	close(fd);
	if (r == 0 && renameat(dir->dirfd, tmp, dir->dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dir->dirfd, tmp, 0);
	return r;
}

int drec_guest_write(struct drec_dir *dir, const struct drec_guest *g)
{
	struct drec_guest_file f = { .version = DREC_VERSION, .domid = g->domid,
				     .server_id = g->server_id,
				     .servers_before = g->servers_before };
	char name[32];

	memcpy(f.magic, DREC_GUEST_MAGIC, sizeof(f.magic));
	memcpy(f.handle, g->handle, sizeof(f.handle));
	f.check = drec_hash(&f, offsetof(struct drec_guest_file, check));
	guest_name(name, sizeof(name), g->domid);
	return write_whole(dir, name, &f, sizeof(f));
}

int drec_guest_read(struct drec_dir *dir, unsigned int domid, struct drec_guest *ret_g)
{
	struct drec_guest_file f;
	char name[32];
	ssize_t n;
	int fd;

	guest_name(name, sizeof(name), domid);
	fd = openat(dir->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, &f, sizeof(f));
	close(fd);
	if (n != (ssize_t)sizeof(f) || memcmp(f.magic, DREC_GUEST_MAGIC, sizeof(f.magic)))
		return -EINVAL;
	if (f.version != DREC_VERSION)
		return -EPROTONOSUPPORT;
	if (f.check != drec_hash(&f, offsetof(struct drec_guest_file, check)) || f.domid != domid)
		return -EINVAL;
	ret_g->domid = f.domid;
	ret_g->server_id = f.server_id;
	ret_g->servers_before = f.servers_before;
	memcpy(ret_g->handle, f.handle, sizeof(f.handle));
	return 0;
}

void drec_guest_remove(struct drec_dir *dir, unsigned int domid)
{
	char name[32];

	guest_name(name, sizeof(name), domid);
	unlinkat(dir->dirfd, name, 0);
}

static uint64_t disk_layout(struct drec_disk_hdr *h)
{
	h->snap_off = ALIGN_UP(sizeof(*h), 64);
	h->snap_size = ALIGN_UP(sizeof(struct drec_snap) + SNAP_BODY, 64);
	h->journal_off = ALIGN_UP(h->snap_off + 2 * h->snap_size, 4096);
	h->journal_stride = ALIGN_UP(h->id.journal_size, 64);
	return h->journal_off + (uint64_t)h->id.num_queues * h->journal_stride;
}

static int disk_map(struct drec_dir *dir, int fd, size_t size, struct drec_disk **ret_rec)
{
	struct drec_disk *rec = calloc(1, sizeof(*rec));
	void *p;

	if (!rec)
		return -ENOMEM;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int r = -errno;

		free(rec);
		return r;
	}
	rec->dir = dir;
	rec->hdr = p;
	rec->size = size;
	*ret_rec = rec;
	return 0;
}

static struct drec_snap *snap_slot(struct drec_disk *rec, unsigned int i)
{
	return (struct drec_snap *)((uint8_t *)rec->hdr + rec->hdr->snap_off + i * rec->hdr->snap_size);
}

/* The slot holding the last state saved whole, or NULL. */
static struct drec_snap *snap_latest(struct drec_disk *rec)
{
	struct drec_snap *best = NULL;

	for (unsigned int i = 0; i < 2; i++) {
		struct drec_snap *s = snap_slot(rec, i);

		if (s->seq && s->len == SNAP_BODY && s->check == drec_hash(s->body, SNAP_BODY) &&
		    (!best || s->seq > best->seq))
			best = s;
	}
	return best;
}

int drec_disk_create(struct drec_dir *dir, const struct drec_disk_id *id,
		     struct drec_disk **ret_rec)
{
	struct drec_disk_hdr h = { .version = DREC_VERSION, .id = *id };
	char name[48], tmp[56];
	uint64_t size;
	int fd, r;

	memcpy(h.magic, DREC_DISK_MAGIC, sizeof(h.magic));
	h.id.path[DREC_PATH_MAX - 1] = '\0';
	size = disk_layout(&h);
	h.file_size = size;
	h.check = drec_hash(&h, offsetof(struct drec_disk_hdr, check));
	disk_name(name, sizeof(name), id->domid, id->devid);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(dir->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* Sparse: only the journal slots a queue uses take memory. */
	errno = 0;
	if (ftruncate(fd, (off_t)size) < 0 || pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		r = errno ? -errno : -ENOSPC;
	else
		r = disk_map(dir, fd, size, ret_rec);
	close(fd);
	if (r == 0 && renameat(dir->dirfd, tmp, dir->dirfd, name) < 0) {
		r = -errno;
		drec_disk_close(*ret_rec, false);
	}
	if (r < 0)
		unlinkat(dir->dirfd, tmp, 0);
	return r;
}

int drec_disk_open(struct drec_dir *dir, unsigned int domid, unsigned int devid,
		   struct drec_disk **ret_rec)
{
	struct drec_disk_hdr h;
	struct stat st;
	char name[48];
	int fd, r;

	disk_name(name, sizeof(name), domid, devid);
	fd = openat(dir->dirfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h.magic, DREC_DISK_MAGIC, sizeof(h.magic))) {
		r = -EINVAL;
		goto out;
	}
	if (h.version != DREC_VERSION) {
		r = -EPROTONOSUPPORT;
		goto out;
	}
	r = -EINVAL;
	if (h.check != drec_hash(&h, offsetof(struct drec_disk_hdr, check)) ||
	    h.id.domid != domid || h.id.devid != devid ||
	    h.id.num_queues == 0 || h.id.num_queues > VIRTIO_DEV_MAX_QUEUES ||
	    h.id.path[DREC_PATH_MAX - 1] != '\0' ||
	    h.file_size != (uint64_t)st.st_size)
		goto out;
	{
		struct drec_disk_hdr want = h;

		/* The layout follows from the identity: a record laid out otherwise is not ours. */
		if (disk_layout(&want) != h.file_size || want.snap_off != h.snap_off ||
		    want.snap_size != h.snap_size || want.journal_off != h.journal_off ||
		    want.journal_stride != h.journal_stride)
			goto out;
	}
	r = disk_map(dir, fd, (size_t)h.file_size, ret_rec);
	if (r == 0) {
		/*
		 * Saves go on from the last whole one, also without a load: numbered
		 * from 0 they would go over it with a lower seq, and a later load
		 * would pick the older state in the other slot.
		 */
		struct drec_snap *latest = snap_latest(*ret_rec);

		(*ret_rec)->seq = latest ? latest->seq : 0;
	}
out:
	close(fd);
	return r;
}

const struct drec_disk_id *drec_disk_id(const struct drec_disk *rec)
{
	return &rec->hdr->id;
}

void *drec_disk_journal(struct drec_disk *rec, unsigned int idx, size_t *ret_size)
{
	*ret_size = rec->hdr->id.journal_size;
	return (uint8_t *)rec->hdr + rec->hdr->journal_off + (uint64_t)idx * rec->hdr->journal_stride;
}

int drec_disk_save(struct drec_disk *rec, const struct vmmio_dev *regs, const struct vblk_dev *vblk)
{
	struct drec_snap *s = snap_slot(rec, (unsigned int)((rec->seq + 1) & 1));
	struct vmmio_state vm;
	struct vblk_state vb;
	int r;

	vmmio_save(regs, &vm);
	vblk_save(vblk, &vb);
	/* The slot not holding the latest: a kill while writing it leaves that one. */
	__atomic_store_n(&s->seq, 0, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	memcpy(s->body, &vm, sizeof(vm));
	memcpy(s->body + sizeof(vm), &vb, sizeof(vb));
	r = virtio_dev_save(vblk_virtio_dev((struct vblk_dev *)vblk),
			    (struct virtio_dev_state *)(void *)(s->body + sizeof(vm) + sizeof(vb)),
			    sizeof(struct virtio_dev_state));
	if (r < 0)
		return r;
	s->len = SNAP_BODY;
	s->check = drec_hash(s->body, SNAP_BODY);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&s->seq, rec->seq + 1, __ATOMIC_RELAXED);
	rec->seq++;
	return 0;
}

int drec_disk_load(struct drec_disk *rec, struct vmmio_state *ret_regs,
		   struct vblk_state *ret_blk, struct virtio_dev_state **ret_vst, size_t *ret_size)
{
	struct drec_snap *best = snap_latest(rec);
	struct virtio_dev_state *vst;

	if (!best)
		return -ENOENT;
	vst = malloc(sizeof(*vst));
	if (!vst)
		return -ENOMEM;
	memcpy(ret_regs, best->body, sizeof(*ret_regs));
	memcpy(ret_blk, best->body + sizeof(*ret_regs), sizeof(*ret_blk));
	memcpy(vst, best->body + sizeof(*ret_regs) + sizeof(*ret_blk), sizeof(*vst));
	rec->seq = best->seq;
	*ret_vst = vst;
	*ret_size = sizeof(*vst);
	return 0;
}

void drec_disk_adopted(struct drec_disk *rec)
{
	rec->hdr->adoptions++;
	rec->hdr->last_adopted = (int64_t)time(NULL);
}

unsigned int drec_disk_adoptions(const struct drec_disk *rec)
{
	return rec->hdr->adoptions;
}

int64_t drec_disk_last_adopted(const struct drec_disk *rec)
{
	return rec->hdr->last_adopted;
}

void drec_disk_remove(struct drec_dir *dir, unsigned int domid, unsigned int devid)
{
	char name[48];

	disk_name(name, sizeof(name), domid, devid);
	unlinkat(dir->dirfd, name, 0);
}

void drec_disk_close(struct drec_disk *rec, bool remove)
{
	if (!rec)
		return;
	if (remove)
		drec_disk_remove(rec->dir, rec->hdr->id.domid, rec->hdr->id.devid);
	munmap(rec->hdr, rec->size);
	free(rec);
}

void drec_list(struct drec_dir *dir, void (*fn)(void *data, unsigned int domid, int devid),
	       void *data)
{
	int fd = dup(dir->dirfd);
	struct dirent *e;
	DIR *dp;

	if (fd < 0)
		return;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return;
	}
	rewinddir(dp);
	while ((e = readdir(dp))) {
		unsigned int domid, devid;
		char tail[16];
		size_t len = strlen(e->d_name);

		if (len > 4 && !strcmp(e->d_name + len - 4, ".tmp")) {
			/* Left by a process that died writing it: never renamed into place. */
			unlinkat(dir->dirfd, e->d_name, 0);
			continue;
		}
		if (sscanf(e->d_name, "dom%u-%u.%15s", &domid, &devid, tail) == 3 &&
		    !strcmp(tail, "disk"))
			fn(data, domid, (int)devid);
		else if (sscanf(e->d_name, "dom%u.%15s", &domid, tail) == 2 &&
			 !strcmp(tail, "guest"))
			fn(data, domid, -1);
	}
	closedir(dp);
}
