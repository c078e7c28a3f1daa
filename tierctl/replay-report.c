/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tierctl replay's report: the instances' results summed (means and
 * maxima, latency over the instances) and printed, one JSON object
 * (--json) or a table.
 */
#include <stdio.h>
#include <string.h>

#include "tier.h"
#include "tierctl/replay.h"
#include "tierctl/tierctl.h"

void replay_sum(const struct replay_result *res, unsigned count,
			struct totals *t)
{
	const struct replay_result *r;
	unsigned i, c;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < count; i++) {
		r = &res[i];
		t->verified += r->verified;
		t->mismatches += r->mismatches;
		for (c = 0; c < TIER_CLASS_MAX; c++)
			t->faults[c] += r->st.faults[c];
		t->pool += r->st.pool_bytes;
		t->local += r->st.local_bytes;
		t->cxl += r->st.cxl_mapped_bytes;
		t->anon += r->anon_rss;
		t->prefetched += r->st.prefetched_pages;
		t->lazy += r->st.lazy_pages;
		t->minflt += r->minflt;
		t->majflt += r->majflt;
		if (r->st.mappings > t->mappings)
			t->mappings = r->st.mappings;
		t->setup_mean += r->setup_ms / count;
		t->replay_mean += r->replay_ms / count;
		t->verify_mean += r->verify_ms / count;
		t->lat.n += r->lat.n;
		t->lat.p50_ns += r->lat.p50_ns / count;
		t->lat.mean_ns += r->lat.mean_ns / count;
		t->lat.gap_p50_ns += r->lat.gap_p50_ns / count;
		if (r->lat.p99_ns > t->lat.p99_ns)
			t->lat.p99_ns = r->lat.p99_ns;
		if (r->lat.max_ns > t->lat.max_ns)
			t->lat.max_ns = r->lat.max_ns;
		if (r->setup_ms > t->setup_max)
			t->setup_max = r->setup_ms;
		if (r->replay_ms > t->replay_max)
			t->replay_max = r->replay_ms;
	}
	t->n = count;
}

void replay_print_json(const struct replay_cfg *cfg, const char *trace,
		       const struct replay_result *res, const struct totals *t)
{
	const struct replay_result *r;
	unsigned i;

	printf("{\"snapshot\":");
	json_str(stdout, tier_snap_name(cfg->snap));
	printf(",\"policy\":");
	json_str(stdout, tier_policy_name(cfg->attr.policy));
	printf(",\"trace\":");
	json_str(stdout, trace);
	printf(",\"trace_pages\":%zu,\"instances\":%u", cfg->n, cfg->instances);
	printf(",\"verified_pages\":%llu,\"mismatches\":%llu",
	       (unsigned long long)t->verified, (unsigned long long)t->mismatches);
	printf(",\"setup_ms\":%.3f,\"setup_ms_max\":%.3f,\"replay_ms\":%.3f,"
	       "\"replay_ms_max\":%.3f,\"verify_ms\":%.3f", t->setup_mean,
	       t->setup_max, t->replay_mean, t->replay_max, t->verify_mean);
	if (cfg->latency)
		printf(",\"fault_latency\":{\"n\":%llu,\"p50_ns\":%llu,"
		       "\"p99_ns\":%llu,\"max_ns\":%llu,\"mean_ns\":%llu,"
		       "\"gap_p50_ns\":%llu}",
		       (unsigned long long)t->lat.n,
		       (unsigned long long)t->lat.p50_ns,
		       (unsigned long long)t->lat.p99_ns,
		       (unsigned long long)t->lat.max_ns,
		       (unsigned long long)t->lat.mean_ns,
		       (unsigned long long)t->lat.gap_p50_ns);
	/* the range's pages per class: the same in every instance */
	printf(",\"pages\":{\"zero\":%llu,\"ro\":%llu,\"rw\":%llu,\"cold\":%llu}",
	       (unsigned long long)res[0].st.pages[TIER_CLASS_ZERO],
	       (unsigned long long)res[0].st.pages[TIER_CLASS_RO],
	       (unsigned long long)res[0].st.pages[TIER_CLASS_RW],
	       (unsigned long long)res[0].st.pages[TIER_CLASS_COLD]);
	printf(",\"faults\":{\"zero\":%llu,\"ro\":%llu,\"rw\":%llu,\"cold\":%llu}",
	       (unsigned long long)t->faults[TIER_CLASS_ZERO],
	       (unsigned long long)t->faults[TIER_CLASS_RO],
	       (unsigned long long)t->faults[TIER_CLASS_RW],
	       (unsigned long long)t->faults[TIER_CLASS_COLD]);
	printf(",\"pool_bytes\":%llu,\"local_bytes\":%llu,\"anon_rss_bytes\":%llu,"
	       "\"cxl_mapped_bytes\":%llu,\"prefetched_pages\":%llu,"
	       "\"lazy_pages\":%llu,\"mappings\":%llu,\"minflt\":%llu,\"majflt\":%llu",
	       (unsigned long long)t->pool, (unsigned long long)t->local,
	       (unsigned long long)t->anon, (unsigned long long)t->cxl,
	       (unsigned long long)t->prefetched, (unsigned long long)t->lazy,
	       (unsigned long long)t->mappings, (unsigned long long)t->minflt,
	       (unsigned long long)t->majflt);
	printf(",\"per_instance\":[");
	for (i = 0; i < cfg->instances; i++) {
		r = &res[i];
		printf("%s{\"instance\":%u,\"verified_pages\":%llu,\"mismatches\":%llu,"
		       "\"setup_ms\":%.3f,\"replay_ms\":%.3f,\"verify_ms\":%.3f,"
		       "\"restore_setup_ms\":%.3f,"
		       "\"map_ms\":%.3f,\"prefetch_ms\":%.3f,\"register_ms\":%.3f,"
		       "\"fault_ms\":%.3f,"
		       "\"faults\":{\"zero\":%llu,\"ro\":%llu,\"rw\":%llu,\"cold\":%llu},"
		       "\"pool_bytes\":%llu,\"anon_rss_bytes\":%llu,"
		       "\"cxl_mapped_bytes\":%llu,\"prefetched_pages\":%llu,"
		       "\"lazy_pages\":%llu,\"mappings\":%llu,\"minflt\":%llu,"
		       "\"majflt\":%llu}",
		       i ? "," : "", r->instance,
		       (unsigned long long)r->verified,
		       (unsigned long long)r->mismatches, r->setup_ms, r->replay_ms,
		       r->verify_ms, r->st.setup_ns / 1e6, r->st.map_ns / 1e6, r->st.prefetch_ns / 1e6,
		       r->st.register_ns / 1e6, r->st.fault_ns / 1e6,
		       (unsigned long long)r->st.faults[TIER_CLASS_ZERO],
		       (unsigned long long)r->st.faults[TIER_CLASS_RO],
		       (unsigned long long)r->st.faults[TIER_CLASS_RW],
		       (unsigned long long)r->st.faults[TIER_CLASS_COLD],
		       (unsigned long long)r->st.pool_bytes,
		       (unsigned long long)r->anon_rss,
		       (unsigned long long)r->st.cxl_mapped_bytes,
		       (unsigned long long)r->st.prefetched_pages,
		       (unsigned long long)r->st.lazy_pages,
		       (unsigned long long)r->st.mappings,
		       (unsigned long long)r->minflt, (unsigned long long)r->majflt);
	}
	printf("]}\n");
}

