/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool protocol over TCP, client side: the pool=tcp:// transport of
 * rdma/pool.c (the server side is server.c). One connection per pool
 * handle, one request in flight: a READ carries up to POOL_MAX_RANGES
 * ranges, and its reply is received straight into the caller's buffers.
 * Any I/O or framing error closes the connection (the stream can no longer
 * be trusted to be in step); later calls then fail at once rather than
 * hang. An error *status* from the server leaves the connection usable.
 * A READ whose connection the server closed (killed, restarted) is tried
 * once more on a new connection, the segment opened again by its name
 * (tcp_reconnect says when that is safe).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "rdma/proto.h"
#include "util/err.h"
#include "util/log.h"

#define TCP_CONNECT_TIMEOUT_MS	3000

struct tcp_pool {
	int fd;			/* -1 once the connection is lost */
	uint64_t next_id;
	unsigned max_ranges;	/* the smaller of both ends' limits */
	unsigned max_data;
	char server[64];	/* from its HELLO, for debug lines */
	struct pool_range *ranges;	/* READ scratch, max_ranges each */
	struct iovec *riov;
	struct iovec *riov0;	/* riov before a READ consumed it */
	struct tier_uri uri;	/* to connect again */
	unsigned nsegs;		/* segments open on this handle */
};

static struct tcp_pool *tp_of(struct pool *p)
{
	return p->priv;
}

/* tier_set_pool_opts may change it (slow links; tests that stall a
 * server) */
static unsigned io_timeout_ms(void)
{
	return pool_opt_timeout_ms();
}

static void tcp_drop(struct pool *p)
{
	struct tcp_pool *tp = tp_of(p);

	if (tp->fd >= 0) {
		tier_dbg("pool %s: closing the connection", p->uri);
		close(tp->fd);
		tp->fd = -1;
	}
}

/* Names the failure of an exchange that cost us the connection. */
static int io_fail(struct pool *p, const char *seg, unsigned op, int rc)
{
	char what[POOL_NAME_MAX + 32] = "";
	const char *why;

	tcp_drop(p);
	if (seg)
		snprintf(what, sizeof(what), "segment '%s': ", seg);
	switch (rc) {
	case -ECONNRESET:
	case -EPIPE:
		why = "connection closed by the server";
		break;
	case -ETIMEDOUT:
		return tier_err(rc, "pool %s: %s%s: no answer from the server within %u ms",
				p->uri, what, proto_op_name(op), io_timeout_ms());
	default:
		return tier_err(rc, "pool %s: %s%s: %m", p->uri, what,
				proto_op_name(op));
	}
	return tier_err(rc, "pool %s: %s%s: %s", p->uri, what,
			proto_op_name(op), why);
}

/*
 * One request, one reply. The request is @req[0..nreq); a successful
 * reply must carry exactly @rep_len bytes, received into @rep[0..nrep)
 * (both vectors are consumed). An error reply returns its status with the
 * server's reason.
 */
static int tcp_call(struct pool *p, const char *seg, unsigned op,
		    struct iovec *req, unsigned nreq,
		    struct iovec *rep, unsigned nrep, size_t rep_len)
{
	struct tcp_pool *tp = tp_of(p);
	struct iovec out[3];
	struct pool_hdr h;
	char reason[POOL_MAX_REASON + 1];
	uint64_t id = tp->next_id++;
	size_t len = 0;
	unsigned i;
	int rc;

	if (tp->fd < 0)
		return tier_err(-ECONNRESET, "pool %s: %s%s%sconnection lost earlier",
				p->uri, seg ? "segment '" : "", seg ? seg : "",
				seg ? "': " : "");
	for (i = 0; i < nreq; i++)
		len += req[i].iov_len;
	proto_hdr_encode(&h, op, id, 0, len);

	/* The header and up to two payload parts go out in one sendmsg. */
	out[0] = (struct iovec){ &h, sizeof(h) };
	for (i = 0; i < nreq && i < 2; i++)
		out[1 + i] = req[i];
	rc = proto_send_all(tp->fd, out, 1 + i);
	if (!rc && nreq > 2)
		rc = proto_send_all(tp->fd, req + 2, nreq - 2);
	if (rc)
		return io_fail(p, seg, op, rc);

