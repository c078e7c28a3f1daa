/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- the pool server's bounds over loopback TCP: the
 * connection limit (the next client refused with the reason, the others
 * served, a flood past it closed unanswered), half-sent requests and a
 * silent connect closed after the request timeout while an idle
 * connection is kept (with keys: until authenticated, the connect's
 * deadline holds), CREATEs in flight within half of the free space
 * without --max-bytes (a small tmpfs, as root), one server a dir, and the
 * temporaries a killed server left removed at the next start.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "rdma/keys.h"
#include "rdma/pool.h"
#include "rdma/proto.h"

#define MiB (1024 * 1024)
#define REFUSING 16	/* server.c's SRV_REFUSING */

static uint8_t pat(uint64_t off, unsigned seed)
{
	return (uint8_t)(off * 7 + (off >> 9) + seed * 31 + 1);
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

static struct tier_uri tcp_uri(uint16_t port)
{
	struct tier_uri u = { .kind = URI_POOL_TCP, .port = port };

	strcpy(u.host, "127.0.0.1");
	return u;
}

static void srv_start(struct srv *sv, const struct pool_server_attr *attr)
{
	struct tier_uri u = tcp_uri(0);

	t_ok(pool_server_start(&u, attr, &sv->s));
	sv->port = pool_server_port(sv->s);
	t_assert(pthread_create(&sv->thread, NULL, srv_main, sv) == 0);
}

static void srv_stop(struct srv *sv)
{
	pool_server_stop(sv->s);
	t_assert(pthread_join(sv->thread, NULL) == 0);
	pool_server_free(sv->s);
}

static int try_pool(uint16_t port, struct pool **ret)
{
	struct tier_uri u = tcp_uri(port);

	return pool_open(&u, ret);
}

static struct pool *connect_pool(uint16_t port)
{
	struct pool *p;

	t_ok(try_pool(port, &p));
	return p;
}

static void put_seg(struct pool *p, const char *name, size_t len, unsigned seed)
{
	uint8_t *b = malloc(len);
	struct pool_wseg *w;
	size_t i;

	t_assert(b);
	for (i = 0; i < len; i++)
		b[i] = pat(i, seed);
	t_ok(pool_create(p, name, len, &w));
	t_ok(pool_write(w, 0, b, len));
	t_ok(pool_commit(w));
	free(b);
}

static void check_seg(struct pool *p, const char *name, size_t len,
		      unsigned seed)
{
	uint8_t *b = malloc(len);
	struct pool_iov iov = { .off = 0, .buf = b, .len = len };
	struct pool_seg *s;
	size_t i;

	t_assert(b);
	t_ok(pool_seg_open(p, name, &s));
	t_eq(pool_seg_size(s), len);
	t_ok(pool_readv(s, &iov, 1));
	for (i = 0; i < len; i++)
		t_eq(b[i], pat(i, seed));
	pool_seg_close(s);
	free(b);
}

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
	/* Generous: the server's timeouts below are far shorter. */
	t_ok(proto_sock_setup(fd, 60000));
	return fd;
}

static void raw_send(int fd, unsigned op, uint64_t id, const void *p,
		     size_t len, uint32_t claim)
{
	struct pool_hdr h;
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, len } };

	proto_hdr_encode(&h, op, id, 0, claim);
	t_ok(proto_send_all(fd, iov, 2));
}

static int raw_reply(int fd, uint64_t id, void *buf, size_t cap, uint32_t *len)
{
	struct pool_hdr h;

	t_ok(proto_recv(fd, &h, sizeof(h)));
	t_ok(proto_hdr_decode(&h, "raw"));
	t_eq(h.req_id, id);
	t_assert(h.len <= cap);
	t_ok(proto_recv(fd, buf, h.len));
	if (len)
		*len = h.len;
	return h.status;
}

static void raw_hello(int fd)
{
	struct pool_hello m = { .version = POOL_VERSION };
	char buf[256];

	strcpy(m.name, "raw test");
	proto_hello_swap(&m);
	raw_send(fd, POOL_OP_HELLO, 1, &m, sizeof(m), sizeof(m));
	t_eq(raw_reply(fd, 1, buf, sizeof(buf), NULL), 0);
}

/* True once the server closed @fd; false if it stays open for a minute. */
static int raw_closed(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		;
	return n == 0 || errno == ECONNRESET;
}

/* ------------------------------------------------- connection limit */

