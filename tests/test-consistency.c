/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: root -- a restore only ever uses a plan with the data written
 * with it. A process placing every policy over and over, alternating two
 * traces, races restores of every policy: each restore verifies every
 * byte of the image or fails with one line (a plan replaced before its
 * data was opened), never hangs (a watchdog bounds each one). Then, one
 * at a time: a restore keeps the data of a plan replaced under it; one
 * whose plan was replaced before it opened the data fails with ESTALE; a
 * hole where a plan maps a page, and a v1 plan (names without a
 * generation) whose CXL object another place wrote, fail the start with
 * a message instead of hanging it in userfaultfd.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/falloc.h>

#include "t.h"
#include "store/restore.h"
#include "store/snap.h"
#include "store/uffd.h"

#define PG		4096UL
#define NPG		2048UL
#define BOUND_S		20	/* the longest a restore may take */
#define RACE_S		8	/* how long places race restores */

static char topdir[] = "/var/tmp/test-consistency.XXXXXX";
static char shmdir[] = "/dev/shm/test-consistency.XXXXXX";
static char cxl_uri[256];
static uint8_t *image;
static struct tier_snap *snap;

static const enum tier_policy policies[] = {
	TIER_POLICY_TIERED, TIER_POLICY_AQUIFER, TIER_POLICY_REAP,
	TIER_POLICY_FAASNAP, TIER_POLICY_EAGER, TIER_POLICY_VANILLA,
};
#define NPOL	(sizeof(policies) / sizeof(policies[0]))

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------- the store */

static int is_zero(uint64_t p)
{
	return p % 7 == 3 || (p >= 1800 && p < 1900);
}

static void gen_image(const char *path)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	int fd;

	image = calloc(NPG, PG);
	t_assert(image);
	for (uint64_t p = 0; p < NPG; p++) {
		if (is_zero(p))
			continue;
		for (size_t i = 0; i < PG; i += 8) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			memcpy(image + p * PG + i, &x, 8);
		}
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_assert(write(fd, image, NPG * PG) == (ssize_t)(NPG * PG));
	close(fd);
}

/* Trace a reads [100, 400) and writes [500, 520); trace b the same over
 * [1000, 1300) and [1400, 1420): the two plans share no hot page. */
static void write_trace(const char *name, uint64_t base)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.txt", topdir, name);
	f = fopen(path, "w");
	t_assert(f);
	for (uint64_t p = base; p < base + 300; p++)
		fprintf(f, "0x%llx r\n", (unsigned long long)p * PG);
	for (uint64_t p = base + 400; p < base + 420; p++)
		fprintf(f, "0x%llx w\n", (unsigned long long)p * PG);
	t_assert(fclose(f) == 0);
	t_ok(tier_trace_import(snap, name, path));
}

static const char *const trace_a[] = { "a", NULL };
static const char *const trace_b[] = { "b", NULL };

static int place(enum tier_policy p, const char *const *traces)
{
	struct tier_place_attr attr = { .cxl = cxl_uri, .traces = traces };

	return tier_place(snap, p, &attr);
}

/* ------------------------------------------------------- a restore */

static _Atomic int fault_failed;

static void on_error(struct tier_restore *rs, int err, const char *msg,
		     void *arg)
{
	fprintf(stderr, "restore failed after its start: %d %s\n", err, msg);
	atomic_store(&fault_failed, err);
}

static uint8_t *map_range(void)
{
	void *m = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	t_assert(m != MAP_FAILED);
	return m;
}

/* Every byte against the image: faults in the lazy pages. */
static void verify(const uint8_t *mem, const char *what)
{
	for (uint64_t p = 0; p < NPG; p++) {
		if (memcmp(mem + p * PG, image + p * PG, PG)) {
			fprintf(stderr, "%s: page %llu differs from the image\n",
				what, (unsigned long long)p);
			exit(T_FAIL);
		}
	}
	t_eq(atomic_load(&fault_failed), 0);
}

