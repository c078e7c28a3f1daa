/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: guest -- the pool over RDMA (rdma_cm control messages, one-sided
 * RDMA READ data). Needs an RDMA device: run it under soft-RoCE with
 *	emu/run-in-guest.sh --rxe -- env TIER_TEST_RDMA_ADDR=10.9.0.1 \
 *		TIER_POOL_RDMA_SRC=10.9.0.2 BUILD/tests/test-pool-rdma
 * (the server listens on rxe0's address, the client leaves from rxe1's).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "rdma/keys.h"
#include "rdma/pool-int.h"
#include "rdma/pool.h"

#define MiB (1024 * 1024)

static const char *addr;

static uint8_t pat(uint64_t off, unsigned seed)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ seed * 0xbf58476d1ce4e5b9ULL;

	return (uint8_t)(x >> 29 ^ x >> 47);
}

static __thread unsigned rnd_state = 777;

static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245 + 12345;
	return rnd_state >> 8;
}

static struct tier_uri rdma_uri(uint16_t port)
{
	struct tier_uri u = { .kind = URI_POOL_RDMA, .port = port };

	snprintf(u.host, sizeof(u.host), "%s", addr);
	return u;
}

struct srv {
	struct pool_server *s;
	pthread_t thread;
	uint16_t port;
};

static void *srv_main(void *arg)
{
	struct srv *sv = arg;

	t_ok(pool_server_run(sv->s));
	return NULL;
}

static void srv_start_keys(struct srv *sv, const char *dir, const char *keys)
{
	struct tier_uri u = rdma_uri(0);
	struct pool_server_attr attr = { .dir = dir, .keys = keys };
	int rc = pool_server_start(&u, &attr, &sv->s);

	if (rc == -ENODEV || rc == -EOPNOTSUPP)
		t_skip("%s", tier_errmsg());
	t_ok(rc);
	sv->port = pool_server_port(sv->s);
	t_assert(sv->port != 0);
	t_assert(pthread_create(&sv->thread, NULL, srv_main, sv) == 0);
}

static void srv_start(struct srv *sv, const char *dir)
{
	srv_start_keys(sv, dir, NULL);
}

static void srv_stop(struct srv *sv)
{
	pool_server_stop(sv->s);
	t_assert(pthread_join(sv->thread, NULL) == 0);
	pool_server_free(sv->s);
}

/*
 * --max-connections over RDMA: the connection past the limit is refused
 * at its HELLO with the reason; once one leaves, a new one gets in.
 */
static void test_conn_limit(void)
{
	struct pool_server_attr attr = { .max_conns = 2 };
	struct tier_uri u = rdma_uri(0);
	struct pool *p[3];
	struct srv sv;
	int rc = 0, tries;

	t_ok(pool_server_start(&u, &attr, &sv.s));
	sv.port = pool_server_port(sv.s);
	t_assert(pthread_create(&sv.thread, NULL, srv_main, &sv) == 0);
	u = rdma_uri(sv.port);
	t_ok(pool_open(&u, &p[0]));
	t_ok(pool_open(&u, &p[1]));
	t_fails(pool_open(&u, &p[2]), -EBUSY);
	t_assert(strstr(tier_errmsg(), "serving its limit of 2 connections (--max-connections)"));
	pool_close(p[1]);
	for (tries = 0; tries < 600; tries++) {	/* its teardown is asynchronous */
		rc = pool_open(&u, &p[1]);
		if (rc != -EBUSY)
			break;
		usleep(50 * 1000);
	}
	t_ok(rc);
	pool_close(p[0]);
	pool_close(p[1]);
	srv_stop(&sv);
}

static struct pool *connect_pool(uint16_t port)
{
	struct tier_uri u = rdma_uri(port);
	struct pool *p;

	t_ok(pool_open(&u, &p));
	return p;
}

static void put_seg(struct pool *p, const char *name, size_t len, unsigned seed)
{
	uint8_t *b = malloc(len + 1);
	struct pool_wseg *w;
	size_t i;

	t_assert(b);
	for (i = 0; i < len; i++)
		b[i] = pat(i, seed);
	t_ok(pool_create(p, name, len, &w));
	t_ok(pool_write(w, 0, b, len));	/* many control messages */
	t_ok(pool_commit(w));
	free(b);
}

