// SPDX-License-Identifier: GPL-2.0-only
/* Proves the arm64 sysroot links what vblkd needs: libxendevicemodel, libaio and liburing. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libaio.h>
#include <liburing.h>
#include <xendevicemodel.h>

/*
 * Built by tests/xen/check-xen.sh with the arm64 cross compiler and tests/xen/arm64-pkg-config; `file`
 * must call the result aarch64.  Run in Dom0 it also shows the three libraries load and answer there.
 */
int main(void)
{
	xendevicemodel_handle *dmod;
	struct io_uring ring;
	io_context_t aio = 0;
	int ret, failed = 0;

	dmod = xendevicemodel_open(NULL, 0);
	printf("xendevicemodel_open: %s\n", dmod ? "ok" : strerror(errno));
	if (dmod)
		xendevicemodel_close(dmod);
	else
		failed = 1;

	ret = io_setup(8, &aio);
	printf("io_setup: %s\n", ret == 0 ? "ok" : strerror(-ret));
	if (ret == 0)
		io_destroy(aio);
	else
		failed = 1;

	/* io_uring may be disabled (kernel.io_uring_disabled); vblkd then uses libaio. */
	ret = io_uring_queue_init(8, &ring, 0);
	printf("io_uring_queue_init: %s\n", ret == 0 ? "ok" : strerror(-ret));
	if (ret == 0)
		io_uring_queue_exit(&ring);

	return failed;
}
