/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The only file that speaks userfaultfd(2). Everything above it (the
 * restorer and recorder, bench/floor.c) sees 0/-errno calls and struct
 * uffd_ev; the kernel's sharp edges stay here:
 *  - UFFDIO_API may be called once per fd and fails as a whole when one
 *    asked-for feature is missing, so the optional features are probed on
 *    a throw-away fd first and only the supported ones are requested.
 *  - COPY/ZEROPAGE may stop part-way (the copy/zeropage field says how
 *    far): EEXIST on one page does not mean the rest of the range is
 *    there, so that page is skipped (and its waiters woken) and the rest
 *    retried; EAGAIN with no progress goes back to the caller, who must
 *    read the pending REMOVE/UNMAP events before retrying.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#include "store/uffd.h"
#include "util/err.h"

#define UFFD_PAGE	4096UL

/* In Linux since 4.14; kept here for headers older than that. */
#ifndef UFFD_FEATURE_SIGBUS
#define UFFD_FEATURE_SIGBUS	(1 << 7)
#endif

/* Events we ask for when the kernel has them; none is required. */
#define UFFD_OPT_FEATURES (UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP)

static int uffd_new_fd(int oflags)
{
	int fd, dev, err;

	fd = syscall(SYS_userfaultfd, oflags);
	if (fd >= 0)
		return fd;
	err = errno;
#if HAVE_UFFD_DEV
	/*
	 * The syscall needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1;
	 * /dev/userfaultfd is governed by its file mode instead.
	 */
	if (err == EPERM || err == EACCES) {
		dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, oflags);
			if (fd < 0)
				err = errno;
			close(dev);
			if (fd >= 0)
				return fd;
		} else if (errno != ENOENT) {
			err = errno;
		}
	}
#else
	(void)dev;
#endif
	return -err;
}

/*
 * The features this kernel offers: UFFDIO_API with none asked returns
 * them. They cannot change while we run, so the answer is kept (a
 * failure is not: permissions may).
 */
static int uffd_probe(uint64_t *ret)
{
	static uint64_t cached;		/* features | 1ULL << 63 once known */
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	int fd;

	if (c) {
		*ret = c & ~(1ULL << 63);
		return 0;
	}
	fd = uffd_new_fd(O_CLOEXEC);
	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	close(fd);
	__atomic_store_n(&cached, api.features | 1ULL << 63, __ATOMIC_RELAXED);
	*ret = api.features;
	return 0;
}

int uffd_open(unsigned flags, int *ret_fd)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t have = 0;
	int oflags = O_CLOEXEC;
	int fd, rc;

	if (flags & ~(UFFD_F_WP | UFFD_F_NONBLOCK | UFFD_F_SIGBUS |
		      UFFD_F_NOEVENTS) ||
	    ((flags & UFFD_F_WP) && (flags & UFFD_F_SIGBUS)))
		return tier_err(-EINVAL, "userfaultfd: unknown flags %#x", flags);
	if (flags & UFFD_F_NONBLOCK)
		oflags |= O_NONBLOCK;

	rc = uffd_probe(&have);
	if (rc == -EPERM || rc == -EACCES)
		return tier_err(rc, "userfaultfd: not permitted (need root, "
				"vm.unprivileged_userfaultfd=1 or access to "
				"/dev/userfaultfd): %s", strerror(-rc));
	if (rc == -ENOSYS)
		return tier_err(rc, "userfaultfd: not in this kernel");
	if (rc)
		return tier_err(rc, "userfaultfd: %s", strerror(-rc));

	api.features = flags & UFFD_F_NOEVENTS ? 0 : have & UFFD_OPT_FEATURES;
	if (flags & UFFD_F_SIGBUS) {
		/* the features are negotiated at run time: headers that know
		 * the bit say nothing of the kernel we run on */
		if (!(have & UFFD_FEATURE_SIGBUS))
			return tier_err(-EOPNOTSUPP,
					"userfaultfd: no UFFD_FEATURE_SIGBUS in this kernel");
		api.features = UFFD_FEATURE_SIGBUS;
	}
	if (flags & UFFD_F_WP) {
		if (!(have & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
			return tier_err(-EOPNOTSUPP,
					"userfaultfd: no write-protect support in this kernel");
		api.features |= UFFD_FEATURE_PAGEFAULT_FLAG_WP;
	}

	fd = uffd_new_fd(oflags);
	if (fd < 0)
		return tier_err(fd, "userfaultfd: %s", strerror(-fd));
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		rc = -errno;
		close(fd);
		if (rc == -EINVAL)
			return tier_err(-EOPNOTSUPP,
					"UFFDIO_API: features %#llx unsupported",
					(unsigned long long)api.features);
		return tier_err(rc, "UFFDIO_API: %s", strerror(-rc));
	}
	*ret_fd = fd;
	return 0;
}

