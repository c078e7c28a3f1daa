/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool server ("tierctl pool serve"): its listener and run loop, its
 * connections (one thread each over TCP; RDMA's come from verbs.c as
 * messages), their bounds (server-limits.c) and the re-reading of keys. A
 * connection only ever touches its own open and write tables; requests
 * are server-req.c's, the shared segment table server-seg.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "tier.h"
#include "rdma/auth.h"
#include "rdma/keys.h"
#include "rdma/pool-int.h"
#include "rdma/proto.h"
#include "rdma/server-int.h"
#include "rdma/server-limits.h"
#include "util/err.h"
#include "util/log.h"

/* ---------------------------------------------------------- connections */

static int send_reply(struct srv_conn *c, const struct pool_hdr *req, int rc,
		      struct srv_reply *r)
{
	struct pool_hdr h;
	struct iovec iov[2];

	if (rc) {
		const char *why = tier_errmsg();
		size_t n = strlen(why);

		if (n > POOL_MAX_REASON)
			n = POOL_MAX_REASON;
		proto_hdr_encode(&h, req->op | POOL_OP_REPLY, req->req_id, rc, n);
		iov[0] = (struct iovec){ &h, sizeof(h) };
		iov[1] = (struct iovec){ (void *)why, n };
		return proto_send_all(c->fd, iov, 2);
	}
	if (r->ndata) {
		proto_hdr_encode(&h, req->op | POOL_OP_REPLY, req->req_id, 0,
				 r->data_len);
		c->riov[0] = (struct iovec){ &h, sizeof(h) };
		return proto_send_all(c->fd, c->riov, 1 + r->ndata);
	}
	proto_hdr_encode(&h, req->op | POOL_OP_REPLY, req->req_id, 0, r->len);
	iov[0] = (struct iovec){ &h, sizeof(h) };
	iov[1] = (struct iovec){ &r->u, r->len };
	return proto_send_all(c->fd, iov, 2);
}

static void conn_cleanup(struct srv_conn *c)
{
	unsigned i;

	/* a client without a key sees the HELLO flag and leaves: say so */
	if (c->srv->keys && c->hello && c->auth.state == AUTH_NONE)
		tier_log(TIER_LOG_ERR, "pool server: %s: left without authenticating (no key)",
			 c->peer);

	for (i = 0; i < c->nopen; i++)
		if (c->open[i].g)
			srv_open_drop(c, &c->open[i]);
	free(c->open);
	c->open = NULL;
	c->nopen = 0;
	/* Uncommitted writes die with the connection. */
	for (i = 0; i < SRV_MAX_WRITE; i++) {
		srv_wseg_free(c->w[i], true);
		c->w[i] = NULL;
	}
	free(c->buf);
	c->buf = NULL;
	free(c->riov);
	c->riov = NULL;
	auth_conn_wipe(&c->auth);
}

/*
 * Receives the payload of @h by @by and handles the request, its result
 * in *@ret: into c->buf, grown as needed up to SRV_REQ_MAX, or a WRITE's
 * data straight into its segment, so a connection never buffers more
 * than one READ's ranges. Returns an I/O error that ends the connection
 * unanswered (the stream is out of step), else 0.
 */
static int serve_request(struct srv_conn *c, const struct pool_hdr *h,
			 const struct timespec *by, struct srv_reply *r,
			 int *ret)
{
	struct pool_write_req m;
	void *dst = NULL;
	int rc;

	if (h->op == POOL_OP_WRITE && !h->status && c->hello &&
	    h->len >= sizeof(m)) {
		rc = srv_recv_by(c->fd, &m, sizeof(m), by);
		if (rc)
			return rc;
		proto_write_req_swap(&m);
		/* checked as srv_handle() would, the key first, before a
		 * byte lands */
		*ret = srv_write_dst(c, &m, h->len - sizeof(m), &dst);
		/* Refused: read and dropped, the stream stays in step. */
		return srv_recv_by(c->fd, *ret ? NULL : dst, h->len - sizeof(m), by);
	}
	if (h->len > SRV_REQ_MAX) {
		rc = srv_recv_by(c->fd, NULL, h->len, by);
		if (rc)
			return rc;
		if (c->hello && !h->status && h->op >= POOL_OP_MAX &&
		    !(h->op & POOL_OP_REPLY))
			*ret = tier_err(-EOPNOTSUPP, "unknown op %u", h->op);
		else
			*ret = srv_violation(c, tier_err(-EPROTO, "%s payload of %u bytes, the limit is %zu",
						     proto_op_name(h->op), h->len,
						     SRV_REQ_MAX));
		return 0;
	}
	if (h->len > c->buf_cap) {
		uint8_t *b = realloc(c->buf, h->len);

		if (!b) {
			*ret = srv_violation(c, tier_err(-ENOMEM, "out of memory for %u bytes",
						     h->len));
			return 0;
		}
		c->buf = b;
		c->buf_cap = h->len;
	}
	rc = srv_recv_by(c->fd, c->buf, h->len, by);
	if (rc)
		return rc;
	*ret = srv_handle(c, h, c->buf, r);
	return 0;
}

