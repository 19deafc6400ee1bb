// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: a split virtqueue (§2.7) in fuzzer-controlled guest RAM. */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DESC 0x1000
#define AVAIL 0x1400
#define USED 0x1800
#define IMAGE 0x1000 /* input bytes land from here on */

/*
 * Input: flags (bit0 no EVENT_IDX, bit1 no INDIRECT_DESC, bit2 reverse
 * completions, bit3 backend depth 1, bit4 backend errors), queue size
 * exponent, then the guest RAM image from 0x1000 (descriptor table at
 * 0x1000, available ring at 0x1400, used ring at 0x1800, buffers above).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t features = ~VIRTIO_BIT(VIRTIO_F_RING_PACKED);
	struct fz *f;
	uint8_t flags;
	uint32_t num;

	if (size < 2)
		return 0;
	flags = data[0];
	num = 1u << (data[1] % 7);
	data += 2;
	size -= 2;
	if (flags & 1)
		features &= ~VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
	if (flags & 2)
		features &= ~VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC);
	f = fz_new(2, 1, false);
	if (flags & 8)
		f->depth = 1;
	if (size > FZ_RAM - IMAGE)
		size = FZ_RAM - IMAGE;
	memcpy(f->ram + IMAGE, data, size);
	if (fz_handshake(f, features)) {
		fz_queue(f, 0, num, DESC, AVAIL, USED);
		fz_wr(f, 0x070, 15);
		for (int round = 0; round < 3; round++) {
			fz_wr(f, 0x050, 0);
			fz_complete(f, flags & 4, (flags & 16) && round == 1 ? -EIO : 0);
		}
	}
	fz_free(f);
	return 0;
}
