/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The Firecracker UFFD handler: one listening socket, a thread per
 * connected VMM. Each connection's handshake is received and checked
 * (fc-sock.c, fc-proto.c) before its session is served (fc-serve.c); a
 * refusal is one log line and a closed connection, and never disturbs
 * the other sessions. Unlike Firecracker's example runtime (src/firecracker/
 * examples/uffd/uffd_utils.rs, Runtime::run, which polls every uffd in one
 * loop and panics on any error), one VMM's slow or bad fault cannot hold
 * up another's, and a failure is confined to its session: the fail policy
 * (uffd_utils.rs install_panic_hook SIGKILLs the peer from SO_PEERCRED)
 * applies to that VMM only.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

#include "vmm/fc.h"
#include "store/format.h"
#include "store/snap.h"
#include "util/err.h"
#include "util/log.h"

#define FC_CONNS_MAX		1024
#define FC_HANDSHAKE_MS		5000

struct fc_conn {
	struct fc_handler *h;
	struct fc_session s;
	struct fc_peer peer;
	unsigned id;			/* 1 for the first connection, ... */
	int sock;
	pthread_t thread;
	int failed;			/* on_fail ran (atomic) */
	int serving;			/* set up: s is complete (h->lock) */
	int done;			/* the thread ended (h->lock) */
	int rc;				/* its result */
	char why[640];			/* and its reason */
	char record[64];
	struct fc_conn *next;
};

struct fc_handler {
	struct tier_snap *snap;
	struct fc_handler_attr attr;
	char path[128];
	uint64_t ino;
	int lfd;			/* -1 once no longer listening */
	int wake;			/* eventfd: a stop, or a connection ended */
	int stops;			/* fc_handler_stop() calls (atomic) */
	char err_why[256];		/* why run() stopped accepting */
	pthread_mutex_t lock;
	struct fc_conn *conns;
	unsigned nconns, nextid;
};

static const char *const fail_names[] = {
	[FC_FAIL_KILL] = "kill",
	[FC_FAIL_STOP] = "stop",
	[FC_FAIL_NONE] = "none",
};

const char *fc_fail_name(enum fc_fail fail)
{
	return (unsigned)fail < 3 ? fail_names[fail] : "unknown";
}

int fc_fail_parse(const char *name, enum fc_fail *ret)
{
	unsigned i;

	for (i = 0; i < 3; i++)
		if (!strcmp(name, fail_names[i])) {
			*ret = i;
			return 0;
		}
	return tier_err(-EINVAL, "unknown fail policy \"%s\" (kill, stop or none)",
			name);
}

