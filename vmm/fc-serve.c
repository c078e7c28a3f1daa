/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fc_session_serve(), served from the image; replaced by the restorer's
 * fault server. A correct but simple server so that the handler around it
 * can be tested: every missing fault is one page (of its region's size)
 * read from the snapshot image, checked against the snapshot's per-page
 * checksums, and installed with UFFDIO_COPY, or UFFDIO_ZEROPAGE for a
 * zero 4 KiB page. No plan, no prefetch, no CXL or pool (policy, cxl and
 * pool are ignored).
 *
 * Following Firecracker's example handler (src/firecracker/examples/uffd/
 * on_demand_handler.rs and uffd_utils.rs: serve_pf, populate_from_file,
 * unregister_range): file_off = offset + (align_down(addr, page_size) -
 * base); EEXIST is success; EAGAIN means a REMOVE is pending, so read the
 * events and retry; a REMOVE unregisters its range, so later faults there
 * are the kernel's zero pages. Where the example accepts the race it
 * describes (a fault read before the REMOVE that precedes it causally is
 * served from the file), we do not: every REMOVE read is applied before
 * any fault read with it is served, and a fault in a removed range is
 * never given image bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vmm/fc.h"
#include "store/snap.h"
#include "store/uffd.h"
#include "util/checksum.h"
#include "util/err.h"

/*
 * ---- TO MOVE into store/uffd.c (the one file that may speak
 * <linux/userfaultfd.h>): uffd_copy() steps past an EEXIST by 4 KiB, which
 * in a hugetlb range leaves the next UFFDIO_COPY misaligned (EINVAL). A
 * copy of exactly one huge page is all or nothing, so EEXIST means all
 * of it is there.
 */
#include <linux/userfaultfd.h>

static int uffd_copy_huge(int fd, uintptr_t dst, const void *src, size_t len)
{
	struct uffdio_copy c = {
		.dst = dst,
		.src = (uintptr_t)src,
		.len = len,
	};

	if (ioctl(fd, UFFDIO_COPY, &c) == 0)
		return 0;
	if (errno == EEXIST)
		return uffd_wake(fd, dst, len);
	if (errno == EAGAIN)
		return -EAGAIN;
	return tier_err(-errno, "UFFDIO_COPY %#" PRIxPTR "+%zu: %m", dst, len);
}
/* ---- end of what moves */

#define HUGE		(2ULL << 20)
#define EAGAIN_MS	5000	/* a REMOVE that never shows up */

struct range {
	uint64_t start, end;
	int unregistered;
};

struct srv {
	struct fc_session *s;
	int img;
	char *buf;
	size_t buf_len;
	struct range *rm;		/* removed ranges */
	size_t nrm, caprm;
	struct uffd_ev *q;		/* faults read, not yet served */
	size_t nq, capq;
	uint64_t *seen;			/* record: 4 KiB pages logged */
	size_t captrace;
	uint64_t t0;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 16;
	void *tmp;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	tmp = realloc(*p, n * size);
	if (!tmp)
		return tier_err(-ENOMEM, "out of memory");
	*p = tmp;
	*cap = n;
	return 0;
}

static const struct range *removed(const struct srv *v, uint64_t addr)
{
	size_t i;

	for (i = 0; i < v->nrm; i++)
		if (addr >= v->rm[i].start && addr < v->rm[i].end)
			return &v->rm[i];
	return NULL;
}

/*
 * A REMOVE (madvise DONTNEED/REMOVE, the balloon): the range's pages are
 * gone and read as zero from now on. Unregistering it makes the kernel
 * give those zero pages itself (and wakes a fault waiting there, which
 * then retries). The range is clipped to each region's whole pages: the
 * kernel wants hugetlb ranges aligned, and only whole pages were zapped.
 */
static int apply_remove(struct srv *v, uint64_t start, uint64_t end)
{
	const struct fc_session *s = v->s;
	unsigned i;
	int rc;

	v->s->st.removes++;
	for (i = 0; i < s->nregions; i++) {
		const struct fc_region *r = &s->regions[i];
		uint64_t a = start > r->base ? start : r->base;
		uint64_t b = end < r->base + r->size ? end : r->base + r->size;
		struct range *rg;

		a = (a + r->page_size - 1) & ~(r->page_size - 1);
		b &= ~(r->page_size - 1);
		if (a >= b)
			continue;
		rc = grow((void **)&v->rm, &v->caprm, v->nrm + 1, sizeof(*v->rm));
		if (rc)
			return rc;
		rg = &v->rm[v->nrm++];
		rg->start = a;
		rg->end = b;
		/* if this fails, faults there get zero pages from us instead */
		rg->unregistered = !uffd_unregister(s->uffd, (void *)(uintptr_t)a, b - a);
	}
	return 0;
}

