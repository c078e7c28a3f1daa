/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Placement: per-page classes, per-policy treatment (source, method,
 * flags), gap bridging, CXL capacity spill, object packing and extent
 * coalescing. Pure: memory allocation is the only side effect. The
 * restorer executes the plan blindly, so every rule here is spelled out
 * in doc/placement.md and checked by tests/test-placer.c. Called by
 * store/place.c ("tierctl place").
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "placer/placer.h"
#include "util/err.h"

/* page << 12 must fit the 64-bit byte offsets of a plan */
#define PLACER_MAX_PAGES	(1ULL << 52)
#define DEFAULT_GAP		4
#define DEFAULT_ZERO_BLOCK	16
#define DEFAULT_CONFIDENCE	0.5
/* REFERENCE.md §1 on this VM kind: one-page mmap ~3 us, a MISSING fault
 * served ~30 us more than an anonymous one when the handler must wake */
#define DEFAULT_MAP_NS		3000
#define DEFAULT_ZFAULT_NS	30000

/* One page's treatment packed in a byte: source | method << 3 | flags << 5. */
#define TR(src, m, f)	((uint8_t)((src) | (m) << 3 | (f) << 5))
#define TR_SRC(t)	((t) & 7)
#define TR_M(t)		(((t) >> 3) & 3)
#define TR_F(t)		((t) >> 5)

#define TR_ANON		TR(PLACER_SRC_NONE, PLACER_M_ANON, 0)
#define TR_ZLAZY	TR(PLACER_SRC_NONE, PLACER_M_LAZY, 0)
#define TR_ZCOPY	TR(PLACER_SRC_NONE, PLACER_M_COPY, 0)
#define TR_CXL_MAP	TR(PLACER_SRC_CXL, PLACER_M_MAP, PLACER_F_POPULATE)
/* bridged: mapped with its neighbours but not populated, nobody reads it */
#define TR_CXL_GAP	TR(PLACER_SRC_CXL, PLACER_M_MAP, 0)
#define TR_CXL_COPY	TR(PLACER_SRC_CXL, PLACER_M_COPY, 0)
#define TR_POOL_COPY	TR(PLACER_SRC_POOL, PLACER_M_COPY, 0)
#define TR_POOL_LAZY	TR(PLACER_SRC_POOL, PLACER_M_LAZY, 0)
#define TR_IMG_MAP	TR(PLACER_SRC_IMAGE, PLACER_M_MAP, 0)
#define TR_IMG_COPY	TR(PLACER_SRC_IMAGE, PLACER_M_COPY, 0)
#define TR_IMG_LAZY	TR(PLACER_SRC_IMAGE, PLACER_M_LAZY, 0)
#define TR_LOC_COPY	TR(PLACER_SRC_LOCAL, PLACER_M_COPY, 0)
#define TR_LOC_MAP	TR(PLACER_SRC_LOCAL, PLACER_M_MAP, PLACER_F_READAHEAD)

struct ctx {
	const struct placer_input *in;
	enum tier_policy policy;
	uint64_t n;
	uint64_t need;		/* runs that make a page hot; 0: no traces */
	uint64_t gap;		/* bridge runs of at most this many pages */
	uint64_t zero_block;
	uint64_t cxl_cap;	/* pages; 0: unlimited */
	uint8_t *cls;		/* enum tier_class per page */
	uint8_t *tr;		/* TR() per page */
	uint64_t *rank;		/* local file slot per page (reap, faasnap) */
	uint64_t nlocal;	/* pages in the local file */
	uint64_t spilled;
	bool identity;		/* CXL object at guest offsets */
};

static bool page_zero(const struct placer_input *in, uint64_t p)
{
	return (in->zero[p / 64] >> (p % 64)) & 1;
}

static uint32_t page_runs(const struct placer_input *in, uint64_t p)
{
	return in->pages ? in->pages[p].runs : 0;
}

/*
 * Runs a page needs to be hot: ceil(confidence * ntraces), at least 1.
 * The epsilon keeps 0.7 * 10 from rounding up to 8. 0 means nothing is
 * hot (no traces). A confidence above 1 makes nothing hot.
 */
