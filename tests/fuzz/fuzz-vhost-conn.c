// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target: a hostile vhost-user front end's messages (with memfds and eventfds) against a connection. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../src/vhost/vhost-proto.h"
#include "log.h"
#include "loop.h"
#include "vhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fz_submit(void *be, struct blk_req *req)
{
	return -EIO;
}

static const struct vblk_backend_ops fz_ops = { .submit = fz_submit };

/* Messages carrying memory get memfds (64 KiB of zeroes), the others eventfds. */
static int fz_fd(uint32_t req)
{
	int fd;

	if (req != VHOST_USER_SET_MEM_TABLE && req != VHOST_USER_ADD_MEM_REG &&
	    req != VHOST_USER_SET_INFLIGHT_FD)
		return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fd = memfd_create("fz", MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, 65536) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * Input: records of 1 byte fd count (low 3 bits), 2 bytes length (le16, at
 * most 524), then that many bytes of message (header and payload).  A
 * refused message ends the connection, as the export would.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vhost_conn_params p = { .name = "fz", .num_queues = 2, .be_ops = &fz_ops };
	struct vhost_user_msg rep;
	struct vhost_conn *c;
	struct loop *loop = loop_new();

	log_set_level(LOG_LEVEL_ERR);
	p.loop = loop;
	p.info.capacity = 1 << 20;
	p.info.logical_block_size = 512;
	p.info.physical_block_size = 512;
	if (!loop || vhost_conn_new(&p, &c) < 0) {
		loop_free(loop);
		return 0;
	}
	while (size >= 3) {
		unsigned int nfds = data[0] & 7, len = (unsigned int)(data[1] | (data[2] << 8)) % 525;
		int fds[8], rep_fd, r;
		uint32_t req = 0;
		size_t rep_len;

		data += 3;
		size -= 3;
		if (len > size)
			len = (unsigned int)size;
		if (len >= 4)
			memcpy(&req, data, 4);
		for (unsigned int i = 0; i < nfds; i++)
			fds[i] = fz_fd(req);
		r = vhost_conn_handle(c, data, len, fds, nfds, &rep, &rep_len, &rep_fd);
		if (r == -EINPROGRESS) {
			/* Nothing ever stays in flight here: the backend refuses every request. */
			for (unsigned int i = 0; i < nfds; i++)
				close(fds[i]);
		}
		data += len;
		size -= len;
		if (r < 0 && r != -EINPROGRESS)
			break;
		loop_iterate(loop, 0);
	}
	vhost_conn_free(c);
	loop_free(loop);
	return 0;
}
