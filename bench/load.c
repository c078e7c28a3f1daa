/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tier-load: restores of one snapshot under load, every touched byte
 * compared with the image. Rounds alternate two shapes until --seconds:
 *  A: --restores restores at once, --threads threads each faulting its
 *     share of the pages (in a scattered order);
 *  B: --clients restores at once with --prefetch pages a lazy fault,
 *     --threads threads each.
 * After each round it samples the pool server's RSS (--server-pid). It
 * measures, per first touch of a non-zero page not resident before it
 * (a lazy page: CXL-mapped and prefetched pages are resident), the time
 * the touch took: the fault latency a guest sees. Exits 1 on any wrong
 * byte, failed restore, or (with --rss-bound) a server RSS at the end
 * more than that many KiB above its RSS after the warm-up (rounds 1, 2).
 * Used by tests/load.sh (short) and bench/soak.sh (10 minutes).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tier.h"

#define PG	4096UL
#define HIST_US	1000000U	/* latency histogram: 1 us buckets up to 1 s */

static struct {
	const char *store, *snap, *image;
	pid_t server;
	unsigned restores, threads, clients, prefetch, seconds;
	long rss_bound_kib;	/* < 0: not checked */
} opt = { .restores = 64, .threads = 4, .clients = 16, .prefetch = 32,
	  .seconds = 60, .rss_bound_kib = -1 };

static struct tier_snap *snap;
static const uint8_t *image;
static uint64_t npages;
static uint8_t *zero;		/* a byte a page: all-zero in the image */
static uint64_t *hist;		/* HIST_US + 1 buckets, the last: >= 1 s */
static uint64_t lat_max_ns, faults_timed, verified, mismatches, failures;
static uint64_t expected;	/* pages the rounds should have verified */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* A field of /proc/PID/status ("VmRSS", "Threads"); -1 if none. */
static long proc_status(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = atol(line + n + 1);
			break;
		}
	fclose(f);
	return v;
}

static unsigned sampling;	/* atomic: 1 while a round runs */
static long threads_max;	/* the server's, seen during the rounds */

/* Samples the server's thread count while the restores run. */
static void *sampler_main(void *arg)
{
	while (__atomic_load_n(&sampling, __ATOMIC_ACQUIRE)) {
		long t = proc_status(opt.server, "Threads");

		if (t > threads_max)
			threads_max = t;
		usleep(20 * 1000);
	}
	return NULL;
}

static void on_error(struct tier_restore *rs, int err, const char *msg,
		     void *arg)
{
	/* The faulting thread stays blocked for good: report and leave. */
	fprintf(stderr, "tier-load: restore failed: %s\n", msg);
	_exit(1);
}

struct restore {
	uint8_t *addr;
	struct tier_restore *rs;
	unsigned threads;
	pthread_t *th;
};

struct toucher {
	struct restore *r;
	unsigned t;
};

static void *touch_main(void *arg)
{
	struct toucher *tc = arg;
	struct restore *r = tc->r;
	uint64_t m = (npages - tc->t + r->threads - 1) / r->threads, k;
	uint64_t stride = 7919 % m ? 7919 : 7907;	/* primes: a full cycle */
	uint64_t good = 0, bad = 0, timed = 0;

	for (k = 0; k < m; k++) {
		uint64_t p = ((k * stride) % m) * r->threads + tc->t;
		volatile uint8_t *b = r->addr + p * PG;
		unsigned char vec = 0;
		uint64_t t0, dt;

		if (p >= npages)
			continue;
		mincore((void *)b, PG, &vec);
		t0 = now_ns();
		(void)*b;
		dt = now_ns() - t0;
		/* zero pages are the kernel's own faults, not the pool's */
		if (!(vec & 1) && !zero[p]) {
			uint64_t us = dt / 1000, old;

			__atomic_fetch_add(&hist[us < HIST_US ? us : HIST_US], 1,
					   __ATOMIC_RELAXED);
			old = __atomic_load_n(&lat_max_ns, __ATOMIC_RELAXED);
			while (dt > old &&
			       !__atomic_compare_exchange_n(&lat_max_ns, &old, dt, false,
							    __ATOMIC_RELAXED,
							    __ATOMIC_RELAXED))
				;
			timed++;
		}
		if (memcmp((const void *)b, image + p * PG, PG))
			bad++;
		else
			good++;
	}
	__atomic_fetch_add(&verified, good, __ATOMIC_RELAXED);
	__atomic_fetch_add(&mismatches, bad, __ATOMIC_RELAXED);
	__atomic_fetch_add(&faults_timed, timed, __ATOMIC_RELAXED);
	return NULL;
}

