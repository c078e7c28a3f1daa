/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* "tierctl pool serve": runs the pool server of rdma/server.c in the
 * foreground until SIGINT or SIGTERM. Dispatched from tierctl/tierctl.c. */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "rdma/pool.h"
#include "util/err.h"
#include "util/size.h"
#include "util/uri.h"

static const char serve_usage[] =
	"usage: tierctl pool serve --listen URI (--keys PATH | --no-auth) [options]\n"
	"\n"
	"Serves a memory pool until SIGINT or SIGTERM. Prints\n"
	"\"listening on URI\" with the port actually bound once it is ready.\n"
	"\n"
	"  --listen URI         tcp://HOST:PORT or rdma://HOST:PORT (port 0: any)\n"
	"  --keys PATH          a key file or directory (tierctl pool key): every\n"
	"                       client proves a key and gets what its role and\n"
	"                       snapshots allow; re-read when it changes\n"
	"  --no-auth            serve anyone who reaches the port (a private,\n"
	"                       trusted network only)\n"
	"  --dir DIR            keep segments in DIR (default: in memory only)\n"
	"  --backing URI        the durable copy (rados://POOL[/NS][?...] or\n"
	"                       file:DIR) where tierctl place --backing wrote the\n"
	"                       segments: one the server lacks is loaded from it\n"
	"                       whole on its first OPEN, so a server restarted\n"
	"                       empty loses nothing\n"
	"  --warm NAME          load NAME (SNAP/POLICY.GEN, or SNAP: all of its\n"
	"                       segments) from --backing before listening;\n"
	"                       repeatable\n"
	"  --max-bytes SIZE     refuse a segment that would take the segments\n"
	"                       held and being written past SIZE, K/M/G/T\n"
	"                       suffixes (default: the segments being written\n"
	"                       reserve at most half the free space)\n"
	"  --max-connections N  serve N clients at once, refuse the next\n"
	"                       (default 256)\n"
	"  --request-timeout S  close a connection whose request (or HELLO)\n"
	"                       is not whole within S seconds (default 30)\n"
	"  -h, --help           show this help\n";

static struct pool_server *volatile the_server;

static int serve_level = TIER_LOG_INFO;

static void serve_log(int level, const char *msg, void *arg)
{
	if (level <= serve_level)
		fprintf(stderr, "tierctl pool serve: %s\n", msg);
}

static void on_signal(int sig)
{
	struct pool_server *srv = the_server;

	if (srv)
		pool_server_stop(srv);
}

int cmd_pool_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "dir",    required_argument, NULL, 'd' },
		{ "backing", required_argument, NULL, 'b' },
		{ "warm",   required_argument, NULL, 'w' },
		{ "max-bytes", required_argument, NULL, 'm' },
		{ "max-connections", required_argument, NULL, 'c' },
		{ "request-timeout", required_argument, NULL, 't' },
		{ "keys",   required_argument, NULL, 'k' },
		{ "no-auth", no_argument,      NULL, 'N' },
		{ "help",   no_argument,       NULL, 'h' },
		{ 0 }
	};
	struct pool_server_attr attr = { 0 };
	/* at most one --warm per argument */
	const char *warm[argc + 1];
	size_t nwarm = 0;
	struct sigaction sa = { .sa_handler = on_signal };
	const char *listen = NULL;
	bool no_auth = false;
	struct pool_server *srv;
	struct tier_uri uri;
	uint64_t v;
	int c, rc;

	memset(warm, 0, sizeof(warm));
	attr.warm = warm;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			listen = optarg;
			break;
		case 'd':
			attr.dir = optarg;
			break;
		case 'b':
			attr.backing = optarg;
			break;
		case 'w':
			warm[nwarm++] = optarg;
			break;
		case 'k':
			attr.keys = optarg;
			break;
		case 'N':
			no_auth = true;
			break;
		case 'm':
			if (parse_size(optarg, &attr.max_bytes) ||
			    !attr.max_bytes)
				return cli_bad(argv[0], serve_usage,
					       "--max-bytes \"%s\": not a size above 0 (K/M/G/T suffixes)",
					       optarg);
			break;
		case 'c':
			if (parse_uint(optarg, 65536, &v) || !v)
				return cli_bad(argv[0], serve_usage,
					       "--max-connections \"%s\": not a number from 1 to 65536",
					       optarg);
			attr.max_conns = v;
			break;
		case 't':
			if (parse_uint(optarg, 86400, &v) || !v)
				return cli_bad(argv[0], serve_usage,
					       "--request-timeout \"%s\": not a number of seconds from 1 to 86400",
					       optarg);
			attr.request_timeout_ms = v * 1000;
			break;
		case 'h':
			return cli_usage(serve_usage, 0);
		default:
			return cli_usage(serve_usage, 2);
		}
	}
	if (optind != argc || !listen)
		return cli_usage(serve_usage, 2);
	if (!attr.keys == !no_auth)
		return cli_bad(argv[0], serve_usage, attr.keys ?
			       "--keys and --no-auth exclude each other" :
			       "give --keys PATH (tierctl pool key new), or --no-auth to serve anyone who reaches the port");
	if (uri_parse(listen, URI_WANT_POOL, &uri))
		return cli_fail(argv[0]);
	if (uri.kind != URI_POOL_TCP && uri.kind != URI_POOL_RDMA) {
		tier_err(-EINVAL, "\"%s\": a pool listens on tcp:// or rdma://", listen);
		return cli_fail(argv[0]);
	}

	/* refusals and revocations are the operator's to see */
	if (getenv("TIER_LOG") && !strcmp(getenv("TIER_LOG"), "debug"))
		serve_level = TIER_LOG_DEBUG;
	tier_set_log_fn(serve_log, NULL);
	if (pool_server_start(&uri, &attr, &srv))
		return cli_fail(argv[0]);
	the_server = srv;
	/* no SA_RESTART: the serve loop's poll must see the stop */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	printf("listening on %s://%s%s%s:%u\n",
	       uri.kind == URI_POOL_TCP ? "tcp" : "rdma",
	       strchr(uri.host, ':') ? "[" : "", uri.host,
	       strchr(uri.host, ':') ? "]" : "", pool_server_port(srv));
	/* scripts wait for this line */
	if (fflush(stdout) || ferror(stdout)) {
		perror("tierctl pool serve: write error on stdout");
		pool_server_free(srv);
		return 1;
	}

	rc = pool_server_run(srv);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	the_server = NULL;
	if (rc)
		cli_fail(argv[0]);
	pool_server_free(srv);
	return rc ? 1 : 0;
}
