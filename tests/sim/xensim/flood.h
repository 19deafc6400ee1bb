/* SPDX-License-Identifier: GPL-2.0-only */
/* The flood workload: legal requests that cost the guest little and the backend much (issue 16). */
#ifndef XENSIM_FLOOD_H
#define XENSIM_FLOOD_H

#include "gdrv.h"

enum flood_attack {
	FLOOD_IN_JUNK,		/* IN headers followed by 254 readable 16 MiB buffers, one table */
	FLOOD_FLUSH_JUNK,	/* the same with FLUSH headers */
	FLOOD_SPREAD,		/* writes of seg_max x size_max bytes spread over all guest RAM */
	FLOOD_BIGSEG,		/* one read into a single segment larger than size_max */
	FLOOD_ALL,		/* every attack above, in this order */
};

struct flood_spec {
	enum flood_attack attack;
	unsigned int heads;	/* requests offered at once; 0: the attack's default */
	unsigned int seconds;	/* attack again until this many seconds have passed; 0: once */
};

/* The attack called @name ("in-junk", "flush-junk", "spread", "bigseg", "all"): 0 or -EINVAL. */
int flood_attack_parse(const char *name, enum flood_attack *ret);

/*
 * Run @spec's attacks on vCPU @v against @d (set up by gdrv_dev_init()),
 * each after a reset and set-up with the attack's features, each followed
 * by a reset, a normal set-up and a write and read that must work.  One
 * report line per attack in @notes.  0, or -EIO (bad data after status OK,
 * a device that does not work after a reset), -ETIMEDOUT (no used entry and
 * no DEVICE_NEEDS_RESET within --timeout), -ESRCH (domain died); the cause
 * is in the vCPU's error.
 */
int flood_run(struct gdrv_guest *g, struct gdrv_vcpu *v, struct gdrv_dev *d,
	      const struct flood_spec *spec, struct sbuf *notes);

#endif