static void check_one_line(const char *msg)
{
	t_assert(msg[0]);
	t_assert(!strchr(msg, '\n'));
}

/* ------------------------------------------------------- the watchdog */

static _Atomic double deadline;		/* 0: nothing running */
static const char *_Atomic doing;
static _Atomic pid_t placer_pid;

/* Fails the test when something takes longer than the bound (a thread
 * blocked in userfaultfd for good is killable, so the exit ends it). */
static void *watchdog(void *arg)
{
	for (;;) {
		double d = atomic_load(&deadline);

		if (d && now_s() > d) {
			fprintf(stderr, "%s: not done within %d s (hung?)\n",
				atomic_load(&doing), BOUND_S);
			if (atomic_load(&placer_pid) > 0)
				kill(atomic_load(&placer_pid), SIGKILL);
			_exit(T_FAIL);
		}
		usleep(100 * 1000);
	}
	return NULL;
}

static void bound(const char *what)
{
	atomic_store(&doing, what);
	atomic_store(&deadline, now_s() + BOUND_S);
}

static void unbound(void)
{
	atomic_store(&deadline, 0);
}

/* ------------------------------------------------------- the race */

/* Places every policy with trace a, then b, ... until @stop is readable
 * or closed; exits 0 if every place succeeded. */
static void placer(int stop)
{
	struct pollfd pfd = { .fd = stop, .events = POLLIN };
	unsigned i, n = 0;

	for (i = 0; poll(&pfd, 1, 0) == 0; i++) {
		enum tier_policy p = policies[i % NPOL];

		if (place(p, (i / NPOL) % 2 ? trace_b : trace_a)) {
			fprintf(stderr, "placer: %s\n", tier_errmsg());
			_exit(1);
		}
		n++;
	}
	printf("placer: %u places\n", n);
	fflush(stdout);
	_exit(0);
}

static void race(void)
{
	unsigned ok[NPOL] = { 0 }, stale[NPOL] = { 0 }, n = 0;
	int pfd[2], status;
	double end;
	pid_t pid;

	t_assert(pipe(pfd) == 0);
	fflush(NULL);
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		close(pfd[1]);
		placer(pfd[0]);
	}
	atomic_store(&placer_pid, pid);
	close(pfd[0]);

	end = now_s() + RACE_S;
	for (n = 0; now_s() < end; n++) {
		unsigned k = n % NPOL;
		struct tier_restore_attr attr = {
			.policy = policies[k],
			.on_error = on_error,
		};
		struct tier_restore *rs;
		uint8_t *mem = map_range();
		int rc;

		bound("a restore racing places");
		rc = tier_restore_start(snap, mem, NPG * PG, &attr, &rs);
		if (rc) {
			/* the plan read was replaced before its data was
			 * opened: the one failure a race may cause */
			check_one_line(tier_errmsg());
			if (rc != -ESTALE || !strstr(tier_errmsg(), "retry")) {
				fprintf(stderr, "restore %u (%s): %d %s\n", n,
					tier_policy_name(policies[k]), rc,
					tier_errmsg());
				exit(T_FAIL);
			}
			stale[k]++;
		} else {
			verify(mem, tier_policy_name(policies[k]));
			t_eq(tier_restore_error(rs), 0);
			tier_restore_stop(rs);
			ok[k]++;
		}
		unbound();
		t_assert(munmap(mem, NPG * PG) == 0);
	}
	close(pfd[1]);
	bound("the placer's end");
	t_assert(waitpid(pid, &status, 0) == pid);
	atomic_store(&placer_pid, 0);
	unbound();
	t_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	for (unsigned k = 0; k < NPOL; k++) {
		printf("%-8s %u restores verified, %u refused (stale plan)\n",
		       tier_policy_name(policies[k]), ok[k], stale[k]);
		t_assert(ok[k] > 0);
	}
}

