/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool server's segment table (rdma/server-int.h). Each segment is a
 * single mapping of an fd (a memfd, or with a dir a file
 * DIR/SNAP/POLICY.seg) so the RDMA transport can register it whole. With a
 * dir, a segment being written is a temporary file that its commit renames
 * over the name, the same layout and atomicity as the file pool; segments
 * already on disk are mapped on their first OPEN. The table is under
 * srv->lock and a segment is reference counted (the table holds one, every
 * OPEN another), so replacing or removing it never pulls memory from
 * under a READ.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "tier.h"
#include "rdma/auth.h"
#include "rdma/keys.h"
#include "rdma/pool-int.h"
#include "rdma/proto.h"
#include "rdma/server-int.h"
#include "rdma/server-limits.h"
#include "util/err.h"
#include "util/log.h"

static void seg_free(struct srv_seg *g)
{
	if (g->mem)
		munmap(g->mem, g->size);
	if (g->fd >= 0)
		close(g->fd);
	free(g);
}

void srv_seg_put(struct pool_server *srv, struct srv_seg *g)
{
	bool last;

	pthread_mutex_lock(&srv->lock);
	last = --g->refs == 0;
	if (last)
		srv->held -= g->size;
	pthread_mutex_unlock(&srv->lock);
	if (last)
		seg_free(g);
}

/* Under srv->lock. */
static struct srv_seg **seg_find(struct pool_server *srv, const char *name)
{
	struct srv_seg **pp;

	for (pp = &srv->segs; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, name))
			return pp;
	return NULL;
}

/* Maps DIR/SNAP/POLICY.seg into the table; under srv->lock. */
static int seg_load(struct pool_server *srv, const char *name,
		    struct srv_seg **ret)
{
	char path[4096 + 16];
	struct srv_seg *g;
	struct stat st;
	int rc, prot = PROT_READ;

	rc = pool_seg_path(srv->dir, name, path, sizeof(path));
	if (rc)
		return rc;
	g = calloc(1, sizeof(*g));
	if (!g)
		return tier_err(-ENOMEM, "out of memory");
	strcpy(g->name, name);
	/*
	 * Read-write if we may, though we never write: kernels before 6.2
	 * pin every registered page with FOLL_WRITE | FOLL_FORCE, which fails
	 * (-EFAULT) on a read-only shared mapping, so RDMA could not serve it.
	 */
	g->fd = open(path, O_RDWR | O_CLOEXEC);
	if (g->fd >= 0)
		prot |= PROT_WRITE;
	else if (errno == EACCES || errno == EROFS || errno == EPERM)
		g->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (g->fd < 0) {
		rc = errno == ENOENT ?
			tier_err(-ENOENT, "segment '%s': no such segment", name) :
			tier_err(-errno, "segment '%s': %s: %m", name, path);
		goto err;
	}
	if (fstat(g->fd, &st) < 0) {
		rc = tier_err(-errno, "segment '%s': %s: %m", name, path);
		goto err;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > POOL_MAX_SIZE) {
		rc = tier_err(-EINVAL, "segment '%s': %s: not a segment file",
			      name, path);
		goto err;
	}
	g->size = st.st_size;
	if (g->size) {
		g->mem = mmap(NULL, g->size, prot, MAP_SHARED, g->fd, 0);
		if (g->mem == MAP_FAILED) {
			g->mem = NULL;
			rc = tier_err(-errno, "segment '%s': mmap %s: %m",
				      name, path);
			goto err;
		}
	}
	g->refs = 1;
	g->next = srv->segs;
	srv->segs = g;
	srv->held += g->size;	/* already on disk: never refused */
	tier_dbg("pool server: loaded '%s' (%llu bytes) from %s", name,
		 (unsigned long long)g->size, path);
	*ret = g;
	return 0;
err:
	seg_free(g);
	return rc;
}

/* Looks @name up, loading it from the dir if need be; returns a reference. */
int srv_seg_get(struct pool_server *srv, const char *name,
		   struct srv_seg **ret)
{
	struct srv_seg **pp, *g;
	int rc = 0;

