/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- the pool protocol over loopback TCP: placement and
 * scattered reads byte for byte, bounds, missing and uncommitted segments,
 * clients that misbehave, servers that die or hang, persistence.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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
#include "rdma/pool.h"
#include "rdma/proto.h"

#define MiB (1024 * 1024)

/* Byte @off of segment version @seed: changes every byte, never constant. */
static uint8_t pat(uint64_t off, unsigned seed)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ seed * 0xbf58476d1ce4e5b9ULL;

	return (uint8_t)(x >> 29 ^ x >> 47);
}

static uint8_t *pattern(size_t len, unsigned seed)
{
	uint8_t *b = malloc(len);
	size_t i;

	t_assert(b);
	for (i = 0; i < len; i++)
		b[i] = pat(i, seed);
	return b;
}

static __thread unsigned rnd_state = 12345;

static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245 + 12345;
	return rnd_state >> 8;
}

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

static void srv_start(struct srv *sv, const char *dir, uint16_t port)
{
	struct tier_uri u = tcp_uri(port);
	struct pool_server_attr attr = { .dir = dir };

	t_ok(pool_server_start(&u, &attr, &sv->s));
	sv->port = pool_server_port(sv->s);
	t_assert(sv->port != 0);
	t_assert(pthread_create(&sv->thread, NULL, srv_main, sv) == 0);
}

static void srv_stop(struct srv *sv)
{
	pool_server_stop(sv->s);
	t_assert(pthread_join(sv->thread, NULL) == 0);
	pool_server_free(sv->s);
}

static struct pool *connect_pool(uint16_t port)
{
	struct tier_uri u = tcp_uri(port);
	struct pool *p;

	t_ok(pool_open(&u, &p));
	return p;
}

/* Places @len bytes of pattern @seed as @name, in uneven writes. */
static void put_seg(struct pool *p, const char *name, size_t len, unsigned seed)
{
	uint8_t *b = pattern(len, seed);
	struct pool_wseg *w;
	size_t off = 0;

	t_ok(pool_create(p, name, len, &w));
	while (off < len) {
		size_t n = off == 0 ? len / 3 + 1 : 777777;

		if (n > len - off)
			n = len - off;
		t_ok(pool_write(w, off, b + off, n));
		off += n;
	}
	t_ok(pool_commit(w));
	free(b);
}

/* Reads @nr scattered ranges (more than one READ batch) and checks them. */
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
	size_t size = pool_seg_size(s);
	uint8_t *want = pattern(size, seed);
	uint8_t *got = malloc(size);
	struct pool_iov iov = { .off = 0, .buf = got, .len = size };

	t_assert(got);
	memset(got, 0, size);
	t_ok(pool_readv(s, &iov, 1));
	t_assert(memcmp(got, want, size) == 0);
	free(got);
	free(want);
	/* a remote segment has no view: callers read it */
	{
		const void *v;

		t_fails(pool_seg_view(s, 0, 1, &v), -EOPNOTSUPP);
	}
}

/* ---------------------------------------------------- raw protocol */

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

static void raw_send(int fd, unsigned op, uint64_t id, const void *p, size_t len,
		     uint32_t claim)
{
	struct pool_hdr h;
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, len } };

	proto_hdr_encode(&h, op, id, 0, claim);
	t_ok(proto_send_all(fd, iov, 2));
}