/* Entries of @dir whose names start with @prefix. */
static int count_prefix(const char *dir, const char *prefix)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		     !strncmp(de->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/* After the race, each policy's current generation only (one object a
 * tier it uses), nothing half-written. */
static void leftovers(void)
{
	char cxl[600], pool[600], local[600], pfx[64];

	snprintf(cxl, sizeof(cxl), "%s/cxl/snap", shmdir);
	snprintf(pool, sizeof(pool), "%s/store/pool/snap", topdir);
	snprintf(local, sizeof(local), "%s/store/snapshots/snap/local", topdir);
	for (unsigned k = 0; k < NPOL; k++) {
		struct plan plan;
		int c = 0, s = 0, l = 0;

		t_ok(plan_load(snap, policies[k], &plan));
		t_assert(plan.hdr.generation);
		for (size_t i = 0; i < plan.n; i++) {
			c |= plan.ext[i].source == PLACER_SRC_CXL;
			s |= plan.ext[i].source == PLACER_SRC_POOL;
			l |= plan.ext[i].source == PLACER_SRC_LOCAL;
		}
		plan_free(&plan);
		snprintf(pfx, sizeof(pfx), "%s.", tier_policy_name(policies[k]));
		t_eq(count_prefix(cxl, pfx), c);
		t_eq(count_prefix(pool, pfx), s);
		t_eq(count_prefix(local, pfx), l);
	}
	t_eq(count_prefix(cxl, "."), 0);
	t_eq(count_prefix(pool, "."), 0);
}

/* ------------------------------------------------- one at a time */

/*
 * A restore that opened its data keeps it: two places replace its plan
 * (and remove its objects by name) while it runs, and every lazy page it
 * then serves is still its own generation's.
 */
static void kept_while_open(void)
{
	struct tier_restore_attr attr = { .policy = TIER_POLICY_TIERED,
					  .on_error = on_error };
	struct tier_restore *rs;
	uint8_t *mem = map_range();

	t_ok(place(TIER_POLICY_TIERED, trace_a));
	bound("a restore whose plan is replaced under it");
	t_ok(tier_restore_start(snap, mem, NPG * PG, &attr, &rs));
	t_ok(place(TIER_POLICY_TIERED, trace_b));
	t_ok(place(TIER_POLICY_TIERED, trace_a));
	verify(mem, "tiered, replaced twice meanwhile");
	tier_restore_stop(rs);
	unbound();
	t_assert(munmap(mem, NPG * PG) == 0);
}

/* A plan read before a place replaced it: its data is gone by name. */
static void stale_plan(void)
{
	for (unsigned k = 0; k < NPOL; k++) {
		struct tier_restore_attr attr = { .policy = policies[k] };
		struct tier_restore *rs = NULL;
		uint8_t *mem = map_range();
		struct plan plan;
		char want[128];
		int rc;

		t_ok(place(policies[k], trace_a));
		t_ok(plan_load(snap, policies[k], &plan));
		t_ok(place(policies[k], trace_b));
		bound("a restore of a replaced plan");
		rc = restore_start_plan(snap, &plan, mem, NPG * PG, &attr, &rs);
		unbound();
		if (policies[k] == TIER_POLICY_VANILLA ||
		    policies[k] == TIER_POLICY_EAGER) {
			/* no data but the image's: nothing to go stale */
			t_ok(rc);
			verify(mem, tier_policy_name(policies[k]));
			tier_restore_stop(rs);
		} else {
			t_fails(rc, -ESTALE);
			t_assert(rs == NULL);
			check_one_line(tier_errmsg());
			snprintf(want, sizeof(want),
				 "snapshot snap: plan %s generation %016llx: ",
				 tier_policy_name(policies[k]),
				 (unsigned long long)plan.hdr.generation);
			if (!strstr(tier_errmsg(), want) ||
			    !strstr(tier_errmsg(), "gone (replaced by a newer place); retry")) {
				fprintf(stderr, "unexpected: %s\n", tier_errmsg());
				exit(T_FAIL);
			}
		}
		plan_free(&plan);
		t_assert(munmap(mem, NPG * PG) == 0);
	}
}

/* The first page of the plan's first populated CXL mapping: always the
 * page a fault-around window is populated through. */
static uint64_t first_mapped(const struct plan *plan)
{
	for (size_t i = 0; i < plan->n; i++)
		if (plan->ext[i].source == PLACER_SRC_CXL &&
		    plan->ext[i].method == PLACER_M_MAP &&
		    (plan->ext[i].flags & PLACER_F_POPULATE))
			return plan->ext[i].page;
	t_assert(!"no populated CXL extent");
	return 0;
}

/*
 * Starts a restore of @plan (NULL: the stored one) in a child, which
 * reports its result; a child that does not report within the bound
 * hung. Returns the start's rc, its message in @msg.
 */
static int start_in_child(const struct plan *plan, char *msg, size_t len)
{
	int pfd[2], status, rc = 1;
	ssize_t n, got = 0;
	pid_t pid;

	t_assert(pipe(pfd) == 0);
	fflush(NULL);
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		struct tier_restore_attr attr = { .policy = TIER_POLICY_TIERED };
		struct tier_restore *rs;
		uint8_t *mem = map_range();
		char buf[512];

		close(pfd[0]);
		if (plan)
			rc = restore_start_plan(snap, plan, mem, NPG * PG,
						&attr, &rs);
		else
			rc = tier_restore_start(snap, mem, NPG * PG, &attr,
						&rs);
		if (!rc)
			verify(mem, "tiered");
		n = snprintf(buf, sizeof(buf), "%d %s", rc,
			     rc ? tier_errmsg() : "");
		if (write(pfd[1], buf, n) != n)
			_exit(2);
		_exit(0);
	}
	close(pfd[1]);
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };

		if (poll(&p, 1, BOUND_S * 1000) != 1) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fprintf(stderr, "a restore start hung (> %d s)\n",
				BOUND_S);
			exit(T_FAIL);
		}
		n = read(pfd[0], msg + got, len - 1 - got);
		if (n <= 0)
			break;
		got += n;
	}
	msg[got] = 0;
	close(pfd[0]);
	t_assert(waitpid(pid, &status, 0) == pid);
	t_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	t_assert(sscanf(msg, "%d", &rc) == 1);
	memmove(msg, strchr(msg, ' ') + 1, strlen(strchr(msg, ' ') + 1) + 1);
	return rc;
}

