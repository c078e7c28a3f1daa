/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_PLACER_H
#define TIER_PLACER_H

/*
 * Pure placement logic: no syscalls, no I/O, no globals. Input: per-page
 * facts (zero or not, merged trace counts); output: a plan, a list of
 * extents covering every page, each with a class, a source (where its
 * bytes live at rest) and a method (how a restore installs it). Every
 * policy, ours and the baselines, is expressed in these terms so a single
 * restorer executes them all. store/place.c makes plans with it; plans
 * and the restorer use its extent types.
 */

#include <stddef.h>
#include <stdint.h>

#include "tier.h"

/* Where an extent's bytes live at rest. */
enum placer_source {
	PLACER_SRC_NONE,	/* nowhere: zero pages */
	PLACER_SRC_IMAGE,	/* the store's copy of the image, at page << 12 */
	PLACER_SRC_LOCAL,	/* the plan's compact local file, at src_off */
	PLACER_SRC_CXL,		/* the plan's CXL object, at src_off */
	PLACER_SRC_POOL,	/* the plan's pool segment, at src_off */
};

/* How a restore installs it. */
enum placer_method {
	PLACER_M_ANON,		/* left to the kernel: anonymous zero pages */
	PLACER_M_MAP,		/* mmap MAP_PRIVATE|MAP_FIXED from the source */
	PLACER_M_COPY,		/* fetched and UFFDIO_COPY'd before resume */
	PLACER_M_LAZY,		/* userfaultfd: fetched on first touch; with
				 * SRC_NONE: UFFDIO_ZEROPAGE on first touch (a
				 * zero gap bridged inside a registered run) */
};

#define PLACER_F_POPULATE	(1U << 0)	/* MAP: MADV_POPULATE_READ it */
#define PLACER_F_READAHEAD	(1U << 1)	/* MAP: a loader thread reads the
						 * source in order (faasnap) */

struct placer_ext {
	uint64_t page;
	uint64_t npages;
	uint8_t cls;		/* enum tier_class */
	uint8_t source;		/* enum placer_source */
	uint8_t method;		/* enum placer_method */
	uint8_t flags;		/* PLACER_F_* */
	uint64_t src_off;	/* bytes; for SRC_IMAGE always page << 12 */
};

/* Merged facts of one page over all traces. */
struct placer_page {
	uint32_t runs;		/* traces that touched it */
	uint32_t writes;	/* traces that wrote it (w or rw) */
	uint32_t wfirst;	/* traces where the first access was a write */
	uint32_t order;		/* smallest first-touch rank over the traces
				 * (0 first); only meaningful when runs > 0,
				 * so a calloc()ed array is fine */
};

struct placer_input {
	uint64_t npages;
	const uint64_t *zero;		/* bitmap: bit p set = page p is zero */
	const struct placer_page *pages;	/* npages entries */
	uint32_t ntraces;
};

struct placer_params {
	enum tier_policy policy;
	double confidence;	/* hot if runs >= max(1, ceil(confidence *
				 * ntraces)); 0: 0.5; must be in [0, 1] */
	uint32_t gap;		/* bridge up to this many pages; 0: 4;
				 * TIER_PLACE_NO_GAP: never */
	uint64_t cxl_pages;	/* CXL capacity in pages; 0: unlimited */
	uint32_t zero_block;	/* faasnap: zero-region scan block in pages; 0: 16 */
	/*
	 * tiered: lay the CXL object out at guest offsets (src_off = page
	 * << 12, a sparse object of npages pages holding only the mapped
	 * pages) for a shmem-backed tier, which a restore maps once per
	 * cluster with the other pages as userfaultfd holes; zero gaps of
	 * up to @gap pages between any two non-ANON pages are bridged and
	 * mappings are counted per cluster (doc/placement.md). Other
	 * policies ignore it.
	 */
	int cxl_identity;
	/*
	 * Identity layout only: the zero runs joined into one cluster (one
	 * mmap instead of two). 0: chosen by cost, placer_cluster_gap();
	 * PLACER_GAP_AS_GAP: @gap, as before there was a choice.
	 */
	uint32_t cluster_gap;
	uint32_t map_ns;	/* one more mapping costs; 0: 3000 */
	uint32_t zfault_ns;	/* a zero page first touched through
				 * userfaultfd costs more than from the
				 * kernel; 0: 30000 */
};

