/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * floor: the physical rates a restore is built from (REFERENCE.md section 1),
 * measured on this machine now, so a restore can be compared with its floor
 * in the same run rather than with numbers from another day.
 *
 * Prints one JSON object; every rate is the median of --reps repetitions,
 * in ns per 4 KiB page. Run by bench/run.py and tests/bench-smoke.sh.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "store/uffd.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define PAGE		4096UL
#define BATCH		512UL
#define MAX_REPS	64

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Distinct, non-zero bytes in every page. */
static void fill(uint8_t *p, size_t len)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL, *q = (uint64_t *)p;

	for (size_t i = 0; i < len / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		q[i] = x | 1;
	}
}

/* ------------------------------------------------------------- memcpy */

static int m_memcpy(const uint8_t *src, size_t npages, double *ret)
{
	uint8_t *dst = map_anon(npages * PAGE);
	uint64_t t;

	if (!dst)
		return -errno;
	memset(dst, 1, npages * PAGE);
	t = now_ns();
	for (size_t i = 0; i < npages; i++)
		memcpy(dst + i * PAGE, src + i * PAGE, PAGE);
	t = now_ns() - t;
	/* Keep the compiler from dropping the copies. */
	if (dst[npages * PAGE - 1] != src[npages * PAGE - 1])
		t = 0;
	munmap(dst, npages * PAGE);
	*ret = (double)t / (double)npages;
	return 0;
}

/* ---------------------------------------------------------- two threads */

/*
 * What a second thread buys on this machine now: the same CPU-bound work
 * (xorshift over a buffer that stays in L1) done by one thread twice, then
 * by two threads at once. 2.0 on two idle cores; a shared VM whose vCPUs
 * contend on the host gives less, and the restore's two threads (populate
 * and prefetch) then overlap less. Not a rate: a ratio.
 */
#define PAR_ROUNDS	20000

static void *par_work(void *arg)
{
	uint64_t *q = arg, x = 0x9e3779b97f4a7c15ULL;

	for (int r = 0; r < PAR_ROUNDS; r++)
		for (int i = 0; i < 512; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			q[i] += x;
		}
	return NULL;
}

static int m_two_threads(double *ret)
{
	static uint64_t buf[2][512];
	uint64_t t1, t2;
	pthread_t th;
	int rc;

	t1 = now_ns();
	par_work(buf[0]);
	par_work(buf[1]);
	t1 = now_ns() - t1;
	t2 = now_ns();
	rc = pthread_create(&th, NULL, par_work, buf[1]);
	if (rc)
		return -rc;
	par_work(buf[0]);
	pthread_join(th, NULL);
	t2 = now_ns() - t2;
	*ret = t2 ? (double)t1 / (double)t2 : 0;
	return 0;
}

/* ------------------------------------------------- anon populate write */

static int m_populate_write(size_t npages, double *ret)
{
	uint8_t *dst = map_anon(npages * PAGE);
	uint64_t t;
	int rc = 0;

	if (!dst)
		return -errno;
	t = now_ns();
	if (madvise(dst, npages * PAGE, MADV_POPULATE_WRITE) < 0)
		rc = -errno;
	t = now_ns() - t;
	munmap(dst, npages * PAGE);
	*ret = (double)t / (double)npages;
	return rc;
}

/* ----------------------------------------- file MAP_PRIVATE populate */

static int m_populate_read(int fd, size_t npages, double *ret)
{
	uint64_t t = now_ns();
	void *p = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE, fd, 0);
	int rc = 0;

	if (p == MAP_FAILED)
		return -errno;
	if (madvise(p, npages * PAGE, MADV_POPULATE_READ) < 0)
		rc = -errno;
	t = now_ns() - t;
	munmap(p, npages * PAGE);
	*ret = (double)t / (double)npages;
	return rc;
}

/* ------------------------------------------- UFFDIO_COPY, no faults */

