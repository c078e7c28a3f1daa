/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_RESTORE_H
#define TIER_STORE_RESTORE_H

/* Internal entry points of the restorer (store/restore.c), for tests and
 * front ends that already hold a plan. The parts themselves are in
 * store/restore-int.h. */

#include <stdbool.h>
#include <stddef.h>

#include "tier.h"
#include "store/snap.h"

/*
 * tier_restore_start with @plan instead of the stored plan of
 * attr->policy (the plan's objects are still named after attr->policy,
 * and its generation). @plan is only read during the call. Not for
 * TIER_RESTORE_RECORD.
 */
int restore_start_plan(struct tier_snap *snap, const struct plan *plan,
		       void *addr, size_t len,
		       const struct tier_restore_attr *attr,
		       struct tier_restore **ret);

/*
 * Switches for tests, never read from the environment: each forces a
 * path the restorer otherwise takes only on some machines or plans.
 */
struct restore_opts {
	bool no_populator;	/* as if no second thread could be made: the
				 * start lists, populates, prefetches alone */
	bool pf_helper;		/* the populator takes every prefetch batch
				 * (over a TCP pool, whatever its size) */
	bool pop_touch;		/* every overlay window populated by a
				 * read, as while the start still maps */
};

/* restore_start_plan with @opts (NULL: none); @plan NULL: the stored
 * plan of attr->policy. */
int restore_start_opts(struct tier_snap *snap, const struct plan *plan,
		       void *addr, size_t len,
		       const struct tier_restore_attr *attr,
		       const struct restore_opts *opts,
		       struct tier_restore **ret);

/* Record mode: a malloc()ed copy of the entries logged so far, in
 * first-touch order (what tier_restore_save_trace stores). */
int restore_trace(struct tier_restore *rs, struct tier_trace_ent **ret,
		  size_t *ret_n);

#endif
