/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "tierctl place": traces + image -> placer -> tier data -> plan.
 *
 * The plan is the only thing a restore trusts, so it is written last:
 * every object it references (the CXL object, the pool segment, the
 * compact local file) is written in full and committed first. Each place
 * is a new generation (a random 64-bit id in the plan), and its objects
 * carry it in their names, so committing them replaces nothing: the old
 * plan and its data stay exactly as they were until the new plan is
 * renamed over the old one. Only then are the previous generation's
 * objects removed; a restore that loaded the old plan has either opened
 * them already (an open object outlives its name) or finds them gone
 * and fails with a message saying to retry. A failure before the new
 * plan is in removes the new objects and leaves the old generation
 * whole. The store's readers take no locks; two places of one snapshot
 * and policy take turns (plans/POLICY.lock). Before it writes a tier, a
 * place records its generation's intent, so what a place killed at any
 * point leaves is removed by the next one (store/gen.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include "cxl/cxl.h"
#include "placer/placer.h"
#include "rdma/pool.h"
#include "store/gen.h"
#include "store/snap.h"
#include "tier.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/uri.h"

#define PG		TIER_PAGE_SIZE
#define BATCH		(4U << 20)	/* bytes per read and per write */
#define DEFAULT_CONF	0.5
#define DEFAULT_GAP	4

/* ------------------------------------------------------------ traces */

struct merge_ctx {
	struct tier_snap *snap;
	struct placer_page *pages;
	uint32_t ntraces;
};

static int merge_one(const char *name, void *arg)
{
	struct merge_ctx *m = arg;
	struct tier_trace_ent *ent;
	size_t n;
	int rc;

	rc = tier_trace_load(m->snap, name, &ent, &n);
	if (rc)
		return rc;
	rc = placer_merge_trace(m->pages, m->snap->npages, ent, n);
	free(ent);
	if (rc)
		return tier_err_ctx(rc, "trace %s", name);
	m->ntraces++;
	return 0;
}

static int merge_traces(struct tier_snap *snap,
			const struct tier_place_attr *attr,
			struct merge_ctx *m)
{
	m->snap = snap;
	m->ntraces = 0;
	m->pages = calloc(snap->npages ? snap->npages : 1, sizeof(*m->pages));
	if (!m->pages)
		return tier_err(-ENOMEM, "out of memory");
	if (!attr->traces)
		return tier_trace_foreach(snap, merge_one, m);
	for (const char *const *t = attr->traces; *t; t++) {
		int rc = merge_one(*t, m);

		if (rc)
			return rc;
	}
	return 0;
}

/* ------------------------------------------------------------ copying */

/* Where the bytes of one source go. */
struct sink {
	int (*write)(void *h, uint64_t off, const void *buf, size_t len);
	void *h;
};

/* Coalesces pages whose destinations follow each other into one write. */
struct copier {
	struct tier_snap *snap;
	int img;
	char *buf;		/* BATCH bytes */
	uint64_t dst;		/* destination offset of buf[0] */
	size_t len;		/* bytes pending in buf */
	const struct sink *sink;
};

static int flush(struct copier *c)
{
	int rc;

	if (!c->len)
		return 0;
	rc = c->sink->write(c->sink->h, c->dst, c->buf, c->len);
	c->len = 0;
	return rc;
}

/*
 * Copies every non-zero page of the extents with @source to its place in
 * the object. Zero pages are skipped: objects are created zero-filled
 * (sparse), so they read back as zeroes and cost nothing. Each page is
 * checked against the snapshot's checksum, so a damaged image fails here
 * instead of being spread into the tiers.
 */
static int copy_source(struct copier *c, const struct placer_plan *pp,
		       enum placer_source source)
{
	int rc;

	c->len = 0;
	for (size_t i = 0; i < pp->n; i++) {
		const struct placer_ext *e = &pp->ext[i];
		uint64_t p = e->page, end = e->page + e->npages;

		if (e->source != source)
			continue;
		while (p < end) {
			uint64_t dst, q, room;

			if (snap_page_zero(c->snap, p)) {
				p++;
				continue;
			}
			dst = e->src_off + (p - e->page) * PG;
			if (c->len && (dst != c->dst + c->len || c->len == BATCH)) {
				rc = flush(c);
				if (rc)
					return rc;
			}
			if (!c->len)
				c->dst = dst;
			room = (BATCH - c->len) / PG;
			for (q = p; q < end && q - p < room &&
				    !snap_page_zero(c->snap, q); q++)
				;
			rc = pread_full(c->img, c->buf + c->len, (q - p) * PG,
					p * PG, c->snap->image);
			if (rc)
				return rc;
			for (uint64_t k = p; k < q; k++) {
				rc = tier_snap_verify_page(c->snap, k,
					c->buf + c->len + (k - p) * PG);
				if (rc)
					return rc;
			}
			c->len += (q - p) * PG;
			p = q;
		}
	}
	return flush(c);
}

static int sink_cxl(void *h, uint64_t off, const void *buf, size_t len)
{
	return cxl_write(h, off, buf, len);
}

static int sink_pool(void *h, uint64_t off, const void *buf, size_t len)
{
	return pool_write(h, off, buf, len);
}

static int sink_local(void *h, uint64_t off, const void *buf, size_t len)
{
	struct atomic_file *af = h;

	return pwrite_full(af->fd, buf, len, off, af->path);
}

/* ------------------------------------------------------------ place */

/* Everything a placement holds open, so one function can let it go. */
struct placing {
	struct tier_snap *snap;
	enum tier_policy policy;
	const char *pname;
	char obj[192];
	struct tier_uri cxl_uri, pool_uri;
	struct merge_ctx m;
	struct placer_plan pp;
	struct cxl_tier *cxl;
	struct cxl_wobj *cw;
	struct pool *pool;
	struct pool_wseg *pw;
	struct atomic_file af;
	int have_local;
	char *buf;
	int lock_fd;		/* plans/POLICY.lock, held throughout */
	uint64_t gen;		/* this place's generation, in pl->obj */
	unsigned created;	/* objects begun (DONE_*) */
	unsigned done;		/* objects committed (DONE_*): new names */
	struct plan old;	/* the plan replaced, if one loaded */
	int have_old;
	char cxl_str[256], pool_str[256];	/* the URIs, for the plan */
	int have_intent;	/* plans/POLICY.GEN.intent written */
};

#define DONE_CXL	(1U << 0)
#define DONE_POOL	(1U << 1)
#define DONE_LOCAL	(1U << 2)

/*
 * A relative dir: or file: path would go into the plan as given, and a
 * restore run from another directory would look for the data elsewhere:
 * made absolute against the current directory (not resolved: a symlink
 * stays one), or refused if that does not fit.
 */
static int absolute_path(struct tier_uri *u)
{
	char cwd[PATH_MAX], buf[PATH_MAX];
	const char *p = u->path;
	int n;

	if ((u->kind != URI_CXL_DIR && u->kind != URI_POOL_FILE) || *p == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return tier_err(-errno, "\"%.200s\": a relative path, and the current directory: %m",
				p);
	while (p[0] == '.' && p[1] == '/')
		for (p += 2; *p == '/'; p++)
			;
	if (!strcmp(p, "."))
		p = "";
	n = snprintf(buf, sizeof(buf), "%s%s%s", cwd, *p && strcmp(cwd, "/") ?
		     "/" : "", p);
	if (n < 0 || (size_t)n >= sizeof(u->path))
		return tier_err(-ENAMETOOLONG, "\"%.200s\": too long made absolute (in %.200s)",
				u->path, cwd);
	memcpy(u->path, buf, n + 1);
	return 0;
}

/* The plan keeps a URI in a field of 256 bytes (@ret): one that does
 * not fit is refused now, not once the data is written. */
static int check_fits(const struct tier_uri *u, const char *side, char *ret)
{
	char buf[PATH_MAX + 64];
	size_t max = sizeof(((struct fmt_plan_hdr *)0)->cxl) - 1;
	int rc;

	rc = uri_format(u, buf, sizeof(buf));
	if (rc)
		return rc;
	if (strlen(buf) > max)
		return tier_err(-ENAMETOOLONG,
				"%s URI \"%.64s...\" has %zu bytes, more than the plan's %zu",
				side, buf, strlen(buf), max);
	memcpy(ret, buf, strlen(buf) + 1);
	return 0;
}

/* The plan's pool field becomes "POOL\nBACKING" (store_pool_split). */
static int parse_backing(struct placing *pl, const char *s)
{
	struct tier_uri b;
	char str[256];
	size_t n = strlen(pl->pool_str);
	int rc;

	rc = uri_parse(s, URI_WANT_POOL, &b);
	if (!rc)
		rc = absolute_path(&b);
	if (!rc)
		rc = check_fits(&b, "backing", str);
	if (rc)
		return rc;
	if (strchr(str, '\n'))
		return tier_err(-EINVAL, "backing URI \"%.64s\": a newline is not allowed",
				str);
	if (b.kind == URI_POOL_TCP || b.kind == URI_POOL_RDMA)
		return tier_err(-EINVAL, "backing \"%s\": a durable copy is rados:// or file:, not a pool server",
				s);
	if (n + 1 + strlen(str) >= sizeof(pl->pool_str))
		return tier_err(-ENAMETOOLONG, "pool and backing URIs have %zu bytes together, more than the plan's %zu",
				n + 1 + strlen(str), sizeof(pl->pool_str) - 1);
	pl->pool_str[n] = '\n';
	strcpy(pl->pool_str + n + 1, str);
	return 0;
}

static int parse_uris(struct placing *pl, const struct tier_place_attr *attr)
{
	char def[4096 + 32];
	int rc;

	rc = uri_parse(attr->cxl ? attr->cxl : CXL_DEFAULT_URI, URI_WANT_CXL,
		       &pl->cxl_uri);
	if (!rc)
		rc = absolute_path(&pl->cxl_uri);
	if (!rc)
		rc = check_fits(&pl->cxl_uri, "cxl", pl->cxl_str);
	if (rc)
		return rc;
	snap_default_pool(pl->snap, def, sizeof(def));
	rc = uri_parse(attr->pool ? attr->pool : def, URI_WANT_POOL,
		       &pl->pool_uri);
	if (!rc)
		rc = absolute_path(&pl->pool_uri);
	if (!rc)
		rc = check_fits(&pl->pool_uri, "pool", pl->pool_str);
	if (!rc && strchr(pl->pool_str, '\n'))
		rc = tier_err(-EINVAL, "pool URI \"%.64s\": a newline is not allowed",
			      pl->pool_str);
	if (!rc && attr->backing)
		rc = parse_backing(pl, attr->backing);
	return rc;
}

/*
 * Everything that can be refused without touching the store or a tier
 * (arguments, URIs, capacities), so a refusal changes nothing at all.
 */
static int check_args(struct placing *pl, const struct tier_place_attr *attr)
{
	if (attr->cxl_capacity && attr->cxl_capacity < PG)
		return tier_err(-EINVAL,
				"cxl capacity %llu bytes is less than a page",
				(unsigned long long)attr->cxl_capacity);
	return parse_uris(pl, attr);
}

/*
 * tiered on a shmem tier (dir on tmpfs, numa): the identity layout, which
 * a restore maps once per cluster (doc/placement.md). A tier that does
 * not open here is left for open_objects to report. TIER_PLACE_COMPACT
 * asks for the compact layout anyway (comparisons).
 */
static int cxl_identity(struct placing *pl, const struct tier_place_attr *attr)
{
	if (pl->policy != TIER_POLICY_TIERED ||
	    (attr->flags & TIER_PLACE_COMPACT))
		return 0;
	if (!pl->cxl && cxl_open(&pl->cxl_uri, &pl->cxl))
		return 0;
	return cxl_overlay_ok(pl->cxl);
}

static int run_placer(struct placing *pl, const struct tier_place_attr *attr)
{
	struct tier_snap *snap = pl->snap;
	struct placer_input in;
	struct placer_params par;
	int rc;

	rc = merge_traces(snap, attr, &pl->m);
	if (rc)
		return rc;
	in = (struct placer_input){
		.npages = snap->npages,
		.zero = snap->zero,
		.pages = pl->m.pages,
		.ntraces = pl->m.ntraces,
	};
	par = (struct placer_params){
		.policy = pl->policy,
		.confidence = attr->confidence,
		.gap = attr->gap,
		.cxl_pages = attr->cxl_capacity / PG,
		.cxl_identity = cxl_identity(pl, attr),
		.cluster_gap = attr->cluster_gap == TIER_PLACE_NO_GAP ?
			       PLACER_GAP_AS_GAP : attr->cluster_gap,
		.map_ns = attr->map_ns,
		.zfault_ns = attr->zero_fault_ns,
	};
	return placer_plan(&in, &par, &pl->pp);
}

/* A plan that maps CXL pages needs a tier that can be mapped
 * copy-on-write: say so now, not at the first restore. */
static int check_mappable(struct placing *pl)
{
	char uri[PATH_MAX + 16];
	size_t i;

	if (cxl_can_map(pl->cxl))
		return 0;
	for (i = 0; i < pl->pp.n; i++) {
		if (pl->pp.ext[i].source != PLACER_SRC_CXL ||
		    pl->pp.ext[i].method != PLACER_M_MAP)
			continue;
		if (uri_format(&pl->cxl_uri, uri, sizeof(uri)))
			snprintf(uri, sizeof(uri), "cxl");
		return tier_err(-EOPNOTSUPP, "%s: cannot be mapped "
				"copy-on-write, which policy %s needs for its "
				"ro pages; use fs-dax (cxl=dir: on a dax "
				"mount) or --policy aquifer", uri,
				tier_policy_name(pl->policy));
	}
	return 0;
}

/* Pages of @source that hold bytes (zero pages are holes). */
static uint64_t data_pages(const struct placing *pl, unsigned source)
{
	uint64_t n = 0;

	for (size_t i = 0; i < pl->pp.n; i++) {
		const struct placer_ext *e = &pl->pp.ext[i];

		if (e->source != source)
			continue;
		for (uint64_t p = e->page; p < e->page + e->npages; p++)
			n += !snap_page_zero(pl->snap, p);
	}
	return n;
}

static int check_room(const char *where, uint64_t need, uint64_t avail)
{
	if (need <= avail)
		return 0;
	return tier_err(-ENOSPC, "%s: %llu bytes to write, %llu free (the data of the plan it replaces stays until the new plan is in)",
			where, (unsigned long long)need,
			(unsigned long long)avail);
}

/*
 * A tier holds both generations while a place runs (the new one is
 * written before the old is removed): one without room for the new data
 * is refused before anything is written, not once it is full. Tiers that
 * cannot tell (devdax, a remote pool) refuse at their create.
 */
static int check_space(struct placing *pl)
{
	char local[4096 + 16];
	uint64_t avail;
	int rc;

	if (pl->pp.cxl_size) {
		rc = pl->cxl ? 0 : cxl_open(&pl->cxl_uri, &pl->cxl);
		if (rc)
			return rc;
		if (cxl_free_bytes(pl->cxl, &avail) == 0) {
			rc = check_room(pl->cxl_str,
					data_pages(pl, PLACER_SRC_CXL) * PG, avail);
			if (rc)
				return rc;
		}
	}
	if (pl->pp.pool_size && pl->pool_uri.kind == URI_POOL_FILE &&
	    fs_free_bytes(pl->pool_uri.path, &avail) == 0) {
		rc = check_room(pl->pool_str,
				data_pages(pl, PLACER_SRC_POOL) * PG, avail);
		if (rc)
			return rc;
	}
	snprintf(local, sizeof(local), "%s/local", pl->snap->dir);
	if (pl->pp.local_size && fs_free_bytes(local, &avail) == 0)
		return check_room(local, data_pages(pl, PLACER_SRC_LOCAL) * PG,
				  avail);
	return 0;
}

/* Opens every tier the plan needs before copying anything: an
 * unreachable pool fails in a moment, not after gigabytes of copying. */
static int open_objects(struct placing *pl)
{
	char path[4096 + 96], dir[4096 + 96], *slash;
	int rc;

	if (pl->pp.cxl_size) {
		rc = pl->cxl ? 0 : cxl_open(&pl->cxl_uri, &pl->cxl);
		if (rc)
			return rc;
		rc = check_mappable(pl);
		if (rc)
			return rc;
		rc = cxl_create(pl->cxl, pl->obj, pl->pp.cxl_size, &pl->cw);
		if (rc)
			return rc;
		pl->created |= DONE_CXL;
	}
	if (pl->pp.pool_size) {
		rc = store_pool_open_field(pl->snap->store, pl->pool_str,
					   &pl->pool);
		if (rc)
			return rc;
		rc = pool_create(pl->pool, pl->obj, pl->pp.pool_size, &pl->pw);
		if (rc)
			return rc;
		pl->created |= DONE_POOL;
	}
	if (pl->pp.local_size) {
		snap_local_path(pl->snap, pl->policy, pl->gen, path,
				sizeof(path));
		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		*slash = 0;
		rc = mkdir_p(dir, 0755);
		if (rc)
			return rc;
		rc = atomic_open(&pl->af, path);
		if (rc)
			return rc;
		pl->have_local = 1;
		/* Sparse, like the other objects: unwritten = zero. */
		if (ftruncate(pl->af.fd, pl->pp.local_size) < 0)
			return tier_err(-errno, "%s: %m", path);
	}
	return 0;
}

static int write_objects(struct placing *pl)
{
	struct copier c = { .snap = pl->snap };
	struct sink s;
	int rc;

	c.img = snap_image_fd(pl->snap);
	if (c.img < 0)
		return c.img;
	pl->buf = malloc(BATCH);
	if (!pl->buf)
		return tier_err(-ENOMEM, "out of memory");
	c.buf = pl->buf;
	c.sink = &s;

	if (pl->cw) {
		s = (struct sink){ sink_cxl, pl->cw };
		rc = copy_source(&c, &pl->pp, PLACER_SRC_CXL);
		if (rc)
			return rc;
	}
	if (pl->pw) {
		s = (struct sink){ sink_pool, pl->pw };
		rc = copy_source(&c, &pl->pp, PLACER_SRC_POOL);
		if (rc)
			return rc;
	}
	if (pl->have_local) {
		s = (struct sink){ sink_local, &pl->af };
		rc = copy_source(&c, &pl->pp, PLACER_SRC_LOCAL);
		if (rc)
			return rc;
	}
	return 0;
}

static int commit_objects(struct placing *pl)
{
	struct cxl_wobj *cw = pl->cw;
	struct pool_wseg *pw = pl->pw;
	int rc;

	if (cw) {
		pl->cw = NULL;	/* commit ends the handle, either way */
		rc = cxl_commit(cw);
		if (rc)
			return rc;
		pl->done |= DONE_CXL;
	}
	if (pw) {
		pl->pw = NULL;
		rc = pool_commit(pw);
		if (rc)
			return rc;
		pl->done |= DONE_POOL;
	}
	if (pl->have_local) {
		pl->have_local = 0;
		rc = atomic_commit(&pl->af);
		if (rc)
			return rc;
		pl->done |= DONE_LOCAL;
	}
	return 0;
}

static int write_plan(struct placing *pl, const struct tier_place_attr *attr)
{
	struct plan plan = { 0 };
	struct fmt_plan_hdr *h = &plan.hdr;
	char path[4096 + 96], *slash;
	size_t len;
	void *buf;
	int rc;

	h->policy = pl->policy;
	h->npages = pl->snap->npages;
	h->nextents = pl->pp.n;
	if (pl->pp.cxl_size)
		memcpy(h->cxl, pl->cxl_str, sizeof(h->cxl));
	if (pl->pp.pool_size)
		memcpy(h->pool, pl->pool_str, sizeof(h->pool));
	h->gap = attr->gap ? attr->gap : DEFAULT_GAP;
	h->ntraces = pl->m.ntraces;
	h->confidence = attr->confidence ? attr->confidence : DEFAULT_CONF;
	h->cxl_capacity = attr->cxl_capacity;
	h->generation = pl->gen;
	plan.ext = pl->pp.ext;
	plan.n = pl->pp.n;

	rc = plan_encode(&plan, &buf, &len);
	if (rc)
		return rc;
	snap_plan_path(pl->snap, pl->policy, path, sizeof(path));
	slash = strrchr(path, '/');
	*slash = 0;
	rc = mkdir_p(path, 0755);
	*slash = '/';
	if (!rc)
		rc = write_file_atomic(path, buf, len);
	free(buf);
	return rc;
}

/*
 * The plan being replaced (under the lock, so it stays the current one
 * until ours is in): its objects are removed once ours is. A plan that
 * does not load (none, damaged, another format) has no objects we know.
 */
static void load_old(struct placing *pl)
{
	pl->have_old = plan_load(pl->snap, pl->policy, &pl->old) == 0;
}

/* A random generation, never 0 and never the old plan's. */
static int new_generation(struct placing *pl)
{
	uint64_t old = pl->have_old ? pl->old.hdr.generation : 0;

	do {
		if (getrandom(&pl->gen, sizeof(pl->gen), 0) != sizeof(pl->gen))
			return tier_err(-errno, "place: getrandom: %m");
	} while (!pl->gen || pl->gen == old);
	return 0;
}

/* Which objects a plan's extents reference (DONE_* bits). */
static unsigned plan_objects(const struct placer_ext *ext, size_t n)
{
	unsigned have = 0;

	for (size_t i = 0; i < n; i++) {
		if (ext[i].source == PLACER_SRC_CXL)
			have |= DONE_CXL;
		else if (ext[i].source == PLACER_SRC_POOL)
			have |= DONE_POOL;
		else if (ext[i].source == PLACER_SRC_LOCAL)
			have |= DONE_LOCAL;
	}
	return have;
}

/* The tiers the replaced plan's data is on, as URIs ("": none). */
static void old_tiers(struct placing *pl, char *cxl, char *pool)
{
	const struct fmt_plan_hdr *h = &pl->old.hdr;
	unsigned which = plan_objects(pl->old.ext, pl->old.n);

	cxl[0] = pool[0] = 0;
	if (which & DONE_CXL)
		snprintf(cxl, 256, "%s", h->cxl[0] ? h->cxl : CXL_DEFAULT_URI);
	if (which & DONE_POOL) {
		if (h->pool[0])
			snprintf(pool, 256, "%s", h->pool);
		else
			snap_default_pool(pl->snap, pool, 256);
	}
}

/*
 * Before anything is written to a tier: the intent of this generation
 * (the tiers it writes), and one for the plan it replaces if that has
 * none (a v1 plan, or one placed before intents), so that a place killed
 * at any point leaves only data an intent names (store/gen.c).
 */
static int write_intents(struct placing *pl)
{
	int rc;

	rc = gen_intent_write(pl->snap, pl->policy, pl->gen,
			      pl->pp.cxl_size ? pl->cxl_str : "",
			      pl->pp.pool_size ? pl->pool_str : "");
	if (rc)
		return rc;
	pl->have_intent = 1;
	if (pl->have_old && !gen_has_intent(pl->snap, pl->policy,
					    pl->old.hdr.generation)) {
		char cxl[256], pool[256];

		old_tiers(pl, cxl, pool);
		rc = gen_intent_write(pl->snap, pl->policy,
				      pl->old.hdr.generation, cxl, pool);
	}
	return rc;
}

/*
 * After a failure: if the plan written is ours anyway (a failure after
 * its rename, flushing the directory), the place happened; else the
 * objects committed so far are nobody's and go.
 */
static int published(struct placing *pl)
{
	struct plan cur;
	int ours;

	if (!pl->done)
		return 0;
	if (plan_load(pl->snap, pl->policy, &cur))
		return 0;
	ours = cur.hdr.generation == pl->gen;
	plan_free(&cur);
	return ours;
}

/* Drops what is being written, uncommitted. */
static void placing_abort(struct placing *pl)
{
	cxl_abort(pl->cw);
	pl->cw = NULL;
	if (pl->pw)
		pool_abort(pl->pw);
	pl->pw = NULL;
	if (pl->have_local)
		atomic_abort(&pl->af);
	pl->have_local = 0;
}

static void placing_free(struct placing *pl)
{
	placing_abort(pl);
	cxl_close(pl->cxl);
	pool_close(pl->pool);
	placer_plan_free(&pl->pp);
	if (pl->have_old)
		plan_free(&pl->old);
	free(pl->m.pages);
	free(pl->buf);
	if (pl->lock_fd >= 0)
		close(pl->lock_fd);	/* drops the lock */
}

int tier_place(struct tier_snap *snap, enum tier_policy policy,
	       const struct tier_place_attr *attr)
{
	static const struct tier_place_attr defaults;
	struct placing pl = { .snap = snap, .policy = policy };
	char why[512];
	int rc;

	pl.af.fd = -1;
	pl.lock_fd = -1;
	pl.pname = tier_policy_name(policy);
	if (!pl.pname)
		return tier_err(-EINVAL, "place %s: unknown policy %d",
				snap->name, (int)policy);
	if (!attr)
		attr = &defaults;

	rc = check_args(&pl, attr);
	if (!rc)
		rc = gen_lock(snap, policy, true, &pl.lock_fd);
	if (!rc) {
		/* what a place killed before us left (best effort) */
		gen_recover(snap, policy, NULL, NULL);
		load_old(&pl);
		rc = new_generation(&pl);
	}
	if (!rc) {
		snap_object_name(snap, policy, pl.gen, pl.obj, sizeof(pl.obj));
		rc = run_placer(&pl, attr);
	}
	if (!rc)
		rc = check_space(&pl);
	if (!rc)
		rc = write_intents(&pl);
	if (!rc)
		rc = open_objects(&pl);
	if (!rc)
		rc = write_objects(&pl);
	if (!rc)
		rc = commit_objects(&pl);
	if (!rc)
		rc = write_plan(&pl, attr);

	if (rc)
		snprintf(why, sizeof(why), "%s", tier_errmsg());
	if (!rc || published(&pl)) {
		/* the old plan is gone: its data only takes space now (if
		 * that fails, its intent stays for the next place or gc) */
		if (pl.have_old) {
			char cxl[256], pool[256];

			old_tiers(&pl, cxl, pool);
			gen_drop(snap, policy, pl.old.hdr.generation, cxl, pool);
		}
	} else if (pl.have_intent) {
		/* nothing of ours may stay behind, and only the tiers we
		 * wrote are asked (a pool that did not answer is not) */
		placing_abort(&pl);
		gen_drop(snap, policy, pl.gen,
			 pl.created & DONE_CXL ? pl.cxl_str : "",
			 pl.created & DONE_POOL ? pl.pool_str : "");
	}
	placing_free(&pl);
	if (rc) {
		tier_err(rc, "%s", why);
		return tier_err_ctx(rc, "place %s --policy %s", snap->name,
				    pl.pname);
	}
	return 0;
}

/* ------------------------------------------------------------ info */
