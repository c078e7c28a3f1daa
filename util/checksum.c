/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tier_csum and tier_is_zero (util/checksum.h): the only caller of
 * libxxhash, for the store's page and file checksums and the restorer's
 * checks of what it installs. */
#include <string.h>
#include <xxhash.h>

#include "util/checksum.h"

uint64_t tier_csum(const void *buf, size_t len)
{
	return XXH3_64bits(buf, len);
}

int tier_is_zero(const void *buf, size_t len)
{
	const uint64_t *p = buf;
	size_t i, n = len / 8;

	/* Four words at a time: the loop the compiler vectorises best, and
	 * non-zero pages usually fail within the first cache line. */
	for (i = 0; i + 4 <= n; i += 4)
		if (p[i] | p[i + 1] | p[i + 2] | p[i + 3])
			return 0;
	for (; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}
