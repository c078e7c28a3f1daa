/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "tierctl show": a snapshot and each plan's classes, tiers and placer
 * parameters, as text or --json, and the page map of tierctl/map.c.
 * Dispatched from tierctl/tierctl.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "placer/placer.h"
#include "store/snap.h"
#include "util/err.h"

static const char show_usage[] =
	"usage: tierctl show [options] SNAP\n"
	"\n"
	"Shows a snapshot and its plans: pages per class, extents per tier and\n"
	"method, the mappings a restore makes, bytes held in each tier.\n"
	"\n"
	STORE_USAGE
	"  --policy P           only this plan (default: every plan placed)\n"
	"  --map FILE           draw the plan's page map as FILE.svg or FILE.png\n"
	"                       (the --policy plan, else the first plan placed)\n"
	"  --json               print one JSON object\n"
	"  -h, --help           show this help\n";

#define NSRC	(PLACER_SRC_POOL + 1)
#define NMETHOD	(PLACER_M_LAZY + 1)

static const char *const src_names[NSRC] = {
	[PLACER_SRC_NONE] = "none", [PLACER_SRC_IMAGE] = "image",
	[PLACER_SRC_LOCAL] = "local", [PLACER_SRC_CXL] = "cxl",
	[PLACER_SRC_POOL] = "pool",
};
static const char *const method_names[NMETHOD] = {
	[PLACER_M_ANON] = "anon", [PLACER_M_MAP] = "map",
	[PLACER_M_COPY] = "copy", [PLACER_M_LAZY] = "lazy",
};

struct plan_view {
	struct tier_plan_info info;
	uint64_t ext[NSRC][NMETHOD];	/* extents per source and method */
	double confidence;
	unsigned gap, ntraces;
	uint64_t cxl_capacity;
};

static int load_view(struct tier_snap *snap, enum tier_policy policy,
		     struct plan_view *v)
{
	struct plan plan;
	size_t i;
	int rc;

	memset(v, 0, sizeof(*v));
	rc = tier_plan_info(snap, policy, &v->info);
	if (rc)
		return rc;
	rc = plan_load(snap, policy, &plan);
	if (rc)
		return rc;
	for (i = 0; i < plan.n; i++) {
		const struct placer_ext *e = &plan.ext[i];

		if (e->source < NSRC && e->method < NMETHOD)
			v->ext[e->source][e->method]++;
	}
	v->confidence = plan.hdr.confidence;
	v->gap = plan.hdr.gap;
	v->ntraces = plan.hdr.ntraces;
	v->cxl_capacity = plan.hdr.cxl_capacity;
	plan_free(&plan);
	return 0;
}

static void print_human(struct tier_snap *snap, const struct plan_view *v)
{
	const struct tier_plan_info *in = &v->info;
	char b1[32], b2[32], b3[32];
	const char *sep = "";
	int s, m;

	printf("\nplan %s\n", tier_policy_name(in->policy));
	printf("  tiers      %s  %s%s%s\n", in->cxl[0] ? in->cxl : "-",
	       in->pool[0] ? in->pool : "-",
	       in->backing[0] ? "  backing " : "", in->backing);
	printf("  pages      zero %llu, ro %llu, rw %llu, cold %llu\n",
	       (unsigned long long)in->pages[TIER_CLASS_ZERO],
	       (unsigned long long)in->pages[TIER_CLASS_RO],
	       (unsigned long long)in->pages[TIER_CLASS_RW],
	       (unsigned long long)in->pages[TIER_CLASS_COLD]);
	printf("  extents    %llu (", (unsigned long long)in->extents);
	for (s = 0; s < NSRC; s++)
		for (m = 0; m < NMETHOD; m++) {
			if (!v->ext[s][m])
				continue;
			printf("%s%s %s %llu", sep, src_names[s],
			       method_names[m], (unsigned long long)v->ext[s][m]);
			sep = ", ";
		}
	printf(")\n");
	printf("  mappings   %llu (mmap calls and uffd registrations of a restore)\n",
	       (unsigned long long)in->mappings);
	printf("  bytes      cxl %s, pool %s, local %s\n",
	       fmt_bytes(in->cxl_bytes, b1, sizeof(b1)),
	       fmt_bytes(in->pool_bytes, b2, sizeof(b2)),
	       fmt_bytes(in->local_bytes, b3, sizeof(b3)));
	printf("  placed     from %u trace%s, confidence %.2f, gap %s%u",
	       v->ntraces, v->ntraces == 1 ? "" : "s", v->confidence,
	       v->gap == TIER_PLACE_NO_GAP ? "none" : "",
	       v->gap == TIER_PLACE_NO_GAP ? 0 : v->gap);
	if (v->cxl_capacity)
		printf(", cxl capacity %s", fmt_bytes(v->cxl_capacity, b1, sizeof(b1)));
	printf("\n");
}

