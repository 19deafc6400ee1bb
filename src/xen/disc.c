// SPDX-License-Identifier: GPL-2.0-only
/* Disk discovery from xenstore watch events: add at state 1, answer Closing with Closed, notice vanished disks. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "disc.h"
#include "disk-cfg.h"
#include "log.h"
#include "util.h"
#include "xsw.h"

/* Domain ids at or above DOMID_FIRST_RESERVED (xen/xen.h) are never guests. */
#define DISC_DOMID_LIMIT 0x7ff0u
#define DISC_TXN_RETRIES 8

enum disc_phase {
	DISC_PHASE_ACTIVE,	/* added, state 2 written */
	DISC_PHASE_CLOSING,	/* disk_close() pending */
	DISC_PHASE_DONE,	/* closed or failed: waiting for libxl to remove the directory */
};

struct disc_dev {
	unsigned int domid;
	unsigned int devid;
	enum disc_phase phase;
	struct disc_dev *next;
};

struct disc {
	struct xsw *xsw;
	struct xsw_watch *watch;
	char *base;		/* /local/domain/<be>/backend/virtio_disk */
	size_t base_len;
	const struct disc_ops *ops;
	void *data;
	struct disc_dev *devs;
};

static struct disc_dev *disc_find(struct disc *disc, unsigned int domid, unsigned int devid)
{
	struct disc_dev *d;

	for (d = disc->devs; d; d = d->next)
		if (d->domid == domid && d->devid == devid)
			return d;
	return NULL;
}

static void disc_forget(struct disc *disc, struct disc_dev *dev)
{
	slist_remove(&disc->devs, dev, next);
	free(dev);
}

/* Parse a path component: decimal, no sign, below @limit; advances *@p past it. */
static int disc_parse_id(const char **p, unsigned int limit, unsigned int *ret)
{
	uint64_t v = 0;
	const char *s = *p;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v >= limit)
			return -ERANGE;
	}
	if (*s && *s != '/')
		return -EINVAL;
	*p = s;
	*ret = (unsigned int)v;
	return 0;
}

/*
 * One attempt in transaction @t: 1 if the directory is gone (nothing to
 * answer), else 0 or -errno naming the key that failed in @ret_key.  The
 * caller ends @t: a failed write must not be committed without the state.
 */
static int disc_tx_write_state(struct xs_handle *xsh, xs_transaction_t t, const char *dir,
			       const char *val, const char *error, const char **ret_key)
{
	char path[160];
	unsigned int len;
	char *cur;

	snprintf(path, sizeof(path), "%s/state", dir);
	cur = xs_read(xsh, t, path, &len);
	if (!cur)
		return 1;
	free(cur);
	if (error) {
		snprintf(path, sizeof(path), "%s/error", dir);
		*ret_key = "error";
		if (!xs_write(xsh, t, path, error, (unsigned int)strlen(error)))
			return -errno;
	}
	snprintf(path, sizeof(path), "%s/state", dir);
	*ret_key = "state";
	if (!xs_write(xsh, t, path, val, (unsigned int)strlen(val)))
		return -errno;
	return 0;
}

/*
 * Write @state (and @error, if any) into the device directory, in one
 * transaction and only while the directory exists: xs_write() would otherwise
 * re-create a directory libxl has just removed.  A failure is logged.
 */
static void disc_write_state(struct disc *disc, unsigned int domid, unsigned int devid,
			     enum disc_state state, const char *error)
{
	struct xs_handle *xsh = xsw_handle(disc->xsw);
	const char *key = "transaction";
	char dir[128], val[4];
	int i, r = -EAGAIN;

	snprintf(dir, sizeof(dir), "%s/%u/%u", disc->base, domid, devid);
	snprintf(val, sizeof(val), "%d", (int)state);
	for (i = 0; i < DISC_TXN_RETRIES && r == -EAGAIN; i++) {
		xs_transaction_t t = xs_transaction_start(xsh);

		if (t == XBT_NULL) {
			r = -errno;
			key = "transaction";
			break;
		}
		r = disc_tx_write_state(xsh, t, dir, val, error, &key);
		if (r != 0) {
			xs_transaction_end(xsh, t, true);
			if (r > 0)
				return;	/* gone: nothing to answer */
			break;
		}
		key = "transaction";
		if (xs_transaction_end(xsh, t, false))
			return;
		r = -errno;
	}
	log_err("dom %u disk %u: cannot write state %d to xenstore (%s): %s", domid, devid,
		(int)state, key, strerror(-r));
}

struct disc_snapshot {
	struct xs_handle *xsh;
	xs_transaction_t t;
	const char *dir;
	char *vals[24];
	unsigned int n;
};

static const char *disc_snapshot_get(void *ctx, const char *key)
{
	struct disc_snapshot *s = ctx;
	char path[192];
	unsigned int len;
	char *v;

	if (s->n == ARRAY_SIZE(s->vals))
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", s->dir, key);
	v = xs_read(s->xsh, s->t, path, &len);
	if (v) {
		/* A value with an embedded NUL is cut there: what follows cannot be meant. */
		s->vals[s->n++] = v;
	}
	return v;
}