	rc = proto_recv(tp->fd, &h, sizeof(h));
	if (rc)
		return io_fail(p, seg, op, rc);
	rc = proto_hdr_decode(&h, p->uri);
	if (rc) {
		tcp_drop(p);
		return rc;
	}
	if (h.op != (op | POOL_OP_REPLY) || h.req_id != id) {
		tcp_drop(p);
		return tier_err(-EPROTO, "pool %s: answer %s #%llu to request %s #%llu",
				p->uri, proto_op_name(h.op),
				(unsigned long long)h.req_id, proto_op_name(op),
				(unsigned long long)id);
	}
	if (h.status) {
		if (h.len > POOL_MAX_REASON) {
			tcp_drop(p);
			return tier_err(-EPROTO, "pool %s: %s: error reason of %u bytes",
					p->uri, proto_op_name(op), h.len);
		}
		rc = proto_recv(tp->fd, reason, h.len);
		if (rc)
			return io_fail(p, seg, op, rc);
		reason[h.len] = '\0';
		if (!h.len)
			return tier_err(h.status, "pool %s: %s: %m", p->uri,
					proto_op_name(op));
		return tier_err(h.status, "pool %s: %s", p->uri, reason);
	}
	if (h.len != rep_len) {
		tcp_drop(p);
		return tier_err(-EPROTO, "pool %s: %s%s%s%s answer of %u bytes, expected %zu",
				p->uri, seg ? "segment '" : "", seg ? seg : "",
				seg ? "': " : "", proto_op_name(op), h.len, rep_len);
	}
	rc = proto_recv_all(tp->fd, rep, nrep);
	if (rc)
		return io_fail(p, seg, op, rc);
	return 0;
}

static int tcp_hello(struct pool *p)
{
	struct tcp_pool *tp = tp_of(p);
	struct pool_hello req = {
		.version = POOL_VERSION,
		.max_ranges = POOL_MAX_RANGES,
		.max_data = POOL_MAX_DATA,
	}, rep;
	struct iovec out = { &req, sizeof(req) };
	struct iovec in = { &rep, sizeof(rep) };
	int rc;

	snprintf(req.name, sizeof(req.name), "libtier %s pid %d",
		 TIER_VERSION, (int)getpid());
	proto_hello_swap(&req);
	rc = tcp_call(p, NULL, POOL_OP_HELLO, &out, 1, &in, 1, sizeof(rep));
	if (rc)
		return rc;
	proto_hello_swap(&rep);
	if (rep.version < 1)
		return tier_err(-EPROTO, "pool %s: server speaks version %u",
				p->uri, rep.version);
	p->server_flags = rep.flags;
	memcpy(tp->server, rep.name, sizeof(tp->server));
	tp->server[sizeof(tp->server) - 1] = '\0';
	tp->max_ranges = POOL_MAX_RANGES;
	tp->max_data = POOL_MAX_DATA;
	if (rep.max_ranges && rep.max_ranges < tp->max_ranges)
		tp->max_ranges = rep.max_ranges;
	if (rep.max_data && rep.max_data < tp->max_data)
		tp->max_data = rep.max_data;
	tier_dbg("pool %s: connected to '%s' (%u ranges, %u bytes a READ)",
		 p->uri, tp->server, tp->max_ranges, tp->max_data);
	return 0;
}

/* Non-blocking connect so a black-holed address fails in seconds. */
static int connect_one(const struct addrinfo *ai, int *ret_fd)
{
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, err = 0, flags;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto fail;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		for (;;) {
			int n = poll(&pfd, 1, TCP_CONNECT_TIMEOUT_MS);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				err = errno;
				goto fail;
			}
			if (n == 0) {
				err = ETIMEDOUT;
				goto fail;
			}
			break;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
			err = errno;
		if (err)
			goto fail;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		err = errno;
		goto fail;
	}
	*ret_fd = fd;
	return 0;
fail:
	close(fd);
	return -err;
}