	pthread_mutex_lock(&srv->lock);
	pp = seg_find(srv, name);
	if (pp)
		g = *pp;
	else if (srv->dir[0])
		rc = seg_load(srv, name, &g);
	else
		rc = tier_err(-ENOENT, "segment '%s': no such segment", name);
	if (!rc) {
		g->refs++;
		*ret = g;
	}
	pthread_mutex_unlock(&srv->lock);
	/* not under the lock: a load reads the whole segment */
	if (rc == -ENOENT && srv->backing)
		return srv_backing_load(srv, name, ret);
	return rc;
}

struct srv_seg *srv_seg_find(struct pool_server *srv, const char *name)
{
	struct srv_seg **pp, *g = NULL;

	pthread_mutex_lock(&srv->lock);
	pp = seg_find(srv, name);
	if (pp) {
		g = *pp;
		g->refs++;
	}
	pthread_mutex_unlock(&srv->lock);
	return g;
}

void srv_wseg_free(struct srv_wseg *w, bool discard)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->srv->lock);
	w->srv->held -= w->size;
	w->srv->writing -= w->size;
	if (w->reserved)
		w->srv->reserved -= w->size;
	pthread_mutex_unlock(&w->srv->lock);
	if (w->mem)
		munmap(w->mem, w->size);
	if (w->fd >= 0)
		close(w->fd);
	if (discard && w->tmp[0])
		unlink(w->tmp);
	free(w);
}

int srv_wseg_new(struct pool_server *srv, const char *name, uint64_t size,
		    struct srv_wseg **ret)
{
	struct srv_wseg *w;
	uint64_t held, room = 0;
	int rc;

	if (!srv->max_bytes) {
		rc = srv_room(srv->dir, &room);
		if (rc)
			return rc;
	}
	pthread_mutex_lock(&srv->lock);
	held = srv->held;
	if (srv->max_bytes &&
	    (size > srv->max_bytes || held > srv->max_bytes - size)) {
		pthread_mutex_unlock(&srv->lock);
		return tier_err(-ENOSPC, "segment '%s': %llu bytes do not fit: the pool holds %llu of its %llu (--max-bytes)",
				name, (unsigned long long)size,
				(unsigned long long)held,
				(unsigned long long)srv->max_bytes);
	}
	if (!srv->max_bytes) {
		/*
		 * Every CREATE in flight, this one included, within half of
		 * what was free before they reserved: no single client (nor
		 * all together) fills the disk or the memory the host needs.
		 */
		uint64_t budget = (room + srv->reserved) / 2;

		if (size > budget || srv->writing > budget - size) {
			pthread_mutex_unlock(&srv->lock);
			return tier_err(-ENOSPC, "segment '%s': %llu bytes do not fit: segments being written reserve %llu of the %llu allowed (half of the free %s; --max-bytes sets a limit)",
					name, (unsigned long long)size,
					(unsigned long long)srv->writing,
					(unsigned long long)budget,
					srv->dir[0] ? "space of --dir" : "memory");
		}
	}
	srv->held += size;	/* given back by wseg_free, or kept by commit */
	srv->writing += size;
	pthread_mutex_unlock(&srv->lock);
	w = calloc(1, sizeof(*w));
	if (!w) {
		pthread_mutex_lock(&srv->lock);
		srv->held -= size;
		pthread_mutex_unlock(&srv->lock);
		return tier_err(-ENOMEM, "out of memory");
	}
	w->srv = srv;
	strcpy(w->name, name);
	w->size = size;
	if (srv->dir[0]) {
		const char *slash = strchr(name, '/');
		int n;

		rc = pool_seg_mkdir(srv->dir, name);
		if (rc)
			goto err;
		n = snprintf(w->tmp, sizeof(w->tmp), "%s/%.*s/.%s.seg.tmp.%d.%u",
			     srv->dir, (int)(slash - name), name, slash + 1,
			     (int)getpid(),
			     __atomic_fetch_add(&srv->tmp_seq, 1, __ATOMIC_RELAXED));
		if (n < 0 || (size_t)n >= sizeof(w->tmp)) {
			w->tmp[0] = '\0';
			rc = tier_err(-ENAMETOOLONG, "segment '%s': path too long", name);
			goto err;
		}
		w->fd = open(w->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	} else {
		w->fd = memfd_create(name, MFD_CLOEXEC);
	}
	if (w->fd < 0) {
		w->tmp[0] = '\0';
		rc = tier_err(-errno, "segment '%s': %m", name);
		goto err;
	}
	if (size && ftruncate(w->fd, size) < 0) {
		rc = tier_err(-errno, "segment '%s': size %llu: %m", name,
			      (unsigned long long)size);
		goto err;
	}
	/*
	 * WRITEs land in a shared mapping of the file: on a full disk (or
	 * tmpfs, or a memfd past its memory) a store there is SIGBUS, which
	 * would kill the server. Reserve every block now instead, so a full
	 * disk is this CREATE's error.
	 */
	if (size && (rc = posix_fallocate(w->fd, 0, size)) != 0) {
		rc = tier_err(-rc, "segment '%s': reserving %llu bytes: %s",
			      name, (unsigned long long)size, strerror(rc));
		goto err;
	}
	pthread_mutex_lock(&srv->lock);
	srv->reserved += size;
	w->reserved = true;
	pthread_mutex_unlock(&srv->lock);
	if (size) {
		w->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			      w->fd, 0);
		if (w->mem == MAP_FAILED) {
			w->mem = NULL;
			rc = tier_err(-errno, "segment '%s': mmap: %m", name);
			goto err;
		}
	}
	*ret = w;
	return 0;
err:
	srv_wseg_free(w, true);
	return rc;
}

