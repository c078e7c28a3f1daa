/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The RDMA transport's client (pool=rdma:// of rdma/pool.c) and the
 * helpers it shares with the listener, verbs-server.c: with it the only
 * files that call ibv_* and rdma_* (rdma/verbs-int.h).
 *
 * Control messages are the pool protocol's (rdma/proto.h), one message per
 * SEND into a RECV buffer of V_CTL_SIZE bytes. Data never goes through
 * messages: OPEN answers the address and rkey of the segment's memory on
 * the server, and the client reads ranges with chains of one-sided RDMA
 * READs into a registered bounce buffer, then copies them out, or posts
 * them straight into a caller's registered buffer (verbs-post.c). The server
 * side (verbs-server.c) reuses server.c's request handler (srv_conn_msg).
 *
 * Everything waits with a timeout: CM events by polling the event
 * channel's fd, completions by polling the completion channel's fd. Any
 * error completion or CM error ends the connection (the QP is in error
 * state anyway); later calls fail at once.
 *
 * Not testable on a host without an RDMA device: the guest suite runs it
 * over soft-RoCE (rdma_rxe).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "rdma/proto.h"
#include "rdma/verbs-int.h"
#include "util/err.h"
#include "util/log.h"

/* ------------------------------------------------------------ helpers */

int verbs_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

struct rdma_event_channel *verbs_channel_new(int *rc)
{
	struct rdma_event_channel *ch = rdma_create_event_channel();

	if (!ch) {
		*rc = errno == ENOENT || errno == ENODEV ? -ENODEV : -errno;
		return NULL;
	}
	*rc = verbs_set_nonblock(ch->fd);
	if (*rc) {
		rdma_destroy_event_channel(ch);
		return NULL;
	}
	return ch;
}

/* Waits for @want on @ch; maps the CM's failure events to errnos. */
int verbs_cm_wait(struct rdma_event_channel *ch, enum rdma_cm_event_type want,
		  int timeout_ms)
{
	struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
	struct rdma_cm_event *ev;
	enum rdma_cm_event_type type;

	for (;;) {
		int n = poll(&pfd, 1, timeout_ms);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ETIMEDOUT;
		if (rdma_get_cm_event(ch, &ev)) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		type = ev->event;
		rdma_ack_cm_event(ev);
		if (type == want)
			return 0;
		switch (type) {
		case RDMA_CM_EVENT_REJECTED:
		case RDMA_CM_EVENT_CONNECT_ERROR:
			return -ECONNREFUSED;
		case RDMA_CM_EVENT_ADDR_ERROR:
		case RDMA_CM_EVENT_ROUTE_ERROR:
		case RDMA_CM_EVENT_UNREACHABLE:
			return -EHOSTUNREACH;
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
		case RDMA_CM_EVENT_TIMEWAIT_EXIT:
			return -ECONNRESET;
		default:
			continue;
		}
	}
}


int vcq_create(struct ibv_context *ctx, int cqe, struct vcq *q)
{
	int rc;

	q->cc = ibv_create_comp_channel(ctx);
	if (!q->cc)
		return -errno;
	rc = verbs_set_nonblock(q->cc->fd);
	if (rc)
		return rc;
	q->cq = ibv_create_cq(ctx, cqe, NULL, q->cc, 0);
	if (!q->cq)
		return -errno;
	rc = ibv_req_notify_cq(q->cq, 0);
	return rc ? -rc : 0;
}

void vcq_destroy(struct vcq *q)
{
	if (q->cq)
		ibv_destroy_cq(q->cq);
	if (q->cc)
		ibv_destroy_comp_channel(q->cc);
	q->cq = NULL;
	q->cc = NULL;
}

/*
 * Returns 1..@n completions, -ETIMEDOUT after @timeout_ms (-1: never),
 * -ECANCELED once @stop_fd (or -1) is readable.
 */
