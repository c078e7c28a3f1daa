/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- writers killed at random points leave nothing for good:
 * places of every policy and replacing imports are killed (SIGKILL) at a
 * random time within their run, over and over; after each, the stored
 * plan (the old one or the new) reads back the image's bytes from its
 * data, and the next place or a gc (store_gc) removes what the killed one
 * left. At the end, each policy's tiers hold its plan's generation only,
 * and no temporary is left in the store or the tiers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t.h"
#include "cxl/cxl.h"
#include "rdma/pool.h"
#include "store/snap.h"
#include "util/uri.h"

#define PG	4096UL
#define NPG	2048UL
#define ROUNDS	40

static char topdir[] = "/var/tmp/test-gc.XXXXXX";
static char shmdir[] = "/dev/shm/test-gc.XXXXXX";
static char cxl_uri[256], img_path[600];
static uint8_t *image;
static struct tier_store *store;
static struct tier_snap *snap;

static const enum tier_policy policies[] = {
	TIER_POLICY_TIERED, TIER_POLICY_AQUIFER, TIER_POLICY_REAP,
	TIER_POLICY_FAASNAP,
};
#define NPOL	(sizeof(policies) / sizeof(policies[0]))

static const char *const trace_a[] = { "a", NULL };
static const char *const trace_b[] = { "b", NULL };

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int is_zero(uint64_t p)
{
	return p % 5 == 1;
}

static void gen_image(void)
{
	uint64_t x = 0x2545f4914f6cdd1dULL;
	int fd;

	image = calloc(NPG, PG);
	t_assert(image);
	for (uint64_t p = 0; p < NPG; p++)
		for (size_t i = 0; !is_zero(p) && i < PG; i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(image + p * PG + i, &x, 8);
		}
	fd = open(img_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_assert(write(fd, image, NPG * PG) == (ssize_t)(NPG * PG));
	close(fd);
}

static void write_trace(const char *name, uint64_t base)
{
	char path[700];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.txt", topdir, name);
	f = fopen(path, "w");
	t_assert(f);
	for (uint64_t p = base; p < base + 500; p++)
		fprintf(f, "0x%llx %s\n", (unsigned long long)p * PG,
			p % 10 ? "r" : "w");
	t_assert(fclose(f) == 0);
	t_ok(tier_trace_import(snap, name, path));
}

static int place(enum tier_policy p, int round)
{
	struct tier_place_attr attr = {
		.cxl = cxl_uri,
		.traces = round % 2 ? trace_b : trace_a,
	};

	return tier_place(snap, p, &attr);
}

/* The stored plan of @p, if any, reads the image's bytes from its data. */
static void check_plan(enum tier_policy p)
{
	struct cxl_tier *ct = NULL;
	struct cxl_obj *co = NULL;
	struct pool *pl = NULL;
	struct pool_seg *ps = NULL;
	struct tier_uri u;
	struct plan plan;
	char obj[128], path[700], buf[PG];
	int fd = -1, rc;

	rc = plan_load(snap, p, &plan);
	if (rc == -ENOENT)
		return;
	t_ok(rc);
	snap_object_name(snap, p, plan.hdr.generation, obj, sizeof(obj));
	for (size_t i = 0; i < plan.n; i++) {
		const struct placer_ext *e = &plan.ext[i];

		for (uint64_t k = 0; k < e->npages; k++) {
			uint64_t pg = e->page + k, off = e->src_off + k * PG;

			switch (e->source) {
			case PLACER_SRC_CXL:
				if (!co) {
					t_ok(uri_parse(plan.hdr.cxl, URI_WANT_CXL, &u));
					t_ok(cxl_open(&u, &ct));
					t_ok(cxl_obj_open(ct, obj, &co));
				}
				t_ok(cxl_obj_read(co, off, buf, PG));
				break;
			case PLACER_SRC_POOL:
				if (!ps) {
					t_ok(uri_parse(plan.hdr.pool, URI_WANT_POOL, &u));
					t_ok(pool_open(&u, &pl));
					t_ok(pool_seg_open(pl, obj, &ps));
				}
				{
					struct pool_iov iov = { off, buf, PG };

					t_ok(pool_readv(ps, &iov, 1));
				}
				break;
			case PLACER_SRC_LOCAL:
				if (fd < 0) {
					snap_local_path(snap, p, plan.hdr.generation,
							path, sizeof(path));
					fd = open(path, O_RDONLY);
					t_assert(fd >= 0);
				}
				t_eq(pread(fd, buf, PG, off), PG);
				break;
			default:
				continue;
			}
			if (memcmp(buf, image + pg * PG, PG)) {
				fprintf(stderr, "%s: page %llu differs\n",
					tier_policy_name(p),
					(unsigned long long)pg);
				exit(T_FAIL);
			}
		}
	}
	cxl_obj_close(co);
	cxl_close(ct);
	if (ps)
		pool_seg_close(ps);
	pool_close(pl);
	if (fd >= 0)
		close(fd);
	plan_free(&plan);
}

/* Runs @fn in a child killed with SIGKILL @delay seconds in (or done
 * before that); returns 1 if it was killed. */
static int killed_at(double delay, void (*fn)(int), int arg)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	usleep((useconds_t)(delay * 1e6));
	kill(pid, SIGKILL);
	t_assert(waitpid(pid, &status, 0) == pid);
	if (WIFEXITED(status)) {
		t_eq(WEXITSTATUS(status), 0);
		return 0;
	}
	t_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	return 1;
}

