/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_VERBS_INT_H
#define TIER_VERBS_INT_H

/*
 * Private to the RDMA transport's files: verbs.c (the client, and the
 * helpers below), verbs-post.c (the client's posted reads) and
 * verbs-server.c (the listener). They are the only files that call ibv_*
 * and rdma_*.
 */

#include <stdbool.h>
#include <stdint.h>

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include "rdma/proto.h"

#define V_CTL_SIZE	(64U * 1024)	/* one control message, either way */
#define V_MAX_WRITE	(V_CTL_SIZE - sizeof(struct pool_hdr) - sizeof(struct pool_write_req))
#define V_BOUNCE_SIZE	(4U << 20)	/* client: RDMA READ landing area */
#define V_CHAIN		64		/* RDMA READs in flight at most */
#define V_READ_MAX	(256U << 10)	/* bytes per RDMA READ */
#define V_SIGNAL_BYTES	(1U << 20)	/* READ bytes per signaled completion, */
#define V_SIGNAL_WRS	(V_CHAIN / 4)	/* or READs, whichever comes first */
#define V_SEND_WR	(V_CHAIN + 4)
#define V_RECV_SLOTS	4		/* server: receive buffers per connection */
#define V_REPLY_SIZE	512		/* server: a reply, never READ data */
#define V_RD_ATOM	16		/* outstanding RDMA READs we ask for */
#define V_CM_TIMEOUT_MS	3000

enum { WR_SEND = 1, WR_RECV, WR_READ, WR_PREAD };

/* A completion queue with its channel, waited on with a timeout. */
struct vcq {
	struct ibv_comp_channel *cc;
	struct ibv_cq *cq;
};

int verbs_set_nonblock(int fd);
struct rdma_event_channel *verbs_channel_new(int *rc);
int verbs_cm_wait(struct rdma_event_channel *ch, enum rdma_cm_event_type want,
		  int timeout_ms);
int vcq_create(struct ibv_context *ctx, int cqe, struct vcq *q);
void vcq_destroy(struct vcq *q);
int vcq_wait(struct vcq *q, struct ibv_wc *wc, int n, int timeout_ms,
	     int stop_fd);
int verbs_post_recv(struct ibv_qp *qp, uint64_t wr_id, void *buf,
		    uint32_t len, struct ibv_mr *mr);
int verbs_post_send(struct ibv_qp *qp, uint64_t wr_id, void *buf,
		    uint32_t len, struct ibv_mr *mr);
unsigned verbs_timeout_ms(void);

struct pool;
struct pool_mr;
struct pool_seg;
struct pool_iov;
struct vpost;

/* The client's connection (verbs.c), p->priv of an rdma:// pool. */
struct vpool {
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct vcq q;
	bool qp;
	bool connected;
	bool broken;
	uint8_t *ctl;			/* send half, then receive half */
	struct ibv_mr *ctl_mr;
	uint8_t *bounce;
	struct ibv_mr *bounce_mr;
	uint64_t next_id;
	uint32_t max_data;		/* WRITE payload per message */
	unsigned timeout_ms;
	struct vpost *post;		/* verbs-post.c: posted reads, or NULL */
};

struct vpool *vp_of(struct pool *p);
/* The connection is unusable from now on (its calls fail at once). */
void v_break(struct pool *p);
/* v_break, and the reason naming the pool, @seg (or NULL) and @op. */
int v_fail(struct pool *p, const char *seg, unsigned op, int rc,
	   const char *why);
/* 1..@n completions, all successful; else v_fail. */
int v_poll(struct pool *p, const char *seg, unsigned op, struct ibv_wc *wc,
	   int n);

/* verbs-post.c: reads posted into a caller's registered memory. */
int vpost_mr_reg(struct pool *p, struct pool_mr *mr);
void vpost_mr_unreg(struct pool_mr *mr);
int vpost_read(struct pool_seg *s, const struct pool_iov *iov, unsigned n,
	       struct pool_mr *mr, uint64_t *ticket);
int vpost_wait(struct pool_seg *s, uint64_t ticket);
/* Waits for every posted read (before a call that polls the queue). */
int vpost_drain(struct pool *p, const char *seg);
void vpost_free(struct vpool *v);

#endif
