/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "tierctl place": the options into a struct tier_place_attr, then
 * tier_place() (store/place.c) for one policy or all, and a line per plan.
 * Dispatched from tierctl/tierctl.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "util/size.h"
#include "util/uri.h"

static const char place_usage[] =
	"usage: tierctl place [options] SNAP\n"
	"\n"
	"Computes the plan of a policy from the snapshot's traces and writes\n"
	"its tier data: read-only hot pages to the CXL tier, read-write and cold\n"
	"pages to the pool, zero pages nowhere.\n"
	"\n"
	STORE_USAGE
	"  --policy P           tiered (default), vanilla, reap, faasnap, aquifer,\n"
	"                       eager, or all\n"
	"  --cxl URI            the CXL tier: cxl=dir:PATH, cxl=devdax:DEV,\n"
	"                       cxl=numa:NODE (default: cxl=dir:/dev/shm/tier-cxl)\n"
	"  --pool URI           the pool: pool=file:PATH, pool=tcp://HOST:PORT,\n"
	"                       pool=rdma://HOST:PORT, pool=rados://POOL[/NS]\n"
	"                       (default: the store's file pool)\n"
	"  --backing URI        write the pool's segment through to this durable\n"
	"                       copy too (rados://POOL[/NS][?...], or file:PATH),\n"
	"                       committed first; the plan names both (pool serve\n"
	"                       --backing, restore --pool-fallback read it)\n"
	"  --trace NAME         merge only this trace (repeatable; default: all)\n"
	"  --confidence F       hot when at least this fraction of the traces\n"
	"                       touched a page (default 0.5)\n"
	"  --gap N              bridge up to N pages inside a run (default 4; 0: none)\n"
	"  --cluster-gap N      tiered on shmem: join clusters across up to N zero\n"
	"                       pages (default auto: by cost; --map-ns and\n"
	"                       --fault-ns give the restoring host's costs)\n"
	"  --map-ns N           one more mapping costs N ns there (default 3000)\n"
	"  --fault-ns N         a zero page's userfault costs N ns more than the\n"
	"                       kernel's zero page (default 30000)\n"
	"  --layout L           the CXL object's layout: auto (default: at guest\n"
	"                       offsets on a shmem tier for tiered) or compact\n"
	"  --cxl-capacity SIZE  CXL tier capacity, K/M/G/T suffixes (default: unlimited)\n"
	"  -h, --help           show this help\n";

/* What the options say besides @attr: the store, the policies to place. */
struct place_args {
	const char *store_path;
	const char **traces;		/* malloc()ed, NULL-terminated */
	unsigned ntraces;
	enum tier_policy first, last;
};

/* Fills @attr and @a from the command line; returns -1 to go on, else the
 * exit status (usage or the reason printed). @a->traces is the caller's to
 * free either way. */
