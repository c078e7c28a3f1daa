/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tier-iso: Faasm's table of memory isolation under threads (issue 13,
 * item 5), on this machine. T threads each run short-lived instances
 * back to back; an instance's memory starts as a snapshot of M pages,
 * the instance reads every cache line of K of them and writes one word
 * of each (the value it read: the sums it checks stay those of the
 * snapshot), and the memory is reset for the next instance. The ways
 * to give every instance its memory:
 *
 *   none      no protection (Faasm's reference): anonymous memory reset
 *             by MADV_DONTNEED, every touched page a zero-fill fault of
 *             the kernel's (its sums checked to be 0): an instance's fresh
 *             memory with nothing restored into it and nothing guarding
 *             it; the reference of the ratios unless --ref says otherwise
 *   reuse     one mapping, filled once, never reset: no isolation at all
 *             (an instance sees the last one's writes), so nothing to
 *             refill: what touching warm memory costs, for scale
 *   mmap      a new MAP_PRIVATE mapping of the snapshot (a memfd) per
 *             instance, munmap after: mmap_lock taken for writing twice
 *   mprotect  one such mapping kept, PROT_NONE between instances: each
 *             instance mprotects it open, resets it (MADV_DONTNEED drops
 *             its private pages) and closes it: mmap_lock for writing
 *   uffd      anonymous memory registered with a userfaultfd, reset by
 *             MADV_DONTNEED; a handler thread per instance thread copies
 *             each faulting page and the window after it (--window,
 *             8 pages by default as the library's) in from the snapshot
 *             in memory
 *   sigbus    the library: tier_restore_start(TIER_RESTORE_SIGBUS) of the
 *             snapshot imported and placed in a store (every page cold,
 *             in a file pool), reset by MADV_DONTNEED; the faulting thread
 *             calls tier_restore_fault from its SIGBUS handler, which
 *             preads the window from the pool file, checks every page's
 *             XXH3 and installs it (more work a fault than uffd's copy)
 *   eager     anonymous memory, the whole snapshot memcpy'd in at each
 *             instance's start, reset by MADV_DONTNEED
 *   cow       no protection change and no userfault: one MAP_PRIVATE
 *             mapping of the snapshot (the memfd) kept for good, reset
 *             by MADV_DONTNEED (mmap_lock for reading), its pages faulted
 *             back by the kernel, copy-on-write of the snapshot's shared
 *             page cache pages
 *
 * --work W adds W more passes over each touched page's cache lines: the
 * instance's own compute, against which the memory's setup is weighed.
 * --window N: pages a uffd or sigbus fault installs (sigbus: the
 * restore's prefetch attribute).
 *
 * Every cell is --reps slices of --seconds, each right after a slice of
 * the reference (--ref, none unless told) with as many threads; it
 * prints (medians over the slices) instances per second, that against
 * the reference's slices, the CPU time an instance cost (getrusage: user
 * + system, over the instances) and that against the reference's (its
 * over the mode's: a
 * throughput ratio that a machine shared with other work does not
 * skew), the CPU the process used as a share of min(T, cores), its
 * system share, and the machine's busy share (/proc/stat: other
 * processes too). One JSON line per cell with --json.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tier.h"
#include "store/uffd.h"

#define PG		4096
#define MAX_THREADS	256

enum mode { M_NONE, M_REUSE, M_MMAP, M_MPROTECT, M_UFFD, M_SIGBUS, M_EAGER,
	    M_COW, M_COUNT };

static const char *const mode_names[M_COUNT] = {
	"none", "reuse", "mmap", "mprotect", "uffd", "sigbus", "eager", "cow",
};

static size_t npages = 256, ntouch, nwork, window = 8;
static double seconds = 2;		/* a slice */
static unsigned reps = 5;
static uint8_t *snap_mem;		/* the snapshot's bytes */
static int snap_fd;			/* the same in a memfd */
static uint64_t *line_sum;		/* per page: its cache lines' first words */
static struct tier_snap *tsnap;
static atomic_bool stop;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "tier-iso: %s: %s\n", what,
		errno ? strerror(errno) : tier_errmsg());
	exit(1);
}

/* The instance: every cache line of the touched pages read, one word
 * written back; the sums must be the snapshot's (0 for zero memory). */
