/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: root -- the recorder: a known access pattern from another thread
 * (reads, writes-first, read-then-write, in a known order) becomes exactly
 * that trace, in first-touch order, and every byte seen while recording is
 * the image's.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "t.h"
#include "store/restore.h"
#include "store/snap.h"
#include "store/uffd.h"
#include "util/checksum.h"
#include "util/file.h"

#define PG	4096UL
#define NP	64UL

static char dir[] = "/tmp/tier-test-record.XXXXXX";
static uint8_t *image;
static struct tier_store store;
static struct tier_snap snap;

static int is_zero_page(uint64_t p)
{
	return p >= 40 && p < 48;
}

static void make_snap(void)
{
	uint64_t p, i;
	int fd;

	image = calloc(NP, PG);
	t_assert(image);
	t_assert((size_t)snprintf(store.path, sizeof(store.path), "%s/store",
				  dir) < sizeof(store.path));
	snap.store = &store;
	snprintf(snap.name, sizeof(snap.name), "rec");
	t_assert((size_t)snprintf(snap.dir, sizeof(snap.dir), "%s/snapshots/rec",
				  store.path) < sizeof(snap.dir));
	t_assert((size_t)snprintf(snap.image, sizeof(snap.image), "%s/image",
				  snap.dir) < sizeof(snap.image));
	t_ok(mkdir_p(snap.dir, 0755));
	snap.size = NP * PG;
	snap.npages = NP;
	snap.zero = calloc((NP + 63) / 64, sizeof(uint64_t));
	snap.csum = calloc(NP, sizeof(uint64_t));
	t_assert(snap.zero && snap.csum);
	for (p = 0; p < NP; p++) {
		uint8_t *b = image + p * PG;

		if (is_zero_page(p)) {
			snap.zero[p / 64] |= 1ULL << (p % 64);
			snap.nzero++;
		} else {
			for (i = 0; i < PG; i++)
				b[i] = (uint8_t)(p * 37 + i * 3 + 1);
		}
		snap.csum[p] = tier_csum(b, PG);
	}
	snap.image_fd = -1;
	fd = open(snap.image, O_RDWR | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_ok(pwrite_full(fd, image, NP * PG, 0, snap.image));
	close(fd);
}

struct step {
	uint64_t page;		/* relative to the recorded range */
	char op;		/* 'r' read and compare, 'w' write a byte */
};

struct run {
	uint8_t *mem;
	uint64_t first;		/* image page of mem[0] */
	const struct step *steps;
	size_t n;
	int bad;
};

static int page_ok(const uint8_t *m, uint64_t page, uint64_t skip_byte)
{
	const uint8_t *want = image + page * PG;

	if (skip_byte == 0)
		return !memcmp(m + 1, want + 1, PG - 1);
	return !memcmp(m, want, PG);
}

static void *access_thread(void *arg)
{
	struct run *r = arg;
	size_t i;

	for (i = 0; i < r->n; i++) {
		uint8_t *m = r->mem + r->steps[i].page * PG;
		uint64_t p = r->first + r->steps[i].page;

		if (r->steps[i].op == 'r') {
			/* bytes we wrote ourselves (byte 0) are skipped */
			if (!page_ok(m, p, m[0] == 0xfe ? 0 : PG))
				r->bad++;
		} else {
			*(volatile uint8_t *)m = 0xfe;
			/* the rest of a written-first page is still the image */
			if (!page_ok(m, p, 0))
				r->bad++;
		}
	}
	return NULL;
}

static void expect(const struct tier_trace_ent *ent, size_t n,
		   const uint64_t *pages, const enum tier_access *kinds,
		   size_t want)
{
	size_t i;

	for (i = 0; i < n && i < want; i++)
		if (ent[i].page != pages[i] || ent[i].kind != kinds[i])
			fprintf(stderr, "entry %zu: page %llu kind %d, want %llu %d\n",
				i, (unsigned long long)ent[i].page, ent[i].kind,
				(unsigned long long)pages[i], kinds[i]);
	t_eq(n, want);
	for (i = 0; i < n; i++) {
		t_eq(ent[i].page, pages[i]);
		t_eq(ent[i].kind, kinds[i]);
		if (i)
			t_assert(ent[i].t_ns >= ent[i - 1].t_ns);
	}
}

static void record_whole(void)
{
	static const struct step steps[] = {
		{ 3, 'r' },		/* R ... later W: RW */
		{ 10, 'w' },		/* written first: W */
		{ 5, 'r' }, { 5, 'w' },	/* RW */
		{ 40, 'r' },		/* a zero page, read: R */
		{ 41, 'w' },		/* a zero page, written first: W */
		{ 7, 'r' }, { 7, 'r' },	/* R once */
		{ 20, 'r' },
		{ 11, 'r' },		/* R */
		{ 20, 'w' },		/* RW, at its first position */
		{ 3, 'w' },
		{ 10, 'r' }, { 41, 'r' },	/* no change */
	};
	/* then the recording thread itself reads page 60 */
	static const uint64_t pages[] = { 3, 10, 5, 40, 41, 7, 20, 11, 60 };
	static const enum tier_access kinds[] = {
		TIER_ACCESS_RW, TIER_ACCESS_W, TIER_ACCESS_RW, TIER_ACCESS_R,
		TIER_ACCESS_W, TIER_ACCESS_R, TIER_ACCESS_RW, TIER_ACCESS_R,
		TIER_ACCESS_R,
	};
	struct tier_restore_attr attr = { .flags = TIER_RESTORE_RECORD,
					  .prefetch = 16 };
	struct tier_trace_ent *ent, *loaded;
	struct tier_restore_stats st;
	struct tier_restore *rs;
	uint8_t *mem;
	struct run r;
	pthread_t th;
	size_t n, nl;
	int rc;

	mem = mmap(NULL, NP * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t_assert(mem != MAP_FAILED);
	memset(mem, 0xaa, NP * PG);

	rc = tier_restore_start(&snap, mem, NP * PG, &attr, &rs);
	if (rc == -EOPNOTSUPP)
		t_skip("no userfaultfd write-protect: %s", tier_errmsg());
	t_ok(rc);
	tier_restore_stats(rs, &st);
	t_eq(st.mappings, 1);
	t_eq(st.pages[TIER_CLASS_ZERO], 8);
	t_eq(st.pages[TIER_CLASS_COLD], NP - 8);

	r = (struct run){ .mem = mem, .steps = steps,
			  .n = sizeof(steps) / sizeof(steps[0]) };
	t_assert(pthread_create(&th, NULL, access_thread, &r) == 0);
	t_assert(pthread_join(th, NULL) == 0);
	t_eq(r.bad, 0);
	/* the restoring thread touches a page itself: served and logged */
	t_assert(memcmp(mem + 60 * PG, image + 60 * PG, PG) == 0);

	t_ok(restore_trace(rs, &ent, &n));
	expect(ent, n, pages, kinds, sizeof(pages) / sizeof(pages[0]));
	free(ent);

	tier_restore_stats(rs, &st);
	t_eq(st.faults[TIER_CLASS_COLD], 7);	/* 3 10 5 7 20 11 60 */
	t_eq(st.faults[TIER_CLASS_ZERO], 2);	/* 40 41 */
	t_eq(st.wp_faults, 3);			/* 5 20 3 */
	t_eq(st.lazy_pages, 9);			/* no prefetch window */
	t_eq(st.local_bytes, 7 * PG);
	t_eq(st.error, 0);

	t_ok(tier_restore_save_trace(rs, "run1"));
	/* after saving: still served, no longer logged */
	t_assert(memcmp(mem + 61 * PG, image + 61 * PG, PG) == 0);
	t_ok(restore_trace(rs, &ent, &n));
	t_eq(n, sizeof(pages) / sizeof(pages[0]));
	free(ent);
	tier_restore_stop(rs);
	t_assert(munmap(mem, NP * PG) == 0);

	/* the stored trace decodes to the same list */
	t_ok(tier_trace_load(&snap, "run1", &loaded, &nl));
	expect(loaded, nl, pages, kinds, sizeof(pages) / sizeof(pages[0]));
	free(loaded);
}

/* A range that starts inside the image: entries carry image pages. */
static void record_window(void)
{
	static const struct step steps[] = {
		{ 0, 'w' }, { 2, 'r' }, { 9, 'r' }, { 2, 'w' },
	};
	static const uint64_t pages[] = { 38, 40, 47 };
	static const enum tier_access kinds[] = {
		TIER_ACCESS_W, TIER_ACCESS_RW, TIER_ACCESS_R,
	};
	struct tier_restore_attr attr = { .flags = TIER_RESTORE_RECORD,
					  .offset = 38 * PG };
	struct tier_trace_ent *ent;
	struct tier_restore *rs;
	uint8_t *mem;
	struct run r;
	pthread_t th;
	size_t n;

	mem = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t_assert(mem != MAP_FAILED);
	t_ok(tier_restore_start(&snap, mem, 16 * PG, &attr, &rs));
	r = (struct run){ .mem = mem, .first = 38, .steps = steps,
			  .n = sizeof(steps) / sizeof(steps[0]) };
	t_assert(pthread_create(&th, NULL, access_thread, &r) == 0);
	t_assert(pthread_join(th, NULL) == 0);
	t_eq(r.bad, 0);
	t_ok(restore_trace(rs, &ent, &n));
	expect(ent, n, pages, kinds, sizeof(pages) / sizeof(pages[0]));
	free(ent);
	tier_restore_stop(rs);
	t_assert(munmap(mem, 16 * PG) == 0);

	/* past the end of the image */
	mem = mmap(NULL, 32 * PG, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t_assert(mem != MAP_FAILED);
	t_fails(tier_restore_start(&snap, mem, 32 * PG, &attr, &rs), -EINVAL);
	t_assert(munmap(mem, 32 * PG) == 0);
}

int main(void)
{
	int fd, rc;

	rc = uffd_open(UFFD_F_WP, &fd);
	if (rc == -EPERM || rc == -EACCES)
		t_skip("userfaultfd not permitted: run as root or set "
		       "vm.unprivileged_userfaultfd=1");
	if (rc == -ENOSYS || rc == -EOPNOTSUPP)
		t_skip("no userfaultfd write-protect: %s", tier_errmsg());
	t_ok(rc);
	close(fd);

	t_assert(mkdtemp(dir));
	make_snap();
	record_whole();
	record_window();

	{
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		t_assert(system(cmd) == 0);
	}
	return T_PASS;
}
