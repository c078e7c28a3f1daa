/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: root -- TIER_RESTORE_SIGBUS (store/restore-sigbus.c): a restore
 * whose lazy pages are fetched by the threads that touch them, from
 * their SIGBUS handler, as a WebAssembly host would run its instances.
 * From a file pool and from a tcp pool (a real "tierctl pool serve"
 * this test starts), several threads faulting at once, each comparing
 * every byte with the image, then again after an instance reset
 * (MADV_DONTNEED). A pool killed mid-run and a corrupt page each end the
 * instance that needed the page (siglongjmp out of the handler) with a
 * one-line reason naming it, never a zero page, and the process goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "store/snap.h"
#include "store/uffd.h"

#define PG	4096
#define NP	2048			/* 8 MiB image */
#define NTHREADS 4

static char dir[] = "/tmp/tier-test-sigbus.XXXXXX";
static uint8_t *image;
static const char *tierctl;

static bool page_zero(uint64_t p)
{
	return p % 7 == 3 || (p >= 1100 && p < 1400) || p == 0;
}

static void make_image(const char *path, const char *trace)
{
	FILE *f = fopen(trace, "w");
	uint64_t p;
	int fd;

	t_assert(f);
	image = calloc(NP, PG);
	t_assert(image);
	for (p = 0; p < NP; p++) {
		if (page_zero(p))
			continue;
		t_fill_page(image + p * PG, p * 0x9e3779b97f4a7c15ULL + 7);
	}
	/* a trained run: a scattered hot set in the first half (CXL and
	 * prefetched pages), the rest cold: lazy from the pool */
	for (p = 1; p < NP / 2; p += 5)
		if (!page_zero(p))
			fprintf(f, "%#lx %s\n", (unsigned long)(p * PG),
				p % 3 ? "r" : "w");
	t_assert(fclose(f) == 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	t_assert(fd >= 0);
	t_assert(write(fd, image, NP * PG) == NP * PG);
	close(fd);
}

/* ------------------------------------------------ the "runtime" */

/* Where the SIGBUS handler finds the faulting thread's context and the
 * instance to leave: the runtime's own thread-locals. */
static __thread struct tier_restore_thread *cur;
static __thread sigjmp_buf *cur_jb;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (cur && tier_restore_fault(cur, si->si_addr) == 0)
		return;			/* installed: the access is retried */
	if (cur_jb)
		siglongjmp(*cur_jb, 1);	/* ends the instance, not the process */
	abort();
}

/* One instance: its thread's context, the pages it checks, its fate. */
struct inst {
	struct tier_restore *rs;
	uint8_t *mem;
	uint64_t from, to;		/* pages [from, to), from @start on */
	uint64_t start;
	pthread_barrier_t *ready, *go;
	bool failed;
	uint64_t fail_page;
	char why[512];
	uint64_t checked;
};

static void *run_inst(void *arg)
{
	struct inst *in = arg;
	volatile uint64_t i = 0;
	sigjmp_buf jb;
	uint64_t n = in->to - in->from;

	int rc = tier_restore_thread_open(in->rs, &cur);

	pthread_barrier_wait(in->ready);
	pthread_barrier_wait(in->go);
	if (rc) {
		in->failed = true;
		snprintf(in->why, sizeof(in->why), "%s", tier_errmsg());
		return NULL;
	}
	if (sigsetjmp(jb, 1)) {
		in->failed = true;
		in->fail_page = in->from + (in->start + i) % n;
		snprintf(in->why, sizeof(in->why), "%s",
			 tier_restore_thread_errmsg(cur));
		goto out;
	}
	cur_jb = &jb;
	for (; i < n; i++) {
		uint64_t p = in->from + (in->start + i) % n;

		if (memcmp(in->mem + p * PG, image + p * PG, PG)) {
			fprintf(stderr, "page %lu differs from the image\n",
				(unsigned long)p);
			exit(T_FAIL);
		}
		in->checked++;
	}
out:
	cur_jb = NULL;
	tier_restore_thread_close(cur);
	cur = NULL;
	return NULL;
}

/* @nt instances over pages [from, to) of @mem at once, each from its own
 * start page (two of them from the same one: the same faults at once);
 * @between runs once their contexts are open, before they touch. */