/* @n restores at once, @threads touchers each; returns the faults served. */
static uint64_t round_run(unsigned n, unsigned threads, unsigned prefetch)
{
	struct tier_restore_attr attr = {
		.prefetch = prefetch,
		.on_error = on_error,
	};
	struct restore *r = calloc(n, sizeof(*r));
	struct toucher *tc = calloc((size_t)n * threads, sizeof(*tc));
	size_t len = npages * PG;
	uint64_t faults = 0;
	unsigned i, t, c;

	if (!r || !tc) {
		fprintf(stderr, "tier-load: out of memory\n");
		exit(1);
	}
	for (i = 0; i < n; i++) {
		int rc;

		r[i].threads = threads;
		r[i].th = calloc(threads, sizeof(*r[i].th));
		r[i].addr = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (r[i].addr == MAP_FAILED || !r[i].th) {
			fprintf(stderr, "tier-load: mmap: %s\n", strerror(errno));
			exit(1);
		}
		rc = tier_restore_start(snap, r[i].addr, len, &attr, &r[i].rs);
		if (rc) {
			fprintf(stderr, "tier-load: restore %u of %u: %s\n", i + 1, n,
				tier_errmsg());
			__atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
			r[i].rs = NULL;
			continue;
		}
	}
	/* Every restore is up before the first touch: all fault at once. */
	for (i = 0; i < n; i++)
		for (t = 0; r[i].rs && t < threads; t++) {
			tc[i * threads + t] = (struct toucher){ &r[i], t };
			if (pthread_create(&r[i].th[t], NULL, touch_main,
					   &tc[i * threads + t])) {
				fprintf(stderr, "tier-load: no thread\n");
				exit(1);
			}
		}
	for (i = 0; i < n; i++) {
		struct tier_restore_stats st;

		if (!r[i].rs)
			goto unmap;
		for (t = 0; t < threads; t++)
			pthread_join(r[i].th[t], NULL);
		if (tier_restore_error(r[i].rs)) {
			fprintf(stderr, "tier-load: restore %u: error %d\n", i + 1,
				tier_restore_error(r[i].rs));
			__atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
		}
		tier_restore_stats(r[i].rs, &st);
		for (c = 0; c < TIER_CLASS_MAX; c++)
			faults += st.faults[c];
		tier_restore_stop(r[i].rs);
unmap:
		munmap(r[i].addr, len);
		free(r[i].th);
	}
	free(r);
	free(tc);
	return faults;
}

static uint64_t percentile(double q)
{
	uint64_t want = (uint64_t)(q * faults_timed), seen = 0, us;

	for (us = 0; us <= HIST_US; us++) {
		seen += hist[us];
		if (seen > want)
			return us;
	}
	return HIST_US;
}

