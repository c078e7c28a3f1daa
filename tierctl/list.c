/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "tierctl list": the store's snapshots, one line each (size, zero pages,
 * traces, plans), by tier_store_foreach(). Dispatched from tierctl/tierctl.c. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tier.h"
#include "tierctl/tierctl.h"

static const char list_usage[] =
	"usage: tierctl list [options]\n"
	"\n"
	"Lists the snapshots of the store: size, zero pages, traces and plans.\n"
	"\n"
	STORE_USAGE
	"  -h, --help           show this help\n";

struct list_ctx {
	struct tier_store *store;
	const char *cmd;
	int failed;
};

static int list_one(const char *name, void *arg)
{
	struct list_ctx *ctx = arg;
	struct tier_plan_info info;
	struct tier_snap *snap;
	char sz[32], plans[256] = "";
	int p;

	if (tier_snap_open(ctx->store, name, &snap)) {
		/* a broken snapshot must not hide the others */
		printf("%-20s %10s %6s %6s  %s\n", name, "?", "?", "?", "(unreadable)");
		cli_fail(ctx->cmd);
		ctx->failed = 1;
		return 0;
	}
	for (p = 0; p < TIER_POLICY_MAX; p++) {
		if (tier_plan_info(snap, p, &info))
			continue;
		if (plans[0])
			strcat(plans, ",");
		strcat(plans, tier_policy_name(p));
	}
	printf("%-20s %10s %5.1f%% %6u  %s\n", name,
	       fmt_bytes(tier_snap_size(snap), sz, sizeof(sz)),
	       pct(tier_snap_nzero(snap), tier_snap_npages(snap)),
	       snap_ntraces(snap), plans[0] ? plans : "-");
	tier_snap_close(snap);
	return 0;
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct list_ctx ctx = { .cmd = argv[0] };
	const char *store_path = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			store_path = optarg;
			break;
		case 'h':
			return cli_usage(list_usage, 0);
		default:
			return cli_usage(list_usage, 2);
		}
	}
	if (optind != argc)
		return cli_usage(list_usage, 2);

	if (tier_store_open(store_path, &ctx.store))
		return cli_fail(argv[0]);
	printf("%-20s %10s %6s %6s  %s\n", "NAME", "SIZE", "ZERO", "TRACES", "PLANS");
	rc = tier_store_foreach(ctx.store, list_one, &ctx);
	if (rc < 0)
		cli_fail(argv[0]);
	tier_store_close(ctx.store);
	return rc < 0 || ctx.failed;
}
