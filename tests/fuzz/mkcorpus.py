#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
# Regenerate the committed seed corpus of the virtio fuzz targets (valid requests the fuzzers mutate from).
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
NEXT, WRITE, IND, AVAIL = 1, 2, 4, 1 << 7
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WZ = 0, 1, 4, 8, 11, 13


def put(img, off, data):
    if len(img) < off + len(data):
        img.extend(b'\0' * (off + len(data) - len(img)))
    img[off:off + len(data)] = data


def desc(addr, ln, flags, nxt):
    return struct.pack('<QIHH', addr, ln, flags, nxt)


def pdesc(addr, ln, id_, flags):
    return struct.pack('<QIHH', addr, ln, id_, flags)


def hdr(t, sector):
    return struct.pack('<IIQ', t, 0, sector)


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(bytes(data))


def split_image(reqs, indirect=False):
    """Guest RAM from 0x1000: table 0x1000, avail 0x1400, used 0x1800, buffers from 0x2000."""
    img = bytearray()
    d = 0
    heads = []
    for i, (t, sector, dlen) in enumerate(reqs):
        h = 0x2000 + i * 0x20
        st = h + 0x10
        data = 0x3000 + i * 0x1000
        put(img, h - 0x1000, hdr(t, sector))
        chain = [(h, 16, 0)]
        if t in (T_DISCARD, T_WZ):
            put(img, data - 0x1000, struct.pack('<QII', sector, 8, 0))
            chain.append((data, 16, 0))
        elif dlen:
            chain.append((data, dlen, WRITE if t in (T_IN, T_GET_ID) else 0))
        chain.append((st, 1, WRITE))
        heads.append(d)
        if indirect:
            tbl = 0x6000 + i * 0x100
            for k, (a, ln, fl) in enumerate(chain):
                last = k == len(chain) - 1
                put(img, tbl - 0x1000 + 16 * k, desc(a, ln, fl | (0 if last else NEXT), k + 1))
            put(img, 16 * d, desc(tbl, 16 * len(chain), IND, 0))
            d += 1
        else:
            for k, (a, ln, fl) in enumerate(chain):
                last = k == len(chain) - 1
                put(img, 16 * d, desc(a, ln, fl | (0 if last else NEXT), d + 1))
                d += 1
    for i, hd in enumerate(heads):
        put(img, 0x400 + 4 + 2 * i, struct.pack('<H', hd))
    put(img, 0x400 + 2, struct.pack('<H', len(heads)))
    return img


def packed_image(reqs, indirect=False):
    img = bytearray()
    slot = 0
    for i, (t, sector, dlen) in enumerate(reqs):
        h = 0x2000 + i * 0x20
        st = h + 0x10
        data = 0x3000 + i * 0x1000
        put(img, h - 0x1000, hdr(t, sector))
        chain = [(h, 16, 0)]
        if dlen:
            chain.append((data, dlen, WRITE if t in (T_IN, T_GET_ID) else 0))
        chain.append((st, 1, WRITE))
        if indirect:
            tbl = 0x6000 + i * 0x100
            for k, (a, ln, fl) in enumerate(chain):
                put(img, tbl - 0x1000 + 16 * k, pdesc(a, ln, 0, fl))
            put(img, 16 * slot, pdesc(tbl, 16 * len(chain), i, IND | AVAIL))
            slot += 1
        else:
            for k, (a, ln, fl) in enumerate(chain):
                last = k == len(chain) - 1
                put(img, 16 * slot, pdesc(a, ln, i, fl | AVAIL | (0 if last else NEXT)))
                slot += 1
    put(img, 0x800, b'\0' * 8)
    return img


REQS = [
    [(T_IN, 0, 512)],
    [(T_OUT, 8, 1024), (T_IN, 8, 1024)],
    [(T_FLUSH, 0, 0), (T_GET_ID, 0, 20)],
    [(T_DISCARD, 16, 0), (T_WZ, 24, 0)],
    [(T_IN, 500, 4096), (T_OUT, 0, 512), (T_IN, 1 << 40, 512)],
]