static void print_json_plan(const struct plan_view *v)
{
	const struct tier_plan_info *in = &v->info;
	const char *sep = "";
	int s, m, any;

	printf("{\"policy\":");
	json_str(stdout, tier_policy_name(in->policy));
	printf(",\"cxl\":");
	json_str(stdout, in->cxl);
	printf(",\"pool\":");
	json_str(stdout, in->pool);
	printf(",\"backing\":");
	json_str(stdout, in->backing);
	printf(",\"pages\":{\"zero\":%llu,\"ro\":%llu,\"rw\":%llu,\"cold\":%llu}",
	       (unsigned long long)in->pages[TIER_CLASS_ZERO],
	       (unsigned long long)in->pages[TIER_CLASS_RO],
	       (unsigned long long)in->pages[TIER_CLASS_RW],
	       (unsigned long long)in->pages[TIER_CLASS_COLD]);
	printf(",\"extents\":%llu,\"extents_by_tier\":{",
	       (unsigned long long)in->extents);
	for (s = 0; s < NSRC; s++) {
		any = 0;
		for (m = 0; m < NMETHOD; m++) {
			if (!v->ext[s][m])
				continue;
			if (!any)
				printf("%s\"%s\":{", sep, src_names[s]);
			printf("%s\"%s\":%llu", any ? "," : "", method_names[m],
			       (unsigned long long)v->ext[s][m]);
			any = 1;
		}
		if (any) {
			putchar('}');
			sep = ",";
		}
	}
	printf("}");
	printf(",\"mappings\":%llu,\"cxl_bytes\":%llu,\"pool_bytes\":%llu,"
	       "\"local_bytes\":%llu,\"confidence\":%g,\"gap\":%u,\"ntraces\":%u,"
	       "\"cxl_capacity\":%llu}",
	       (unsigned long long)in->mappings,
	       (unsigned long long)in->cxl_bytes,
	       (unsigned long long)in->pool_bytes,
	       (unsigned long long)in->local_bytes, v->confidence,
	       v->gap == TIER_PLACE_NO_GAP ? 0 : v->gap, v->ntraces,
	       (unsigned long long)v->cxl_capacity);
}

/* The snapshot, its plans @views and the --map file, as one JSON object. */
static void print_snap_json(struct tier_snap *snap, const struct plan_view *views,
			    int nviews, const char *map)
{
	unsigned r;
	int i;

	printf("{\"snapshot\":");
	json_str(stdout, tier_snap_name(snap));
	printf(",\"created_ns\":%llu,\"size\":%llu,\"pages\":%llu,"
	       "\"zero_pages\":%llu,\"traces\":%u,\"regions\":[",
	       (unsigned long long)tier_snap_created(snap),
	       (unsigned long long)tier_snap_size(snap),
	       (unsigned long long)tier_snap_npages(snap),
	       (unsigned long long)tier_snap_nzero(snap),
	       snap_ntraces(snap));
	for (r = 0; r < tier_snap_nregions(snap); r++)
		printf("%s{\"offset\":%llu,\"length\":%llu}", r ? "," : "",
		       (unsigned long long)tier_snap_region(snap, r)->offset,
		       (unsigned long long)tier_snap_region(snap, r)->length);
	printf("],\"plans\":[");
	for (i = 0; i < nviews; i++) {
		if (i)
			putchar(',');
		print_json_plan(&views[i]);
	}
	printf("]");
	if (map) {
		printf(",\"map\":");
		json_str(stdout, map);
	}
	printf("}\n");
}