int vcq_wait(struct vcq *q, struct ibv_wc *wc, int n, int timeout_ms,
	     int stop_fd)
{
	struct pollfd pfd[2] = {
		{ .fd = q->cc->fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};

	for (;;) {
		struct ibv_cq *cq;
		void *ctx;
		int r = ibv_poll_cq(q->cq, n, wc);

		if (r < 0)
			return -EIO;
		if (r > 0)
			return r;
		r = poll(pfd, stop_fd >= 0 ? 2 : 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (stop_fd >= 0 && pfd[1].revents) {
			/*
			 * A completion that came before the stop goes first: a
			 * peer's last answer (a refusal) precedes its disconnect.
			 */
			r = ibv_poll_cq(q->cq, n, wc);
			if (r)
				return r < 0 ? -EIO : r;
			return -ECANCELED;
		}
		/* Re-arm, then poll again: a completion may have slipped in. */
		if (ibv_get_cq_event(q->cc, &cq, &ctx) == 0)
			ibv_ack_cq_events(cq, 1);
		if (ibv_req_notify_cq(q->cq, 0))
			return -EIO;
	}
}

int verbs_post_recv(struct ibv_qp *qp, uint64_t wr_id, void *buf,
		    uint32_t len, struct ibv_mr *mr)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)buf, .length = len, .lkey = mr->lkey,
	};
	struct ibv_recv_wr wr = { .wr_id = wr_id, .sg_list = &sge, .num_sge = 1 };
	struct ibv_recv_wr *bad;

	return -ibv_post_recv(qp, &wr, &bad);
}

int verbs_post_send(struct ibv_qp *qp, uint64_t wr_id, void *buf,
		    uint32_t len, struct ibv_mr *mr)
{
	struct ibv_sge sge = {
		.addr = (uintptr_t)buf, .length = len, .lkey = mr->lkey,
	};
	struct ibv_send_wr wr = {
		.wr_id = wr_id,
		.sg_list = &sge,
		.num_sge = 1,
		.opcode = IBV_WR_SEND,
		.send_flags = IBV_SEND_SIGNALED,
	};
	struct ibv_send_wr *bad;

	return -ibv_post_send(qp, &wr, &bad);
}

unsigned verbs_timeout_ms(void)
{
	return pool_opt_timeout_ms();
}

/* ------------------------------------------------------------- client */

struct vpool *vp_of(struct pool *p)
{
	return p->priv;
}

void v_break(struct pool *p)
{
	struct vpool *v = vp_of(p);

	if (!v->broken)
		tier_dbg("pool %s: connection lost", p->uri);
	v->broken = true;
}

int v_fail(struct pool *p, const char *seg, unsigned op, int rc,
	   const char *why)
{
	char what[POOL_NAME_MAX + 32] = "";

	v_break(p);
	if (seg)
		snprintf(what, sizeof(what), "segment '%s': ", seg);
	if (why)
		return tier_err(rc, "pool %s: %s%s: %s", p->uri, what,
				proto_op_name(op), why);
	if (rc == -ETIMEDOUT)
		return tier_err(rc, "pool %s: %s%s: no answer from the server within %u ms",
				p->uri, what, proto_op_name(op), vp_of(p)->timeout_ms);
	return tier_err(rc, "pool %s: %s%s: %m", p->uri, what, proto_op_name(op));
}

/* Drains the connection's CM events; true once it is disconnected. */
static bool v_cm_gone(struct vpool *v)
{
	struct rdma_cm_event *ev;
	bool gone = false;

	while (rdma_get_cm_event(v->ch, &ev) == 0) {
		switch (ev->event) {
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
		case RDMA_CM_EVENT_TIMEWAIT_EXIT:
			gone = true;
			break;
		default:
			break;
		}
		rdma_ack_cm_event(ev);
	}
	if (gone)
		v->connected = false;
	return gone;
}

/*
 * Waits for 1..@n completions into @wc; any error completion is fatal,
 * as is a disconnect. The timeout is for a lack of progress.
 */
int v_poll(struct pool *p, const char *seg, unsigned op, struct ibv_wc *wc,
	   int n)
{
	struct vpool *v = vp_of(p);

	for (;;) {
		/* The CM fd too: a dead server's DREQ beats the retry timeout. */
		int i, got = vcq_wait(&v->q, wc, n, v->timeout_ms, v->ch->fd);

		if (got == -ECANCELED) {
			if (v_cm_gone(v))
				return v_fail(p, seg, op, -ECONNRESET,
					      "the server disconnected");
			continue;
		}
		if (got < 0)
			return v_fail(p, seg, op, got, NULL);
		for (i = 0; i < got; i++)
			if (wc[i].status != IBV_WC_SUCCESS)
				return v_fail(p, seg, op, -ECONNRESET,
					      ibv_wc_status_str(wc[i].status));
		return got;
	}
}

