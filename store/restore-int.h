/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_RESTORE_INT_H
#define TIER_STORE_RESTORE_INT_H

/*
 * The restorer's parts and the state each owns; only the restore-*.c
 * files and the front ends built on them (vmm/) include this. In the
 * order a restore runs them (store/README.md draws them):
 *
 *   restore.c		 lifecycle and the public API: the start, its two
 *			 threads, stop (front end: the C API)
 *   restore-map.c	 the plan executor: clip the plan to the range,
 *			 overlay clusters, mmap, register (in-process only)
 *   restore-src.c	 page sources: image, local file, CXL object, pool;
 *			 read and verify against the snapshot's checksums
 *   restore-populate.c	 populate the mapped pages; the readahead loader
 *   restore-prefetch.c	 COPY extents fetched in batches and installed
 *			 with UFFDIO_COPY before the guest runs
 *   restore-serve.c	 the fault server: one userfaultfd, one or more
 *			 areas of any process's memory (copy, zero, wake)
 *   restore-record.c	 record mode: every page lazy, first touches logged
 *   restore-sigbus.c	 SIGBUS mode: the faulting thread serves its own
 *			 fault, async-signal-safe (no handler thread)
 *
 * The parts a front end without a mapping step needs (a Firecracker
 * handler serving another process's userfaultfd) take only their own
 * state and the sub-structs they name: sources, serve, prefetch, record.
 * The in-process parts (map, populate) take the whole struct
 * tier_restore.
 */

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier.h"
#include "placer/placer.h"
#include "store/restore.h"
#include "store/snap.h"
#include "store/uffd.h"
#include "util/uri.h"

struct cxl_tier;
struct cxl_obj;
struct pool;
struct pool_mr;
struct pool_seg;

#define PG			TIER_PAGE_SIZE
#define WINDOW_MAX		512	/* lazy prefetch window cap, pages */
#define DEFAULT_WINDOW		8

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

static inline uint64_t ext_off(const struct placer_ext *e, uint64_t w)
{
	return e->src_off + (w - e->page) * PG;
}

uint64_t rs_now_ns(void);

/* Makes room for element @n of *@v (capacity *@cap), doubling. */
int rs_grow(void **v, size_t *cap, size_t n, size_t size);

/* ------------------------------------------------- counters and fate */

/*
 * What every part reports to: the counters (under stat_lock, so the
 * stats may be read from anywhere) and the fail-closed state: a page
 * that cannot be had marks the restore dead once, logs one line and
 * calls notify from the thread that found it.
 */
struct rs_fate {
	const char *name;		/* the snapshot's, for the log */
	pthread_mutex_t stat_lock;
	struct tier_restore_stats st;
	atomic_int error;
	char errmsg[256];
	void (*notify)(void *owner, int err, const char *msg);
	void *owner;
};

void fate_init(struct rs_fate *f, const char *name);
void fate_fini(struct rs_fate *f);
/* Marks the restore dead (once) and tells the owner; returns @rc. */
int fate_fail(struct rs_fate *f, int rc);

/* ------------------------------------------------ restore-src.c */

/* Where the plan's pages are read from; opened once per restore. */
struct rs_src {
	struct tier_snap *snap;
	int image_fd;			/* borrowed from the snapshot */
	uint64_t image_size;
	int local_fd;
	uint64_t local_size;
	char local_path[4096];
	struct cxl_tier *cxl;
	struct cxl_obj *cxl_obj;
	struct tier_uri pool_uri;
	/* TIER_RESTORE_POOL_FALLBACK: the pool's durable copy, read where
	 * the pool fails (rdma/backed.c) */
	struct tier_uri backing_uri;
	bool backed;
	char obj_name[128];
	bool verify_image;		/* check the image's pages too */
	/* read-only mappings of the file sources (src_map_views), so a
	 * prefetch installs from the page cache without a read into a
	 * buffer; NULL: read them */
	const uint8_t *view[PLACER_SRC_POOL + 1];
	uint64_t view_len[PLACER_SRC_POOL + 1];
	int pidfd;			/* ours, for process_madvise; -2: none */
	/* the pool handle of the start, then of the fault server: one
	 * thread uses it at a time */
	struct pool *pool;
	struct pool_seg *seg;
};

