/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_H
#define TIER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * libtier: a tiered-memory snapshot store. The only installed header,
 * for the VMMs and tools that link libtier (tierctl, vmm/qemu-adapter.c);
 * libtier.sym lists what it exports.
 *
 * Conventions for every call below, unless its comment says otherwise:
 *  - int-returning calls return 0 (or a count) on success and -errno on
 *    failure; tier_errmsg() then explains it in one line for this thread.
 *  - constructors write *ret only on success; destructors accept NULL.
 *  - an attr struct filled with zeroes asks for the defaults; a NULL attr
 *    pointer is the same as a zero-filled one.
 *  - a parent handle must outlive its children (store > snap > restore).
 *  - the library never prints; set TIER_LOG=debug or tier_set_log_fn()
 *    to see its debug trace.
 */

#define TIER_PAGE_SIZE		4096ULL
#define TIER_PAGE_SHIFT		12

struct tier_store;		/* a directory holding snapshots */
struct tier_snap;		/* one imported snapshot, open read-only */
struct tier_restore;		/* one restore (or recording) in progress */

/* Page classes, as the placer assigns them. */
enum tier_class {
	TIER_CLASS_ZERO,	/* all-zero in the image: stored nowhere */
	TIER_CLASS_RO,		/* touched, only read: CXL, mapped directly */
	TIER_CLASS_RW,		/* touched and written: pool, prefetched */
	TIER_CLASS_COLD,	/* not touched (or below confidence): pool, lazy */
	TIER_CLASS_MAX,
};

/* Placement policies: ours, then the baselines (REFERENCE.md section 7). */
enum tier_policy {
	TIER_POLICY_TIERED,	/* zero nowhere, ro on CXL mapped, rw prefetched, cold lazy */
	TIER_POLICY_VANILLA,	/* Firecracker File: whole image MAP_PRIVATE */
	TIER_POLICY_REAP,	/* working set copied in from a compact file, rest lazy */
	TIER_POLICY_FAASNAP,	/* loading set mapped from a compact file, zero anonymous */
	TIER_POLICY_AQUIFER,	/* zero elided, hot copied from CXL, cold lazy from pool */
	TIER_POLICY_EAGER,	/* every non-zero page copied in before resume */
	TIER_POLICY_MAX,
};

/* "tiered", "vanilla", ...; NULL for an unknown value. */
const char *tier_policy_name(enum tier_policy policy);
/* Parses a policy name; -EINVAL (with a message) if unknown. */
int tier_policy_parse(const char *name, enum tier_policy *ret);
const char *tier_class_name(enum tier_class cls);

/* ---------------------------------------------------------------- store */

/*
 * Opens (creating if needed) the store directory @path. NULL means
 * $TIER_STORE, else /var/lib/tier for root, else
 * $XDG_DATA_HOME/tier (~/.local/share/tier).
 */
int tier_store_open(const char *path, struct tier_store **ret);
void tier_store_close(struct tier_store *store);
const char *tier_store_path(const struct tier_store *store);

/* Calls @fn for each snapshot name in the store, in name order; stops
 * early (and returns that value) when @fn returns non-zero. */
int tier_store_foreach(struct tier_store *store,
		       int (*fn)(const char *name, void *arg), void *arg);

/* Removes a snapshot and its traces and plans (not its tier data). */
int tier_snap_remove(struct tier_store *store, const char *name);

/* -------------------------------------------------------------- import */

struct tier_region {
	uint64_t offset;	/* byte offset in the image, page aligned */
	uint64_t length;	/* bytes, page aligned */
};

struct tier_import_attr {
	/* Guest regions of the image; 0 regions: one region, the whole image. */
	const struct tier_region *regions;
	unsigned nregions;
	unsigned flags;
	/* A VMM's device-state file (QEMU's migration stream saved with
	 * x-ignore-shared) kept with the snapshot; NULL: none. */
	const char *state;
	/* Called now and then from the importing thread; may be NULL. */
	void (*progress)(uint64_t done, uint64_t total, void *arg);
	void *arg;
};