/*
 * A hole punched where the plan maps a page, and a page written where it
 * maps none, so the object still holds as many bytes as the plan's CXL
 * extents: its changed ctime still sends the start to check every
 * window, and the hole fails the start, naming the page.
 */
static void punched(void)
{
	char obj[128], path[700], msg[600];
	struct plan plan;
	uint64_t p;
	int fd, rc;

	t_ok(place(TIER_POLICY_TIERED, trace_a));
	t_ok(plan_load(snap, TIER_POLICY_TIERED, &plan));
	p = first_mapped(&plan);
	snap_object_name(snap, TIER_POLICY_TIERED, plan.hdr.generation, obj,
			 sizeof(obj));
	plan_free(&plan);
	snprintf(path, sizeof(path), "%s/cxl/%s.obj", shmdir, obj);
	/* the object is whole: the stored plan restores */
	rc = start_in_child(NULL, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "start: %s\n", msg);
	t_eq(rc, 0);

	fd = open(path, O_RDWR);
	t_assert(fd >= 0);
	t_assert(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			   p * PG, PG) == 0);
	t_assert(pwrite(fd, image + 5 * PG, PG, 5 * PG) == (ssize_t)PG);
	close(fd);
	rc = start_in_child(NULL, msg, sizeof(msg));
	fprintf(stderr, "punched object: %d %s\n", rc, msg);
	t_eq(rc, -EBADMSG);
	check_one_line(msg);
	snprintf(path, sizeof(path), "page %llu: ", (unsigned long long)p);
	t_assert(strstr(msg, path));
	t_assert(strstr(msg, "hole"));
}

