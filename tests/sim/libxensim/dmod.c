// SPDX-License-Identifier: GPL-2.0-only
/* libxendevicemodel on the simulator: IOREQ servers, MMIO ranges and Arm SPI injection. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xendevicemodel.h>

#include "client.h"

/* Interrupt pages of the domains this handle injected into (see struct xsim_irq_page). */
#define DM_IRQ_CACHE 16

struct dm_irq_map {
	domid_t domid;
	struct xsim_irq_page *page;	/* NULL: slot free */
};

struct xendevicemodel_handle {
	struct xsim_conn *conn;
	pthread_mutex_t lock;
	struct dm_irq_map irqs[DM_IRQ_CACHE];
	unsigned int next_victim;
};
_Static_assert(offsetof(struct xendevicemodel_handle, conn) == 0, "xsim_handle_open() layout");

xendevicemodel_handle *xendevicemodel_open(struct xentoollog_logger *logger,
					   unsigned int open_flags)
{
	xendevicemodel_handle *dmod = xsim_handle_open(sizeof(xendevicemodel_handle));

	if (dmod)
		pthread_mutex_init(&dmod->lock, NULL);
	return dmod;
}

static void dm_irq_unmap(struct dm_irq_map *e)
{
	if (e->page)
		munmap(e->page, XSIM_IRQ_PAGE_BYTES);
	e->page = NULL;
}

int xendevicemodel_close(xendevicemodel_handle *dmod)
{
	if (!dmod)
		return 0;
	for (unsigned int i = 0; i < DM_IRQ_CACHE; i++)
		dm_irq_unmap(&dmod->irqs[i]);
	pthread_mutex_destroy(&dmod->lock);
	return xsim_handle_close(dmod);
}

static int dm_call(xendevicemodel_handle *dmod, struct xsim_msg *m)
{
	int r = xsim_call(dmod->conn, m, NULL, 0, NULL, NULL, 0);

	return r < 0 ? xsim_fail(r) : 0;
}

int xendevicemodel_nr_vcpus(xendevicemodel_handle *dmod, domid_t domid, unsigned int *vcpus)
{
	struct xsim_msg m = { .op = XSIM_OP_DOMINFO, .domid = domid };

	if (dm_call(dmod, &m) < 0)
		return -1;
	*vcpus = (unsigned int)m.a;
	return 0;
}

int xendevicemodel_create_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
				       int handle_bufioreq, ioservid_t *id)
{
	struct xsim_msg m = { .op = XSIM_OP_IOREQ_CREATE, .domid = domid,
			      .a = (uint64_t)(unsigned int)handle_bufioreq };

	if (dm_call(dmod, &m) < 0)
		return -1;
	*id = (ioservid_t)m.id;
	return 0;
}

int xendevicemodel_get_ioreq_server_info(xendevicemodel_handle *dmod, domid_t domid,
					 ioservid_t id, xen_pfn_t *ioreq_gfn,
					 xen_pfn_t *bufioreq_gfn, evtchn_port_t *bufioreq_port)
{
	struct xsim_msg m = { .op = XSIM_OP_IOREQ_INFO, .domid = domid, .id = id };

	/* Arm has no legacy "magic" ioreq gfns: pages come from map_resource only. */
	if (ioreq_gfn || bufioreq_gfn)
		return xsim_fail(-EOPNOTSUPP);
	if (dm_call(dmod, &m) < 0)
		return -1;
	if (bufioreq_port)
		*bufioreq_port = (evtchn_port_t)m.a;
	return 0;
}

static int dm_range(xendevicemodel_handle *dmod, domid_t domid, ioservid_t id, int is_mmio,
		    uint64_t start, uint64_t end, int map)
{
	struct xsim_msg m = { .op = XSIM_OP_IOREQ_RANGE, .domid = domid, .id = id,
			      .a = (uint64_t)(unsigned int)is_mmio, .b = start, .c = end,
			      .d = (uint64_t)map };

	return dm_call(dmod, &m);
}

int xendevicemodel_map_io_range_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
						ioservid_t id, int is_mmio, uint64_t start,
						uint64_t end)
{
	return dm_range(dmod, domid, id, is_mmio, start, end, 1);
}

int xendevicemodel_unmap_io_range_from_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
						    ioservid_t id, int is_mmio, uint64_t start,
						    uint64_t end)
{
	return dm_range(dmod, domid, id, is_mmio, start, end, 0);
}

int xendevicemodel_map_mem_type_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
						ioservid_t id, uint16_t type, uint32_t flags)
{
	return xsim_fail(-EOPNOTSUPP);
}