#define TIER_IMPORT_REPLACE	(1U << 0)	/* replace a snapshot of that name */

/*
 * Registers the raw memory image @image (QEMU RAM file, Firecracker memory
 * file) as snapshot @name: finds zero pages, checksums every page, keeps a
 * sparse copy of the image in the store and writes the manifest atomically.
 * The image size must be a multiple of the page size.
 */
int tier_import(struct tier_store *store, const char *name, const char *image,
		const struct tier_import_attr *attr);
/*
 * tier_import() of an image read from @fd (a file, block device or memfd,
 * from offset 0 to its end with pread; the fd is not closed), or from the
 * @len bytes at @addr (an in-process runtime's memory, e.g. a WebAssembly
 * instance's linear memory: read once, never kept). The memory must not
 * change during the call.
 */
int tier_import_fd(struct tier_store *store, const char *name, int fd,
		   const struct tier_import_attr *attr);
int tier_import_mem(struct tier_store *store, const char *name,
		    const void *addr, size_t len,
		    const struct tier_import_attr *attr);

/* ----------------------------------------------------------- snapshots */

/* Opens snapshot @name; verifies the manifest's checksum (-EBADMSG). */
int tier_snap_open(struct tier_store *store, const char *name,
		   struct tier_snap **ret);
void tier_snap_close(struct tier_snap *snap);
const char *tier_snap_name(const struct tier_snap *snap);
uint64_t tier_snap_size(const struct tier_snap *snap);		/* bytes */
uint64_t tier_snap_npages(const struct tier_snap *snap);
uint64_t tier_snap_nzero(const struct tier_snap *snap);		/* zero pages */
/* When it was imported: CLOCK_REALTIME in ns. */
uint64_t tier_snap_created(const struct tier_snap *snap);
unsigned tier_snap_nregions(const struct tier_snap *snap);
const struct tier_region *tier_snap_region(const struct tier_snap *snap,
					   unsigned i);

/*
 * Compares one page's bytes with the image's checksum: 0 if equal,
 * -EBADMSG (with a message naming the page) if not, -ERANGE if @page is
 * past the end.
 */
int tier_snap_verify_page(const struct tier_snap *snap, uint64_t page,
			  const void *buf);

/*
 * The path of the snapshot's device-state file (see tier_import_attr)
 * after checking it against its stored checksum: -ENOENT if the snapshot
 * has none, -EBADMSG if it changed since the import.
 */
int tier_snap_state_path(struct tier_snap *snap, char *buf, size_t len);

/* --------------------------------------------------------------- traces */

/* Access kinds of a page in one run. */
enum tier_access {
	TIER_ACCESS_R = 1,	/* only read */
	TIER_ACCESS_W = 2,	/* written first */
	TIER_ACCESS_RW = 3,	/* read first, written later */
};

/*
 * Imports the text trace @path (doc/tier-trace.5: "OFFSET KIND" per line,
 * '#' comments, a bare offset is a read) as trace @name of @snap.
 * Errors name the file and line.
 */
int tier_trace_import(struct tier_snap *snap, const char *name,
		      const char *path);
/* Writes trace @name of @snap in the text form to @fd. */
int tier_trace_export(struct tier_snap *snap, const char *name, int fd);
/* Calls @fn for each trace name of @snap, in name order. */
int tier_trace_foreach(struct tier_snap *snap,
		       int (*fn)(const char *name, void *arg), void *arg);

/* One access of a trace, in first-touch order. */
struct tier_trace_ent {
	uint64_t page;		/* page index in the image */
	uint64_t t_ns;		/* time since the start of the run; 0 if unknown */
	enum tier_access kind;
};

/* Loads trace @name into a malloc()ed array the caller frees. */
int tier_trace_load(struct tier_snap *snap, const char *name,
		    struct tier_trace_ent **ret, size_t *ret_n);

/* --------------------------------------------------------------- place */