static void run_between(struct tier_restore *rs, uint8_t *mem, uint64_t from,
			uint64_t to, struct inst *in, unsigned nt,
			void (*between)(void))
{
	pthread_barrier_t ready, go;
	pthread_t th[NTHREADS];
	unsigned k;

	t_assert(nt <= NTHREADS);
	pthread_barrier_init(&ready, NULL, nt + 1);
	pthread_barrier_init(&go, NULL, nt + 1);
	for (k = 0; k < nt; k++) {
		in[k] = (struct inst){ .rs = rs, .mem = mem, .from = from,
			.to = to, .ready = &ready, .go = &go,
			.start = k ? (to - from) * (k - 1) / nt : 0 };
		t_assert(pthread_create(&th[k], NULL, run_inst, &in[k]) == 0);
	}
	pthread_barrier_wait(&ready);
	if (between)
		between();
	pthread_barrier_wait(&go);
	for (k = 0; k < nt; k++)
		pthread_join(th[k], NULL);
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
}

static void run_all(struct tier_restore *rs, uint8_t *mem, uint64_t from,
		    uint64_t to, struct inst *in, unsigned nt)
{
	run_between(rs, mem, from, to, in, nt, NULL);
}

/* Pages [from, to) are in and right: any fault here would abort. */
static void check_present(const uint8_t *mem, uint64_t from, uint64_t to)
{
	uint64_t p;

	for (p = from; p < to; p++)
		t_assert(memcmp(mem + p * PG, image + p * PG, PG) == 0);
}

static struct tier_restore *restore(struct tier_snap *snap, uint8_t **mem)
{
	struct tier_restore_attr attr = { .flags = TIER_RESTORE_SIGBUS };
	struct tier_restore *rs;
	int rc;

