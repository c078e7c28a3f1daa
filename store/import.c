/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Import (tier_import(), for "tierctl import" and tests): one sequential
 * pass over a raw memory image that finds the zero
 * pages, checksums every page and writes a sparse copy into the store.
 * Everything lands in a temporary snapshot directory first, renamed into
 * place at the end, so a snapshot is either complete or absent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/fmt.h"
#include "store/internal.h"
#include "store/snap.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/file.h"

/* Large enough that syscall cost vanishes, small enough to stay in L2/L3
 * between the read and the scan. */
#define CHUNK		(4ULL << 20)
#define PROGRESS_EVERY	(64ULL << 20)

static int image_size(int fd, const char *image, uint64_t *ret)
{
	struct stat st;
	off_t end;

	if (fstat(fd, &st) < 0)
		return tier_err(-errno, "%s: %m", image);
	if (S_ISREG(st.st_mode)) {
		*ret = st.st_size;
		return 0;
	}
	if (!S_ISBLK(st.st_mode))
		return tier_err(-EINVAL, "%s: not a file or block device",
				image);
	end = lseek(fd, 0, SEEK_END);
	if (end < 0)
		return tier_err(-errno, "%s: %m", image);
	*ret = end;
	return 0;
}

struct scan {
	struct tier_snap *s;		/* sizes, bitmap, checksums */
	int in, out;
	const char *mem;		/* tier_import_mem(): the image itself */
	const char *image, *out_path;
	uint64_t zcsum;
	int no_seek_data;		/* lseek(SEEK_DATA) unsupported */
	const struct tier_import_attr *attr;
};

/* Writes the non-zero pages [first, end) of @buf, which holds the image
 * from page @first on, in as few pwrites as possible. */
static int write_runs(struct scan *sc, const char *buf, uint64_t first,
		      uint64_t end)
{
	uint64_t p, run = UINT64_MAX;
	int rc;

	for (p = first; p <= end; p++) {
		int nz = p < end && !snap_page_zero(sc->s, p);

		if (nz && run == UINT64_MAX)
			run = p;
		if (!nz && run != UINT64_MAX) {
			rc = pwrite_full(sc->out, buf + ((run - first) << TIER_PAGE_SHIFT),
					 (p - run) << TIER_PAGE_SHIFT,
					 run << TIER_PAGE_SHIFT, sc->out_path);
			if (rc)
				return rc;
			run = UINT64_MAX;
		}
	}
	return 0;
}

/* Marks pages [first, end) zero without reading them: a hole. */
static void mark_hole(struct tier_snap *s, uint64_t first, uint64_t end,
		      uint64_t zcsum)
{
	uint64_t i;

	for (i = first; i < end; i++) {
		s->zero[i / 64] |= 1ULL << (i % 64);
		s->csum[i] = zcsum;
	}
	s->nzero += end - first;
}

/*
 * The next data extent at or after @off, page aligned outward: holes of a
 * sparse image (untouched guest RAM on tmpfs, a sparse QEMU file) are zero
 * and need no reading. Where SEEK_DATA is unsupported, all is data.
 */
static void next_data(struct scan *sc, uint64_t off, uint64_t *ret_start,
		      uint64_t *ret_end)
{
	uint64_t size = sc->s->size;
	off_t d, h;

	*ret_start = off;
	*ret_end = size;
	if (sc->no_seek_data)
		return;
	d = lseek(sc->in, off, SEEK_DATA);
	if (d < 0) {
		if (errno == ENXIO)
			*ret_start = size;	/* only a hole is left */
		else
			sc->no_seek_data = 1;
		return;
	}
	h = lseek(sc->in, d, SEEK_HOLE);
	if (h < 0) {
		sc->no_seek_data = 1;
		return;
	}
	*ret_start = (uint64_t)d & ~(TIER_PAGE_SIZE - 1);
	if (*ret_start < off)
		*ret_start = off;
	*ret_end = ((uint64_t)h + TIER_PAGE_SIZE - 1) & ~(TIER_PAGE_SIZE - 1);
	if (*ret_end > size || *ret_end <= *ret_start)
		*ret_end = size;
}