/* Reads every pending event: removes applied now, faults queued. */
static int drain(struct srv *v, int *ret_n)
{
	struct uffd_ev ev[16];
	int n, i, rc, total = 0;

	for (;;) {
		n = uffd_read_events(v->s->uffd, ev, 16);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		total += n;
		for (i = 0; i < n; i++) {
			switch (ev[i].kind) {
			case UFFD_EV_FAULT:
				rc = grow((void **)&v->q, &v->capq, v->nq + 1,
					  sizeof(*v->q));
				if (rc)
					return rc;
				v->q[v->nq++] = ev[i];
				break;
			case UFFD_EV_REMOVE:
			case UFFD_EV_UNMAP:	/* not negotiated by Firecracker */
				rc = apply_remove(v, ev[i].addr, ev[i].end);
				if (rc)
					return rc;
				break;
			default:
				v->s->fail_addr = ev[i].addr;
				return tier_err(-EPROTO, "unexpected userfaultfd event (kind %d)",
						ev[i].kind);
			}
		}
	}
	if (ret_n)
		*ret_n = total;
	return 0;
}

static void record(struct srv *v, uint64_t page, int write)
{
	struct fc_session *s = v->s;
	struct tier_trace_ent *e;

	if (!v->seen || (v->seen[page / 64] >> (page % 64)) & 1)
		return;
	if (grow((void **)&s->trace, &v->captrace, s->ntrace + 1,
		 sizeof(*s->trace)))
		return;		/* best effort: a trace short of memory */
	v->seen[page / 64] |= 1ULL << (page % 64);
	e = &s->trace[s->ntrace++];
	e->page = page;
	e->t_ns = now_ns() - v->t0;
	e->kind = write ? TIER_ACCESS_W : TIER_ACCESS_R;
}

static int read_page(struct srv *v, uint64_t off, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(v->img, v->buf + done, len - done, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tier_err(-errno, "image: read at 0x%" PRIx64 ": %m",
					off + done);
		if (n == 0)
			return tier_err(-EIO, "image: ends at 0x%" PRIx64, off + done);
		done += n;
	}
	return 0;
}

/* One fault. -EAGAIN: read the events and call again. */
static int serve_fault(struct srv *v, const struct uffd_ev *ev)
{
	struct fc_session *s = v->s;
	const struct fc_region *r;
	const struct range *rg;
	uint64_t pa, off, p, np, i;
	int rc;

	r = fc_region_find(s->regions, s->nregions, ev->addr);
	if (!r) {
		s->fail_addr = ev->addr;
		return tier_err(-EFAULT, "fault at 0x%" PRIx64 " outside every region",
				(uint64_t)ev->addr);
	}
	pa = ev->addr & ~(r->page_size - 1);
	rg = removed(v, pa);
	if (rg && rg->unregistered)
		return uffd_wake(s->uffd, pa, r->page_size);

	off = r->offset + (pa - r->base);
	p = off / TIER_PAGE_SIZE;
	np = r->page_size / TIER_PAGE_SIZE;
	record(v, (r->offset + (ev->addr & ~(TIER_PAGE_SIZE - 1)) - r->base) /
	       TIER_PAGE_SIZE, ev->write);

	if (rg) {
		/* removed but still registered: the zeros a DONTNEED leaves */
		memset(v->buf, 0, r->page_size);
		rc = np == 1 ? uffd_zeropage(s->uffd, pa, TIER_PAGE_SIZE, 0) :
		     uffd_copy_huge(s->uffd, pa, v->buf, r->page_size);
	} else if (np == 1 && snap_page_zero(s->snap, p)) {
		rc = uffd_zeropage(s->uffd, pa, TIER_PAGE_SIZE, 0);
		if (!rc)
			s->st.zeroed++;
	} else {
		rc = read_page(v, off, r->page_size);
		if (rc)
			goto fail;
		for (i = 0; i < np; i++)
			if (tier_csum(v->buf + i * TIER_PAGE_SIZE, TIER_PAGE_SIZE) !=
			    s->snap->csum[p + i]) {
				rc = tier_err(-EBADMSG,
					      "page %" PRIu64 " from the image: checksum mismatch",
					      p + i);
				goto fail;
			}
		rc = np == 1 ? uffd_copy(s->uffd, pa, v->buf, TIER_PAGE_SIZE, 0) :
		     uffd_copy_huge(s->uffd, pa, v->buf, r->page_size);
		if (!rc)
			s->st.copied++;
	}
	if (rc == -EAGAIN)
		return rc;
	if (rc)
		goto fail;
	s->st.faults++;
	return 0;

fail:
	s->fail_addr = ev->addr;
	return rc;
}

