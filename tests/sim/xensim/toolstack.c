// SPDX-License-Identifier: GPL-2.0-only
/* The simulated toolstack: guest specs; xl create / destroy with libxl's nodes and handshake. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sim.h"


static int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (end == s || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

/*
 * SPEC: comma-separated name=X, vcpus=N, mem=SIZE[KMG], backend=DOMID,
 * packed, noevent (no EVENT_IDX), disk=PATH[:ro|:rw][:discard][:grants] (repeatable);
 * for tests of the daemon's validation also :base=N :irq=N :devid=N :hexbase :dio
 * :params=VALUE :omit=KEY (a backend key left out).
 */
int toolstack_parse_guest(const char *spec, struct guest_config *ret_cfg, char *err, size_t errlen)
{
	struct guest_config c;
	char *copy, *tok, *save = NULL;
	int r = 0;

	memset(&c, 0, sizeof(c));
	c.vcpus = 1;
	c.mem = 64ull << 20;
	snprintf(c.name, sizeof(c.name), "guest");
	copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ", \t\n", &save); tok; tok = strtok_r(NULL, ", \t\n", &save)) {
		char *eq = strchr(tok, '=');
		char *val = eq ? eq + 1 : NULL;
		uint64_t v;

		if (eq)
			*eq = '\0';
		if (!strcmp(tok, "name") && val) {
			snprintf(c.name, sizeof(c.name), "%s", val);
		} else if (!strcmp(tok, "vcpus") && val) {
			if (parse_size(val, &v) < 0 || !v || v > XSIM_MAX_VCPUS)
				goto bad;
			c.vcpus = (unsigned int)v;
		} else if (!strcmp(tok, "mem") && val) {
			if (parse_size(val, &v) < 0 || v < (1u << 20) || v > XSIM_GUEST_RAM_MAX ||
			    (v & (XSIM_PAGE_SIZE - 1)))
				goto bad;
			c.mem = v;
		} else if (!strcmp(tok, "backend") && val) {
			if (parse_size(val, &v) < 0 || v > 0x7fef)
				goto bad;
			c.backend = (uint32_t)v;
		} else if (!strcmp(tok, "packed") && !val) {
			c.packed = true;
		} else if (!strcmp(tok, "noevent") && !val) {
			c.no_event_idx = true;
		} else if (!strcmp(tok, "disk") && val) {
			struct disk_config *d;
			char *opt, *save2 = NULL, *colon;
			unsigned int i = c.ndisks;

			if (i == SIM_MAX_DISKS || !*val)
				goto bad;
			d = &c.disks[i];
			colon = strchr(val, ':');
			if (colon)
				*colon = '\0';
			snprintf(d->path, sizeof(d->path), "%s", val);
			for (opt = colon ? strtok_r(colon + 1, ":", &save2) : NULL; opt;
			     opt = strtok_r(NULL, ":", &save2)) {
				if (!strcmp(opt, "ro"))
					d->readonly = true;
				else if (!strcmp(opt, "rw"))
					d->readonly = false;
				else if (!strcmp(opt, "discard"))
					d->discard = true;
				else if (!strcmp(opt, "grants"))
					d->grants = true;
				else if (!strcmp(opt, "hexbase"))
					d->hexbase = true;
				else if (!strcmp(opt, "dio"))
					d->dio = true;
				else if (!strncmp(opt, "base=", 5) && parse_size(opt + 5, &v) == 0)
					d->base = v, d->base_set = true;
				else if (!strncmp(opt, "irq=", 4) && parse_size(opt + 4, &v) == 0)
					d->irq = (unsigned int)v, d->irq_set = true;
				else if (!strncmp(opt, "devid=", 6) && parse_size(opt + 6, &v) == 0)
					d->devid = (uint32_t)v, d->devid_set = true;
				else if (!strncmp(opt, "params=", 7)) {
					d->params_set = true;
					snprintf(d->params, sizeof(d->params), "%s", opt + 7);
				} else if (!strncmp(opt, "omit=", 5) && d->nomit < 4)
					snprintf(d->omit[d->nomit++], sizeof(d->omit[0]), "%s",
						 opt + 5);
				else {
					snprintf(err, errlen, "unknown disk option '%s'", opt);
					r = -EINVAL;
					goto out;
				}
			}
			/* xvda, xvdb, ...: devid 202 << 8 | index << 4, as libxl derives it. */
			snprintf(d->vdev, sizeof(d->vdev), "xvd%c", 'a' + i);
			if (!d->devid_set)
				d->devid = (202u << 8) | (i << 4);
			if (!d->base_set)
				d->base = XSIM_VIRTIO_MMIO_BASE + i * XSIM_VIRTIO_MMIO_DEV_SIZE;
			if (!d->irq_set)
				d->irq = XSIM_VIRTIO_SPI_FIRST + i;
			c.ndisks++;
		} else {
			goto bad;
		}
		continue;
bad:
		snprintf(err, errlen, "bad guest option '%s%s%s'", tok, val ? "=" : "",
			 val ? val : "");
		r = -EINVAL;
		goto out;
	}
	*ret_cfg = c;
