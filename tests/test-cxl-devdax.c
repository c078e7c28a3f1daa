/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: root -- the devdax CXL backend on a real device-dax. Skips (77)
 * unless TIER_TEST_DAX=/dev/daxX.Y names one; tests/guest-tier-dax.sh runs
 * it in the emulated guest on pmem reconfigured as devdax. Objects are
 * created, written in uneven pieces, committed, read back (unwritten
 * ranges as zero) through a fresh open, found in the device's own bytes,
 * replaced and removed; mapping one is refused with -EOPNOTSUPP and the
 * way out, since a device-dax cannot be mapped copy-on-write.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cxl/cxl.h"
#include "t.h"
#include "util/uri.h"

#define PG	4096
#define NPG	64

static uint8_t expect[NPG * PG];
static uint8_t got[NPG * PG] __attribute__((aligned(PG)));

/* Pages 10..19 are never written and must read as zero. */
static void fill(unsigned seed)
{
	memset(expect, 0, sizeof(expect));
	for (int p = 0; p < NPG; p++)
		if (p < 10 || p >= 20)
			for (int i = 0; i < PG; i++)
				expect[p * PG + i] =
					(uint8_t)(seed * 131 + p * 7 + i % 253);
}

static void write_obj(struct cxl_tier *t, const char *name)
{
	struct cxl_wobj *w;

	t_ok(cxl_create(t, name, sizeof(expect), &w));
	t_ok(cxl_write(w, 0, expect, 10 * PG - 7));
	t_ok(cxl_write(w, 10 * PG - 7, expect + 10 * PG - 7, 7));
	t_ok(cxl_write(w, 20 * PG, expect + 20 * PG, 33 * PG + 123));
	t_ok(cxl_write(w, 53 * PG + 123, expect + 53 * PG + 123,
		       11 * PG - 123));
	t_fails(cxl_write(w, sizeof(expect) - 1, expect, 2), -ERANGE);
	t_ok(cxl_commit(w));
}

static void read_obj(struct cxl_tier *t, const char *name)
{
	struct cxl_obj *o;

	t_ok(cxl_obj_open(t, name, &o));
	t_eq(cxl_obj_size(o), sizeof(expect));
	memset(got, 0xa5, sizeof(got));
	t_ok(cxl_obj_read(o, 0, got, sizeof(got)));
	t_assert(!memcmp(got, expect, sizeof(expect)));
	t_ok(cxl_obj_read(o, 21 * PG + 5, got, 100));
	t_assert(!memcmp(got, expect + 21 * PG + 5, 100));
	cxl_obj_close(o);
}

/* The object's page 30 is somewhere in the device's own bytes. */
static void on_device(const char *dev, unsigned seed)
{
	uint8_t *m;
	struct stat st;
	size_t size;
	char path[128], buf[32];
	FILE *f;
	int fd;

	t_assert(stat(dev, &st) == 0);
	snprintf(path, sizeof(path), "/sys/dev/char/%u:%u/size",
		 major(st.st_rdev), minor(st.st_rdev));
	f = fopen(path, "r");
	t_assert(f && fgets(buf, sizeof(buf), f));
	fclose(f);
	size = strtoull(buf, NULL, 10);
	t_assert(size > 0);
	fd = open(dev, O_RDONLY);
	t_assert(fd >= 0);
	m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	t_assert(m != MAP_FAILED);
	fill(seed);
	t_assert(memmem(m, size, expect + 30 * PG, PG));
	munmap(m, size);
	close(fd);
}

int main(void)
{
	const char *dev = getenv("TIER_TEST_DAX");
	char uristr[512];
	struct tier_uri uri;
	struct cxl_tier *t;
	struct cxl_obj *o;
	void *addr;

	if (!dev || !*dev)
		t_skip("set TIER_TEST_DAX=/dev/daxX.Y (tests/guest-tier-dax.sh does, in the emulated guest)");
	if (!HAVE_DEVDAX)
		t_skip("built without libdaxctl/libpmem2 (cxl=devdax is a stub)");

	snprintf(uristr, sizeof(uristr), "cxl=devdax:%s", dev);
	t_ok(uri_parse(uristr, URI_WANT_CXL, &uri));
	t_ok(cxl_open(&uri, &t));
	cxl_remove(t, "devdax-test/a");
	cxl_remove(t, "devdax-test/b");

	fill(1);
	write_obj(t, "devdax-test/a");
	read_obj(t, "devdax-test/a");
	t_fails(cxl_obj_open(t, "devdax-test/b", &o), -ENOENT);

	/* No copy-on-write mapping of a device-dax: refused, with the way out. */
	t_ok(cxl_obj_open(t, "devdax-test/a", &o));
	addr = mmap(NULL, PG, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t_assert(addr != MAP_FAILED);
	t_fails(cxl_obj_map(o, 0, addr, PG, 0), -EOPNOTSUPP);
	t_assert(strstr(tier_errmsg(), "cannot be mapped copy-on-write"));
	t_assert(strstr(tier_errmsg(), "use fs-dax (cxl=dir:"));
	t_eq(cxl_can_map(t), 0);
	munmap(addr, PG);
	cxl_obj_close(o);
	cxl_close(t);

	/* The table is on the device: a fresh open finds a and its bytes. */
	t_ok(cxl_open(&uri, &t));
	read_obj(t, "devdax-test/a");
	on_device(dev, 1);

	/* Replace a with other bytes, add b, remove a. */
	fill(2);
	write_obj(t, "devdax-test/a");
	write_obj(t, "devdax-test/b");
	cxl_close(t);
	t_ok(cxl_open(&uri, &t));
	read_obj(t, "devdax-test/a");
	read_obj(t, "devdax-test/b");
	on_device(dev, 2);
	t_ok(cxl_remove(t, "devdax-test/a"));
	t_fails(cxl_remove(t, "devdax-test/a"), -ENOENT);
	t_fails(cxl_obj_open(t, "devdax-test/a", &o), -ENOENT);
	read_obj(t, "devdax-test/b");
	t_ok(cxl_remove(t, "devdax-test/b"));
	cxl_close(t);
	printf("ok: devdax objects on %s\n", dev);
	return 0;
}