void src_init(struct rs_src *s, struct tier_snap *snap);
/* Opens what the extents reference (@plan: its URIs; @attr's override
 * them), connecting to the pool now so a dead pool fails the start. */
int src_open(struct rs_src *s, enum tier_policy policy,
	     const struct placer_ext *ext, size_t n, const struct plan *plan,
	     const struct tier_restore_attr *attr);
void src_close(struct rs_src *s);
int src_pool_connect(struct rs_src *s, struct pool **rp,
		     struct pool_seg **rseg);
void src_pool_disconnect(struct pool **p, struct pool_seg **seg);
/* Reads @len bytes at @off of source @src (a pool through @seg). */
int src_read(struct rs_src *s, struct pool_seg *seg, unsigned src,
	     uint64_t off, void *buf, size_t len);
/* Checks @np pages from image page @p on against the snapshot. */
int src_verify(const struct rs_src *s, uint64_t p, const void *buf,
	       uint64_t np, unsigned src);
const char *src_name(unsigned src);
/* Maps the image, the local file and the CXL object read-only (where
 * open and mappable); a failure leaves that source read as before. */
void src_map_views(struct rs_src *s);
/*
 * The bytes of @n ranges (@off[i], @len[i]) of file source @src in its
 * view, made resident first (one process_madvise), so that a file cut
 * short is an error here, never a SIGBUS later: *@ret[i]. -EOPNOTSUPP:
 * no view, or a range is not resident: read them instead (which names
 * the problem).
 */
int src_view(struct rs_src *s, unsigned src, const uint64_t *off,
	     const uint64_t *len, unsigned n, const void **ret);
void src_count_bytes(struct tier_restore_stats *st, unsigned src,
		     uint64_t n);

/* ------------------------------------------------ restore-serve.c */

/*
 * One range served through the userfaultfd: [base, base + len) of the
 * served process (ours, or a VMM's that handed us its uffd) holds image
 * pages [first, first + npages). The extents cover it, pages relative
 * to base.
 */
struct rs_area {
	uintptr_t base;
	size_t len;
	uint64_t first, npages;
	const struct placer_ext *ext;
	size_t n;
	const uint8_t *ovl;		/* per extent: in an overlay cluster */
	uint64_t *installed;		/* bitmap over the area */
	uint64_t *removed;		/* REMOVE/UNMAP seen */
	bool huge;			/* 2 MiB hugetlb: whole huge pages */
};

#define HUGE_PAGES		512	/* 4 KiB pages in a 2 MiB one */

int area_init(struct rs_area *a, uintptr_t base, size_t len, uint64_t first);
void area_fini(struct rs_area *a);
/* Atomic: two threads prefetch at once, into pages of one word. */
void area_mark_installed(struct rs_area *a, uint64_t w, uint64_t n);
/* The extent holding area page @w (extents cover the area), or NULL; a
 * binary search, nothing else: safe in a signal handler. */
const struct placer_ext *area_find_ext(const struct rs_area *a, uint64_t w);
uint64_t area_fault_window(const struct rs_area *a, const struct placer_ext *e,
			   uint64_t w, uint64_t max, bool bits);

struct rs_rec;

#define SERVE_UNREGISTER_REMOVED (1U << 0) /* a removed range leaves
					    * service (Firecracker) */
#define SERVE_REGIONS		(1U << 1) /* the areas are a VMM's regions
					   * (what the messages call them) */
#define SERVE_REMOVE_RESETS	(1U << 2) /* a removed page is fetched again
					   * (TIER_RESTORE_DONTNEED_RESETS),
					   * not zero */

