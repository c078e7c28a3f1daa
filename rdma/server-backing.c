/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool server's backing pool ("tierctl pool serve --backing URI"):
 * the durable copy of the segments (a RADOS pool, where "tierctl place
 * --backing" wrote them too), in front of which the server is a cache.
 * A segment an OPEN or STAT asks for that neither the table nor the dir
 * holds is copied whole from it into the table, the way a client's
 * CREATE, WRITEs and COMMIT would put it there (srv_wseg_*: the same
 * room checks, the same temporary and rename with a dir), so a server
 * restarted empty serves every segment the backing pool has. The bytes
 * are not checked here: the restorer checks every page it reads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "rdma/server-int.h"
#include "util/err.h"
#include "util/log.h"
#include "util/uri.h"

/* Read in pieces of this: a tcp:// backing pool caps a READ's bytes. */
#define LOAD_CHUNK	(16U << 20)

int srv_backing_open(struct pool_server *srv, const char *uri)
{
	struct tier_uri u;
	int rc;

	rc = uri_parse(uri, URI_WANT_POOL, &u);
	if (rc)
		return tier_err_ctx(rc, "pool server: --backing");
	if (u.kind == URI_POOL_TCP || u.kind == URI_POOL_RDMA)
		return tier_err(-EINVAL, "pool server: --backing \"%s\": a backing pool is rados:// or file:, not another pool server",
				uri);
	rc = pool_open(&u, &srv->backing);
	if (rc)
		return tier_err_ctx(rc, "pool server: --backing");
	pthread_mutex_init(&srv->backing_lock, NULL);
	return 0;
}

void srv_backing_close(struct pool_server *srv)
{
	if (!srv->backing)
		return;
	pool_close(srv->backing);
	srv->backing = NULL;
	pthread_mutex_destroy(&srv->backing_lock);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under backing_lock: the backing pool's @name into the table. */
static int load(struct pool_server *srv, const char *name)
{
	struct pool *b = srv->backing;
	struct pool_seg *s;
	struct srv_wseg *w;
	uint64_t size, off, t0 = now_ms();
	int rc;

	rc = pool_seg_open(b, name, &s);
	if (rc)
		return rc;
	size = pool_seg_size(s);
	rc = srv_wseg_new(srv, name, size, &w);
	if (rc) {
		pool_seg_close(s);
		return tier_err_ctx(rc, "loading from %s", b->uri);
	}
	for (off = 0; off < size && !rc; off += LOAD_CHUNK) {
		struct pool_iov iov = {
			.off = off, .buf = (char *)w->mem + off,
			.len = size - off < LOAD_CHUNK ? size - off : LOAD_CHUNK,
		};

		rc = pool_readv(s, &iov, 1);
	}
	pool_seg_close(s);
	if (rc) {
		srv_wseg_free(w, true);
		return rc;
	}
	rc = srv_wseg_commit(srv, w);
	if (rc)
		return rc;
	__atomic_fetch_add(&srv->loaded, 1, __ATOMIC_RELAXED);
	tier_log(TIER_LOG_INFO, "loaded '%s' (%llu bytes) from %s in %llu ms",
		 name, (unsigned long long)size, b->uri,
		 (unsigned long long)(now_ms() - t0));
	return 0;
}

int srv_backing_load(struct pool_server *srv, const char *name,
		     struct srv_seg **ret)
{
	struct srv_seg *g;
	int rc = 0;

	pthread_mutex_lock(&srv->backing_lock);
	/* another OPEN may have loaded it while this one waited */
	g = srv_seg_find(srv, name);
	if (!g) {
		rc = load(srv, name);
		if (!rc)
			g = srv_seg_find(srv, name);
		if (!rc && !g)	/* removed the moment it came in */
			rc = tier_err(-ENOENT, "segment '%s': no such segment",
				      name);
	}
	pthread_mutex_unlock(&srv->backing_lock);
	if (rc)
		return rc;
	*ret = g;
	return 0;
}

static int warm_one(const char *name, void *arg)
{
	struct pool_server *srv = arg;
	struct srv_seg *g;
	int rc;

	rc = srv_seg_get(srv, name, &g);
	if (rc)
		return tier_err_ctx(rc, "pool server: --warm");
	srv_seg_put(srv, g);
	return 0;
}

int srv_backing_warm(struct pool_server *srv, const char *const *names)
{
	int rc;

	if (!names || !names[0])
		return 0;
	if (!srv->backing)
		return tier_err(-EINVAL, "pool server: --warm needs a --backing pool to load from");
	for (; *names; names++) {
		if (strchr(*names, '/')) {
			rc = warm_one(*names, srv);
		} else {
			rc = pool_list(srv->backing, *names, warm_one, srv);
			if (rc == 0)
				rc = tier_err(-ENOENT, "pool server: --warm '%s': %s holds no segment of that snapshot",
					      *names, srv->backing->uri);
			else if (rc > 0)
				rc = 0;
		}
		if (rc)
			return rc;
	}
	return 0;
}

unsigned pool_server_loaded(const struct pool_server *srv)
{
	return __atomic_load_n(&srv->loaded, __ATOMIC_RELAXED);
}
