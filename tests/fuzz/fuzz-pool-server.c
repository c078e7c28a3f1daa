/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target "pool-server": the pool server's request handling
 * (rdma/server.c, the codec of rdma/proto.c) fed the byte stream one
 * client sends on one connection. Each input gets a fresh server (memory
 * only, --max-bytes 1 MiB, so no segment outlives the input) that serves
 * one end of a socketpair in this thread with srv_serve_fd(), the code
 * of every accepted TCP connection; a helper thread, started once, sends
 * the input on the other end, half-closes and reads every reply until the
 * server hangs up (both at once, so neither side waits on a full buffer).
 * No sockets bound and no threads created per input: a TCP connection
 * and the server's threads would cost a millisecond each time.
 *
 * The replies are checked against the requests, walked the way the
 * server frames them: one reply per request, in order, echoing its op
 * (with POOL_OP_REPLY) and req_id; a header the server cannot decode is
 * answered once with -EPROTO and ends the connection; so does -EPROTO
 * for a request that breaks the protocol, and nothing else does; a
 * request cut short by the end of the input gets no reply. A success
 * carries the payload its op defines (a READ exactly the bytes its
 * ranges ask for), a failure a reason of at most POOL_MAX_REASON bytes.
 *
 * "pool-server-auth" (-DFUZZ_AUTH) serves with a key file: the input cannot
 * know the key, so nothing but HELLO and CHALLENGE may ever succeed, and a
 * refusal before authentication (-EACCES) ends the connection too.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rdma/keys.h"
#include "rdma/pool-int.h"
#include "rdma/proto.h"
#include "util/uri.h"
#include "tests/fuzz/fuzz.h"

struct rep {
	struct pool_hdr h;	/* decoded */
};

/* The replies as they arrive: headers kept, payloads counted. */
struct reader {
	struct rep *rep;
	size_t n, cap;
	uint8_t hbuf[sizeof(struct pool_hdr)];
	size_t have;		/* bytes of hbuf filled */
	uint64_t skip;		/* payload bytes still to come */
};

static void reader_feed(struct reader *r, const uint8_t *p, size_t len)
{
	while (len) {
		size_t take;

		if (r->skip) {
			take = len < r->skip ? len : r->skip;
			r->skip -= take;
			p += take;
			len -= take;
			continue;
		}
		take = sizeof(r->hbuf) - r->have;
		if (take > len)
			take = len;
		memcpy(r->hbuf + r->have, p, take);
		r->have += take;
		p += take;
		len -= take;
		if (r->have < sizeof(r->hbuf))
			continue;
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 16;
			r->rep = realloc(r->rep, r->cap * sizeof(*r->rep));
			if (!r->rep)
				abort();
		}
		memcpy(&r->rep[r->n].h, r->hbuf, sizeof(r->hbuf));
		/* what the server sends must be a well-formed header */
		fuzz_assert(proto_hdr_decode(&r->rep[r->n].h, "fuzz") == 0);
		r->skip = r->rep[r->n].h.len;
		r->have = 0;
		r->n++;
	}
}

/* Sends the input, half-closes, reads until EOF; both at once so that
 * neither side waits on a full socket buffer. */
static void exchange(int fd, const uint8_t *data, size_t size,
		     struct reader *r)
{
	static uint8_t buf[1 << 16];
	size_t sent = 0;
	bool wr_open = true;

	if (!size) {
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
			n = send(fd, data + sent, size - sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				sent = size;	/* the server is gone */
			else if (n > 0)
				sent += n;
			if (sent == size) {
				shutdown(fd, SHUT_WR);
				wr_open = false;
			}
		}
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				return;
			if (n > 0)
				reader_feed(r, buf, n);
		}
	}
}

/* The payload a successful reply to @h (whose payload is @p) carries. */
static uint64_t want_len(const struct pool_hdr *h, const uint8_t *p)
{
	struct pool_read_req m;
	uint64_t total = 0;
	uint32_t i;

	switch (h->op) {
	case POOL_OP_HELLO:
		return sizeof(struct pool_hello);
	case POOL_OP_OPEN:
		return sizeof(struct pool_open_rep);
	case POOL_OP_CREATE:
		return sizeof(struct pool_id);
	case POOL_OP_STAT:
		return sizeof(struct pool_stat_rep);
	case POOL_OP_CHALLENGE:
		return sizeof(struct pool_challenge_rep);
	case POOL_OP_AUTH:
		return sizeof(struct pool_auth_rep);
	case POOL_OP_READ:
		memcpy(&m, p, sizeof(m));	/* the server checked the length */
		proto_read_req_swap(&m);
		for (i = 0; i < m.nr; i++) {
			struct pool_range rg;

			memcpy(&rg, p + sizeof(m) + i * sizeof(rg), sizeof(rg));
			proto_range_swap(&rg);
			total += rg.len;
		}
		return total;
	}
	return 0;
}

