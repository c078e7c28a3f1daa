/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tierctl's main: the command table (one file per command, declared in
 * tierctl/tierctl.h), its dispatch and "tierctl help". */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "tierctl/tierctl.h"

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct cmd trace_cmds[] = {
	{ "import", cmd_trace_import, NULL, "add a text trace to a snapshot" },
	{ "export", cmd_trace_export, NULL, "write a trace in the text form" },
	{ "list",   cmd_trace_list,   NULL, "list a snapshot's traces" },
	{ 0 }
};

static const struct cmd key_cmds[] = {
	{ "new",    cmd_pool_key_new,    NULL, "make a key for the server and a client" },
	{ "list",   cmd_pool_key_list,   NULL, "list a server's keys (no secrets)" },
	{ "revoke", cmd_pool_key_revoke, NULL, "revoke a key" },
	{ 0 }
};

static const struct cmd pool_cmds[] = {
	{ "serve",  cmd_pool_serve,   NULL, "serve a memory pool over TCP or RDMA" },
	{ "key",    NULL,             key_cmds, "make, list and revoke the pool's keys" },
	{ 0 }
};

static const struct cmd cmds[] = {
	{ "import",  cmd_import,  NULL,       "import a memory image as a snapshot" },
	{ "list",    cmd_list,    NULL,       "list the snapshots of the store" },
	{ "rm",      cmd_rm,      NULL,       "remove a snapshot" },
	{ "gc",      cmd_gc,      NULL,       "remove what killed writers left" },
	{ "trace",   NULL,        trace_cmds, "import, export and list traces" },
	{ "place",   cmd_place,   NULL,       "place a snapshot's pages in tiers by policy" },
	{ "show",    cmd_show,    NULL,       "show a snapshot's plans, or draw a page map" },
	{ "replay",  cmd_replay,  NULL,       "restore a snapshot and replay a trace on it" },
	{ "record",  cmd_record,  NULL,       "run QEMU on a snapshot and record a trace" },
	{ "restore", cmd_restore, NULL,       "run QEMU with its RAM restored by tier" },
	{ "pool",    NULL,        pool_cmds,  "memory pool commands" },
	{ "fc-handler", cmd_fc_handler, NULL, "serve Firecracker VMs' memory from a snapshot (UFFD)" },
	{ "version", cmd_version, NULL,       "print the version" },
	{ "help",    cmd_help,    NULL,       "show this list, or a command's usage" },
	{ 0 }
};

static int usage(const char *prefix, const struct cmd *table, int rc)
{
	FILE *out = rc ? stderr : stdout;
	const struct cmd *c;

	fprintf(out, "usage: %s <command> [<args>]\n\n", prefix);
	for (c = table; c->name; c++)
		fprintf(out, "   %-10s %s\n", c->name, c->help);
	fprintf(out, "\nRun '%s <command> --help' for a command's options, "
		"'man tierctl-<command>' for details.\n", prefix);
	return rc;
}

static int dispatch(const char *prefix, const struct cmd *table,
		    int argc, char **argv)
{
	/* argv[0] becomes the full command name for getopt and messages */
	static char names[4][128];
	static int depth;
	const struct cmd *c;
	char *name;

	if (argc < 1)
		return usage(prefix, table, 2);
	if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
	    (table != cmds && !strcmp(argv[0], "help")))
		return usage(prefix, table, 0);

	for (c = table; c->name; c++) {
		if (strcmp(c->name, argv[0]))
			continue;
		name = names[depth++ % 4];
		snprintf(name, sizeof(names[0]), "%s %s", prefix, c->name);
		if (c->sub)
			return dispatch(name, c->sub, argc - 1, argv + 1);
		argv[0] = name;
		return c->fn(argc, argv);
	}
	fprintf(stderr, "%s: unknown command '%s'\n", prefix, argv[0]);
	fprintf(stderr, "Run '%s --help' for the list of commands.\n", prefix);
	return 2;
}

static int cmd_version(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return cli_usage("usage: tierctl version\n", 0);
	if (argc > 1)
		return cli_usage("usage: tierctl version\n", 2);
	printf("tierctl %s (libtier %s)\n", TIER_VERSION, tier_version());
	return 0;
}

/* "tierctl help [COMMAND [SUBCOMMAND]]": a command's --help. */
static int cmd_help(int argc, char **argv)
{
	char *args[4];
	int i, n = 0;

	if (argc < 2)
		return usage("tierctl", cmds, 0);
	if (argc > 3 || !strcmp(argv[1], "help"))
		return usage("tierctl", cmds, !strcmp(argv[1], "help") ? 0 : 2);
	for (i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n++] = (char *)"--help";
	args[n] = NULL;
	return dispatch("tierctl", cmds, n, args);
}

/*
 * The pool settings the environment gives (tierctl.1, ENVIRONMENT); the
 * library reads no environment of its own but TIER_LOG.
 */
static int pool_env(void)
{
	const char *t = getenv("TIER_POOL_TIMEOUT_MS");
	struct tier_pool_opts o = { .rdma_src = getenv("TIER_POOL_RDMA_SRC") };
	char *end;

	if (o.rdma_src && !*o.rdma_src)
		o.rdma_src = NULL;
	if (t && *t) {
		unsigned long v = strtoul(t, &end, 10);

		if (*end || !v || v > 3600UL * 1000) {
			fprintf(stderr, "tierctl: TIER_POOL_TIMEOUT_MS=%s: not a number of milliseconds from 1 to 3600000\n",
				t);
			return -EINVAL;
		}
		o.timeout_ms = (unsigned)v;
	}
	if (tier_set_pool_opts(&o)) {
		fprintf(stderr, "tierctl: %s\n", tier_errmsg());
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (pool_env())
		return 2;
	if (argc == 2 && !strcmp(argv[1], "--version"))
		rc = cmd_version(1, argv);
	else
		rc = dispatch("tierctl", cmds, argc - 1, argv + 1);

	/* "tierctl list > /full/disk" must not exit 0 (as git and ndctl do) */
	if (fflush(stdout) || ferror(stdout)) {
		perror("tierctl: write error on stdout");
		rc = 1;
	}
	return rc;
}