static int tcp_connect(struct pool *p, const struct tier_uri *uri, int *ret_fd)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	}, *res, *ai;
	char port[8];
	int rc, fd = -1;

	snprintf(port, sizeof(port), "%u", uri->port);
	rc = getaddrinfo(uri->host, port, &hints, &res);
	if (rc)
		return tier_err(-EHOSTUNREACH, "pool %s: cannot resolve '%s': %s",
				p->uri, uri->host, gai_strerror(rc));
	rc = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		rc = connect_one(ai, &fd);
		if (!rc)
			break;
	}
	freeaddrinfo(res);

	switch (rc) {
	case 0:
		break;
	case -ECONNREFUSED:
		return tier_err(rc, "pool %s: connection refused", p->uri);
	case -ETIMEDOUT:
		return tier_err(rc, "pool %s: connect timed out after %d s",
				p->uri, TCP_CONNECT_TIMEOUT_MS / 1000);
	default:
		return tier_err(rc, "pool %s: connect: %m", p->uri);
	}
	rc = proto_sock_setup(fd, io_timeout_ms());
	if (rc) {
		close(fd);
		return tier_err(rc, "pool %s: setsockopt: %m", p->uri);
	}
	*ret_fd = fd;
	return 0;
}

static void tcp_close(struct pool *p)
{
	struct tcp_pool *tp = tp_of(p);

	tcp_drop(p);
	free(tp->ranges);
	free(tp->riov);
	free(tp->riov0);
	free(tp);
}

/* The control operations' round trip (ctl.c): one reply buffer. */
static int tcp_ctl_call(struct pool *p, const char *seg, unsigned op,
			const struct iovec *req, unsigned nreq, void *rep,
			size_t rep_len)
{
	struct iovec out[2], in = { rep, rep_len };
	unsigned i;

	if (nreq > 2)
		return tier_err(-EINVAL, "pool %s: %s of %u parts", p->uri,
				proto_op_name(op), nreq);
	for (i = 0; i < nreq; i++)	/* sending advances them */
		out[i] = req[i];
	return tcp_call(p, seg, op, out, nreq, rep_len ? &in : NULL,
			rep_len ? 1 : 0, rep_len);
}

static bool tcp_up(struct pool *p)
{
	return tp_of(p)->fd >= 0;
}

static size_t tcp_max_data(struct pool *p)
{
	return tp_of(p)->max_data;
}

static const struct pool_ctl tcp_ctl = {
	.call = tcp_ctl_call,
	.drop = tcp_drop,
	.up = tcp_up,
	.max_data = tcp_max_data,
};

static int tcp_seg_open(struct pool *p, struct pool_seg *s)
{
	int rc = ctl_seg_open(p, s);

	if (!rc)
		tp_of(p)->nsegs++;
	return rc;
}

static void tcp_seg_close(struct pool_seg *s)
{
	tp_of(s->pool)->nsegs--;
	ctl_seg_close(s);
}

/*
 * The server closed the connection: connect again and open @s again by
 * its name. Only for a handle with @s its one open segment: the new
 * server numbers segments afresh, so another segment's old id could name
 * a different one there. A plan's segment name carries its generation,
 * so the same name is the same bytes (and the restorer checks every
 * page); a size that changed is refused.
 */
static int tcp_reconnect(struct pool_seg *s, unsigned nr, size_t bytes)
{
	struct pool *p = s->pool;
	struct tcp_pool *tp = tp_of(p);
	uint64_t size = s->size;
	int rc;

	if (tp->nsegs != 1)
		return tier_err(-ECONNRESET, "other segments open");
	tcp_drop(p);
	rc = tcp_connect(p, &tp->uri, &tp->fd);
	if (!rc)
		rc = tcp_hello(p);
	if (!rc)
		rc = pool_auth(p);
	if (!rc)
		rc = ctl_seg_open(p, s);
	if (rc)
		return rc;
	if (s->size != size) {
		tcp_drop(p);
		return tier_err(-ESTALE, "segment '%s' is %llu bytes there now, was %llu",
				s->name, (unsigned long long)s->size,
				(unsigned long long)size);
	}
	if (nr > tp->max_ranges || bytes > tp->max_data) {
		tcp_drop(p);
		return tier_err(-EPROTO, "the new server takes fewer ranges or bytes a READ");
	}
	return 0;
}

