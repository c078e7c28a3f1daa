/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: ceph -- the rados:// pool on a real one-host Ceph cluster
 * (emu/ceph-cluster.sh, or the one TIER_TEST_CEPH_DIR names, started by
 * that script): segments of several objects written and read back
 * scattered byte for byte, an uncommitted segment invisible, abort and a
 * killed writer leaving nothing behind pool_remove does not find, remove,
 * a cut object read as an error rather than zeros, namespaces apart, and
 * the one-line errors of a wrong keyring and a missing pool.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rados/librados.h>

#include "t.h"
#include "rdma/pool.h"
#include "util/uri.h"

#define STRIPE	(4U << 20)	/* the URI's object_size: several objects in little data */

static char dir[2048], conf[2100], keyring[2100];
static bool own_cluster;
static char ns[64];
static rados_t admin;
static rados_ioctx_t aio;	/* the test's own view, in namespace ns */

static uint8_t pat(uint64_t off, unsigned seed)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ seed * 0xbf58476d1ce4e5b9ULL;

	return (uint8_t)(x >> 29 ^ x >> 47);
}

static unsigned rnd_state = 4242;

static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245 + 12345;
	return rnd_state >> 8;
}

static void stop_cluster(void)
{
	char cmd[8192];

	if (!own_cluster)
		return;
	snprintf(cmd, sizeof(cmd), "'%s/emu/ceph-cluster.sh' stop '%s'",
		 getenv("TIER_SRCDIR"), dir);
	if (system(cmd) == 0 && !getenv("TIER_TEST_KEEP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void)!system(cmd);
	}
}

/* The cluster the environment names, or a new one under a temporary. */
static void get_cluster(void)
{
	const char *src = getenv("TIER_SRCDIR"), *env = getenv("TIER_TEST_CEPH_DIR");
	char cmd[8192], line[4200];
	FILE *f;
	int st;

	if (env) {
		snprintf(dir, sizeof(dir), "%s", env);
	} else {
		t_assert(src);
		snprintf(dir, sizeof(dir), "/tmp/tier-ceph.XXXXXX");
		t_assert(mkdtemp(dir));
		own_cluster = true;
		atexit(stop_cluster);
		snprintf(cmd, sizeof(cmd), "'%s/emu/ceph-cluster.sh' start '%s' 2>'%s/start.log'",
			 src, dir, dir);
		f = popen(cmd, "r");
		t_assert(f);
		while (fgets(line, sizeof(line), f))
			fputs(line, stdout);
		st = pclose(f);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
			own_cluster = false;
			rmdir(dir);
			t_skip("Ceph is not installed (apt-get install ceph-mon ceph-mgr ceph-osd ceph-common)");
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			snprintf(cmd, sizeof(cmd), "cat '%s/start.log' >&2", dir);
			(void)!system(cmd);
			fprintf(stderr, "emu/ceph-cluster.sh start failed\n");
			exit(T_FAIL);
		}
		/* how long the start took, for the log */
		snprintf(cmd, sizeof(cmd), "grep HEALTH_OK '%s/start.log'", dir);
		(void)!system(cmd);
	}
	snprintf(conf, sizeof(conf), "%s/ceph.conf", dir);
	snprintf(keyring, sizeof(keyring), "%s/client.tier.keyring", dir);
	t_assert(access(conf, R_OK) == 0 && access(keyring, R_OK) == 0);
	/* a namespace of this run's own: runs against one cluster stay apart */
	snprintf(ns, sizeof(ns), "t%d", (int)getpid());

	t_eq(rados_create(&admin, "tier"), 0);
	t_eq(rados_conf_read_file(admin, conf), 0);
	t_eq(rados_conf_set(admin, "keyring", keyring), 0);
	t_eq(rados_connect(admin), 0);
	t_eq(rados_ioctx_create(admin, "tier", &aio), 0);
	rados_ioctx_set_namespace(aio, ns);
}

