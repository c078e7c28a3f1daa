/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- the file pool: DIR/SNAP/POLICY.seg written atomically,
 * scattered reads byte for byte, bounds, missing and uncommitted segments,
 * replacement under an open reader, removal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "rdma/pool.h"

static uint8_t pat(uint64_t off, unsigned seed)
{
	uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ seed * 0xbf58476d1ce4e5b9ULL;

	return (uint8_t)(x >> 29 ^ x >> 47);
}

static unsigned rnd_state = 4242;

static unsigned rnd(void)
{
	rnd_state = rnd_state * 1103515245 + 12345;
	return rnd_state >> 8;
}

static void put_seg(struct pool *p, const char *name, size_t len, unsigned seed)
{
	uint8_t *b = malloc(len + 1);
	struct pool_wseg *w;
	size_t i, off = 0;

	t_assert(b);
	for (i = 0; i < len; i++)
		b[i] = pat(i, seed);
	t_ok(pool_create(p, name, len, &w));
	/* Back to front, in uneven pieces: offsets are honoured. */
	while (off < len) {
		size_t n = len - off < 65537 ? len - off : 65537;

		t_ok(pool_write(w, len - off - n, b + len - off - n, n));
		off += n;
	}
	t_ok(pool_commit(w));
	free(b);
}

static void check_scattered(struct pool_seg *s, unsigned nr, unsigned seed)
{
	uint64_t size = pool_seg_size(s);
	struct pool_iov *iov = calloc(nr, sizeof(*iov));
	unsigned i;
	size_t j;

	t_assert(iov);
	for (i = 0; i < nr; i++) {
		size_t len = 1 + rnd() % 9000;

		if (len > size)
			len = size;
		iov[i].off = rnd() % (size - len + 1);
		iov[i].len = len;
		iov[i].buf = malloc(len);
		t_assert(iov[i].buf);
		memset(iov[i].buf, 0xee, len);
	}
	t_ok(pool_readv(s, iov, nr));
	for (i = 0; i < nr; i++) {
		uint8_t *b = iov[i].buf;

		for (j = 0; j < iov[i].len; j++)
			if (b[j] != pat(iov[i].off + j, seed)) {
				fprintf(stderr, "range %u off %llu byte %zu: %#x != %#x\n",
					i, (unsigned long long)iov[i].off, j,
					b[j], pat(iov[i].off + j, seed));
				exit(T_FAIL);
			}
		free(b);
	}
	free(iov);
}

