/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool server ("tierctl pool serve"). Segments live in memory: each
 * one is a single mapping of an fd (a memfd, or with attr->dir a file
 * DIR/SNAP/POLICY.seg) so the RDMA transport can register it whole and
 * hand out one rkey per segment. With a dir, CREATE writes into a
 * temporary file that COMMIT renames over the name, the same layout and
 * atomicity as the file pool; segments already on disk are mapped lazily
 * on their first OPEN.
 *
 * One thread per connection. A connection only ever touches its own open
 * and write tables; the shared segment table is under srv->lock, and a
 * segment is reference counted (the table holds one, every OPEN another),
 * so replacing or removing it never pulls memory from under a READ.
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
#include "util/err.h"
#include "util/log.h"

#define SRV_MAX_OPEN	65536U	/* segments open on one connection */
#define SRV_MAX_WRITE	256U	/* segments being written on one connection */
#define SRV_SEND_TIMEOUT_MS	60000	/* a client that stops reading its replies */
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
	char tmp[4096 + 64];	/* with a dir: the temporary, else "" */
};

struct srv_conn {
	struct srv_conn *next;
	struct pool_server *srv;
	int fd;
	pthread_t thread;
	int done;		/* atomic: the thread has finished */
	bool hello;
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
	/*
	 * Bytes of the segments in the table and of those being written,
	 * under lock; CREATE may not take it past max_bytes (0: no limit).
	 */
	uint64_t held, max_bytes;
};

/* ------------------------------------------------------------ segments */

static void seg_free(struct srv_seg *g)
{
	if (g->mem)
		munmap(g->mem, g->size);
	if (g->fd >= 0)
		close(g->fd);
	free(g);
}

static void seg_put(struct pool_server *srv, struct srv_seg *g)
{
	bool last;

	pthread_mutex_lock(&srv->lock);
	last = --g->refs == 0;
	if (last)
		srv->held -= g->size;
	pthread_mutex_unlock(&srv->lock);
	if (last)
		seg_free(g);
}

/* Under srv->lock. */
static struct srv_seg **seg_find(struct pool_server *srv, const char *name)
{
	struct srv_seg **pp;

	for (pp = &srv->segs; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, name))
			return pp;
	return NULL;
}

/* Maps DIR/SNAP/POLICY.seg into the table; under srv->lock. */
static int seg_load(struct pool_server *srv, const char *name,
		    struct srv_seg **ret)
{
	char path[4096 + 16];
	struct srv_seg *g;
	struct stat st;
	int rc, prot = PROT_READ;

	rc = pool_seg_path(srv->dir, name, path, sizeof(path));
	if (rc)
		return rc;
	g = calloc(1, sizeof(*g));
	if (!g)
		return tier_err(-ENOMEM, "out of memory");
	strcpy(g->name, name);
	/*
	 * Read-write if we may, though we never write: kernels before 6.2
	 * pin every registered page with FOLL_WRITE | FOLL_FORCE, which fails
	 * (-EFAULT) on a read-only shared mapping, so RDMA could not serve it.
	 */
	g->fd = open(path, O_RDWR | O_CLOEXEC);
	if (g->fd >= 0)
		prot |= PROT_WRITE;
	else if (errno == EACCES || errno == EROFS || errno == EPERM)
		g->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (g->fd < 0) {
		rc = errno == ENOENT ?
			tier_err(-ENOENT, "segment '%s': no such segment", name) :
			tier_err(-errno, "segment '%s': %s: %m", name, path);
		goto err;
	}
	if (fstat(g->fd, &st) < 0) {
		rc = tier_err(-errno, "segment '%s': %s: %m", name, path);
		goto err;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > POOL_MAX_SIZE) {
		rc = tier_err(-EINVAL, "segment '%s': %s: not a segment file",
			      name, path);
		goto err;
	}
	g->size = st.st_size;
	if (g->size) {
		g->mem = mmap(NULL, g->size, prot, MAP_SHARED, g->fd, 0);
		if (g->mem == MAP_FAILED) {
			g->mem = NULL;
			rc = tier_err(-errno, "segment '%s': mmap %s: %m",
				      name, path);
			goto err;
		}
	}
	g->refs = 1;
	g->next = srv->segs;
	srv->segs = g;
	srv->held += g->size;	/* already on disk: never refused */
	tier_dbg("pool server: loaded '%s' (%llu bytes) from %s", name,
		 (unsigned long long)g->size, path);
	*ret = g;
	return 0;
err:
	seg_free(g);
	return rc;
}

