/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control messages of the pool protocol (doc/pool-protocol.md): OPEN,
 * CLOSE, CREATE, WRITE, COMMIT, ABORT and REMOVE carry the same request
 * and reply bytes over every message transport, so they are built here
 * once, on the transport's round trip (struct pool_ctl): TCP sends them
 * on its socket, RDMA as SEND/RECV messages. Only HELLO (what each side
 * offers) and the page reads (READ messages, RDMA READ) differ.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "rdma/proto.h"
#include "util/err.h"

static int ctl_send_id(struct pool *p, const char *seg, unsigned op,
		       uint32_t id)
{
	struct pool_id m = { .id = id };
	struct iovec out = { &m, sizeof(m) };

	proto_id_swap(&m);
	return p->ctl->call(p, seg, op, &out, 1, NULL, 0);
}

int ctl_seg_open(struct pool *p, struct pool_seg *s)
{
	struct pool_open_rep rep;
	struct iovec out = { s->name, strlen(s->name) };
	int rc;

	rc = p->ctl->call(p, s->name, POOL_OP_OPEN, &out, 1, &rep, sizeof(rep));
	if (rc)
		return rc;
	proto_open_rep_swap(&rep);
	if (!rep.id || rep.size > POOL_MAX_SIZE) {
		p->ctl->drop(p);
		return tier_err(-EPROTO, "pool %s: segment '%s': OPEN answered id %u size %llu",
				p->uri, s->name, rep.id,
				(unsigned long long)rep.size);
	}
	s->id = rep.id;
	s->size = rep.size;
	s->raddr = rep.addr;
	s->rkey = rep.rkey;
	return 0;
}

void ctl_seg_close(struct pool_seg *s)
{
	/* Best effort: a lost connection has closed it on the server. */
	if (s->pool->ctl->up(s->pool))
		ctl_send_id(s->pool, s->name, POOL_OP_CLOSE, s->id);
}

int ctl_create(struct pool *p, struct pool_wseg *w)
{
	struct pool_create_req req = { .size = w->size };
	struct pool_id rep;
	struct iovec out[2] = {
		{ &req, sizeof(req) },
		{ w->name, strlen(w->name) },
	};
	int rc;

	proto_create_req_swap(&req);
	rc = p->ctl->call(p, w->name, POOL_OP_CREATE, out, 2, &rep, sizeof(rep));
	if (rc)
		return rc;
	proto_id_swap(&rep);
	if (!rep.id) {
		p->ctl->drop(p);
		return tier_err(-EPROTO, "pool %s: segment '%s': CREATE answered id 0",
				p->uri, w->name);
	}
	w->id = rep.id;
	return 0;
}

int ctl_write(struct pool_wseg *w, uint64_t off, const void *buf, size_t len)
{
	struct pool *p = w->pool;
	size_t max = p->ctl->max_data(p);
	const char *b = buf;
	int rc;

	while (len) {
		size_t n = len < max ? len : max;
		struct pool_write_req req = { .id = w->id, .off = off };
		struct iovec out[2] = {
			{ &req, sizeof(req) },
			{ (void *)b, n },
		};

		proto_write_req_swap(&req);
		rc = p->ctl->call(p, w->name, POOL_OP_WRITE, out, 2, NULL, 0);
		if (rc)
			return rc;
		b += n;
		off += n;
		len -= n;
	}
	return 0;
}

int ctl_commit(struct pool_wseg *w)
{
	return ctl_send_id(w->pool, w->name, POOL_OP_COMMIT, w->id);
}

void ctl_abort(struct pool_wseg *w)
{
	/* A lost connection has already discarded it on the server. */
	if (w->pool->ctl->up(w->pool))
		ctl_send_id(w->pool, w->name, POOL_OP_ABORT, w->id);
}

int ctl_remove(struct pool *p, const char *name)
{
	struct iovec out = { (void *)name, strlen(name) };

	return p->ctl->call(p, name, POOL_OP_REMOVE, &out, 1, NULL, 0);
}
