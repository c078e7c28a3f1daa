/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What makes the mapped pages resident before the guest runs, in-process
 * only: the populate list (MADV_POPULATE_READ of the MAP runs the plan
 * marks, one page a fault-around window in an overlay cluster), taken in
 * chunks by the start and the populator thread alike, and the
 * populator's start on another CPU; the readahead loader (FaaSnap's)
 * that warms the page cache in first-touch order. restore.c drives both;
 * restore-map.c makes their lists.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tier.h"
#include "cxl/cxl.h"
#include "store/restore-int.h"
#include "util/err.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

#define LOADER_CHUNK		(1U << 20)

int rs_add_range(struct rs_range **v, size_t *n, size_t *cap, int fd,
		 uint64_t off, uint64_t len)
{
	if (rs_grow((void **)v, cap, *n, sizeof(**v)))
		return tier_err(-ENOMEM, "restore: out of memory");
	(*v)[(*n)++] = (struct rs_range){ .fd = fd, .off = off, .len = len };
	return 0;
}

/* Whether a plan has pages to populate or to prefetch. */
bool pop_wanted(const struct plan *plan)
{
	size_t i;

	for (i = 0; i < plan->n; i++)
		if ((plan->ext[i].flags & PLACER_F_POPULATE) ||
		    plan->ext[i].method == PLACER_M_COPY)
			return true;
	return false;
}

/*
 * The populate ranges of an overlay cluster's run [a, z): one page per
 * FAULT_AROUND window the run touches, skipping a window an earlier run
 * already has. A read fault on a file mapping maps every page of its
 * (aligned, 64 KiB by default) window that the page cache holds; the
 * cluster's other pages are holes there, left alone, so one populated
 * page maps all the run's pages in the window and those of its
 * neighbours: the ro runs are 1-3 pages, thousands of them, and walking
 * each as a range of its own costs more than its pages (~2 us a range).
 * With a smaller fault-around, the pages it leaves out fault in on first
 * touch from the page cache, never through userfaultfd.
 */
#define FAULT_AROUND	(64 * 1024)

