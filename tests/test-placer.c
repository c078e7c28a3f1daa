/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- the placer (placer/): classes, trace merging, every
 * policy's exact extents, gap bridging, CXL capacity spill, and the plan
 * invariants on thousands of random inputs per policy.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "t.h"
#include "placer/placer.h"

#define PG	TIER_PAGE_SIZE
#define NO_GAP	TIER_PLACE_NO_GAP

/* short names for the expected-extent tables */
#define Z	TIER_CLASS_ZERO
#define RO	TIER_CLASS_RO
#define RW	TIER_CLASS_RW
#define CO	TIER_CLASS_COLD
#define NONE	PLACER_SRC_NONE
#define IMG	PLACER_SRC_IMAGE
#define LOC	PLACER_SRC_LOCAL
#define CXL	PLACER_SRC_CXL
#define POOL	PLACER_SRC_POOL
#define ANON	PLACER_M_ANON
#define MAP	PLACER_M_MAP
#define COPY	PLACER_M_COPY
#define LAZY	PLACER_M_LAZY
#define POP	PLACER_F_POPULATE
#define RA	PLACER_F_READAHEAD

/* An expected extent; off is in pages (for IMAGE: the page itself). */
struct want {
	uint64_t page, npages;
	int cls, src, m, f;
	uint64_t off;
};

/* A hand-built input. */
struct fx {
	uint64_t n;
	uint64_t *zero;
	struct placer_page *pg;
	struct placer_input in;
};

/*
 * One character per page, with @T traces:
 *	'0' zero, untouched	'z' zero, touched in every run (read)
 *	'.' untouched		'c' touched (read) in one run only
 *	'r' read in every run	'w' written in every run
 * Touched pages get order = their index; untouched UINT32_MAX.
 */
static void fx_init(struct fx *f, const char *spec, uint32_t T)
{
	uint64_t i;

	f->n = strlen(spec);
	f->zero = calloc(f->n / 64 + 1, sizeof(*f->zero));
	f->pg = calloc(f->n + 1, sizeof(*f->pg));
	t_assert(f->zero && f->pg);
	for (i = 0; i < f->n; i++) {
		struct placer_page *p = &f->pg[i];

		p->order = UINT32_MAX;
		switch (spec[i]) {
		case '0':
			f->zero[i / 64] |= 1ULL << (i % 64);
			break;
		case 'z':
			f->zero[i / 64] |= 1ULL << (i % 64);
			p->runs = T;
			break;
		case '.':
			break;
		case 'c':
			p->runs = 1;
			break;
		case 'r':
			p->runs = T;
			break;
		case 'w':
			p->runs = p->writes = p->wfirst = T;
			break;
		default:
			t_assert(!"bad spec character");
		}
		if (p->runs)
			p->order = i;
	}
	f->in = (struct placer_input){
		.npages = f->n, .zero = f->zero, .pages = f->pg, .ntraces = T,
	};
}

static void fx_free(struct fx *f)
{
	free(f->zero);
	free(f->pg);
}

static const char *cls_s(int c)
{
	static const char *s[] = { "Z", "RO", "RW", "CO" };
	return c >= 0 && c < 4 ? s[c] : "?";
}

static const char *src_s(int c)
{
	static const char *s[] = { "NONE", "IMG", "LOC", "CXL", "POOL" };
	return c >= 0 && c < 5 ? s[c] : "?";
}

static const char *m_s(int c)
{
	static const char *s[] = { "ANON", "MAP", "COPY", "LAZY" };
	return c >= 0 && c < 4 ? s[c] : "?";
}

static void dump(const struct placer_plan *pl)
{
	size_t i;

	for (i = 0; i < pl->n; i++) {
		const struct placer_ext *e = &pl->ext[i];

		fprintf(stderr, "  { %llu, %llu, %s, %s, %s, %u, %llu },\n",
			(unsigned long long)e->page,
			(unsigned long long)e->npages, cls_s(e->cls),
			src_s(e->source), m_s(e->method), e->flags,
			(unsigned long long)(e->src_off / PG));
	}
}

#define expect(pl, ...) do {						\
		const struct want w_[] = { __VA_ARGS__ };		\
		expect_(__LINE__, pl, w_, sizeof(w_) / sizeof(w_[0]));	\
	} while (0)

static void expect_(int line, const struct placer_plan *pl,
		    const struct want *w, size_t n)
{
	size_t i;
	bool ok = pl->n == n;

	for (i = 0; ok && i < n; i++) {
		const struct placer_ext *e = &pl->ext[i];

		ok = e->page == w[i].page && e->npages == w[i].npages &&
		     e->cls == w[i].cls && e->source == w[i].src &&
		     e->method == w[i].m && e->flags == w[i].f &&
		     e->src_off == w[i].off * PG;
	}
	if (ok)
		return;
	fprintf(stderr, "%s:%d: plan differs, got %zu extents:\n", __FILE__,
		line, pl->n);
	dump(pl);
	exit(T_FAIL);
}

static struct placer_plan plan_of(const struct fx *f, enum tier_policy pol,
				  uint32_t gap)
{
	struct placer_params p = { .policy = pol, .gap = gap };
	struct placer_plan pl;

	t_ok(placer_plan(&f->in, &p, &pl));
	return pl;
}

/* Runs one spec through a policy and returns its plan. */
static struct placer_plan spec_plan(const char *spec, uint32_t T,
				    enum tier_policy pol, uint32_t gap)
{
	struct placer_plan pl;
	struct fx f;

	fx_init(&f, spec, T);
	pl = plan_of(&f, pol, gap);
	fx_free(&f);
	return pl;
}

/* ------------------------------------------------------------ names */

static void test_names(void)
{
	enum tier_policy p;
	unsigned i;

	t_assert(!strcmp(tier_policy_name(TIER_POLICY_TIERED), "tiered"));
	t_assert(!strcmp(tier_policy_name(TIER_POLICY_VANILLA), "vanilla"));
	t_assert(!strcmp(tier_policy_name(TIER_POLICY_REAP), "reap"));
	t_assert(!strcmp(tier_policy_name(TIER_POLICY_FAASNAP), "faasnap"));
	t_assert(!strcmp(tier_policy_name(TIER_POLICY_AQUIFER), "aquifer"));
	t_assert(!strcmp(tier_policy_name(TIER_POLICY_EAGER), "eager"));
	t_assert(tier_policy_name(TIER_POLICY_MAX) == NULL);
	t_assert(tier_policy_name((enum tier_policy)-1) == NULL);
	for (i = 0; i < TIER_POLICY_MAX; i++) {
		p = TIER_POLICY_MAX;
		t_ok(tier_policy_parse(tier_policy_name(i), &p));
		t_eq(p, i);
	}
	t_ok(tier_policy_parse("FaaSnap", &p));
	t_eq(p, TIER_POLICY_FAASNAP);
	p = TIER_POLICY_EAGER;
	t_fails(tier_policy_parse("lazy", &p), -EINVAL);
	t_assert(strstr(tier_errmsg(), "\"lazy\""));
	t_eq(p, TIER_POLICY_EAGER);
	t_fails(tier_policy_parse("", &p), -EINVAL);
	t_fails(tier_policy_parse("tiered ", &p), -EINVAL);
	t_fails(tier_policy_parse(NULL, &p), -EINVAL);
	t_fails(tier_policy_parse("tiered", NULL), -EINVAL);

	t_assert(!strcmp(tier_class_name(TIER_CLASS_ZERO), "zero"));
	t_assert(!strcmp(tier_class_name(TIER_CLASS_RO), "ro"));
	t_assert(!strcmp(tier_class_name(TIER_CLASS_RW), "rw"));
	t_assert(!strcmp(tier_class_name(TIER_CLASS_COLD), "cold"));
	t_assert(tier_class_name(TIER_CLASS_MAX) == NULL);
}

/* ------------------------------------------------------------ classify */

static int cls_with(uint32_t T, uint32_t runs, uint32_t writes, bool zero,
		    double conf)
{
	struct placer_page pg = { .runs = runs, .writes = writes };
	uint64_t zbm = zero;
	struct placer_input in = {
		.npages = 1, .zero = &zbm, .pages = &pg, .ntraces = T,
	};
	struct placer_params p = { .confidence = conf };

	return placer_classify(&in, &p, 0);
}

