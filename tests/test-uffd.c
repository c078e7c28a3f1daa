/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* suite: root -- the userfaultfd wrappers of store/uffd.c. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "t.h"
#include "store/uffd.h"

#define PG 4096UL

static int open_or_skip(unsigned flags)
{
	int fd = -1, rc = uffd_open(flags, &fd);

	if (rc == -EPERM || rc == -EACCES)
		t_skip("userfaultfd not permitted: run as root or set "
		       "vm.unprivileged_userfaultfd=1 (%s)", tier_errmsg());
	if (rc == -ENOSYS || rc == -EOPNOTSUPP)
		t_skip("no userfaultfd%s: %s", flags & UFFD_F_WP ? " WP" : "",
		       tier_errmsg());
	t_ok(rc);
	t_assert(fd >= 0);
	return fd;
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	t_assert(p != MAP_FAILED);
	return p;
}

/* A handler for the WP test: serves missing faults with a WP copy of
 * 0x5a, un-protects on a WP fault, and counts both. */
struct wp_ctx {
	int fd;
	volatile int stop;
	volatile int missing, wp, missing_write;
	volatile uintptr_t wp_addr;
};

static void *wp_handler(void *arg)
{
	struct wp_ctx *c = arg;
	static char page[PG] __attribute__((aligned(4096)));
	struct uffd_ev ev[4];
	int i, n;

	memset(page, 0x5a, sizeof(page));
	while (!c->stop) {
		n = uffd_read_events(c->fd, ev, 4);
		if (n < 0)
			break;
		if (n == 0) {
			usleep(1000);
			continue;
		}
		for (i = 0; i < n; i++) {
			if (ev[i].kind == UFFD_EV_FAULT) {
				c->missing++;
				c->missing_write += ev[i].write;
				t_ok(uffd_copy(c->fd, ev[i].addr, page, PG,
					       ev[i].write ? 0 : UFFD_COPY_WP));
			} else if (ev[i].kind == UFFD_EV_WP) {
				c->wp++;
				c->wp_addr = ev[i].addr;
				t_ok(uffd_wp(c->fd, ev[i].addr, PG, 0, 0));
			}
		}
	}
	return NULL;
}

int main(void)
{
	struct uffd_ev ev[4];
	char *src, *dst, *z;
	int fd, wfd;

	fd = open_or_skip(UFFD_F_NONBLOCK);

	/* idle non-blocking fd: no events, not an error */
	t_eq(uffd_read_events(fd, ev, 4), 0);

	src = map_anon(4 * PG);
	dst = map_anon(4 * PG);
	for (int i = 0; i < 4; i++)
		memset(src + i * PG, 0xa0 + i, PG);

	t_ok(uffd_register(fd, dst, 4 * PG, UFFD_REG_MISSING));
	/* copy pages 0 and 2, then 0..3 at once: 0 and 2 are EEXIST
	 * inside the range, 1 and 3 must still arrive (partial copy) */
	t_ok(uffd_copy(fd, (uintptr_t)dst, src, PG, UFFD_COPY_DONTWAKE));
	t_ok(uffd_copy(fd, (uintptr_t)dst + 2 * PG, src + 2 * PG, PG, 0));
	t_ok(uffd_copy(fd, (uintptr_t)dst, src + PG, PG, 0));	/* EEXIST: 0 */
	t_assert(dst[0] == (char)0xa0);		/* not overwritten */
	t_ok(uffd_copy(fd, (uintptr_t)dst, src, 4 * PG, 0));
	t_assert(memcmp(dst, src, 4 * PG) == 0);
	t_eq(uffd_read_events(fd, ev, 4), 0);	/* no fault was raised */

	/* zeropage, and EEXIST on it */
	z = map_anon(2 * PG);
	memset(src, 0, PG);
	t_ok(uffd_register(fd, z, 2 * PG, UFFD_REG_MISSING));
	t_ok(uffd_zeropage(fd, (uintptr_t)z, 2 * PG, 0));
	t_ok(uffd_zeropage(fd, (uintptr_t)z, PG, 0));
	t_assert(memcmp(z, src, PG) == 0 && memcmp(z + PG, src, PG) == 0);
	t_ok(uffd_unregister(fd, z, 2 * PG));
	t_ok(uffd_unregister(fd, dst, 4 * PG));

	/* bad modes are refused */
	t_fails(uffd_register(fd, dst, PG, 0), -EINVAL);
	t_fails(uffd_copy(fd, (uintptr_t)dst, src, PG, 0x80), -EINVAL);
	close(fd);

	/* write-protect: read fault -> WP copy; write -> WP fault -> un-protect */
	{
		struct wp_ctx c = { 0 };
		pthread_t th;
		char *w = map_anon(3 * PG);
		volatile char *vw = w;
		char v;

		wfd = open_or_skip(UFFD_F_WP | UFFD_F_NONBLOCK);
		t_ok(uffd_register(wfd, w, 3 * PG,
				   UFFD_REG_MISSING | UFFD_REG_WP));
		c.fd = wfd;
		t_assert(pthread_create(&th, NULL, wp_handler, &c) == 0);

		v = vw[0];			/* missing read */
		t_eq(v, 0x5a);
		t_eq(c.missing, 1);
		t_eq(c.wp, 0);
		vw[0] = 1;			/* WP fault, then lands */
		t_eq(c.wp, 1);
		t_eq(c.wp_addr, (uintptr_t)w);
		t_eq(vw[0], 1);
		t_eq(vw[1], 0x5a);
		vw[PG] = 2;			/* missing write: no WP fault */
		t_eq(c.missing, 2);
		t_eq(c.missing_write, 1);
		t_eq(c.wp, 1);
		t_eq(vw[PG], 2);
		/* protect again by hand, the next write faults again */
		t_ok(uffd_wp(wfd, (uintptr_t)w, PG, 1, 0));
		vw[2] = 3;
		t_eq(c.wp, 2);
		t_eq(vw[2], 3);

		c.stop = 1;
		pthread_join(th, NULL);
		t_ok(uffd_unregister(wfd, w, 3 * PG));
		close(wfd);
	}
	return T_PASS;
}
