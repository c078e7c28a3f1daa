/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A restore into another process's memory (store/remote.h): the regions
 * a VMM handed over with its userfaultfd become areas of one fault
 * server, each with the plan clipped to it; the plan's methods become
 * what copy-only installing can do (a stock Firecracker's memory is
 * private anonymous, so nothing is mapped into it): hot MAP extents are
 * copied before the guest runs like COPY ones (from the CXL tier's
 * object), other MAP extents and zero extents are served on fault,
 * unless the VMM maps the hot read-only runs itself (remote_zero_copy).
 * The sources, prefetcher and fault server are the in-process restore's
 * own parts; the file sources are mapped read-only so the prefetch
 * installs from the page cache, by two threads. Called by vmm/fc-serve.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "cxl/cxl.h"
#include "store/format.h"
#include "store/remote.h"
#include "store/restore-int.h"
#include "util/err.h"

struct remote {
	struct tier_snap *snap;
	unsigned flags;
	struct rs_fate fate;
	struct rs_src src;
	struct rs_serve srv;
	struct rs_area *area;
	size_t narea;
	struct placer_ext **ext;	/* per area */
	struct rs_rec *rec;
	bool wp;
};

#define HUGE_SIZE	(HUGE_PAGES * PG)

static int check_region(const struct tier_snap *snap, size_t i,
			const struct remote_region *r)
{
	if (r->page_size != PG && r->page_size != HUGE_SIZE)
		return tier_err(-EINVAL, "region %zu: page size %" PRIu64
				" is neither 4096 nor 2 MiB", i, r->page_size);
	if (!r->size || r->base % r->page_size || r->size % r->page_size ||
	    r->offset % r->page_size)
		return tier_err(-EINVAL, "region %zu: address %#" PRIx64
				", size %" PRIu64 " and offset %" PRIu64
				" must be multiples of its page size %" PRIu64,
				i, r->base, r->size, r->offset, r->page_size);
	if (r->offset > snap->size || r->size > snap->size - r->offset)
		return tier_err(-EINVAL, "region %zu: bytes [%" PRIu64 ", +%"
				PRIu64 ") are past the end of snapshot %s (%"
				PRIu64 " bytes)", i, r->offset, r->size,
				snap->name, snap->size);
	return 0;
}

/* A COPY extent the plan would map from the CXL object (zero-copy). */
#define F_CXL_MAP	(1U << 7)

/* What copy-only installing makes of a plan's methods. */
static void copy_only(struct placer_ext *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned f = 0;

		if (e[i].method == PLACER_M_MAP) {
			bool hot = e[i].flags & (PLACER_F_POPULATE |
						 PLACER_F_READAHEAD);

			e[i].method = hot ? PLACER_M_COPY : PLACER_M_LAZY;
			if (hot && e[i].source == PLACER_SRC_CXL)
				f = F_CXL_MAP;
		} else if (e[i].method == PLACER_M_ANON) {
			e[i].method = PLACER_M_LAZY;	/* UFFDIO_ZEROPAGE */
		}
		e[i].flags = f;
	}
}

static int open_plan(struct remote *rm, const struct remote_attr *attr)
{
	struct tier_restore_attr ta = {
		.policy = attr->policy, .cxl = attr->cxl, .pool = attr->pool,
		.flags = attr->flags & REMOTE_POOL_FALLBACK ?
			 TIER_RESTORE_POOL_FALLBACK : 0,
		.backing = attr->backing,
	};
	struct plan plan;
	size_t i;
	int rc;

	rc = plan_load(rm->snap, attr->policy, &plan);
	if (rc)
		return rc;
	rc = src_open(&rm->src, attr->policy, plan.ext, plan.n, &plan, &ta);
	if (!rc)
		src_map_views(&rm->src);
	for (i = 0; !rc && i < rm->narea; i++) {
		struct rs_area *a = &rm->area[i];

		rc = map_clip_extents(&plan, rm->snap, a->first, a->npages,
				      false, &rm->ext[i], &a->n,
				      rm->fate.st.pages);
		if (rc)
			rc = tier_err_ctx(rc, "region %zu", i);
		copy_only(rm->ext[i], a->n);
		a->ext = rm->ext[i];
	}
	plan_free(&plan);
	return rc;
}