static void test_classify(void)
{
	struct placer_input in = { 0 };
	uint64_t zbm = 0;

	/* one trace: touched is hot */
	t_eq(cls_with(1, 0, 0, false, 0), CO);
	t_eq(cls_with(1, 1, 0, false, 0), RO);
	t_eq(cls_with(1, 1, 1, false, 0), RW);
	t_eq(cls_with(1, 1, 1, true, 0), Z);
	t_eq(cls_with(1, 0, 0, true, 0), Z);
	/* no traces: all cold (counts are not even read) */
	t_eq(cls_with(0, 0, 0, false, 0), CO);
	t_eq(cls_with(0, 5, 5, false, 0), CO);
	t_eq(cls_with(0, 0, 0, true, 0), Z);

	/* 4 traces, default confidence 0.5: 2 runs needed */
	t_eq(cls_with(4, 1, 0, false, 0), CO);
	t_eq(cls_with(4, 1, 1, false, 0), CO);
	t_eq(cls_with(4, 2, 0, false, 0), RO);
	t_eq(cls_with(4, 2, 1, false, 0), RW);	/* 1 of 2: half */
	t_eq(cls_with(4, 3, 1, false, 0), RO);	/* 1 of 3: less */
	t_eq(cls_with(4, 3, 2, false, 0), RW);
	t_eq(cls_with(4, 4, 1, false, 0), RO);
	t_eq(cls_with(4, 4, 2, false, 0), RW);
	t_eq(cls_with(4, 4, 4, true, 0), Z);
	t_eq(cls_with(4, 2, 0, false, 0.5), RO);
	/* 0.75 of 4: 3 runs */
	t_eq(cls_with(4, 2, 0, false, 0.75), CO);
	t_eq(cls_with(4, 3, 0, false, 0.75), RO);
	/* 1.0: every run */
	t_eq(cls_with(4, 3, 3, false, 1.0), CO);
	t_eq(cls_with(4, 4, 3, false, 1.0), RW);
	/* ceil: 0.5 of 3 is 2, 0.1 of 3 is 1, 0.7 of 10 is 7 (not 8) */
	t_eq(cls_with(3, 1, 0, false, 0.5), CO);
	t_eq(cls_with(3, 2, 0, false, 0.5), RO);
	t_eq(cls_with(3, 1, 0, false, 0.1), RO);
	t_eq(cls_with(10, 6, 0, false, 0.7), CO);
	t_eq(cls_with(10, 7, 0, false, 0.7), RO);
	t_eq(cls_with(10, 2, 0, false, 0.2), RO);
	t_eq(cls_with(10, 1, 0, false, 0.2), CO);
	t_eq(cls_with(25, 7, 0, false, 0.28), RO);	/* 0.28 * 25 > 7.0 */
	t_eq(cls_with(25, 6, 0, false, 0.28), CO);
	t_eq(cls_with(10, 3, 0, false, 0.3), RO);
	t_eq(cls_with(10, 2, 0, false, 0.3), CO);
	/* at least one run, however small the confidence */
	t_eq(cls_with(1, 0, 0, false, 0.01), CO);
	t_eq(cls_with(100, 1, 0, false, 0.001), RO);
	t_eq(cls_with(100, 0, 0, false, 0.001), CO);
	t_eq(cls_with(1, 1, 0, false, 1e-12), RO);
	t_eq(cls_with(1, 0, 0, false, 1e-12), CO);

	/* out of range or no input: TIER_CLASS_MAX */
	in.npages = 1;
	in.zero = &zbm;
	t_eq(placer_classify(&in, NULL, 1), TIER_CLASS_MAX);
	t_eq(placer_classify(NULL, NULL, 0), TIER_CLASS_MAX);
	/* NULL params: default confidence; no counts and no traces: cold */
	t_eq(placer_classify(&in, NULL, 0), CO);
}

/* ------------------------------------------------------------ merge */

static struct tier_trace_ent ent(uint64_t page, enum tier_access kind)
{
	return (struct tier_trace_ent){ .page = page, .kind = kind };
}

static void pg_eq(const struct placer_page *p, uint32_t runs, uint32_t writes,
		  uint32_t wfirst, uint32_t order)
{
	t_eq(p->runs, runs);
	t_eq(p->writes, writes);
	t_eq(p->wfirst, wfirst);
	if (runs)
		t_eq(p->order, order);
}

static void test_merge(void)
{
	struct placer_page pg[8], copy[8];
	const struct tier_trace_ent t1[] = {
		ent(5, TIER_ACCESS_R),		/* 0 */
		ent(1, TIER_ACCESS_W),		/* 1 */
		ent(2, TIER_ACCESS_RW),		/* 2 */
		ent(3, TIER_ACCESS_R),		/* 3: repeated R, W, R */
		ent(3, TIER_ACCESS_W),
		ent(3, TIER_ACCESS_R),
		ent(4, TIER_ACCESS_W),		/* 6: W then R */
		ent(4, TIER_ACCESS_R),
		ent(0, TIER_ACCESS_R),		/* 8 */
	};
	const struct tier_trace_ent t2[] = {
		ent(0, TIER_ACCESS_W),		/* 0 */
		ent(6, TIER_ACCESS_RW),		/* 1: new page, calloc'd order 0 */
		ent(5, TIER_ACCESS_R),		/* 2 */
		ent(1, TIER_ACCESS_R),		/* 3 */
		ent(3, TIER_ACCESS_RW),		/* 4 */
		ent(3, TIER_ACCESS_RW),
	};
	struct tier_trace_ent bad[] = {
		ent(1, TIER_ACCESS_R),
		ent(8, TIER_ACCESS_R),
	};
	unsigned i;

	memset(pg, 0, sizeof(pg));
	t_ok(placer_merge_trace(pg, 8, t1, sizeof(t1) / sizeof(t1[0])));
	pg_eq(&pg[0], 1, 0, 0, 8);
	pg_eq(&pg[1], 1, 1, 1, 1);
	pg_eq(&pg[2], 1, 1, 0, 2);
	pg_eq(&pg[3], 1, 1, 0, 3);
	pg_eq(&pg[4], 1, 1, 1, 6);
	pg_eq(&pg[5], 1, 0, 0, 0);
	pg_eq(&pg[6], 0, 0, 0, 0);
	pg_eq(&pg[7], 0, 0, 0, 0);

	t_ok(placer_merge_trace(pg, 8, t2, sizeof(t2) / sizeof(t2[0])));
	pg_eq(&pg[0], 2, 1, 1, 0);	/* min(8, 0) */
	pg_eq(&pg[1], 2, 1, 1, 1);	/* min(1, 3) */
	pg_eq(&pg[2], 1, 1, 0, 2);
	pg_eq(&pg[3], 2, 2, 0, 3);	/* min(3, 4), written in both */
	pg_eq(&pg[4], 1, 1, 1, 6);
	pg_eq(&pg[5], 2, 0, 0, 0);
	pg_eq(&pg[6], 1, 1, 0, 1);	/* order set although it was 0 */
	pg_eq(&pg[7], 0, 0, 0, 0);
	t_eq(pg[6].order, 1);

	/* the same trace again: counts per trace, order unchanged */
	t_ok(placer_merge_trace(pg, 8, t2, sizeof(t2) / sizeof(t2[0])));
	pg_eq(&pg[3], 3, 3, 0, 3);
	pg_eq(&pg[6], 2, 2, 0, 1);

	/* untouched pages keep UINT32_MAX if the caller set it */
	memset(pg, 0, sizeof(pg));
	for (i = 0; i < 8; i++)
		pg[i].order = UINT32_MAX;
	t_ok(placer_merge_trace(pg, 8, t2, 2));
	t_eq(pg[7].order, UINT32_MAX);
	t_eq(pg[0].order, 0);
	t_eq(pg[6].order, 1);

	/* out of range: -ERANGE and nothing changed (not even entry 0) */
	memcpy(copy, pg, sizeof(pg));
	t_fails(placer_merge_trace(pg, 8, bad, 2), -ERANGE);
	t_assert(strstr(tier_errmsg(), "page 8"));
	t_assert(!memcmp(copy, pg, sizeof(pg)));
	t_fails(placer_merge_trace(pg, 0, bad, 1), -ERANGE);
	bad[1].page = UINT64_MAX;
	t_fails(placer_merge_trace(pg, 8, bad, 2), -ERANGE);
	/* bad kinds */
	bad[1] = ent(2, 0);
	t_fails(placer_merge_trace(pg, 8, bad, 2), -EINVAL);
	bad[1] = ent(2, 4);
	t_fails(placer_merge_trace(pg, 8, bad, 2), -EINVAL);
	t_assert(!memcmp(copy, pg, sizeof(pg)));
	/* empty traces */
	t_ok(placer_merge_trace(pg, 8, NULL, 0));
	t_ok(placer_merge_trace(NULL, 0, NULL, 0));
	t_fails(placer_merge_trace(NULL, 8, bad, 1), -EINVAL);
	t_assert(!memcmp(copy, pg, sizeof(pg)));
	/* counts that would collide with the in-trace marks */
	pg[2].runs = 0x7fffffff;
	pg[2].writes = 0;
	memcpy(copy, pg, sizeof(pg));
	bad[1] = ent(2, TIER_ACCESS_R);
	t_fails(placer_merge_trace(pg, 8, bad, 2), -EOVERFLOW);
	t_assert(!memcmp(copy, pg, sizeof(pg)));
	pg[2].runs = 0x7ffffffe;
	t_ok(placer_merge_trace(pg, 8, bad, 2));
	t_eq(pg[2].runs, 0x7fffffff);
}

/* Merged traces feed the classes. */
static void test_merge_classify(void)
{
	static const enum tier_access kinds[3][4] = {
		/* page 0..3 in runs 0..2; 0: untouched */
		{ TIER_ACCESS_R, TIER_ACCESS_W, TIER_ACCESS_R, 0 },
		{ TIER_ACCESS_R, TIER_ACCESS_R, TIER_ACCESS_RW, 0 },
		{ 0, TIER_ACCESS_R, TIER_ACCESS_RW, TIER_ACCESS_R },
	};
	struct placer_page pg[4] = { 0 };
	uint64_t zbm = 0;
	struct placer_input in = {
		.npages = 4, .zero = &zbm, .pages = pg, .ntraces = 3,
	};
	struct placer_params p = { 0 };
	struct tier_trace_ent t[4];
	size_t n;
	int r, i;

	for (r = 0; r < 3; r++) {
		for (i = 0, n = 0; i < 4; i++)
			if (kinds[r][i])
				t[n++] = ent(i, kinds[r][i]);
		t_ok(placer_merge_trace(pg, 4, t, n));
	}
	/* need = ceil(0.5 * 3) = 2 */
	t_eq(placer_classify(&in, &p, 0), RO);	/* 2 runs, 0 writes */
	t_eq(placer_classify(&in, &p, 1), RO);	/* 3 runs, 1 write */
	t_eq(placer_classify(&in, &p, 2), RW);	/* 3 runs, 2 writes */
	t_eq(placer_classify(&in, &p, 3), CO);	/* 1 run */
	p.confidence = 0.1;
	t_eq(placer_classify(&in, &p, 3), RO);
	p.confidence = 1;
	t_eq(placer_classify(&in, &p, 0), CO);
	t_eq(placer_classify(&in, &p, 1), RO);
	t_eq(placer_classify(&in, &p, 2), RW);
	zbm = 1ULL << 2;
	t_eq(placer_classify(&in, &p, 2), Z);
}

