/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The RDMA client's posted reads (pool_read_post, rdma/pool.h): one-sided
 * READs straight into a buffer the caller registered, queued across
 * posts, so a caller keeps the next batch in flight while it verifies and
 * installs the one that arrived. v_readv instead reads through the
 * connection's bounce buffer and copies out: a copy of every byte, and
 * the link idles from a call's last completion to the next call.
 *
 * Every READ has a sequence number; a post's ticket is the number after
 * its last READ. The send queue completes in order, so a signaled READ's
 * completion retires every READ before it: one READ in V_SIGNAL_BYTES or
 * V_SIGNAL_WRS is signaled, and each post's last, so a wait for a ticket
 * ends with that post's own completion rather than with the next post's.
 * At most V_CHAIN READs are on the send queue; the rest wait here and are
 * posted as completions make room, in every wait.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <infiniband/verbs.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "rdma/verbs-int.h"
#include "util/err.h"

struct vpend {
	uint64_t raddr, laddr;
	uint32_t len, lkey, rkey;
	bool last;			/* a post's last READ */
};

struct vpost {
	struct vpend *q;		/* ring: READs queued, not yet retired */
	size_t cap;			/* a power of two */
	uint64_t queued, posted, retired;	/* sequence numbers */
	size_t unsig;			/* bytes posted since a signal */
	unsigned unsig_wr;		/* and READs */
};

int vpost_mr_reg(struct pool *p, struct pool_mr *mr)
{
	struct vpool *v = vp_of(p);
	struct ibv_mr *m;

	if (v->broken)
		return tier_err(-ECONNRESET, "pool %s: connection lost earlier",
				p->uri);
	m = ibv_reg_mr(v->pd, mr->base, mr->len, IBV_ACCESS_LOCAL_WRITE);
	if (!m)
		return tier_err(-errno, "pool %s: ibv_reg_mr of %zu bytes: %m",
				p->uri, mr->len);
	mr->priv = m;
	mr->lkey = m->lkey;
	return 0;
}

void vpost_mr_unreg(struct pool_mr *mr)
{
	if (mr->priv)
		ibv_dereg_mr(mr->priv);
	mr->priv = NULL;
}

void vpost_free(struct vpool *v)
{
	if (!v->post)
		return;
	free(v->post->q);
	free(v->post);
	v->post = NULL;
}