static void instance(uint8_t *mem, bool zero)
{
	size_t i, r, stride = npages / ntouch;
	static __thread volatile uint64_t junk;

	for (i = 0; i < ntouch; i++) {
		volatile uint64_t *w = (uint64_t *)(mem + i * stride * PG);
		uint64_t s = 0;
		unsigned l;

		for (l = 0; l < PG / 8; l += 8)
			s += w[l];
		/* the instance's compute: more passes over the page */
		for (r = 0; r < nwork; r++)
			for (l = 0; l < PG / 8; l += 8)
				junk += w[l] ^ r;
		w[1] = w[1];
		if (s != (zero ? 0 : line_sum[i * stride])) {
			fprintf(stderr, "tier-iso: page %zu: wrong bytes\n",
				i * stride);
			exit(1);
		}
	}
}

/* ------------------------------------------------------ uffd handler */

struct handler {
	int uffd, stop_fd[2];
	uint8_t *base;
	pthread_t t;
};

static void *handler_run(void *arg)
{
	struct handler *h = arg;
	struct pollfd pfd[2] = {
		{ .fd = h->uffd, .events = POLLIN },
		{ .fd = h->stop_fd[0], .events = POLLIN },
	};
	struct uffd_ev ev[16];
	int i, n;

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			die("poll");
		if (pfd[1].revents)
			return NULL;
		n = uffd_read_events(h->uffd, ev, 16);
		if (n < 0)
			die("uffd read");
		for (i = 0; i < n; i++) {
			size_t p, cnt;

			if (ev[i].kind != UFFD_EV_FAULT)
				continue;
			p = (ev[i].addr - (uintptr_t)h->base) / PG;
			cnt = npages - p < window ? npages - p : window;
			/* an EEXIST page of the window is skipped and woken */
			if (uffd_copy(h->uffd, ev[i].addr, snap_mem + p * PG,
				      cnt * PG, 0))
				die("UFFDIO_COPY");
		}
	}
}

/* ------------------------------------------------------ sigbus */

static __thread struct tier_restore_thread *cur;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	static const char msg[] = "tier-iso: a page could not be had: ";
	const char *why;

	(void)sig, (void)uc;
	if (cur && tier_restore_fault(cur, si->si_addr) == 0)
		return;
	/* write(2) only: this is a signal handler */
	why = cur ? tier_restore_thread_errmsg(cur) : "no context";
	if (write(2, msg, sizeof(msg) - 1) < 0 ||
	    write(2, why, strlen(why)) < 0 || write(2, "\n", 1) < 0)
		_exit(1);
	_exit(1);
}

/* ------------------------------------------------------ the workers */

struct worker {
	enum mode mode;
	pthread_barrier_t *go;
	uint64_t instances;
	/* per mode */
	uint8_t *mem;
	struct handler h;
	struct tier_restore *rs;
	pthread_t t;
};

