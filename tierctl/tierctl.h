/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIERCTL_H
#define TIERCTL_H

/*
 * Private to the CLI. Every command is "int cmd_NAME(int argc, char **argv)"
 * where argv[0] is the full command name ("tierctl trace import"), so
 * getopt's own messages and ours carry the same prefix. Returns the exit
 * status: 0 success, 1 failure, 2 usage error.
 */

#include <stdint.h>
#include <stdio.h>

#include "tier.h"

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const struct cmd *sub;		/* a group: "tierctl pool serve" */
	const char *help;		/* one line, shown by "tierctl help" */
};

int cmd_import(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_trace_import(int argc, char **argv);
int cmd_trace_export(int argc, char **argv);
int cmd_trace_list(int argc, char **argv);
int cmd_place(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_pool_serve(int argc, char **argv);
int cmd_pool_key_new(int argc, char **argv);
int cmd_pool_key_list(int argc, char **argv);
int cmd_pool_key_revoke(int argc, char **argv);
int cmd_fc_handler(int argc, char **argv);

/* The option every store-using command takes (ndctl's BASE_OPTIONS). */
#define OPT_STORE	0x100
#define STORE_OPTION	{ "store", required_argument, NULL, OPT_STORE }
#define STORE_USAGE \
	"  --store DIR          the store (default: $TIER_STORE, else the library's)\n"

/* Prints @usage to stdout and returns 0 (asked for), or to stderr and
 * returns 2 (a usage error). */
int cli_usage(const char *usage, int rc);
/* Prints "@cmd: <tier_errmsg()>" on one line; returns 1. */
int cli_fail(const char *cmd);
/* A usage error with a reason: "@cmd: <reason>" then the usage; returns 2. */
int cli_bad(const char *cmd, const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Opens the store and snapshot @name; on failure prints and returns 1. */
int cli_open_snap(const char *cmd, const char *store_path, const char *name,
		  struct tier_store **ret_store, struct tier_snap **ret_snap);

/* "1.5 MiB" into @buf. */
const char *fmt_bytes(uint64_t bytes, char *buf, size_t len);
/* CLOCK_REALTIME ns as "2026-12-02 14:54:12 UTC" into @buf ("unknown": 0). */
const char *fmt_time(uint64_t ns, char *buf, size_t len);
double pct(uint64_t part, uint64_t whole);
double now_ms(void);

/* JSON: a string literal with escapes. */
void json_str(FILE *f, const char *s);

/* Number of traces of @snap (0 if they cannot be listed). */
unsigned snap_ntraces(struct tier_snap *snap);

/* The page map of show --map (tierctl/map.c); errors via tier_errmsg. */
int map_write(struct tier_snap *snap, enum tier_policy policy,
	      const char *path);

#endif
