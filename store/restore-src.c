/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The restorer's page sources: the image, a compact local file, the CXL
 * object and the pool segment a plan's extents name, opened once per
 * restore; reads from them, and the check of every fetched page against
 * the snapshot's checksums. Called by the prefetcher, the fault server
 * and the recorder (store/restore-int.h), whoever serves the pages.
 * Also the counters and fail-closed state every part reports to.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tier.h"
#include "cxl/cxl.h"
#include "rdma/pool.h"
#include "store/restore-int.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

uint64_t rs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Vectors of thousands: one realloc an entry would copy them over and
 * over. */
int rs_grow(void **v, size_t *cap, size_t n, size_t size)
{
	void *x;

	if (n < *cap)
		return 0;
	x = realloc(*v, (*cap ? 2 * *cap : 16) * size);
	if (!x)
		return -ENOMEM;
	*v = x;
	*cap = *cap ? 2 * *cap : 16;
	return 0;
}

/* ------------------------------------------------------------- fate */

void fate_init(struct rs_fate *f, const char *name)
{
	f->name = name;
	pthread_mutex_init(&f->stat_lock, NULL);
}

void fate_fini(struct rs_fate *f)
{
	pthread_mutex_destroy(&f->stat_lock);
}

int fate_fail(struct rs_fate *f, int rc)
{
	int expected = 0;

	if (!atomic_compare_exchange_strong(&f->error, &expected, rc))
		return rc;
	snprintf(f->errmsg, sizeof(f->errmsg), "%s", tier_errmsg());
	pthread_mutex_lock(&f->stat_lock);
	f->st.error = rc;
	pthread_mutex_unlock(&f->stat_lock);
	tier_log(TIER_LOG_ERR, "restore of %s: stopped serving: %s",
		 f->name, f->errmsg);
	if (f->notify)
		f->notify(f->owner, rc, f->errmsg);
	return rc;
}

/* ---------------------------------------------------------- sources */

const char *src_name(unsigned src)
{
	static const char *const names[] = {
		[PLACER_SRC_NONE] = "none", [PLACER_SRC_IMAGE] = "image",
		[PLACER_SRC_LOCAL] = "local file", [PLACER_SRC_CXL] = "cxl",
		[PLACER_SRC_POOL] = "pool",
	};

	return src < sizeof(names) / sizeof(names[0]) ? names[src] : "?";
}

/*
 * A stale pool segment or a corrupt CXL object or local file must not
 * reach the guest. The image's pages only where asked (a handler serving
 * another process, which cannot rely on mapped pages being checked at
 * all): the checksums were computed from them at import, and at ~1 us a
 * page XXH3 costs as much as the copy.
 */
int src_verify(const struct rs_src *s, uint64_t p, const void *buf,
	       uint64_t np, unsigned src)
{
	const struct tier_snap *snap = s->snap;
	uint64_t i;

	if (!snap->csum || (src == PLACER_SRC_IMAGE && !s->verify_image))
		return 0;
	for (i = 0; i < np; i++, p++)
		if (tier_csum((const char *)buf + i * PG, PG) != snap->csum[p])
			return tier_err(-EBADMSG,
					"snapshot %s: page %" PRIu64 " from the %s: checksum mismatch",
					snap->name, p, src_name(src));
	return 0;
}

int src_read(struct rs_src *s, struct pool_seg *seg, unsigned src,
	     uint64_t off, void *buf, size_t len)
{
	switch (src) {
	case PLACER_SRC_POOL: {
		struct pool_iov iov = { .off = off, .buf = buf, .len = len };

		if (!seg)
			return tier_err(-EINVAL, "restore: no pool segment open");
		return pool_readv(seg, &iov, 1);
	}
	case PLACER_SRC_CXL:
		return cxl_obj_read(s->cxl_obj, off, buf, len);
	case PLACER_SRC_IMAGE:
		return pread_full(s->image_fd, buf, len, off, s->snap->image);
	case PLACER_SRC_LOCAL:
		return pread_full(s->local_fd, buf, len, off, s->local_path);
	}
	return tier_err(-EINVAL, "restore: cannot read from source %u", src);
}

void src_count_bytes(struct tier_restore_stats *st, unsigned src, uint64_t n)
{
	if (src == PLACER_SRC_POOL)
		st->pool_bytes += n;
	else if (src == PLACER_SRC_IMAGE || src == PLACER_SRC_LOCAL)
		st->local_bytes += n;
}