/* ------------------------------------------------------------ tiered */

static void test_tiered_basic(void)
{
	struct placer_plan pl;

	pl = spec_plan("0r.w0", 1, TIER_POLICY_TIERED, 0);
	expect(&pl,
	       { 0, 1, Z, NONE, ANON, 0, 0 },
	       { 1, 1, RO, CXL, MAP, POP, 0 },
	       { 2, 1, CO, POOL, LAZY, 0, 1 },
	       { 3, 1, RW, POOL, COPY, 0, 0 },
	       { 4, 1, Z, NONE, ANON, 0, 0 });
	t_eq(pl.mappings, 2);
	t_eq(pl.cxl_size, PG);
	t_eq(pl.pool_size, 2 * PG);
	t_eq(pl.local_size, 0);
	t_eq(pl.pages[Z], 2);
	t_eq(pl.pages[RO], 1);
	t_eq(pl.pages[RW], 1);
	t_eq(pl.pages[CO], 1);
	t_eq(pl.spilled_pages, 0);
	t_eq(pl.npages, 5);
	placer_plan_free(&pl);
	t_assert(pl.ext == NULL && pl.n == 0);
	placer_plan_free(&pl);
	placer_plan_free(NULL);

	/* runs of one class coalesce; cxl and pool packed in page order */
	pl = spec_plan("rrrwww...rr00", 1, TIER_POLICY_TIERED, NO_GAP);
	expect(&pl,
	       { 0, 3, RO, CXL, MAP, POP, 0 },
	       { 3, 3, RW, POOL, COPY, 0, 0 },
	       { 6, 3, CO, POOL, LAZY, 0, 3 },
	       { 9, 2, RO, CXL, MAP, POP, 3 },
	       { 11, 2, Z, NONE, ANON, 0, 0 });
	t_eq(pl.mappings, 3);	/* MAP, one uffd run, MAP */
	t_eq(pl.cxl_size, 5 * PG);
	t_eq(pl.pool_size, 6 * PG);
	placer_plan_free(&pl);

	/* no traces: nothing hot */
	pl = spec_plan("0..0.", 0, TIER_POLICY_TIERED, 0);
	expect(&pl,
	       { 0, 1, Z, NONE, ANON, 0, 0 },
	       { 1, 2, CO, POOL, LAZY, 0, 0 },
	       { 3, 1, Z, NONE, LAZY, 0, 0 },
	       { 4, 1, CO, POOL, LAZY, 0, 2 });
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);
}

static void test_tiered_bridge(void)
{
	struct placer_plan pl;

	/* exactly G pages bridged, G + 1 not */
	pl = spec_plan("r..r", 1, TIER_POLICY_TIERED, 2);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 2, CO, CXL, MAP, 0, 1 },
	       { 3, 1, RO, CXL, MAP, POP, 3 });
	t_eq(pl.mappings, 1);
	t_eq(pl.cxl_size, 4 * PG);
	t_eq(pl.pool_size, 0);
	t_eq(pl.pages[CO], 2);
	placer_plan_free(&pl);

	pl = spec_plan("r...r", 1, TIER_POLICY_TIERED, 2);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 3, CO, POOL, LAZY, 0, 0 },
	       { 4, 1, RO, CXL, MAP, POP, 1 });
	t_eq(pl.mappings, 3);
	placer_plan_free(&pl);

	/* default gap (0) is 4 */
	pl = spec_plan("r....r", 1, TIER_POLICY_TIERED, 0);
	t_eq(pl.n, 3);
	t_eq(pl.mappings, 1);
	t_eq(pl.cxl_size, 6 * PG);
	placer_plan_free(&pl);
	pl = spec_plan("r.....r", 1, TIER_POLICY_TIERED, 0);
	t_eq(pl.mappings, 3);
	t_eq(pl.cxl_size, 2 * PG);
	placer_plan_free(&pl);

	/* mixed zero and cold pages keep their classes */
	pl = spec_plan("r0.0r", 1, TIER_POLICY_TIERED, 3);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, Z, CXL, MAP, 0, 1 },
	       { 2, 1, CO, CXL, MAP, 0, 2 },
	       { 3, 1, Z, CXL, MAP, 0, 3 },
	       { 4, 1, RO, CXL, MAP, POP, 4 });
	t_eq(pl.mappings, 1);
	t_eq(pl.pages[Z], 2);
	t_eq(pl.pages[CO], 1);
	t_eq(pl.pages[RO], 2);
	placer_plan_free(&pl);

	/* a rw page breaks the gap; the zeros next to it are not between
	 * two registered pages (ro is mapped) */
	pl = spec_plan("r0w0r", 1, TIER_POLICY_TIERED, 4);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, Z, NONE, ANON, 0, 0 },
	       { 2, 1, RW, POOL, COPY, 0, 0 },
	       { 3, 1, Z, NONE, ANON, 0, 0 },
	       { 4, 1, RO, CXL, MAP, POP, 1 });
	t_eq(pl.mappings, 3);
	placer_plan_free(&pl);

	/* gaps at the start or the end have one neighbour: not bridged */
	pl = spec_plan("0.rr.0", 1, TIER_POLICY_TIERED, 4);
	expect(&pl,
	       { 0, 1, Z, NONE, ANON, 0, 0 },
	       { 1, 1, CO, POOL, LAZY, 0, 0 },
	       { 2, 2, RO, CXL, MAP, POP, 0 },
	       { 4, 1, CO, POOL, LAZY, 0, 1 },
	       { 5, 1, Z, NONE, ANON, 0, 0 });
	t_eq(pl.mappings, 3);
	placer_plan_free(&pl);

	/* several gaps in one run: one mapping */
	pl = spec_plan("r.r00r", 1, TIER_POLICY_TIERED, 2);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, CO, CXL, MAP, 0, 1 },
	       { 2, 1, RO, CXL, MAP, POP, 2 },
	       { 3, 2, Z, CXL, MAP, 0, 3 },
	       { 5, 1, RO, CXL, MAP, POP, 5 });
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);

	/* never with TIER_PLACE_NO_GAP */
	pl = spec_plan("r.r", 1, TIER_POLICY_TIERED, NO_GAP);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, CO, POOL, LAZY, 0, 0 },
	       { 2, 1, RO, CXL, MAP, POP, 1 });
	t_eq(pl.mappings, 3);
	placer_plan_free(&pl);
	pl = spec_plan("w0w", 1, TIER_POLICY_TIERED, NO_GAP);
	expect(&pl,
	       { 0, 1, RW, POOL, COPY, 0, 0 },
	       { 1, 1, Z, NONE, ANON, 0, 0 },
	       { 2, 1, RW, POOL, COPY, 0, 1 });
	t_eq(pl.mappings, 2);
	placer_plan_free(&pl);

	/* a cold page of low confidence bridges like an untouched one */
	pl = spec_plan("rcr", 3, TIER_POLICY_TIERED, 1);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, CO, CXL, MAP, 0, 1 },
	       { 2, 1, RO, CXL, MAP, POP, 2 });
	placer_plan_free(&pl);
}