static int scan_image(struct scan *sc)
{
	struct tier_snap *s = sc->s;
	uint64_t off = 0, len, p, first, next_progress = PROGRESS_EVERY;
	uint64_t dstart, dend;
	const char *data;
	char *buf = NULL;
	int rc = 0;

	if (sc->mem) {
		sc->no_seek_data = 1;	/* no holes to find in memory */
	} else {
		if (posix_memalign((void **)&buf, TIER_PAGE_SIZE, CHUNK))
			return tier_err(-ENOMEM, "out of memory");
		posix_fadvise(sc->in, 0, 0, POSIX_FADV_SEQUENTIAL);
	}

	dstart = dend = 0;
	while (off < s->size) {
		if (off >= dend) {
			next_data(sc, off, &dstart, &dend);
			mark_hole(s, off >> TIER_PAGE_SHIFT,
				  dstart >> TIER_PAGE_SHIFT, sc->zcsum);
			off = dstart;
			if (off >= s->size)
				break;
		}
		len = dend - off < CHUNK ? dend - off : CHUNK;
		data = sc->mem ? sc->mem + off : buf;
		if (!sc->mem) {
			rc = pread_full(sc->in, buf, len, off, sc->image);
			if (rc)
				break;
		}
		first = off >> TIER_PAGE_SHIFT;
		for (p = 0; p < len >> TIER_PAGE_SHIFT; p++) {
			const char *page = data + (p << TIER_PAGE_SHIFT);
			uint64_t i = first + p;

			if (tier_is_zero(page, TIER_PAGE_SIZE)) {
				s->zero[i / 64] |= 1ULL << (i % 64);
				s->csum[i] = sc->zcsum;
				s->nzero++;
			} else {
				s->csum[i] = tier_csum(page, TIER_PAGE_SIZE);
			}
		}
		rc = write_runs(sc, data, first,
				first + (len >> TIER_PAGE_SHIFT));
		if (rc)
			break;
		/*
		 * Start writing this chunk back now: the commit's fsync then
		 * waits for the disk while we scan, not after (on a store on
		 * disk, writeback is the bottleneck). Advisory: errors show up
		 * at the fsync.
		 */
		sync_file_range(sc->out, off, len, SYNC_FILE_RANGE_WRITE);
		off += len;
		if (sc->attr->progress && off >= next_progress &&
		    off < s->size) {
			sc->attr->progress(off, s->size, sc->attr->arg);
			next_progress = off + PROGRESS_EVERY;
		}
	}
	free(buf);
	return rc;
}

/* Moves the finished @tmp directory to @final. */
static int publish(const char *tmp, const char *final, const char *snaps,
		   const char *name, int replace)
{
	char old[4096 + 128];
	int rc, no_flags = 0;

	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_NOREPLACE) == 0)
		return store_sync_dir(snaps);
	if (errno == EINVAL || errno == ENOSYS) {
		/* No renameat2 flags here: a plain rename still refuses a
		 * non-empty target directory, which a snapshot always is. */
		no_flags = 1;
		if (rename(tmp, final) == 0)
			return store_sync_dir(snaps);
	}
	if (errno != EEXIST && errno != ENOTEMPTY)
		return tier_err(-errno, "snapshot %s: rename: %m", name);
	if (!replace)
		return tier_err(-EEXIST, "snapshot %s already exists", name);

	/* Replace: swap atomically where we can, so NAME never vanishes. */
	if (!no_flags &&
	    renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
		rc = store_sync_dir(snaps);
		if (!rc)
			rc = store_rmtree(tmp);		/* now the old one */
		return rc;
	}
	if (!no_flags && errno != EINVAL && errno != ENOSYS)
		return tier_err(-errno, "snapshot %s: rename: %m", name);
	snprintf(old, sizeof(old), "%s/.%s.old.%d", snaps, name, (int)getpid());
	store_rmtree(old);
	if (rename(final, old) < 0)
		return tier_err(-errno, "snapshot %s: rename: %m", name);
	if (rename(tmp, final) < 0) {
		rc = tier_err(-errno, "snapshot %s: rename: %m", name);
		rename(old, final);	/* put the old one back */
		return rc;
	}
	rc = store_sync_dir(snaps);
	if (!rc)
		rc = store_rmtree(old);
	return rc;
}

/*
 * Fills the new snapshot directory @tmp: the sparse copy of the image
 * (the scan of @in fills @s's zero bitmap and checksums as it goes), the
 * device state if there is one, then the manifest. The caller removes
 * @tmp on failure.
 */
static int write_snapshot(struct tier_snap *s, int in, const void *mem,
			  const char *image, const char *tmp,
			  const struct tier_import_attr *attr)
{
	static const uint64_t zero[TIER_PAGE_SIZE / 8];
	struct atomic_file af = { .fd = -1 };
	char path[4096 + 160];
	struct scan sc;
	size_t mlen;
	void *mbuf;
	int rc;

	snprintf(path, sizeof(path), "%s/image", tmp);
	rc = atomic_open(&af, path);
	if (rc)
		return rc;
	if (ftruncate(af.fd, s->size) < 0) {
		rc = tier_err(-errno, "%s: %m", path);
		goto err_abort;
	}
	sc = (struct scan){
		.s = s, .in = in, .mem = mem, .out = af.fd, .image = image,
		.out_path = path, .attr = attr,
		.zcsum = tier_csum(zero, sizeof(zero)),
	};
	rc = scan_image(&sc);
	if (rc)
		goto err_abort;
	rc = atomic_commit(&af);
	if (rc)
		return rc;

	if (attr->state) {
		rc = state_import(attr->state, tmp);
		if (rc)
			return rc;
	}

	rc = manifest_encode(s, &mbuf, &mlen);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/manifest", tmp);
	rc = write_file_atomic(path, mbuf, mlen);
	free(mbuf);
	return rc;

err_abort:
	atomic_abort(&af);
	return rc;
}

