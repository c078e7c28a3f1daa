/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The restorer: executes a plan blindly. Every policy (ours and the
 * baselines) is a list of extents, each with a source and a method, so
 * this file holds no policy, only the order that makes a restore cheap:
 *
 *   0. the range becomes fresh anonymous memory (MAP_FIXED), so nothing
 *      the caller left there can leak into the guest;
 *   1. MAP extents: one mmap MAP_PRIVATE|MAP_FIXED per run of extents with
 *      one source and contiguous source offsets (VMAs cost ~1 us each);
 *      with a shmem CXL object in the identity layout, one mmap of it per
 *      cluster instead (rs_clusters: its other pages are holes, served
 *      through the cluster's one registration, made right after its
 *      mmap). A second thread, the populator, lists what to populate
 *      and prefetch while the start maps (rs_lists), populates the pages
 *      as they are mapped and on through step 3 (in a cluster, one page
 *      per fault-around window: rs_pop_windows);
 *   2. COPY and LAZY extents outside clusters: one UFFDIO_REGISTER
 *      (MISSING) per run of adjacent ones; ANON extents stay unregistered
 *      (kernel zero pages);
 *   3. COPY extents: fetched in batches of up to 2 MiB, smaller toward
 *      the end (one pool_readv of many ranges per batch, or read in place
 *      from a file pool's page cache) and installed with UFFDIO_COPY
 *      before the guest runs; the populator takes batches too once the
 *      populate list is empty, the start chunks of that list once the
 *      batches are gone, and the populator then becomes the fault
 *      handler;
 *   4. LAZY extents: a handler fetches the faulting page plus a prefetch
 *      window of following lazy pages not yet installed.
 *
 * Fail closed: a page that cannot be fetched (dead pool, short read,
 * checksum mismatch) is never installed. The restore is marked dead,
 * on_error is called once from the thread that served the fault, and no
 * further fault is served: faulting threads stay blocked in the kernel.
 * A failure inside tier_restore_start undoes everything and leaves the
 * range PROT_NONE anonymous memory, so a guest run by mistake crashes
 * instead of reading zeros. tier_restore_stop of a dead restore also
 * turns the range PROT_NONE before closing the userfaultfd (closing it
 * would otherwise let the blocked threads through on kernel zero pages).
 *
 * REMOVE events (madvise(DONTNEED) by a balloon): the range now reads as
 * zero in an anonymous mapping, so its pages are marked "removed" and a
 * later fault there gets UFFDIO_ZEROPAGE. Firecracker unregisters the
 * range instead, which has the same result but splits VMAs.
 *
 * Record mode (TIER_RESTORE_RECORD) needs no plan: the whole range is
 * registered MISSING|WP and served from the image one page per fault (a
 * prefetch window would hide touches). A read fault installs the page
 * write-protected (log R); a write fault installs it writable (log W); a
 * WP fault on an R page upgrades it to RW and un-protects it.
 *
 * on_error runs on the serving thread with serve_lock held: it may read
 * the stats and stop the guest, but must not call tier_restore_stop.
 *
 * Locking: one thread serves at a time (serve_lock: the handler thread,
 * or the caller of tier_restore_handle); it alone touches the page
 * bitmaps and the pool handle. Before the handler exists, the prefetch
 * of step 3 may run in two threads: they share the installed bitmap
 * (atomic OR) and drain events under pf_lock, and the populator reads a
 * file pool through a segment handle of its own. Pool handles are used
 * by one thread at a time: start connects one and prefetches through it
 * before the handler exists, then hands it over, so a dead pool fails
 * the start, not the first fault. Counters and the trace are under
 * stat_lock so tier_restore_stats and save_trace may run from anywhere.
 * The start and the populator meet through atomics, never sleeping (on
 * this VM a sleeping thread waited 0.1-3 ms for its vCPU): pop_go (the
 * extents and sources are ready, or stop, or serve), lists (rs_lists is
 * done), pop_ready (mapped and registered up to there), pop_done (its
 * results are set). What step 3 needs that takes mmap_lock for writing
 * (the pool segment's mapping, bounce buffers, batch memory) is made in
 * rs_lists, before either thread populates through process_madvise,
 * which holds it for reading: an mmap queued behind such a call stalled
 * a batch by 4 ms.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tier.h"
#include "cxl/cxl.h"
#include "placer/placer.h"
#include "rdma/pool.h"
#include "store/format.h"
#include "store/restore.h"
#include "store/snap.h"
#include "store/uffd.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"
#include "util/uri.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define PG			TIER_PAGE_SIZE
#define BATCH_PAGES		512	/* prefetch: 2 MiB per batch */
#define BATCH_MIN		64
#define BATCH_PIECES		256	/* ranges per batch (pool_readv iovs) */
#define WINDOW_MAX		512	/* lazy prefetch window cap, pages */
#define DEFAULT_WINDOW		8
#define EAGAIN_TRIES		10000
#define LOADER_CHUNK		(1U << 20)

#define POP_OVERLAY	(-2)		/* populate range fd: inside an overlay */
#define POP_SERVE	2		/* pop_go: the populator serves faults */

struct rs_range {			/* readahead: fd, off; populate: addr */
	int fd;
	uint64_t off, len;
};

struct piece;
struct pf_batch;

struct tier_restore {
	struct tier_snap *snap;
	enum tier_policy policy;
	unsigned flags;
	unsigned window;		/* pages per lazy fault */
	uint8_t *base;
	size_t len;
	uint64_t first;			/* image page at base */
	uint64_t npages;		/* pages in the range */
	uint64_t t0;			/* CLOCK_MONOTONIC at start */

	struct placer_ext *ext;		/* clipped, pages relative to base */
	size_t n;
	uint8_t *ovl;			/* per extent: in an overlay cluster */
	bool overlay;			/* the CXL object is shmem: overlay */
	bool ovl_checked;		/* object holds exactly the plan's pages */
	uint64_t plan_cxl_bytes;	/* bytes of CXL extents, whole plan */

	int uffd;
	int stop_fd;			/* eventfd: wakes the handler to exit */
	pthread_t thread;
	bool have_thread;

	/* sources */
	int image_fd;			/* borrowed from the snapshot */
	uint64_t image_size;
	int local_fd;
	uint64_t local_size;
	char local_path[4096];
	struct cxl_tier *cxl;
	struct cxl_obj *cxl_obj;
	struct tier_uri pool_uri;
	char obj_name[128];
	struct pool *hpool;		/* start's, then the server's */
	struct pool_seg *hseg;

	/* MADV_POPULATE_READ ranges, done while the prefetch runs */
	struct rs_range *pop;
	size_t npop, popcap;
	pthread_t populator;
	bool have_populator;
	atomic_int pop_go;		/* 1: extents, sources ready; -1: stop;
					 * POP_SERVE: become the handler */
	atomic_uintptr_t pop_ready;	/* mapped and registered below this */
	atomic_bool pop_done;		/* its results are set */
	atomic_int lists;		/* 0: being made; 1: made; -errno */
	char lists_msg[256];
	cpu_set_t pop_cpus;		/* the start's affinity */
	bool pop_cpus_set;		/* ... to give the populator back */
	bool pop_touch;			/* tests: populate every window by
					 * a read, as while mapping */
	int pop_rc;
	char pop_msg[256];

	/*
	 * The prefetch, cut into batches that the start takes one by one
	 * and the populator too once its ranges are done (rs_pf_work): with
	 * a file pool or none, whose reads need no shared connection.
	 */
	struct piece *pf;		/* every COPY piece, batch after batch */
	size_t npf;
	struct pf_batch *pfb;
	size_t npfb;
	uint64_t pf_pages;		/* pages with bytes to fetch */
	atomic_size_t pf_next;		/* the next batch to take */
	bool pf_help;			/* the populator takes batches too */
	struct pool_seg *pfseg;		/* its own segment handle */
	struct batch *pfbuf[2];		/* the start's and the helper's */
	struct pop_batch *popb[2];	/* the start's and the populator's */
	atomic_size_t pop_next;		/* the next chunk of pop to take */
	struct pool *pfpool;		/* ... on its own connection (TCP) */
	pthread_mutex_t pf_lock;	/* draining events during the prefetch */
	int pf_rc;
	char pf_msg[256];

	/* readahead loader (PLACER_F_READAHEAD) */
	struct rs_range *ra;
	size_t nra, racap;
	pthread_t loader;
	bool have_loader;
	atomic_bool loader_stop;

	/* serving: under serve_lock */
	pthread_mutex_t serve_lock;
	uint64_t *installed;		/* bitmap over the range */
	uint64_t *removed;		/* REMOVE/UNMAP seen: zero on refault */
	void *bounce;			/* window pages */
	void *zero;			/* one zero page (record) */
	struct uffd_ev *q;		/* faults read while draining for EAGAIN */
	size_t nq, qcap;

	/* counters, trace: under stat_lock */
	pthread_mutex_t stat_lock;
	struct tier_restore_stats st;
	uint32_t *rec_idx;		/* record: entry index + 1 per page */
	struct tier_trace_ent *ent;
	size_t nent, entcap;
	bool recording;

	atomic_int error;
	char errmsg[256];
	void (*on_error)(struct tier_restore *rs, int err, const char *msg,
			 void *arg);
	void *arg;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static inline bool bit_test(const uint64_t *b, uint64_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

static inline void bit_set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ULL << (i % 64);
}

static inline void bit_clear(uint64_t *b, uint64_t i)
{
	b[i / 64] &= ~(1ULL << (i % 64));
}

static const char *src_name(unsigned src)
{
	static const char *const names[] = {
		[PLACER_SRC_NONE] = "none", [PLACER_SRC_IMAGE] = "image",
		[PLACER_SRC_LOCAL] = "local file", [PLACER_SRC_CXL] = "cxl",
		[PLACER_SRC_POOL] = "pool",
	};

	return src < sizeof(names) / sizeof(names[0]) ? names[src] : "?";
}

/* Marks the restore dead (once) and tells the VMM; returns @rc. */
static int rs_fail(struct tier_restore *rs, int rc)
{
	int expected = 0;

	if (!atomic_compare_exchange_strong(&rs->error, &expected, rc))
		return rc;
	snprintf(rs->errmsg, sizeof(rs->errmsg), "%s", tier_errmsg());
	pthread_mutex_lock(&rs->stat_lock);
	rs->st.error = rc;
	pthread_mutex_unlock(&rs->stat_lock);
	tier_log(TIER_LOG_ERR, "restore of %s: stopped serving: %s",
		 rs->snap->name, rs->errmsg);
	if (rs->on_error)
		rs->on_error(rs, rc, rs->errmsg, rs->arg);
	return rc;
}

/* The extent holding range page @w (extents cover the range). */
static const struct placer_ext *rs_find(const struct tier_restore *rs,
					uint64_t w)
{
	size_t lo = 0, hi = rs->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct placer_ext *e = &rs->ext[mid];

		if (w < e->page)
			hi = mid;
		else if (w >= e->page + e->npages)
			lo = mid + 1;
		else
			return e;
	}
	return NULL;
}

static inline uint64_t ext_off(const struct placer_ext *e, uint64_t w)
{
	return e->src_off + (w - e->page) * PG;
}

/*
 * Compares fetched pages with the snapshot's checksums: a stale pool
 * segment or a corrupt CXL object or local file must not reach the guest.
 * Not the image's pages: the checksums were computed from them, and at
 * ~1 us a page here XXH3 costs as much as the copy.
 */
static int rs_verify(const struct tier_restore *rs, uint64_t w,
		     const void *buf, uint64_t np, unsigned src)
{
	const struct tier_snap *s = rs->snap;
	uint64_t i;

	if (!s->csum || src == PLACER_SRC_IMAGE)
		return 0;
	for (i = 0; i < np; i++) {
		uint64_t p = rs->first + w + i;

		if (tier_csum((const char *)buf + i * PG, PG) != s->csum[p])
			return tier_err(-EBADMSG,
					"snapshot %s: page %" PRIu64 " from the %s: checksum mismatch",
					s->name, p, src_name(src));
	}
	return 0;
}

/* ------------------------------------------------------------ sources */

static int rs_read_src(struct tier_restore *rs, struct pool_seg *seg,
		       unsigned src, uint64_t off, void *buf, size_t len)
{
	switch (src) {
	case PLACER_SRC_POOL: {
		struct pool_iov iov = { .off = off, .buf = buf, .len = len };

		if (!seg)
			return tier_err(-EINVAL, "restore: no pool segment open");
		return pool_readv(seg, &iov, 1);
	}
	case PLACER_SRC_CXL:
		return cxl_obj_read(rs->cxl_obj, off, buf, len);
	case PLACER_SRC_IMAGE:
		return pread_full(rs->image_fd, buf, len, off, rs->snap->image);
	case PLACER_SRC_LOCAL:
		return pread_full(rs->local_fd, buf, len, off, rs->local_path);
	}
	return tier_err(-EINVAL, "restore: cannot read from source %u", src);
}

static void rs_count_bytes(struct tier_restore *rs, unsigned src, uint64_t n)
{
	if (src == PLACER_SRC_POOL)
		rs->st.pool_bytes += n;
	else if (src == PLACER_SRC_IMAGE || src == PLACER_SRC_LOCAL)
		rs->st.local_bytes += n;
}

static int rs_pool_connect(struct tier_restore *rs, struct pool **rp,
			   struct pool_seg **rseg)
{
	int rc;

	rc = pool_open(&rs->pool_uri, rp);
	if (rc)
		return rc;
	rc = pool_seg_open(*rp, rs->obj_name, rseg);
	if (rc) {
		pool_close(*rp);
		*rp = NULL;
	}
	return rc;
}

static void rs_pool_disconnect(struct pool **p, struct pool_seg **seg)
{
	pool_seg_close(*seg);
	pool_close(*p);
	*seg = NULL;
	*p = NULL;
}

static int rs_open_file(const char *path, int *ret_fd, uint64_t *ret_size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return tier_err(-errno, "%s: %m", path);
	if (fstat(fd, &st) < 0) {
		int rc = tier_err(-errno, "%s: %m", path);

		close(fd);
		return rc;
	}
	*ret_fd = fd;
	*ret_size = st.st_size;
	return 0;
}

/* Opens what the extents reference, the pool connection included. */
static int rs_open_sources(struct tier_restore *rs, const struct plan *plan,
			   const struct tier_restore_attr *attr)
{
	bool cxl = false, image = false, local = false, pool = false;
	char buf[512];
	const char *uri;
	struct tier_uri u;
	struct stat st;
	size_t i;
	int rc;

	for (i = 0; i < rs->n; i++) {
		const struct placer_ext *e = &rs->ext[i];

		cxl |= e->source == PLACER_SRC_CXL;
		image |= e->source == PLACER_SRC_IMAGE;
		local |= e->source == PLACER_SRC_LOCAL;
		pool |= e->source == PLACER_SRC_POOL;
	}
	snap_object_name(rs->snap, rs->policy, rs->obj_name, sizeof(rs->obj_name));

	if (image) {
		rc = snap_image_fd(rs->snap);
		if (rc < 0)
			return rc;
		rs->image_fd = rc;
		if (fstat(rs->image_fd, &st) < 0)
			return tier_err(-errno, "%s: %m", rs->snap->image);
		rs->image_size = st.st_size;
	}
	if (local) {
		snap_local_path(rs->snap, rs->policy, rs->local_path,
				sizeof(rs->local_path));
		rc = rs_open_file(rs->local_path, &rs->local_fd, &rs->local_size);
		if (rc)
			return rc;
	}
	if (cxl) {
		uri = attr->cxl ? attr->cxl : plan && plan->hdr.cxl[0] ?
		      plan->hdr.cxl : CXL_DEFAULT_URI;
		rc = uri_parse(uri, URI_WANT_CXL, &u);
		if (rc)
			return rc;
		rc = cxl_open(&u, &rs->cxl);
		if (rc)
			return rc;
		rc = cxl_obj_open(rs->cxl, rs->obj_name, &rs->cxl_obj);
		if (rc)
			return rc;
	}
	if (pool) {
		if (attr->pool) {
			uri = attr->pool;
		} else if (plan && plan->hdr.pool[0]) {
			uri = plan->hdr.pool;
		} else {
			snap_default_pool(rs->snap, buf, sizeof(buf));
			uri = buf;
		}
		rc = uri_parse(uri, URI_WANT_POOL, &rs->pool_uri);
		if (rc)
			return rc;
		/*
		 * One connection serves the prefetch and then the handler
		 * (see "Locking" above); connecting here makes a dead pool
		 * fail the start rather than the first fault.
		 */
		rc = rs_pool_connect(rs, &rs->hpool, &rs->hseg);
		if (rc)
			return rc;
	}
	return 0;
}

/* The helper's segment handle, and its connection if it has one. */
static void rs_pf_helper_end(struct tier_restore *rs)
{
	if (rs->pfpool) {
		rs_pool_disconnect(&rs->pfpool, &rs->pfseg);
		return;
	}
	pool_seg_close(rs->pfseg);
	rs->pfseg = NULL;
}

static void rs_close_sources(struct tier_restore *rs)
{
	rs_pf_helper_end(rs);
	if (rs->hseg || rs->hpool)
		rs_pool_disconnect(&rs->hpool, &rs->hseg);
	cxl_obj_close(rs->cxl_obj);
	cxl_close(rs->cxl);
	rs->cxl_obj = NULL;
	rs->cxl = NULL;
	if (rs->local_fd >= 0)
		close(rs->local_fd);
	rs->local_fd = -1;
}

/* ------------------------------------------------------------ serving */

static int rs_serve_event(struct tier_restore *rs, const struct uffd_ev *ev);

static void rs_mark_removed(struct tier_restore *rs, uintptr_t start,
			    uintptr_t end)
{
	uintptr_t b = (uintptr_t)rs->base, e = b + rs->len;
	uint64_t w;

	if (start < b)
		start = b;
	if (end > e)
		end = e;
	for (; start < end; start += PG) {
		w = (start - b) / PG;
		bit_clear(rs->installed, w);
		bit_set(rs->removed, w);
	}
}

/*
 * A COPY, ZEROPAGE or WRITEPROTECT got EAGAIN: a REMOVE/UNMAP is pending
 * and must be read first. Handles those now and queues faults for later.
 */
static int rs_drain(struct tier_restore *rs)
{
	struct uffd_ev ev[16];
	int i, n;

	n = uffd_read_events(rs->uffd, ev, 16);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		if (ev[i].kind == UFFD_EV_REMOVE || ev[i].kind == UFFD_EV_UNMAP) {
			rs_mark_removed(rs, ev[i].addr, ev[i].end);
			continue;
		}
		if (ev[i].kind == UFFD_EV_OTHER)
			continue;
		if (rs->nq == rs->qcap) {
			size_t cap = rs->qcap ? rs->qcap * 2 : 64;
			struct uffd_ev *q = realloc(rs->q, cap * sizeof(*q));

			if (!q)
				return tier_err(-ENOMEM, "restore: out of memory");
			rs->q = q;
			rs->qcap = cap;
		}
		rs->q[rs->nq++] = ev[i];
	}
	if (!n)
		sched_yield();
	return 0;
}

/* The prefetch's drain: two threads may prefetch at once. */
static int rs_drain_pf(struct tier_restore *rs)
{
	int rc;

	pthread_mutex_lock(&rs->pf_lock);
	rc = rs_drain(rs);
	pthread_mutex_unlock(&rs->pf_lock);
	return rc;
}

/* Runs @op until it stops saying EAGAIN, draining events in between. */
#define RS_RETRY(rs, call)	RS_RETRY_(rs, call, rs_drain)
#define RS_RETRY_PF(rs, call)	RS_RETRY_(rs, call, rs_drain_pf)
#define RS_RETRY_(rs, call, drain) ({					\
		int rs_rc_, rs_try_ = 0;				\
		while ((rs_rc_ = (call)) == -EAGAIN &&			\
		       rs_try_++ < EAGAIN_TRIES) {			\
			rs_rc_ = drain(rs);				\
			if (rs_rc_)					\
				break;					\
		}							\
		if (rs_rc_ == -EAGAIN)					\
			rs_rc_ = tier_err(-EAGAIN,			\
				"restore: userfaultfd busy for too long"); \
		rs_rc_;							\
	})