static void do_place(int round)
{
	if (place(policies[round % NPOL], round / NPOL)) {
		fprintf(stderr, "place: %s\n", tier_errmsg());
		_exit(1);
	}
}

static void do_import(int round)
{
	struct tier_import_attr attr = { .flags = TIER_IMPORT_REPLACE };

	if (tier_import(store, "imp", img_path, &attr)) {
		fprintf(stderr, "import: %s\n", tier_errmsg());
		_exit(1);
	}
}

/* Entries of @dir: all of them, or those starting with @prefix; hidden
 * ones (temporaries) counted in *@hidden. */
static int count(const char *dir, const char *prefix, int *hidden)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp.")) {
			fprintf(stderr, "left behind: %s/%s\n", dir, de->d_name);
			(*hidden)++;
		}
		n += !prefix || !strncmp(de->d_name, prefix, strlen(prefix));
	}
	closedir(d);
	return n;
}

static void report(const char *what, void *arg)
{
	(*(int *)arg)++;
}

/* Nothing anywhere but each policy's current generation. */
static void check_clean(void)
{
	char cxl[700], pool[700], local[700], plans[700], snaps[700], pfx[64];
	int hidden = 0;

	snprintf(cxl, sizeof(cxl), "%s/cxl/snap", shmdir);
	snprintf(pool, sizeof(pool), "%s/store/pool/snap", topdir);
	snprintf(local, sizeof(local), "%s/store/snapshots/snap/local", topdir);
	snprintf(plans, sizeof(plans), "%s/store/snapshots/snap/plans", topdir);
	snprintf(snaps, sizeof(snaps), "%s/store/snapshots", topdir);
	for (unsigned k = 0; k < NPOL; k++) {
		struct plan plan;
		int c = 0, s = 0, l = 0;

		snprintf(pfx, sizeof(pfx), "%s.", tier_policy_name(policies[k]));
		if (plan_load(snap, policies[k], &plan) == 0) {
			for (size_t i = 0; i < plan.n; i++) {
				c |= plan.ext[i].source == PLACER_SRC_CXL;
				s |= plan.ext[i].source == PLACER_SRC_POOL;
				l |= plan.ext[i].source == PLACER_SRC_LOCAL;
			}
			plan_free(&plan);
			/* its plan, its lock, its intent */
			t_eq(count(plans, pfx, &hidden), 3);
		} else {
			t_eq(count(plans, pfx, &hidden), 1);	/* the lock */
		}
		t_eq(count(cxl, pfx, &hidden), c);
		t_eq(count(pool, pfx, &hidden), s);
		t_eq(count(local, pfx, &hidden), l);
	}
	count(snaps, NULL, &hidden);
	snprintf(snaps, sizeof(snaps), "%s/store/snapshots/snap/traces", topdir);
	count(snaps, NULL, &hidden);
	t_eq(hidden, 0);
}

int main(void)
{
	unsigned kills = 0, said = 0;
	double t0, tp, ti;
	char path[700], cmd[1500];
	int n;

	t_assert(mkdtemp(topdir));
	t_assert(mkdtemp(shmdir));
	snprintf(cxl_uri, sizeof(cxl_uri), "cxl=dir:%s/cxl", shmdir);
	snprintf(img_path, sizeof(img_path), "%s/mem.img", topdir);
	snprintf(path, sizeof(path), "%s/store", topdir);
	t_ok(tier_store_open(path, &store));
	gen_image();
	t_ok(tier_import(store, "snap", img_path, NULL));
	t_ok(tier_snap_open(store, "snap", &snap));
	write_trace("a", 100);
	write_trace("b", 1000);

	/* how long one takes, to kill within it */
	t0 = now_s();
	for (unsigned k = 0; k < NPOL; k++)
		t_ok(place(policies[k], 0));
	tp = (now_s() - t0) / NPOL;
	t0 = now_s();
	do_import(0);
	ti = now_s() - t0;
	srand(getpid());

	for (int r = 0; r < ROUNDS; r++) {
		enum tier_policy p = policies[r % NPOL];
		int gc = rand() % 2;

		kills += killed_at(tp * 2.0 * rand() / RAND_MAX, do_place, r);
		/* the plan is the old one or the new, whole */
		check_plan(p);
		if (r % 4 == 0)
			kills += killed_at(ti * 2.0 * rand() / RAND_MAX,
					   do_import, r);
		if (gc) {
			n = store_gc(store, report, &said);
			t_assert(n >= 0);
		}
		check_plan(p);
	}
	printf("%u of %u writers killed midway (a place takes %.1f ms, an import %.1f ms)\n",
	       kills, ROUNDS + ROUNDS / 4, tp * 1e3, ti * 1e3);

	/* the next place of each policy cleans up after its killed one */
	for (unsigned k = 0; k < NPOL; k++) {
		t_ok(place(policies[k], 1));
		check_plan(policies[k]);
	}
	n = store_gc(store, report, &said);
	t_assert(n >= 0);
	check_clean();
	/* and an import after a killed one of its name */
	kills += killed_at(ti * 0.5, do_import, 0);
	do_import(0);
	check_clean();
	printf("gc reported %u removals\n", said);

	tier_snap_close(snap);
	tier_store_close(store);
	free(image);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", topdir, shmdir);
	t_eq(system(cmd), 0);
	return T_PASS;
}