static void test_conn_limit(void)
{
	struct pool_server_attr attr = { .max_conns = 4,
					 .request_timeout_ms = 2000 };
	int raw[REFUSING], i, rc = 0, tries;
	struct pool *p[4], *extra;
	struct srv sv;

	srv_start(&sv, &attr);
	for (i = 0; i < 4; i++)
		p[i] = connect_pool(sv.port);
	put_seg(p[0], "lim/a", 64 * 1024, 1);
	for (i = 0; i < 4; i++)
		check_seg(p[i], "lim/a", 64 * 1024, 1);

	/*
	 * Sixteen silent connections over the limit hold every refusing
	 * thread: the next one is closed unanswered, and the silent ones time
	 * out, each counted.
	 */
	for (i = 0; i < REFUSING; i++)
		raw[i] = raw_connect(sv.port);
	rc = try_pool(sv.port, &extra);
	t_assert(rc == -ECONNRESET || rc == -EPIPE);
	t_assert(strstr(tier_errmsg(), "connection closed by the server"));
	for (i = 0; i < REFUSING; i++) {
		t_assert(raw_closed(raw[i]));
		close(raw[i]);
	}
	t_eq(pool_server_timeouts(sv.s), REFUSING);

	/* One over the limit: refused at HELLO with the reason, in one line. */
	t_fails(try_pool(sv.port, &extra), -EBUSY);
	fprintf(stderr, "over the limit: %s\n", tier_errmsg());
	t_assert(strstr(tier_errmsg(), "serving its limit of 4 connections (--max-connections)"));
	t_assert(!strchr(tier_errmsg(), '\n'));

	/* The four served throughout; once one leaves, a new one gets in. */
	for (i = 0; i < 4; i++)
		check_seg(p[i], "lim/a", 64 * 1024, 1);
	pool_close(p[3]);
	/* Its thread ends a moment after the close: retry, bounded. */
	for (tries = 0; tries < 600; tries++) {
		rc = try_pool(sv.port, &p[3]);
		if (rc != -EBUSY)
			break;
		usleep(50 * 1000);
	}
	t_ok(rc);
	check_seg(p[3], "lim/a", 64 * 1024, 1);
	for (i = 0; i < 4; i++)
		pool_close(p[i]);
	t_eq(pool_server_timeouts(sv.s), REFUSING);
	srv_stop(&sv);
}

/* ---------------------------------------------------- request timeout */

static void test_timeouts(void)
{
	struct pool_server_attr attr = { .request_timeout_ms = 300 };
	struct pool_create_req cr = { .size = 8192 };
	char buf[512], big[20000];
	struct pool_seg *s;
	struct pool_id cid;
	struct pool *p;
	struct srv sv;
	int fd;

	srv_start(&sv, &attr);

	/* Connected, then silent: no HELLO within the timeout. */
	fd = raw_connect(sv.port);
	t_assert(raw_closed(fd));
	close(fd);
	t_eq(pool_server_timeouts(sv.s), 1);

	/* Ten bytes of a header, then nothing. */
	fd = raw_connect(sv.port);
	raw_hello(fd);
	t_assert(send(fd, "POOL\x01\x00\x02\x00\x07\x00", 10, MSG_NOSIGNAL) == 10);
	t_assert(raw_closed(fd));
	close(fd);
	t_eq(pool_server_timeouts(sv.s), 2);

	/* A header promising 100 bytes, 5 of them sent. */
	fd = raw_connect(sv.port);
	raw_hello(fd);
	raw_send(fd, POOL_OP_OPEN, 2, "snap1", 5, 100);
	t_assert(raw_closed(fd));
	close(fd);
	t_eq(pool_server_timeouts(sv.s), 3);

	/* A WRITE cut short: closed, and the segment never appears. */
	fd = raw_connect(sv.port);
	raw_hello(fd);
	proto_create_req_swap(&cr);
	memcpy(buf, &cr, sizeof(cr));
	memcpy(buf + sizeof(cr), "snap9/partial", 13);
	raw_send(fd, POOL_OP_CREATE, 2, buf, sizeof(cr) + 13, sizeof(cr) + 13);
	t_eq(raw_reply(fd, 2, &cid, sizeof(cid), NULL), 0);
	memset(buf, 0, 100);
	memcpy(buf, &cid, sizeof(cid));		/* id, then offset 0 */
	raw_send(fd, POOL_OP_WRITE, 3, buf, 100, 16 + 8192);
	t_assert(raw_closed(fd));
	close(fd);
	t_eq(pool_server_timeouts(sv.s), 4);

	/*
	 * A payload longer than any but a WRITE's is read and dropped, not
	 * buffered, then refused: -EPROTO and closed, not a timeout.
	 */
	fd = raw_connect(sv.port);
	raw_hello(fd);
	memset(big, 'n', sizeof(big));
	raw_send(fd, POOL_OP_OPEN, 2, big, sizeof(big), sizeof(big));
	t_eq(raw_reply(fd, 2, buf, sizeof(buf) - 1, NULL), -EPROTO);
	t_assert(raw_closed(fd));
	close(fd);

	/* Idle between requests for several timeouts: kept, and served. */
	p = connect_pool(sv.port);
	put_seg(p, "idle/a", 3 * MiB + 5, 2);
	usleep(1200 * 1000);
	check_seg(p, "idle/a", 3 * MiB + 5, 2);
	t_fails(pool_seg_open(p, "snap9/partial", &s), -ENOENT);
	pool_close(p);
	t_eq(pool_server_timeouts(sv.s), 4);
	srv_stop(&sv);
}

