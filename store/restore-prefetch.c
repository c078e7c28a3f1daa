/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The prefetcher: an area's COPY extents fetched in batches of up to
 * 2 MiB, smaller toward the end (one pool_readv of many ranges per
 * batch, read in place from a file pool's page cache, or posted reads
 * into registered buffers with the next batch in flight: pf_pipe),
 * verified and installed with UFFDIO_COPY / UFFDIO_ZEROPAGE without
 * waking, before the guest runs. Any thread may take batches (pf_work):
 * restore.c's start and its populator share them; a front end serving another
 * process's uffd runs it the same way, as it needs only the area, the
 * fault server's uffd and the sources.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "tier.h"
#include "rdma/pool.h"
#include "store/restore-int.h"
#include "util/err.h"
#include "util/log.h"

#define BATCH_PAGES		512	/* 2 MiB per batch */
#define BATCH_MIN		64
#define BATCH_PIECES		256	/* ranges per batch (pool_readv iovs) */

struct piece {
	uint64_t w, np, off;
	uint64_t slot;			/* its pages in the bounce buffer */
	unsigned src;
	void *buf;			/* set by pf_flush */
};

struct batch {
	struct piece p[BATCH_PIECES];
	unsigned n;
	uint64_t pages;			/* in the bounce buffer */
	uint8_t *bounce;		/* NULL until a piece needs it */
	struct pool_iov iov[BATCH_PIECES];
	unsigned iov_piece[BATCH_PIECES];	/* an iov's first piece */
};

struct pf_batch {
	size_t first, n;		/* pieces [first, first + n) of p */
};

/*
 * The bounce buffer: a fresh one faults in page by page (~2.4 us each,
 * more than the copy itself), so one is kept for the process and reused
 * by the next restore (a host restoring many instances); restores
 * running at the same time allocate their own.
 */
static pthread_mutex_t bounce_lock = PTHREAD_MUTEX_INITIALIZER;
static void *bounce_cache;