static void test_tiered_zero_bridge(void)
{
	struct placer_plan pl;

	/* zeros inside a registered run: ZEROPAGE lazily, one registration */
	pl = spec_plan("w00w", 1, TIER_POLICY_TIERED, 0);
	expect(&pl,
	       { 0, 1, RW, POOL, COPY, 0, 0 },
	       { 1, 2, Z, NONE, LAZY, 0, 0 },
	       { 3, 1, RW, POOL, COPY, 0, 1 });
	t_eq(pl.mappings, 1);
	t_eq(pl.pages[Z], 2);
	placer_plan_free(&pl);

	/* copy and lazy neighbours both count as registered */
	pl = spec_plan("w00.", 1, TIER_POLICY_TIERED, 2);
	expect(&pl,
	       { 0, 1, RW, POOL, COPY, 0, 0 },
	       { 1, 2, Z, NONE, LAZY, 0, 0 },
	       { 3, 1, CO, POOL, LAZY, 0, 1 });
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);

	/* G + 1 zeros: left anonymous, two registrations */
	pl = spec_plan("w000.", 1, TIER_POLICY_TIERED, 2);
	expect(&pl,
	       { 0, 1, RW, POOL, COPY, 0, 0 },
	       { 1, 3, Z, NONE, ANON, 0, 0 },
	       { 4, 1, CO, POOL, LAZY, 0, 1 });
	t_eq(pl.mappings, 2);
	placer_plan_free(&pl);

	/* zeros between a mapped ro page and a registered page stay anon */
	pl = spec_plan("r0.", 1, TIER_POLICY_TIERED, 4);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, Z, NONE, ANON, 0, 0 },
	       { 2, 1, CO, POOL, LAZY, 0, 0 });
	placer_plan_free(&pl);

	/* touched zeros inside a registered run are installed before
	 * resume (ZEROPAGE, no fault), untouched ones stay lazy */
	pl = spec_plan("wz0w", 1, TIER_POLICY_TIERED, 0);
	expect(&pl,
	       { 0, 1, RW, POOL, COPY, 0, 0 },
	       { 1, 1, Z, NONE, COPY, 0, 0 },
	       { 2, 1, Z, NONE, LAZY, 0, 0 },
	       { 3, 1, RW, POOL, COPY, 0, 1 });
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);
	/* ... when hot by the confidence: one run of two is not (0.75) */
	{
		struct placer_params p = { .policy = TIER_POLICY_TIERED,
					   .confidence = 0.75 };
		struct fx f;

		fx_init(&f, "wzzw", 2);
		f.pg[2].runs = 1;
		t_ok(placer_plan(&f.in, &p, &pl));
		expect(&pl,
		       { 0, 1, RW, POOL, COPY, 0, 0 },
		       { 1, 1, Z, NONE, COPY, 0, 0 },
		       { 2, 1, Z, NONE, LAZY, 0, 0 },
		       { 3, 1, RW, POOL, COPY, 0, 1 });
		placer_plan_free(&pl);
		fx_free(&f);
	}
	/* an anonymous touched zero stays anonymous: no fault either way */
	pl = spec_plan("wz00000w", 1, TIER_POLICY_TIERED, 2);
	expect(&pl,
	       { 0, 1, RW, POOL, COPY, 0, 0 },
	       { 1, 6, Z, NONE, ANON, 0, 0 },
	       { 7, 1, RW, POOL, COPY, 0, 1 });
	placer_plan_free(&pl);
	/* the same in aquifer and eager */
	pl = spec_plan("wz0w", 1, TIER_POLICY_EAGER, 0);
	expect(&pl,
	       { 0, 1, RW, IMG, COPY, 0, 0 },
	       { 1, 1, Z, NONE, COPY, 0, 0 },
	       { 2, 1, Z, NONE, LAZY, 0, 0 },
	       { 3, 1, RW, IMG, COPY, 0, 3 });
	placer_plan_free(&pl);
	pl = spec_plan("rz0r", 1, TIER_POLICY_AQUIFER, 0);
	expect(&pl,
	       { 0, 1, RO, CXL, COPY, 0, 0 },
	       { 1, 1, Z, NONE, COPY, 0, 0 },
	       { 2, 1, Z, NONE, LAZY, 0, 0 },
	       { 3, 1, RO, CXL, COPY, 0, 1 });
	placer_plan_free(&pl);

	/* cold pages are not zero gaps: "w.0" is already one run */
	pl = spec_plan(".0.0", 1, TIER_POLICY_TIERED, 1);
	expect(&pl,
	       { 0, 1, CO, POOL, LAZY, 0, 0 },
	       { 1, 1, Z, NONE, LAZY, 0, 0 },
	       { 2, 1, CO, POOL, LAZY, 0, 1 },
	       { 3, 1, Z, NONE, ANON, 0, 0 });
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);
}

/* The identity layout (shmem CXL tier): src_off = page << 12. */
static struct placer_plan id_plan(const char *spec, uint32_t T,
				  enum tier_policy pol, uint32_t gap)
{
	struct placer_params p = { .policy = pol, .gap = gap,
				   .cxl_identity = 1,
				   .cluster_gap = PLACER_GAP_AS_GAP };
	struct placer_plan pl;
	struct fx f;

	fx_init(&f, spec, T);
	t_ok(placer_plan(&f.in, &p, &pl));
	fx_free(&f);
	return pl;
}

static void test_tiered_identity(void)
{
	struct placer_plan pl, c;

	pl = id_plan("0r.w0", 1, TIER_POLICY_TIERED, 0);
	expect(&pl,
	       { 0, 1, Z, NONE, ANON, 0, 0 },
	       { 1, 1, RO, CXL, MAP, POP, 1 },
	       { 2, 1, CO, POOL, LAZY, 0, 1 },
	       { 3, 1, RW, POOL, COPY, 0, 0 },
	       { 4, 1, Z, NONE, ANON, 0, 0 });
	t_eq(pl.cxl_identity, 1);
	t_eq(pl.cxl_size, 5 * PG);	/* the image's size, sparse */
	t_eq(pl.pool_size, 2 * PG);
	t_eq(pl.mappings, 2);		/* one cluster: mmap + registration */
	t_eq(placer_count_mappings(pl.ext, pl.n, 0), 2);
	placer_plan_free(&pl);

	/* zeros next to a rw page join the cluster (compact: 3 mappings) */
	pl = id_plan("r0w0r", 1, TIER_POLICY_TIERED, 4);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, Z, NONE, LAZY, 0, 0 },
	       { 2, 1, RW, POOL, COPY, 0, 0 },
	       { 3, 1, Z, NONE, LAZY, 0, 0 },
	       { 4, 1, RO, CXL, MAP, POP, 4 });
	t_eq(pl.mappings, 2);
	t_eq(placer_count_mappings(pl.ext, pl.n, 0), 3);
	placer_plan_free(&pl);
	c = spec_plan("r0w0r", 1, TIER_POLICY_TIERED, 4);
	t_eq(c.mappings, 3);
	t_eq(c.cxl_identity, 0);
	t_eq(c.cxl_size, 2 * PG);
	placer_plan_free(&c);

	/* bridged zeros between ro pages are holes (ZEROPAGE), bridged
	 * cold pages stay mapped: every MAP page is present in the object */
	pl = id_plan("r0.0r", 1, TIER_POLICY_TIERED, 3);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, Z, NONE, LAZY, 0, 0 },
	       { 2, 1, CO, CXL, MAP, 0, 2 },
	       { 3, 1, Z, NONE, LAZY, 0, 0 },
	       { 4, 1, RO, CXL, MAP, POP, 4 });
	t_eq(pl.mappings, 2);
	t_eq(pl.cxl_size, 5 * PG);
	placer_plan_free(&pl);

	/* gap + 1 zeros split clusters: two mmaps, nothing registered */
	pl = id_plan("r00000r", 1, TIER_POLICY_TIERED, 4);
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 5, Z, NONE, ANON, 0, 0 },
	       { 6, 1, RO, CXL, MAP, POP, 6 });
	t_eq(pl.mappings, 2);
	placer_plan_free(&pl);

	/* by cost: one trace touched no zero page of 50, so the chance
	 * one is touched is 1/52; at 3 us a mapping and 30 us a userfault
	 * the longest run worth bridging is 3000 * 52 / 30000 = 5 pages,
	 * at 100 us a mapping 173 */
	t_eq(placer_cluster_gap(50, 0, 0, 0), 5);
	t_eq(placer_cluster_gap(50, 0, 100000, 30000), 173);
	t_eq(placer_cluster_gap(50, 50, 3000, 30000), 1);	/* all touched */
	t_eq(placer_cluster_gap(0, 0, 1, 1000000), 1);
	t_eq(placer_cluster_gap(214958, 0, 2800, 40000), 15047);
	{
		char spec[64] = "r.";
		struct placer_params cp = { .policy = TIER_POLICY_TIERED,
					    .cxl_identity = 1 };
		struct fx f;

		memset(spec + 2, '0', 50);
		memcpy(spec + 52, ".r", 3);
		fx_init(&f, spec, 1);
		t_ok(placer_plan(&f.in, &cp, &pl));	/* gap 5: two clusters */
		t_eq(pl.mappings, 4);
		placer_plan_free(&pl);
		cp.map_ns = 100000;			/* gap 173: one */
		t_ok(placer_plan(&f.in, &cp, &pl));
		t_eq(pl.mappings, 2);
		t_eq(pl.n, 5);
		t_eq(pl.ext[2].method, PLACER_M_LAZY);
		t_eq(pl.ext[2].npages, 50);
		placer_plan_free(&pl);
		cp.cluster_gap = 49;			/* asked: two */
		t_ok(placer_plan(&f.in, &cp, &pl));
		t_eq(pl.mappings, 4);
		placer_plan_free(&pl);
		fx_free(&f);
	}

	/* a cluster without CXL pages counts as before; no CXL page at
	 * all: no object, no identity */
	pl = id_plan("w00w0r.0.", 1, TIER_POLICY_TIERED, 2);
	expect(&pl,
	       { 0, 1, RW, POOL, COPY, 0, 0 },
	       { 1, 2, Z, NONE, LAZY, 0, 0 },
	       { 3, 1, RW, POOL, COPY, 0, 1 },
	       { 4, 1, Z, NONE, LAZY, 0, 0 },
	       { 5, 1, RO, CXL, MAP, POP, 5 },
	       { 6, 1, CO, POOL, LAZY, 0, 2 },
	       { 7, 1, Z, NONE, LAZY, 0, 0 },
	       { 8, 1, CO, POOL, LAZY, 0, 3 });
	t_eq(pl.mappings, 2);		/* one cluster */
	t_eq(placer_count_mappings(pl.ext, pl.n, 0), 3);
	placer_plan_free(&pl);
	pl = id_plan("w00w", 1, TIER_POLICY_TIERED, 0);
	t_eq(pl.cxl_identity, 0);
	t_eq(pl.cxl_size, 0);
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);

	/* other policies ignore it */
	pl = id_plan("r.w0r", 1, TIER_POLICY_AQUIFER, 0);
	c = spec_plan("r.w0r", 1, TIER_POLICY_AQUIFER, 0);
	t_eq(pl.cxl_identity, 0);
	t_eq(pl.n, c.n);
	for (size_t i = 0; i < pl.n; i++)
		t_eq(pl.ext[i].src_off, c.ext[i].src_off);
	t_eq(pl.cxl_size, 3 * PG);
	placer_plan_free(&pl);
	placer_plan_free(&c);

	/* placer_cluster_overlay: @first shifts the identity check */
	{
		struct placer_ext e[] = {
			{ 0, 2, RO, CXL, MAP, POP, 10 * PG },
			{ 2, 1, CO, POOL, LAZY, 0, 0 },
			{ 3, 1, RO, CXL, COPY, 0, 0 },
		};

		t_eq(placer_cluster_overlay(e, 0, 2, 10), 1);
		t_eq(placer_cluster_overlay(e, 0, 2, 0), 0);
		t_eq(placer_cluster_overlay(e, 1, 2, 10), 0);	/* no CXL */
		t_eq(placer_cluster_overlay(e, 0, 3, 10), 0);	/* CXL copy */
	}
}