/* Receives a reply; returns its status, its payload in @buf. */
static int raw_reply(int fd, uint64_t id, void *buf, size_t cap, uint32_t *len)
{
	struct pool_hdr h;

	t_ok(proto_recv(fd, &h, sizeof(h)));
	t_ok(proto_hdr_decode(&h, "raw"));
	t_eq(h.req_id, id);
	t_assert(h.op & POOL_OP_REPLY);
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

/* True once the server has closed @fd (EOF or reset), after any replies. */
static int raw_closed(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		;
	return n == 0 || errno == ECONNRESET;
}

static void test_misbehaving_clients(struct srv *sv)
{
	char buf[1024], name[] = "snap1/tiered";
	struct pool_read_req rr;
	struct pool_range rg[2];
	struct pool_open_rep orep;
	struct pool_seg *s;
	struct pool *p;
	uint32_t len;
	int fd;

	/* Garbage instead of a header: -EPROTO, then closed. */
	fd = raw_connect(sv->port);
	memset(buf, 'x', 200);
	t_assert(send(fd, buf, 200, MSG_NOSIGNAL) == 200);
	t_assert(raw_closed(fd));
	close(fd);

	/* A request before HELLO. */
	fd = raw_connect(sv->port);
	raw_send(fd, POOL_OP_OPEN, 7, name, strlen(name), strlen(name));
	t_eq(raw_reply(fd, 7, buf, sizeof(buf), NULL), -EPROTO);
	t_assert(raw_closed(fd));
	close(fd);

	/* A header announcing more than the limit. */
	fd = raw_connect(sv->port);
	raw_hello(fd);
	raw_send(fd, POOL_OP_WRITE, 2, NULL, 0, POOL_MAX_LEN + 1);
	t_eq(raw_reply(fd, 2, buf, sizeof(buf), NULL), -EPROTO);
	t_assert(raw_closed(fd));
	close(fd);

	/* A READ whose range count lies about its length. */
	fd = raw_connect(sv->port);
	raw_hello(fd);
	raw_send(fd, POOL_OP_OPEN, 2, name, strlen(name), strlen(name));
	t_eq(raw_reply(fd, 2, &orep, sizeof(orep), &len), 0);
	t_eq(len, sizeof(orep));
	proto_open_rep_swap(&orep);
	memset(buf, 0, sizeof(buf));
	rr = (struct pool_read_req){ .nr = 5 };
	proto_read_req_swap(&rr);
	memcpy(buf, &rr, sizeof(rr));
	raw_send(fd, POOL_OP_READ, 3, buf, sizeof(rr) + 2 * sizeof(rg[0]),
		 sizeof(rr) + 2 * sizeof(rg[0]));
	t_eq(raw_reply(fd, 3, buf, sizeof(buf), NULL), -EPROTO);
	t_assert(raw_closed(fd));
	close(fd);

	/*
	 * The server checks bounds itself (the client library checks first,
	 * so only a raw READ gets there) and stays usable afterwards.
	 */
	fd = raw_connect(sv->port);
	raw_hello(fd);
	raw_send(fd, POOL_OP_OPEN, 2, name, strlen(name), strlen(name));
	t_eq(raw_reply(fd, 2, &orep, sizeof(orep), NULL), 0);
	proto_open_rep_swap(&orep);
	rr = (struct pool_read_req){ .nr = 2 };
	rg[0] = (struct pool_range){ .off = 0, .len = 16, .id = orep.id };
	rg[1] = (struct pool_range){ .off = orep.size - 8, .len = 16, .id = orep.id };
	proto_read_req_swap(&rr);
	proto_range_swap(&rg[0]);
	proto_range_swap(&rg[1]);
	memcpy(buf, &rr, sizeof(rr));
	memcpy(buf + sizeof(rr), rg, sizeof(rg));
	raw_send(fd, POOL_OP_READ, 3, buf, sizeof(rr) + sizeof(rg),
		 sizeof(rr) + sizeof(rg));
	t_eq(raw_reply(fd, 3, buf, sizeof(buf), &len), -ERANGE);
	buf[len] = '\0';
	t_assert(strstr(buf, "snap1/tiered"));
	/* An unknown segment id, then a good READ on the same connection. */
	rg[1] = (struct pool_range){ .off = 0, .len = 16, .id = orep.id + 100 };
	proto_range_swap(&rg[1]);
	memcpy(buf, &rr, sizeof(rr));
	memcpy(buf + sizeof(rr), rg, sizeof(rg));
	raw_send(fd, POOL_OP_READ, 4, buf, sizeof(rr) + sizeof(rg),
		 sizeof(rr) + sizeof(rg));
	t_eq(raw_reply(fd, 4, buf, sizeof(buf), NULL), -EBADF);
	rr = (struct pool_read_req){ .nr = 1 };
	proto_read_req_swap(&rr);
	memcpy(buf, &rr, sizeof(rr));
	memcpy(buf + sizeof(rr), rg, sizeof(rg[0]));
	raw_send(fd, POOL_OP_READ, 5, buf, sizeof(rr) + sizeof(rg[0]),
		 sizeof(rr) + sizeof(rg[0]));
	t_eq(raw_reply(fd, 5, buf, sizeof(buf), &len), 0);
	t_eq(len, 16);
	t_eq((uint8_t)buf[5], pat(5, 1));
	/* An op from the future is refused, the stream stays in step. */
	raw_send(fd, 77, 6, "abc", 3, 3);
	t_eq(raw_reply(fd, 6, buf, sizeof(buf), NULL), -EOPNOTSUPP);
	close(fd);

	/* Disconnect in the middle of a request's payload. */
	fd = raw_connect(sv->port);
	raw_hello(fd);
	raw_send(fd, POOL_OP_OPEN, 2, "snap1", 5, 1000);
	close(fd);

	/* Disconnect in the middle of a header. */
	fd = raw_connect(sv->port);
	raw_hello(fd);
	t_assert(send(fd, "POOL", 4, MSG_NOSIGNAL) == 4);
	close(fd);

	/* Disconnect mid-write: the segment never appears. */
	fd = raw_connect(sv->port);
	raw_hello(fd);
	{
		struct pool_create_req cr = { .size = 8192 };
		struct pool_id cid;

		proto_create_req_swap(&cr);
		memcpy(buf, &cr, sizeof(cr));
		memcpy(buf + sizeof(cr), "snap9/partial", 13);
		raw_send(fd, POOL_OP_CREATE, 2, buf, sizeof(cr) + 13,
			 sizeof(cr) + 13);
		t_eq(raw_reply(fd, 2, &cid, sizeof(cid), NULL), 0);
		raw_send(fd, POOL_OP_WRITE, 3, buf, 100, 16 + 8192);
	}
	close(fd);

	/* None of that hurt the server or the next client. */
	p = connect_pool(sv->port);
	t_ok(pool_seg_open(p, name, &s));
	check_scattered(s, 300, 1);
	pool_seg_close(s);
	t_fails(pool_seg_open(p, "snap9/partial", &s), -ENOENT);
	pool_close(p);
}

/* ------------------------------------------------ concurrent readers */

struct reader {
	uint16_t port;
	unsigned seed;
	int rc;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct pool *p = connect_pool(r->port);
	struct pool_seg *s;
	int i;

	t_ok(pool_seg_open(p, "snap1/tiered", &s));
	for (i = 0; i < 3; i++)
		check_scattered(s, 1500, 1);
	check_whole(s, 1);
	pool_seg_close(s);
	pool_close(p);
	r->rc = 0;
	return NULL;
}

static void test_concurrent(struct srv *sv)
{
	struct reader r[8];
	pthread_t th[8];
	int i;

	for (i = 0; i < 8; i++) {
		r[i] = (struct reader){ .port = sv->port, .seed = 1, .rc = -1 };
		t_assert(pthread_create(&th[i], NULL, reader_main, &r[i]) == 0);
	}
	for (i = 0; i < 8; i++) {
		t_assert(pthread_join(th[i], NULL) == 0);
		t_eq(r[i].rc, 0);
	}
}

/* --------------------------------------------------- fake servers */

enum fake_mode {
	FAKE_HALF_DATA,		/* READ answered with half its bytes, then closed */
	FAKE_WRONG_LEN,		/* READ answered with the wrong length */
	FAKE_HANG,		/* READ never answered */
};

struct fake {
	int lfd;
	uint16_t port;
	enum fake_mode mode;
	pthread_t thread;
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	static char data[1 * MiB];
	char buf[64 * 1024];
	struct pool_hdr h, rh;
	int fd = accept(f->lfd, NULL, NULL);

	t_assert(fd >= 0);
	/* one connection only: the client's reconnect is refused at once */
	shutdown(f->lfd, SHUT_RD);
	for (;;) {
		if (proto_recv(fd, &h, sizeof(h)))
			break;
		t_ok(proto_hdr_decode(&h, "fake"));
		t_assert(h.len <= sizeof(buf));
		t_ok(proto_recv(fd, buf, h.len));
		if (h.op == POOL_OP_HELLO) {
			struct pool_hello m = { .version = 1 };

			proto_hello_swap(&m);
			proto_hdr_encode(&rh, h.op | POOL_OP_REPLY, h.req_id, 0, sizeof(m));
			t_assert(send(fd, &rh, sizeof(rh), MSG_NOSIGNAL) == sizeof(rh));
			t_assert(send(fd, &m, sizeof(m), MSG_NOSIGNAL) == sizeof(m));
		} else if (h.op == POOL_OP_OPEN) {
			struct pool_open_rep m = { .id = 1, .size = sizeof(data) };

			proto_open_rep_swap(&m);
			proto_hdr_encode(&rh, h.op | POOL_OP_REPLY, h.req_id, 0, sizeof(m));
			t_assert(send(fd, &rh, sizeof(rh), MSG_NOSIGNAL) == sizeof(rh));
			t_assert(send(fd, &m, sizeof(m), MSG_NOSIGNAL) == sizeof(m));
		} else if (h.op == POOL_OP_READ) {
			struct pool_read_req rr;
			uint32_t total = 0, i;

			memcpy(&rr, buf, sizeof(rr));
			proto_read_req_swap(&rr);
			for (i = 0; i < rr.nr; i++) {
				struct pool_range rg;

				memcpy(&rg, buf + sizeof(rr) + i * sizeof(rg), sizeof(rg));
				proto_range_swap(&rg);
				total += rg.len;
			}
			if (f->mode == FAKE_HANG) {
				/* Hold the connection open until the client gives up. */
				while (recv(fd, buf, sizeof(buf), 0) > 0)
					;
				break;
			}
			proto_hdr_encode(&rh, h.op | POOL_OP_REPLY, h.req_id, 0,
					 f->mode == FAKE_WRONG_LEN ? total + 4096 : total);
			t_assert(send(fd, &rh, sizeof(rh), MSG_NOSIGNAL) == sizeof(rh));
			memset(data, 0x5a, sizeof(data));
			if (f->mode == FAKE_HALF_DATA)
				send(fd, data, total / 2, MSG_NOSIGNAL);
			else
				send(fd, data, total + 4096, MSG_NOSIGNAL);
			break;
		}
	}
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, enum fake_mode mode)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t sl = sizeof(a);

	f->mode = mode;
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	t_assert(f->lfd >= 0);
	t_assert(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
	t_assert(listen(f->lfd, 4) == 0);
	t_assert(getsockname(f->lfd, (struct sockaddr *)&a, &sl) == 0);
	f->port = ntohs(a.sin_port);
	t_assert(pthread_create(&f->thread, NULL, fake_main, f) == 0);
}

static void fake_read(enum fake_mode mode, int want1, int want2)
{
	size_t len = 256 * 1024;
	uint8_t *b = malloc(len);
	struct pool_iov iov[2] = {
		{ .off = 0, .buf = b, .len = len / 2 },
		{ .off = 512 * 1024, .buf = b + len / 2, .len = len / 2 },
	};
	struct pool_seg *s;
	struct pool *p;
	struct fake f;
	int rc;

	fake_start(&f, mode);
	p = connect_pool(f.port);
	t_ok(pool_seg_open(p, "fake/seg", &s));
	t_eq(pool_seg_size(s), 1 * MiB);
	rc = pool_readv(s, iov, 2);
	if (rc != want1 && rc != want2) {
		fprintf(stderr, "fake mode %d: readv = %d (%s), want %d or %d\n",
			mode, rc, tier_errmsg(), want1, want2);
		exit(T_FAIL);
	}
	t_assert(strstr(tier_errmsg(), "fake/seg"));
	t_assert(strstr(tier_errmsg(), "tcp://127.0.0.1:"));
	/* The connection is gone: later calls fail at once, never hang. */
	t_assert(pool_readv(s, iov, 2) < 0);
	pool_seg_close(s);
	pool_close(p);
	t_assert(pthread_join(f.thread, NULL) == 0);
	close(f.lfd);
	free(b);
}

/* --------------------------------------------- a server we can kill */

static int serve_child(const char *dir)
{
	struct tier_uri u = tcp_uri(0);
	struct pool_server_attr attr = { .dir = dir };
	struct pool_server *s;
	uint16_t port;

	t_ok(pool_server_start(&u, &attr, &s));
	port = pool_server_port(s);
	t_assert(write(1, &port, sizeof(port)) == sizeof(port));
	t_ok(pool_server_run(s));
	pool_server_free(s);
	return 0;
}

static pid_t spawn_server(const char *self, uint16_t *port)
{
	int pfd[2];
	pid_t pid;

	t_assert(pipe(pfd) == 0);
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		execl(self, self, "--serve", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	t_assert(read(pfd[0], port, sizeof(*port)) == sizeof(*port));
	close(pfd[0]);
	return pid;
}

static void test_server_killed(const char *self)
{
	size_t len = 4 * MiB;
	uint8_t *b = malloc(len);
	struct pool_iov iov = { .off = 0, .buf = b, .len = len };
	struct pool_seg *s;
	struct pool *p;
	uint16_t port;
	pid_t pid;
	int rc, st;

	pid = spawn_server(self, &port);
	p = connect_pool(port);
	put_seg(p, "snapk/tiered", len, 7);
	t_ok(pool_seg_open(p, "snapk/tiered", &s));
	check_whole(s, 7);

	t_assert(kill(pid, SIGKILL) == 0);
	t_assert(waitpid(pid, &st, 0) == pid);
	memset(b, 0, len);
	rc = pool_readv(s, &iov, 1);
	if (rc != -ECONNRESET && rc != -EPIPE) {
		fprintf(stderr, "readv after SIGKILL = %d: %s\n", rc, tier_errmsg());
		exit(T_FAIL);
	}
	t_assert(strstr(tier_errmsg(), "snapk/tiered"));
	t_assert(strstr(tier_errmsg(), "tcp://127.0.0.1:"));
	t_assert(pool_readv(s, &iov, 1) < 0);
	pool_seg_close(s);
	pool_close(p);
	free(b);
}

static void test_refused(void)
{
	struct sockaddr_in a = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t sl = sizeof(a);
	struct tier_uri u;
	struct pool *p;
	char want[128];
	/* Bound but not listening: the port is ours and refuses connections. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	t_assert(fd >= 0);
	t_assert(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	t_assert(getsockname(fd, (struct sockaddr *)&a, &sl) == 0);
	u = tcp_uri(ntohs(a.sin_port));
	t_fails(pool_open(&u, &p), -ECONNREFUSED);
	snprintf(want, sizeof(want), "pool tcp://127.0.0.1:%u: connection refused",
		 ntohs(a.sin_port));
	if (strcmp(tier_errmsg(), want)) {
		fprintf(stderr, "message '%s', want '%s'\n", tier_errmsg(), want);
		exit(T_FAIL);
	}
	close(fd);
}

/*
 * rdma:// on a host without a device (or without a server there) fails
 * cleanly, saying which pool; the guest suite tests the transport itself.
 */
static void test_rdma_unavailable(void)
{
	struct tier_uri u = tcp_uri(1);
	struct pool_server *s;
	struct pool *p;
	int rc;

	u.kind = URI_POOL_RDMA;
	rc = pool_open(&u, &p);
	t_assert(rc < 0);
	t_assert(strstr(tier_errmsg(), "rdma://127.0.0.1:1"));
	u.port = 0;
	rc = pool_server_start(&u, NULL, &s);
	if (rc == 0) {		/* a machine with RDMA: it must at least stop */
		pool_server_stop(s);
		t_ok(pool_server_run(s));
		pool_server_free(s);
	} else {
		t_assert(rc == -ENODEV || rc == -EOPNOTSUPP);
		t_assert(strstr(tier_errmsg(), "rdma://127.0.0.1:0"));
	}
}

/* ----------------------------------------------------------- main */

static void test_basics(struct srv *sv)
{
	size_t big = 20 * MiB + 4567;	/* more than one READ and one WRITE */
	struct pool *a, *b;
	struct pool_wseg *w;
	struct pool_seg *s, *old;
	uint8_t buf[64];
	struct pool_iov iov = { .off = 0, .buf = buf, .len = sizeof(buf) };

	a = connect_pool(sv->port);
	b = connect_pool(sv->port);

	/* Unknown segment: -ENOENT naming pool and segment. */
	t_fails(pool_seg_open(b, "nosnap/tiered", &s), -ENOENT);
	t_assert(strstr(tier_errmsg(), "nosnap/tiered"));
	t_assert(strstr(tier_errmsg(), "tcp://127.0.0.1:"));
	t_fails(pool_seg_open(b, "../etc", &s), -EINVAL);
	t_fails(pool_seg_open(b, "a/b/c", &s), -EINVAL);
	t_fails(pool_create(a, "a/..", 10, &w), -EINVAL);

	/* Uncommitted: invisible to others, and gone after an abort. */
	t_ok(pool_create(a, "snap1/tiered", big, &w));
	t_ok(pool_write(w, 0, "abc", 3));
	t_fails(pool_seg_open(b, "snap1/tiered", &s), -ENOENT);
	t_fails(pool_write(w, big - 2, "abc", 3), -ERANGE);
	pool_abort(w);
	t_fails(pool_seg_open(b, "snap1/tiered", &s), -ENOENT);

	put_seg(a, "snap1/tiered", big, 1);
	t_ok(pool_seg_open(b, "snap1/tiered", &s));
	t_eq(pool_seg_size(s), big);
	check_scattered(s, 3000, 1);
	check_whole(s, 1);

	/* Out of bounds: -ERANGE naming segment and offset. */
	iov.off = big - 10;
	t_fails(pool_readv(s, &iov, 1), -ERANGE);
	t_assert(strstr(tier_errmsg(), "snap1/tiered"));
	snprintf((char *)buf, sizeof(buf), "%zu", big - 10);
	t_assert(strstr(tier_errmsg(), (char *)buf));
	iov.off = UINT64_MAX - 4;
	t_fails(pool_readv(s, &iov, 1), -ERANGE);
	iov.off = big - sizeof(buf);
	t_ok(pool_readv(s, &iov, 1));
	t_eq(buf[sizeof(buf) - 1], pat(big - 1, 1));

	/* Replacing: an open segment keeps its bytes, a new open sees new ones. */
	put_seg(a, "snap2/tiered", 100000, 2);
	t_ok(pool_seg_open(b, "snap2/tiered", &old));
	put_seg(a, "snap2/tiered", 200000, 3);
	check_whole(old, 2);
	pool_seg_close(old);
	t_ok(pool_seg_open(b, "snap2/tiered", &old));
	t_eq(pool_seg_size(old), 200000);
	check_whole(old, 3);

	/* Remove: gone for new opens, an open handle still reads. */
	t_ok(pool_remove(a, "snap2/tiered"));
	t_fails(pool_seg_open(b, "snap2/tiered", &s), -ENOENT);
	check_whole(old, 3);
	pool_seg_close(old);
	t_fails(pool_remove(a, "snap2/tiered"), -ENOENT);

	/* An empty segment is a segment. */
	put_seg(a, "snap3/empty", 0, 4);
	t_ok(pool_seg_open(b, "snap3/empty", &old));
	t_eq(pool_seg_size(old), 0);
	iov.off = 0;
	iov.len = 0;
	t_ok(pool_readv(old, &iov, 1));
	pool_seg_close(old);

	pool_seg_close(s);
	pool_close(a);
	pool_close(b);
}

static void test_persistence(void)
{
	char dir[] = "/tmp/tier-pool-test.XXXXXX";
	char path[256];
	struct pool_wseg *w;
	struct pool_seg *s;
	struct pool *p;
	struct srv sv;
	struct stat st;
	uint16_t port;
	pid_t pid;
	int wst;

	t_assert(mkdtemp(dir));
	srv_start(&sv, dir, 0);
	port = sv.port;
	p = connect_pool(port);
	put_seg(p, "psnap/tiered", 3 * MiB + 5, 11);
	/* A writer that dies before COMMIT (glibc's malloc is fork-safe). */
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		struct pool *cp = connect_pool(port);

		t_ok(pool_create(cp, "psnap/uncommitted", 4096, &w));
		t_ok(pool_write(w, 0, "x", 1));
		_exit(0);
	}
	t_assert(waitpid(pid, &wst, 0) == pid);
	t_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
	snprintf(path, sizeof(path), "%s/psnap/tiered.seg", dir);
	t_assert(stat(path, &st) == 0);
	t_eq(st.st_size, 3 * MiB + 5);
	snprintf(path, sizeof(path), "%s/psnap/uncommitted.seg", dir);
	t_assert(stat(path, &st) < 0 && errno == ENOENT);
	pool_close(p);
	srv_stop(&sv);

	/* Same dir, a new server (another port): still there. */
	srv_start(&sv, dir, 0);
	p = connect_pool(sv.port);
	t_ok(pool_seg_open(p, "psnap/tiered", &s));
	t_eq(pool_seg_size(s), 3 * MiB + 5);
	check_whole(s, 11);
	check_scattered(s, 500, 11);
	pool_seg_close(s);
	t_fails(pool_seg_open(p, "psnap/uncommitted", &s), -ENOENT);
	t_ok(pool_remove(p, "psnap/tiered"));
	snprintf(path, sizeof(path), "%s/psnap/tiered.seg", dir);
	t_assert(stat(path, &st) < 0 && errno == ENOENT);
	pool_close(p);
	srv_stop(&sv);

	/* No temporaries left behind. */
	snprintf(path, sizeof(path), "rm -r %s", dir);
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s/psnap)\"", dir);
		t_eq(system(cmd), 0);
	}
	t_eq(system(path), 0);
}

