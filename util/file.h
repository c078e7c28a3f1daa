/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_UTIL_FILE_H
#define TIER_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Write-then-rename: a file appears whole under its final name or not at
 * all. atomic_open() creates "PATH.tmp.PID" (O_EXCL); atomic_commit()
 * fsyncs it, renames it over PATH and fsyncs the directory;
 * atomic_abort() unlinks the temporary. Errors name @path.
 */
struct atomic_file {
	int fd;
	char path[4096];
	char tmp[4096 + 32];
};

int atomic_open(struct atomic_file *af, const char *path);
int atomic_commit(struct atomic_file *af);
void atomic_abort(struct atomic_file *af);

/* Whole-file helpers; errors name @path. A short write (full disk) is
 * -ENOSPC, a short read of an expected length -EBADMSG ("truncated"). */
int write_full(int fd, const void *buf, size_t len, const char *path);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off,
		const char *path);
int pread_full(int fd, void *buf, size_t len, uint64_t off, const char *path);
/* Reads a whole file into a malloc()ed buffer (NUL-terminated). */
int read_file(const char *path, void **ret, size_t *ret_len);
/* Writes @len bytes to @path atomically. */
int write_file_atomic(const char *path, const void *buf, size_t len);
/* mkdir -p; errors name the component that failed. */
int mkdir_p(const char *path, unsigned mode);
/* Bytes an unprivileged writer may still use on the filesystem of @path,
 * or of its nearest existing parent (a directory not made yet). */
int fs_free_bytes(const char *path, uint64_t *ret);

#endif
