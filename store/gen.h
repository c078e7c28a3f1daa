/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_GEN_H
#define TIER_STORE_GEN_H

/*
 * A plan's generation and its data across places (store/gen.c): the
 * policy's lock, the intent a place records before it writes a tier,
 * and the removal of a generation's data. For store/place.c and the
 * store's gc (store/gc.c).
 */

#include <stdbool.h>
#include <stdint.h>

#include "store/snap.h"

/* Takes plans/POLICY.lock (made if need be), held until *@ret_fd is
 * closed; !@wait: -EBUSY if a place holds it. */
int gen_lock(struct tier_snap *s, enum tier_policy policy, bool wait,
	     int *ret_fd);

/* Records that generation @gen of @policy writes to the CXL tier @cxl and
 * the pool @pool (URIs; "" for a tier it does not use), before it does. */
int gen_intent_write(struct tier_snap *s, enum tier_policy policy,
		     uint64_t gen, const char *cxl, const char *pool);

bool gen_has_intent(const struct tier_snap *s, enum tier_policy policy,
		    uint64_t gen);

/*
 * Removes generation @gen's data: its CXL object on @cxl, its pool
 * segment on @pool (URIs as in its intent), its local file, and what a
 * writer of it killed before committing left; then its intent. 0 once
 * all of it is gone; else -errno, the intent kept for a later try.
 */
int gen_drop(struct tier_snap *s, enum tier_policy policy, uint64_t gen,
	     const char *cxl, const char *pool);

/*
 * Under the lock: drops every generation of @policy with an intent but
 * not the current plan's (a place killed before its plan was in, or
 * after but before it removed the plan it replaced), and plan
 * temporaries; @report (may be NULL) gets a line for each generation.
 * Returns how many things went, or -errno (a plan that does not read:
 * nothing is dropped).
 */
int gen_recover(struct tier_snap *s, enum tier_policy policy,
		void (*report)(const char *what, void *arg), void *arg);

/*
 * Under the lock: every generation of @policy's data goes, the current
 * plan's too (its intent written and the plan removed first, so data a
 * dead pool kept is still found by the next gc or rm). 0, or the first
 * failure, with what stays recorded.
 */
int gen_drop_all(struct tier_snap *s, enum tier_policy policy);

#endif
