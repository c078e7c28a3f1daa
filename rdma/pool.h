/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_POOL_H
#define TIER_POOL_H

/*
 * The memory pool: named segments of bytes (one a plan, "SNAP/POLICY.GEN"),
 * read in batches by offset. Transports (one file each): file.c (a directory,
 * pread), tcp.c (the pool protocol over TCP to "tierctl pool serve"),
 * verbs.c (the same control messages over RDMA CM, data by one-sided
 * RDMA READ from the server's registered segment memory). doc/pool-protocol.md
 * describes the wire protocol.
 *
 * A pool handle and its segments are used by one thread at a time; the
 * restorer opens one handle per thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/uri.h"

struct pool;
struct pool_seg;	/* open for reading */
struct pool_wseg;	/* being written; invisible until committed */

/* Default when no pool= URI is given: a file pool inside the store. */
#define POOL_DEFAULT_SUBDIR	"pool"

struct pool_cred;

/*
 * Connects with @cred (rdma/keys.h; NULL: none). A server that requires a
 * key refuses a client without one (-EACCES), and a key it does not accept
 * (unknown, revoked, a wrong secret) with the reason.
 */
int pool_connect(const struct tier_uri *uri, const struct pool_cred *cred,
		 struct pool **ret);
/* pool_connect without a key: file pools and servers run --no-auth. */
int pool_open(const struct tier_uri *uri, struct pool **ret);
void pool_close(struct pool *p);

int pool_create(struct pool *p, const char *name, uint64_t size,
		struct pool_wseg **ret);
int pool_write(struct pool_wseg *w, uint64_t off, const void *buf,
	       size_t len);
/* Publishes it atomically, replacing an older segment of that name. */
int pool_commit(struct pool_wseg *w);
void pool_abort(struct pool_wseg *w);

int pool_seg_open(struct pool *p, const char *name, struct pool_seg **ret);
void pool_seg_close(struct pool_seg *s);
uint64_t pool_seg_size(const struct pool_seg *s);

struct pool_iov {
	uint64_t off;		/* in the segment */
	void *buf;
	size_t len;
};

/*
 * Reads every range of @iov, in one round trip where the transport can.
 * Either all bytes arrive or it fails: -ERANGE out of bounds, -ECONNRESET
 * / -EPIPE / -ETIMEDOUT for a dead server, -EPROTO for a bad answer; the
 * message names the pool and the segment. Buffers are never left holding
 * partial data that the caller could mistake for pages: on failure treat
 * them as garbage.
 */
int pool_readv(struct pool_seg *s, const struct pool_iov *iov, unsigned n);

/*
 * Reads posted straight into the caller's memory, several batches in
 * flight at once, where the transport can (rdma: one-sided READs into a
 * registered buffer, no bounce copy): a caller overlaps what it does with
 * one batch's bytes with the reading of the next. -EOPNOTSUPP (no
 * message) from pool_mr_reg: the transport has none, use pool_readv.
 *
 * pool_mr_reg registers [@buf, @buf + @len) with the pool's connection;
 * unregister it before pool_close, and only once no read into it is
 * outstanding (pool_read_wait of its last ticket returned, whatever it
 * returned). pool_read_post starts reading @iov, every buf inside @mr,
 * and gives a ticket; pool_read_wait returns 0 once every range of that
 * post and of the posts before it has arrived. Any failure breaks the
 * connection: every outstanding post fails, the buffers are garbage, and
 * the message names the pool and the segment. pool_readv and the control
 * calls on the handle wait for outstanding posts first.
 */
struct pool_mr;

bool pool_can_post(const struct pool *p);
struct pool *pool_seg_pool(const struct pool_seg *s);
int pool_mr_reg(struct pool *p, void *buf, size_t len, struct pool_mr **ret);
void pool_mr_unreg(struct pool_mr *mr);
int pool_read_post(struct pool_seg *s, const struct pool_iov *iov, unsigned n,
		   struct pool_mr *mr, uint64_t *ret_ticket);
int pool_read_wait(struct pool_seg *s, uint64_t ticket);

/*
 * Where the transport holds the segment in this address space (file: a
 * read-only shared mapping of the segment file), a pointer to byte @off
 * with [off, off+len) resident, valid until pool_seg_close: a caller
 * installs pages from it without copying them into a buffer first. The
 * bytes are as untrusted as pool_readv's. -EOPNOTSUPP (no message) for
 * remote transports and kernels without MADV_POPULATE_READ, -ERANGE out
 * of bounds, -EIO if the file no longer holds the range.
 */