/*
 * With keys, a peer that said HELLO but does not authenticate is not
 * idle but unknown: closed at the connect's deadline. One that proved its
 * key may idle.
 */
static void test_auth_deadline(void)
{
	char keys[] = "/tmp/tier-pool-keys.XXXXXX";
	struct pool_server_attr attr = { .request_timeout_ms = 300 };
	struct tier_uri u;
	struct pool_cred cred = { .id = "loader" };
	struct pool *p;
	struct srv sv;
	FILE *f;
	int fd, i;

	fd = mkstemp(keys);
	t_assert(fd >= 0 && (f = fdopen(fd, "w")));
	fprintf(f, "loader write * ");
	for (i = 0; i < POOL_SECRET_LEN; i++) {
		cred.secret[i] = (uint8_t)(i * 13 + 5);
		fprintf(f, "%02x", cred.secret[i]);
	}
	fprintf(f, "\n");
	t_assert(fclose(f) == 0);
	attr.keys = keys;
	srv_start(&sv, &attr);

	fd = raw_connect(sv.port);
	raw_hello(fd);
	t_assert(raw_closed(fd));
	close(fd);
	t_eq(pool_server_timeouts(sv.s), 1);

	u = tcp_uri(sv.port);
	t_ok(pool_connect(&u, &cred, &p));
	put_seg(p, "auth/a", 8192, 5);
	usleep(1200 * 1000);
	check_seg(p, "auth/a", 8192, 5);
	pool_close(p);
	t_eq(pool_server_timeouts(sv.s), 1);
	srv_stop(&sv);
	unlink(keys);
}

/* ------------------------------------------------------ reservations */

/*
 * Without --max-bytes: on an 8 MiB tmpfs the CREATEs in flight may
 * reserve 4 MiB together, counted as each arrives; a commit or an abort
 * gives its share back.
 */
static void test_reserve(void)
{
	char dir[] = "/tmp/tier-pool-reserve.XXXXXX", cmd[256];
	struct pool_server_attr attr = { 0 };
	struct pool_wseg *a, *b, *c;
	struct pool *p;
	struct srv sv;

	/* In memory: more than half of what is available, refused unwritten. */
	srv_start(&sv, &attr);
	p = connect_pool(sv.port);
	{
		char line[128];
		unsigned long long kb = 0;
		FILE *f = fopen("/proc/meminfo", "r");

		t_assert(f);
		while (fgets(line, sizeof(line), f))
			sscanf(line, "MemAvailable: %llu kB", &kb);
		fclose(f);
		t_assert(kb);
		t_fails(pool_create(p, "mem/big", kb * 1024 / 2 + 64 * MiB, &a),
			-ENOSPC);
		t_assert(strstr(tier_errmsg(), "half of the free memory"));
	}
	put_seg(p, "mem/small", MiB, 3);
	check_seg(p, "mem/small", MiB, 3);
	pool_close(p);
	srv_stop(&sv);

	t_assert(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
		 "mount -t tmpfs -o size=8m tier-test %s 2>/dev/null", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "reservations: no tmpfs mount here (not root?), the dir case not tested\n");
		rmdir(dir);
		return;
	}
	attr.dir = dir;
	srv_start(&sv, &attr);
	p = connect_pool(sv.port);
	t_fails(pool_create(p, "res/huge", 5 * MiB, &a), -ENOSPC);
	t_ok(pool_create(p, "res/a", 3 * MiB, &a));
	t_fails(pool_create(p, "res/b", 2 * MiB, &b), -ENOSPC);
	fprintf(stderr, "in flight: %s\n", tier_errmsg());
	t_assert(strstr(tier_errmsg(), "'res/b': 2097152 bytes do not fit: segments being written reserve 3145728 of the 4194304 allowed (half of the free space of --dir"));
	t_ok(pool_create(p, "res/c", MiB, &c));
	pool_abort(a);
	/* 7 MiB free + 1 MiB reserved: 4 MiB allowed, 1 + 2 in flight. */
	t_ok(pool_create(p, "res/b", 2 * MiB, &b));
	t_ok(pool_commit(b));
	t_ok(pool_commit(c));
	/* 5 MiB free now, nothing in flight: 2.5 MiB allowed. */
	t_fails(pool_create(p, "res/d", 3 * MiB, &a), -ENOSPC);
	t_ok(pool_create(p, "res/d", 2 * MiB, &a));
	pool_abort(a);
	pool_close(p);
	srv_stop(&sv);
	snprintf(cmd, sizeof(cmd), "umount %s && rmdir %s", dir, dir);
	t_eq(system(cmd), 0);
}