int uffd_register(int fd, void *addr, size_t len, unsigned mode)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
	};

	if (!mode || (mode & ~(UFFD_REG_MISSING | UFFD_REG_WP)))
		return tier_err(-EINVAL, "UFFDIO_REGISTER: bad mode %#x", mode);
	if (mode & UFFD_REG_MISSING)
		reg.mode |= UFFDIO_REGISTER_MODE_MISSING;
	if (mode & UFFD_REG_WP)
		reg.mode |= UFFDIO_REGISTER_MODE_WP;

	if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
		return tier_err(-errno, "UFFDIO_REGISTER %p+%zu: %m", addr, len);
	if ((mode & UFFD_REG_WP) &&
	    !(reg.ioctls & (1ULL << _UFFDIO_WRITEPROTECT))) {
		uffd_unregister(fd, addr, len);
		return tier_err(-EOPNOTSUPP,
				"UFFDIO_REGISTER %p+%zu: no write-protect for this memory",
				addr, len);
	}
	if ((mode & UFFD_REG_MISSING) &&
	    !(reg.ioctls & (1ULL << _UFFDIO_COPY))) {
		uffd_unregister(fd, addr, len);
		return tier_err(-EOPNOTSUPP,
				"UFFDIO_REGISTER %p+%zu: no UFFDIO_COPY for this memory",
				addr, len);
	}
	return 0;
}

int uffd_unregister(int fd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	if (ioctl(fd, UFFDIO_UNREGISTER, &r) < 0)
		return tier_err(-errno, "UFFDIO_UNREGISTER %p+%zu: %m", addr, len);
	return 0;
}

int uffd_wake(int fd, uintptr_t addr, size_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	if (ioctl(fd, UFFDIO_WAKE, &r) < 0)
		return tier_err(-errno, "UFFDIO_WAKE %#" PRIxPTR "+%zu: %m",
				addr, len);
	return 0;
}

int uffd_copy(int fd, uintptr_t dst, const void *src, size_t len,
	      unsigned mode)
{
	const char *s = src;
	struct uffdio_copy c;
	int err;

	size_t step = mode & UFFD_COPY_HUGE ? 512 * UFFD_PAGE : UFFD_PAGE;

	if (mode & ~(UFFD_COPY_DONTWAKE | UFFD_COPY_WP | UFFD_COPY_HUGE))
		return tier_err(-EINVAL, "UFFDIO_COPY: bad mode %#x", mode);

	while (len) {
		c = (struct uffdio_copy){
			.dst = dst,
			.src = (uintptr_t)s,
			.len = len,
		};
		if (mode & UFFD_COPY_DONTWAKE)
			c.mode |= UFFDIO_COPY_MODE_DONTWAKE;
		if (mode & UFFD_COPY_WP)
			c.mode |= UFFDIO_COPY_MODE_WP;

		if (ioctl(fd, UFFDIO_COPY, &c) == 0)
			return 0;
		err = errno;
		if (c.copy > 0) {		/* partial: keep what was done */
			dst += c.copy;
			s += c.copy;
			len -= c.copy;
			if (!len)
				return 0;
			if (err == EAGAIN)
				continue;
		}
		if (err == EEXIST) {
			/*
			 * This page is already there (a racing fault or a
			 * prefetch); later ones may not be. Nobody woke the
			 * threads waiting on it for us: the kernel wakes only
			 * what this call installed.
			 */
			if (!(mode & UFFD_COPY_DONTWAKE))
				uffd_wake(fd, dst, step);
			dst += step;
			s += step;
			len -= len < step ? len : step;
			continue;
		}
		if (err == EAGAIN)
			return -EAGAIN;
		return tier_err(-err, "UFFDIO_COPY %#" PRIxPTR "+%zu: %s",
				dst, len, strerror(err));
	}
	return 0;
}

int uffd_install_sigsafe(int fd, uintptr_t dst, const void *src, size_t len,
			 size_t *ret_done)
{
	size_t done = 0;
	int err, tries = 0;

	*ret_done = 0;
	while (done < len) {
		struct uffdio_copy c = {
			.dst = dst + done,
			.src = (uintptr_t)src + done,
			.len = len - done,
			.mode = UFFDIO_COPY_MODE_DONTWAKE,
		};
		struct uffdio_zeropage z = {
			.range = { .start = dst + done, .len = len - done },
			.mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE,
		};
		int64_t got;

		if (src ? ioctl(fd, UFFDIO_COPY, &c) : ioctl(fd, UFFDIO_ZEROPAGE, &z))
			err = errno;
		else
			err = 0;
		got = src ? c.copy : z.zeropage;
		if (got > 0)
			done += got;
		*ret_done = done;
		if (!err || done == len)
			return 0;
		/*
		 * The faulting page first: if it is there, someone else served
		 * it and the access will find it. A page of the window that is
		 * there ends the window (it is the page's, possibly written:
		 * never overwritten).
		 */
		if (err == EEXIST)
			return done ? 0 : -EEXIST;
		/* EAGAIN only while the mm changes under a reader of events;
		 * this fd has none, but a retry is all it asks (bounded: a
		 * signal handler must not spin for good) */
		if ((err == EAGAIN || err == EINTR) && ++tries < 1000)
			continue;
		return -err;
	}
	return 0;
}