/*
 * A v1 plan names its objects without a generation, so another place's
 * can stand there: the CXL object of trace a's plan under trace b's
 * plan. Trace b's mapped pages are holes in it: the start fails on the
 * first one, never waits in userfaultfd for it.
 */
static void v1_mismatch(void)
{
	char obj[128], v1[128], from[700], to[700], cmd[1600], msg[600];
	struct plan a, b;
	int rc;

	t_ok(place(TIER_POLICY_TIERED, trace_a));
	t_ok(plan_load(snap, TIER_POLICY_TIERED, &a));
	snap_object_name(snap, TIER_POLICY_TIERED, 0, v1, sizeof(v1));
	snap_object_name(snap, TIER_POLICY_TIERED, a.hdr.generation, obj,
			 sizeof(obj));
	snprintf(from, sizeof(from), "%s/cxl/%s.obj", shmdir, obj);
	snprintf(to, sizeof(to), "%s/cxl/%s.obj", shmdir, v1);
	snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", from, to);
	t_eq(system(cmd), 0);
	plan_free(&a);

	t_ok(place(TIER_POLICY_TIERED, trace_b));
	t_ok(plan_load(snap, TIER_POLICY_TIERED, &b));
	/* its pool segment under the v1 name too: only the CXL object is
	 * another plan's */
	snap_object_name(snap, TIER_POLICY_TIERED, b.hdr.generation, obj,
			 sizeof(obj));
	snprintf(cmd, sizeof(cmd), "cp '%s/store/pool/%s.seg' '%s/store/pool/%s.seg'",
		 topdir, obj, topdir, v1);
	t_eq(system(cmd), 0);
	b.hdr.generation = 0;
	b.hdr.version = 1;
	rc = start_in_child(&b, msg, sizeof(msg));
	fprintf(stderr, "v1 plan, another place's object: %d %s\n", rc, msg);
	t_eq(rc, -EBADMSG);
	check_one_line(msg);
	t_assert(strstr(msg, "hole"));
	plan_free(&b);
	unlink(to);
}

int main(void)
{
	struct tier_store *store;
	pthread_t wd;
	char path[600], cmd[1300];
	int fd, rc;

	rc = uffd_open(0, &fd);
	if (rc == -EPERM || rc == -EACCES)
		t_skip("userfaultfd not permitted: run as root or set "
		       "vm.unprivileged_userfaultfd=1");
	if (rc == -ENOSYS || rc == -EOPNOTSUPP)
		t_skip("no userfaultfd: %s", tier_errmsg());
	t_ok(rc);
	close(fd);
	t_assert(pthread_create(&wd, NULL, watchdog, NULL) == 0);

	t_assert(mkdtemp(topdir));
	t_assert(mkdtemp(shmdir));
	snprintf(cxl_uri, sizeof(cxl_uri), "cxl=dir:%s/cxl", shmdir);
	snprintf(path, sizeof(path), "%s/store", topdir);
	t_ok(tier_store_open(path, &store));
	snprintf(path, sizeof(path), "%s/mem.img", topdir);
	gen_image(path);
	t_ok(tier_import(store, "snap", path, NULL));
	t_ok(tier_snap_open(store, "snap", &snap));
	write_trace("a", 100);
	write_trace("b", 1000);
	for (unsigned k = 0; k < NPOL; k++)
		t_ok(place(policies[k], trace_a));

	race();
	leftovers();
	kept_while_open();
	stale_plan();
	punched();
	v1_mismatch();

	tier_snap_close(snap);
	tier_store_close(store);
	free(image);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", topdir, shmdir);
	t_eq(system(cmd), 0);
	return T_PASS;
}
