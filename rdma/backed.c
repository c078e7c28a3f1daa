/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A backed pool (rdma/pool.h, pool_backed_open): a memory pool (the
 * front, tcp:// or rdma://, fast) with its durable copy behind it (the
 * backing, rados:// or file:). Writes go through to both, the backing
 * committed first, so a segment the front holds is always one the
 * backing holds too. Reads go to the front; a segment the front cannot
 * open, or a read it fails (the server died, or came back without the
 * segment), is read from the backing from then on: the same name is the
 * same bytes there (a plan's segments carry its generation), and the
 * restorer checks every page whatever pool it came from.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "util/err.h"
#include "util/log.h"

struct backed {
	struct pool *front;	/* NULL: it failed to connect */
	int front_rc;		/* ... with this, */
	char front_why[512];	/* ... and this reason */
	struct pool *back;	/* NULL until first needed with LAZY */
	struct tier_uri back_uri;
};

struct bseg {
	struct pool_seg *f, *b;
};

struct bwseg {
	struct pool_wseg *f, *b;
};

static struct backed *bk(struct pool *p)
{
	return p->priv;
}

static int back_connect(struct pool *p)
{
	struct backed *k = bk(p);

	if (k->back)
		return 0;
	return pool_open(&k->back_uri, &k->back);
}

static void backed_close(struct pool *p)
{
	struct backed *k = bk(p);

	pool_close(k->front);
	pool_close(k->back);
	free(k);
}

static int backed_create(struct pool *p, struct pool_wseg *w)
{
	struct backed *k = bk(p);
	struct bwseg *x;
	int rc;

	if (!k->front)
		return tier_err(-ENOTCONN, "pool %s: not connected", p->uri);
	rc = back_connect(p);
	if (rc)
		return rc;
	x = calloc(1, sizeof(*x));
	if (!x)
		return tier_err(-ENOMEM, "out of memory");
	rc = pool_create(k->back, w->name, w->size, &x->b);
	if (!rc)
		rc = pool_create(k->front, w->name, w->size, &x->f);
	if (rc) {
		pool_abort(x->b);
		free(x);
		return rc;
	}
	w->priv = x;
	return 0;
}

static int backed_write(struct pool_wseg *w, uint64_t off, const void *buf,
			size_t len)
{
	struct bwseg *x = w->priv;
	int rc = pool_write(x->b, off, buf, len);

	return rc ? rc : pool_write(x->f, off, buf, len);
}

/* The backing's first: the front never holds what the backing lacks. */
static int backed_commit(struct pool_wseg *w)
{
	struct bwseg *x = w->priv;
	int rc = pool_commit(x->b);

	if (rc)
		pool_abort(x->f);
	else
		rc = pool_commit(x->f);
	free(x);
	w->priv = NULL;
	return rc;
}

static void backed_abort(struct pool_wseg *w)
{
	struct bwseg *x = w->priv;

	if (!x)
		return;
	pool_abort(x->f);
	pool_abort(x->b);
	free(x);
	w->priv = NULL;
}

/*
 * @s read from the backing from now on; @why: what the front said, @frc
 * its error, the result if the backing fails too (a segment the backing
 * lacks is not "gone" when the front was down).
 */
static int to_back(struct pool_seg *s, int frc, const char *why)
{
	struct bseg *x = s->priv;
	struct pool *p = s->pool;
	char again[512];
	int rc;

	rc = back_connect(p);
	if (!rc && !x->b)
		rc = pool_seg_open(bk(p)->back, s->name, &x->b);
	if (rc) {
		snprintf(again, sizeof(again), "%s", tier_errmsg());
		return tier_err(frc, "%s; and from the backing pool: %s", why,
				again);
	}
	if (x->f && pool_seg_size(x->b) != s->size)
		return tier_err(-ESTALE, "%s; and the backing pool's segment '%s' is %llu bytes, not %llu",
				why, s->name,
				(unsigned long long)pool_seg_size(x->b),
				(unsigned long long)s->size);
	tier_log(TIER_LOG_INFO, "segment '%s': reading %s: %s", s->name,
		 bk(p)->back->uri, why);
	s->size = pool_seg_size(x->b);
	if (x->f) {
		pool_seg_close(x->f);
		x->f = NULL;
	}
	return 0;
}

static int backed_seg_open(struct pool *p, struct pool_seg *s)
{
	struct backed *k = bk(p);
	struct bseg *x = calloc(1, sizeof(*x));
	char why[512];
	int rc;

	if (!x)
		return tier_err(-ENOMEM, "out of memory");
	s->priv = x;
	rc = k->front ? pool_seg_open(k->front, s->name, &x->f) : k->front_rc;
	if (!rc) {
		s->size = pool_seg_size(x->f);
		return 0;
	}
	snprintf(why, sizeof(why), "%s", k->front ? tier_errmsg() : k->front_why);
	rc = to_back(s, rc, why);
	if (rc) {
		free(x);
		s->priv = NULL;
	}
	return rc;
}

static void backed_seg_close(struct pool_seg *s)
{
	struct bseg *x = s->priv;

	pool_seg_close(x->f);
	pool_seg_close(x->b);
	free(x);
}

static int backed_readv(struct pool_seg *s, const struct pool_iov *iov,
			unsigned n)
{
	struct bseg *x = s->priv;
	char why[512];
	int rc;

	if (x->f) {
		rc = pool_readv(x->f, iov, n);
		if (!rc)
			return 0;
		snprintf(why, sizeof(why), "%s", tier_errmsg());
		rc = to_back(s, rc, why);
		if (rc)
			return rc;
	}
	return pool_readv(x->b, iov, n);
}

/* From both; the backing's answer counts where the front is down. */
static int backed_remove(struct pool *p, const char *name)
{
	struct backed *k = bk(p);
	int rf = -ENOENT, rb;
	char why[512] = "";

	if (k->front)
		rf = pool_remove(k->front, name);
	if (rf)
		snprintf(why, sizeof(why), "%s", tier_errmsg());
	rb = back_connect(p);
	if (!rb)
		rb = pool_remove(k->back, name);
	if (rb && rb != -ENOENT)
		return rb;
	if (rf && rf != -ENOENT)
		return tier_err(rf, "%s", why);
	return rf && rb ? tier_err(-ENOENT, "pool %s: segment '%s': no such segment",
				   p->uri, name) : 0;
}

static int backed_list(struct pool *p, const char *snap,
		       int (*fn)(const char *name, void *arg), void *arg)
{
	int rc = back_connect(p);

	return rc ? rc : pool_list(bk(p)->back, snap, fn, arg);
}

static const struct pool_ops backed_ops = {
	.close = backed_close,
	.create = backed_create,
	.write = backed_write,
	.commit = backed_commit,
	.abort = backed_abort,
	.seg_open = backed_seg_open,
	.seg_close = backed_seg_close,
	.readv = backed_readv,
	.remove = backed_remove,
	.list = backed_list,
};

int pool_backed_open(struct pool *front, const struct tier_uri *backing,
		     unsigned flags, struct pool **ret)
{
	struct backed *k;
	struct pool *p;
	int rc;

	p = calloc(1, sizeof(*p));
	k = calloc(1, sizeof(*k));
	if (!p || !k) {
		free(p);
		free(k);
		pool_close(front);
		return tier_err(-ENOMEM, "out of memory");
	}
	k->front = front;
	if (!front) {
		k->front_rc = -ENOTCONN;
		snprintf(k->front_why, sizeof(k->front_why), "%s", tier_errmsg());
	}
	k->back_uri = *backing;
	p->ops = &backed_ops;
	p->priv = k;
	if (front)
		snprintf(p->uri, sizeof(p->uri), "%s", front->uri);
	else
		pool_uri_name(backing, p->uri, sizeof(p->uri));
	if (!front || !(flags & POOL_BACKED_LAZY)) {
		rc = back_connect(p);
		if (rc) {
			char again[512], why[512];

			/* tier_err writes where tier_errmsg() points, and
			 * pool_close frees k */
			snprintf(again, sizeof(again), "%s", tier_errmsg());
			snprintf(why, sizeof(why), "%s", k->front_why);
			pool_close(p);
			if (!front)
				return tier_err(-ENOTCONN, "%s; and the backing pool: %s",
						why, again);
			return tier_err(rc, "%s", again);
		}
	}
	*ret = p;
	return 0;
}