struct tier_place_attr {
	const char *cxl;	/* "cxl=dir:PATH" etc; NULL: the default dir on tmpfs */
	const char *pool;	/* "pool=file:PATH" etc; NULL: a file pool in the store */
	/* Traces to merge; NULL: every trace of the snapshot. NULL-terminated. */
	const char *const *traces;
	/* A page is hot when at least this fraction of runs touched it;
	 * 0: 0.5. */
	double confidence;
	/* Zero or cold pages bridged inside a run of one method; 0: 4;
	 * TIER_PLACE_NO_GAP for none. */
	unsigned gap;
	uint64_t cxl_capacity;	/* bytes; 0: unlimited */
	unsigned flags;		/* TIER_PLACE_* */
	/*
	 * tiered on a shmem tier (the identity layout): zero runs of up to
	 * this many pages join their neighbours into one mapping. 0: chosen
	 * by cost, from what a mapping and a zero page's userfault cost on
	 * the restoring host (map_ns, zero_fault_ns) and how many zero pages
	 * the traces touched (doc/placement.md); TIER_PLACE_NO_GAP: gap's.
	 */
	unsigned cluster_gap;
	unsigned map_ns;	/* one more mapping; 0: 3000 */
	unsigned zero_fault_ns;	/* a zero page's first touch through
				 * userfaultfd, beyond the kernel's; 0: 30000 */
	/*
	 * "rados://POOL[/NS][?...]" (or "file:PATH"): the durable copy the
	 * pool segment is written through to, committed before the pool's,
	 * and named in the plan beside the pool (pool serve --backing loads
	 * from it, TIER_RESTORE_POOL_FALLBACK reads it). NULL: the pool only.
	 */
	const char *backing;
};

#define TIER_PLACE_NO_GAP	(~0U)
/*
 * tiered on a shmem CXL tier lays its object out at guest offsets (the
 * identity layout, mapped once per cluster: doc/placement.md); this
 * asks for the compact layout there too, as on every other tier.
 */
#define TIER_PLACE_COMPACT	(1U << 0)

/*
 * Computes the plan of @policy for @snap from its traces and the image,
 * writes the tier data (CXL objects, pool segments, compact local files)
 * and then the plan, atomically replacing an earlier plan of that policy.
 * The data goes to new objects named by the plan's generation; the
 * earlier plan's are removed once the new plan is in. On failure the
 * earlier plan and its data are left as they were.
 */
int tier_place(struct tier_snap *snap, enum tier_policy policy,
	       const struct tier_place_attr *attr);

/* Summary of a stored plan, for "tierctl show". */
struct tier_plan_info {
	enum tier_policy policy;
	char cxl[256];		/* tier URIs the plan's data was written to */
	char pool[256];
	uint64_t pages[TIER_CLASS_MAX];
	uint64_t extents;	/* runs of one class, source and method */
	uint64_t mappings;	/* mmap calls + uffd registrations a restore makes */
	uint64_t cxl_bytes;	/* bytes held in the CXL tier */
	uint64_t pool_bytes;	/* bytes held in the pool */
	uint64_t local_bytes;	/* bytes held in compact local files */
	char backing[256];	/* the pool's durable copy (place --backing); "" */
};

/* -ENOENT (with a hint to run "tierctl place") if there is no such plan. */
int tier_plan_info(struct tier_snap *snap, enum tier_policy policy,
		   struct tier_plan_info *ret);

/* Per-page view of a plan, for drawing maps: @ret gets npages entries,
 * each (class | tier << 4), tier as TIER_TIER_*; the caller frees it. */
#define TIER_TIER_NONE	0	/* zero: nowhere */
#define TIER_TIER_CXL	1
#define TIER_TIER_POOL	2
#define TIER_TIER_LOCAL	3	/* a compact local file of the store */
#define TIER_TIER_IMAGE	4	/* the image itself (baselines) */
int tier_plan_pages(struct tier_snap *snap, enum tier_policy policy,
		    uint8_t **ret);