static void disc_snapshot_release(struct disc_snapshot *s)
{
	while (s->n)
		free(s->vals[--s->n]);
}

static void disc_fail(struct disc *disc, unsigned int domid, unsigned int devid, const char *what)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "vblkd: %s", what);
	disc_write_state(disc, domid, devid, DISC_STATE_CLOSED, msg);
}

static void disc_try_add(struct disc *disc, unsigned int domid, unsigned int devid, int state)
{
	struct xs_handle *xsh = xsw_handle(disc->xsw);
	struct disc_snapshot snap = { .xsh = xsh };
	struct disk_cfg_error err = { 0 };
	struct disk_cfg cfg;
	struct disc_dev *dev;
	const char *why = NULL;
	char dir[128], what[200];
	const char *fe;
	int r;

	snprintf(dir, sizeof(dir), "%s/%u/%u", disc->base, domid, devid);
	snap.dir = dir;

	/*
	 * libxl writes the whole directory in one transaction, so the keys are
	 * all there once "state" is; read them as one snapshot too.
	 */
	snap.t = xs_transaction_start(xsh);
	if (snap.t == XBT_NULL) {
		log_err("dom %u disk %u: xenstore transaction failed: %m", domid, devid);
		return;
	}
	r = disk_cfg_parse(domid, devid, disc_snapshot_get, &snap, &cfg, &err);
	fe = r == 0 ? disc_snapshot_get(&snap, "frontend-id") : NULL;
	if (r == 0 && fe) {
		char want[16];

		snprintf(want, sizeof(want), "%u", domid);
		if (strcmp(fe, want)) {
			err.key = "frontend-id";
			snprintf(err.value, sizeof(err.value), "%s", fe);
			err.reason = "does not match the domain id in the path";
			disk_cfg_clear(&cfg);
			r = -EINVAL;
		}
	}
	xs_transaction_end(xsh, snap.t, true);
	disc_snapshot_release(&snap);

	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		if (r == 0)
			disk_cfg_clear(&cfg);
		log_err("dom %u disk %u: out of memory", domid, devid);
		return;
	}
	dev->domid = domid;
	dev->devid = devid;
	dev->phase = DISC_PHASE_DONE;
	slist_push(&disc->devs, dev, next);

	if (r == -ENOMEM) {
		log_err("dom %u disk %u: out of memory reading its configuration", domid, devid);
		return;
	}
	if (r < 0) {
		snprintf(what, sizeof(what), "%s '%s': %s", err.key, err.value, err.reason);
		log_err("dom %u disk %u: %s; the disk is not served: fix the disk line in the "
			"guest's configuration", domid, devid, what);
		disc_fail(disc, domid, devid, what);
		return;
	}

	r = disc->ops->disk_add(disc->data, &cfg, (enum disc_state)state, &why);
	if (r < 0) {
		/* The owner logged the details; xenstore gets a short reason for xl users. */
		snprintf(what, sizeof(what), "%s", why ? why : strerror(-r));
		disc_fail(disc, domid, devid, what);
	} else {
		dev->phase = DISC_PHASE_ACTIVE;
		disc_write_state(disc, domid, devid, DISC_STATE_INIT_WAIT, NULL);
	}
	disk_cfg_clear(&cfg);
}

static void disc_close(struct disc *disc, struct disc_dev *dev)
{
	int r;

	dev->phase = DISC_PHASE_CLOSING;
	r = disc->ops->disk_close(disc->data, dev->domid, dev->devid);
	/* disc_closed() may already have run from inside disk_close(). */
	if (r == 0 && dev->phase == DISC_PHASE_CLOSING) {
		dev->phase = DISC_PHASE_DONE;
		disc_write_state(disc, dev->domid, dev->devid, DISC_STATE_CLOSED, NULL);
	}
}

static void disc_check_dev(struct disc *disc, unsigned int domid, unsigned int devid)
{
	struct disc_dev *dev = disc_find(disc, domid, devid);
	char path[160];
	uint64_t state = 0;
	char *s;

	snprintf(path, sizeof(path), "%s/%u/%u/state", disc->base, domid, devid);
	s = xsw_read(disc->xsw, path);
	if (!s) {
		/* No state: the directory is gone (or not written yet, then dev is NULL). */
		if (dev) {
			if (dev->phase != DISC_PHASE_DONE)
				disc->ops->disk_gone(disc->data, domid, devid);
			/* disk_gone() may not call back into us, so dev is still valid. */
			disc_forget(disc, dev);
		}
		return;
	}
	if (disk_cfg_parse_u64(s, &state) < 0 || state > 8) {
		log_warn("dom %u disk %u: state '%.16s' is not a XenbusState; ignored", domid, devid, s);
		free(s);
		return;
	}
	free(s);

	if (!dev) {
		if (state == DISC_STATE_INITIALISING || state == DISC_STATE_INIT_WAIT)
			disc_try_add(disc, domid, devid, (int)state);
		else if (state == DISC_STATE_CLOSING)
			disc_write_state(disc, domid, devid, DISC_STATE_CLOSED, NULL);
		return;
	}
	switch (dev->phase) {
	case DISC_PHASE_ACTIVE:
		if (state == DISC_STATE_CLOSING || state == DISC_STATE_CLOSED)
			disc_close(disc, dev);
		break;
	case DISC_PHASE_CLOSING:
		break;
	case DISC_PHASE_DONE:
		/* Not served (failed, or closed already): answer another Closing at once. */
		if (state == DISC_STATE_CLOSING)
			disc_write_state(disc, domid, devid, DISC_STATE_CLOSED, NULL);
		break;
	}
}

