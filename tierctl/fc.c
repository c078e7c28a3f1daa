/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tierctl fc-handler: Firecracker's UFFD page-fault handler (vmm/fc.h). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "util/size.h"
#include "util/uri.h"
#include "vmm/fc.h"

static const char fc_usage[] =
	"usage: tierctl fc-handler [options] SNAP --socket PATH\n"
	"\n"
	"Serves the guest memory of Firecracker VMs restored from snapshot SNAP\n"
	"(\"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": PATH}),\n"
	"any number at once, until SIGINT or SIGTERM. Prints \"listening on PATH\"\n"
	"once Firecracker may connect.\n"
	"\n"
	STORE_USAGE
	"  --socket PATH        the unix socket to listen on (mode 0600; a stale\n"
	"                       socket there is replaced)\n"
	"  --policy P           the plan to serve: tiered (default), vanilla, reap,\n"
	"                       faasnap, aquifer, eager\n"
	"  --cxl URI            read the CXL tier from URI instead of the plan's\n"
	"  --pool URI           read the pool from URI instead of the plan's\n"
	"  --pool-fallback      read a segment the pool cannot open or read\n"
	"                       from its durable copy (the plan's, from place\n"
	"                       --backing; or --backing URI), every page checked\n"
	"  --backing URI        the durable copy for --pool-fallback\n"
	"  --record NAME        record each VM's first touches as trace NAME\n"
	"                       (the Nth VM's as NAME-N)\n"
	"  --prefetch PAGES     pages a lazy fault fetches, the faulting one first\n"
	"                       (1 to 512; default 8)\n"
	"  --on-fail ACTION     when a page cannot be served: kill (default) the\n"
	"                       VMM, stop it (SIGSTOP), or none (log only)\n"
	"  --once               exit after the first connection ends, with its result\n"
	"  -h, --help           show this help\n";

static struct fc_handler *volatile the_handler;

static void on_signal(int sig)
{
	struct fc_handler *h = the_handler;

	if (h)
		fc_handler_stop(h);
}

/* Refusals and failures to stderr as "tierctl fc-handler: ...", the rest
 * (connections, hang-ups) to stdout; both a line at a time. */
static void log_line(int level, const char *line, void *arg)
{
	const char *cmd = arg;

	if (level <= TIER_LOG_ERR)
		fprintf(stderr, "%s: %s\n", cmd, line);
	else
		printf("%s\n", line);
}

int cmd_fc_handler(int argc, char **argv)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "socket",  required_argument, NULL, 's' },
		{ "policy",  required_argument, NULL, 'p' },
		{ "cxl",     required_argument, NULL, 'c' },
		{ "pool",    required_argument, NULL, 'P' },
		{ "pool-fallback", no_argument, NULL, 'F' },
		{ "backing", required_argument, NULL, 'B' },
		{ "record",  required_argument, NULL, 'r' },
		{ "prefetch", required_argument, NULL, 'w' },
		{ "on-fail", required_argument, NULL, 'f' },
		{ "once",    no_argument,       NULL, '1' },
		{ "help",    no_argument,       NULL, 'h' },
		{ 0 }
	};
	struct fc_handler_attr attr = { .log = log_line, .arg = argv[0] };
	struct sigaction sa = { .sa_handler = on_signal };
	const char *store_path = NULL, *sock = NULL;
	struct tier_store *store;
	struct tier_snap *snap;
	struct fc_handler *h;
	struct tier_uri uri;
	uint64_t v;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			store_path = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'p':
			if (tier_policy_parse(optarg, &attr.policy))
				return cli_bad(argv[0], fc_usage, "%s", tier_errmsg());
			break;
		case 'c':
			if (uri_parse(optarg, URI_WANT_CXL, &uri))
				return cli_bad(argv[0], fc_usage, "%s", tier_errmsg());
			attr.cxl = optarg;
			break;
		case 'P':
			if (uri_parse(optarg, URI_WANT_POOL, &uri))
				return cli_bad(argv[0], fc_usage, "%s", tier_errmsg());
			attr.pool = optarg;
			break;
		case 'F':
			attr.flags |= FC_HANDLER_POOL_FALLBACK;
			break;
		case 'B':
			if (uri_parse(optarg, URI_WANT_POOL, &uri))
				return cli_bad(argv[0], fc_usage, "%s", tier_errmsg());
			attr.backing = optarg;
			break;
		case 'r':
			attr.record = optarg;
			break;
		case 'w':
			if (parse_uint(optarg, 512, &v) || !v)
				return cli_bad(argv[0], fc_usage,
					       "bad prefetch '%s': want 1..512 pages",
					       optarg);
			attr.prefetch = v;
			break;
		case 'f':
			if (fc_fail_parse(optarg, &attr.fail))
				return cli_bad(argv[0], fc_usage, "%s", tier_errmsg());
			break;
		case '1':
			attr.flags |= FC_HANDLER_ONCE;
			break;
		case 'h':
			return cli_usage(fc_usage, 0);
		default:
			return cli_usage(fc_usage, 2);
		}
	}
	if (optind != argc - 1)
		return cli_usage(fc_usage, 2);
	if (!sock)
		return cli_bad(argv[0], fc_usage, "--socket PATH is required");
	if (attr.backing && !(attr.flags & FC_HANDLER_POOL_FALLBACK))
		return cli_bad(argv[0], fc_usage,
			       "--backing is the copy --pool-fallback reads: give both");
	if ((attr.flags & FC_HANDLER_POOL_FALLBACK) && attr.record)
		return cli_bad(argv[0], fc_usage,
			       "--pool-fallback with --record: a recording reads the image, no pool");

	if (cli_open_snap(argv[0], store_path, argv[optind], &store, &snap))
		return 1;
	rc = fc_handler_open(snap, sock, &attr, &h);
	if (rc) {
		cli_fail(argv[0]);
		goto out;
	}

	/* a daemon's log goes to pipes and files: a line at a time */
	setvbuf(stdout, NULL, _IOLBF, 0);
	the_handler = h;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	printf("listening on %s\n", sock);

	rc = fc_handler_run(h);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	the_handler = NULL;
	/* not printed again: every reason run() returns was logged already */
	fc_handler_close(h);
out:
	tier_snap_close(snap);
	tier_store_close(store);
	return rc ? 1 : 0;
}