static int m_uffd_copy(int ufd, const uint8_t *src, size_t npages,
		       size_t batch, double *ret)
{
	uint8_t *dst = map_anon(npages * PAGE);
	uint64_t t;
	int rc;

	if (!dst)
		return -errno;
	rc = uffd_register(ufd, dst, npages * PAGE, UFFD_REG_MISSING);
	if (rc)
		goto out;
	t = now_ns();
	for (size_t i = 0; i < npages && !rc; i += batch) {
		size_t n = npages - i < batch ? npages - i : batch;

		rc = uffd_copy(ufd, (uintptr_t)(dst + i * PAGE),
			       src + i * PAGE, n * PAGE, UFFD_COPY_DONTWAKE);
	}
	t = now_ns() - t;
	if (!rc && memcmp(dst, src, npages * PAGE))
		rc = -EIO;
	*ret = (double)t / (double)npages;
	/* The fd reports UNMAP events: munmap of a registered range would
	 * wait for a reader that is not there. */
	uffd_unregister(ufd, dst, npages * PAGE);
out:
	munmap(dst, npages * PAGE);
	return rc;
}

/* ------------------------- one-page file mappings, not mergeable */

/*
 * What a plan of scattered read-only runs costs per extent: each run its
 * own MAP_FIXED mapping (every other page, so the kernel cannot merge
 * neighbours into one VMA), populated at once.
 */
static int m_map_scattered(int fd, size_t n, double *ret)
{
	uint8_t *base = mmap(NULL, 2 * n * PAGE, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uint64_t t;
	int rc = 0;

	if (base == MAP_FAILED)
		return -errno;
	t = now_ns();
	for (size_t i = 0; i < n && !rc; i++) {
		void *p = mmap(base + 2 * i * PAGE, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_FIXED, fd, (off_t)(i * PAGE));

		if (p == MAP_FAILED || madvise(p, PAGE, MADV_POPULATE_READ) < 0)
			rc = -errno;
	}
	t = now_ns() - t;
	munmap(base, 2 * n * PAGE);
	*ret = (double)t / (double)n;
	return rc;
}

/* ---------------------------------- MISSING fault, handler thread */

struct handler {
	int ufd, stop_fd;
	uintptr_t base;
	const uint8_t *src;
	int rc;
};

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct pollfd pfd[2] = {
		{ .fd = h->ufd, .events = POLLIN },
		{ .fd = h->stop_fd, .events = POLLIN },
	};
	struct uffd_ev ev[16];

	for (;;) {
		int n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			h->rc = -errno;
			return NULL;
		}
		if (pfd[1].revents)
			return NULL;
		n = uffd_read_events(h->ufd, ev, 16);
		if (n < 0 && n != -EAGAIN) {
			h->rc = n;
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			int rc;

			if (ev[i].kind != UFFD_EV_FAULT)
				continue;
			rc = uffd_copy(h->ufd, ev[i].addr,
				       h->src + (ev[i].addr - h->base), PAGE, 0);
			if (rc && rc != -EAGAIN) {
				h->rc = rc;
				return NULL;
			}
		}
	}
}

static int m_missing(int ufd, const uint8_t *src, size_t npages, double *ret)
{
	volatile uint8_t *dst = map_anon(npages * PAGE);
	struct handler h = { .ufd = ufd, .src = src };
	int pipefd[2];
	pthread_t th;
	uint64_t t;
	int rc;

	if (!dst)
		return -errno;
	h.base = (uintptr_t)dst;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out_unmap;
	}
	h.stop_fd = pipefd[0];
	rc = uffd_register(ufd, (void *)dst, npages * PAGE, UFFD_REG_MISSING);
	if (rc)
		goto out_pipe;
	rc = -pthread_create(&th, NULL, handler_main, &h);
	if (rc)
		goto out_unreg;
	t = now_ns();
	for (size_t i = 0; i < npages; i++)
		(void)dst[i * PAGE + 8];
	t = now_ns() - t;
	if (write(pipefd[1], "x", 1) != 1)
		rc = -errno;
	pthread_join(th, NULL);
	if (!rc)
		rc = h.rc;
	if (!rc && memcmp((const void *)dst, src, npages * PAGE))
		rc = -EIO;
	*ret = (double)t / (double)npages;
out_unreg:
	uffd_unregister(ufd, (void *)dst, npages * PAGE);
out_pipe:
	close(pipefd[0]);
	close(pipefd[1]);
out_unmap:
	munmap((void *)dst, npages * PAGE);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The MISSING fault's distribution, measured as tierctl replay --latency
 * measures a restore's: mincore() before each touch (untimed), then the
 * touch timed on its own; p50 and p99 in ns. @gap_ns apart (the faulting
 * thread busy, the handler left to sleep in poll), it is the floor of a
 * fault that arrives as a trace's do, after work: the handler's wake-up
 * is then part of every fault, which back to back it is not.
 */
