// SPDX-License-Identifier: GPL-2.0-only
/* The daemon's shared-image policy: one backing file under several disks (--allow-shared). */
#include <errno.h>
#include <stdio.h>

#include "blk.h"
#include "daemon-internal.h"
#include "log.h"

/*
 * One backing file under two disks, at least one of them writable: each guest
 * caches the disk as its own, so their writes corrupt each other's file
 * systems (and a file written both with and without O_DIRECT makes the kernel
 * fail later flushes with EIO).  Refused, as Xen's block hotplug script
 * refuses a device another domain uses, unless --allow-shared (cluster file
 * systems): then only warned about.  Disks being closed do not count: a
 * rebooting guest's new disk may come before its old one is gone.
 */
int daemon_shared_check(struct daemon *d, const struct ddisk *k, const char **ret_why)
{
	const struct blk_info *ki = blk_get_info(k->lanes[0].blk);
	bool k_ro = daemon_disk_info(k).read_only;
	const struct dguest *g;
	const struct ddisk *o;

	for (g = d->guests; g; g = g->next)
		for (o = g->disks; o; o = o->next) {
			const struct blk_info *oi = blk_get_info(o->lanes[0].blk);

			/* @k is not on a guest's list yet. */
			if (o->state != DDISK_SERVING || oi->st_dev != ki->st_dev ||
			    oi->st_ino != ki->st_ino)
				continue;
			if (k_ro && daemon_disk_info(o).read_only)
				continue;
			if (d->opts.allow_shared) {
				log_warn("%s: '%s' is also the backing file of %s, and one of them "
					 "writes it: the guests can corrupt each other's data%s",
					 k->name, k->path, o->name, ki->direct != oi->direct ?
					 "; written with and without O_DIRECT, its flushes may also fail" :
					 "");
				return 0;
			}
			log_err("%s: '%s' is already the backing file of %s, and one of them would "
				"write it: not served, the guests would corrupt each other's data "
				"(--allow-shared serves it, for cluster file systems)", k->name,
				k->path, o->name);
			snprintf(d->why, sizeof(d->why), "backing file in use by %s", o->name);
			*ret_why = d->why;
			return -EBUSY;
		}
	return 0;
}
