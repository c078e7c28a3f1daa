/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The byte-addressable tier's front (cxl/cxl.h): argument checks, then
 * dispatch on the URI's kind. Backends may assume names are valid and
 * ranges are page aligned (where it matters) and inside the object.
 * Called by store/place.c (writes objects) and the restorer (maps them).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "cxl/cxl-int.h"
#include "tier.h"
#include "util/err.h"
#include "util/file.h"

int cxl_err(const struct cxl_tier *t, const char *obj, int rc,
	    const char *fmt, ...)
{
	char why[512];
	va_list ap;

	errno = -rc;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (obj)
		return tier_err(rc, "%s: object %s: %s", t->id, obj, why);
	return tier_err(rc, "%s: %s", t->id, why);
}

/*
 * Object names become paths under a directory, so keep them to
 * "COMPONENT[/COMPONENT...]" of [A-Za-z0-9._-], none starting with '.'
 * (no "..", no hidden temporaries, no absolute paths).
 */
static int check_name(const struct cxl_tier *t, const char *name)
{
	size_t len = name ? strlen(name) : 0;
	const char *p;
	int start = 1;

	if (!len || len >= CXL_NAME_MAX)
		return cxl_err(t, NULL, -EINVAL, "bad object name '%s'",
			       name ? name : "");
	for (p = name; *p; p++) {
		int c = (unsigned char)*p;

		if (c == '/') {
			if (start)
				goto bad;
			start = 1;
			continue;
		}
		if (start && c == '.')
			goto bad;
		start = 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			goto bad;
	}
	if (start)
		goto bad;
	return 0;
bad:
	return cxl_err(t, NULL, -EINVAL,
		       "bad object name '%s' (want NAME[/NAME], [A-Za-z0-9._-])",
		       name);
}