/* Looks @name up, loading it from the dir if need be; returns a reference. */
static int seg_get(struct pool_server *srv, const char *name,
		   struct srv_seg **ret)
{
	struct srv_seg **pp, *g;
	int rc = 0;

	pthread_mutex_lock(&srv->lock);
	pp = seg_find(srv, name);
	if (pp)
		g = *pp;
	else if (srv->dir[0])
		rc = seg_load(srv, name, &g);
	else
		rc = tier_err(-ENOENT, "segment '%s': no such segment", name);
	if (!rc) {
		g->refs++;
		*ret = g;
	}
	pthread_mutex_unlock(&srv->lock);
	return rc;
}

static void wseg_free(struct srv_wseg *w, bool discard)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->srv->lock);
	w->srv->held -= w->size;
	pthread_mutex_unlock(&w->srv->lock);
	if (w->mem)
		munmap(w->mem, w->size);
	if (w->fd >= 0)
		close(w->fd);
	if (discard && w->tmp[0])
		unlink(w->tmp);
	free(w);
}

static int wseg_new(struct pool_server *srv, const char *name, uint64_t size,
		    struct srv_wseg **ret)
{
	struct srv_wseg *w;
	uint64_t held;
	int rc;

	pthread_mutex_lock(&srv->lock);
	held = srv->held;
	if (srv->max_bytes &&
	    (size > srv->max_bytes || held > srv->max_bytes - size)) {
		pthread_mutex_unlock(&srv->lock);
		return tier_err(-ENOSPC, "segment '%s': %llu bytes do not fit: the pool holds %llu of its %llu (--max-bytes)",
				name, (unsigned long long)size,
				(unsigned long long)held,
				(unsigned long long)srv->max_bytes);
	}
	srv->held += size;	/* given back by wseg_free, or kept by commit */
	pthread_mutex_unlock(&srv->lock);
	w = calloc(1, sizeof(*w));
	if (!w) {
		pthread_mutex_lock(&srv->lock);
		srv->held -= size;
		pthread_mutex_unlock(&srv->lock);
		return tier_err(-ENOMEM, "out of memory");
	}
	w->srv = srv;
	strcpy(w->name, name);
	w->size = size;
	if (srv->dir[0]) {
		const char *slash = strchr(name, '/');
		int n;

		rc = pool_seg_mkdir(srv->dir, name);
		if (rc)
			goto err;
		n = snprintf(w->tmp, sizeof(w->tmp), "%s/%.*s/.%s.seg.tmp.%d.%u",
			     srv->dir, (int)(slash - name), name, slash + 1,
			     (int)getpid(),
			     __atomic_fetch_add(&srv->tmp_seq, 1, __ATOMIC_RELAXED));
		if (n < 0 || (size_t)n >= sizeof(w->tmp)) {
			w->tmp[0] = '\0';
			rc = tier_err(-ENAMETOOLONG, "segment '%s': path too long", name);
			goto err;
		}
		w->fd = open(w->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	} else {
		w->fd = memfd_create(name, MFD_CLOEXEC);
	}
	if (w->fd < 0) {
		w->tmp[0] = '\0';
		rc = tier_err(-errno, "segment '%s': %m", name);
		goto err;
	}
	if (size && ftruncate(w->fd, size) < 0) {
		rc = tier_err(-errno, "segment '%s': size %llu: %m", name,
			      (unsigned long long)size);
		goto err;
	}
	/*
	 * WRITEs land in a shared mapping of the file: on a full disk (or
	 * tmpfs, or a memfd past its memory) a store there is SIGBUS, which
	 * would kill the server. Reserve every block now instead, so a full
	 * disk is this CREATE's error.
	 */
	if (size && (rc = posix_fallocate(w->fd, 0, size)) != 0) {
		rc = tier_err(-rc, "segment '%s': reserving %llu bytes: %s",
			      name, (unsigned long long)size, strerror(rc));
		goto err;
	}
	if (size) {
		w->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			      w->fd, 0);
		if (w->mem == MAP_FAILED) {
			w->mem = NULL;
			rc = tier_err(-errno, "segment '%s': mmap: %m", name);
			goto err;
		}
	}
	*ret = w;
	return 0;
err:
	wseg_free(w, true);
	return rc;
}

