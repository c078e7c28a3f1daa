/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Record mode (TIER_RESTORE_RECORD): the fault server with no plan. The
 * whole range is registered MISSING (and WP where the uffd allows) and
 * served from the image one page per fault: a prefetch window would
 * hide touches. A read fault installs the page write-protected (log R);
 * a write fault installs it writable (log W); a WP fault on an R page
 * upgrades it to RW and un-protects it. Called by restore-serve.c for
 * every fault of a recording; restore.c starts it and saves the trace.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "store/restore-int.h"
#include "util/err.h"
#include "util/file.h"

int rec_init(struct rs_rec *r, uint64_t npages, uint64_t t0, bool wp)
{
	r->t0 = t0;
	r->wp = wp;
	r->recording = true;
	r->idx = calloc(npages ? npages : 1, sizeof(*r->idx));
	r->zero = aligned_alloc(PG, PG);
	if (!r->idx || !r->zero) {
		rec_fini(r);
		return tier_err(-ENOMEM, "record: out of memory");
	}
	memset(r->zero, 0, PG);
	return 0;
}

void rec_fini(struct rs_rec *r)
{
	free(r->idx);
	free(r->zero);
	free(r->ent);
	r->idx = NULL;
	r->zero = NULL;
	r->ent = NULL;
}

static int rec_log(struct rs_rec *r, struct rs_fate *f, uint64_t page,
		   enum tier_access k)
{
	struct tier_trace_ent *ent;
	int rc = 0;

	pthread_mutex_lock(&f->stat_lock);
	if (!r->recording)
		goto out;
	if (r->idx[page]) {
		ent = &r->ent[r->idx[page] - 1];
		if (k == TIER_ACCESS_W && ent->kind == TIER_ACCESS_R)
			ent->kind = TIER_ACCESS_RW;
		goto out;
	}
	if (r->nent == r->entcap) {
		size_t cap = r->entcap ? r->entcap * 2 : 1024;

		ent = realloc(r->ent, cap * sizeof(*ent));
		if (!ent) {
			rc = tier_err(-ENOMEM, "record: out of memory");
			goto out;
		}
		r->ent = ent;
		r->entcap = cap;
	}
	r->ent[r->nent] = (struct tier_trace_ent){
		.page = page,
		.t_ns = rs_now_ns() - r->t0,
		.kind = k,
	};
	r->idx[page] = ++r->nent;
out:
	pthread_mutex_unlock(&f->stat_lock);
	return rc;
}

int rec_fault(struct rs_serve *srv, struct rs_area *a, uint64_t w,
	      const struct uffd_ev *ev)
{
	struct rs_rec *r = srv->rec;
	struct rs_fate *f = srv->fate;
	uint64_t t0 = rs_now_ns(), p = a->first + w;
	const void *src = r->zero;
	bool zero;
	int rc;

again:
	if (bit_test(a->installed, w))
		return uffd_wake(srv->uffd, ev->addr, PG);

	/* zero pages are copied too (not ZEROPAGE): only COPY can install
	 * a page write-protected */
	zero = snap_page_zero(srv->src->snap, p) || bit_test(a->removed, w);
	if (!zero) {
		rc = pread_full(srv->src->image_fd, srv->bounce, PG, p * PG,
				srv->src->snap->image);
		if (rc)
			return tier_err_ctx(rc, "page %" PRIu64, p);
		rc = src_verify(srv->src, p, srv->bounce, 1, PLACER_SRC_IMAGE);
		if (rc)
			return rc;
		src = srv->bounce;
	}
	/* logged and counted before the thread is woken (restore-serve.c) */
	rc = serve_install(srv, a, w, 1, src, UFFD_COPY_DONTWAKE |
			   (ev->write || !r->wp ? 0 : UFFD_COPY_WP), false);
	if (rc < 0)
		return rc;
	if (rc == SERVE_GONE)	/* woken */
		return 0;
	if (rc == SERVE_RACED)	/* removed meanwhile: now a zero page */
		goto again;
	if (!bit_test(a->removed, w)) {
		rc = rec_log(r, f, p, ev->write ? TIER_ACCESS_W : TIER_ACCESS_R);
		if (rc)
			return rc;
	}

	pthread_mutex_lock(&f->stat_lock);
	f->st.faults[zero ? TIER_CLASS_ZERO : TIER_CLASS_COLD]++;
	f->st.lazy_pages++;
	if (!zero)
		f->st.local_bytes += PG;
	f->st.fault_ns += rs_now_ns() - t0;
	pthread_mutex_unlock(&f->stat_lock);
	return uffd_wake(srv->uffd, ev->addr, PG);
}

int rec_wp(struct rs_serve *srv, struct rs_area *a, uint64_t w,
	   const struct uffd_ev *ev)
{
	struct rs_fate *f = srv->fate;
	uint64_t t0 = rs_now_ns();
	int rc;

	rc = rec_log(srv->rec, f, a->first + w, TIER_ACCESS_W); /* R: RW */
	if (rc)
		return rc;
	pthread_mutex_lock(&f->stat_lock);
	f->st.wp_faults++;
	f->st.fault_ns += rs_now_ns() - t0;
	pthread_mutex_unlock(&f->stat_lock);
	/* un-protecting wakes the writer */
	return SERVE_RETRY(srv, uffd_wp(srv->uffd, ev->addr, PG, 0, 0));
}

int rec_entries(struct rs_rec *r, struct rs_fate *f,
		struct tier_trace_ent **ret, size_t *ret_n)
{
	struct tier_trace_ent *ent;
	size_t n;

	pthread_mutex_lock(&f->stat_lock);
	n = r->nent;
	ent = malloc((n ? n : 1) * sizeof(*ent));
	if (ent)
		memcpy(ent, r->ent, n * sizeof(*ent));
	pthread_mutex_unlock(&f->stat_lock);
	if (!ent)
		return tier_err(-ENOMEM, "record: out of memory");
	*ret = ent;
	*ret_n = n;
	return 0;
}
