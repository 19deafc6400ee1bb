// SPDX-License-Identifier: GPL-2.0-only
/* libaio's completion ring read in user space, as QEMU's linux-aio does: completions without io_getevents(). */
#include <assert.h>
#include <errno.h>
#include <libaio.h>
#include <stdint.h>

#include "blk-internal.h"

/*
 * An io_context_t is the address of the ring the kernel maps into the
 * process at io_setup() (struct aio_ring, fs/aio.c): this header, then
 * io_events[nr].  The kernel writes the events and tail, whoever reaps
 * writes head; the kernel reads head back (it frees ring slots from it) and
 * takes it modulo nr, so consuming here is what io_getevents() does inside.
 */
struct blk_aio_ring {
	uint32_t id;
	uint32_t nr;
	uint32_t head;
	uint32_t tail;
	uint32_t magic;
	uint32_t compat_features;
	uint32_t incompat_features;
	uint32_t header_length;
	struct io_event io_events[];
};

#define BLK_AIO_RING_MAGIC 0xa10a10a1u

static_assert(sizeof(struct blk_aio_ring) == 32, "aio_ring header is 32 bytes");
static_assert(sizeof(struct io_event) == 32, "the kernel's io_event is 32 bytes");

bool blk_aio_ring_usable(io_context_t ctx)
{
	const struct blk_aio_ring *ring = (const struct blk_aio_ring *)ctx;

	/*
	 * A layout this code does not know (the kernel would set an
	 * incompatible feature bit, or a new magic) is left to io_getevents().
	 */
	return ring && ring->magic == BLK_AIO_RING_MAGIC && ring->incompat_features == 0 &&
	       ring->header_length == sizeof(*ring) && ring->nr > 0;
}

int blk_aio_ring_getevents(io_context_t ctx, long max, struct io_event *events)
{
	struct blk_aio_ring *ring = (struct blk_aio_ring *)ctx;
	uint32_t nr = ring->nr, head, tail;
	long n = 0;

	/* Only this thread writes head: its last store is what it reads. */
	head = ring->head % nr;
	/*
	 * Pairs with the kernel's smp_wmb() between writing an event and
	 * publishing tail (aio_complete()): the events up to tail are written.
	 */
	tail = __atomic_load_n(&ring->tail, __ATOMIC_ACQUIRE) % nr;
	while (head != tail && n < max) {
		events[n++] = ring->io_events[head];
		head = head + 1 == nr ? 0 : head + 1;
	}
	if (n)
		/*
		 * Release: the events are copied out before the kernel may reuse
		 * their slots (it reads head under its completion lock).
		 */
		__atomic_store_n(&ring->head, head, __ATOMIC_RELEASE);
	return (int)n;
}
