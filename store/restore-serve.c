/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The fault server: reads one userfaultfd's events and serves them into
 * one or more areas of the served process's memory, by UFFDIO_COPY,
 * UFFDIO_ZEROPAGE and UFFDIO_WAKE only, so the memory may be the
 * caller's own (restore.c: its handler thread or tier_restore_handle) or
 * another process's that handed over its uffd (a Firecracker VMM).
 *
 * A lazy fault fetches the faulting page plus a window of following lazy
 * pages not yet installed, from the extent's source, verified
 * (restore-src.c). Installed without waking, counted, then woken: a
 * thread that saw its page must also see it in the counters (a VMM reads
 * the stats right after the guest finished).
 *
 * Fail closed: a page that cannot be fetched (dead pool, short read,
 * checksum mismatch) is never installed; fate_fail marks the restore
 * dead and no further fault is served: faulting threads stay blocked in
 * the kernel. REMOVE and UNMAP are still read, so the VMM's munmap or
 * madvise returns.
 *
 * REMOVE events (madvise(DONTNEED) by a balloon): the range now reads as
 * zero, so its pages are marked "removed" and a later fault there gets
 * UFFDIO_ZEROPAGE; with SERVE_UNREGISTER_REMOVED the range is also
 * unregistered (Firecracker's example handler), so later faults never
 * reach us and get the kernel's zero page. With SERVE_REMOVE_RESETS (a
 * runtime resetting an instance) the pages are only no longer installed:
 * a later fault fetches them from the plan's source again.
 *
 * Locking: one thread serves at a time (lock); it alone touches the
 * fault queue, the bounce buffer and the source's pool handle. The
 * prefetch (restore-prefetch.c) may run in two threads before the
 * server does: they share the installed bitmaps (atomic OR) and drain
 * events under drain_lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier.h"
#include "store/restore-int.h"
#include "util/err.h"
#include "util/log.h"

int area_init(struct rs_area *a, uintptr_t base, size_t len, uint64_t first)
{
	uint64_t words;

	a->base = base;
	a->len = len;
	a->first = first;
	a->npages = len / PG;
	words = (a->npages + 63) / 64;
	a->installed = calloc(words ? words : 1, sizeof(uint64_t));
	a->removed = calloc(words ? words : 1, sizeof(uint64_t));
	if (!a->installed || !a->removed) {
		area_fini(a);
		return tier_err(-ENOMEM, "restore: out of memory");
	}
	return 0;
}

void area_fini(struct rs_area *a)
{
	free(a->installed);
	free(a->removed);
	a->installed = a->removed = NULL;
}

void area_mark_installed(struct rs_area *a, uint64_t w, uint64_t n)
{
	for (; n--; w++)
		__atomic_fetch_or(&a->installed[w / 64], 1ULL << (w % 64),
				  __ATOMIC_RELAXED);
}

int serve_init(struct rs_serve *srv, unsigned window, struct rs_src *src,
	       struct rs_fate *fate)
{
	srv->uffd = -1;
	srv->stop_fd = -1;
	srv->fail_addr = UINTPTR_MAX;
	srv->window = window ? window : DEFAULT_WINDOW;
	if (srv->window > WINDOW_MAX)
		srv->window = WINDOW_MAX;
	srv->src = src;
	srv->fate = fate;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->drain_lock, NULL);
	srv->bounce = aligned_alloc(PG, (size_t)srv->window * PG);
	if (!srv->bounce)
		return tier_err(-ENOMEM, "restore: out of memory");
	return 0;
}

void serve_fini(struct rs_serve *srv)
{
	if (srv->uffd >= 0)
		close(srv->uffd);
	if (srv->stop_fd >= 0)
		close(srv->stop_fd);
	srv->uffd = srv->stop_fd = -1;
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->drain_lock);
	free(srv->bounce);
	free(srv->hbounce);
	free(srv->q);
	srv->bounce = srv->hbounce = NULL;
	srv->q = NULL;
}

struct rs_area *serve_area(struct rs_serve *srv, uintptr_t addr,
			   uint64_t *ret_w)
{
	size_t i;

	for (i = 0; i < srv->narea; i++) {
		struct rs_area *a = &srv->area[i];

		if (addr >= a->base && addr - a->base < a->len) {
			*ret_w = (addr - a->base) / PG;
			return a;
		}
	}
	return NULL;
}

