/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* suite: unit -- tier URI parsing and canonical formatting (util/uri.c). */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "t.h"
#include "util/uri.h"

#define ANY	0
#define CXL	URI_WANT_CXL
#define POOL	URI_WANT_POOL
#define BOTH	(URI_WANT_CXL | URI_WANT_POOL)

struct good {
	const char *s;
	unsigned want;
	enum uri_kind kind;
	const char *path, *host;
	unsigned port;
	int node;
	const char *canon;
};

static const struct good good[] = {
	{ "cxl=dir:/mnt/cxl", CXL, URI_CXL_DIR, "/mnt/cxl", "", 0, 0, "cxl=dir:/mnt/cxl" },
	{ "dir:/mnt/cxl", CXL, URI_CXL_DIR, "/mnt/cxl", "", 0, 0, "cxl=dir:/mnt/cxl" },
	{ "dir:rel/dir", ANY, URI_CXL_DIR, "rel/dir", "", 0, 0, "cxl=dir:rel/dir" },
	{ "dir:.", BOTH, URI_CXL_DIR, ".", "", 0, 0, "cxl=dir:." },
	{ "dir:a:b=c", CXL, URI_CXL_DIR, "a:b=c", "", 0, 0, "cxl=dir:a:b=c" },
	{ "CXL=DIR:/x", CXL, URI_CXL_DIR, "/x", "", 0, 0, "cxl=dir:/x" },
	{ "cxl=devdax:/dev/dax0.0", CXL, URI_CXL_DEVDAX, "/dev/dax0.0", "", 0, 0, "cxl=devdax:/dev/dax0.0" },
	{ "devdax:/dev/dax1.2", ANY, URI_CXL_DEVDAX, "/dev/dax1.2", "", 0, 0, "cxl=devdax:/dev/dax1.2" },
	{ "cxl=numa:1", CXL, URI_CXL_NUMA, "", "", 0, 1, "cxl=numa:1" },
	{ "numa:0", ANY, URI_CXL_NUMA, "", "", 0, 0, "cxl=numa:0" },
	{ "numa:1023", CXL, URI_CXL_NUMA, "", "", 0, 1023, "cxl=numa:1023" },
	{ "numa:007", CXL, URI_CXL_NUMA, "", "", 0, 7, "cxl=numa:7" },
	{ "cxl=numa:1:/dev/shm/n1", CXL, URI_CXL_NUMA, "/dev/shm/n1", "", 0, 1,
	  "cxl=numa:1:/dev/shm/n1" },
	{ "pool=file:/var/lib/tier/pool", POOL, URI_POOL_FILE, "/var/lib/tier/pool", "", 0, 0, "pool=file:/var/lib/tier/pool" },
	{ "file:pool.d", ANY, URI_POOL_FILE, "pool.d", "", 0, 0, "pool=file:pool.d" },
	{ "pool=tcp://10.9.0.1:7000", POOL, URI_POOL_TCP, "", "10.9.0.1", 7000, 0, "pool=tcp://10.9.0.1:7000" },
	{ "tcp://localhost:1", ANY, URI_POOL_TCP, "", "localhost", 1, 0, "pool=tcp://localhost:1" },
	{ "tcp://pool-1.example_x.org:65535", POOL, URI_POOL_TCP, "", "pool-1.example_x.org", 65535, 0, "pool=tcp://pool-1.example_x.org:65535" },
	{ "tcp://h:0", POOL, URI_POOL_TCP, "", "h", 0, 0, "pool=tcp://h:0" },
	{ "tcp://[::1]:7000", POOL, URI_POOL_TCP, "", "::1", 7000, 0, "pool=tcp://[::1]:7000" },
	{ "pool=tcp://[fe80::1%eth0]:9", POOL, URI_POOL_TCP, "", "fe80::1%eth0", 9, 0, "pool=tcp://[fe80::1%eth0]:9" },
	{ "pool=rdma://10.9.0.2:18515", POOL, URI_POOL_RDMA, "", "10.9.0.2", 18515, 0, "pool=rdma://10.9.0.2:18515" },
	{ "rdma://[2001:db8::7]:00080", ANY, URI_POOL_RDMA, "", "2001:db8::7", 80, 0, "pool=rdma://[2001:db8::7]:80" },
	{ "Pool=RDMA://h:5", BOTH, URI_POOL_RDMA, "", "h", 5, 0, "pool=rdma://h:5" },
	{ "pool=rados://tier", POOL, URI_POOL_RADOS, "", "", 0, 0, "pool=rados://tier" },
	{ "rados://tier/fn-7", ANY, URI_POOL_RADOS, "", "", 0, 0, "pool=rados://tier/fn-7" },
	{ "rados://p?keyring=/k&id=tier&conf=/etc/c.conf", POOL, URI_POOL_RADOS, "", "", 0, 0, "pool=rados://p?id=tier&conf=/etc/c.conf&keyring=/k" },
	{ "rados://p?object_size=1M&id=tier", POOL, URI_POOL_RADOS, "", "", 0, 0, "pool=rados://p?id=tier&object_size=1048576" },
	{ "rados://p/n?conf=a=b", POOL, URI_POOL_RADOS, "", "", 0, 0, "pool=rados://p/n?conf=a=b" },
};

