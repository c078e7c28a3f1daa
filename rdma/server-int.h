/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_SERVER_INT_H
#define TIER_SERVER_INT_H

/*
 * Private to the pool server: its state, shared by server.c (requests,
 * connections, the listener) and server-seg.c (the segment table).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "rdma/auth.h"
#include "rdma/keys.h"
#include "rdma/pool-int.h"
#include "rdma/proto.h"

#define SRV_MAX_OPEN	65536U	/* segments open on one connection */
#define SRV_MAX_WRITE	256U	/* segments being written on one connection */
#define SRV_SEND_TIMEOUT_MS	60000	/* a client that stops reading its replies */
#define SRV_MAX_CONNS	256U	/* default --max-connections */
#define SRV_REFUSING	16U	/* threads answering connections over the limit */
#define SRV_REQ_TIMEOUT_MS	30000U	/* default --request-timeout */
#define SRV_STACK	(512U << 10)	/* a connection thread's stack */
/*
 * The largest payload received into a connection's buffer: a READ of
 * POOL_MAX_RANGES. A WRITE's data goes straight into its segment, any
 * other payload this long is refused unread (read and dropped).
 */
#define SRV_REQ_MAX	(sizeof(struct pool_read_req) + \
			 POOL_MAX_RANGES * sizeof(struct pool_range))
#define SRV_KEYS_POLL_MS	1000	/* how soon an edited key file counts */

struct srv_seg {
	struct srv_seg *next;	/* in srv->segs while published */
	char name[POOL_NAME_MAX + 1];
	uint64_t size;
	void *mem;		/* size bytes, NULL when size is 0 */
	int fd;
	unsigned refs;		/* under srv->lock */
};

/* A segment open on a connection; over RDMA registered for it alone. */
struct srv_open {
	struct srv_seg *g;
	void *mr;
	uint32_t rkey;
};

struct srv_wseg {
	struct pool_server *srv;
	char name[POOL_NAME_MAX + 1];
	uint64_t size;
	void *mem;
	int fd;
	bool reserved;		/* its blocks are allocated (srv->reserved) */
	char tmp[4096 + 64];	/* with a dir: the temporary, else "" */
};

struct srv_conn {
	struct srv_conn *next;
	struct pool_server *srv;
	int fd;
	pthread_t thread;
	int done;		/* atomic: the thread has finished */
	bool hello;
	bool refuse;		/* over --max-connections: HELLO is refused */
	bool fatal;		/* the peer broke the protocol: answer, then close */
	void *verbs;		/* rdma: the verbs connection; NULL over TCP */
	uint32_t max_data;	/* WRITE payload one message can carry */
	char peer[80];
	struct auth_conn auth;	/* with keys: who the peer proved to be */
	/* set once by AUTH, then read by the run loop when keys change */
	char who[POOL_KEY_ID_MAX + 1];
	int authed;		/* atomic */
	struct srv_open *open;	/* id - 1 -> segment */
	unsigned nopen;
	struct srv_wseg *w[SRV_MAX_WRITE];
	uint8_t *buf;		/* request payload */
	size_t buf_cap;
	struct iovec *riov;	/* READ reply: header + POOL_MAX_RANGES */
};

struct pool_server {
	int lfd;
	int stop_pipe[2];
	uint16_t port;
	char uri[320];
	char dir[4096];		/* "" without persistence */
	pthread_mutex_t lock;
	struct srv_seg *segs;
	struct srv_conn *conns;	/* touched by the run loop only */
	void *verbs;		/* rdma: the listener; lfd is its event fd */
	struct pool_keys *keys;	/* NULL: every client may do anything */
	unsigned keys_gen;	/* run loop: the generation last acted on */
	unsigned tmp_seq;
	unsigned connections;	/* accepted since start (atomic) */
	unsigned active;	/* connections being served (atomic) */
	unsigned timeouts;	/* connections closed mid-request (atomic) */
	unsigned max_conns, req_timeout_ms;
	int dir_fd;		/* holds the dir's lock; -1 without a dir */
	/*
	 * Without max_bytes: bytes of the segments being written, and of
	 * those among them whose blocks are allocated already (no longer in
	 * the free space srv_room sees), under lock.
	 */
	uint64_t writing, reserved;
	/*
	 * Bytes of the segments in the table and of those being written,
	 * under lock; CREATE may not take it past max_bytes (0: no limit).
	 */
	uint64_t held, max_bytes;
	/*
	 * --backing: the durable copy (server-backing.c) a segment the table
	 * and the dir lack is loaded from; NULL: none. backing_lock makes
	 * one load at a time (the handle is one thread's at a time, and a
	 * segment wanted by many OPENs at once is read once).
	 */
	struct pool *backing;
	pthread_mutex_t backing_lock;
	unsigned loaded;	/* segments loaded from it (atomic) */
};