static void check(const uint8_t *data, size_t size, const struct reader *r)
{
	size_t off = 0, k = 0;

	fuzz_assert(r->have == 0 && r->skip == 0);	/* no reply cut short */
	while (size - off >= sizeof(struct pool_hdr)) {
		struct pool_hdr h;
		const struct pool_hdr *a;
		int bad;

		memcpy(&h, data + off, sizeof(h));
		bad = proto_hdr_decode(&h, "fuzz");
		if (!bad && h.len > size - off - sizeof(h))
			break;		/* the server waits for the rest: EOF */
		fuzz_assert(k < r->n);
		a = &r->rep[k].h;
		fuzz_assert(a->op == (uint16_t)(h.op | POOL_OP_REPLY));
		fuzz_assert(a->req_id == h.req_id);
		if (bad) {
			fuzz_assert(a->status == -EPROTO);
			k++;
			break;
		}
		if (a->status)
			fuzz_assert(a->len <= POOL_MAX_REASON);
		else
			fuzz_assert(a->len == want_len(&h, data + off + sizeof(h)));
#ifdef FUZZ_AUTH
		/* no key, nothing served */
		fuzz_assert(a->status || h.op == POOL_OP_HELLO ||
			    h.op == POOL_OP_CHALLENGE);
#endif
		off += sizeof(h) + h.len;
		k++;
		if (a->status == -EPROTO)
			break;		/* a violation: answered, then closed */
#ifdef FUZZ_AUTH
		if (a->status == -EACCES)
			break;		/* refused before authentication: closed */
#endif
	}
	fuzz_assert(k == r->n);
}

#ifdef FUZZ_AUTH
static char keys_path[64];
#endif

/* The helper: one exchange per input, handed over by two semaphores. */
static struct {
	sem_t go, done;
	int fd;
	const uint8_t *data;
	size_t size;
	struct reader r;
} peer;

static void *peer_main(void *arg)
{
	for (;;) {
		while (sem_wait(&peer.go))
			;
		exchange(peer.fd, peer.data, peer.size, &peer.r);
		sem_post(&peer.done);
	}
	return NULL;
}

static void peer_start(void)
{
	pthread_t t;

#ifdef FUZZ_AUTH
	{
		static char dir[] = "/tmp/tier-fuzz-keys-XXXXXX";
		struct pool_key k = { .id = "k", .role = POOL_ROLE_ADMIN,
				      .snaps = "*" };

		memset(k.secret, 0x42, sizeof(k.secret));
		if (!mkdtemp(dir))
			abort();
		snprintf(keys_path, sizeof(keys_path), "%s/keys", dir);
		if (pool_keys_add(keys_path, &k))
			abort();
	}
#endif
	if (sem_init(&peer.go, 0, 0) || sem_init(&peer.done, 0, 0) ||
	    pthread_create(&t, NULL, peer_main, NULL))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct pool_server_attr attr = { .max_bytes = 1 << 20 };
	struct tier_uri uri = { .kind = URI_POOL_TCP };
	struct pool_server *srv;
	int sv[2];

	pthread_once(&once, peer_start);
#ifdef FUZZ_AUTH
	attr.keys = keys_path;
#endif
	strcpy(uri.host, "127.0.0.1");
	if (pool_server_start(&uri, &attr, &srv) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	memset(&peer.r, 0, sizeof(peer.r));
	peer.fd = sv[0];
	peer.data = data;
	peer.size = size;
	sem_post(&peer.go);
	if (srv_serve_fd(srv, sv[1]))
		abort();
	while (sem_wait(&peer.done))
		;
	close(sv[0]);
	close(sv[1]);
	pool_server_free(srv);

	check(data, size, &peer.r);
	free(peer.r.rep);
	return 0;
}