static int read_batch(struct pool_seg *s, unsigned nr, size_t bytes)
{
	struct tcp_pool *tp = tp_of(s->pool);
	struct pool_read_req req = { .nr = nr };
	struct iovec out[2] = {
		{ &req, sizeof(req) },
		{ tp->ranges, nr * sizeof(*tp->ranges) },
	};
	struct pool_range id;
	char why[512];
	bool lost;
	unsigned i;
	int rc;

	proto_read_req_swap(&req);
	memcpy(tp->riov0, tp->riov, nr * sizeof(*tp->riov));
	lost = tp->fd < 0;
	rc = tcp_call(s->pool, s->name, POOL_OP_READ, out, 2,
		      tp->riov, nr, bytes);
	/* once a call: a connection lost earlier fails at once */
	if ((rc != -ECONNRESET && rc != -EPIPE) || lost)
		return rc;

	snprintf(why, sizeof(why), "%s", tier_errmsg());
	if (tcp_reconnect(s, nr, bytes)) {
		char again[256];	/* tier_err writes where errmsg points */

		snprintf(again, sizeof(again), "%s", tier_errmsg());
		return tier_err(rc, "%s; reconnecting: %s", why, again);
	}
	tier_dbg("pool %s: segment '%s': connected again after: %s",
		 s->pool->uri, s->name, why);
	/* the ranges are in wire order: so is the new id */
	id = (struct pool_range){ .id = s->id };
	proto_range_swap(&id);
	for (i = 0; i < nr; i++)
		tp->ranges[i].id = id.id;
	out[0] = (struct iovec){ &req, sizeof(req) };
	out[1] = (struct iovec){ tp->ranges, nr * sizeof(*tp->ranges) };
	memcpy(tp->riov, tp->riov0, nr * sizeof(*tp->riov));
	return tcp_call(s->pool, s->name, POOL_OP_READ, out, 2,
			tp->riov, nr, bytes);
}

/*
 * Packs @iov into READs of at most max_ranges ranges and max_data bytes
 * (a range longer than a READ may carry is split across several) and
 * sends each through @batch. Only stores and calls: the signal-safe read
 * shares it.
 */
static int split_reads(struct pool_seg *s, const struct pool_iov *iov,
		       unsigned n,
		       int (*batch)(struct pool_seg *, unsigned, size_t, void *),
		       void *arg)
{
	struct tcp_pool *tp = tp_of(s->pool);
	unsigned i, nr = 0;
	size_t bytes = 0;
	int rc;

	for (i = 0; i < n; i++) {
		char *b = iov[i].buf;
		uint64_t off = iov[i].off;
		size_t len = iov[i].len;

		while (len) {
			size_t room = tp->max_data - bytes;
			size_t take = len < room ? len : room;
			struct pool_range *r = &tp->ranges[nr];

			r->off = off;
			r->len = take;
			r->id = s->id;
			proto_range_swap(r);
			tp->riov[nr] = (struct iovec){ b, take };
			nr++;
			bytes += take;
			b += take;
			off += take;
			len -= take;
			if (nr == tp->max_ranges || bytes == tp->max_data) {
				rc = batch(s, nr, bytes, arg);
				if (rc)
					return rc;
				nr = 0;
				bytes = 0;
			}
		}
	}
	return nr ? batch(s, nr, bytes, arg) : 0;
}

static int read_batch_cb(struct pool_seg *s, unsigned nr, size_t bytes,
			 void *arg)
{
	(void)arg;
	return read_batch(s, nr, bytes);
}

static int tcp_readv(struct pool_seg *s, const struct pool_iov *iov,
		     unsigned n)
{
	return split_reads(s, iov, n, read_batch_cb, NULL);
}

/*
 * tcp_readv for a signal handler (pool_readv_sigsafe): the same READ on
 * the wire, through the handle's own scratch (ranges, riov: allocated
 * at open) and sendmsg/recvmsg only. What it leaves out is what is not
 * async-signal-safe: tier_err and the debug log (vsnprintf, locks), and
 * the reconnect of read_batch (getaddrinfo allocates). A lost or
 * garbled connection is closed (close is safe) and stays lost.
 */
static int sig_fail(struct tcp_pool *tp, struct sigstr *why, const char *what,
		    int rc)
{
	if (tp->fd >= 0) {
		close(tp->fd);
		tp->fd = -1;
	}
	ss_str(why, "READ: ");
	if (what) {
		ss_str(why, what);
		return rc;
	}
	if (rc == -ECONNRESET || rc == -EPIPE)
		ss_str(why, "connection closed by the server");
	else if (rc == -ETIMEDOUT)
		ss_str(why, "no answer from the server in time");
	else
		ss_errno(why, rc);
	return rc;
}

