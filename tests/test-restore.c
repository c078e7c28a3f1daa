/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: root -- the restorer executes a plan with every method and
 * source (CXL dir tier, file pool, the image, a local file, zero gaps,
 * anonymous), every byte equals the image, the counters are exact, a
 * wrong prediction on a CXL page stays private, and a dead pool or a
 * corrupt page fails closed (the faulting thread stays blocked).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <linux/falloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "cxl/cxl.h"
#include "placer/placer.h"
#include "rdma/pool.h"
#include "store/restore.h"
#include "store/snap.h"
#include "store/uffd.h"
#include "util/checksum.h"
#include "util/file.h"
#include "util/uri.h"

#define PG	4096UL
#define NP	768UL

static char dir[] = "/tmp/tier-test-restore.XXXXXX";
static char cxl_uri[256], pool_uri[256];
static const char *plan_pool = pool_uri;	/* the pool plans point at */
static uint8_t *image;			/* the reference bytes */
static struct tier_store store;
static struct tier_snap snap;

/* the restorer's test switches, for the start_plan calls that follow */
static struct restore_opts topts;

static int start_plan(struct tier_snap *s, const struct plan *plan,
		      void *addr, size_t len,
		      const struct tier_restore_attr *attr,
		      struct tier_restore **ret)
{
	if (!plan)
		return restore_start_plan(s, plan, addr, len, attr, ret);
	return restore_start_opts(s, plan, addr, len, attr, &topts, ret);
}

static int is_zero_page(uint64_t p)
{
	/* B, G, M below, plus a few zero pages inside data extents */
	return (p >= 32 && p < 48) || (p >= 240 && p < 248) ||
	       (p >= 430 && p < 512) || p == 200 || p == 350 || p == 700;
}

static void fill_page(uint8_t *b, uint64_t p)
{
	uint64_t i;

	if (is_zero_page(p)) {
		memset(b, 0, PG);
		return;
	}
	for (i = 0; i < PG; i++)
		b[i] = (uint8_t)(p * 131 + i * 7 + (i >> 8));
	memcpy(b, &p, sizeof(p));
}

/* The plan: page, npages, class, source, method, flags, src_off (pages) */
#define E(pg, n, c, s, m, f, off) { pg, n, TIER_CLASS_##c, PLACER_SRC_##s, \
				    PLACER_M_##m, f, (uint64_t)(off) * PG }
static struct placer_ext ext[] = {
	E(0,   32, RO,   CXL,   MAP,  PLACER_F_POPULATE, 0),	/* A */
	E(32,  16, ZERO, NONE,  ANON, 0, 0),			/* B */
	E(48,  32, RO,   IMAGE, MAP,  PLACER_F_POPULATE, 48),	/* C */
	E(80,  32, RO,   LOCAL, MAP,  PLACER_F_READAHEAD, 0),	/* D */
	E(112, 64, RW,   POOL,  COPY, 0, 0),			/* E */
	E(176, 64, COLD, POOL,  LAZY, 0, 64),			/* F */
	E(240, 8,  ZERO, NONE,  LAZY, 0, 0),			/* G */
	E(248, 28, COLD, IMAGE, LAZY, 0, 248),			/* H1 */
	E(276, 36, COLD, IMAGE, LAZY, 0, 276),			/* H2 */
	E(312, 28, RO,   CXL,   MAP,  0, 32),			/* I */
	E(340, 32, RW,   CXL,   COPY, 0, 60),			/* J */
	E(372, 28, RW,   LOCAL, COPY, 0, 32),			/* K */
	E(400, 30, COLD, LOCAL, LAZY, 0, 60),			/* L */
	E(430, 82, ZERO, NONE,  ANON, 0, 0),			/* M */
	E(512, 28, COLD, CXL,   LAZY, 0, 92),			/* CL */
	E(540, 60, COLD, POOL,  LAZY, 0, 128),			/* N */
	E(600, 40, RO,   IMAGE, MAP,  0, 600),			/* O1 */
	E(640, 20, RO,   IMAGE, MAP,  PLACER_F_POPULATE, 640),	/* O2 */
	E(660, 108, COLD, POOL, LAZY, 0, 188),			/* P */
};
#define NEXT (sizeof(ext) / sizeof(ext[0]))
enum { EXT_F = 5, EXT_L = 12 };

static uint64_t obj_pages(unsigned src)
{
	uint64_t end = 0;
	size_t i;

	for (i = 0; i < NEXT; i++)
		if (ext[i].source == src &&
		    ext[i].src_off / PG + ext[i].npages > end)
			end = ext[i].src_off / PG + ext[i].npages;
	return end;
}

/* The plan's pool segment at @uri; @bad (not 0): that page's byte 5
 * flipped in it. */
static void write_pool_bad(const char *uri, uint64_t bad)
{
	struct pool *pl;
	struct pool_wseg *pw;
	struct tier_uri u;
	char name[128];
	size_t i;

	snap_object_name(&snap, TIER_POLICY_TIERED, 0, name, sizeof(name));
	t_ok(uri_parse(uri, URI_WANT_POOL, &u));
	t_ok(pool_open(&u, &pl));
	t_ok(pool_create(pl, name, obj_pages(PLACER_SRC_POOL) * PG, &pw));
	for (i = 0; i < NEXT; i++)
		if (ext[i].source == PLACER_SRC_POOL)
			t_ok(pool_write(pw, ext[i].src_off,
					image + ext[i].page * PG,
					ext[i].npages * PG));
	for (i = 0; bad && i < NEXT; i++)
		if (ext[i].source == PLACER_SRC_POOL && bad >= ext[i].page &&
		    bad < ext[i].page + ext[i].npages) {
			uint8_t x = image[bad * PG + 5] ^ 0x40;

			t_ok(pool_write(pw, ext[i].src_off +
					(bad - ext[i].page) * PG + 5, &x, 1));
		}
	t_ok(pool_commit(pw));
	pool_close(pl);
}

static void write_pool(const char *uri)
{
	write_pool_bad(uri, 0);
}

