/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The file pool (pool=file:DIR), a transport of rdma/pool.c: a directory,
 * one file per segment at DIR/SNAP/POLICY.seg.
 * A segment is written to a temporary in the same directory and renamed
 * over its name on commit, so a reader sees the old bytes or the new ones,
 * never a mix; an open segment keeps its inode even if replaced.
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

#include "tier.h"
#include "rdma/pool-int.h"
#include "util/err.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

struct file_pool {
	char dir[4096];
};

static unsigned tmp_seq;

static void file_close(struct pool *p)
{
	free(p->priv);
}

static const char *file_dir(struct pool *p)
{
	return ((struct file_pool *)p->priv)->dir;
}

static int file_create(struct pool *p, struct pool_wseg *w)
{
	const char *dir = file_dir(p);
	const char *slash = strchr(w->name, '/');
	int rc, n;

	rc = pool_seg_path(dir, w->name, w->path, sizeof(w->path));
	if (rc)
		return rc;
	rc = pool_seg_mkdir(dir, w->name);
	if (rc)
		return tier_err_ctx(rc, "pool %s", p->uri);
	/* Names never start with '.', so ".POLICY.seg.tmp.*" is ours alone. */
	n = snprintf(w->tmp, sizeof(w->tmp), "%s/%.*s/.%s.seg.tmp.%d.%u", dir,
		     (int)(slash - w->name), w->name, slash + 1, (int)getpid(),
		     __atomic_fetch_add(&tmp_seq, 1, __ATOMIC_RELAXED));
	if (n < 0 || (size_t)n >= sizeof(w->tmp))
		return tier_err(-ENAMETOOLONG, "pool %s: segment '%s': path too long",
				p->uri, w->name);
	w->fd = open(w->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	/* another policy's place removed SNAP/ with its last segment */
	for (int tries = 0; w->fd < 0 && errno == ENOENT && tries < 100 &&
			    pool_seg_mkdir(dir, w->name) == 0; tries++)
		w->fd = open(w->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			     0644);
	if (w->fd < 0)
		return tier_err(-errno, "pool %s: %s: %m", p->uri, w->tmp);
	if (ftruncate(w->fd, w->size) < 0) {
		rc = tier_err(-errno, "pool %s: segment '%s': size %llu: %m",
			      p->uri, w->name, (unsigned long long)w->size);
		close(w->fd);
		unlink(w->tmp);
		return rc;
	}
	return 0;
}

static int file_write(struct pool_wseg *w, uint64_t off, const void *buf,
		      size_t len)
{
	const char *b = buf;

	while (len) {
		ssize_t n = pwrite(w->fd, b, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tier_err(-errno, "pool %s: segment '%s': write at offset %llu: %m",
					w->pool->uri, w->name,
					(unsigned long long)off);
		if (n == 0)
			return tier_err(-ENOSPC, "pool %s: segment '%s': short write at offset %llu",
					w->pool->uri, w->name,
					(unsigned long long)off);
		b += n;
		off += n;
		len -= n;
	}
	return 0;
}

static void file_abort(struct pool_wseg *w)
{
	close(w->fd);
	unlink(w->tmp);
}

static int file_commit(struct pool_wseg *w)
{
	int rc;

	if (fsync(w->fd) < 0) {
		rc = tier_err(-errno, "pool %s: segment '%s': fsync: %m",
			      w->pool->uri, w->name);
		file_abort(w);
		return rc;
	}
	if (rename(w->tmp, w->path) < 0) {
		rc = tier_err(-errno, "pool %s: segment '%s': rename to %s: %m",
			      w->pool->uri, w->name, w->path);
		file_abort(w);
		return rc;
	}
	close(w->fd);
	return pool_sync_parent(w->path);
}

static int file_seg_open(struct pool *p, struct pool_seg *s)
{
	char path[4096 + 16];
	struct stat st;
	int rc;

	rc = pool_seg_path(file_dir(p), s->name, path, sizeof(path));
	if (rc)
		return rc;
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0 && errno == ENOENT)
		return tier_err(-ENOENT, "pool %s: segment '%s': no such segment",
				p->uri, s->name);
	if (s->fd < 0)
		return tier_err(-errno, "pool %s: segment '%s': %s: %m",
				p->uri, s->name, path);
	if (fstat(s->fd, &st) < 0) {
		rc = tier_err(-errno, "pool %s: segment '%s': %s: %m",
			      p->uri, s->name, path);
		close(s->fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(s->fd);
		return tier_err(-EINVAL, "pool %s: segment '%s': %s: not a regular file",
				p->uri, s->name, path);
	}
	s->size = st.st_size;
	return 0;
}

static void file_seg_close(struct pool_seg *s)
{
	if (s->map)
		munmap(s->map, s->size);
	close(s->fd);
}

/*
 * The segment file mapped once, shared and read-only: page cache pages
 * the caller reads in place. A segment is replaced by rename, never
 * rewritten, so the mapping keeps the bytes it was opened with; a file
 * truncated behind the store's back would SIGBUS a reader, which is why
 * every view is populated first: MADV_POPULATE_READ reports a missing
 * page as an error instead.
 */
static int file_view(struct pool_seg *s, uint64_t off, size_t len,
		     const void **ret)
{
	uint64_t a = off & ~(uint64_t)(TIER_PAGE_SIZE - 1);
	void *m;

	if (!s->map) {
		m = mmap(NULL, s->size, PROT_READ, MAP_SHARED, s->fd, 0);
		if (m == MAP_FAILED)
			return tier_err(-errno, "pool %s: segment '%s': mmap: %m",
					s->pool->uri, s->name);
		s->map = m;
	}
	while (madvise((char *)s->map + a, off + len - a,
		       MADV_POPULATE_READ) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EINVAL)	/* before Linux 5.14: read it instead */
			return -EOPNOTSUPP;
		return tier_err(errno == EFAULT ? -EIO : -errno,
				"pool %s: segment '%s': bytes [%llu, +%zu): %s",
				s->pool->uri, s->name, (unsigned long long)off,
				len, errno == EFAULT ? "the file no longer holds them" :
				strerror(errno));
	}
	*ret = (const char *)s->map + off;
	return 0;
}

static int file_readv(struct pool_seg *s, const struct pool_iov *iov,
		      unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		char *b = iov[i].buf;
		uint64_t off = iov[i].off;
		size_t len = iov[i].len;

		while (len) {
			ssize_t r = pread(s->fd, b, len, off);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return tier_err(-errno, "pool %s: segment '%s': read at offset %llu: %m",
						s->pool->uri, s->name,
						(unsigned long long)off);
			/* Someone truncated the file under us. */
			if (r == 0)
				return tier_err(-EIO, "pool %s: segment '%s': file shorter than %llu bytes",
						s->pool->uri, s->name,
						(unsigned long long)s->size);
			b += r;
			off += r;
			len -= r;
		}
	}
	return 0;
}