static uint64_t hot_need(double confidence, uint32_t ntraces)
{
	double x;
	uint64_t k;

	if (!ntraces)
		return 0;
	if (!(confidence > 0))		/* 0, negative or NaN: the default */
		confidence = DEFAULT_CONFIDENCE;
	if (confidence > 1)
		return (uint64_t)ntraces + 1;
	x = confidence * ntraces - 1e-9;
	k = x > 0 ? (uint64_t)x : 0;
	if ((double)k < x)
		k++;
	return k ? k : 1;
}

static bool page_hot(const struct ctx *c, uint64_t p)
{
	return c->need && page_runs(c->in, p) >= c->need;
}

static enum tier_class classify(const struct placer_input *in, uint64_t need,
				uint64_t p)
{
	const struct placer_page *pg;

	if (in->zero && page_zero(in, p))
		return TIER_CLASS_ZERO;
	if (!need || !in->pages)
		return TIER_CLASS_COLD;
	pg = &in->pages[p];
	if (pg->runs < need)
		return TIER_CLASS_COLD;
	/* written in at least half of the runs that touched it */
	return (uint64_t)pg->writes * 2 >= pg->runs ? TIER_CLASS_RW :
						      TIER_CLASS_RO;
}

enum tier_class placer_classify(const struct placer_input *in,
				const struct placer_params *p, uint64_t page)
{
	if (!in || page >= in->npages)
		return TIER_CLASS_MAX;
	return classify(in, hot_need(p ? p->confidence : 0, in->ntraces),
			page);
}

/* What a page of class @cls gets in @policy, before bridging and spill. */
static uint8_t base_treatment(const struct ctx *c, uint64_t p)
{
	enum tier_class cls = c->cls[p];

	switch (c->policy) {
	case TIER_POLICY_TIERED:
		switch (cls) {
		case TIER_CLASS_ZERO:
			return TR_ANON;
		case TIER_CLASS_RO:
			return TR_CXL_MAP;
		case TIER_CLASS_RW:
			return TR_POOL_COPY;
		default:
			return TR_POOL_LAZY;
		}
	case TIER_POLICY_VANILLA:
		return TR_IMG_MAP;
	case TIER_POLICY_REAP:
		/* no classes, no zero handling: touched or not */
		return page_hot(c, p) ? TR_LOC_COPY : TR_IMG_LAZY;
	case TIER_POLICY_FAASNAP:
		/* zero regions are laid over this in faasnap_zero_regions() */
		return page_hot(c, p) ? TR_LOC_MAP : TR_IMG_MAP;
	case TIER_POLICY_AQUIFER:
		switch (cls) {
		case TIER_CLASS_ZERO:
			return TR_ANON;
		case TIER_CLASS_RO:
		case TIER_CLASS_RW:
			return TR_CXL_COPY;
		default:
			return TR_POOL_LAZY;
		}
	case TIER_POLICY_EAGER:
	default:
		return cls == TIER_CLASS_ZERO ? TR_ANON : TR_IMG_COPY;
	}
}

static bool is_uffd(uint8_t tr)
{
	return TR_M(tr) == PLACER_M_COPY || TR_M(tr) == PLACER_M_LAZY;
}

enum bridge_kind {
	BRIDGE_CXL,	/* zero/cold runs between ro pages: mapped from CXL */
	BRIDGE_ZERO,	/* zero runs between registered pages: ZEROPAGE lazily */
	BRIDGE_ANY,	/* identity layout: zero runs between any non-ANON
			 * pages, ZEROPAGE lazily (holes in the overlay) */
};

static bool bridge_edge(const struct ctx *c, enum bridge_kind k, uint64_t p)
{
	if (k == BRIDGE_CXL)
		return c->cls[p] == TIER_CLASS_RO && c->tr[p] == TR_CXL_MAP;
	if (k == BRIDGE_ANY)
		return c->tr[p] != TR_ANON;
	return is_uffd(c->tr[p]);
}

static bool bridge_gap(const struct ctx *c, enum bridge_kind k, uint64_t p)
{
	if (k == BRIDGE_CXL)
		return c->cls[p] == TIER_CLASS_ZERO ||
		       c->cls[p] == TIER_CLASS_COLD;
	return c->cls[p] == TIER_CLASS_ZERO && c->tr[p] == TR_ANON;
}

/*
 * Gives each maximal run of gap pages of at most c->gap pages that has an
 * edge page on both sides the treatment @to. Runs touching page 0 or the
 * last page have only one neighbour and are left alone.
 */