int pop_windows(struct rs_pop *pop, uintptr_t a, uintptr_t z)
{
	uintptr_t w;
	int rc;

	for (w = a; w < z; w = (w | (FAULT_AROUND - 1)) + 1) {
		if (pop->n && pop->r[pop->n - 1].fd == POP_OVERLAY &&
		    pop->r[pop->n - 1].off / FAULT_AROUND == w / FAULT_AROUND)
			continue;
		rc = rs_add_range(&pop->r, &pop->n, &pop->cap, POP_OVERLAY, w,
				  PG);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * MADV_POPULATE_READ of many ranges: process_madvise on ourselves takes
 * a chunk of up to POP_CHUNK ranges a call (any advice since Linux
 * 6.13), ~40 % cheaper than a madvise each for the short runs of a
 * scattered hot set; older kernels refuse it (EINVAL) and get one
 * madvise a range. A chunk is also what a thread takes of the populate
 * list at a time (pop_work).
 */
#define POP_CHUNK	128

struct pop_batch {
	struct iovec iov[POP_CHUNK];
	size_t n;
	int pidfd;		/* -1: not tried yet; -2: unsupported */
};

static int populate(void *addr, size_t len)
{
	if (madvise(addr, len, MADV_POPULATE_READ) < 0)
		return tier_err(-errno, "restore: populate %p+%zu: %m", addr, len);
	return 0;
}

static int pop_flush(struct pop_batch *b)
{
	size_t i = 0, total = 0, k;
	ssize_t r;

	if (!b->n)
		return 0;
	if (b->pidfd == -1) {
		b->pidfd = syscall(SYS_pidfd_open, getpid(), 0);
		if (b->pidfd < 0)
			b->pidfd = -2;
	}
	if (b->pidfd >= 0) {
		for (k = 0; k < b->n; k++)
			total += b->iov[k].iov_len;
		r = syscall(SYS_process_madvise, b->pidfd, b->iov, b->n,
			    MADV_POPULATE_READ, 0);
		if (r >= 0 && (size_t)r == total) {
			b->n = 0;
			return 0;
		}
		/* unsupported, or a partial result: redo one by one
		 * (populating twice is harmless), which names the range */
		if (r < 0 && (errno == EINVAL || errno == ENOSYS ||
			      errno == EPERM)) {
			close(b->pidfd);
			b->pidfd = -2;
		}
	}
	for (; i < b->n; i++) {
		int rc = populate(b->iov[i].iov_base, b->iov[i].iov_len);

		if (rc) {
			b->n = 0;
			return rc;
		}
	}
	b->n = 0;
	return 0;
}

/* A batch for each of the two threads that populate. */
int pop_prepare(struct rs_pop *pop)
{
	int k;

	for (k = 0; pop->n && k < 2; k++) {
		pop->b[k] = malloc(sizeof(*pop->b[k]));
		if (!pop->b[k])
			return tier_err(-ENOMEM, "restore: out of memory");
		*pop->b[k] = (struct pop_batch){ .pidfd = -1 };
	}
	return 0;
}

/*
 * The populator's wait for the start, spinning (a sleeping thread waited
 * 0.1-0.7 ms here for its idle vCPU to be woken): until the extents and
 * sources are ready (go), then until [.., @end) is mapped and
 * registered (ready). False: the start failed, stop.
 */
bool pop_wait(struct rs_pop *pop, uintptr_t end)
{
	for (;;) {
		int go = atomic_load_explicit(&pop->go, memory_order_acquire);

		if (go < 0)
			return false;
		if (go > 0 && atomic_load_explicit(&pop->ready,
					memory_order_acquire) >= end)
			return true;
		sched_yield();
	}
}

/*
 * How long the populator, done with its share, spins for the start
 * before it sleeps. Long enough for a fill both threads share (they end
 * within a small batch of each other), short against a prefetch the
 * start does alone, which on a pool whose transport needs the CPU (an
 * RDMA pool over soft-RoCE: its requester and responder run on the same
 * vCPUs) a spinning thread slows by the vCPU it takes: the restore's
 * prefetch ran at the speed of ib_read_bw polling, not of its -e
 * (BENCHMARKS.md). After a fill that long the handler's wake-up (0.1-3
 * ms on this VM) is a small part of it, and faults wait in the queue.
 */
#define POP_IDLE_SPIN_NS	(2 * 1000 * 1000ULL)

int pop_idle(struct rs_pop *pop)
{
	uint64_t end = rs_now_ns() + POP_IDLE_SPIN_NS;
	int go;

	while ((go = atomic_load_explicit(&pop->go, memory_order_acquire)) == 1) {
		if (rs_now_ns() < end) {
			sched_yield();
			continue;
		}
		pthread_mutex_lock(&pop->idle_lock);
		pop->sleeping = true;
		while ((go = atomic_load_explicit(&pop->go,
						  memory_order_acquire)) == 1)
			pthread_cond_wait(&pop->idle_cond, &pop->idle_lock);
		pop->sleeping = false;
		pthread_mutex_unlock(&pop->idle_lock);
	}
	return go;
}

/* The store comes before the lock, so a populator that checked pop.go
 * under it either sees the new value or is waiting for the signal. */
void pop_go(struct rs_pop *pop, int go)
{
	atomic_store_explicit(&pop->go, go, memory_order_release);
	if (!pop->idle_init)
		return;
	pthread_mutex_lock(&pop->idle_lock);
	if (pop->sleeping)
		pthread_cond_signal(&pop->idle_cond);
	pthread_mutex_unlock(&pop->idle_lock);
}

/* No thread takes another chunk. */
void pop_cancel(struct rs_pop *pop)
{
	atomic_store(&pop->next, pop->n);
}

/*
 * Populates chunks of the populate list until none is left. Both threads
 * take them, as they take prefetch batches: the populator from the time
 * the start maps, the start once its batches are done, so that whichever
 * is done first (or was not held up by the host) finishes the other's
 * share. -ECANCELED: the start failed meanwhile.
 *
 * While the start is still mapping, an overlay window is populated by
 * reading its page: the fault is served under the VMA's own lock, where
 * MADV_POPULATE_READ would queue behind the start's mmaps for mmap_lock
 * (and they behind it). A read can fault only on a page the object
 * holds: a cluster is registered before it is published, so a hole
 * would be a userfault, not a page added to the shared object, and an
 * object truncated behind the store's back would SIGBUS the guest's own
 * reads of the same mapping as well. Once mapping is done, the rest go
 * through process_madvise, which reports such a page as an error.
 */
int pop_work(struct tier_restore *rs, struct pop_batch *b)
{
	struct rs_pop *pop = &rs->pop;
	uintptr_t hole_off = rs->area.first * PG - (uintptr_t)rs->base;
	size_t k, i, end;
	int rc;

	while ((k = atomic_fetch_add(&pop->next, POP_CHUNK)) < pop->n) {
		end = k + POP_CHUNK < pop->n ? k + POP_CHUNK : pop->n;
		for (i = k; i < end; i++) {
			const struct rs_range *r = &pop->r[i];
			bool overlay = r->fd == POP_OVERLAY;

			/*
			 * Overlay: the cluster is registered, so populating
			 * a hole would wait for the handler, which does not
			 * run before the start returns: the restore would
			 * hang. The placer puts only present pages in MAP
			 * runs, so a hole means the object is not the one
			 * written with this plan (a v1 plan's, replaced) or
			 * was damaged since: the start fails, naming the
			 * page. An object map_clusters knows to be whole
			 * is not asked (an lseek a window).
			 */
			if (overlay && !rs->map.ovl_checked &&
			    !cxl_obj_present(rs->src.cxl_obj,
					     hole_off + r->off, r->len)) {
				b->n = 0;
				pop_cancel(pop);
				return tier_err(-EBADMSG, "snapshot %s: page %" PRIu64
						": the plan maps it from the CXL object, "
						"which has a hole there (an object "
						"not written with this plan, or damaged)",
						rs->snap->name,
						(uint64_t)((hole_off + r->off) / PG));
			}
			if (!pop_wait(pop, overlay ? r->off + r->len :
						     UINTPTR_MAX))
				return -ECANCELED;
			if (overlay && (pop->touch ||
					atomic_load_explicit(&pop->ready,
						memory_order_relaxed) != UINTPTR_MAX)) {
				(void)*(volatile uint8_t *)(uintptr_t)r->off;
				continue;
			}
			b->iov[b->n++] = (struct iovec){
				.iov_base = (void *)(uintptr_t)r->off,
				.iov_len = r->len,
			};
		}
		rc = pop_flush(b);
		if (rc) {
			pop_cancel(pop);
			return rc;
		}
	}
	return 0;
}

/*
 * A new thread is queued on its creator's CPU, and with the creator busy
 * it began running 2.3-3.7 ms later (median, 2-vCPU VM), against 0.4 ms
 * when asked to start elsewhere. It takes the caller's affinity back
 * first thing.
 */
int rs_spawn_elsewhere(pthread_t *t, void *(*fn)(void *), void *arg,
		       struct rs_cpus *c)
{
	pthread_attr_t attr;
	cpu_set_t other;
	int cpu = sched_getcpu(), rc;

	rc = pthread_attr_init(&attr);
	if (rc)
		return rc;
	c->saved = false;
	if (cpu >= 0 && cpu < CPU_SETSIZE &&
	    sched_getaffinity(0, sizeof(c->set), &c->set) == 0) {
		other = c->set;
		CPU_CLR(cpu, &other);
		c->saved = CPU_COUNT(&other) > 0 &&
			   pthread_attr_setaffinity_np(&attr, sizeof(other),
						       &other) == 0;
	}
	rc = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return rc;
}

void rs_cpus_restore(const struct rs_cpus *c)
{
	if (c->saved)	/* the caller's own, as if inherited */
		pthread_setaffinity_np(pthread_self(), sizeof(c->set), &c->set);
}

/* The populator, started elsewhere (rs_spawn_elsewhere). */
int pop_create(struct rs_pop *pop, void *(*fn)(void *), void *arg)
{
	int rc;

	if (!pop->idle_init) {
		pthread_mutex_init(&pop->idle_lock, NULL);
		pthread_cond_init(&pop->idle_cond, NULL);
		pop->idle_init = true;
	}
	rc = rs_spawn_elsewhere(&pop->thread, fn, arg, &pop->cpus);
	if (!rc)
		pop->have_thread = true;
	return rc;
}

void pop_fini(struct rs_pop *pop)
{
	int k;

	for (k = 0; k < 2; k++) {
		if (pop->b[k] && pop->b[k]->pidfd >= 0)
			close(pop->b[k]->pidfd);
		free(pop->b[k]);
		pop->b[k] = NULL;
	}
	free(pop->r);
	pop->r = NULL;
	if (pop->idle_init) {
		pthread_mutex_destroy(&pop->idle_lock);
		pthread_cond_destroy(&pop->idle_cond);
		pop->idle_init = false;
	}
}

/* ---------------------------------------------------------- loader */

static int ra_cmp(const void *a, const void *b)
{
	const struct rs_range *x = a, *y = b;

	if (x->fd != y->fd)
		return x->fd < y->fd ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

void loader_sort(struct rs_loader *ld)
{
	if (ld->n)
		qsort(ld->r, ld->n, sizeof(*ld->r), ra_cmp);
}

static void *loader(void *arg)
{
	struct rs_loader *ld = arg;
	void *buf = malloc(LOADER_CHUNK);
	size_t i;

	if (!buf)
		return NULL;
	/* read the loading set in file order (which is first-touch
	 * order), warming the page cache ahead of the guest */
	for (i = 0; i < ld->n && !atomic_load(&ld->stop); i++) {
		uint64_t off = ld->r[i].off, end = off + ld->r[i].len;

		while (off < end && !atomic_load(&ld->stop)) {
			size_t n = end - off < LOADER_CHUNK ? end - off : LOADER_CHUNK;
			ssize_t r = pread(ld->r[i].fd, buf, n, off);

			if (r <= 0)
				break;	/* only a hint: faults still read the file */
			off += r;
		}
	}
	free(buf);
	return NULL;
}

void loader_start(struct rs_loader *ld)
{
	if (ld->n && pthread_create(&ld->thread, NULL, loader, ld) == 0)
		ld->have_thread = true;
}

void loader_stop(struct rs_loader *ld)
{
	if (ld->have_thread) {
		atomic_store(&ld->stop, true);
		pthread_join(ld->thread, NULL);
		ld->have_thread = false;
	}
}