static void write_objects(void)
{
	uint64_t ncxl = obj_pages(PLACER_SRC_CXL);
	uint64_t nlocal = obj_pages(PLACER_SRC_LOCAL);
	struct cxl_tier *ct;
	struct cxl_wobj *cw;
	struct tier_uri u;
	char path[4096 + 64], name[128];
	int fd;
	size_t i;

	snap_object_name(&snap, TIER_POLICY_TIERED, 0, name, sizeof(name));
	t_ok(uri_parse(cxl_uri, URI_WANT_CXL, &u));
	t_ok(cxl_open(&u, &ct));
	t_ok(cxl_create(ct, name, ncxl * PG, &cw));
	snap_local_path(&snap, TIER_POLICY_TIERED, 0, path, sizeof(path));
	*strrchr(path, '/') = 0;
	t_ok(mkdir_p(path, 0755));
	snap_local_path(&snap, TIER_POLICY_TIERED, 0, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_assert(ftruncate(fd, nlocal * PG) == 0);

	for (i = 0; i < NEXT; i++) {
		const struct placer_ext *e = &ext[i];
		const uint8_t *src = image + e->page * PG;
		size_t len = e->npages * PG;

		if (e->source == PLACER_SRC_CXL)
			t_ok(cxl_write(cw, e->src_off, src, len));
		else if (e->source == PLACER_SRC_LOCAL)
			t_ok(pwrite_full(fd, src, len, e->src_off, path));
	}
	t_ok(cxl_commit(cw));
	close(fd);
	cxl_close(ct);
	write_pool(pool_uri);
}

/* A snapshot built by hand, as tier_snap_open would fill it. */
static void make_snap(void)
{
	char path[4096 + 64];
	uint64_t p;
	int fd;

	image = malloc(NP * PG);
	t_assert(image);
	for (p = 0; p < NP; p++)
		fill_page(image + p * PG, p);

	snprintf(store.path, sizeof(store.path), "%s/store", dir);
	snap.store = &store;
	snprintf(snap.name, sizeof(snap.name), "snap");
	t_assert((size_t)snprintf(snap.dir, sizeof(snap.dir), "%s/snapshots/snap",
				  store.path) < sizeof(snap.dir));
	t_assert((size_t)snprintf(snap.image, sizeof(snap.image), "%s/image",
				  snap.dir) < sizeof(snap.image));
	t_ok(mkdir_p(snap.dir, 0755));
	snap.size = NP * PG;
	snap.npages = NP;
	snap.zero = calloc((NP + 63) / 64, sizeof(uint64_t));
	snap.csum = calloc(NP, sizeof(uint64_t));
	t_assert(snap.zero && snap.csum);
	for (p = 0; p < NP; p++) {
		if (is_zero_page(p)) {
			snap.zero[p / 64] |= 1ULL << (p % 64);
			snap.nzero++;
		}
		snap.csum[p] = tier_csum(image + p * PG, PG);
	}
	snap.image_fd = -1;
	fd = open(snap.image, O_RDWR | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_ok(pwrite_full(fd, image, NP * PG, 0, snap.image));
	close(fd);
	snprintf(path, sizeof(path), "%s/cxl", dir);
	t_assert((size_t)snprintf(cxl_uri, sizeof(cxl_uri), "cxl=dir:%s", path) <
		 sizeof(cxl_uri));
	snprintf(pool_uri, sizeof(pool_uri), "pool=file:%s/pool", dir);
}

static struct plan make_plan(void)
{
	struct plan plan = { .ext = ext, .n = NEXT };

	memcpy(plan.hdr.magic, FMT_PLAN_MAGIC, 8);
	plan.hdr.policy = TIER_POLICY_TIERED;
	plan.hdr.npages = NP;
	plan.hdr.nextents = NEXT;
	snprintf(plan.hdr.cxl, sizeof(plan.hdr.cxl), "%s", cxl_uri);
	snprintf(plan.hdr.pool, sizeof(plan.hdr.pool), "%s", plan_pool);
	return plan;
}

static void *map_range(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	t_assert(p != MAP_FAILED);
	return p;
}

/* Touches pages [from, to) of @mem in order from another thread (the
 * handler must serve it) and compares them with the image. */
struct touch {
	const uint8_t *mem;
	uint64_t from, to, first;
	int bad;
	uint64_t bad_page;
};

static void *toucher(void *arg)
{
	struct touch *t = arg;
	uint64_t p;

	for (p = t->from; p < t->to; p++) {
		if (memcmp(t->mem + p * PG, image + (t->first + p) * PG, PG)) {
			t->bad++;
			t->bad_page = t->first + p;
		}
	}
	return NULL;
}

static void touch_all(const uint8_t *mem, uint64_t first, uint64_t n)
{
	struct touch t = { .mem = mem, .from = 0, .to = n, .first = first };
	pthread_t th;

	t_assert(pthread_create(&th, NULL, toucher, &t) == 0);
	t_assert(pthread_join(th, NULL) == 0);
	if (t.bad)
		fprintf(stderr, "%d pages differ, last %llu\n", t.bad,
			(unsigned long long)t.bad_page);
	t_eq(t.bad, 0);
}

/* Lazy faults expected for a sequential touch with window @win: a window
 * may cross into the next extent if it is lazy, of the same source and
 * contiguous in it. */
static int continues(const struct placer_ext *a, const struct placer_ext *b)
{
	return b->method == PLACER_M_LAZY && b->source == a->source &&
	       (a->source == PLACER_SRC_NONE ||
		a->src_off + a->npages * PG == b->src_off);
}

static uint64_t expect_faults(unsigned win, unsigned cls)
{
	uint64_t faults = 0, run;
	size_t i = 0, j;

	while (i < NEXT) {
		if (ext[i].method != PLACER_M_LAZY) {
			i++;
			continue;
		}
		run = ext[i].npages;
		for (j = i + 1; j < NEXT && continues(&ext[j - 1], &ext[j]); j++)
			run += ext[j].npages;
		if (ext[i].cls == cls)
			faults += (run + win - 1) / win;
		i = j;
	}
	return faults;
}

static uint64_t count(unsigned what, int by_method, unsigned src_or_cls,
		      int any)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < NEXT; i++) {
		if (by_method && ext[i].method != what)
			continue;
		if (!by_method && ext[i].cls != what)
			continue;
		if (!any && ext[i].source != src_or_cls)
			continue;
		n += ext[i].npages;
	}
	return n;
}

static void full_restore(unsigned win)
{
	struct tier_restore_attr attr = { .prefetch = win };
	struct tier_restore_stats st;
	struct tier_restore *rs;
	struct plan plan = make_plan();
	uint8_t *mem = map_range(NP * PG);
	uint64_t lazy_pool, lazy_local, c;

	memset(mem, 0xee, NP * PG);	/* whatever was there must go */
	t_ok(start_plan(&snap, &plan, mem, NP * PG, &attr, &rs));
	t_eq(tier_restore_fd(rs), -EINVAL);	/* it has its own thread */

	tier_restore_stats(rs, &st);
	t_eq(st.prefetched_pages, count(PLACER_M_COPY, 1, 0, 1));
	t_eq(st.prefetched_pages, 64 + 32 + 28);
	/* mmaps: A, C, D, I, O1+O2 in one; registrations: E..H2, J..L,
	 * CL+N, P */
	t_eq(st.mappings, 5 + 4);
	t_eq(st.cxl_mapped_bytes, (32 + 28) * PG);
	for (c = 0; c < TIER_CLASS_MAX; c++) {
		t_eq(st.pages[c], count(c, 0, 0, 1));
		t_eq(st.faults[c], 0);
	}
	t_eq(st.lazy_pages, 0);
	t_eq(st.pool_bytes, 64 * PG);			/* E */
	t_eq(st.local_bytes, 28 * PG);			/* K */
	t_assert(st.setup_ns >= st.map_ns + st.register_ns + st.prefetch_ns);

	touch_all(mem, 0, NP);

	tier_restore_stats(rs, &st);
	t_eq(st.error, 0);
	t_eq(tier_restore_error(rs), 0);
	t_eq(st.faults[TIER_CLASS_COLD], expect_faults(win, TIER_CLASS_COLD));
	t_eq(st.faults[TIER_CLASS_ZERO], expect_faults(win, TIER_CLASS_ZERO));
	t_eq(st.faults[TIER_CLASS_RO], 0);
	t_eq(st.faults[TIER_CLASS_RW], 0);
	if (win == 1)
		t_eq(st.faults[TIER_CLASS_COLD] + st.faults[TIER_CLASS_ZERO],
		     count(PLACER_M_LAZY, 1, 0, 1));
	if (win == 8)	/* H1+H2 cross: 64/8, not 28/8 + 36/8 */
		t_eq(st.faults[TIER_CLASS_COLD], 8 + 8 + 4 + 4 + 8 + 14);
	t_eq(st.lazy_pages, count(PLACER_M_LAZY, 1, 0, 1));
	lazy_pool = count(PLACER_M_LAZY, 1, PLACER_SRC_POOL, 0);
	lazy_local = count(PLACER_M_LAZY, 1, PLACER_SRC_IMAGE, 0) +
		     count(PLACER_M_LAZY, 1, PLACER_SRC_LOCAL, 0);
	t_eq(st.pool_bytes, (64 + lazy_pool) * PG);
	t_eq(st.local_bytes, (28 + lazy_local) * PG);
	t_assert(st.fault_ns > 0);

	/* every byte again, from this thread: nothing faults any more */
	t_assert(memcmp(mem, image, NP * PG) == 0);
	tier_restore_stats(rs, &st);
	t_eq(st.lazy_pages, count(PLACER_M_LAZY, 1, 0, 1));

	tier_restore_stop(rs);
	t_assert(memcmp(mem, image, NP * PG) == 0);	/* still there */
	t_assert(munmap(mem, NP * PG) == 0);
}

