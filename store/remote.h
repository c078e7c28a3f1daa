/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_REMOTE_H
#define TIER_STORE_REMOTE_H

/*
 * A restore into another process's memory (store/restore-remote.c): the
 * process (a Firecracker VMM) mapped its guest memory private anonymous,
 * registered it MISSING with a userfaultfd and handed that uffd over
 * with the regions. No mapping step: every page is installed by copy,
 * zero-page and wake, from the snapshot's plan. For vmm/fc-serve.c; one
 * thread drives a remote at a time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier.h"

struct remote_region {
	uint64_t base;		/* address in the served process */
	uint64_t size;		/* bytes */
	uint64_t offset;	/* bytes into the snapshot image */
	uint64_t page_size;	/* 4096, or 2 MiB (hugetlbfs) */
};

#define REMOTE_RECORD		(1U << 0)	/* no plan: every non-zero page
						 * from the image, touches logged */
#define REMOTE_KEEP_REMOVED	(1U << 1)	/* a removed range stays
						 * registered (zero pages from
						 * us), not unregistered */
#define REMOTE_POOL_FALLBACK	(1U << 2)	/* as TIER_RESTORE_POOL_FALLBACK */

struct remote_attr {
	unsigned flags;			/* REMOTE_* */
	enum tier_policy policy;	/* which stored plan; 0: tiered */
	const char *cxl, *pool;		/* override the plan's URIs */
	unsigned prefetch;		/* pages a lazy fault fetches; 0: 8 */
	const char *backing;		/* REMOTE_POOL_FALLBACK's copy; NULL:
					 * the plan's */
};

struct remote;

/*
 * Opens the plan's sources for the regions of @uffd's process (the uffd
 * is borrowed: remote_close does not close it). Regions are checked
 * against the snapshot: inside it, aligned to their page size.
 */
int remote_open(struct tier_snap *snap, int uffd,
		const struct remote_region *r, size_t n,
		const struct remote_attr *attr, struct remote **ret);
/*
 * Zero-copy for a VMM that can map files itself (the protocol extension
 * of vmm/fc-zc.c): the runs of the plan's hot read-only pages that the
 * in-process restore maps from the CXL object, as addresses of the
 * served process and offsets in the object, and a new O_RDONLY fd of
 * the object (*@ret_fd, the caller's to close; -1 with no run). Not for
 * 2 MiB regions.
 */
struct remote_map {
	uint64_t addr, len, obj_off;
};
int remote_zero_copy(struct remote *rm, struct remote_map **ret,
		     size_t *ret_n, int *ret_fd);
/* The VMM mapped them (MAP_PRIVATE|MAP_FIXED over its registered
 * memory, which unregisters them): they are neither prefetched nor
 * served. Before remote_prefetch. */
void remote_zero_copy_done(struct remote *rm);
/* Installs the plan's hot pages (its COPY extents, and the MAP extents
 * a stock VMM cannot map: copied), then wakes every region. */
int remote_prefetch(struct remote *rm);
/* Reads and serves the pending events: their count, or -errno once a
 * page could not be had (the remote is then dead and serves no more). */
int remote_handle(struct remote *rm);
/* 0 while healthy, else the -errno that stopped it; its reason in
 * remote_errmsg. */
int remote_error(const struct remote *rm);
const char *remote_errmsg(const struct remote *rm);
/* REMOVE events applied (ranges taken out of service). */
uint64_t remote_removes(const struct remote *rm);
/* The served process is exiting (an install found its mm gone): the
 * caller's cue to stop, before its socket may say so. */
bool remote_exiting(const struct remote *rm);
/* The address whose fault killed it, or UINT64_MAX (none, or the
 * prefetch: its message names the page). */
uint64_t remote_fail_addr(const struct remote *rm);
/* Record mode: the first touches so far (malloc()ed), in order. */
int remote_trace(struct remote *rm, struct tier_trace_ent **ret,
		 size_t *ret_n);
/* Record mode: whether writes after reads are seen (the uffd let us add
 * write-protect to the VMM's registration). */
bool remote_record_wp(const struct remote *rm);
void remote_stats(const struct remote *rm, struct tier_restore_stats *ret);
int remote_save_trace(struct remote *rm, const char *name);
void remote_close(struct remote *rm);

#endif