struct rs_serve {
	int uffd;
	struct rs_area *area;
	size_t narea;
	unsigned window;		/* pages per lazy fault */
	unsigned flags;			/* SERVE_* */
	struct rs_src *src;
	struct rs_fate *fate;
	struct rs_rec *rec;		/* record mode, else NULL */
	pthread_mutex_t lock;		/* one thread serves at a time */
	pthread_mutex_t drain_lock;	/* the prefetch's two threads */
	void *bounce;			/* window pages */
	void *hbounce;			/* one huge page, on first need */
	struct uffd_ev *q;		/* faults read while draining */
	size_t nq, qcap;
	int stop_fd;			/* eventfd: the thread exits */
	uintptr_t fail_addr;		/* the fault that killed it, or
					 * UINTPTR_MAX */
	bool exiting;			/* an install saw ESRCH: the served
					 * process is exiting */
	atomic_uint_least64_t removes;	/* REMOVE events applied */
	uint64_t spin_ns;		/* polled after serving, before sleeping */
};

int serve_init(struct rs_serve *srv, unsigned window, struct rs_src *src,
	       struct rs_fate *fate);
void serve_fini(struct rs_serve *srv);
/* The area holding @addr and its page index there, or NULL. */
struct rs_area *serve_area(struct rs_serve *srv, uintptr_t addr,
			   uint64_t *ret_w);
/* Fills huge page [@hw, @hw + HUGE_PAGES) of a huge area from its
 * extents, verified, and installs it whole without waking; as
 * serve_install (@pf too), the pages' class in *@cls. */
int serve_huge(struct rs_serve *srv, struct rs_area *a, uint64_t hw, bool pf,
	       unsigned *cls);
/* Reads and serves what is pending: the count of events, or -errno
 * (the restore is then dead: see fate_fail). */
int serve_handle(struct rs_serve *srv);
/* Serves until @stop_fd is readable or the uffd fails. */
void *serve_thread(void *srv);
/* A pending REMOVE/UNMAP read (the EAGAIN of an install); the prefetch
 * drains under drain_lock (two threads). */
int serve_drain(struct rs_serve *srv);
int serve_drain_pf(struct rs_serve *srv);
int serve_lost(struct rs_serve *srv, int rc, uintptr_t addr, size_t len);
/*
 * Installs @n pages at area page @w from @buf (NULL: zero pages) with
 * UFFD_COPY_* @mode, draining pending events on EAGAIN (@pf: as the
 * prefetch does, under drain_lock). 0: installed and marked;
 * SERVE_RACED: nothing installed, some of the pages were removed
 * meanwhile (@buf: its bytes are stale): serve them afresh; SERVE_GONE:
 * the range is no longer registered or the process is exiting (woken,
 * nothing to serve there); -errno.
 */
#define SERVE_RACED		1
#define SERVE_GONE		2
int serve_install(struct rs_serve *srv, struct rs_area *a, uint64_t w,
		  uint64_t n, const void *buf, unsigned mode, bool pf);

#define EAGAIN_TRIES		10000

/* Runs @call until it stops saying EAGAIN, draining events in between. */
#define SERVE_RETRY(srv, call)		SERVE_RETRY_(srv, call, serve_drain)
#define SERVE_RETRY_PF(srv, call)	SERVE_RETRY_(srv, call, serve_drain_pf)
#define SERVE_RETRY_(srv, call, drain) ({				\
		int rs_rc_, rs_try_ = 0;				\
		while ((rs_rc_ = (call)) == -EAGAIN &&			\
		       rs_try_++ < EAGAIN_TRIES) {			\
			rs_rc_ = drain(srv);				\
			if (rs_rc_)					\
				break;					\
		}							\
		if (rs_rc_ == -EAGAIN)					\
			rs_rc_ = tier_err(-EAGAIN,			\
				"restore: userfaultfd busy for too long"); \
		rs_rc_;							\
	})

/* ------------------------------------------------ restore-record.c */

struct rs_rec {
	uint64_t t0;
	bool wp;			/* registered write-protect too */
	bool recording;			/* under fate->stat_lock */
	void *zero;			/* one zero page */
	uint32_t *idx;			/* entry index + 1 per image page */
	struct tier_trace_ent *ent;
	size_t nent, entcap;
};

/* @npages: the image's (areas of one image share the index) */
int rec_init(struct rs_rec *r, uint64_t npages, uint64_t t0, bool wp);
void rec_fini(struct rs_rec *r);
int rec_fault(struct rs_serve *srv, struct rs_area *a, uint64_t w,
	      const struct uffd_ev *ev);