/* The Cpus_allowed_list line of a task of ours (NULL: this thread);
 * false if the task exited since it was listed. */
static bool cpus_allowed(const char *tid, char *buf, size_t len)
{
	char path[128], line[256];
	FILE *f;

	if (tid)
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
	else
		snprintf(path, sizeof(path), "/proc/thread-self/status");
	f = fopen(path, "r");
	if (!f && tid && errno == ENOENT)
		return false;
	t_assert(f);
	buf[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cpus_allowed_list:", 18))
			snprintf(buf, len, "%s", line + 18);
	fclose(f);
	t_assert(buf[0]);
	return true;
}

/*
 * The populator starts on another CPU than the caller's but takes the
 * caller's affinity back: every thread of the restore (it becomes the
 * fault handler) may run where the caller may.
 */
static void affinity(void)
{
	struct tier_restore_attr attr = { 0 };
	struct tier_restore *rs;
	struct plan plan = make_plan();
	uint8_t *mem = map_range(NP * PG);
	char want[256], got[256];
	struct dirent *d;
	cpu_set_t cpus;
	unsigned n = 0;
	DIR *dp;

	t_assert(sched_getaffinity(0, sizeof(cpus), &cpus) == 0);
	if (CPU_COUNT(&cpus) < 2) {
		printf("affinity: one CPU allowed, nothing to check\n");
		t_assert(munmap(mem, NP * PG) == 0);
		return;
	}
	cpus_allowed(NULL, want, sizeof(want));
	t_ok(start_plan(&snap, &plan, mem, NP * PG, &attr, &rs));
	dp = opendir("/proc/self/task");
	t_assert(dp);
	while ((d = readdir(dp))) {
		if (d->d_name[0] == '.')
			continue;
		/* a thread of an earlier test (a pool server's) may end
		 * meanwhile */
		if (!cpus_allowed(d->d_name, got, sizeof(got)))
			continue;
		t_assert(strcmp(got, want) == 0);
		n++;
	}
	closedir(dp);
	t_assert(n >= 2);		/* this thread and the handler */
	tier_restore_stop(rs);
	t_assert(munmap(mem, NP * PG) == 0);
}

/* A wrong guess: writing a page mapped from the CXL tier stays private. */
static void cow(void)
{
	struct tier_restore *rs;
	struct plan plan = make_plan();
	uint8_t *mem = map_range(NP * PG), *before;
	char path[4096 + 64], name[128];
	void *obj;
	size_t objlen;

	snap_object_name(&snap, TIER_POLICY_TIERED, 0, name, sizeof(name));
	snprintf(path, sizeof(path), "%s/cxl/%s.obj", dir, name);
	t_ok(read_file(path, &obj, &objlen));
	before = obj;
	t_eq(objlen, obj_pages(PLACER_SRC_CXL) * PG);

	t_ok(start_plan(&snap, &plan, mem, NP * PG, NULL, &rs));
	memset(mem + 5 * PG, 0x77, PG);			/* A, page 5 */
	memset(mem + 320 * PG + 100, 0x66, 10);		/* I, page 320 */
	t_eq(mem[5 * PG + 4095], 0x77);
	t_eq(mem[320 * PG + 105], 0x66);
	t_assert(memcmp(mem + 4 * PG, image + 4 * PG, PG) == 0);
	tier_restore_stop(rs);
	t_assert(munmap(mem, NP * PG) == 0);

	t_ok(read_file(path, &obj, &objlen));
	t_eq(objlen, obj_pages(PLACER_SRC_CXL) * PG);
	t_assert(memcmp(obj, before, objlen) == 0);
	t_assert(memcmp((uint8_t *)obj + 5 * PG, image + 5 * PG, PG) == 0);
	free(obj);
	free(before);
}

/* A window in the middle of the image: extents are clipped. */
static void window(void)
{
	struct tier_restore_attr attr = { .offset = 100 * PG, .prefetch = 4 };
	struct tier_restore_stats st;
	struct tier_restore *rs;
	struct plan plan = make_plan();
	uint64_t n = 500;
	uint8_t *mem = map_range(n * PG);

	t_ok(start_plan(&snap, &plan, mem, n * PG, &attr, &rs));
	tier_restore_stats(rs, &st);
	/* [100, 600): D clipped to 12 pages, then E..N whole */
	t_eq(st.prefetched_pages, 64 + 32 + 28);
	t_eq(st.pages[TIER_CLASS_RO], 12 + 28);
	t_eq(st.pages[TIER_CLASS_RW], 64 + 32 + 28);
	t_eq(st.pages[TIER_CLASS_ZERO], 8 + 82);
	t_eq(st.mappings, 2 + 3);	/* D, I; E..H2, J..L, CL+N */
	touch_all(mem, 100, n);
	tier_restore_stats(rs, &st);
	t_eq(st.error, 0);
	t_eq(st.pages[TIER_CLASS_COLD], 64 + 64 + 30 + 28 + 60);
	t_eq(st.lazy_pages, 64 + 8 + 64 + 30 + 28 + 60);
	tier_restore_stop(rs);
	t_assert(munmap(mem, n * PG) == 0);

	/* bad windows */
	mem = map_range(PG);
	attr.offset = 100;
	t_fails(start_plan(&snap, &plan, mem, PG, &attr, &rs), -EINVAL);
	attr.offset = (NP - 1) * PG;
	t_fails(start_plan(&snap, &plan, mem, 2 * PG, &attr, &rs),
		-EINVAL);
	attr.offset = 0;
	t_fails(start_plan(&snap, &plan, mem + 1, PG, &attr, &rs),
		-EINVAL);
	t_assert(munmap(mem, PG) == 0);
}

/* Caller-driven serving (TIER_RESTORE_NO_THREAD): the fd polls, handle
 * serves, and counts events. */
static void no_thread(void)
{
	struct tier_restore_attr attr = { .flags = TIER_RESTORE_NO_THREAD,
					  .prefetch = 2 };
	struct tier_restore_stats st;
	struct tier_restore *rs;
	struct plan plan = make_plan();
	uint8_t *mem = map_range(NP * PG);
	struct touch t = { .mem = mem, .from = 176, .to = 180 };
	pthread_t th;
	void *ret;
	int fd, done = 0;

	t_ok(start_plan(&snap, &plan, mem, NP * PG, &attr, &rs));
	fd = tier_restore_fd(rs);
	t_assert(fd >= 0);
	t_eq(tier_restore_handle(rs), 0);	/* nothing pending */
	t_assert(pthread_create(&th, NULL, toucher, &t) == 0);
	while (!done) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, 50) > 0)
			t_assert(tier_restore_handle(rs) >= 0);
		done = pthread_tryjoin_np(th, &ret) == 0;
	}
	t_eq(t.bad, 0);
	tier_restore_stats(rs, &st);
	t_eq(st.faults[TIER_CLASS_COLD], 2);	/* 176-177, 178-179 */
	t_eq(st.lazy_pages, 4);
	tier_restore_stop(rs);
	t_assert(munmap(mem, NP * PG) == 0);
}