/*
 * A server whose directory is (nearly) full: CREATE fails with the segment's name
 * and the reason, the server lives on and serves what it has. Needs a
 * small tmpfs (mount, as root); skipped without one.
 */
static void test_full_disk(void)
{
	char dir[] = "/tmp/tier-pool-full.XXXXXX", cmd[256];
	struct pool_wseg *w;
	struct pool_seg *s;
	struct pool *p;
	struct srv sv;

	t_assert(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
		 "mount -t tmpfs -o size=2m tier-test %s 2>/dev/null", dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "full disk: no tmpfs mount here, not tested\n");
		rmdir(dir);
		return;
	}
	srv_start(&sv, dir, 0);
	p = connect_pool(sv.port);
	put_seg(p, "full/small", MiB, 21);
	t_fails(pool_create(p, "full/big", 4 * MiB, &w), -ENOSPC);
	t_assert(strstr(tier_errmsg(), "full/big"));
	/* Refused by the reservation bound (half the free space) first. */
	t_assert(strstr(tier_errmsg(), "do not fit"));
	fprintf(stderr, "full disk: %s\n", tier_errmsg());
	t_ok(pool_seg_open(p, "full/small", &s));
	check_whole(s, 21);
	pool_seg_close(s);
	pool_close(p);
	srv_stop(&sv);
	snprintf(cmd, sizeof(cmd), "umount %s && rmdir %s", dir, dir);
	t_eq(system(cmd), 0);
}