int rec_wp(struct rs_serve *srv, struct rs_area *a, uint64_t w,
	   const struct uffd_ev *ev);
/* A malloc()ed copy of the entries so far, in first-touch order. */
int rec_entries(struct rs_rec *r, struct rs_fate *f,
		struct tier_trace_ent **ret, size_t *ret_n);

/* ------------------------------------------------ restore-prefetch.c */

struct piece;
struct pf_batch;
struct batch;

#define PF_DEPTH		2	/* batches in flight, posted reads */

/*
 * The COPY extents of one area, cut into batches that any number of
 * threads take one by one (pf_work): the start, and the populator too
 * when its handle may read the pool at the same time (help).
 */
struct rs_pf {
	struct rs_serve *srv;
	struct rs_area *area;
	struct piece *p;		/* every COPY piece, batch after batch */
	size_t np;
	struct pf_batch *b;
	size_t nb;
	uint64_t pages;			/* pages with bytes to fetch */
	atomic_size_t next;		/* the next batch to take */
	bool help;			/* a second thread may take batches */
	struct pool *pool;		/* the helper's: its own connection */
	struct pool_seg *seg;		/* ... or its own segment handle */
	struct batch *buf[2];		/* the start's and the helper's */
	/* a pool with posted reads, one thread: PF_DEPTH batches in flight
	 * (restore-prefetch.c, pf_pipe) */
	struct batch *pipe[PF_DEPTH];
	uint8_t *pipe_buf;		/* their bytes, one mapping */
	struct pool_mr *pipe_mr;	/* ... registered; NULL: no pipeline */
};

void pf_init(struct rs_pf *pf, struct rs_serve *srv, struct rs_area *area);
/* The batches, the helper's handle if @helper may take some (@tcp_any:
 * even for one batch's worth: tests), and the memory they need. */
int pf_prepare(struct rs_pf *pf, bool helper, bool tcp_any);
/* Takes batches until none is left, reading the pool through @seg. */
int pf_work(struct rs_pf *pf, struct pool_seg *seg, struct batch *b);
void pf_cancel(struct rs_pf *pf);
void pf_helper_end(struct rs_pf *pf);
void pf_fini(struct rs_pf *pf);

/* ------------------------------------------------ restore-sigbus.c */

/*
 * TIER_RESTORE_SIGBUS: what the faulting threads report, as atomics (a
 * signal handler cannot take stat_lock), added into the stats when they
 * are read; and the reason of the fault that killed the restore.
 */
struct rs_sig {
	atomic_uint_least64_t faults[TIER_CLASS_MAX];
	atomic_uint_least64_t lazy_pages, pool_bytes, local_bytes, fault_ns;
	atomic_int threads;		/* contexts open */
	atomic_bool msg_ready;		/* fate.errmsg is written */
	atomic_bool start_conn_lent;	/* src.pool/seg is a context's now */
};

void sig_stats_add(struct rs_sig *g, struct tier_restore_stats *st);

/* ------------------------------------------ the in-process restore */

struct rs_range {			/* readahead: fd, off; populate: addr */
	int fd;
	uint64_t off, len;
};

int rs_add_range(struct rs_range **v, size_t *n, size_t *cap, int fd,
		 uint64_t off, uint64_t len);

/* The plan as the range sees it (restore-map.c). */
struct rs_map {
	struct placer_ext *ext;		/* clipped, pages relative to base */
	size_t n;
	uint8_t *ovl;			/* per extent: in an overlay cluster */
	bool overlay;			/* the CXL object is shmem: overlay */
	bool ovl_checked;		/* object holds exactly the plan's pages */
	uint64_t plan_cxl_bytes;	/* bytes of CXL extents, whole plan */
	uint64_t plan_gen, plan_ns;	/* the plan's generation, created_ns */
};

#define POP_OVERLAY	(-2)		/* populate range fd: in an overlay */
#define POP_SERVE	2		/* pop.go: the populator serves */

struct pop_batch;

/* A caller's CPU affinity, handed to a thread started elsewhere. */
struct rs_cpus {
	cpu_set_t set;
	bool saved;
};

