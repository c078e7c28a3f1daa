/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The store: a directory of snapshots (STORE/snapshots/NAME), each a
 * manifest, a sparse copy of the image, traces and plans. Only whole,
 * checked files are ever visible under their final names (import and
 * util/file.c write then rename), so reading needs no locks. Its public
 * tier_store_* and tier_snap_* calls serve tierctl, the QEMU adapter and
 * the restorer.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/fmt.h"
#include "store/gen.h"
#include "store/internal.h"
#include "store/snap.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/file.h"

const char *tier_version(void)
{
	return TIER_VERSION;
}

/* ---------------------------------------------------------- helpers */

int snap_check_name(const char *what, const char *name)
{
	if (!name)
		return tier_err(-EINVAL, "%s name missing", what);
	if (!fmt_name_ok(name))
		return tier_err(-EINVAL,
				"bad %s name \"%.80s\": use 1..63 of [A-Za-z0-9._-], not starting with '.'",
				what, name);
	return 0;
}

int store_sync_dir(const char *path)
{
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return tier_err(-errno, "%s: %m", path);
	if (fsync(fd) < 0 && errno != EINVAL && errno != EROFS)
		rc = tier_err(-errno, "%s: fsync: %m", path);
	close(fd);
	return rc;
}

static int rmtree_at(int dfd, const char *name, const char *top)
{
	struct dirent *de;
	DIR *dir;
	int fd, rc = 0;

	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return tier_err(-errno, "%s: remove %s: %m", top, name);

	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return tier_err(-errno, "%s: open %s: %m", top, name);
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return tier_err(-errno, "%s: %m", top);
	}
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		rc = rmtree_at(dirfd(dir), de->d_name, top);
		if (rc)
			break;
	}
	closedir(dir);
	if (!rc && unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = tier_err(-errno, "%s: remove %s: %m", top, name);
	return rc;
}

