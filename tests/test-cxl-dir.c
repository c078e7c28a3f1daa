/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- the byte-addressable tier: the dir backend end to end
 * (create, write, commit, open, read, map MAP_PRIVATE, copy-on-write,
 * abort, replace, remove, errors), the devdax object table on a file
 * standing in for the device, then the numa backend on node 0 (skips
 * with 77 if libnuma says this system has no NUMA) and the errors of
 * nodes and devices that are not there.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if HAVE_NUMA
#include <numa.h>
#include <numaif.h>
#endif

#include "cxl/cxl-int.h"
#include "cxl/cxl.h"
#include "t.h"
#include "util/uri.h"

#define PG	4096
#define NPG	16

static char expect[NPG * PG];

/* Pages 4..7 are never written: they must read back as zeroes. */
static int page_written(int p)
{
	return p < 4 || p >= 8;
}

static void fill(uint8_t seed)
{
	memset(expect, 0, sizeof(expect));
	for (int p = 0; p < NPG; p++)
		if (page_written(p))
			for (int i = 0; i < PG; i++)
				expect[p * PG + i] = (char)(seed + p * 7 + i % 251);
}

static void write_obj(struct cxl_tier *t, const char *name, int commit)
{
	struct cxl_wobj *w;

	t_ok(cxl_create(t, name, NPG * PG, &w));
	/* In two uneven pieces, to check offsets are honoured. */
	t_ok(cxl_write(w, 0, expect, 4 * PG));
	t_ok(cxl_write(w, 8 * PG, expect + 8 * PG, 3 * PG + 100));
	t_ok(cxl_write(w, 11 * PG + 100, expect + 11 * PG + 100,
		       5 * PG - 100));
	t_fails(cxl_write(w, NPG * PG - 10, expect, 11), -ERANGE);
	if (commit)
		t_ok(cxl_commit(w));
	else
		cxl_abort(w);
}

static void *reserve(size_t len)
{
	void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	t_assert(p != MAP_FAILED);
	return p;
}

/* Names of files in @dir, excluding . and .., joined by spaces. */
static void list_dir(const char *dir, char *buf, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	buf[0] = 0;
	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			strncat(buf, de->d_name, len - strlen(buf) - 2);
			strcat(buf, " ");
		}
	closedir(d);
}