/* Sets runs and order of page @p (T traces, read only). */
static void set_ro(struct fx *f, uint64_t p, uint32_t runs, uint32_t order)
{
	f->pg[p].runs = runs;
	f->pg[p].writes = 0;
	f->pg[p].order = order;
}

static void test_tiered_spill(void)
{
	struct placer_params p = {
		.policy = TIER_POLICY_TIERED, .gap = NO_GAP,
	};
	struct placer_plan pl;
	struct fx f;

	/*
	 * T = 3, need 2. Units: A = 0-1 (3 runs, order 0), B = 3 (2, 5),
	 * C = 5-6 (2, 2), D = 8 (3, 9). Spill order: B, C, D, A.
	 */
	fx_init(&f, "rr.r.rr.r", 3);
	set_ro(&f, 0, 3, 0);
	set_ro(&f, 1, 3, 1);
	set_ro(&f, 3, 2, 5);
	set_ro(&f, 5, 2, 2);
	set_ro(&f, 6, 2, 3);
	set_ro(&f, 8, 3, 9);

	p.cxl_pages = 6;	/* exactly enough: nothing spilled */
	t_ok(placer_plan(&f.in, &p, &pl));
	t_eq(pl.spilled_pages, 0);
	t_eq(pl.cxl_size, 6 * PG);
	placer_plan_free(&pl);

	p.cxl_pages = 5;
	t_ok(placer_plan(&f.in, &p, &pl));
	t_eq(pl.spilled_pages, 1);
	expect(&pl,
	       { 0, 2, RO, CXL, MAP, POP, 0 },
	       { 2, 1, CO, POOL, LAZY, 0, 1 },
	       { 3, 1, RO, POOL, COPY, 0, 0 },
	       { 4, 1, CO, POOL, LAZY, 0, 2 },
	       { 5, 2, RO, CXL, MAP, POP, 2 },
	       { 7, 1, CO, POOL, LAZY, 0, 3 },
	       { 8, 1, RO, CXL, MAP, POP, 4 });
	t_eq(pl.pages[RO], 6);		/* spilled pages stay ro */
	t_eq(pl.cxl_size, 5 * PG);
	t_eq(pl.pool_size, 4 * PG);
	placer_plan_free(&pl);

	p.cxl_pages = 4;
	t_ok(placer_plan(&f.in, &p, &pl));
	t_eq(pl.spilled_pages, 3);
	expect(&pl,
	       { 0, 2, RO, CXL, MAP, POP, 0 },
	       { 2, 1, CO, POOL, LAZY, 0, 3 },
	       { 3, 1, RO, POOL, COPY, 0, 0 },
	       { 4, 1, CO, POOL, LAZY, 0, 4 },
	       { 5, 2, RO, POOL, COPY, 0, 1 },
	       { 7, 1, CO, POOL, LAZY, 0, 5 },
	       { 8, 1, RO, CXL, MAP, POP, 2 });
	t_eq(pl.mappings, 3);
	t_eq(pl.cxl_size, 3 * PG);
	placer_plan_free(&pl);

	p.cxl_pages = 2;	/* B, C, D go; A (2 pages) fits */
	t_ok(placer_plan(&f.in, &p, &pl));
	t_eq(pl.spilled_pages, 4);
	t_eq(pl.cxl_size, 2 * PG);
	t_eq(pl.ext[0].source, CXL);
	t_eq(pl.ext[pl.n - 1].source, POOL);
	placer_plan_free(&pl);

	p.cxl_pages = 1;	/* whole units: A goes too, CXL is empty */
	t_ok(placer_plan(&f.in, &p, &pl));
	t_eq(pl.spilled_pages, 6);
	t_eq(pl.cxl_size, 0);
	expect(&pl,
	       { 0, 2, RO, POOL, COPY, 0, 0 },
	       { 2, 1, CO, POOL, LAZY, 0, 6 },
	       { 3, 1, RO, POOL, COPY, 0, 2 },
	       { 4, 1, CO, POOL, LAZY, 0, 7 },
	       { 5, 2, RO, POOL, COPY, 0, 3 },
	       { 7, 1, CO, POOL, LAZY, 0, 8 },
	       { 8, 1, RO, POOL, COPY, 0, 5 });
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);
	fx_free(&f);

	/* ties in runs and order: the later unit goes first */
	fx_init(&f, "r.r", 2);
	set_ro(&f, 0, 2, 4);
	set_ro(&f, 2, 2, 4);
	p.cxl_pages = 1;
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, CO, POOL, LAZY, 0, 1 },
	       { 2, 1, RO, POOL, COPY, 0, 0 });
	placer_plan_free(&pl);
	/* a unit's heat is its hottest page: 2 runs beats 1 + 1 earlier */
	set_ro(&f, 0, 1, 0);
	set_ro(&f, 2, 2, 9);
	f.in.ntraces = 2;
	p.confidence = 0.5;	/* need 1 */
	t_ok(placer_plan(&f.in, &p, &pl));
	t_eq(pl.ext[0].source, POOL);
	t_eq(pl.ext[2].source, CXL);
	placer_plan_free(&pl);
	fx_free(&f);
}

static void test_tiered_spill_bridged(void)
{
	struct placer_params p = { .policy = TIER_POLICY_TIERED };
	struct placer_plan pl;
	struct fx f;

	/*
	 * U1 = 0-4 (ro, zero, ro, cold, ro bridged; order 3), U2 = 11
	 * (order 0). 6 cold pages between them are past the gap of 4.
	 * cxl 3: U1 spills whole; its zero gap becomes a lazy zero inside
	 * the registered run, its cold gap goes back to the pool.
	 */
	fx_init(&f, "r0r.r......r", 1);
	set_ro(&f, 0, 1, 3);
	set_ro(&f, 2, 1, 4);
	set_ro(&f, 4, 1, 5);
	set_ro(&f, 11, 1, 0);
	p.cxl_pages = 0;
	t_ok(placer_plan(&f.in, &p, &pl));
	t_eq(pl.cxl_size, 6 * PG);
	t_eq(pl.mappings, 3);
	placer_plan_free(&pl);

	p.cxl_pages = 3;
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 1, RO, POOL, COPY, 0, 0 },
	       { 1, 1, Z, NONE, LAZY, 0, 0 },
	       { 2, 1, RO, POOL, COPY, 0, 1 },
	       { 3, 1, CO, POOL, LAZY, 0, 3 },
	       { 4, 1, RO, POOL, COPY, 0, 2 },
	       { 5, 6, CO, POOL, LAZY, 0, 4 },
	       { 11, 1, RO, CXL, MAP, POP, 0 });
	t_eq(pl.spilled_pages, 3);	/* ro pages only */
	t_eq(pl.cxl_size, PG);
	t_eq(pl.pool_size, 10 * PG);
	t_eq(pl.mappings, 2);
	t_eq(pl.pages[Z], 1);
	placer_plan_free(&pl);

	/* U2 is the later one now: it goes, U1 (5 pages) stays */
	set_ro(&f, 11, 1, 7);
	p.cxl_pages = 5;
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 1, RO, CXL, MAP, POP, 0 },
	       { 1, 1, Z, CXL, MAP, 0, 1 },
	       { 2, 1, RO, CXL, MAP, POP, 2 },
	       { 3, 1, CO, CXL, MAP, 0, 3 },
	       { 4, 1, RO, CXL, MAP, POP, 4 },
	       { 5, 6, CO, POOL, LAZY, 0, 1 },
	       { 11, 1, RO, POOL, COPY, 0, 0 });
	t_eq(pl.spilled_pages, 1);
	t_eq(pl.mappings, 2);
	placer_plan_free(&pl);
	fx_free(&f);
}

/* ------------------------------------------------------------ baselines */

static void test_vanilla(void)
{
	struct placer_plan pl;

	pl = spec_plan("00rr.w0", 1, TIER_POLICY_VANILLA, 0);
	expect(&pl,
	       { 0, 2, Z, IMG, MAP, 0, 0 },
	       { 2, 2, RO, IMG, MAP, 0, 2 },
	       { 4, 1, CO, IMG, MAP, 0, 4 },
	       { 5, 1, RW, IMG, MAP, 0, 5 },
	       { 6, 1, Z, IMG, MAP, 0, 6 });
	t_eq(pl.mappings, 1);
	t_eq(pl.cxl_size + pl.pool_size + pl.local_size, 0);
	t_eq(pl.pages[Z], 3);
	placer_plan_free(&pl);

	/* bridging does not apply */
	pl = spec_plan("r.r", 1, TIER_POLICY_VANILLA, 4);
	t_eq(pl.n, 3);
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);
}