int store_rmtree(const char *path)
{
	return rmtree_at(AT_FDCWD, path, path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Calls @fn with every valid name in @path whose entry ends in @suffix
 * (the suffix stripped), sorted. A missing directory has no names.
 */
static int foreach_name(const char *path, const char *suffix, int want_dir,
			int (*fn)(const char *name, void *arg), void *arg)
{
	size_t n = 0, cap = 0, i, slen = strlen(suffix), len;
	char **names = NULL, **nn, *name;
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int rc = 0;

	dir = opendir(path);
	if (!dir) {
		if (errno == ENOENT)
			return 0;
		return tier_err(-errno, "%s: %m", path);
	}
	while ((errno = 0, de = readdir(dir))) {
		len = strlen(de->d_name);
		if (len <= slen || strcmp(de->d_name + len - slen, suffix))
			continue;
		if (want_dir && (fstatat(dirfd(dir), de->d_name, &st, 0) < 0 ||
				 !S_ISDIR(st.st_mode)))
			continue;
		name = strndup(de->d_name, len - slen);
		if (!name) {
			rc = tier_err(-ENOMEM, "out of memory");
			goto out;
		}
		if (!fmt_name_ok(name)) {
			free(name);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				free(name);
				rc = tier_err(-ENOMEM, "out of memory");
				goto out;
			}
			names = nn;
		}
		names[n++] = name;
	}
	if (errno) {
		rc = tier_err(-errno, "%s: %m", path);
		goto out;
	}
	closedir(dir);
	dir = NULL;

	qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n && !rc; i++)
		rc = fn(names[i], arg);
out:
	if (dir)
		closedir(dir);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* ------------------------------------------------------------- store */

int tier_store_open(const char *path, struct tier_store **ret)
{
	struct tier_store *store;
	char snaps[4096 + 16];
	const char *env, *home;
	int rc, n;

	store = calloc(1, sizeof(*store));
	if (!store)
		return tier_err(-ENOMEM, "out of memory");

	if (path && *path)
		n = snprintf(store->path, sizeof(store->path), "%s", path);
	else if ((env = getenv("TIER_STORE")) && *env)
		n = snprintf(store->path, sizeof(store->path), "%s", env);
	else if (geteuid() == 0)
		n = snprintf(store->path, sizeof(store->path), "/var/lib/tier");
	else if ((env = getenv("XDG_DATA_HOME")) && *env)
		n = snprintf(store->path, sizeof(store->path), "%s/tier", env);
	else if ((home = getenv("HOME")) && *home)
		n = snprintf(store->path, sizeof(store->path),
			     "%s/.local/share/tier", home);
	else {
		rc = tier_err(-EINVAL,
			      "no store: set TIER_STORE or HOME, or pass --store");
		goto err;
	}
	if (n < 0 || n >= (int)sizeof(store->path) - 128) {
		rc = tier_err(-ENAMETOOLONG, "store path too long");
		goto err;
	}
	/* "dir/" and "dir" are the same store; keep messages tidy. */
	while (n > 1 && store->path[n - 1] == '/')
		store->path[--n] = '\0';

	snprintf(snaps, sizeof(snaps), "%s/snapshots", store->path);
	rc = mkdir_p(snaps, 0755);
	if (rc) {
		tier_err_ctx(rc, "store %s", store->path);
		goto err;
	}
	*ret = store;
	return 0;

err:
	free(store);
	return rc;
}

void tier_store_close(struct tier_store *store)
{
	free(store);
}

const char *tier_store_path(const struct tier_store *store)
{
	return store->path;
}

int tier_store_foreach(struct tier_store *store,
		       int (*fn)(const char *name, void *arg), void *arg)
{
	char snaps[4096 + 16];

	snprintf(snaps, sizeof(snaps), "%s/snapshots", store->path);
	return foreach_name(snaps, "", 1, fn, arg);
}

/*
 * What the snapshot's plans wrote to CXL tiers and pools goes first, plan
 * by plan through its intent, so that a tier that does not answer leaves
 * a record the next rm or gc finds, not orphans no one knows of. Only
 * the manifest-free part of the snapshot is used: a snapshot whose
 * manifest is damaged is still removed with its data.
 */
static int drop_tier_data(struct tier_store *store, const char *name,
			  const char *dir)
{
	struct tier_snap s = { .store = store, .image_fd = -1 };
	int rc = 0;

	if (strlen(dir) >= sizeof(s.dir))
		return tier_err(-ENAMETOOLONG, "%s: path too long", dir);
	snprintf(s.name, sizeof(s.name), "%s", name);
	memcpy(s.dir, dir, strlen(dir) + 1);
	for (int p = 0; p < TIER_POLICY_MAX && !rc; p++) {
		int fd;

		rc = gen_lock(&s, p, false, &fd);
		if (rc)
			break;
		rc = gen_drop_all(&s, p);
		close(fd);
	}
	if (rc)
		return tier_err_ctx(rc, "snapshot %s: its tier data is not all removed, so it stays (its plans gone; tierctl rm or gc again retries)",
				    name);
	return 0;
}

int tier_snap_remove(struct tier_store *store, const char *name)
{
	char dir[4096 + 96], gone[4096 + 128], snaps[4096 + 16];
	struct stat st;
	int rc;

	rc = snap_check_name("snapshot", name);
	if (rc)
		return rc;
	snprintf(snaps, sizeof(snaps), "%s/snapshots", store->path);
	snprintf(dir, sizeof(dir), "%s/%s", snaps, name);
	snprintf(gone, sizeof(gone), "%s/.%s.rm.%d", snaps, name, (int)getpid());

	if (lstat(dir, &st) < 0) {
		if (errno == ENOENT)
			return tier_err(-ENOENT, "snapshot %s: not found in %s",
					name, store->path);
		return tier_err(-errno, "%s: %m", dir);
	}
	rc = drop_tier_data(store, name, dir);
	if (rc)
		return rc;
	/* Out of sight in one step, then deleted at leisure: a reader sees
	 * the whole snapshot or none of it. Removals of it killed before
	 * are finished first. */
	store_rmtree(gone);
	gc_snapshot_dirs(store, name, NULL, NULL);
	if (rename(dir, gone) < 0)
		return tier_err(-errno, "snapshot %s: rename: %m", name);
	rc = store_sync_dir(snaps);
	if (rc)
		return rc;
	return store_rmtree(gone);
}

/* --------------------------------------------------------- snapshots */

void snap_trace_path(const struct tier_snap *s, const char *name,
		     char *buf, size_t len)
{
	snprintf(buf, len, "%s/traces/%s.trace", s->dir, name);
}

void snap_plan_path(const struct tier_snap *s, enum tier_policy policy,
		    char *buf, size_t len)
{
	const char *p = tier_policy_name(policy);

	snprintf(buf, len, "%s/plans/%s.plan", s->dir, p ? p : "unknown");
}

void snap_local_path(const struct tier_snap *s, enum tier_policy policy,
		     uint64_t gen, char *buf, size_t len)
{
	const char *p = tier_policy_name(policy);

	if (gen)
		snprintf(buf, len, "%s/local/%s.%016" PRIx64 ".data", s->dir,
			 p ? p : "unknown", gen);
	else
		snprintf(buf, len, "%s/local/%s.data", s->dir,
			 p ? p : "unknown");
}

void snap_object_name(const struct tier_snap *s, enum tier_policy policy,
		      uint64_t gen, char *buf, size_t len)
{
	const char *p = tier_policy_name(policy);

	if (gen)
		snprintf(buf, len, "%s/%s.%016" PRIx64, s->name,
			 p ? p : "unknown", gen);
	else
		snprintf(buf, len, "%s/%s", s->name, p ? p : "unknown");
}

void snap_default_pool(const struct tier_snap *s, char *buf, size_t len)
{
	snprintf(buf, len, "pool=file:%s/pool", s->store->path);
}

int snap_image_fd(struct tier_snap *s)
{
	if (s->image_fd >= 0)
		return s->image_fd;
	s->image_fd = open(s->image, O_RDONLY | O_CLOEXEC);
	if (s->image_fd < 0)
		return tier_err(-errno, "snapshot %s: %s: %m", s->name,
				s->image);
	return s->image_fd;
}

int tier_snap_open(struct tier_store *store, const char *name,
		   struct tier_snap **ret)
{
	char path[4096 + 16], what[96];
	struct tier_snap *s;
	struct stat st;
	size_t len;
	void *buf;
	int rc;

	rc = snap_check_name("snapshot", name);
	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s)
		return tier_err(-ENOMEM, "out of memory");
	s->store = store;
	s->image_fd = -1;
	snprintf(s->name, sizeof(s->name), "%s", name);
	if (snprintf(s->dir, sizeof(s->dir), "%s/snapshots/%s", store->path,
		     name) >= (int)sizeof(s->dir) - 64 ||
	    snprintf(s->image, sizeof(s->image), "%s/image", s->dir) >=
	    (int)sizeof(s->image)) {
		rc = tier_err(-ENAMETOOLONG, "snapshot %s: path too long", name);
		goto err;
	}
	snprintf(path, sizeof(path), "%s/manifest", s->dir);
	snprintf(what, sizeof(what), "snapshot %s", name);

	rc = read_file(path, &buf, &len);
	if (rc == -ENOENT) {
		rc = tier_err(-ENOENT, "snapshot %s: not found in %s", name,
			      store->path);
		goto err;
	}
	if (rc)
		goto err;
	rc = manifest_decode(buf, len, what, s);
	free(buf);
	if (rc)
		goto err;
	if (strcmp(s->name, name)) {
		rc = tier_err(-EBADMSG,
			      "snapshot %s: manifest belongs to snapshot %s",
			      name, s->name);
		goto err;
	}

	rc = snap_image_fd(s);
	if (rc < 0)
		goto err;
	if (fstat(s->image_fd, &st) < 0) {
		rc = tier_err(-errno, "snapshot %s: %s: %m", name, s->image);
		goto err;
	}
	if ((uint64_t)st.st_size < s->size) {
		rc = tier_err(-EBADMSG,
			      "snapshot %s: image truncated (%llu of %llu bytes)",
			      name, (unsigned long long)st.st_size,
			      (unsigned long long)s->size);
		goto err;
	}
	if ((uint64_t)st.st_size > s->size) {
		rc = tier_err(-EBADMSG,
			      "snapshot %s: image has %llu bytes, manifest says %llu",
			      name, (unsigned long long)st.st_size,
			      (unsigned long long)s->size);
		goto err;
	}
	*ret = s;
	return 0;

err:
	tier_snap_close(s);
	return rc;
}