static void bridge(struct ctx *c, enum bridge_kind k, uint8_t to)
{
	uint64_t a, b, p;

	if (!c->gap)
		return;
	for (a = 1; a < c->n; a = b + 1) {
		if (!bridge_gap(c, k, a) || !bridge_edge(c, k, a - 1)) {
			b = a;
			continue;
		}
		for (b = a; b < c->n && bridge_gap(c, k, b); b++)
			;
		if (b == c->n)
			break;
		if (b - a <= c->gap && bridge_edge(c, k, b))
			for (p = a; p < b; p++)
				c->tr[p] = to;
	}
}

/*
 * A bridged zero page the traces touch would cost a fault on every
 * restore (UFFDIO_ZEROPAGE on touch, ~1 us here, ~1 ms under TCG) that
 * leaving it anonymous would not have: install it before resume instead
 * (one UFFDIO_ZEROPAGE per run, no bytes moved).
 */
static void prefetch_hot_zero(struct ctx *c)
{
	uint64_t p;

	for (p = 0; p < c->n; p++)
		if (c->tr[p] == TR_ZLAZY && page_hot(c, p))
			c->tr[p] = TR_ZCOPY;
}

uint64_t placer_cluster_gap(uint64_t zero_pages, uint64_t zero_touched,
			    uint32_t map_ns, uint32_t zfault_ns)
{
	double chance, g;

	if (!map_ns)
		map_ns = DEFAULT_MAP_NS;
	if (!zfault_ns)
		zfault_ns = DEFAULT_ZFAULT_NS;
	if (zero_touched > zero_pages)
		zero_touched = zero_pages;
	chance = (zero_touched + 1.0) / (zero_pages + 2.0);
	g = map_ns / (chance * zfault_ns);
	if (g < 1)
		return 1;
	return g > (double)PLACER_MAX_PAGES ? PLACER_MAX_PAGES : (uint64_t)g;
}

/* The identity clusters' zero gap: @p's, or by cost from the traces. */
static uint64_t cluster_gap(const struct ctx *c, const struct placer_params *p)
{
	uint64_t zero = 0, touched = 0, i;

	if (p->gap == TIER_PLACE_NO_GAP)
		return 0;
	if (p->cluster_gap == PLACER_GAP_AS_GAP)
		return c->gap;
	if (p->cluster_gap)
		return p->cluster_gap;
	for (i = 0; i < c->n; i++)
		if (c->cls[i] == TIER_CLASS_ZERO) {
			zero++;
			touched += page_runs(c->in, i) > 0;
		}
	return placer_cluster_gap(zero, touched, p->map_ns, p->zfault_ns);
}

/* ---- CXL capacity: spill whole CXL runs to the pool, coldest first */

struct spill_unit {
	uint64_t page, npages;
	uint32_t runs;		/* the hottest page's runs */
	uint32_t order;		/* the earliest first touch */
};

static int spill_cmp(const void *x, const void *y)
{
	const struct spill_unit *a = x, *b = y;

	if (a->runs != b->runs)
		return a->runs < b->runs ? -1 : 1;	/* fewest runs first */
	if (a->order != b->order)
		return a->order > b->order ? -1 : 1;	/* latest touch first */
	return a->page > b->page ? -1 : a->page < b->page;
}

static bool is_hot_class(uint8_t cls)
{
	return cls == TIER_CLASS_RO || cls == TIER_CLASS_RW;
}