out:
	free(copy);
	return r;
}

static void be_path(char *buf, size_t n, uint32_t be, uint32_t domid, const struct disk_config *d)
{
	snprintf(buf, n, "/local/domain/%u/backend/virtio_disk/%u/%u", be, domid, d->devid);
}

static void fe_path(char *buf, size_t n, uint32_t domid, const struct disk_config *d)
{
	snprintf(buf, n, "/local/domain/%u/device/virtio_disk/%u", domid, d->devid);
}

static void set_perms(const char *path, uint32_t owner, uint32_t reader)
{
	struct xsim_perm p[2] = {
		{ .id = owner, .perms = 0 /* XS_PERM_NONE for others */ },
		{ .id = reader, .perms = 1 /* XS_PERM_READ */ },
	};

	store_set_perms(0, NULL, path, p, 2);
}

static bool omitted(const struct disk_config *d, const char *key)
{
	unsigned int i;

	for (i = 0; i < d->nomit; i++)
		if (!strcmp(d->omit[i], key))
			return true;
	return false;
}

/* The nodes libxl writes for a virtio_disk (libxl_disk.c, device_disk_add; see xen-notes.md). */
static void write_disk_nodes(const struct sim_domain *dom, const struct disk_config *d)
{
	uint32_t be = dom->cfg.backend, domid = dom->domid;
	char bp[256], fp[256], k[320];

	be_path(bp, sizeof(bp), be, domid, d);
	fe_path(fp, sizeof(fp), domid, d);
	store_mkdir(0, NULL, bp);
	set_perms(bp, be, domid);
	store_mkdir(0, NULL, fp);
	set_perms(fp, domid, be);
#define BE(key, ...)                                                                   \
	(omitted(d, key) ? 0                                                           \
			 : (snprintf(k, sizeof(k), "%s/" key, bp), store_writef(k, __VA_ARGS__)))
#define FE(key, ...) (snprintf(k, sizeof(k), "%s/" key, fp), store_writef(k, __VA_ARGS__))
	BE("frontend", "%s", fp);
	BE("frontend-id", "%u", domid);
	BE("params", "%s", d->params_set ? d->params : d->path);
	BE("online", "1");
	BE("removable", "0");
	BE("bootable", "1");
	BE("dev", "%s", d->vdev);
	BE("type", "standalone");
	BE("mode", "%s", d->readonly ? "r" : "w");
	BE("device-type", "disk");
	BE("discard-enable", "%d", d->discard ? 1 : 0);
	BE("specification", "virtio");
	BE("transport", "mmio");
	if (d->hexbase)
		BE("base", "0x%llx", (unsigned long long)d->base);
	else
		BE("base", "%llu", (unsigned long long)d->base);
	if (d->dio)
		BE("direct-io-safe", "1");
	BE("irq", "%u", d->irq);
	BE("grant_usage", "%d", d->grants ? 1 : 0);
	BE("state", "1");
	FE("backend", "%s", bp);
	FE("backend-id", "%u", be);
	FE("virtual-device", "%u", d->devid);
	FE("device-type", "disk");
	FE("trusted", "1");
	FE("state", "1");
#undef BE
#undef FE
}