/* 1 if the VMM is gone (socket EOF or hangup); 0 if not. */
static int peer_gone(int sock, short revents)
{
	char b[256];
	ssize_t n;

	if (revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL))
		return 1;
	if (!(revents & POLLIN))
		return 0;
	/* Firecracker never writes after the handshake: drop whatever comes */
	n = recv(sock, b, sizeof(b), MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR);
}

static int sock_gone(int sock)
{
	struct pollfd p = { .fd = sock, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) > 0 && peer_gone(sock, p.revents);
}

/* Serves the queue in order; 1: the VMM is gone. */
static int serve_queue(struct srv *v)
{
	struct fc_session *s = v->s;
	uint64_t t_again = 0;
	size_t i = 0;
	int rc, n;

	while (i < v->nq) {
		rc = serve_fault(v, &v->q[i]);
		if (rc == -EAGAIN) {
			s->st.eagain++;
			if (!t_again)
				t_again = now_ns();
			else if (now_ns() - t_again > EAGAIN_MS * 1000000ULL) {
				s->fail_addr = v->q[i].addr;
				return tier_err(-ETIMEDOUT,
						"UFFDIO_COPY still EAGAIN after %d ms: no REMOVE came",
						EAGAIN_MS);
			}
			rc = drain(v, &n);
			if (rc)
				return rc;
			if (!n) {
				/* the event that makes it EAGAIN is not queued yet */
				struct pollfd p = { .fd = s->uffd, .events = POLLIN };

				poll(&p, 1, 1);
			}
			continue;
		}
		t_again = 0;
		/*
		 * ESRCH: its mm has no users left, so the VMM is exiting (its
		 * exit drops the mm before it closes the socket): a fault still
		 * queued then is nobody's. ENOENT: the range is unmapped, fine
		 * only if the VMM is going too.
		 */
		if (rc == -ESRCH || (rc == -ENOENT && sock_gone(s->sock)))
			return 1;
		if (rc)
			return rc;
		i++;
	}
	v->nq = 0;
	return 0;
}

int fc_session_serve(struct fc_session *s)
{
	struct srv v = { .s = s, .t0 = now_ns() };
	struct pollfd pfd[2];
	unsigned i;
	int rc;

	s->fail_addr = FC_NO_ADDR;
	v.img = snap_image_fd(s->snap);
	if (v.img < 0)
		return v.img;
	v.buf_len = TIER_PAGE_SIZE;
	for (i = 0; i < s->nregions; i++)
		if (s->regions[i].page_size > v.buf_len)
			v.buf_len = s->regions[i].page_size;
	v.buf = aligned_alloc(TIER_PAGE_SIZE, v.buf_len);
	if (!v.buf)
		return tier_err(-ENOMEM, "out of memory");
	if (s->record) {
		v.seen = calloc((tier_snap_npages(s->snap) + 63) / 64, 8);
		if (!v.seen) {
			rc = tier_err(-ENOMEM, "out of memory");
			goto out;
		}
	}

	for (;;) {
		pfd[0] = (struct pollfd){ .fd = s->uffd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = s->sock, .events = POLLIN | POLLRDHUP };
		rc = poll(pfd, 2, -1);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			rc = tier_err(-errno, "poll: %m");
			break;
		}
		if (pfd[0].revents & POLLIN) {
			rc = drain(&v, NULL);
			if (!rc)
				rc = serve_queue(&v);
			if (rc == 1) {
				rc = 0;
				break;
			}
			if (rc)
				break;
		} else if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			rc = tier_err(-EIO, "userfaultfd: poll says %#x",
				      (unsigned)pfd[0].revents);
			break;
		}
		if (peer_gone(s->sock, pfd[1].revents)) {
			rc = 0;
			break;
		}
	}
out:
	free(v.buf);
	free(v.rm);
	free(v.q);
	free(v.seen);
	return rc;
}