struct bad {
	const char *s;
	unsigned want;
	const char *msg;	/* a piece of the expected message */
};

static const struct bad bad[] = {
	{ "", ANY, "empty" },
	{ "cxl=", CXL, "no scheme" },
	{ "/mnt/cxl", ANY, "no scheme" },
	{ ":x", ANY, "no scheme" },
	{ "pool=ftp://x", POOL, "\"pool=ftp://x\": unknown scheme \"ftp\"" },
	{ "nfs:/x", ANY, "unknown scheme \"nfs\"" },
	{ "dirx:/x", ANY, "unknown scheme \"dirx\"" },
	{ "cxl=dir:", CXL, "empty directory" },
	{ "dir:", ANY, "empty directory" },
	{ "file:", POOL, "empty file name" },
	{ "devdax:dax0.0", CXL, "/dev/daxX.Y" },
	{ "devdax:/dev/", CXL, "/dev/daxX.Y" },
	{ "devdax:", CXL, "/dev/daxX.Y" },
	{ "numa:", CXL, "bad NUMA node" },
	{ "numa:1024", CXL, "bad NUMA node \"1024\"" },
	{ "numa:-1", CXL, "bad NUMA node" },
	{ "numa:+1", CXL, "bad NUMA node" },
	{ "numa:1x", CXL, "bad NUMA node" },
	{ "numa: 1", CXL, "bad NUMA node" },
	{ "numa:1:", CXL, "the directory after the node must be absolute" },
	{ "numa:1:rel/dir", CXL, "the directory after the node must be absolute" },
	{ "numa::/x", CXL, "bad NUMA node \"\"" },
	{ "numa:99999999999999999999999", CXL, "bad NUMA node" },
	{ "tcp:h:1", POOL, "want tcp://HOST:PORT" },
	{ "tcp:/h:1", POOL, "want tcp://HOST:PORT" },
	{ "tcp://h", POOL, "missing port" },
	{ "tcp://h:", POOL, "missing port" },
	{ "tcp://:7000", POOL, "empty host" },
	{ "tcp://", POOL, "missing port" },
	{ "tcp://h:65536", POOL, "bad port \"65536\"" },
	{ "tcp://h:99999999999999999999", POOL, "bad port" },
	{ "tcp://h:-1", POOL, "bad port" },
	{ "tcp://h:7000/", POOL, "bad port" },
	{ "tcp://h:70 00", POOL, "bad port" },
	{ "tcp://::1:7000", POOL, "needs brackets" },
	{ "tcp://[::1]", POOL, "missing port" },
	{ "tcp://[::1]7000", POOL, "missing port" },
	{ "tcp://[::1:7000", POOL, "unclosed" },
	{ "tcp://[]:7000", POOL, "empty host" },
	{ "tcp://[1.2.3.4]:7000", POOL, "IPv6 addresses only" },
	{ "tcp://[::1/]:7000", POOL, "bad character" },
	{ "tcp://user@h:7000", POOL, "bad character '@'" },
	{ "tcp://h/x:7000", POOL, "bad character '/'" },
	{ "rdma://h:1:2", POOL, "needs brackets" },
	{ "rados:tier", POOL, "want rados://POOL[/NAMESPACE]" },
	{ "rados://", POOL, "empty Ceph pool" },
	{ "rados:///ns", POOL, "empty Ceph pool" },
	{ "rados://p/", POOL, "empty namespace" },
	{ "rados://p/a/b", POOL, "bad character '/' in namespace" },
	{ "rados://p q", POOL, "bad character ' ' in Ceph pool" },
	{ "rados://p?", POOL, "empty query" },
	{ "rados://p?id", POOL, "want KEY=VALUE" },
	{ "rados://p?id=", POOL, "empty client id" },
	{ "rados://p?id=client.x", POOL, "after \"client.\" (id=x)" },
	{ "rados://p?id=a&id=b", POOL, "id given twice" },
	{ "rados://p?conf=", POOL, "empty conf path" },
	{ "rados://p?keyring=/a&keyring=/b", POOL, "keyring given twice" },
	{ "rados://p?user=x", POOL, "unknown parameter \"user\"" },
	{ "rados://p?object_size=6000", POOL, "object_size \"6000\": want a multiple of 4 KiB" },
	{ "rados://p?object_size=32K", POOL, "from 64K to 64M" },
	{ "rados://p?object_size=128M", POOL, "from 64K to 64M" },
	{ "rados://p?object_size=1M&object_size=2M", POOL, "object_size given twice" },
	{ "rados://p?id=x&", POOL, "empty parameter after '&'" },
	{ "cxl=rados://p", ANY, "rados is a pool tier" },
	/* prefix or kind against @want */
	{ "cxl=dir:/x", POOL, "a cxl tier, but a pool tier is wanted" },
	{ "pool=file:/x", CXL, "a pool tier, but a cxl tier is wanted" },
	{ "dir:/x", POOL, "dir is a cxl tier, but a pool tier is wanted" },
	{ "tcp://h:1", CXL, "tcp is a pool tier, but a cxl tier is wanted" },
	/* prefix against the scheme */
	{ "cxl=tcp://h:1", ANY, "tcp is a pool tier, not a cxl tier" },
	{ "pool=dir:/x", ANY, "dir is a cxl tier, not a pool tier" },
	{ "pool=numa:1", BOTH, "numa is a cxl tier" },
	{ "cxl=file:/x", CXL, "file is a pool tier" },
};