/*
 * Fail closed, in a child: the child restores, then (told by the parent,
 * after the parent broke the source) touches page @page from a thread.
 * on_error reports to the parent through a pipe; if the touch ever
 * returned, the child would report the byte it read.
 */
static int report_fd = -1;

static void on_error(struct tier_restore *rs, int err, const char *msg,
		     void *arg)
{
	char buf[300];
	int n = snprintf(buf, sizeof(buf), "E%d %s\n", err, msg);

	if (write(report_fd, buf, n) != n)
		_exit(3);
}

static void *child_touch(void *arg)
{
	volatile uint8_t *p = arg;
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "T%u\n", p[0]);

	if (write(report_fd, buf, n) != n)
		_exit(3);
	return NULL;
}

/* What fail_closed restores: the main plan, or the overlay one. */
static struct plan (*fc_plan)(void) = make_plan;
static enum tier_policy fc_policy = TIER_POLICY_TIERED;

static void fail_closed(uint64_t page, void (*breakit)(void), int want)
{
	int up[2], down[2], status;
	char buf[512] = { 0 };
	ssize_t n, got = 0;
	pid_t pid;

	t_assert(pipe(up) == 0 && pipe(down) == 0);
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		struct tier_restore_attr attr = { .prefetch = 1,
						  .on_error = on_error,
						  .policy = fc_policy };
		struct tier_restore *rs;
		struct plan plan = fc_plan();
		uint8_t *mem = map_range(NP * PG);
		pthread_t th;
		char c;

		report_fd = up[1];
		if (start_plan(&snap, &plan, mem, NP * PG, &attr, &rs))
			_exit(2);
		if (write(up[1], "S\n", 2) != 2 || read(down[0], &c, 1) != 1)
			_exit(2);
		pthread_create(&th, NULL, child_touch, mem + page * PG);
		pthread_join(th, NULL);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	n = read(up[0], buf, 2);
	t_assert(n == 2 && buf[0] == 'S');
	breakit();
	t_assert(write(down[1], "g", 1) == 1);

	/* wait for on_error; then make sure the touch never returns */
	for (;;) {
		struct pollfd pfd = { .fd = up[0], .events = POLLIN };
		int pr = poll(&pfd, 1, got && strchr(buf, '\n') ? 500 : 20000);

		if (pr == 0)
			break;
		n = read(up[0], buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += n;
	}
	kill(pid, SIGKILL);
	t_assert(waitpid(pid, &status, 0) == pid);
	/* it was blocked, not done, and did not crash */
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fprintf(stderr, "child: status %#x, reported: %s\n", status,
			buf);
	t_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	fprintf(stderr, "child reported: %s", buf);
	t_assert(buf[0] == 'E');
	if (want)
		t_eq(atoi(buf + 1), want);
	else
		t_assert(atoi(buf + 1) < 0);
	t_assert(!strstr(buf, "\nT"));		/* never read the page */
	close(up[0]);
	close(down[1]);
}

/*
 * A prefetch that cannot complete fails the start with the reason, and
 * leaves the range inaccessible rather than half restored: a guest run
 * by mistake crashes instead of reading zeros.
 */
/* A failed start leaves the range PROT_NONE: touching @p kills a child
 * with SIGSEGV instead of showing it zeros. */
static void expect_segv(const uint8_t *p)
{
	int status;
	pid_t pid = fork();

	t_assert(pid >= 0);
	if (pid == 0) {
		/* the kernel's verdict, not a sanitizer's handler (ASan
		 * takes SIGSEGV and exits with its own status) */
		signal(SIGSEGV, SIG_DFL);
		_exit(*(const volatile uint8_t *)p == 0 ? 0 : 1);
	}
	t_assert(waitpid(pid, &status, 0) == pid);
	t_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
}

static void start_fails(void)
{
	struct tier_restore *rs = NULL;
	struct plan plan = make_plan();
	uint8_t *mem = map_range(NP * PG);
	int rc;

	rc = start_plan(&snap, &plan, mem, NP * PG, NULL, &rs);
	t_assert(rc < 0);
	t_assert(rs == NULL);
	t_assert(strstr(tier_errmsg(), "snap/tiered") != NULL);
	fprintf(stderr, "start failed as it should: %s\n", tier_errmsg());
	expect_segv(mem + 112 * PG);	/* E: never installed */
	t_assert(munmap(mem, NP * PG) == 0);
}

/*
 * The pool over TCP ("tierctl pool serve" in a thread): the connection
 * made at start serves the prefetch and then the handler; every byte
 * arrives. Then the server dies under a running restore: fail closed.
 */
static struct pool_server *srv;
static pthread_t srv_thread;

/*
 * A MAP run past the end of its file (D, from the local file): refused
 * by name before it is mapped (a guest reading it would get SIGBUS), the
 * range left inaccessible.
 */
static void past_end(void)
{
	struct placer_ext bad[NEXT];
	struct plan plan = make_plan();
	struct tier_restore *rs = NULL;
	uint8_t *mem = map_range(NP * PG);

	memcpy(bad, ext, sizeof(bad));
	bad[3].src_off = 100000 * PG;
	plan.ext = bad;
	t_eq(start_plan(&snap, &plan, mem, NP * PG, NULL, &rs),
	     -ERANGE);
	t_assert(rs == NULL);
	t_assert(strstr(tier_errmsg(), "past its end") != NULL);
	fprintf(stderr, "start failed as it should: %s\n", tier_errmsg());
	expect_segv(mem + 80 * PG);
	t_assert(munmap(mem, NP * PG) == 0);
}

static void *serve(void *arg)
{
	pool_server_run(arg);
	return NULL;
}

/* Dead before the child touches: pool_server_stop only asks the loop to
 * end; free shuts the open connections down (else the child's fault
 * could still be served, and the test would race). */
static void stop_server(void)
{
	pool_server_stop(srv);
	t_assert(pthread_join(srv_thread, NULL) == 0);
	pool_server_free(srv);
	srv = NULL;
}

static void tcp_pool(void)
{
	static char uri[128];
	struct pool_server_attr sattr = { 0 };
	struct tier_restore_attr attr = { .prefetch = 4 };
	struct tier_restore_stats st;
	struct tier_restore *rs;
	struct tier_uri u;
	struct plan plan;
	uint8_t *mem;
	unsigned conns;
	int helper;

	t_ok(uri_parse("pool=tcp://127.0.0.1:0", URI_WANT_POOL, &u));
	t_ok(pool_server_start(&u, &sattr, &srv));
	snprintf(uri, sizeof(uri), "pool=tcp://127.0.0.1:%u",
		 pool_server_port(srv));
	t_assert(pthread_create(&srv_thread, NULL, serve, srv) == 0);
	write_pool(uri);

	plan_pool = uri;
	plan = make_plan();
	/* one connection; then the populator prefetching every batch over
	 * a second one of its own: the same bytes and counts */
	for (helper = 0; helper < 2; helper++) {
		conns = pool_server_connections(srv);

		if (helper)
			topts.pf_helper = true;
		mem = map_range(NP * PG);
		t_ok(start_plan(&snap, &plan, mem, NP * PG, &attr, &rs));
		topts.pf_helper = false;
		t_eq(pool_server_connections(srv), conns + 1 + helper);
		tier_restore_stats(rs, &st);
		t_eq(st.prefetched_pages, count(PLACER_M_COPY, 1, 0, 1));
		touch_all(mem, 0, NP);
		tier_restore_stats(rs, &st);
		t_eq(st.error, 0);
		t_eq(st.pool_bytes,
		     (64 + count(PLACER_M_LAZY, 1, PLACER_SRC_POOL, 0)) * PG);
		tier_restore_stop(rs);
		t_assert(munmap(mem, NP * PG) == 0);
	}
	/* a corrupt prefetched page (E, 130) found by the populator over
	 * its connection: the start fails naming the page, range PROT_NONE */
	write_pool_bad(uri, 130);
	topts.pf_helper = true;
	conns = pool_server_connections(srv);
	mem = map_range(NP * PG);
	rs = NULL;
	t_fails(start_plan(&snap, &plan, mem, NP * PG, &attr, &rs),
		-EBADMSG);
	topts.pf_helper = false;
	t_assert(rs == NULL);
	t_eq(pool_server_connections(srv), conns + 2);
	t_assert(strstr(tier_errmsg(), "page 130"));
	t_assert(strstr(tier_errmsg(), "checksum mismatch"));
	expect_segv(mem + 112 * PG);
	t_assert(munmap(mem, NP * PG) == 0);
	write_pool(uri);

	fail_closed(ext[EXT_F].page + 9, stop_server, 0);
	plan_pool = pool_uri;
}

static char seg_path[4096 + 64];

static void truncate_segment(void)
{
	t_assert(truncate(seg_path, 0) == 0);
}

static void corrupt_local(void)
{
	char path[4096 + 64];
	int fd;

	snap_local_path(&snap, TIER_POLICY_TIERED, 0, path, sizeof(path));
	fd = open(path, O_WRONLY);
	t_assert(fd >= 0);
	/* L's first page (src page 60), one byte */
	t_assert(pwrite(fd, "X", 1, 60 * PG + 17) == 1);
	close(fd);
}

/*
 * A balloon gives pages back (MADV_DONTNEED: a REMOVE event): they read
 * as zero afterwards, like any anonymous memory, and the restore stays
 * healthy. An munmap of part of the range (an UNMAP event) does not hang.
 */
static void remove_events(void)
{
	struct tier_restore_attr attr = { .prefetch = 1 };
	struct tier_restore_stats st;
	struct tier_restore *rs;
	struct plan plan = make_plan();
	uint8_t *mem = map_range(NP * PG), *zero = calloc(1, PG);
	struct touch t = { .mem = mem, .from = 176, .to = 180 };
	pthread_t th;

	t_ok(start_plan(&snap, &plan, mem, NP * PG, &attr, &rs));
	t_assert(pthread_create(&th, NULL, toucher, &t) == 0);
	t_assert(pthread_join(th, NULL) == 0);
	t_eq(t.bad, 0);
	/* lazy pages 177-178 and prefetched page 120 go back */
	t_assert(madvise(mem + 177 * PG, 2 * PG, MADV_DONTNEED) == 0);
	t_assert(madvise(mem + 120 * PG, PG, MADV_DONTNEED) == 0);
	t_assert(memcmp(mem + 177 * PG, zero, PG) == 0);
	t_assert(memcmp(mem + 178 * PG, zero, PG) == 0);
	t_assert(memcmp(mem + 120 * PG, zero, PG) == 0);
	t_assert(memcmp(mem + 176 * PG, image + 176 * PG, PG) == 0);
	t_assert(memcmp(mem + 179 * PG, image + 179 * PG, PG) == 0);
	/* never fetched, given back, touched: zero too, not fetched */
	t_assert(madvise(mem + 190 * PG, PG, MADV_DONTNEED) == 0);
	t_assert(memcmp(mem + 190 * PG, zero, PG) == 0);
	/* the rest is served as before */
	t_assert(memcmp(mem + 191 * PG, image + 191 * PG, PG) == 0);
	tier_restore_stats(rs, &st);
	t_eq(st.error, 0);
	t_eq(st.faults[TIER_CLASS_COLD], 4 + 1);	/* 176-179, 191 */
	/* unmap a piece while served */
	t_assert(munmap(mem + 300 * PG, 4 * PG) == 0);
	t_assert(memcmp(mem + 304 * PG, image + 304 * PG, PG) == 0);
	tier_restore_stats(rs, &st);
	t_eq(st.error, 0);
	tier_restore_stop(rs);
	t_assert(munmap(mem, NP * PG) == 0);
	free(zero);
}

/*
 * The whole path on real store code: import an image, record a run,
 * place it with every policy, restore each plan through plan_load, and
 * compare every byte.
 */
#define RNP	1024UL

static int real_zero(uint64_t p)
{
	return (p % 16) < 11 || (p >= 600 && p < 700);	/* ~70 % zero */
}

static void *real_touch(void *arg)
{
	uint8_t *mem = arg;
	uint64_t p;

	/* reads of every 3rd page of the first half, writes (of the same
	 * value) of every 7th page: some read then written, the rest of the
	 * second half cold */
	for (p = 0; p < RNP / 2; p += 3)
		(void)*(volatile uint8_t *)(mem + p * PG + 11);
	for (p = 0; p < RNP / 2; p += 7) {
		volatile uint8_t *b = mem + p * PG + 13;

		*b = *b;
	}
	return NULL;
}

static void real_path(void)
{
	static const struct tier_region none[1];
	struct tier_place_attr pattr = { 0 };
	struct tier_restore_attr attr = { 0 };
	struct tier_plan_info info;
	struct tier_restore_stats st;
	struct tier_store *rstore;
	struct tier_snap *rsnap;
	struct tier_restore *rs;
	char path[4096 + 64], spath[4096 + 64], rcxl[4200], rpool[4200];
	uint8_t *img, *mem;
	uint64_t p, i, sum;
	pthread_t th;
	int fd, pol;

	(void)none;
	img = malloc(RNP * PG);
	t_assert(img);
	for (p = 0; p < RNP; p++) {
		if (real_zero(p)) {
			memset(img + p * PG, 0, PG);
			continue;
		}
		for (i = 0; i < PG; i++)
			img[p * PG + i] = (uint8_t)(p * 29 + i * 5 + 3);
	}
	snprintf(path, sizeof(path), "%s/real.img", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_ok(pwrite_full(fd, img, RNP * PG, 0, path));
	close(fd);

	snprintf(spath, sizeof(spath), "%s/realstore", dir);
	snprintf(rcxl, sizeof(rcxl), "cxl=dir:%s/realcxl", dir);
	snprintf(rpool, sizeof(rpool), "pool=file:%s/realpool", dir);
	t_ok(tier_store_open(spath, &rstore));
	t_ok(tier_import(rstore, "vm", path, NULL));
	t_ok(tier_snap_open(rstore, "vm", &rsnap));
	t_eq(tier_snap_npages(rsnap), RNP);

	/* record one run */
	mem = map_range(RNP * PG);
	attr.flags = TIER_RESTORE_RECORD;
	t_ok(tier_restore_start(rsnap, mem, RNP * PG, &attr, &rs));
	t_assert(pthread_create(&th, NULL, real_touch, mem) == 0);
	t_assert(pthread_join(th, NULL) == 0);
	t_ok(tier_restore_save_trace(rs, "run1"));
	t_assert(memcmp(mem, img, RNP * PG) == 0);	/* not logged */
	tier_restore_stop(rs);
	t_assert(munmap(mem, RNP * PG) == 0);

	pattr.cxl = rcxl;
	pattr.pool = rpool;
	for (pol = 0; pol < TIER_POLICY_MAX; pol++) {
		t_ok(tier_place(rsnap, pol, &pattr));
		t_ok(tier_plan_info(rsnap, pol, &info));
		mem = map_range(RNP * PG);
		attr = (struct tier_restore_attr){ .policy = pol };
		t_ok(tier_restore_start(rsnap, mem, RNP * PG, &attr, &rs));
		t_assert(pthread_create(&th, NULL, real_touch, mem) == 0);
		t_assert(pthread_join(th, NULL) == 0);
		t_assert(memcmp(mem, img, RNP * PG) == 0);
		tier_restore_stats(rs, &st);
		t_eq(st.error, 0);
		for (sum = 0, i = 0; i < TIER_CLASS_MAX; i++) {
			t_eq(st.pages[i], info.pages[i]);
			sum += st.pages[i];
		}
		t_eq(sum, RNP);
		/* runs of MAP extents contiguous in their source share an mmap */
		t_assert(st.mappings <= info.mappings);
		fprintf(stderr, "%-8s mappings %llu (plan %llu) prefetched %llu "
			"lazy %llu faults %llu/%llu/%llu/%llu cxl %llu KiB\n",
			tier_policy_name(pol), (unsigned long long)st.mappings,
			(unsigned long long)info.mappings,
			(unsigned long long)st.prefetched_pages,
			(unsigned long long)st.lazy_pages,
			(unsigned long long)st.faults[0], (unsigned long long)st.faults[1],
			(unsigned long long)st.faults[2], (unsigned long long)st.faults[3],
			(unsigned long long)st.cxl_mapped_bytes >> 10);
		tier_restore_stop(rs);
		t_assert(munmap(mem, RNP * PG) == 0);
	}
	tier_snap_close(rsnap);
	tier_store_close(rstore);
	free(img);
}

/* ------------------------------------------------------------ overlay */

/*
 * The identity layout on a tmpfs CXL directory: CXL extents at src_off =
 * page << 12 in a sparse object as large as the image. Its objects are
 * named after the aquifer policy so they do not meet the plan above.
 * Clusters: [0, 32) and [48, 240) overlay (one mmap, one registration
 * each), [248, 430) has no CXL page (one registration), [512, 768) has
 * an image-mapped extent so it is restored run by run.
 */
static struct placer_ext oext[] = {
	E(0,   8,   RO,   CXL,   MAP,  PLACER_F_POPULATE, 0),	/* A */
	E(8,   3,   RW,   POOL,  COPY, 0, 0),			/* B */
	E(11,  5,   RO,   CXL,   MAP,  PLACER_F_POPULATE, 11),	/* C */
	E(16,  4,   COLD, POOL,  LAZY, 0, 3),			/* D */
	E(20,  2,   COLD, CXL,   MAP,  PLACER_F_POPULATE, 20),	/* E */
	E(22,  10,  RO,   CXL,   MAP,  PLACER_F_POPULATE, 22),	/* F */
	E(32,  16,  ZERO, NONE,  ANON, 0, 0),
	E(48,  100, COLD, POOL,  LAZY, 0, 7),			/* G */
	E(148, 20,  RO,   CXL,   MAP,  PLACER_F_POPULATE, 148),	/* H */
	E(168, 32,  RW,   POOL,  COPY, 0, 107),			/* I */
	E(200, 1,   ZERO, NONE,  LAZY, 0, 0),			/* J */
	E(201, 39,  RO,   CXL,   MAP,  0, 201),			/* K */
	E(240, 8,   ZERO, NONE,  ANON, 0, 0),
	E(248, 102, COLD, POOL,  LAZY, 0, 139),			/* L */
	E(350, 1,   ZERO, NONE,  LAZY, 0, 0),			/* M */
	E(351, 79,  RW,   POOL,  COPY, 0, 241),			/* N */
	E(430, 82,  ZERO, NONE,  ANON, 0, 0),
	E(512, 100, RO,   CXL,   MAP,  PLACER_F_POPULATE, 512),	/* O */
	E(612, 88,  COLD, POOL,  LAZY, 0, 320),			/* P */
	E(700, 1,   ZERO, NONE,  LAZY, 0, 0),			/* Q */
	E(701, 67,  RO,   IMAGE, MAP,  PLACER_F_POPULATE, 701),	/* R */
};
#define ONEXT (sizeof(oext) / sizeof(oext[0]))
#define OPOLICY	TIER_POLICY_AQUIFER

static char ovl_dir[] = "/dev/shm/tier-test-overlay.XXXXXX";
static char ovl_uri[256], ovl_obj[4096 + 256], ovl_seg[4096 + 256];
static uint8_t *ovl_ref;	/* what the object must hold: CXL pages */
static uint64_t ovl_cxl_pages;

static struct plan make_oplan(void)
{
	struct plan plan = { .ext = oext, .n = ONEXT };

	memcpy(plan.hdr.magic, FMT_PLAN_MAGIC, 8);
	plan.hdr.policy = OPOLICY;
	plan.hdr.npages = NP;
	plan.hdr.nextents = ONEXT;
	snprintf(plan.hdr.cxl, sizeof(plan.hdr.cxl), "%s", ovl_uri);
	snprintf(plan.hdr.pool, sizeof(plan.hdr.pool), "%s", pool_uri);
	return plan;
}

static void write_overlay(void)
{
	struct cxl_tier *ct;
	struct cxl_wobj *cw;
	struct pool *pl;
	struct pool_wseg *pw;
	struct tier_uri u;
	char name[128];
	size_t i;

	t_assert(mkdtemp(ovl_dir));
	snprintf(ovl_uri, sizeof(ovl_uri), "cxl=dir:%s", ovl_dir);
	snap_object_name(&snap, OPOLICY, 0, name, sizeof(name));
	snprintf(ovl_obj, sizeof(ovl_obj), "%s/%s.obj", ovl_dir, name);
	snprintf(ovl_seg, sizeof(ovl_seg), "%s/pool/%s.seg", dir, name);
	ovl_ref = calloc(NP, PG);
	t_assert(ovl_ref);

	t_ok(uri_parse(ovl_uri, URI_WANT_CXL, &u));
	t_ok(cxl_open(&u, &ct));
	t_eq(cxl_overlay_ok(ct), 1);
	t_ok(cxl_create(ct, name, NP * PG, &cw));
	for (i = 0; i < ONEXT; i++) {
		const struct placer_ext *e = &oext[i];

		if (e->source != PLACER_SRC_CXL)
			continue;
		t_eq(e->src_off, e->page * PG);
		t_ok(cxl_write(cw, e->src_off, image + e->page * PG,
			       e->npages * PG));
		memcpy(ovl_ref + e->page * PG, image + e->page * PG,
		       e->npages * PG);
		ovl_cxl_pages += e->npages;
	}
	t_ok(cxl_commit(cw));
	cxl_close(ct);

	t_ok(uri_parse(pool_uri, URI_WANT_POOL, &u));
	t_ok(pool_open(&u, &pl));
	t_ok(pool_create(pl, name, 408 * PG, &pw));
	for (i = 0; i < ONEXT; i++)
		if (oext[i].source == PLACER_SRC_POOL)
			t_ok(pool_write(pw, oext[i].src_off,
					image + oext[i].page * PG,
					oext[i].npages * PG));
	t_ok(pool_commit(pw));
	pool_close(pl);
}

/* The object holds exactly the CXL pages, and nothing else is allocated
 * (tmpfs counts allocated pages in st_blocks): unchanged and sparse. */
static void check_object(void)
{
	struct stat st;
	void *obj;
	size_t len;

	t_ok(read_file(ovl_obj, &obj, &len));
	t_eq(len, NP * PG);
	t_assert(memcmp(obj, ovl_ref, len) == 0);
	free(obj);
	t_assert(stat(ovl_obj, &st) == 0);
	t_eq((uint64_t)st.st_blocks * 512, ovl_cxl_pages * PG);
}

static uint64_t ocount(unsigned method, int cls)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < ONEXT; i++)
		if (oext[i].method == method && (cls < 0 || oext[i].cls == cls))
			n += oext[i].npages;
	return n;
}