/*
 * An install that found no registered mapping (ENOENT: the VMM unmapped
 * or replaced the range under us; ESRCH: the process is exiting) lost a
 * race with the VMM, not a page: there is nothing left to serve there.
 * Read the pending UNMAP, wake whoever waited, and go on.
 */
static int rs_lost(struct tier_restore *rs, int rc, uintptr_t addr,
		   size_t len)
{
	if (rc != -ENOENT && rc != -ESRCH)
		return rc;
	tier_dbg("restore: %s: dropped", tier_errmsg());
	if (rc == -ESRCH)
		return 0;
	uffd_wake(rs->uffd, addr, len);
	return rs_drain(rs);
}

/* How many pages from @w on a fault may fetch: same source, contiguous in
 * it, lazy, not yet installed nor removed, within the window. */
static uint64_t rs_window(struct tier_restore *rs, const struct placer_ext *e,
			  uint64_t w)
{
	const struct placer_ext *end = rs->ext + rs->n;
	uint64_t cnt = 1, next = w + 1;

	while (cnt < rs->window) {
		if (next >= e->page + e->npages) {
			const struct placer_ext *f = e + 1;

			if (f >= end || f->method != PLACER_M_LAZY ||
			    f->source != e->source ||
			    (e->source != PLACER_SRC_NONE &&
			     f->src_off != ext_off(e, next)))
				break;
			e = f;
		}
		if (bit_test(rs->installed, next) || bit_test(rs->removed, next))
			break;
		cnt++;
		next++;
	}
	return cnt;
}

