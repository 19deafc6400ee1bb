/* SPDX-License-Identifier: GPL-2.0-only */
/* Virtio constants and the transport seam shared by the virtio modules (vq, vmmio, vblk). */
#ifndef VBLKD_VIRTIO_TYPES_H
#define VBLKD_VIRTIO_TYPES_H

#include <stdbool.h>
#include <stdint.h>

/* Device status bits, virtio 1.2 §2.1. */
#define VIRTIO_STATUS_ACKNOWLEDGE	1u
#define VIRTIO_STATUS_DRIVER		2u
#define VIRTIO_STATUS_DRIVER_OK		4u
#define VIRTIO_STATUS_FEATURES_OK	8u
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 64u
#define VIRTIO_STATUS_FAILED		128u

/* Reserved (transport/ring) feature bits, virtio 1.2 §6. */
#define VIRTIO_F_INDIRECT_DESC		28
#define VIRTIO_F_EVENT_IDX		29
#define VIRTIO_F_VERSION_1		32
#define VIRTIO_F_ACCESS_PLATFORM	33
#define VIRTIO_F_RING_PACKED		34

#define VIRTIO_BIT(b) (1ull << (b))

/* Split ring descriptor flags, §2.7.5; packed ring adds AVAIL/USED, §2.8.1. */
#define VIRTQ_DESC_F_NEXT	1u
#define VIRTQ_DESC_F_WRITE	2u
#define VIRTQ_DESC_F_INDIRECT	4u
#define VIRTQ_DESC_F_AVAIL	(1u << 7)
#define VIRTQ_DESC_F_USED	(1u << 15)

/* §2.7.6 / §2.7.8 ring flags. */
#define VIRTQ_AVAIL_F_NO_INTERRUPT	1u
#define VIRTQ_USED_F_NO_NOTIFY		1u

/* §2.8.10 packed ring event suppression flags. */
#define VIRTQ_EVENT_F_ENABLE	0u
#define VIRTQ_EVENT_F_DISABLE	1u
#define VIRTQ_EVENT_F_DESC	2u

/* virtio-mmio InterruptStatus bits, §4.2.2. */
#define VIRTIO_MMIO_INT_VRING	1u
#define VIRTIO_MMIO_INT_CONFIG	2u

/* Guest memory layout of the rings, all little-endian (§2.7.5, §2.7.6, §2.7.8, §2.8.13). */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_packed_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

/* One range of a transport's copy() call. */
struct virtio_copy {
	uint64_t gpa;
	void *buf;
	uint64_t len;
	bool to_guest;
};

/*
 * The transport seam: what the Xen ioreq code (or a test fake, or another
 * transport) provides to the device.  One instance per device, owned by the
 * caller and never written by virtio code; @opaque is passed back unchanged.
 */

struct virtio_transport_ops {
	/*
	 * Make the guest range [gpa, gpa + len) accessible: on success store a host
	 * pointer to a CONTIGUOUS mapping of the whole range in *ret_ptr and
	 * return 0; otherwise return -errno (-EFAULT: not guest memory) and leave
	 * *ret_ptr alone.  @write says the device will write to it.  len >= 1,
	 * len <= max_map (when set) and gpa + len does not wrap (the caller checks
	 * all three).  -ENOBUFS: the guest's budget of mapped memory is used up
	 * for now; the device waits for its own requests to finish (or for
	 * room(), see the owner's wiring) and tries again.
	 */
	int (*map)(void *opaque, uint64_t gpa, uint64_t len, bool write, void **ret_ptr);
	/* Release a mapping returned by map() (same pointer and length). */
	void (*unmap)(void *opaque, void *ptr, uint64_t len);
	/*
	 * Optional: copy each of @n ranges (struct virtio_copy) between the guest
	 * and host buffers in one call, without a mapping that outlives it, for
	 * the small pieces of a request (a header, a status byte) where a mapping
	 * costs more than a copy (Xen's grants: one hypercall for all of them).
	 * 0 when every range was copied; -EOPNOTSUPP, nothing copied, where a
	 * mapping is as cheap (the device maps instead); else the error of map()
	 * for the same ranges (-EFAULT: not guest memory), ranges before the
	 * failing one perhaps copied.  Each range as for map().
	 */
	int (*copy)(void *opaque, const struct virtio_copy *c, unsigned int n);
	/*
	 * Optional: map() said -ENOBUFS and the device has let go of what the
	 * request held: from now on, releases by others are worth a retry (the
	 * owner's wiring calls the device back).  Releases before this call, the
	 * device's own, are not: they would only make it try again in vain.
	 */
	void (*wait_room)(void *opaque);
	/*
	 * InterruptStatus gained a bit: raise the device's interrupt (on Arm an
	 * edge: the transport pulses the line).  Called synchronously from inside
	 * vmmio_write() or vblk_complete_batch(); it must not call back into the device.
	 */
	void (*notify)(void *opaque);
};

struct virtio_transport {
	const struct virtio_transport_ops *ops;
	void *opaque;
	/* Guest addresses are grant references, not physical: offer VIRTIO_F_ACCESS_PLATFORM. */
	bool grants;
	/*
	 * Largest range map() takes in one call, a power of two (0: any): the
	 * device cuts longer buffers into pieces at multiples of it.
	 */
	uint64_t max_map;
};

#endif