static void mark_removed(struct rs_serve *srv, uintptr_t start, uintptr_t end)
{
	size_t i;

	atomic_fetch_add(&srv->removes, 1);

	for (i = 0; i < srv->narea; i++) {
		struct rs_area *a = &srv->area[i];
		uintptr_t s = start > a->base ? start : a->base;
		uintptr_t e = end < a->base + a->len ? end : a->base + a->len;
		uintptr_t p;

		if (s >= e)
			continue;
		for (p = s; p < e; p += PG) {
			uint64_t w = (p - a->base) / PG;

			bit_clear(a->installed, w);
			if (!(srv->flags & SERVE_REMOVE_RESETS))
				bit_set(a->removed, w);
		}
		/* best effort: a range the VMM unmapped meanwhile is gone
		 * from the registration anyway */
		if (srv->flags & SERVE_UNREGISTER_REMOVED)
			uffd_unregister(srv->uffd, (void *)s, e - s);
	}
}

/*
 * A COPY, ZEROPAGE or WRITEPROTECT got EAGAIN: a REMOVE/UNMAP is pending
 * and must be read first. Handles those now and queues faults for later.
 */
int serve_drain(struct rs_serve *srv)
{
	struct uffd_ev ev[16];
	int i, n;

	n = uffd_read_events(srv->uffd, ev, 16);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		if (ev[i].kind == UFFD_EV_REMOVE || ev[i].kind == UFFD_EV_UNMAP) {
			mark_removed(srv, ev[i].addr, ev[i].end);
			continue;
		}
		if (ev[i].kind == UFFD_EV_OTHER)
			continue;
		if (srv->nq == srv->qcap) {
			size_t cap = srv->qcap ? srv->qcap * 2 : 64;
			struct uffd_ev *q = realloc(srv->q, cap * sizeof(*q));

			if (!q)
				return tier_err(-ENOMEM, "restore: out of memory");
			srv->q = q;
			srv->qcap = cap;
		}
		srv->q[srv->nq++] = ev[i];
	}
	if (!n)
		sched_yield();
	return 0;
}

int serve_drain_pf(struct rs_serve *srv)
{
	int rc;

	pthread_mutex_lock(&srv->drain_lock);
	rc = serve_drain(srv);
	pthread_mutex_unlock(&srv->drain_lock);
	return rc;
}

/*
 * An install that found no registered mapping (ENOENT: the VMM unmapped
 * or replaced the range under us, or it was unregistered after a
 * REMOVE; ESRCH: the process is exiting) lost a race with the VMM, not a
 * page: there is nothing left to serve there. Read the pending UNMAP,
 * wake whoever waited, and go on.
 */
int serve_lost(struct rs_serve *srv, int rc, uintptr_t addr, size_t len)
{
	if (rc != -ENOENT && rc != -ESRCH)
		return rc;
	tier_dbg("restore: %s: dropped", tier_errmsg());
	if (rc == -ESRCH) {
		srv->exiting = true;
		return 0;
	}
	uffd_wake(srv->uffd, addr, len);
	return serve_drain(srv);
}

static bool any_removed(const struct rs_area *a, uint64_t w, uint64_t n)
{
	for (; n--; w++)
		if (bit_test(a->removed, w))
			return true;
	return false;
}

int serve_install(struct rs_serve *srv, struct rs_area *a, uint64_t w,
		  uint64_t n, const void *buf, unsigned mode, bool pf)
{
	uintptr_t addr = a->base + w * PG;
	int rc, tries;

	for (tries = 0;; tries++) {
		rc = buf ? uffd_copy(srv->uffd, addr, buf, n * PG, mode) :
			   uffd_zeropage(srv->uffd, addr, n * PG, mode);
		if (!rc) {
			area_mark_installed(a, w, n);
			return 0;
		}
		if (rc == -ENOENT || rc == -ESRCH) {
			rc = serve_lost(srv, rc, addr, n * PG);
			return rc ? rc : SERVE_GONE;
		}
		if (rc != -EAGAIN)
			return rc;
		if (tries == EAGAIN_TRIES)
			return tier_err(-EAGAIN, "restore: userfaultfd busy for too long");
		rc = pf ? serve_drain_pf(srv) : serve_drain(srv);
		if (rc)
			return rc;
		/*
		 * The pending event was a REMOVE of some of these pages: they
		 * now read as zero, and what we hold for them is stale (the
		 * fault was read before the REMOVE it raced with). Nothing
		 * is installed; the caller serves them afresh. Zeros are
		 * right either way.
		 */
		if (buf && any_removed(a, w, n))
			return SERVE_RACED;
	}
}

