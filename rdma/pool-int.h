/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_POOL_INT_H
#define TIER_POOL_INT_H

/*
 * Private to rdma/: the transport table behind rdma/pool.h and the
 * helpers the transports and the server share. pool.c validates names and
 * bounds before it calls a transport, so the ops may assume a valid
 * segment name and ranges inside the segment.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "rdma/pool.h"
#include "util/sigstr.h"

#define POOL_NAME_MAX	127	/* "SNAP/POLICY", without the NUL */
#define POOL_IO_TIMEOUT_MS	10000	/* a request's, unless tier_set_pool_opts */

/* tier_set_pool_opts' settings (pool.c): the I/O timeout in ms, and the
 * rdma:// source address or NULL. */
unsigned pool_opt_timeout_ms(void);
const char *pool_opt_rdma_src(void);

struct pool_ops {
	void (*close)(struct pool *p);
	int (*create)(struct pool *p, struct pool_wseg *w);
	int (*write)(struct pool_wseg *w, uint64_t off, const void *buf,
		     size_t len);
	int (*commit)(struct pool_wseg *w);
	void (*abort)(struct pool_wseg *w);
	int (*seg_open)(struct pool *p, struct pool_seg *s);
	void (*seg_close)(struct pool_seg *s);
	int (*readv)(struct pool_seg *s, const struct pool_iov *iov,
		     unsigned n);
	/* NULL: the transport has no view (pool_seg_view: -EOPNOTSUPP) */
	int (*view)(struct pool_seg *s, uint64_t off, size_t len,
		    const void **ret);
	int (*remove)(struct pool *p, const char *name);
	/* NULL: the transport cannot list (pool_list: -EOPNOTSUPP) */
	int (*list)(struct pool *p, const char *snap,
		    int (*fn)(const char *name, void *arg), void *arg);
	/* NULL: no async-signal-safe read (pool_readv_sigsafe) */
	int (*readv_sigsafe)(struct pool_seg *s, const struct pool_iov *iov,
			     unsigned n, struct sigstr *why);
	/* NULL: no posted reads (pool_can_post: false) */
	int (*mr_reg)(struct pool *p, struct pool_mr *mr);
	void (*mr_unreg)(struct pool_mr *mr);
	int (*read_post)(struct pool_seg *s, const struct pool_iov *iov,
			 unsigned n, struct pool_mr *mr, uint64_t *ticket);
	int (*read_wait)(struct pool_seg *s, uint64_t ticket);
};

/* A caller's buffer registered for posted reads (pool_mr_reg). */
struct pool_mr {
	struct pool *pool;
	uint8_t *base;
	size_t len;
	void *priv;		/* the transport's registration */
	uint32_t lkey;		/* rdma */
};

/*
 * A message transport's round trip, on which rdma/ctl.c builds the
 * control operations (ctl_*, for the transport's pool_ops).
 */
struct pool_ctl {
	/*
	 * Sends @req as one request @op; a reply of exactly @rep_len bytes
	 * (0: none) lands in @rep, else the server's error or the lost
	 * connection is the result, its reason naming @seg (may be NULL).
	 */
	int (*call)(struct pool *p, const char *seg, unsigned op,
		    const struct iovec *req, unsigned nreq, void *rep,
		    size_t rep_len);
	void (*drop)(struct pool *p);	/* the peer broke the protocol */
	bool (*up)(struct pool *p);	/* false once the connection is lost */
	size_t (*max_data)(struct pool *p);	/* WRITE payload per request */
};

struct pool {
	const struct pool_ops *ops;
	const struct pool_ctl *ctl;	/* message transports */
	char uri[320];		/* "tcp://HOST:PORT", "file:PATH", "rados://POOL/NS": for messages */
	void *priv;		/* the transport's */
	uint32_t server_flags;	/* message transports: POOL_HELLO_* of the server */
	struct pool_cred *cred;	/* the key it connected with, for a reconnect */
};

/*
 * After a message transport's HELLO: authenticates with p->cred if the
 * server asks for a key (pool.c). A transport that reconnects calls it
 * again after its new HELLO.
 */
int pool_auth(struct pool *p);

/* The transport fills everything but pool and name. */
struct pool_seg {
	struct pool *pool;
	char name[POOL_NAME_MAX + 1];
	uint64_t size;
	uint32_t id;		/* tcp, rdma: the server's segment id */
	int fd;			/* file */
	void *map;		/* file: the segment mapped, or NULL */
	uint64_t raddr;		/* rdma: remote address of byte 0 */
	uint32_t rkey;		/* rdma */
	void *priv;		/* rados: the objects' tag and stripe */
};

