/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "tierctl rm": removes a snapshot with everything it holds in the store
 * (tier_snap_remove()). Dispatched from tierctl/tierctl.c. */
#include <getopt.h>
#include <stdio.h>

#include "tier.h"
#include "tierctl/tierctl.h"

static const char rm_usage[] =
	"usage: tierctl rm [options] SNAP\n"
	"\n"
	"Removes snapshot SNAP with its traces and plans.\n"
	"\n"
	STORE_USAGE
	"  -h, --help           show this help\n";

int cmd_rm(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *store_path = NULL;
	struct tier_store *store;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			store_path = optarg;
			break;
		case 'h':
			return cli_usage(rm_usage, 0);
		default:
			return cli_usage(rm_usage, 2);
		}
	}
	if (optind != argc - 1)
		return cli_usage(rm_usage, 2);

	if (tier_store_open(store_path, &store))
		return cli_fail(argv[0]);
	if (tier_snap_remove(store, argv[optind]))
		rc = cli_fail(argv[0]);
	tier_store_close(store);
	return rc;
}
