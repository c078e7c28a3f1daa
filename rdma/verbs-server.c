/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The RDMA transport's listener (rdma/pool-int.h, pool_verbs_listen and
 * the rest): RDMA CM connections, each with its own protection domain,
 * queue pair and completion thread, whose control messages go to
 * server.c's request handler (srv_conn_msg). Segments are registered in
 * the connection's PD, remote-read only, so an rkey reads nothing on
 * another client's queue pair and dies with its connection.
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

struct vconn {
	struct vconn *next;
	struct vlisten *l;
	struct rdma_cm_id *id;
	/*
	 * The connection's own protection domain: the segments it opens are
	 * registered in it, so their rkeys work on its queue pair and on no
	 * other client's, and die with the connection.
	 */
	struct ibv_pd *pd;
	struct vcq q;
	bool qp;
	uint8_t *rbuf;			/* V_RECV_SLOTS x V_CTL_SIZE */
	struct ibv_mr *rmr;
	uint8_t *sbuf;			/* V_RECV_SLOTS x V_REPLY_SIZE */
	struct ibv_mr *smr;
	struct srv_conn *sc;
	int stop_fd;			/* eventfd: leave the completion loop */
	pthread_t thread;
	bool started;
	int done;			/* atomic */
	char peer[80];
};

struct vlisten {
	struct pool_server *srv;
	char name[320];
	struct rdma_event_channel *ch;
	struct rdma_cm_id *lid;
	struct vconn *conns;		/* touched by the run loop only */
};

/* All of @c but its id and itself: what vconn_setup made, or some of it. */
static void vconn_release(struct vconn *c)
{
	srv_conn_free(c->sc);
	c->sc = NULL;
	if (c->qp)
		rdma_destroy_qp(c->id);
	if (c->rmr)
		ibv_dereg_mr(c->rmr);
	if (c->smr)
		ibv_dereg_mr(c->smr);
	free(c->rbuf);
	free(c->sbuf);
	vcq_destroy(&c->q);
	if (c->pd)
		ibv_dealloc_pd(c->pd);
	c->pd = NULL;
	if (c->stop_fd >= 0)
		close(c->stop_fd);
}

static void vconn_free(struct vconn *c)
{
	vconn_release(c);
	rdma_destroy_id(c->id);
	free(c);
}

/* Serves one connection: RECV a request, SEND the reply, repost. */
static void *vconn_main(void *arg)
{
	struct vconn *c = arg;
	struct ibv_wc wc[8];
	bool close_after = false;

	while (!close_after) {
		int i, n = vcq_wait(&c->q, wc, 8, -1, c->stop_fd);

		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			unsigned slot = wc[i].wr_id % V_RECV_SLOTS;
			uint8_t *msg = c->rbuf + (size_t)slot * V_CTL_SIZE;
			uint8_t *out = c->sbuf + (size_t)slot * V_REPLY_SIZE;
			bool fatal;
			size_t len;

			if (wc[i].status != IBV_WC_SUCCESS) {
				if (wc[i].status != IBV_WC_WR_FLUSH_ERR)
					tier_dbg("pool server: %s: %s", c->peer,
						 ibv_wc_status_str(wc[i].status));
				goto out;
			}
			if (wc[i].opcode != IBV_WC_RECV)
				continue;	/* a reply went out */
			len = srv_conn_msg(c->sc, msg, wc[i].byte_len, out,
					   V_REPLY_SIZE, &fatal);
			/*
			 * The request is consumed; a client has one in flight, so
			 * the slot's reply buffer is free again by its next turn.
			 */
			if (verbs_post_recv(c->id->qp, slot, msg, V_CTL_SIZE, c->rmr) ||
			    verbs_post_send(c->id->qp, V_RECV_SLOTS + slot, out, len, c->smr))
				goto out;
			close_after |= fatal;
		}
	}
	/* Let the -EPROTO answer leave before the disconnect flushes it. */
	if (close_after) {
		int n = vcq_wait(&c->q, wc, 8, 1000, c->stop_fd);

		(void)n;
	}
out:
	rdma_disconnect(c->id);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void peer_of(struct rdma_cm_id *id, char *buf, size_t len)
{
	struct sockaddr *sa = rdma_get_peer_addr(id);
	char host[INET6_ADDRSTRLEN] = "?";
	uint16_t port = ntohs(rdma_get_dst_port(id));

	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, host,
			  sizeof(host));
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
			  host, sizeof(host));
	snprintf(buf, len, "rdma client %s:%u", host, port);
}