static void remove_nodes(const struct sim_domain *dom)
{
	char p[256];
	unsigned int i;

	for (i = 0; i < dom->cfg.ndisks; i++) {
		be_path(p, sizeof(p), dom->cfg.backend, dom->domid, &dom->cfg.disks[i]);
		store_rm(0, NULL, p);
	}
	snprintf(p, sizeof(p), "/local/domain/%u/backend/virtio_disk/%u", dom->cfg.backend,
		 dom->domid);
	store_rm(0, NULL, p);
	snprintf(p, sizeof(p), "/local/domain/%u", dom->domid);
	store_rm(0, NULL, p);
	snprintf(p, sizeof(p), "/vm/%u", dom->domid);
	store_rm(0, NULL, p);
}

/* Wait (sim_lock held) until every disk's backend state is @want; returns the disk that did not. */
static int wait_states(const struct sim_domain *dom, const char *want, bool gone_ok,
		       uint64_t start, uint64_t *ret_wait_us)
{
	/* libxl: LIBXL_INIT_TIMEOUT / LIBXL_DESTROY_TIMEOUT, both 10 s. */
	uint64_t deadline = start + (uint64_t)sim_libxl_timeout_ms * 1000;
	char p[300];
	unsigned int i;

	for (;;) {
		int pending = -1;

		for (i = 0; i < dom->cfg.ndisks; i++) {
			be_path(p, sizeof(p) - 8, dom->cfg.backend, dom->domid, &dom->cfg.disks[i]);
			strcat(p, "/state");
			if (store_equals(p, want) || (gone_ok && !store_exists(p)))
				continue;
			pending = (int)i;
			/* libxl's devstate wait fails at once when the node is removed. */
			if (!gone_ok && !store_exists(p)) {
				*ret_wait_us = sim_now_us() - start;
				return pending;
			}
			break;
		}
		if (pending < 0 || dom->dying) {
			*ret_wait_us = sim_now_us() - start;
			return pending < 0 ? -1 : pending;
		}
		if (sim_now_us() >= deadline) {
			*ret_wait_us = sim_now_us() - start;
			return pending;
		}
		sim_cond_wait_until(deadline);
	}
}