void tier_snap_close(struct tier_snap *snap)
{
	if (!snap)
		return;
	if (snap->image_fd >= 0)
		close(snap->image_fd);
	free(snap->regions);
	free(snap->zero);
	free(snap->csum);
	free(snap);
}

const char *tier_snap_name(const struct tier_snap *snap)
{
	return snap->name;
}

uint64_t tier_snap_size(const struct tier_snap *snap)
{
	return snap->size;
}

uint64_t tier_snap_npages(const struct tier_snap *snap)
{
	return snap->npages;
}

uint64_t tier_snap_nzero(const struct tier_snap *snap)
{
	return snap->nzero;
}

uint64_t tier_snap_created(const struct tier_snap *snap)
{
	return snap->created_ns;
}

unsigned tier_snap_nregions(const struct tier_snap *snap)
{
	return snap->nregions;
}

const struct tier_region *tier_snap_region(const struct tier_snap *snap,
					   unsigned i)
{
	return i < snap->nregions ? &snap->regions[i] : NULL;
}

int tier_snap_verify_page(const struct tier_snap *snap, uint64_t page,
			  const void *buf)
{
	if (page >= snap->npages)
		return tier_err(-ERANGE,
				"snapshot %s: page %llu past the end (%llu pages)",
				snap->name, (unsigned long long)page,
				(unsigned long long)snap->npages);
	if (tier_csum(buf, TIER_PAGE_SIZE) != snap->csum[page])
		return tier_err(-EBADMSG,
				"snapshot %s: page %llu (offset 0x%llx): checksum mismatch",
				snap->name, (unsigned long long)page,
				(unsigned long long)(page << TIER_PAGE_SHIFT));
	return 0;
}

/* ------------------------------------------------------------ traces */

int tier_trace_foreach(struct tier_snap *snap,
		       int (*fn)(const char *name, void *arg), void *arg)
{
	char dir[4096 + 16];

	snprintf(dir, sizeof(dir), "%s/traces", snap->dir);
	return foreach_name(dir, ".trace", 0, fn, arg);
}
