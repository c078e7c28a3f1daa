/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_CXL_INT_H
#define TIER_CXL_INT_H

/*
 * Inside cxl/: cxl.c checks arguments and dispatches on the URI kind
 * through one ops table per backend. Backends see checked arguments only
 * (valid names, page-aligned in-range offsets), so each file holds just
 * its mechanism.
 */

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "cxl/cxl.h"

#define CXL_NAME_MAX	128	/* "SNAP/POLICY" and then some */

struct cxl_ops;

struct cxl_tier {
	const struct cxl_ops *ops;
	struct tier_uri uri;
	char id[PATH_MAX + 16];	/* canonical URI: prefix of every error */
	char dir[PATH_MAX];	/* dir, numa: where object files live */
	void *priv;		/* backend state */
};

struct cxl_wobj {
	struct cxl_tier *t;
	char name[CXL_NAME_MAX];
	uint64_t size;
	int fd;			/* dir, numa: the temporary file */
	char path[PATH_MAX];	/* dir, numa: final name */
	char tmp[PATH_MAX];	/* dir, numa: temporary name */
	uint64_t off;		/* devdax: where its bytes start */
};

struct cxl_obj {
	struct cxl_tier *t;
	char name[CXL_NAME_MAX];
	uint64_t size;
	int fd;			/* dir, numa */
	uint64_t changed_ns;	/* dir, numa: st_ctim when opened */
	uint64_t off;		/* devdax */
};

struct cxl_ops {
	const char *scheme;
	int (*open)(struct cxl_tier *t);
	void (*close)(struct cxl_tier *t);
	int (*create)(struct cxl_wobj *w);
	int (*write)(struct cxl_wobj *w, uint64_t off, const void *buf,
		     size_t len);
	int (*commit)(struct cxl_wobj *w);
	void (*abort)(struct cxl_wobj *w);
	int (*obj_open)(struct cxl_obj *o);
	void (*obj_close)(struct cxl_obj *o);
	int (*obj_map)(struct cxl_obj *o, uint64_t off, void *addr, size_t len,
		       int populate);
	int (*obj_read)(struct cxl_obj *o, uint64_t off, void *buf,
			size_t len);
	int (*remove)(struct cxl_tier *t, const char *name);
};

extern const struct cxl_ops cxl_dir_ops;
extern const struct cxl_ops cxl_numa_ops;
extern const struct cxl_ops cxl_devdax_ops;

/*
 * Records "URI: object NAME: reason" (or "URI: reason" with a NULL
 * @obj) and returns @rc; errno is -@rc while @fmt is expanded, so %m
 * names the failure.
 */
int cxl_err(const struct cxl_tier *t, const char *obj, int rc,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * A test interface, not in libtier.sym: with @on, cxl=devdax: accepts a
 * regular file in place of the device (2 MiB alignment, device-dax's
 * default), so tests without DAX hardware exercise the object table.
 * Off by default; a no-op in a build without device-dax.
 */
void devdax_emulate(bool on);

/* dir.c's mechanism, which numa.c reuses for its tmpfs files. */
int dir_open(struct cxl_tier *t);
int dir_create(struct cxl_wobj *w);
int dir_write(struct cxl_wobj *w, uint64_t off, const void *buf, size_t len);
int dir_commit(struct cxl_wobj *w);
void dir_abort(struct cxl_wobj *w);
int dir_obj_open(struct cxl_obj *o);
void dir_obj_close(struct cxl_obj *o);
int dir_obj_map(struct cxl_obj *o, uint64_t off, void *addr, size_t len,
		int populate);
int dir_obj_read(struct cxl_obj *o, uint64_t off, void *buf, size_t len);
int dir_remove(struct cxl_tier *t, const char *name);

#endif