int pool_seg_view(struct pool_seg *s, uint64_t off, size_t len,
		  const void **ret);

int pool_remove(struct pool *p, const char *name);

/*
 * Calls @fn with the name of every committed segment "SNAP/..." of
 * snapshot @snap, in no particular order, stopping at its first error.
 * Returns how many it named (0: none), or -errno: -EOPNOTSUPP for a
 * transport that cannot list (tcp://, rdma://).
 */
int pool_list(struct pool *p, const char *snap,
	      int (*fn)(const char *name, void *arg), void *arg);

/*
 * A pool made of @front (a memory pool; NULL: it could not be
 * connected, the reason in tier_errmsg() still) and the durable copy @backing behind it (rdma/backed.c):
 * segments are written to both, the backing committed first, and read
 * from the front, or from the backing where the front cannot open or
 * read one. Takes @front over, closing it on failure too. The backing
 * is connected now, or with POOL_BACKED_LAZY (and a front) when first
 * needed.
 */
#define POOL_BACKED_LAZY	(1U << 0)
int pool_backed_open(struct pool *front, const struct tier_uri *backing,
		     unsigned flags, struct pool **ret);

/*
 * pool_readv for a signal handler (a thread that took a SIGBUS on a
 * page it fetches itself, store/restore-sigbus.c): syscalls on the
 * handle's open fd and its preallocated buffers only, no allocation,
 * no lock, no reconnect, and the reason of a failure appended to @why
 * (util/sigstr.h), not tier_errmsg. A lost connection stays lost: the
 * handle's later calls fail at once. The handle is the calling
 * thread's alone. -EOPNOTSUPP where the transport has no such read
 * (pool_sigsafe says so beforehand).
 */
struct sigstr;
int pool_readv_sigsafe(struct pool_seg *s, const struct pool_iov *iov,
		       unsigned n, struct sigstr *why);
/* Whether @p's transport can pool_readv_sigsafe (file, tcp). */
int pool_sigsafe(const struct pool *p);

/* ---- server side ("tierctl pool serve") */

struct pool_server;

struct pool_server_attr {
	const char *dir;	/* where segments persist; NULL: memory only */
	/*
	 * A key file or directory (rdma/keys.h): every client authenticates
	 * and is held to its key's role and snapshots. NULL: anyone who
	 * reaches the port may do anything (a private network only).
	 */
	const char *keys;
	unsigned flags;
	/*
	 * A CREATE that would take the bytes of the segments held (in
	 * memory, or mapped from @dir) and being written past this fails
	 * with -ENOSPC; a replaced segment counts until its last reader
	 * closes it. 0: the segments being written, this one included, may
	 * reserve half of what @dir (or, without it, memory) had free.
	 */
	uint64_t max_bytes;
	/*
	 * 0: 256. Connections served at once; the next ones are answered
	 * -EBUSY with the reason at their HELLO, then closed.
	 */
	unsigned max_conns;
	/*
	 * 0: 30000. A request begun (and HELLO, with keys the handshake,
	 * after the connect) must arrive whole within this, else its
	 * connection is closed; between requests a connection may idle for
	 * good (TCP keepalive reaps dead peers).
	 */
	unsigned request_timeout_ms;
	/*
	 * A pool URI (rados://, file:) holding the durable copy of the
	 * segments: one the server lacks is loaded from it whole on its
	 * first OPEN or STAT. NULL: none, a missing segment is -ENOENT.
	 */
	const char *backing;
	/* NULL-terminated: segments "SNAP/POLICY.GEN", or snapshots "SNAP"
	 * (all their segments), loaded from @backing before listening. */
	const char *const *warm;
};

/* Listens on @uri (tcp:// or rdma://); serves until pool_server_stop. */
int pool_server_start(const struct tier_uri *uri,
		      const struct pool_server_attr *attr,
		      struct pool_server **ret);
/* Runs the serve loop in the calling thread until a stop or a fatal error. */
int pool_server_run(struct pool_server *srv);
/* Async-signal-safe: asks pool_server_run to return. */
void pool_server_stop(struct pool_server *srv);
void pool_server_free(struct pool_server *srv);
/* The port actually bound (useful with port 0). */
uint16_t pool_server_port(const struct pool_server *srv);
/* Connections accepted since the start. */
unsigned pool_server_connections(const struct pool_server *srv);
/* Segments loaded from the backing pool since the start. */
unsigned pool_server_loaded(const struct pool_server *srv);
/* Connections closed because a request did not arrive whole in time. */
unsigned pool_server_timeouts(const struct pool_server *srv);

#endif
