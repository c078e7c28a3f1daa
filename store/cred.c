/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The store's credential for its pool servers: STORE/pool.key
 * ("ID SECRET", mode 0600; tierctl-pool-key(1)), presented by every pool
 * connection the store makes (place, restore, gc). A store without the
 * file connects without a key, which a server with keys refuses.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tier.h"
#include "rdma/keys.h"
#include "rdma/pool.h"
#include "store/snap.h"
#include "util/err.h"
#include "util/uri.h"

int store_pool_open(const struct tier_store *st, const struct tier_uri *uri,
		    struct pool **ret)
{
	struct pool_cred cred;
	char path[4096 + 16];
	int rc;

	if (uri->kind == URI_POOL_FILE)
		return pool_connect(uri, NULL, ret);
	snprintf(path, sizeof(path), "%s/%s", st->path, STORE_POOL_KEY);
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return pool_connect(uri, NULL, ret);
	rc = pool_cred_read(path, &cred);
	if (!rc)
		rc = pool_connect(uri, &cred, ret);
	explicit_bzero(&cred, sizeof(cred));
	return rc;
}

void store_pool_split(const char *field, char *front,
		      const char **ret_backing)
{
	const char *nl = strchr(field, '\n');
	size_t n = nl ? (size_t)(nl - field) : strlen(field);

	if (n > 255)
		n = 255;
	memcpy(front, field, n);
	front[n] = '\0';
	*ret_backing = nl ? nl + 1 : "";
}

int store_pool_open_field(const struct tier_store *st, const char *field,
			  struct pool **ret)
{
	struct tier_uri u, b;
	const char *backing;
	char front[256];
	struct pool *p;
	int rc;

	store_pool_split(field, front, &backing);
	rc = uri_parse(front, URI_WANT_POOL, &u);
	if (!rc && backing[0])
		rc = uri_parse(backing, URI_WANT_POOL, &b);
	if (rc)
		return rc;
	rc = store_pool_open(st, &u, &p);
	if (rc || !backing[0]) {
		if (!rc)
			*ret = p;
		return rc;
	}
	return pool_backed_open(p, &b, 0, ret);
}
