// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: virtio-blk request parsing (§5.2.6), fuzzer-chosen type, sizes and layout. */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DESC 0x1000
#define AVAIL 0x1400
#define USED 0x1800
#define ITABLE 0x1c00
#define HDR 0x2000
#define WAREA 0x8000
#define NUM 64

static const uint32_t types[] = {
	VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
	VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_GET_LIFETIME,
	VIRTIO_BLK_T_SECURE_ERASE, 2, 99,
};

struct rd {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct rd *r, unsigned int bytes)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < bytes; i++) {
		v |= (uint64_t)(r->n ? *r->p : 0) << (8 * i);
		if (r->n) {
			r->p++;
			r->n--;
		}
	}
	return v;
}

/* Cut [gpa, gpa + len) into descriptors at fuzzer-chosen points. */
static unsigned int cut(struct rd *r, struct virtq_desc *d, unsigned int n, uint64_t gpa,
			uint32_t len, bool write, unsigned int pieces)
{
	uint32_t left = len;

	while (left > 0 && n < NUM - 1) {
		uint32_t l = left;

		if (pieces > 1) {
			l = 1 + (uint32_t)(take(r, 2) % left);
			pieces--;
		}
		d[n].addr = htole64(gpa);
		d[n].len = htole32(l);
		d[n].flags = htole16(VIRTQ_DESC_F_NEXT | (write ? VIRTQ_DESC_F_WRITE : 0));
		d[n].next = htole16((uint16_t)(n + 1));
		gpa += l;
		left -= l;
		n++;
	}
	return n;
}

/*
 * Input: type selector, flags, sector, data length, descriptor counts, cut
 * points, then the bytes of the header's reserved field and of the data
 * (discard segments).  The chain is always well-formed as a ring; the
 * request inside it need not be.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = { data, size };
	uint8_t tsel = (uint8_t)take(&r, 1), flags = (uint8_t)take(&r, 1);
	uint32_t type = tsel < 250 ? types[tsel % 10] : (uint32_t)take(&r, 4);
	uint64_t sector = take(&r, 8);
	uint32_t dlen = (uint32_t)(take(&r, 2) % 0x5000);
	unsigned int rpieces = 1 + (unsigned int)take(&r, 1) % 6;
	unsigned int wpieces = 1 + (unsigned int)take(&r, 1) % 6;
	bool data_out = type != VIRTIO_BLK_T_IN && type != VIRTIO_BLK_T_GET_ID;
	uint32_t rlen = 16 + (data_out ? dlen : 0), wlen = (data_out ? 0 : dlen) + 1;
	struct virtq_desc *table;
	uint16_t *avail;
	unsigned int n;
	struct fz *f;
	uint32_t t;
	uint8_t *st;

	if (flags & 1)
		sector %= 700;
	/* The type selector's spare bit: a transport that copies headers and status bytes (grants). */
	fz_copying = tsel < 250 && (tsel / 10) % 2;
	f = fz_new(2, 1, false);
	t = htole32(type);
	memcpy(f->ram + HDR, &t, 4);
	sector = htole64(sector);
	memcpy(f->ram + HDR + 8, &sector, 8);
	for (uint32_t i = 16; i < rlen && r.n; i++)
		f->ram[HDR + i] = (uint8_t)take(&r, 1);
	if (rlen > 4 && (flags & 2))
		rlen -= (uint32_t)(flags >> 5); /* headers and data a few bytes short */
	f->ram[WAREA + wlen - 1] = 0xff;
	if (!fz_handshake(f, (flags & 4) ? ~0ull & ~VIRTIO_BIT(VIRTIO_F_RING_PACKED) :
					    VIRTIO_BIT(VIRTIO_F_VERSION_1) |
						    VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
						    VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) |
						    VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC)))
		abort();
	fz_queue(f, 0, NUM, DESC, AVAIL, USED);
	fz_wr(f, 0x070, 15);

	table = (struct virtq_desc *)(f->ram + ((flags & 8) ? ITABLE : DESC));
	n = cut(&r, table, 0, HDR, rlen, false, rpieces);
	n = cut(&r, table, n, WAREA, wlen, true, wpieces);
	if (n == 0)
		abort();
	table[n - 1].flags &= htole16((uint16_t)~VIRTQ_DESC_F_NEXT);
	if (flags & 8) {
		struct virtq_desc *d = (struct virtq_desc *)(f->ram + DESC);

		d[0].addr = htole64(ITABLE);
		d[0].len = htole32(16 * n);
		d[0].flags = htole16(VIRTQ_DESC_F_INDIRECT);
	}
	avail = (uint16_t *)(f->ram + AVAIL);
	avail[2] = 0;
	avail[1] = htole16(1);
	fz_wr(f, 0x050, 0);
	fz_complete(f, false, (flags & 16) ? -EIO : 0);

	/* Every request the device accepted gets exactly one valid status (§5.2.6.2). */
	st = &f->ram[WAREA + wlen - 1];
	if (!(vmmio_read(f->mmio, 0x070, 4) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)) {
		uint16_t used_idx;

		memcpy(&used_idx, f->ram + USED + 2, 2);
		if (le16toh(used_idx) != 1 || *st > VIRTIO_BLK_S_UNSUPP)
			abort();
	}
	fz_free(f);
	return 0;
}