static void test_reap(void)
{
	struct placer_plan pl;
	struct placer_params p = { .policy = TIER_POLICY_REAP };
	struct fx f;

	/* working set in first-touch order, zero pages included */
	fx_init(&f, "r.w0z.", 1);
	f.pg[0].order = 2;
	f.pg[2].order = 0;
	f.pg[4].order = 1;
	pl = plan_of(&f, TIER_POLICY_REAP, 0);
	expect(&pl,
	       { 0, 1, RO, LOC, COPY, 0, 2 },
	       { 1, 1, CO, IMG, LAZY, 0, 1 },
	       { 2, 1, RW, LOC, COPY, 0, 0 },
	       { 3, 1, Z, IMG, LAZY, 0, 3 },
	       { 4, 1, Z, LOC, COPY, 0, 1 },
	       { 5, 1, CO, IMG, LAZY, 0, 5 });
	t_eq(pl.mappings, 1);
	t_eq(pl.local_size, 3 * PG);
	t_eq(pl.cxl_size + pl.pool_size, 0);
	placer_plan_free(&pl);
	fx_free(&f);

	/* touched in order: one extent; reversed: one per page */
	pl = spec_plan("rrw", 1, TIER_POLICY_REAP, 0);
	expect(&pl,
	       { 0, 2, RO, LOC, COPY, 0, 0 },
	       { 2, 1, RW, LOC, COPY, 0, 2 });
	placer_plan_free(&pl);
	fx_init(&f, "rrr", 1);
	f.pg[0].order = 2;
	f.pg[1].order = 1;
	f.pg[2].order = 0;
	pl = plan_of(&f, TIER_POLICY_REAP, 0);
	expect(&pl,
	       { 0, 1, RO, LOC, COPY, 0, 2 },
	       { 1, 1, RO, LOC, COPY, 0, 1 },
	       { 2, 1, RO, LOC, COPY, 0, 0 });
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);
	/* equal orders (several traces): page order breaks the tie */
	f.pg[0].order = f.pg[1].order = f.pg[2].order = 3;
	pl = plan_of(&f, TIER_POLICY_REAP, 0);
	expect(&pl, { 0, 3, RO, LOC, COPY, 0, 0 });
	placer_plan_free(&pl);
	fx_free(&f);

	/* the working set follows the confidence; untouched order ignored */
	fx_init(&f, "cr.", 2);
	f.pg[2].order = 0;	/* calloc'd caller: meaningless, runs 0 */
	p.confidence = 1;
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 1, CO, IMG, LAZY, 0, 0 },
	       { 1, 1, RO, LOC, COPY, 0, 0 },
	       { 2, 1, CO, IMG, LAZY, 0, 2 });
	placer_plan_free(&pl);
	p.confidence = 0.5;	/* one run of two is enough now */
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 2, RO, LOC, COPY, 0, 0 },
	       { 2, 1, CO, IMG, LAZY, 0, 2 });
	placer_plan_free(&pl);
	fx_free(&f);
}

static void test_faasnap(void)
{
	struct placer_params p = {
		.policy = TIER_POLICY_FAASNAP, .zero_block = 4,
	};
	struct placer_plan pl;
	struct fx f;

	/*
	 * blocks of 4: [0z00] all zero (a touched zero page too) -> anon;
	 * [0r00] mixed -> image, loading set; [0000] anon; tail [00] anon.
	 */
	fx_init(&f, "0z000r00000000", 1);
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 4, Z, NONE, ANON, 0, 0 },
	       { 4, 1, Z, IMG, MAP, 0, 4 },
	       { 5, 1, RO, LOC, MAP, RA, 0 },
	       { 6, 2, Z, IMG, MAP, 0, 6 },
	       { 8, 6, Z, NONE, ANON, 0, 0 });
	t_eq(pl.mappings, 3);
	t_eq(pl.local_size, PG);
	t_eq(pl.pages[Z], 13);
	placer_plan_free(&pl);
	fx_free(&f);

	/* a shorter tail with one non-zero page is not a zero region */
	fx_init(&f, "00000.", 1);
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 4, Z, NONE, ANON, 0, 0 },
	       { 4, 1, Z, IMG, MAP, 0, 4 },
	       { 5, 1, CO, IMG, MAP, 0, 5 });
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);
	fx_free(&f);

	/* blocks are aligned: 4 zeros across a block boundary are not one */
	fx_init(&f, "..0000..", 1);
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 2, CO, IMG, MAP, 0, 0 },
	       { 2, 4, Z, IMG, MAP, 0, 2 },
	       { 6, 2, CO, IMG, MAP, 0, 6 });
	t_eq(pl.mappings, 1);
	placer_plan_free(&pl);
	fx_free(&f);

	/* loading set in first-touch order; a zero page outside a zero
	 * region is loaded like any other; rw is no different from ro */
	fx_init(&f, "rwz.", 1);
	f.pg[0].order = 1;
	f.pg[1].order = 2;
	f.pg[2].order = 0;
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 1, RO, LOC, MAP, RA, 1 },
	       { 1, 1, RW, LOC, MAP, RA, 2 },
	       { 2, 1, Z, LOC, MAP, RA, 0 },
	       { 3, 1, CO, IMG, MAP, 0, 3 });
	t_eq(pl.mappings, 3);	/* 0-1 contiguous, then 0 again, then image */
	t_eq(pl.local_size, 3 * PG);
	placer_plan_free(&pl);
	fx_free(&f);

	/* default block is 16 pages */
	{
		char s[34];

		memset(s, '0', 32);
		s[32] = '.';
		s[33] = '\0';
		s[17] = '.';
		fx_init(&f, s, 1);
		p.zero_block = 0;
		t_ok(placer_plan(&f.in, &p, &pl));
		expect(&pl,
		       { 0, 16, Z, NONE, ANON, 0, 0 },
		       { 16, 1, Z, IMG, MAP, 0, 16 },
		       { 17, 1, CO, IMG, MAP, 0, 17 },
		       { 18, 14, Z, IMG, MAP, 0, 18 },
		       { 32, 1, CO, IMG, MAP, 0, 32 });
		placer_plan_free(&pl);
		fx_free(&f);
	}
}

static void test_aquifer(void)
{
	struct placer_params p = { .policy = TIER_POLICY_AQUIFER };
	struct placer_plan pl;
	struct fx f;

	pl = spec_plan("0rw.0r0", 1, TIER_POLICY_AQUIFER, 0);
	expect(&pl,
	       { 0, 1, Z, NONE, ANON, 0, 0 },
	       { 1, 1, RO, CXL, COPY, 0, 0 },
	       { 2, 1, RW, CXL, COPY, 0, 1 },
	       { 3, 1, CO, POOL, LAZY, 0, 0 },
	       { 4, 1, Z, NONE, LAZY, 0, 0 },
	       { 5, 1, RO, CXL, COPY, 0, 2 },
	       { 6, 1, Z, NONE, ANON, 0, 0 });
	t_eq(pl.mappings, 1);
	t_eq(pl.cxl_size, 3 * PG);
	t_eq(pl.pool_size, PG);
	placer_plan_free(&pl);

	/* no ro bridging into CXL: cold stays in the pool */
	pl = spec_plan("r.r", 1, TIER_POLICY_AQUIFER, 4);
	expect(&pl,
	       { 0, 1, RO, CXL, COPY, 0, 0 },
	       { 1, 1, CO, POOL, LAZY, 0, 0 },
	       { 2, 1, RO, CXL, COPY, 0, 1 });
	placer_plan_free(&pl);

	/* capacity: the later-touched unit is copied from the pool */
	fx_init(&f, "r.ww", 1);
	f.pg[0].order = 0;
	f.pg[2].order = 1;
	f.pg[3].order = 2;
	p.cxl_pages = 1;
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 1, RO, CXL, COPY, 0, 0 },
	       { 1, 1, CO, POOL, LAZY, 0, 2 },
	       { 2, 2, RW, POOL, COPY, 0, 0 });
	t_eq(pl.spilled_pages, 2);
	placer_plan_free(&pl);
	fx_free(&f);
}

static void test_eager(void)
{
	struct placer_plan pl;

	pl = spec_plan("0r.w00r0", 1, TIER_POLICY_EAGER, 2);
	expect(&pl,
	       { 0, 1, Z, NONE, ANON, 0, 0 },
	       { 1, 1, RO, IMG, COPY, 0, 1 },
	       { 2, 1, CO, IMG, COPY, 0, 2 },
	       { 3, 1, RW, IMG, COPY, 0, 3 },
	       { 4, 2, Z, NONE, LAZY, 0, 0 },
	       { 6, 1, RO, IMG, COPY, 0, 6 },
	       { 7, 1, Z, NONE, ANON, 0, 0 });
	t_eq(pl.mappings, 1);
	t_eq(pl.cxl_size + pl.pool_size + pl.local_size, 0);
	placer_plan_free(&pl);

	pl = spec_plan("...000.", 0, TIER_POLICY_EAGER, 2);
	expect(&pl,
	       { 0, 3, CO, IMG, COPY, 0, 0 },
	       { 3, 3, Z, NONE, ANON, 0, 0 },
	       { 6, 1, CO, IMG, COPY, 0, 6 });
	t_eq(pl.mappings, 2);
	placer_plan_free(&pl);
}

/* ------------------------------------------------------------ errors */

static void test_errors(void)
{
	struct placer_params p = { .policy = TIER_POLICY_TIERED };
	struct placer_plan pl, keep;
	struct placer_input in = { 0 };
	struct fx f;

	memset(&keep, 0x77, sizeof(keep));
	pl = keep;

	/* zero pages: fine, nothing needed */
	t_ok(placer_plan(&in, &p, &pl));
	t_eq(pl.n, 0);
	t_eq(pl.npages, 0);
	t_eq(pl.mappings, 0);
	placer_plan_free(&pl);
	pl = keep;

	t_fails(placer_plan(NULL, &p, &pl), -EINVAL);
	t_fails(placer_plan(&in, NULL, &pl), -EINVAL);
	t_fails(placer_plan(&in, &p, NULL), -EINVAL);

	fx_init(&f, "r.w0", 1);
	f.in.zero = NULL;
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	t_assert(strstr(tier_errmsg(), "bitmap"));
	f.in.zero = f.zero;
	f.in.pages = NULL;
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	f.in.ntraces = 0;	/* no traces: no counts needed */
	t_ok(placer_plan(&f.in, &p, &pl));
	expect(&pl,
	       { 0, 3, CO, POOL, LAZY, 0, 0 },
	       { 3, 1, Z, NONE, ANON, 0, 0 });
	placer_plan_free(&pl);
	pl = keep;
	f.in.pages = f.pg;
	f.in.ntraces = 1;

	f.pg[1].runs = 2;	/* more runs than traces */
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	t_assert(strstr(tier_errmsg(), "page 1"));
	f.pg[1].runs = 1;
	f.pg[1].writes = 2;	/* more writes than runs */
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	f.pg[1].writes = 0;
	f.pg[1].wfirst = 1;	/* written first but never written */
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	f.pg[1].wfirst = 0;
	f.pg[1].runs = 0;

	p.confidence = -0.1;
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	p.confidence = 1.5;
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	p.confidence = NAN;
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	p.confidence = 1;
	t_ok(placer_plan(&f.in, &p, &pl));
	placer_plan_free(&pl);
	pl = keep;

	p.policy = TIER_POLICY_MAX;
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	p.policy = (enum tier_policy)-1;
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	p.policy = TIER_POLICY_TIERED;

	f.in.npages = (1ULL << 52) + 1;
	t_fails(placer_plan(&f.in, &p, &pl), -EINVAL);
	f.in.npages = f.n;

	/* *ret untouched by every failure */
	t_assert(!memcmp(&pl, &keep, sizeof(pl)));
	fx_free(&f);
}