static int parse_args(int argc, char **argv, struct tier_place_attr *attr,
		      struct place_args *a)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "policy",       required_argument, NULL, 'p' },
		{ "cxl",          required_argument, NULL, 'c' },
		{ "pool",         required_argument, NULL, 'P' },
		{ "backing",      required_argument, NULL, 'B' },
		{ "trace",        required_argument, NULL, 't' },
		{ "confidence",   required_argument, NULL, 'f' },
		{ "gap",          required_argument, NULL, 'g' },
		{ "cxl-capacity", required_argument, NULL, 'C' },
		{ "layout",       required_argument, NULL, 'L' },
		{ "cluster-gap",  required_argument, NULL, 'G' },
		{ "map-ns",       required_argument, NULL, 'M' },
		{ "fault-ns",     required_argument, NULL, 'F' },
		{ "help",         no_argument,       NULL, 'h' },
		{ 0 }
	};
	const char *policy = "tiered", **tmp;
	struct tier_uri uri;
	uint64_t v;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			a->store_path = optarg;
			break;
		case 'p':
			policy = optarg;
			break;
		case 'c':
			attr->cxl = optarg;
			break;
		case 'P':
			attr->pool = optarg;
			break;
		case 'B':
			attr->backing = optarg;
			break;
		case 't':
			tmp = realloc(a->traces, (a->ntraces + 2) * sizeof(*tmp));
			if (!tmp) {
				fprintf(stderr, "%s: out of memory\n", argv[0]);
				return 1;
			}
			a->traces = tmp;
			a->traces[a->ntraces++] = optarg;
			a->traces[a->ntraces] = NULL;
			break;
		case 'f':
			attr->confidence = strtod(optarg, &end);
			if (*end || end == optarg || !(attr->confidence > 0 &&
						       attr->confidence <= 1))
				return cli_bad(argv[0], place_usage,
					       "bad confidence '%s': want a number in (0, 1]",
					       optarg);
			break;
		case 'g':
			if (parse_uint(optarg, 1U << 30, &v))
				return cli_bad(argv[0], place_usage, "bad gap '%s'", optarg);
			attr->gap = v ? (unsigned)v : TIER_PLACE_NO_GAP;
			break;
		case 'G':
			if (!strcmp(optarg, "auto"))
				attr->cluster_gap = 0;
			else if (parse_uint(optarg, 1U << 30, &v) || !v)
				return cli_bad(argv[0], place_usage,
					       "bad cluster gap '%s': want auto or a page count",
					       optarg);
			else
				attr->cluster_gap = (unsigned)v;
			break;
		case 'M':
		case 'F':
			if (parse_uint(optarg, 1U << 30, &v) || !v)
				return cli_bad(argv[0], place_usage,
					       "bad --%s '%s': want nanoseconds",
					       c == 'M' ? "map-ns" : "fault-ns", optarg);
			if (c == 'M')
				attr->map_ns = (unsigned)v;
			else
				attr->zero_fault_ns = (unsigned)v;
			break;
		case 'L':
			if (!strcmp(optarg, "compact"))
				attr->flags |= TIER_PLACE_COMPACT;
			else if (!strcmp(optarg, "auto"))
				attr->flags &= ~TIER_PLACE_COMPACT;
			else
				return cli_bad(argv[0], place_usage,
					       "bad layout '%s': want auto or compact",
					       optarg);
			break;
		case 'C':
			if (parse_size(optarg, &attr->cxl_capacity))
				return cli_bad(argv[0], place_usage, "%s", tier_errmsg());
			break;
		case 'h':
			return cli_usage(place_usage, 0);
		default:
			return cli_usage(place_usage, 2);
		}
	}
	attr->traces = a->traces;
	if (optind != argc - 1)
		return cli_usage(place_usage, 2);
	if (!strcmp(policy, "all")) {
		a->first = 0;
		a->last = TIER_POLICY_MAX - 1;
	} else if (tier_policy_parse(policy, &a->first)) {
		return cli_bad(argv[0], place_usage, "%s", tier_errmsg());
	} else {
		a->last = a->first;
	}
	/* a wrong URI is reported before any snapshot is touched */
	if ((attr->cxl && uri_parse(attr->cxl, URI_WANT_CXL, &uri)) ||
	    (attr->pool && uri_parse(attr->pool, URI_WANT_POOL, &uri)))
		return cli_fail(argv[0]);
	return -1;
}

int cmd_place(int argc, char **argv)
{
	struct tier_place_attr attr = { 0 };
	struct place_args a = { 0 };
	struct tier_plan_info info;
	struct tier_store *store;
	struct tier_snap *snap;
	enum tier_policy p;
	char b1[32], b2[32], b3[32];
	int rc;

	rc = parse_args(argc, argv, &attr, &a);
	if (rc >= 0) {
		free(a.traces);
		return rc;
	}
	rc = 0;

	if (cli_open_snap(argv[0], a.store_path, argv[optind], &store, &snap)) {
		free(a.traces);
		return 1;
	}
	for (p = a.first; p <= a.last; p++) {
		if (tier_place(snap, p, &attr) || tier_plan_info(snap, p, &info)) {
			rc = cli_fail(argv[0]);
			break;
		}
		printf("%s %s: %llu zero, %llu ro, %llu rw, %llu cold pages; "
		       "%llu mappings; cxl %s, pool %s, local %s\n",
		       tier_snap_name(snap), tier_policy_name(p),
		       (unsigned long long)info.pages[TIER_CLASS_ZERO],
		       (unsigned long long)info.pages[TIER_CLASS_RO],
		       (unsigned long long)info.pages[TIER_CLASS_RW],
		       (unsigned long long)info.pages[TIER_CLASS_COLD],
		       (unsigned long long)info.mappings,
		       fmt_bytes(info.cxl_bytes, b1, sizeof(b1)),
		       fmt_bytes(info.pool_bytes, b2, sizeof(b2)),
		       fmt_bytes(info.local_bytes, b3, sizeof(b3)));
	}
	tier_snap_close(snap);
	tier_store_close(store);
	free(a.traces);
	return rc;
}