	*mem = mmap(NULL, NP * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	t_assert(*mem != MAP_FAILED);
	rc = tier_restore_start(snap, *mem, NP * PG, &attr, &rs);
	if (rc == -EOPNOTSUPP && strstr(tier_errmsg(), "SIGBUS"))
		t_skip("%s", tier_errmsg());
	t_ok(rc);
	return rs;
}

/* Every byte by every thread, faulting at once; again after a reset. */
static void roundtrip(struct tier_snap *snap, const char *what)
{
	struct tier_restore_stats st;
	struct tier_restore *rs;
	struct inst in[NTHREADS];
	uint8_t *mem;
	unsigned k;

	rs = restore(snap, &mem);
	run_all(rs, mem, 0, NP, in, NTHREADS);
	for (k = 0; k < NTHREADS; k++) {
		if (in[k].failed)
			fprintf(stderr, "%s: instance %u: %s\n", what, k, in[k].why);
		t_assert(!in[k].failed);
		t_eq(in[k].checked, NP);
	}
	tier_restore_stats(rs, &st);
	t_eq(st.error, 0);
	t_assert(st.faults[TIER_CLASS_COLD] > 0);
	t_assert(st.pool_bytes >= st.faults[TIER_CLASS_COLD] * PG);
	printf("%-5s lazy pages %lu, cold faults %lu, pool bytes %lu\n", what,
	       (unsigned long)st.lazy_pages,
	       (unsigned long)st.faults[TIER_CLASS_COLD],
	       (unsigned long)st.pool_bytes);

	/* an instance reset: the pages go, their next touches fault again
	 * and are served afresh (no REMOVE event to wait for) */
	t_assert(madvise(mem, NP * PG, MADV_DONTNEED) == 0);
	run_all(rs, mem, 0, NP, in, 2);
	for (k = 0; k < 2; k++)
		t_assert(!in[k].failed && in[k].checked == NP);
	tier_restore_stats(rs, &st);
	t_eq(st.error, 0);

	/* not this restore's page: the handler chains on */
	{
		struct tier_restore_thread *t;

		t_ok(tier_restore_thread_open(rs, &t));
		t_eq(tier_restore_fault(t, image), -ENOENT);
		tier_restore_thread_close(t);
	}
	tier_restore_stop(rs);
	munmap(mem, NP * PG);
}

/* A lazy pool page: its image page and its offset in the segment. */
static void lazy_pool_page(struct tier_snap *snap, uint64_t *ret_p,
			   uint64_t *ret_off)
{
	struct plan plan;
	size_t i;

	t_ok(plan_load(snap, TIER_POLICY_TIERED, &plan));
	for (i = 0; i < plan.n; i++) {
		const struct placer_ext *e = &plan.ext[i];

		if (e->method == PLACER_M_LAZY && e->source == PLACER_SRC_POOL &&
		    e->npages >= 2 && e->page > NP / 2) {
			*ret_p = e->page + 1;
			*ret_off = e->src_off + PG;
			plan_free(&plan);
			return;
		}
	}
	plan_free(&plan);
	t_assert(!"no lazy pool run where the test expects one");
}

/* A corrupt pool page fails closed: the instance that touches it ends
 * naming it, the restore is dead, later faults fail at once. */
static void corrupt(struct tier_snap *snap, const char *seg)
{
	struct tier_restore *rs;
	struct inst in[1];
	uint64_t p, off;
	uint8_t *mem;
	char c, x;
	int fd = open(seg, O_RDWR);

	t_assert(fd >= 0);
	lazy_pool_page(snap, &p, &off);
	t_assert(pread(fd, &c, 1, off + 100) == 1);
	x = c ^ 0x5a;
	t_assert(pwrite(fd, &x, 1, off + 100) == 1);

	rs = restore(snap, &mem);
	/* the page before it is fine (its window cut before the bad one),
	 * then this one */
	run_all(rs, mem, p - 1, p + 5, in, 1);
	t_assert(in[0].failed);
	t_eq(in[0].fail_page, p);
	t_eq(in[0].checked, 1);
	printf("corrupt: %s\n", in[0].why);
	t_assert(strstr(in[0].why, "checksum mismatch") &&
		 strstr(in[0].why, "from the pool"));
	{
		char page[32];

		snprintf(page, sizeof(page), "page %lu:", (unsigned long)p);
		t_assert(strstr(in[0].why, page));
	}
	t_eq(tier_restore_error(rs), -EBADMSG);
	/* dead: another page (fine in the pool) fails too, by the reason */
	run_all(rs, mem, NP - 60, NP, in, 1);
	t_assert(in[0].failed);
	t_assert(strstr(in[0].why, "is dead") &&
		 strstr(in[0].why, "checksum mismatch"));
	t_fails(tier_restore_thread_open(rs, &cur), -EBADMSG);
	check_present(mem, p - 1, p);
	tier_restore_stop(rs);
	munmap(mem, NP * PG);
	t_assert(pwrite(fd, &c, 1, off + 100) == 1);
	close(fd);
}

/* ------------------------------------------------ the tcp pool */

static pid_t pool_pid = -1;

static unsigned pool_start(const char *pooldir)
{
	char line[256], dirarg[600];
	unsigned port = 0;
	int out[2];
	FILE *f;

	snprintf(dirarg, sizeof(dirarg), "%s", pooldir);
	t_assert(pipe(out) == 0);
	pool_pid = fork();
	t_assert(pool_pid >= 0);
	if (!pool_pid) {
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		execl(tierctl, tierctl, "pool", "serve", "--no-auth", "--listen",
		      "tcp://127.0.0.1:0", "--dir", dirarg, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	f = fdopen(out[0], "r");
	t_assert(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "listening on tcp://127.0.0.1:%u", &port) == 1)
			break;
	fclose(f);
	t_assert(port);
	return port;
}

static void pool_kill(void)
{
	int st;

	if (pool_pid <= 0)
		return;
	kill(pool_pid, SIGKILL);
	waitpid(pool_pid, &st, 0);
	pool_pid = -1;
}

/* The memory node dies mid-run: the instances that need a page from it
 * end with the pool's reason; those that had their pages finished. */
static void dead_pool(struct tier_snap *snap)
{
	struct tier_restore *rs;
	struct inst in[NTHREADS];
	uint8_t *mem;
	unsigned k;

	rs = restore(snap, &mem);
	run_all(rs, mem, 0, NP / 2, in, 2);	/* first half: served */
	t_assert(!in[0].failed && !in[1].failed);
	/* killed once the instances have their connections */
	run_between(rs, mem, NP / 2, NP, in, NTHREADS, pool_kill);
	for (k = 0; k < NTHREADS; k++) {
		t_assert(in[k].failed);
		t_assert(in[k].checked < NP / 2);
	}
	printf("dead pool: %s\n", in[0].why);
	/* one of them met the pool's death, the others the dead restore */
	for (k = 0; k < NTHREADS; k++)
		t_assert(strstr(in[k].why, "pool tcp://127.0.0.1:") &&
			 (strstr(in[k].why, "connection closed by the server") ||
			  strstr(in[k].why, "Connection reset")));
	t_assert(tier_restore_error(rs) != 0);
	/* what was served stays right; the process goes on */
	check_present(mem, 0, NP / 2);
	tier_restore_stop(rs);
	/* stop of a dead restore: inaccessible, never zeros */
	munmap(mem, NP * PG);
}

static void bad_use(struct tier_snap *snap)
{
	struct tier_restore_attr attr = { .flags = TIER_RESTORE_SIGBUS |
						   TIER_RESTORE_NO_THREAD };
	struct tier_restore_thread *t = NULL;
	struct tier_restore *rs;
	uint8_t *mem = mmap(NULL, NP * PG, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	t_assert(mem != MAP_FAILED);
	t_fails(tier_restore_start(snap, mem, NP * PG, &attr, &rs), -EINVAL);
	attr.flags = 0;
	t_ok(tier_restore_start(snap, mem, NP * PG, &attr, &rs));
	t_fails(tier_restore_thread_open(rs, &t), -EINVAL);
	t_assert(strstr(tier_errmsg(), "not in SIGBUS mode"));
	t_assert(t == NULL);
	tier_restore_stop(rs);
	munmap(mem, NP * PG);
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };
	char img[512], trace[512], seg[700], path[600];
	struct tier_store *store;
	struct tier_snap *snapf, *snapt;
	unsigned port;
	int fd, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	tierctl = getenv("TIERCTL");
	if (!tierctl)
		t_skip("set TIERCTL to the tierctl binary");
	rc = uffd_open(0, &fd);
	if (rc == -EPERM || rc == -EACCES)
		t_skip("userfaultfd not permitted: run as root");
	if (rc)
		t_skip("no userfaultfd: %s", tier_errmsg());
	close(fd);
	rc = uffd_open(UFFD_F_SIGBUS, &fd);
	if (rc == -EOPNOTSUPP)
		t_skip("%s", tier_errmsg());
	t_ok(rc);
	close(fd);
	t_assert(sigaction(SIGBUS, &sa, NULL) == 0);

	t_assert(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/image", dir);
	snprintf(trace, sizeof(trace), "%s/trained.trace", dir);
	make_image(img, trace);
	snprintf(path, sizeof(path), "%s/pooldir", dir);
	port = pool_start(path);
	t_sh("%s import --quiet --store %s/store snapf %s", tierctl, dir, img);
	t_sh("%s import --quiet --store %s/store snapt %s", tierctl, dir, img);
	t_sh("%s trace import --store %s/store --name trained snapf %s >/dev/null",
	   tierctl, dir, trace);
	t_sh("%s trace import --store %s/store --name trained snapt %s >/dev/null",
	   tierctl, dir, trace);
	t_sh("%s place --store %s/store --policy tiered --trace trained "
	   "--cxl cxl=dir:%s/cxl snapf >/dev/null", tierctl, dir, dir);
	t_sh("%s place --store %s/store --policy tiered --trace trained "
	   "--cxl cxl=dir:%s/cxl --pool pool=tcp://127.0.0.1:%u snapt >/dev/null",
	   tierctl, dir, dir, port);
	snprintf(path, sizeof(path), "%s/store", dir);
	t_ok(tier_store_open(path, &store));
	t_ok(tier_snap_open(store, "snapf", &snapf));
	t_ok(tier_snap_open(store, "snapt", &snapt));

	bad_use(snapf);
	roundtrip(snapf, "file");
	roundtrip(snapt, "tcp");
	{
		struct plan plan;
		char name[128];

		t_ok(plan_load(snapf, TIER_POLICY_TIERED, &plan));
		snap_object_name(snapf, TIER_POLICY_TIERED, plan.hdr.generation,
				 name, sizeof(name));
		plan_free(&plan);
		snprintf(seg, sizeof(seg), "%s/store/pool/%s.seg", dir, name);
	}
	corrupt(snapf, seg);
	dead_pool(snapt);

	tier_snap_close(snapt);
	tier_snap_close(snapf);
	tier_store_close(store);
	pool_kill();
	t_sh("rm -rf %s", dir);
	return T_PASS;
}
