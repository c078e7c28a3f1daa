/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "tierctl gc": removes what killed imports, places and removals left in
 * the store and its tiers (store_gc(), store/gc.c), a line for each.
 * Dispatched from tierctl/tierctl.c. */
#include <getopt.h>
#include <stdio.h>

#include "tier.h"
#include "store/snap.h"
#include "tierctl/tierctl.h"

static const char gc_usage[] =
	"usage: tierctl gc [options]\n"
	"\n"
	"Removes what imports, places and removals killed midway left in the\n"
	"store and in the tiers of its plans: temporary files and directories,\n"
	"and tier data no plan references. A policy being placed is skipped.\n"
	"\n"
	STORE_USAGE
	"  -h, --help           show this help\n";

static void say(const char *what, void *arg)
{
	printf("%s\n", what);
}

int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *store_path = NULL;
	struct tier_store *store;
	int c, n;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			store_path = optarg;
			break;
		case 'h':
			return cli_usage(gc_usage, 0);
		default:
			return cli_usage(gc_usage, 2);
		}
	}
	if (optind != argc)
		return cli_usage(gc_usage, 2);

	if (tier_store_open(store_path, &store))
		return cli_fail(argv[0]);
	n = store_gc(store, say, NULL);
	tier_store_close(store);
	if (n < 0)
		return cli_fail(argv[0]);
	printf("gc: %d removed\n", n);
	return 0;
}
