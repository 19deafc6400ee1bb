// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: a packed virtqueue (§2.8) in fuzzer-controlled guest RAM. */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DESC 0x1000
#define DRIVER_EVENT 0x1800
#define DEVICE_EVENT 0x1804
#define IMAGE 0x1000

/*
 * Input: flags (bit0 no EVENT_IDX, bit1 no INDIRECT_DESC, bit2 reverse
 * completions, bit3 backend depth 1, bit4 backend errors, bit5 rewrite the
 * ring image between rounds), queue size (1..64, any value), then the guest
 * RAM image from 0x1000 (ring at 0x1000, driver event structure at 0x1800).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t features = ~0ull;
	const uint8_t *img;
	struct fz *f;
	uint8_t flags;
	uint32_t num;

	if (size < 2)
		return 0;
	flags = data[0];
	num = 1 + data[1] % 64;
	img = data + 2;
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
	memcpy(f->ram + IMAGE, img, size);
	if (fz_handshake(f, features)) {
		fz_queue(f, 0, num, DESC, DRIVER_EVENT, DEVICE_EVENT);
		fz_wr(f, 0x070, 15);
		for (int round = 0; round < 3; round++) {
			fz_wr(f, 0x050, 0);
			fz_complete(f, flags & 4, (flags & 16) && round == 1 ? -EIO : 0);
			if ((flags & 32) && size > 16 * num) {
				/* the driver makes the next lap available: flip the AVAIL/USED bits */
				for (uint32_t i = 0; i < num; i++)
					f->ram[DESC + 16 * i + 15] ^= 0x80;
			}
		}
	}
	fz_free(f);
	return 0;
}
