/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_INTERNAL_H
#define TIER_STORE_INTERNAL_H

/* Helpers shared by the store's own files (snap, manifest, import, trace,
 * plan); not a seam for other areas. */

#include <stddef.h>
#include <stdint.h>

/*
 * XXH3-64 of a file image of @len bytes, with the 8-byte checksum field
 * at @csum_off counted as zero. The caller checked @csum_off + 8 <= @len.
 * -ENOMEM is the only failure.
 */
int fmt_file_csum(const void *buf, size_t len, size_t csum_off,
		  uint64_t *ret);

/* CLOCK_REALTIME in ns, for created_ns fields. */
uint64_t fmt_now_ns(void);

/* Little-endian loads and stores from possibly unaligned bytes. */
uint64_t fmt_get64(const void *p);
uint32_t fmt_get32(const void *p);
void fmt_put64(void *p, uint64_t v);
void fmt_put32(void *p, uint32_t v);

/* True if @name is a valid snapshot/trace name (see snap_check_name). */
int store_name_ok(const char *name);

/* rm -rf @path (a missing path is fine); errors name what failed. */
int store_rmtree(const char *path);
/* fsync a directory, so renames inside it are durable. */
int store_sync_dir(const char *path);

#endif