/* ------------------------------------------- the dir: lock, leftovers */

static void touch(const char *dir, const char *name)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_assert(write(fd, "leftover", 8) == 8);
	close(fd);
}

static int exists(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

/* Temporaries in @dir/@snap */
static unsigned count_temps(const char *dir, const char *snap)
{
	char path[512];
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", dir, snap);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += strstr(de->d_name, ".seg.tmp.") != NULL;
	closedir(d);
	return n;
}

static void test_dir(void)
{
	char dir[] = "/tmp/tier-pool-dir.XXXXXX", name[256], path[512];
	struct pool_server_attr attr = { 0 };
	struct pool_server *second;
	struct tier_uri u = tcp_uri(0);
	struct pool_wseg *w;
	struct pool_seg *s;
	struct pool *p;
	struct srv sv;
	int pfd[2], status;
	uint16_t port;
	pid_t dead, child;
	uint8_t half[4096];

	t_assert(mkdtemp(dir));
	attr.dir = dir;
	/* A segment, then leftovers of writers gone and of one alive. */
	srv_start(&sv, &attr);
	p = connect_pool(sv.port);
	put_seg(p, "snapA/x", 10000, 4);
	pool_close(p);
	srv_stop(&sv);
	dead = fork();
	t_assert(dead >= 0);
	if (!dead)
		_exit(0);
	t_assert(waitpid(dead, NULL, 0) == dead);
	snprintf(name, sizeof(name), "snapA/.tiered.seg.tmp.%d.0", (int)dead);
	touch(dir, name);
	snprintf(name, sizeof(name), "snapA/.tiered.seg.tmp.%d.0", (int)getpid());
	touch(dir, name);
	touch(dir, "snapA/.other.seg.tmp.1.0");	/* pid 1 lives */
	touch(dir, "snapA/.hidden");
	t_eq(count_temps(dir, "snapA"), 3);

	srv_start(&sv, &attr);
	t_eq(count_temps(dir, "snapA"), 1);
	t_assert(exists(dir, "snapA/.other.seg.tmp.1.0"));
	t_assert(exists(dir, "snapA/.hidden"));
	p = connect_pool(sv.port);
	check_seg(p, "snapA/x", 10000, 4);
	pool_close(p);

	/* A second server on the dir is refused while the first serves it. */
	t_fails(pool_server_start(&u, &attr, &second), -EBUSY);
	fprintf(stderr, "second server: %s\n", tier_errmsg());
	t_assert(strstr(tier_errmsg(), "another server serves this directory"));
	srv_stop(&sv);

	/* A server killed in the middle of a write: its temporary stays... */
	t_assert(pipe(pfd) == 0);
	child = fork();
	t_assert(child >= 0);
	if (!child) {
		struct pool_server *cs;

		close(pfd[0]);
		if (pool_server_start(&u, &attr, &cs))
			_exit(99);
		port = pool_server_port(cs);
		if (write(pfd[1], &port, sizeof(port)) != sizeof(port))
			_exit(99);
		pool_server_run(cs);
		_exit(0);
	}
	close(pfd[1]);
	t_eq(read(pfd[0], &port, sizeof(port)), sizeof(port));
	close(pfd[0]);
	p = connect_pool(port);
	memset(half, 0x5a, sizeof(half));
	t_ok(pool_create(p, "snapB/p", MiB, &w));
	t_ok(pool_write(w, 0, half, sizeof(half)));
	t_eq(count_temps(dir, "snapB"), 1);
	t_assert(kill(child, SIGKILL) == 0);
	t_assert(waitpid(child, &status, 0) == child);
	t_assert(WIFSIGNALED(status));
	pool_abort(w);		/* the server is gone: nothing to tell */
	pool_close(p);
	t_eq(count_temps(dir, "snapB"), 1);

	/* ...until the next server starts on the dir (its lock died too). */
	srv_start(&sv, &attr);
	t_eq(count_temps(dir, "snapB"), 0);
	p = connect_pool(sv.port);
	t_fails(pool_seg_open(p, "snapB/p", &s), -ENOENT);
	check_seg(p, "snapA/x", 10000, 4);
	pool_close(p);
	srv_stop(&sv);

	snprintf(path, sizeof(path), "rm -rf %s", dir);
	t_eq(system(path), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_conn_limit();
	test_timeouts();
	test_auth_deadline();
	test_reserve();
	test_dir();
	return T_PASS;
}