__attribute__((format(printf, 3, 4)))
static void h_log(struct fc_handler *h, int level, const char *fmt, ...)
{
	char line[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (h->attr.log)
		h->attr.log(level, line, h->attr.arg);
	else
		tier_log(level, "%s", line);
}

static void h_wake(struct fc_handler *h)
{
	uint64_t one = 1;
	ssize_t n;

	n = write(h->wake, &one, sizeof(one));
	(void)n;	/* a full counter wakes the loop just as well */
}

/* ------------------------------------------------------------ failing */

static int send_sig(struct fc_conn *c, int sig)
{
	if (c->peer.pidfd >= 0) {
		if (syscall(SYS_pidfd_send_signal, c->peer.pidfd, sig, NULL, 0) == 0)
			return 0;
		if (errno != ENOSYS)
			return -errno;
	}
	if (kill(c->peer.pid, sig) < 0)
		return -errno;
	return 0;
}

/* Where @addr is, for the log line: its image page, offset and region. */
static void describe(const struct fc_session *s, uint64_t addr, char *buf,
		     size_t len)
{
	const struct fc_region *r;
	uint64_t off;

	if (addr == FC_NO_ADDR) {
		buf[0] = 0;
		return;
	}
	r = fc_region_find(s->regions, s->nregions, addr);
	if (!r) {
		snprintf(buf, len, "address 0x%" PRIx64 " (in no region)", addr);
		return;
	}
	off = r->offset + (addr & ~(r->page_size - 1)) - r->base;
	snprintf(buf, len, "page %" PRIu64 " (offset 0x%" PRIx64 ", region %td)",
		 (uint64_t)(off / TIER_PAGE_SIZE), off, r - s->regions);
}

static int conn_fail(struct fc_session *s, uint64_t addr, int err,
		     const char *reason)
{
	struct fc_conn *c = s->priv;
	struct fc_handler *h = c->h;
	char where[128], what[128];
	int sig = 0, rc = 0;

	if (__atomic_exchange_n(&c->failed, 1, __ATOMIC_ACQ_REL))
		return 0;
	if (!reason)
		reason = tier_errmsg();
	describe(s, addr, where, sizeof(where));
	if (s->fail == FC_FAIL_KILL)
		sig = SIGKILL;
	else if (s->fail == FC_FAIL_STOP)
		sig = SIGSTOP;
	if (sig)
		rc = send_sig(c, sig);
	if (!sig)
		snprintf(what, sizeof(what),
			 "left running (fail policy none): a vCPU may wait on that page forever");
	else if (rc == -ESRCH)
		snprintf(what, sizeof(what), "it had exited already");
	else if (rc)
		snprintf(what, sizeof(what), "could not %s it: %s",
			 sig == SIGKILL ? "kill" : "stop", strerror(-rc));
	else
		snprintf(what, sizeof(what), "%s it (%s)",
			 sig == SIGKILL ? "killed" : "stopped",
			 sig == SIGKILL ? "SIGKILL" : "SIGSTOP");
	snprintf(c->why, sizeof(c->why), "snapshot %s: pid %d: %s%s%s; %s",
		 tier_snap_name(s->snap), (int)c->peer.pid, where,
		 where[0] ? ": " : "", reason, what);
	h_log(h, TIER_LOG_ERR, "%s", c->why);
	return rc == -ESRCH ? 0 : rc;
}

/* -------------------------------------------------------- connections */

static int conn_setup(struct fc_conn *c, char *buf, size_t cap)
{
	struct fc_handler *h = c->h;
	struct fc_region *regions;
	enum fc_fields fields;
	size_t len;
	unsigned n;
	int uffd, fl, rc;

	rc = fc_recv_handshake(c->sock, h->attr.handshake_ms, buf, cap, &len,
			       &uffd);
	if (rc)
		return rc;
	rc = fc_parse_regions(buf, len, &regions, &n, &fields);
	if (rc)
		goto err_uffd;
	rc = fc_check_regions(regions, n, tier_snap_size(h->snap),
			      tier_snap_name(h->snap));
	if (rc)
		goto err_free;
	/*
	 * Firecracker creates it O_NONBLOCK; a VMM that did not never reads
	 * it itself, so making the shared file description non-blocking
	 * costs it nothing and keeps our reads from blocking.
	 */
	fl = fcntl(uffd, F_GETFL);
	if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(uffd, F_SETFL, fl | O_NONBLOCK) < 0)) {
		rc = tier_err(-errno, "uffd: cannot make it non-blocking: %m");
		goto err_free;
	}

	c->s = (struct fc_session){
		.snap = h->snap,
		.policy = h->attr.policy,
		.cxl = h->attr.cxl,
		.pool = h->attr.pool,
		.pool_fallback = h->attr.flags & FC_HANDLER_POOL_FALLBACK,
		.backing = h->attr.backing,
		.record = c->record[0] ? c->record : NULL,
		.prefetch = h->attr.prefetch,
		.uffd = uffd,
		.sock = c->sock,
		.regions = regions,
		.nregions = n,
		.fields = fields,
		.pid = c->peer.pid,
		.uid = c->peer.uid,
		.fail = h->attr.fail,
		.on_fail = conn_fail,
		.fail_addr = FC_NO_ADDR,
		.priv = c,
	};
	return 0;

err_free:
	free(regions);
err_uffd:
	close(uffd);
	return rc;
}