static void *conn_main(void *arg)
{
	struct srv_conn *c = arg;
	struct timespec by;
	struct pool_hdr h;
	int rc;

	tier_dbg("pool server: %s connected", c->peer);
	/*
	 * HELLO (and with keys the handshake) follows the connect at once:
	 * no idling before the peer is known.
	 */
	srv_deadline(&by, c->srv->req_timeout_ms);
	for (;;) {
		struct srv_reply r = { 0 };
		int res = 0;

		if (c->hello && (!c->srv->keys || c->auth.state == AUTH_DONE)) {
			if (srv_wait_readable(c->fd))
				break;
			srv_deadline(&by, c->srv->req_timeout_ms);
		}
		rc = srv_recv_by(c->fd, &h, sizeof(h), &by);
		if (!rc) {
			rc = proto_hdr_decode(&h, c->peer);
			if (rc) {
				send_reply(c, &h, rc, NULL);
				break;
			}
			rc = serve_request(c, &h, &by, &r, &res);
		}
		if (rc == -ETIMEDOUT) {
			tier_dbg("pool server: %s: a request not complete within %u ms: closed",
				 c->peer, c->srv->req_timeout_ms);
			__atomic_fetch_add(&c->srv->timeouts, 1, __ATOMIC_RELAXED);
		}
		if (rc)
			break;
		if (res)
			tier_dbg("pool server: %s: %s: %s", c->peer,
				 proto_op_name(h.op), tier_errmsg());
		if (send_reply(c, &h, res, &r) || c->fatal)
			break;
	}
	tier_dbg("pool server: %s disconnected", c->peer);
	conn_cleanup(c);
	__atomic_fetch_sub(&c->srv->active, 1, __ATOMIC_RELEASE);
	/* The fd stays open until the run loop joins us: no reuse races. */
	shutdown(c->fd, SHUT_RDWR);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void conn_reap(struct pool_server *srv, bool all)
{
	struct srv_conn **pp = &srv->conns, *c;

	while ((c = *pp)) {
		if (all)
			shutdown(c->fd, SHUT_RDWR);
		if (!all && !__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
			pp = &c->next;
			continue;
		}
		pthread_join(c->thread, NULL);
		close(c->fd);
		*pp = c->next;
		free(c);
	}
}

static void peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN], serv[8];

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(buf, len, "client fd %d", fd);
		return;
	}
	snprintf(buf, len, "client %s:%s", host, serv);
}

/* A stream connection on @fd, not yet served. */
static struct srv_conn *conn_new(struct pool_server *srv, int fd)
{
	struct srv_conn *c;

	/* Requests may be hours apart (cold faults), replies must drain. */
	srv_sock_setup(fd, SRV_SEND_TIMEOUT_MS);
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->riov = calloc(1 + POOL_MAX_RANGES, sizeof(*c->riov));
	if (!c->riov) {
		free(c);
		return NULL;
	}
	c->srv = srv;
	c->fd = fd;
	c->max_data = POOL_MAX_DATA;
	peer_name(fd, c->peer, sizeof(c->peer));
	return c;
}

/*
 * Past max_conns a connection still gets a thread, to read its HELLO and
 * answer -EBUSY with the reason; past SRV_REFUSING more it is closed
 * unanswered (a flood of them must not cost a thread each).
 */