/*
 * Record: every page lazy from the image. A VMM registers MISSING only,
 * so a read then a write of a page is one read fault; adding
 * write-protect to its registration (allowed on anonymous memory by the
 * same uffd) makes the write a WP fault of its own, as in-process.
 */
static int open_record(struct remote *rm)
{
	uint64_t p;
	size_t i;
	int rc;

	rm->rec = calloc(1, sizeof(*rm->rec));
	if (!rm->rec)
		return tier_err(-ENOMEM, "record: out of memory");
	rm->wp = true;
	for (i = 0; i < rm->narea && rm->wp; i++) {
		struct rs_area *a = &rm->area[i];

		if (a->huge)
			return tier_err(-EOPNOTSUPP, "region %zu: recording 2 MiB "
					"pages is not supported", i);
		rm->wp = uffd_register(rm->srv.uffd, (void *)a->base, a->len,
				       UFFD_REG_MISSING | UFFD_REG_WP) == 0;
	}
	rc = rec_init(rm->rec, rm->snap->npages, rs_now_ns(), rm->wp);
	if (rc)
		return rc;
	rm->srv.rec = rm->rec;
	rc = snap_image_fd(rm->snap);
	if (rc < 0)
		return rc;
	rm->src.image_fd = rc;
	for (i = 0; i < rm->narea; i++)
		for (p = rm->area[i].first;
		     p < rm->area[i].first + rm->area[i].npages; p++)
			rm->fate.st.pages[snap_page_zero(rm->snap, p) ?
					  TIER_CLASS_ZERO : TIER_CLASS_COLD]++;
	return 0;
}

int remote_open(struct tier_snap *snap, int uffd,
		const struct remote_region *r, size_t n,
		const struct remote_attr *attr, struct remote **ret)
{
	static const struct remote_attr zero_attr;
	struct remote *rm;
	size_t i;
	int rc;

	if (!attr)
		attr = &zero_attr;
	if (!snap || uffd < 0 || !r || !n)
		return tier_err(-EINVAL, "remote restore: no snapshot, uffd or regions");
	for (i = 0; i < n; i++) {
		rc = check_region(snap, i, &r[i]);
		if (rc)
			return rc;
	}
	rm = calloc(1, sizeof(*rm));
	if (!rm)
		return tier_err(-ENOMEM, "remote restore: out of memory");
	rm->snap = snap;
	rm->flags = attr->flags;
	fate_init(&rm->fate, snap->name);
	src_init(&rm->src, snap);
	rm->src.verify_image = true;	/* nothing it serves goes unchecked */
	rm->area = calloc(n, sizeof(*rm->area));
	rm->ext = calloc(n, sizeof(*rm->ext));
	rc = serve_init(&rm->srv, attr->flags & REMOTE_RECORD ? 1 :
			attr->prefetch, &rm->src, &rm->fate);
	if (rc || !rm->area || !rm->ext) {
		remote_close(rm);
		return rc ? rc : tier_err(-ENOMEM, "remote restore: out of memory");
	}
	rm->srv.uffd = uffd;		/* borrowed */
	rm->srv.flags |= SERVE_REGIONS;
	if (!(attr->flags & REMOTE_KEEP_REMOVED))
		rm->srv.flags |= SERVE_UNREGISTER_REMOVED;
	rm->srv.area = rm->area;
	for (i = 0; i < n; i++, rm->narea++) {
		rc = area_init(&rm->area[i], r[i].base, r[i].size,
			       r[i].offset / PG);
		if (rc)
			goto err;
		rm->area[i].huge = r[i].page_size == HUGE_SIZE;
	}
	rm->srv.narea = n;
	rc = attr->flags & REMOTE_RECORD ? open_record(rm) : open_plan(rm, attr);
	if (rc)
		goto err;
	*ret = rm;
	return 0;
err:
	remote_close(rm);
	return rc;
}