/*
 * Waits until the completions of every tag in @want (a mask of 1 << WR_*)
 * have arrived. *@recv_len gets the byte count of a WR_RECV.
 */
static int v_complete(struct pool *p, const char *seg, unsigned op,
		      unsigned want, uint32_t *recv_len)
{
	struct ibv_wc wc[16];

	while (want) {
		int i, n = v_poll(p, seg, op, wc, 16);

		if (n < 0)
			return n;
		for (i = 0; i < n; i++) {
			unsigned tag = wc[i].wr_id & 0xff;

			if (tag == WR_RECV && recv_len)
				*recv_len = wc[i].byte_len;
			want &= ~(1U << tag);
		}
	}
	return 0;
}

/* Same contract as tcp.c's tcp_call, without READ. */
static int vcall(struct pool *p, const char *seg, unsigned op,
		 const struct iovec *req, unsigned nreq, void *rep,
		 size_t rep_len)
{
	struct vpool *v = vp_of(p);
	uint8_t *out = v->ctl, *in = v->ctl + V_CTL_SIZE;
	uint64_t id = v->next_id++;
	struct pool_hdr h;
	size_t len = 0;
	uint32_t got = 0;
	unsigned i;
	int rc;

	/* a posted read's completion must not be taken for the reply's */
	rc = vpost_drain(p, seg);
	if (rc)
		return rc;
	if (v->broken)
		return tier_err(-ECONNRESET, "pool %s: %s%s%sconnection lost earlier",
				p->uri, seg ? "segment '" : "", seg ? seg : "",
				seg ? "': " : "");
	for (i = 0; i < nreq; i++) {
		if (sizeof(h) + len + req[i].iov_len > V_CTL_SIZE)
			return tier_err(-EMSGSIZE, "pool %s: %s message too large",
					p->uri, proto_op_name(op));
		memcpy(out + sizeof(h) + len, req[i].iov_base, req[i].iov_len);
		len += req[i].iov_len;
	}
	proto_hdr_encode(&h, op, id, 0, len);
	memcpy(out, &h, sizeof(h));

	rc = verbs_post_send(v->id->qp, WR_SEND, out, sizeof(h) + len, v->ctl_mr);
	if (rc)
		return v_fail(p, seg, op, rc, NULL);
	rc = v_complete(p, seg, op, 1U << WR_SEND | 1U << WR_RECV, &got);
	if (rc)
		return rc;

	if (got < sizeof(h)) {
		v_break(p);
		return tier_err(-EPROTO, "pool %s: %s: answer of %u bytes",
				p->uri, proto_op_name(op), got);
	}
	memcpy(&h, in, sizeof(h));
	rc = proto_hdr_decode(&h, p->uri);
	if (rc) {
		v_break(p);
		return rc;
	}
	if (h.len != got - sizeof(h) || h.op != (op | POOL_OP_REPLY) ||
	    h.req_id != id) {
		v_break(p);
		return tier_err(-EPROTO, "pool %s: answer %s #%llu of %u bytes to request %s #%llu",
				p->uri, proto_op_name(h.op),
				(unsigned long long)h.req_id, got,
				proto_op_name(op), (unsigned long long)id);
	}
	if (h.status) {
		rc = h.status;
	} else if (h.len != rep_len) {
		v_break(p);
		return tier_err(-EPROTO, "pool %s: %s answer of %u bytes, expected %zu",
				p->uri, proto_op_name(op), h.len, rep_len);
	} else if (rep_len) {
		memcpy(rep, in + sizeof(h), rep_len);
	}
	if (rc) {
		char reason[POOL_MAX_REASON + 1];
		size_t n = h.len < POOL_MAX_REASON ? h.len : POOL_MAX_REASON;

		memcpy(reason, in + sizeof(h), n);
		reason[n] = '\0';
		/* Consumed: the next reply gets the buffer. */
		if (verbs_post_recv(v->id->qp, WR_RECV, in, V_CTL_SIZE, v->ctl_mr))
			v_break(p);
		if (!n)
			return tier_err(rc, "pool %s: %s: %m", p->uri,
					proto_op_name(op));
		return tier_err(rc, "pool %s: %s", p->uri, reason);
	}
	if (verbs_post_recv(v->id->qp, WR_RECV, in, V_CTL_SIZE, v->ctl_mr))
		return v_fail(p, seg, op, -EIO, "cannot post a receive buffer");
	return 0;
}

