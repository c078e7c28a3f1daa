/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_INTERNAL_H
#define TIER_STORE_INTERNAL_H

/* Directory helpers of store/snap.c that import also needs; not a seam
 * for other areas (the format helpers are store/fmt.h). */

#include <stddef.h>
#include <stdint.h>

/* rm -rf @path (a missing path is fine); errors name what failed. */
int store_rmtree(const char *path);
/* fsync a directory, so renames inside it are durable. */
int store_sync_dir(const char *path);

#endif