static int spill(struct ctx *c)
{
	struct spill_unit *u;
	uint64_t p, q, need = 0, nu = 0, i;

	for (p = 0; p < c->n; p++) {
		if (TR_SRC(c->tr[p]) != PLACER_SRC_CXL)
			continue;
		need++;
		if (!p || TR_SRC(c->tr[p - 1]) != PLACER_SRC_CXL)
			nu++;
	}
	if (!c->cxl_cap || need <= c->cxl_cap)
		return 0;

	u = calloc(nu, sizeof(*u));
	if (!u)
		return tier_err(-ENOMEM, "placer: out of memory");
	for (p = 0, i = 0; p < c->n; p = q) {
		if (TR_SRC(c->tr[p]) != PLACER_SRC_CXL) {
			q = p + 1;
			continue;
		}
		u[i].page = p;
		u[i].order = UINT32_MAX;
		for (q = p; q < c->n && TR_SRC(c->tr[q]) == PLACER_SRC_CXL; q++) {
			const struct placer_page *pg;

			if (!is_hot_class(c->cls[q]))
				continue;
			pg = &c->in->pages[q];	/* hot: there are counts */
			if (pg->runs > u[i].runs)
				u[i].runs = pg->runs;
			if (pg->order < u[i].order)
				u[i].order = pg->order;
		}
		u[i].npages = q - p;
		i++;
	}
	qsort(u, nu, sizeof(*u), spill_cmp);

	for (i = 0; i < nu && need > c->cxl_cap; i++) {
		for (p = u[i].page; p < u[i].page + u[i].npages; p++) {
			if (is_hot_class(c->cls[p])) {
				c->tr[p] = TR_POOL_COPY;
				c->spilled++;
			} else {
				/* a bridged gap without its neighbours */
				c->tr[p] = base_treatment(c, p);
			}
		}
		need -= u[i].npages;
	}
	free(u);
	return 0;
}

/* ---- faasnap: aligned all-zero blocks become anonymous zero regions */

static void faasnap_zero_regions(struct ctx *c)
{
	uint64_t b, e, p;

	for (b = 0; b < c->n; b = e) {
		e = c->n - b > c->zero_block ? b + c->zero_block : c->n;
		for (p = b; p < e && page_zero(c->in, p); p++)
			;
		if (p < e)
			continue;
		for (p = b; p < e; p++)
			c->tr[p] = TR_ANON;
	}
}

/* ---- local file (reap, faasnap): packed in first-touch order */

struct touch {
	uint32_t order;
	uint64_t page;
};

static int touch_cmp(const void *x, const void *y)
{
	const struct touch *a = x, *b = y;

	if (a->order != b->order)
		return a->order < b->order ? -1 : 1;
	return a->page < b->page ? -1 : a->page > b->page;
}

static int rank_local(struct ctx *c)
{
	struct touch *t;
	uint64_t p, i = 0;

	for (p = 0; p < c->n; p++)
		if (TR_SRC(c->tr[p]) == PLACER_SRC_LOCAL)
			c->nlocal++;
	if (!c->nlocal)
		return 0;
	t = malloc(c->nlocal * sizeof(*t));
	c->rank = malloc(c->n * sizeof(*c->rank));
	if (!t || !c->rank) {
		free(t);
		return tier_err(-ENOMEM, "placer: out of memory");
	}
	for (p = 0; p < c->n; p++) {
		if (TR_SRC(c->tr[p]) != PLACER_SRC_LOCAL)
			continue;
		t[i].order = c->in->pages[p].order;
		t[i].page = p;
		i++;
	}
	qsort(t, c->nlocal, sizeof(*t), touch_cmp);
	for (i = 0; i < c->nlocal; i++)
		c->rank[t[i].page] = i;
	free(t);
	return 0;
}

/* ---- extents */

static int push_ext(struct placer_plan *plan, size_t *cap,
		    const struct placer_ext *e)
{
	struct placer_ext *x;

	if (plan->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		x = realloc(plan->ext, *cap * sizeof(*x));
		if (!x)
			return tier_err(-ENOMEM, "placer: out of memory");
		plan->ext = x;
	}
	plan->ext[plan->n++] = *e;
	return 0;
}

#define POOL_LAZY	7	/* build_extents' counter of lazy pool pages */

/* Where page @p's bytes are in its source; advances the packing counters. */
static uint64_t page_src_off(const struct ctx *c, uint64_t p, uint64_t *next)
{
	unsigned src = TR_SRC(c->tr[p]);

	switch (src) {
	case PLACER_SRC_NONE:
		return 0;
	case PLACER_SRC_IMAGE:
		return p * TIER_PAGE_SIZE;
	case PLACER_SRC_LOCAL:
		if (c->rank)
			return c->rank[p] * TIER_PAGE_SIZE;
		/* fall through */
	case PLACER_SRC_CXL:
		if (src == PLACER_SRC_CXL && c->identity) {
			next[src]++;
			return p * TIER_PAGE_SIZE;
		}
		/* fall through */
	case PLACER_SRC_POOL:
		/*
		 * The pool holds the COPY pages first, so a prefetch batch
		 * reads one contiguous range instead of one per run, then
		 * the LAZY pages (next[POOL_LAZY] starts at the number of
		 * COPY pool pages: build_extents counts them first).
		 */
		if (src == PLACER_SRC_POOL && TR_M(c->tr[p]) == PLACER_M_LAZY)
			return next[POOL_LAZY]++ * TIER_PAGE_SIZE;
		/* fall through */
	default:
		return next[src]++ * TIER_PAGE_SIZE;
	}
}