/* Everything a file-backed tier must do; @dir is where its files are. */
static void check_tier(const char *uristr, const char *dir)
{
	char buf[NPG * PG], path[4096], want[8192], ls[4096];
	struct cxl_obj *o, *o2;
	struct tier_uri uri;
	struct cxl_tier *t;
	char *m;
	int fd;

	t_ok(uri_parse(uristr, URI_WANT_CXL, &uri));
	t_ok(cxl_open(&uri, &t));
	t_eq(cxl_can_map(t), 1);

	/* Uncommitted: invisible. */
	fill(1);
	{
		struct cxl_wobj *w;

		t_ok(cxl_create(t, "snap/tiered", NPG * PG, &w));
		t_ok(cxl_write(w, 0, expect, PG));
		t_fails(cxl_obj_open(t, "snap/tiered", &o), -ENOENT);
		cxl_abort(w);
	}
	/* Aborted: nothing left behind, not even a temporary. */
	write_obj(t, "snap/aborted", 0);
	t_fails(cxl_obj_open(t, "snap/aborted", &o), -ENOENT);
	snprintf(path, sizeof(path), "%s/snap", dir);
	list_dir(path, ls, sizeof(ls));
	t_assert(ls[0] == 0);

	write_obj(t, "snap/tiered", 1);
	list_dir(path, ls, sizeof(ls));
	t_assert(!strcmp(ls, "tiered.obj "));
	t_ok(cxl_obj_open(t, "snap/tiered", &o));
	t_eq(cxl_obj_size(o), NPG * PG);

	/* Read: written bytes and zero holes. */
	memset(buf, 0x5a, sizeof(buf));
	t_ok(cxl_obj_read(o, 0, buf, sizeof(buf)));
	t_assert(!memcmp(buf, expect, sizeof(buf)));
	t_ok(cxl_obj_read(o, 5 * PG + 3, buf, 7));
	t_assert(!memcmp(buf, expect + 5 * PG + 3, 7));
	t_fails(cxl_obj_read(o, NPG * PG - 1, buf, 2), -ERANGE);

	/* Map MAP_PRIVATE over a reservation, populated: same bytes. */
	m = reserve(NPG * PG);
	t_ok(cxl_obj_map(o, 0, m, NPG * PG, 1));
	t_assert(!memcmp(m, expect, NPG * PG));

	/* A write to the mapping is copy-on-write: the object keeps its bytes. */
	m[0] ^= 0xff;
	m[9 * PG + 17] = 'x';
	m[5 * PG] = 1;		/* a hole page, too */
	t_assert(m[0] == (char)(expect[0] ^ 0xff));
	t_ok(cxl_obj_read(o, 0, buf, sizeof(buf)));
	t_assert(!memcmp(buf, expect, sizeof(buf)));
	snprintf(path, sizeof(path), "%s/snap/tiered.obj", dir);
	fd = open(path, O_RDONLY);
	t_assert(fd >= 0);
	t_eq(pread(fd, buf, sizeof(buf), 0), sizeof(buf));
	t_assert(!memcmp(buf, expect, sizeof(buf)));
	close(fd);

	/* A second instance maps the pristine bytes. */
	t_ok(cxl_obj_open(t, "snap/tiered", &o2));
	t_ok(cxl_obj_map(o2, 8 * PG, m + 8 * PG, 8 * PG, 0));
	t_assert(!memcmp(m + 8 * PG, expect + 8 * PG, 8 * PG));
	cxl_obj_close(o2);

	/* Ranges and alignment. */
	t_fails(cxl_obj_map(o, 8 * PG, m, 9 * PG, 0), -ERANGE);
	t_fails(cxl_obj_map(o, NPG * PG, m, PG, 0), -ERANGE);
	t_fails(cxl_obj_map(o, 100, m, PG, 0), -EINVAL);
	t_fails(cxl_obj_map(o, 0, m + 1, PG, 0), -EINVAL);
	t_fails(cxl_obj_map(o, 0, m, 0, 0), -EINVAL);
	munmap(m, NPG * PG);

	/* Replace: new opens see the new bytes, an open object keeps the old. */
	memcpy(buf, expect, sizeof(buf));
	fill(99);
	write_obj(t, "snap/tiered", 1);
	t_ok(cxl_obj_open(t, "snap/tiered", &o2));
	{
		char b2[NPG * PG];

		t_ok(cxl_obj_read(o2, 0, b2, sizeof(b2)));
		t_assert(!memcmp(b2, expect, sizeof(b2)));
		t_ok(cxl_obj_read(o, 0, b2, sizeof(b2)));
		t_assert(!memcmp(b2, buf, sizeof(b2)));
	}
	cxl_obj_close(o2);
	cxl_obj_close(o);

	/* A missing object: -ENOENT naming the tier and the object. */
	t_fails(cxl_obj_open(t, "snap/missing", &o), -ENOENT);
	snprintf(want, sizeof(want),
		 "%s: object snap/missing: No such file or directory", uristr);
	if (strcmp(tier_errmsg(), want)) {
		fprintf(stderr, "got  '%s'\nwant '%s'\n", tier_errmsg(), want);
		exit(T_FAIL);
	}

	/* Names that would escape the directory or hit a temporary. */
	t_fails(cxl_obj_open(t, "../etc/passwd", &o), -EINVAL);
	t_fails(cxl_obj_open(t, "/abs", &o), -EINVAL);
	t_fails(cxl_obj_open(t, "a//b", &o), -EINVAL);
	t_fails(cxl_obj_open(t, "snap/.tiered.obj.x", &o), -EINVAL);
	t_fails(cxl_obj_open(t, "", &o), -EINVAL);

	/* An empty object is fine (a plan may need none, but allow it). */
	{
		struct cxl_wobj *w;

		t_ok(cxl_create(t, "snap/empty", 0, &w));
		t_ok(cxl_commit(w));
		t_ok(cxl_obj_open(t, "snap/empty", &o));
		t_eq(cxl_obj_size(o), 0);
		cxl_obj_close(o);
		t_ok(cxl_remove(t, "snap/empty"));
	}

	t_ok(cxl_remove(t, "snap/tiered"));
	t_fails(cxl_obj_open(t, "snap/tiered", &o), -ENOENT);
	t_fails(cxl_remove(t, "snap/tiered"), -ENOENT);
	/* The last object of a snapshot takes its directory with it. */
	snprintf(path, sizeof(path), "%s/snap", dir);
	t_assert(access(path, F_OK) < 0 && errno == ENOENT);
	cxl_close(t);
}

