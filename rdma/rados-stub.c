/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Built instead of rados.c when librados is missing: pool.c reaches it
 * for rados:// and fails with -EOPNOTSUPP. */
#include <errno.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "util/err.h"

int pool_rados_open(struct pool *p, const struct tier_uri *uri)
{
	return tier_err(-EOPNOTSUPP, "pool %s: this build has no Ceph support (librados not found)",
			p->uri);
}