#define PLACER_GAP_AS_GAP	(~0U)

/*
 * The longest zero run worth bridging into a cluster: bridging g zero
 * pages saves a mapping (@map_ns) and costs, for each of them that a
 * later run touches, a userfaultfd fault instead of the kernel's zero
 * page (@zfault_ns more). The chance a zero page is touched is estimated
 * from the traces as (zero pages they touched + 1) / (zero pages + 2):
 * g = map_ns / (chance * zfault_ns), at least 1. Pure.
 */
uint64_t placer_cluster_gap(uint64_t zero_pages, uint64_t zero_touched,
			    uint32_t map_ns, uint32_t zfault_ns);

struct placer_plan {
	struct placer_ext *ext;
	size_t n;
	uint64_t npages;
	/* Sizes of the objects the plan's extents reference, in bytes. */
	uint64_t cxl_size, pool_size, local_size;
	/* Per class page counts, and the mappings a restore will make:
	 * one per run of MAP extents of one source with contiguous
	 * src_off (one mmap) + one per run of adjacent COPY/LAZY extents
	 * (one uffd registration). doc/placement.md has every rule. */
	uint64_t pages[TIER_CLASS_MAX];
	uint64_t mappings;
	uint64_t spilled_pages;	/* ro pages moved to the pool: CXL full */
	int cxl_identity;	/* the CXL object has the identity layout */
};

/*
 * A cluster (a maximal run of non-ANON extents, ext[i, j)) that a restore
 * maps with one mmap of the CXL object when that object is shmem: it
 * holds a CXL MAP extent, every MAP extent in it is CXL at src_off =
 * page << 12, and no COPY/LAZY extent in it reads the CXL object (those
 * pages must be holes there). @first: the image page of ext[0].page
 * (the restorer's extents are relative to its range). Pure.
 */
int placer_cluster_overlay(const struct placer_ext *ext, size_t i, size_t j,
			   uint64_t first);
/* Mappings of ext[0, n) as the restorer makes them, with or without the
 * overlay (placer_plan's count is this with overlay = cxl_identity). */
uint64_t placer_count_mappings(const struct placer_ext *ext, size_t n,
			       int overlay);

/*
 * Per-page class from the merged facts (before coalescing). Pure.
 * Zero bit set: ZERO; else no traces or runs < max(1, ceil(confidence *
 * ntraces)): COLD; else 2 * writes >= runs: RW; else RO. A NULL @p means
 * the default confidence; TIER_CLASS_MAX for a NULL @in or @page past
 * the end.
 */
enum tier_class placer_classify(const struct placer_input *in,
				const struct placer_params *p, uint64_t page);

/*
 * Builds the plan of p->policy. -EINVAL on inconsistent input, -ENOMEM.
 * The result's extents are sorted, disjoint and cover [0, npages).
 * Objects (CXL, pool, local) are packed in the order the extents that
 * reference them appear, except where a policy says otherwise (faasnap's
 * loading set and reap's working set follow first-touch order).
 */
int placer_plan(const struct placer_input *in, const struct placer_params *p,
		struct placer_plan *ret);
void placer_plan_free(struct placer_plan *plan);

/* Adds one trace to per-page facts (pages has npages entries, zeroed
 * before the first trace). A page listed twice in one trace counts once
 * (writes if any entry writes, wfirst if its first entry is W). Entries
 * past npages are -ERANGE, bad kinds -EINVAL; then nothing is changed. */
int placer_merge_trace(struct placer_page *pages, uint64_t npages,
		       const struct tier_trace_ent *ent, size_t n);

#endif