/* Whether the page at @addr is mapped (its PTE present: pagemap bit 63). */
static int pte_present(const void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;

	t_assert(fd >= 0);
	t_assert(pread(fd, &e, 8, (uintptr_t)addr / PG * 8) == 8);
	close(fd);
	return (int)(e >> 63);
}

static void overlay_restore(int overlay)
{
	struct tier_restore_attr attr = { .prefetch = 1, .policy = OPOLICY };
	struct tier_restore_stats st;
	struct tier_restore *rs;
	struct plan plan = make_oplan();
	uint8_t *mem = map_range(NP * PG);
	uint64_t c, want = 0, got = 0;

	if (!overlay)
		attr.flags |= TIER_RESTORE_NO_OVERLAY;
	memset(mem, 0xee, NP * PG);
	t_ok(start_plan(&snap, &plan, mem, NP * PG, &attr, &rs));
	check_object();		/* the prefetch went to private pages */

	tier_restore_stats(rs, &st);
	t_eq(placer_count_mappings(oext, ONEXT, 1), 2 + 2 + 1 + 3);
	t_eq(placer_count_mappings(oext, ONEXT, 0), 5 + 4 + 1 + 3);
	t_eq(st.mappings, placer_count_mappings(oext, ONEXT, overlay));
	t_eq(st.prefetched_pages, 3 + 32 + 79);
	t_eq(st.prefetched_pages, ocount(PLACER_M_COPY, -1));
	/* overlay: the MAP pages of a cluster; else whole mmaps */
	t_eq(st.cxl_mapped_bytes, (8 + 5 + 2 + 10 + 20 + 39 + 100) * PG);
	for (c = 0; c < TIER_CLASS_MAX; c++)
		t_eq(st.faults[c], 0);
	/*
	 * populated: every page of a POPULATE extent is mapped before the
	 * guest runs, and no hole is. Overlay: one page a 64 KiB window is
	 * populated and fault-around maps the rest, except a page whose
	 * folio someone else holds locked at that moment (reclaim, DAMON):
	 * that one faults in from the page cache on touch, never through
	 * userfaultfd (faults[RO] stays 0 below).
	 */
	for (c = 0; c < ONEXT; c++) {
		const struct placer_ext *e = &oext[c];

		for (uint64_t q = e->page; q < e->page + e->npages; q++) {
			if (e->flags & PLACER_F_POPULATE) {
				want++;
				got += pte_present(mem + q * PG);
			}
			if (e->method == PLACER_M_LAZY)
				t_eq(pte_present(mem + q * PG), 0);
		}
	}
	t_assert(want > 0);
	if (overlay)
		t_assert(got * 10 >= want * 9);
	else
		t_eq(got, want);

	touch_all(mem, 0, NP);
	tier_restore_stats(rs, &st);
	t_eq(st.error, 0);
	/* window 1: one fault per lazy page, holes included */
	t_eq(st.faults[TIER_CLASS_COLD], 4 + 100 + 102 + 88);
	t_eq(st.faults[TIER_CLASS_COLD], ocount(PLACER_M_LAZY, TIER_CLASS_COLD));
	t_eq(st.faults[TIER_CLASS_ZERO], 3);
	t_eq(st.faults[TIER_CLASS_RO], 0);
	t_eq(st.faults[TIER_CLASS_RW], 0);
	t_eq(st.lazy_pages, ocount(PLACER_M_LAZY, -1));
	t_eq(st.pool_bytes, (ocount(PLACER_M_COPY, -1) +
			     ocount(PLACER_M_LAZY, TIER_CLASS_COLD)) * PG);

	/* copy-on-write: ro pages (mapped, populated or not), an rw page,
	 * a cold page, a zero hole; the object does not change */
	memset(mem + 3 * PG, 0x71, PG);		/* A */
	memset(mem + 210 * PG + 9, 0x72, 7);	/* K, not populated */
	memset(mem + 9 * PG, 0x73, PG);		/* B, prefetched */
	memset(mem + 50 * PG, 0x74, PG);	/* G, faulted */
	memset(mem + 200 * PG, 0x75, PG);	/* J, zero hole */
	t_eq(mem[3 * PG + 7], 0x71);
	t_eq(mem[210 * PG + 15], 0x72);
	t_eq(mem[210 * PG + 16], image[210 * PG + 16]);
	t_eq(mem[200 * PG + 4095], 0x75);
	check_object();
	tier_restore_stats(rs, &st);
	t_eq(st.error, 0);
	t_eq(st.lazy_pages, ocount(PLACER_M_LAZY, -1));	/* no new faults */
	tier_restore_stop(rs);
	t_eq(mem[9 * PG], 0x73);
	t_assert(memcmp(mem + 4 * PG, image + 4 * PG, PG) == 0);
	t_assert(munmap(mem, NP * PG) == 0);
	check_object();
}

