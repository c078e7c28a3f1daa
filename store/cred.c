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