static int in_range(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

static int page_aligned(uint64_t v)
{
	return !(v & (TIER_PAGE_SIZE - 1));
}

int cxl_open(const struct tier_uri *uri, struct cxl_tier **ret)
{
	struct cxl_tier *t;
	int rc;

	t = calloc(1, sizeof(*t));
	if (!t)
		return tier_err(-ENOMEM, "out of memory");
	t->uri = *uri;

	switch (uri->kind) {
	case URI_CXL_DIR:
		t->ops = &cxl_dir_ops;
		snprintf(t->id, sizeof(t->id), "cxl=dir:%s", uri->path);
		break;
	case URI_CXL_NUMA:
		t->ops = &cxl_numa_ops;
		snprintf(t->id, sizeof(t->id), "cxl=numa:%d%s%s", uri->node,
			 uri->path[0] ? ":" : "", uri->path);
		break;
	case URI_CXL_DEVDAX:
		t->ops = &cxl_devdax_ops;
		snprintf(t->id, sizeof(t->id), "cxl=devdax:%s", uri->path);
		break;
	default:
		free(t);
		return tier_err(-EINVAL, "not a cxl= tier URI (kind %d)",
				(int)uri->kind);
	}

	rc = t->ops->open(t);
	if (rc) {
		free(t);
		return rc;
	}
	*ret = t;
	return 0;
}

void cxl_close(struct cxl_tier *t)
{
	if (!t)
		return;
	if (t->ops->close)
		t->ops->close(t);
	free(t);
}

int cxl_create(struct cxl_tier *t, const char *name, uint64_t size,
	       struct cxl_wobj **ret)
{
	struct cxl_wobj *w;
	int rc;

	rc = check_name(t, name);
	if (rc)
		return rc;
	w = calloc(1, sizeof(*w));
	if (!w)
		return cxl_err(t, name, -ENOMEM, "out of memory");
	w->t = t;
	w->fd = -1;
	w->size = size;
	strcpy(w->name, name);

	rc = t->ops->create(w);
	if (rc) {
		free(w);
		return rc;
	}
	*ret = w;
	return 0;
}

int cxl_write(struct cxl_wobj *w, uint64_t off, const void *buf, size_t len)
{
	if (!in_range(off, len, w->size))
		return cxl_err(w->t, w->name, -ERANGE,
			       "write of %zu bytes at %#llx past its end (%llu bytes)",
			       len, (unsigned long long)off,
			       (unsigned long long)w->size);
	if (!len)
		return 0;
	return w->t->ops->write(w, off, buf, len);
}

int cxl_commit(struct cxl_wobj *w)
{
	int rc = w->t->ops->commit(w);

	/* The object is published or dropped either way: the handle ends. */
	free(w);
	return rc;
}

void cxl_abort(struct cxl_wobj *w)
{
	if (!w)
		return;
	w->t->ops->abort(w);
	free(w);
}

int cxl_obj_open(struct cxl_tier *t, const char *name, struct cxl_obj **ret)
{
	struct cxl_obj *o;
	int rc;

	rc = check_name(t, name);
	if (rc)
		return rc;
	o = calloc(1, sizeof(*o));
	if (!o)
		return cxl_err(t, name, -ENOMEM, "out of memory");
	o->t = t;
	o->fd = -1;
	strcpy(o->name, name);

	rc = t->ops->obj_open(o);
	if (rc) {
		free(o);
		return rc;
	}
	*ret = o;
	return 0;
}

void cxl_obj_close(struct cxl_obj *o)
{
	if (!o)
		return;
	o->t->ops->obj_close(o);
	free(o);
}

uint64_t cxl_obj_size(const struct cxl_obj *o)
{
	return o->size;
}

int cxl_obj_map(struct cxl_obj *o, uint64_t off, void *addr, size_t len,
		int populate)
{
	if (!len || !page_aligned(off) || !page_aligned(len) ||
	    !page_aligned((uintptr_t)addr))
		return cxl_err(o->t, o->name, -EINVAL,
			       "map of %zu bytes at %#llx to %p: not page aligned",
			       len, (unsigned long long)off, addr);
	/* The object's last page may be partial: map whole pages of it. */
	if (!in_range(off, len, (o->size + TIER_PAGE_SIZE - 1) &
				~(TIER_PAGE_SIZE - 1)))
		return cxl_err(o->t, o->name, -ERANGE,
			       "map of %zu bytes at %#llx past its end (%llu bytes)",
			       len, (unsigned long long)off,
			       (unsigned long long)o->size);
	if (!o->t->ops->obj_map)
		return cxl_err(o->t, o->name, -EOPNOTSUPP,
			       "a %s tier cannot be mapped copy-on-write; use "
			       "fs-dax (cxl=dir: on a dax mount) for zero-copy",
			       o->t->ops->scheme);
	return o->t->ops->obj_map(o, off, addr, len, populate);
}

int cxl_obj_share_fd(struct cxl_obj *o, int *ret_fd)
{
	char path[64];
	int fd;

	if (!o->t->ops->obj_map || o->fd < 0)
		return cxl_err(o->t, o->name, -EOPNOTSUPP,
			       "a %s tier cannot be mapped copy-on-write by "
			       "another process", o->t->ops->scheme);
	/* a new open file, read-only: the receiver can map it private but
	 * never write the object every instance shares */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", o->fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cxl_err(o->t, o->name, -errno, "reopen read-only: %m");
	*ret_fd = fd;
	return 0;
}

int cxl_can_map(const struct cxl_tier *t)
{
	return t && t->ops && t->ops->obj_map;
}

int cxl_obj_read(struct cxl_obj *o, uint64_t off, void *buf, size_t len)
{
	if (!in_range(off, len, o->size))
		return cxl_err(o->t, o->name, -ERANGE,
			       "read of %zu bytes at %#llx past its end (%llu bytes)",
			       len, (unsigned long long)off,
			       (unsigned long long)o->size);
	if (!len)
		return 0;
	return o->t->ops->obj_read(o, off, buf, len);
}

int cxl_remove(struct cxl_tier *t, const char *name)
{
	int rc = check_name(t, name);

	if (rc)
		return rc;
	return t->ops->remove(t, name);
}

/*
 * Whether objects of @t live in shmem: dir on tmpfs, numa (its files
 * are tmpfs files). The tier's directory may not exist yet (the first
 * create makes it): then the nearest existing parent decides.
 */
int cxl_overlay_ok(const struct cxl_tier *t)
{
	char path[PATH_MAX], *slash;
	struct statfs sf;

	if (!t || !t->ops || (t->uri.kind != URI_CXL_DIR &&
			      t->uri.kind != URI_CXL_NUMA))
		return 0;
	snprintf(path, sizeof(path), "%s", t->dir[0] ? t->dir : t->uri.path);
	while (statfs(path, &sf) < 0) {
		if (errno != ENOENT)
			return 0;
		slash = strrchr(path, '/');
		if (!slash)
			return 0;
		if (slash == path)
			slash[1] = 0;
		else
			*slash = 0;
	}
	return sf.f_type == TMPFS_MAGIC;
}

int cxl_free_bytes(const struct cxl_tier *t, uint64_t *ret)
{
	if (t->uri.kind != URI_CXL_DIR && t->uri.kind != URI_CXL_NUMA)
		return -EOPNOTSUPP;
	return fs_free_bytes(t->dir[0] ? t->dir : t->uri.path, ret);
}

int cxl_obj_overlay_ok(const struct cxl_obj *o)
{
	struct statfs sf;

	if (!o || !o->t || (o->t->uri.kind != URI_CXL_DIR &&
			    o->t->uri.kind != URI_CXL_NUMA) || o->fd < 0)
		return 0;
	return fstatfs(o->fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

int cxl_obj_present(const struct cxl_obj *o, uint64_t off, uint64_t len)
{
	off_t h;

	if (!o || off > o->size || len > o->size - off)
		return 0;
	if (o->t->uri.kind != URI_CXL_DIR && o->t->uri.kind != URI_CXL_NUMA)
		return 1;		/* devdax: no holes */
	/* data at @off first: O(1), where SEEK_HOLE walks to the end of
	 * the data run, and one page needs no more */
	h = lseek(o->fd, (off_t)off, SEEK_DATA);
	if (h < 0 || (uint64_t)h != off)
		return 0;
	if (len <= TIER_PAGE_SIZE)
		return 1;
	h = lseek(o->fd, (off_t)off, SEEK_HOLE);
	return h >= 0 && (uint64_t)h >= off + len;
}

uint64_t cxl_obj_changed_ns(const struct cxl_obj *o)
{
	return o ? o->changed_ns : 0;
}

uint64_t cxl_obj_held(const struct cxl_obj *o)
{
	struct stat st;

	if (!o)
		return 0;
	if (o->t->uri.kind != URI_CXL_DIR && o->t->uri.kind != URI_CXL_NUMA)
		return o->size;		/* devdax: no holes */
	if (fstat(o->fd, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

int cxl_obj_now_size(const struct cxl_obj *o, uint64_t *ret)
{
	struct stat st;

	if (o->t->uri.kind != URI_CXL_DIR && o->t->uri.kind != URI_CXL_NUMA) {
		*ret = o->size;		/* devdax: its extent cannot shrink */
		return 0;
	}
	if (fstat(o->fd, &st) < 0)
		return -errno;
	*ret = st.st_size;
	return 0;
}