static void check_roundtrip(const struct tier_uri *u)
{
	struct tier_uri v;
	char buf[PATH_MAX + 64];

	t_ok(uri_format(u, buf, sizeof(buf)));
	t_ok(uri_parse(buf, 0, &v));
	t_eq(v.kind, u->kind);
	t_assert(!strcmp(v.path, u->path));
	t_assert(!strcmp(v.host, u->host));
	t_eq(v.port, u->port);
	t_eq(v.node, u->node);
	t_assert(!memcmp(&v.rados, &u->rados, sizeof(v.rados)));
}

static void test_rados(void)
{
	struct tier_uri u;

	t_ok(uri_parse("pool=rados://tier/ns.1?id=tier&conf=/c/ceph.conf&keyring=/k/x.keyring",
		       POOL, &u));
	t_eq(u.kind, URI_POOL_RADOS);
	t_assert(!strcmp(u.rados.pool, "tier"));
	t_assert(!strcmp(u.rados.ns, "ns.1"));
	t_assert(!strcmp(u.rados.id, "tier"));
	t_assert(!strcmp(u.rados.conf, "/c/ceph.conf"));
	t_assert(!strcmp(u.rados.keyring, "/k/x.keyring"));
	t_eq(u.rados.object_size, 0);
	t_ok(uri_parse("rados://tier?object_size=16M", POOL, &u));
	t_eq(u.rados.object_size, 16U << 20);
	/* nothing but the pool: Ceph's defaults and environment decide */
	t_ok(uri_parse("rados://tier", POOL, &u));
	t_assert(!u.rados.ns[0] && !u.rados.id[0] && !u.rados.conf[0] &&
		 !u.rados.keyring[0]);
	u.rados.pool[0] = '\0';
	t_fails(uri_format(&u, NULL, 0), -EINVAL);
}