static void check_fails(const char *uristr, int want_rc, const char *want)
{
	struct tier_uri uri;
	struct cxl_tier *t;
	int rc;

	t_ok(uri_parse(uristr, URI_WANT_CXL, &uri));
	rc = cxl_open(&uri, &t);
	if (rc != want_rc || (want && strcmp(tier_errmsg(), want))) {
		fprintf(stderr, "%s: rc %d (want %d): '%s' (want '%s')\n",
			uristr, rc, want_rc, tier_errmsg(), want ? want : "");
		exit(T_FAIL);
	}
}

#if HAVE_NUMA
/* The node each page of a resident mapping lives on must be @node. */
static void check_nodes(const char *uristr, const char *dir, int node)
{
	struct tier_uri uri;
	struct cxl_tier *t;
	struct cxl_obj *o;
	void *pages[NPG];
	int status[NPG];
	char *m;

	t_ok(uri_parse(uristr, URI_WANT_CXL, &uri));
	t_ok(cxl_open(&uri, &t));
	fill(3);
	write_obj(t, "snap/tiered", 1);
	t_ok(cxl_obj_open(t, "snap/tiered", &o));
	m = reserve(NPG * PG);
	t_ok(cxl_obj_map(o, 0, m, NPG * PG, 1));
	t_assert(!memcmp(m, expect, NPG * PG));
	for (int i = 0; i < NPG; i++)
		pages[i] = m + i * PG;
	t_ok(numa_move_pages(0, NPG, pages, NULL, status, 0));
	for (int i = 0; i < NPG; i++)
		if (page_written(i))	/* holes map the shared zero page */
			t_eq(status[i], node);
	munmap(m, NPG * PG);

	/* One node can't tell placement from luck: check the mechanism,
	 * the file's own policy (tmpfs keeps it in the inode). */
	{
		unsigned long mask[16] = { 0 };
		char path[4096];
		int fd, mode = -1;

		snprintf(path, sizeof(path), "%s/snap/tiered.obj", dir);
		fd = open(path, O_RDONLY);
		t_assert(fd >= 0);
		m = mmap(NULL, NPG * PG, PROT_READ, MAP_SHARED, fd, 0);
		t_assert(m != MAP_FAILED);
		t_assert(get_mempolicy(&mode, mask, sizeof(mask) * 8, m,
				       MPOL_F_ADDR) == 0);
		t_eq(mode, MPOL_BIND);
		t_eq(mask[0], 1UL << node);
		munmap(m, NPG * PG);
		close(fd);
	}
	cxl_obj_close(o);
	t_ok(cxl_remove(t, "snap/tiered"));
	cxl_close(t);
}
#endif

#if HAVE_DEVDAX
/*
 * The device-dax object table, on a regular file standing in for the
 * device (devdax_emulate()): allocation, commit, abort, replace,
 * persistence across opens, space reuse, and the two table copies.
 */