static void conn_record(struct fc_conn *c)
{
	struct fc_session *s = &c->s;

	if (!s->record)
		return;
	if (trace_save(s->snap, s->record, s->trace, s->ntrace,
		       FMT_TRACE_SRC_RECORD))
		h_log(c->h, TIER_LOG_ERR, "pid %d: trace %s not saved: %s",
		      (int)c->peer.pid, s->record, tier_errmsg());
	else
		h_log(c->h, TIER_LOG_INFO, "pid %d: saved trace %s (%zu pages)",
		      (int)c->peer.pid, s->record, s->ntrace);
}

static void *conn_main(void *arg)
{
	struct fc_conn *c = arg;
	struct fc_handler *h = c->h;
	struct fc_session *s = &c->s;
	size_t cap = FC_MSG_MAX + 1;	/* a 64 KiB message fits, with room to see more */
	char *buf;
	int rc;

	s->uffd = -1;
	buf = malloc(cap);
	rc = buf ? conn_setup(c, buf, cap) : tier_err(-ENOMEM, "out of memory");
	free(buf);
	if (rc) {
		snprintf(c->why, sizeof(c->why), "pid %d (uid %u): refused: %s",
			 (int)c->peer.pid, (unsigned)c->peer.uid, tier_errmsg());
		/* an empty connection is what a second handler's "is this
		 * socket live?" check makes: not worth an error */
		h_log(h, rc == -ECONNRESET ? TIER_LOG_INFO : TIER_LOG_ERR, "%s",
		      c->why);
		goto out;
	}
	pthread_mutex_lock(&h->lock);
	c->serving = 1;
	pthread_mutex_unlock(&h->lock);
	h_log(h, TIER_LOG_INFO,
	      "pid %d (uid %u): %u region%s, %" PRIu64 " MiB, %s pages, Firecracker %s",
	      (int)c->peer.pid, (unsigned)c->peer.uid, s->nregions,
	      s->nregions == 1 ? "" : "s", tier_snap_size(h->snap) >> 20,
	      s->regions[0].page_size == 4096 ? "4 KiB" : "2 MiB",
	      fc_fields_name(s->fields));

	rc = fc_session_serve(s);
	if (rc) {
		conn_fail(s, s->fail_addr, rc, NULL);
	} else if (!__atomic_load_n(&c->failed, __ATOMIC_ACQUIRE)) {
		h_log(h, TIER_LOG_INFO,
		      "pid %d: hung up after %" PRIu64 " faults (%" PRIu64 " pages prefetched, %" PRIu64 " lazy, %" PRIu64 " mapped zero-copy, %" PRIu64 " KiB from the pool; removed ranges: %" PRIu64 "), %" PRIu64 " zero-page faults, prefetch %.1f us, faults served in %.1f us",
		      (int)c->peer.pid, s->st.faults, s->st.prefetched,
		      s->st.lazy, s->st.mapped, s->st.pool_bytes >> 10,
		      s->st.removes, s->st.zero_faults, s->st.prefetch_ns / 1e3,
		      s->st.fault_ns / 1e3);
		conn_record(c);
	} else {
		rc = -ECONNABORTED;	/* the handler stopped it (fc_handler_stop twice) */
	}
	if (!rc)
		c->why[0] = 0;
	free(s->trace);
	free((void *)s->regions);
	close(s->uffd);
out:
	pthread_mutex_lock(&h->lock);
	c->done = 1;
	c->rc = rc;
	pthread_mutex_unlock(&h->lock);
	/* only now: conn_abort_all() uses both while !done, under the lock */
	close(c->sock);
	if (c->peer.pidfd >= 0)
		close(c->peer.pidfd);
	h_wake(h);
	return NULL;
}