static void test_good(void)
{
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good *g = &good[i];
		struct tier_uri u;
		char buf[PATH_MAX + 64];

		memset(&u, 0xa5, sizeof(u));
		if (uri_parse(g->s, g->want, &u)) {
			fprintf(stderr, "\"%s\": %s\n", g->s, tier_errmsg());
			exit(T_FAIL);
		}
		t_eq(u.kind, g->kind);
		if (strcmp(u.path, g->path) || strcmp(u.host, g->host)) {
			fprintf(stderr, "\"%s\": path \"%s\" host \"%s\"\n",
				g->s, u.path, u.host);
			exit(T_FAIL);
		}
		t_eq(u.port, g->port);
		t_eq(u.node, g->node);
		t_ok(uri_format(&u, buf, sizeof(buf)));
		if (strcmp(buf, g->canon)) {
			fprintf(stderr, "\"%s\": formats as \"%s\"\n", g->s, buf);
			exit(T_FAIL);
		}
		check_roundtrip(&u);
	}
}

static void test_bad(void)
{
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad *b = &bad[i];
		struct tier_uri u;
		int rc;

		memset(&u, 0x5a, sizeof(u));
		rc = uri_parse(b->s, b->want, &u);
		if (rc != -EINVAL || !strstr(tier_errmsg(), b->msg)) {
			fprintf(stderr, "\"%s\": rc %d, message \"%s\", want "
				"-EINVAL and \"%s\"\n", b->s, rc, tier_errmsg(),
				b->msg);
			exit(T_FAIL);
		}
		/* the message quotes the input (all but the empty one) */
		if (*b->s)
			t_assert(strstr(tier_errmsg(), b->s));
		/* *ret untouched on failure */
		t_eq(((unsigned char *)&u)[0], 0x5a);
		t_eq(u.port, 0x5a5a);
	}
	t_fails(uri_parse(NULL, 0, &(struct tier_uri){ 0 }), -EINVAL);
	t_fails(uri_parse("dir:/x", 0, NULL), -EINVAL);
}