static int conn_start(struct pool_server *srv, int fd)
{
	unsigned active = __atomic_load_n(&srv->active, __ATOMIC_ACQUIRE);
	struct srv_conn *c;
	pthread_attr_t ta;
	int rc;

	if (active >= srv->max_conns + SRV_REFUSING)
		return -EBUSY;
	c = conn_new(srv, fd);
	if (!c)
		return -ENOMEM;
	/* Only this thread adds, so the count read above still holds. */
	c->refuse = active >= srv->max_conns;
	__atomic_fetch_add(&srv->active, 1, __ATOMIC_RELAXED);
	rc = pthread_attr_init(&ta);
	if (!rc) {
		pthread_attr_setstacksize(&ta, SRV_STACK);
		rc = pthread_create(&c->thread, &ta, conn_main, c);
		pthread_attr_destroy(&ta);
	}
	if (rc) {
		__atomic_fetch_sub(&srv->active, 1, __ATOMIC_RELAXED);
		free(c->riov);
		free(c);
		return -rc;
	}
	c->next = srv->conns;
	srv->conns = c;
	__atomic_fetch_add(&srv->connections, 1, __ATOMIC_RELAXED);
	return 0;
}

int srv_serve_fd(struct pool_server *srv, int fd)
{
	struct srv_conn *c = conn_new(srv, fd);

	if (!c)
		return tier_err(-ENOMEM, "out of memory");
	__atomic_fetch_add(&srv->connections, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&srv->active, 1, __ATOMIC_RELAXED);
	conn_main(c);
	free(c);
	return 0;
}

/* ------------------------------------------- message transports (rdma) */

struct srv_conn *srv_conn_new(struct pool_server *srv, const char *peer,
			      void *verbs, uint32_t max_data)
{
	struct srv_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->srv = srv;
	c->fd = -1;
	c->verbs = verbs;
	c->max_data = max_data;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	tier_dbg("pool server: %s connected", c->peer);
	__atomic_fetch_add(&srv->connections, 1, __ATOMIC_RELAXED);
	c->refuse = __atomic_fetch_add(&srv->active, 1, __ATOMIC_RELAXED) >=
		    srv->max_conns;
	return c;
}

void srv_conn_free(struct srv_conn *c)
{
	if (!c)
		return;
	tier_dbg("pool server: %s disconnected", c->peer);
	conn_cleanup(c);
	__atomic_fetch_sub(&c->srv->active, 1, __ATOMIC_RELEASE);
	free(c);
}

/* Writes header and @n payload bytes to @out, truncating a reason. */
static size_t put_msg(void *out, size_t cap, const struct pool_hdr *req,
		      int status, const void *p, size_t n)
{
	struct pool_hdr h;

	if (n > cap - sizeof(h))
		n = cap - sizeof(h);
	proto_hdr_encode(&h, req->op | POOL_OP_REPLY, req->req_id, status, n);
	memcpy(out, &h, sizeof(h));
	memcpy((char *)out + sizeof(h), p, n);
	return sizeof(h) + n;
}

size_t srv_conn_msg(struct srv_conn *c, void *msg, size_t len, void *out,
		    size_t cap, bool *close)
{
	struct srv_reply r = { 0 };
	struct pool_hdr h = { 0 };
	const char *why;
	int rc;

	*close = false;
	if (len < sizeof(h)) {
		*close = true;
		rc = tier_err(-EPROTO, "message of %zu bytes", len);
		goto fail;
	}
	memcpy(&h, msg, sizeof(h));
	rc = proto_hdr_decode(&h, c->peer);
	if (!rc && h.len != len - sizeof(h))
		rc = tier_err(-EPROTO, "%s message of %zu bytes says %u",
			      proto_op_name(h.op), len, h.len);
	if (rc) {
		*close = true;
		goto fail;
	}
	rc = srv_handle(c, &h, (uint8_t *)msg + sizeof(h), &r);
	*close = c->fatal;
	if (!rc)
		return put_msg(out, cap, &h, 0, &r.u, r.len);
fail:
	tier_dbg("pool server: %s: %s: %s", c->peer, proto_op_name(h.op),
		 tier_errmsg());
	why = tier_errmsg();
	return put_msg(out, cap, &h, rc, why,
		       strlen(why) < POOL_MAX_REASON ? strlen(why) : POOL_MAX_REASON);
}

/* ---------------------------------------------------------------- API */

