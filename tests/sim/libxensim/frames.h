/* SPDX-License-Identifier: GPL-2.0-only */
/* Internal to libxensim: map guest frames of a RAM memfd into a reserved range. */
#ifndef XENSIM_FRAMES_H
#define XENSIM_FRAMES_H

#include <stddef.h>
#include <stdint.h>

/* MAP_FIXED each frame i (errs[i] == 0, or errs NULL) of @fd at base + i pages; 0 or -errno. */
int xsim_map_frames(uint8_t *base, int prot, int fd, uint64_t ram_base_gfn, const uint64_t *gfns,
		    const int *errs, size_t n);

#endif