/*
 * How many pages from @w on a fault may fetch: same source, contiguous
 * in it, lazy, within @max; with @bits, not yet installed nor removed
 * (the SIGBUS mode keeps no such bitmap: restore-sigbus.c). Pure.
 */
uint64_t area_fault_window(const struct rs_area *a, const struct placer_ext *e,
			   uint64_t w, uint64_t max, bool bits)
{
	const struct placer_ext *end = a->ext + a->n;
	uint64_t cnt = 1, next = w + 1;

	while (cnt < max) {
		if (next >= e->page + e->npages) {
			const struct placer_ext *f = e + 1;

			if (f >= end || f->method != PLACER_M_LAZY ||
			    f->source != e->source ||
			    (e->source != PLACER_SRC_NONE &&
			     f->src_off != ext_off(e, next)))
				break;
			e = f;
		}
		if (bits && (bit_test(a->installed, next) ||
			     bit_test(a->removed, next)))
			break;
		cnt++;
		next++;
	}
	return cnt;
}

const struct placer_ext *area_find_ext(const struct rs_area *a, uint64_t w)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct placer_ext *e = &a->ext[mid];

		if (w < e->page)
			hi = mid;
		else if (w >= e->page + e->npages)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

static int serve_fault(struct rs_serve *srv, struct rs_area *a, uint64_t w,
		       uintptr_t addr)
{
	struct rs_fate *f = srv->fate;
	uint64_t t0 = rs_now_ns(), cnt, k;
	const struct placer_ext *e;
	unsigned src;
	int rc;

again:
	if (bit_test(a->installed, w))	/* installed since it faulted */
		return uffd_wake(srv->uffd, addr, PG);
	if (bit_test(a->removed, w)) {
		rc = serve_install(srv, a, w, 1, NULL, 0, false);
		return rc > 0 ? 0 : rc;	/* gone: woken */
	}
	e = area_find_ext(a, w);
	/*
	 * A MAP page faults only inside an overlay cluster, and only if the
	 * object has a hole where it should have the page: fetched like a
	 * lazy page, so the checksum decides (a damaged object fails closed).
	 */
	if (!e || !(e->method == PLACER_M_LAZY || e->method == PLACER_M_COPY ||
		    (e->method == PLACER_M_MAP && a->ovl && a->ovl[e - a->ext])))
		return tier_err(-EFAULT, "restore: page %" PRIu64
				" faulted but is not served by userfaultfd",
				a->first + w);

	src = e->source;
	cnt = e->method == PLACER_M_LAZY ?
	      area_fault_window(a, e, w, srv->window, true) : 1;
	if (src == PLACER_SRC_NONE) {
		rc = serve_install(srv, a, w, cnt, NULL, UFFD_COPY_DONTWAKE,
				   false);
	} else {
		if (src == PLACER_SRC_POOL && !srv->src->seg) {
			rc = src_pool_connect(srv->src, &srv->src->pool,
					      &srv->src->seg);
			if (rc)
				return rc;
		}
		rc = src_read(srv->src, srv->src->seg, src, ext_off(e, w),
			      srv->bounce, cnt * PG);
		if (rc)
			return tier_err_ctx(rc, "page %" PRIu64, a->first + w);
		/* the faulting page must be right; of the window, only the
		 * pages before a wrong one are installed (a wrong one fails
		 * when it is touched itself, naming it) */
		rc = src_verify(srv->src, a->first + w, srv->bounce, 1, src);
		if (rc)
			return rc;
		for (k = 1; k < cnt; k++)
			if (src_verify(srv->src, a->first + w + k,
				       (uint8_t *)srv->bounce + k * PG, 1, src))
				break;
		cnt = k;
		rc = serve_install(srv, a, w, cnt, srv->bounce,
				   UFFD_COPY_DONTWAKE, false);
	}
	if (rc < 0)
		return rc;
	if (rc == SERVE_GONE)	/* unmapped, unregistered: woken */
		return 0;
	if (rc == SERVE_RACED)	/* a REMOVE took them: look again */
		goto again;

	pthread_mutex_lock(&f->stat_lock);
	f->st.faults[e->cls < TIER_CLASS_MAX ? e->cls : TIER_CLASS_COLD]++;
	f->st.lazy_pages += cnt;
	src_count_bytes(&f->st, src, cnt * PG);
	f->st.fault_ns += rs_now_ns() - t0;
	pthread_mutex_unlock(&f->stat_lock);
	return uffd_wake(srv->uffd, addr, cnt * PG);
}

