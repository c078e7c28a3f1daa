/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Built instead of verbs.c when rdma-core (libibverbs, librdmacm) is
 * missing: pool.c and server.c reach it for rdma:// and fail with
 * -EOPNOTSUPP. */
#include <errno.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "util/err.h"

int pool_verbs_open(struct pool *p, const struct tier_uri *uri)
{
	return tier_err(-EOPNOTSUPP, "pool %s: this build has no RDMA support (rdma-core not found)",
			p->uri);
}

int pool_verbs_listen(struct pool_server *srv, const struct tier_uri *uri,
		      const char *name, void **ret, int *ret_fd,
		      uint16_t *ret_port)
{
	return tier_err(-EOPNOTSUPP, "pool server %s: this build has no RDMA support (rdma-core not found)",
			name);
}

/* Never reached: nothing above succeeds. */
void pool_verbs_event(void *l)
{
}

void pool_verbs_revoke(void *l)
{
}

void pool_verbs_disconnect_all(void *l)
{
}

void pool_verbs_free(void *l)
{
}

int pool_verbs_reg(void *verbs, void *mem, uint64_t len, void **ret,
		   uint32_t *ret_rkey)
{
	return -EOPNOTSUPP;
}

void pool_verbs_unreg(void *mr)
{
}
