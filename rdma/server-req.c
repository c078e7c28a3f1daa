/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool server's requests (rdma/server-int.h): each op's payload
 * checked and served against the connection's open and write tables and
 * the segment table, the key's rights checked first (doc/pool-protocol.md).
 * Every transport's connections come here: TCP's streams and RDMA's
 * messages (server.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "tier.h"
#include "rdma/auth.h"
#include "rdma/keys.h"
#include "rdma/pool-int.h"
#include "rdma/proto.h"
#include "rdma/server-int.h"
#include "rdma/server-limits.h"
#include "util/err.h"
#include "util/log.h"

static int auth_gate(struct srv_conn *c, unsigned op);

/* A request that breaks the protocol: answered with -EPROTO, then closed. */
int srv_violation(struct srv_conn *c, int rc)
{
	c->fatal = true;
	return rc;
}

static int want_len(struct srv_conn *c, const struct pool_hdr *h, size_t len)
{
	if (h->len != len)
		return srv_violation(c, tier_err(-EPROTO, "%s payload of %u bytes, expected %zu",
					     proto_op_name(h->op), h->len, len));
	return 0;
}

/* Copies a name payload out and checks it; soft error if it is not valid. */
static int get_name(struct srv_conn *c, const uint8_t *p, size_t len,
		    char *name)
{
	if (len == 0 || len > POOL_NAME_MAX) {
		if (len > POOL_NAME_MAX + 64)
			return srv_violation(c, tier_err(-EPROTO, "segment name of %zu bytes",
						     len));
		return tier_err(-EINVAL, "segment name of %zu bytes", len);
	}
	memcpy(name, p, len);
	name[len] = '\0';
	if (strlen(name) != len)
		return tier_err(-EINVAL, "segment name contains a NUL byte");
	return pool_name_check(name);
}

static struct srv_seg *open_seg(struct srv_conn *c, uint32_t id)
{
	if (id == 0 || id > c->nopen)
		return NULL;
	return c->open[id - 1].g;
}

void srv_open_drop(struct srv_conn *c, struct srv_open *o)
{
	pool_verbs_unreg(o->mr);
	srv_seg_put(c->srv, o->g);
	*o = (struct srv_open){ 0 };
}

/* -EACCES unless the peer's key lets it do @need to @name. */
static int allowed(struct srv_conn *c, enum pool_role need, const char *name)
{
	if (!c->srv->keys || pool_key_allows(&c->auth.key, need, name))
		return 0;
	return tier_err(-EACCES, "segment '%s': key '%s' (%s, snapshots %s) may not %s it",
			name, c->auth.key.id, pool_role_name(c->auth.key.role),
			c->auth.key.snaps,
			need == POOL_ROLE_READ ? "read" : "write or remove");
}

static int do_hello(struct srv_conn *c, const struct pool_hdr *h,
		    const uint8_t *p, struct srv_reply *r)
{
	struct pool_hello m;
	int rc = want_len(c, h, sizeof(m));

	if (rc)
		return rc;
	memcpy(&m, p, sizeof(m));
	proto_hello_swap(&m);
	if (m.version < 1)
		return srv_violation(c, tier_err(-EPROTO, "client speaks version %u",
					     m.version));
	m.name[sizeof(m.name) - 1] = '\0';
	tier_dbg("pool server: %s is '%s'", c->peer, m.name);
	if (c->refuse)
		return srv_violation(c, tier_err(-EBUSY, "pool server: serving its limit of %u connections (--max-connections); try again later",
					     c->srv->max_conns));
	c->hello = true;

	r->u.hello = (struct pool_hello){
		.version = POOL_VERSION,
		.flags = (c->verbs ? POOL_HELLO_RDMA_READ : 0) |
			 (c->srv->keys ? POOL_HELLO_AUTH : 0),
		.max_ranges = POOL_MAX_RANGES,
		.max_data = c->max_data,
	};
	snprintf(r->u.hello.name, sizeof(r->u.hello.name),
		 "tier pool server %s", TIER_VERSION);
	proto_hello_swap(&r->u.hello);
	r->len = sizeof(r->u.hello);
	return 0;
}

static int do_open(struct srv_conn *c, const struct pool_hdr *h,
		   const uint8_t *p, struct srv_reply *r)
{
	char name[POOL_NAME_MAX + 1];
	struct srv_seg *g;
	unsigned i;
	int rc;

	rc = get_name(c, p, h->len, name);
	if (!rc)
		rc = allowed(c, POOL_ROLE_READ, name);
	if (rc)
		return rc;
	for (i = 0; i < c->nopen && c->open[i].g; i++)
		;
	if (i == c->nopen) {
		unsigned n = c->nopen ? c->nopen * 2 : 16;
		struct srv_open *o;

		if (c->nopen >= SRV_MAX_OPEN)
			return tier_err(-EMFILE, "segment '%s': %u segments open on this connection",
					name, c->nopen);
		o = realloc(c->open, n * sizeof(*o));
		if (!o)
			return tier_err(-ENOMEM, "out of memory");
		memset(o + c->nopen, 0, (n - c->nopen) * sizeof(*o));
		c->open = o;
		c->nopen = n;
	}
	rc = srv_seg_get(c->srv, name, &g);
	if (rc)
		return rc;
	c->open[i].g = g;
	if (c->verbs && g->size) {
		/*
		 * Registered in this connection's protection domain: the rkey
		 * reads nothing from another client's queue pair, and dies
		 * with the CLOSE or the connection.
		 */
		rc = pool_verbs_reg(c->verbs, g->mem, g->size, &c->open[i].mr,
				    &c->open[i].rkey);
		if (rc) {
			srv_open_drop(c, &c->open[i]);
			return tier_err_ctx(rc, "segment '%s'", name);
		}
	}
	r->u.open = (struct pool_open_rep){
		.id = i + 1,
		.size = g->size,
		.addr = c->verbs ? (uintptr_t)g->mem : 0,
		.rkey = c->open[i].rkey,
	};
	proto_open_rep_swap(&r->u.open);
	r->len = sizeof(r->u.open);
	return 0;
}

static int get_id(struct srv_conn *c, const struct pool_hdr *h,
		  const uint8_t *p, uint32_t *ret)
{
	struct pool_id m;
	int rc = want_len(c, h, sizeof(m));

	if (rc)
		return rc;
	memcpy(&m, p, sizeof(m));
	proto_id_swap(&m);
	*ret = m.id;
	return 0;
}

static int do_close(struct srv_conn *c, const struct pool_hdr *h,
		    const uint8_t *p, struct srv_reply *r)
{
	struct srv_seg *g;
	uint32_t id;
	int rc;

	rc = get_id(c, h, p, &id);
	if (rc)
		return rc;
	g = open_seg(c, id);
	if (!g)
		return tier_err(-EBADF, "no segment open with id %u", id);
	srv_open_drop(c, &c->open[id - 1]);
	return 0;
}

static int do_create(struct srv_conn *c, const struct pool_hdr *h,
		     const uint8_t *p, struct srv_reply *r)
{
	struct pool_create_req m;
	char name[POOL_NAME_MAX + 1];
	unsigned i;
	int rc;

	if (h->len < sizeof(m))
		return want_len(c, h, sizeof(m) + 1);
	memcpy(&m, p, sizeof(m));
	proto_create_req_swap(&m);
	rc = get_name(c, p + sizeof(m), h->len - sizeof(m), name);
	if (!rc)
		rc = allowed(c, POOL_ROLE_WRITE, name);
	if (rc)
		return rc;
	if (m.size > POOL_MAX_SIZE)
		return tier_err(-EFBIG, "segment '%s': size %llu exceeds %llu",
				name, (unsigned long long)m.size, POOL_MAX_SIZE);
	for (i = 0; i < SRV_MAX_WRITE && c->w[i]; i++)
		;
	if (i == SRV_MAX_WRITE)
		return tier_err(-EMFILE, "segment '%s': %u segments being written on this connection",
				name, SRV_MAX_WRITE);
	rc = srv_wseg_new(c->srv, name, m.size, &c->w[i]);
	if (rc)
		return rc;
	r->u.id = (struct pool_id){ .id = i + 1 };
	proto_id_swap(&r->u.id);
	r->len = sizeof(r->u.id);
	return 0;
}

static struct srv_wseg *write_seg(struct srv_conn *c, uint32_t id)
{
	if (id == 0 || id > SRV_MAX_WRITE)
		return NULL;
	return c->w[id - 1];
}

/* Where the @len data bytes of the WRITE @m go in its segment. */
int srv_write_dst(struct srv_conn *c, const struct pool_write_req *m,
		  size_t len, void **ret)
{
	struct srv_wseg *w = write_seg(c, m->id);
	int rc = auth_gate(c, POOL_OP_WRITE);

	if (rc)
		return rc;
	if (!w)
		return tier_err(-EBADF, "no segment being written with id %u", m->id);
	if (m->off > w->size || len > w->size - m->off)
		return tier_err(-ERANGE, "segment '%s': write of %zu bytes at offset %llu beyond its size %llu",
				w->name, len, (unsigned long long)m->off,
				(unsigned long long)w->size);
	*ret = w->mem ? (char *)w->mem + m->off : NULL;
	return 0;
}

static int do_write(struct srv_conn *c, const struct pool_hdr *h,
		    const uint8_t *p, struct srv_reply *r)
{
	struct pool_write_req m;
	void *dst;
	size_t len;
	int rc;

	if (h->len < sizeof(m))
		return want_len(c, h, sizeof(m));
	memcpy(&m, p, sizeof(m));
	proto_write_req_swap(&m);
	len = h->len - sizeof(m);
	rc = srv_write_dst(c, &m, len, &dst);
	if (rc)
		return rc;
	if (len)
		memcpy(dst, p + sizeof(m), len);
	return 0;
}

static int do_commit(struct srv_conn *c, const struct pool_hdr *h,
		     const uint8_t *p, struct srv_reply *r, bool commit)
{
	struct srv_wseg *w;
	uint32_t id;
	int rc;

	rc = get_id(c, h, p, &id);
	if (rc)
		return rc;
	w = write_seg(c, id);
	if (!w)
		return tier_err(-EBADF, "no segment being written with id %u", id);
	c->w[id - 1] = NULL;
	if (!commit) {
		srv_wseg_free(w, true);
		return 0;
	}
	return srv_wseg_commit(c->srv, w);
}

static int do_remove(struct srv_conn *c, const struct pool_hdr *h,
		     const uint8_t *p, struct srv_reply *r)
{
	char name[POOL_NAME_MAX + 1];
	int rc;

	rc = get_name(c, p, h->len, name);
	if (!rc)
		rc = allowed(c, POOL_ROLE_WRITE, name);
	if (rc)
		return rc;
	return srv_seg_remove(c->srv, name);
}

static int do_stat(struct srv_conn *c, const struct pool_hdr *h,
		   const uint8_t *p, struct srv_reply *r)
{
	char name[POOL_NAME_MAX + 1];
	struct srv_seg *g;
	int rc;

	rc = get_name(c, p, h->len, name);
	if (!rc)
		rc = allowed(c, POOL_ROLE_READ, name);
	if (rc)
		return rc;
	rc = srv_seg_get(c->srv, name, &g);
	if (rc)
		return rc;
	r->u.stat.size = g->size;
	srv_seg_put(c->srv, g);
	proto_stat_rep_swap(&r->u.stat);
	r->len = sizeof(r->u.stat);
	return 0;
}

/* Checks every range before a byte goes out, so an error is a clean reply. */
static int do_read(struct srv_conn *c, const struct pool_hdr *h,
		   const uint8_t *p, struct srv_reply *r)
{
	struct pool_read_req m;
	size_t total = 0;
	unsigned i;

	if (h->len < sizeof(m))
		return want_len(c, h, sizeof(m));
	memcpy(&m, p, sizeof(m));
	proto_read_req_swap(&m);
	if (m.nr > POOL_MAX_RANGES)
		return srv_violation(c, tier_err(-EPROTO, "READ of %u ranges, the limit is %u",
					     m.nr, POOL_MAX_RANGES));
	if (h->len != sizeof(m) + (size_t)m.nr * sizeof(struct pool_range))
		return srv_violation(c, tier_err(-EPROTO, "READ of %u ranges in %u bytes",
					     m.nr, h->len));
	for (i = 0; i < m.nr; i++) {
		struct pool_range rg;
		struct srv_seg *g;

		memcpy(&rg, p + sizeof(m) + i * sizeof(rg), sizeof(rg));
		proto_range_swap(&rg);
		g = open_seg(c, rg.id);
		if (!g)
			return tier_err(-EBADF, "READ range %u: no segment open with id %u",
					i, rg.id);
		if (rg.off > g->size || rg.len > g->size - rg.off)
			return tier_err(-ERANGE, "segment '%s': range of %u bytes at offset %llu beyond its size %llu",
					g->name, rg.len,
					(unsigned long long)rg.off,
					(unsigned long long)g->size);
		total += rg.len;
		if (total > POOL_MAX_DATA)
			return tier_err(-EMSGSIZE, "READ of more than %u bytes",
					POOL_MAX_DATA);
		c->riov[1 + i] = (struct iovec){
			.iov_base = (char *)g->mem + rg.off,
			.iov_len = rg.len,
		};
	}
	r->ndata = m.nr;
	r->data_len = total;
	return 0;
}

/* CHALLENGE's and AUTH's payload into @m, on a server with keys. */
static int auth_msg(struct srv_conn *c, const struct pool_hdr *h,
		    const uint8_t *p, void *m, size_t len)
{
	int rc = want_len(c, h, len);

	if (rc)
		return rc;
	if (!c->srv->keys)
		return tier_err(-EOPNOTSUPP, "this server takes no keys (it runs --no-auth)");
	memcpy(m, p, len);
	return 0;
}

static int do_challenge(struct srv_conn *c, const struct pool_hdr *h,
			const uint8_t *p, struct srv_reply *r)
{
	struct pool_challenge m;
	int rc = auth_msg(c, h, p, &m, sizeof(m));

	if (rc)
		return rc;
	rc = auth_challenge(&c->auth, c->srv->keys, &m, &r->u.challenge);
	if (rc)
		return srv_violation(c, rc);
	r->len = sizeof(r->u.challenge);
	return 0;
}

static int do_auth(struct srv_conn *c, const struct pool_hdr *h,
		   const uint8_t *p, struct srv_reply *r)
{
	struct pool_auth m;
	int rc = auth_msg(c, h, p, &m, sizeof(m));

	if (rc)
		return rc;
	rc = auth_verify(&c->auth, c->srv->keys, &m, &r->u.auth);
	if (rc) {
		/* one guess per connection; the operator sees who tried */
		tier_log(TIER_LOG_ERR, "pool server: %s: %s", c->peer, tier_errmsg());
		return srv_violation(c, rc);
	}
	snprintf(c->who, sizeof(c->who), "%s", c->auth.key.id);
	__atomic_store_n(&c->authed, 1, __ATOMIC_RELEASE);
	tier_log(TIER_LOG_INFO, "pool server: %s: key '%s' (%s)", c->peer,
		 c->who, pool_role_name(c->auth.key.role));
	r->len = sizeof(r->u.auth);
	return 0;
}

/* With keys, nothing but the handshake before the peer proved a key. */
static int auth_gate(struct srv_conn *c, unsigned op)
{
	int rc;

	if (!c->srv->keys || op == POOL_OP_HELLO || op == POOL_OP_CHALLENGE ||
	    op == POOL_OP_AUTH)
		return 0;
	if (c->auth.state != AUTH_DONE) {
		rc = tier_err(-EACCES, "%s before authentication: this server requires a key",
			      proto_op_name(op));
		tier_log(TIER_LOG_ERR, "pool server: %s: %s", c->peer, tier_errmsg());
		return srv_violation(c, rc);
	}
	rc = auth_recheck(&c->auth, c->srv->keys);
	if (rc)
		return srv_violation(c, rc);
	return 0;
}

int srv_handle(struct srv_conn *c, const struct pool_hdr *h,
		  const uint8_t *p, struct srv_reply *r)
{
	int rc;

	if (h->op & POOL_OP_REPLY || h->status)
		return srv_violation(c, tier_err(-EPROTO, "a reply or a status in a request"));
	if (!c->hello && h->op != POOL_OP_HELLO)
		return srv_violation(c, tier_err(-EPROTO, "%s before HELLO",
					     proto_op_name(h->op)));
	rc = auth_gate(c, h->op);
	if (rc)
		return rc;
	switch (h->op) {
	case POOL_OP_HELLO:
		return do_hello(c, h, p, r);
	case POOL_OP_CHALLENGE:
		return do_challenge(c, h, p, r);
	case POOL_OP_AUTH:
		return do_auth(c, h, p, r);
	case POOL_OP_OPEN:
		return do_open(c, h, p, r);
	case POOL_OP_CLOSE:
		return do_close(c, h, p, r);
	case POOL_OP_CREATE:
		return do_create(c, h, p, r);
	case POOL_OP_WRITE:
		return do_write(c, h, p, r);
	case POOL_OP_COMMIT:
		return do_commit(c, h, p, r, true);
	case POOL_OP_ABORT:
		return do_commit(c, h, p, r, false);
	case POOL_OP_REMOVE:
		return do_remove(c, h, p, r);
	case POOL_OP_READ:
		if (c->verbs)
			return tier_err(-EOPNOTSUPP, "READ over RDMA: read the segment with RDMA READ");
		return do_read(c, h, p, r);
	case POOL_OP_STAT:
		return do_stat(c, h, p, r);
	}
	/* Well framed, so the stream is still in step: a newer client. */
	return tier_err(-EOPNOTSUPP, "unknown op %u", h->op);
}