static void v_close(struct pool *p)
{
	struct vpool *v = vp_of(p);

	if (!v)
		return;
	if (v->connected)
		rdma_disconnect(v->id);
	if (v->qp)
		rdma_destroy_qp(v->id);
	if (v->ctl_mr)
		ibv_dereg_mr(v->ctl_mr);
	if (v->bounce_mr)
		ibv_dereg_mr(v->bounce_mr);
	free(v->ctl);
	free(v->bounce);
	vpost_free(v);
	vcq_destroy(&v->q);
	if (v->pd)
		ibv_dealloc_pd(v->pd);
	if (v->id)
		rdma_destroy_id(v->id);
	if (v->ch)
		rdma_destroy_event_channel(v->ch);
	free(v);
	p->priv = NULL;
}

/* A segment to RDMA READ from needs its address (the rkey may be 0). */
static int v_seg_open(struct pool *p, struct pool_seg *s)
{
	int rc = ctl_seg_open(p, s);

	if (rc)
		return rc;
	if (s->size && !s->raddr) {
		v_break(p);
		return tier_err(-EPROTO, "pool %s: segment '%s': OPEN answered no address for %llu bytes",
				p->uri, s->name, (unsigned long long)s->size);
	}
	return 0;
}

static bool v_up(struct pool *p)
{
	return !vp_of(p)->broken;
}

static size_t v_max_data(struct pool *p)
{
	return vp_of(p)->max_data;
}

static const struct pool_ctl verbs_ctl = {
	.call = vcall,
	.drop = v_break,
	.up = v_up,
	.max_data = v_max_data,
};

/*
 * The read pipeline of one v_readv: the bounce buffer is a ring of RDMA
 * READ landing slots, retired in posting order (an RC send queue completes
 * in order, so a signaled READ's completion says every earlier one is
 * done). Every read is a slot: where its bytes land in the ring and where
 * they go.
 */
struct vread {
	char *dst;
	uint32_t len;
	uint32_t boff;
};

struct vring {
	struct vread r[V_CHAIN];
	uint64_t head, tail;		/* reads posted, retired */
	size_t bhead, bused;		/* bounce: next free byte, bytes held */
	size_t unsig;			/* bytes posted since the last signal */
	unsigned unsig_wr;		/* and READs */
	unsigned i;			/* next iov, and bytes of it posted */
	size_t done;
};

/*
 * Posts as many READs as the ring has slots and bounce bytes for, as one
 * chain. One per V_SIGNAL_BYTES or V_SIGNAL_WRS is signaled, and the
 * chain's last always: so the outstanding reads end with a signaled one
 * (what the wait needs), a slow but live link still shows progress well
 * within the timeout, a 2 MiB batch costs two completion events instead
 * of eight, and a quarter of the ring retires (and is refilled) while the
 * rest is still in flight.
 */