/* ------------------------------------------------------------ random */

static uint64_t rng = 0x243f6a8885a308d3ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static bool rzero(const struct placer_input *in, uint64_t p)
{
	return (in->zero[p / 64] >> (p % 64)) & 1;
}

/* An independent statement of the classes: confidence is k / 4. */
static int ref_cls(const struct placer_input *in, unsigned k, uint64_t p)
{
	uint32_t T = in->ntraces, need;

	if (rzero(in, p))
		return Z;
	if (!T)
		return CO;
	if (!k)
		k = 2;
	need = (k * T + 3) / 4;
	if (need < 1)
		need = 1;
	if (in->pages[p].runs < need)
		return CO;
	return 2 * in->pages[p].writes >= in->pages[p].runs ? RW : RO;
}

static bool ref_hot(const struct placer_input *in, unsigned k, uint64_t p)
{
	uint32_t T = in->ntraces, need;

	if (!T)
		return false;
	need = ((k ? k : 2) * T + 3) / 4;
	return in->pages[p].runs >= (need ? need : 1);
}

struct pinfo {
	int cls, src, m, f;
	uint64_t off;
};

static bool uffd_m(int m)
{
	return m == COPY || m == LAZY;
}

static void check_plan(const struct placer_input *in,
		       const struct placer_params *par, unsigned k,
		       const struct placer_plan *pl)
{
	uint64_t n = in->npages, p, i, j, a, b, mappings = 0, cxl = 0;
	uint64_t gap = par->gap == NO_GAP ? 0 : par->gap ? par->gap : 4;
	uint64_t cgap = 0, zero = 0, touched = 0;
	uint64_t zb = par->zero_block ? par->zero_block : 16;
	uint64_t cnt[TIER_CLASS_MAX] = { 0 }, spilled = 0;
	uint64_t objsize[5];
	struct pinfo *pi = calloc(n + 1, sizeof(*pi));
	uint8_t *used[5];
	int s;
	/* identity layout: CXL at page << 12 in a sparse image-sized object */
	bool id = par->cxl_identity && par->policy == TIER_POLICY_TIERED &&
		  pl->cxl_size;
	/* its bridging applies whether or not a CXL page is left */
	bool idb = par->cxl_identity && par->policy == TIER_POLICY_TIERED;

	t_assert(pi);
	t_eq(pl->cxl_identity, id);
	/* the identity clusters' zero gap: as asked, or by cost */
	for (i = 0; i < n; i++)
		if (rzero(in, i)) {
			zero++;
			touched += in->pages && in->pages[i].runs > 0;
		}
	if (par->gap != NO_GAP)
		cgap = par->cluster_gap == PLACER_GAP_AS_GAP ? gap :
		       par->cluster_gap ? par->cluster_gap :
		       placer_cluster_gap(zero, touched, par->map_ns,
					  par->zfault_ns);
	if (id)
		t_eq(pl->cxl_size, n * PG);
	objsize[CXL] = pl->cxl_size / PG;
	objsize[POOL] = pl->pool_size / PG;
	objsize[LOC] = pl->local_size / PG;
	t_eq(pl->npages, n);

	/* sorted, disjoint, covering, maximal */
	for (i = 0, p = 0; i < pl->n; i++) {
		const struct placer_ext *e = &pl->ext[i];

		t_eq(e->page, p);
		t_assert(e->npages >= 1);
		t_assert(e->cls < TIER_CLASS_MAX);
		t_assert(e->source <= POOL && e->method <= LAZY);
		if (i) {
			const struct placer_ext *d = e - 1;

			t_assert(!(d->cls == e->cls && d->source == e->source &&
				   d->method == e->method &&
				   d->flags == e->flags &&
				   (e->source == NONE ||
				    d->src_off + d->npages * PG == e->src_off)));
		}
		for (j = 0; j < e->npages; j++, p++) {
			pi[p] = (struct pinfo){ e->cls, e->source, e->method,
						e->flags, e->src_off + j * PG };
			if (e->source == NONE)
				pi[p].off = e->src_off;
		}
	}
	t_eq(p, n);

	/* classes, offsets inside objects, each slot used exactly once */
	for (s = 0; s < 5; s++)
		used[s] = NULL;
	for (s = LOC; s <= POOL; s++) {
		used[s] = calloc(objsize[s] + 1, 1);
		t_assert(used[s]);
	}
	for (p = 0; p < n; p++) {
		t_eq(pi[p].cls, ref_cls(in, k, p));
		cnt[pi[p].cls]++;
		switch (pi[p].src) {
		case NONE:
			t_eq(pi[p].off, 0);
			t_assert(pi[p].m == ANON || pi[p].m == LAZY ||
				 pi[p].m == COPY);
			break;
		case IMG:
			t_eq(pi[p].off, p * PG);
			break;
		default:
			t_eq(pi[p].off % PG, 0);
			t_assert(pi[p].off / PG < objsize[pi[p].src]);
			t_eq(used[pi[p].src][pi[p].off / PG], 0);
			used[pi[p].src][pi[p].off / PG] = 1;
		}
		if (pi[p].src == CXL)
			cxl++;
		if (pi[p].src == CXL && id)
			t_eq(pi[p].off, p * PG);
		if (pi[p].m == MAP)
			t_assert(pi[p].src != NONE);
	}
	for (s = LOC; s <= POOL; s++) {
		for (j = 0; j < objsize[s]; j++)
			if (s != CXL || !id)	/* identity: sparse */
				t_eq(used[s][j], 1);
		free(used[s]);
	}
	for (s = 0; s < TIER_CLASS_MAX; s++)
		t_eq(pl->pages[s], cnt[s]);

	/* mappings, page by page; identity: a cluster (non-ANON run) with
	 * CXL MAP pages, every MAP page CXL at page << 12 and no uffd page
	 * reading CXL is one mmap, plus one registration if not all MAP */
	for (p = 0; p < n; p++) {
		if (id && pi[p].m != ANON && (!p || pi[p - 1].m == ANON)) {
			bool cmap = false, ok = true, reg = false;

			for (b = p; b < n && pi[b].m != ANON; b++) {
				if (pi[b].m == MAP) {
					cmap |= pi[b].src == CXL;
					ok &= pi[b].src == CXL &&
					      pi[b].off == b * PG;
				} else {
					reg = true;
					ok &= pi[b].src != CXL;
				}
			}
			if (ok && cmap) {
				mappings += 1 + reg;
				p = b - 1;
				continue;
			}
		}
		if (pi[p].m == MAP) {
			if (!p || pi[p - 1].m != MAP ||
			    pi[p - 1].src != pi[p].src ||
			    pi[p - 1].off + PG != pi[p].off)
				mappings++;
		} else if (uffd_m(pi[p].m)) {
			if (!p || !uffd_m(pi[p - 1].m))
				mappings++;
		}
	}
	t_eq(pl->mappings, mappings);
	t_eq(placer_count_mappings(pl->ext, pl->n, id), mappings);

	/* page-order packing of CXL and pool; the pool holds its COPY
	 * pages first (one read per prefetch batch), then the LAZY ones */
	for (s = CXL; s <= POOL; s++) {
		uint64_t next = 0;
		int pass;

		for (pass = 0; pass < (s == POOL ? 2 : 1); pass++)
			for (p = 0; p < n && !(s == CXL && id); p++) {
				if (pi[p].src != s ||
				    (s == POOL && (pi[p].m == LAZY) != pass))
					continue;
				t_eq(pi[p].off, next * PG);
				next++;
			}
	}

	/* no anonymous zero run of at most gap pages between registered
	 * pages is left (tiered, aquifer, eager) */
	if (par->policy == TIER_POLICY_TIERED ||
	    par->policy == TIER_POLICY_AQUIFER ||
	    par->policy == TIER_POLICY_EAGER) {
		for (a = 1; a < n; a = b + 1) {
			for (b = a; b < n && pi[b].m == ANON; b++)
				;
			if (b == a || b == n)
				continue;
			if (uffd_m(pi[a - 1].m) && uffd_m(pi[b].m))
				t_assert(b - a > gap);
			/* identity: between any two non-ANON pages */
			if (idb && pi[a - 1].m != ANON)
				t_assert(b - a > cgap);
		}
		/* every registered zero run sits inside a registered run;
		 * its touched (hot) pages are installed before resume */
		for (a = 0; a < n; a = b) {
			for (b = a; b < n && pi[b].src == NONE &&
				    uffd_m(pi[b].m); b++)
				t_eq(pi[b].m, ref_hot(in, k, b) ? COPY : LAZY);
			if (b == a) {
				b++;
				continue;
			}
			t_assert(a > 0 && b < n &&
				 b - a <= (idb && cgap > gap ? cgap : gap));
			if (idb)
				t_assert(pi[a - 1].m != ANON && pi[b].m != ANON);
			else
				t_assert(uffd_m(pi[a - 1].m) && uffd_m(pi[b].m));
			for (j = a; j < b; j++)
				t_eq(pi[j].cls, Z);
		}
	}

	for (p = 0; p < n; p++) {
		int c = pi[p].cls, src = pi[p].src, m = pi[p].m, f = pi[p].f;

		switch (par->policy) {
		case TIER_POLICY_TIERED:
			/* only ro pages are populated, bridged ones not */
			if (src == CXL)
				t_assert(m == MAP && f == (c == RO ? (int)POP : 0));
			else
				t_eq(f, 0);
			if (c == RO) {
				t_assert(src == CXL || (src == POOL && m == COPY));
				spilled += src == POOL;
			}
			if (c == RW)
				t_assert(src == POOL && m == COPY);
			if (c == CO)
				t_assert(src == CXL || (src == POOL && m == LAZY));
			if (c == Z)
				t_assert(src == NONE || (src == CXL && !id));
			break;
		case TIER_POLICY_VANILLA:
			t_assert(src == IMG && m == MAP && f == 0);
			break;
		case TIER_POLICY_REAP:
			if (ref_hot(in, k, p))
				t_assert(src == LOC && m == COPY && f == 0);
			else
				t_assert(src == IMG && m == LAZY && f == 0);
			break;
		case TIER_POLICY_FAASNAP: {
			uint64_t bs = p / zb * zb, be = bs + zb < n ? bs + zb : n;
			bool zblock = true;

			for (j = bs; j < be; j++)
				zblock = zblock && rzero(in, j);
			if (zblock)
				t_assert(src == NONE && m == ANON);
			else if (ref_hot(in, k, p))
				t_assert(src == LOC && m == MAP && f == RA);
			else
				t_assert(src == IMG && m == MAP && f == 0);
			break;
		}
		case TIER_POLICY_AQUIFER:
			t_eq(f, 0);
			if (c == RO || c == RW) {
				t_assert((src == CXL || src == POOL) && m == COPY);
				spilled += src == POOL;
			}
			if (c == CO)
				t_assert(src == POOL && m == LAZY);
			if (c == Z)
				t_assert(src == NONE);
			break;
		case TIER_POLICY_EAGER:
			t_eq(f, 0);
			if (c == Z)
				t_assert(src == NONE);
			else
				t_assert(src == IMG && m == COPY);
			break;
		default:
			t_assert(0);
		}
	}
	if (par->policy == TIER_POLICY_VANILLA)
		t_eq(pl->mappings, n ? 1 : 0);

	if (par->policy == TIER_POLICY_TIERED ||
	    par->policy == TIER_POLICY_AQUIFER) {
		t_eq(pl->spilled_pages, spilled);
		if (par->cxl_pages)
			t_assert(cxl <= par->cxl_pages);
		else
			t_eq(spilled, 0);
	} else {
		t_eq(pl->spilled_pages, 0);
		t_eq(pl->cxl_size, 0);
	}

	if (par->policy == TIER_POLICY_TIERED) {
		/* bridged CXL pages: runs of at most gap with ro on both sides */
		for (a = 0; a < n; a = b) {
			for (b = a; b < n && pi[b].src == CXL && pi[b].cls != RO; b++)
				;
			if (b == a) {
				b++;
				continue;
			}
			t_assert(a > 0 && b < n && b - a <= gap);
			if (!id) {	/* identity: zeros there are holes */
				t_assert(pi[a - 1].cls == RO &&
					 pi[a - 1].src == CXL);
				t_assert(pi[b].cls == RO && pi[b].src == CXL);
			}
		}
		/* without spill, every bridgeable gap is bridged */
		if (!spilled) {
			for (a = 1; a < n; a = b + 1) {
				for (b = a; b < n && (pi[b].cls == Z ||
						      pi[b].cls == CO); b++)
					;
				if (b == a || b == n || b - a > gap)
					continue;
				if (pi[a - 1].cls == RO && pi[b].cls == RO)
					for (j = a; j < b; j++)
						t_assert(pi[j].src == CXL ||
							 (id && pi[j].cls == Z &&
							  uffd_m(pi[j].m)));
			}
		}
	}

	/* the local file follows first-touch order */
	if (par->policy == TIER_POLICY_REAP ||
	    par->policy == TIER_POLICY_FAASNAP) {
		uint64_t *at = calloc(objsize[LOC] + 1, sizeof(*at));

		t_assert(at);
		for (p = 0; p < n; p++)
			if (pi[p].src == LOC)
				at[pi[p].off / PG] = p;
		for (j = 1; j < objsize[LOC]; j++) {
			const struct placer_page *x = &in->pages[at[j - 1]];
			const struct placer_page *y = &in->pages[at[j]];

			t_assert(x->order < y->order ||
				 (x->order == y->order && at[j - 1] < at[j]));
		}
		free(at);
	} else {
		t_eq(pl->local_size, 0);
	}
	free(pi);
}