/* What a request's reply carries besides its header. */
struct srv_reply {
	union {
		struct pool_hello hello;
		struct pool_open_rep open;
		struct pool_id id;
		struct pool_stat_rep stat;
		struct pool_challenge_rep challenge;
		struct pool_auth_rep auth;
	} u;
	size_t len;		/* of u */
	unsigned ndata;		/* READ: data iovecs in conn->riov[1..] */
	size_t data_len;
};

/* ---- requests (server-req.c) */

/*
 * Serves request @h with payload @p (its length checked here) into @r;
 * 0 or -errno with the reason. Sets c->fatal when the peer broke the
 * protocol: the connection ends after the answer.
 */
int srv_handle(struct srv_conn *c, const struct pool_hdr *h, const uint8_t *p,
	       struct srv_reply *r);
/* A request that breaks the protocol: answered with @rc, then closed. */
int srv_violation(struct srv_conn *c, int rc);
/* Closes an open table entry: its registration, its reference. */
void srv_open_drop(struct srv_conn *c, struct srv_open *o);
/*
 * Where a WRITE's @len data bytes go (its segment's memory), checked as
 * srv_handle checks a WRITE, key included: the stream is received
 * straight into it.
 */
int srv_write_dst(struct srv_conn *c, const struct pool_write_req *m,
		  size_t len, void **ret);

/* ---- the segment table (server-seg.c) */

/* Drops a reference; the last frees the segment. */
void srv_seg_put(struct pool_server *srv, struct srv_seg *g);
/* A reference to the published segment @name (with a dir: mapped from
 * its file on first use); -ENOENT naming it. */
int srv_seg_get(struct pool_server *srv, const char *name,
		struct srv_seg **ret);
/* Starts segment @name of @size bytes, invisible until committed, its
 * room reserved (max_bytes, or the free space). */
int srv_wseg_new(struct pool_server *srv, const char *name, uint64_t size,
		 struct srv_wseg **ret);
/* Frees @w (NULL: nothing); @discard: its temporary is removed. */
void srv_wseg_free(struct srv_wseg *w, bool discard);
/* Publishes @w under its name, replacing an older segment; frees @w. */
int srv_wseg_commit(struct pool_server *srv, struct srv_wseg *w);
/* Unpublishes @name (and deletes its file); readers keep it. */
int srv_seg_remove(struct pool_server *srv, const char *name);
/* A reference to @name if the table holds it; NULL otherwise. */
struct srv_seg *srv_seg_find(struct pool_server *srv, const char *name);

/* ---- the backing pool (server-backing.c) */

/* Connects to @uri (any pool but the server's own kinds over the wire
 * is allowed; rados:// is what it is for). */
int srv_backing_open(struct pool_server *srv, const char *uri);
void srv_backing_close(struct pool_server *srv);
/*
 * Copies segment @name whole from the backing pool into the table (and
 * the dir, with one), as a CREATE + WRITE + COMMIT would, and returns a
 * reference to it; -ENOENT naming it if the backing pool lacks it too.
 */
int srv_backing_load(struct pool_server *srv, const char *name,
		     struct srv_seg **ret);
/*
 * Loads each of @names ahead: "SNAP/POLICY.GEN" one segment, "SNAP"
 * every segment of the snapshot the backing pool holds (pool_list).
 */
int srv_backing_warm(struct pool_server *srv, const char *const *names);

#endif