/*
 * Starts @fn on another CPU than the caller's, when the process may run
 * on one (restore-populate.c says why); @fn calls rs_cpus_restore first
 * thing, so the caller's CPU policy holds. 0 or a positive errno.
 */
int rs_spawn_elsewhere(pthread_t *t, void *(*fn)(void *), void *arg,
		       struct rs_cpus *c);
void rs_cpus_restore(const struct rs_cpus *c);

/* The populate list, and how the start and the populator meet (atomics,
 * never sleeping: restore.c says why). */
struct rs_pop {
	struct rs_range *r;		/* MADV_POPULATE_READ ranges */
	size_t n, cap;
	atomic_size_t next;		/* the next chunk to take */
	struct pop_batch *b[2];		/* the start's and the populator's */
	atomic_int go;			/* 1: extents, sources ready; -1: stop;
					 * POP_SERVE: become the handler */
	atomic_uintptr_t ready;		/* mapped and registered below this */
	atomic_bool done;		/* its results are set */
	atomic_int lists;		/* 0: being made; 1: made; -errno */
	char lists_msg[256];
	bool touch;			/* tests: every window by a read */
	int rc, pf_rc;
	char msg[256], pf_msg[256];
	pthread_t thread;
	bool have_thread;
	struct rs_cpus cpus;		/* the start's, for the populator */
	/* the populator's sleep once idle for long (pop_idle) */
	pthread_mutex_t idle_lock;
	pthread_cond_t idle_cond;
	bool idle_init, sleeping;	/* sleeping: under idle_lock */
};

/* The readahead loader (PLACER_F_READAHEAD: FaaSnap's). */
struct rs_loader {
	struct rs_range *r;
	size_t n, cap;
	pthread_t thread;
	bool have_thread;
	atomic_bool stop;
};

struct tier_restore {
	struct tier_snap *snap;
	enum tier_policy policy;
	unsigned flags;
	struct restore_opts opts;
	uint64_t t0;			/* CLOCK_MONOTONIC at start */
	uint8_t *base;
	size_t len;

	struct rs_fate fate;
	struct rs_src src;
	struct rs_map map;
	struct rs_area area;
	struct rs_serve srv;
	struct rs_pop pop;
	struct rs_pf pf;
	struct rs_loader ld;
	struct rs_rec *rec;
	struct rs_sig sig;

	pthread_t thread;		/* the fault handler */
	bool have_thread;

	void (*on_error)(struct tier_restore *rs, int err, const char *msg,
			 void *arg);
	void *arg;
};

/* restore-map.c */
int map_clip_extents(struct plan *plan, const struct tier_snap *snap,
		     uint64_t first, uint64_t npages, bool own,
		     struct placer_ext **ret, size_t *ret_n, uint64_t *pages);
int map_clip(struct tier_restore *rs, struct plan *plan, bool own);
int map_clusters(struct tier_restore *rs);
bool map_needs_uffd(const struct tier_restore *rs);
/* @dry: only the lists and counters (populate, readahead) */
int map_plan(struct tier_restore *rs, bool dry);
int map_register(struct tier_restore *rs, uint64_t *n);
int map_explain(const struct tier_restore *rs, const void *addr, char *buf,
		size_t len);

/* restore-populate.c */
bool pop_wanted(const struct plan *plan);
int pop_windows(struct rs_pop *pop, uintptr_t a, uintptr_t z);
int pop_prepare(struct rs_pop *pop);
bool pop_wait(struct rs_pop *pop, uintptr_t end);
/* The populator, done: waits until pop.go is no longer 1, its value then. */
int pop_idle(struct rs_pop *pop);
/* Sets pop.go to @go, waking the populator if pop_idle put it to sleep. */
void pop_go(struct rs_pop *pop, int go);
int pop_work(struct tier_restore *rs, struct pop_batch *b);
void pop_cancel(struct rs_pop *pop);
int pop_create(struct rs_pop *pop, void *(*fn)(void *), void *arg);
void pop_fini(struct rs_pop *pop);
void loader_sort(struct rs_loader *ld);
void loader_start(struct rs_loader *ld);
void loader_stop(struct rs_loader *ld);

#endif