static int v_post_reads(struct pool_seg *s, struct vring *g,
			const struct pool_iov *iov, unsigned n)
{
	struct vpool *v = vp_of(s->pool);
	struct ibv_send_wr wr[V_CHAIN], *bad;
	struct ibv_sge sge[V_CHAIN];
	unsigned nwr = 0;

	while (g->i < n && g->head - g->tail < V_CHAIN &&
	       g->bused < V_BOUNCE_SIZE) {
		size_t left = iov[g->i].len - g->done;
		/* Up to the ring's end, and short of the oldest held byte. */
		size_t room = V_BOUNCE_SIZE - g->bhead;
		size_t take = left < room ? left : room;
		struct vread *r = &g->r[g->head % V_CHAIN];

		if (!left) {
			g->i++;
			g->done = 0;
			continue;
		}
		if (take > V_BOUNCE_SIZE - g->bused)
			take = V_BOUNCE_SIZE - g->bused;
		if (take > V_READ_MAX)
			take = V_READ_MAX;
		*r = (struct vread){
			.dst = (char *)iov[g->i].buf + g->done,
			.len = take,
			.boff = g->bhead,
		};
		sge[nwr] = (struct ibv_sge){
			.addr = (uintptr_t)(v->bounce + g->bhead),
			.length = take,
			.lkey = v->bounce_mr->lkey,
		};
		wr[nwr] = (struct ibv_send_wr){
			.wr_id = WR_READ | g->head << 8,
			.sg_list = &sge[nwr],
			.num_sge = 1,
			.opcode = IBV_WR_RDMA_READ,
			.wr.rdma.remote_addr = s->raddr + iov[g->i].off + g->done,
			.wr.rdma.rkey = s->rkey,
		};
		g->unsig += take;
		if (g->unsig >= V_SIGNAL_BYTES || ++g->unsig_wr == V_SIGNAL_WRS) {
			wr[nwr].send_flags = IBV_SEND_SIGNALED;
			g->unsig = 0;
			g->unsig_wr = 0;
		}
		if (nwr)
			wr[nwr - 1].next = &wr[nwr];
		nwr++;
		g->head++;
		g->bused += take;
		g->bhead = (g->bhead + take) % V_BOUNCE_SIZE;
		g->done += take;
		if (g->done == iov[g->i].len) {
			g->i++;
			g->done = 0;
		}
	}
	if (!nwr)
		return 0;
	wr[nwr - 1].send_flags = IBV_SEND_SIGNALED;
	g->unsig = 0;
	g->unsig_wr = 0;
	return -ibv_post_send(v->id->qp, wr, &bad);
}

/*
 * Streams the ranges through the bounce buffer: READs stay in flight
 * while the completed ones are copied out, and each retired slot makes
 * room for the next READ, so the link does not idle between chains. A
 * range larger than V_READ_MAX is several READs.
 */
static int v_readv(struct pool_seg *s, const struct pool_iov *iov, unsigned n)
{
	struct pool *p = s->pool;
	struct vpool *v = vp_of(p);
	struct vring g = { 0 };
	struct ibv_wc wc[16];
	int rc, k, got;

	rc = vpost_drain(p, s->name);
	if (rc)
		return rc;
	if (v->broken)
		return tier_err(-ECONNRESET, "pool %s: segment '%s': connection lost earlier",
				p->uri, s->name);
	for (;;) {
		rc = v_post_reads(s, &g, iov, n);
		if (rc)
			return v_fail(p, s->name, POOL_OP_READ, rc, NULL);
		if (g.tail == g.head)
			return 0;
		got = v_poll(p, s->name, POOL_OP_READ, wc, 16);
		if (got < 0)
			return got;
		for (k = 0; k < got; k++) {
			uint64_t last = wc[k].wr_id >> 8;

			if ((wc[k].wr_id & 0xff) != WR_READ)
				continue;
			while (g.tail <= last) {
				struct vread *r = &g.r[g.tail % V_CHAIN];

				memcpy(r->dst, v->bounce + r->boff, r->len);
				g.bused -= r->len;
				g.tail++;
			}
		}
	}
}

static const struct pool_ops verbs_ops = {
	.close = v_close,
	.create = ctl_create,
	.write = ctl_write,
	.commit = ctl_commit,
	.abort = ctl_abort,
	.seg_open = v_seg_open,
	.seg_close = ctl_seg_close,
	.readv = v_readv,
	.remove = ctl_remove,
	.mr_reg = vpost_mr_reg,
	.mr_unreg = vpost_mr_unreg,
	.read_post = vpost_read,
	.read_wait = vpost_wait,
};