/* The same for people. */
static void print_snap_human(struct tier_snap *snap, const struct plan_view *views,
			     int nviews, const char *map)
{
	char sz[40];
	unsigned r;
	int i;

	printf("snapshot %s: %s, %llu pages, %llu zero (%.1f%%), "
	       "%u region%s, %u trace%s\n", tier_snap_name(snap),
	       fmt_bytes(tier_snap_size(snap), sz, sizeof(sz)),
	       (unsigned long long)tier_snap_npages(snap),
	       (unsigned long long)tier_snap_nzero(snap),
	       pct(tier_snap_nzero(snap), tier_snap_npages(snap)),
	       tier_snap_nregions(snap),
	       tier_snap_nregions(snap) == 1 ? "" : "s",
	       snap_ntraces(snap), snap_ntraces(snap) == 1 ? "" : "s");
	printf("  imported %s\n", fmt_time(tier_snap_created(snap), sz,
					       sizeof(sz)));
	for (r = 0; r < tier_snap_nregions(snap); r++)
		printf("  region %u   offset 0x%llx, %s\n", r,
		       (unsigned long long)tier_snap_region(snap, r)->offset,
		       fmt_bytes(tier_snap_region(snap, r)->length, sz, sizeof(sz)));
	for (i = 0; i < nviews; i++)
		print_human(snap, &views[i]);
	if (!nviews)
		printf("\nno plans; run \"tierctl place %s\"\n",
		       tier_snap_name(snap));
	if (map)
		printf("\nmap of plan %s written to %s\n",
		       tier_policy_name(views[0].info.policy), map);
}

int cmd_show(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "policy", required_argument, NULL, 'p' },
		{ "map",    required_argument, NULL, 'm' },
		{ "json",   no_argument,       NULL, 'j' },
		{ "help",   no_argument,       NULL, 'h' },
		{ 0 }
	};
	const char *store_path = NULL, *policy = NULL, *map = NULL;
	struct tier_plan_info probe;
	struct tier_store *store;
	struct tier_snap *snap;
	struct plan_view *views = NULL;
	enum tier_policy p, want = 0;
	int c, json = 0, rc = 1, nviews = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			store_path = optarg;
			break;
		case 'p':
			policy = optarg;
			break;
		case 'm':
			map = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			return cli_usage(show_usage, 0);
		default:
			return cli_usage(show_usage, 2);
		}
	}
	if (optind != argc - 1)
		return cli_usage(show_usage, 2);
	if (policy && tier_policy_parse(policy, &want))
		return cli_bad(argv[0], show_usage, "%s", tier_errmsg());

	if (cli_open_snap(argv[0], store_path, argv[optind], &store, &snap))
		return 1;
	views = calloc(TIER_POLICY_MAX, sizeof(*views));
	if (!views) {
		tier_err(-ENOMEM, "out of memory");
		cli_fail(argv[0]);
		goto out;
	}
	for (p = 0; p < TIER_POLICY_MAX; p++) {
		if (policy && p != want)
			continue;
		if (!policy && tier_plan_info(snap, p, &probe) == -ENOENT)
			continue;
		if (load_view(snap, p, &views[nviews])) {
			cli_fail(argv[0]);
			goto out;
		}
		nviews++;
	}
	if (map) {
		if (!nviews) {
			tier_err(-ENOENT, "%s: no plan to draw; run \"tierctl place %s\"",
				 tier_snap_name(snap), tier_snap_name(snap));
			cli_fail(argv[0]);
			goto out;
		}
		if (map_write(snap, views[0].info.policy, map)) {
			cli_fail(argv[0]);
			goto out;
		}
	}

	if (json)
		print_snap_json(snap, views, nviews, map);
	else
		print_snap_human(snap, views, nviews, map);
	rc = 0;
out:
	free(views);
	tier_snap_close(snap);
	tier_store_close(store);
	return rc;
}
