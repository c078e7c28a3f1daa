/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whole-file I/O (util/file.h): full reads and writes that retry short
 * ones, write-then-rename, mkdir -p. Used by the store, the dir and numa
 * tiers and tierctl; errors name the path. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util/err.h"
#include "util/file.h"

/* fsync the directory holding @path, so a rename into it is durable. */
static int sync_parent(const char *path)
{
	char dir[4096];
	char *slash;
	int fd, rc = 0;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return tier_err(-ENAMETOOLONG, "%s: path too long", path);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return tier_err(-errno, "%s: %m", dir);
	/* Some filesystems refuse fsync on a directory; nothing to lose. */
	if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS)
		rc = tier_err(-errno, "%s: fsync: %m", dir);
	close(fd);
	return rc;
}

static unsigned tmp_seq;

int atomic_open(struct atomic_file *af, const char *path)
{
	int tries;

	af->fd = -1;
	if (snprintf(af->path, sizeof(af->path), "%s", path) >=
	    (int)sizeof(af->path))
		return tier_err(-ENAMETOOLONG, "%s: path too long", path);
	/* unique among the threads and calls of this process: a second
	 * writer of the same path must not take over the first's file */
	snprintf(af->tmp, sizeof(af->tmp), "%s.tmp.%d.%u", path, (int)getpid(),
		 __atomic_fetch_add(&tmp_seq, 1, __ATOMIC_RELAXED));

	/* A leftover of a crashed process that had our pid is garbage. */
	for (tries = 0; tries < 2; tries++) {
		af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			      0644);
		if (af->fd >= 0)
			return 0;
		if (errno != EEXIST || unlink(af->tmp) < 0)
			break;
	}
	return tier_err(-errno, "%s: %m", af->tmp);
}

int atomic_commit(struct atomic_file *af)
{
	int rc;

	if (fsync(af->fd) < 0) {
		rc = tier_err(-errno, "%s: fsync: %m", af->path);
		goto err;
	}
	if (close(af->fd) < 0) {
		af->fd = -1;
		rc = tier_err(-errno, "%s: close: %m", af->path);
		goto err;
	}
	af->fd = -1;
	if (rename(af->tmp, af->path) < 0) {
		rc = tier_err(-errno, "%s: rename: %m", af->path);
		goto err;
	}
	return sync_parent(af->path);

err:
	atomic_abort(af);
	return rc;
}

void atomic_abort(struct atomic_file *af)
{
	if (af->fd >= 0)
		close(af->fd);
	af->fd = -1;
	unlink(af->tmp);
}

int write_full(int fd, const void *buf, size_t len, const char *path)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tier_err(-errno, "%s: write: %m", path);
		if (n == 0)
			return tier_err(-ENOSPC, "%s: short write: no space left",
					path);
		p += n;
		len -= n;
	}
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off,
		const char *path)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tier_err(-errno, "%s: write at 0x%llx: %m", path,
					(unsigned long long)off);
		if (n == 0)
			return tier_err(-ENOSPC,
					"%s: short write at 0x%llx: no space left",
					path, (unsigned long long)off);
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

int pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path)
{
	char *p = buf;
	size_t want = len;
	ssize_t n;

	while (len) {
		n = pread(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tier_err(-errno, "%s: read at 0x%llx: %m", path,
					(unsigned long long)off);
		if (n == 0)
			return tier_err(-EBADMSG,
					"%s: truncated (read %zu of %zu bytes at 0x%llx)",
					path, want - len, want,
					(unsigned long long)(off - (want - len)));
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

int read_file(const char *path, void **ret, size_t *ret_len)
{
	size_t cap, len = 0;
	struct stat st;
	char *buf, *nbuf;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tier_err(-errno, "%s: %m", path);
	if (fstat(fd, &st) < 0) {
		rc = tier_err(-errno, "%s: %m", path);
		goto err_close;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = tier_err(-EISDIR, "%s: is a directory", path);
		goto err_close;
	}
	/* st_size is a hint only: /proc files say 0, files may grow. */
	cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
	buf = malloc(cap);
	if (!buf) {
		rc = tier_err(-ENOMEM, "%s: out of memory", path);
		goto err_close;
	}
	for (;;) {
		if (len + 1 >= cap) {
			if (cap > SIZE_MAX / 2) {
				rc = tier_err(-EFBIG, "%s: too large", path);
				goto err_free;
			}
			nbuf = realloc(buf, cap * 2);
			if (!nbuf) {
				rc = tier_err(-ENOMEM, "%s: out of memory",
					      path);
				goto err_free;
			}
			buf = nbuf;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = tier_err(-errno, "%s: read: %m", path);
			goto err_free;
		}
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	close(fd);
	*ret = buf;
	*ret_len = len;
	return 0;

err_free:
	free(buf);
err_close:
	close(fd);
	return rc;
}

int write_file_atomic(const char *path, const void *buf, size_t len)
{
	struct atomic_file af;
	int rc;

	rc = atomic_open(&af, path);
	if (rc)
		return rc;
	rc = write_full(af.fd, buf, len, path);
	if (rc) {
		atomic_abort(&af);
		return rc;
	}
	return atomic_commit(&af);
}

int mkdir_p(const char *path, unsigned mode)
{
	char buf[4096];
	struct stat st;
	size_t i, len;

	len = strlen(path);
	if (len == 0)
		return tier_err(-EINVAL, "mkdir: empty path");
	if (len >= sizeof(buf))
		return tier_err(-ENAMETOOLONG, "%s: path too long", path);
	memcpy(buf, path, len + 1);

	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		if (buf[i - 1] == '/')
			continue;	/* "a//b" */
		buf[i] = '\0';
		if (mkdir(buf, mode) < 0) {
			if (errno != EEXIST)
				return tier_err(-errno, "%s: %m", buf);
			if (stat(buf, &st) < 0)
				return tier_err(-errno, "%s: %m", buf);
			if (!S_ISDIR(st.st_mode))
				return tier_err(-ENOTDIR, "%s: not a directory",
						buf);
		}
		if (i < len)
			buf[i] = '/';
	}
	return 0;
}

int fs_free_bytes(const char *path, uint64_t *ret)
{
	char buf[4096], *slash;
	struct statvfs sv;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return tier_err(-ENAMETOOLONG, "%s: path too long", path);
	while (statvfs(buf, &sv) < 0) {
		if (errno != ENOENT)
			return tier_err(-errno, "%s: %m", buf);
		slash = strrchr(buf, '/');
		if (!slash)
			return tier_err(-ENOENT, "%s: %m", path);
		if (slash == buf)
			slash[1] = 0;
		else
			*slash = 0;
	}
	*ret = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}