static uint8_t *anon(int prot)
{
	uint8_t *p = mmap(NULL, npages * PG, prot,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static void reset(uint8_t *mem)
{
	if (madvise(mem, npages * PG, MADV_DONTNEED))
		die("madvise");
}

static void setup(struct worker *w)
{
	struct tier_restore_attr attr = { .flags = TIER_RESTORE_SIGBUS,
					  .prefetch = (unsigned)window };

	switch (w->mode) {
	case M_REUSE:
		w->mem = anon(PROT_READ | PROT_WRITE);
		memcpy(w->mem, snap_mem, npages * PG);
		break;
	case M_MMAP:
		break;
	case M_COW:
		w->mem = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE, snap_fd, 0);
		if (w->mem == MAP_FAILED)
			die("mmap");
		break;
	case M_MPROTECT:
		w->mem = mmap(NULL, npages * PG, PROT_NONE, MAP_PRIVATE,
			      snap_fd, 0);
		if (w->mem == MAP_FAILED)
			die("mmap");
		break;
	case M_UFFD:
		w->mem = anon(PROT_READ | PROT_WRITE);
		w->h.base = w->mem;
		if (uffd_open(UFFD_F_NONBLOCK | UFFD_F_NOEVENTS, &w->h.uffd) ||
		    uffd_register(w->h.uffd, w->mem, npages * PG,
				  UFFD_REG_MISSING))
			die("userfaultfd");
		if (pipe(w->h.stop_fd) ||
		    pthread_create(&w->h.t, NULL, handler_run, &w->h))
			die("handler");
		break;
	case M_SIGBUS:
		w->mem = anon(PROT_NONE);
		if (tier_restore_start(tsnap, w->mem, npages * PG, &attr, &w->rs))
			die("tier_restore_start");
		break;
	case M_EAGER:
	case M_NONE:
		w->mem = anon(PROT_READ | PROT_WRITE);
		break;
	default:
		break;
	}
}

static void teardown(struct worker *w)
{
	if (w->mode == M_UFFD) {
		if (write(w->h.stop_fd[1], "x", 1) != 1)
			die("stop");
		pthread_join(w->h.t, NULL);
		close(w->h.stop_fd[0]);
		close(w->h.stop_fd[1]);
		close(w->h.uffd);
	}
	if (w->rs)
		tier_restore_stop(w->rs);
	w->rs = NULL;
	if (w->mem)
		munmap(w->mem, npages * PG);
	w->mem = NULL;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint8_t *p;

	if (w->mode == M_SIGBUS && tier_restore_thread_open(w->rs, &cur))
		die("tier_restore_thread_open");
	pthread_barrier_wait(w->go);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		switch (w->mode) {
		case M_REUSE:
			instance(w->mem, false);
			break;
		case M_NONE:
			instance(w->mem, true);
			reset(w->mem);
			break;
		case M_MMAP:
			p = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE, snap_fd, 0);
			if (p == MAP_FAILED)
				die("mmap");
			instance(p, false);
			munmap(p, npages * PG);
			break;
		case M_MPROTECT:
			if (mprotect(w->mem, npages * PG, PROT_READ | PROT_WRITE))
				die("mprotect");
			instance(w->mem, false);
			reset(w->mem);
			if (mprotect(w->mem, npages * PG, PROT_NONE))
				die("mprotect");
			break;
		case M_UFFD:
		case M_SIGBUS:
		case M_COW:
			instance(w->mem, false);
			reset(w->mem);
			break;
		case M_EAGER:
			memcpy(w->mem, snap_mem, npages * PG);
			instance(w->mem, false);
			reset(w->mem);
			break;
		default:
			break;
		}
		w->instances++;
	}
	if (cur)
		tier_restore_thread_close(cur);
	cur = NULL;
	return NULL;
}

/* The machine's busy and total jiffies, all CPUs (/proc/stat line 1). */
static void proc_stat(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int i;

	*busy = *total = 0;
	if (!f)
		return;
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		for (i = 0; i < 8; i++)
			*total += v[i];
		*busy = *total - v[3] - v[4];	/* idle, iowait */
	}
	fclose(f);
}

static double tv_s(struct timeval tv)
{
	return tv.tv_sec + tv.tv_usec / 1e6;
}

struct cell {
	double rate, cpu, sys_share, machine;
	double cpu_us;			/* CPU time per instance */
	double ratio, cpu_ratio;	/* against none: medians of the slices */
};

#define MAX_REPS	32

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, unsigned n)
{
	double s[MAX_REPS];

	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* Each field's median over the slices. */
static struct cell median_cell(const struct cell *c, unsigned n)
{
	double v[MAX_REPS] = { 0 };
	struct cell m = { 0 };
	unsigned k;

#define MED(f) do {					\
		for (k = 0; k < n; k++)			\
			v[k] = c[k].f;			\
		m.f = median(v, n);			\
	} while (0)
	MED(rate);
	MED(cpu);
	MED(sys_share);
	MED(machine);
	MED(cpu_us);
#undef MED
	return m;
}

static enum mode ref = M_NONE;	/* --ref: the reference of the ratios */

static struct cell run_cell(enum mode mode, unsigned nt)
{
	static struct worker w[MAX_THREADS];
	pthread_barrier_t go;
	struct rusage r0, r1;
	uint64_t b0, t0, b1, t1, start, total = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct cell c;
	double wall, cpu;
	unsigned k;

