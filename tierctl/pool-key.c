/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * "tierctl pool key new|list|revoke": the pool server's keys
 * (rdma/keys.h) and the store's credential, STORE/pool.key. A secret is
 * written to files of mode 0600 and never printed.
 */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "rdma/auth.h"
#include "rdma/keys.h"
#include "store/snap.h"
#include "util/err.h"

static const char new_usage[] =
	"usage: tierctl pool key new ID --keys FILE --role ROLE [options]\n"
	"\n"
	"Makes a key: a random 256-bit secret, added to the server's key FILE\n"
	"(created 0600 if missing; a running server reads it within a second)\n"
	"and written as the client's credential to a store or a file.\n"
	"\n"
	"  --keys FILE          the server's key file\n"
	"  --role ROLE          read: open and read segments (restore hosts);\n"
	"                       write: also create, replace and remove them\n"
	"                       (placing hosts); admin: anything, any name\n"
	"  --snapshots LIST     comma-separated shell patterns of the snapshot\n"
	"                       names the key may use (default: *)\n"
	"  --store DIR          write the credential to DIR/pool.key, which the\n"
	"                       store's pool connections present\n"
	"  --out FILE           write the credential to FILE (0600), to copy to\n"
	"                       a client host's STORE/pool.key\n"
	"  -h, --help           show this help\n"
	"\n"
	"One of --store and --out is needed; with neither, no one could use\n"
	"the key.\n";

static const char list_usage[] =
	"usage: tierctl pool key list --keys PATH\n"
	"\n"
	"Lists the keys of a key file or directory: ID, role, snapshots and\n"
	"whether revoked. Secrets are not shown.\n"
	"\n"
	"  --keys PATH          the server's key file or directory\n"
	"  -h, --help           show this help\n";

static const char revoke_usage[] =
	"usage: tierctl pool key revoke ID --keys FILE\n"
	"\n"
	"Marks a key revoked. A running server re-reads its keys within a\n"
	"second, refuses the key from then on and disconnects the clients\n"
	"connected with it. The ID is never reused.\n"
	"\n"
	"  --keys FILE          the server's key file\n"
	"  -h, --help           show this help\n";

static int write_cred(const char *store_path,
		      const char *out, const struct pool_cred *cred)
{
	char path[4096 + 16];
	struct tier_store *st;
	int rc;

	if (out)
		return pool_cred_write(out, cred);
	rc = tier_store_open(store_path, &st);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", tier_store_path(st),
		 STORE_POOL_KEY);
	tier_store_close(st);
	return pool_cred_write(path, cred);
}

int cmd_pool_key_new(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keys",      required_argument, NULL, 'k' },
		{ "role",      required_argument, NULL, 'r' },
		{ "snapshots", required_argument, NULL, 's' },
		{ "out",       required_argument, NULL, 'o' },
		{ "help",      no_argument,       NULL, 'h' },
		STORE_OPTION,
		{ 0 }
	};
	const char *keys = NULL, *out = NULL, *store = NULL;
	struct pool_key k = { .role = 0 };
	struct pool_cred cred;
	bool have_store = false;
	int c, rc;

	snprintf(k.snaps, sizeof(k.snaps), "*");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			keys = optarg;
			break;
		case 'r':
			if (pool_role_parse(optarg, &k.role))
				return cli_bad(argv[0], new_usage, "%s", tier_errmsg());
			break;
		case 's':
			if (pool_snaps_check(optarg))
				return cli_bad(argv[0], new_usage, "%s", tier_errmsg());
			snprintf(k.snaps, sizeof(k.snaps), "%s", optarg);
			break;
		case 'o':
			out = optarg;
			break;
		case OPT_STORE:
			store = optarg;
			have_store = true;
			break;
		case 'h':
			return cli_usage(new_usage, 0);
		default:
			return cli_usage(new_usage, 2);
		}
	}
	if (optind + 1 != argc || !keys || !k.role)
		return cli_usage(new_usage, 2);
	if (have_store == !!out)
		return cli_bad(argv[0], new_usage,
			       "give one of --store DIR and --out FILE for the client's credential");
	if (pool_key_id_check(argv[optind]))
		return cli_fail(argv[0]);
	snprintf(k.id, sizeof(k.id), "%s", argv[optind]);
	if (auth_init())
		return cli_fail(argv[0]);
	auth_random(k.secret, sizeof(k.secret));
	memcpy(cred.id, k.id, sizeof(cred.id));
	memcpy(cred.secret, k.secret, sizeof(cred.secret));

	/* the credential first: a key no one holds is worth nothing, but a
	 * credential the server does not know is refused harmlessly */
	rc = write_cred(store, out, &cred);
	if (!rc)
		rc = pool_keys_add(keys, &k);
	explicit_bzero(&k, sizeof(k));
	explicit_bzero(&cred, sizeof(cred));
	if (rc)
		return cli_fail(argv[0]);
	printf("key '%s' added to %s\n", argv[optind], keys);
	return 0;
}

int cmd_pool_key_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keys", required_argument, NULL, 'k' },
		{ "help", no_argument,       NULL, 'h' },
		{ 0 }
	};
	const char *path = NULL;
	struct pool_keys *ks;
	struct pool_key *all;
	unsigned n;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			path = optarg;
			break;
		case 'h':
			return cli_usage(list_usage, 0);
		default:
			return cli_usage(list_usage, 2);
		}
	}
	if (optind != argc || !path)
		return cli_usage(list_usage, 2);
	if (pool_keys_load(path, &ks))
		return cli_fail(argv[0]);
	if (pool_keys_all(ks, &all, &n)) {
		pool_keys_free(ks);
		return cli_fail(argv[0]);
	}
	printf("%-24s %-6s %-8s %s\n", "ID", "ROLE", "STATE", "SNAPSHOTS");
	for (unsigned i = 0; i < n; i++)
		printf("%-24s %-6s %-8s %s\n", all[i].id,
		       pool_role_name(all[i].role),
		       all[i].revoked ? "revoked" : "active", all[i].snaps);
	explicit_bzero(all, n * sizeof(*all));
	free(all);
	pool_keys_free(ks);
	return 0;
}

int cmd_pool_key_revoke(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keys", required_argument, NULL, 'k' },
		{ "help", no_argument,       NULL, 'h' },
		{ 0 }
	};
	const char *path = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			path = optarg;
			break;
		case 'h':
			return cli_usage(revoke_usage, 0);
		default:
			return cli_usage(revoke_usage, 2);
		}
	}
	if (optind + 1 != argc || !path)
		return cli_usage(revoke_usage, 2);
	if (pool_keys_revoke(path, argv[optind]))
		return cli_fail(argv[0]);
	printf("key '%s' revoked in %s\n", argv[optind], path);
	return 0;
}