static int v_hello(struct pool *p)
{
	struct vpool *v = vp_of(p);
	struct pool_hello req = {
		.version = POOL_VERSION,
		.flags = POOL_HELLO_RDMA_READ,
		.max_ranges = POOL_MAX_RANGES,
		.max_data = V_MAX_WRITE,
	}, rep;
	struct iovec out = { &req, sizeof(req) };
	int rc;

	snprintf(req.name, sizeof(req.name), "libtier %s pid %d (rdma)",
		 TIER_VERSION, (int)getpid());
	proto_hello_swap(&req);
	rc = vcall(p, NULL, POOL_OP_HELLO, &out, 1, &rep, sizeof(rep));
	if (rc)
		return rc;
	proto_hello_swap(&rep);
	if (rep.version < 1 || !(rep.flags & POOL_HELLO_RDMA_READ))
		return tier_err(-EPROTO, "pool %s: server (version %u) does not serve RDMA READ",
				p->uri, rep.version);
	p->server_flags = rep.flags;
	v->max_data = V_MAX_WRITE;
	if (rep.max_data && rep.max_data < v->max_data)
		v->max_data = rep.max_data;
	rep.name[sizeof(rep.name) - 1] = '\0';
	tier_dbg("pool %s: connected to '%s' over RDMA", p->uri, rep.name);
	return 0;
}

/*
 * tier_set_pool_opts' rdma_src picks the local address (and so the
 * device) on a host with several, e.g. the two ends of a soft-RoCE veth
 * pair.
 */
static int resolve_src(struct pool *p, const char **ret)
{
	(void)p;
	*ret = pool_opt_rdma_src();
	return 0;
}

/*
 * The first step of v_connect: the CM channel and id, the server's
 * address resolved (which picks the RDMA device) and the route to it.
 * What it made stays in @p for v_close, on failure too.
 */
static int v_resolve(struct pool *p, const struct tier_uri *uri)
{
	struct vpool *v = vp_of(p);
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	}, *res;
	struct sockaddr_storage ss = { 0 };
	const char *src;
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", uri->port);
	rc = getaddrinfo(uri->host, port, &hints, &res);
	if (rc)
		return tier_err(-EHOSTUNREACH, "pool %s: cannot resolve '%s': %s",
				p->uri, uri->host, gai_strerror(rc));
	v->ch = verbs_channel_new(&rc);
	if (!v->ch) {
		freeaddrinfo(res);
		return tier_err(rc, "pool %s: no RDMA device (rdma_cm: %m)", p->uri);
	}
	if (rdma_create_id(v->ch, &v->id, v, RDMA_PS_TCP)) {
		freeaddrinfo(res);
		return tier_err(-errno, "pool %s: rdma_create_id: %m", p->uri);
	}
	rc = resolve_src(p, &src);
	if (!rc && src) {
		struct addrinfo *sres;

		hints.ai_flags |= AI_NUMERICHOST;
		if (getaddrinfo(src, NULL, &hints, &sres)) {
			rc = tier_err(-EINVAL, "pool %s: TIER_POOL_RDMA_SRC '%s' is not an address",
				      p->uri, src);
			freeaddrinfo(res);
			return rc;
		}
		memcpy(&ss, sres->ai_addr, sres->ai_addrlen);
		freeaddrinfo(sres);
	}
	if (!rc)
		rc = rdma_resolve_addr(v->id, src ? (struct sockaddr *)&ss : NULL,
				       res->ai_addr, V_CM_TIMEOUT_MS) ? -errno : 0;
	freeaddrinfo(res);
	if (!rc)
		rc = verbs_cm_wait(v->ch, RDMA_CM_EVENT_ADDR_RESOLVED, V_CM_TIMEOUT_MS + 1000);
	/* No device reaches it: -ENODEV, with the CM's own reason. */
	if (rc)
		return tier_err(rc == -EHOSTUNREACH || rc == -ENODEV ? -ENODEV : rc,
				"pool %s: no RDMA route to the address (%s)",
				p->uri, strerror(-rc));
	rc = rdma_resolve_route(v->id, V_CM_TIMEOUT_MS) ? -errno : 0;
	if (!rc)
		rc = verbs_cm_wait(v->ch, RDMA_CM_EVENT_ROUTE_RESOLVED, V_CM_TIMEOUT_MS + 1000);
	if (rc)
		return tier_err(rc, "pool %s: resolving the route: %m", p->uri);
	return 0;
}

/*
 * The second step: on the device v_resolve found, the protection domain,
 * completion queue and queue pair, the control and bounce buffers
 * registered and the first reply's receive posted; @dev says what the
 * device allows the connection. Left in @p for v_close as well.
 */
