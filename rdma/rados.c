/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Ceph pool (pool=rados://POOL[/NAMESPACE]), a transport of
 * rdma/pool.c and the only librados caller.
 *
 * A segment "SNAP/POLICY" of SIZE bytes is striped over objects of
 * RADOS_STRIPE bytes (the URI's object_size) named "SNAP/POLICY.TAG.NNNNNNNN", TAG being its
 * writer's random tag, and is made visible by one small commit object
 * named "SNAP/POLICY", written whole (atomically) after every data object
 * is durable. A reader opens the commit object and reads the objects of
 * the tag it names, so it never sees a half-written segment; an aborted
 * or crashed writer's objects carry a tag no commit object names, and
 * pool_remove of the name finds and deletes them.
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <rados/librados.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "util/err.h"

/*
 * Measured (bench/ceph-bench.py --only-sweep, BENCHMARKS.md): a
 * scattered prefetch read 38 / 79 / 92 MB/s from objects of 1 / 4 / 16
 * MiB (another run 33 / 63 / 125), a fault's window cost the same from
 * each (p50 262-288 us): fewer, larger objects mean fewer operations a
 * batch. Larger ones near the OSDs' limits and recover in bigger pieces.
 */
#define RADOS_STRIPE	(16U << 20)
/* Completions in flight per batch of a readv, write or remove. */
#define RADOS_BATCH	256
#define COMMIT_MAX	512
#define COMMIT_MAGIC	"tier-rados-segment 1"
#define OBJ_NAME_MAX	(POOL_NAME_MAX + 32)

struct rados_pool {
	rados_t cluster;
	rados_ioctx_t io;
	uint32_t stripe;	/* a written segment's object size */
};

/* What a commit object says; the reader's and writer's state. */
struct rados_seg {
	char tag[17];
	uint32_t stripe;
	uint32_t count;
	uint32_t *hi;		/* writer: bytes written up to, per object */
	struct rbatch *rb;	/* reader: its batch, made once */
};

static rados_ioctx_t pool_io(struct pool *p)
{
	return ((struct rados_pool *)p->priv)->io;
}

static void obj_name(const char *seg, const struct rados_seg *r, uint32_t i,
		     char *buf)
{
	snprintf(buf, OBJ_NAME_MAX, "%s.%s.%08" PRIx32, seg, r->tag, i);
}

static uint32_t obj_len(uint64_t size, const struct rados_seg *r, uint32_t i)
{
	uint64_t left = size - (uint64_t)i * r->stripe;

	return left < r->stripe ? (uint32_t)left : r->stripe;
}

/*
 * A batch of aio operations: each slot remembers its object for the
 * message and the length a read must return.
 */
struct batch {
	unsigned n;
	rados_completion_t c[RADOS_BATCH];
	char obj[RADOS_BATCH][OBJ_NAME_MAX];
	size_t want[RADOS_BATCH];
};

/*
 * Waits for every operation of @b; the first failure is the result,
 * naming @what and its object. A read shorter than asked is -EIO: the
 * object no longer holds the bytes its commit object promised.
 */
static int batch_wait(struct pool *p, const char *seg, struct batch *b,
		      const char *what, bool ignore_enoent)
{
	int rc = 0;
	unsigned i;

	for (i = 0; i < b->n; i++) {
		int r;

		rados_aio_wait_for_complete(b->c[i]);
		r = rados_aio_get_return_value(b->c[i]);
		rados_aio_release(b->c[i]);
		if (rc)
			continue;
		if (r == -ENOENT && ignore_enoent)
			continue;
		if (r < 0)
			rc = tier_err(r, "pool %s: segment '%s': object '%s': %s: %m",
				      p->uri, seg, b->obj[i], what);
		else if (b->want[i] && (size_t)r != b->want[i])
			rc = tier_err(-EIO, "pool %s: segment '%s': object '%s': %s: %d of %zu bytes (the object is shorter than its segment says)",
				      p->uri, seg, b->obj[i], what, r,
				      b->want[i]);
	}
	b->n = 0;
	return rc;
}

/* The next free slot of @b, waiting for the batch first if it is full. */
static int batch_slot(struct pool *p, const char *seg, struct batch *b,
		      const char *what, bool ignore_enoent, unsigned *ret)
{
	int rc;

	if (b->n == RADOS_BATCH) {
		rc = batch_wait(p, seg, b, what, ignore_enoent);
		if (rc)
			return rc;
	}
	rc = rados_aio_create_completion(NULL, NULL, NULL, &b->c[b->n]);
	if (rc < 0)
		return tier_err(rc, "pool %s: segment '%s': aio completion: %m",
				p->uri, seg);
	b->want[b->n] = 0;
	*ret = b->n++;
	return 0;
}

static struct batch *batch_new(void)
{
	struct batch *b = malloc(sizeof(*b));

	if (!b) {
		tier_err(-ENOMEM, "out of memory");
		return NULL;
	}
	b->n = 0;
	return b;
}

/* Deletes objects [0, @count) of @r; missing ones are no error. */
static int remove_objects(struct pool *p, const char *seg,
			  const struct rados_seg *r, uint32_t count)
{
	struct batch *b = batch_new();
	unsigned k;
	uint32_t i;
	int rc = 0, rc2;

	if (!b)
		return -ENOMEM;
	for (i = 0; i < count && !rc; i++) {
		rc = batch_slot(p, seg, b, "remove", true, &k);
		if (rc)
			break;
		obj_name(seg, r, i, b->obj[k]);
		rc = rados_aio_remove(pool_io(p), b->obj[k], b->c[k]);
		if (rc < 0) {
			rados_aio_release(b->c[k]);
			b->n--;
			rc = tier_err(rc, "pool %s: segment '%s': object '%s': remove: %m",
				      p->uri, seg, b->obj[k]);
		}
	}
	rc2 = batch_wait(p, seg, b, "remove", true);
	free(b);
	return rc ? rc : rc2;
}

static int new_tag(struct pool *p, char *tag)
{
	uint64_t v;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		return tier_err(-errno, "pool %s: getrandom: %m", p->uri);
	snprintf(tag, 17, "%016" PRIx64, v);
	return 0;
}

static int rados_create_seg(struct pool *p, struct pool_wseg *w)
{
	struct rados_seg *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return tier_err(-ENOMEM, "out of memory");
	r->stripe = ((struct rados_pool *)p->priv)->stripe;
	r->count = (w->size + r->stripe - 1) / r->stripe;
	r->hi = calloc(r->count ? r->count : 1, sizeof(*r->hi));
	rc = r->hi ? new_tag(p, r->tag) : tier_err(-ENOMEM, "out of memory");
	if (rc) {
		free(r->hi);
		free(r);
		return rc;
	}
	w->priv = r;
	return 0;
}

static int rados_write_seg(struct pool_wseg *w, uint64_t off, const void *buf,
			   size_t len)
{
	struct rados_seg *r = w->priv;
	struct pool *p = w->pool;
	const char *b = buf;
	struct batch *bt;
	unsigned k;
	int rc = 0, rc2;

	bt = batch_new();
	if (!bt)
		return -ENOMEM;
	while (len && !rc) {
		uint32_t i = off / r->stripe;
		uint32_t in = off % r->stripe;
		size_t n = r->stripe - in < len ? r->stripe - in : len;

		rc = batch_slot(p, w->name, bt, "write", false, &k);
		if (rc)
			break;
		obj_name(w->name, r, i, bt->obj[k]);
		rc = rados_aio_write(pool_io(p), bt->obj[k], bt->c[k], b, n, in);
		if (rc < 0) {
			rados_aio_release(bt->c[k]);
			bt->n--;
			rc = tier_err(rc, "pool %s: segment '%s': object '%s': write: %m",
				      p->uri, w->name, bt->obj[k]);
			break;
		}
		if (in + n > r->hi[i])
			r->hi[i] = in + n;
		b += n;
		off += n;
		len -= n;
	}
	rc2 = batch_wait(p, w->name, bt, "write", false);
	free(bt);
	return rc ? rc : rc2;
}

static void free_seg(struct rados_seg *r)
{
	if (!r)
		return;
	free(r->hi);
	free(r->rb);
	free(r);
}

static void rados_abort_seg(struct pool_wseg *w)
{
	struct rados_seg *r = w->priv;

	/* best effort: what stays behind pool_remove finds by its tag */
	remove_objects(w->pool, w->name, r, r->count);
	free_seg(r);
	w->priv = NULL;
}

/*
 * Every object its full length: a range never written (a hole the
 * placer skipped, the end of the last object) reads as zeros as from a
 * file pool, so a short read later means the object was cut.
 */
static int fill_objects(struct pool_wseg *w)
{
	struct rados_seg *r = w->priv;
	struct pool *p = w->pool;
	struct batch *b;
	unsigned k;
	uint32_t i;
	int rc = 0, rc2;

	b = batch_new();
	if (!b)
		return -ENOMEM;
	for (i = 0; i < r->count && !rc; i++) {
		uint32_t len = obj_len(w->size, r, i);
		rados_write_op_t op;

		if (r->hi[i] == len)
			continue;
		rc = batch_slot(p, w->name, b, "extend", false, &k);
		if (rc)
			break;
		obj_name(w->name, r, i, b->obj[k]);
		op = rados_create_write_op();
		if (!op) {
			rados_aio_release(b->c[k]);
			b->n--;
			rc = tier_err(-ENOMEM, "out of memory");
			break;
		}
		rados_write_op_create(op, LIBRADOS_CREATE_IDEMPOTENT, NULL);
		rados_write_op_truncate(op, len);
		rc = rados_aio_write_op_operate(op, pool_io(p), b->c[k],
						b->obj[k], NULL, 0);
		rados_release_write_op(op);
		if (rc < 0) {
			rados_aio_release(b->c[k]);
			b->n--;
			rc = tier_err(rc, "pool %s: segment '%s': object '%s': extend: %m",
				      p->uri, w->name, b->obj[k]);
		}
	}
	rc2 = batch_wait(p, w->name, b, "extend", false);
	free(b);
	return rc ? rc : rc2;
}

static int format_commit(const struct pool_wseg *w, const struct rados_seg *r,
			 char *buf)
{
	return snprintf(buf, COMMIT_MAX, COMMIT_MAGIC "\nsize %" PRIu64
			"\nstripe %" PRIu32 "\ncount %" PRIu32 "\ntag %s\n",
			w->size, r->stripe, r->count, r->tag);
}

/*
 * @buf (NUL-terminated) as format_commit wrote it for a segment named
 * @name; -EBADMSG naming the object if not.
 */
static int parse_commit(struct pool *p, const char *name, const char *buf,
			uint64_t *size, struct rados_seg *r)
{
	uint64_t sz;
	uint32_t stripe, count;
	char tag[17];
	int end = 0;

	if (sscanf(buf, COMMIT_MAGIC "\nsize %" SCNu64 "\nstripe %" SCNu32
		   "\ncount %" SCNu32 "\ntag %16[0-9a-f]\n%n",
		   &sz, &stripe, &count, tag, &end) != 4 || !end ||
	    buf[end] || strlen(tag) != 16)
		return tier_err(-EBADMSG, "pool %s: segment '%s': commit object '%s' is not a tier segment's",
				p->uri, name, name);
	if (!stripe || count != (sz + stripe - 1) / stripe)
		return tier_err(-EBADMSG, "pool %s: segment '%s': commit object '%s': %" PRIu32
				" objects of %" PRIu32 " bytes cannot hold %" PRIu64,
				p->uri, name, name, count, stripe, sz);
	*size = sz;
	r->stripe = stripe;
	r->count = count;
	memcpy(r->tag, tag, sizeof(r->tag));
	return 0;
}

/* The commit object of @name into @r; -ENOENT if there is none. */
static int read_commit(struct pool *p, const char *name, uint64_t *size,
		       struct rados_seg *r)
{
	char buf[COMMIT_MAX + 1];
	int n;

	n = rados_read(pool_io(p), name, buf, COMMIT_MAX, 0);
	if (n == -ENOENT)
		return -ENOENT;
	if (n < 0)
		return tier_err(n, "pool %s: segment '%s': commit object '%s': read: %m",
				p->uri, name, name);
	buf[n] = '\0';
	return parse_commit(p, name, buf, size, r);
}

static int rados_commit_seg(struct pool_wseg *w)
{
	struct rados_seg *r = w->priv, old;
	struct pool *p = w->pool;
	char buf[COMMIT_MAX];
	uint64_t old_size;
	bool replaced;
	int rc, n;

	rc = fill_objects(w);
	if (rc)
		goto fail;
	/* A name has one writer; the one it replaces is removed after. */
	replaced = read_commit(p, w->name, &old_size, &old) == 0 &&
		   strcmp(old.tag, r->tag);
	n = format_commit(w, r, buf);
	rc = rados_write_full(pool_io(p), w->name, buf, n);
	if (rc < 0) {
		rc = tier_err(rc, "pool %s: segment '%s': commit object '%s': write: %m",
			      p->uri, w->name, w->name);
		goto fail;
	}
	if (replaced)
		remove_objects(p, w->name, &old, old.count);
	free_seg(r);
	w->priv = NULL;
	return 0;
fail:
	rados_abort_seg(w);
	return rc;
}

static int rados_seg_open(struct pool *p, struct pool_seg *s)
{
	struct rados_seg *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return tier_err(-ENOMEM, "out of memory");
	rc = read_commit(p, s->name, &s->size, r);
	if (rc == -ENOENT)
		rc = tier_err(-ENOENT, "pool %s: segment '%s': no such segment",
			      p->uri, s->name);
	if (rc) {
		free(r);
		return rc;
	}
	s->priv = r;
	return 0;
}

static void rados_seg_close(struct pool_seg *s)
{
	free_seg(s->priv);
}

/*
 * A reader's batch: one compound read operation per object, holding
 * every range of the batch that falls in it (up to RB_EXTENTS in all),
 * so a prefetch of scattered pages or a fault's window costs one
 * request per object rather than one per range. Measured on the test
 * cluster: bench/ceph-bench.py, BENCHMARKS.md.
 */
#define RB_EXTENTS	1024

struct rext {
	size_t want, got;
	int rv;
};

struct rbatch {
	unsigned n;		/* operations, the last one maybe not sent */
	bool open;		/* ops[n - 1] still takes extents */
	rados_completion_t c[RADOS_BATCH];
	rados_read_op_t op[RADOS_BATCH];
	uint32_t obj[RADOS_BATCH];
	unsigned first[RADOS_BATCH + 1];	/* extents of op i: [first[i], first[i + 1]) */
	unsigned next;				/* extents used */
	struct rext ext[RB_EXTENTS];
};

/* Sends the open operation, if any. */
static int rb_send(struct pool_seg *s, struct rbatch *b)
{
	struct rados_seg *r = s->priv;
	char obj[OBJ_NAME_MAX];
	unsigned i = b->n - 1;
	int rc;

	if (!b->open)
		return 0;
	b->open = false;
	b->first[b->n] = b->next;
	obj_name(s->name, r, b->obj[i], obj);
	rc = rados_aio_create_completion(NULL, NULL, NULL, &b->c[i]);
	if (rc < 0) {
		rados_release_read_op(b->op[i]);
		b->n--;
		return tier_err(rc, "pool %s: segment '%s': aio completion: %m",
				s->pool->uri, s->name);
	}
	rc = rados_aio_read_op_operate(b->op[i], pool_io(s->pool), b->c[i],
				       obj, 0);
	if (rc < 0) {
		rados_aio_release(b->c[i]);
		rados_release_read_op(b->op[i]);
		b->n--;
		return tier_err(rc, "pool %s: segment '%s': object '%s': read: %m",
				s->pool->uri, s->name, obj);
	}
	return 0;
}

/*
 * Waits for every operation sent; the first failure is the result,
 * naming its object. A range shorter than asked is -EIO: the object no
 * longer holds the bytes its commit object promised.
 */
static int rb_wait(struct pool_seg *s, struct rbatch *b)
{
	struct rados_seg *r = s->priv;
	char obj[OBJ_NAME_MAX];
	unsigned i, k;
	int rc = 0;

	for (i = 0; i < b->n; i++) {
		int v;

		rados_aio_wait_for_complete(b->c[i]);
		v = rados_aio_get_return_value(b->c[i]);
		rados_aio_release(b->c[i]);
		rados_release_read_op(b->op[i]);
		for (k = b->first[i]; k < b->first[i + 1] && !v; k++)
			if (b->ext[k].rv < 0)
				v = b->ext[k].rv;
			else if (b->ext[k].got != b->ext[k].want)
				v = 1;
		if (rc || !v)
			continue;
		obj_name(s->name, r, b->obj[i], obj);
		if (v < 0)
			rc = tier_err(v, "pool %s: segment '%s': object '%s': read: %m",
				      s->pool->uri, s->name, obj);
		else
			rc = tier_err(-EIO, "pool %s: segment '%s': object '%s': read: short (the object is shorter than its segment says)",
				      s->pool->uri, s->name, obj);
	}
	b->n = 0;
	b->next = 0;
	b->open = false;
	return rc;
}

/* Adds [@in, +@m) of object @o into @buf to the batch. */
static int rb_add(struct pool_seg *s, struct rbatch *b, uint32_t o,
		  uint32_t in, size_t m, char *buf)
{
	struct rext *e;
	int rc;

	if (b->open && (b->obj[b->n - 1] != o || b->next == RB_EXTENTS)) {
		rc = rb_send(s, b);
		if (rc)
			return rc;
	}
	if (!b->open) {
		if (b->n == RADOS_BATCH || b->next == RB_EXTENTS) {
			rc = rb_wait(s, b);
			if (rc)
				return rc;
		}
		b->op[b->n] = rados_create_read_op();
		if (!b->op[b->n])
			return tier_err(-ENOMEM, "out of memory");
		b->obj[b->n] = o;
		b->first[b->n] = b->next;
		b->n++;
		b->open = true;
	}
	e = &b->ext[b->next++];
	*e = (struct rext){ .want = m, .rv = 0 };
	rados_read_op_read(b->op[b->n - 1], in, m, buf, &e->got, &e->rv);
	return 0;
}

/* Every range at once, in batches; all or an error. */
static int rados_readv(struct pool_seg *s, const struct pool_iov *iov,
		       unsigned n)
{
	struct rados_seg *r = s->priv;
	struct rbatch *b = r->rb;
	unsigned i;
	int rc = 0, rc2;

	if (!b) {
		b = r->rb = calloc(1, sizeof(*b));
		if (!b)
			return tier_err(-ENOMEM, "out of memory");
	}
	for (i = 0; i < n && !rc; i++) {
		char *buf = iov[i].buf;
		uint64_t off = iov[i].off;
		size_t len = iov[i].len;

		while (len && !rc) {
			uint32_t o = off / r->stripe;
			uint32_t in = off % r->stripe;
			size_t m = r->stripe - in < len ? r->stripe - in : len;

			rc = rb_add(s, b, o, in, m, buf);
			buf += m;
			off += m;
			len -= m;
		}
	}
	if (!rc)
		rc = rb_send(s, b);
	else if (b->open) {	/* never sent */
		rados_release_read_op(b->op[--b->n]);
		b->open = false;
	}
	rc2 = rb_wait(s, b);
	return rc ? rc : rc2;
}

/*
 * The objects "NAME.TAG.N" of writers no commit object names (aborted,
 * crashed, or replaced and not yet cleaned up): a listing of the
 * namespace, so this costs a scan of it.
 */
static int remove_orphans(struct pool *p, const char *name, int *ret)
{
	size_t nlen = strlen(name);
	rados_list_ctx_t ctx;
	const char *entry;
	int rc, found = 0;

	rc = rados_nobjects_list_open(pool_io(p), &ctx);
	if (rc < 0)
		return tier_err(rc, "pool %s: segment '%s': list objects: %m",
				p->uri, name);
	for (;;) {
		const char *t;

		rc = rados_nobjects_list_next(ctx, &entry, NULL, NULL);
		if (rc == -ENOENT) {	/* the end */
			rc = 0;
			break;
		}
		if (rc < 0) {
			rc = tier_err(rc, "pool %s: segment '%s': list objects: %m",
				      p->uri, name);
			break;
		}
		t = entry + nlen + 1;
		if (strncmp(entry, name, nlen) || entry[nlen] != '.' ||
		    strlen(t) != 16 + 1 + 8 || t[16] != '.')
			continue;
		rc = rados_remove(pool_io(p), entry);
		if (rc < 0 && rc != -ENOENT) {
			rc = tier_err(rc, "pool %s: segment '%s': object '%s': remove: %m",
				      p->uri, name, entry);
			break;
		}
		found++;
	}
	rados_nobjects_list_close(ctx);
	*ret = found;
	return rc;
}

static int rados_remove_seg(struct pool *p, const char *name)
{
	struct rados_seg r;
	uint64_t size;
	int rc, committed, orphans = 0;

	committed = read_commit(p, name, &size, &r);
	if (committed && committed != -ENOENT)
		return committed;
	if (!committed) {
		/* invisible first, then its objects */
		rc = rados_remove(pool_io(p), name);
		if (rc < 0 && rc != -ENOENT)
			return tier_err(rc, "pool %s: segment '%s': commit object '%s': remove: %m",
					p->uri, name, name);
		rc = remove_objects(p, name, &r, r.count);
		if (rc < 0)
			return rc;
	}
	rc = remove_orphans(p, name, &orphans);
	if (rc)
		return rc;
	if (committed && !orphans)
		return tier_err(-ENOENT, "pool %s: segment '%s': no such segment",
				p->uri, name);
	return 0;
}

/*
 * A data object's name is its segment's and ".TAG.NNNNNNNN" (16 and 8
 * hex digits); the commit objects are the rest of "SNAP/...".
 */
static bool data_object(const char *name)
{
	size_t len = strlen(name), i;

	if (len < 27 || name[len - 26] != '.' || name[len - 9] != '.')
		return false;
	for (i = len - 25; i < len; i++)
		if (i != len - 9 && !strchr("0123456789abcdef", name[i]))
			return false;
	return true;
}

static int rados_list(struct pool *p, const char *snap,
		      int (*fn)(const char *name, void *arg), void *arg)
{
	size_t slen = strlen(snap);
	char name[POOL_NAME_MAX + 1];
	rados_list_ctx_t ctx;
	const char *entry;
	int rc, n = 0;

	rc = rados_nobjects_list_open(pool_io(p), &ctx);
	if (rc < 0)
		return tier_err(rc, "pool %s: snapshot '%s': list objects: %m",
				p->uri, snap);
	for (;;) {
		rc = rados_nobjects_list_next(ctx, &entry, NULL, NULL);
		if (rc == -ENOENT) {	/* the end */
			rc = 0;
			break;
		}
		if (rc < 0) {
			rc = tier_err(rc, "pool %s: snapshot '%s': list objects: %m",
				      p->uri, snap);
			break;
		}
		if (strncmp(entry, snap, slen) || entry[slen] != '/' ||
		    data_object(entry) || strlen(entry) > POOL_NAME_MAX ||
		    pool_name_check(entry))
			continue;
		/* the entry lives until the next call: fn may do I/O */
		strcpy(name, entry);
		rc = fn(name, arg);
		if (rc)
			break;
		n++;
	}
	rados_nobjects_list_close(ctx);
	return rc ? rc : n;
}

static void rados_close_pool(struct pool *p)
{
	struct rados_pool *rp = p->priv;

	rados_ioctx_destroy(rp->io);
	rados_shutdown(rp->cluster);
	free(rp);
}

static const struct pool_ops rados_ops = {
	.close = rados_close_pool,
	.create = rados_create_seg,
	.write = rados_write_seg,
	.commit = rados_commit_seg,
	.abort = rados_abort_seg,
	.seg_open = rados_seg_open,
	.seg_close = rados_seg_close,
	.readv = rados_readv,
	.remove = rados_remove_seg,
	.list = rados_list,
};

/*
 * Bounded waits: without them librados retries a dead cluster or an
 * unreachable placement group forever (or 300 s to mount), and a restore
 * must fail closed instead. Set only where the conf file and CEPH_ARGS
 * left Ceph's own default: rados_conf_set overrides both (Ceph's
 * "override" level), so setting them first would take the operator's
 * choice away.
 */
static const struct {
	const char *name;
	double ceph;		/* Ceph's default */
	const char *ours;
} defaults[] = {
	{ "client_mount_timeout", 300, "30" },
	{ "rados_mon_op_timeout", 0, "30" },
	{ "rados_osd_op_timeout", 0, "30" },
};

static int set_defaults(struct pool *p, rados_t cl)
{
	char buf[64];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		rc = rados_conf_get(cl, defaults[i].name, buf, sizeof(buf));
		if (rc == 0 && strtod(buf, NULL) != defaults[i].ceph)
			continue;	/* the conf or CEPH_ARGS said */
		rc = rados_conf_set(cl, defaults[i].name, defaults[i].ours);
		if (rc < 0)
			return tier_err(rc, "pool %s: Ceph option %s: %m",
					p->uri, defaults[i].name);
	}
	return 0;
}

static int rados_setup(struct pool *p, const struct uri_rados *u,
		       rados_t cl)
{
	const char *what = "";
	int rc;

	/* NULL: Ceph's search ($CEPH_CONF, /etc/ceph/ceph.conf, ...) */
	rc = rados_conf_read_file(cl, u->conf[0] ? u->conf : NULL);
	if (rc < 0 && (u->conf[0] || rc != -ENOENT))
		return tier_err(rc, "pool %s: Ceph configuration %s: %m",
				p->uri, u->conf[0] ? u->conf :
				"(the default search: $CEPH_CONF, /etc/ceph/ceph.conf)");
	rc = rados_conf_parse_env(cl, NULL);
	if (rc < 0)
		return tier_err(rc, "pool %s: $CEPH_ARGS: %m", p->uri);
	rc = set_defaults(p, cl);
	if (rc)
		return rc;
	if (u->keyring[0]) {
		rc = rados_conf_set(cl, "keyring", u->keyring);
		if (rc < 0)
			return tier_err(rc, "pool %s: keyring %s: %m", p->uri,
					u->keyring);
	}
	rc = rados_connect(cl);
	if (rc < 0) {
		if (rc == -EPERM || rc == -EACCES)
			what = " (is the keyring's key the cluster's for this client?)";
		else if (rc == -ENOENT)
			what = " (no keyring found for this client?)";
		else if (rc == -ETIMEDOUT)
			what = " (no monitor answered)";
		return tier_err(rc, "pool %s: connect as client.%s%s%s: %m%s",
				p->uri, u->id[0] ? u->id : "admin",
				u->keyring[0] ? " with keyring " : "",
				u->keyring, what);
	}
	return 0;
}

int pool_rados_open(struct pool *p, const struct tier_uri *uri)
{
	const struct uri_rados *u = &uri->rados;
	struct rados_pool *rp;
	int rc;

	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return tier_err(-ENOMEM, "out of memory");
	/* NULL id: client.admin, or what CEPH_ARGS' --id says */
	rc = rados_create(&rp->cluster, u->id[0] ? u->id : NULL);
	if (rc < 0) {
		free(rp);
		return tier_err(rc, "pool %s: librados: %m", p->uri);
	}
	rc = rados_setup(p, u, rp->cluster);
	if (rc)
		goto fail;
	rc = rados_ioctx_create(rp->cluster, u->pool, &rp->io);
	if (rc == -ENOENT) {
		rc = tier_err(rc, "pool %s: the cluster has no pool '%s'",
			      p->uri, u->pool);
		goto fail;
	}
	if (rc < 0) {
		rc = tier_err(rc, "pool %s: open Ceph pool '%s': %m", p->uri,
			      u->pool);
		goto fail;
	}
	rados_ioctx_set_namespace(rp->io, u->ns[0] ? u->ns : NULL);
	rp->stripe = u->object_size ? u->object_size : RADOS_STRIPE;
	p->ops = &rados_ops;
	p->priv = rp;
	return 0;
fail:
	rados_shutdown(rp->cluster);
	free(rp);
	return rc;
}