static int sig_batch(struct pool_seg *s, unsigned nr, size_t bytes,
		     struct sigstr *why)
{
	struct tcp_pool *tp = tp_of(s->pool);
	struct pool_read_req req = { .nr = nr };
	uint64_t id = tp->next_id++;
	struct pool_hdr h;
	char reason[POOL_MAX_REASON + 1];
	struct iovec out[3] = {
		{ &h, sizeof(h) },
		{ &req, sizeof(req) },
		{ tp->ranges, nr * sizeof(*tp->ranges) },
	};
	uint32_t len;
	int rc;

	if (tp->fd < 0)
		return sig_fail(tp, why, "connection lost earlier", -ECONNRESET);
	proto_read_req_swap(&req);
	proto_hdr_encode(&h, POOL_OP_READ, id, 0,
			 sizeof(req) + nr * sizeof(*tp->ranges));
	rc = proto_send_all(tp->fd, out, 3);
	if (!rc)
		rc = proto_recv(tp->fd, &h, sizeof(h));
	if (rc)
		return sig_fail(tp, why, NULL, rc);
	/* proto_hdr_decode's checks, without its message */
	len = le32toh(h.len);
	if (le32toh(h.magic) != POOL_MAGIC ||
	    le16toh(h.version) != POOL_VERSION ||
	    le16toh(h.op) != (POOL_OP_READ | POOL_OP_REPLY) ||
	    le64toh(h.req_id) != id || h.reserved)
		return sig_fail(tp, why, "not the answer to this request", -EPROTO);
	h.status = (int32_t)le32toh((uint32_t)h.status);
	if (h.status) {
		if (h.status > 0 || h.status < -4095 || len > POOL_MAX_REASON)
			return sig_fail(tp, why, "bad error answer", -EPROTO);
		rc = proto_recv(tp->fd, reason, len);
		if (rc)
			return sig_fail(tp, why, NULL, rc);
		reason[len] = '\0';
		ss_str(why, "READ: ");
		if (len)
			ss_str(why, reason);
		else
			ss_errno(why, h.status);
		return h.status;
	}
	if (len != bytes)
		return sig_fail(tp, why, "answer of the wrong size", -EPROTO);
	rc = proto_recv_all(tp->fd, tp->riov, nr);
	if (rc)
		return sig_fail(tp, why, NULL, rc);
	return 0;
}

static int sig_batch_cb(struct pool_seg *s, unsigned nr, size_t bytes,
			void *why)
{
	return sig_batch(s, nr, bytes, why);
}

static int tcp_readv_sigsafe(struct pool_seg *s, const struct pool_iov *iov,
			     unsigned n, struct sigstr *why)
{
	return split_reads(s, iov, n, sig_batch_cb, why);
}

static const struct pool_ops tcp_ops = {
	.close = tcp_close,
	.create = ctl_create,
	.write = ctl_write,
	.commit = ctl_commit,
	.abort = ctl_abort,
	.seg_open = tcp_seg_open,
	.seg_close = tcp_seg_close,
	.readv = tcp_readv,
	.readv_sigsafe = tcp_readv_sigsafe,
	.remove = ctl_remove,
};

int pool_tcp_open(struct pool *p, const struct tier_uri *uri)
{
	struct tcp_pool *tp;
	int rc;

	tp = calloc(1, sizeof(*tp));
	if (!tp)
		return tier_err(-ENOMEM, "out of memory");
	tp->ranges = calloc(POOL_MAX_RANGES, sizeof(*tp->ranges));
	tp->riov = calloc(POOL_MAX_RANGES, sizeof(*tp->riov));
	tp->riov0 = calloc(POOL_MAX_RANGES, sizeof(*tp->riov0));
	tp->next_id = 1;
	tp->fd = -1;
	p->ops = &tcp_ops;
	p->ctl = &tcp_ctl;
	p->priv = tp;
	if (!tp->ranges || !tp->riov || !tp->riov0) {
		rc = tier_err(-ENOMEM, "out of memory");
		goto err;
	}
	tp->uri = *uri;
	rc = tcp_connect(p, uri, &tp->fd);
	if (rc)
		goto err;
	rc = tcp_hello(p);
	if (rc)
		goto err;
	return 0;
err:
	tcp_close(p);
	p->ops = NULL;
	p->ctl = NULL;
	p->priv = NULL;
	return rc;
}