int uffd_zeropage(int fd, uintptr_t dst, size_t len, unsigned mode)
{
	struct uffdio_zeropage z;
	int err;

	if (mode & ~UFFD_COPY_DONTWAKE)
		return tier_err(-EINVAL, "UFFDIO_ZEROPAGE: bad mode %#x", mode);

	while (len) {
		z = (struct uffdio_zeropage){
			.range = { .start = dst, .len = len },
		};
		if (mode & UFFD_COPY_DONTWAKE)
			z.mode |= UFFDIO_ZEROPAGE_MODE_DONTWAKE;

		if (ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0)
			return 0;
		err = errno;
		if (z.zeropage > 0) {
			dst += z.zeropage;
			len -= z.zeropage;
			if (!len)
				return 0;
			if (err == EAGAIN)
				continue;
		}
		if (err == EEXIST) {
			if (!(mode & UFFD_COPY_DONTWAKE))
				uffd_wake(fd, dst, UFFD_PAGE);
			dst += UFFD_PAGE;
			len -= len < UFFD_PAGE ? len : UFFD_PAGE;
			continue;
		}
		if (err == EAGAIN)
			return -EAGAIN;
		return tier_err(-err, "UFFDIO_ZEROPAGE %#" PRIxPTR "+%zu: %s",
				dst, len, strerror(err));
	}
	return 0;
}

int uffd_wp(int fd, uintptr_t addr, size_t len, int wp, int dontwake)
{
	struct uffdio_writeprotect w = {
		.range = { .start = addr, .len = len },
	};

	if (wp)
		w.mode |= UFFDIO_WRITEPROTECT_MODE_WP;
	if (dontwake)
		w.mode |= UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
	/* EAGAIN: a pending event changes the mm; the caller drains and retries */
	if (ioctl(fd, UFFDIO_WRITEPROTECT, &w) < 0) {
		if (errno == EAGAIN)
			return -EAGAIN;
		return tier_err(-errno, "UFFDIO_WRITEPROTECT %#" PRIxPTR
				"+%zu %s: %m", addr, len, wp ? "on" : "off");
	}
	return 0;
}

int uffd_read_events(int fd, struct uffd_ev *evs, int max)
{
	struct uffd_msg msg[16];
	ssize_t n;
	int i, cnt;

	if (max <= 0)
		return tier_err(-EINVAL, "userfaultfd: no room for events");
	if (max > (int)(sizeof(msg) / sizeof(msg[0])))
		max = sizeof(msg) / sizeof(msg[0]);

	do {
		n = read(fd, msg, max * sizeof(msg[0]));
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN)	/* non-blocking and idle, or lost a race */
			return 0;
		return tier_err(-errno, "userfaultfd: read: %m");
	}
	if (n % sizeof(msg[0]))
		return tier_err(-EIO, "userfaultfd: short read of %zd bytes", n);

	cnt = n / sizeof(msg[0]);
	for (i = 0; i < cnt; i++) {
		struct uffd_ev *ev = &evs[i];

		memset(ev, 0, sizeof(*ev));
		switch (msg[i].event) {
		case UFFD_EVENT_PAGEFAULT:
			ev->addr = msg[i].arg.pagefault.address & ~(UFFD_PAGE - 1);
			if (msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
				ev->kind = UFFD_EV_WP;
			} else {
				ev->kind = UFFD_EV_FAULT;
				ev->write = !!(msg[i].arg.pagefault.flags &
					       UFFD_PAGEFAULT_FLAG_WRITE);
			}
			break;
		case UFFD_EVENT_REMOVE:
			ev->kind = UFFD_EV_REMOVE;
			ev->addr = msg[i].arg.remove.start;
			ev->end = msg[i].arg.remove.end;
			break;
		case UFFD_EVENT_UNMAP:
			ev->kind = UFFD_EV_UNMAP;
			ev->addr = msg[i].arg.remove.start;
			ev->end = msg[i].arg.remove.end;
			break;
		default:
			ev->kind = UFFD_EV_OTHER;
			break;
		}
	}
	return cnt;
}