int remote_zero_copy(struct remote *rm, struct remote_map **ret,
		     size_t *ret_n, int *ret_fd)
{
	struct remote_map *v = NULL;
	size_t n = 0, cap = 0, i, k;
	int rc;

	*ret_fd = -1;
	for (i = 0; i < rm->narea; i++) {
		const struct rs_area *a = &rm->area[i];

		for (k = 0; !a->huge && k < a->n; k++) {
			const struct placer_ext *e = &a->ext[k];
			struct remote_map *last = n ? &v[n - 1] : NULL;
			uint64_t addr = a->base + e->page * PG;

			if (!(e->flags & F_CXL_MAP))
				continue;
			if (last && last->addr + last->len == addr &&
			    last->obj_off + last->len == e->src_off) {
				last->len += e->npages * PG;
				continue;
			}
			if (rs_grow((void **)&v, &cap, n, sizeof(*v))) {
				free(v);
				return tier_err(-ENOMEM, "remote restore: out of memory");
			}
			v[n++] = (struct remote_map){
				.addr = addr, .len = e->npages * PG,
				.obj_off = e->src_off,
			};
		}
	}
	if (n) {
		rc = cxl_obj_share_fd(rm->src.cxl_obj, ret_fd);
		if (rc) {
			free(v);
			return rc;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void remote_zero_copy_done(struct remote *rm)
{
	size_t i, k;

	for (i = 0; i < rm->narea; i++)
		for (k = 0; !rm->area[i].huge && k < rm->area[i].n; k++)
			if (rm->ext[i][k].flags & F_CXL_MAP)
				rm->ext[i][k].method = PLACER_M_MAP;
}

/* A huge area's hot pages: every huge page with a COPY page in it. */
static int prefetch_huge(struct remote *rm, struct rs_area *a)
{
	struct rs_fate *f = &rm->fate;
	uint64_t hw, done = 0;
	unsigned cls;
	size_t i;
	int rc;

	for (i = 0; i < a->n; i++) {
		const struct placer_ext *e = &a->ext[i];

		if (e->method != PLACER_M_COPY)
			continue;
		for (hw = e->page & ~(uint64_t)(HUGE_PAGES - 1);
		     hw < e->page + e->npages; hw += HUGE_PAGES) {
			if (bit_test(a->installed, hw))
				continue;
			rc = serve_huge(&rm->srv, a, hw, true, &cls);
			if (rc < 0)
				return tier_err_ctx(rc, "prefetch");
			if (!rc)
				done += HUGE_PAGES;
		}
	}
	pthread_mutex_lock(&f->stat_lock);
	f->st.prefetched_pages += done;
	pthread_mutex_unlock(&f->stat_lock);
	return 0;
}

struct helper {
	struct rs_pf *pf;
	struct rs_cpus cpus;
	int rc;
	char msg[256];
};

static void *helper_run(void *arg)
{
	struct helper *h = arg;

	rs_cpus_restore(&h->cpus);

	h->rc = pf_work(h->pf, h->pf->seg, h->pf->buf[1]);
	if (h->rc)
		snprintf(h->msg, sizeof(h->msg), "%s", tier_errmsg());
	return NULL;
}

/*
 * An area's COPY extents by two threads taking batches, where its pool
 * allows a second reader (restore-prefetch.c says which): verifying a
 * page costs about what installing it does, so one thread alone runs at
 * about half the UFFDIO_COPY rate.
 */
static int prefetch_area(struct remote *rm, struct rs_area *a)
{
	struct helper h = { 0 };
	struct rs_pf pf;
	pthread_t t;
	bool two = false;
	int rc;

	memset(&pf, 0, sizeof(pf));
	pf_init(&pf, &rm->srv, a);
	rc = pf_prepare(&pf, true, false);
	if (!rc && pf.help) {
		h.pf = &pf;
		two = rs_spawn_elsewhere(&t, helper_run, &h, &h.cpus) == 0;
	}
	if (!rc)
		rc = pf_work(&pf, rm->src.seg, pf.buf[0]);
	if (two) {
		pthread_join(t, NULL);
		if (!rc && h.rc)
			rc = tier_err(h.rc, "%s", h.msg);
	}
	pf_fini(&pf);
	return rc;
}

int remote_prefetch(struct remote *rm)
{
	uint64_t t0 = rs_now_ns();
	size_t i;
	int rc = 0;

	for (i = 0; !rm->rec && !rc && i < rm->narea; i++) {
		struct rs_area *a = &rm->area[i];

		rc = a->huge ? prefetch_huge(rm, a) : prefetch_area(rm, a);
	}
	if (rc)
		return fate_fail(&rm->fate, rc);
	/* whoever faulted meanwhile on a page now installed */
	for (i = 0; i < rm->narea; i++)
		uffd_wake(rm->srv.uffd, rm->area[i].base, rm->area[i].len);
	pthread_mutex_lock(&rm->fate.stat_lock);
	rm->fate.st.prefetch_ns = rs_now_ns() - t0;
	pthread_mutex_unlock(&rm->fate.stat_lock);
	return 0;
}

int remote_handle(struct remote *rm)
{
	int rc = serve_handle(&rm->srv);

	if (rc >= 0 && atomic_load(&rm->fate.error))
		return tier_err(atomic_load(&rm->fate.error), "%s",
				rm->fate.errmsg);
	return rc;
}

int remote_error(const struct remote *rm)
{
	return atomic_load(&((struct remote *)rm)->fate.error);
}

const char *remote_errmsg(const struct remote *rm)
{
	return rm->fate.errmsg;
}

uint64_t remote_removes(const struct remote *rm)
{
	return atomic_load(&((struct remote *)rm)->srv.removes);
}

bool remote_exiting(const struct remote *rm)
{
	return rm->srv.exiting;
}

uint64_t remote_fail_addr(const struct remote *rm)
{
	return rm->srv.fail_addr == UINTPTR_MAX ? UINT64_MAX : rm->srv.fail_addr;
}

int remote_trace(struct remote *rm, struct tier_trace_ent **ret,
		 size_t *ret_n)
{
	if (!rm->rec)
		return tier_err(-EINVAL, "remote restore: not recording");
	return rec_entries(rm->rec, &rm->fate, ret, ret_n);
}

bool remote_record_wp(const struct remote *rm)
{
	return rm->rec && rm->wp;
}

void remote_stats(const struct remote *rm, struct tier_restore_stats *ret)
{
	struct rs_fate *f = (struct rs_fate *)&rm->fate;

	pthread_mutex_lock(&f->stat_lock);
	*ret = f->st;
	ret->error = atomic_load(&f->error);
	pthread_mutex_unlock(&f->stat_lock);
}

int remote_save_trace(struct remote *rm, const char *name)
{
	struct tier_trace_ent *ent;
	size_t n;
	int rc;

	if (!rm->rec)
		return tier_err(-EINVAL, "remote restore: not recording");
	rc = snap_check_name("trace", name);
	if (rc)
		return rc;
	pthread_mutex_lock(&rm->fate.stat_lock);
	rm->rec->recording = false;
	pthread_mutex_unlock(&rm->fate.stat_lock);
	rc = rec_entries(rm->rec, &rm->fate, &ent, &n);
	if (rc)
		return rc;
	rc = trace_save(rm->snap, name, ent, n, FMT_TRACE_SRC_RECORD);
	free(ent);
	return rc;
}

void remote_close(struct remote *rm)
{
	size_t i;

	if (!rm)
		return;
	rm->srv.uffd = -1;		/* the VMM's */
	serve_fini(&rm->srv);
	src_close(&rm->src);
	for (i = 0; i < rm->narea; i++)
		area_fini(&rm->area[i]);
	for (i = 0; rm->ext && i < rm->narea; i++)
		free(rm->ext[i]);
	free(rm->ext);
	free(rm->area);
	if (rm->rec) {
		rec_fini(rm->rec);
		free(rm->rec);
	}
	fate_fini(&rm->fate);
	free(rm);
}