/* ------------------------------------------------------------- restore */

struct tier_restore_attr {
	unsigned flags;			/* TIER_RESTORE_* */
	enum tier_policy policy;	/* which stored plan; 0: tiered */
	const char *cxl;		/* override the plan's tier URIs; NULL: the plan's */
	const char *pool;
	/* Pages fetched per lazy fault, the faulting one first; 0: 8. */
	unsigned prefetch;
	/* Restore the image bytes [offset, offset + len) of tier_restore_start. */
	uint64_t offset;
	/*
	 * Called from the fault-handling thread when a page cannot be
	 * fetched. The faulting thread is left blocked (the guest is
	 * stopped), never given a zero or stale page; the restore is dead.
	 * A VMM stops or kills the guest here. It runs with the restore's
	 * lock held: it must not call tier_restore_stop().
	 */
	void (*on_error)(struct tier_restore *rs, int err, const char *msg,
			 void *arg);
	void *arg;
	/*
	 * After serving faults, the fault-handling thread polls for this
	 * many microseconds before it sleeps, so a fault that follows soon is
	 * read at once rather than after a wake-up; 0: the default,
	 * TIER_RESTORE_SPIN_DEFAULT_US. TIER_RESTORE_NO_SPIN: never.
	 * Measured (BENCHMARKS.md, 2026-12-07): 50 us took dense faults from
	 * 1.84x to 1.16x the floor on an idle host, and made them slower on
	 * a busy one (the spinning thread takes the CPU others want), so the
	 * default does not spin; a VMM with a core to spare may.
	 */
	unsigned spin_us;
	/*
	 * With TIER_RESTORE_POOL_FALLBACK: the durable copy to read where
	 * the pool fails; NULL: the one the plan names (place --backing).
	 */
	const char *backing;
};

#define TIER_RESTORE_SPIN_DEFAULT_US	0

/* Record instead of restore: every page lazy from the image, first
 * accesses logged with read/write kind (uffd MISSING + write-protect). */
#define TIER_RESTORE_RECORD	(1U << 0)
/* Do not start the fault-handling thread; the caller polls
 * tier_restore_fd() and calls tier_restore_handle(). */
#define TIER_RESTORE_NO_THREAD	(1U << 1)
/* Map each CXL run on its own even where the CXL tier is shmem and one
 * mapping of the object could cover a whole cluster, its holes served
 * through userfaultfd (doc/placement.md): more mappings, no reliance on
 * the object's holes. */
#define TIER_RESTORE_NO_OVERLAY	(1U << 2)
/* The fault-handling thread sleeps as soon as no fault is pending. */
#define TIER_RESTORE_NO_SPIN	(1U << 3)
/*
 * A pool segment the pool cannot open or read (its server down, or
 * restarted without it) is read from the durable copy behind it
 * (attr->backing, else the plan's: tierctl place --backing), every page
 * still checked; with both down the restore fails closed as without.
 * Without the flag a plan's backing is not used.
 */
#define TIER_RESTORE_POOL_FALLBACK	(1U << 8)
/*
 * madvise(MADV_DONTNEED) of restored pages resets them to the snapshot:
 * the handler thread fetches them again on their next touch (an
 * in-process runtime resetting an instance). Without it such pages read
 * as zero afterwards, as a guest's balloon expects. SIGBUS mode always
 * resets so (nothing reads its events).
 */
#define TIER_RESTORE_DONTNEED_RESETS	(1U << 9)
/*
 * No fault-handling thread: a lazy page's first touch raises SIGBUS in
 * the touching thread (UFFD_FEATURE_SIGBUS), whose handler calls
 * tier_restore_fault() to fetch, verify and install the page itself.
 * For in-process runtimes (a WebAssembly host running instances in its
 * own threads), NOT for VMMs: KVM reaches guest memory from the kernel,
 * where a missing page is no signal but an -EFAULT from KVM_RUN, and
 * any syscall handed a page not yet in (read(2) into it, say) fails
 * with EFAULT the same way: touch such buffers first. madvise(
 * MADV_DONTNEED) of restored pages resets them to the snapshot: their
 * next touch fetches them again (with the handler thread such pages read
 * as zero afterwards unless TIER_RESTORE_DONTNEED_RESETS). on_error is not
 * called (the failure is tier_restore_fault's answer). -EOPNOTSUPP from
 * tier_restore_start where the kernel lacks the feature. Not with
 * TIER_RESTORE_RECORD or TIER_RESTORE_NO_THREAD.
 */