/* Publishes @w under its name, replacing an older segment; consumes @w. */
static int wseg_commit(struct pool_server *srv, struct srv_wseg *w)
{
	char path[4096 + 16];
	struct srv_seg *g, **pp, *old = NULL;
	int rc;

	if (srv->dir[0]) {
		rc = pool_seg_path(srv->dir, w->name, path, sizeof(path));
		if (rc)
			goto err;
		if ((w->mem && msync(w->mem, w->size, MS_SYNC) < 0) ||
		    fsync(w->fd) < 0) {
			rc = tier_err(-errno, "segment '%s': sync: %m", w->name);
			goto err;
		}
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		rc = tier_err(-ENOMEM, "out of memory");
		goto err;
	}
	strcpy(g->name, w->name);
	g->size = w->size;
	g->mem = w->mem;
	g->fd = w->fd;
	g->refs = 1;

	/* Rename and swap under one lock so disk and table agree on the winner. */
	pthread_mutex_lock(&srv->lock);
	if (srv->dir[0] && rename(w->tmp, path) < 0) {
		rc = tier_err(-errno, "segment '%s': rename to %s: %m",
			      w->name, path);
		pthread_mutex_unlock(&srv->lock);
		free(g);
		goto err;
	}
	pp = seg_find(srv, w->name);
	if (pp) {
		old = *pp;
		*pp = old->next;
	}
	g->next = srv->segs;
	srv->segs = g;
	pthread_mutex_unlock(&srv->lock);

	if (old)
		seg_put(srv, old);
	tier_dbg("pool server: committed '%s' (%llu bytes)", w->name,
		 (unsigned long long)w->size);
	free(w);
	if (srv->dir[0])
		return pool_sync_parent(path);
	return 0;
err:
	wseg_free(w, true);
	return rc;
}

static int seg_remove(struct pool_server *srv, const char *name)
{
	struct srv_seg **pp, *g = NULL;
	char path[4096 + 16];
	int rc = 0;

	pthread_mutex_lock(&srv->lock);
	pp = seg_find(srv, name);
	if (pp) {
		g = *pp;
		*pp = g->next;
	}
	if (srv->dir[0]) {
		rc = pool_seg_path(srv->dir, name, path, sizeof(path));
		if (!rc && unlink(path) < 0 && (errno != ENOENT || !g))
			rc = errno == ENOENT ?
				tier_err(-ENOENT, "segment '%s': no such segment", name) :
				tier_err(-errno, "segment '%s': %s: %m", name, path);
	} else if (!g) {
		rc = tier_err(-ENOENT, "segment '%s': no such segment", name);
	}
	pthread_mutex_unlock(&srv->lock);
	if (g)
		seg_put(srv, g);
	return rc;
}

/* ------------------------------------------------------------ requests */

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

/* A request that breaks the protocol: answered with -EPROTO, then closed. */
static int violation(struct srv_conn *c, int rc)
{
	c->fatal = true;
	return rc;
}

static int want_len(struct srv_conn *c, const struct pool_hdr *h, size_t len)
{
	if (h->len != len)
		return violation(c, tier_err(-EPROTO, "%s payload of %u bytes, expected %zu",
					     proto_op_name(h->op), h->len, len));
	return 0;
}