static void conn_start(struct fc_handler *h, int sock)
{
	struct fc_conn *c;
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c) {
		h_log(h, TIER_LOG_ERR, "refused a connection: out of memory");
		close(sock);
		return;
	}
	c->h = h;
	c->sock = sock;
	c->peer.pidfd = -1;
	rc = fc_peer(sock, &c->peer);
	if (rc) {
		h_log(h, TIER_LOG_ERR, "refused a connection: %s", tier_errmsg());
		goto err;
	}
	if (h->nconns >= FC_CONNS_MAX) {
		h_log(h, TIER_LOG_ERR, "pid %d: refused: %d VMMs connected already",
		      (int)c->peer.pid, FC_CONNS_MAX);
		goto err;
	}
	c->id = ++h->nextid;
	if (h->attr.record) {
		if (c->id == 1)
			snprintf(c->record, sizeof(c->record), "%s", h->attr.record);
		else
			snprintf(c->record, sizeof(c->record), "%.50s-%u",
				 h->attr.record, c->id);
	}

	pthread_mutex_lock(&h->lock);
	c->next = h->conns;
	h->conns = c;
	h->nconns++;
	rc = pthread_create(&c->thread, NULL, conn_main, c);
	if (rc) {
		h->conns = c->next;
		h->nconns--;
	}
	pthread_mutex_unlock(&h->lock);
	if (rc) {
		h_log(h, TIER_LOG_ERR, "pid %d: refused: no thread for it: %s",
		      (int)c->peer.pid, strerror(rc));
		goto err;
	}
	return;

err:
	if (c->peer.pidfd >= 0)
		close(c->peer.pidfd);
	close(sock);
	free(c);
}

/* Joins the ended connections; returns how many are still live. The
 * first connection's result goes to *@first_rc once it has ended. */