/* A window [20, 620): clusters clipped at both ends still overlay (the
 * object offset is the image page's), every byte is the image's. */
static void overlay_window(void)
{
	struct tier_restore_attr attr = { .prefetch = 1, .policy = OPOLICY,
					  .offset = 20 * PG };
	struct tier_restore_stats st;
	struct tier_restore *rs;
	struct plan plan = make_oplan();
	uint64_t n = 600;
	uint8_t *mem = map_range(n * PG);

	t_ok(start_plan(&snap, &plan, mem, n * PG, &attr, &rs));
	tier_restore_stats(rs, &st);
	/* [20, 32): E F, one mmap; [48, 240): 2; [248, 430): 1; [512,
	 * 620): O and P, one mmap + one registration */
	t_eq(st.mappings, 1 + 2 + 1 + 2);
	t_eq(st.prefetched_pages, 32 + 79);
	touch_all(mem, 20, n);
	tier_restore_stats(rs, &st);
	t_eq(st.error, 0);
	t_eq(st.faults[TIER_CLASS_COLD], 100 + 102 + 8);
	tier_restore_stop(rs);
	t_assert(munmap(mem, n * PG) == 0);
	check_object();
}

/* A hole where the object should hold a mapped page (a damaged object):
 * not populated (that would wait for the handler), and its fault fails
 * the checksum instead of showing zeroes. */