int src_pool_connect(struct rs_src *s, struct pool **rp,
		     struct pool_seg **rseg)
{
	char why[512];
	int rc;

	rc = store_pool_open(s->snap->store, &s->pool_uri, rp);
	if (s->backed && rc) {
		/* the pool is down: its durable copy alone (the reason
		 * still in tier_errmsg() for pool_backed_open) */
		int frc = rc;

		snprintf(why, sizeof(why), "%s", tier_errmsg());
		tier_log(TIER_LOG_INFO, "restore of %s: reading the backing pool: %s",
			 s->snap->name, why);
		tier_err(frc, "%s", why);
		rc = pool_backed_open(NULL, &s->backing_uri, 0, rp);
		if (rc) {
			snprintf(why, sizeof(why), "%s", tier_errmsg());
			return tier_err(frc, "%s", why);
		}
	} else if (s->backed) {
		rc = pool_backed_open(*rp, &s->backing_uri, POOL_BACKED_LAZY,
				      rp);
	}
	if (rc)
		return rc;
	rc = pool_seg_open(*rp, s->obj_name, rseg);
	if (rc) {
		pool_close(*rp);
		*rp = NULL;
	}
	return rc;
}

void src_pool_disconnect(struct pool **p, struct pool_seg **seg)
{
	pool_seg_close(*seg);
	pool_close(*p);
	*seg = NULL;
	*p = NULL;
}

static int open_file(const char *path, int *ret_fd, uint64_t *ret_size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return tier_err(-errno, "%s: %m", path);
	if (fstat(fd, &st) < 0) {
		int rc = tier_err(-errno, "%s: %m", path);

		close(fd);
		return rc;
	}
	*ret_fd = fd;
	*ret_size = st.st_size;
	return 0;
}

/*
 * A plan's objects carry its generation in their names, and the next
 * place removes them once its own plan is in: a restore that loaded the
 * plan just before finds them gone (one that opened them keeps them).
 */
static int src_gone(const struct rs_src *s, const struct plan *plan,
		    int rc, const char *what)
{
	const char *pname = tier_policy_name(plan ? plan->hdr.policy : 0);

	if (rc != -ENOENT || !plan || !plan->hdr.generation)
		return rc;
	return tier_err(-ESTALE, "snapshot %s: plan %s generation %016" PRIx64
			": %s gone (replaced by a newer place); retry",
			s->snap->name, pname ? pname : "?",
			plan->hdr.generation, what);
}

void src_init(struct rs_src *s, struct tier_snap *snap)
{
	s->snap = snap;
	s->image_fd = -1;
	s->local_fd = -1;
	s->pidfd = -1;
}

int src_open(struct rs_src *s, enum tier_policy policy,
	     const struct placer_ext *ext, size_t n, const struct plan *plan,
	     const struct tier_restore_attr *attr)
{
	bool cxl = false, image = false, local = false, pool = false;
	char buf[512];
	const char *uri;
	struct tier_uri u;
	struct stat st;
	uint64_t gen;
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		cxl |= ext[i].source == PLACER_SRC_CXL;
		image |= ext[i].source == PLACER_SRC_IMAGE;
		local |= ext[i].source == PLACER_SRC_LOCAL;
		pool |= ext[i].source == PLACER_SRC_POOL;
	}
	gen = plan ? plan->hdr.generation : 0;
	snap_object_name(s->snap, policy, gen, s->obj_name, sizeof(s->obj_name));

	if (image) {
		rc = snap_image_fd(s->snap);
		if (rc < 0)
			return rc;
		s->image_fd = rc;
		if (fstat(s->image_fd, &st) < 0)
			return tier_err(-errno, "%s: %m", s->snap->image);
		s->image_size = st.st_size;
	}
	if (local) {
		snap_local_path(s->snap, policy, gen, s->local_path,
				sizeof(s->local_path));
		rc = open_file(s->local_path, &s->local_fd, &s->local_size);
		if (rc)
			return src_gone(s, plan, rc, "local file");
	}
	if (cxl) {
		uri = attr->cxl ? attr->cxl : plan && plan->hdr.cxl[0] ?
		      plan->hdr.cxl : CXL_DEFAULT_URI;
		rc = uri_parse(uri, URI_WANT_CXL, &u);
		if (rc)
			return rc;
		rc = cxl_open(&u, &s->cxl);
		if (rc)
			return rc;
		rc = cxl_obj_open(s->cxl, s->obj_name, &s->cxl_obj);
		if (rc)
			return src_gone(s, plan, rc, "CXL object");
	}
	if (pool) {
		const char *backing = "";

		if (plan && plan->hdr.pool[0]) {
			store_pool_split(plan->hdr.pool, buf, &backing);
			uri = buf;
		} else {
			snap_default_pool(s->snap, buf, sizeof(buf));
			uri = buf;
		}
		if (attr->pool)
			uri = attr->pool;
		if (attr->backing)
			backing = attr->backing;
		rc = uri_parse(uri, URI_WANT_POOL, &s->pool_uri);
		if (rc)
			return rc;
		if (attr->flags & TIER_RESTORE_POOL_FALLBACK) {
			if (!backing[0])
				return tier_err(-EINVAL, "snapshot %s: a fallback from pool %s asked for, and the plan names no backing pool (tierctl place --backing)",
						s->snap->name, uri);
			rc = uri_parse(backing, URI_WANT_POOL, &s->backing_uri);
			if (rc)
				return rc;
			s->backed = true;
		}
		/* one connection serves the prefetch and then the fault
		 * server; connecting here makes a dead pool fail the start
		 * rather than the first fault */
		rc = src_pool_connect(s, &s->pool, &s->seg);
		if (rc)
			return src_gone(s, plan, rc, "pool segment");
	}
	return 0;
}