/*
 * A new connection's resources on its own PD: its completion
 * queue and queue pair, the request and reply slots registered, a
 * receive posted in every request slot, the stop eventfd and the
 * server's state of the connection. On failure vconn_release undoes it.
 */
static int vconn_setup(struct vconn *c)
{
	struct rdma_cm_id *id = c->id;
	struct ibv_qp_init_attr qa = { 0 };
	struct ibv_pd *pd;
	unsigned i;
	int rc;

	pd = c->pd = ibv_alloc_pd(id->verbs);
	if (!pd)
		return -errno;
	rc = vcq_create(id->verbs, 2 * V_RECV_SLOTS + 4, &c->q);
	if (rc)
		return rc;
	qa.send_cq = c->q.cq;
	qa.recv_cq = c->q.cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = V_RECV_SLOTS + 2;
	qa.cap.max_recv_wr = V_RECV_SLOTS;
	qa.cap.max_send_sge = 1;
	qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(id, pd, &qa))
		return -errno;
	c->qp = true;
	c->rbuf = aligned_alloc(4096, V_RECV_SLOTS * V_CTL_SIZE);
	c->sbuf = aligned_alloc(4096, V_RECV_SLOTS * V_REPLY_SIZE);
	if (!c->rbuf || !c->sbuf)
		return -ENOMEM;
	c->rmr = ibv_reg_mr(pd, c->rbuf, V_RECV_SLOTS * V_CTL_SIZE,
			    IBV_ACCESS_LOCAL_WRITE);
	c->smr = ibv_reg_mr(pd, c->sbuf, V_RECV_SLOTS * V_REPLY_SIZE,
			    IBV_ACCESS_LOCAL_WRITE);
	if (!c->rmr || !c->smr)
		return -errno;
	for (i = 0; i < V_RECV_SLOTS; i++) {
		rc = verbs_post_recv(id->qp, i, c->rbuf + (size_t)i * V_CTL_SIZE,
			       V_CTL_SIZE, c->rmr);
		if (rc)
			return rc;
	}
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0)
		return -errno;
	c->sc = srv_conn_new(c->l->srv, c->peer, c, V_MAX_WRITE);
	if (!c->sc)
		return -ENOMEM;
	return 0;
}

static int vconn_accept(struct vlisten *l, struct rdma_cm_id *id,
			const struct rdma_conn_param *req)
{
	struct rdma_conn_param cp = { 0 };
	struct ibv_device_attr dev;
	struct vconn *c;
	int rc;

	if (ibv_query_device(id->verbs, &dev))
		return -errno;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->l = l;
	c->id = id;
	c->stop_fd = -1;
	peer_of(id, c->peer, sizeof(c->peer));
	rc = vconn_setup(c);
	if (rc)
		goto err;

	cp.responder_resources = req->initiator_depth < dev.max_qp_rd_atom ?
				 req->initiator_depth : dev.max_qp_rd_atom;
	cp.initiator_depth = 0;		/* the server never reads */
	cp.rnr_retry_count = 7;
	if (rdma_accept(id, &cp)) {
		rc = -errno;
		goto err;
	}
	rc = pthread_create(&c->thread, NULL, vconn_main, c);
	if (rc) {
		rdma_disconnect(id);
		rc = -rc;
		goto err;
	}
	c->started = true;
	id->context = c;
	c->next = l->conns;
	l->conns = c;
	return 0;
err:
	/* The caller rejects and destroys the id after acking the event. */
	vconn_release(c);
	free(c);
	return rc;
}

static void vconn_stop(struct vconn *c)
{
	uint64_t one = 1;
	ssize_t n;

	n = write(c->stop_fd, &one, sizeof(one));
	(void)n;
	if (c->started)
		pthread_join(c->thread, NULL);
	vconn_free(c);
}