static const char usage[] =
	"usage: tier-load --store DIR --snap NAME --image FILE [options]\n"
	"  --server-pid PID   sample this pool server's RSS after each round\n"
	"  --restores N       restores at once in an A round (default 64)\n"
	"  --threads N        faulting threads a restore (default 4)\n"
	"  --clients N        restores at once in a B round (default 16)\n"
	"  --prefetch N       pages a lazy fault in B rounds (default 32)\n"
	"  --seconds N        rounds until then, at least 3 (default 60)\n"
	"  --rss-bound KIB    fail if the server's RSS grows more than this\n"
	"                     after the warm-up (rounds 1 and 2)\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "snap", required_argument, NULL, 'n' },
		{ "image", required_argument, NULL, 'i' },
		{ "server-pid", required_argument, NULL, 'p' },
		{ "restores", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "clients", required_argument, NULL, 'c' },
		{ "prefetch", required_argument, NULL, 'f' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "rss-bound", required_argument, NULL, 'b' },
		{ 0 }
	};
	struct tier_store *store;
	long rss, rss_warm = -1, rss_max = 0;
	uint64_t start, faults, round_faults;
	unsigned rounds = 0;
	struct stat st;
	int c, fd;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': opt.store = optarg; break;
		case 'n': opt.snap = optarg; break;
		case 'i': opt.image = optarg; break;
		case 'p': opt.server = atoi(optarg); break;
		case 'r': opt.restores = atoi(optarg); break;
		case 't': opt.threads = atoi(optarg); break;
		case 'c': opt.clients = atoi(optarg); break;
		case 'f': opt.prefetch = atoi(optarg); break;
		case 'S': opt.seconds = atoi(optarg); break;
		case 'b': opt.rss_bound_kib = atol(optarg); break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (!opt.store || !opt.snap || !opt.image || !opt.restores ||
	    !opt.threads || !opt.clients) {
		fputs(usage, stderr);
		return 2;
	}
	/* A hang is a failure, not a stuck CI job. */
	signal(SIGALRM, SIG_DFL);
	alarm(opt.seconds * 3 + 120);

	if (tier_store_open(opt.store, &store) ||
	    tier_snap_open(store, opt.snap, &snap)) {
		fprintf(stderr, "tier-load: %s\n", tier_errmsg());
		return 1;
	}
	npages = tier_snap_npages(snap);
	fd = open(opt.image, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != npages * PG) {
		fprintf(stderr, "tier-load: %s: not the snapshot's image\n", opt.image);
		return 1;
	}
	image = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
	hist = calloc(HIST_US + 1, sizeof(*hist));
	zero = calloc(npages, 1);
	if (image == MAP_FAILED || !hist || !zero) {
		fprintf(stderr, "tier-load: %s: %s\n", opt.image, strerror(errno));
		return 1;
	}
	{
		static const uint8_t z[PG];
		uint64_t p;

		for (p = 0; p < npages; p++)
			zero[p] = !memcmp(image + p * PG, z, PG);
	}

	printf("# round shape restores threads prefetch faults verified_pages elapsed_s server_rss_kib\n");
	start = now_ns();
	faults = 0;
	do {
		bool a = rounds % 2 == 0;
		unsigned n = a ? opt.restores : opt.clients;

		pthread_t sampler;

		__atomic_store_n(&sampling, 1, __ATOMIC_RELEASE);
		if (opt.server &&
		    pthread_create(&sampler, NULL, sampler_main, NULL) == 0) {
			round_faults = round_run(n, opt.threads, a ? 0 : opt.prefetch);
			__atomic_store_n(&sampling, 0, __ATOMIC_RELEASE);
			pthread_join(sampler, NULL);
		} else {
			round_faults = round_run(n, opt.threads, a ? 0 : opt.prefetch);
		}
		expected += (uint64_t)n * npages;
		faults += round_faults;
		rounds++;
		rss = opt.server ? proc_status(opt.server, "VmRSS") : -1;
		if (rounds == 2)
			rss_warm = rss;
		if (rss > rss_max)
			rss_max = rss;
		printf("%u %s %u %u %u %llu %llu %.1f %ld\n", rounds, a ? "A" : "B",
		       n, opt.threads, a ? 8 : opt.prefetch,
		       (unsigned long long)round_faults,
		       (unsigned long long)verified,
		       (now_ns() - start) / 1e9, rss);
		fflush(stdout);
	} while (rounds < 3 ||
		 now_ns() - start < (uint64_t)opt.seconds * 1000000000ULL);

	printf("load: %u rounds, %llu pages verified, %llu mismatches, %llu failed restores, %llu faults served\n",
	       rounds, (unsigned long long)verified,
	       (unsigned long long)mismatches, (unsigned long long)failures,
	       (unsigned long long)faults);
	printf("fault latency: %llu timed, p50 %llu us, p99 %llu us, max %llu us\n",
	       (unsigned long long)faults_timed,
	       (unsigned long long)percentile(0.50),
	       (unsigned long long)percentile(0.99),
	       (unsigned long long)(lat_max_ns / 1000));
	if (opt.server)
		printf("server rss: after warm-up %ld KiB, at the end %ld KiB, max %ld KiB; at most %ld threads\n",
		       rss_warm, rss, rss_max, threads_max);
	tier_snap_close(snap);
	tier_store_close(store);

	if (mismatches || failures || verified != expected) {
		fprintf(stderr, "tier-load: %llu of %llu pages verified, %llu wrong\n",
			(unsigned long long)verified, (unsigned long long)expected,
			(unsigned long long)mismatches);
		return 1;
	}
	if (opt.rss_bound_kib >= 0 &&
	    (rss < 0 || rss_warm < 0 || rss > rss_warm + opt.rss_bound_kib)) {
		fprintf(stderr, "tier-load: server RSS %ld KiB at the end, over %ld KiB after the warm-up + %ld\n",
			rss, rss_warm, opt.rss_bound_kib);
		return 1;
	}
	return 0;
}