static void check_devdax(const char *dir)
{
	static char a[3 << 20], b[5 << 20];
	static char r[5 << 20] __attribute__((aligned(4096)));
	struct cxl_wobj *w, *w2;
	struct cxl_obj *o;
	struct tier_uri uri;
	struct cxl_tier *t;
	char path[600], uristr[700];
	int fd;

	snprintf(path, sizeof(path), "%s/dax", dir);
	fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	t_assert(fd >= 0);
	t_assert(ftruncate(fd, 32 << 20) == 0);
	close(fd);
	snprintf(uristr, sizeof(uristr), "cxl=devdax:%s", path);
	t_ok(uri_parse(uristr, URI_WANT_CXL, &uri));

	/* Without the test switch a file is not a device, whatever the
	 * environment says (the switch once was TIER_DEVDAX_EMULATE). */
	devdax_emulate(false);
	setenv("TIER_DEVDAX_EMULATE", "1", 1);
	t_fails(cxl_open(&uri, &t), -ENODEV);
	unsetenv("TIER_DEVDAX_EMULATE");
	devdax_emulate(true);

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	t_ok(cxl_open(&uri, &t));
	t_fails(cxl_obj_open(t, "s/x", &o), -ENOENT);
	t_ok(cxl_create(t, "s/x", sizeof(a), &w));
	t_ok(cxl_write(w, PG, a, sizeof(a) - PG));
	t_fails(cxl_obj_open(t, "s/x", &o), -ENOENT);	/* not yet */
	t_ok(cxl_commit(w));
	t_ok(cxl_obj_open(t, "s/x", &o));
	t_eq(cxl_obj_size(o), sizeof(a));
	t_ok(cxl_obj_read(o, 0, r, sizeof(a)));
	for (int i = 0; i < PG; i++)		/* never written: zero */
		t_eq(r[i], 0);
	t_assert(!memcmp(r + PG, a, sizeof(a) - PG));
	/* No copy-on-write mapping of a device-dax: refused, with the way out. */
	t_eq(cxl_can_map(t), 0);
	t_fails(cxl_obj_map(o, 0, r, PG, 0), -EOPNOTSUPP);
	t_assert(strstr(tier_errmsg(), "cannot be mapped copy-on-write"));
	t_assert(strstr(tier_errmsg(), "use fs-dax (cxl=dir:"));
	cxl_obj_close(o);

	/* Two writers in flight get disjoint space; one aborts; x is replaced. */
	t_ok(cxl_create(t, "s/y", sizeof(b), &w));
	t_ok(cxl_create(t, "s/x", sizeof(b), &w2));
	t_ok(cxl_write(w, 0, b, sizeof(b)));
	t_ok(cxl_write(w2, 0, b, sizeof(b)));
	cxl_abort(w);
	t_ok(cxl_commit(w2));
	t_fails(cxl_obj_open(t, "s/y", &o), -ENOENT);
	cxl_close(t);

	/* The table is on the "device": a new open sees x's new bytes. */
	t_ok(cxl_open(&uri, &t));
	t_ok(cxl_obj_open(t, "s/x", &o));
	t_eq(cxl_obj_size(o), sizeof(b));
	t_ok(cxl_obj_read(o, 0, r, sizeof(b)));
	t_assert(!memcmp(r, b, sizeof(b)));
	cxl_obj_close(o);

	/*
	 * Space: table 2 MiB, old x [2, 5) freed, y aborted, new x at
	 * [12, 17) MiB: the largest hole is [18, 32), 14 MiB.
	 */
	t_fails(cxl_create(t, "s/big", 15 << 20, &w), -ENOSPC);
	t_ok(cxl_create(t, "s/big", 14 << 20, &w));
	t_ok(cxl_commit(w));
	t_ok(cxl_remove(t, "s/big"));
	t_fails(cxl_remove(t, "s/big"), -ENOENT);
	t_ok(cxl_create(t, "s/big2", 10 << 20, &w));	/* into [2, 12) */
	t_ok(cxl_write(w, (10 << 20) - PG, a, PG));
	t_ok(cxl_commit(w));
	t_ok(cxl_obj_open(t, "s/x", &o));
	t_ok(cxl_obj_read(o, 0, r, sizeof(b)));
	t_assert(!memcmp(r, b, sizeof(b)));
	cxl_obj_close(o);
	cxl_close(t);

	/* A torn newest table: the older copy is used (without big2). */
	fd = open(path, O_RDWR);
	t_assert(fd >= 0);
	{
		uint64_t g0, g1;
		unsigned s;

		t_eq(pread(fd, &g0, 8, 16), 8);
		t_eq(pread(fd, &g1, 8, (1 << 20) + 16), 8);
		t_assert(g0 != g1);
		s = g0 > g1 ? 0 : 1;
		t_eq(pwrite(fd, "X", 1, (s << 20) + 64 + 5), 1);
	}
	close(fd);
	t_ok(cxl_open(&uri, &t));
	t_fails(cxl_obj_open(t, "s/big2", &o), -ENOENT);
	t_ok(cxl_obj_open(t, "s/x", &o));
	t_ok(cxl_obj_read(o, 0, r, sizeof(b)));
	t_assert(!memcmp(r, b, sizeof(b)));
	cxl_obj_close(o);
	cxl_close(t);

	/* Both torn: refused, never guessed. */
	fd = open(path, O_RDWR);
	t_eq(pwrite(fd, "X", 1, 64 + 5), 1);
	t_eq(pwrite(fd, "X", 1, (1 << 20) + 64 + 5), 1);
	close(fd);
	t_ok(cxl_open(&uri, &t));
	t_fails(cxl_obj_open(t, "s/x", &o), -EBADMSG);
	cxl_close(t);
	devdax_emulate(false);
	unlink(path);
}
#endif