int serve_huge(struct rs_serve *srv, struct rs_area *a, uint64_t hw, bool pf,
	       unsigned *cls)
{
	struct rs_fate *f = srv->fate;
	uint64_t w = hw, end = hw + HUGE_PAGES, n, bytes[PLACER_SRC_POOL + 1] = { 0 };
	const struct placer_ext *e;
	uint8_t *buf;
	unsigned s;
	int rc;

	if (!srv->hbounce) {
		srv->hbounce = aligned_alloc(HUGE_PAGES * PG, HUGE_PAGES * PG);
		if (!srv->hbounce)
			return tier_err(-ENOMEM, "restore: out of memory");
	}
	buf = srv->hbounce;
	*cls = TIER_CLASS_ZERO;
	if (bit_test(a->removed, hw)) {	/* a REMOVE takes whole huge pages */
		memset(buf, 0, HUGE_PAGES * PG);
		end = hw;
	}
	for (; w < end; w += n) {
		e = area_find_ext(a, w);
		if (!e)
			return tier_err(-EFAULT, "restore: page %" PRIu64
					" is in no extent", a->first + w);
		n = (e->page + e->npages < end ? e->page + e->npages : end) - w;
		if (w == hw || e->cls != TIER_CLASS_ZERO)
			*cls = e->cls < TIER_CLASS_MAX ? e->cls : TIER_CLASS_COLD;
		s = e->source;
		if (s == PLACER_SRC_NONE) {
			memset(buf + (w - hw) * PG, 0, n * PG);
			continue;
		}
		if (s == PLACER_SRC_POOL && !srv->src->seg) {
			rc = src_pool_connect(srv->src, &srv->src->pool,
					      &srv->src->seg);
			if (rc)
				return rc;
		}
		rc = src_read(srv->src, srv->src->seg, s, ext_off(e, w),
			      buf + (w - hw) * PG, n * PG);
		if (rc)
			return tier_err_ctx(rc, "page %" PRIu64, a->first + w);
		rc = src_verify(srv->src, a->first + w,
				buf + (w - hw) * PG, n, s);
		if (rc)
			return rc;
		bytes[s] += n * PG;
	}
	rc = serve_install(srv, a, hw, HUGE_PAGES, buf,
			   UFFD_COPY_DONTWAKE | UFFD_COPY_HUGE, pf);
	if (rc)
		return rc;
	pthread_mutex_lock(&f->stat_lock);
	for (s = 0; s <= PLACER_SRC_POOL; s++)
		src_count_bytes(&f->st, s, bytes[s]);
	pthread_mutex_unlock(&f->stat_lock);
	return 0;
}

static int serve_fault_huge(struct rs_serve *srv, struct rs_area *a,
			    uint64_t w)
{
	struct rs_fate *f = srv->fate;
	uint64_t t0 = rs_now_ns(), hw = w & ~(uint64_t)(HUGE_PAGES - 1);
	uintptr_t addr = a->base + hw * PG;
	unsigned cls;
	int rc;

	if (bit_test(a->installed, hw))
		return uffd_wake(srv->uffd, addr, HUGE_PAGES * PG);
	rc = serve_huge(srv, a, hw, false, &cls);
	if (rc == SERVE_RACED)	/* removed meanwhile: a zero huge page now */
		rc = serve_huge(srv, a, hw, false, &cls);
	if (rc)
		return rc < 0 ? rc : 0;	/* gone: woken */
	pthread_mutex_lock(&f->stat_lock);
	f->st.faults[cls]++;
	f->st.lazy_pages += HUGE_PAGES;
	f->st.fault_ns += rs_now_ns() - t0;
	pthread_mutex_unlock(&f->stat_lock);
	return uffd_wake(srv->uffd, addr, HUGE_PAGES * PG);
}

