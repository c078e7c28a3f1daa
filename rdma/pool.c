/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool API (rdma/pool.h): checks names and bounds once, then hands
 * each call to the transport the URI chose (file.c, tcp.c, verbs.c,
 * rados.c).
 * Called by store/place.c (writes segments) and the restorer (reads them).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier.h"
#include "rdma/auth.h"
#include "rdma/keys.h"
#include "rdma/pool-int.h"
#include "util/err.h"
#include "util/log.h"

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int pool_name_check(const char *name)
{
	const char *slash;
	size_t len, i;

	if (!name)
		return tier_err(-EINVAL, "segment name missing");
	len = strlen(name);
	if (len == 0 || len > POOL_NAME_MAX)
		return tier_err(-EINVAL, "segment name '%.*s' must be 1 to %d characters",
				POOL_NAME_MAX, name, POOL_NAME_MAX);
	slash = strchr(name, '/');
	if (!slash || strchr(slash + 1, '/'))
		return tier_err(-EINVAL, "segment name '%s' is not SNAP/POLICY", name);
	if (slash == name || !slash[1])
		return tier_err(-EINVAL, "segment name '%s' has an empty component",
				name);
	for (i = 0; i < len; i++)
		if (name[i] != '/' && !name_char_ok(name[i]))
			return tier_err(-EINVAL, "segment name '%s': character '%c' not allowed (only A-Z a-z 0-9 . _ -)",
					name, name[i]);
	/*
	 * No component starts with a dot, so none is "." or ".." (and none
	 * collides with the file pool's temporaries); a dot inside one is
	 * harmless, as in a snapshot named "a..b" the store accepts.
	 */
	if (name[0] == '.' || slash[1] == '.')
		return tier_err(-EINVAL, "segment name '%s': components may not start with '.'",
				name);
	return 0;
}

int pool_seg_path(const char *dir, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s.seg", dir, name);

	if (n < 0 || (size_t)n >= len)
		return tier_err(-ENAMETOOLONG, "%s/%s.seg: path too long", dir, name);
	return 0;
}