/* Check every device of @domid, and forget the known ones whose directory went away. */
static void disc_scan_domain(struct disc *disc, unsigned int domid)
{
	struct disc_dev *d, *next;
	char path[128];
	unsigned int n = 0, i;
	char **ents;

	snprintf(path, sizeof(path), "%s/%u", disc->base, domid);
	ents = xs_directory(xsw_handle(disc->xsw), XBT_NULL, path, &n);
	for (i = 0; ents && i < n; i++) {
		const char *p = ents[i];
		unsigned int devid;

		if (disc_parse_id(&p, UINT32_MAX, &devid) == 0 && *p == '\0')
			disc_check_dev(disc, domid, devid);
	}
	free(ents);
	for (d = disc->devs; d; d = next) {
		next = d->next;
		if (d->domid == domid)
			disc_check_dev(disc, d->domid, d->devid);
	}
}

static void disc_scan_all(struct disc *disc)
{
	struct disc_dev *d, *next;
	unsigned int n = 0, i;
	char **ents;

	ents = xs_directory(xsw_handle(disc->xsw), XBT_NULL, disc->base, &n);
	for (i = 0; ents && i < n; i++) {
		const char *p = ents[i];
		unsigned int domid;

		if (disc_parse_id(&p, DISC_DOMID_LIMIT, &domid) == 0 && *p == '\0')
			disc_scan_domain(disc, domid);
	}
	free(ents);
	for (d = disc->devs; d; d = next) {
		next = d->next;
		disc_check_dev(disc, d->domid, d->devid);
	}
}

static void disc_watch_fired(struct xsw_watch *watch, const char *path, void *data)
{
	struct disc *disc = data;
	const char *p;
	unsigned int domid, devid;

	if (strncmp(path, disc->base, disc->base_len))
		return;
	p = path + disc->base_len;
	if (*p == '\0') {
		disc_scan_all(disc);
		return;
	}
	if (*p++ != '/' || disc_parse_id(&p, DISC_DOMID_LIMIT, &domid) < 0)
		return;
	if (*p == '\0') {
		disc_scan_domain(disc, domid);
		return;
	}
	p++;
	if (disc_parse_id(&p, UINT32_MAX, &devid) < 0)
		return;
	disc_check_dev(disc, domid, devid);
}

int disc_new(struct xsw *xsw, unsigned int backend_domid, const struct disc_ops *ops, void *data,
	     struct disc **ret_disc)
{
	struct disc *disc;
	int r;

	disc = calloc(1, sizeof(*disc));
	if (!disc)
		return -ENOMEM;
	disc->xsw = xsw;
	disc->ops = ops;
	disc->data = data;
	if (asprintf(&disc->base, "/local/domain/%u/backend/virtio_disk", backend_domid) < 0) {
		free(disc);
		return -ENOMEM;
	}
	disc->base_len = strlen(disc->base);
	/* The watch fires once at once: that event scans what exists already. */
	r = xsw_watch(xsw, disc->base, disc_watch_fired, disc, &disc->watch);
	if (r < 0) {
		free(disc->base);
		free(disc);
		return r;
	}
	*ret_disc = disc;
	return 0;
}

void disc_scan(struct disc *disc)
{
	disc_scan_all(disc);
}

void disc_free(struct disc *disc)
{
	if (!disc)
		return;
	xsw_unwatch(disc->watch);
	while (disc->devs)
		disc_forget(disc, disc->devs);
	free(disc->base);
	free(disc);
}

void disc_closed(struct disc *disc, unsigned int domid, unsigned int devid)
{
	struct disc_dev *dev = disc_find(disc, domid, devid);

	if (!dev || dev->phase != DISC_PHASE_CLOSING)
		return;
	dev->phase = DISC_PHASE_DONE;
	disc_write_state(disc, domid, devid, DISC_STATE_CLOSED, NULL);
}


void disc_released(struct disc *disc, unsigned int domid, unsigned int devid)
{
	struct disc_dev *dev = disc_find(disc, domid, devid);

	if (!dev || dev->phase == DISC_PHASE_DONE)
		return;
	dev->phase = DISC_PHASE_DONE;
	disc_write_state(disc, domid, devid, DISC_STATE_CLOSED, NULL);
}
