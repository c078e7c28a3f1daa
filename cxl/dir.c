/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cxl=dir:PATH -- objects are files in a directory: tmpfs (the default,
 * DRAM standing in for CXL), ext4/xfs with dax=always on a pmem or CXL
 * namespace (fs-dax), or any other filesystem. Object "SNAP/POLICY.GEN"
 * (a plan's, GEN its generation) is the file PATH/SNAP/POLICY.GEN.obj.
 *
 * A restore maps the file MAP_PRIVATE: reads are served from the page
 * cache (or straight from the device under fs-dax) and shared by every
 * instance; a write copies that one page into anonymous memory.
 * Reached through cxl/cxl.c's ops table, as every backend.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cxl/cxl-int.h"
#include "tier.h"
#include "util/err.h"
#include "util/file.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22	/* Linux 5.14 */
#endif

static int obj_path(const struct cxl_tier *t, const char *name, char *buf,
		    size_t len)
{
	int n = snprintf(buf, len, "%s/%s.obj", t->dir, name);

	if (n < 0 || (size_t)n >= len)
		return cxl_err(t, name, -ENAMETOOLONG, "path too long");
	return 0;
}

/* @path's directory, in @buf; @path always has a '/'. */
static void parent_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash - path;

	if (n == 0)
		n = 1;		/* "/x": the root */
	if (n >= len)
		n = len - 1;
	memcpy(buf, path, n);
	buf[n] = 0;
}

/*
 * A restore maps objects without checking their pages (zero-copy; place
 * checked them against the checksums when it wrote them), so whoever can
 * replace an object or write into it decides what guests read. A tier
 * directory or an object that another user owns (root aside), or that
 * group or others may write, is refused, as ssh refuses such a key
 * file. /dev/shm is world-writable: the default directory is made there
 * by the first place, 0755, and refused if someone else made it first.
 */
static int check_owner(const struct cxl_tier *t, const char *obj,
		       const struct stat *st, const char *what)
{
	if (st->st_uid != geteuid() && st->st_uid != 0)
		return cxl_err(t, obj, -EPERM,
			       "%s is owned by uid %u: another user could change what restores map",
			       what, (unsigned)st->st_uid);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return cxl_err(t, obj, -EPERM,
			       "%s is writable by group or others (mode %03o): another user could change what restores map (chmod go-w)",
			       what, (unsigned)(st->st_mode & 07777));
	return 0;
}

static int check_dir(const struct cxl_tier *t)
{
	struct stat st;

	if (stat(t->dir, &st) < 0)
		return cxl_err(t, NULL, -errno, "%s: %m", t->dir);
	if (!S_ISDIR(st.st_mode))
		return cxl_err(t, NULL, -ENOTDIR, "not a directory");
	return check_owner(t, NULL, &st, "the directory");
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)	/* some fs can't: fine */
		rc = -errno;
	close(fd);
	return rc;
}

int dir_open(struct cxl_tier *t)
{
	struct stat st;

	if (!t->uri.path[0])
		return cxl_err(t, NULL, -EINVAL, "empty directory");
	snprintf(t->dir, sizeof(t->dir), "%s", t->uri.path);
	/* A directory that isn't there yet is made by the first create. */
	if (stat(t->dir, &st) < 0)
		return 0;
	return check_dir(t);
}

int dir_create(struct cxl_wobj *w)
{
	struct cxl_tier *t = w->t;
	char parent[PATH_MAX];
	const char *base;
	int rc;

	rc = obj_path(t, w->name, w->path, sizeof(w->path));
	if (rc)
		return rc;
	parent_of(w->path, parent, sizeof(parent));
	rc = mkdir_p(parent, 0755);
	if (rc)
		return tier_err_ctx(rc, "%s: object %s", t->id, w->name);
	/* made by us now, or by someone before us */
	rc = check_dir(t);
	if (rc)
		return rc;

	/*
	 * A hidden name in the same directory: rename() is then atomic and
	 * no object name (never starting with '.') can collide with it.
	 * Mode 0644 less the umask, as the store's other files.
	 */
	base = strrchr(w->path, '/') + 1;
	for (int tries = 0;; tries++) {
		static unsigned seq;
		int n;

		n = snprintf(w->tmp, sizeof(w->tmp), "%.*s/.%s.%d.%u",
			     (int)(base - 1 - w->path), w->path, base,
			     (int)getpid(), __atomic_fetch_add(&seq, 1,
							       __ATOMIC_RELAXED));
		if (n < 0 || (size_t)n >= sizeof(w->tmp)) {
			w->tmp[0] = 0;
			return cxl_err(t, w->name, -ENAMETOOLONG,
				       "path too long");
		}
		w->fd = open(w->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			     0644);
		if (w->fd >= 0)
			break;
		/* a place of another policy removed its last object of
		 * this snapshot, and the directory with it: again */
		if (errno == ENOENT && tries < 100 &&
		    mkdir_p(parent, 0755) == 0)
			continue;
		if (errno != EEXIST || tries > 100) {
			rc = cxl_err(t, w->name, -errno, "create in %s: %m",
				     parent);
			w->tmp[0] = 0;
			return rc;
		}
	}

	/* Sparse: pages never written read as zero and cost nothing. */
	if (ftruncate(w->fd, w->size) < 0) {
		rc = cxl_err(t, w->name, -errno, "size %llu bytes: %m",
			     (unsigned long long)w->size);
		dir_abort(w);
		return rc;
	}
	return 0;
}