/* Room in the ring for @n more READs, keeping their order. */
static int vpost_room(struct vpost *g, size_t n)
{
	size_t cap = g->cap ? g->cap : 256;
	struct vpend *q;
	uint64_t s;

	while (g->queued - g->retired + n > cap)
		cap *= 2;
	if (cap == g->cap)
		return 0;
	q = malloc(cap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	for (s = g->retired; s < g->queued; s++)
		q[s & (cap - 1)] = g->q[s & (g->cap - 1)];
	free(g->q);
	g->q = q;
	g->cap = cap;
	return 0;
}

/* Posts queued READs while the send queue has room, as one chain. */
static int vpost_push(struct pool *p, const char *seg)
{
	struct vpool *v = vp_of(p);
	struct vpost *g = v->post;
	struct ibv_send_wr wr[V_CHAIN], *bad;
	struct ibv_sge sge[V_CHAIN];
	unsigned nwr = 0;
	int rc;

	while (g->posted < g->queued && g->posted - g->retired < V_CHAIN) {
		const struct vpend *r = &g->q[g->posted & (g->cap - 1)];

		sge[nwr] = (struct ibv_sge){
			.addr = r->laddr, .length = r->len, .lkey = r->lkey,
		};
		wr[nwr] = (struct ibv_send_wr){
			.wr_id = WR_PREAD | g->posted << 8,
			.sg_list = &sge[nwr],
			.num_sge = 1,
			.opcode = IBV_WR_RDMA_READ,
			.wr.rdma.remote_addr = r->raddr,
			.wr.rdma.rkey = r->rkey,
		};
		g->unsig += r->len;
		if (r->last || g->unsig >= V_SIGNAL_BYTES ||
		    ++g->unsig_wr == V_SIGNAL_WRS) {
			wr[nwr].send_flags = IBV_SEND_SIGNALED;
			g->unsig = 0;
			g->unsig_wr = 0;
		}
		if (nwr)
			wr[nwr - 1].next = &wr[nwr];
		nwr++;
		g->posted++;
	}
	if (!nwr)
		return 0;
	/* the READs in flight end with a signaled one, which a wait needs */
	wr[nwr - 1].send_flags = IBV_SEND_SIGNALED;
	g->unsig = 0;
	g->unsig_wr = 0;
	rc = -ibv_post_send(v->id->qp, wr, &bad);
	return rc ? v_fail(p, seg, POOL_OP_READ, rc, NULL) : 0;
}

int vpost_read(struct pool_seg *s, const struct pool_iov *iov, unsigned n,
	       struct pool_mr *mr, uint64_t *ticket)
{
	struct pool *p = s->pool;
	struct vpool *v = vp_of(p);
	struct vpost *g;
	size_t nr = 0;
	unsigned i;

	if (v->broken)
		return tier_err(-ECONNRESET, "pool %s: segment '%s': connection lost earlier",
				p->uri, s->name);
	if (!v->post) {
		v->post = calloc(1, sizeof(*v->post));
		if (!v->post)
			return tier_err(-ENOMEM, "out of memory");
	}
	g = v->post;
	for (i = 0; i < n; i++)
		nr += (iov[i].len + V_READ_MAX - 1) / V_READ_MAX;
	if (vpost_room(g, nr))
		return tier_err(-ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		size_t done = 0;

		while (done < iov[i].len) {
			size_t take = iov[i].len - done;

			if (take > V_READ_MAX)
				take = V_READ_MAX;
			g->q[g->queued++ & (g->cap - 1)] = (struct vpend){
				.raddr = s->raddr + iov[i].off + done,
				.laddr = (uintptr_t)iov[i].buf + done,
				.len = take,
				.lkey = mr->lkey,
				.rkey = s->rkey,
			};
			done += take;
		}
	}
	if (g->queued > g->retired)
		g->q[(g->queued - 1) & (g->cap - 1)].last = true;
	*ticket = g->queued;
	return vpost_push(p, s->name);
}

/* Until every READ before sequence number @upto has arrived. */
static int vpost_until(struct pool *p, const char *seg, uint64_t upto)
{
	struct vpool *v = vp_of(p);
	struct vpost *g = v->post;
	struct ibv_wc wc[16];
	int rc, k, got;

	while (g->retired < upto) {
		if (v->broken)
			return tier_err(-ECONNRESET, "pool %s: %s%s%sconnection lost earlier",
					p->uri, seg ? "segment '" : "",
					seg ? seg : "", seg ? "': " : "");
		rc = vpost_push(p, seg);
		if (rc)
			return rc;
		got = v_poll(p, seg, POOL_OP_READ, wc, 16);
		if (got < 0)
			return got;
		for (k = 0; k < got; k++) {
			uint64_t last = wc[k].wr_id >> 8;

			if ((wc[k].wr_id & 0xff) == WR_PREAD &&
			    last + 1 > g->retired)
				g->retired = last + 1;
		}
	}
	/* the next posts' READs go out before the caller turns to the bytes */
	return vpost_push(p, seg);
}

int vpost_wait(struct pool_seg *s, uint64_t ticket)
{
	struct vpool *v = vp_of(s->pool);

	if (!v->post || ticket > v->post->queued)
		return tier_err(-EINVAL, "pool %s: segment '%s': wait for reads never posted",
				s->pool->uri, s->name);
	return vpost_until(s->pool, s->name, ticket);
}

int vpost_drain(struct pool *p, const char *seg)
{
	struct vpool *v = vp_of(p);

	if (!v->post || v->post->retired == v->post->queued)
		return 0;
	return vpost_until(p, seg, v->post->queued);
}
