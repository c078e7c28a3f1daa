/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target "pool-client": the client's reply handling (rdma/tcp.c
 * tcp_call, rdma/ctl.c, the codec of rdma/proto.c) fed the byte stream a
 * server sends on one connection. A fake server thread, started once,
 * accepts on 127.0.0.1, sends the input, half-closes and drains what the
 * client sends until it hangs up, then refuses any connection until the
 * input is done. The client is the real one: pool_open
 * of tcp://127.0.0.1:PORT (HELLO), then one call per reply in the
 * stream, the call whose request that reply answers (its op field picks
 * it: OPEN pool_seg_open, READ pool_readv of the reply's length, CREATE,
 * WRITE, COMMIT, ABORT, CLOSE; anything else pool_remove), so a stream
 * captured from a real server drives the client through the same calls.
 *
 * Checked after every call made on a live connection: if the connection
 * is still up, exactly the next reply was consumed, and it is a whole,
 * well-formed answer to that request (op, req_id); a success had status
 * 0 and its payload (a READ's bytes are the reply's, byte for byte, an
 * OPEN's size is the reply's), a failure returned the reply's status.
 * Once the client dropped the connection every call fails, at once.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tier.h"
#include "rdma/pool-int.h"
#include "rdma/proto.h"
#include "store/fmt.h"
#include "util/uri.h"
#include "tests/fuzz/fuzz.h"

#define NAME		"fuzz/seg"
#define WSIZE		(1U << 20)	/* the size a CREATE asks for */
#define MAX_STEPS	64
#define MAX_READ	(1U << 20)
#define HDR		sizeof(struct pool_hdr)

static struct {
	int lfd;
	uint16_t port;
	sem_t go, done;
	int endfd;		/* eventfd: the input is done, stop refusing */
	const uint8_t *data;
	size_t size;
} fake;

/* Sends the stream, half-closes, drains until the client closes. */
static void fake_serve(int fd)
{
	static uint8_t junk[1 << 16];
	size_t sent = 0;
	bool wr_open = true;

	if (!fake.size) {
		shutdown(fd, SHUT_WR);
		wr_open = false;
	}
	for (;;) {
		struct pollfd pfd = {
			.fd = fd,
			.events = POLLIN | (wr_open ? POLLOUT : 0),
		};
		ssize_t n;

		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		if (wr_open && pfd.revents & (POLLOUT | POLLERR | POLLHUP)) {
			n = send(fd, fake.data + sent, fake.size - sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				sent = fake.size;
			else if (n > 0)
				sent += n;
			if (sent == fake.size) {
				shutdown(fd, SHUT_WR);
				wr_open = false;
			}
		}
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				return;
		}
	}
}