static void open_pool(const char *nspace, struct pool **ret)
{
	char s[12000];
	struct tier_uri u;

	snprintf(s, sizeof(s), "pool=rados://tier/%s?id=tier&conf=%s&keyring=%s&object_size=4M",
		 nspace, conf, keyring);
	t_ok(uri_parse(s, URI_WANT_POOL, &u));
	t_ok(pool_open(&u, ret));
}

/* Objects of the namespace whose name starts with "@name." */
static unsigned count_objects(const char *name)
{
	size_t len = strlen(name);
	rados_list_ctx_t ctx;
	const char *e;
	unsigned n = 0;

	t_eq(rados_nobjects_list_open(aio, &ctx), 0);
	while (rados_nobjects_list_next(ctx, &e, NULL, NULL) == 0)
		if (!strncmp(e, name, len) && e[len] == '.')
			n++;
	rados_nobjects_list_close(ctx);
	return n;
}

/*
 * @len bytes of pattern @seed, but for the last @hole bytes, which are
 * never written; front to back in uneven pieces that cross objects.
 */
static void put_seg(struct pool *p, const char *name, size_t len, size_t hole,
		    unsigned seed)
{
	uint8_t *b = malloc(len);
	struct pool_wseg *w;
	size_t i, off = 0;

	t_assert(b);
	for (i = 0; i < len; i++)
		b[i] = pat(i, seed);
	t_ok(pool_create(p, name, len, &w));
	while (off < len - hole) {
		size_t n = len - hole - off < 1234567 ? len - hole - off : 1234567;

		t_ok(pool_write(w, off, b + off, n));
		off += n;
	}
	t_ok(pool_commit(w));
	free(b);
}

static void check_scattered(struct pool_seg *s, unsigned nr, size_t hole,
			    unsigned seed)
{
	uint64_t size = pool_seg_size(s);
	struct pool_iov *iov = calloc(nr, sizeof(*iov));
	unsigned i;
	size_t j;

	t_assert(iov);
	for (i = 0; i < nr; i++) {
		/* the first crosses an object boundary, the last is the hole */
		iov[i].len = i == 0 ? 3 * 4096 : 1 + rnd() % 20000;
		iov[i].off = i == 0 ? STRIPE - 4096 : rnd() % (size - iov[i].len);
		if (i == nr - 1) {
			iov[i].len = hole + 100;
			iov[i].off = size - iov[i].len;
		}
		iov[i].buf = malloc(iov[i].len);
		t_assert(iov[i].buf);
		memset(iov[i].buf, 0xee, iov[i].len);
	}
	t_ok(pool_readv(s, iov, nr));
	for (i = 0; i < nr; i++) {
		for (j = 0; j < iov[i].len; j++) {
			uint64_t off = iov[i].off + j;
			uint8_t want = off >= size - hole ? 0 : pat(off, seed);

			if (((uint8_t *)iov[i].buf)[j] != want) {
				fprintf(stderr, "iov %u: byte at %llu: %#x, want %#x\n",
					i, (unsigned long long)off,
					((uint8_t *)iov[i].buf)[j], want);
				exit(T_FAIL);
			}
		}
		free(iov[i].buf);
	}
	free(iov);
}

static void test_roundtrip(struct pool *p)
{
	/* 3 whole objects and part of a fourth; the last 2 pages a hole */
	size_t len = 3 * (size_t)STRIPE + 5 * 4096 + 17, hole = 2 * 4096;
	struct pool_seg *s;

	put_seg(p, "snap/rw", len, hole, 7);
	/* 4 data objects (the commit object is "snap/rw" itself) */
	t_eq(count_objects("snap/rw"), 4);
	t_ok(pool_seg_open(p, "snap/rw", &s));
	t_eq(pool_seg_size(s), len);
	check_scattered(s, 200, hole, 7);
	pool_seg_close(s);

	/* replaced: the new bytes, and the old objects gone */
	put_seg(p, "snap/rw", len, hole, 8);
	t_eq(count_objects("snap/rw"), 4);
	t_ok(pool_seg_open(p, "snap/rw", &s));
	check_scattered(s, 50, hole, 8);
	pool_seg_close(s);
	printf("ok: %zu bytes over 4 objects, 250 scattered ranges\n", len);
}

