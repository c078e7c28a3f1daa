/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_STORE_UFFD_H
#define TIER_STORE_UFFD_H

/*
 * Thin 0/-errno wrappers over userfaultfd(2); store/uffd.c is the only file
 * that includes <linux/userfaultfd.h>. EEXIST from COPY/ZEROPAGE means
 * "already there" and is returned as 0; EAGAIN (a pending REMOVE or a
 * mapping change) is returned as -EAGAIN for the caller to drain events
 * and retry.
 */

#include <stddef.h>
#include <stdint.h>

#define UFFD_F_WP		(1U << 0)	/* want write-protect (record) */
#define UFFD_F_NONBLOCK		(1U << 1)
/* A missing page raises SIGBUS in the faulting thread instead of an
 * event (UFFD_FEATURE_SIGBUS); no REMOVE/UNMAP events either: with no
 * reader, a madvise(DONTNEED) would wait for one forever. -EOPNOTSUPP
 * where the kernel lacks it. */
#define UFFD_F_SIGBUS		(1U << 2)
/* No REMOVE/UNMAP events: a handler that serves refaults after a
 * MADV_DONTNEED from the snapshot again (bench/iso.c's instance reset),
 * where a REMOVE would hold the madvise until it is read. */
#define UFFD_F_NOEVENTS		(1U << 3)

/* Opens a userfaultfd and negotiates the API: userfaultfd(2), else
 * /dev/userfaultfd. -EPERM/-EACCES unprivileged, -ENOSYS/-EOPNOTSUPP
 * missing (or WP missing with UFFD_F_WP). */
int uffd_open(unsigned flags, int *ret_fd);

#define UFFD_REG_MISSING	(1U << 0)
#define UFFD_REG_WP		(1U << 1)
int uffd_register(int fd, void *addr, size_t len, unsigned mode);
int uffd_unregister(int fd, void *addr, size_t len);

#define UFFD_COPY_DONTWAKE	(1U << 0)
#define UFFD_COPY_WP		(1U << 1)
#define UFFD_COPY_HUGE		(1U << 2)	/* a 2 MiB hugetlb range: an
						 * EEXIST skips a huge page */
/* Copies @len bytes from @src to @dst; retries partial copies. */
int uffd_copy(int fd, uintptr_t dst, const void *src, size_t len,
	      unsigned mode);
int uffd_zeropage(int fd, uintptr_t dst, size_t len, unsigned mode);
int uffd_wake(int fd, uintptr_t addr, size_t len);
/* Write-protect (@wp != 0) or un-protect a range. */
/*
 * For a signal handler: installs @len bytes from @src (NULL: zero pages)
 * at @dst without waking anybody, stopping at the first page already
 * there. Async-signal-safe (ioctls only, no message written): 0 when
 * all of it went in, -EEXIST when the first page was already there (a
 * racing thread installed it: nothing to do), else -errno with
 * *@ret_done the bytes installed before the failure (a page present
 * after the first is not a failure: 0, *@ret_done short).
 */
int uffd_install_sigsafe(int fd, uintptr_t dst, const void *src, size_t len,
			 size_t *ret_done);

int uffd_wp(int fd, uintptr_t addr, size_t len, int wp, int dontwake);

enum uffd_ev_kind {
	UFFD_EV_FAULT,		/* missing page */
	UFFD_EV_WP,		/* write to a write-protected page */
	UFFD_EV_REMOVE,		/* madvise(DONTNEED/REMOVE): [addr, end) */
	UFFD_EV_UNMAP,
	UFFD_EV_OTHER,
};

struct uffd_ev {
	enum uffd_ev_kind kind;
	uintptr_t addr;		/* fault address (page aligned), or start */
	uintptr_t end;		/* REMOVE/UNMAP */
	int write;		/* FAULT: the access was a write */
};

/* Reads up to @max events; returns how many (0: none pending on a
 * non-blocking fd). */
int uffd_read_events(int fd, struct uffd_ev *evs, int max);

#endif
