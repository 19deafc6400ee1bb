// SPDX-License-Identifier: GPL-2.0-only
/* Records of a restarted vblkd: round trips, and every record that does not fit refused. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon-record.h"
#include "log.h"
#include "../lib/vtest.h"

/*
 * Where daemon-record.c keeps things in a file (its private format, which
 * these tests corrupt on purpose).  A guest record: magic[8], version,
 * domid, handle[16], ...  A disk record's header: magic[8], version, pad,
 * then file_size, snap_off, snap_size, journal_off, journal_stride (u64),
 * then the identity.  A device state slot: seq, check (u64), len, pad, body.
 */
#define OFF_VERSION 8
#define OFF_GUEST_HANDLE 16
#define OFF_DISK_SNAP_OFF 24
#define OFF_DISK_SNAP_SIZE 32
#define OFF_DISK_ID 56
#define OFF_SNAP_SEQ 0
#define OFF_SNAP_BODY 24

#define DOMID 3u
#define DEVID 51712u

struct fix {
	char path[96];
	struct drec_dir *dir;
	struct vt *vt;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "%s/vblkd-drec.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(f->path));
	assert_int_equal(drec_dir_open(f->path, &f->dir), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	char cmd[160];

	drec_dir_close(f->dir);
	vt_free(f->vt);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->path);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* ---------------------------------------------------------------- helpers */

static void file_path(const struct fix *f, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", f->path, name);
}

static bool file_exists(const struct fix *f, const char *name)
{
	char p[160];

	file_path(f, name, p, sizeof(p));
	return access(p, F_OK) == 0;
}

static void file_patch(const struct fix *f, const char *name, off_t off, const void *buf,
		       size_t len)
{
	char p[160];
	int fd;

	file_path(f, name, p, sizeof(p));
	fd = open(p, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static void file_peek(const struct fix *f, const char *name, off_t off, void *buf, size_t len)
{
	char p[160];
	int fd;

	file_path(f, name, p, sizeof(p));
	fd = open(p, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

/* Flip every bit of one byte. */
static void file_flip(const struct fix *f, const char *name, off_t off)
{
	uint8_t b;

	file_peek(f, name, off, &b, 1);
	b ^= 0xff;
	file_patch(f, name, off, &b, 1);
}

static off_t file_size(const struct fix *f, const char *name)
{
	char p[160];
	struct stat st;

	file_path(f, name, p, sizeof(p));
	assert_int_equal(stat(p, &st), 0);
	return st.st_size;
}

static void file_rename(const struct fix *f, const char *from, const char *to)
{
	char a[160], b[160];

	file_path(f, from, a, sizeof(a));
	file_path(f, to, b, sizeof(b));
	assert_int_equal(rename(a, b), 0);
}

static void file_touch(const struct fix *f, const char *name)
{
	char p[160];
	int fd;

	file_path(f, name, p, sizeof(p));
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "partial", 7), 7);
	close(fd);
}

static struct drec_guest guest_of(unsigned int domid, uint8_t fill)
{
	struct drec_guest g = { .domid = domid, .server_id = 5 };

	memset(g.handle, fill, sizeof(g.handle));
	return g;
}

static void write_guest(struct fix *f, unsigned int domid, uint8_t fill)
{
	struct drec_guest g = guest_of(domid, fill);

	assert_int_equal(drec_guest_write(f->dir, &g), 0);
}

static void disk_id_of(struct drec_disk_id *id, unsigned int domid, unsigned int devid)
{
	memset(id, 0, sizeof(*id));
	id->domid = domid;
	id->devid = devid;
	for (unsigned int i = 0; i < sizeof(id->handle); i++)
		id->handle[i] = (uint8_t)(0xa0 + i);
	id->base = 0x02000200;
	id->irq = 34;
	id->grants = true;
	id->read_only = false;
	id->num_queues = 2;
	id->queue_num_max = 256;
	id->journal_size = 1000;	/* not a multiple of 8: the stride rounds it up */
	snprintf(id->path, sizeof(id->path), "/images/dom%u-%u.img", domid, devid);
}

/* A record created and closed: what a killed vblkd leaves. */
static void make_disk(struct fix *f, unsigned int domid, unsigned int devid)
{
	struct drec_disk_id id;
	struct drec_disk *rec;

	disk_id_of(&id, domid, devid);
	assert_int_equal(drec_disk_create(f->dir, &id, &rec), 0);
	drec_disk_close(rec, false);
}

static int open_disk(struct fix *f, unsigned int domid, unsigned int devid)
{
	struct drec_disk *rec = NULL;
	int r = drec_disk_open(f->dir, domid, devid, &rec);

	if (r == 0) {
		assert_non_null(rec);
		drec_disk_close(rec, false);
	}
	return r;
}

#define DISK_NAME "dom3-51712.disk"

/* The state a device saves: its register selectors tell one save from another. */
static void device_select(struct fix *f, uint32_t dev_features_sel, uint32_t queue_sel)
{
	if (!f->vt) {
		f->vt = vt_new(NULL);
		assert_non_null(f->vt);
	}
	vt_wr(f->vt, 0x014, dev_features_sel);	/* DeviceFeaturesSel (virtio 1.2 §4.2.2) */
	vt_wr(f->vt, 0x030, queue_sel);		/* QueueSel */
}

/* The last state saved whole: its DeviceFeaturesSel (QueueSel checked to go with it), or -errno. */
static int64_t load_sel(struct drec_disk *rec)
{
	struct virtio_dev_state *vst = NULL;
	struct vmmio_state regs;
	struct vblk_state bs;
	size_t size = 0;
	int r = drec_disk_load(rec, &regs, &bs, &vst, &size);

	if (r < 0)
		return r;
	assert_non_null(vst);
	assert_int_equal(size, sizeof(*vst));
	assert_int_equal(vst->version, VIRTIO_DEV_STATE_VERSION);
	assert_int_equal(regs.queue_sel, regs.dev_features_sel + 100);
	free(vst);
	return regs.dev_features_sel;
}

/* Save number @n: DeviceFeaturesSel @n, QueueSel @n + 100. */
static void save_n(struct fix *f, struct drec_disk *rec, uint32_t n)
{
	device_select(f, n, n + 100);
	assert_int_equal(drec_disk_save(rec, f->vt->mmio, f->vt->dev), 0);
}

/* The slot a disk record's file holds with the highest seq (the newer one). */
static off_t newer_slot(const struct fix *f, const char *name)
{
	uint64_t snap_off, snap_size, seq[2];

	file_peek(f, name, OFF_DISK_SNAP_OFF, &snap_off, sizeof(snap_off));
	file_peek(f, name, OFF_DISK_SNAP_SIZE, &snap_size, sizeof(snap_size));
	for (unsigned int i = 0; i < 2; i++)
		file_peek(f, name, (off_t)(snap_off + i * snap_size + OFF_SNAP_SEQ), &seq[i],
			  sizeof(seq[i]));
	assert_true(seq[0] != seq[1]);
	return (off_t)(snap_off + (seq[1] > seq[0] ? snap_size : 0));
}

/* ------------------------------------------------------------ guest records */

static void test_guest_round_trip(void **state)
{
	struct fix *f = *state;
	struct drec_guest want = guest_of(DOMID, 0x5a), got;

	want.server_id = 7;
	assert_int_equal(drec_guest_write(f->dir, &want), 0);
	memset(&got, 0, sizeof(got));
	assert_int_equal(drec_guest_read(f->dir, DOMID, &got), 0);
	assert_int_equal(got.domid, DOMID);
	assert_int_equal(got.server_id, 7);
	assert_memory_equal(got.handle, want.handle, sizeof(got.handle));
	assert_false(file_exists(f, "dom3.guest.tmp"));

	/* Written again: the new one replaces it. */
	want.server_id = 2;
	assert_int_equal(drec_guest_write(f->dir, &want), 0);
	assert_int_equal(drec_guest_read(f->dir, DOMID, &got), 0);
	assert_int_equal(got.server_id, 2);

	drec_guest_remove(f->dir, DOMID);
	assert_int_equal(drec_guest_read(f->dir, DOMID, &got), -ENOENT);
}

static void test_guest_missing_is_enoent(void **state)
{
	struct fix *f = *state;
	struct drec_guest got;

	write_guest(f, 4, 1);
	assert_int_equal(drec_guest_read(f->dir, DOMID, &got), -ENOENT);
}

static void test_guest_truncated_refused(void **state)
{
	struct fix *f = *state;
	struct drec_guest got;
	char p[160];

	write_guest(f, DOMID, 1);
	file_path(f, "dom3.guest", p, sizeof(p));
	assert_int_equal(truncate(p, file_size(f, "dom3.guest") - 1), 0);
	assert_int_equal(drec_guest_read(f->dir, DOMID, &got), -EINVAL);
	assert_int_equal(truncate(p, 0), 0);
	assert_int_equal(drec_guest_read(f->dir, DOMID, &got), -EINVAL);
}

static void test_guest_flipped_byte_refused(void **state)
{
	struct fix *f = *state;
	struct drec_guest got;
	off_t size, off;

	write_guest(f, DOMID, 1);
	size = file_size(f, "dom3.guest");
	/* Any byte at all: magic, version, identity, the check itself. */
	for (off = 0; off < size; off++) {
		int r;

		file_flip(f, "dom3.guest", off);
		r = drec_guest_read(f->dir, DOMID, &got);
		if (off >= OFF_VERSION && off < OFF_VERSION + 4)
			assert_int_equal(r, -EPROTONOSUPPORT);
		else
			assert_int_equal(r, -EINVAL);
		file_flip(f, "dom3.guest", off);
	}
	assert_int_equal(drec_guest_read(f->dir, DOMID, &got), 0);
}

static void test_guest_other_version_refused(void **state)
{
	struct fix *f = *state;
	struct drec_guest got;
	uint32_t v = DREC_VERSION + 1;

	write_guest(f, DOMID, 1);
	file_patch(f, "dom3.guest", OFF_VERSION, &v, sizeof(v));
	assert_int_equal(drec_guest_read(f->dir, DOMID, &got), -EPROTONOSUPPORT);
}

/* Whole and with the right check, but of domain 4: not domain 3's. */
static void test_guest_of_other_domid_renamed_refused(void **state)
{
	struct fix *f = *state;
	struct drec_guest got;

	write_guest(f, 4, 1);
	file_rename(f, "dom4.guest", "dom3.guest");
	assert_int_equal(drec_guest_read(f->dir, DOMID, &got), -EINVAL);
}

struct seen {
	unsigned int n;
	unsigned int domid[8];
	int devid[8];
};

static void seen_cb(void *data, unsigned int domid, int devid)
{
	struct seen *s = data;

	assert_true(s->n < 8);
	s->domid[s->n] = domid;
	s->devid[s->n] = devid;
	s->n++;
}

static bool seen_has(const struct seen *s, unsigned int domid, int devid)
{
	for (unsigned int i = 0; i < s->n; i++)
		if (s->domid[i] == domid && s->devid[i] == devid)
			return true;
	return false;
}

/* A file a process killed between write and rename left: removed; records listed; others kept. */
static void test_list_removes_leftover_tmp(void **state)
{
	struct fix *f = *state;
	struct seen s = { 0 };

	write_guest(f, DOMID, 1);
	make_disk(f, DOMID, DEVID);
	file_touch(f, "dom3.guest.tmp");
	file_touch(f, "dom3-51728.disk.tmp");
	file_touch(f, "README");
	file_touch(f, "dom3-51712.disk.bak");
	drec_list(f->dir, seen_cb, &s);
	assert_false(file_exists(f, "dom3.guest.tmp"));
	assert_false(file_exists(f, "dom3-51728.disk.tmp"));
	assert_true(file_exists(f, "README"));
	assert_true(file_exists(f, "dom3-51712.disk.bak"));
	assert_true(file_exists(f, "lock"));
	assert_int_equal(s.n, 2);
	assert_true(seen_has(&s, DOMID, -1));
	assert_true(seen_has(&s, DOMID, (int)DEVID));
}

/* ------------------------------------------------------------- disk records */

static void test_disk_create_open_round_trip(void **state)
{
	struct fix *f = *state;
	struct drec_disk_id want;
	const struct drec_disk_id *got;
	struct drec_disk *rec;

	disk_id_of(&want, DOMID, DEVID);
	assert_int_equal(drec_disk_create(f->dir, &want, &rec), 0);
	assert_int_equal(drec_disk_adoptions(rec), 0);
	assert_int_equal(drec_disk_last_adopted(rec), 0);
	drec_disk_close(rec, false);
	assert_false(file_exists(f, DISK_NAME ".tmp"));

	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	got = drec_disk_id(rec);
	assert_int_equal(got->domid, DOMID);
	assert_int_equal(got->devid, DEVID);
	assert_memory_equal(got->handle, want.handle, sizeof(want.handle));
	assert_int_equal(got->base, 0x02000200);
	assert_int_equal(got->irq, 34);
	assert_true(got->grants);
	assert_false(got->read_only);
	assert_int_equal(got->num_queues, 2);
	assert_int_equal(got->queue_num_max, 256);
	assert_int_equal(got->journal_size, 1000);
	assert_string_equal(got->path, "/images/dom3-51712.img");
	/* Adoptions are counted in the record: the next process sees them. */
	drec_disk_adopted(rec);
	drec_disk_close(rec, false);
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(drec_disk_adoptions(rec), 1);
	assert_true(drec_disk_last_adopted(rec) > 0);
	/* Closed with remove: gone. */
	drec_disk_close(rec, true);
	assert_false(file_exists(f, DISK_NAME));
	assert_int_equal(open_disk(f, DOMID, DEVID), -ENOENT);
}

/* Created again (a disk served afresh): the old record, state and all, is replaced. */
static void test_disk_create_replaces_old_record(void **state)
{
	struct fix *f = *state;
	struct drec_disk_id id;
	struct drec_disk *rec;

	disk_id_of(&id, DOMID, DEVID);
	assert_int_equal(drec_disk_create(f->dir, &id, &rec), 0);
	save_n(f, rec, 1);
	drec_disk_close(rec, false);

	id.num_queues = 4;
	snprintf(id.path, sizeof(id.path), "/images/other.img");
	assert_int_equal(drec_disk_create(f->dir, &id, &rec), 0);
	drec_disk_close(rec, false);
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(drec_disk_id(rec)->num_queues, 4);
	assert_string_equal(drec_disk_id(rec)->path, "/images/other.img");
	assert_int_equal(load_sel(rec), -ENOENT);
	drec_disk_close(rec, false);
}

static void test_disk_missing_is_enoent(void **state)
{
	struct fix *f = *state;

	make_disk(f, DOMID, DEVID + 16);
	assert_int_equal(open_disk(f, DOMID, DEVID), -ENOENT);
}

static void test_disk_wrong_magic_refused(void **state)
{
	struct fix *f = *state;

	make_disk(f, DOMID, DEVID);
	file_patch(f, DISK_NAME, 0, "VBLKDGST", 8);	/* a guest record's */
	assert_int_equal(open_disk(f, DOMID, DEVID), -EINVAL);
}

static void test_disk_other_version_refused(void **state)
{
	struct fix *f = *state;
	uint32_t v = DREC_VERSION + 1;

	make_disk(f, DOMID, DEVID);
	file_patch(f, DISK_NAME, OFF_VERSION, &v, sizeof(v));
	assert_int_equal(open_disk(f, DOMID, DEVID), -EPROTONOSUPPORT);
}

/* Any byte of the header's layout and identity changed: its check no longer matches. */
static void test_disk_header_check_mismatch_refused(void **state)
{
	struct fix *f = *state;
	const off_t offs[] = {
		OFF_DISK_SNAP_OFF,				/* layout */
		OFF_DISK_ID,					/* domid */
		OFF_DISK_ID + offsetof(struct drec_disk_id, handle),
		OFF_DISK_ID + offsetof(struct drec_disk_id, base),
		OFF_DISK_ID + offsetof(struct drec_disk_id, path),
		OFF_DISK_ID + offsetof(struct drec_disk_id, path) + 200,	/* past its NUL */
	};
	uint32_t u[2];
	char path[32];

	make_disk(f, DOMID, DEVID);
	/* The identity is where these tests take it to be. */
	file_peek(f, DISK_NAME, OFF_DISK_ID, u, sizeof(u));
	assert_int_equal(u[0], DOMID);
	assert_int_equal(u[1], DEVID);
	file_peek(f, DISK_NAME, OFF_DISK_ID + offsetof(struct drec_disk_id, path), path, sizeof(path));
	assert_string_equal(path, "/images/dom3-51712.img");
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		file_flip(f, DISK_NAME, offs[i]);
		assert_int_equal(open_disk(f, DOMID, DEVID), -EINVAL);
		file_flip(f, DISK_NAME, offs[i]);
	}
	assert_int_equal(open_disk(f, DOMID, DEVID), 0);
}

static void test_disk_size_mismatch_refused(void **state)
{
	struct fix *f = *state;
	off_t size;
	char p[160];

	make_disk(f, DOMID, DEVID);
	size = file_size(f, DISK_NAME);
	file_path(f, DISK_NAME, p, sizeof(p));
	assert_int_equal(truncate(p, size + 4096), 0);
	assert_int_equal(open_disk(f, DOMID, DEVID), -EINVAL);
	assert_int_equal(truncate(p, size - 8), 0);	/* the last journal cut short */
	assert_int_equal(open_disk(f, DOMID, DEVID), -EINVAL);
	assert_int_equal(truncate(p, 100), 0);		/* not even a header */
	assert_int_equal(open_disk(f, DOMID, DEVID), -EINVAL);
	assert_int_equal(truncate(p, 0), 0);
	assert_int_equal(open_disk(f, DOMID, DEVID), -EINVAL);
}

/* Whole records of another disk or another domain, renamed into place. */
static void test_disk_of_other_name_refused(void **state)
{
	struct fix *f = *state;

	make_disk(f, DOMID, DEVID + 16);
	file_rename(f, "dom3-51728.disk", DISK_NAME);
	assert_int_equal(open_disk(f, DOMID, DEVID), -EINVAL);

	make_disk(f, 4, DEVID);
	file_rename(f, "dom4-51712.disk", DISK_NAME);
	assert_int_equal(open_disk(f, DOMID, DEVID), -EINVAL);
}

/* ------------------------------------------------------ device state slots */

static void test_state_none_saved_is_enoent(void **state)
{
	struct fix *f = *state;
	struct drec_disk *rec;

	make_disk(f, DOMID, DEVID);
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(load_sel(rec), -ENOENT);
	drec_disk_close(rec, false);
}

static void test_state_saved_twice_loads_second(void **state)
{
	struct fix *f = *state;
	struct drec_disk_id id;
	struct drec_disk *rec;

	disk_id_of(&id, DOMID, DEVID);
	assert_int_equal(drec_disk_create(f->dir, &id, &rec), 0);
	save_n(f, rec, 1);
	assert_int_equal(load_sel(rec), 1);
	save_n(f, rec, 2);
	assert_int_equal(load_sel(rec), 2);
	drec_disk_close(rec, false);
	/* And in the next process. */
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(load_sel(rec), 2);
	/* Saved on from there: always the latest. */
	save_n(f, rec, 3);
	save_n(f, rec, 4);
	save_n(f, rec, 5);
	drec_disk_close(rec, false);
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(load_sel(rec), 5);
	drec_disk_close(rec, false);
}

/* A process killed while it saved: the newer slot is torn, the older one is whole. */
static void torn_loads_older(struct fix *f, bool zero_seq)
{
	struct drec_disk_id id;
	struct drec_disk *rec;
	off_t slot;

	disk_id_of(&id, DOMID, DEVID);
	assert_int_equal(drec_disk_create(f->dir, &id, &rec), 0);
	save_n(f, rec, 1);
	save_n(f, rec, 2);
	save_n(f, rec, 3);
	drec_disk_close(rec, false);

	slot = newer_slot(f, DISK_NAME);
	if (zero_seq) {
		uint64_t zero = 0;

		/* The kill came after the slot was marked as being written. */
		file_patch(f, DISK_NAME, slot + OFF_SNAP_SEQ, &zero, sizeof(zero));
	} else {
		/* The kill came before the body was written whole (a seq from a torn page). */
		file_flip(f, DISK_NAME, slot + OFF_SNAP_BODY);
	}
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(load_sel(rec), 2);
	/* The next save goes over the torn slot, not over the whole one. */
	save_n(f, rec, 4);
	drec_disk_close(rec, false);
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(load_sel(rec), 4);
	drec_disk_close(rec, false);
}

static void test_state_torn_seq_loads_older(void **state)
{
	torn_loads_older(*state, true);
}

static void test_state_torn_body_loads_older(void **state)
{
	torn_loads_older(*state, false);
}

/* Both slots torn: nothing whole to go back to. */
static void test_state_both_torn_is_enoent(void **state)
{
	struct fix *f = *state;
	struct drec_disk_id id;
	struct drec_disk *rec;
	uint64_t snap_off, snap_size;

	disk_id_of(&id, DOMID, DEVID);
	assert_int_equal(drec_disk_create(f->dir, &id, &rec), 0);
	save_n(f, rec, 1);
	save_n(f, rec, 2);
	drec_disk_close(rec, false);
	file_peek(f, DISK_NAME, OFF_DISK_SNAP_OFF, &snap_off, sizeof(snap_off));
	file_peek(f, DISK_NAME, OFF_DISK_SNAP_SIZE, &snap_size, sizeof(snap_size));
	file_flip(f, DISK_NAME, (off_t)(snap_off + OFF_SNAP_BODY));
	file_flip(f, DISK_NAME, (off_t)(snap_off + snap_size + OFF_SNAP_BODY + 1));
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(load_sel(rec), -ENOENT);
	drec_disk_close(rec, false);
}

/*
 * A record opened and saved to without a load first (the state it held
 * not wanted): what was saved last is what the next process loads.
 */
static void test_state_saved_after_open_without_load_wins(void **state)
{
	struct fix *f = *state;
	struct drec_disk_id id;
	struct drec_disk *rec;

	disk_id_of(&id, DOMID, DEVID);
	assert_int_equal(drec_disk_create(f->dir, &id, &rec), 0);
	save_n(f, rec, 1);
	save_n(f, rec, 2);
	save_n(f, rec, 3);
	drec_disk_close(rec, false);
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	save_n(f, rec, 9);
	drec_disk_close(rec, false);
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(load_sel(rec), 9);
	drec_disk_close(rec, false);
}

/* ------------------------------------------------------------- the lock */

static void test_dir_second_open_busy_until_closed(void **state)
{
	struct fix *f = *state;
	struct drec_dir *second = NULL;
	char out[512] = "";
	FILE *log = tmpfile();
	size_t n;

	assert_non_null(log);
	log_set_fd(fileno(log));
	assert_int_equal(drec_dir_open(f->path, &second), -EBUSY);
	log_set_fd(-1);
	rewind(log);
	n = fread(out, 1, sizeof(out) - 1, log);
	out[n] = '\0';
	fclose(log);
	assert_non_null(strstr(out, "another vblkd is using it"));
	assert_null(second);

	drec_dir_close(f->dir);
	f->dir = NULL;
	assert_int_equal(drec_dir_open(f->path, &f->dir), 0);
	/* And now the other way round. */
	assert_int_equal(drec_dir_open(f->path, &second), -EBUSY);
}

/* A state directory whose parent is missing too (/run/vblkd by hand): both made. */
static void test_dir_created_with_parent(void **state)
{
	struct fix *f = *state;
	struct drec_dir *dir;
	char p[160];
	struct stat st;

	file_path(f, "run/state", p, sizeof(p));
	assert_int_equal(drec_dir_open(p, &dir), 0);
	assert_string_equal(drec_dir_path(dir), p);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	drec_dir_close(dir);
}

/* ------------------------------------------------------------- journals */

/* The mapping of @name in this process (/proc/self/maps): its start and end. */
static void mapping_of(const struct fix *f, const char *name, uintptr_t *ret_lo, uintptr_t *ret_hi)
{
	char want[160], line[512];
	FILE *m = fopen("/proc/self/maps", "re");
	bool found = false;

	file_path(f, name, want, sizeof(want));
	assert_non_null(m);
	while (fgets(line, sizeof(line), m)) {
		uintptr_t lo, hi;
		char *path = strchr(line, '/');

		if (!path)
			continue;
		path[strcspn(path, "\n")] = '\0';
		if (strcmp(path, want) || sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) != 2)
			continue;
		assert_false(found);	/* one mapping */
		*ret_lo = lo;
		*ret_hi = hi;
		found = true;
	}
	fclose(m);
	assert_true(found);
}

static void test_journals_aligned_distinct_inside(void **state)
{
	struct fix *f = *state;
	struct drec_disk_id id;
	struct drec_disk *rec;
	uintptr_t lo, hi, p[4];
	size_t size;

	disk_id_of(&id, DOMID, DEVID);
	id.num_queues = 4;
	id.journal_size = 1000;
	assert_int_equal(drec_disk_create(f->dir, &id, &rec), 0);
	mapping_of(f, DISK_NAME, &lo, &hi);
	for (unsigned int i = 0; i < 4; i++) {
		size = 0;
		p[i] = (uintptr_t)drec_disk_journal(rec, i, &size);
		assert_int_equal(size, 1000);
		assert_int_equal(p[i] % 8, 0);
		assert_true(p[i] >= lo && p[i] + size <= hi);
		for (unsigned int j = 0; j < i; j++)
			assert_true(p[i] >= p[j] + size || p[j] >= p[i] + size);
		/* Not over the device state either: a save leaves every journal alone. */
		memset((void *)p[i], 0x30 + (int)i, size);
	}
	save_n(f, rec, 1);
	save_n(f, rec, 2);
	drec_disk_close(rec, false);

	/* Kept in the file: the next process finds each queue's own. */
	assert_int_equal(drec_disk_open(f->dir, DOMID, DEVID, &rec), 0);
	assert_int_equal(load_sel(rec), 2);
	for (unsigned int i = 0; i < 4; i++) {
		uint8_t *j = drec_disk_journal(rec, i, &size);

		assert_int_equal(size, 1000);
		for (size_t b = 0; b < size; b++)
			if (j[b] != 0x30 + i)
				fail_msg("journal %u byte %zu: 0x%02x", i, b, j[b]);
	}
	drec_disk_close(rec, false);
}

/* The size the device asks for (virtio_dev_journal_size()), as the daemon records it. */
static void test_journals_of_device_size(void **state)
{
	struct fix *f = *state;
	struct drec_disk_id id;
	struct drec_disk *rec;
	uintptr_t lo, hi;
	size_t want, size;

	device_select(f, 0, 100);
	want = virtio_dev_journal_size(f->vt->vdev);
	assert_true(want > 0);
	disk_id_of(&id, DOMID, DEVID);
	id.num_queues = 3;
	id.journal_size = want;
	assert_int_equal(drec_disk_create(f->dir, &id, &rec), 0);
	mapping_of(f, DISK_NAME, &lo, &hi);
	for (unsigned int i = 0; i < 3; i++) {
		uintptr_t p = (uintptr_t)drec_disk_journal(rec, i, &size);

		assert_int_equal(size, want);
		assert_int_equal(p % 8, 0);
		assert_true(p >= lo && p + size <= hi);
	}
	/* The device takes one as it is. */
	assert_int_equal(virtio_dev_set_journal(f->vt->vdev, 0, drec_disk_journal(rec, 0, &size),
						size), 0);
	vt_free(f->vt);		/* before the memory it was given goes */
	f->vt = NULL;
	drec_disk_close(rec, false);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_guest_round_trip),
		T(test_guest_missing_is_enoent),
		T(test_guest_truncated_refused),
		T(test_guest_flipped_byte_refused),
		T(test_guest_other_version_refused),
		T(test_guest_of_other_domid_renamed_refused),
		T(test_list_removes_leftover_tmp),
		T(test_disk_create_open_round_trip),
		T(test_disk_create_replaces_old_record),
		T(test_disk_missing_is_enoent),
		T(test_disk_wrong_magic_refused),
		T(test_disk_other_version_refused),
		T(test_disk_header_check_mismatch_refused),
		T(test_disk_size_mismatch_refused),
		T(test_disk_of_other_name_refused),
		T(test_state_none_saved_is_enoent),
		T(test_state_saved_twice_loads_second),
		T(test_state_torn_seq_loads_older),
		T(test_state_torn_body_loads_older),
		T(test_state_both_torn_is_enoent),
		T(test_state_saved_after_open_without_load_wins),
		T(test_dir_second_open_busy_until_closed),
		T(test_dir_created_with_parent),
		T(test_journals_aligned_distinct_inside),
		T(test_journals_of_device_size),
	};
#undef T

	log_set_level(LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