/*
 * Objects are mapped unchecked, so a tier directory or object that
 * another user could change is refused: at open, at create (also when
 * the directory changed after the open), and per object at open.
 */
static void check_untrusted(const char *base)
{
	char d[300], uristr[400], obj[400], want[800];
	struct tier_uri uri;
	struct cxl_tier *t;
	struct cxl_wobj *w;
	struct cxl_obj *o;

	snprintf(d, sizeof(d), "%s/trust", base);
	snprintf(uristr, sizeof(uristr), "cxl=dir:%s", d);
	snprintf(obj, sizeof(obj), "%s/s/x.obj", d);
	t_ok(uri_parse(uristr, URI_WANT_CXL, &uri));
	t_assert(mkdir(d, 0755) == 0);
	t_assert(chmod(d, 0755) == 0);		/* whatever the umask */
	t_ok(cxl_open(&uri, &t));
	fill(3);
	write_obj(t, "s/x", 1);

	/* the directory writable by others: refused at create ... */
	t_assert(chmod(d, 0777) == 0);
	t_fails(cxl_create(t, "s/y", PG, &w), -EPERM);
	cxl_close(t);
	/* ... and at open */
	snprintf(want, sizeof(want), "%s: the directory is writable by group "
		 "or others (mode 777): another user could change what "
		 "restores map (chmod go-w)", uristr);
	check_fails(uristr, -EPERM, want);
	t_assert(chmod(d, 01777) == 0);		/* sticky is not enough */
	check_fails(uristr, -EPERM, NULL);
	t_assert(chmod(d, 0755) == 0);

	/* an object file writable by others */
	t_ok(cxl_open(&uri, &t));
	t_assert(chmod(obj, 0666) == 0);
	t_fails(cxl_obj_open(t, "s/x", &o), -EPERM);
	t_assert(strstr(tier_errmsg(), "object s/x: the object file is writable"));
	t_assert(chmod(obj, 0644) == 0);
	t_ok(cxl_obj_open(t, "s/x", &o));
	cxl_obj_close(o);

	/* owned by another user (root can make one) */
	if (geteuid() == 0) {
		t_assert(chown(obj, 65534, 65534) == 0);
		t_fails(cxl_obj_open(t, "s/x", &o), -EPERM);
		t_assert(strstr(tier_errmsg(), "is owned by uid 65534"));
		t_assert(chown(obj, 0, 0) == 0);
		t_assert(chown(d, 65534, 65534) == 0);
		check_fails(uristr, -EPERM, NULL);
		t_assert(strstr(tier_errmsg(),
				"the directory is owned by uid 65534"));
		t_assert(chown(d, 0, 0) == 0);
	}
	t_ok(cxl_remove(t, "s/x"));
	cxl_close(t);
	snprintf(obj, sizeof(obj), "%s/s", d);
	rmdir(obj);
	t_assert(rmdir(d) == 0);
}