/* Atomic: two threads prefetch at once, into pages of one bitmap word. */
static void rs_mark_installed(struct tier_restore *rs, uint64_t w, uint64_t n)
{
	for (; n--; w++)
		__atomic_fetch_or(&rs->installed[w / 64], 1ULL << (w % 64),
				  __ATOMIC_RELAXED);
}

static int rs_fault(struct tier_restore *rs, uintptr_t addr)
{
	uint64_t t0 = now_ns(), w, cnt, off;
	const struct placer_ext *e;
	unsigned src;
	int rc;

	if (addr < (uintptr_t)rs->base || addr >= (uintptr_t)rs->base + rs->len)
		return tier_err(-EFAULT, "restore: fault at %#" PRIxPTR
				" outside the restored range", addr);
	w = (addr - (uintptr_t)rs->base) / PG;
	if (bit_test(rs->installed, w))	/* installed since it faulted */
		return uffd_wake(rs->uffd, addr, PG);
	if (bit_test(rs->removed, w)) {
		rc = RS_RETRY(rs, uffd_zeropage(rs->uffd, addr, PG, 0));
		if (rc)
			return rs_lost(rs, rc, addr, PG);
		bit_set(rs->installed, w);
		return 0;
	}
	e = rs_find(rs, w);
	/*
	 * A MAP page faults only inside an overlay cluster, and only if the
	 * object has a hole where it should have the page: fetched like a
	 * lazy page, so the checksum decides (a damaged object fails closed).
	 */
	if (!e || !(e->method == PLACER_M_LAZY || e->method == PLACER_M_COPY ||
		    (e->method == PLACER_M_MAP && rs->ovl &&
		     rs->ovl[e - rs->ext])))
		return tier_err(-EFAULT, "restore: page %" PRIu64
				" faulted but is not served by userfaultfd",
				rs->first + w);

	/*
	 * Installed without waking, counted, then woken: a thread that saw
	 * its page must also see it in the counters (a VMM reads the stats
	 * right after the guest finished).
	 */
	src = e->source;
	cnt = e->method == PLACER_M_LAZY ? rs_window(rs, e, w) : 1;
	if (src == PLACER_SRC_NONE) {
		rc = RS_RETRY(rs, uffd_zeropage(rs->uffd, addr, cnt * PG,
						UFFD_COPY_DONTWAKE));
		if (rc)
			return rs_lost(rs, rc, addr, cnt * PG);
	} else {
		if (src == PLACER_SRC_POOL && !rs->hseg) {
			rc = rs_pool_connect(rs, &rs->hpool, &rs->hseg);
			if (rc)
				return rc;
		}
		off = ext_off(e, w);
		rc = rs_read_src(rs, rs->hseg, src, off, rs->bounce, cnt * PG);
		if (rc)
			return tier_err_ctx(rc, "page %" PRIu64, rs->first + w);
		rc = rs_verify(rs, w, rs->bounce, cnt, src);
		if (rc)
			return rc;
		rc = RS_RETRY(rs, uffd_copy(rs->uffd, addr, rs->bounce,
					    cnt * PG, UFFD_COPY_DONTWAKE));
		if (rc)
			return rs_lost(rs, rc, addr, cnt * PG);
	}
	rs_mark_installed(rs, w, cnt);

	pthread_mutex_lock(&rs->stat_lock);
	rs->st.faults[e->cls < TIER_CLASS_MAX ? e->cls : TIER_CLASS_COLD]++;
	rs->st.lazy_pages += cnt;
	rs_count_bytes(rs, src, cnt * PG);
	rs->st.fault_ns += now_ns() - t0;
	pthread_mutex_unlock(&rs->stat_lock);
	return uffd_wake(rs->uffd, addr, cnt * PG);
}

/* ---- record mode */

static int rec_log(struct tier_restore *rs, uint64_t w, enum tier_access k)
{
	struct tier_trace_ent *ent;
	int rc = 0;

	pthread_mutex_lock(&rs->stat_lock);
	if (!rs->recording)
		goto out;
	if (rs->rec_idx[w]) {
		ent = &rs->ent[rs->rec_idx[w] - 1];
		if (k == TIER_ACCESS_W && ent->kind == TIER_ACCESS_R)
			ent->kind = TIER_ACCESS_RW;
		goto out;
	}
	if (rs->nent == rs->entcap) {
		size_t cap = rs->entcap ? rs->entcap * 2 : 1024;

		ent = realloc(rs->ent, cap * sizeof(*ent));
		if (!ent) {
			rc = tier_err(-ENOMEM, "record: out of memory");
			goto out;
		}
		rs->ent = ent;
		rs->entcap = cap;
	}
	rs->ent[rs->nent] = (struct tier_trace_ent){
		.page = rs->first + w,
		.t_ns = now_ns() - rs->t0,
		.kind = k,
	};
	rs->rec_idx[w] = ++rs->nent;
out:
	pthread_mutex_unlock(&rs->stat_lock);
	return rc;
}

static int rec_fault(struct tier_restore *rs, const struct uffd_ev *ev)
{
	uint64_t t0 = now_ns(), w, p;
	const void *src = rs->zero;
	bool zero;
	int rc;

	if (ev->addr < (uintptr_t)rs->base ||
	    ev->addr >= (uintptr_t)rs->base + rs->len)
		return tier_err(-EFAULT, "record: fault at %#" PRIxPTR
				" outside the recorded range", ev->addr);
	w = (ev->addr - (uintptr_t)rs->base) / PG;
	p = rs->first + w;
	if (bit_test(rs->installed, w))
		return uffd_wake(rs->uffd, ev->addr, PG);

	/* zero pages are copied too (not ZEROPAGE): only COPY can install
	 * a page write-protected */
	zero = snap_page_zero(rs->snap, p) || bit_test(rs->removed, w);
	if (!zero) {
		rc = pread_full(rs->image_fd, rs->bounce, PG, p * PG,
				rs->snap->image);
		if (rc)
			return tier_err_ctx(rc, "page %" PRIu64, p);
		rc = rs_verify(rs, w, rs->bounce, 1, PLACER_SRC_IMAGE);
		if (rc)
			return rc;
		src = rs->bounce;
	}
	/* logged and counted before the thread is woken (see rs_fault) */
	rc = RS_RETRY(rs, uffd_copy(rs->uffd, ev->addr, src, PG,
				    UFFD_COPY_DONTWAKE |
				    (ev->write ? 0 : UFFD_COPY_WP)));
	if (rc)
		return rs_lost(rs, rc, ev->addr, PG);
	bit_set(rs->installed, w);
	if (!bit_test(rs->removed, w)) {
		rc = rec_log(rs, w, ev->write ? TIER_ACCESS_W : TIER_ACCESS_R);
		if (rc)
			return rc;
	}

	pthread_mutex_lock(&rs->stat_lock);
	rs->st.faults[zero ? TIER_CLASS_ZERO : TIER_CLASS_COLD]++;
	rs->st.lazy_pages++;
	if (!zero)
		rs->st.local_bytes += PG;
	rs->st.fault_ns += now_ns() - t0;
	pthread_mutex_unlock(&rs->stat_lock);
	return uffd_wake(rs->uffd, ev->addr, PG);
}

static int rec_wp(struct tier_restore *rs, const struct uffd_ev *ev)
{
	uint64_t t0 = now_ns(), w;
	int rc;

	if (ev->addr < (uintptr_t)rs->base ||
	    ev->addr >= (uintptr_t)rs->base + rs->len)
		return tier_err(-EFAULT, "record: write-protect fault at %#"
				PRIxPTR " outside the recorded range", ev->addr);
	w = (ev->addr - (uintptr_t)rs->base) / PG;
	rc = rec_log(rs, w, TIER_ACCESS_W);	/* R becomes RW */
	if (rc)
		return rc;
	pthread_mutex_lock(&rs->stat_lock);
	rs->st.wp_faults++;
	rs->st.fault_ns += now_ns() - t0;
	pthread_mutex_unlock(&rs->stat_lock);
	/* un-protecting wakes the writer */
	return RS_RETRY(rs, uffd_wp(rs->uffd, ev->addr, PG, 0, 0));
}

static int rs_serve_event(struct tier_restore *rs, const struct uffd_ev *ev)
{
	bool rec = rs->flags & TIER_RESTORE_RECORD;

	switch (ev->kind) {
	case UFFD_EV_FAULT:
		return rec ? rec_fault(rs, ev) : rs_fault(rs, ev->addr);
	case UFFD_EV_WP:
		if (rec)
			return rec_wp(rs, ev);
		return tier_err(-EFAULT, "restore: unexpected write-protect fault at %#"
				PRIxPTR, ev->addr);
	case UFFD_EV_REMOVE:
	case UFFD_EV_UNMAP:
		rs_mark_removed(rs, ev->addr, ev->end);
		return 0;
	default:
		return 0;
	}
}

/* Reads and serves what is pending; the count of events, or -errno. */
static int rs_handle(struct tier_restore *rs)
{
	struct uffd_ev ev[16];
	int i, n, rc = 0;

	pthread_mutex_lock(&rs->serve_lock);
	n = uffd_read_events(rs->uffd, ev, 16);
	if (n < 0) {
		rc = n;
		if (!atomic_load(&rs->error))
			rs_fail(rs, rc);
		goto out;
	}
	for (i = 0; i < n || rs->nq; i++) {
		struct uffd_ev cur;

		if (i < n) {
			cur = ev[i];
		} else {	/* faults queued while draining for EAGAIN */
			cur = rs->q[0];
			memmove(rs->q, rs->q + 1, --rs->nq * sizeof(*rs->q));
		}
		/* Dead: faulting threads stay blocked (never a zero page);
		 * REMOVE/UNMAP are still read so the VMM's munmap returns. */
		if (atomic_load(&rs->error))
			continue;
		rc = rs_serve_event(rs, &cur);
		if (rc)
			rs_fail(rs, rc);
	}
	rc = n;
out:
	pthread_mutex_unlock(&rs->serve_lock);
	return rc;
}

static void *rs_thread(void *arg)
{
	struct tier_restore *rs = arg;
	struct pollfd pfd[2] = {
		{ .fd = rs->uffd, .events = POLLIN },
		{ .fd = rs->stop_fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rs_fail(rs, tier_err(-errno, "restore: poll: %m"));
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			rs_fail(rs, tier_err(-EIO, "restore: userfaultfd closed"));
			break;
		}
		if (pfd[0].revents & POLLIN)
			rs_handle(rs);
	}
	return NULL;
}

static void *rs_loader(void *arg)
{
	struct tier_restore *rs = arg;
	void *buf = malloc(LOADER_CHUNK);
	size_t i;

	if (!buf)
		return NULL;
	/* FaaSnap's loader: read the loading set in file order (which is
	 * first-touch order), warming the page cache ahead of the guest. */
	for (i = 0; i < rs->nra && !atomic_load(&rs->loader_stop); i++) {
		uint64_t off = rs->ra[i].off, end = off + rs->ra[i].len;

		while (off < end && !atomic_load(&rs->loader_stop)) {
			size_t n = end - off < LOADER_CHUNK ? end - off : LOADER_CHUNK;
			ssize_t r = pread(rs->ra[i].fd, buf, n, off);

			if (r <= 0)
				break;	/* only a hint: faults still read the file */
			off += r;
		}
	}
	free(buf);
	return NULL;
}