/* Publishes @w under its name, replacing an older segment; consumes @w. */
int srv_wseg_commit(struct pool_server *srv, struct srv_wseg *w)
{
	char path[4096 + 16];
	struct srv_seg *g, **pp, *old = NULL;
	int rc;

	if (srv->dir[0]) {
		rc = pool_seg_path(srv->dir, w->name, path, sizeof(path));
		if (rc)
			goto err;
		if ((w->mem && msync(w->mem, w->size, MS_SYNC) < 0) ||
		    fsync(w->fd) < 0) {
			rc = tier_err(-errno, "segment '%s': sync: %m", w->name);
			goto err;
		}
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		rc = tier_err(-ENOMEM, "out of memory");
		goto err;
	}
	strcpy(g->name, w->name);
	g->size = w->size;
	g->mem = w->mem;
	g->fd = w->fd;
	g->refs = 1;

	/* Rename and swap under one lock so disk and table agree on the winner. */
	pthread_mutex_lock(&srv->lock);
	if (srv->dir[0] && rename(w->tmp, path) < 0) {
		rc = tier_err(-errno, "segment '%s': rename to %s: %m",
			      w->name, path);
		pthread_mutex_unlock(&srv->lock);
		free(g);
		goto err;
	}
	pp = seg_find(srv, w->name);
	if (pp) {
		old = *pp;
		*pp = old->next;
	}
	g->next = srv->segs;
	srv->segs = g;
	srv->writing -= w->size;	/* held stays: the table has it now */
	if (w->reserved)
		srv->reserved -= w->size;
	pthread_mutex_unlock(&srv->lock);

	if (old)
		srv_seg_put(srv, old);
	tier_dbg("pool server: committed '%s' (%llu bytes)", w->name,
		 (unsigned long long)w->size);
	free(w);
	if (srv->dir[0])
		return pool_sync_parent(path);
	return 0;
err:
	srv_wseg_free(w, true);
	return rc;
}

int srv_seg_remove(struct pool_server *srv, const char *name)
{
	struct srv_seg **pp, *g = NULL;
	char path[4096 + 16];
	int rc = 0;

	pthread_mutex_lock(&srv->lock);
	pp = seg_find(srv, name);
	if (pp) {
		g = *pp;
		*pp = g->next;
	}
	if (srv->dir[0]) {
		rc = pool_seg_path(srv->dir, name, path, sizeof(path));
		if (!rc && unlink(path) < 0 && (errno != ENOENT || !g))
			rc = errno == ENOENT ?
				tier_err(-ENOENT, "segment '%s': no such segment", name) :
				tier_err(-errno, "segment '%s': %s: %m", name, path);
	} else if (!g) {
		rc = tier_err(-ENOENT, "segment '%s': no such segment", name);
	}
	pthread_mutex_unlock(&srv->lock);
	if (g)
		srv_seg_put(srv, g);
	return rc;
}