/* file_readv for a signal handler: pread is async-signal-safe, the
 * message is not, so the reason goes to @why. */
static int file_readv_sigsafe(struct pool_seg *s, const struct pool_iov *iov,
			      unsigned n, struct sigstr *why)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		char *b = iov[i].buf;
		uint64_t off = iov[i].off;
		size_t len = iov[i].len;

		while (len) {
			ssize_t r = pread(s->fd, b, len, off);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				int rc = r < 0 ? -errno : -EIO;

				ss_str(why, "read at offset ");
				ss_u64(why, off);
				ss_str(why, ": ");
				ss_str(why, r < 0 ? ss_errno_str(rc) ?
				       ss_errno_str(rc) : "read failed" :
				       "file shorter than its size");
				return rc;
			}
			b += r;
			off += r;
			len -= r;
		}
	}
	return 0;
}

/*
 * The temporaries of segment @path (".POLICY.seg.tmp.PID.SEQ" beside it)
 * a writer killed before its commit left: a name has one writer (a
 * plan's generation is in it), so once it is gone they are nobody's.
 */
static int remove_temps(const char *path)
{
	const char *base = strrchr(path, '/') + 1;
	char dir[4096 + 16], prefix[300];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%.*s", (int)(base - 1 - path), path);
	snprintf(prefix, sizeof(prefix), ".%s.tmp.", base);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)) &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	closedir(d);
	return n;
}

