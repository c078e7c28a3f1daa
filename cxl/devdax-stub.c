/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cxl=devdax:PATH in a build without libdaxctl or libpmem2: the tier
 * exists in the URI syntax but cannot be opened (cxl/cxl.c calls this
 * instead of devdax.c). */
#include <errno.h>

#include "cxl/cxl-int.h"

static int devdax_stub_open(struct cxl_tier *t)
{
	return cxl_err(t, NULL, -EOPNOTSUPP,
		       "this build has no device-dax support (libdaxctl, libpmem2)");
}

void devdax_emulate(bool on)
{
	/* nothing to emulate: this build cannot open the tier at all */
}

const struct cxl_ops cxl_devdax_ops = {
	.scheme = "devdax",
	.open = devdax_stub_open,
};
