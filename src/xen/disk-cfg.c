// SPDX-License-Identifier: GPL-2.0-only
/* Parse and validate a virtio_disk backend directory written by libxl; every value is untrusted. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The virtio-mmio layout constants live in the Arm public header; include it
 * alone (xen/xen.h would pull in the host architecture's definitions too).
 */
#define __XEN_TOOLS__ 1
#define xen_mk_ullong(x) (x##ULL)
#include <xen/arch-arm.h>

#include "disk-cfg.h"

const uint64_t disk_cfg_mmio_window_base = GUEST_VIRTIO_MMIO_BASE;
const uint64_t disk_cfg_mmio_window_size = GUEST_VIRTIO_MMIO_SIZE;
const unsigned int disk_cfg_irq_first = GUEST_VIRTIO_MMIO_SPI_FIRST;
const unsigned int disk_cfg_irq_last = GUEST_VIRTIO_MMIO_SPI_LAST;

int disk_cfg_parse_u64(const char *s, uint64_t *ret_value)
{
	uint64_t v = 0;
	unsigned int base = 10, d;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
		if (!*p)
			return -EINVAL;
	}
	for (; *p; p++) {
		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned int)(*p - 'A' + 10);
		else
			return -EINVAL;
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	*ret_value = v;
	return 0;
}

static int disk_cfg_fail(struct disk_cfg_error *err, const char *key, const char *value,
			 const char *reason)
{
	err->key = key;
	snprintf(err->value, sizeof(err->value), "%s", value ? value : "");
	err->reason = reason;
	return -EINVAL;
}

/* "0" or "1"; absent gives @def. */
static int disk_cfg_bool(disk_cfg_get_fn get, void *ctx, const char *key, bool def, bool *ret,
			 struct disk_cfg_error *err)
{
	const char *v = get(ctx, key);

	if (!v) {
		*ret = def;
		return 0;
	}
	if (!strcmp(v, "0") || !strcmp(v, "1")) {
		*ret = v[0] == '1';
		return 0;
	}
	return disk_cfg_fail(err, key, v, "expected 0 or 1");
}

/*
 * libxl writes a bare path; other toolstacks prefix a format ("raw:/x.img").
 * Only raw images can be served.
 */
static int disk_cfg_path(const char *params, char **ret_path, struct disk_cfg_error *err)
{
	const char *colon, *path = params;
	char *copy;

	if (!params)
		return disk_cfg_fail(err, "params", NULL, "missing: the disk has no backing file");
	colon = strchr(params, ':');
	if (colon && params[0] != '/') {
		size_t n = (size_t)(colon - params);

		if (!((n == 3 && !strncmp(params, "raw", 3)) || (n == 3 && !strncmp(params, "aio", 3)) ||
		      (n == 4 && !strncmp(params, "file", 4))))
			return disk_cfg_fail(err, "params", params,
					     "unsupported format prefix (only raw images are served)");
		path = colon + 1;
	}
	if (!*path)
		return disk_cfg_fail(err, "params", params, "empty path");
	if (path[0] != '/')
		return disk_cfg_fail(err, "params", params, "not an absolute path");
	if (strlen(path) >= PATH_MAX)
		return disk_cfg_fail(err, "params", params, "path too long");
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	*ret_path = copy;
	return 0;
}

static int disk_cfg_base(const char *v, uint64_t *ret, struct disk_cfg_error *err)
{
	uint64_t base, end = disk_cfg_mmio_window_base + disk_cfg_mmio_window_size;
	int r;

	if (!v)
		return disk_cfg_fail(err, "base", NULL, "missing");
	r = disk_cfg_parse_u64(v, &base);
	if (r == -ERANGE)
		return disk_cfg_fail(err, "base", v, "number too large");
	if (r < 0)
		return disk_cfg_fail(err, "base", v, "not a decimal or 0x-hexadecimal number");
	if (base % DISK_CFG_MMIO_SIZE)
		return disk_cfg_fail(err, "base", v, "not aligned to 0x200");
	/* The whole register window must lie inside Xen's virtio-mmio window. */
	if (base < disk_cfg_mmio_window_base || base > end - DISK_CFG_MMIO_SIZE)
		return disk_cfg_fail(err, "base", v,
				     "outside the guest virtio-mmio window 0x2000000-0x20fffff");
	*ret = base;
	return 0;
}