static void punch_ro(void)
{
	int fd = open(ovl_obj, O_RDWR);

	t_assert(fd >= 0);
	t_assert(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			   150 * PG, PG) == 0);	/* H, page 150 */
	close(fd);
}

static void corrupt_ovl_pool(void)
{
	int fd = open(ovl_seg, O_WRONLY);

	t_assert(fd >= 0);
	/* G's page 60: segment page 7 + 12 */
	t_assert(pwrite(fd, "X", 1, (7 + 12) * PG + 99) == 1);
	close(fd);
}

/*
 * A prefetched page (I, page 170) corrupt in the pool, found by the
 * populator's share of the prefetch: the start fails naming the page,
 * and the range is left PROT_NONE.
 */
static void helper_fails(void)
{
	struct tier_restore_attr attr = { .prefetch = 1, .policy = OPOLICY };
	struct tier_restore *rs = NULL;
	struct plan plan = make_oplan();
	uint8_t *mem = map_range(NP * PG);
	int fd = open(ovl_seg, O_RDWR);
	char c, x = 'X';

	t_assert(fd >= 0);
	/* I: segment pages 107.., page 170 is its third */
	t_assert(pread(fd, &c, 1, (107 + 2) * PG + 5) == 1);
	t_assert(pwrite(fd, &x, 1, (107 + 2) * PG + 5) == 1);
	t_fails(start_plan(&snap, &plan, mem, NP * PG, &attr, &rs),
		-EBADMSG);
	t_assert(rs == NULL);
	t_assert(strstr(tier_errmsg(), "page 170"));
	t_assert(strstr(tier_errmsg(), "checksum mismatch"));
	expect_segv(mem + 9 * PG);	/* B */
	t_assert(pwrite(fd, &c, 1, (107 + 2) * PG + 5) == 1);
	close(fd);
	t_assert(munmap(mem, NP * PG) == 0);
}