static int srv_listen(struct pool_server *srv, const struct tier_uri *uri)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	}, *res, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char port[8];
	int rc, fd = -1, one = 1, err = 0;

	snprintf(port, sizeof(port), "%u", uri->port);
	rc = getaddrinfo(uri->host[0] ? uri->host : NULL, port, &hints, &res);
	if (rc)
		return tier_err(-EADDRNOTAVAIL, "pool server %s: cannot resolve '%s': %s",
				srv->uri, uri->host, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return tier_err(-err, "pool server %s: %m", srv->uri);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		rc = tier_err(-errno, "pool server %s: getsockname: %m", srv->uri);
		close(fd);
		return rc;
	}
	srv->port = ntohs(ss.ss_family == AF_INET6 ?
			  ((struct sockaddr_in6 *)&ss)->sin6_port :
			  ((struct sockaddr_in *)&ss)->sin_port);
	srv->lfd = fd;
	return 0;
}

int pool_server_start(const struct tier_uri *uri,
		      const struct pool_server_attr *attr,
		      struct pool_server **ret)
{
	struct pool_server *srv;
	struct stat st;
	int rc;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return tier_err(-ENOMEM, "out of memory");
	srv->lfd = -1;
	srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
	pthread_mutex_init(&srv->lock, NULL);
	pool_uri_name(uri, srv->uri, sizeof(srv->uri));
	srv->dir_fd = -1;
	srv->max_bytes = attr ? attr->max_bytes : 0;
	srv->max_conns = attr && attr->max_conns ? attr->max_conns : SRV_MAX_CONNS;
	srv->req_timeout_ms = attr && attr->request_timeout_ms ?
			      attr->request_timeout_ms : SRV_REQ_TIMEOUT_MS;
	if (attr && attr->keys) {
		rc = auth_init();
		if (!rc)
			rc = pool_keys_load(attr->keys, &srv->keys);
		if (rc) {
			rc = tier_err_ctx(rc, "pool server");
			goto err;
		}
	}

	if (attr && attr->dir) {
		if (snprintf(srv->dir, sizeof(srv->dir), "%s", attr->dir) >=
		    (int)sizeof(srv->dir)) {
			rc = tier_err(-ENAMETOOLONG, "%s: path too long", attr->dir);
			goto err;
		}
		if (mkdir(srv->dir, 0755) < 0 && errno != EEXIST) {
			rc = tier_err(-errno, "pool server: %s: %m", srv->dir);
			goto err;
		}
		if (stat(srv->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			rc = tier_err(-ENOTDIR, "pool server: %s: not a directory",
				      srv->dir);
			goto err;
		}
		/* One server a dir: then every temporary in it is dead. */
		rc = srv_dir_lock(srv->dir, &srv->dir_fd);
		if (rc)
			goto err;
		rc = srv_dir_clean(srv->dir);
		if (rc < 0)
			goto err;
		if (rc)
			tier_dbg("pool server: %s: removed %d temporaries a killed server left",
				 srv->dir, rc);
	}
	if (attr && attr->backing) {
		rc = srv_backing_open(srv, attr->backing);
		if (!rc)
			rc = srv_backing_warm(srv, attr->warm);
		if (rc)
			goto err;
	} else if (attr && attr->warm && attr->warm[0]) {
		rc = tier_err(-EINVAL, "pool server: --warm needs a --backing pool to load from");
		goto err;
	}
	if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = tier_err(-errno, "pipe: %m");
		goto err;
	}
	switch (uri->kind) {
	case URI_POOL_TCP:
		rc = srv_listen(srv, uri);
		break;
	case URI_POOL_RDMA:
		rc = pool_verbs_listen(srv, uri, srv->uri, &srv->verbs,
				       &srv->lfd, &srv->port);
		break;
	default:
		rc = tier_err(-EINVAL, "pool server: listens on tcp:// or rdma://, not %s",
			      srv->uri);
	}
	if (rc)
		goto err;
	{
		struct tier_uri bound = *uri;

		bound.port = srv->port;
		pool_uri_name(&bound, srv->uri, sizeof(srv->uri));
	}
	tier_dbg("pool server: listening on %s%s%s", srv->uri,
		 srv->dir[0] ? ", segments in " : "", srv->dir);
	*ret = srv;
	return 0;
err:
	pool_server_free(srv);
	return rc;
}