int main(void)
{
	char dir[] = "/dev/shm/test-cxl-dir.XXXXXX";
	char uristr[600], want[512];
	struct tier_uri uri;
	struct cxl_tier *t;
	int rc;

	t_assert(mkdtemp(dir));

	/* A tier directory that does not exist yet is made on first create. */
	snprintf(uristr, sizeof(uristr), "cxl=dir:%s/tier", dir);
	snprintf(want, sizeof(want), "%s/tier", dir);
	check_tier(uristr, want);

	check_untrusted(dir);

	/* A file where the directory should be. */
	snprintf(uristr, sizeof(uristr), "cxl=dir:%s/tier/x", dir);
	{
		char f[300];
		int fd;

		snprintf(f, sizeof(f), "%s/file", dir);
		fd = open(f, O_CREAT | O_WRONLY, 0600);
		t_assert(fd >= 0);
		close(fd);
		snprintf(uristr, sizeof(uristr), "cxl=dir:%s", f);
		check_fails(uristr, -ENOTDIR, NULL);
		unlink(f);
	}

	/* Device-dax: not here; the error names the device either way. */
	t_ok(uri_parse("cxl=devdax:/dev/dax9.9", URI_WANT_CXL, &uri));
	rc = cxl_open(&uri, &t);
	t_assert(rc == -ENODEV || rc == -EOPNOTSUPP);
	t_assert(!strncmp(tier_errmsg(), "cxl=devdax:/dev/dax9.9: ", 24));

#if HAVE_DEVDAX
	check_devdax(dir);
#endif

	/* Not a cxl URI at all. */
	t_ok(uri_parse("pool=file:/tmp/x", URI_WANT_POOL, &uri));
	t_fails(cxl_open(&uri, &t), -EINVAL);

#if HAVE_NUMA
	check_fails("cxl=numa:99", -ENODEV, "cxl=numa:99: no NUMA node 99");
	if (numa_available() < 0) {
		rmdir(want);
		rmdir(dir);
		t_skip("numa backend: libnuma says NUMA is not available here");
	}
	snprintf(want, sizeof(want), "%s/numa", dir);
	snprintf(uristr, sizeof(uristr), "cxl=numa:0:%s", want);
	check_tier(uristr, want);
	check_nodes(uristr, want, 0);
	if (numa_max_node() < 1) {
		snprintf(want, sizeof(want), "cxl=numa:%d: no NUMA node %d",
			 numa_max_node() + 1, numa_max_node() + 1);
		snprintf(uristr, sizeof(uristr), "cxl=numa:%d",
			 numa_max_node() + 1);
		check_fails(uristr, -ENODEV, want);
	}
	/* Placement needs tmpfs: a disk directory is refused at create. */
	{
		char vdir[] = "/var/tmp/test-cxl-dir-numa.XXXXXX", sub[64];
		struct cxl_wobj *w;

		t_assert(mkdtemp(vdir));
		snprintf(uristr, sizeof(uristr), "cxl=numa:0:%s", vdir);
		t_ok(uri_parse(uristr, URI_WANT_CXL, &uri));
		t_ok(cxl_open(&uri, &t));
		rc = cxl_create(t, "notmpfs/x", PG, &w);
		if (rc == 0)	/* /var/tmp is tmpfs on this machine: fine */
			cxl_abort(w);
		else
			t_eq(rc, -EINVAL);
		snprintf(sub, sizeof(sub), "%s/notmpfs", vdir);
		rmdir(sub);
		rmdir(vdir);
		cxl_close(t);
	}
	snprintf(want, sizeof(want), "%s/numa", dir);
	rmdir(want);
#else
	check_fails("cxl=numa:0", -EOPNOTSUPP,
		    "cxl=numa:0: this build has no libnuma");
#endif
	snprintf(want, sizeof(want), "%s/tier", dir);
	rmdir(want);
	t_assert(rmdir(dir) == 0);
	return T_PASS;
}