int xendevicemodel_map_pcidev_to_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
					      ioservid_t id, uint16_t segment, uint8_t bus,
					      uint8_t device, uint8_t function)
{
	return xsim_fail(-EOPNOTSUPP);
}

int xendevicemodel_unmap_pcidev_from_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
						  ioservid_t id, uint16_t segment, uint8_t bus,
						  uint8_t device, uint8_t function)
{
	return xsim_fail(-EOPNOTSUPP);
}

int xendevicemodel_destroy_ioreq_server(xendevicemodel_handle *dmod, domid_t domid,
					ioservid_t id)
{
	struct xsim_msg m = { .op = XSIM_OP_IOREQ_DESTROY, .domid = domid, .id = id };

	/*
	 * A backend done with a domain leaves nothing of it mapped here (tests
	 * count the daemon's mappings): its interrupt page goes too.
	 */
	pthread_mutex_lock(&dmod->lock);
	for (unsigned int i = 0; i < DM_IRQ_CACHE; i++)
		if (dmod->irqs[i].page && dmod->irqs[i].domid == domid)
			dm_irq_unmap(&dmod->irqs[i]);
	pthread_mutex_unlock(&dmod->lock);
	return dm_call(dmod, &m);
}

int xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *dmod, domid_t domid,
					  ioservid_t id, int enabled)
{
	struct xsim_msg m = { .op = XSIM_OP_IOREQ_STATE, .domid = domid, .id = id,
			      .a = enabled ? 1 : 0 };

	return dm_call(dmod, &m);
}

/* The domain's interrupt page (lock held): cached, else asked for once. */
static int dm_irq_page(xendevicemodel_handle *dmod, domid_t domid, struct dm_irq_map **ret)
{
	struct xsim_msg m = { .op = XSIM_OP_IRQ_PAGE, .domid = domid };
	struct dm_irq_map *e;
	void *p;
	int fd = -1, r;

	for (unsigned int i = 0; i < DM_IRQ_CACHE; i++)
		if (dmod->irqs[i].page && dmod->irqs[i].domid == domid) {
			*ret = &dmod->irqs[i];
			return 0;
		}
	r = xsim_call(dmod->conn, &m, NULL, 0, NULL, &fd, 1);
	if (r < 0)
		return r;
	if (fd < 0)
		return -EPROTO;
	p = mmap(NULL, XSIM_IRQ_PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	close(fd);
	/* A free entry if there is one, else the oldest. */
	for (e = dmod->irqs; e < dmod->irqs + DM_IRQ_CACHE && e->page; e++)
		;
	if (e == dmod->irqs + DM_IRQ_CACHE)
		e = &dmod->irqs[dmod->next_victim++ % DM_IRQ_CACHE];
	dm_irq_unmap(e);
	*e = (struct dm_irq_map){ .domid = domid, .page = p };
	*ret = e;
	return 0;
}

/*
 * A hypercall on Xen, done here on the caller's CPU: the line's state is in
 * memory shared with the simulated vGIC, which wakes the guest's vCPUs.
 */
int xendevicemodel_set_irq_level(xendevicemodel_handle *dmod, domid_t domid, unsigned int irq,
				 unsigned int level)
{
	struct dm_irq_map *e = NULL;
	int r;

	/* Xen on Arm: SPIs only (no SGIs/PPIs), within the vGIC's lines. */
	if (irq < XSIM_IRQ_MIN || irq > XSIM_IRQ_MAX)
		return xsim_fail(-EINVAL);
	pthread_mutex_lock(&dmod->lock);
	r = dm_irq_page(dmod, domid, &e);
	if (r == 0 && __atomic_load_n(&e->page->dying, __ATOMIC_SEQ_CST)) {
		/* Gone: forget it, so that a new domain with this id is looked up afresh. */
		dm_irq_unmap(e);
		r = -ESRCH;
	}
	if (r == 0)
		xsim_irq_set(e->page, irq, level);
	pthread_mutex_unlock(&dmod->lock);
	return r < 0 ? xsim_fail(r) : 0;
}

/* x86-only interrupt paths: Arm's Xen rejects them. */
int xendevicemodel_set_pci_intx_level(xendevicemodel_handle *dmod, domid_t domid,
				      uint16_t segment, uint8_t bus, uint8_t device, uint8_t intx,
				      unsigned int level)
{
	return xsim_fail(-EOPNOTSUPP);
}

int xendevicemodel_set_isa_irq_level(xendevicemodel_handle *dmod, domid_t domid, uint8_t irq,
				     unsigned int level)
{
	return xsim_fail(-EOPNOTSUPP);
}

int xendevicemodel_restrict(xendevicemodel_handle *dmod, domid_t domid)
{
	return 0;
}
