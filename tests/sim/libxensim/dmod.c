// SPDX-License-Identifier: GPL-2.0-only
/* libxendevicemodel on the simulator: IOREQ servers, MMIO ranges and Arm SPI injection. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <xendevicemodel.h>

#include "client.h"

struct xendevicemodel_handle {
	struct xsim_conn *conn;
};
_Static_assert(offsetof(struct xendevicemodel_handle, conn) == 0, "xsim_handle_open() layout");

xendevicemodel_handle *xendevicemodel_open(struct xentoollog_logger *logger,
					   unsigned int open_flags)
{
	return xsim_handle_open(sizeof(xendevicemodel_handle));
}

int xendevicemodel_close(xendevicemodel_handle *dmod)
{
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

	return dm_call(dmod, &m);
}

int xendevicemodel_set_ioreq_server_state(xendevicemodel_handle *dmod, domid_t domid,
					  ioservid_t id, int enabled)
{
	struct xsim_msg m = { .op = XSIM_OP_IOREQ_STATE, .domid = domid, .id = id,
			      .a = enabled ? 1 : 0 };

	return dm_call(dmod, &m);
}

int xendevicemodel_set_irq_level(xendevicemodel_handle *dmod, domid_t domid, unsigned int irq,
				 unsigned int level)
{
	struct xsim_msg m = { .op = XSIM_OP_IRQ, .domid = domid, .a = irq, .b = level };

	return dm_call(dmod, &m);
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