static int m_missing_lat(int ufd, const uint8_t *src, size_t npages,
			 uint64_t gap_ns, double *p50, double *p99)
{
	volatile uint8_t *dst = map_anon(npages * PAGE);
	struct handler h = { .ufd = ufd, .src = src };
	uint64_t *ns = calloc(npages, sizeof(*ns));
	int pipefd[2] = { -1, -1 };
	pthread_t th;
	int rc;

	if (!dst || !ns) {
		rc = -ENOMEM;
		goto out_free;
	}
	h.base = (uintptr_t)dst;
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out_free;
	}
	h.stop_fd = pipefd[0];
	rc = uffd_register(ufd, (void *)dst, npages * PAGE, UFFD_REG_MISSING);
	if (rc)
		goto out_free;
	rc = -pthread_create(&th, NULL, handler_main, &h);
	if (rc)
		goto out_unreg;
	for (size_t i = 0; i < npages; i++) {
		unsigned char in;
		uint64_t t;

		if (mincore((void *)(dst + i * PAGE), PAGE, &in) < 0)
			in = 0;
		if (gap_ns)
			for (t = now_ns(); now_ns() - t < gap_ns;)
				;
		t = now_ns();
		(void)dst[i * PAGE + 8];
		ns[i] = now_ns() - t;
	}
	if (write(pipefd[1], "x", 1) != 1)
		rc = -errno;
	pthread_join(th, NULL);
	if (!rc)
		rc = h.rc;
	qsort(ns, npages, sizeof(*ns), cmp_u64);
	*p50 = (double)ns[npages / 2];
	*p99 = (double)ns[npages * 99 / 100];
out_unreg:
	uffd_unregister(ufd, (void *)dst, npages * PAGE);
out_free:
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
	if (dst)
		munmap((void *)dst, npages * PAGE);
	free(ns);
	return rc;
}

/* ------------------------------------------------------------------ */

struct metric {
	const char *name;
	double v[MAX_REPS];
	int n;
	int err;
};