static int dir_entries(const char *dir)
{
	char cmd[512];
	FILE *f;
	int n = 0, c;

	snprintf(cmd, sizeof(cmd), "ls -A %s", dir);
	f = popen(cmd, "r");
	t_assert(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	pclose(f);
	return n;
}

int main(void)
{
	char dir[] = "/tmp/tier-pool-file.XXXXXX";
	char path[512], want[256];
	struct tier_uri u = { .kind = URI_POOL_FILE };
	struct pool *a, *b;
	struct pool_wseg *w;
	struct pool_seg *s, *old;
	uint8_t buf[64];
	struct pool_iov iov = { .buf = buf, .len = sizeof(buf) };
	size_t size = 3 * 1024 * 1024 + 17;
	struct stat st;

	t_assert(mkdtemp(dir));
	snprintf(u.path, sizeof(u.path), "%s/pool", dir);	/* created on open */
	t_ok(pool_open(&u, &a));
	t_ok(pool_open(&u, &b));

	t_fails(pool_seg_open(b, "nosnap/tiered", &s), -ENOENT);
	snprintf(want, sizeof(want), "pool file:%s/pool: segment 'nosnap/tiered': no such segment",
		 dir);
	if (strcmp(tier_errmsg(), want)) {
		fprintf(stderr, "message '%s', want '%s'\n", tier_errmsg(), want);
		return T_FAIL;
	}
	t_fails(pool_seg_open(b, "../x", &s), -EINVAL);
	t_fails(pool_seg_open(b, "x", &s), -EINVAL);
	t_fails(pool_seg_open(b, "x/.hidden", &s), -EINVAL);
	t_fails(pool_create(a, "a/b c", 1, &w), -EINVAL);
	t_fails(pool_create(a, "a/..", 1, &w), -EINVAL);
	/* a snapshot the store accepts is a segment name too */
	t_ok(pool_create(a, "a..b/tiered.0123456789abcdef", 1, &w));
	pool_abort(w);

	/* Uncommitted: no .seg file, invisible; abort leaves nothing. */
	t_ok(pool_create(a, "snap1/tiered", size, &w));
	t_ok(pool_write(w, 0, "abc", 3));
	t_fails(pool_write(w, size, "abc", 3), -ERANGE);
	t_fails(pool_seg_open(b, "snap1/tiered", &s), -ENOENT);
	snprintf(path, sizeof(path), "%s/pool/snap1/tiered.seg", dir);
	t_assert(stat(path, &st) < 0 && errno == ENOENT);
	pool_abort(w);
	snprintf(path, sizeof(path), "%s/pool/snap1", dir);
	t_eq(dir_entries(path), 0);

	put_seg(a, "snap1/tiered", size, 1);
	snprintf(path, sizeof(path), "%s/pool/snap1/tiered.seg", dir);
	t_assert(stat(path, &st) == 0);
	t_eq(st.st_size, size);
	snprintf(path, sizeof(path), "%s/pool/snap1", dir);
	t_eq(dir_entries(path), 1);	/* no temporaries */

	t_ok(pool_seg_open(b, "snap1/tiered", &s));
	t_eq(pool_seg_size(s), size);
	check_scattered(s, 2000, 1);

	iov.off = size - 10;
	t_fails(pool_readv(s, &iov, 1), -ERANGE);
	snprintf(want, sizeof(want), "%zu", size - 10);
	t_assert(strstr(tier_errmsg(), want));
	t_assert(strstr(tier_errmsg(), "snap1/tiered"));
	iov.off = UINT64_MAX - 1;
	t_fails(pool_readv(s, &iov, 1), -ERANGE);
	iov.off = size - sizeof(buf);
	t_ok(pool_readv(s, &iov, 1));
	t_eq(buf[sizeof(buf) - 1], pat(size - 1, 1));

	/* A view: the segment's bytes in place, bounds checked. */
	{
		const uint8_t *v;
		size_t j;

		t_ok(pool_seg_view(s, 4096 + 17, 3 * 4096, (const void **)&v));
		for (j = 0; j < 3 * 4096; j++)
			t_eq(v[j], pat(4096 + 17 + j, 1));
		t_ok(pool_seg_view(s, size - 1, 1, (const void **)&v));
		t_eq(v[0], pat(size - 1, 1));
		t_fails(pool_seg_view(s, size - 10, 11, (const void **)&v),
			-ERANGE);
		t_assert(strstr(tier_errmsg(), "snap1/tiered"));
		t_fails(pool_seg_view(s, 0, 0, (const void **)&v), -ERANGE);
	}

	/* Replacement: an open reader keeps the old bytes. */
	put_seg(a, "snap2/tiered", 100000, 2);
	t_ok(pool_seg_open(b, "snap2/tiered", &old));
	put_seg(a, "snap2/tiered", 50000, 3);
	check_scattered(old, 200, 2);
	pool_seg_close(old);
	t_ok(pool_seg_open(b, "snap2/tiered", &old));
	t_eq(pool_seg_size(old), 50000);
	check_scattered(old, 200, 3);

	t_ok(pool_remove(a, "snap2/tiered"));
	t_fails(pool_seg_open(b, "snap2/tiered", &s), -ENOENT);
	t_fails(pool_remove(a, "snap2/tiered"), -ENOENT);
	check_scattered(old, 200, 3);
	pool_seg_close(old);
	snprintf(path, sizeof(path), "%s/pool/snap2", dir);
	t_assert(stat(path, &st) < 0);	/* the empty SNAP dir went with it */

	/* A segment file cut short under a reader: an error, not short data. */
	snprintf(path, sizeof(path), "%s/pool/snap1/tiered.seg", dir);
	t_assert(truncate(path, 4096) == 0);
	iov.off = 8192;
	t_fails(pool_readv(s, &iov, 1), -EIO);
	{
		const void *v;

		/* the view populates first: an error, never SIGBUS */
		t_fails(pool_seg_view(s, 8192, 4096, &v), -EIO);
		t_assert(strstr(tier_errmsg(), "no longer holds"));
	}
	pool_seg_close(s);

	pool_close(a);
	pool_close(b);
	snprintf(path, sizeof(path), "rm -r %s", dir);
	t_eq(system(path), 0);
	return T_PASS;
}