static int ra_cmp(const void *a, const void *b)
{
	const struct rs_range *x = a, *y = b;

	if (x->fd != y->fd)
		return x->fd < y->fd ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* -------------------------------------------------------------- setup */

static struct tier_restore *rs_new(struct tier_snap *snap, void *addr,
				   size_t len,
				   const struct tier_restore_attr *attr)
{
	struct tier_restore *rs = calloc(1, sizeof(*rs));
	uint64_t words;

	if (!rs)
		return NULL;
	rs->snap = snap;
	rs->policy = attr->policy;
	rs->flags = attr->flags;
	rs->window = attr->prefetch ? attr->prefetch : DEFAULT_WINDOW;
	if (rs->window > WINDOW_MAX)
		rs->window = WINDOW_MAX;
	rs->base = addr;
	rs->len = len;
	rs->first = attr->offset / PG;
	rs->npages = len / PG;
	rs->uffd = -1;
	rs->stop_fd = -1;
	rs->image_fd = -1;
	rs->local_fd = -1;
	rs->on_error = attr->on_error;
	rs->arg = attr->arg;
	pthread_mutex_init(&rs->serve_lock, NULL);
	pthread_mutex_init(&rs->pf_lock, NULL);
	pthread_mutex_init(&rs->stat_lock, NULL);

	words = (rs->npages + 63) / 64;
	rs->installed = calloc(words, sizeof(uint64_t));
	rs->removed = calloc(words, sizeof(uint64_t));
	rs->bounce = aligned_alloc(PG, (size_t)rs->window * PG);
	rs->zero = aligned_alloc(PG, PG);
	if (!rs->installed || !rs->removed || !rs->bounce || !rs->zero) {
		free(rs->installed);
		free(rs->removed);
		free(rs->bounce);
		free(rs->zero);
		free(rs);
		return NULL;
	}
	memset(rs->zero, 0, PG);
	return rs;
}

static void rs_pf_free(struct tier_restore *rs);

static void rs_free(struct tier_restore *rs)
{
	if (!rs)
		return;
	rs_close_sources(rs);
	if (rs->uffd >= 0)
		close(rs->uffd);
	if (rs->stop_fd >= 0)
		close(rs->stop_fd);
	pthread_mutex_destroy(&rs->serve_lock);
	pthread_mutex_destroy(&rs->stat_lock);
	free(rs->installed);
	free(rs->removed);
	free(rs->bounce);
	free(rs->zero);
	free(rs->q);
	free(rs->ext);
	free(rs->ovl);
	free(rs->ra);
	free(rs->pop);
	rs_pf_free(rs);
	free(rs->pf);
	free(rs->pfb);
	pthread_mutex_destroy(&rs->pf_lock);
	free(rs->rec_idx);
	free(rs->ent);
	free(rs);
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
	if (attr->flags & ~(TIER_RESTORE_RECORD | TIER_RESTORE_NO_THREAD))
		return tier_err(-EINVAL, "restore: unknown flags %#x",
				attr->flags);
	return 0;
}

/*
 * The plan's extents over the range, relative to it, checked. @own: the
 * caller's plan is ours to take; a whole-range restore (the usual one)
 * then keeps its extent array instead of a copy (~0.2 ms of fresh memory
 * for 13,600 extents, on the start's own path).
 */
static int rs_clip(struct tier_restore *rs, struct plan *plan, bool own)
{
	uint64_t lo = rs->first, hi = rs->first + rs->npages, next = lo;
	struct placer_ext *src = plan->ext;
	size_t a = 0, b = plan->n, total = plan->n, i;

	if (plan->hdr.npages && plan->hdr.npages != rs->snap->npages)
		return tier_err(-EINVAL, "restore: plan of %" PRIu64 " pages for "
				"snapshot %s of %" PRIu64, plan->hdr.npages,
				rs->snap->name, rs->snap->npages);
	while (a < b) {		/* first extent ending after lo */
		size_t mid = a + (b - a) / 2;

		if (src[mid].page + src[mid].npages <= lo)
			a = mid + 1;
		else
			b = mid;
	}
	for (i = 0; i < total; i++)
		if (src[i].source == PLACER_SRC_CXL)
			rs->plan_cxl_bytes += src[i].npages * PG;
	if (own && !lo && hi == rs->snap->npages && total) {
		/* rebasing is the identity: each extent stays in its slot */
		rs->ext = src;
		plan->ext = NULL;
		plan->n = 0;
	} else {
		rs->ext = calloc(total - a + 1, sizeof(*rs->ext));
		if (!rs->ext)
			return tier_err(-ENOMEM, "restore: out of memory");
	}
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
		rs->ext[rs->n++] = e;
		rs->st.pages[e.cls] += e.npages;
		next = end;
	}
	if (next != hi)
		return tier_err(-EINVAL, "restore: plan does not cover page %"
				PRIu64, next);
	return 0;
}

static int rs_populate(void *addr, size_t len)
{
	if (madvise(addr, len, MADV_POPULATE_READ) < 0)
		return tier_err(-errno, "restore: populate %p+%zu: %m", addr, len);
	return 0;
}

/* Makes room for element @n of *@v (capacity *@cap), doubling: vectors
 * of thousands, one realloc an entry would copy them over and over. */
static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	void *x;

	if (n < *cap)
		return 0;
	x = realloc(*v, (*cap ? 2 * *cap : 16) * size);
	if (!x)
		return -ENOMEM;
	*v = x;
	*cap = *cap ? 2 * *cap : 16;
	return 0;
}

static int rs_add_range(struct rs_range **v, size_t *n, size_t *cap, int fd,
			uint64_t off, uint64_t len)
{
	if (grow((void **)v, cap, *n, sizeof(**v)))
		return tier_err(-ENOMEM, "restore: out of memory");
	(*v)[(*n)++] = (struct rs_range){ .fd = fd, .off = off, .len = len };
	return 0;
}

/*
 * Step 1: one mmap per run [i, j) of MAP extents. @dry: only the lists
 * and counters (populate, readahead: rs_lists), which depend on nothing
 * being mapped, so the populator makes them while the start maps.
 */
