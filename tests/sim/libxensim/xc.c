// SPDX-License-Identifier: GPL-2.0-only
/* libxenctrl on the simulator: open an interface and list domains (to notice dead ones). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <xenctrl.h>

#include "client.h"

struct xc_interface_core {
	struct xsim_conn *conn;
};
_Static_assert(offsetof(struct xc_interface_core, conn) == 0, "xsim_handle_open() layout");

xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
				unsigned int open_flags)
{
	return xsim_handle_open(sizeof(xc_interface));
}

int xc_interface_close(xc_interface *xch)
{
	return xsim_handle_close(xch);
}

static int xc_list(xc_interface *xch, uint32_t first, unsigned int max,
		   struct xsim_dominfo **ret_list)
{
	struct xsim_msg m = { .op = XSIM_OP_DOMLIST, .domid = first, .a = max };
	char *rt = NULL;
	int r;

	r = xsim_call(xch->conn, &m, NULL, 0, &rt, NULL, 0);
	if (r < 0) {
		free(rt);
		return xsim_fail(r);
	}
	*ret_list = (struct xsim_dominfo *)rt;
	return (int)(m.n / sizeof(struct xsim_dominfo));
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms,
		      xc_dominfo_t *info)
{
	struct xsim_dominfo *l = NULL;
	int n, i;

	n = xc_list(xch, first_domid, max_doms, &l);
	for (i = 0; i < n; i++) {
		memset(&info[i], 0, sizeof(info[i]));
		info[i].domid = l[i].domid;
		info[i].dying = !!(l[i].flags & XSIM_DOMF_DYING);
		info[i].paused = !!(l[i].flags & XSIM_DOMF_PAUSED);
		info[i].running = !(l[i].flags & (XSIM_DOMF_DYING | XSIM_DOMF_PAUSED));
		info[i].hvm = 1;
		info[i].hap = 1;
		info[i].nr_pages = l[i].ram_pages;
		memcpy(info[i].handle, l[i].handle, sizeof(info[i].handle));
		info[i].max_memkb = l[i].ram_pages * 4;
		info[i].nr_online_vcpus = l[i].vcpus;
		info[i].max_vcpu_id = l[i].vcpus ? l[i].vcpus - 1 : 0;
	}
	free(l);
	return n;
}

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
			  xc_domaininfo_t *info)
{
	struct xsim_dominfo *l = NULL;
	int n, i;

	n = xc_list(xch, first_domain, max_domains, &l);
	for (i = 0; i < n; i++) {
		memset(&info[i], 0, sizeof(info[i]));
		info[i].domain = (domid_t)l[i].domid;
		info[i].flags = XEN_DOMINF_hvm_guest;
		if (l[i].flags & XSIM_DOMF_DYING)
			info[i].flags |= XEN_DOMINF_dying;
		else if (l[i].flags & XSIM_DOMF_PAUSED)
			info[i].flags |= XEN_DOMINF_paused;
		else
			info[i].flags |= XEN_DOMINF_running;
		info[i].tot_pages = l[i].ram_pages;
		info[i].max_pages = l[i].ram_pages;
		memcpy(info[i].handle, l[i].handle, sizeof(info[i].handle));
		info[i].nr_online_vcpus = l[i].vcpus;
		info[i].max_vcpu_id = l[i].vcpus ? l[i].vcpus - 1 : 0;
	}
	free(l);
	return n;
}