static unsigned conn_reap(struct fc_handler *h, int *first_rc, int *first_done,
			  char *first_why, size_t why_len)
{
	struct fc_conn **pp, *c;
	unsigned live = 0;

	pthread_mutex_lock(&h->lock);
	for (pp = &h->conns; (c = *pp);) {
		if (!c->done) {
			live++;
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		h->nconns--;
		pthread_mutex_unlock(&h->lock);
		pthread_join(c->thread, NULL);
		if (c->id == 1) {
			*first_rc = c->rc;
			*first_done = 1;
			if (first_why)
				snprintf(first_why, why_len, "%s", c->why);
		}
		free(c);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return live;
}

/* The second stop: the connected VMMs cannot be served any longer. */
static void conn_abort_all(struct fc_handler *h, const char *why)
{
	struct fc_conn *c;

	pthread_mutex_lock(&h->lock);
	for (c = h->conns; c; c = c->next) {
		if (c->done)
			continue;
		/* a session still in its handshake has no regions yet */
		if (c->serving)
			conn_fail(&c->s, FC_NO_ADDR, -ECONNABORTED, why);
		shutdown(c->sock, SHUT_RDWR);
	}
	pthread_mutex_unlock(&h->lock);
}

/* ------------------------------------------------------------ handler */

int fc_handler_open(struct tier_snap *snap, const char *path,
		    const struct fc_handler_attr *attr,
		    struct fc_handler **ret)
{
	struct fc_handler *h;
	int rc;

	if (strlen(path) >= sizeof(h->path))
		return tier_err(-ENAMETOOLONG, "socket path \"%s\" too long", path);
	if (attr && attr->record) {
		rc = snap_check_name("trace", attr->record);
		if (rc)
			return rc;
	} else {
		/* a missing plan fails here, not at every VM's first fault;
		 * each session loads the plan as it is when it connects */
		struct plan plan;

		rc = plan_load(snap, attr ? attr->policy : TIER_POLICY_TIERED,
			       &plan);
		if (rc)
			return rc;
		plan_free(&plan);
	}
	rc = snap_image_fd(snap);
	if (rc < 0)
		return rc;

	h = calloc(1, sizeof(*h));
	if (!h)
		return tier_err(-ENOMEM, "out of memory");
	h->snap = snap;
	if (attr)
		h->attr = *attr;
	if (h->attr.handshake_ms <= 0)
		h->attr.handshake_ms = FC_HANDSHAKE_MS;
	strcpy(h->path, path);
	h->lfd = -1;
	pthread_mutex_init(&h->lock, NULL);
	h->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->wake < 0) {
		rc = tier_err(-errno, "eventfd: %m");
		goto err;
	}
	rc = fc_listen(path, &h->lfd, &h->ino);
	if (rc)
		goto err;
	*ret = h;
	return 0;

err:
	if (h->wake >= 0)
		close(h->wake);
	pthread_mutex_destroy(&h->lock);
	free(h);
	return rc;
}

static void h_unlisten(struct fc_handler *h)
{
	if (h->lfd < 0)
		return;
	fc_unlisten(h->path, h->ino);
	close(h->lfd);
	h->lfd = -1;
}

int fc_handler_run(struct fc_handler *h)
{
	int once = h->attr.flags & FC_HANDLER_ONCE;
	int first_rc = 0, first_done = 0, aborted = 0, err = 0;
	char first_why[640] = "";
	struct pollfd pfd[2];
	unsigned live;
	uint64_t v;
	int rc, sock, stops;

	for (;;) {
		live = conn_reap(h, &first_rc, &first_done, first_why,
				 sizeof(first_why));
		stops = __atomic_load_n(&h->stops, __ATOMIC_ACQUIRE);
		if ((stops || err || (once && first_done)) && h->lfd >= 0) {
			h_unlisten(h);
			if (live)
				h_log(h, TIER_LOG_INFO,
				      "socket removed; serving the %u connected VMM%s until %s hang%s up",
				      live, live == 1 ? "" : "s", live == 1 ? "it" : "they",
				      live == 1 ? "s" : "");
		}
		if (stops >= 2 && !aborted) {
			conn_abort_all(h, "the handler was stopped");
			aborted = 1;
		}
		if (h->lfd < 0 && !live)
			break;

		pfd[0] = (struct pollfd){ .fd = h->wake, .events = POLLIN };
		/* --once: the first connection only; later ones wait in the
		 * backlog and are refused when the socket closes */
		pfd[1] = (struct pollfd){ .fd = h->lfd, .events = POLLIN };
		if (once && h->nextid)
			pfd[1].fd = -1;
		rc = poll(pfd, 2, -1);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			err = tier_err(-errno, "poll: %m");
			snprintf(h->err_why, sizeof(h->err_why), "%s", tier_errmsg());
			h_log(h, TIER_LOG_ERR, "%s", h->err_why);
			continue;
		}
		if (pfd[0].revents & POLLIN) {
			if (read(h->wake, &v, sizeof(v)) < 0 && errno != EAGAIN) {
				err = tier_err(-errno, "eventfd: %m");
				snprintf(h->err_why, sizeof(h->err_why), "%s", tier_errmsg());
			}
		}
		if (h->lfd < 0 || !(pfd[1].revents & POLLIN))
			continue;
		rc = fc_accept(h->lfd, &sock);
		if (rc == -EAGAIN || rc == -EINTR || rc == -ECONNABORTED)
			continue;
		if (rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM) {
			/* the pending connection stays queued: retry soon */
			h_log(h, TIER_LOG_ERR, "%s; retrying", tier_errmsg());
			poll(NULL, 0, 100);
			continue;
		}
		if (rc) {
			/* nobody new can be served: stop as if asked, then fail */
			err = rc;
			snprintf(h->err_why, sizeof(h->err_why), "%s", tier_errmsg());
			h_log(h, TIER_LOG_ERR, "%s", h->err_why);
			continue;
		}
		conn_start(h, sock);
	}

	if (err)
		return tier_err(err, "stopped accepting: %s", h->err_why);
	if (once && first_done && first_rc)
		return tier_err(first_rc, "%s", first_why[0] ? first_why :
				"the connection failed");
	return 0;
}

void fc_handler_stop(struct fc_handler *h)
{
	__atomic_add_fetch(&h->stops, 1, __ATOMIC_ACQ_REL);
	h_wake(h);
}

void fc_handler_close(struct fc_handler *h)
{
	int rc = 0, done = 0;

	if (!h)
		return;
	h_unlisten(h);
	/* run() returns with every connection ended; this is for one that
	 * never ran */
	conn_abort_all(h, "the handler was closed");
	while (h->conns) {
		conn_reap(h, &rc, &done, NULL, 0);
		if (h->conns)
			poll(NULL, 0, 10);
	}
	close(h->wake);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
