/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- the pool's access control over loopback TCP: key files
 * parsed and mode-checked, the challenge-response (right, wrong, unknown,
 * revoked and missing keys; a recorded exchange replayed; requests before
 * it), what each role may do to which snapshots, and revocation cutting a
 * connected client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "rdma/auth.h"
#include "rdma/keys.h"
#include "rdma/pool.h"
#include "rdma/proto.h"
#include "util/file.h"

static char dir[] = "/tmp/tier-auth-XXXXXX";
static char keyfile[64];

static struct tier_uri tcp_uri(uint16_t port)
{
	struct tier_uri u = { .kind = URI_POOL_TCP, .port = port };

	strcpy(u.host, "127.0.0.1");
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

static void srv_start(struct srv *sv, const char *keys)
{
	struct tier_uri u = tcp_uri(0);
	struct pool_server_attr attr = { .keys = keys };

	t_ok(pool_server_start(&u, &attr, &sv->s));
	sv->port = pool_server_port(sv->s);
	t_assert(pthread_create(&sv->thread, NULL, srv_main, sv) == 0);
}

static void srv_stop(struct srv *sv)
{
	pool_server_stop(sv->s);
	t_assert(pthread_join(sv->thread, NULL) == 0);
	pool_server_free(sv->s);
}

static struct pool_key mk_key(const char *id, enum pool_role role,
			      const char *snaps, uint8_t seed)
{
	struct pool_key k = { .role = role };

	snprintf(k.id, sizeof(k.id), "%s", id);
	snprintf(k.snaps, sizeof(k.snaps), "%s", snaps);
	for (unsigned i = 0; i < POOL_SECRET_LEN; i++)
		k.secret[i] = (uint8_t)(seed * 31 + i * 7);
	return k;
}

static struct pool_cred cred_of(const struct pool_key *k)
{
	struct pool_cred c;

	memcpy(c.id, k->id, sizeof(c.id));
	memcpy(c.secret, k->secret, sizeof(c.secret));
	return c;
}

static int try_connect(uint16_t port, const struct pool_cred *c,
		       struct pool **ret)
{
	struct tier_uri u = tcp_uri(port);

	return pool_connect(&u, c, ret);
}

static struct pool *conn(uint16_t port, const struct pool_key *k)
{
	struct pool_cred c = cred_of(k);
	struct pool *p;