static void test_namespaces(struct pool *p)
{
	struct pool *q;
	struct pool_seg *s;
	char other[80];

	snprintf(other, sizeof(other), "%s-other", ns);
	open_pool(other, &q);
	t_fails(pool_seg_open(q, "snap/rw", &s), -ENOENT);
	t_assert(strstr(tier_errmsg(), "no such segment"));
	pool_close(q);
	printf("ok: another namespace does not see the segment\n");
}

static void test_uncommitted(struct pool *p)
{
	static uint8_t buf[STRIPE + 4096];
	struct pool_wseg *w;
	struct pool_seg *s;
	pid_t pid;
	int st;

	memset(buf, 0x5a, sizeof(buf));
	t_ok(pool_create(p, "snap/half", 2 * STRIPE, &w));
	t_ok(pool_write(w, 0, buf, sizeof(buf)));
	t_eq(count_objects("snap/half"), 2);
	t_fails(pool_seg_open(p, "snap/half", &s), -ENOENT);
	pool_abort(w);
	t_eq(count_objects("snap/half"), 0);
	t_fails(pool_seg_open(p, "snap/half", &s), -ENOENT);
	printf("ok: uncommitted invisible, abort leaves no object\n");

	/* a writer killed before its commit */
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		struct pool *c;

		open_pool(ns, &c);
		if (pool_create(c, "snap/crash", 2 * STRIPE, &w) ||
		    pool_write(w, 0, buf, sizeof(buf)))
			_exit(1);
		_exit(0);
	}
	t_eq(waitpid(pid, &st, 0), pid);
	t_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	t_eq(count_objects("snap/crash"), 2);
	t_fails(pool_seg_open(p, "snap/crash", &s), -ENOENT);
	t_ok(pool_remove(p, "snap/crash"));
	t_eq(count_objects("snap/crash"), 0);
	t_fails(pool_remove(p, "snap/crash"), -ENOENT);
	printf("ok: a killed writer's objects invisible, found and removed\n");
}

/* An object cut behind the pool's back: an error naming it, not zeros. */
static void test_cut(struct pool *p)
{
	size_t len = 2 * (size_t)STRIPE;
	struct pool_seg *s;
	struct pool_iov iov;
	rados_list_ctx_t ctx;
	const char *e;
	char victim[300] = "";
	static uint8_t buf[8192];

	put_seg(p, "snap/cut", len, 0, 3);
	t_eq(rados_nobjects_list_open(aio, &ctx), 0);
	while (rados_nobjects_list_next(ctx, &e, NULL, NULL) == 0)
		if (!strncmp(e, "snap/cut.", 9) && !strcmp(e + strlen(e) - 9, ".00000001"))
			snprintf(victim, sizeof(victim), "%s", e);
	rados_nobjects_list_close(ctx);
	t_assert(victim[0]);
	t_ok(pool_seg_open(p, "snap/cut", &s));
	t_eq(rados_trunc(aio, victim, 4096), 0);
	iov = (struct pool_iov){ .off = STRIPE + 4096, .buf = buf, .len = sizeof(buf) };
	t_fails(pool_readv(s, &iov, 1), -EIO);
	t_assert(strstr(tier_errmsg(), victim));
	printf("ok: cut object: %s\n", tier_errmsg());
	t_eq(rados_remove(aio, victim), 0);
	t_fails(pool_readv(s, &iov, 1), -ENOENT);
	t_assert(strstr(tier_errmsg(), victim));
	printf("ok: removed object: %s\n", tier_errmsg());
	pool_seg_close(s);
	t_ok(pool_remove(p, "snap/cut"));
}

