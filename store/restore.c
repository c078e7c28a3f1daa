/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The restore's lifecycle and the public API (include/tier.h), read top
 * to bottom as a restore happens. The restorer executes a plan blindly:
 * every policy (ours and the baselines) is a list of extents, each with
 * a source and a method, so no file of it holds policy, only the order
 * that makes a restore cheap. The parts (store/restore-int.h):
 *
 *   open	 clip the plan to the range, open its sources, find the
 *		 overlay clusters, open the userfaultfd (restore-map.c,
 *		 restore-src.c)
 *   lay out	 the range becomes fresh anonymous memory (MAP_FIXED), so
 *		 nothing the caller left there can leak into the guest; the
 *		 MAP extents are mapped over it, the COPY and LAZY ones
 *		 registered (restore-map.c)
 *   fill	 COPY extents fetched and installed in batches
 *		 (restore-prefetch.c) while mapped pages are populated
 *		 (restore-populate.c), by two threads
 *   serve	 LAZY pages on fault (restore-serve.c), by the second thread
 *		 once it is done, or by the caller (TIER_RESTORE_NO_THREAD)
 *
 * The second thread, the populator, starts with the restore: it lists
 * what to populate and prefetch while the start maps (rs_lists),
 * populates the pages as they are mapped and on through the fill, takes
 * prefetch batches once the populate list is empty (the start chunks of
 * that list once the batches are gone), and then becomes the fault
 * handler: no thread to make, no idle vCPU to wake.
 *
 * The start and the populator meet through atomics, spinning (on this
 * VM a sleeping thread waited 0.1-3 ms for its vCPU): pop.go (the
 * extents and sources are ready, or stop, or serve), pop.lists (rs_lists
 * is done), pop.ready (mapped and registered up to there), pop.done (its
 * results are set). Only a populator left idle for long, while the start
 * prefetches alone, sleeps (pop_idle): its spinning took a vCPU from the
 * transport. What the fill needs that takes mmap_lock for writing
 * (the pool segment's mapping, bounce buffers, batch memory) is made in
 * rs_lists, before either thread populates through process_madvise,
 * which holds it for reading: an mmap queued behind such a call stalled
 * a batch by 4 ms. Pool handles are used by one thread at a time: the
 * start connects one and prefetches through it before the handler
 * exists, then hands it over, so a dead pool fails the start, not the
 * first fault.
 *
 * A failure inside tier_restore_start undoes everything and leaves the
 * range PROT_NONE anonymous memory, so a guest run by mistake crashes
 * instead of reading zeros. tier_restore_stop of a dead restore also
 * turns the range PROT_NONE before closing the userfaultfd (closing it
 * would otherwise let the blocked threads through on kernel zero pages).
 *
 * on_error runs on the serving thread with the server's lock held: it
 * may read the stats and stop the guest, but must not call
 * tier_restore_stop.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tier.h"
#include "store/format.h"
#include "store/restore-int.h"
#include "store/restore.h"
#include "store/snap.h"
#include "util/err.h"
#include "util/log.h"

static void rs_notify(void *owner, int err, const char *msg)
{
	struct tier_restore *rs = owner;

	if (rs->on_error)
		rs->on_error(rs, err, msg, rs->arg);
}

static void rs_free(struct tier_restore *rs)
{
	if (!rs)
		return;
	pf_fini(&rs->pf);	/* its pool handle before the pool's */
	src_close(&rs->src);
	serve_fini(&rs->srv);
	fate_fini(&rs->fate);
	area_fini(&rs->area);
	free(rs->map.ext);
	free(rs->map.ovl);
	free(rs->ld.r);
	pop_fini(&rs->pop);
	if (rs->rec) {
		rec_fini(rs->rec);
		free(rs->rec);
	}
	free(rs);
}

static struct tier_restore *rs_new(struct tier_snap *snap, void *addr,
				   size_t len,
				   const struct tier_restore_attr *attr,
				   const struct restore_opts *opts)
{
	struct tier_restore *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return NULL;
	rs->snap = snap;
	rs->policy = attr->policy;
	rs->flags = attr->flags;
	/*
	 * SIGBUS: an overlay cluster's holes would fault inside the start's
	 * own populate (MADV_POPULATE_READ), where no handler can take the
	 * signal: map each CXL run on its own instead.
	 */
	if (rs->flags & TIER_RESTORE_SIGBUS)
		rs->flags |= TIER_RESTORE_NO_OVERLAY;
	if (opts)
		rs->opts = *opts;
	rs->base = addr;
	rs->len = len;
	rs->on_error = attr->on_error;
	rs->arg = attr->arg;
	fate_init(&rs->fate, snap->name);
	rs->fate.notify = rs_notify;
	rs->fate.owner = rs;
	src_init(&rs->src, snap);
	if (serve_init(&rs->srv, attr->prefetch, &rs->src, &rs->fate) ||
	    area_init(&rs->area, (uintptr_t)addr, len, attr->offset / PG)) {
		rs_free(rs);
		return NULL;
	}
	rs->srv.area = &rs->area;
	rs->srv.narea = 1;
	if (attr->flags & TIER_RESTORE_DONTNEED_RESETS)
		rs->srv.flags |= SERVE_REMOVE_RESETS;
	if (!(attr->flags & TIER_RESTORE_NO_SPIN))
		rs->srv.spin_ns = 1000ULL * (attr->spin_us ? attr->spin_us :
					     TIER_RESTORE_SPIN_DEFAULT_US);
	pf_init(&rs->pf, &rs->srv, &rs->area);
	return rs;
}

static int rs_check_range(const struct tier_snap *snap, void *addr,
			  size_t len, const struct tier_restore_attr *attr)
{
	if (!snap || !addr || !len)
		return tier_err(-EINVAL, "restore: no snapshot, address or length");
	if ((uintptr_t)addr % PG || len % PG || attr->offset % PG)
		return tier_err(-EINVAL, "restore: address %p, length %zu and "
				"offset %" PRIu64 " must be page aligned",
				addr, len, attr->offset);
	if (attr->offset > snap->size || len > snap->size - attr->offset)
		return tier_err(-EINVAL, "restore: bytes [%" PRIu64 ", +%zu) are "
				"past the end of snapshot %s (%" PRIu64 " bytes)",
				attr->offset, len, snap->name, snap->size);
	if (attr->flags & ~(TIER_RESTORE_RECORD | TIER_RESTORE_NO_THREAD |
			    TIER_RESTORE_NO_OVERLAY | TIER_RESTORE_NO_SPIN |
			    TIER_RESTORE_POOL_FALLBACK | TIER_RESTORE_SIGBUS |
			    TIER_RESTORE_DONTNEED_RESETS))
		return tier_err(-EINVAL, "restore: unknown flags %#x",
				attr->flags);
	if ((attr->flags & TIER_RESTORE_SIGBUS) &&
	    (attr->flags & (TIER_RESTORE_RECORD | TIER_RESTORE_NO_THREAD)))
		return tier_err(-EINVAL, "restore: TIER_RESTORE_SIGBUS serves "
				"faults in the faulting threads: not with "
				"RECORD or NO_THREAD");
	return 0;
}

/* ---------------------------------------------- the two threads' work */

/*
 * The lists the populate and the prefetch work from, and what they need
 * (pf_prepare). Made by the populator while the start maps (they depend
 * only on the extents and the sources), or by the start before mapping
 * when there is no populator: ~0.5 ms off the start's own path.
 */
static int rs_lists(struct tier_restore *rs)
{
	int rc = map_plan(rs, true);

	if (!rc)
		rc = pf_prepare(&rs->pf, rs->pop.have_thread,
				rs->opts.pf_helper);
	if (!rc)
		rc = pop_prepare(&rs->pop);
	if (!rc)
		atomic_store_explicit(&rs->pop.lists, 1, memory_order_release);
	return rc;
}

/* A thread's share of the prefetch and of the populate; a failure of
 * either stops both lists. */
static int rs_prefetch_share(struct tier_restore *rs, struct pool_seg *seg,
			     struct batch *b)
{
	int rc = pf_work(&rs->pf, seg, b);

	if (rc)
		pop_cancel(&rs->pop);
	return rc;
}

static int rs_populate_share(struct tier_restore *rs, struct pop_batch *b)
{
	int rc = pop_work(rs, b);

	if (rc && rc != -ECANCELED)
		pf_cancel(&rs->pf);
	return rc;
}

/* The populator's work: the lists, its share of the populate, then
 * prefetch batches if it may. */
static void rs_populate_all(struct tier_restore *rs)
{
	struct rs_pop *pop = &rs->pop;
	int rc;

	if (!pop_wait(pop, 0))
		return;
	rc = rs_lists(rs);
	if (rc) {
		snprintf(pop->lists_msg, sizeof(pop->lists_msg), "%s",
			 tier_errmsg());
		atomic_store_explicit(&pop->lists, rc, memory_order_release);
		return;
	}
	rc = rs_populate_share(rs, pop->b[1]);
	if (rc == -ECANCELED)
		return;
	if (rc) {
		pop->rc = rc;
		snprintf(pop->msg, sizeof(pop->msg), "%s", tier_errmsg());
		return;
	}
	if (rs->pf.help && pop_wait(pop, UINTPTR_MAX)) {
		pop->pf_rc = rs_prefetch_share(rs, rs->pf.seg, rs->pf.buf[1]);
		if (pop->pf_rc)
			snprintf(pop->pf_msg, sizeof(pop->pf_msg), "%s",
				 tier_errmsg());
	}
}

/* The populator thread; done, it becomes the fault handler if the start
 * asks it to (rs_start_thread). */
static void *rs_populator(void *arg)
{
	struct tier_restore *rs = arg;

	rs_cpus_restore(&rs->pop.cpus);
	rs_populate_all(rs);
	atomic_store_explicit(&rs->pop.done, true, memory_order_release);
	if (pop_idle(&rs->pop) == POP_SERVE)
		return serve_thread(&rs->srv);
	return NULL;
}

/* The start's wait for the populator's lists (spinning, as elsewhere). */
static int rs_lists_wait(struct tier_restore *rs)
{
	int l;

	while (!(l = atomic_load_explicit(&rs->pop.lists, memory_order_acquire)))
		sched_yield();
	return l < 0 ? tier_err(l, "%s", rs->pop.lists_msg) : 0;
}

/* Waits for the populator's results; the thread itself is joined by
 * rs_stop_threads. */
static int rs_populate_wait(struct tier_restore *rs)
{
	if (rs->pop.have_thread)
		while (!atomic_load_explicit(&rs->pop.done,
					     memory_order_acquire))
			sched_yield();
	if (rs->pop.rc)
		return tier_err(rs->pop.rc, "%s", rs->pop.msg);
	if (rs->pop.pf_rc)
		return tier_err(rs->pop.pf_rc, "%s", rs->pop.pf_msg);
	return 0;
}

/*
 * Starts the fault handler: the populator, done and waiting, or a new
 * thread. Start does not wait for it to be scheduled (on a busy host
 * that alone can take milliseconds): faults raised before it runs wait
 * in the userfaultfd's queue.
 */
static int rs_start_thread(struct tier_restore *rs)
{
	int rc;

	/* SIGBUS: the faulting threads serve themselves (restore-sigbus.c) */
	if (rs->flags & (TIER_RESTORE_NO_THREAD | TIER_RESTORE_SIGBUS)) {
		if (rs->pop.have_thread)
			pop_go(&rs->pop, -1);
		return 0;
	}
	rs->srv.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (rs->srv.stop_fd < 0)
		return tier_err(-errno, "restore: eventfd: %m");
	if (rs->pop.have_thread) {
		rs->thread = rs->pop.thread;
		rs->have_thread = true;
		rs->pop.have_thread = false;
		pop_go(&rs->pop, POP_SERVE);
		return 0;
	}
	rc = pthread_create(&rs->thread, NULL, serve_thread, &rs->srv);
	if (rc)
		return tier_err(-rc, "restore: cannot start the fault handler: %s",
				strerror(rc));
	rs->have_thread = true;
	return 0;
}

static void rs_stop_threads(struct tier_restore *rs)
{
	uint64_t one = 1;

	if (rs->have_thread) {
		if (write(rs->srv.stop_fd, &one, sizeof(one)) != sizeof(one))
			tier_log(TIER_LOG_ERR, "restore: cannot wake the handler");
		pthread_join(rs->thread, NULL);
		rs->have_thread = false;
	}
	if (rs->pop.have_thread) {
		pop_go(&rs->pop, -1);
		pthread_join(rs->pop.thread, NULL);
		rs->pop.have_thread = false;
	}
	loader_stop(&rs->ld);
}

static void *rs_fresh_anon(void *addr, size_t len, int prot)
{
	return mmap(addr, len, prot,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
		    -1, 0);
}

/*
 * A start that failed after touching the range: stop the threads, drop
 * the userfaultfd (before remapping: with EVENT_UNMAP, an mmap over a
 * registered range waits for a reader) and leave the range inaccessible.
 */
static void rs_abort(struct tier_restore *rs, bool touched)
{
	rs_stop_threads(rs);
	if (rs->srv.uffd >= 0) {
		close(rs->srv.uffd);
		rs->srv.uffd = -1;
	}
	if (touched)
		rs_fresh_anon(rs->base, rs->len, PROT_NONE);
	rs_free(rs);
}

/* ------------------------------------------------------ the start */

/* Open: the plan over the range, its sources, the clusters, the uffd;
 * the lists too when no populator makes them. */
static int rs_open(struct tier_restore *rs, struct plan *plan, bool own,
		   const struct tier_restore_attr *attr)
{
	int rc;

	rc = map_clip(rs, plan, own);
	if (!rc)
		rc = src_open(&rs->src, rs->policy, rs->map.ext, rs->map.n,
			      plan, attr);
	if (!rc)
		rc = map_clusters(rs);
	if (!rc && map_needs_uffd(rs))
		rc = uffd_open(UFFD_F_NONBLOCK | (rs->flags & TIER_RESTORE_SIGBUS ?
						  UFFD_F_SIGBUS : 0),
			       &rs->srv.uffd);
	if (!rc && !rs->pop.have_thread)
		rc = rs_lists(rs);
	return rc;
}

/*
 * Lay out: fresh anonymous memory, the mapped extents over it, an
 * overlay cluster registered as soon as it is mapped (its pages may be
 * populated from then on), the other COPY and LAZY runs after.
 * -errno with *@touched set once the range was replaced.
 */
static int rs_lay_out(struct tier_restore *rs, bool *touched)
{
	uint64_t t = rs_now_ns(), nreg = 0;
	int rc;

	if (rs_fresh_anon(rs->base, rs->len, PROT_READ | PROT_WRITE) ==
	    MAP_FAILED)
		return tier_err(-errno, "restore: mmap %p+%zu: %m", rs->base,
				rs->len);
	*touched = true;
	rc = map_plan(rs, false);
	if (rc)
		return rc;
	rs->fate.st.map_ns = rs_now_ns() - t;

	t = rs_now_ns();
	rc = map_register(rs, &nreg);
	if (rc)
		return rc;
	atomic_store_explicit(&rs->pop.ready, UINTPTR_MAX, memory_order_release);
	rs->fate.st.register_ns = rs_now_ns() - t;
	rc = rs_lists_wait(rs);
	if (rc)
		return rc;
	rs->fate.st.mappings += nreg;
	loader_start(&rs->ld);
	return 0;
}

/*
 * Fill: the start's share of the prefetch, then what is left of the
 * populate, until both threads are done (prefetch_ns includes the
 * populate where it overlaps: the two share the batches).
 */
static int rs_fill(struct tier_restore *rs)
{
	uint64_t t = rs_now_ns();
	int rc;

	/* opts.pf_helper: the populator takes them all */
	if (!rs->pf.help || !rs->pop.have_thread || !rs->opts.pf_helper) {
		rc = rs_prefetch_share(rs, rs->src.seg, rs->pf.buf[0]);
		if (rc)
			return rc;
	}
	rc = rs_populate_share(rs, rs->pop.b[0]);
	if (rc)
		return rc;
	/* the helper's handle is closed once it is done with it */
	rc = rs_populate_wait(rs);
	rs->fate.st.prefetch_ns = rs_now_ns() - t;
	pf_helper_end(&rs->pf);
	return rc;
}

static int rs_start(struct tier_snap *snap, struct plan *plan, bool own,
		    void *addr, size_t len,
		    const struct tier_restore_attr *attr,
		    const struct restore_opts *opts, uint64_t t0,
		    struct tier_restore **ret)
{
	struct tier_restore *rs;
	uint64_t t_open, t_thread = 0;
	bool touched = false;
	int rc;

	rc = rs_check_range(snap, addr, len, attr);
	if (rc)
		return rc;
	if (attr->flags & TIER_RESTORE_RECORD)
		return tier_err(-EINVAL, "restore: a recording takes no plan");
	t_open = rs_now_ns();
	rs = rs_new(snap, addr, len, attr, opts);
	if (!rs)
		return tier_err(-ENOMEM, "restore: out of memory");
	rs->t0 = t0;
	/* no populator (as if no thread could be made): the start then
	 * does all of its work itself */
	if (pop_wanted(plan) && !rs->opts.no_populator)
		pop_create(&rs->pop, rs_populator, rs);

	rc = rs_open(rs, plan, own, attr);
	if (rc)
		goto err;
	t_open = rs_now_ns() - t_open;
	rs->pop.touch = rs->opts.pop_touch;
	atomic_store_explicit(&rs->pop.go, 1, memory_order_release);

	rc = rs_lay_out(rs, &touched);
	if (!rc)
		rc = rs_fill(rs);
	if (rc)
		goto err;

	if (rs->srv.uffd >= 0) {
		t_thread = rs_now_ns();
		rc = rs_start_thread(rs);
		if (rc)
			goto err;
		t_thread = rs_now_ns() - t_thread;
	} else if (rs->pop.have_thread) {
		pop_go(&rs->pop, -1);	/* nothing to serve */
	}
	rs->fate.st.setup_ns = rs_now_ns() - t0;
	tier_dbg("restore of %s: %zu extents, setup %" PRIu64 " us: plan+open %"
		 PRIu64 ", map %" PRIu64 ", register %" PRIu64 ", prefetch %"
		 PRIu64 ", handler %" PRIu64, snap->name, rs->map.n,
		 rs->fate.st.setup_ns / 1000, t_open / 1000,
		 rs->fate.st.map_ns / 1000, rs->fate.st.register_ns / 1000,
		 rs->fate.st.prefetch_ns / 1000, t_thread / 1000);
	*ret = rs;
	return 0;

err:
	rs_abort(rs, touched);
	return rc;
}

int restore_start_opts(struct tier_snap *snap, const struct plan *plan,
		       void *addr, size_t len,
		       const struct tier_restore_attr *attr,
		       const struct restore_opts *opts,
		       struct tier_restore **ret)
{
	static const struct tier_restore_attr zero_attr;
	uint64_t t0 = rs_now_ns();
	struct plan p;
	int rc;

	if (!attr)
		attr = &zero_attr;
	if (plan) {
		p = *plan;	/* the caller's: read, not taken */
		return rs_start(snap, &p, false, addr, len, attr, opts, t0, ret);
	}
	rc = rs_check_range(snap, addr, len, attr);
	if (rc)
		return rc;
	rc = plan_load(snap, attr->policy, &p);
	if (rc)
		return rc;
	rc = rs_start(snap, &p, true, addr, len, attr, opts, t0, ret);
	plan_free(&p);
	return rc;
}

int restore_start_plan(struct tier_snap *snap, const struct plan *plan,
		       void *addr, size_t len,
		       const struct tier_restore_attr *attr,
		       struct tier_restore **ret)
{
	if (!plan)
		return tier_err(-EINVAL, "restore: no plan");
	return restore_start_opts(snap, plan, addr, len, attr, NULL, ret);
}

/* ------------------------------------------------------ record mode */

static int rec_start(struct tier_snap *snap, void *addr, size_t len,
		     const struct tier_restore_attr *attr, uint64_t t0,
		     struct tier_restore **ret)
{
	struct tier_restore_attr a = *attr;
	struct tier_restore *rs;
	bool touched = false;
	uint64_t p, t;
	int rc;

	a.prefetch = 1;		/* a window would hide touches */
	rs = rs_new(snap, addr, len, &a, NULL);
	if (!rs)
		return tier_err(-ENOMEM, "record: out of memory");
	rs->t0 = t0;
	rs->rec = calloc(1, sizeof(*rs->rec));
	if (!rs->rec) {
		rc = tier_err(-ENOMEM, "record: out of memory");
		goto err;
	}
	rc = rec_init(rs->rec, snap->npages, t0, true);
	if (rc)
		goto err;
	rs->srv.rec = rs->rec;
	for (p = rs->area.first; p < rs->area.first + rs->area.npages; p++)
		rs->fate.st.pages[snap_page_zero(snap, p) ? TIER_CLASS_ZERO :
				  TIER_CLASS_COLD]++;
	rc = snap_image_fd(snap);
	if (rc < 0)
		goto err;
	rs->src.image_fd = rc;
	rc = uffd_open(UFFD_F_WP | UFFD_F_NONBLOCK, &rs->srv.uffd);
	if (rc)
		goto err;

	t = rs_now_ns();
	if (rs_fresh_anon(addr, len, PROT_READ | PROT_WRITE) == MAP_FAILED) {
		rc = tier_err(-errno, "record: mmap %p+%zu: %m", addr, len);
		goto err;
	}
	touched = true;
	rs->fate.st.map_ns = rs_now_ns() - t;
	t = rs_now_ns();
	rc = uffd_register(rs->srv.uffd, addr, len,
			   UFFD_REG_MISSING | UFFD_REG_WP);
	if (rc)
		goto err;
	rs->fate.st.mappings = 1;
	rs->fate.st.register_ns = rs_now_ns() - t;
	rc = rs_start_thread(rs);
	if (rc)
		goto err;
	rs->fate.st.setup_ns = rs_now_ns() - t0;
	*ret = rs;
	return 0;

err:
	rs_abort(rs, touched);
	return rc;
}

/* ---------------------------------------------------------- public API */

int tier_restore_start(struct tier_snap *snap, void *addr, size_t len,
		       const struct tier_restore_attr *attr,
		       struct tier_restore **ret)
{
	static const struct tier_restore_attr zero_attr;
	int rc;

	if (!attr)
		attr = &zero_attr;
	if (attr->flags & TIER_RESTORE_RECORD) {
		rc = rs_check_range(snap, addr, len, attr);
		if (rc)
			return rc;
		return rec_start(snap, addr, len, attr, rs_now_ns(), ret);
	}
	return restore_start_opts(snap, NULL, addr, len, attr, NULL, ret);
}

int tier_restore_fd(const struct tier_restore *rs)
{
	if (!rs || !(rs->flags & TIER_RESTORE_NO_THREAD))
		return tier_err(-EINVAL, "restore: no handle, or its faults are "
				"served by its own thread (no TIER_RESTORE_NO_THREAD)");
	if (rs->srv.uffd < 0)
		return tier_err(-ENOENT, "restore of %s: no page is served "
				"through userfaultfd", rs->snap->name);
	return rs->srv.uffd;
}

int tier_restore_handle(struct tier_restore *rs)
{
	int rc;

	if (!rs)
		return tier_err(-EINVAL, "restore: no handle");
	if (rs->srv.uffd < 0)
		return 0;	/* nothing registered: nothing to serve */
	rc = serve_handle(&rs->srv);
	if (rc >= 0 && atomic_load(&rs->fate.error))
		return tier_err(atomic_load(&rs->fate.error), "%s",
				rs->fate.errmsg);
	return rc;
}

void tier_restore_stats(const struct tier_restore *rs,
			struct tier_restore_stats *ret)
{
	struct rs_fate *f = (struct rs_fate *)&rs->fate;

	pthread_mutex_lock(&f->stat_lock);
	*ret = f->st;
	ret->error = atomic_load(&f->error);
	pthread_mutex_unlock(&f->stat_lock);
	if (rs->flags & TIER_RESTORE_SIGBUS)
		sig_stats_add((struct rs_sig *)&rs->sig, ret);
}

int tier_restore_error(const struct tier_restore *rs)
{
	return atomic_load(&((struct tier_restore *)rs)->fate.error);
}

int tier_restore_sigbus_reason(const struct tier_restore *rs,
			       const void *addr, char *buf, size_t len)
{
	if (!rs || !buf || !len)
		return -EINVAL;
	return map_explain(rs, addr, buf, len);
}

int restore_trace(struct tier_restore *rs, struct tier_trace_ent **ret,
		  size_t *ret_n)
{
	if (!rs->rec)
		return tier_err(-EINVAL, "restore: not recording");
	return rec_entries(rs->rec, &rs->fate, ret, ret_n);
}

int tier_restore_save_trace(struct tier_restore *rs, const char *name)
{
	struct tier_trace_ent *ent;
	size_t n;
	int rc;

	if (!rs || !name)
		return tier_err(-EINVAL, "record: no handle or trace name");
	rc = snap_check_name("trace", name);
	if (rc)
		return rc;
	if (!rs->rec)
		return tier_err(-EINVAL, "restore: not recording");
	/* stop logging, keep serving: the guest may go on running */
	pthread_mutex_lock(&rs->fate.stat_lock);
	rs->rec->recording = false;
	pthread_mutex_unlock(&rs->fate.stat_lock);
	rc = restore_trace(rs, &ent, &n);
	if (rc)
		return rc;
	rc = trace_save(rs->snap, name, ent, n, FMT_TRACE_SRC_RECORD);
	free(ent);
	return rc;
}

void tier_restore_stop(struct tier_restore *rs)
{
	if (!rs)
		return;
	rs_stop_threads(rs);
	/*
	 * Closing the userfaultfd lets every blocked thread through, onto
	 * kernel zero pages. For a dead restore that would be the silent
	 * zero page fail-closed forbids: make the range inaccessible first
	 * (mprotect raises no userfaultfd event).
	 */
	if (atomic_load(&rs->fate.error))
		mprotect(rs->base, rs->len, PROT_NONE);
	if (rs->srv.uffd >= 0) {
		close(rs->srv.uffd);
		rs->srv.uffd = -1;
	}
	rs_free(rs);
}