static void test_lengths(void)
{
	static char s[PATH_MAX + 64], host[300];
	struct tier_uri u;
	char small[16];

	/* the longest path that fits, then one byte more */
	strcpy(s, "dir:");
	memset(s + 4, 'p', PATH_MAX - 1);
	s[4 + PATH_MAX - 1] = '\0';
	t_ok(uri_parse(s, CXL, &u));
	t_eq(strlen(u.path), PATH_MAX - 1);
	check_roundtrip(&u);
	strcat(s, "p");
	t_fails(uri_parse(s, CXL, &u), -EINVAL);
	t_assert(strstr(tier_errmsg(), "longer than"));

	/* host of 255 bytes fits, 256 does not */
	memset(host, 'h', 255);
	host[255] = '\0';
	snprintf(s, sizeof(s), "tcp://%s:7", host);
	t_ok(uri_parse(s, POOL, &u));
	t_eq(strlen(u.host), 255);
	check_roundtrip(&u);
	snprintf(s, sizeof(s), "tcp://%sh:7", host);
	t_fails(uri_parse(s, POOL, &u), -EINVAL);
	t_assert(strstr(tier_errmsg(), "host longer than 255"));

	/* a buffer too small for the canonical text */
	t_ok(uri_parse("tcp://localhost:7000", 0, &u));
	t_fails(uri_format(&u, small, sizeof(small)), -ENAMETOOLONG);
	{
		char exact[sizeof("pool=tcp://localhost:7000")];

		/* one byte short of the terminating NUL, then exact */
		t_fails(uri_format(&u, exact, sizeof(exact) - 1),
			-ENAMETOOLONG);
		t_ok(uri_format(&u, exact, sizeof(exact)));
		t_assert(!strcmp(exact, "pool=tcp://localhost:7000"));
	}
	t_fails(uri_format(&u, NULL, 0), -ENAMETOOLONG);

	/* structs built by hand */
	memset(&u, 0, sizeof(u));
	u.kind = (enum uri_kind)42;
	t_fails(uri_format(&u, s, sizeof(s)), -EINVAL);
	u.kind = URI_CXL_NUMA;
	u.node = 1024;
	t_fails(uri_format(&u, s, sizeof(s)), -EINVAL);
	u.node = 3;
	t_ok(uri_format(&u, s, sizeof(s)));
	t_assert(!strcmp(s, "cxl=numa:3"));
	u.kind = URI_POOL_RDMA;
	strcpy(u.host, "fd00::2");
	u.port = 1;
	t_ok(uri_format(&u, s, sizeof(s)));
	t_assert(!strcmp(s, "pool=rdma://[fd00::2]:1"));
	t_fails(uri_format(NULL, s, sizeof(s)), -EINVAL);
}

/* Every port from 0 to 65535 parses to itself and round-trips. */
static void test_ports(void)
{
	struct tier_uri u;
	char s[64];
	unsigned port;

	for (port = 0; port <= 65535; port++) {
		snprintf(s, sizeof(s), "rdma://h:%u", port);
		t_ok(uri_parse(s, POOL, &u));
		t_eq(u.port, port);
	}
	for (port = 0; port <= 1023; port++) {
		snprintf(s, sizeof(s), "pool=numa:%u", port);
		t_fails(uri_parse(s, 0, &u), -EINVAL);
		snprintf(s, sizeof(s), "numa:%u", port);
		t_ok(uri_parse(s, 0, &u));
		t_eq(u.node, port);
	}
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/*
 * Mutated good and bad URIs (bytes replaced, inserted, cut) never crash
 * and either fail with -EINVAL or parse to something that round-trips.
 */
static void test_random(void)
{
	static const char alpha[] = "cxl=pool:/[]tcprdma019.%@ -_";
	const size_t ng = sizeof(good) / sizeof(good[0]);
	const size_t nb = sizeof(bad) / sizeof(bad[0]);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	struct tier_uri u;
	char s[128];
	int i, j, rc, ok = 0, fail = 0;
	size_t len, at;

	for (i = 0; i < 200000; i++) {
		size_t k = rnd(&x) % (ng + nb);

		snprintf(s, sizeof(s), "%s", k < ng ? good[k].s : bad[k - ng].s);
		len = strlen(s);
		for (j = rnd(&x) % 4; j > 0; j--) {
			at = len ? rnd(&x) % len : 0;
			switch (rnd(&x) % 3) {
			case 0:
				if (len)
					s[at] = alpha[rnd(&x) % (sizeof(alpha) - 1)];
				break;
			case 1:
				if (len + 1 < sizeof(s)) {
					memmove(s + at + 1, s + at, len - at + 1);
					s[at] = alpha[rnd(&x) % (sizeof(alpha) - 1)];
					len++;
				}
				break;
			default:
				s[at] = '\0';
				len = at;
			}
		}
		rc = uri_parse(s, (unsigned)(rnd(&x) & 3), &u);
		if (rc == 0) {
			check_roundtrip(&u);
			ok++;
		} else {
			t_eq(rc, -EINVAL);
			fail++;
		}
	}
	t_assert(ok > 1000 && fail > 1000);
}

int main(void)
{
	test_good();
	test_bad();
	test_rados();
	test_lengths();
	test_ports();
	test_random();
	return T_PASS;
}
