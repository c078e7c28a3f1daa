/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "tierctl trace import|export|list": the text form of traces in and
 * out of the store (tier_trace_import(), _export(), _foreach() of
 * store/trace.c and store/snap.c). Dispatched from tierctl/tierctl.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "util/file.h"

static const char import_usage[] =
	"usage: tierctl trace import [options] SNAP FILE\n"
	"\n"
	"Stores the text trace FILE (\"OFFSET KIND\" per line, see tier-trace(5))\n"
	"as a trace of snapshot SNAP.\n"
	"\n"
	STORE_USAGE
	"  --name NAME          the trace's name (default: FILE's name without extension)\n"
	"  -h, --help           show this help\n";

static const char export_usage[] =
	"usage: tierctl trace export [options] SNAP NAME\n"
	"\n"
	"Writes trace NAME of snapshot SNAP in the text form.\n"
	"\n"
	STORE_USAGE
	"  -o, --output FILE    write to FILE, atomically (default: stdout)\n"
	"  -h, --help           show this help\n";

static const char list_usage[] =
	"usage: tierctl trace list [options] SNAP\n"
	"\n"
	"Lists the traces of snapshot SNAP: pages touched, read only (r),\n"
	"written first (w), read then written (rw).\n"
	"\n"
	STORE_USAGE
	"  -h, --help           show this help\n";

/* Only --store and --help: trace list shares the loop. */
static int parse_simple(int argc, char **argv, const char *usage,
			const char **store_path)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			*store_path = optarg;
			break;
		case 'h':
			return cli_usage(usage, 0);
		default:
			return cli_usage(usage, 2);
		}
	}
	return -1;
}

/* "dir/ping.trace" -> "ping" */
static void default_name(const char *path, char *buf, size_t len)
{
	const char *base = strrchr(path, '/');
	char *dot;

	snprintf(buf, len, "%s", base ? base + 1 : path);
	dot = strrchr(buf, '.');
	if (dot && dot != buf)
		*dot = 0;
}

int cmd_trace_import(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument,       NULL, 'h' },
		{ 0 }
	};
	const char *store_path = NULL, *name = NULL, *file;
	struct tier_store *store;
	struct tier_snap *snap;
	char defname[256];
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			store_path = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'h':
			return cli_usage(import_usage, 0);
		default:
			return cli_usage(import_usage, 2);
		}
	}
	if (optind != argc - 2)
		return cli_usage(import_usage, 2);
	file = argv[optind + 1];
	if (!name) {
		default_name(file, defname, sizeof(defname));
		name = defname;
	}

	if (cli_open_snap(argv[0], store_path, argv[optind], &store, &snap))
		return 1;
	if (tier_trace_import(snap, name, file))
		rc = cli_fail(argv[0]);
	tier_snap_close(snap);
	tier_store_close(store);
	return rc;
}

int cmd_trace_export(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "output", required_argument, NULL, 'o' },
		{ "help",   no_argument,       NULL, 'h' },
		{ 0 }
	};
	const char *store_path = NULL, *out = NULL;
	struct atomic_file af;
	struct tier_store *store;
	struct tier_snap *snap;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			store_path = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			return cli_usage(export_usage, 0);
		default:
			return cli_usage(export_usage, 2);
		}
	}
	if (optind != argc - 2)
		return cli_usage(export_usage, 2);

	if (cli_open_snap(argv[0], store_path, argv[optind], &store, &snap))
		return 1;
	if (!out || !strcmp(out, "-")) {
		/* the library writes to the fd: nothing of ours may be buffered */
		fflush(stdout);
		if (tier_trace_export(snap, argv[optind + 1], STDOUT_FILENO))
			rc = cli_fail(argv[0]);
	} else if (atomic_open(&af, out)) {
		rc = cli_fail(argv[0]);
	} else if (tier_trace_export(snap, argv[optind + 1], af.fd)) {
		rc = cli_fail(argv[0]);
		atomic_abort(&af);
	} else if (atomic_commit(&af)) {
		rc = cli_fail(argv[0]);
	}
	tier_snap_close(snap);
	tier_store_close(store);
	return rc;
}

struct list_ctx {
	struct tier_snap *snap;
	const char *cmd;
	int failed;
};

static int list_one(const char *name, void *arg)
{
	struct list_ctx *ctx = arg;
	struct tier_trace_ent *ent;
	uint64_t count[4] = { 0 };
	size_t n, i;

	if (tier_trace_load(ctx->snap, name, &ent, &n)) {
		printf("%-24s %10s  (unreadable)\n", name, "?");
		cli_fail(ctx->cmd);
		ctx->failed = 1;
		return 0;
	}
	for (i = 0; i < n; i++)
		count[ent[i].kind & 3]++;
	printf("%-24s %10zu %10llu %10llu %10llu\n", name, n,
	       (unsigned long long)count[TIER_ACCESS_R],
	       (unsigned long long)count[TIER_ACCESS_W],
	       (unsigned long long)count[TIER_ACCESS_RW]);
	free(ent);
	return 0;
}

int cmd_trace_list(int argc, char **argv)
{
	struct list_ctx ctx = { .cmd = argv[0] };
	const char *store_path = NULL;
	struct tier_store *store;
	int rc;

	rc = parse_simple(argc, argv, list_usage, &store_path);
	if (rc >= 0)
		return rc;
	if (optind != argc - 1)
		return cli_usage(list_usage, 2);

	if (cli_open_snap(argv[0], store_path, argv[optind], &store, &ctx.snap))
		return 1;
	printf("%-24s %10s %10s %10s %10s\n", "NAME", "PAGES", "R", "W", "RW");
	rc = tier_trace_foreach(ctx.snap, list_one, &ctx);
	if (rc < 0)
		cli_fail(argv[0]);
	tier_snap_close(ctx.snap);
	tier_store_close(store);
	return rc < 0 || ctx.failed;
}