int dir_write(struct cxl_wobj *w, uint64_t off, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(w->fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cxl_err(w->t, w->name, -errno,
				       "write at %#llx: %m",
				       (unsigned long long)off);
		if (n == 0)
			return cxl_err(w->t, w->name, -ENOSPC,
				       "write at %#llx: no space",
				       (unsigned long long)off);
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int dir_commit(struct cxl_wobj *w)
{
	char parent[PATH_MAX];
	int rc;

	if (fsync(w->fd) < 0) {
		rc = cxl_err(w->t, w->name, -errno, "fsync: %m");
		goto err;
	}
	if (rename(w->tmp, w->path) < 0) {
		rc = cxl_err(w->t, w->name, -errno, "rename into place: %m");
		goto err;
	}
	close(w->fd);
	w->fd = -1;
	parent_of(w->path, parent, sizeof(parent));
	rc = fsync_dir(parent);
	if (rc)
		return cxl_err(w->t, w->name, rc, "fsync %s: %m", parent);
	return 0;
err:
	dir_abort(w);
	return rc;
}

void dir_abort(struct cxl_wobj *w)
{
	if (w->fd >= 0) {
		close(w->fd);
		w->fd = -1;
	}
	if (w->tmp[0])
		unlink(w->tmp);
	w->tmp[0] = 0;
}

int dir_obj_open(struct cxl_obj *o)
{
	char path[PATH_MAX];
	struct stat st;
	int rc;

	rc = obj_path(o->t, o->name, path, sizeof(path));
	if (rc)
		return rc;
	o->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (o->fd < 0)
		return cxl_err(o->t, o->name, -errno, "%m");
	if (fstat(o->fd, &st) < 0)
		rc = cxl_err(o->t, o->name, -errno, "%m");
	else
		rc = check_owner(o->t, o->name, &st, "the object file");
	if (rc) {
		close(o->fd);
		return rc;
	}
	o->size = st.st_size;
	o->changed_ns = (uint64_t)st.st_ctim.tv_sec * 1000000000ULL +
			st.st_ctim.tv_nsec;
	return 0;
}

void dir_obj_close(struct cxl_obj *o)
{
	if (o->fd >= 0)
		close(o->fd);
}

int dir_obj_map(struct cxl_obj *o, uint64_t off, void *addr, size_t len,
		int populate)
{
	void *p;

	/* MAP_PRIVATE of an O_RDONLY fd may still be PROT_WRITE: writes go
	 * to private anonymous copies, never to the object. */
	p = mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
		 o->fd, off);
	if (p == MAP_FAILED)
		return cxl_err(o->t, o->name, -errno,
			       "mmap %zu bytes at %#llx: %m", len,
			       (unsigned long long)off);
	if (!populate)
		return 0;

	if (madvise(addr, len, MADV_POPULATE_READ) == 0)
		return 0;
	if (errno != EINVAL)
		return cxl_err(o->t, o->name, -errno,
			       "populate %zu bytes at %#llx: %m", len,
			       (unsigned long long)off);
	/* Older kernel: fault each page in by reading it. */
	for (size_t i = 0; i < len; i += TIER_PAGE_SIZE)
		(void)*(volatile const char *)((const char *)addr + i);
	return 0;
}

int dir_obj_read(struct cxl_obj *o, uint64_t off, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(o->fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cxl_err(o->t, o->name, -errno,
				       "read at %#llx: %m",
				       (unsigned long long)off);
		if (n == 0)	/* shrunk under us: never hand out zeroes */
			return cxl_err(o->t, o->name, -EIO,
				       "read at %#llx: truncated",
				       (unsigned long long)off);
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/*
 * The temporaries of object @path (".BASE.PID.SEQ" beside it) that a
 * writer killed before its commit or abort left: a name is written by
 * one writer only (a plan's generation is in it), so once its writer is
 * gone they are nobody's. Returns how many went.
 */
static int remove_temps(const char *path)
{
	const char *base = strrchr(path, '/') + 1;
	char parent[PATH_MAX];
	size_t blen = strlen(base);
	struct dirent *de;
	int n = 0;
	DIR *d;

	parent_of(path, parent, sizeof(parent));
	d = opendir(parent);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] == '.' &&
		    !strncmp(de->d_name + 1, base, blen) &&
		    de->d_name[1 + blen] == '.' &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	closedir(d);
	return n;
}

int dir_remove(struct cxl_tier *t, const char *name)
{
	char path[PATH_MAX], parent[PATH_MAX];
	int rc, temps;

	rc = obj_path(t, name, path, sizeof(path));
	if (rc)
		return rc;
	temps = remove_temps(path);
	if (unlink(path) < 0 && (errno != ENOENT || !temps))
		return cxl_err(t, name, -errno, "%m");
	parent_of(path, parent, sizeof(parent));
	if (strcmp(parent, t->dir))
		rmdir(parent);	/* the last object of its snapshot: tidy */
	return 0;
}

const struct cxl_ops cxl_dir_ops = {
	.scheme = "dir",
	.open = dir_open,
	.create = dir_create,
	.write = dir_write,
	.commit = dir_commit,
	.abort = dir_abort,
	.obj_open = dir_obj_open,
	.obj_close = dir_obj_close,
	.obj_map = dir_obj_map,
	.obj_read = dir_obj_read,
	.remove = dir_remove,
};
