/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "tierctl import": parses --region tables and --state, then hands the
 * image to tier_import() (store/import.c) with a progress line on
 * stderr. Dispatched from tierctl/tierctl.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "util/size.h"

static const char import_usage[] =
	"usage: tierctl import [options] SNAP IMAGE\n"
	"\n"
	"Imports the raw memory image IMAGE as snapshot SNAP.\n"
	"\n"
	STORE_USAGE
	"  --region OFF:LEN     a guest region of the image, in bytes (repeatable;\n"
	"                       default: the whole image)\n"
	"  --replace            replace an existing snapshot of that name\n"
	"  --state FILE         keep a VMM's device-state file with the snapshot\n"
	"                       (QEMU: the migration stream saved with x-ignore-shared)\n"
	"  --progress           show progress on stderr even when it is not a terminal\n"
	"  --quiet              no progress and no summary\n"
	"  -h, --help           show this help\n";

struct progress {
	const char *name;
	uint64_t last_mib;
	double last_ms;
	int shown;
};

static void show_progress(uint64_t done, uint64_t total, void *arg)
{
	struct progress *p = arg;
	uint64_t mib = done >> 20;
	double t = now_ms();

	/* at most ten lines a second, and never twice the same number */
	if (done != total && (mib == p->last_mib || t - p->last_ms < 100))
		return;
	p->last_mib = mib;
	p->last_ms = t;
	p->shown = 1;
	fprintf(stderr, "\rimport %s: %llu/%llu MiB", p->name,
		(unsigned long long)mib, (unsigned long long)(total >> 20));
}

static int parse_region(const char *s, struct tier_region *r)
{
	char buf[128], *colon;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	colon = strchr(buf, ':');
	if (!colon)
		return -1;
	*colon = 0;
	if (parse_size(buf, &r->offset) || parse_size(colon + 1, &r->length))
		return -1;
	return 0;
}

int cmd_import(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "region",   required_argument, NULL, 'r' },
		{ "replace",  no_argument,       NULL, 'f' },
		{ "state",    required_argument, NULL, 's' },
		{ "progress", no_argument,       NULL, 'p' },
		{ "quiet",    no_argument,       NULL, 'q' },
		{ "help",     no_argument,       NULL, 'h' },
		{ 0 }
	};
	struct tier_import_attr attr = { 0 };
	struct tier_region *regions = NULL, *tmp;
	struct progress prog = { 0 };
	const char *store_path = NULL, *name, *image;
	int c, quiet = 0, progress = -1, rc = 1;
	struct tier_store *store = NULL;
	struct tier_snap *snap;
	char sz[32];
	double t0, secs;
	unsigned n = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			store_path = optarg;
			break;
		case 'r':
			tmp = realloc(regions, (n + 1) * sizeof(*regions));
			if (!tmp) {
				free(regions);
				fprintf(stderr, "%s: out of memory\n", argv[0]);
				return 1;
			}
			regions = tmp;
			if (parse_region(optarg, &regions[n])) {
				free(regions);
				return cli_bad(argv[0], import_usage,
					       "bad region '%s': want OFFSET:LENGTH", optarg);
			}
			n++;
			break;
		case 'f':
			attr.flags |= TIER_IMPORT_REPLACE;
			break;
		case 's':
			attr.state = optarg;
			break;
		case 'p':
			progress = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			free(regions);
			return cli_usage(import_usage, 0);
		default:
			free(regions);
			return cli_usage(import_usage, 2);
		}
	}
	if (optind != argc - 2) {
		free(regions);
		return cli_usage(import_usage, 2);
	}
	name = argv[optind];
	image = argv[optind + 1];
	attr.regions = regions;
	attr.nregions = n;

	if (progress < 0)
		progress = isatty(STDERR_FILENO);
	if (progress && !quiet) {
		prog.name = name;
		prog.last_mib = ~0ULL;
		attr.progress = show_progress;
		attr.arg = &prog;
	}

	if (tier_store_open(store_path, &store)) {
		cli_fail(argv[0]);
		goto out;
	}
	t0 = now_ms();
	if (tier_import(store, name, image, &attr)) {
		if (prog.shown)
			fputc('\n', stderr);
		cli_fail(argv[0]);
		goto out;
	}
	secs = (now_ms() - t0) / 1e3;
	if (prog.shown)
		fputc('\n', stderr);

	if (tier_snap_open(store, name, &snap)) {
		cli_fail(argv[0]);
		goto out;
	}
	if (!quiet)
		printf("imported %s: %llu pages (%s), %.1f%% zero, %.1f MB/s\n",
		       name, (unsigned long long)tier_snap_npages(snap),
		       fmt_bytes(tier_snap_size(snap), sz, sizeof(sz)),
		       pct(tier_snap_nzero(snap), tier_snap_npages(snap)),
		       secs > 0 ? tier_snap_size(snap) / 1e6 / secs : 0.0);
	tier_snap_close(snap);
	rc = 0;
out:
	tier_store_close(store);
	free(regions);
	return rc;
}
