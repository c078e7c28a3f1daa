/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tierctl replay's parts: the run (replay.c: restores, touches, verifies
 * in child processes) and its report (replay-report.c: the children's
 * results summed and printed as JSON or text).
 */
#ifndef TIERCTL_REPLAY_H
#define TIERCTL_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tier.h"

struct replay_cfg {
	const char *cmd;		/* "tierctl replay" */
	struct tier_snap *snap;
	const struct tier_trace_ent *ent;
	size_t n;
	struct tier_restore_attr attr;
	unsigned instances;
	bool latency;			/* time each touch of a page not yet there */
	unsigned gap_us;		/* --touch-gap-us: a pause before each touch */
	int ready_fd, go_fd;		/* the start barrier; -1: none */
};

/* The touches of pages that were not resident: faults the restore served. */
struct fault_lat {
	uint64_t n;
	uint64_t p50_ns, p99_ns, max_ns, mean_ns;
	uint64_t gap_p50_ns;	/* from one fault's end to the next's start */
};

/* Sent by each child through a pipe: one write, below PIPE_BUF, atomic. */
struct replay_result {
	unsigned instance;
	int failed;			/* an error, not a mismatch */
	uint64_t verified, mismatches;
	double setup_ms, replay_ms;
	double verify_ms;		/* after the replay, untimed by it */
	struct fault_lat lat;		/* --latency */
	uint64_t anon_rss;
	uint64_t minflt, majflt;
	struct tier_restore_stats st;
	char err[512];
};
_Static_assert(sizeof(struct replay_result) <= 4096, "one atomic pipe write");

struct totals {
	uint64_t verified, mismatches, faults[TIER_CLASS_MAX];
	uint64_t pool, local, cxl, anon, prefetched, lazy, minflt, majflt;
	uint64_t mappings;
	double setup_mean, setup_max, replay_mean, replay_max, verify_mean;
	/* --latency: over the instances, p50 and mean averaged, p99 and max
	 * the largest */
	struct fault_lat lat;
	unsigned n;
};

void replay_sum(const struct replay_result *res, unsigned count,
		struct totals *t);
void replay_print_json(const struct replay_cfg *cfg, const char *trace,
		       const struct replay_result *res, const struct totals *t);
void replay_print_human(const struct replay_cfg *cfg, const char *trace,
			const struct replay_result *res, const struct totals *t);

#endif
