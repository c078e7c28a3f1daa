/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The plan executor, in-process only (restore.c calls it; a front end
 * serving another process's memory has no mapping step): clips the plan
 * to the restored range, finds overlay clusters, maps the MAP extents
 * and registers the COPY and LAZY ones with userfaultfd.
 *
 *   1. MAP extents: one mmap MAP_PRIVATE|MAP_FIXED per run of extents with
 *      one source and contiguous source offsets (VMAs cost ~1 us each);
 *      with a shmem CXL object in the identity layout, one mmap of it per
 *      cluster instead (map_clusters: its other pages are holes, served
 *      through the cluster's one registration, made right after its
 *      mmap);
 *   2. COPY and LAZY extents outside clusters: one UFFDIO_REGISTER
 *      (MISSING) per run of adjacent ones; ANON extents stay unregistered
 *      (kernel zero pages).
 *
 * The same walk, dry, makes the lists the populator and the readahead
 * loader work from, and counts mappings: it depends on nothing being
 * mapped, so the populator runs it while the start maps.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "tier.h"
#include "cxl/cxl.h"
#include "store/restore-int.h"
#include "util/err.h"

/*
 * The plan's extents over image pages [@first, @first + @npages), rebased
 * to that range and checked; their pages per class added to @pages. @own:
 * the plan is ours to take; a whole-image range (the usual one) then
 * keeps its extent array instead of a copy (~0.2 ms of fresh memory for
 * 13,600 extents, on the start's own path). Pure: front ends without a
 * mapping step clip their areas with it too.
 */
int map_clip_extents(struct plan *plan, const struct tier_snap *snap,
		     uint64_t first, uint64_t npages, bool own,
		     struct placer_ext **ret, size_t *ret_n, uint64_t *pages)
{
	uint64_t lo = first, hi = first + npages, next = lo;
	struct placer_ext *src = plan->ext, *ext;
	size_t a = 0, b = plan->n, total = plan->n, i, n = 0;

	if (plan->hdr.npages && plan->hdr.npages != snap->npages)
		return tier_err(-EINVAL, "restore: plan of %" PRIu64 " pages for "
				"snapshot %s of %" PRIu64, plan->hdr.npages,
				snap->name, snap->npages);
	while (a < b) {		/* first extent ending after lo */
		size_t mid = a + (b - a) / 2;

		if (src[mid].page + src[mid].npages <= lo)
			a = mid + 1;
		else
			b = mid;
	}
	if (own && !lo && hi == snap->npages && total) {
		/* rebasing is the identity: each extent stays in its slot */
		ext = src;
		plan->ext = NULL;
		plan->n = 0;
	} else {
		ext = calloc(total - a + 1, sizeof(*ext));
		if (!ext)
			return tier_err(-ENOMEM, "restore: out of memory");
	}
	*ret = ext;	/* the caller's to free, failed or not */
	*ret_n = 0;
	for (i = a; i < total && src[i].page < hi; i++) {
		struct placer_ext e = src[i];
		uint64_t s = e.page > lo ? e.page : lo;
		uint64_t end = e.page + e.npages < hi ? e.page + e.npages : hi;

		if (e.page != next && !(i == a && e.page < lo))
			break;
		if (e.source > PLACER_SRC_POOL || e.method > PLACER_M_LAZY ||
		    e.cls >= TIER_CLASS_MAX || !e.npages)
			return tier_err(-EINVAL, "restore: plan extent at page %"
					PRIu64 ": bad source, method, class or size",
					e.page);
		if ((e.method == PLACER_M_MAP && (e.source == PLACER_SRC_NONE ||
						  e.source == PLACER_SRC_POOL)) ||
		    (e.method == PLACER_M_ANON && e.source != PLACER_SRC_NONE))
			return tier_err(-EINVAL, "restore: plan extent at page %"
					PRIu64 ": %s cannot be installed that way",
					e.page, src_name(e.source));
		e.src_off += (s - e.page) * PG;
		e.page = s - lo;
		e.npages = end - s;
		ext[n++] = e;
		*ret_n = n;
		pages[e.cls] += e.npages;
		next = end;
	}
	if (next != hi)
		return tier_err(-EINVAL, "restore: plan does not cover page %"
				PRIu64, next);
	return 0;
}

int map_clip(struct tier_restore *rs, struct plan *plan, bool own)
{
	struct rs_map *m = &rs->map;
	size_t i;
	int rc;

	for (i = 0; i < plan->n; i++)
		if (plan->ext[i].source == PLACER_SRC_CXL)
			m->plan_cxl_bytes += plan->ext[i].npages * PG;
	m->plan_gen = plan->hdr.generation;
	m->plan_ns = plan->hdr.created_ns;
	rc = map_clip_extents(plan, rs->snap, rs->area.first, rs->area.npages,
			      own, &m->ext, &m->n, rs->fate.st.pages);
	rs->area.ext = m->ext;
	rs->area.n = m->n;
	return rc;
}

/*
 * Overlay clusters: with a shmem CXL object in the identity layout, each
 * maximal run of non-ANON extents that placer_cluster_overlay accepts is
 * one MAP_PRIVATE mapping of the object: its MAP pages are present there
 * (shared page cache, zero-copy), every other page is a hole, which the
 * one userfaultfd registration of the cluster turns into MISSING faults
 * and UFFDIO_COPY/ZEROPAGE into private anonymous pages; the object
 * stays as it is. TIER_RESTORE_NO_OVERLAY turns it off.
 *
 * Populating a hole there would wait for a handler that does not run
 * yet, so the populator checks each window's page (restore-populate.c)
 * unless the object is known to hold every page the plan maps
 * (ovl_checked): its name carries the plan's generation, so place wrote
 * it for this plan, exactly its pages (it holds as many bytes as the
 * plan's CXL extents), and nothing changed it since the plan was written
 * (a write, a hole punched or a truncate would have moved its ctime past
 * the plan's time). A v1 plan names an object any place may have
 * replaced: always checked.
 */
int map_clusters(struct tier_restore *rs)
{
	struct rs_map *m = &rs->map;
	struct cxl_obj *obj = rs->src.cxl_obj;
	uint64_t size, end, first = rs->area.first;
	size_t i = 0, j;

	if (!obj || (rs->flags & TIER_RESTORE_NO_OVERLAY) ||
	    !cxl_obj_overlay_ok(obj))
		return 0;
	size = cxl_obj_size(obj);
	m->ovl_checked = m->plan_gen && m->plan_cxl_bytes &&
			 cxl_obj_held(obj) == m->plan_cxl_bytes &&
			 cxl_obj_changed_ns(obj) &&
			 cxl_obj_changed_ns(obj) <= m->plan_ns;
	m->ovl = calloc(m->n ? m->n : 1, 1);
	if (!m->ovl)
		return tier_err(-ENOMEM, "restore: out of memory");
	while (i < m->n) {
		if (m->ext[i].method == PLACER_M_ANON) {
			i++;
			continue;
		}
		for (j = i + 1; j < m->n && m->ext[j].method != PLACER_M_ANON;
		     j++)
			;
		end = (first + m->ext[j - 1].page + m->ext[j - 1].npages) * PG;
		if (end <= size && placer_cluster_overlay(m->ext, i, j, first)) {
			memset(m->ovl + i, 1, j - i);
			m->overlay = true;
		}
		i = j;
	}
	rs->area.ovl = m->ovl;
	return 0;
}

static bool uffd_method(const struct placer_ext *e)
{
	return e->method == PLACER_M_COPY || e->method == PLACER_M_LAZY;
}

bool map_needs_uffd(const struct tier_restore *rs)
{
	size_t i;

	for (i = 0; i < rs->map.n; i++)
		if (uffd_method(&rs->map.ext[i]))
			return true;
	return false;
}

/* The populate and readahead lists of a run [i, j) of MAP extents. */
static int run_lists(struct tier_restore *rs, size_t i, size_t j,
		     uintptr_t addr, uint64_t len, int fd)
{
	const struct placer_ext *ext = rs->map.ext;
	unsigned src = ext[i].source;
	bool all_pop = true, any_pop = false;
	size_t k;
	int rc;

	for (k = i; k < j; k++) {
		all_pop &= !!(ext[k].flags & PLACER_F_POPULATE);
		any_pop |= !!(ext[k].flags & PLACER_F_POPULATE);
	}
	if (src == PLACER_SRC_CXL)
		rs->fate.st.cxl_mapped_bytes += len;
	rs->fate.st.mappings++;
	if (all_pop) {
		rc = rs_add_range(&rs->pop.r, &rs->pop.n, &rs->pop.cap, -1,
				  addr, len);
		if (rc)
			return rc;
		any_pop = false;
	}
	for (k = i; k < j; k++) {
		const struct placer_ext *e = &ext[k];

		if (any_pop && (e->flags & PLACER_F_POPULATE)) {
			rc = rs_add_range(&rs->pop.r, &rs->pop.n, &rs->pop.cap,
					  -1, (uintptr_t)rs->base + e->page * PG,
					  e->npages * PG);
			if (rc)
				return rc;
		}
		if ((e->flags & PLACER_F_READAHEAD) && src != PLACER_SRC_CXL) {
			rc = rs_add_range(&rs->ld.r, &rs->ld.n, &rs->ld.cap, fd,
					  e->src_off, e->npages * PG);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* Step 1: one mmap per run [i, j) of MAP extents (@dry: its lists). */
static int map_run(struct tier_restore *rs, size_t i, size_t j, bool dry)
{
	const struct rs_src *s = &rs->src;
	const struct placer_ext *e = &rs->map.ext[i];
	uint8_t *addr = rs->base + e->page * PG;
	uint64_t off = e->src_off, len = 0;
	unsigned src = e->source;
	const char *name = src == PLACER_SRC_IMAGE ? s->snap->image :
						     s->local_path;
	int fd = src == PLACER_SRC_IMAGE ? s->image_fd : s->local_fd;
	uint64_t size = src == PLACER_SRC_IMAGE ? s->image_size : s->local_size;
	size_t k;

	for (k = i; k < j; k++)
		len += rs->map.ext[k].npages * PG;
	/* past the end would be SIGBUS in the guest: refuse now */
	if (src != PLACER_SRC_CXL && (off > size || len > size - off))
		return tier_err(-ERANGE, "restore: %s: bytes [%" PRIu64
				", +%" PRIu64 ") past its end (%" PRIu64 ")",
				name, off, len, size);
	if (dry)
		return run_lists(rs, i, j, (uintptr_t)addr, len, fd);
	if (src == PLACER_SRC_CXL)
		return cxl_obj_map(s->cxl_obj, off, addr, len, 0);
	if (mmap(addr, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, off) == MAP_FAILED)
		return tier_err(-errno, "restore: mmap %s at %" PRIu64 ": %m",
				name, off);
	return 0;
}

/*
 * One overlay cluster ext[i, j): one mmap and, if it has COPY or LAZY
 * pages, one registration; its MAP runs are populated by the populator
 * (@dry: their windows listed).
 */
static int map_cluster(struct tier_restore *rs, size_t i, size_t j, bool dry)
{
	const struct placer_ext *ext = rs->map.ext;
	const struct placer_ext *a = &ext[i], *z = &ext[j - 1];
	uint8_t *addr = rs->base + a->page * PG;
	size_t len = (z->page + z->npages - a->page) * PG;
	bool any = false;
	size_t k, l;
	int rc;

	for (k = i; k < j; k++)
		any |= uffd_method(&ext[k]);
	if (!dry) {
		rc = cxl_obj_map(rs->src.cxl_obj, (rs->area.first + a->page) * PG,
				 addr, len, 0);
		/* registered at once (its holes must fault): the populator
		 * may touch its pages from now on */
		if (!rc && any)
			rc = uffd_register(rs->srv.uffd, addr, len,
					   UFFD_REG_MISSING);
		return rc;
	}
	rs->fate.st.mappings += 1 + any;
	for (k = i; k < j; k = l) {
		const struct placer_ext *e = &ext[k];

		l = k + 1;
		if (e->method != PLACER_M_MAP)
			continue;
		rs->fate.st.cxl_mapped_bytes += e->npages * PG;
		if (!(e->flags & PLACER_F_POPULATE))
			continue;
		for (; l < j && ext[l].method == PLACER_M_MAP &&
		       (ext[l].flags & PLACER_F_POPULATE); l++)
			rs->fate.st.cxl_mapped_bytes += ext[l].npages * PG;
		rc = pop_windows(&rs->pop, (uintptr_t)rs->base + e->page * PG,
				 (uintptr_t)rs->base + (ext[l - 1].page +
				  ext[l - 1].npages) * PG);
		if (rc)
			return rc;
	}
	return 0;
}

int map_plan(struct tier_restore *rs, bool dry)
{
	const struct rs_map *m = &rs->map;
	size_t i = 0, j;
	int rc;

	while (i < m->n) {
		const struct placer_ext *e = &m->ext[i];

		if (m->ovl && m->ovl[i]) {
			for (j = i + 1; j < m->n && m->ovl[j] &&
				    m->ext[j].method != PLACER_M_ANON; j++)
				;
			rc = map_cluster(rs, i, j, dry);
			if (rc)
				return rc;
			if (!dry)
				atomic_store_explicit(&rs->pop.ready,
					(uintptr_t)rs->base + (m->ext[j - 1].page +
					m->ext[j - 1].npages) * PG,
					memory_order_release);
			i = j;
			continue;
		}
		if (e->method != PLACER_M_MAP) {
			i++;
			continue;
		}
		for (j = i + 1; j < m->n; j++) {
			const struct placer_ext *p = &m->ext[j - 1], *f = &m->ext[j];

			if (f->method != PLACER_M_MAP || f->source != e->source ||
			    (m->ovl && m->ovl[j]) ||
			    f->page != p->page + p->npages ||
			    f->src_off != p->src_off + p->npages * PG)
				break;
		}
		rc = map_run(rs, i, j, dry);
		if (rc)
			return rc;
		i = j;
	}
	if (dry)
		loader_sort(&rs->ld);
	return 0;
}

/* Step 2: one registration per run of adjacent COPY/LAZY extents
 * outside overlay clusters, counted in *@n (the populator may be counting
 * the mappings of its lists in st meanwhile). */
int map_register(struct tier_restore *rs, uint64_t *n)
{
	const struct rs_map *m = &rs->map;
	size_t i = 0, j;
	int rc;

	while (i < m->n) {
		/* overlay clusters are registered as they are mapped */
		if ((m->ovl && m->ovl[i]) || !uffd_method(&m->ext[i])) {
			i++;
			continue;
		}
		for (j = i + 1; j < m->n && uffd_method(&m->ext[j]) &&
			    !(m->ovl && m->ovl[j]); j++)
			;
		rc = uffd_register(rs->srv.uffd, rs->base + m->ext[i].page * PG,
				   (m->ext[j - 1].page + m->ext[j - 1].npages -
				    m->ext[i].page) * PG, UFFD_REG_MISSING);
		if (rc)
			return rc;
		(*n)++;
		i = j;
	}
	return 0;
}

/*
 * Why touching @addr raised SIGBUS, for the VMM's handler: a page the
 * plan maps from a file (the CXL object, the image, a local file) whose
 * file is now shorter than the mapping, cut behind the store's back (the
 * store never truncates a published file: a new generation is a new
 * file, an old one is unlinked, which a mapping survives). Only a search
 * of the extents, an fstat and snprintf: no allocation, no lock.
 */
int map_explain(const struct tier_restore *rs, const void *addr, char *buf,
		size_t len)
{
	const struct rs_map *m = &rs->map;
	const struct rs_src *s = &rs->src;
	uintptr_t a = (uintptr_t)addr, base = (uintptr_t)rs->base;
	uint64_t p, off, now = 0, was;
	const struct placer_ext *e;
	size_t lo = 0, hi = m->n, mid;
	const char *what;
	struct stat st;
	unsigned src;

	if (a < base || a - base >= rs->len || !m->ext)
		return -ENOENT;
	p = (a - base) / PG;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (m->ext[mid].page + m->ext[mid].npages <= p)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == m->n || m->ext[lo].page > p)
		return -ENOENT;
	e = &m->ext[lo];
	if (m->ovl && m->ovl[lo]) {
		src = PLACER_SRC_CXL;
		off = (rs->area.first + p) * PG;
	} else if (e->method == PLACER_M_MAP) {
		src = e->source;
		off = e->src_off + (p - e->page) * PG;
	} else {
		return -ENOENT;		/* anonymous memory: not a file's */
	}
	if (src == PLACER_SRC_CXL) {
		if (!s->cxl_obj || cxl_obj_now_size(s->cxl_obj, &now))
			return -ENOENT;
		what = "CXL object";
		was = cxl_obj_size(s->cxl_obj);
	} else {
		int fd = src == PLACER_SRC_IMAGE ? s->image_fd : s->local_fd;

		if (fd < 0 || fstat(fd, &st) < 0)
			return -ENOENT;
		now = st.st_size;
		what = src == PLACER_SRC_IMAGE ? "image" : "local file";
		was = src == PLACER_SRC_IMAGE ? s->image_size : s->local_size;
	}
	if (off + PG <= now)
		return -ENOENT;
	snprintf(buf, len, "snapshot %s: page %" PRIu64 ": mapped from the %s %s "
		 "at %" PRIu64 ", which was cut to %" PRIu64 " bytes (%" PRIu64
		 " when the restore opened it) under the running restore (SIGBUS)",
		 rs->snap->name, rs->area.first + p, what,
		 src == PLACER_SRC_CXL ? s->obj_name :
		 src == PLACER_SRC_IMAGE ? s->snap->image : s->local_path,
		 off, now, was);
	return 0;
}