static bool ext_joins(const struct placer_ext *e, const struct placer_ext *x)
{
	return e->cls == x->cls && e->source == x->source &&
	       e->method == x->method && e->flags == x->flags &&
	       (e->source == PLACER_SRC_NONE ||
		e->src_off + e->npages * TIER_PAGE_SIZE == x->src_off);
}

int placer_cluster_overlay(const struct placer_ext *ext, size_t i, size_t j,
			   uint64_t first)
{
	bool cxl = false;

	for (; i < j; i++) {
		const struct placer_ext *e = &ext[i];

		if (e->method == PLACER_M_ANON)
			return 0;
		if (e->method == PLACER_M_MAP) {
			if (e->source != PLACER_SRC_CXL ||
			    e->src_off != (first + e->page) * TIER_PAGE_SIZE)
				return 0;
			cxl = true;
		} else if (e->source == PLACER_SRC_CXL) {
			return 0;
		}
	}
	return cxl;
}

/*
 * Mappings a restore makes without the overlay: one per maximal run of
 * MAP extents of one source whose src_off continue each other (one
 * mmap), one per maximal run of adjacent COPY/LAZY extents (one uffd
 * registration).
 */
static uint64_t count_runs(const struct placer_ext *ext, size_t n)
{
	uint64_t m = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct placer_ext *e = &ext[i], *prev = i ? e - 1 : NULL;

		if (e->method == PLACER_M_MAP) {
			if (!prev || prev->method != PLACER_M_MAP ||
			    prev->source != e->source ||
			    prev->src_off + prev->npages * TIER_PAGE_SIZE !=
				    e->src_off)
				m++;
		} else if (e->method == PLACER_M_COPY ||
			   e->method == PLACER_M_LAZY) {
			if (!prev || (prev->method != PLACER_M_COPY &&
				      prev->method != PLACER_M_LAZY))
				m++;
		}
	}
	return m;
}

/* With the overlay, a cluster that qualifies is one mmap plus one
 * registration if it has COPY/LAZY pages; the others count as runs. */
uint64_t placer_count_mappings(const struct placer_ext *ext, size_t n,
			       int overlay)
{
	uint64_t m = 0;
	size_t i = 0, j, k;

	if (!overlay)
		return count_runs(ext, n);
	while (i < n) {
		if (ext[i].method == PLACER_M_ANON) {
			i++;
			continue;
		}
		for (j = i + 1; j < n && ext[j].method != PLACER_M_ANON; j++)
			;
		if (placer_cluster_overlay(ext, i, j, 0)) {
			m++;
			for (k = i; k < j; k++)
				if (ext[k].method != PLACER_M_MAP) {
					m++;
					break;
				}
		} else {
			m += count_runs(ext + i, j - i);
		}
		i = j;
	}
	return m;
}

