/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_FMT_H
#define TIER_STORE_FMT_H

/*
 * Helpers for the layouts of store/format.h (store/fmt.c): byte order, the
 * checks every store file's header shares, and those of a region table.
 * Called by the manifest, trace and plan codecs, import and the store's
 * directory listing; depends on nothing else of the store.
 */

#include <stddef.h>
#include <stdint.h>

#include "tier.h"
#include "store/format.h"

/* Little-endian loads and stores from possibly unaligned bytes. */
uint64_t fmt_get64(const void *p);
uint32_t fmt_get32(const void *p);
void fmt_put64(void *p, uint64_t v);
void fmt_put32(void *p, uint32_t v);

/* CLOCK_REALTIME in ns, for created_ns fields. */
uint64_t fmt_now_ns(void);

/*
 * XXH3-64 of a file image of @len bytes, with the 8-byte checksum field
 * at @csum_off counted as zero. The caller checked @csum_off + 8 <= @len.
 * -ENOMEM is the only failure.
 */
int fmt_file_csum(const void *buf, size_t len, size_t csum_off,
		  uint64_t *ret);

/*
 * One kind of store file: every header starts with magic[8] and a
 * uint32 version and holds a checksum of the whole file; a uint64 count
 * in the header says how long the rest is.
 */
struct fmt_file {
	const char *kind;	/* "manifest", "trace", "plan": in messages */
	const char *magic;	/* FMT_*_MAGIC, 8 bytes */
	size_t hdr_size;
	size_t csum_off;	/* the header's uint64 checksum */
	size_t count_off;	/* the header's uint64 count, for messages */
	const char *count_name;	/* what it counts: "pages", "entries" */
	/* The newest version of this kind, written and read (with every
	 * older one down to 1, which share its layout); 0: FMT_VERSION. */
	uint32_t version;
	/* Bytes of the file a whole header of a version we read describes;
	 * 0 if that overflows. */
	size_t (*size)(const void *hdr);
};

/*
 * Checks the @len bytes of a file of kind @f: magic, a whole header,
 * the length its counts give (for a version we read: a newer one may be
 * longer), the checksum, then the version. -EBADMSG, or -EPROTO for an
 * intact file of a version we do not read, naming @what. The fields
 * behind them (and which version it is) are the caller's to check.
 */
int fmt_check_file(const struct fmt_file *f, const void *buf, size_t len,
		   const char *what);

/* Writes magic, the newest version of @f and, last, the checksum of @len
 * bytes of an encoded file of kind @f; -ENOMEM is the only failure. */
int fmt_seal_file(const struct fmt_file *f, void *buf, size_t len);

/*
 * Checks that @n regions lie inside an image of @size bytes, page
 * aligned, non-empty and disjoint. Fails with @err (-EINVAL for a table
 * a caller passed, -EBADMSG for one read from disk) naming @what.
 */
int fmt_check_regions(const struct tier_region *r, unsigned n,
		      uint64_t size, const char *what, int err);

/* True if @name may name a snapshot, trace or plan (see snap_check_name):
 * the store keeps it in manifests and as file names. */
int fmt_name_ok(const char *name);

#endif
