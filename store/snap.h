/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_SNAP_H
#define TIER_STORE_SNAP_H

/* Internal view of the store and its snapshots (store/snap.c) and the
 * codecs of its files (manifest.c, trace.c, plan.c, state.c), for the
 * store's own files, the restorer and the tests. */

#include <stddef.h>
#include <stdint.h>

#include "tier.h"
#include "placer/placer.h"
#include "store/format.h"

struct tier_store {
	char path[4096];
};

/* The store's key for pool servers (store/cred.c), relative to its root. */
#define STORE_POOL_KEY	"pool.key"

struct tier_uri;
struct pool;
/* pool_connect with the store's key, if it has one. */
int store_pool_open(const struct tier_store *st, const struct tier_uri *uri,
		    struct pool **ret);
/*
 * A plan's pool field (fmt_plan_hdr.pool, an intent's): "URI", or
 * "URI\nBACKING" where "tierctl place --backing" wrote every segment
 * through to a durable copy. Copies the first into @front (256 bytes)
 * and points *@ret_backing at the second ("" without one).
 */
void store_pool_split(const char *field, char *front,
		      const char **ret_backing);
/*
 * The pool of a plan's pool field, both tiers connected where it names a
 * backing (writes go through to both, removals remove from both).
 */
int store_pool_open_field(const struct tier_store *st, const char *field,
			  struct pool **ret);

struct tier_snap {
	struct tier_store *store;
	char name[64];
	char dir[4096];		/* STORE/snapshots/NAME */
	char image[4096];	/* STORE/snapshots/NAME/image */
	uint64_t size, npages, nzero;
	uint64_t created_ns;	/* CLOCK_REALTIME of the import */
	unsigned nregions;
	struct tier_region *regions;
	uint64_t *zero;		/* bitmap, (npages + 63) / 64 words */
	uint64_t *csum;		/* per page XXH3-64 */
	int image_fd;		/* O_RDONLY, opened lazily by snap_image_fd */
};

static inline int snap_page_zero(const struct tier_snap *s, uint64_t p)
{
	return (s->zero[p / 64] >> (p % 64)) & 1;
}

/* Validates a snapshot, trace or plan name: [A-Za-z0-9._-], 1..63 chars,
 * not starting with '.'. -EINVAL quoting it. */
int snap_check_name(const char *what, const char *name);

/* The image fd (opened on first use); errors name the image. */
int snap_image_fd(struct tier_snap *s);

/* Paths inside the snapshot directory. */
void snap_trace_path(const struct tier_snap *s, const char *name,
		     char *buf, size_t len);
void snap_plan_path(const struct tier_snap *s, enum tier_policy policy,
		    char *buf, size_t len);
/*
 * Where the data of a plan of generation @gen lives: its compact local
 * file (local/POLICY.GEN.data) and its object name in the CXL tier and
 * the pool ("SNAP/POLICY.GEN", GEN 16 hex digits), so that a plan only
 * ever opens what was written with it. Generation 0 (a v1 plan) gives
 * the names without it.
 */
void snap_local_path(const struct tier_snap *s, enum tier_policy policy,
		     uint64_t gen, char *buf, size_t len);
void snap_object_name(const struct tier_snap *s, enum tier_policy policy,
		      uint64_t gen, char *buf, size_t len);
/* The default pool URI ("pool=file:STORE/pool"). */
void snap_default_pool(const struct tier_snap *s, char *buf, size_t len);

/* ---- leftovers of killed writers (store/gc.c) */

/* The directories an import, a replacing import or a removal left in
 * snapshots/ (of snapshot @name; NULL: of any) whose process is gone:
 * removed, each said to @report (may be NULL). How many, or -errno. */
int gc_snapshot_dirs(struct tier_store *store, const char *name,
		     void (*report)(const char *what, void *arg), void *arg);
/* Everything killed writers left in the store and the tiers its plans
 * use (tierctl gc); a policy whose place runs is skipped, and said. */
int store_gc(struct tier_store *store,
	     void (*report)(const char *what, void *arg), void *arg);

/* ---- device state (store/state.c) */

/* Copies @path into @dir as "vmstate" with its checksum ("vmstate.sum"),
 * both written then renamed. */
int state_import(const char *path, const char *dir);

/* ---- manifest (store/manifest.c): pure encode/decode, fuzzable */

/* Checks and decodes a manifest image of @len bytes into @s (regions,
 * zero bitmap and checksums malloc()ed). -EBADMSG / -EPROTO naming @what. */
int manifest_decode(const void *buf, size_t len, const char *what,
		    struct tier_snap *s);
/* Encodes @s into a malloc()ed buffer. */
int manifest_encode(const struct tier_snap *s, void **ret, size_t *ret_len);

/* ---- traces (store/trace.c) */

/*
 * Parses the text form (doc/tier-trace.5.scd). Pure and fuzzable: @buf
 * need not be NUL-terminated. Offsets past @npages pages are -ERANGE;
 * errors say "@what:LINE: reason". Repeated pages merge into one entry
 * at the first position: r then w gives rw.
 */
int trace_parse_text(const char *buf, size_t len, uint64_t npages,
		     const char *what, struct tier_trace_ent **ret,
		     size_t *ret_n);
/*
 * The same of the file @path, read a chunk at a time: memory is bounded
 * by the image (a byte a page, an entry a page touched), not the file;
 * a line longer than 1 MiB is -EINVAL.
 */
int trace_read_text(const char *path, uint64_t npages,
		    struct tier_trace_ent **ret, size_t *ret_n);
/* Formats entries as text ("0x%llx KIND\n"), malloc()ed. */
int trace_format_text(const struct tier_trace_ent *ent, size_t n,
		      char **ret, size_t *ret_len);
int trace_decode(const void *buf, size_t len, const char *what,
		 uint64_t npages, struct tier_trace_ent **ret, size_t *ret_n);
int trace_encode(const struct tier_trace_ent *ent, size_t n, uint64_t npages,
		 uint32_t source, void **ret, size_t *ret_len);
/* Stores @ent as trace @name of @s (write then rename). */
int trace_save(struct tier_snap *s, const char *name,
	       const struct tier_trace_ent *ent, size_t n, uint32_t source);

/* ---- plans (store/plan.c) */

struct plan {
	struct fmt_plan_hdr hdr;	/* decoded to host order */
	struct placer_ext *ext;
	size_t n;
};

int plan_decode(const void *buf, size_t len, const char *what,
		struct plan *ret);
int plan_encode(const struct plan *plan, void **ret, size_t *ret_len);
/* Loads the plan of @policy; -ENOENT says to run "tierctl place". */
int plan_load(struct tier_snap *s, enum tier_policy policy, struct plan *ret);
void plan_free(struct plan *plan);

#endif