	t_ok(try_connect(port, &c, &p));
	return p;
}

static void put_seg(struct pool *p, const char *name, uint8_t fill)
{
	uint8_t buf[8192];
	struct pool_wseg *w;

	memset(buf, fill, sizeof(buf));
	t_ok(pool_create(p, name, sizeof(buf), &w));
	t_ok(pool_write(w, 0, buf, sizeof(buf)));
	t_ok(pool_commit(w));
}

static void check_seg(struct pool *p, const char *name, uint8_t fill)
{
	uint8_t buf[8192], want[8192];
	struct pool_iov iov = { .off = 0, .buf = buf, .len = sizeof(buf) };
	struct pool_seg *s;

	memset(want, fill, sizeof(want));
	t_ok(pool_seg_open(p, name, &s));
	t_eq(pool_seg_size(s), sizeof(buf));
	t_ok(pool_readv(s, &iov, 1));
	t_assert(!memcmp(buf, want, sizeof(buf)));
	pool_seg_close(s);
}

static void expect_msg(const char *what)
{
	if (!strstr(tier_errmsg(), what)) {
		fprintf(stderr, "message '%s' lacks '%s'\n", tier_errmsg(), what);
		exit(T_FAIL);
	}
}

/* ------------------------------------------------------- key files */

static void test_parse(void)
{
	static const char good[] =
		"# comment\n"
		"\n"
		"a read vm1,web-* 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
		"  b\twrite * ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff revoked # trailing\n";
	static const struct { const char *text, *why; } bad[] = {
		{ "a read * 00\n", "not 64 hex digits" },
		{ "a boss * 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "role 'boss'" },
		{ "a read vm/x 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "snapshots 'vm/x'" },
		{ "a read ,x 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "empty pattern" },
		{ ".a read * 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "key ID '.a'" },
		{ "a read * 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f gone\n", "unknown flag 'gone'" },
		{ "a read *\n", "3 fields" },
		{ "a read * 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
		  "a write * 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "line 2: key 'a' appears twice" },
		{ "a read * 0g0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", "hex" },
	};
	struct pool_key *k;
	unsigned n;
	char line[512];

	t_ok(pool_keys_parse(good, sizeof(good) - 1, "f", &k, &n));
	t_eq(n, 2);
	t_assert(!strcmp(k[0].id, "a") && k[0].role == POOL_ROLE_READ);
	t_assert(!strcmp(k[0].snaps, "vm1,web-*") && !k[0].revoked);
	t_eq(k[0].secret[0], 0);
	t_eq(k[0].secret[31], 0x1f);
	t_assert(!strcmp(k[1].id, "b") && k[1].role == POOL_ROLE_WRITE && k[1].revoked);
	t_ok(pool_key_format(&k[0], line, sizeof(line)));
	t_assert(!strcmp(line, "a read vm1,web-* 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"));

	/* the patterns: snapshot names, not segment names */
	t_assert(pool_key_allows(&k[0], POOL_ROLE_READ, "vm1/tiered.0000000000000001"));
	t_assert(pool_key_allows(&k[0], POOL_ROLE_READ, "web-7/eager"));
	t_assert(!pool_key_allows(&k[0], POOL_ROLE_READ, "vm10/tiered"));
	t_assert(!pool_key_allows(&k[0], POOL_ROLE_READ, "web/tiered"));
	t_assert(!pool_key_allows(&k[0], POOL_ROLE_WRITE, "vm1/tiered"));
	t_assert(!pool_key_allows(&k[1], POOL_ROLE_READ, "vm1/tiered"));	/* revoked */
	k[1].revoked = false;
	t_assert(pool_key_allows(&k[1], POOL_ROLE_WRITE, "any/x"));
	t_assert(!pool_key_allows(&k[1], POOL_ROLE_ADMIN, "any/x"));
	free(k);

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t_fails(pool_keys_parse(bad[i].text, strlen(bad[i].text), "kf", &k, &n),
			-EINVAL);
		expect_msg(bad[i].why);
		expect_msg("kf: line ");
	}
}

static void test_files(void)
{
	struct pool_key a = mk_key("a", POOL_ROLE_READ, "*", 1);
	struct pool_keys *ks;
	struct pool_key got;
	struct pool_cred c;
	char path[256], kd[128];
	unsigned gen, gen2;

	snprintf(path, sizeof(path), "%s/k1", dir);
	t_ok(pool_keys_add(path, &a));
	t_fails(pool_keys_add(path, &a), -EEXIST);
	t_ok(pool_keys_check_mode(path, false));

	/* secrets open to others are refused, as ssh refuses them */
	t_assert(chmod(path, 0640) == 0);
	t_fails(pool_keys_load(path, &ks), -EPERM);
	expect_msg("mode 640");
	t_assert(chmod(path, 0600) == 0);

	t_ok(pool_keys_load(path, &ks));
	t_ok(pool_keys_refresh(ks, &gen));
	t_ok(pool_keys_find(ks, "a", &got));
	t_assert(!memcmp(got.secret, a.secret, POOL_SECRET_LEN));
	t_fails(pool_keys_find(ks, "b", &got), -ENOENT);
	t_ok(pool_keys_revoke(path, "a"));
	t_fails(pool_keys_revoke(path, "a"), -EALREADY);
	t_fails(pool_keys_revoke(path, "zz"), -ENOENT);
	t_ok(pool_keys_refresh(ks, &gen2));
	t_assert(gen2 != gen);
	t_ok(pool_keys_find(ks, "a", &got));
	t_assert(got.revoked);
	/* a revoked ID is never handed out again */
	t_fails(pool_keys_add(path, &a), -EEXIST);
	pool_keys_free(ks);

	/* a directory of key files */
	snprintf(kd, sizeof(kd), "%s/kd", dir);
	t_assert(mkdir(kd, 0700) == 0);
	snprintf(path, sizeof(path), "%s/one", kd);
	a = mk_key("x", POOL_ROLE_ADMIN, "*", 2);
	t_ok(pool_keys_add(path, &a));
	snprintf(path, sizeof(path), "%s/two", kd);
	a = mk_key("y", POOL_ROLE_READ, "q*", 3);
	t_ok(pool_keys_add(path, &a));
	snprintf(path, sizeof(path), "%s/.hidden", kd);
	t_ok(write_file_atomic(path, "junk\n", 5));
	t_ok(pool_keys_load(kd, &ks));
	t_ok(pool_keys_find(ks, "x", &got));
	t_ok(pool_keys_find(ks, "y", &got));
	t_eq(got.role, POOL_ROLE_READ);
	pool_keys_free(ks);
	t_assert(chmod(kd, 0777) == 0);
	t_fails(pool_keys_load(kd, &ks), -EPERM);
	t_assert(chmod(kd, 0700) == 0);

	/* the client's credential */
	snprintf(path, sizeof(path), "%s/cred", dir);
	c = cred_of(&a);
	t_ok(pool_cred_write(path, &c));
	t_fails(pool_cred_write(path, &c), -EEXIST);
	memset(&c, 0, sizeof(c));
	t_ok(pool_cred_read(path, &c));
	t_assert(!strcmp(c.id, "y") && !memcmp(c.secret, a.secret, POOL_SECRET_LEN));
	t_assert(chmod(path, 0644) == 0);
	t_fails(pool_cred_read(path, &c), -EPERM);
}

static void test_mac(void)
{
	uint8_t s[POOL_SECRET_LEN] = { 1 }, cn[POOL_NONCE_LEN] = { 2 },
		sn[POOL_NONCE_LEN] = { 3 }, m1[POOL_MAC_LEN], m2[POOL_MAC_LEN];

	auth_mac(s, AUTH_CLIENT, "k", cn, sn, m1);
	auth_mac(s, AUTH_CLIENT, "k", cn, sn, m2);
	t_assert(auth_mac_equal(m1, m2));
	/* every input counts: side, key, both nonces, the secret */
	auth_mac(s, AUTH_SERVER, "k", cn, sn, m2);
	t_assert(!auth_mac_equal(m1, m2));
	auth_mac(s, AUTH_CLIENT, "l", cn, sn, m2);
	t_assert(!auth_mac_equal(m1, m2));
	cn[5] ^= 1;
	auth_mac(s, AUTH_CLIENT, "k", cn, sn, m2);
	t_assert(!auth_mac_equal(m1, m2));
	cn[5] ^= 1;
	sn[31] ^= 1;
	auth_mac(s, AUTH_CLIENT, "k", cn, sn, m2);
	t_assert(!auth_mac_equal(m1, m2));
	sn[31] ^= 1;
	s[31] ^= 1;
	auth_mac(s, AUTH_CLIENT, "k", cn, sn, m2);
	t_assert(!auth_mac_equal(m1, m2));
}

/* -------------------------------------------------------- the wire */

static int raw_connect(uint16_t port)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	t_assert(fd >= 0);
	t_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	t_ok(proto_sock_setup(fd, 5000));
	return fd;
}

static int raw_call(int fd, unsigned op, uint64_t id, const void *p,
		    size_t len, void *rep, size_t cap)
{
	struct pool_hdr h;
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, len } };

	proto_hdr_encode(&h, op, id, 0, len);
	t_ok(proto_send_all(fd, iov, 2));
	t_ok(proto_recv(fd, &h, sizeof(h)));
	t_ok(proto_hdr_decode(&h, "raw"));
	t_eq(h.req_id, id);
	t_assert(h.len <= cap);
	t_ok(proto_recv(fd, rep, h.len));
	return h.status;
}

static int raw_closed(int fd)
{
	char buf[512];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		;
	return n == 0 || errno == ECONNRESET;
}

static void raw_hello(int fd, uint32_t *flags)
{
	struct pool_hello m = { .version = POOL_VERSION };
	struct pool_hello r;

	strcpy(m.name, "raw auth test");
	proto_hello_swap(&m);
	t_eq(raw_call(fd, POOL_OP_HELLO, 1, &m, sizeof(m), &r, sizeof(r)), 0);
	proto_hello_swap(&r);
	*flags = r.flags;
}

/*
 * An eavesdropper's replay: the client's AUTH of one connection sent on
 * another, with the same key ID and client nonce, is refused, because the
 * server's nonce differs.
 */
static void test_replay(uint16_t port, const struct pool_key *k)
{
	struct pool_challenge ch = { 0 };
	struct pool_challenge_rep r1, r2;
	struct pool_auth au;
	struct pool_auth_rep ar;
	char buf[512];
	uint32_t flags;
	int fd;

	fd = raw_connect(port);
	raw_hello(fd, &flags);
	t_assert(flags & POOL_HELLO_AUTH);
	strcpy(ch.key_id, k->id);
	memset(ch.nonce, 0x5a, sizeof(ch.nonce));
	t_eq(raw_call(fd, POOL_OP_CHALLENGE, 2, &ch, sizeof(ch), &r1, sizeof(r1)), 0);
	auth_mac(k->secret, AUTH_CLIENT, k->id, ch.nonce, r1.nonce, au.mac);
	t_eq(raw_call(fd, POOL_OP_AUTH, 3, &au, sizeof(au), &ar, sizeof(ar)), 0);
	proto_auth_rep_swap(&ar);
	t_eq(ar.role, k->role);
	/* the server proved it holds the key */
	{
		uint8_t want[POOL_MAC_LEN];

		auth_mac(k->secret, AUTH_SERVER, k->id, ch.nonce, r1.nonce, want);
		t_assert(auth_mac_equal(want, ar.mac));
	}
	/* a second CHALLENGE on an authenticated connection breaks the protocol */
	t_eq(raw_call(fd, POOL_OP_CHALLENGE, 4, &ch, sizeof(ch), buf, sizeof(buf)), -EPROTO);
	t_assert(raw_closed(fd));
	close(fd);

	fd = raw_connect(port);
	raw_hello(fd, &flags);
	t_eq(raw_call(fd, POOL_OP_CHALLENGE, 2, &ch, sizeof(ch), &r2, sizeof(r2)), 0);
	t_assert(memcmp(r1.nonce, r2.nonce, sizeof(r1.nonce)));
	t_eq(raw_call(fd, POOL_OP_AUTH, 3, &au, sizeof(au), buf, sizeof(buf)), -EACCES);
	t_assert(raw_closed(fd));
	close(fd);

	/* nothing but the handshake before it */
	fd = raw_connect(port);
	raw_hello(fd, &flags);
	t_eq(raw_call(fd, POOL_OP_STAT, 2, "vm1/tiered", 10, buf, sizeof(buf)), -EACCES);
	t_assert(raw_closed(fd));
	close(fd);
	fd = raw_connect(port);
	raw_hello(fd, &flags);
	t_eq(raw_call(fd, POOL_OP_AUTH, 2, &au, sizeof(au), buf, sizeof(buf)), -EPROTO);
	t_assert(raw_closed(fd));
	close(fd);
}

static void test_roles(uint16_t port)
{
	struct pool_key admin = mk_key("admin", POOL_ROLE_ADMIN, "*", 10);
	struct pool_key placer = mk_key("placer", POOL_ROLE_WRITE, "vm*", 11);
	struct pool_key restorer = mk_key("restorer", POOL_ROLE_READ, "vm1", 12);
	struct pool_key other = mk_key("other", POOL_ROLE_WRITE, "web", 13);
	struct pool *pa, *pp, *pr, *po;
	struct pool_wseg *w;
	struct pool_seg *s;

	pa = conn(port, &admin);
	pp = conn(port, &placer);
	pr = conn(port, &restorer);
	po = conn(port, &other);

	/* a placing host writes the names it owns, and only those */
	put_seg(pp, "vm1/tiered", 0x11);
	put_seg(pp, "vm2/tiered", 0x22);
	t_fails(pool_create(pp, "web/tiered", 4096, &w), -EACCES);
	expect_msg("key 'placer' (write, snapshots vm*) may not write or remove it");
	put_seg(po, "web/tiered", 0x33);

	/* a restore host reads the snapshots it may restore */
	check_seg(pr, "vm1/tiered", 0x11);
	t_fails(pool_seg_open(pr, "vm2/tiered", &s), -EACCES);
	expect_msg("segment 'vm2/tiered': key 'restorer' (read, snapshots vm1) may not read it");
	t_fails(pool_seg_open(pr, "web/tiered", &s), -EACCES);
	t_fails(pool_create(pr, "vm1/tiered", 4096, &w), -EACCES);
	t_fails(pool_remove(pr, "vm1/tiered"), -EACCES);
	/* and a refusal is not a broken connection */
	check_seg(pr, "vm1/tiered", 0x11);

	/* the writer of others cannot touch ours */
	t_fails(pool_seg_open(po, "vm1/tiered", &s), -EACCES);
	t_fails(pool_remove(po, "vm1/tiered"), -EACCES);
	check_seg(pp, "vm1/tiered", 0x11);

	/* a writer removes its own; an administrator anything */
	t_ok(pool_remove(pp, "vm2/tiered"));
	t_ok(pool_remove(pa, "web/tiered"));
	check_seg(pa, "vm1/tiered", 0x11);

	pool_close(pa);
	pool_close(pp);
	pool_close(pr);
	pool_close(po);
}

static void test_refusals(uint16_t port, const struct pool_key *good)
{
	struct pool_key wrong = *good, unknown = mk_key("nobody", POOL_ROLE_ADMIN, "*", 99);
	struct pool_key rev = mk_key("gone", POOL_ROLE_READ, "*", 14);
	struct pool_cred c;
	struct pool *p;

	wrong.secret[7] ^= 0x40;
	c = cred_of(&wrong);
	t_fails(try_connect(port, &c, &p), -EACCES);
	expect_msg("key 'admin' refused: wrong secret");
	expect_msg("127.0.0.1");
	c = cred_of(&unknown);
	t_fails(try_connect(port, &c, &p), -EACCES);
	expect_msg("key 'nobody' refused: not known to this server");
	c = cred_of(&rev);
	t_fails(try_connect(port, &c, &p), -EACCES);
	expect_msg("key 'gone' refused: revoked");
	t_fails(try_connect(port, NULL, &p), -EACCES);
	expect_msg("requires a key");
}

/* A key revoked under a connected client: its connection is cut. */
static void test_revoke_live(uint16_t port)
{
	struct pool_key r2 = mk_key("late", POOL_ROLE_READ, "vm1", 15);
	uint8_t buf[4096];
	struct pool_iov iov = { .off = 0, .buf = buf, .len = sizeof(buf) };
	struct pool_seg *s;
	struct pool *p;
	int rc = 0, i;

	t_ok(pool_keys_add(keyfile, &r2));
	/* the server re-reads its keys at the next CHALLENGE */
	p = conn(port, &r2);
	t_ok(pool_seg_open(p, "vm1/tiered", &s));
	t_ok(pool_readv(s, &iov, 1));
	t_eq(buf[100], 0x11);
	t_ok(pool_keys_revoke(keyfile, "late"));
	/* within the server's second of re-reading, bounded at 10 s */
	for (i = 0; i < 200 && !rc; i++) {
		usleep(50 * 1000);
		rc = pool_readv(s, &iov, 1);
	}
	t_assert(rc == -ECONNRESET || rc == -EPIPE || rc == -EACCES);
	pool_seg_close(s);
	pool_close(p);
	t_fails(try_connect(port, &(struct pool_cred){ 0 }, &p), -EACCES);
}

static void test_no_auth_server(const struct pool_key *k)
{
	struct srv sv;
	struct pool *p;

	/* a key against a server without keys: accepted, unused */
	srv_start(&sv, NULL);
	p = conn(sv.port, k);
	put_seg(p, "free/x", 0x44);
	check_seg(p, "free/x", 0x44);
	pool_close(p);
	srv_stop(&sv);
}

int main(void)
{
	struct pool_key keys[] = {
		mk_key("admin", POOL_ROLE_ADMIN, "*", 10),
		mk_key("placer", POOL_ROLE_WRITE, "vm*", 11),
		mk_key("restorer", POOL_ROLE_READ, "vm1", 12),
		mk_key("other", POOL_ROLE_WRITE, "web", 13),
		mk_key("gone", POOL_ROLE_READ, "*", 14),
	};
	struct pool_server *bad;
	struct tier_uri u = tcp_uri(0);
	struct srv sv;

	t_ok(auth_init());
	t_assert(mkdtemp(dir));
	test_parse();
	test_files();
	test_mac();

	snprintf(keyfile, sizeof(keyfile), "%s/server.keys", dir);
	for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		t_ok(pool_keys_add(keyfile, &keys[i]));
	t_ok(pool_keys_revoke(keyfile, "gone"));

	t_assert(chmod(keyfile, 0604) == 0);
	t_fails(pool_server_start(&u, &(struct pool_server_attr){ .keys = keyfile }, &bad),
		-EPERM);
	expect_msg("pool server");
	t_assert(chmod(keyfile, 0600) == 0);

	srv_start(&sv, keyfile);
	test_roles(sv.port);
	test_refusals(sv.port, &keys[0]);
	test_replay(sv.port, &keys[2]);
	test_revoke_live(sv.port);
	srv_stop(&sv);
	test_no_auth_server(&keys[1]);

	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		t_eq(system(cmd), 0);
	}
	printf("ok\n");
	return 0;
}