static void random_input(struct fx *f, uint64_t n)
{
	uint32_t T = rnd() % 5;
	unsigned zpct = rnd() % 100, tpct = rnd() % 100, wpct = rnd() % 100;
	uint64_t p;

	f->n = n;
	f->zero = calloc(n / 64 + 1, sizeof(*f->zero));
	f->pg = calloc(n + 1, sizeof(*f->pg));
	t_assert(f->zero && f->pg);
	/* runs of similar pages, so gaps and blocks really occur */
	for (p = 0; p < n; p++) {
		struct placer_page *g = &f->pg[p];
		bool same = p && rnd() % 4;

		if (same) {
			if (rzero(&(struct placer_input){ .zero = f->zero }, p - 1))
				f->zero[p / 64] |= 1ULL << (p % 64);
			*g = f->pg[p - 1];
		} else {
			if (rnd() % 100 < zpct)
				f->zero[p / 64] |= 1ULL << (p % 64);
			if (T && rnd() % 100 < tpct) {
				g->runs = 1 + rnd() % T;
				if (rnd() % 100 < wpct)
					g->writes = rnd() % (g->runs + 1);
				g->wfirst = g->writes ? rnd() % (g->writes + 1) : 0;
			}
		}
		g->order = g->runs ? rnd() % (2 * n + 1) : (rnd() & 1) * UINT32_MAX;
	}
	f->in = (struct placer_input){
		.npages = n, .zero = f->zero, .pages = f->pg, .ntraces = T,
	};
}

static void test_random(void)
{
	static const uint32_t gaps[] = { 0, NO_GAP, 1, 2, 3, 5, 8 };
	static const uint32_t cgaps[] = { 0, PLACER_GAP_AS_GAP, 1, 3, 40 };
	int pol, i;

	for (pol = 0; pol < TIER_POLICY_MAX; pol++) {
		for (i = 0; i < 3000; i++) {
			struct placer_params p = { .policy = pol };
			struct placer_plan pl, pl2;
			unsigned k = rnd() % 5;
			struct fx f;

			random_input(&f, rnd() % 160);
			p.confidence = k / 4.0;
			p.gap = gaps[rnd() % (sizeof(gaps) / sizeof(gaps[0]))];
			p.zero_block = rnd() % 9;
			p.cxl_pages = rnd() % 3 ? 0 : rnd() % (f.n + 2);
			p.cxl_identity = rnd() % 2;	/* tiered only */
			p.cluster_gap = cgaps[rnd() % (sizeof(cgaps) / sizeof(cgaps[0]))];
			p.map_ns = rnd() % 3 ? 0 : rnd() % 200000;
			p.zfault_ns = rnd() % 3 ? 0 : rnd() % 100000;
			t_ok(placer_plan(&f.in, &p, &pl));
			check_plan(&f.in, &p, k, &pl);
			/* deterministic */
			t_ok(placer_plan(&f.in, &p, &pl2));
			t_eq(pl2.n, pl.n);
			for (size_t e = 0; e < pl.n; e++) {
				const struct placer_ext *x = &pl.ext[e];
				const struct placer_ext *y = &pl2.ext[e];

				t_assert(x->page == y->page &&
					 x->npages == y->npages &&
					 x->cls == y->cls &&
					 x->source == y->source &&
					 x->method == y->method &&
					 x->flags == y->flags &&
					 x->src_off == y->src_off);
			}
			placer_plan_free(&pl);
			placer_plan_free(&pl2);
			fx_free(&f);
		}
	}
}

/* A 4 GiB guest's worth of pages through every policy (no timing; a
 * quadratic step would show as a timeout). */
static void test_large(void)
{
	struct placer_params p = { .cxl_pages = 100000 };
	struct placer_plan pl;
	struct fx f;
	int pol;

	random_input(&f, 1ULL << 20);
	for (pol = 0; pol < TIER_POLICY_MAX; pol++) {
		p.policy = pol;
		t_ok(placer_plan(&f.in, &p, &pl));
		t_eq(pl.npages, 1ULL << 20);
		check_plan(&f.in, &p, 0, &pl);
		placer_plan_free(&pl);
	}
	fx_free(&f);
}

int main(void)
{
	test_names();
	test_classify();
	test_merge();
	test_merge_classify();
	test_tiered_basic();
	test_tiered_bridge();
	test_tiered_zero_bridge();
	test_tiered_spill();
	test_tiered_spill_bridged();
	test_tiered_identity();
	test_vanilla();
	test_reap();
	test_faasnap();
	test_aquifer();
	test_eager();
	test_errors();
	test_random();
	test_large();
	return T_PASS;
}