static void *fake_main(void *arg)
{
	for (;;) {
		int fd;

		while (sem_wait(&fake.go))
			;
		fd = accept4(fake.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			abort();
		fake_serve(fd);
		close(fd);
		/*
		 * The stream is one connection's: a client that connects
		 * again (tcp.c's READ reconnect) is refused at once, so its
		 * second HELLO fails instead of waiting in the backlog.
		 */
		for (;;) {
			struct pollfd pfd[2] = {
				{ .fd = fake.lfd, .events = POLLIN },
				{ .fd = fake.endfd, .events = POLLIN },
			};
			uint64_t v;

			if (poll(pfd, 2, -1) < 0) {
				if (errno == EINTR)
					continue;
				abort();
			}
			if (pfd[1].revents & POLLIN) {
				if (read(fake.endfd, &v, sizeof(v)) != sizeof(v))
					abort();
				break;
			}
			fd = accept4(fake.lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				close(fd);
		}
		sem_post(&fake.done);
	}
	return NULL;
}

static void fake_start(void)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t sl = sizeof(sa);
	pthread_t t;

	fake.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fake.lfd < 0 || bind(fake.lfd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(fake.lfd, 16) ||
	    getsockname(fake.lfd, (struct sockaddr *)&sa, &sl) ||
	    (fake.endfd = eventfd(0, EFD_CLOEXEC)) < 0 ||
	    sem_init(&fake.go, 0, 0) || sem_init(&fake.done, 0, 0) ||
	    pthread_create(&t, NULL, fake_main, NULL))
		abort();
	fake.port = ntohs(sa.sin_port);
}

/* What the harness knows of the stream and of the client's state. */
struct model {
	const uint8_t *data;
	size_t size, off;	/* the next reply the client must read */
	uint64_t id;		/* the req_id of the next request */
	bool live;		/* off and id still describe the connection */
	size_t max_data;	/* from the server's HELLO */
};

static bool up(struct pool *p)
{
	return p->ctl->up(p);
}

/*
 * The call answered by @op, made; ret_* say what the model checks:
 * *@rc the call's result (0 for a void call), *@want its request op,
 * and for a successful READ, the bytes read (*@rbuf, *@rlen).
 */
struct state {
	struct pool_seg *seg[4];
	unsigned nseg;
	struct pool_wseg *w[4];
	unsigned nw;
	uint8_t wbuf[4096];
};

static int step(struct pool *p, struct state *st, const struct model *m,
		unsigned op, unsigned *want, uint8_t **rbuf, size_t *rlen)
{
	struct pool_hdr h = { 0 };
	int rc;

	if (m->live && m->size - m->off >= HDR) {
		memcpy(&h, m->data + m->off, HDR);
		proto_hdr_decode(&h, "model");
	}
	switch (op) {
	case POOL_OP_OPEN:
		if (st->nseg == 4)
			break;
		*want = POOL_OP_OPEN;
		rc = pool_seg_open(p, NAME, &st->seg[st->nseg]);
		if (!rc)
			st->nseg++;
		return rc;
	case POOL_OP_READ: {
		struct pool_seg *s = st->nseg ? st->seg[st->nseg - 1] : NULL;
		struct pool_iov iov = { .off = 0 };

		if (!s)
			break;
		iov.len = h.status ? 4096 : h.len;
		if (iov.len > MAX_READ)
			iov.len = MAX_READ;
		if (iov.len > m->max_data)
			iov.len = m->max_data;
		if (iov.len > pool_seg_size(s))
			iov.len = pool_seg_size(s);
		if (!iov.len)
			break;
		iov.buf = malloc(iov.len);
		if (!iov.buf)
			abort();
		*want = POOL_OP_READ;
		rc = pool_readv(s, &iov, 1);
		*rbuf = iov.buf;
		*rlen = iov.len;
		return rc;
	}
	case POOL_OP_CREATE:
		if (st->nw == 4)
			break;
		*want = POOL_OP_CREATE;
		rc = pool_create(p, NAME, WSIZE, &st->w[st->nw]);
		if (!rc)
			st->nw++;
		return rc;
	case POOL_OP_WRITE:
		if (!st->nw)
			break;
		*want = POOL_OP_WRITE;
		return pool_write(st->w[st->nw - 1], 0, st->wbuf,
				  m->max_data < sizeof(st->wbuf) ?
				  m->max_data : sizeof(st->wbuf));
	case POOL_OP_COMMIT:
		if (!st->nw)
			break;
		*want = POOL_OP_COMMIT;
		return pool_commit(st->w[--st->nw]);
	case POOL_OP_ABORT:
		if (!st->nw)
			break;
		*want = POOL_OP_ABORT;
		pool_abort(st->w[--st->nw]);
		return 0;
	case POOL_OP_CLOSE:
		if (!st->nseg)
			break;
		*want = POOL_OP_CLOSE;
		pool_seg_close(st->seg[--st->nseg]);
		return 0;
	}
	*want = POOL_OP_REMOVE;
	return pool_remove(p, NAME);
}

/* After a call on a live connection: the reply it consumed, if any. */
static void account(struct pool *p, struct model *m, unsigned want,
		    bool is_void, int rc, const uint8_t *rbuf, size_t rlen)
{
	struct pool_hdr h;

	m->id++;
	if (!up(p)) {
		/* dropped: for a reason the harness need not know */
		fuzz_assert(is_void || rc < 0);
		m->live = false;
		return;
	}
	/* still up: it read exactly one whole, well-formed answer */
	fuzz_assert(m->size - m->off >= HDR);
	memcpy(&h, m->data + m->off, HDR);
	fuzz_assert(proto_hdr_decode(&h, "model") == 0);
	fuzz_assert(h.op == (want | POOL_OP_REPLY) && h.req_id == m->id);
	fuzz_assert(h.len <= m->size - m->off - HDR);
	if (!is_void) {
		if (rc)
			fuzz_assert(rc == h.status && rc < 0);
		else
			fuzz_assert(h.status == 0);
	}
	if (!rc && rbuf)
		fuzz_assert(h.len == rlen &&
			    !memcmp(rbuf, m->data + m->off + HDR, rlen));
	m->off += HDR + h.len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct tier_uri uri = { .kind = URI_POOL_TCP };
	struct model m = { .data = data, .size = size, .id = 1 };
	struct state st = { 0 };
	struct pool *p;
	unsigned i;

	pthread_once(&once, fake_start);
	strcpy(uri.host, "127.0.0.1");
	uri.port = fake.port;
	fake.data = data;
	fake.size = size;
	sem_post(&fake.go);

	if (pool_open(&uri, &p)) {
		fuzz_assert(*tier_errmsg());
		goto out;
	}
	{
		/* HELLO took the first reply, which must be a whole answer */
		struct pool_hdr h;
		uint32_t md;

		fuzz_assert(size >= HDR + sizeof(struct pool_hello));
		memcpy(&h, data, HDR);
		fuzz_assert(proto_hdr_decode(&h, "model") == 0);
		fuzz_assert(h.op == (POOL_OP_HELLO | POOL_OP_REPLY) &&
			    h.req_id == 1 && h.status == 0 &&
			    h.len == sizeof(struct pool_hello));
		md = fmt_get32(data + HDR + offsetof(struct pool_hello, max_data));
		m.max_data = md && md < POOL_MAX_DATA ? md : POOL_MAX_DATA;
		m.off = HDR + h.len;
		m.live = up(p);
		fuzz_assert(m.live);
	}
	/* one call per reply, and one past the end of the stream */
	for (i = 0; i < MAX_STEPS; i++) {
		bool live = m.live, is_void;
		unsigned op = POOL_OP_REMOVE, want = 0;
		uint8_t *rbuf = NULL;
		size_t rlen = 0;
		int rc;

		if (live && size - m.off >= HDR) {
			uint16_t o;

			memcpy(&o, data + m.off + offsetof(struct pool_hdr, op), 2);
			op = le16toh(o) & ~POOL_OP_REPLY;
		}
		rc = step(p, &st, &m, op, &want, &rbuf, &rlen);
		is_void = want == POOL_OP_ABORT || want == POOL_OP_CLOSE;
		if (live)
			account(p, &m, want, is_void, rc, rbuf, rlen);
		else if (!is_void)
			fuzz_assert(rc < 0 && *tier_errmsg());
		if (rc)
			fuzz_assert(rc < 0 && rc >= -4095 && *tier_errmsg());
		free(rbuf);
		if (!live)
			break;
	}
	while (st.nseg)
		pool_seg_close(st.seg[--st.nseg]);
	while (st.nw)
		pool_abort(st.w[--st.nw]);
	pool_close(p);
out:
	{
		uint64_t one = 1;

		if (write(fake.endfd, &one, sizeof(one)) != sizeof(one))
			abort();
	}
	while (sem_wait(&fake.done))
		;
	return 0;
}