static void check_scattered(struct pool_seg *s, unsigned nr, unsigned seed)
{
	uint64_t size = pool_seg_size(s);
	struct pool_iov *iov = calloc(nr, sizeof(*iov));
	unsigned i;
	size_t j;

	t_assert(iov);
	for (i = 0; i < nr; i++) {
		size_t len = 1 + rnd() % 9000;

		if (len > size)
			len = size;
		iov[i].off = rnd() % (size - len + 1);
		iov[i].len = len;
		iov[i].buf = malloc(len);
		t_assert(iov[i].buf);
		memset(iov[i].buf, 0xee, len);
	}
	t_ok(pool_readv(s, iov, nr));
	for (i = 0; i < nr; i++) {
		uint8_t *b = iov[i].buf;

		for (j = 0; j < iov[i].len; j++)
			if (b[j] != pat(iov[i].off + j, seed)) {
				fprintf(stderr, "range %u off %llu byte %zu: %#x != %#x\n",
					i, (unsigned long long)iov[i].off, j,
					b[j], pat(iov[i].off + j, seed));
				exit(T_FAIL);
			}
		free(b);
	}
	free(iov);
}

static void check_whole(struct pool_seg *s, unsigned seed)
{
	size_t size = pool_seg_size(s), i;
	uint8_t *got = malloc(size + 1);
	struct pool_iov iov = { .off = 0, .buf = got, .len = size };

	t_assert(got);
	memset(got, 0, size);
	t_ok(pool_readv(s, &iov, 1));
	for (i = 0; i < size; i++)
		if (got[i] != pat(i, seed)) {
			fprintf(stderr, "byte %zu: %#x != %#x\n", i, got[i],
				pat(i, seed));
			exit(T_FAIL);
		}
	free(got);
}

/*
 * Posted reads into a registered buffer: several posts in flight (more
 * READs than the send queue holds, a range cut into several READs), each
 * ticket's bytes right once its wait returns; a pool_readv between drains
 * them first; ranges outside the buffer or the segment are refused.
 */
static void test_posted(struct pool_seg *s, struct pool *p, unsigned seed)
{
	size_t len = 3 * MiB, size = pool_seg_size(s), j;
	uint8_t *buf = malloc(len), one[64];
	struct pool_iov iov[4][40], bad;
	uint64_t ticket[4];
	struct pool_mr *mr;
	unsigned k, i;

	t_assert(buf && size > 600 * 1024);
	memset(buf, 0xee, len);
	t_ok(pool_mr_reg(p, buf, len, &mr));
	for (k = 0; k < 4; k++) {
		for (i = 0; i < 40; i++) {
			size_t n = k == 3 && i == 0 ? 600 * 1024 : 1 + rnd() % 9000;

			iov[k][i] = (struct pool_iov){
				.off = rnd() % (size - n + 1),
				.buf = buf + k * 768 * 1024 + i * 9000,
				.len = n,
			};
			if (k == 3 && i > 0)
				iov[k][i].buf = buf + 2304 * 1024 + 600 * 1024 +
						i * 4096;
			if (k == 3 && i > 0)
				iov[k][i].len = iov[k][i].len % 4096 + 1;
		}
		t_ok(pool_read_post(s, iov[k], 40, mr, &ticket[k]));
	}
	t_ok(pool_read_wait(s, ticket[0]));
	/* a synchronous read while posts are outstanding */
	bad = (struct pool_iov){ .off = 0, .buf = one, .len = sizeof(one) };
	t_ok(pool_readv(s, &bad, 1));
	t_eq(one[5], pat(5, seed));
	for (k = 1; k < 4; k++)
		t_ok(pool_read_wait(s, ticket[k]));
	for (k = 0; k < 4; k++)
		for (i = 0; i < 40; i++) {
			const uint8_t *b = iov[k][i].buf;

			for (j = 0; j < iov[k][i].len; j++)
				if (b[j] != pat(iov[k][i].off + j, seed)) {
					fprintf(stderr, "post %u range %u byte %zu: %#x != %#x\n",
						k, i, j, b[j],
						pat(iov[k][i].off + j, seed));
					exit(T_FAIL);
				}
		}
	bad = (struct pool_iov){ .off = 0, .buf = buf + len - 10, .len = 20 };
	t_fails(pool_read_post(s, &bad, 1, mr, &ticket[0]), -EINVAL);
	bad = (struct pool_iov){ .off = size - 10, .buf = buf, .len = 20 };
	t_fails(pool_read_post(s, &bad, 1, mr, &ticket[0]), -ERANGE);
	pool_mr_unreg(mr);
	free(buf);
}

