/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * TIER_RESTORE_SIGBUS: the fault served in the faulting thread. The
 * userfaultfd is opened with UFFD_FEATURE_SIGBUS (store/uffd.c), so a
 * lazy page's first touch is no event for a handler thread but a SIGBUS
 * in the thread that touched it; the runtime's handler calls
 * tier_restore_fault(), which reads the page (and a window after it)
 * from its tier, checks it against the snapshot's checksum and installs
 * it with UFFDIO_COPY. Returning from the handler retries the access.
 * For in-process runtimes (a WebAssembly host): no handler thread to
 * wake, no second CPU, no mmap_lock taken for writing (the ioctls take
 * it for reading) and no TLB shootdown (a page is installed where there
 * was none, never copied on write from a shared one), which is why Faasm
 * found such runtimes scale with it (BENCHMARKS.md, "Faults in the
 * faulting thread": 5.7x no protection's throughput at 64 threads).
 *
 * Everything on the fault path must be async-signal-safe, since the
 * signal may land anywhere, inside malloc or holding any lock of the
 * interrupted thread:
 *  - no allocation and no lock: the context (struct tier_restore_thread)
 *    holds the thread's own pool connection and window buffer, made by
 *    tier_restore_thread_open in normal context; a context busy with a
 *    fault refuses a second one (atomic flag) rather than share buffers;
 *  - reads by pread(2) on descriptors opened beforehand, or by the pool
 *    transport's signal-safe read (rdma/pool.h: sendmsg/recvmsg on the
 *    connection, no reconnect, which would need getaddrinfo);
 *  - no tier_err, tier_log or snprintf (vsnprintf may allocate; the log
 *    hook is the caller's code): the reason is built by util/sigstr.h
 *    into the context, where the runtime reads it after it left the
 *    handler (siglongjmp), and into the restore's fate for the others;
 *  - counters and the fail-closed state are atomics (struct rs_sig),
 *    not stat_lock;
 *  - XXH3 (tier_csum) is a pure function of its bytes.
 *
 * Fail closed: a page that cannot be had is never installed (no zero
 * page, no partial window past a bad page); the restore is marked dead
 * (the first failing thread's reason is its reason) and every later
 * fault of any thread fails at once, so the runtime ends the instance
 * and tier_restore_stop leaves the range PROT_NONE.
 *
 * No REMOVE/UNMAP events are asked for (nobody reads the fd), so a
 * madvise(MADV_DONTNEED) by the runtime (an instance reset) just drops
 * the pages and their next touches fault here again; the installed
 * bitmap, which such a reset would make stale, is not consulted: the
 * kernel's SIGBUS says the page is missing, and a window stops at the
 * first page that is there.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier.h"
#include "cxl/cxl.h"
#include "rdma/pool.h"
#include "store/restore-int.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/sigstr.h"

#define SIG_MSG_MAX	512

struct tier_restore_thread {
	struct tier_restore *rs;
	struct pool *pool;		/* this thread's connection, or NULL */
	struct pool_seg *seg;
	bool lent;			/* pool/seg are the start's (src), lent */
	int cxl_fd;			/* the CXL object, or -1: its view */
	uint8_t *buf;			/* window pages */
	unsigned window;
	atomic_bool busy;
	char errmsg[SIG_MSG_MAX];
};

void sig_stats_add(struct rs_sig *g, struct tier_restore_stats *st)
{
	unsigned c;

	for (c = 0; c < TIER_CLASS_MAX; c++)
		st->faults[c] += atomic_load_explicit(&g->faults[c],
						      memory_order_relaxed);
	st->lazy_pages += atomic_load_explicit(&g->lazy_pages, memory_order_relaxed);
	st->pool_bytes += atomic_load_explicit(&g->pool_bytes, memory_order_relaxed);
	st->local_bytes += atomic_load_explicit(&g->local_bytes, memory_order_relaxed);
	st->fault_ns += atomic_load_explicit(&g->fault_ns, memory_order_relaxed);
}

int tier_restore_thread_open(struct tier_restore *rs,
			     struct tier_restore_thread **ret)
{
	struct tier_restore_thread *t;
	int err, rc;

	if (!rs || !ret)
		return tier_err(-EINVAL, "restore: no handle");
	if (!(rs->flags & TIER_RESTORE_SIGBUS))
		return tier_err(-EINVAL, "restore of %s: not in SIGBUS mode "
				"(TIER_RESTORE_SIGBUS): its faults are served "
				"by a handler", rs->snap->name);
	err = atomic_load(&rs->fate.error);
	if (err)
		return tier_err(err, "restore of %s is dead: %s", rs->snap->name,
				atomic_load(&rs->sig.msg_ready) ?
				rs->fate.errmsg : "a fault failed");
	t = calloc(1, sizeof(*t));
	if (!t)
		return tier_err(-ENOMEM, "out of memory");
	t->rs = rs;
	t->cxl_fd = -1;
	t->window = rs->srv.window;
	t->buf = aligned_alloc(PG, (size_t)t->window * PG);
	if (!t->buf) {
		rc = tier_err(-ENOMEM, "out of memory");
		goto err;
	}
	/*
	 * Each faulting thread has a connection of its own, one request in
	 * flight each. The first one to ask gets the start's: nobody reads
	 * it once the start returned (the prefetch and the populator are
	 * done, no fault server runs in this mode), and a connection less
	 * is a connect and a hello less on an instance's way to its first
	 * result. It goes back to the restore, which closes it.
	 */
	if (rs->src.seg) {
		if (!atomic_exchange(&rs->sig.start_conn_lent, true)) {
			t->pool = rs->src.pool;
			t->seg = rs->src.seg;
			t->lent = true;
		} else {
			rc = src_pool_connect(&rs->src, &t->pool, &t->seg);
			if (rc)
				goto err;
		}
		if (!pool_sigsafe(t->pool)) {
			rc = tier_err(-EOPNOTSUPP, "restore of %s: this pool's "
				      "transport cannot be read from a signal "
				      "handler: restore without TIER_RESTORE_SIGBUS",
				      rs->snap->name);
			goto err;
		}
	}
	/* a fd of its own, read by pread; devdax has none but cannot
	 * shrink under its view, so a copy from the view cannot SIGBUS */
	if (rs->src.cxl_obj && cxl_obj_share_fd(rs->src.cxl_obj, &t->cxl_fd) &&
	    !rs->src.view[PLACER_SRC_CXL]) {
		rc = tier_err(-EOPNOTSUPP, "restore of %s: the CXL object can be "
			      "neither read by fd nor through a view",
			      rs->snap->name);
		goto err;
	}
	atomic_fetch_add(&rs->sig.threads, 1);
	*ret = t;
	return 0;
err:
	if (t->lent) {		/* back to the restore, open */
		atomic_store(&rs->sig.start_conn_lent, false);
		t->lent = false;
		t->pool = NULL;
		t->seg = NULL;
	}
	t->rs = NULL;
	tier_restore_thread_close(t);
	return rc;
}

void tier_restore_thread_close(struct tier_restore_thread *t)
{
	if (!t)
		return;
	if (t->lent)
		atomic_store(&t->rs->sig.start_conn_lent, false);
	else if (t->seg || t->pool)
		src_pool_disconnect(&t->pool, &t->seg);
	if (t->cxl_fd >= 0)
		close(t->cxl_fd);
	if (t->rs)
		atomic_fetch_sub(&t->rs->sig.threads, 1);
	free(t->buf);
	free(t);
}

const char *tier_restore_thread_errmsg(const struct tier_restore_thread *t)
{
	return t ? t->errmsg : "";
}

/* pread until @len bytes are in; a file cut short is -EIO. */
static int sig_pread(int fd, void *buf, size_t len, uint64_t off,
		     struct sigstr *why, const char *what)
{
	char *b = buf;

	while (len) {
		ssize_t r = pread(fd, b, len, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int rc = r < 0 ? -errno : -EIO;

			ss_str(why, what);
			ss_str(why, ": read at offset ");
			ss_u64(why, off);
			ss_str(why, ": ");
			if (r < 0)
				ss_errno(why, rc);
			else
				ss_str(why, "file shorter than expected");
			return rc;
		}
		b += r;
		off += r;
		len -= r;
	}
	return 0;
}

static int sig_read(struct tier_restore_thread *t, unsigned src, uint64_t off,
		    size_t len, struct sigstr *why)
{
	struct rs_src *s = &t->rs->src;
	struct pool_iov iov = { .off = off, .buf = t->buf, .len = len };

	switch (src) {
	case PLACER_SRC_POOL:
		if (!t->seg) {
			ss_str(why, "no pool connection in this thread's context");
			return -EINVAL;
		}
		return pool_readv_sigsafe(t->seg, &iov, 1, why);
	case PLACER_SRC_CXL:
		if (t->cxl_fd >= 0)
			return sig_pread(t->cxl_fd, t->buf, len, off, why,
					 "CXL object");
		if (off > s->view_len[src] || len > s->view_len[src] - off) {
			ss_str(why, "CXL object: page past its end");
			return -EIO;
		}
		memcpy(t->buf, s->view[src] + off, len);
		return 0;
	case PLACER_SRC_IMAGE:
		return sig_pread(s->image_fd, t->buf, len, off, why, "image");
	case PLACER_SRC_LOCAL:
		return sig_pread(s->local_fd, t->buf, len, off, why,
				 "local file");
	}
	ss_str(why, "no source for this page");
	return -EINVAL;
}

/* The restore is dead: the first to fail gives it its reason. */
static int sig_fail(struct tier_restore_thread *t, int rc)
{
	struct rs_fate *f = &t->rs->fate;
	int expected = 0;
	size_t n;

	if (!atomic_compare_exchange_strong(&f->error, &expected, rc))
		return rc;
	n = strlen(t->errmsg);
	if (n >= sizeof(f->errmsg))
		n = sizeof(f->errmsg) - 1;
	memcpy(f->errmsg, t->errmsg, n);
	f->errmsg[n] = '\0';
	atomic_store(&t->rs->sig.msg_ready, true);
	return rc;
}

static int sig_fault(struct tier_restore_thread *t, uintptr_t addr,
		     struct sigstr *why)
{
	struct tier_restore *rs = t->rs;
	struct rs_area *a = &rs->area;
	uint64_t t0 = rs_now_ns(), w = (addr - a->base) / PG, cnt, k;
	const struct tier_snap *snap = rs->snap;
	const struct placer_ext *e;
	size_t done;
	unsigned src;
	int rc;

	rc = atomic_load(&rs->fate.error);
	if (rc) {
		/* the thread that failed it is between its CAS and its
		 * memcpy for a few instructions at most: wait them out */
		for (k = 0; k < 1000000 && !atomic_load(&rs->sig.msg_ready); k++)
			;
		ss_str(why, "restore of ");
		ss_str(why, snap->name);
		ss_str(why, " is dead: ");
		ss_str(why, atomic_load(&rs->sig.msg_ready) ? rs->fate.errmsg :
		       "another thread's fault failed");
		return rc;
	}
	ss_str(why, "snapshot ");
	ss_str(why, snap->name);
	ss_str(why, ": page ");
	ss_u64(why, a->first + w);
	ss_str(why, ": ");
	e = area_find_ext(a, w);
	if (!e || !(e->method == PLACER_M_LAZY || e->method == PLACER_M_COPY ||
		    (e->method == PLACER_M_MAP && a->ovl && a->ovl[e - a->ext]))) {
		/* no page of userfaultfd's: a zero-copy page past the end
		 * of a file cut short (tier_restore_sigbus_reason names
		 * it), or a SIGBUS of nothing of ours; the caller decides */
		return -ENOENT;
	}
	src = e->source;
	cnt = e->method == PLACER_M_LAZY ?
	      area_fault_window(a, e, w, t->window, false) : 1;
	if (src != PLACER_SRC_NONE) {
		rc = sig_read(t, src, ext_off(e, w), cnt * PG, why);
		if (rc)
			return sig_fail(t, rc);
		/* every page, the image's too: the faulting one must be
		 * right, the window is cut before a wrong one (which fails
		 * when it is touched itself, naming itself) */
		for (k = 0; k < cnt && snap->csum; k++)
			if (tier_csum(t->buf + k * PG, PG) !=
			    snap->csum[a->first + w + k])
				break;
		if (snap->csum && !k) {
			ss_str(why, "from the ");
			ss_str(why, src_name(src));
			ss_str(why, ": checksum mismatch");
			return sig_fail(t, -EBADMSG);
		}
		if (snap->csum)
			cnt = k;
	}
	rc = uffd_install_sigsafe(rs->srv.uffd, a->base + w * PG,
				  src == PLACER_SRC_NONE ? NULL : t->buf,
				  cnt * PG, &done);
	if (rc == -EEXIST)	/* another thread was first: nothing to do */
		return 0;
	if (rc) {
		ss_str(why, "install: ");
		ss_errno(why, rc);
		return sig_fail(t, rc);
	}
	cnt = done / PG;
	atomic_fetch_add_explicit(&rs->sig.faults[e->cls < TIER_CLASS_MAX ?
						  e->cls : TIER_CLASS_COLD],
				  1, memory_order_relaxed);
	atomic_fetch_add_explicit(&rs->sig.lazy_pages, cnt, memory_order_relaxed);
	if (src == PLACER_SRC_POOL)
		atomic_fetch_add_explicit(&rs->sig.pool_bytes, done,
					  memory_order_relaxed);
	else if (src == PLACER_SRC_IMAGE || src == PLACER_SRC_LOCAL)
		atomic_fetch_add_explicit(&rs->sig.local_bytes, done,
					  memory_order_relaxed);
	atomic_fetch_add_explicit(&rs->sig.fault_ns, rs_now_ns() - t0,
				  memory_order_relaxed);
	return 0;
}

int tier_restore_fault(struct tier_restore_thread *t, const void *addr)
{
	uintptr_t p = (uintptr_t)addr & ~(uintptr_t)(PG - 1);
	struct sigstr why;
	int saved = errno;	/* the interrupted code's, kept for it */
	struct rs_area *a;
	int rc;

	if (!t)
		return -EINVAL;
	a = &t->rs->area;
	if (t->rs->srv.uffd < 0 || p < a->base || p - a->base >= a->len)
		return -ENOENT;
	if (atomic_exchange(&t->busy, true)) {
		/* its buffer is in use below us: a fault inside the handler's
		 * own copy, or two threads sharing one context */
		return -EBUSY;
	}
	ss_init(&why, t->errmsg, sizeof(t->errmsg));
	rc = sig_fault(t, p, &why);
	if (!rc || rc == -ENOENT)
		t->errmsg[0] = '\0';
	atomic_store(&t->busy, false);
	errno = saved;
	return rc;
}
