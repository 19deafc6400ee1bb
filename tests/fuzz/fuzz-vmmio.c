// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: arbitrary guest MMIO accesses and guest RAM against the register file. */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: 1 byte flags, up to 4 KiB of guest RAM (length in the next 2 bytes),
 * then 12-byte operations: kind, width, offset (le16), value (le64).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned int widths[8] = { 4, 4, 4, 4, 1, 2, 8, 3 };
	struct fz *f;
	size_t ram_len;

	if (size < 3)
		return 0;
	f = fz_new((data[0] & 1) ? 1 : 2, 1 + ((data[0] >> 1) & 3), data[0] & 8);
	ram_len = (size_t)(data[1] | (data[2] << 8)) % 4097;
	data += 3;
	size -= 3;
	if (ram_len > size)
		ram_len = size;
	memcpy(f->ram + 4096, data, ram_len);
	data += ram_len;
	size -= ram_len;
	while (size >= 12) {
		uint8_t kind = data[0];
		unsigned int width = widths[data[1] & 7];
		uint64_t off = (uint64_t)(data[2] | (data[3] << 8)) % 0x220;
		uint64_t val;

		memcpy(&val, data + 4, 8);
		val = le64toh(val);
		switch (kind % 8) {
		case 0:
		case 1:
		case 2:
			vmmio_write(f->mmio, off, width, val);
			break;
		case 3:
		case 4:
			(void)vmmio_read(f->mmio, off, width);
			break;
		case 5:
			fz_complete(f, kind & 0x80, (kind & 0x40) ? -EIO : 0);
			break;
		case 6: {
			struct blk_info info = { .capacity = (val % 4) * 65536 + 65536,
						 .logical_block_size = 512, .discard = true };

			vblk_set_info(f->dev, &info);
			break;
		}
		case 7:
			/* small aligned writes into RAM: rings changing under the device */
			memcpy(f->ram + 4096 + (off & ~7ull) * 8, &val, 8);
			break;
		}
		data += 12;
		size -= 12;
	}
	fz_complete(f, false, 0);
	fz_free(f);
	return 0;
}