/*
 * The import of an image read from @in (or, when @mem is not NULL, read
 * from memory: @in is then -1) of @size bytes; @image names it in
 * messages. Does not close @in.
 */
static int import_image(struct tier_store *store, const char *name, int in,
			const void *mem, uint64_t size, const char *image,
			const struct tier_import_attr *attr)
{
	static const struct tier_import_attr no_attr;
	char snaps[4096 + 16], final[4096 + 96], tmp[4096 + 128];
	struct tier_region whole;
	struct tier_snap s = { .image_fd = -1 };
	struct stat st;
	int rc;

	if (!attr)
		attr = &no_attr;
	rc = snap_check_name("snapshot", name);
	if (rc)
		return rc;
	snprintf(snaps, sizeof(snaps), "%s/snapshots", store->path);
	snprintf(final, sizeof(final), "%s/%s", snaps, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.%d", snaps, name, (int)getpid());

	if (size == 0 || size % TIER_PAGE_SIZE)
		return tier_err(-EINVAL,
				"%s: size %llu is not a positive multiple of the page size (%llu)",
				image, (unsigned long long)size, TIER_PAGE_SIZE);
	whole = (struct tier_region){ 0, size };
	s.regions = (struct tier_region *)attr->regions;
	s.nregions = attr->nregions;
	if (!attr->nregions) {
		s.regions = &whole;
		s.nregions = 1;
	} else if (!attr->regions) {
		return tier_err(-EINVAL, "%s: %u regions but no table", image,
				attr->nregions);
	}
	rc = fmt_check_regions(s.regions, s.nregions, size, image, -EINVAL);
	if (rc)
		return rc;
	if (!(attr->flags & TIER_IMPORT_REPLACE) && lstat(final, &st) == 0)
		return tier_err(-EEXIST,
				"snapshot %s already exists in %s (replace it, or remove it first)",
				name, store->path);

	snprintf(s.name, sizeof(s.name), "%s", name);
	s.store = store;
	s.size = size;
	s.npages = size >> TIER_PAGE_SHIFT;
	s.zero = calloc((s.npages + 63) / 64, 8);
	s.csum = malloc(s.npages * 8);
	if (!s.zero || !s.csum) {
		rc = tier_err(-ENOMEM, "out of memory");
		goto err_free;
	}

	/* A temp dir of ours from an earlier crash (same pid) is garbage,
	 * and so are those of earlier imports of the name that were killed. */
	store_rmtree(tmp);
	gc_snapshot_dirs(store, name, NULL, NULL);
	if (mkdir(tmp, 0755) < 0) {
		rc = tier_err(-errno, "%s: %m", tmp);
		goto err_free;
	}

	rc = write_snapshot(&s, in, mem, image, tmp, attr);
	if (rc)
		goto err_rmdir;

	rc = publish(tmp, final, snaps, name, attr->flags & TIER_IMPORT_REPLACE);
	if (rc)
		goto err_rmdir;
	if (attr->progress)
		attr->progress(size, size, attr->arg);

	free(s.zero);
	free(s.csum);
	return 0;

err_rmdir:
	store_rmtree(tmp);
err_free:
	free(s.zero);
	free(s.csum);
	return rc;
}

int tier_import(struct tier_store *store, const char *name, const char *image,
		const struct tier_import_attr *attr)
{
	uint64_t size = 0;
	int in, rc;

	in = open(image, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return tier_err(-errno, "%s: %m", image);
	rc = image_size(in, image, &size);
	if (!rc)
		rc = import_image(store, name, in, NULL, size, image, attr);
	close(in);
	return rc;
}

int tier_import_fd(struct tier_store *store, const char *name, int fd,
		   const struct tier_import_attr *attr)
{
	char label[32];
	uint64_t size = 0;
	int rc;

	snprintf(label, sizeof(label), "image fd %d", fd);
	if (fd < 0)
		return tier_err(-EBADF, "%s: not an open file", label);
	rc = image_size(fd, label, &size);
	if (rc)
		return rc;
	return import_image(store, name, fd, NULL, size, label, attr);
}

int tier_import_mem(struct tier_store *store, const char *name,
		    const void *addr, size_t len,
		    const struct tier_import_attr *attr)
{
	char label[64];

	snprintf(label, sizeof(label), "image at %p", addr);
	if (!addr)
		return tier_err(-EINVAL, "%s: no memory", label);
	return import_image(store, name, -1, addr, len, label, attr);
}