static void *bounce_get(void)
{
	size_t i;
	void *b;

	pthread_mutex_lock(&bounce_lock);
	b = bounce_cache;
	bounce_cache = NULL;
	pthread_mutex_unlock(&bounce_lock);
	if (b)
		return b;
	b = mmap(NULL, BATCH_PAGES * PG, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		return NULL;
	/*
	 * One huge page if there is one (a hint), else filled here rather
	 * than on the copy's first touch. By writes, not MADV_POPULATE_WRITE:
	 * the populator gets its buffer while the start maps and registers,
	 * and its write faults take the VMA's own lock where the madvise
	 * would hold mmap_lock ~1 ms (aquifer's registration went from 1.5
	 * to 2-11 ms).
	 */
	madvise(b, BATCH_PAGES * PG, MADV_HUGEPAGE);
	for (i = 0; i < BATCH_PAGES; i++)
		((volatile uint8_t *)b)[i * PG] = 0;
	return b;
}

static void bounce_put(void *b)
{
	pthread_mutex_lock(&bounce_lock);
	if (!bounce_cache) {
		bounce_cache = b;
		b = NULL;
	}
	pthread_mutex_unlock(&bounce_lock);
	if (b)
		munmap(b, BATCH_PAGES * PG);
}

/*
 * A pool the transport holds in this address space (a file pool): the
 * pieces point into its mapping instead of the bounce buffer, which
 * saves a copy of every page (UFFDIO_COPY reads the page cache directly).
 * Only when the batch's pool ranges lie close together, as the COPY pages
 * packed at the start of a segment do: the view populates their whole
 * span. -EOPNOTSUPP: read them into the buffer instead. The bytes are
 * verified in place and then copied from the same page cache: a segment
 * is replaced by rename, never rewritten, so they cannot change between.
 */
static int pool_view(struct pool_seg *seg, struct batch *b, unsigned niov)
{
	uint64_t lo = UINT64_MAX, hi = 0, bytes = 0;
	const uint8_t *v;
	unsigned i;
	int rc;

	for (i = 0; i < niov; i++) {
		if (b->iov[i].off < lo)
			lo = b->iov[i].off;
		if (b->iov[i].off + b->iov[i].len > hi)
			hi = b->iov[i].off + b->iov[i].len;
		bytes += b->iov[i].len;
	}
	if (hi - lo > 2 * bytes)
		return -EOPNOTSUPP;
	rc = pool_seg_view(seg, lo, hi - lo, (const void **)&v);
	if (rc)
		return rc;
	for (i = 0; i < b->n; i++)
		if (b->p[i].src == PLACER_SRC_POOL)
			b->p[i].buf = (void *)(v + (b->p[i].off - lo));
	return 0;
}

/* The pieces' buffers in the bounce buffer, allocated on first need: a
 * file pool's pages are read in place (pool_view). */
static int use_bounce(struct batch *b, bool pool)
{
	unsigned i;

	if (!b->bounce) {
		b->bounce = bounce_get();
		if (!b->bounce)
			return tier_err(-ENOMEM, "restore: out of memory");
	}
	for (i = 0; i < b->n; i++)
		if ((b->p[i].src == PLACER_SRC_POOL) == pool &&
		    b->p[i].src != PLACER_SRC_NONE)
			b->p[i].buf = b->bounce + b->p[i].slot * PG;
	return 0;
}

/* The batch's pool pieces as ranges: packed pieces follow each other in
 * the segment and in the bounce buffer, so they make one range (one
 * pread for a file pool); *@other: pieces of other sources too. */
static unsigned pool_ranges(struct batch *b, bool *other)
{
	unsigned i, niov = 0;

	for (i = 0; i < b->n; i++) {
		struct pool_iov *last = niov ? &b->iov[niov - 1] : NULL;

		if (b->p[i].src != PLACER_SRC_POOL) {
			*other |= b->p[i].src != PLACER_SRC_NONE;
			continue;
		}
		if (last && last->off + last->len == b->p[i].off &&
		    b->p[i - 1].src == PLACER_SRC_POOL &&
		    b->p[i - 1].slot + b->p[i - 1].np == b->p[i].slot) {
			last->len += b->p[i].np * PG;
			continue;
		}
		b->iov_piece[niov] = i;
		b->iov[niov++] = (struct pool_iov){
			.off = b->p[i].off, .len = b->p[i].np * PG,
		};
	}
	return niov;
}

/* The batch's pool pieces in one round trip. */
static int fetch_pool(struct batch *b, struct pool_seg *seg, bool *other)
{
	unsigned i, niov = pool_ranges(b, other);
	int rc;

	if (!niov)
		return 0;
	rc = pool_view(seg, b, niov);
	if (rc == -EOPNOTSUPP) {
		rc = use_bounce(b, true);
		for (i = 0; i < niov && !rc; i++)
			b->iov[i].buf = b->p[b->iov_piece[i]].buf;
		if (!rc)
			rc = pool_readv(seg, b->iov, niov);
	}
	return rc ? tier_err_ctx(rc, "prefetch") : 0;
}

/*
 * A batch's pieces of one file source in place, where the source has a
 * view (src_map_views: a remote restore maps its files): verified and
 * installed from the page cache, no read into the buffer. False: read.
 */
static bool view_pieces(struct rs_src *s, struct batch *b, unsigned src)
{
	uint64_t off[BATCH_PIECES], len[BATCH_PIECES];
	const void *at[BATCH_PIECES];
	unsigned idx[BATCH_PIECES], i, n = 0;

	if (!s->view[src])
		return false;
	for (i = 0; i < b->n; i++)
		if (b->p[i].src == src) {
			idx[n] = i;
			off[n] = b->p[i].off;
			len[n++] = b->p[i].np * PG;
		}
	if (!n || src_view(s, src, off, len, n, at))
		return false;
	for (i = 0; i < n; i++)
		b->p[idx[i]].buf = (void *)at[i];
	return true;
}

/* The other sources' pieces (CXL object, local file, image). */
static int fetch_other(struct rs_pf *pf, struct batch *b)
{
	struct rs_src *s = pf->srv->src;
	bool viewed[PLACER_SRC_POOL + 1] = { false };
	unsigned i, src;
	int rc;

	for (src = PLACER_SRC_IMAGE; src <= PLACER_SRC_CXL; src++)
		viewed[src] = view_pieces(s, b, src);
	for (i = 0; i < b->n; i++) {
		struct piece *p = &b->p[i];

		if (p->src == PLACER_SRC_POOL || p->src == PLACER_SRC_NONE ||
		    viewed[p->src])
			continue;
		if (!b->bounce) {
			b->bounce = bounce_get();
			if (!b->bounce)
				return tier_err(-ENOMEM, "restore: out of memory");
		}
		p->buf = b->bounce + p->slot * PG;
		rc = src_read(s, NULL, p->src, p->off, p->buf, p->np * PG);
		if (rc)
			return tier_err_ctx(rc, "prefetch");
	}
	return 0;
}

/* Installs the batch, merging pieces adjacent in the area and in the
 * buffer; the count of pages installed in *@n. */
static int install(struct rs_pf *pf, struct batch *b, uint64_t *n)
{
	struct rs_serve *srv = pf->srv;
	unsigned i, k;
	int rc;

	for (i = 0; i < b->n; i = k) {
		struct piece *p = &b->p[i];
		uint64_t np = p->np;

		for (k = i + 1; k < b->n; k++) {
			struct piece *q = &b->p[k];

			if ((q->src == PLACER_SRC_NONE) != (p->src == PLACER_SRC_NONE) ||
			    q->w != p->w + np ||
			    (p->src != PLACER_SRC_NONE &&
			     (uint8_t *)q->buf != (uint8_t *)p->buf + np * PG))
				break;
			np += q->np;
		}
		rc = serve_install(srv, pf->area, p->w, np,
				   p->src == PLACER_SRC_NONE ? NULL : p->buf,
				   UFFD_COPY_DONTWAKE, true);
		if (rc < 0)
			return tier_err_ctx(rc, "prefetch");
		/* 1: removed or unmapped meanwhile (a VMM's balloon): left
		 * to a fault, which serves what is there now */
		if (!rc)
			*n += np;
	}
	return 0;
}

/* Verify, install, count: a batch whose pool pieces have arrived (@other:
 * it has pieces of other sources, still to read). */
static int pf_finish(struct rs_pf *pf, struct batch *b, bool other)
{
	struct rs_fate *f = pf->srv->fate;
	uint64_t pool = 0, local = 0, installed = 0;
	unsigned i;
	int rc;

	if (other) {
		rc = fetch_other(pf, b);
		if (rc)
			return rc;
	}
	for (i = 0; i < b->n; i++) {
		struct piece *p = &b->p[i];

		if (p->src == PLACER_SRC_NONE)
			continue;
		rc = src_verify(pf->srv->src, pf->area->first + p->w,
				p->buf, p->np, p->src);
		if (rc)
			return rc;
		if (p->src == PLACER_SRC_POOL)
			pool += p->np * PG;
		else if (p->src != PLACER_SRC_CXL)	/* CXL: no counter */
			local += p->np * PG;
	}
	rc = install(pf, b, &installed);
	if (rc)
		return rc;
	pthread_mutex_lock(&f->stat_lock);
	f->st.prefetched_pages += installed;
	f->st.pool_bytes += pool;
	f->st.local_bytes += local;
	pthread_mutex_unlock(&f->stat_lock);
	b->n = 0;
	b->pages = 0;
	return 0;
}

/* Fetch, verify, install, count: one batch. */
static int pf_flush(struct rs_pf *pf, struct batch *b, struct pool_seg *seg)
{
	bool other = false;
	int rc;

	rc = fetch_pool(b, seg, &other);
	return rc ? rc : pf_finish(pf, b, other);
}

/*
 * The pipeline of a pool with posted reads (RDMA), one thread: the next
 * PF_DEPTH - 1 batches' READs are in flight, straight into their own
 * registered buffers, while a batch that arrived is verified and
 * installed. pf_flush's way the link idles while the CPU works on a batch
 * and the CPU while the link reads one, and every byte is copied once
 * more, from the transport's bounce buffer (BENCHMARKS.md, RDMA
 * throughput, compares the two in one guest). A batch is installed only
 * once its reads have arrived and its pages passed the checksum, as
 * pf_flush's; any failure stops the pipeline, and no READ may land in
 * the buffers after it returns (it waits for those in flight, and the
 * registration goes before the memory, which fences any straggler).
 */
struct pf_slot {
	struct batch *b;
	uint64_t ticket;		/* 0: nothing posted */
	bool other;
};

static int pf_post(struct rs_pf *pf, struct pf_slot *sl, struct pool_seg *seg,
		   struct pool_mr *mr, size_t k)
{
	const struct pf_batch *pb = &pf->b[k];
	struct batch *b = sl->b;
	unsigned i, niov;
	int rc;

	memcpy(b->p, pf->p + pb->first, pb->n * sizeof(*b->p));
	b->n = pb->n;
	sl->other = false;
	sl->ticket = 0;
	niov = pool_ranges(b, &sl->other);
	if (!niov)
		return 0;
	rc = use_bounce(b, true);	/* its own slice of pipe_buf */
	for (i = 0; i < niov && !rc; i++)
		b->iov[i].buf = b->p[b->iov_piece[i]].buf;
	if (!rc)
		rc = pool_read_post(seg, b->iov, niov, mr, &sl->ticket);
	return rc ? tier_err_ctx(rc, "prefetch") : 0;
}

/* Done with the pipeline: unpinned and its memory given back (the
 * mapping goes in pf_fini: an munmap now would wait for mmap_lock behind
 * a populate still running). */
static void pipe_release(struct rs_pf *pf)
{
	pool_mr_unreg(pf->pipe_mr);
	pf->pipe_mr = NULL;
	madvise(pf->pipe_buf, PF_DEPTH * BATCH_PAGES * PG, MADV_DONTNEED);
}

static int pf_pipe(struct rs_pf *pf, struct pool_seg *seg)
{
	struct pf_slot sl[PF_DEPTH];
	uint64_t head = 0, tail = 0, last = 0;
	size_t k;
	int rc = 0, i;

	for (i = 0; i < PF_DEPTH; i++)
		sl[i] = (struct pf_slot){ .b = pf->pipe[i] };
	for (;;) {
		struct pf_slot *t;

		while (head - tail < PF_DEPTH &&
		       (k = atomic_fetch_add(&pf->next, 1)) < pf->nb) {
			rc = pf_post(pf, &sl[head % PF_DEPTH], seg,
				     pf->pipe_mr, k);
			if (rc)
				goto fail;
			if (sl[head % PF_DEPTH].ticket)
				last = sl[head % PF_DEPTH].ticket;
			head++;
		}
		if (tail == head)
			break;
		t = &sl[tail % PF_DEPTH];
		rc = t->ticket ? pool_read_wait(seg, t->ticket) : 0;
		if (rc) {
			rc = tier_err_ctx(rc, "prefetch");
			goto fail;
		}
		rc = pf_finish(pf, t->b, t->other);
		if (rc)
			goto fail;
		tail++;
	}
	pipe_release(pf);
	return 0;

fail:
	pf_cancel(pf);
	if (last) {
		/* the later batches' READs, before their buffers go; the
		 * first failure is the one to report */
		char why[512];

		snprintf(why, sizeof(why), "%s", tier_errmsg());
		(void)pool_read_wait(seg, last);
		tier_err(rc, "%s", why);
	}
	pipe_release(pf);
	return rc;
}

/*
 * Pages in the next batch, @todo pages still to cut: a quarter of them,
 * between BATCH_MIN and BATCH_PAGES. Two threads take batches from one
 * list; shrinking batches toward the end lets them finish within a small
 * batch of each other instead of a 2 MiB one (~1.5 ms here).
 */
static uint64_t batch_limit(uint64_t todo)
{
	uint64_t l = todo / 4;

	return l < BATCH_MIN ? BATCH_MIN : l > BATCH_PAGES ? BATCH_PAGES : l;
}

/*
 * Cuts the COPY extents into batches of at most BATCH_PAGES pages with
 * bytes (NONE pieces are free: UFFDIO_ZEROPAGE) and BATCH_PIECES pieces,
 * each piece's bounce buffer slot set.
 */
static int pf_cut(struct rs_pf *pf)
{
	const struct rs_area *a = pf->area;
	size_t i, n = 0, cap = 0, bcap = 0, nb = 0, first = 0;
	uint64_t pages = 0, limit = 0, todo = 0, total;

	for (i = 0; i < a->n; i++)
		if (a->ext[i].method == PLACER_M_COPY &&
		    a->ext[i].source != PLACER_SRC_NONE)
			todo += a->ext[i].npages;
	total = todo;
	for (i = 0; i < a->n; i++) {
		const struct placer_ext *e = &a->ext[i];
		uint64_t w = e->page, left = e->npages;

		if (e->method != PLACER_M_COPY)
			continue;
		while (left) {
			uint64_t room = limit - pages, np;

			if (!room || n - first == BATCH_PIECES) {
				pages = 0;
				first = n;
				limit = batch_limit(todo);
				continue;
			}
			if (rs_grow((void **)&pf->p, &cap, n, sizeof(*pf->p)))
				return tier_err(-ENOMEM, "restore: out of memory");
			if (first == n) {	/* a new batch */
				if (rs_grow((void **)&pf->b, &bcap, nb,
					    sizeof(*pf->b)))
					return tier_err(-ENOMEM, "restore: out of memory");
				pf->b[nb++] = (struct pf_batch){ .first = n };
			}
			np = e->source == PLACER_SRC_NONE || left < room ?
			     left : room;
			pf->p[n] = (struct piece){
				.w = w, .np = np, .off = ext_off(e, w),
				.src = e->source, .slot = pages,
			};
			if (e->source != PLACER_SRC_NONE) {
				pages += np;
				todo -= np;
			}
			pf->b[nb - 1].n++;
			n++;
			w += np;
			left -= np;
		}
	}
	pf->np = n;
	pf->nb = nb;
	pf->pages = total;
	return 0;
}

/*
 * Whether a second thread may take batches too: with no pool pieces, or
 * a pool whose segment can be viewed in place (a file pool), through a
 * second handle of its own (a handle serves one thread at a time), or a
 * TCP pool through a second connection: one more connect and HELLO
 * against batches of about a millisecond each (loopback, the 1 GiB bench
 * image: median setup 15.9 ms instead of 18.5, BENCHMARKS.md). An RDMA
 * connection costs an rdma_cm exchange and registering the helper's
 * buffer, not measured here: RDMA keeps one connection.
 */
static void pf_helper(struct rs_pf *pf, bool tcp_any)
{
	struct rs_src *s = pf->srv->src;
	const void *v;
	size_t i;

	for (i = 0; i < pf->np; i++)
		if (pf->p[i].src == PLACER_SRC_POOL)
			break;
	if (i == pf->np) {
		pf->help = true;
		return;
	}
	if (s->pool_uri.kind == URI_POOL_TCP) {
		/* a connection for one 2 MiB batch's worth costs more than
		 * it saves */
		if ((pf->pages > BATCH_PAGES || tcp_any) &&
		    src_pool_connect(s, &pf->pool, &pf->seg) == 0)
			pf->help = true;
		return;
	}
	if (pool_seg_open(s->pool, s->obj_name, &pf->seg))
		return;
	if (pool_seg_view(pf->seg, 0, 1, &v) == 0) {
		pf->help = true;
		return;
	}
	pool_seg_close(pf->seg);
	pf->seg = NULL;
}

void pf_init(struct rs_pf *pf, struct rs_serve *srv, struct rs_area *area)
{
	pf->srv = srv;
	pf->area = area;
}

static void pipe_free(struct rs_pf *pf)
{
	int i;

	pool_mr_unreg(pf->pipe_mr);	/* before the memory it pins */
	pf->pipe_mr = NULL;
	for (i = 0; i < PF_DEPTH; i++) {
		free(pf->pipe[i]);
		pf->pipe[i] = NULL;
	}
	if (pf->pipe_buf)
		munmap(pf->pipe_buf, PF_DEPTH * BATCH_PAGES * PG);
	pf->pipe_buf = NULL;
}

/*
 * The pipeline's batches and their buffers: one mapping, registered here
 * (which pins and so fills its pages, while the start maps), not timed
 * in the prefetch, as a bounce buffer's fill and the connection's own
 * registration are not. A registration refused (a memlock limit, say)
 * leaves the pipeline off: slower, not wrong.
 */
static int pipe_prepare(struct rs_pf *pf)
{
	size_t len = PF_DEPTH * BATCH_PAGES * PG;
	void *m;
	int i, rc;

	m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return tier_err(-ENOMEM, "restore: out of memory");
	madvise(m, len, MADV_HUGEPAGE);
	pf->pipe_buf = m;
	for (i = 0; i < PF_DEPTH; i++) {
		pf->pipe[i] = calloc(1, sizeof(*pf->pipe[i]));
		if (!pf->pipe[i])
			return tier_err(-ENOMEM, "restore: out of memory");
		pf->pipe[i]->bounce = pf->pipe_buf + i * BATCH_PAGES * PG;
	}
	rc = pool_mr_reg(pool_seg_pool(pf->srv->src->seg), m, len,
			 &pf->pipe_mr);
	if (rc) {
		tier_dbg("prefetch: no pipeline (%s): batches read one by one",
			 tier_errmsg());
		pipe_free(pf);
	}
	return 0;
}

/*
 * Everything the prefetch needs that takes mmap_lock for writing (the
 * segment's mapping, bounce buffers, the batches' memory) is made here,
 * before any thread populates: MADV_POPULATE_READ holds mmap_lock for
 * reading ~1 ms a call, and an mmap queued behind it stalled the first
 * batch by up to 4 ms.
 */
int pf_prepare(struct rs_pf *pf, bool helper, bool tcp_any)
{
	bool pool = false, other = false, view = false;
	const void *v;
	size_t i;
	int rc, k;

	rc = pf_cut(pf);
	if (rc || !pf->nb)
		return rc;
	if (helper)
		pf_helper(pf, tcp_any);
	for (i = 0; i < pf->np; i++) {
		pool |= pf->p[i].src == PLACER_SRC_POOL;
		/* a viewed file needs no buffer (but may if its view
		 * fails: then one is made on first need) */
		other |= pf->p[i].src != PLACER_SRC_POOL &&
			 pf->p[i].src != PLACER_SRC_NONE &&
			 !pf->srv->src->view[pf->p[i].src];
	}
	if (pool)
		view = pool_seg_view(pf->srv->src->seg, 0, 1, &v) == 0;
	if (pool && !view && !pf->help &&
	    pool_can_post(pool_seg_pool(pf->srv->src->seg))) {
		rc = pipe_prepare(pf);
		if (rc)
			return rc;
	}
	for (k = 0; k < (pf->help ? 2 : 1); k++) {
		pf->buf[k] = calloc(1, sizeof(*pf->buf[k]));
		if (!pf->buf[k])
			return tier_err(-ENOMEM, "restore: out of memory");
		/* the pipeline's batches have buffers of their own */
		if (((pool && !view) || other) && !pf->pipe_mr) {
			pf->buf[k]->bounce = bounce_get();
			if (!pf->buf[k]->bounce)
				return tier_err(-ENOMEM, "restore: out of memory");
		}
	}
	return 0;
}

int pf_work(struct rs_pf *pf, struct pool_seg *seg, struct batch *b)
{
	size_t k;
	int rc = 0;

	if (pf->pipe_mr && seg == pf->srv->src->seg)
		return pf_pipe(pf, seg);

	while ((k = atomic_fetch_add(&pf->next, 1)) < pf->nb) {
		const struct pf_batch *pb = &pf->b[k];

		memcpy(b->p, pf->p + pb->first, pb->n * sizeof(*b->p));
		b->n = pb->n;
		rc = pf_flush(pf, b, seg);
		if (rc) {
			pf_cancel(pf);
			break;
		}
	}
	return rc;
}

/* No thread takes another batch (an error elsewhere stops them all). */
void pf_cancel(struct rs_pf *pf)
{
	atomic_store(&pf->next, pf->nb);
}

/* The helper's segment handle, and its connection if it has one. */
void pf_helper_end(struct rs_pf *pf)
{
	if (pf->pool) {
		src_pool_disconnect(&pf->pool, &pf->seg);
		return;
	}
	pool_seg_close(pf->seg);
	pf->seg = NULL;
}

void pf_fini(struct rs_pf *pf)
{
	int k;

	pf_helper_end(pf);
	for (k = 0; k < 2; k++) {
		if (pf->buf[k] && pf->buf[k]->bounce)
			bounce_put(pf->buf[k]->bounce);
		free(pf->buf[k]);
		pf->buf[k] = NULL;
	}
	pipe_free(pf);
	free(pf->p);
	free(pf->b);
	pf->p = NULL;
	pf->b = NULL;
}