static void vconn_reap(struct vlisten *l, bool all)
{
	struct vconn **pp = &l->conns, *c;

	while ((c = *pp)) {
		if (!all && !__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		vconn_stop(c);
	}
}

void pool_verbs_event(void *arg)
{
	struct vlisten *l = arg;
	struct rdma_cm_event *ev;

	while (rdma_get_cm_event(l->ch, &ev) == 0) {
		struct rdma_cm_id *reject = NULL;
		struct vconn *c = ev->id->context;

		switch (ev->event) {
		case RDMA_CM_EVENT_CONNECT_REQUEST:
			/* A new id: its context is still the listener's. */
			if (vconn_accept(l, ev->id, &ev->param.conn)) {
				tier_dbg("pool server %s: could not accept a client",
					 l->name);
				reject = ev->id;
			}
			break;
		case RDMA_CM_EVENT_DISCONNECTED:
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			if (ev->id != l->lid && c) {
				uint64_t one = 1;
				ssize_t n = write(c->stop_fd, &one, sizeof(one));

				(void)n;
			}
			break;
		default:
			break;
		}
		rdma_ack_cm_event(ev);
		if (reject) {
			rdma_reject(reject, NULL, 0);
			rdma_destroy_id(reject);
		}
	}
	vconn_reap(l, false);
}

void pool_verbs_revoke(void *arg)
{
	struct vlisten *l = arg;

	for (struct vconn *c = l->conns; c; c = c->next)
		if (c->sc && !__atomic_load_n(&c->done, __ATOMIC_ACQUIRE) &&
		    srv_conn_revoked(c->sc)) {
			tier_log(TIER_LOG_INFO, "pool server %s: %s: key revoked: disconnected",
				 l->name, c->peer);
			rdma_disconnect(c->id);
		}
}

void pool_verbs_disconnect_all(void *arg)
{
	struct vlisten *l = arg;

	vconn_reap(l, true);
}

void pool_verbs_free(void *arg)
{
	struct vlisten *l = arg;

	if (!l)
		return;
	vconn_reap(l, true);
	if (l->lid)
		rdma_destroy_id(l->lid);
	if (l->ch)
		rdma_destroy_event_channel(l->ch);
	free(l);
}

int pool_verbs_listen(struct pool_server *srv, const struct tier_uri *uri,
		      const char *name, void **ret, int *ret_fd,
		      uint16_t *ret_port)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	}, *res;
	struct vlisten *l;
	char port[8];
	int rc;

	l = calloc(1, sizeof(*l));
	if (!l)
		return tier_err(-ENOMEM, "out of memory");
	l->srv = srv;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->ch = verbs_channel_new(&rc);
	if (!l->ch) {
		rc = tier_err(rc, "pool server %s: no RDMA device (rdma_cm: %m)", name);
		goto err;
	}
	if (rdma_create_id(l->ch, &l->lid, l, RDMA_PS_TCP)) {
		rc = tier_err(-errno, "pool server %s: rdma_create_id: %m", name);
		goto err;
	}
	snprintf(port, sizeof(port), "%u", uri->port);
	rc = getaddrinfo(uri->host[0] ? uri->host : NULL, port, &hints, &res);
	if (rc) {
		rc = tier_err(-EADDRNOTAVAIL, "pool server %s: cannot resolve '%s': %s",
			      name, uri->host, gai_strerror(rc));
		goto err;
	}
	rc = rdma_bind_addr(l->lid, res->ai_addr) ? -errno : 0;
	freeaddrinfo(res);
	if (rc) {
		rc = tier_err(rc, "pool server %s: bind: %m", name);
		goto err;
	}
	if (rdma_listen(l->lid, 128)) {
		rc = tier_err(-errno, "pool server %s: listen: %m", name);
		goto err;
	}
	*ret_port = ntohs(rdma_get_src_port(l->lid));
	*ret_fd = l->ch->fd;
	*ret = l;
	return 0;
err:
	pool_verbs_free(l);
	return rc;
}

int pool_verbs_reg(void *verbs, void *mem, uint64_t len, void **ret,
		   uint32_t *ret_rkey)
{
	struct vconn *c = verbs;
	struct ibv_mr *mr;

	/* Remote read only: a client can never change a segment. */
	mr = ibv_reg_mr(c->pd, mem, len, IBV_ACCESS_REMOTE_READ);
	if (!mr)
		return tier_err(-errno, "ibv_reg_mr of %llu bytes: %m",
				(unsigned long long)len);
	*ret = mr;
	*ret_rkey = mr->rkey;
	return 0;
}

void pool_verbs_unreg(void *mr)
{
	if (mr)
		ibv_dereg_mr(mr);
}