static int build_extents(const struct ctx *c, struct placer_plan *plan)
{
	uint64_t next[8] = { 0 };
	struct placer_ext cur = { 0 }, x;
	size_t cap = 0;
	uint64_t p;
	int rc;

	for (p = 0; p < c->n; p++)	/* lazy pool pages go after copy ones */
		if (TR_SRC(c->tr[p]) == PLACER_SRC_POOL &&
		    TR_M(c->tr[p]) != PLACER_M_LAZY)
			next[POOL_LAZY]++;
	for (p = 0; p < c->n; p++) {
		x = (struct placer_ext){
			.page = p,
			.npages = 1,
			.cls = c->cls[p],
			.source = TR_SRC(c->tr[p]),
			.method = TR_M(c->tr[p]),
			.flags = TR_F(c->tr[p]),
			.src_off = page_src_off(c, p, next),
		};
		plan->pages[x.cls]++;
		if (p && ext_joins(&cur, &x)) {
			cur.npages++;
			continue;
		}
		if (p) {
			rc = push_ext(plan, &cap, &cur);
			if (rc)
				return rc;
		}
		cur = x;
	}
	if (c->n) {
		rc = push_ext(plan, &cap, &cur);
		if (rc)
			return rc;
	}
	plan->cxl_size = next[PLACER_SRC_CXL] * TIER_PAGE_SIZE;
	/* identity: as large as the image, so every cluster lies inside */
	if (c->identity && plan->cxl_size)
		plan->cxl_size = c->n * TIER_PAGE_SIZE;
	plan->cxl_identity = c->identity && plan->cxl_size;
	plan->pool_size = next[POOL_LAZY] * TIER_PAGE_SIZE;
	plan->local_size = (c->rank ? c->nlocal : next[PLACER_SRC_LOCAL]) *
			   TIER_PAGE_SIZE;
	plan->mappings = placer_count_mappings(plan->ext, plan->n,
					       plan->cxl_identity);
	plan->spilled_pages = c->spilled;
	return 0;
}

static int check_input(const struct placer_input *in,
		       const struct placer_params *p)
{
	uint64_t i;

	if (!in || !p)
		return tier_err(-EINVAL, "placer: no input or parameters");
	if ((unsigned)p->policy >= TIER_POLICY_MAX)
		return tier_err(-EINVAL, "placer: unknown policy %u",
				(unsigned)p->policy);
	if (!(p->confidence >= 0 && p->confidence <= 1))
		return tier_err(-EINVAL, "placer: confidence %g is not in [0, 1]",
				p->confidence);
	if (!in->npages)
		return 0;
	if (in->npages > PLACER_MAX_PAGES)
		return tier_err(-EINVAL, "placer: %llu pages is too many",
				(unsigned long long)in->npages);
	if (!in->zero)
		return tier_err(-EINVAL, "placer: no zero-page bitmap");
	if (in->ntraces && !in->pages)
		return tier_err(-EINVAL, "placer: %u traces but no page counts",
				in->ntraces);
	if (!in->pages)
		return 0;
	for (i = 0; i < in->npages; i++) {
		const struct placer_page *pg = &in->pages[i];

		if (pg->runs > in->ntraces || pg->writes > pg->runs ||
		    pg->wfirst > pg->writes)
			return tier_err(-EINVAL, "placer: page %llu: %u runs, "
					"%u writes, %u written first, of %u traces",
					(unsigned long long)i, pg->runs,
					pg->writes, pg->wfirst, in->ntraces);
	}
	return 0;
}

int placer_plan(const struct placer_input *in, const struct placer_params *p,
		struct placer_plan *ret)
{
	struct placer_plan plan = { 0 };
	struct ctx c = { 0 };
	uint64_t i;
	int rc;

	if (!ret)
		return tier_err(-EINVAL, "placer: no plan to fill");
	rc = check_input(in, p);
	if (rc)
		return rc;

	c.in = in;
	c.policy = p->policy;
	c.n = in->npages;
	c.need = hot_need(p->confidence, in->ntraces);
	c.gap = p->gap == TIER_PLACE_NO_GAP ? 0 : p->gap ? p->gap : DEFAULT_GAP;
	c.zero_block = p->zero_block ? p->zero_block : DEFAULT_ZERO_BLOCK;
	c.cxl_cap = p->cxl_pages;
	c.identity = p->cxl_identity && p->policy == TIER_POLICY_TIERED;
	plan.npages = c.n;

	if (c.n) {
		c.cls = malloc(c.n);
		c.tr = malloc(c.n);
		if (!c.cls || !c.tr) {
			rc = tier_err(-ENOMEM, "placer: out of memory");
			goto out;
		}
	}
	for (i = 0; i < c.n; i++)
		c.cls[i] = classify(in, c.need, i);
	for (i = 0; i < c.n; i++)
		c.tr[i] = base_treatment(&c, i);