/*
 * --max-bytes: a CREATE that would take the segments held and being
 * written past the limit fails with a reason; an aborted write, a
 * removed segment and a replaced one (once its last reader closes it)
 * give their bytes back.
 */
static void test_quota(void)
{
	struct tier_uri u = tcp_uri(0);
	struct pool_server_attr attr = { .max_bytes = 3 * MiB };
	struct pool_wseg *w, *w2;
	struct pool_seg *s;
	struct pool *p;
	struct srv sv;

	t_ok(pool_server_start(&u, &attr, &sv.s));
	sv.port = pool_server_port(sv.s);
	t_assert(pthread_create(&sv.thread, NULL, srv_main, &sv) == 0);
	p = connect_pool(sv.port);

	put_seg(p, "q/a", 2 * MiB, 31);
	t_fails(pool_create(p, "q/b", 2 * MiB, &w), -ENOSPC);
	t_assert(strstr(tier_errmsg(), "segment 'q/b': 2097152 bytes do not fit: "
			"the pool holds 2097152 of its 3145728 (--max-bytes)"));
	/* a write in flight counts; aborted, it does not */
	t_ok(pool_create(p, "q/b", MiB, &w));
	t_fails(pool_create(p, "q/c", 1, &w2), -ENOSPC);
	pool_abort(w);
	t_ok(pool_create(p, "q/c", MiB, &w2));
	pool_abort(w2);
	/* replacing needs room for both until the old one is closed */
	t_ok(pool_seg_open(p, "q/a", &s));
	put_seg(p, "q/b", MiB, 32);
	t_fails(pool_create(p, "q/a", MiB, &w), -ENOSPC);	/* 2 + 1 held */
	t_ok(pool_remove(p, "q/b"));
	put_seg(p, "q/a", MiB, 33);		/* the old one still open */
	t_fails(pool_create(p, "q/b", MiB, &w), -ENOSPC);	/* 2 + 1 */
	check_whole(s, 31);			/* still the old bytes */
	pool_seg_close(s);
	put_seg(p, "q/b", 2 * MiB, 34);		/* 1 + 2 */
	t_ok(pool_seg_open(p, "q/b", &s));
	check_whole(s, 34);
	pool_seg_close(s);
	pool_close(p);
	srv_stop(&sv);
}