void replay_print_human(const struct replay_cfg *cfg, const char *trace,
			const struct replay_result *res, const struct totals *t)
{
	char b1[32], b2[32], b3[32], b4[32];
	unsigned i;

	printf("replay of %s, plan %s, trace %s (%zu pages), %u instance%s\n",
	       tier_snap_name(cfg->snap), tier_policy_name(cfg->attr.policy),
	       trace, cfg->n, cfg->instances, cfg->instances == 1 ? "" : "s");
	printf("  %-12s %12s %12s\n", "", "mean", "max");
	printf("  %-12s %9.3f ms %9.3f ms\n", "setup", t->setup_mean, t->setup_max);
	printf("  %-12s %9.3f ms %9.3f ms\n", "replay", t->replay_mean, t->replay_max);
	printf("  %-12s %llu pages, %llu mismatches (%.3f ms, after the replay)\n",
	       "verified", (unsigned long long)t->verified,
	       (unsigned long long)t->mismatches, t->verify_mean);
	if (cfg->latency)
		printf("  %-12s %llu touches faulted: p50 %.1f us, p99 %.1f us, max %.1f us; "
		       "%.1f us apart (p50)\n",
		       "latency", (unsigned long long)t->lat.n, t->lat.p50_ns / 1e3,
		       t->lat.p99_ns / 1e3, t->lat.max_ns / 1e3,
		       t->lat.gap_p50_ns / 1e3);
	printf("  %-12s zero %llu, ro %llu, rw %llu, cold %llu\n", "uffd faults",
	       (unsigned long long)t->faults[TIER_CLASS_ZERO],
	       (unsigned long long)t->faults[TIER_CLASS_RO],
	       (unsigned long long)t->faults[TIER_CLASS_RW],
	       (unsigned long long)t->faults[TIER_CLASS_COLD]);
	printf("  %-12s %llu prefetched, %llu lazy\n", "pages",
	       (unsigned long long)t->prefetched, (unsigned long long)t->lazy);
	printf("  %-12s pool %s read, local %s read, cxl %s mapped\n", "bytes",
	       fmt_bytes(t->pool, b1, sizeof(b1)), fmt_bytes(t->local, b2, sizeof(b2)),
	       fmt_bytes(t->cxl, b3, sizeof(b3)));
	printf("  %-12s %s anonymous RSS\n", "dram", fmt_bytes(t->anon, b4, sizeof(b4)));
	printf("  %-12s %llu per instance\n", "mappings",
	       (unsigned long long)t->mappings);
	printf("  %-12s %llu minor, %llu major\n", "page faults",
	       (unsigned long long)t->minflt, (unsigned long long)t->majflt);
	if (cfg->instances == 1)
		return;
	printf("\n  %-8s %12s %12s %10s %10s %12s %12s\n", "instance", "setup ms",
	       "replay ms", "verified", "cold flt", "pool", "anon rss");
	for (i = 0; i < cfg->instances; i++)
		printf("  %-8u %12.3f %12.3f %10llu %10llu %12s %12s\n", i,
		       res[i].setup_ms, res[i].replay_ms,
		       (unsigned long long)res[i].verified,
		       (unsigned long long)res[i].st.faults[TIER_CLASS_COLD],
		       fmt_bytes(res[i].st.pool_bytes, b1, sizeof(b1)),
		       fmt_bytes(res[i].anon_rss, b2, sizeof(b2)));
}