static int v_setup_qp(struct pool *p, struct ibv_device_attr *dev)
{
	struct vpool *v = vp_of(p);
	struct ibv_qp_init_attr qa = { 0 };
	int rc;

	if (ibv_query_device(v->id->verbs, dev))
		return tier_err(-errno, "pool %s: ibv_query_device: %m", p->uri);
	v->pd = ibv_alloc_pd(v->id->verbs);
	if (!v->pd)
		return tier_err(-errno, "pool %s: ibv_alloc_pd: %m", p->uri);
	rc = vcq_create(v->id->verbs, V_SEND_WR + 4, &v->q);
	if (rc)
		return tier_err(rc, "pool %s: completion queue: %m", p->uri);
	qa.send_cq = v->q.cq;
	qa.recv_cq = v->q.cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = V_SEND_WR;
	qa.cap.max_recv_wr = 2;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(v->id, v->pd, &qa))
		return tier_err(-errno, "pool %s: rdma_create_qp: %m", p->uri);
	v->qp = true;

	v->ctl = aligned_alloc(4096, 2 * V_CTL_SIZE);
	v->bounce = aligned_alloc(4096, V_BOUNCE_SIZE);
	if (!v->ctl || !v->bounce)
		return tier_err(-ENOMEM, "out of memory");
	v->ctl_mr = ibv_reg_mr(v->pd, v->ctl, 2 * V_CTL_SIZE, IBV_ACCESS_LOCAL_WRITE);
	if (!v->ctl_mr)
		return tier_err(-errno, "pool %s: ibv_reg_mr: %m", p->uri);
	v->bounce_mr = ibv_reg_mr(v->pd, v->bounce, V_BOUNCE_SIZE,
				  IBV_ACCESS_LOCAL_WRITE);
	if (!v->bounce_mr)
		return tier_err(-errno, "pool %s: ibv_reg_mr: %m", p->uri);
	rc = verbs_post_recv(v->id->qp, WR_RECV, v->ctl + V_CTL_SIZE, V_CTL_SIZE,
		       v->ctl_mr);
	if (rc)
		return tier_err(rc, "pool %s: ibv_post_recv: %m", p->uri);
	return 0;
}

static int v_connect(struct pool *p, const struct tier_uri *uri)
{
	struct vpool *v = vp_of(p);
	struct rdma_conn_param cp = { 0 };
	struct ibv_device_attr dev;
	int rc;

	rc = v_resolve(p, uri);
	if (!rc)
		rc = v_setup_qp(p, &dev);
	if (rc)
		return rc;

	cp.initiator_depth = dev.max_qp_init_rd_atom < V_RD_ATOM ?
			     dev.max_qp_init_rd_atom : V_RD_ATOM;
	cp.responder_resources = dev.max_qp_rd_atom < V_RD_ATOM ?
				 dev.max_qp_rd_atom : V_RD_ATOM;
	cp.retry_count = 7;
	cp.rnr_retry_count = 7;
	rc = rdma_connect(v->id, &cp) ? -errno : 0;
	if (!rc)
		rc = verbs_cm_wait(v->ch, RDMA_CM_EVENT_ESTABLISHED, V_CM_TIMEOUT_MS);
	switch (rc) {
	case 0:
		break;
	case -ECONNREFUSED:
		return tier_err(rc, "pool %s: connection refused", p->uri);
	case -ETIMEDOUT:
		return tier_err(rc, "pool %s: connect timed out after %d s",
				p->uri, V_CM_TIMEOUT_MS / 1000);
	default:
		return tier_err(rc, "pool %s: connect: %m", p->uri);
	}
	v->connected = true;
	return 0;
}

int pool_verbs_open(struct pool *p, const struct tier_uri *uri)
{
	struct vpool *v;
	int rc;

	v = calloc(1, sizeof(*v));
	if (!v)
		return tier_err(-ENOMEM, "out of memory");
	v->next_id = 1;
	v->timeout_ms = verbs_timeout_ms();
	p->ops = &verbs_ops;
	p->ctl = &verbs_ctl;
	p->priv = v;
	rc = v_connect(p, uri);
	if (!rc)
		rc = v_hello(p);
	if (rc) {
		v_close(p);
		p->ops = NULL;
		p->ctl = NULL;
		return rc;
	}
	return 0;
}
