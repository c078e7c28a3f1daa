/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fc_session_serve(): one Firecracker VMM served over the restorer's
 * parts (store/remote.h: the sources, the prefetcher and the fault
 * server, with no mapping step). Called by vmm/fc-handler.c on the
 * session's thread once the handshake was checked.
 *
 * The plan's hot pages (its COPY extents, and the read-only ones the
 * in-process restore would map from the CXL tier: a stock Firecracker's
 * memory is private anonymous, so they are copied) are installed before
 * the first fault is answered, without waking, then every region is
 * woken; then faults are served as they come: cold pages from the pool
 * with a prefetch window, zero pages by UFFDIO_ZEROPAGE (a copied zero
 * page in a 2 MiB region), every fetched page checked against the
 * snapshot's checksum. EEXIST is success; EAGAIN: the pending events are
 * read and applied (a REMOVE unregisters its range, as Firecracker's own
 * example handler does: src/firecracker/examples/uffd/uffd_utils.rs,
 * unregister_range) and the install is retried, or, if the REMOVE took
 * its pages, served afresh: a fault read before the REMOVE it raced with
 * is never given the bytes fetched for it.
 *
 * A VMM that speaks the zero-copy extension (fc-zc.c) maps the read-only
 * runs itself first; they are then neither copied nor served.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/fc.h"
#include "store/remote.h"
#include "util/err.h"

static void session_stats(struct fc_session *s, const struct remote *rm)
{
	struct tier_restore_stats st;
	unsigned c;

	remote_stats(rm, &st);
	s->st.faults = 0;
	for (c = 0; c < TIER_CLASS_MAX; c++)
		s->st.faults += st.faults[c];
	s->st.prefetched = st.prefetched_pages;
	s->st.lazy = st.lazy_pages;
	s->st.pool_bytes = st.pool_bytes;
	s->st.removes = remote_removes(rm);
	s->st.zero_faults = st.faults[TIER_CLASS_ZERO];
	s->st.prefetch_ns = st.prefetch_ns;
	s->st.fault_ns = st.fault_ns;
}

/* The VMM hung up: EOF or an error on its socket (it sends nothing after
 * the handshake; anything it does send is read and dropped). */
static bool vmm_gone(int sock)
{
	char buf[256];
	ssize_t n;

	for (;;) {
		n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == 0)
			return true;
		return errno != EAGAIN && errno != EINTR;
	}
}

/*
 * The zero-copy extension, for a VMM that asked: the hot read-only runs
 * are offered with the CXL object's fd; once it mapped them they are no
 * longer ours to install. A tier that cannot be mapped by another
 * process (devdax) offers none, and everything is copied.
 */
static int zero_copy(struct fc_session *s, struct remote *rm)
{
	struct remote_map *m = NULL;
	struct fc_zc_run *runs = NULL;
	size_t n = 0, i;
	uint64_t bytes = 0;
	int fd = -1, rc;

	rc = remote_zero_copy(rm, &m, &n, &fd);
	if (rc == -EOPNOTSUPP)
		n = 0;
	else if (rc)
		return rc;
	if (n && !(runs = calloc(n, sizeof(*runs))))
		rc = tier_err(-ENOMEM, "out of memory");
	for (i = 0; !rc && i < n; i++) {
		runs[i] = (struct fc_zc_run){ .addr = m[i].addr,
			.len = m[i].len, .off = m[i].obj_off };
		bytes += m[i].len;
	}
	if (!rc)
		rc = fc_zc_offer(s->sock, runs, n, fd);
	if (fd >= 0)
		close(fd);
	free(runs);
	free(m);
	if (rc)
		return rc;
	rc = fc_zc_answer(s->sock, 5000);
	if (rc <= 0)
		return rc;
	remote_zero_copy_done(rm);
	s->st.mapped = bytes / 4096;
	return 0;
}

static int serve_loop(struct fc_session *s, struct remote *rm)
{
	struct pollfd pfd[2] = {
		{ .fd = s->uffd, .events = POLLIN },
		{ .fd = s->sock, .events = POLLIN },
	};
	int rc;

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return tier_err(-errno, "poll: %m");
		}
		if (pfd[0].revents & POLLIN) {
			rc = remote_handle(rm);
			if (rc < 0)
				return rc;
			if (remote_exiting(rm))	/* before its socket says so */
				return 0;
		}
		/* the VMM's memory is gone (it exited): nothing to serve */
		if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))
			return 0;
		if (pfd[1].revents && vmm_gone(s->sock))
			return 0;
	}
}

int fc_session_serve(struct fc_session *s)
{
	struct remote_attr attr = {
		.flags = (s->record ? REMOTE_RECORD : 0) |
			 (s->pool_fallback ? REMOTE_POOL_FALLBACK : 0),
		.policy = s->policy, .cxl = s->cxl, .pool = s->pool,
		.prefetch = s->prefetch, .backing = s->backing,
	};
	struct remote_region *r;
	struct remote *rm;
	unsigned i;
	int rc;

	s->fail_addr = FC_NO_ADDR;
	r = calloc(s->nregions, sizeof(*r));
	if (!r)
		return tier_err(-ENOMEM, "out of memory");
	for (i = 0; i < s->nregions; i++)
		r[i] = (struct remote_region){
			.base = s->regions[i].base, .size = s->regions[i].size,
			.offset = s->regions[i].offset,
			.page_size = s->regions[i].page_size,
		};
	rc = remote_open(s->snap, s->uffd, r, s->nregions, &attr, &rm);
	free(r);
	if (rc)
		return rc;
	rc = s->regions[0].zero_copy ? zero_copy(s, rm) : 0;
	if (!rc)
		rc = remote_prefetch(rm);
	if (!rc)
		rc = serve_loop(s, rm);
	if (rc)
		s->fail_addr = remote_fail_addr(rm);
	session_stats(s, rm);
	if (s->record && !rc)
		rc = remote_trace(rm, &s->trace, &s->ntrace);
	remote_close(rm);
	return rc;
}
