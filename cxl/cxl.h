/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_CXL_H
#define TIER_CXL_H

/*
 * Byte-addressable tiers: objects (one per plan, named "SNAP/POLICY.GEN"
 * by its generation) that a restore maps MAP_PRIVATE|MAP_FIXED into guest
 * memory, so read-only pages are zero-copy, shared by every instance, and
 * copy-on-write on a wrong guess.
 *
 * Backends (one file each): dir.c (any filesystem: tmpfs, fs-dax ext4),
 * numa.c (tmpfs file bound to a CPU-less NUMA node with libnuma),
 * devdax.c (libdaxctl + libpmem2). A backend this build lacks is a stub
 * returning -EOPNOTSUPP. Handles are not thread-safe.
 */

#include <stddef.h>
#include <stdint.h>

#include "util/uri.h"

struct cxl_tier;
struct cxl_obj;		/* open for mapping and reading */
struct cxl_wobj;	/* being written; invisible until committed */

/* Default when no cxl= URI is given: a directory on tmpfs. */
#define CXL_DEFAULT_URI	"cxl=dir:/dev/shm/tier-cxl"

int cxl_open(const struct tier_uri *uri, struct cxl_tier **ret);
void cxl_close(struct cxl_tier *t);

/* Create object @name of @size bytes (unwritten ranges read as zero). */
int cxl_create(struct cxl_tier *t, const char *name, uint64_t size,
	       struct cxl_wobj **ret);
int cxl_write(struct cxl_wobj *w, uint64_t off, const void *buf, size_t len);
/* Publishes it atomically, replacing an older object of that name. */
int cxl_commit(struct cxl_wobj *w);
/* Drops an uncommitted object; NULL-safe. */
void cxl_abort(struct cxl_wobj *w);

int cxl_obj_open(struct cxl_tier *t, const char *name, struct cxl_obj **ret);
void cxl_obj_close(struct cxl_obj *o);
uint64_t cxl_obj_size(const struct cxl_obj *o);
/*
 * Maps [off, off+len) of the object MAP_PRIVATE|MAP_FIXED at @addr,
 * PROT_READ|PROT_WRITE; with @populate, MADV_POPULATE_READ so the page
 * tables are filled before return. Page aligned; -ERANGE past the end.
 */
int cxl_obj_map(struct cxl_obj *o, uint64_t off, void *addr, size_t len,
		int populate);
/* A new O_RDONLY fd of the object for another process to map it
 * MAP_PRIVATE itself at the same offsets (a VMM taking ro pages
 * zero-copy); -EOPNOTSUPP where it cannot (devdax). */
int cxl_obj_share_fd(struct cxl_obj *o, int *ret_fd);
/* 1 if objects of @t can be mapped MAP_PRIVATE (copy-on-write): not
 * device-dax, which maps MAP_SHARED only. */
int cxl_can_map(const struct cxl_tier *t);
/* Reads bytes out (aquifer copies its hot set from CXL). */
int cxl_obj_read(struct cxl_obj *o, uint64_t off, void *buf, size_t len);

/* Removes object @name, and what a writer of it killed before its commit
 * left (dir, numa); -ENOENT if there was neither. */
int cxl_remove(struct cxl_tier *t, const char *name);

/*
 * Whether objects are shmem (tmpfs) files: a MAP_PRIVATE mapping of one
 * can then be registered with userfaultfd MISSING, holes in the object
 * raising faults and UFFDIO_COPY installing private anonymous pages
 * there, while present pages map from the shared page cache. 1 or 0.
 * The tier form decides the layout at place time, the object form the
 * restore (doc/placement.md, "identity layout").
 */
int cxl_overlay_ok(const struct cxl_tier *t);
int cxl_obj_overlay_ok(const struct cxl_obj *o);
/* 1 if [off, off+len) of the object holds no hole (SEEK_DATA, SEEK_HOLE),
 * else 0: populating a hole of an overlay mapping would wait for a fault
 * handler. One page costs one lseek. */
int cxl_obj_present(const struct cxl_obj *o, uint64_t off, uint64_t len);
/* When the object (a file) last changed, its ctime in ns since the epoch
 * as opened: any write, hole punched or truncate since moves it on. 0 if
 * unknown (devdax). */
uint64_t cxl_obj_changed_ns(const struct cxl_obj *o);
/* Bytes objects of @t may still take: the free space of the directory's
 * filesystem (dir, numa); -EOPNOTSUPP, no message, where a create finds
 * out (devdax). */
int cxl_free_bytes(const struct cxl_tier *t, uint64_t *ret);
/* Bytes the object really holds (allocated: st_blocks for a file; the
 * size for devdax); 0 if unknown. */
uint64_t cxl_obj_held(const struct cxl_obj *o);
/* The object's size now (an fstat: safe in a signal handler), which
 * someone else's truncate may have made smaller than when it was opened
 * (cxl_obj_size): 0 or -errno, no message. */
int cxl_obj_now_size(const struct cxl_obj *o, uint64_t *ret);

#endif