static pid_t read_pid(const char *name)
{
	char path[2200];
	FILE *f;
	int pid = -1;

	snprintf(path, sizeof(path), "%s/run/%s.pid", dir, name);
	f = fopen(path, "r");
	t_assert(f);
	t_eq(fscanf(f, "%d", &pid), 1);
	fclose(f);
	return pid;
}

/*
 * One OSD of three killed under a reader: every replica is on its own
 * OSD (size 3, min_size 2), so the reads complete, byte for byte, once
 * the cluster has marked it down. It is started again after.
 */
static void test_osd_killed(struct pool *p)
{
	size_t hole = 2 * 4096;
	struct pool_seg *s;
	char cmd[4400];
	pid_t pid;

	t_ok(pool_seg_open(p, "snap/rw", &s));
	pid = read_pid("osd.0");
	t_eq(kill(pid, SIGKILL), 0);
	check_scattered(s, 200, hole, 8);
	check_scattered(s, 200, hole, 8);
	pool_seg_close(s);
	printf("ok: osd.0 killed, 400 ranges read back from the others\n");
	while (kill(pid, 0) == 0)
		usleep(10000);
	snprintf(cmd, sizeof(cmd), "ceph-osd -c '%s' -i 0 2>/dev/null", conf);
	t_eq(system(cmd), 0);
}

static void test_remove(struct pool *p)
{
	struct pool_seg *s;

	t_ok(pool_remove(p, "snap/rw"));
	t_eq(count_objects("snap/rw"), 0);
	t_fails(pool_seg_open(p, "snap/rw", &s), -ENOENT);
	t_fails(pool_remove(p, "snap/rw"), -ENOENT);
	t_assert(strstr(tier_errmsg(), "no such segment"));
	printf("ok: remove\n");
}

static void test_errors(void)
{
	char s[12000], bad[4200], cmd[8400];
	struct tier_uri u;
	struct pool *p;
	const char *m;

	/* a key of the right client that is not the cluster's */
	snprintf(bad, sizeof(bad), "%s/wrong.keyring", dir);
	snprintf(cmd, sizeof(cmd), "ceph-authtool --create-keyring '%s' --gen-key -n client.tier >/dev/null",
		 bad);
	t_eq(system(cmd), 0);
	snprintf(s, sizeof(s), "rados://tier?id=tier&conf=%s&keyring=%s", conf, bad);
	t_ok(uri_parse(s, URI_WANT_POOL, &u));
	t_assert(pool_open(&u, &p) < 0);
	m = tier_errmsg();
	printf("ok: wrong keyring: %s\n", m);
	t_assert(!strchr(m, '\n'));
	t_assert(strstr(m, "rados://tier") && strstr(m, "client.tier") &&
		 strstr(m, bad));

	snprintf(s, sizeof(s), "rados://nosuch/x?id=tier&conf=%s&keyring=%s", conf,
		 keyring);
	t_ok(uri_parse(s, URI_WANT_POOL, &u));
	t_fails(pool_open(&u, &p), -ENOENT);
	m = tier_errmsg();
	printf("ok: missing pool: %s\n", m);
	t_assert(!strchr(m, '\n'));
	t_assert(strstr(m, "rados://nosuch/x") && strstr(m, "no pool 'nosuch'"));
}

int main(void)
{
	struct pool *p;

	setvbuf(stdout, NULL, _IOLBF, 0);
	get_cluster();
	open_pool(ns, &p);
	test_roundtrip(p);
	test_namespaces(p);
	test_uncommitted(p);
	test_cut(p);
	test_osd_killed(p);
	test_remove(p);
	test_errors();
	pool_close(p);
	rados_ioctx_destroy(aio);
	rados_shutdown(admin);
	return T_PASS;
}