int main(int argc, char **argv)
{
	struct srv sv;

	if (argc == 2 && !strcmp(argv[1], "--serve"))
		return serve_child(NULL);

	test_refused();
	test_rdma_unavailable();
	srv_start(&sv, NULL, 0);
	test_basics(&sv);
	test_misbehaving_clients(&sv);
	test_concurrent(&sv);
	srv_stop(&sv);

	test_server_killed("/proc/self/exe");
	fake_read(FAKE_HALF_DATA, -ECONNRESET, -EPIPE);
	fake_read(FAKE_WRONG_LEN, -EPROTO, -EPROTO);
	/* the settings' bounds: refused whole, the old ones kept */
	{
		char src[100];

		memset(src, '1', sizeof(src) - 1);
		src[sizeof(src) - 1] = 0;
		t_fails(tier_set_pool_opts(&(struct tier_pool_opts){
			.timeout_ms = 3600 * 1000 + 1 }), -EINVAL);
		t_assert(strstr(tier_errmsg(), "more than an hour"));
		t_fails(tier_set_pool_opts(&(struct tier_pool_opts){
			.rdma_src = src }), -EINVAL);
		t_assert(strstr(tier_errmsg(), "too long"));
	}
	t_ok(tier_set_pool_opts(&(struct tier_pool_opts){ .timeout_ms = 1000 }));
	fake_read(FAKE_HANG, -ETIMEDOUT, -ETIMEDOUT);
	t_ok(tier_set_pool_opts(NULL));

	test_persistence();
	test_full_disk();
	test_quota();
	return T_PASS;
}