	memset(w, 0, sizeof(w));
	pthread_barrier_init(&go, NULL, nt + 1);
	atomic_store(&stop, false);
	for (k = 0; k < nt; k++) {
		w[k].mode = mode;
		w[k].go = &go;
		setup(&w[k]);
		if (pthread_create(&w[k].t, NULL, work, &w[k]))
			die("pthread_create");
	}
	pthread_barrier_wait(&go);
	getrusage(RUSAGE_SELF, &r0);
	proc_stat(&b0, &t0);
	start = now_ns();
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&stop, true);
	for (k = 0; k < nt; k++)
		pthread_join(w[k].t, NULL);
	wall = (now_ns() - start) / 1e9;
	getrusage(RUSAGE_SELF, &r1);
	proc_stat(&b1, &t1);
	for (k = 0; k < nt; k++) {
		total += w[k].instances;
		teardown(&w[k]);
	}
	pthread_barrier_destroy(&go);
	cpu = tv_s(r1.ru_utime) - tv_s(r0.ru_utime) +
	      tv_s(r1.ru_stime) - tv_s(r0.ru_stime);
	c.rate = total / wall;
	c.cpu_us = total ? cpu * 1e6 / total : 0;
	/* of the CPUs the threads could use: min(T, cores) */
	c.cpu = cpu / (wall * (nt < ncpu ? nt : ncpu));
	c.sys_share = cpu > 0 ? (tv_s(r1.ru_stime) - tv_s(r0.ru_stime)) / cpu : 0;
	c.machine = t1 > t0 ? (double)(b1 - b0) / (t1 - t0) : 0;
	return c;
}

/* The snapshot: pseudo-random pages, in memory, in a memfd, and in a
 * store (imported, placed tiered without traces: every page cold, in
 * the store's file pool) for the library's mode. */
static void make_snapshot(const char *dir)
{
	char path[4200];
	struct tier_store *store;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i, l;
	FILE *f;

	snap_mem = aligned_alloc(PG, npages * PG);
	line_sum = calloc(npages, sizeof(*line_sum));
	if (!snap_mem || !line_sum)
		die("out of memory");
	for (i = 0; i < npages * PG / 8; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		memcpy(snap_mem + i * 8, &x, 8);
	}
	for (i = 0; i < npages; i++)
		for (l = 0; l < PG / 8; l += 8)
			line_sum[i] += ((uint64_t *)(snap_mem + i * PG))[l];
	snap_fd = memfd_create("tier-iso", MFD_CLOEXEC);
	if (snap_fd < 0 || write(snap_fd, snap_mem, npages * PG) !=
	    (ssize_t)(npages * PG))
		die("memfd");

	snprintf(path, sizeof(path), "%s/image", dir);
	f = fopen(path, "w");
	if (!f || fwrite(snap_mem, PG, npages, f) != npages || fclose(f))
		die(path);
	snprintf(path, sizeof(path), "%s/store", dir);
	if (tier_store_open(path, &store))
		die("tier_store_open");
	snprintf(path, sizeof(path), "%s/image", dir);
	if (tier_import(store, "iso", path, NULL) ||
	    tier_snap_open(store, "iso", &tsnap) ||
	    tier_place(tsnap, TIER_POLICY_TIERED, NULL))
		die("import");
}

