/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool protocol's codec and the stream I/O both TCP ends share: the
 * transports tcp.c and verbs.c, ctl.c and the server. Byte order is
 * converted here and nowhere else.
 */
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include "tier.h"
#include "rdma/proto.h"
#include "util/err.h"

static const char *const op_names[POOL_OP_MAX] = {
	[POOL_OP_HELLO] = "HELLO",
	[POOL_OP_OPEN] = "OPEN",
	[POOL_OP_CLOSE] = "CLOSE",
	[POOL_OP_CREATE] = "CREATE",
	[POOL_OP_WRITE] = "WRITE",
	[POOL_OP_COMMIT] = "COMMIT",
	[POOL_OP_ABORT] = "ABORT",
	[POOL_OP_REMOVE] = "REMOVE",
	[POOL_OP_READ] = "READ",
	[POOL_OP_STAT] = "STAT",
	[POOL_OP_CHALLENGE] = "CHALLENGE",
	[POOL_OP_AUTH] = "AUTH",
};

const char *proto_op_name(unsigned op)
{
	op &= ~POOL_OP_REPLY;
	if (op >= POOL_OP_MAX || !op_names[op])
		return "?";
	return op_names[op];
}

void proto_hdr_encode(struct pool_hdr *h, unsigned op, uint64_t req_id,
		      int status, uint32_t len)
{
	h->magic = htole32(POOL_MAGIC);
	h->version = htole16(POOL_VERSION);
	h->op = htole16(op);
	h->req_id = htole64(req_id);
	h->status = (int32_t)htole32((uint32_t)status);
	h->len = htole32(len);
	h->reserved = 0;
}

int proto_hdr_decode(struct pool_hdr *h, const char *peer)
{
	h->magic = le32toh(h->magic);
	h->version = le16toh(h->version);
	h->op = le16toh(h->op);
	h->req_id = le64toh(h->req_id);
	h->status = (int32_t)le32toh((uint32_t)h->status);
	h->len = le32toh(h->len);
	h->reserved = le64toh(h->reserved);

	if (h->magic != POOL_MAGIC)
		return tier_err(-EPROTO, "%s: not the pool protocol (magic %#x)",
				peer, h->magic);
	if (h->version != POOL_VERSION)
		return tier_err(-EPROTO, "%s: protocol version %u, this side speaks %u",
				peer, h->version, POOL_VERSION);
	if (h->len > POOL_MAX_LEN)
		return tier_err(-EPROTO, "%s: %s message of %u bytes exceeds the limit of %u",
				peer, proto_op_name(h->op), h->len, POOL_MAX_LEN);
	if (h->status > 0 || h->status < -4095)
		return tier_err(-EPROTO, "%s: bad status %d", peer, h->status);
	if (h->reserved)
		return tier_err(-EPROTO, "%s: reserved header bits set", peer);
	return 0;
}

void proto_hello_swap(struct pool_hello *m)
{
	m->version = le32toh(m->version);
	m->flags = le32toh(m->flags);
	m->max_ranges = le32toh(m->max_ranges);
	m->max_data = le32toh(m->max_data);
}

void proto_id_swap(struct pool_id *m)
{
	m->id = le32toh(m->id);
	m->reserved = le32toh(m->reserved);
}

void proto_open_rep_swap(struct pool_open_rep *m)
{
	m->id = le32toh(m->id);
	m->rkey = le32toh(m->rkey);
	m->size = le64toh(m->size);
	m->addr = le64toh(m->addr);
}

void proto_create_req_swap(struct pool_create_req *m)
{
	m->size = le64toh(m->size);
}

void proto_write_req_swap(struct pool_write_req *m)
{
	m->id = le32toh(m->id);
	m->reserved = le32toh(m->reserved);
	m->off = le64toh(m->off);
}

void proto_read_req_swap(struct pool_read_req *m)
{
	m->nr = le32toh(m->nr);
	m->reserved = le32toh(m->reserved);
}

void proto_range_swap(struct pool_range *m)
{
	m->off = le64toh(m->off);
	m->len = le32toh(m->len);
	m->id = le32toh(m->id);
}

void proto_stat_rep_swap(struct pool_stat_rep *m)
{
	m->size = le64toh(m->size);
}

void proto_auth_rep_swap(struct pool_auth_rep *m)
{
	m->role = le32toh(m->role);
	m->reserved = le32toh(m->reserved);
}

/* Drops @done bytes from the front of the vector; returns the new start. */
static unsigned iov_advance(struct iovec *iov, unsigned n, unsigned i,
			    size_t done)
{
	while (i < n && done >= iov[i].iov_len) {
		done -= iov[i].iov_len;
		i++;
	}
	if (i < n) {
		iov[i].iov_base = (char *)iov[i].iov_base + done;
		iov[i].iov_len -= done;
	}
	return i;
}

static int io_errno(int err)
{
	if (err == EAGAIN || err == EWOULDBLOCK)
		return -ETIMEDOUT;	/* SO_RCVTIMEO / SO_SNDTIMEO ran out */
	return -err;
}

int proto_send_all(int fd, struct iovec *iov, unsigned n)
{
	unsigned i = iov_advance(iov, n, 0, 0);

	while (i < n) {
		struct msghdr mh = {
			.msg_iov = iov + i,
			.msg_iovlen = n - i < IOV_MAX ? n - i : IOV_MAX,
		};
		ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET)
				return -EPIPE;
			return io_errno(errno);
		}
		i = iov_advance(iov, n, i, r);
	}
	return 0;
}

int proto_recv_all(int fd, struct iovec *iov, unsigned n)
{
	unsigned i = iov_advance(iov, n, 0, 0);

	while (i < n) {
		struct msghdr mh = {
			.msg_iov = iov + i,
			.msg_iovlen = n - i < IOV_MAX ? n - i : IOV_MAX,
		};
		ssize_t r = recvmsg(fd, &mh, MSG_WAITALL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return io_errno(errno);
		}
		if (r == 0)
			return -ECONNRESET;
		i = iov_advance(iov, n, i, r);
	}
	return 0;
}

int proto_recv(int fd, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return proto_recv_all(fd, &iov, 1);
}

int proto_skip(int fd, size_t len)
{
	char junk[4096];
	int rc;

	while (len) {
		size_t n = len < sizeof(junk) ? len : sizeof(junk);

		rc = proto_recv(fd, junk, n);
		if (rc)
			return rc;
		len -= n;
	}
	return 0;
}

int proto_sock_setup(int fd, unsigned timeout_ms)
{
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (timeout_ms % 1000) * 1000,
	};
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}
