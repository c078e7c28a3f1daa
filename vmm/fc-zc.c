/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The zero-copy extension of the Firecracker UFFD protocol, the handler's
 * side of its two messages (vmm/fc.h has the layout; the man page the
 * contract). Called by vmm/fc-serve.c once a VMM asked for it in its
 * handshake; a stock Firecracker never does, so it never sees either.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "vmm/fc.h"
#include "util/err.h"

int fc_zc_offer(int sock, const struct fc_zc_run *runs, uint32_t n, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct fc_zc_hdr h = { .version = htole32(FC_ZC_VERSION), .n = htole32(n) };
	struct fc_zc_run *le = NULL;
	struct iovec iov[2] = { { .iov_base = &h, .iov_len = sizeof(h) } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 1 };
	size_t total = sizeof(h), sent = 0;
	uint32_t i;
	ssize_t r;
	int rc = 0;

	memcpy(h.magic, FC_ZC_MAGIC, sizeof(h.magic));
	if (n) {
		le = malloc(n * sizeof(*le));
		if (!le)
			return tier_err(-ENOMEM, "zero-copy offer: out of memory");
		for (i = 0; i < n; i++)
			le[i] = (struct fc_zc_run){ .addr = htole64(runs[i].addr),
				.len = htole64(runs[i].len), .off = htole64(runs[i].off) };
		iov[1] = (struct iovec){ .iov_base = le, .iov_len = n * sizeof(*le) };
		mh.msg_iovlen = 2;
		total += iov[1].iov_len;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	/* the fd goes with the first bytes; a stream may take the rest in
	 * more than one send */
	while (sent < total) {
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = tier_err(-errno, "zero-copy offer: send: %m");
			break;
		}
		sent += r;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		while (r > 0 && mh.msg_iovlen) {
			size_t k = (size_t)r < mh.msg_iov->iov_len ? (size_t)r :
				   mh.msg_iov->iov_len;

			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + k;
			mh.msg_iov->iov_len -= k;
			r -= k;
			if (!mh.msg_iov->iov_len) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
	free(le);
	return rc;
}

static long ms_left(const struct timespec *end)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (end->tv_sec - now.tv_sec) * 1000 +
	       (end->tv_nsec - now.tv_nsec) / 1000000;
}

int fc_zc_answer(int sock, int timeout_ms)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	struct timespec end;
	char a[8];
	size_t got = 0;
	ssize_t r;
	long left;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += timeout_ms / 1000;
	end.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	while (got < sizeof(a)) {
		left = ms_left(&end);
		if (left <= 0)
			return 0;	/* served by copy, as for a stock VMM */
		r = poll(&pfd, 1, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return tier_err(-errno, "zero-copy answer: poll: %m");
		if (!r)
			continue;
		r = recv(sock, a + got, sizeof(a) - got, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r < 0)
			return tier_err(-errno, "zero-copy answer: %m");
		if (!r)
			return tier_err(-ECONNRESET, "zero-copy answer: the VMM hung up");
		got += r;
	}
	if (!memcmp(a, FC_ZC_ACK, sizeof(a)))
		return 1;
	if (!memcmp(a, FC_ZC_NAK, sizeof(a)))
		return 0;
	return tier_err(-EPROTO, "zero-copy answer: neither %s nor %s",
			FC_ZC_ACK, FC_ZC_NAK);
}