static void overlay(void)
{
	struct tier_uri u;
	struct cxl_tier *ct;
	struct cxl_obj *o;
	char name[128], vdir[] = "/var/tmp/tier-test-overlay.XXXXXX", cmd[256];
	struct statfs sf;

	write_overlay();
	t_ok(uri_parse(ovl_uri, URI_WANT_CXL, &u));
	t_ok(cxl_open(&u, &ct));
	snap_object_name(&snap, OPOLICY, 0, name, sizeof(name));
	t_ok(cxl_obj_open(ct, name, &o));
	t_eq(cxl_obj_overlay_ok(o), 1);
	t_eq(cxl_obj_present(o, 0, 8 * PG), 1);
	t_eq(cxl_obj_present(o, 0, 9 * PG), 0);
	cxl_obj_close(o);
	cxl_close(ct);
	/* not tmpfs (the test dir on this machine): no overlay */
	t_assert(mkdtemp(vdir));
	snprintf(cmd, sizeof(cmd), "cxl=dir:%s", vdir);
	t_ok(uri_parse(cmd, URI_WANT_CXL, &u));
	t_ok(cxl_open(&u, &ct));
	t_assert(statfs(vdir, &sf) == 0);
	t_eq(cxl_overlay_ok(ct), sf.f_type == TMPFS_MAGIC);
	cxl_close(ct);
	rmdir(vdir);

	overlay_restore(1);
	overlay_restore(0);
	/* every window populated by a read, as while the start still maps */
	topts.pop_touch = true;
	overlay_restore(1);
	topts.pop_touch = false;
	/* no second thread: the start lists, populates and prefetches all */
	topts.no_populator = true;
	overlay_restore(1);
	overlay_restore(0);
	topts.no_populator = false;
	/* the populator prefetching every batch: the same bytes, counts */
	topts.pf_helper = true;
	overlay_restore(1);
	helper_fails();
	topts.pf_helper = false;
	overlay_window();

	fc_plan = make_oplan;
	fc_policy = OPOLICY;
	fail_closed(60, corrupt_ovl_pool, -EBADMSG);
	fail_closed(150, punch_ro, -EBADMSG);
	fc_plan = make_plan;
	fc_policy = TIER_POLICY_TIERED;

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ovl_dir);
	t_assert(system(cmd) == 0);
	free(ovl_ref);
}

int main(void)
{
	char name[128];
	int fd, rc;

	rc = uffd_open(0, &fd);
	if (rc == -EPERM || rc == -EACCES)
		t_skip("userfaultfd not permitted: run as root or set "
		       "vm.unprivileged_userfaultfd=1");
	if (rc == -ENOSYS || rc == -EOPNOTSUPP)
		t_skip("no userfaultfd: %s", tier_errmsg());
	t_ok(rc);
	close(fd);

	t_assert(mkdtemp(dir));
	make_snap();
	write_objects();

	full_restore(1);
	full_restore(8);
	affinity();
	past_end();
	cow();
	window();
	no_thread();
	remove_events();
	real_path();
	overlay();

	/* fail closed: a corrupt local page, then a dead pool segment */
	tcp_pool();
	fail_closed(ext[EXT_L].page, corrupt_local, -EBADMSG);
	snap_object_name(&snap, TIER_POLICY_TIERED, 0, name, sizeof(name));
	snprintf(seg_path, sizeof(seg_path), "%s/pool/%s.seg", dir, name);
	t_assert(access(seg_path, F_OK) == 0);
	fail_closed(ext[EXT_F].page + 3, truncate_segment, -EIO);
	start_fails();		/* the segment is empty now */

	{
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		t_assert(system(cmd) == 0);
	}
	return T_PASS;
}