void src_map_views(struct rs_src *s)
{
	unsigned src;

	for (src = PLACER_SRC_IMAGE; src <= PLACER_SRC_CXL; src++) {
		uint64_t size = 0;
		int fd = -1, own = 0;
		void *p;

		if (src == PLACER_SRC_IMAGE && s->image_fd >= 0) {
			fd = s->image_fd;
			size = s->image_size;
		} else if (src == PLACER_SRC_LOCAL && s->local_fd >= 0) {
			fd = s->local_fd;
			size = s->local_size;
		} else if (src == PLACER_SRC_CXL && s->cxl_obj &&
			   cxl_obj_share_fd(s->cxl_obj, &fd) == 0) {
			own = 1;
			size = cxl_obj_size(s->cxl_obj);
		}
		if (fd < 0 || !size)
			continue;
		p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
		if (own)
			close(fd);
		if (p == MAP_FAILED)
			continue;
		s->view[src] = p;
		s->view_len[src] = size;
	}
	/* for process_madvise on ourselves: one call a batch (Linux 6.13
	 * takes any advice; older ones one madvise a range) */
	s->pidfd = syscall(SYS_pidfd_open, getpid(), 0);
}

#define VIEW_IOV	256

int src_view(struct rs_src *s, unsigned src, const uint64_t *off,
	     const uint64_t *len, unsigned n, const void **ret)
{
	struct iovec iov[VIEW_IOV];
	uint64_t total = 0;
	unsigned i;
	ssize_t r;

	if (src > PLACER_SRC_POOL || !s->view[src] || n > VIEW_IOV)
		return -EOPNOTSUPP;
	for (i = 0; i < n; i++) {
		if (off[i] > s->view_len[src] || len[i] > s->view_len[src] - off[i])
			return -EOPNOTSUPP;
		iov[i] = (struct iovec){
			.iov_base = (void *)(s->view[src] + off[i]),
			.iov_len = len[i],
		};
		ret[i] = s->view[src] + off[i];
		total += len[i];
	}
	if (s->pidfd >= 0) {
		r = syscall(SYS_process_madvise, s->pidfd, iov, n,
			    MADV_POPULATE_READ, 0);
		return r >= 0 && (uint64_t)r == total ? 0 : -EOPNOTSUPP;
	}
	for (i = 0; i < n; i++)
		if (madvise(iov[i].iov_base, iov[i].iov_len,
			    MADV_POPULATE_READ) < 0)
			return -EOPNOTSUPP;
	return 0;
}

void src_close(struct rs_src *s)
{
	unsigned src;

	for (src = 0; src <= PLACER_SRC_POOL; src++)
		if (s->view[src])
			munmap((void *)s->view[src], s->view_len[src]);
	memset(s->view, 0, sizeof(s->view));
	if (s->pidfd >= 0)
		close(s->pidfd);
	s->pidfd = -1;
	if (s->seg || s->pool)
		src_pool_disconnect(&s->pool, &s->seg);
	cxl_obj_close(s->cxl_obj);
	cxl_close(s->cxl);
	s->cxl_obj = NULL;
	s->cxl = NULL;
	if (s->local_fd >= 0)
		close(s->local_fd);
	s->local_fd = -1;
}
