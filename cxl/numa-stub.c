/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cxl=numa:N in a build without libnuma (meson -Dcxl=disabled, or no
 * libnuma-dev): the tier exists in the URI syntax but cannot be opened
 * (cxl/cxl.c calls this instead of numa.c). */
#include <errno.h>

#include "cxl/cxl-int.h"

static int numa_stub_open(struct cxl_tier *t)
{
	return cxl_err(t, NULL, -EOPNOTSUPP, "this build has no libnuma");
}

const struct cxl_ops cxl_numa_ops = {
	.scheme = "numa",
	.open = numa_stub_open,
};
