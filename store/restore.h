/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_RESTORE_H
#define TIER_STORE_RESTORE_H

/* Internal entry points of the restorer (store/restore.c), for tests and
 * front ends that already hold a plan. */

#include <stddef.h>

#include "tier.h"
#include "store/snap.h"

/*
 * tier_restore_start with @plan instead of the stored plan of
 * attr->policy (the plan's objects are still named after attr->policy).
 * @plan is only read during the call. Not for TIER_RESTORE_RECORD.
 */
int restore_start_plan(struct tier_snap *snap, const struct plan *plan,
		       void *addr, size_t len,
		       const struct tier_restore_attr *attr,
		       struct tier_restore **ret);

/* Record mode: a malloc()ed copy of the entries logged so far, in
 * first-touch order (what tier_restore_save_trace stores). */
int restore_trace(struct tier_restore *rs, struct tier_trace_ent **ret,
		  size_t *ret_n);

#endif