int pool_seg_mkdir(const char *dir, const char *name)
{
	const char *slash = strchr(name, '/');
	char path[4096];
	int n;

	n = snprintf(path, sizeof(path), "%s/%.*s", dir,
		     (int)(slash - name), name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return tier_err(-ENAMETOOLONG, "%s: path too long", dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return tier_err(-errno, "%s: %m", path);
	return 0;
}

int pool_sync_parent(const char *path)
{
	char dir[4096];
	char *slash;
	int fd, rc = 0;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return tier_err(-errno, "%s: %m", dir);
	if (fsync(fd) < 0)
		rc = tier_err(-errno, "%s: fsync: %m", dir);
	close(fd);
	return rc;
}

void pool_uri_name(const struct tier_uri *uri, char *buf, size_t len)
{
	const char *scheme = uri->kind == URI_POOL_RDMA ? "rdma" : "tcp";

	if (uri->kind == URI_POOL_FILE)
		snprintf(buf, len, "file:%s", uri->path);
	else if (uri->kind == URI_POOL_RADOS)
		snprintf(buf, len, "rados://%s%s%s", uri->rados.pool,
			 uri->rados.ns[0] ? "/" : "", uri->rados.ns);
	else if (strchr(uri->host, ':'))
		snprintf(buf, len, "%s://[%s]:%u", scheme, uri->host, uri->port);
	else
		snprintf(buf, len, "%s://%s:%u", scheme, uri->host, uri->port);
}

int pool_auth(struct pool *p)
{
	const struct pool_cred *cred = p->cred;
	enum pool_role role;
	int rc;

	if (!p->ctl)
		return 0;	/* a file pool: the file modes decide */
	if (!(p->server_flags & POOL_HELLO_AUTH)) {
		if (cred)
			tier_dbg("pool %s: the server asks for no key; '%s' unused",
				 p->uri, cred->id);
		return 0;
	}
	if (!cred)
		return tier_err(-EACCES, "pool %s: the server requires a key, and none is set up (tierctl pool key)",
				p->uri);
	rc = auth_client(p, cred, &role);
	if (!rc)
		tier_dbg("pool %s: key '%s' accepted, role %s", p->uri,
			 cred->id, pool_role_name(role));
	return rc;
}

int pool_open(const struct tier_uri *uri, struct pool **ret)
{
	return pool_connect(uri, NULL, ret);
}

int pool_connect(const struct tier_uri *uri, const struct pool_cred *cred,
		 struct pool **ret)
{
	struct pool *p;
	int rc;

	p = calloc(1, sizeof(*p));
	if (!p)
		return tier_err(-ENOMEM, "out of memory");
	pool_uri_name(uri, p->uri, sizeof(p->uri));

	switch (uri->kind) {
	case URI_POOL_FILE:
		rc = pool_file_open(p, uri->path);
		break;
	case URI_POOL_TCP:
		rc = pool_tcp_open(p, uri);
		break;
	case URI_POOL_RDMA:
		rc = pool_verbs_open(p, uri);
		break;
	case URI_POOL_RADOS:
		rc = pool_rados_open(p, uri);
		break;
	default:
		rc = tier_err(-EINVAL, "not a pool URI (kind %d)", uri->kind);
	}
	if (rc) {
		free(p);
		return rc;
	}
	if (cred && p->ctl) {
		p->cred = malloc(sizeof(*p->cred));
		if (!p->cred) {
			pool_close(p);
			return tier_err(-ENOMEM, "out of memory");
		}
		*p->cred = *cred;
	}
	rc = pool_auth(p);
	if (rc) {
		pool_close(p);
		return rc;
	}
	*ret = p;
	return 0;
}

void pool_close(struct pool *p)
{
	if (!p)
		return;
	p->ops->close(p);
	if (p->cred) {
		explicit_bzero(p->cred, sizeof(*p->cred));
		free(p->cred);
	}
	free(p);
}

int pool_create(struct pool *p, const char *name, uint64_t size,
		struct pool_wseg **ret)
{
	struct pool_wseg *w;
	int rc;

	rc = pool_name_check(name);
	if (rc)
		return tier_err_ctx(rc, "pool %s", p->uri);
	w = calloc(1, sizeof(*w));
	if (!w)
		return tier_err(-ENOMEM, "out of memory");
	w->pool = p;
	w->fd = -1;
	w->size = size;
	strcpy(w->name, name);
	rc = p->ops->create(p, w);
	if (rc) {
		free(w);
		return rc;
	}
	*ret = w;
	return 0;
}

int pool_write(struct pool_wseg *w, uint64_t off, const void *buf, size_t len)
{
	if (off > w->size || len > w->size - off)
		return tier_err(-ERANGE, "pool %s: segment '%s': write of %zu bytes at offset %llu beyond its size %llu",
				w->pool->uri, w->name, len,
				(unsigned long long)off,
				(unsigned long long)w->size);
	if (!len)
		return 0;
	return w->pool->ops->write(w, off, buf, len);
}

int pool_commit(struct pool_wseg *w)
{
	int rc = w->pool->ops->commit(w);

	free(w);
	return rc;
}

void pool_abort(struct pool_wseg *w)
{
	if (!w)
		return;
	w->pool->ops->abort(w);
	free(w);
}

int pool_seg_open(struct pool *p, const char *name, struct pool_seg **ret)
{
	struct pool_seg *s;
	int rc;

	rc = pool_name_check(name);
	if (rc)
		return tier_err_ctx(rc, "pool %s", p->uri);
	s = calloc(1, sizeof(*s));
	if (!s)
		return tier_err(-ENOMEM, "out of memory");
	s->pool = p;
	s->fd = -1;
	strcpy(s->name, name);
	rc = p->ops->seg_open(p, s);
	if (rc) {
		free(s);
		return rc;
	}
	*ret = s;
	return 0;
}

void pool_seg_close(struct pool_seg *s)
{
	char why[512];

	if (!s)
		return;
	/* Best effort, and often on a failure's way out: a CLOSE that
	 * finds the connection gone must not replace the reason of the
	 * failure (a READ's) that the caller is about to report. */
	snprintf(why, sizeof(why), "%s", tier_errmsg());
	s->pool->ops->seg_close(s);
	tier_err(0, "%s", why);
	free(s);
}

uint64_t pool_seg_size(const struct pool_seg *s)
{
	return s->size;
}

int pool_readv(struct pool_seg *s, const struct pool_iov *iov, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		if (iov[i].off > s->size || iov[i].len > s->size - iov[i].off)
			return tier_err(-ERANGE, "pool %s: segment '%s': range of %zu bytes at offset %llu beyond its size %llu",
					s->pool->uri, s->name, iov[i].len,
					(unsigned long long)iov[i].off,
					(unsigned long long)s->size);
	}
	if (!n)
		return 0;
	return s->pool->ops->readv(s, iov, n);
}

int pool_sigsafe(const struct pool *p)
{
	return p && p->ops->readv_sigsafe;
}

int pool_readv_sigsafe(struct pool_seg *s, const struct pool_iov *iov,
		       unsigned n, struct sigstr *why)
{
	size_t mark = why->len;
	unsigned i;
	int rc;

	/* the prefix goes in first (nothing can be formatted later), and
	 * comes out again if the read went well */
	ss_str(why, "pool ");
	ss_str(why, s->pool->uri);
	ss_str(why, ": segment '");
	ss_str(why, s->name);
	ss_str(why, "': ");
	if (!s->pool->ops->readv_sigsafe) {
		ss_str(why, "no signal-safe read over this transport");
		return -EOPNOTSUPP;
	}
	for (i = 0; i < n; i++) {
		if (iov[i].off > s->size || iov[i].len > s->size - iov[i].off) {
			ss_str(why, "range at offset ");
			ss_u64(why, iov[i].off);
			ss_str(why, " beyond its size ");
			ss_u64(why, s->size);
			return -ERANGE;
		}
	}
	rc = n ? s->pool->ops->readv_sigsafe(s, iov, n, why) : 0;
	if (!rc) {
		why->len = mark;
		why->buf[mark] = '\0';
	}
	return rc;
}

struct pool *pool_seg_pool(const struct pool_seg *s)
{
	return s->pool;
}

bool pool_can_post(const struct pool *p)
{
	return p->ops->mr_reg != NULL;
}

int pool_mr_reg(struct pool *p, void *buf, size_t len, struct pool_mr **ret)
{
	struct pool_mr *mr;
	int rc;

	if (!p->ops->mr_reg)
		return -EOPNOTSUPP;
	if (!buf || !len)
		return tier_err(-EINVAL, "pool %s: no buffer to register", p->uri);
	mr = calloc(1, sizeof(*mr));
	if (!mr)
		return tier_err(-ENOMEM, "out of memory");
	mr->pool = p;
	mr->base = buf;
	mr->len = len;
	rc = p->ops->mr_reg(p, mr);
	if (rc) {
		free(mr);
		return rc;
	}
	*ret = mr;
	return 0;
}

void pool_mr_unreg(struct pool_mr *mr)
{
	if (!mr)
		return;
	mr->pool->ops->mr_unreg(mr);
	free(mr);
}

int pool_read_post(struct pool_seg *s, const struct pool_iov *iov, unsigned n,
		   struct pool_mr *mr, uint64_t *ret_ticket)
{
	unsigned i;

	if (!s->pool->ops->read_post || mr->pool != s->pool)
		return tier_err(-EINVAL, "pool %s: segment '%s': posted read without a buffer registered with this pool",
				s->pool->uri, s->name);
	for (i = 0; i < n; i++) {
		const uint8_t *b = iov[i].buf;

		if (iov[i].off > s->size || iov[i].len > s->size - iov[i].off)
			return tier_err(-ERANGE, "pool %s: segment '%s': range of %zu bytes at offset %llu beyond its size %llu",
					s->pool->uri, s->name, iov[i].len,
					(unsigned long long)iov[i].off,
					(unsigned long long)s->size);
		if (b < mr->base || iov[i].len > mr->len ||
		    (size_t)(b - mr->base) > mr->len - iov[i].len)
			return tier_err(-EINVAL, "pool %s: segment '%s': read into %p+%zu outside the registered buffer",
					s->pool->uri, s->name, iov[i].buf,
					iov[i].len);
	}
	return s->pool->ops->read_post(s, iov, n, mr, ret_ticket);
}

int pool_read_wait(struct pool_seg *s, uint64_t ticket)
{
	if (!s->pool->ops->read_wait)
		return tier_err(-EINVAL, "pool %s: segment '%s': no posted reads",
				s->pool->uri, s->name);
	return s->pool->ops->read_wait(s, ticket);
}

int pool_seg_view(struct pool_seg *s, uint64_t off, size_t len,
		  const void **ret)
{
	if (!s->pool->ops->view)
		return -EOPNOTSUPP;
	if (!len || off > s->size || len > s->size - off)
		return tier_err(-ERANGE, "pool %s: segment '%s': view of %zu bytes at offset %llu beyond its size %llu",
				s->pool->uri, s->name, len,
				(unsigned long long)off,
				(unsigned long long)s->size);
	return s->pool->ops->view(s, off, len, ret);
}

int pool_remove(struct pool *p, const char *name)
{
	int rc = pool_name_check(name);

	if (rc)
		return tier_err_ctx(rc, "pool %s", p->uri);
	return p->ops->remove(p, name);
}

int pool_list(struct pool *p, const char *snap,
	      int (*fn)(const char *name, void *arg), void *arg)
{
	char probe[POOL_NAME_MAX + 1];
	int n = snprintf(probe, sizeof(probe), "%s/x", snap);

	/* the snapshot part of a segment name, checked as one */
	if (n < 0 || (size_t)n >= sizeof(probe) || pool_name_check(probe))
		return tier_err(-EINVAL, "pool %s: '%s' is not a snapshot name",
				p->uri, snap);
	if (!p->ops->list)
		return tier_err(-EOPNOTSUPP, "pool %s cannot list its segments; name them (SNAP/POLICY.GEN)",
				p->uri);
	return p->ops->list(p, snap, fn, arg);
}

/* ------------------------------------------------------------ settings */

static struct {
	pthread_mutex_t lock;
	unsigned timeout_ms;
	char rdma_src[64];
} opts = { .lock = PTHREAD_MUTEX_INITIALIZER, .timeout_ms = POOL_IO_TIMEOUT_MS };

int tier_set_pool_opts(const struct tier_pool_opts *o)
{
	const struct tier_pool_opts none = { 0 };

	if (!o)
		o = &none;
	if (o->timeout_ms > 3600U * 1000)
		return tier_err(-EINVAL, "pool timeout %u ms: more than an hour",
				o->timeout_ms);
	if (o->rdma_src && strlen(o->rdma_src) >= sizeof(opts.rdma_src))
		return tier_err(-EINVAL, "pool RDMA source address '%.40s...': too long",
				o->rdma_src);
	pthread_mutex_lock(&opts.lock);
	opts.timeout_ms = o->timeout_ms ? o->timeout_ms : POOL_IO_TIMEOUT_MS;
	snprintf(opts.rdma_src, sizeof(opts.rdma_src), "%s",
		 o->rdma_src ? o->rdma_src : "");
	pthread_mutex_unlock(&opts.lock);
	return 0;
}

unsigned pool_opt_timeout_ms(void)
{
	unsigned v;

	pthread_mutex_lock(&opts.lock);
	v = opts.timeout_ms;
	pthread_mutex_unlock(&opts.lock);
	return v;
}

/* The string lives as long as the process; a later set between a reader's
 * load and its use would be a program setting it while it connects. */
const char *pool_opt_rdma_src(void)
{
	const char *s;

	pthread_mutex_lock(&opts.lock);
	s = opts.rdma_src[0] ? opts.rdma_src : NULL;
	pthread_mutex_unlock(&opts.lock);
	return s;
}