static int disk_cfg_irq(const char *v, unsigned int *ret, struct disk_cfg_error *err)
{
	uint64_t irq;

	if (!v)
		return disk_cfg_fail(err, "irq", NULL, "missing");
	if (disk_cfg_parse_u64(v, &irq) < 0)
		return disk_cfg_fail(err, "irq", v, "not a number");
	if (irq < disk_cfg_irq_first || irq > disk_cfg_irq_last)
		return disk_cfg_fail(err, "irq", v, "outside the virtio SPI range 33..43");
	*ret = (unsigned int)irq;
	return 0;
}

int disk_cfg_parse(unsigned int domid, unsigned int devid, disk_cfg_get_fn get, void *ctx,
		   struct disk_cfg *ret_cfg, struct disk_cfg_error *ret_err)
{
	struct disk_cfg cfg = { .domid = domid, .devid = devid };
	const char *v;
	int r;

	r = disk_cfg_path(get(ctx, "params"), &cfg.path, ret_err);
	if (r < 0)
		goto err;

	v = get(ctx, "mode");
	if (!v) {
		r = disk_cfg_fail(ret_err, "mode", NULL, "missing (expected r or w)");
		goto err;
	}
	if (strcmp(v, "r") && strcmp(v, "w")) {
		r = disk_cfg_fail(ret_err, "mode", v, "expected r or w");
		goto err;
	}
	cfg.read_only = v[0] == 'r';

	v = get(ctx, "device-type");
	if (v && strcmp(v, "disk") && strcmp(v, "cdrom")) {
		r = disk_cfg_fail(ret_err, "device-type", v, "expected disk or cdrom");
		goto err;
	}
	cfg.cdrom = v && !strcmp(v, "cdrom");
	if (cfg.cdrom)
		cfg.read_only = true;

	r = disk_cfg_bool(get, ctx, "discard-enable", true, &cfg.discard, ret_err);
	if (r < 0)
		goto err;
	r = disk_cfg_bool(get, ctx, "direct-io-safe", false, &cfg.direct_io_safe, ret_err);
	if (r < 0)
		goto err;
	r = disk_cfg_bool(get, ctx, "grant_usage", false, &cfg.grants, ret_err);
	if (r < 0)
		goto err;
	r = disk_cfg_base(get(ctx, "base"), &cfg.base, ret_err);
	if (r < 0)
		goto err;
	r = disk_cfg_irq(get(ctx, "irq"), &cfg.irq, ret_err);
	if (r < 0)
		goto err;

	v = get(ctx, "dev");
	if (v) {
		cfg.vdev = strndup(v, 32);
		if (!cfg.vdev) {
			r = -ENOMEM;
			goto err;
		}
	}
	*ret_cfg = cfg;
	return 0;

err:
	disk_cfg_clear(&cfg);
	return r;
}

void disk_cfg_clear(struct disk_cfg *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->vdev);
	cfg->path = NULL;
	cfg->vdev = NULL;
}


int disk_cfg_clash(uint64_t base, unsigned int irq, uint64_t other_base, unsigned int other_irq)
{
	/* The distance between the bases, so that no end address can overflow. */
	uint64_t gap = base >= other_base ? base - other_base : other_base - base;

	/*
	 * libxl gives each device its own window and SPI (from 33 upwards), so
	 * either clash is a mistake in hand-written keys, most likely a copied
	 * directory.  It is refused here, naming the disk it clashes with,
	 * rather than found out by the guest: an overlapping window hides one
	 * device's registers behind the other's, and a shared SPI works only with
	 * drivers that all ask for a shared interrupt.
	 */
	if (gap < DISK_CFG_MMIO_SIZE)
		return -EADDRINUSE;
	if (irq == other_irq)
		return -EBUSY;
	return 0;
}