/* Copies a name payload out and checks it; soft error if it is not valid. */
static int get_name(struct srv_conn *c, const uint8_t *p, size_t len,
		    char *name)
{
	if (len == 0 || len > POOL_NAME_MAX) {
		if (len > POOL_NAME_MAX + 64)
			return violation(c, tier_err(-EPROTO, "segment name of %zu bytes",
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

static void open_drop(struct srv_conn *c, struct srv_open *o)
{
	pool_verbs_unreg(o->mr);
	seg_put(c->srv, o->g);
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
		return violation(c, tier_err(-EPROTO, "client speaks version %u",
					     m.version));
	m.name[sizeof(m.name) - 1] = '\0';
	tier_dbg("pool server: %s is '%s'", c->peer, m.name);
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
	rc = seg_get(c->srv, name, &g);
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
			open_drop(c, &c->open[i]);
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
	open_drop(c, &c->open[id - 1]);
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
	rc = wseg_new(c->srv, name, m.size, &c->w[i]);
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

static int do_write(struct srv_conn *c, const struct pool_hdr *h,
		    const uint8_t *p, struct srv_reply *r)
{
	struct pool_write_req m;
	struct srv_wseg *w;
	size_t len;

	if (h->len < sizeof(m))
		return want_len(c, h, sizeof(m));
	memcpy(&m, p, sizeof(m));
	proto_write_req_swap(&m);
	len = h->len - sizeof(m);
	w = write_seg(c, m.id);
	if (!w)
		return tier_err(-EBADF, "no segment being written with id %u", m.id);
	if (m.off > w->size || len > w->size - m.off)
		return tier_err(-ERANGE, "segment '%s': write of %zu bytes at offset %llu beyond its size %llu",
				w->name, len, (unsigned long long)m.off,
				(unsigned long long)w->size);
	if (len)
		memcpy((char *)w->mem + m.off, p + sizeof(m), len);
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
		wseg_free(w, true);
		return 0;
	}
	return wseg_commit(c->srv, w);
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
	return seg_remove(c->srv, name);
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
	rc = seg_get(c->srv, name, &g);
	if (rc)
		return rc;
	r->u.stat.size = g->size;
	seg_put(c->srv, g);
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
		return violation(c, tier_err(-EPROTO, "READ of %u ranges, the limit is %u",
					     m.nr, POOL_MAX_RANGES));
	if (h->len != sizeof(m) + (size_t)m.nr * sizeof(struct pool_range))
		return violation(c, tier_err(-EPROTO, "READ of %u ranges in %u bytes",
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

static int do_challenge(struct srv_conn *c, const struct pool_hdr *h,
			const uint8_t *p, struct srv_reply *r)
{
	struct pool_challenge m;
	int rc = want_len(c, h, sizeof(m));

	if (rc)
		return rc;
	if (!c->srv->keys)
		return tier_err(-EOPNOTSUPP, "this server takes no keys (it runs --no-auth)");
	memcpy(&m, p, sizeof(m));
	rc = auth_challenge(&c->auth, c->srv->keys, &m, &r->u.challenge);
	if (rc)
		return violation(c, rc);
	r->len = sizeof(r->u.challenge);
	return 0;
}

static int do_auth(struct srv_conn *c, const struct pool_hdr *h,
		   const uint8_t *p, struct srv_reply *r)
{
	struct pool_auth m;
	int rc = want_len(c, h, sizeof(m));

	if (rc)
		return rc;
	if (!c->srv->keys)
		return tier_err(-EOPNOTSUPP, "this server takes no keys (it runs --no-auth)");
	memcpy(&m, p, sizeof(m));
	rc = auth_verify(&c->auth, c->srv->keys, &m, &r->u.auth);
	if (rc) {
		/* one guess per connection; the operator sees who tried */
		tier_log(TIER_LOG_ERR, "pool server: %s: %s", c->peer, tier_errmsg());
		return violation(c, rc);
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
	if (c->auth.state != AUTH_DONE)
		return violation(c, tier_err(-EACCES, "%s before authentication: this server requires a key",
					     proto_op_name(op)));
	rc = auth_recheck(&c->auth, c->srv->keys);
	if (rc)
		return violation(c, rc);
	return 0;
}

static int handle(struct srv_conn *c, const struct pool_hdr *h,
		  const uint8_t *p, struct srv_reply *r)
{
	int rc;

	if (h->op & POOL_OP_REPLY || h->status)
		return violation(c, tier_err(-EPROTO, "a reply or a status in a request"));
	if (!c->hello && h->op != POOL_OP_HELLO)
		return violation(c, tier_err(-EPROTO, "%s before HELLO",
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

/* ---------------------------------------------------------- connections */

static int send_reply(struct srv_conn *c, const struct pool_hdr *req, int rc,
		      struct srv_reply *r)
{
	struct pool_hdr h;
	struct iovec iov[2];

	if (rc) {
		const char *why = tier_errmsg();
		size_t n = strlen(why);

		if (n > POOL_MAX_REASON)
			n = POOL_MAX_REASON;
		proto_hdr_encode(&h, req->op | POOL_OP_REPLY, req->req_id, rc, n);
		iov[0] = (struct iovec){ &h, sizeof(h) };
		iov[1] = (struct iovec){ (void *)why, n };
		return proto_send_all(c->fd, iov, 2);
	}
	if (r->ndata) {
		proto_hdr_encode(&h, req->op | POOL_OP_REPLY, req->req_id, 0,
				 r->data_len);
		c->riov[0] = (struct iovec){ &h, sizeof(h) };
		return proto_send_all(c->fd, c->riov, 1 + r->ndata);
	}
	proto_hdr_encode(&h, req->op | POOL_OP_REPLY, req->req_id, 0, r->len);
	iov[0] = (struct iovec){ &h, sizeof(h) };
	iov[1] = (struct iovec){ &r->u, r->len };
	return proto_send_all(c->fd, iov, 2);
}

static void conn_cleanup(struct srv_conn *c)
{
	unsigned i;

	for (i = 0; i < c->nopen; i++)
		if (c->open[i].g)
			open_drop(c, &c->open[i]);
	free(c->open);
	c->open = NULL;
	c->nopen = 0;
	/* Uncommitted writes die with the connection. */
	for (i = 0; i < SRV_MAX_WRITE; i++) {
		wseg_free(c->w[i], true);
		c->w[i] = NULL;
	}
	free(c->buf);
	c->buf = NULL;
	free(c->riov);
	c->riov = NULL;
	auth_conn_wipe(&c->auth);
}

static void *conn_main(void *arg)
{
	struct srv_conn *c = arg;
	struct pool_hdr h;
	int rc;

	tier_dbg("pool server: %s connected", c->peer);
	for (;;) {
		struct srv_reply r = { 0 };

		rc = proto_recv(c->fd, &h, sizeof(h));
		if (rc)
			break;
		rc = proto_hdr_decode(&h, c->peer);
		if (rc) {
			send_reply(c, &h, rc, NULL);
			break;
		}
		if (h.len > c->buf_cap) {
			uint8_t *b = realloc(c->buf, h.len);

			if (!b) {
				rc = tier_err(-ENOMEM, "out of memory for %u bytes", h.len);
				send_reply(c, &h, rc, NULL);
				break;
			}
			c->buf = b;
			c->buf_cap = h.len;
		}
		rc = proto_recv(c->fd, c->buf, h.len);
		if (rc)
			break;
		rc = handle(c, &h, c->buf, &r);
		if (rc)
			tier_dbg("pool server: %s: %s: %s", c->peer,
				 proto_op_name(h.op), tier_errmsg());
		if (send_reply(c, &h, rc, &r) || c->fatal)
			break;
	}
	tier_dbg("pool server: %s disconnected", c->peer);
	conn_cleanup(c);
	/* The fd stays open until the run loop joins us: no reuse races. */
	shutdown(c->fd, SHUT_RDWR);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void conn_reap(struct pool_server *srv, bool all)
{
	struct srv_conn **pp = &srv->conns, *c;

	while ((c = *pp)) {
		if (all)
			shutdown(c->fd, SHUT_RDWR);
		if (!all && !__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
			pp = &c->next;
			continue;
		}
		pthread_join(c->thread, NULL);
		close(c->fd);
		*pp = c->next;
		free(c);
	}
}

static void peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN], serv[8];

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, len, "client fd %d", fd);
		return;
	}
	snprintf(buf, len, "client %s:%s", host, serv);
}

/* A stream connection on @fd, not yet served. */
static struct srv_conn *conn_new(struct pool_server *srv, int fd)
{
	struct timeval tv = { .tv_sec = SRV_SEND_TIMEOUT_MS / 1000 };
	struct srv_conn *c;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Requests may be minutes apart (cold faults), replies must drain. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->riov = calloc(1 + POOL_MAX_RANGES, sizeof(*c->riov));
	if (!c->riov) {
		free(c);
		return NULL;
	}
	c->srv = srv;
	c->fd = fd;
	c->max_data = POOL_MAX_DATA;
	peer_name(fd, c->peer, sizeof(c->peer));
	return c;
}

static int conn_start(struct pool_server *srv, int fd)
{
	struct srv_conn *c = conn_new(srv, fd);
	int rc;

	if (!c)
		return -ENOMEM;
	rc = pthread_create(&c->thread, NULL, conn_main, c);
	if (rc) {
		free(c->riov);
		free(c);
		return -rc;
	}
	c->next = srv->conns;
	srv->conns = c;
	__atomic_fetch_add(&srv->connections, 1, __ATOMIC_RELAXED);
	return 0;
}

int srv_serve_fd(struct pool_server *srv, int fd)
{
	struct srv_conn *c = conn_new(srv, fd);

	if (!c)
		return tier_err(-ENOMEM, "out of memory");
	__atomic_fetch_add(&srv->connections, 1, __ATOMIC_RELAXED);
	conn_main(c);
	free(c);
	return 0;
}

/* ------------------------------------------- message transports (rdma) */

struct srv_conn *srv_conn_new(struct pool_server *srv, const char *peer,
			      void *verbs, uint32_t max_data)
{
	struct srv_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->srv = srv;
	c->fd = -1;
	c->verbs = verbs;
	c->max_data = max_data;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	tier_dbg("pool server: %s connected", c->peer);
	__atomic_fetch_add(&srv->connections, 1, __ATOMIC_RELAXED);
	return c;
}

void srv_conn_free(struct srv_conn *c)
{
	if (!c)
		return;
	tier_dbg("pool server: %s disconnected", c->peer);
	conn_cleanup(c);
	free(c);
}

/* Writes header and @n payload bytes to @out, truncating a reason. */
static size_t put_msg(void *out, size_t cap, const struct pool_hdr *req,
		      int status, const void *p, size_t n)
{
	struct pool_hdr h;

	if (n > cap - sizeof(h))
		n = cap - sizeof(h);
	proto_hdr_encode(&h, req->op | POOL_OP_REPLY, req->req_id, status, n);
	memcpy(out, &h, sizeof(h));
	memcpy((char *)out + sizeof(h), p, n);
	return sizeof(h) + n;
}

size_t srv_conn_msg(struct srv_conn *c, void *msg, size_t len, void *out,
		    size_t cap, bool *close)
{
	struct srv_reply r = { 0 };
	struct pool_hdr h = { 0 };
	const char *why;
	int rc;

	*close = false;
	if (len < sizeof(h)) {
		*close = true;
		rc = tier_err(-EPROTO, "message of %zu bytes", len);
		goto fail;
	}
	memcpy(&h, msg, sizeof(h));
	rc = proto_hdr_decode(&h, c->peer);
	if (!rc && h.len != len - sizeof(h))
		rc = tier_err(-EPROTO, "%s message of %zu bytes says %u",
			      proto_op_name(h.op), len, h.len);
	if (rc) {
		*close = true;
		goto fail;
	}
	rc = handle(c, &h, (uint8_t *)msg + sizeof(h), &r);
	*close = c->fatal;
	if (!rc)
		return put_msg(out, cap, &h, 0, &r.u, r.len);
fail:
	tier_dbg("pool server: %s: %s: %s", c->peer, proto_op_name(h.op),
		 tier_errmsg());
	why = tier_errmsg();
	return put_msg(out, cap, &h, rc, why,
		       strlen(why) < POOL_MAX_REASON ? strlen(why) : POOL_MAX_REASON);
}

/* ---------------------------------------------------------------- API */

static int srv_listen(struct pool_server *srv, const struct tier_uri *uri)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	}, *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8];
	int rc, fd = -1, one = 1, err = 0;

	snprintf(port, sizeof(port), "%u", uri->port);
	rc = getaddrinfo(uri->host[0] ? uri->host : NULL, port, &hints, &res);
	if (rc)
		return tier_err(-EADDRNOTAVAIL, "pool server %s: cannot resolve '%s': %s",
				srv->uri, uri->host, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return tier_err(-err, "pool server %s: %m", srv->uri);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		rc = tier_err(-errno, "pool server %s: getsockname: %m", srv->uri);
		close(fd);
		return rc;
	}
	srv->port = ntohs(ss.ss_family == AF_INET6 ?
			  ((struct sockaddr_in6 *)&ss)->sin6_port :
			  ((struct sockaddr_in *)&ss)->sin_port);
	srv->lfd = fd;
	return 0;
}

int pool_server_start(const struct tier_uri *uri,
		      const struct pool_server_attr *attr,
		      struct pool_server **ret)
{
	struct pool_server *srv;
	struct stat st;
	int rc;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return tier_err(-ENOMEM, "out of memory");
	srv->lfd = -1;
	srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
	pthread_mutex_init(&srv->lock, NULL);
	pool_uri_name(uri, srv->uri, sizeof(srv->uri));
	srv->max_bytes = attr ? attr->max_bytes : 0;
	if (attr && attr->keys) {
		rc = auth_init();
		if (!rc)
			rc = pool_keys_load(attr->keys, &srv->keys);
		if (rc) {
			rc = tier_err_ctx(rc, "pool server");
			goto err;
		}
	}

	if (attr && attr->dir) {
		if (snprintf(srv->dir, sizeof(srv->dir), "%s", attr->dir) >=
		    (int)sizeof(srv->dir)) {
			rc = tier_err(-ENAMETOOLONG, "%s: path too long", attr->dir);
			goto err;
		}
		if (mkdir(srv->dir, 0755) < 0 && errno != EEXIST) {
			rc = tier_err(-errno, "pool server: %s: %m", srv->dir);
			goto err;
		}
		if (stat(srv->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			rc = tier_err(-ENOTDIR, "pool server: %s: not a directory",
				      srv->dir);
			goto err;
		}
	}
	if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = tier_err(-errno, "pipe: %m");
		goto err;
	}
	switch (uri->kind) {
	case URI_POOL_TCP:
		rc = srv_listen(srv, uri);
		break;
	case URI_POOL_RDMA:
		rc = pool_verbs_listen(srv, uri, srv->uri, &srv->verbs,
				       &srv->lfd, &srv->port);
		break;
	default:
		rc = tier_err(-EINVAL, "pool server: listens on tcp:// or rdma://, not %s",
			      srv->uri);
	}
	if (rc)
		goto err;
	{
		struct tier_uri bound = *uri;

		bound.port = srv->port;
		pool_uri_name(&bound, srv->uri, sizeof(srv->uri));
	}
	tier_dbg("pool server: listening on %s%s%s", srv->uri,
		 srv->dir[0] ? ", segments in " : "", srv->dir);
	*ret = srv;
	return 0;
err:
	pool_server_free(srv);
	return rc;
}

bool srv_conn_revoked(struct srv_conn *c)
{
	struct pool_key k;
	bool gone;

	if (!c->srv->keys || !__atomic_load_n(&c->authed, __ATOMIC_ACQUIRE))
		return false;
	gone = pool_keys_find(c->srv->keys, c->who, &k) || k.revoked;
	explicit_bzero(&k, sizeof(k));
	return gone;
}

/*
 * Re-reads changed keys, and cuts the connections of keys revoked or
 * removed: over RDMA a client that only reads sends no request the
 * per-request check could refuse, and its rkeys must die now.
 */
static void keys_tick(struct pool_server *srv)
{
	unsigned gen;

	if (pool_keys_refresh(srv->keys, &gen))
		tier_log(TIER_LOG_ERR, "pool server: keys not re-read, the old ones stay: %s",
			 tier_errmsg());
	if (gen == srv->keys_gen)
		return;
	srv->keys_gen = gen;
	for (struct srv_conn *c = srv->conns; c; c = c->next)
		if (srv_conn_revoked(c)) {
			tier_log(TIER_LOG_INFO, "pool server: %s: key '%s' revoked: disconnected",
				 c->peer, c->who);
			shutdown(c->fd, SHUT_RDWR);
		}
	if (srv->verbs)
		pool_verbs_revoke(srv->verbs);
}

int pool_server_run(struct pool_server *srv)
{
	struct pollfd pfd[2] = {
		{ .fd = srv->lfd, .events = POLLIN },
		{ .fd = srv->stop_pipe[0], .events = POLLIN },
	};
	char junk[64];
	int rc = 0;

	for (;;) {
		int fd;

		if (srv->keys)
			keys_tick(srv);
		if (poll(pfd, 2, srv->keys ? SRV_KEYS_POLL_MS : -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = tier_err(-errno, "pool server: poll: %m");
			break;
		}
		if (pfd[1].revents) {
			while (read(srv->stop_pipe[0], junk, sizeof(junk)) > 0)
				;
			break;
		}
		conn_reap(srv, false);
		if (!pfd[0].revents)
			continue;
		if (srv->verbs) {
			pool_verbs_event(srv->verbs);
			continue;
		}
		fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of fds: back off rather than spin on poll. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
				usleep(100 * 1000);
			tier_dbg("pool server: accept: %s", strerror(errno));
			continue;
		}
		if (conn_start(srv, fd)) {
			tier_dbg("pool server: no thread for a connection");
			close(fd);
		}
	}
	conn_reap(srv, true);
	if (srv->verbs)
		pool_verbs_disconnect_all(srv->verbs);
	tier_dbg("pool server %s: stopped", srv->uri);
	return rc;
}

void pool_server_stop(struct pool_server *srv)
{
	int saved = errno;
	ssize_t n;

	/* write(2) is async-signal-safe; a full pipe already says "stop". */
	n = write(srv->stop_pipe[1], "s", 1);
	(void)n;
	errno = saved;
}

void pool_server_free(struct pool_server *srv)
{
	struct srv_seg *g;

	if (!srv)
		return;
	conn_reap(srv, true);
	if (srv->verbs)
		pool_verbs_disconnect_all(srv->verbs);
	/* Connections first: each holds its segments' registrations. */
	while ((g = srv->segs)) {
		srv->segs = g->next;
		seg_put(srv, g);
	}
	if (srv->verbs)
		pool_verbs_free(srv->verbs);
	else if (srv->lfd >= 0)
		close(srv->lfd);
	if (srv->stop_pipe[0] >= 0)
		close(srv->stop_pipe[0]);
	if (srv->stop_pipe[1] >= 0)
		close(srv->stop_pipe[1]);
	pool_keys_free(srv->keys);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

uint16_t pool_server_port(const struct pool_server *srv)
{
	return srv->port;
}

unsigned pool_server_connections(const struct pool_server *srv)
{
	return __atomic_load_n(&srv->connections, __ATOMIC_RELAXED);
}
