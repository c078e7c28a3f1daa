/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_UTIL_CHECKSUM_H
#define TIER_UTIL_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-64 (libxxhash), seed 0: page checksums and file checksums, for the
 * store, the restorer's checks and the tiers' (util/checksum.c). */
uint64_t tier_csum(const void *buf, size_t len);

/* True if @len bytes (a multiple of 8, 8-aligned) are all zero. */
int tier_is_zero(const void *buf, size_t len);

#endif