struct pool_wseg {
	struct pool *pool;
	char name[POOL_NAME_MAX + 1];
	uint64_t size;
	uint32_t id;		/* tcp, rdma: the server's write id */
	int fd;			/* file: the temporary */
	char tmp[4096 + 64];	/* file: its path */
	char path[4096 + 16];	/* file: the final path */
	void *priv;		/* rados: the writer's tag and progress */
};

/*
 * The control operations over p->ctl (ctl.c). ctl_seg_open sets the
 * segment's id and size, and raddr and rkey from the reply (0 over TCP).
 */
int ctl_seg_open(struct pool *p, struct pool_seg *s);
void ctl_seg_close(struct pool_seg *s);
int ctl_create(struct pool *p, struct pool_wseg *w);
int ctl_write(struct pool_wseg *w, uint64_t off, const void *buf, size_t len);
int ctl_commit(struct pool_wseg *w);
void ctl_abort(struct pool_wseg *w);
int ctl_remove(struct pool *p, const char *name);

/* Transport constructors: set p->ops and p->priv, or fail with a reason. */
int pool_file_open(struct pool *p, const char *dir);
int pool_tcp_open(struct pool *p, const struct tier_uri *uri);
int pool_verbs_open(struct pool *p, const struct tier_uri *uri);
int pool_rados_open(struct pool *p, const struct tier_uri *uri);

/* 0 if @name is "SNAP/POLICY" as pool.h defines it, else -EINVAL naming it. */
int pool_name_check(const char *name);

/*
 * DIR/SNAP/POLICY.seg: the on-disk layout shared by the file pool and
 * the server's --dir. -ENAMETOOLONG if it does not fit in @len.
 */
int pool_seg_path(const char *dir, const char *name, char *buf, size_t len);
/* Creates @dir/SNAP if missing; errors name the directory. */
int pool_seg_mkdir(const char *dir, const char *name);
/* fsync of the directory holding @path, after a rename into it. */
int pool_sync_parent(const char *path);

/* "tcp://HOST:PORT" with [v6] brackets; for messages. */
void pool_uri_name(const struct tier_uri *uri, char *buf, size_t len);

/*
 * Server side, shared by server.c (segments, requests, TCP) and verbs.c
 * (rdma:// listeners and connections).
 */
struct pool_server;
struct srv_conn;

/*
 * Serves the stream connection @fd (a TCP socket, or one end of a
 * socketpair) in the calling thread, exactly as a connection the server
 * accepted, until the peer hangs up or breaks the protocol; then shuts
 * @fd down, which stays the caller's to close. For the fuzz target
 * (tests/fuzz/fuzz-pool-server.c): no listener thread, no accept.
 */
int srv_serve_fd(struct pool_server *srv, int fd);

/*
 * A connection's request handler, for a transport that receives whole
 * messages (RDMA SEND/RECV). @verbs is the transport's connection, passed
 * back to pool_verbs_reg; @max_data the largest WRITE payload a message can
 * carry, announced in HELLO.
 */
struct srv_conn *srv_conn_new(struct pool_server *srv, const char *peer,
			      void *verbs, uint32_t max_data);
/* Closes its segments and drops its uncommitted writes. */
void srv_conn_free(struct srv_conn *c);
/*
 * Handles the message @msg of @len bytes as received and writes the reply
 * message to @out (at most @cap bytes, 512 suffice: no READ data); returns
 * the reply's length. *@close is set when the peer broke the protocol and
 * the connection must end after this reply.
 */
size_t srv_conn_msg(struct srv_conn *c, void *msg, size_t len, void *out,
		    size_t cap, bool *close);

/* Whether the key @c authenticated with is revoked or gone now. */
bool srv_conn_revoked(struct srv_conn *c);

/* rdma:// listener (verbs.c; the stub fails with -EOPNOTSUPP). */
int pool_verbs_listen(struct pool_server *srv, const struct tier_uri *uri,
		      const char *name, void **ret, int *ret_fd,
		      uint16_t *ret_port);
/* The listener's fd is readable: handle its connection events. */
void pool_verbs_event(void *l);
/* Disconnects the clients whose key srv_conn_revoked says is revoked. */
void pool_verbs_revoke(void *l);
/* Disconnects every client and waits for their threads. */
void pool_verbs_disconnect_all(void *l);
void pool_verbs_free(void *l);
/*
 * Registers [@mem, @mem + @len) for remote reads on the device of the
 * connection @verbs; *@ret is the handle for pool_verbs_unreg.
 */
int pool_verbs_reg(void *verbs, void *mem, uint64_t len, void **ret,
		   uint32_t *ret_rkey);
void pool_verbs_unreg(void *mr);

#endif