static int rs_map_run(struct tier_restore *rs, size_t i, size_t j, bool dry)
{
	const struct placer_ext *e = &rs->ext[i];
	uint8_t *addr = rs->base + e->page * PG;
	uint64_t off = e->src_off, len = 0;
	bool all_pop = true, any_pop = false;
	unsigned src = e->source;
	const char *name = src == PLACER_SRC_IMAGE ? rs->snap->image :
						     rs->local_path;
	int fd = src == PLACER_SRC_IMAGE ? rs->image_fd : rs->local_fd;
	uint64_t size = src == PLACER_SRC_IMAGE ? rs->image_size :
						  rs->local_size;
	size_t k;
	int rc;

	for (k = i; k < j; k++) {
		len += rs->ext[k].npages * PG;
		all_pop &= !!(rs->ext[k].flags & PLACER_F_POPULATE);
		any_pop |= !!(rs->ext[k].flags & PLACER_F_POPULATE);
	}
	/* past the end would be SIGBUS in the guest: refuse now */
	if (src != PLACER_SRC_CXL && (off > size || len > size - off))
		return tier_err(-ERANGE, "restore: %s: bytes [%" PRIu64
				", +%" PRIu64 ") past its end (%" PRIu64 ")",
				name, off, len, size);
	if (!dry) {
		if (src == PLACER_SRC_CXL)
			return cxl_obj_map(rs->cxl_obj, off, addr, len, 0);
		if (mmap(addr, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, off) ==
		    MAP_FAILED)
			return tier_err(-errno, "restore: mmap %s at %" PRIu64
					": %m", name, off);
		return 0;
	}
	if (src == PLACER_SRC_CXL)
		rs->st.cxl_mapped_bytes += len;
	rs->st.mappings++;
	if (all_pop) {
		rc = rs_add_range(&rs->pop, &rs->npop, &rs->popcap, -1,
				  (uintptr_t)addr, len);
		if (rc)
			return rc;
		any_pop = false;
	}

	for (k = i; k < j; k++) {
		e = &rs->ext[k];
		if (any_pop && (e->flags & PLACER_F_POPULATE)) {
			rc = rs_add_range(&rs->pop, &rs->npop, &rs->popcap, -1,
					  (uintptr_t)rs->base + e->page * PG,
					  e->npages * PG);
			if (rc)
				return rc;
		}
		if ((e->flags & PLACER_F_READAHEAD) && src != PLACER_SRC_CXL) {
			rc = rs_add_range(&rs->ra, &rs->nra, &rs->racap,
					  src == PLACER_SRC_IMAGE ? rs->image_fd :
					  rs->local_fd, e->src_off, e->npages * PG);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/*
 * MADV_POPULATE_READ of many ranges: process_madvise on ourselves takes
 * a chunk of up to POP_CHUNK ranges a call (any advice since Linux
 * 6.13), ~40 % cheaper than a madvise each for the short runs of a
 * scattered hot set; older kernels refuse it (EINVAL) and get one
 * madvise a range. A chunk is also what a thread takes of the populate
 * list at a time (rs_pop_work).
 */
#define POP_CHUNK	128

struct pop_batch {
	struct iovec iov[POP_CHUNK];
	size_t n;
	int pidfd;		/* -1: not tried yet; -2: unsupported */
};

static int pop_flush(struct pop_batch *b)
{
	size_t i = 0, total = 0, k;
	ssize_t r;

	if (!b->n)
		return 0;
	if (b->pidfd == -1) {
		b->pidfd = syscall(SYS_pidfd_open, getpid(), 0);
		if (b->pidfd < 0)
			b->pidfd = -2;
	}
	if (b->pidfd >= 0) {
		for (k = 0; k < b->n; k++)
			total += b->iov[k].iov_len;
		r = syscall(SYS_process_madvise, b->pidfd, b->iov, b->n,
			    MADV_POPULATE_READ, 0);
		if (r >= 0 && (size_t)r == total) {
			b->n = 0;
			return 0;
		}
		/* unsupported, or a partial result: redo one by one
		 * (populating twice is harmless), which names the range */
		if (r < 0 && (errno == EINVAL || errno == ENOSYS ||
			      errno == EPERM)) {
			close(b->pidfd);
			b->pidfd = -2;
		}
	}
	for (; i < b->n; i++) {
		int rc = rs_populate(b->iov[i].iov_base, b->iov[i].iov_len);

		if (rc) {
			b->n = 0;
			return rc;
		}
	}
	b->n = 0;
	return 0;
}

static int rs_pf_work(struct tier_restore *rs, struct pool_seg *seg,
		      struct batch *b);

static void *rs_thread(void *arg);
static int rs_lists(struct tier_restore *rs);

/* Whether a plan has pages to populate or to prefetch. */
static bool rs_wants_populator(const struct plan *plan)
{
	size_t i;

	for (i = 0; i < plan->n; i++)
		if ((plan->ext[i].flags & PLACER_F_POPULATE) ||
		    plan->ext[i].method == PLACER_M_COPY)
			return true;
	return false;
}

/*
 * The populator's wait for the start, spinning (a sleeping thread waited
 * 0.1-0.7 ms here for its idle vCPU to be woken): until the extents and
 * sources are ready (pop_go), then until [.., @end) is mapped and
 * registered (pop_ready). False: the start failed, stop.
 */
static bool rs_pop_wait(struct tier_restore *rs, uintptr_t end)
{
	for (;;) {
		int go = atomic_load_explicit(&rs->pop_go, memory_order_acquire);

		if (go < 0)
			return false;
		if (go > 0 && atomic_load_explicit(&rs->pop_ready,
					memory_order_acquire) >= end)
			return true;
		sched_yield();
	}
}

/*
 * Populates chunks of the populate list until none is left. Both threads
 * take them, as they take prefetch batches: the populator from the time
 * the start maps, the start once its batches are done, so that whichever
 * is done first (or was not held up by the host) finishes the other's
 * share. -ECANCELED: the start failed meanwhile.
 *
 * While the start is still mapping, an overlay window is populated by
 * reading its page: the fault is served under the VMA's own lock, where
 * MADV_POPULATE_READ would queue behind the start's mmaps for mmap_lock
 * (and they behind it). A read can fault only on a page the object
 * holds: a cluster is registered before it is published, so a hole
 * would be a userfault, not a page added to the shared object, and an
 * object truncated behind the store's back would SIGBUS the guest's own
 * reads of the same mapping as well. Once mapping is done, the rest go
 * through process_madvise, which reports such a page as an error.
 */
static int rs_pop_work(struct tier_restore *rs, struct pop_batch *b)
{
	size_t k, i, end;
	int rc;

	while ((k = atomic_fetch_add(&rs->pop_next, POP_CHUNK)) < rs->npop) {
		end = k + POP_CHUNK < rs->npop ? k + POP_CHUNK : rs->npop;
		for (i = k; i < end; i++) {
			const struct rs_range *r = &rs->pop[i];
			bool overlay = r->fd == POP_OVERLAY;

			/*
			 * Overlay: the cluster is registered, so populating
			 * a hole would wait for the handler (which may not
			 * run yet). The placer puts only present pages in
			 * MAP runs; a run that has a hole anyway (a damaged
			 * object) is left to fault on touch, where the
			 * checksum decides. An object that holds exactly as
			 * many bytes as the plan's CXL extents (one fstat)
			 * has no such hole short of a second damage
			 * elsewhere: then the SEEK_HOLE a run is skipped.
			 */
			if (overlay && !rs->ovl_checked &&
			    !cxl_obj_present(rs->cxl_obj, rs->first * PG +
					     r->off - (uintptr_t)rs->base,
					     r->len))
				continue;
			if (!rs_pop_wait(rs, overlay ? r->off + r->len :
						       UINTPTR_MAX))
				return -ECANCELED;
			if (overlay && (rs->pop_touch ||
					atomic_load_explicit(&rs->pop_ready,
						memory_order_relaxed) != UINTPTR_MAX)) {
				(void)*(volatile uint8_t *)(uintptr_t)r->off;
				continue;
			}
			b->iov[b->n++] = (struct iovec){
				.iov_base = (void *)(uintptr_t)r->off,
				.iov_len = r->len,
			};
		}
		rc = pop_flush(b);
		if (rc) {
			atomic_store(&rs->pop_next, rs->npop);
			atomic_store(&rs->pf_next, rs->npfb);
			return rc;
		}
	}
	return 0;
}

/* The populator's work: the lists, its share of the populate, then
 * prefetch batches if it may. */
static void rs_populate_all(struct tier_restore *rs)
{
	int rc;

	if (!rs_pop_wait(rs, 0))
		return;
	rc = rs_lists(rs);
	if (rc) {
		snprintf(rs->lists_msg, sizeof(rs->lists_msg), "%s",
			 tier_errmsg());
		atomic_store_explicit(&rs->lists, rc, memory_order_release);
		return;
	}
	rc = rs_pop_work(rs, rs->popb[1]);
	if (rc == -ECANCELED)
		return;
	if (rc) {
		rs->pop_rc = rc;
		snprintf(rs->pop_msg, sizeof(rs->pop_msg), "%s", tier_errmsg());
		return;
	}
	if (rs->pf_help && rs_pop_wait(rs, UINTPTR_MAX)) {
		rs->pf_rc = rs_pf_work(rs, rs->pfseg, rs->pfbuf[1]);
		if (rs->pf_rc)
			snprintf(rs->pf_msg, sizeof(rs->pf_msg), "%s",
				 tier_errmsg());
	}
}

/* The populator thread; done, it becomes the fault handler if the start
 * asks it to (rs_start_thread): no thread to make, no vCPU to wake. */
static void *rs_populator(void *arg)
{
	struct tier_restore *rs = arg;

	if (rs->pop_cpus_set)	/* the start's own, as if inherited */
		pthread_setaffinity_np(pthread_self(), sizeof(rs->pop_cpus),
				       &rs->pop_cpus);
	rs_populate_all(rs);
	atomic_store_explicit(&rs->pop_done, true, memory_order_release);
	while (atomic_load_explicit(&rs->pop_go, memory_order_acquire) == 1)
		sched_yield();
	if (atomic_load(&rs->pop_go) == POP_SERVE)
		return rs_thread(rs);
	return NULL;
}

/*
 * Starts the populator on another CPU than the start's, when the process
 * may run on one: a new thread is queued on its creator's CPU, and with
 * the creator busy it began running 2.3-3.7 ms later (median, 2-vCPU VM),
 * against 0.4 ms when asked to start elsewhere. It takes the start's
 * affinity back first thing, so the caller's CPU policy holds.
 */
static int rs_populator_create(struct tier_restore *rs)
{
	pthread_attr_t attr;
	cpu_set_t other;
	int cpu = sched_getcpu(), rc;

	rc = pthread_attr_init(&attr);
	if (rc)
		return rc;
	if (cpu >= 0 && cpu < CPU_SETSIZE &&
	    sched_getaffinity(0, sizeof(rs->pop_cpus), &rs->pop_cpus) == 0) {
		other = rs->pop_cpus;
		CPU_CLR(cpu, &other);
		rs->pop_cpus_set = CPU_COUNT(&other) > 0 &&
				   pthread_attr_setaffinity_np(&attr,
						sizeof(other), &other) == 0;
	}
	rc = pthread_create(&rs->populator, &attr, rs_populator, rs);
	pthread_attr_destroy(&attr);
	return rc;
}

/*
 * Waits for the populator's results, spinning as rs_pop_wait does; the
 * thread itself is joined by rs_stop_threads.
 */
static int rs_populate_wait(struct tier_restore *rs)
{
	if (rs->have_populator)
		while (!atomic_load_explicit(&rs->pop_done,
					     memory_order_acquire))
			sched_yield();
	if (rs->pop_rc)
		return tier_err(rs->pop_rc, "%s", rs->pop_msg);
	if (rs->pf_rc)
		return tier_err(rs->pf_rc, "%s", rs->pf_msg);
	return 0;
}

/*
 * Overlay clusters: with a shmem CXL object in the identity layout, each
 * maximal run of non-ANON extents that placer_cluster_overlay accepts is
 * one MAP_PRIVATE mapping of the object: its MAP pages are present there
 * (shared page cache, zero-copy), every other page is a hole, which the
 * one userfaultfd registration of the cluster turns into MISSING faults
 * and UFFDIO_COPY/ZEROPAGE into private anonymous pages; the object
 * stays as it is. TIER_RESTORE_NO_OVERLAY=1 turns it off (tests).
 */
static int rs_clusters(struct tier_restore *rs)
{
	const char *env = getenv("TIER_RESTORE_NO_OVERLAY");
	uint64_t size, end;
	size_t i = 0, j;

	if (!rs->cxl_obj || (env && *env && strcmp(env, "0")) ||
	    !cxl_obj_overlay_ok(rs->cxl_obj))
		return 0;
	size = cxl_obj_size(rs->cxl_obj);
	rs->ovl_checked = rs->plan_cxl_bytes &&
			  cxl_obj_held(rs->cxl_obj) == rs->plan_cxl_bytes;
	rs->ovl = calloc(rs->n ? rs->n : 1, 1);
	if (!rs->ovl)
		return tier_err(-ENOMEM, "restore: out of memory");
	while (i < rs->n) {
		if (rs->ext[i].method == PLACER_M_ANON) {
			i++;
			continue;
		}
		for (j = i + 1; j < rs->n && rs->ext[j].method != PLACER_M_ANON;
		     j++)
			;
		end = (rs->first + rs->ext[j - 1].page + rs->ext[j - 1].npages) *
		      PG;
		if (end <= size &&
		    placer_cluster_overlay(rs->ext, i, j, rs->first)) {
			memset(rs->ovl + i, 1, j - i);
			rs->overlay = true;
		}
		i = j;
	}
	return 0;
}

/*
 * The populate ranges of an overlay cluster's run [a, z): one page per
 * FAULT_AROUND window the run touches, skipping a window an earlier run
 * already has. A read fault on a file mapping maps every page of its
 * (aligned, 64 KiB by default) window that the page cache holds; the
 * cluster's other pages are holes there, left alone, so one populated
 * page maps all the run's pages in the window and those of its
 * neighbours: the ro runs are 1-3 pages, thousands of them, and walking
 * each as a range of its own costs more than its pages (~2 us a range).
 * With a smaller fault-around, the pages it leaves out fault in on first
 * touch from the page cache, never through userfaultfd.
 */
#define FAULT_AROUND	(64 * 1024)

static int rs_pop_windows(struct tier_restore *rs, uintptr_t a, uintptr_t z)
{
	uintptr_t w;
	int rc;

	for (w = a; w < z; w = (w | (FAULT_AROUND - 1)) + 1) {
		if (rs->npop && rs->pop[rs->npop - 1].fd == POP_OVERLAY &&
		    rs->pop[rs->npop - 1].off / FAULT_AROUND == w / FAULT_AROUND)
			continue;
		rc = rs_add_range(&rs->pop, &rs->npop, &rs->popcap,
				  POP_OVERLAY, w, PG);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * One overlay cluster ext[i, j): one mmap and, if it has COPY or LAZY
 * pages, one registration; its MAP runs are populated by the populator
 * (@dry: their windows listed).
 */
static bool uffd_method(const struct placer_ext *e);

static int rs_map_cluster(struct tier_restore *rs, size_t i, size_t j,
			  bool dry)
{
	const struct placer_ext *a = &rs->ext[i], *z = &rs->ext[j - 1];
	uint8_t *addr = rs->base + a->page * PG;
	size_t len = (z->page + z->npages - a->page) * PG;
	bool any = false;
	size_t k, l;
	int rc;

	for (k = i; k < j; k++)
		any |= uffd_method(&rs->ext[k]);
	if (!dry) {
		rc = cxl_obj_map(rs->cxl_obj, (rs->first + a->page) * PG, addr,
				 len, 0);
		/* registered at once (its holes must fault): the populator
		 * may touch its pages from now on */
		if (!rc && any)
			rc = uffd_register(rs->uffd, addr, len, UFFD_REG_MISSING);
		return rc;
	}
	rs->st.mappings += 1 + any;
	for (k = i; k < j; k = l) {
		const struct placer_ext *e = &rs->ext[k];

		l = k + 1;
		if (e->method != PLACER_M_MAP)
			continue;
		rs->st.cxl_mapped_bytes += e->npages * PG;
		if (!(e->flags & PLACER_F_POPULATE))
			continue;
		for (; l < j && rs->ext[l].method == PLACER_M_MAP &&
		       (rs->ext[l].flags & PLACER_F_POPULATE); l++)
			rs->st.cxl_mapped_bytes += rs->ext[l].npages * PG;
		rc = rs_pop_windows(rs, (uintptr_t)rs->base + e->page * PG,
				    (uintptr_t)rs->base + (rs->ext[l - 1].page +
				     rs->ext[l - 1].npages) * PG);
		if (rc)
			return rc;
	}
	return 0;
}

static int rs_map(struct tier_restore *rs, bool dry)
{
	size_t i = 0, j;
	int rc;

	while (i < rs->n) {
		const struct placer_ext *e = &rs->ext[i];

		if (rs->ovl && rs->ovl[i]) {
			for (j = i + 1; j < rs->n && rs->ovl[j] &&
				    rs->ext[j].method != PLACER_M_ANON; j++)
				;
			rc = rs_map_cluster(rs, i, j, dry);
			if (rc)
				return rc;
			if (!dry)
				atomic_store_explicit(&rs->pop_ready,
					(uintptr_t)rs->base + (rs->ext[j - 1].page +
					rs->ext[j - 1].npages) * PG,
					memory_order_release);
			i = j;
			continue;
		}
		if (e->method != PLACER_M_MAP) {
			i++;
			continue;
		}
		for (j = i + 1; j < rs->n; j++) {
			const struct placer_ext *p = &rs->ext[j - 1], *f = &rs->ext[j];

			if (f->method != PLACER_M_MAP || f->source != e->source ||
			    (rs->ovl && rs->ovl[j]) ||
			    f->page != p->page + p->npages ||
			    f->src_off != p->src_off + p->npages * PG)
				break;
		}
		rc = rs_map_run(rs, i, j, dry);
		if (rc)
			return rc;
		i = j;
	}
	if (dry && rs->nra)
		qsort(rs->ra, rs->nra, sizeof(*rs->ra), ra_cmp);
	return 0;
}

static bool uffd_method(const struct placer_ext *e)
{
	return e->method == PLACER_M_COPY || e->method == PLACER_M_LAZY;
}

static bool rs_needs_uffd(const struct tier_restore *rs)
{
	size_t i;

	for (i = 0; i < rs->n; i++)
		if (uffd_method(&rs->ext[i]))
			return true;
	return false;
}

/* Step 2: one registration per run of adjacent COPY/LAZY extents
 * outside overlay clusters, counted in *@n (the populator may be counting
 * the mappings of its lists in st meanwhile). */
static int rs_register(struct tier_restore *rs, uint64_t *n)
{
	size_t i = 0, j;
	int rc;

	while (i < rs->n) {
		/* overlay clusters are registered as they are mapped */
		if ((rs->ovl && rs->ovl[i]) || !uffd_method(&rs->ext[i])) {
			i++;
			continue;
		}
		for (j = i + 1; j < rs->n && uffd_method(&rs->ext[j]) &&
			    !(rs->ovl && rs->ovl[j]); j++)
			;
		rc = uffd_register(rs->uffd, rs->base + rs->ext[i].page * PG,
				   (rs->ext[j - 1].page + rs->ext[j - 1].npages -
				    rs->ext[i].page) * PG, UFFD_REG_MISSING);
		if (rc)
			return rc;
		(*n)++;
		i = j;
	}
	return 0;
}

/* ---- step 3: prefetch */

struct piece {
	uint64_t w, np, off;
	uint64_t slot;			/* its pages in the bounce buffer */
	unsigned src;
	void *buf;			/* set by rs_flush */
};

struct batch {
	struct piece p[BATCH_PIECES];
	unsigned n;
	uint64_t pages;			/* in the bounce buffer */
	uint8_t *bounce;		/* NULL until a piece needs it */
	struct pool_iov iov[BATCH_PIECES];
	unsigned iov_piece[BATCH_PIECES];	/* an iov's first piece */
};

/*
 * A pool the transport holds in this address space (a file pool): the
 * pieces point into its mapping instead of the bounce buffer, which
 * saves a copy of every page (UFFDIO_COPY reads the page cache directly).
 * Only when the batch's pool ranges lie close together, as the COPY pages
 * packed at the start of a segment do: the view populates their whole
 * span. -EOPNOTSUPP: read them into the buffer instead. The bytes are
 * verified in place and then copied from the same page cache: a segment
 * is replaced by rename, never rewritten, so they cannot change between.
 */
static int rs_pool_view(struct pool_seg *seg, struct batch *b, unsigned niov)
{
	uint64_t lo = UINT64_MAX, hi = 0, bytes = 0;
	const uint8_t *v;
	unsigned i;
	int rc;

	for (i = 0; i < niov; i++) {
		if (b->iov[i].off < lo)
			lo = b->iov[i].off;
		if (b->iov[i].off + b->iov[i].len > hi)
			hi = b->iov[i].off + b->iov[i].len;
		bytes += b->iov[i].len;
	}
	if (hi - lo > 2 * bytes)
		return -EOPNOTSUPP;
	rc = pool_seg_view(seg, lo, hi - lo, (const void **)&v);
	if (rc)
		return rc;
	for (i = 0; i < b->n; i++)
		if (b->p[i].src == PLACER_SRC_POOL)
			b->p[i].buf = (void *)(v + (b->p[i].off - lo));
	return 0;
}

static void *bounce_get(void);

/* The pieces' buffers in the bounce buffer, allocated on first need: a
 * file pool's pages are read in place (rs_pool_view). */
static int rs_bounce(struct batch *b, bool pool)
{
	unsigned i;

	if (!b->bounce) {
		b->bounce = bounce_get();
		if (!b->bounce)
			return tier_err(-ENOMEM, "restore: out of memory");
	}
	for (i = 0; i < b->n; i++)
		if ((b->p[i].src == PLACER_SRC_POOL) == pool &&
		    b->p[i].src != PLACER_SRC_NONE)
			b->p[i].buf = b->bounce + b->p[i].slot * PG;
	return 0;
}

static int rs_flush(struct tier_restore *rs, struct batch *b,
		    struct pool_seg *seg)
{
	unsigned i, k, niov = 0;
	uint64_t pool = 0, local = 0, installed = 0;
	bool other = false;
	int rc;

	for (i = 0; i < b->n; i++) {	/* one round trip for the pool */
		struct pool_iov *last = niov ? &b->iov[niov - 1] : NULL;

		if (b->p[i].src != PLACER_SRC_POOL) {
			other |= b->p[i].src != PLACER_SRC_NONE;
			continue;
		}
		/* packed pieces follow each other in the segment and in the
		 * bounce buffer: one range (one pread for a file pool) */
		if (last && last->off + last->len == b->p[i].off &&
		    b->p[i - 1].src == PLACER_SRC_POOL &&
		    b->p[i - 1].slot + b->p[i - 1].np == b->p[i].slot) {
			last->len += b->p[i].np * PG;
			continue;
		}
		b->iov_piece[niov] = i;
		b->iov[niov++] = (struct pool_iov){
			.off = b->p[i].off, .len = b->p[i].np * PG,
		};
	}
	if (niov) {
		rc = rs_pool_view(seg, b, niov);
		if (rc == -EOPNOTSUPP) {
			rc = rs_bounce(b, true);
			for (i = 0; i < niov && !rc; i++)
				b->iov[i].buf = b->p[b->iov_piece[i]].buf;
			if (!rc)
				rc = pool_readv(seg, b->iov, niov);
		}
		if (rc)
			return tier_err_ctx(rc, "prefetch");
	}
	if (other) {
		rc = rs_bounce(b, false);
		if (rc)
			return rc;
	}
	for (i = 0; i < b->n; i++) {
		struct piece *p = &b->p[i];

		if (p->src == PLACER_SRC_POOL || p->src == PLACER_SRC_NONE)
			continue;
		rc = rs_read_src(rs, NULL, p->src, p->off, p->buf, p->np * PG);
		if (rc)
			return tier_err_ctx(rc, "prefetch");
	}
	for (i = 0; i < b->n; i++) {
		struct piece *p = &b->p[i];

		if (p->src == PLACER_SRC_NONE)
			continue;
		rc = rs_verify(rs, p->w, p->buf, p->np, p->src);
		if (rc)
			return rc;
		if (p->src == PLACER_SRC_POOL)
			pool += p->np * PG;
		else if (p->src != PLACER_SRC_CXL)	/* CXL: no counter */
			local += p->np * PG;
	}
	/* install: merge pieces adjacent in the range and in the buffer */
	for (i = 0; i < b->n; i = k) {
		struct piece *p = &b->p[i];
		uint64_t np = p->np;

		for (k = i + 1; k < b->n; k++) {
			struct piece *q = &b->p[k];

			if ((q->src == PLACER_SRC_NONE) != (p->src == PLACER_SRC_NONE) ||
			    q->w != p->w + np ||
			    (p->src != PLACER_SRC_NONE &&
			     (uint8_t *)q->buf != (uint8_t *)p->buf + np * PG))
				break;
			np += q->np;
		}
		if (p->src == PLACER_SRC_NONE)
			rc = RS_RETRY_PF(rs, uffd_zeropage(rs->uffd,
					(uintptr_t)rs->base + p->w * PG,
					np * PG, UFFD_COPY_DONTWAKE));
		else
			rc = RS_RETRY_PF(rs, uffd_copy(rs->uffd,
					(uintptr_t)rs->base + p->w * PG, p->buf,
					np * PG, UFFD_COPY_DONTWAKE));
		if (rc)
			return tier_err_ctx(rc, "prefetch");
		rs_mark_installed(rs, p->w, np);
		installed += np;
	}
	pthread_mutex_lock(&rs->stat_lock);
	rs->st.prefetched_pages += installed;
	rs->st.pool_bytes += pool;
	rs->st.local_bytes += local;
	pthread_mutex_unlock(&rs->stat_lock);
	b->n = 0;
	b->pages = 0;
	return 0;
}

/*
 * The prefetch bounce buffer: a fresh one faults in page by page (~2.4 us
 * each, more than the copy itself), so one is kept for the process and
 * reused by the next restore (a host restoring many instances); restores
 * running at the same time allocate their own.
 */
static pthread_mutex_t bounce_lock = PTHREAD_MUTEX_INITIALIZER;
static void *bounce_cache;

static void *bounce_get(void)
{
	size_t i;
	void *b;

	pthread_mutex_lock(&bounce_lock);
	b = bounce_cache;
	bounce_cache = NULL;
	pthread_mutex_unlock(&bounce_lock);
	if (b)
		return b;
	b = mmap(NULL, BATCH_PAGES * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
	/*
	 * One huge page if there is one (a hint), else filled here rather
	 * than on the copy's first touch. By writes, not MADV_POPULATE_WRITE:
	 * the populator gets its buffer while the start maps and registers,
	 * and its write faults take the VMA's own lock where the madvise
	 * would hold mmap_lock ~1 ms (aquifer's registration went from 1.5
	 * to 2-11 ms).
	 */
	madvise(b, BATCH_PAGES * PG, MADV_HUGEPAGE);
	for (i = 0; i < BATCH_PAGES; i++)
		((volatile uint8_t *)b)[i * PG] = 0;
	return b;
}

static void bounce_put(void *b)
{
	pthread_mutex_lock(&bounce_lock);
	if (!bounce_cache) {
		bounce_cache = b;
		b = NULL;
	}
	pthread_mutex_unlock(&bounce_lock);
	if (b)
		munmap(b, BATCH_PAGES * PG);
}

struct pf_batch {
	size_t first, n;		/* pieces [first, first + n) of pf */
};

/*
 * Pages in the next batch, @todo pages still to cut: a quarter of them,
 * between BATCH_MIN and BATCH_PAGES. Two threads take batches from one
 * list; shrinking batches toward the end lets them finish within a small
 * batch of each other instead of a 2 MiB one (~1.5 ms here).
 */
static uint64_t batch_limit(uint64_t todo)
{
	uint64_t l = todo / 4;

	return l < BATCH_MIN ? BATCH_MIN : l > BATCH_PAGES ? BATCH_PAGES : l;
}

/*
 * Cuts the COPY extents into batches of at most BATCH_PAGES pages with
 * bytes (NONE pieces are free: UFFDIO_ZEROPAGE) and BATCH_PIECES pieces,
 * each piece's bounce buffer slot set.
 */
static int rs_pf_plan(struct tier_restore *rs)
{
	size_t i, n = 0, cap = 0, bcap = 0, nb = 0, first = 0;
	uint64_t pages = 0, limit = 0, todo = 0, total;

	for (i = 0; i < rs->n; i++)
		if (rs->ext[i].method == PLACER_M_COPY &&
		    rs->ext[i].source != PLACER_SRC_NONE)
			todo += rs->ext[i].npages;
	total = todo;
	for (i = 0; i < rs->n; i++) {
		const struct placer_ext *e = &rs->ext[i];
		uint64_t w = e->page, left = e->npages;

		if (e->method != PLACER_M_COPY)
			continue;
		while (left) {
			uint64_t room = limit - pages, np;

			if (!room || n - first == BATCH_PIECES) {
				pages = 0;
				first = n;
				limit = batch_limit(todo);
				continue;
			}
			if (grow((void **)&rs->pf, &cap, n, sizeof(*rs->pf)))
				return tier_err(-ENOMEM, "restore: out of memory");
			if (first == n) {	/* a new batch */
				if (grow((void **)&rs->pfb, &bcap, nb,
					 sizeof(*rs->pfb)))
					return tier_err(-ENOMEM, "restore: out of memory");
				rs->pfb[nb++] = (struct pf_batch){ .first = n };
			}
			np = e->source == PLACER_SRC_NONE || left < room ?
			     left : room;
			rs->pf[n] = (struct piece){
				.w = w, .np = np, .off = ext_off(e, w),
				.src = e->source, .slot = pages,
			};
			if (e->source != PLACER_SRC_NONE) {
				pages += np;
				todo -= np;
			}
			rs->pfb[nb - 1].n++;
			n++;
			w += np;
			left -= np;
		}
	}
	rs->npf = n;
	rs->npfb = nb;
	rs->pf_pages = total;
	return 0;
}

/*
 * Whether the populator may take batches too: with no pool pieces, or a
 * pool whose segment can be viewed in place (a file pool), through a
 * second handle of its own (a handle serves one thread at a time), or a
 * TCP pool through a second connection: one more connect and HELLO
 * against batches of about a millisecond each (loopback, the 1 GiB bench
 * image: median setup 15.9 ms instead of 18.5, BENCHMARKS.md). An RDMA
 * connection costs an rdma_cm exchange and registering the helper's
 * buffer, not measured here: RDMA keeps one connection.
 */
static void rs_pf_helper(struct tier_restore *rs)
{
	const void *v;
	size_t i;

	if (!rs->npfb || !rs->have_populator)
		return;
	for (i = 0; i < rs->npf; i++)
		if (rs->pf[i].src == PLACER_SRC_POOL)
			break;
	if (i == rs->npf) {
		rs->pf_help = true;
		return;
	}
	if (rs->pool_uri.kind == URI_POOL_TCP) {
		/* a connection for one 2 MiB batch's worth costs more than
		 * it saves (tests: TIER_RESTORE_PF_HELPER) */
		if ((rs->pf_pages > BATCH_PAGES ||
		     getenv("TIER_RESTORE_PF_HELPER")) &&
		    rs_pool_connect(rs, &rs->pfpool, &rs->pfseg) == 0)
			rs->pf_help = true;
		return;
	}
	if (pool_seg_open(rs->hpool, rs->obj_name, &rs->pfseg))
		return;
	if (pool_seg_view(rs->pfseg, 0, 1, &v) == 0) {
		rs->pf_help = true;
		return;
	}
	pool_seg_close(rs->pfseg);
	rs->pfseg = NULL;
}

/*
 * Everything the prefetch needs that takes mmap_lock for writing (the
 * segment's mapping, bounce buffers, the batches' memory) is made before
 * the populator starts: its MADV_POPULATE_READ holds mmap_lock for
 * reading ~1 ms a call, and an mmap queued behind it stalled the first
 * batch by up to 4 ms.
 */
static int rs_pf_prepare(struct tier_restore *rs)
{
	bool pool = false, other = false, view = false;
	const void *v;
	size_t i;
	int rc, k;

	rc = rs_pf_plan(rs);
	if (rc || !rs->npfb)
		return rc;
	rs_pf_helper(rs);
	for (i = 0; i < rs->npf; i++) {
		pool |= rs->pf[i].src == PLACER_SRC_POOL;
		other |= rs->pf[i].src != PLACER_SRC_POOL &&
			 rs->pf[i].src != PLACER_SRC_NONE;
	}
	if (pool)
		view = pool_seg_view(rs->hseg, 0, 1, &v) == 0;
	for (k = 0; k < (rs->pf_help ? 2 : 1); k++) {
		rs->pfbuf[k] = calloc(1, sizeof(*rs->pfbuf[k]));
		if (!rs->pfbuf[k])
			return tier_err(-ENOMEM, "restore: out of memory");
		if ((pool && !view) || other) {
			rs->pfbuf[k]->bounce = bounce_get();
			if (!rs->pfbuf[k]->bounce)
				return tier_err(-ENOMEM, "restore: out of memory");
		}
	}
	return 0;
}

/*
 * The lists the populate and the prefetch work from, and what they need
 * (rs_pf_prepare). Made by the populator while the start maps (they
 * depend only on the extents and the sources), or by the start before
 * mapping when there is no populator: ~0.5 ms off the start's own path.
 */
static int rs_lists(struct tier_restore *rs)
{
	int rc = rs_map(rs, true), k;

	if (!rc)
		rc = rs_pf_prepare(rs);
	for (k = 0; !rc && rs->npop && k < 2; k++) {
		rs->popb[k] = malloc(sizeof(*rs->popb[k]));
		if (!rs->popb[k])
			return tier_err(-ENOMEM, "restore: out of memory");
		*rs->popb[k] = (struct pop_batch){ .pidfd = -1 };
	}
	if (!rc)
		atomic_store_explicit(&rs->lists, 1, memory_order_release);
	return rc;
}

/* The start's wait for the populator's lists (spinning, as elsewhere). */
static int rs_lists_wait(struct tier_restore *rs)
{
	int l;

	while (!(l = atomic_load_explicit(&rs->lists, memory_order_acquire)))
		sched_yield();
	return l < 0 ? tier_err(l, "%s", rs->lists_msg) : 0;
}

static void rs_pf_free(struct tier_restore *rs)
{
	int k;

	for (k = 0; k < 2; k++) {
		if (rs->pfbuf[k] && rs->pfbuf[k]->bounce)
			bounce_put(rs->pfbuf[k]->bounce);
		free(rs->pfbuf[k]);
		rs->pfbuf[k] = NULL;
	}
	for (k = 0; k < 2; k++) {
		if (rs->popb[k] && rs->popb[k]->pidfd >= 0)
			close(rs->popb[k]->pidfd);
		free(rs->popb[k]);
		rs->popb[k] = NULL;
	}
}

/* Takes batches until there are none left; an error stops the others. */
static int rs_pf_work(struct tier_restore *rs, struct pool_seg *seg,
		      struct batch *b)
{
	size_t k;
	int rc = 0;

	while ((k = atomic_fetch_add(&rs->pf_next, 1)) < rs->npfb) {
		const struct pf_batch *pb = &rs->pfb[k];

		memcpy(b->p, rs->pf + pb->first, pb->n * sizeof(*b->p));
		b->n = pb->n;
		rc = rs_flush(rs, b, seg);
		if (rc) {
			atomic_store(&rs->pf_next, rs->npfb);
			atomic_store(&rs->pop_next, rs->npop);
			break;
		}
	}
	return rc;
}

/*
 * Starts the handler. Start does not wait for it to be scheduled (on a
 * busy host that alone can take milliseconds): faults raised before it
 * runs wait in the userfaultfd's queue.
 */
static int rs_start_thread(struct tier_restore *rs)
{
	int rc;

	if (rs->flags & TIER_RESTORE_NO_THREAD) {
		if (rs->have_populator)
			atomic_store(&rs->pop_go, -1);
		return 0;
	}
	rs->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (rs->stop_fd < 0)
		return tier_err(-errno, "restore: eventfd: %m");
	/* the populator, done and waiting, becomes the handler: no thread
	 * to create, no idle vCPU to wake */
	if (rs->have_populator) {
		rs->thread = rs->populator;
		rs->have_thread = true;
		rs->have_populator = false;
		atomic_store_explicit(&rs->pop_go, POP_SERVE,
				      memory_order_release);
		return 0;
	}
	rc = pthread_create(&rs->thread, NULL, rs_thread, rs);
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
		if (write(rs->stop_fd, &one, sizeof(one)) != sizeof(one))
			tier_log(TIER_LOG_ERR, "restore: cannot wake the handler");
		pthread_join(rs->thread, NULL);
		rs->have_thread = false;
	}
	if (rs->have_populator) {
		atomic_store(&rs->pop_go, -1);
		pthread_join(rs->populator, NULL);
		rs->have_populator = false;
	}
	if (rs->have_loader) {
		atomic_store(&rs->loader_stop, true);
		pthread_join(rs->loader, NULL);
		rs->have_loader = false;
	}
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
	if (rs->uffd >= 0) {
		close(rs->uffd);
		rs->uffd = -1;
	}
	if (touched)
		rs_fresh_anon(rs->base, rs->len, PROT_NONE);
	rs_free(rs);
}

static int rs_start(struct tier_snap *snap, struct plan *plan, bool own,
		    void *addr, size_t len,
		    const struct tier_restore_attr *attr, uint64_t t0,
		    struct tier_restore **ret)
{
	struct tier_restore *rs;
	uint64_t t, t_open, t_thread = 0, nreg = 0;
	int rc;

	rc = rs_check_range(snap, addr, len, attr);
	if (rc)
		return rc;
	if (attr->flags & TIER_RESTORE_RECORD)
		return tier_err(-EINVAL, "restore: a recording takes no plan");
	t_open = now_ns();
	rs = rs_new(snap, addr, len, attr);
	if (!rs)
		return tier_err(-ENOMEM, "restore: out of memory");
	rs->t0 = t0;
	/* TIER_RESTORE_NO_POPULATOR=1 (tests): as if no thread could be
	 * made; the start then does all of the populator's work itself */
	if (rs_wants_populator(plan) && !getenv("TIER_RESTORE_NO_POPULATOR") &&
	    rs_populator_create(rs) == 0)
		rs->have_populator = true;

	rc = rs_clip(rs, plan, own);
	if (rc)
		goto err;
	rc = rs_open_sources(rs, plan, attr);
	if (rc)
		goto err;
	rc = rs_clusters(rs);
	if (rc)
		goto err;
	t_open = now_ns() - t_open;

	if (rs_needs_uffd(rs)) {
		rc = uffd_open(UFFD_F_NONBLOCK, &rs->uffd);
		if (rc)
			goto err;
	}
	/* the populate and prefetch lists: the populator makes them while
	 * the start maps, or the start itself first */
	if (!rs->have_populator) {
		rc = rs_lists(rs);
		if (rc)
			goto err;
	}
	rs->pop_touch = getenv("TIER_RESTORE_POP_TOUCH") != NULL;
	atomic_store_explicit(&rs->pop_go, 1, memory_order_release);

	/*
	 * 0 + 1 + 2: fresh anonymous memory, the mapped extents over it, an
	 * overlay cluster registered as soon as it is mapped (its pages may
	 * be populated from then on), the other COPY and LAZY runs after.
	 */
	t = now_ns();
	if (rs_fresh_anon(addr, len, PROT_READ | PROT_WRITE) == MAP_FAILED) {
		rc = tier_err(-errno, "restore: mmap %p+%zu: %m", addr, len);
		goto err;
	}
	rc = rs_map(rs, false);
	if (rc)
		goto err_touched;
	rs->st.map_ns = now_ns() - t;

	t = now_ns();
	rc = rs_register(rs, &nreg);
	if (rc)
		goto err_touched;
	atomic_store_explicit(&rs->pop_ready, UINTPTR_MAX, memory_order_release);
	rs->st.register_ns = now_ns() - t;
	rc = rs_lists_wait(rs);
	if (rc)
		goto err_touched;
	rs->st.mappings += nreg;
	if (rs->nra && pthread_create(&rs->loader, NULL, rs_loader, rs) == 0)
		rs->have_loader = true;

	/* populate (part of the map step) overlaps the prefetch, and the
	 * populator takes prefetch batches once it is done */
	t = now_ns();
	/* TIER_RESTORE_PF_HELPER=1 (tests): the populator takes them all */
	if (!rs->pf_help || !rs->have_populator ||
	    !getenv("TIER_RESTORE_PF_HELPER")) {
		rc = rs_pf_work(rs, rs->hseg, rs->pfbuf[0]);
		if (rc)
			goto err_touched;
	}
	/* then what is left of the populate */
	rc = rs_pop_work(rs, rs->popb[0]);
	if (rc)
		goto err_touched;
	/* prefetch_ns: until both threads are done (populating included
	 * where it overlaps: the two share the batches) */
	rc = rs_populate_wait(rs);
	rs->st.prefetch_ns = now_ns() - t;
	rs_pf_helper_end(rs);
	if (rc)
		goto err_touched;

	if (rs->uffd >= 0) {
		t_thread = now_ns();
		rc = rs_start_thread(rs);
		if (rc)
			goto err_touched;
		t_thread = now_ns() - t_thread;
	} else if (rs->have_populator) {
		atomic_store(&rs->pop_go, -1);	/* nothing to serve */
	}
	rs->st.setup_ns = now_ns() - t0;
	tier_dbg("restore of %s: %zu extents, setup %" PRIu64 " us: plan+open %"
		 PRIu64 ", map %" PRIu64 ", register %" PRIu64 ", prefetch %"
		 PRIu64 ", handler %" PRIu64, snap->name, rs->n,
		 rs->st.setup_ns / 1000, t_open / 1000, rs->st.map_ns / 1000,
		 rs->st.register_ns / 1000, rs->st.prefetch_ns / 1000,
		 t_thread / 1000);
	*ret = rs;
	return 0;

err_touched:
	rs_abort(rs, true);
	return rc;
err:
	rs_abort(rs, false);
	return rc;
}

int restore_start_plan(struct tier_snap *snap, const struct plan *plan,
		       void *addr, size_t len,
		       const struct tier_restore_attr *attr,
		       struct tier_restore **ret)
{
	static const struct tier_restore_attr zero_attr;
	struct plan p;

	if (!plan)
		return tier_err(-EINVAL, "restore: no plan");
	p = *plan;		/* the caller's: read, not taken */
	return rs_start(snap, &p, false, addr, len,
			attr ? attr : &zero_attr, now_ns(), ret);
}

static int rec_start(struct tier_snap *snap, void *addr, size_t len,
		     const struct tier_restore_attr *attr, uint64_t t0,
		     struct tier_restore **ret)
{
	struct tier_restore_attr a = *attr;
	struct tier_restore *rs;
	uint64_t p, t;
	int rc;

	a.prefetch = 1;		/* a window would hide touches */
	rs = rs_new(snap, addr, len, &a);
	if (!rs)
		return tier_err(-ENOMEM, "record: out of memory");
	rs->t0 = t0;
	rs->recording = true;
	rs->rec_idx = calloc(rs->npages, sizeof(*rs->rec_idx));
	if (!rs->rec_idx) {
		rs_free(rs);
		return tier_err(-ENOMEM, "record: out of memory");
	}
	for (p = rs->first; p < rs->first + rs->npages; p++)
		rs->st.pages[snap_page_zero(snap, p) ? TIER_CLASS_ZERO :
			     TIER_CLASS_COLD]++;
	rc = snap_image_fd(snap);
	if (rc < 0)
		goto err;
	rs->image_fd = rc;
	rc = uffd_open(UFFD_F_WP | UFFD_F_NONBLOCK, &rs->uffd);
	if (rc)
		goto err;

	t = now_ns();
	if (rs_fresh_anon(addr, len, PROT_READ | PROT_WRITE) == MAP_FAILED) {
		rc = tier_err(-errno, "record: mmap %p+%zu: %m", addr, len);
		goto err;
	}
	rs->st.map_ns = now_ns() - t;
	t = now_ns();
	rc = uffd_register(rs->uffd, addr, len, UFFD_REG_MISSING | UFFD_REG_WP);
	if (rc)
		goto err_touched;
	rs->st.mappings = 1;
	rs->st.register_ns = now_ns() - t;
	rc = rs_start_thread(rs);
	if (rc)
		goto err_touched;
	rs->st.setup_ns = now_ns() - t0;
	*ret = rs;
	return 0;

err_touched:
	rs_abort(rs, true);
	return rc;
err:
	rs_abort(rs, false);
	return rc;
}

/* ---------------------------------------------------------- public API */

int tier_restore_start(struct tier_snap *snap, void *addr, size_t len,
		       const struct tier_restore_attr *attr,
		       struct tier_restore **ret)
{
	static const struct tier_restore_attr zero_attr;
	uint64_t t0 = now_ns();
	struct plan plan;
	int rc;

	if (!attr)
		attr = &zero_attr;
	rc = rs_check_range(snap, addr, len, attr);
	if (rc)
		return rc;
	if (attr->flags & TIER_RESTORE_RECORD)
		return rec_start(snap, addr, len, attr, t0, ret);

	rc = plan_load(snap, attr->policy, &plan);
	if (rc)
		return rc;
	rc = rs_start(snap, &plan, true, addr, len, attr, t0, ret);
	plan_free(&plan);
	return rc;
}

int tier_restore_fd(const struct tier_restore *rs)
{
	if (!rs || !(rs->flags & TIER_RESTORE_NO_THREAD))
		return -1;
	return rs->uffd;
}

int tier_restore_handle(struct tier_restore *rs)
{
	int rc;

	if (!rs)
		return tier_err(-EINVAL, "restore: no handle");
	if (rs->uffd < 0)
		return 0;	/* nothing registered: nothing to serve */
	rc = rs_handle(rs);
	if (rc >= 0 && atomic_load(&rs->error))
		return tier_err(atomic_load(&rs->error), "%s", rs->errmsg);
	return rc;
}

void tier_restore_stats(const struct tier_restore *rs,
			struct tier_restore_stats *ret)
{
	struct tier_restore *m = (struct tier_restore *)rs;

	pthread_mutex_lock(&m->stat_lock);
	*ret = rs->st;
	ret->error = atomic_load(&m->error);
	pthread_mutex_unlock(&m->stat_lock);
}

int tier_restore_error(const struct tier_restore *rs)
{
	return atomic_load(&((struct tier_restore *)rs)->error);
}

int restore_trace(struct tier_restore *rs, struct tier_trace_ent **ret,
		  size_t *ret_n)
{
	struct tier_trace_ent *ent;
	size_t n;

	if (!(rs->flags & TIER_RESTORE_RECORD))
		return tier_err(-EINVAL, "restore: not recording");
	pthread_mutex_lock(&rs->stat_lock);
	n = rs->nent;
	ent = malloc((n ? n : 1) * sizeof(*ent));
	if (ent)
		memcpy(ent, rs->ent, n * sizeof(*ent));
	pthread_mutex_unlock(&rs->stat_lock);
	if (!ent)
		return tier_err(-ENOMEM, "record: out of memory");
	*ret = ent;
	*ret_n = n;
	return 0;
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
	/* stop logging, keep serving: the guest may go on running */
	pthread_mutex_lock(&rs->stat_lock);
	rs->recording = false;
	pthread_mutex_unlock(&rs->stat_lock);
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
	if (atomic_load(&rs->error))
		mprotect(rs->base, rs->len, PROT_NONE);
	if (rs->uffd >= 0) {
		close(rs->uffd);
		rs->uffd = -1;
	}
	rs_free(rs);
}