static const char usage[] =
	"usage: tier-iso --dir DIR [--threads 1,2,8,64] [--modes LIST]\n"
	"                [--pages N] [--touch N] [--work W] [--seconds S]\n"
	"                [--reps R] [--window N] [--ref MODE] [--json]\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "threads", required_argument, NULL, 't' },
		{ "modes", required_argument, NULL, 'm' },
		{ "pages", required_argument, NULL, 'p' },
		{ "touch", required_argument, NULL, 'k' },
		{ "seconds", required_argument, NULL, 's' },
		{ "work", required_argument, NULL, 'w' },
		{ "reps", required_argument, NULL, 'r' },
		{ "window", required_argument, NULL, 'W' },
		{ "ref", required_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	const char *dir = NULL, *threads = "1,2,8,64";
	char modes[256] = "none,reuse,mmap,mprotect,uffd,sigbus,eager,cow";
	unsigned nt[16], nnt = 0, i, m;
	bool json = false, want[M_COUNT] = { 0 };
	char *s, *tok, *save;
	int c;

	while ((c = getopt_long(argc, argv, "d:t:m:p:k:s:w:r:W:R:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 't': threads = optarg; break;
		case 'm': snprintf(modes, sizeof(modes), "%s", optarg); break;
		case 'p': npages = strtoul(optarg, NULL, 0); break;
		case 'k': ntouch = strtoul(optarg, NULL, 0); break;
		case 's': seconds = strtod(optarg, NULL); break;
		case 'w': nwork = strtoul(optarg, NULL, 0); break;
		case 'r': reps = strtoul(optarg, NULL, 0); break;
		case 'W': window = strtoul(optarg, NULL, 0); break;
		case 'R':
			for (ref = 0; ref < M_COUNT && strcmp(optarg, mode_names[ref]); ref++)
				;
			if (ref == M_COUNT) {
				fprintf(stderr, "tier-iso: unknown mode '%s'\n", optarg);
				return 2;
			}
			break;
		case 'j': json = true; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (!dir || !npages || seconds <= 0 || !reps || reps > MAX_REPS ||
	    !window) {
		fputs(usage, stderr);
		return 2;
	}
	if (!ntouch || ntouch > npages)
		ntouch = npages;
	s = strdup(threads);
	for (tok = strtok_r(s, ",", &save); tok && nnt < 16;
	     tok = strtok_r(NULL, ",", &save)) {
		nt[nnt] = strtoul(tok, NULL, 10);
		if (!nt[nnt] || nt[nnt] > MAX_THREADS) {
			fputs(usage, stderr);
			return 2;
		}
		nnt++;
	}
	free(s);
	for (tok = strtok_r(modes, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (m = 0; m < M_COUNT && strcmp(tok, mode_names[m]); m++)
			;
		if (m == M_COUNT) {
			fprintf(stderr, "tier-iso: unknown mode '%s'\n", tok);
			return 2;
		}
		want[m] = true;
	}
	want[ref] = true;		/* the reference of every ratio */
	if (sigaction(SIGBUS, &sa, NULL))
		die("sigaction");
	make_snapshot(dir);

	if (!json)
		printf("%-9s %7s %12s %10s %8s %10s %8s %6s %6s %8s   (ref: %s)\n",
		       "mode", "threads", "instances/s", "ref/s", "vs ref",
		       "cpu_us/inst", "vs ref", "cpu", "sys", "machine",
		       mode_names[ref]);
	for (m = 0; m < M_COUNT; m++) {
		if (!want[m])
			continue;
		for (i = 0; i < nnt; i++) {
			/* none and the mode in turns, --reps slices each, the
			 * medians of the slices' ratios: on a machine shared
			 * with other work the load drifts within seconds, and
			 * two slices in a row see about the same */
			struct cell b, r, sb[MAX_REPS], sr[MAX_REPS];
			double rr[MAX_REPS], cr[MAX_REPS];
			unsigned k;

			for (k = 0; k < reps; k++) {
				sb[k] = run_cell(ref, nt[i]);
				sr[k] = m == ref ? sb[k] : run_cell(m, nt[i]);
				rr[k] = sr[k].rate / sb[k].rate;
				cr[k] = sb[k].cpu_us / sr[k].cpu_us;
			}
			b = median_cell(sb, reps);
			r = median_cell(sr, reps);
			r.ratio = median(rr, reps);
			r.cpu_ratio = median(cr, reps);
			if (json)
				printf("{\"mode\":\"%s\",\"threads\":%u,\"pages\":%zu,"
				       "\"touch\":%zu,\"work\":%zu,\"rate\":%.1f,"
				       "\"ref\":\"%s\",\"ref_rate\":%.1f,\"ratio\":%.3f,"
				       "\"cpu_us\":%.1f,\"cpu_ratio\":%.3f,"
				       "\"cpu\":%.3f,\"sys_share\":%.3f,"
				       "\"machine_busy\":%.3f}\n", mode_names[m],
				       nt[i], npages, ntouch, nwork, r.rate, mode_names[ref], b.rate,
				       r.ratio, r.cpu_us, r.cpu_ratio, r.cpu,
				       r.sys_share, r.machine);
			else
				printf("%-9s %7u %12.0f %10.0f %8.2f %10.0f %8.2f %5.0f%% %5.0f%% %7.0f%%\n",
				       mode_names[m], nt[i], r.rate, b.rate,
				       r.ratio, r.cpu_us, r.cpu_ratio, 100 * r.cpu,
				       100 * r.sys_share, 100 * r.machine);
			fflush(stdout);
		}
	}
	return 0;
}