static int serve_event(struct rs_serve *srv, const struct uffd_ev *ev)
{
	const char *what = srv->rec ? "record" : "restore";
	struct rs_area *a;
	uint64_t w;

	switch (ev->kind) {
	case UFFD_EV_FAULT:
		a = serve_area(srv, ev->addr, &w);
		if (!a && (srv->flags & SERVE_REGIONS))
			return tier_err(-EFAULT, "fault at %#" PRIxPTR
					" outside every region", ev->addr);
		if (!a)
			return tier_err(-EFAULT, "%s: fault at %#" PRIxPTR
					" outside the %s range", what, ev->addr,
					srv->rec ? "recorded" : "restored");
		if (srv->rec)
			return rec_fault(srv, a, w, ev);
		if (a->huge)
			return serve_fault_huge(srv, a, w);
		return serve_fault(srv, a, w, ev->addr);
	case UFFD_EV_WP:
		a = serve_area(srv, ev->addr, &w);
		if (srv->rec && a)
			return rec_wp(srv, a, w, ev);
		if (srv->rec)
			return tier_err(-EFAULT, "record: write-protect fault at %#"
					PRIxPTR " outside the recorded range",
					ev->addr);
		return tier_err(-EFAULT, "restore: unexpected write-protect fault at %#"
				PRIxPTR, ev->addr);
	case UFFD_EV_REMOVE:
	case UFFD_EV_UNMAP:
		mark_removed(srv, ev->addr, ev->end);
		return 0;
	default:
		return 0;
	}
}

int serve_handle(struct rs_serve *srv)
{
	struct uffd_ev ev[16];
	int i, n, rc = 0;

	pthread_mutex_lock(&srv->lock);
	n = uffd_read_events(srv->uffd, ev, 16);
	if (n < 0) {
		rc = n;
		if (!atomic_load(&srv->fate->error))
			fate_fail(srv->fate, rc);
		goto out;
	}
	/*
	 * REMOVEs first: once read, a REMOVE no longer holds installs off
	 * (EAGAIN), so a fault read in the same batch but served after it
	 * would be given the bytes its madvise is about to zap, or has.
	 */
	for (i = 0; i < n; i++)
		if (ev[i].kind == UFFD_EV_REMOVE || ev[i].kind == UFFD_EV_UNMAP) {
			mark_removed(srv, ev[i].addr, ev[i].end);
			ev[i].kind = UFFD_EV_OTHER;
		}
	for (i = 0; i < n || srv->nq; i++) {
		struct uffd_ev cur;

		if (i < n) {
			cur = ev[i];
		} else {	/* faults queued while draining for EAGAIN */
			cur = srv->q[0];
			memmove(srv->q, srv->q + 1, --srv->nq * sizeof(*srv->q));
		}
		/* dead: faulting threads stay blocked (never a zero page);
		 * REMOVE/UNMAP are still read so the VMM's munmap returns */
		if (atomic_load(&srv->fate->error))
			continue;
		rc = serve_event(srv, &cur);
		if (rc) {
			srv->fail_addr = cur.addr;
			fate_fail(srv->fate, rc);
		}
	}
	rc = n;
out:
	pthread_mutex_unlock(&srv->lock);
	return rc;
}

/*
 * Polls without sleeping for up to srv->spin_ns: a fault that comes while
 * the thread is still awake costs no wake-up of the handler. Bounded, and
 * only after serving, so an idle restore sleeps.
 */
static bool serve_spin(struct rs_serve *srv, struct pollfd *pfd)
{
	uint64_t end = rs_now_ns() + srv->spin_ns;

	do {
		if (poll(pfd, 2, 0) > 0)
			return true;
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	} while (rs_now_ns() < end);
	return false;
}

void *serve_thread(void *arg)
{
	struct rs_serve *srv = arg;
	struct pollfd pfd[2] = {
		{ .fd = srv->uffd, .events = POLLIN },
		{ .fd = srv->stop_fd, .events = POLLIN },
	};
	bool served = false;

	for (;;) {
		if (!(served && srv->spin_ns && serve_spin(srv, pfd)) &&
		    poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fate_fail(srv->fate, tier_err(-errno, "restore: poll: %m"));
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			fate_fail(srv->fate,
				  tier_err(-EIO, "restore: userfaultfd closed"));
			break;
		}
		served = false;
		if (pfd[0].revents & POLLIN)
			served = serve_handle(srv) > 0;
	}
	return NULL;
}
