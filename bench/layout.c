/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * layout: what each way of laying a snapshot's scattered read-only pages
 * costs on this machine (issue 12 item 2), before the guest runs: a
 * sparse tmpfs object at guest offsets (the identity layout) holding
 * --ro % of --size in runs of 1-3 pages, scattered as tier-gen scatters
 * them, and these ways of making them resident in a fresh address range:
 *
 *   runs        one MAP_FIXED mmap a run, MADV_POPULATE_READ of each (a
 *               plan's extents with no clusters)
 *   cluster-G   one mmap a cluster (runs joined across at most G zero
 *               pages), one populated page a 64 KiB fault-around window
 *               in process_madvise batches of 128 (what a restore does,
 *               G chosen by place)
 *   overlay     one mmap of the whole object, the same windows
 *   overlay-1   one mmap, one madvise a window (no process_madvise)
 *   touch       one mmap, one byte read a window from user space
 *
 * MAP_POPULATE is not among them: on a sparse shmem object it would fill
 * every hole with a page of the shared object. Every way is checked: each
 * ro page resident (mincore) and its first word right. Prints one JSON
 * object: per way the median ms and ns per ro page, and the mappings.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif

#define PAGE		4096UL
#define WINDOW		(64 * 1024UL)
#define CHUNK		128
#define MAX_REPS	64

struct run { uint64_t page, n; };

struct obj {
	int fd;
	uint64_t npages;
	struct run *runs;
	size_t nruns;
	uint64_t ro;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static int cmp_run(const void *a, const void *b)
{
	const struct run *x = a, *y = b;

	return (x->page > y->page) - (x->page < y->page);
}

/* Runs of 1-3 pages at random, not touching each other, --ro % in all. */
static int make_obj(const char *dir, uint64_t size, double ro_pct,
		    struct obj *o)
{
	char path[4096];
	uint8_t *used, page[PAGE];
	uint64_t want, p, i;

	o->npages = size / PAGE;
	want = (uint64_t)(o->npages * ro_pct / 100);
	used = calloc(o->npages, 1);
	o->runs = calloc(want + 1, sizeof(*o->runs));
	if (!used || !o->runs)
		return -ENOMEM;
	while (o->ro < want) {
		uint64_t n = 1 + rnd() % 3, s = rnd() % o->npages;

		if (s + n + 1 >= o->npages || (s && used[s - 1]))
			continue;
		for (i = 0; i <= n && !used[s + i]; i++)
			;
		if (i <= n)
			continue;
		for (i = 0; i < n; i++)
			used[s + i] = 1;
		o->runs[o->nruns++] = (struct run){ s, n };
		o->ro += n;
	}
	qsort(o->runs, o->nruns, sizeof(*o->runs), cmp_run);
	snprintf(path, sizeof(path), "%s/tier-layout.XXXXXX", dir);
	o->fd = mkstemp(path);
	if (o->fd < 0)
		return -errno;
	unlink(path);
	if (ftruncate(o->fd, (off_t)size) < 0)
		return -errno;
	for (p = 0; p < o->npages; p++) {
		if (!used[p])
			continue;
		memset(page, (int)(p & 0xff), sizeof(page));
		memcpy(page, &p, sizeof(p));
		if (pwrite(o->fd, page, PAGE, (off_t)(p * PAGE)) != (ssize_t)PAGE)
			return -errno;
	}
	free(used);
	return 0;
}

/* Every ro page resident and its own. */
static int check(const struct obj *o, const uint8_t *base)
{
	unsigned char in;
	uint64_t p, w;

	for (size_t i = 0; i < o->nruns; i++)
		for (p = o->runs[i].page; p < o->runs[i].page + o->runs[i].n; p++) {
			if (mincore((void *)(base + p * PAGE), PAGE, &in) < 0 ||
			    !(in & 1))
				return -ENODATA;
			memcpy(&w, base + p * PAGE, sizeof(w));
			if (w != p)
				return -EIO;
		}
	return 0;
}

struct batch {
	struct iovec iov[CHUNK];
	size_t n;
	int pidfd;
	bool one;	/* a madvise each, not process_madvise */
};

static int flush(struct batch *b)
{
	size_t total = 0;

	if (!b->n)
		return 0;
	for (size_t k = 0; k < b->n; k++)
		total += b->iov[k].iov_len;
	if (!b->one && b->pidfd >= 0 &&
	    syscall(SYS_process_madvise, b->pidfd, b->iov, b->n,
		    MADV_POPULATE_READ, 0) == (ssize_t)total) {
		b->n = 0;
		return 0;
	}
	for (size_t k = 0; k < b->n; k++)
		if (madvise(b->iov[k].iov_base, b->iov[k].iov_len,
			    MADV_POPULATE_READ) < 0)
			return -errno;
	b->n = 0;
	return 0;
}

static int add(struct batch *b, void *addr, size_t len)
{
	b->iov[b->n++] = (struct iovec){ addr, len };
	return b->n == CHUNK ? flush(b) : 0;
}

enum way { W_RUNS, W_CLUSTER, W_OVERLAY, W_OVERLAY1, W_TOUCH };

/*
 * One way, once: a fresh PROT_NONE reservation, the mappings, the
 * populate; timed from the first mmap to the last populate. @gap: the
 * clusters' (W_CLUSTER). *@maps: the mmap calls made.
 */
static int lay(const struct obj *o, enum way way, uint64_t gap, int pidfd,
	       double *ms, uint64_t *maps)
{
	size_t len = o->npages * PAGE, i, j;
	uint8_t *base = mmap(NULL, len, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct batch b = { .pidfd = pidfd, .one = way == W_OVERLAY1 };
	uintptr_t last_win = UINTPTR_MAX;
	uint64_t t;
	int rc = 0;

	if (base == MAP_FAILED)
		return -errno;
	*maps = 0;
	t = now_ns();
	if (way == W_OVERLAY || way == W_OVERLAY1 || way == W_TOUCH) {
		if (mmap(base, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
			 o->fd, 0) == MAP_FAILED)
			rc = -errno;
		(*maps)++;
	}
	for (i = 0; i < o->nruns && !rc; i = j) {
		uint64_t a = o->runs[i].page, z = a + o->runs[i].n;

		j = i + 1;
		if (way == W_CLUSTER)	/* join runs across <= gap zero pages */
			for (; j < o->nruns && o->runs[j].page - z <= gap; j++)
				z = o->runs[j].page + o->runs[j].n;
		if (way == W_RUNS || way == W_CLUSTER) {
			if (mmap(base + a * PAGE, (z - a) * PAGE,
				 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
				 o->fd, (off_t)(a * PAGE)) == MAP_FAILED) {
				rc = -errno;
				break;
			}
			(*maps)++;
		}
		if (way == W_RUNS) {
			rc = add(&b, base + a * PAGE, (z - a) * PAGE);
			continue;
		}
		/* one page a fault-around window, as the restorer does */
		for (uint64_t k = i; k < j && !rc; k++)
			for (uint64_t p = o->runs[k].page;
			     p < o->runs[k].page + o->runs[k].n && !rc; p++) {
				uintptr_t w = ((uintptr_t)(base + p * PAGE)) / WINDOW;

				if (w == last_win)
					continue;
				last_win = w;
				if (way == W_TOUCH)
					(void)*(volatile uint8_t *)(base + p * PAGE);
				else
					rc = add(&b, base + p * PAGE, PAGE);
			}
	}
	if (!rc)
		rc = flush(&b);
	t = now_ns() - t;
	*ms = t / 1e6;
	if (!rc)
		rc = check(o, base);
	munmap(base, len);
	return rc;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void usage(FILE *f)
{
	fputs("usage: layout [--size 1G] [--ro PCT] [--reps N] [--dir DIR]\n"
	      "  --size N   the object's size in MiB (default 1024)\n"
	      "  --ro PCT   read-only pages, % of the object (default 5)\n"
	      "  --reps N   repetitions, interleaved; medians (default 7)\n"
	      "  --dir DIR  a tmpfs directory for the object (default /dev/shm)\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, 's' },
		{ "ro", required_argument, NULL, 'r' },
		{ "reps", required_argument, NULL, 'n' },
		{ "dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	static const struct { const char *name; enum way way; uint64_t gap; } ways[] = {
		{ "runs", W_RUNS, 0 },
		{ "cluster-4", W_CLUSTER, 4 },
		{ "cluster-64", W_CLUSTER, 64 },
		{ "cluster-1024", W_CLUSTER, 1024 },
		{ "overlay", W_OVERLAY, 0 },
		{ "overlay-1", W_OVERLAY1, 0 },
		{ "touch", W_TOUCH, 0 },
	};
	enum { NW = sizeof(ways) / sizeof(ways[0]) };
	double v[NW][MAX_REPS];
	uint64_t maps[NW] = { 0 };
	const char *dir = "/dev/shm";
	uint64_t mib = 1024;
	double ro = 5;
	int reps = 7, c, pidfd, err[NW] = { 0 };
	struct obj o = { .fd = -1 };

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': mib = strtoull(optarg, NULL, 0); break;
		case 'r': ro = strtod(optarg, NULL); break;
		case 'n': reps = atoi(optarg); break;
		case 'd': dir = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!mib || reps < 1 || reps > MAX_REPS || !(ro > 0 && ro < 50)) {
		usage(stderr);
		return 2;
	}
	c = make_obj(dir, mib << 20, ro, &o);
	if (c) {
		fprintf(stderr, "layout: the object in %s: %s\n", dir, strerror(-c));
		return 1;
	}
	pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	for (int r = 0; r < reps; r++)
		for (int k = 0; k < NW; k++) {
			if (err[k])
				continue;
			err[k] = lay(&o, ways[k].way, ways[k].gap, pidfd, &v[k][r],
				     &maps[k]);
		}
	printf("{\"pages\": %" PRIu64 ", \"ro_pages\": %" PRIu64 ", \"runs\": %zu, "
	       "\"reps\": %d, \"ways\": {", o.npages, o.ro, o.nruns, reps);
	for (int k = 0; k < NW; k++) {
		printf("%s\"%s\": ", k ? ", " : "", ways[k].name);
		if (err[k]) {
			printf("{\"error\": \"%s\"}", strerror(-err[k]));
			continue;
		}
		qsort(v[k], (size_t)reps, sizeof(double), cmp_dbl);
		printf("{\"ms\": %.3f, \"ns_per_ro_page\": %.1f, \"mappings\": %" PRIu64 "}",
		       v[k][reps / 2], v[k][reps / 2] * 1e6 / (double)o.ro, maps[k]);
	}
	printf("}}\n");
	return 0;
}