for n, reqs in enumerate(REQS):
    write('fuzz-vq-split', 'seed-%d' % n, bytes([0, 3]) + split_image(reqs))
    write('fuzz-vq-split', 'seed-%d-indirect' % n, bytes([4, 3]) + split_image(reqs, True))
    if all(t not in (T_DISCARD, T_WZ) for t, _, _ in reqs):
        write('fuzz-vq-packed', 'seed-%d' % n, bytes([0, 16]) + packed_image(reqs))
        write('fuzz-vq-packed', 'seed-%d-indirect' % n, bytes([32, 16]) + packed_image(reqs, True))


def mmio_ops(version, image, nq=1):
    ops = bytearray()

    def w(off, val, width_sel=0):
        ops.extend(struct.pack('<BBHQ', 0, width_sel, off, val))

    def r(off):
        ops.extend(struct.pack('<BBHQ', 3, 0, off, 0))

    w(0x070, 1)
    w(0x070, 3)
    r(0x010)
    w(0x024, 0)
    w(0x020, 0x30006e56 if version == 2 else 0x30006e56)
    if version == 2:
        w(0x024, 1)
        w(0x020, 1)
        w(0x070, 11)
        w(0x030, 0)
        w(0x038, 8)
        w(0x080, 0x1000)
        w(0x090, 0x1400)
        w(0x0a0, 0x1800)
        w(0x044, 1)
        w(0x070, 15)
    else:
        w(0x028, 4096)
        w(0x030, 0)
        w(0x038, 8)
        w(0x03c, 4096)
        w(0x040, 1)
        w(0x070, 7)
    w(0x050, 0)
    ops.extend(struct.pack('<BBHQ', 5, 0, 0, 0))
    r(0x060)
    w(0x064, 1)
    ops.extend(struct.pack('<BBHQ', 4, 6, 0x100, 0))
    ops.extend(struct.pack('<BBHQ', 1, 4, 0x120, 0))
    w(0x070, 0)
    flags = 0 if version == 2 else 1
    return bytes([flags]) + struct.pack('<H', len(image)) + bytes(image) + bytes(ops)


write('fuzz-vmmio', 'seed-modern', mmio_ops(2, split_image(REQS[1])[:4096]))
write('fuzz-vmmio', 'seed-modern-rw', mmio_ops(2, split_image(REQS[4])[:4096]))


def legacy_image(reqs):
    # legacy: avail right after the 8-entry table, used at the next 4 KiB boundary
    img = split_image(reqs)
    avail = img[0x400:0x420]
    img[0x400:0x420] = b'\0' * 0x20
    put(img, 0x80, avail)
    return img[:4096]


write('fuzz-vmmio', 'seed-legacy', mmio_ops(1, legacy_image(REQS[0])))


def req(tsel, flags, sector, dlen, rp=1, wp=1, cuts=b'', payload=b''):
    return (bytes([tsel, flags]) + struct.pack('<QH', sector, dlen) + bytes([rp - 1, wp - 1]) +
            cuts + payload)


seg = struct.pack('<QII', 8, 8, 0)
write('fuzz-vblk-req', 'in', req(0, 0, 2, 512))
write('fuzz-vblk-req', 'out-split', req(1, 0, 4, 1024, 3, 2, struct.pack('<HHH', 10, 700, 1)))
write('fuzz-vblk-req', 'flush', req(2, 0, 0, 0))
write('fuzz-vblk-req', 'get-id', req(3, 0, 0, 20))
write('fuzz-vblk-req', 'discard', req(4, 0, 0, 16, payload=seg))
write('fuzz-vblk-req', 'write-zeroes-unmap', req(5, 0, 0, 16, payload=struct.pack('<QII', 8, 8, 1)))
write('fuzz-vblk-req', 'indirect-in', req(0, 8, 16, 2048, 2, 3, struct.pack('<HHHH', 9, 100, 1000, 3)))
write('fuzz-vblk-req', 'unsupp', req(9, 0, 0, 512))
write('fuzz-vblk-req', 'past-end', req(0, 0, 511, 1024))
write('fuzz-vblk-req', 'full-features', req(1, 4, 0, 4096, 4, 1, struct.pack('<HHH', 16, 2048, 16)))