#define TIER_RESTORE_SIGBUS	(1U << 4)

/*
 * Restores @len bytes of @snap (from attr->offset) into [@addr, @addr+@len).
 * The range must be page aligned and is replaced (MAP_FIXED): it may be an
 * existing anonymous mapping. On return read-only extents are mapped,
 * read-write extents are resident, and lazy pages are served on fault.
 * Every page copied in from the pool, the CXL tier or a compact local
 * file is checked against the snapshot's checksum before it is installed
 * (pages mapped zero-copy are not read, so not checked; pages read from
 * the image itself were checked at import). On failure the range is left
 * inaccessible (PROT_NONE), never half restored. -ESTALE: a newer
 * tier_place() replaced the plan between its loading and the opening of
 * its data; a retry restores the new one.
 */
int tier_restore_start(struct tier_snap *snap, void *addr, size_t len,
		       const struct tier_restore_attr *attr,
		       struct tier_restore **ret);

/* The userfaultfd to poll with TIER_RESTORE_NO_THREAD (>= 0); -EINVAL
 * without that flag, -ENOENT when no page is served through it. */
int tier_restore_fd(const struct tier_restore *rs);
/* Reads and serves pending events; 0 when none were pending. */
int tier_restore_handle(struct tier_restore *rs);

struct tier_restore_stats {
	uint64_t pages[TIER_CLASS_MAX];	 /* pages of each class in the range */
	uint64_t faults[TIER_CLASS_MAX]; /* userfaultfd faults served per class */
	uint64_t wp_faults;		 /* record: write-protect faults */
	uint64_t prefetched_pages;	 /* installed before start returned */
	uint64_t lazy_pages;		 /* installed by faults, prefetch included */
	uint64_t pool_bytes;		 /* read from the pool */
	uint64_t local_bytes;		 /* read from local files and the image */
	uint64_t cxl_mapped_bytes;	 /* mapped from the CXL tier */
	uint64_t mappings;		 /* mmap calls + uffd registrations */
	/* Phases of the start: the mmaps (with the registrations of the
	 * overlay clusters they map); installing the COPY pages and
	 * populating the mapped ones (two threads, until both are done);
	 * the other registrations; all of the start. */
	uint64_t map_ns, prefetch_ns, register_ns, setup_ns;
	uint64_t fault_ns;		 /* total time spent serving faults */
	int error;			 /* 0, or the -errno that killed it */
};

/* A consistent copy of the counters; safe while faults are served. */
void tier_restore_stats(const struct tier_restore *rs,
			struct tier_restore_stats *ret);

/* 0 while healthy, else the -errno that stopped it (see on_error). */
int tier_restore_error(const struct tier_restore *rs);

/*
 * For the VMM's SIGBUS handler (SA_SIGINFO, si_addr): pages mapped
 * zero-copy stay the file's, so a CXL object (or image) truncated by
 * someone else under a running restore makes the guest's next touch of
 * a page past its new end SIGBUS. If @addr is such a page, writes a
 * one-line reason naming the snapshot, the page and the object into @buf
 * and returns 0; else -ENOENT (not a page tier mapped from a file now
 * too short). Searches, fstats and formats only: callable from the
 * handler, which should then stop the guest (the page cannot be had).
 */
int tier_restore_sigbus_reason(const struct tier_restore *rs,
			       const void *addr, char *buf, size_t len);

