// SPDX-License-Identifier: GPL-2.0-only
/* Copies between iovec lists and flat buffers, for request headers, bounce buffers and the like. */
#include <stdint.h>
#include <string.h>

#include "iov.h"

size_t iov_to_buf(const struct iovec *iov, unsigned int cnt, size_t skip, void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len - done)
			l = len - done;
		memcpy((uint8_t *)buf + done, (const uint8_t *)iov[i].iov_base + skip, l);
		done += l;
		skip = 0;
	}
	return done;
}

size_t iov_from_buf(const struct iovec *iov, unsigned int cnt, const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < cnt && done < len; i++) {
		size_t l = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;

		/* An empty segment may have no base at all: memcpy must not see it. */
		if (l)
			memcpy(iov[i].iov_base, (const uint8_t *)buf + done, l);
		done += l;
	}
	return done;
}