static int file_remove(struct pool *p, const char *name)
{
	char path[4096 + 16];
	char *slash;
	int rc, temps;

	rc = pool_seg_path(file_dir(p), name, path, sizeof(path));
	if (rc)
		return rc;
	temps = remove_temps(path);
	if (unlink(path) < 0 && (errno != ENOENT || !temps)) {
		if (errno == ENOENT)
			return tier_err(-ENOENT, "pool %s: segment '%s': no such segment",
					p->uri, name);
		return tier_err(-errno, "pool %s: segment '%s': %s: %m",
				p->uri, name, path);
	}
	rc = pool_sync_parent(path);
	/* Drops SNAP/ once its last policy is gone; fails harmlessly if not. */
	slash = strrchr(path, '/');
	*slash = '\0';
	rmdir(path);
	return rc;
}

/* DIR/SNAP/POLICY.seg; temporaries start with a dot. */
static int file_list(struct pool *p, const char *snap,
		     int (*fn)(const char *name, void *arg), void *arg)
{
	char path[4096 + 16], name[POOL_NAME_MAX + 1];
	struct dirent *de;
	DIR *d;
	int rc = 0, n = 0;

	if (snprintf(path, sizeof(path), "%s/%s", file_dir(p), snap) >=
	    (int)sizeof(path))
		return tier_err(-ENAMETOOLONG, "pool %s: path too long", p->uri);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 :
		       tier_err(-errno, "pool %s: %s: %m", p->uri, path);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.' || len < 5 ||
		    strcmp(de->d_name + len - 4, ".seg") ||
		    snprintf(name, sizeof(name), "%s/%.*s", snap,
			     (int)(len - 4), de->d_name) >= (int)sizeof(name) ||
		    pool_name_check(name))
			continue;
		rc = fn(name, arg);
		if (rc)
			break;
		n++;
	}
	closedir(d);
	return rc ? rc : n;
}

static const struct pool_ops file_ops = {
	.close = file_close,
	.create = file_create,
	.write = file_write,
	.commit = file_commit,
	.abort = file_abort,
	.seg_open = file_seg_open,
	.seg_close = file_seg_close,
	.readv = file_readv,
	.readv_sigsafe = file_readv_sigsafe,
	.view = file_view,
	.remove = file_remove,
	.list = file_list,
};

int pool_file_open(struct pool *p, const char *dir)
{
	struct file_pool *fp;
	struct stat st;

	if (!dir[0])
		return tier_err(-EINVAL, "pool file: empty path");
	/* The default pool lives in the store and may not exist yet. */
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return tier_err(-errno, "pool %s: %m", p->uri);
	if (stat(dir, &st) < 0)
		return tier_err(-errno, "pool %s: %m", p->uri);
	if (!S_ISDIR(st.st_mode))
		return tier_err(-ENOTDIR, "pool %s: not a directory", p->uri);
	fp = calloc(1, sizeof(*fp));
	if (!fp)
		return tier_err(-ENOMEM, "out of memory");
	if (snprintf(fp->dir, sizeof(fp->dir), "%s", dir) >= (int)sizeof(fp->dir)) {
		free(fp);
		return tier_err(-ENAMETOOLONG, "pool %s: path too long", p->uri);
	}
	p->ops = &file_ops;
	p->priv = fp;
	return 0;
}