/*
 * A faulting thread's context for TIER_RESTORE_SIGBUS: its own pool
 * connection (the first context opened gets the one the start used) and
 * buffers, opened before the thread touches the memory
 * (a signal handler can neither allocate nor connect). One thread uses
 * one at a time; keep it where the thread's SIGBUS handler finds it (a
 * thread-local of the runtime's). Close every one before
 * tier_restore_stop. -EINVAL: the restore is not in SIGBUS mode;
 * -EOPNOTSUPP: a pool transport without a signal-safe read (rdma://,
 * rados://: serve those with the handler thread).
 */
struct tier_restore_thread;
int tier_restore_thread_open(struct tier_restore *rs,
			     struct tier_restore_thread **ret);
void tier_restore_thread_close(struct tier_restore_thread *t);

/*
 * Call from the SIGBUS handler (SA_SIGINFO) with si_addr. Fetches the
 * page (and the prefetch window after it) from its tier, checks it
 * against the snapshot's checksum and installs it: 0, return from the
 * handler and the access is retried. -ENOENT: @addr is not a page this
 * restore serves through userfaultfd: a page it mapped from a file that
 * was cut short (tier_restore_sigbus_reason says so) or some other
 * fault (chain to the next handler); the restore is not failed. Any
 * other -errno: the page cannot be had (a dead pool, a corrupt page, a
 * restore already dead); it is never replaced by a zero page and the
 * restore is dead (tier_restore_error), so end the instance (siglongjmp
 * out of it) and read the reason with tier_restore_thread_errmsg.
 * -EBUSY: @t is inside a fault already (shared by two threads, or a
 * fault in the handler's own code), no reason written: a runtime bug.
 * Async-signal-safe: syscalls on @t's open descriptors, its buffers and
 * atomics only; it writes no tier_errmsg.
 */
int tier_restore_fault(struct tier_restore_thread *t, const void *addr);
/* The one-line reason of @t's last failed tier_restore_fault; "" if
 * none. Safe after a siglongjmp out of the handler. */
const char *tier_restore_thread_errmsg(const struct tier_restore_thread *t);

/*
 * Record mode: stops recording and stores what was touched so far as
 * trace @name of the snapshot.
 */
int tier_restore_save_trace(struct tier_restore *rs, const char *name);

/*
 * Stops serving faults and frees the handle. The memory stays mapped and
 * belongs to the caller; pages never touched become unserved, so unmap
 * the range or stop the guest first. After a failure (see on_error) the
 * range is made inaccessible before the userfaultfd is closed, so threads
 * blocked on unserved pages fault instead of reading zeros.
 */
void tier_restore_stop(struct tier_restore *rs);

/* ---------------------------------------------------------------- errors */

/* The reason for this thread's last failure, one line; never NULL. */
const char *tier_errmsg(void);

enum tier_log_level { TIER_LOG_ERR = 3, TIER_LOG_INFO = 6, TIER_LOG_DEBUG = 7 };
void tier_set_log_fn(void (*fn)(int level, const char *msg, void *arg),
		     void *arg);

/* ------------------------------------------------------- pool settings */

/*
 * Process-wide settings of the pool connections opened after the call
 * (a program sets them once, before it opens anything: tierctl from its
 * TIER_POOL_TIMEOUT_MS and TIER_POOL_RDMA_SRC). Zero-filled fields, or
 * NULL, keep the defaults. -EINVAL for a timeout past an hour or a
 * source address that does not fit.
 */
struct tier_pool_opts {
	/* A request's I/O timeout on tcp:// and rdma:// (a stalled
	 * server fails the read after it); 0: 10 s. */
	unsigned timeout_ms;
	/* rdma://: the local address to connect from, which picks the
	 * device on a host with several (the two ends of a soft-RoCE
	 * pair); NULL: the route's. */
	const char *rdma_src;
};
int tier_set_pool_opts(const struct tier_pool_opts *opts);

const char *tier_version(void);

#ifdef __cplusplus
}
#endif

#endif /* TIER_H */