struct reader {
	uint16_t port;
	int rc;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct pool *p = connect_pool(r->port);
	struct pool_seg *s;

	t_ok(pool_seg_open(p, "snap1/tiered", &s));
	check_scattered(s, 300, 1);
	check_whole(s, 1);
	pool_seg_close(s);
	pool_close(p);
	r->rc = 0;
	return NULL;
}

static void test_concurrent(uint16_t port)
{
	struct reader r[4];
	pthread_t th[4];
	int i;

	for (i = 0; i < 4; i++) {
		r[i] = (struct reader){ .port = port, .rc = -1 };
		t_assert(pthread_create(&th[i], NULL, reader_main, &r[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		t_assert(pthread_join(th[i], NULL) == 0);
		t_eq(r[i].rc, 0);
	}
}

static int serve_child(void)
{
	struct tier_uri u = rdma_uri(0);
	struct pool_server *s;
	uint16_t port;

	t_ok(pool_server_start(&u, NULL, &s));
	port = pool_server_port(s);
	t_assert(write(1, &port, sizeof(port)) == sizeof(port));
	t_ok(pool_server_run(s));
	pool_server_free(s);
	return 0;
}

/* A server that dies: reads fail (never hang, never claim data) after it. */
static void test_server_killed(void)
{
	size_t len = 1 * MiB;
	uint8_t *buf = malloc(len);
	struct pool_iov iov = { .off = 0, .buf = buf, .len = len };
	struct pool_seg *s;
	struct pool_mr *mr;
	struct pool *p;
	uint16_t port;
	uint64_t tk;
	int pfd[2], st, rc;
	pid_t pid;

	t_assert(pipe(pfd) == 0);
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		execl("/proc/self/exe", "test-pool-rdma", "--serve", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	t_assert(read(pfd[0], &port, sizeof(port)) == sizeof(port));
	close(pfd[0]);

	p = connect_pool(port);
	put_seg(p, "snapk/tiered", len, 7);
	t_ok(pool_seg_open(p, "snapk/tiered", &s));
	check_whole(s, 7);
	t_ok(pool_mr_reg(p, buf, len, &mr));
	t_assert(kill(pid, SIGKILL) == 0);
	t_assert(waitpid(pid, &st, 0) == pid);
	/* a posted read fails, at the post or at the wait, naming the segment */
	rc = pool_read_post(s, &iov, 1, mr, &tk);
	if (!rc)
		rc = pool_read_wait(s, tk);
	if (rc != -ECONNRESET && rc != -ETIMEDOUT && rc != -EPIPE) {
		fprintf(stderr, "posted read after SIGKILL = %d: %s\n", rc,
			tier_errmsg());
		exit(T_FAIL);
	}
	t_assert(strstr(tier_errmsg(), "snapk/tiered"));
	pool_mr_unreg(mr);
	rc = pool_readv(s, &iov, 1);
	if (rc != -ECONNRESET && rc != -ETIMEDOUT && rc != -EPIPE) {
		fprintf(stderr, "readv after SIGKILL = %d: %s\n", rc, tier_errmsg());
		exit(T_FAIL);
	}
	t_assert(strstr(tier_errmsg(), "snapk/tiered"));
	t_assert(pool_readv(s, &iov, 1) < 0);
	pool_seg_close(s);
	pool_close(p);
	free(buf);
}

/*
 * A client that learned another's rkey (and address) reads nothing with
 * it: registrations live in the protection domain of the connection that
 * opened the segment, so the HCA refuses the READ on any other queue pair.
 */
static void test_stolen_rkey(uint16_t port)
{
	struct pool *a = connect_pool(port), *b = connect_pool(port);
	struct pool_seg *sa, *sb;
	size_t len = 64 * 1024;
	uint8_t *buf = malloc(len);
	struct pool_iov iov = { .off = 0, .buf = buf, .len = len };
	uint32_t stolen;
	size_t same = 0;
	int rc;

	t_assert(buf);
	put_seg(a, "victim/tiered", 1 * MiB, 21);
	put_seg(a, "thief/tiered", 1 * MiB, 22);
	t_ok(pool_seg_open(a, "victim/tiered", &sa));
	check_whole(sa, 21);
	t_ok(pool_seg_open(b, "thief/tiered", &sb));
	t_assert(sa->rkey != sb->rkey);
	/* b's own segment, aimed at a's memory with a's rkey */
	stolen = sa->rkey;
	sb->raddr = sa->raddr;
	sb->rkey = stolen;
	sb->size = sa->size;
	memset(buf, 0xee, len);
	rc = pool_readv(sb, &iov, 1);
	printf("stolen rkey 0x%x on another connection: %d (%s)\n", stolen, rc,
	       rc ? tier_errmsg() : "read");
	t_assert(rc == -ECONNRESET || rc == -EIO || rc == -EACCES);
	for (size_t i = 0; i < len; i++)
		same += buf[i] == pat(i, 21);
	/* garbage or our fill, never the victim's bytes (chance: ~1/256 each) */
	t_assert(same < len / 64);
	pool_seg_close(sb);
	pool_close(b);

	/* the owner still reads, and its rkey dies with its CLOSE */
	check_whole(sa, 21);
	pool_seg_close(sa);
	free(buf);
	pool_close(a);
}

/* The key exchange over RDMA SEND/RECV: the same as over TCP. */
static void test_keys(void)
{
	char dir[] = "/tmp/tier-pool-rdma-keys.XXXXXX", kf[64], cmd[128];
	struct pool_key k = { .role = POOL_ROLE_WRITE };
	struct pool_cred c;
	struct tier_uri u;
	struct pool_seg *s;
	struct pool *p;
	struct srv sv;

	t_assert(mkdtemp(dir));
	snprintf(kf, sizeof(kf), "%s/keys", dir);
	strcpy(k.id, "guest");
	strcpy(k.snaps, "k*");
	for (unsigned i = 0; i < POOL_SECRET_LEN; i++)
		k.secret[i] = (uint8_t)(i * 13 + 5);
	t_ok(pool_keys_add(kf, &k));
	srv_start_keys(&sv, NULL, kf);
	u = rdma_uri(sv.port);
	t_fails(pool_open(&u, &p), -EACCES);
	t_assert(strstr(tier_errmsg(), "requires a key"));
	memcpy(c.id, k.id, sizeof(c.id));
	memcpy(c.secret, k.secret, sizeof(c.secret));
	c.secret[0] ^= 1;
	t_fails(pool_connect(&u, &c, &p), -EACCES);
	t_assert(strstr(tier_errmsg(), "wrong secret"));
	c.secret[0] ^= 1;
	t_ok(pool_connect(&u, &c, &p));
	put_seg(p, "k1/tiered", 300000, 31);
	t_ok(pool_seg_open(p, "k1/tiered", &s));
	check_whole(s, 31);
	pool_seg_close(s);
	t_fails(pool_seg_open(p, "other/tiered", &s), -EACCES);

	/* revoked under a connected reader that only issues RDMA READs: the
	 * server disconnects it, its registrations and rkeys die */
	t_ok(pool_seg_open(p, "k1/tiered", &s));
	check_whole(s, 31);
	t_ok(pool_keys_revoke(kf, "guest"));
	{
		uint8_t b[4096];
		struct pool_iov iov = { .off = 0, .buf = b, .len = sizeof(b) };
		int rc = 0;

		for (int i = 0; i < 300 && !rc; i++) {	/* 30 s at most */
			usleep(100 * 1000);
			rc = pool_readv(s, &iov, 1);
		}
		printf("read after the key's revocation: %d (%s)\n", rc, tier_errmsg());
		t_assert(rc == -ECONNRESET || rc == -EPIPE);
	}
	pool_seg_close(s);
	pool_close(p);
	t_fails(pool_connect(&u, &c, &p), -EACCES);
	t_assert(strstr(tier_errmsg(), "revoked"));
	srv_stop(&sv);
	snprintf(cmd, sizeof(cmd), "rm -r %s", dir);
	t_eq(system(cmd), 0);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/tier-pool-rdma.XXXXXX", cmd[256];
	size_t size = 5 * MiB + 3;	/* more than the 4 MiB bounce buffer */
	struct pool *a, *b;
	struct pool_wseg *w;
	struct pool_seg *s, *old;
	uint8_t buf[64];
	struct pool_iov iov = { .buf = buf, .len = sizeof(buf) };
	struct srv sv;

	addr = getenv("TIER_TEST_RDMA_ADDR");
	if (!addr)
		t_skip("set TIER_TEST_RDMA_ADDR to an address of an RDMA device "
		       "(emu/run-in-guest.sh --rxe: 10.9.0.1, with TIER_POOL_RDMA_SRC=10.9.0.2)");

	/* TCG soft-RoCE on a busy host can stall for seconds; a dead server
	 * is still noticed at once through its disconnect. The source
	 * address picks the client's end of the guest's rxe pair. */
	t_ok(tier_set_pool_opts(&(struct tier_pool_opts){
		.timeout_ms = 30000, .rdma_src = getenv("TIER_POOL_RDMA_SRC") }));
	if (argc == 2 && !strcmp(argv[1], "--serve"))
		return serve_child();

	srv_start(&sv, NULL);
	a = connect_pool(sv.port);
	b = connect_pool(sv.port);

	t_fails(pool_seg_open(b, "nosnap/tiered", &s), -ENOENT);
	t_assert(strstr(tier_errmsg(), "nosnap/tiered"));
	t_ok(pool_create(a, "snap1/tiered", size, &w));
	t_ok(pool_write(w, 0, "abc", 3));
	t_fails(pool_seg_open(b, "snap1/tiered", &s), -ENOENT);
	pool_abort(w);

	put_seg(a, "snap1/tiered", size, 1);
	t_ok(pool_seg_open(b, "snap1/tiered", &s));
	t_eq(pool_seg_size(s), size);
	check_scattered(s, 1000, 1);
	check_whole(s, 1);
	iov.off = size - 10;
	t_fails(pool_readv(s, &iov, 1), -ERANGE);
	iov.off = size - sizeof(buf);
	t_ok(pool_readv(s, &iov, 1));
	t_eq(buf[sizeof(buf) - 1], pat(size - 1, 1));
	test_posted(s, b, 1);

	/* Replaced and removed while open: the old registration stays valid. */
	put_seg(a, "snap2/tiered", 100000, 2);
	t_ok(pool_seg_open(b, "snap2/tiered", &old));
	put_seg(a, "snap2/tiered", 200000, 3);
	t_ok(pool_remove(a, "snap2/tiered"));
	check_whole(old, 2);
	pool_seg_close(old);
	t_fails(pool_seg_open(b, "snap2/tiered", &old), -ENOENT);

	test_concurrent(sv.port);
	test_stolen_rkey(sv.port);

	pool_seg_close(s);
	pool_close(a);
	pool_close(b);
	srv_stop(&sv);

	test_conn_limit();
	test_server_killed();
	test_keys();

	/* Persisted, then served from the read-only mapping of its file. */
	t_assert(mkdtemp(dir));
	srv_start(&sv, dir);
	a = connect_pool(sv.port);
	put_seg(a, "psnap/tiered", 1 * MiB + 5, 11);
	pool_close(a);
	srv_stop(&sv);
	srv_start(&sv, dir);
	a = connect_pool(sv.port);
	t_ok(pool_seg_open(a, "psnap/tiered", &s));
	check_whole(s, 11);
	check_scattered(s, 300, 11);
	pool_seg_close(s);
	pool_close(a);
	srv_stop(&sv);
	snprintf(cmd, sizeof(cmd), "rm -r %s", dir);
	t_eq(system(cmd), 0);
	return T_PASS;
}