bool srv_conn_revoked(struct srv_conn *c)
{
	struct pool_key k;
	bool gone;

	if (!c->srv->keys || !__atomic_load_n(&c->authed, __ATOMIC_ACQUIRE))
		return false;
	gone = pool_keys_find(c->srv->keys, c->who, &k) || k.revoked;
	explicit_bzero(&k, sizeof(k));
	return gone;
}

/*
 * Re-reads changed keys, and cuts the connections of keys revoked or
 * removed: over RDMA a client that only reads sends no request the
 * per-request check could refuse, and its rkeys must die now.
 */
static void keys_tick(struct pool_server *srv)
{
	unsigned gen;

	if (pool_keys_refresh(srv->keys, &gen))
		tier_log(TIER_LOG_ERR, "pool server: keys not re-read, the old ones stay: %s",
			 tier_errmsg());
	if (gen == srv->keys_gen)
		return;
	srv->keys_gen = gen;
	for (struct srv_conn *c = srv->conns; c; c = c->next)
		if (srv_conn_revoked(c)) {
			tier_log(TIER_LOG_INFO, "pool server: %s: key '%s' revoked: disconnected",
				 c->peer, c->who);
			shutdown(c->fd, SHUT_RDWR);
		}
	if (srv->verbs)
		pool_verbs_revoke(srv->verbs);
}

int pool_server_run(struct pool_server *srv)
{
	struct pollfd pfd[2] = {
		{ .fd = srv->lfd, .events = POLLIN },
		{ .fd = srv->stop_pipe[0], .events = POLLIN },
	};
	char junk[64];
	int rc = 0;

	for (;;) {
		int fd;

		if (srv->keys)
			keys_tick(srv);
		if (poll(pfd, 2, srv->keys ? SRV_KEYS_POLL_MS : -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = tier_err(-errno, "pool server: poll: %m");
			break;
		}
		if (pfd[1].revents) {
			while (read(srv->stop_pipe[0], junk, sizeof(junk)) > 0)
				;
			break;
		}
		conn_reap(srv, false);
		if (!pfd[0].revents)
			continue;
		if (srv->verbs) {
			pool_verbs_event(srv->verbs);
			continue;
		}
		fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of fds: back off rather than spin on poll. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
				usleep(100 * 1000);
			tier_dbg("pool server: accept: %s", strerror(errno));
			continue;
		}
		if (conn_start(srv, fd)) {
			tier_dbg("pool server: no thread for a connection (%u served)",
				 __atomic_load_n(&srv->active, __ATOMIC_RELAXED));
			close(fd);
		}
	}
	conn_reap(srv, true);
	if (srv->verbs)
		pool_verbs_disconnect_all(srv->verbs);
	tier_dbg("pool server %s: stopped", srv->uri);
	return rc;
}

void pool_server_stop(struct pool_server *srv)
{
	int saved = errno;
	ssize_t n;

	/* write(2) is async-signal-safe; a full pipe already says "stop". */
	n = write(srv->stop_pipe[1], "s", 1);
	(void)n;
	errno = saved;
}

void pool_server_free(struct pool_server *srv)
{
	struct srv_seg *g;

	if (!srv)
		return;
	conn_reap(srv, true);
	if (srv->verbs)
		pool_verbs_disconnect_all(srv->verbs);
	/* Connections first: each holds its segments' registrations. */
	while ((g = srv->segs)) {
		srv->segs = g->next;
		srv_seg_put(srv, g);
	}
	if (srv->verbs)
		pool_verbs_free(srv->verbs);
	else if (srv->lfd >= 0)
		close(srv->lfd);
	if (srv->stop_pipe[0] >= 0)
		close(srv->stop_pipe[0]);
	if (srv->stop_pipe[1] >= 0)
		close(srv->stop_pipe[1]);
	if (srv->dir_fd >= 0)
		close(srv->dir_fd);
	pool_keys_free(srv->keys);
	srv_backing_close(srv);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

uint16_t pool_server_port(const struct pool_server *srv)
{
	return srv->port;
}

unsigned pool_server_connections(const struct pool_server *srv)
{
	return __atomic_load_n(&srv->connections, __ATOMIC_RELAXED);
}

unsigned pool_server_timeouts(const struct pool_server *srv)
{
	return __atomic_load_n(&srv->timeouts, __ATOMIC_RELAXED);
}