	switch (c.policy) {
	case TIER_POLICY_TIERED:
		bridge(&c, BRIDGE_CXL, TR_CXL_GAP);
		rc = spill(&c);
		if (rc)
			goto out;
		if (!c.identity) {
			bridge(&c, BRIDGE_ZERO, TR_ZLAZY);
			break;
		}
		/*
		 * Identity: zero pages are holes in the object, so a bridged
		 * zero page is a hole served by ZEROPAGE, never a mapped one
		 * (every MAP page is then present, and populating it cannot
		 * fault into userfaultfd); and a zero gap joins its
		 * neighbours into one cluster if it is short enough to pay
		 * (cluster_gap).
		 */
		for (i = 0; i < c.n; i++)
			if (c.cls[i] == TIER_CLASS_ZERO && c.tr[i] == TR_CXL_GAP)
				c.tr[i] = TR_ZLAZY;
		{
			/* between registered pages as in any layout, and
			 * between any two present pages by cost */
			uint64_t gap = c.gap;

			bridge(&c, BRIDGE_ZERO, TR_ZLAZY);
			c.gap = cluster_gap(&c, p);
			bridge(&c, BRIDGE_ANY, TR_ZLAZY);
			c.gap = gap;
		}
		break;
	case TIER_POLICY_AQUIFER:
		rc = spill(&c);
		if (rc)
			goto out;
		bridge(&c, BRIDGE_ZERO, TR_ZLAZY);
		break;
	case TIER_POLICY_EAGER:
		bridge(&c, BRIDGE_ZERO, TR_ZLAZY);
		break;
	case TIER_POLICY_FAASNAP:
		faasnap_zero_regions(&c);
		rc = rank_local(&c);
		if (rc)
			goto out;
		break;
	case TIER_POLICY_REAP:
		rc = rank_local(&c);
		if (rc)
			goto out;
		break;
	default:
		break;
	}

	prefetch_hot_zero(&c);
	rc = build_extents(&c, &plan);
	if (rc)
		goto out;
	*ret = plan;
	plan.ext = NULL;
out:
	free(plan.ext);
	free(c.cls);
	free(c.tr);
	free(c.rank);
	return rc;
}

void placer_plan_free(struct placer_plan *plan)
{
	if (!plan)
		return;
	free(plan->ext);
	memset(plan, 0, sizeof(*plan));
}

/*
 * Marks "already counted in this trace" in the top bit of runs and
 * writes while the trace is merged, so a page listed twice counts once
 * without a side table; the marks are cleared before returning.
 */
#define SEEN		0x80000000U
#define COUNT_MAX	(SEEN - 1)

int placer_merge_trace(struct placer_page *pages, uint64_t npages,
		       const struct tier_trace_ent *ent, size_t n)
{
	size_t i;

	if (n && (!pages || !ent))
		return tier_err(-EINVAL, "trace: no pages or entries");
	for (i = 0; i < n; i++) {
		const struct placer_page *pg;

		if (ent[i].page >= npages)
			return tier_err(-ERANGE, "trace entry %zu: page %llu "
					"past the end (%llu pages)", i,
					(unsigned long long)ent[i].page,
					(unsigned long long)npages);
		if (ent[i].kind < TIER_ACCESS_R || ent[i].kind > TIER_ACCESS_RW)
			return tier_err(-EINVAL, "trace entry %zu: bad access "
					"kind %d", i, (int)ent[i].kind);
		pg = &pages[ent[i].page];
		if (pg->runs >= COUNT_MAX || pg->writes >= COUNT_MAX ||
		    pg->wfirst >= COUNT_MAX)
			return tier_err(-EOVERFLOW, "trace entry %zu: page %llu "
					"counts overflow", i,
					(unsigned long long)ent[i].page);
	}

	for (i = 0; i < n; i++) {
		struct placer_page *pg = &pages[ent[i].page];
		uint32_t rank = i < UINT32_MAX ? i : UINT32_MAX - 1;

		if (!(pg->runs & SEEN)) {
			/* first entry of the page in this trace */
			if (!pg->runs || rank < pg->order)
				pg->order = rank;
			pg->runs = (pg->runs + 1) | SEEN;
			if (ent[i].kind == TIER_ACCESS_W)
				pg->wfirst++;
		}
		if ((ent[i].kind & TIER_ACCESS_W) && !(pg->writes & SEEN))
			pg->writes = (pg->writes + 1) | SEEN;
	}
	for (i = 0; i < n; i++) {
		pages[ent[i].page].runs &= ~SEEN;
		pages[ent[i].page].writes &= ~SEEN;
	}
	return 0;
}
