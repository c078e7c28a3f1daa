/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_FORMAT_H
#define TIER_STORE_FORMAT_H

/*
 * On-disk structures of the store (doc/tier-snapshot.5.scd describes them
 * for people). All integers little-endian and fixed-width; every file ends
 * in (or holds in its header) an XXH3-64 checksum of the whole file with
 * the checksum field zeroed, verified on every read (-EBADMSG). A version
 * we don't speak is -EPROTO. store/fmt.c and the codecs (manifest.c,
 * trace.c, plan.c) read and write them.
 *
 * Store layout:
 *	STORE/snapshots/NAME/manifest		struct fmt_manifest_hdr ...
 *	STORE/snapshots/NAME/image		sparse copy of the image
 *	STORE/snapshots/NAME/traces/T.trace	struct fmt_trace_hdr ...
 *	STORE/snapshots/NAME/plans/POLICY.plan	struct fmt_plan_hdr ...
 *	STORE/snapshots/NAME/local/POLICY.GEN.data	compact local file
 *						(reap, faasnap; v1: POLICY.data)
 *	STORE/pool/				default file pool
 */

#include <stdint.h>

#define FMT_VERSION		1

/* ---- manifest: hdr, regions[nregions], zero bitmap, checksums[npages] */

#define FMT_MANIFEST_MAGIC	"TIERSNAP"

struct fmt_manifest_hdr {
	char magic[8];
	uint32_t version;
	uint32_t page_shift;		/* 12 */
	uint64_t image_size;		/* bytes */
	uint64_t npages;
	uint64_t nzero;			/* pages that are all zero */
	uint32_t nregions;
	uint32_t flags;			/* none defined: must be 0 */
	uint64_t created_ns;		/* CLOCK_REALTIME at import */
	char name[64];			/* snapshot name, NUL-padded */
	uint64_t reserved[3];
	uint64_t checksum;		/* XXH3-64 of the file, this field 0 */
};
_Static_assert(sizeof(struct fmt_manifest_hdr) == 152, "manifest header");

struct fmt_region {
	uint64_t offset;
	uint64_t length;
};

/*
 * After the regions: the zero bitmap, (npages + 63) / 64 uint64 words,
 * bit (p % 64) of word (p / 64) set when page p is all zero; then one
 * uint64 XXH3-64 per page (zero pages hold the checksum of a zero page).
 */

/* ---- trace: hdr, entries[nentries] in first-touch order */

#define FMT_TRACE_MAGIC		"TIERTRCE"

struct fmt_trace_hdr {
	char magic[8];
	uint32_t version;
	uint32_t page_shift;
	uint64_t npages;		/* of the snapshot it was taken on */
	uint64_t nentries;
	uint64_t created_ns;
	uint32_t source;		/* FMT_TRACE_SRC_* */
	uint32_t reserved0;
	uint64_t reserved[2];
	uint64_t checksum;
};
_Static_assert(sizeof(struct fmt_trace_hdr) == 72, "trace header");

#define FMT_TRACE_SRC_IMPORT	1	/* "tierctl trace import" */
#define FMT_TRACE_SRC_RECORD	2	/* the recorder */

struct fmt_trace_ent {
	uint64_t page;
	uint64_t t_ns;
	uint32_t kind;			/* enum tier_access */
	uint32_t reserved;
};
_Static_assert(sizeof(struct fmt_trace_ent) == 24, "trace entry");

/* ---- plan: hdr, extents[nextents] sorted by page, covering [0, npages) */

#define FMT_PLAN_MAGIC		"TIERPLAN"
/*
 * v2 adds the generation: the objects a plan references (CXL object,
 * pool segment, local file) carry it in their names, so a plan only ever
 * opens the objects written with it ("tierctl place" picks a random one,
 * never 0). Generation 0, and every v1 plan, names them without one.
 */
#define FMT_PLAN_VERSION	2

struct fmt_plan_hdr {
	char magic[8];
	uint32_t version;
	uint32_t policy;		/* enum tier_policy */
	uint64_t npages;
	uint64_t nextents;
	uint64_t created_ns;
	char cxl[256];			/* URI the CXL object was written to */
	char pool[256];			/* URI the pool segment was written to */
	uint32_t gap;			/* placer parameters, for "show" */
	uint32_t ntraces;
	double confidence;
	uint64_t cxl_capacity;
	uint64_t generation;		/* v2; v1: reserved, read as 0 */
	uint64_t reserved[3];
	uint64_t checksum;
};
_Static_assert(sizeof(struct fmt_plan_hdr) == 616, "plan header");

struct fmt_plan_ext {
	uint64_t page;			/* first page */
	uint64_t npages;
	uint8_t cls;			/* enum tier_class */
	uint8_t source;			/* enum placer_source */
	uint8_t method;			/* enum placer_method */
	uint8_t flags;			/* PLACER_F_* */
	uint32_t reserved;
	uint64_t src_off;		/* byte offset in the source object */
};
_Static_assert(sizeof(struct fmt_plan_ext) == 32, "plan extent");

#endif