int toolstack_create(const struct guest_config *cfg, unsigned int flags, uint32_t *ret_domid,
		     uint64_t *ret_wait_us, struct sbuf *log)
{
	struct sim_domain *dom;
	uint64_t start, wait = 0;
	char p[256];
	unsigned int i;
	int r, bad;

	pthread_mutex_lock(&sim_lock);
	r = hv_domain_create(cfg, &dom);
	if (r < 0) {
		pthread_mutex_unlock(&sim_lock);
		sbuf_printf(log, "create '%s': %s\n", cfg->name, strerror(-r));
		return r;
	}
	snprintf(p, sizeof(p), "/local/domain/%u/name", dom->domid);
	store_writef(p, "%s", cfg->name);
	snprintf(p, sizeof(p), "/local/domain/%u/domid", dom->domid);
	store_writef(p, "%u", dom->domid);
	snprintf(p, sizeof(p), "/vm/%u/name", dom->domid);
	store_writef(p, "%s", cfg->name);
	store_fire_special("@introduceDomain");
	for (i = 0; i < cfg->ndisks; i++)
		write_disk_nodes(dom, &cfg->disks[i]);
	start = sim_now_us();
	if (!(flags & XSIM_CREATE_NO_WAIT) && cfg->ndisks) {
		bad = wait_states(dom, "2", false, start, &wait);
		if (bad >= 0) {
			char sp[300], *v = NULL;
			uint32_t len;

			be_path(sp, sizeof(sp) - 8, cfg->backend, dom->domid, &cfg->disks[bad]);
			strcat(sp, "/state");
			if (store_read(0, NULL, sp, &v, &len) < 0)
				v = NULL;
			sbuf_printf(log,
				    "dom %u disk %u: backend did not reach InitWait (2) within %u ms (state %s); destroying the domain as libxl does\n",
				    dom->domid, cfg->disks[bad].devid, sim_libxl_timeout_ms, v ? v : "absent");
			free(v);
			hv_domain_kill(dom);
			remove_nodes(dom);
			store_fire_special("@releaseDomain");
			pthread_mutex_unlock(&sim_lock);
			hv_domain_put(dom);
			if (ret_wait_us)
				*ret_wait_us = wait;
			return -ETIMEDOUT;
		}
		sbuf_printf(log, "dom %u (%s): backend reached InitWait after %llu.%03llu ms\n",
			    dom->domid, cfg->name, (unsigned long long)(wait / 1000),
			    (unsigned long long)(wait % 1000));
	}
	*ret_domid = dom->domid;
	if (ret_wait_us)
		*ret_wait_us = wait;
	pthread_mutex_unlock(&sim_lock);
	return 0;
}

int toolstack_destroy(uint32_t domid, bool graceful, uint64_t *ret_wait_us, struct sbuf *log)
{
	struct sim_domain *dom;
	uint64_t wait = 0, start;
	char p[300];
	unsigned int i;
	int r = 0, bad;

	pthread_mutex_lock(&sim_lock);
	dom = hv_domain_find(domid);
	if (!dom) {
		pthread_mutex_unlock(&sim_lock);
		return -ESRCH;
	}
	if (dom->destroying) {
		pthread_mutex_unlock(&sim_lock);
		return -EBUSY;
	}
	dom->destroying = true;
	if (graceful) {
		/*
		 * xl destroy: pause, then each device: online=0, state=5 unless
		 * the backend is Closed already (libxl leaves 6 alone), wait for 6.
		 */
		dom->paused = true;
		for (i = 0; i < dom->cfg.ndisks; i++) {
			be_path(p, sizeof(p) - 8, dom->cfg.backend, domid, &dom->cfg.disks[i]);
			strcat(p, "/online");
			store_writef(p, "0");
			be_path(p, sizeof(p) - 8, dom->cfg.backend, domid, &dom->cfg.disks[i]);
			strcat(p, "/state");
			if (!store_equals(p, "6"))
				store_writef(p, "5");
		}
		start = sim_now_us();
		bad = wait_states(dom, "6", true, start, &wait);
		if (bad >= 0) {
			sbuf_printf(log,
				    "dom %u disk %u: backend did not reach Closed (6) within %u ms of Closing\n",
				    domid, dom->cfg.disks[bad].devid, sim_libxl_timeout_ms);
			r = -ETIMEDOUT;
		} else {
			sbuf_printf(log, "dom %u: backend reached Closed after %llu.%03llu ms\n",
				    domid, (unsigned long long)(wait / 1000),
				    (unsigned long long)(wait % 1000));
		}
	}
	/* A crash or the end of xl destroy: the domain goes, then its nodes. */
	hv_domain_get(dom);
	hv_domain_kill(dom);
	remove_nodes(dom);
	store_fire_special("@releaseDomain");
	pthread_mutex_unlock(&sim_lock);
	hv_domain_put(dom);	/* our lookup reference */
	hv_domain_put(dom);	/* the domain's own reference */
	if (ret_wait_us)
		*ret_wait_us = wait;
	return r;
}