static void usage(FILE *f)
{
	fputs("usage: floor [--mib N] [--reps N] [--dir DIR] [--miss-gap-us N] [--only-lat]\n"
	      "  --mib N          buffer size per measurement (default 64)\n"
	      "  --reps N         repetitions; medians are reported (default 5)\n"
	      "  --dir DIR        tmpfs directory for the file mapping (default /dev/shm)\n"
	      "  --miss-gap-us N  also the MISSING fault's p50/p99 with the touches\n"
	      "                   N us apart (a trace's spacing; the handler sleeps)\n"
	      "  --only-lat       measure the MISSING fault's distributions only\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "reps", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "miss-gap-us", required_argument, NULL, 'g' },
		{ "only-lat", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	enum { M_MEMCPY, M_UFFD_COPY, M_POP_READ, M_MISSING, M_POP_WRITE,
	       M_UFFD_COPY1, M_MAP1, M_PAR2, M_MISS_P50, M_MISS_P99,
	       M_GAP_P50, M_GAP_P99, M_N };
	struct metric m[M_N] = {
		[M_MEMCPY] = { .name = "memcpy_ns_per_page" },
		[M_UFFD_COPY] = { .name = "uffd_copy_batch512_ns_per_page" },
		[M_POP_READ] = { .name = "populate_read_ns_per_page" },
		[M_MISSING] = { .name = "missing_fault_ns_per_page" },
		[M_POP_WRITE] = { .name = "anon_populate_write_ns_per_page" },
		[M_UFFD_COPY1] = { .name = "uffd_copy_batch1_ns_per_page" },
		[M_MAP1] = { .name = "map_1page_populate_ns_per_mapping" },
		[M_PAR2] = { .name = "two_thread_speedup" },
		[M_MISS_P50] = { .name = "missing_fault_p50_ns" },
		[M_MISS_P99] = { .name = "missing_fault_p99_ns" },
		[M_GAP_P50] = { .name = "missing_fault_spaced_p50_ns" },
		[M_GAP_P99] = { .name = "missing_fault_spaced_p99_ns" },
	};
	bool only_lat = false, skip[M_N] = { 0 };
	double gap_us = 0;
	const char *dir = "/dev/shm";
	char path[4096];
	size_t mib = 64, npages;
	int reps = 5, c, fd, ufd = -1, uffd_err = 0;
	uint8_t *src;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mib = strtoul(optarg, NULL, 0); break;
		case 'r': reps = atoi(optarg); break;
		case 'd': dir = optarg; break;
		case 'g': gap_us = strtod(optarg, NULL); break;
		case 'l': only_lat = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	for (int k = 0; k < M_N; k++)
		skip[k] = (only_lat && k != M_MISS_P50 && k != M_MISS_P99 &&
			   k != M_GAP_P50 && k != M_GAP_P99) ||
			  (!(gap_us > 0) && (k == M_GAP_P50 || k == M_GAP_P99));
	if (!mib || reps < 1 || reps > MAX_REPS || gap_us < 0 || gap_us > 1e6) {
		usage(stderr);
		return 2;
	}
	npages = mib * 256;
	src = map_anon(npages * PAGE);
	if (!src) {
		perror("floor: mmap");
		return 1;
	}
	fill(src, npages * PAGE);

	snprintf(path, sizeof(path), "%s/tier-floor.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0) {
		fprintf(stderr, "floor: %s: %s\n", path, strerror(errno));
		return 1;
	}
	unlink(path);
	for (size_t done = 0; done < npages * PAGE;) {
		ssize_t w = write(fd, src + done, npages * PAGE - done);

		if (w <= 0) {
			fprintf(stderr, "floor: write: %s\n", strerror(errno));
			return 1;
		}
		done += (size_t)w;
	}

	uffd_err = uffd_open(UFFD_F_NONBLOCK, &ufd);

	/* Interleave the measurements so a noisy neighbour hits them all. */
	for (int r = 0; r < reps; r++) {
		for (int k = 0; k < M_N; k++) {
			double v = 0;
			int rc;

			if (m[k].err || skip[k])
				continue;
			switch (k) {
			case M_MEMCPY:
				rc = m_memcpy(src, npages, &v);
				break;
			case M_UFFD_COPY:
				rc = uffd_err ? uffd_err :
				     m_uffd_copy(ufd, src, npages, BATCH, &v);
				break;
			case M_UFFD_COPY1:
				rc = uffd_err ? uffd_err :
				     m_uffd_copy(ufd, src, npages / 4, 1, &v);
				break;
			case M_MAP1:
				rc = m_map_scattered(fd, npages / 4, &v);
				break;
			case M_PAR2:
				rc = m_two_threads(&v);
				break;
			case M_POP_READ:
				rc = m_populate_read(fd, npages, &v);
				break;
			case M_MISSING:
				rc = uffd_err ? uffd_err :
				     m_missing(ufd, src, npages, &v);
				break;
			case M_MISS_P50: {
				double v99 = 0;

				rc = uffd_err ? uffd_err :
				     m_missing_lat(ufd, src, npages / 4, 0, &v, &v99);
				if (!rc)
					m[M_MISS_P99].v[m[M_MISS_P99].n++] = v99;
				else
					m[M_MISS_P99].err = rc;
				break;
			}
			case M_GAP_P50: {
				double v99 = 0;

				/* fewer touches: each waits gap_us first */
				rc = uffd_err ? uffd_err :
				     m_missing_lat(ufd, src, npages / 16,
						   (uint64_t)(gap_us * 1e3), &v, &v99);
				if (!rc)
					m[M_GAP_P99].v[m[M_GAP_P99].n++] = v99;
				else
					m[M_GAP_P99].err = rc;
				break;
			}
			case M_MISS_P99:
			case M_GAP_P99:
				continue;	/* with their p50 */
			default:
				rc = m_populate_write(npages, &v);
				break;
			}
			if (rc) {
				m[k].err = rc;
				continue;
			}
			m[k].v[m[k].n++] = v;
		}
	}
	if (ufd >= 0)
		close(ufd);
	close(fd);

	printf("{\"pages\": %zu, \"reps\": %d", npages, reps);
	if (gap_us > 0)
		printf(", \"miss_gap_us\": %.1f", gap_us);
	for (int k = 0; k < M_N; k++) {
		if (skip[k])
			continue;
		if (m[k].err || !m[k].n) {
			printf(", \"%s\": null, \"%s_error\": \"%s\"", m[k].name,
			       m[k].name, strerror(-m[k].err));
			continue;
		}
		printf(", \"%s\": %.*f", m[k].name, k == M_PAR2 ? 2 : 1,
		       median(m[k].v, m[k].n));
	}
	printf("}\n");
	return 0;
}
