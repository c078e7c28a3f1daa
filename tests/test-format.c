/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- the store's on-disk formats (manifest, trace, plan) and
 * import: round trips, every single-bit flip and every truncation caught,
 * versions refused, and an imported image checked byte for byte.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t.h"
#include "store/internal.h"
#include "store/snap.h"
#include "util/checksum.h"
#include "util/file.h"

#define PAGE	4096

typedef int (*decode_fn)(const void *buf, size_t len);

/* Recomputes the checksum at @off the way format.h defines it, with
 * tier_csum (checked against xxhsum by test-checksum). */
static void reseal(unsigned char *buf, size_t len, size_t off)
{
	uint64_t h;

	memset(buf + off, 0, 8);
	h = htole64(tier_csum(buf, len));
	memcpy(buf + off, &h, 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

/*
 * The common torture: a good file decodes; each single-bit flip, each
 * truncation, and a trailing byte are -EBADMSG; version @newer (one past
 * the newest this build reads) with a correct checksum is -EPROTO.
 */
static void torture(const unsigned char *good, size_t len, size_t csum_off,
		    decode_fn decode, uint32_t newer)
{
	unsigned char *b = malloc(len + 1);
	size_t i;
	int bit;

	t_assert(b);
	memcpy(b, good, len);
	t_ok(decode(b, len));
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit++) {
			b[i] ^= 1 << bit;
			if (decode(b, len) != -EBADMSG) {
				fprintf(stderr, "flip of byte %zu bit %d: %d (%s)\n",
					i, bit, decode(b, len), tier_errmsg());
				exit(T_FAIL);
			}
			b[i] ^= 1 << bit;
		}
	}
	for (i = 0; i < len; i++) {
		/* Fresh copy per length so a decoder can't read past it
		 * unnoticed under ASan/valgrind. */
		unsigned char *t = malloc(i ? i : 1);

		t_assert(t);
		memcpy(t, good, i);
		if (decode(t, i) != -EBADMSG) {
			fprintf(stderr, "truncated at %zu: %d\n", i, decode(t, i));
			exit(T_FAIL);
		}
		free(t);
	}
	b[len] = 0;
	t_fails(decode(b, len + 1), -EBADMSG);

	put32(b + 8, newer);	/* version: same offset in every header */
	reseal(b, len, csum_off);
	t_fails(decode(b, len), -EPROTO);
	put32(b + 8, 0);
	reseal(b, len, csum_off);
	t_fails(decode(b, len), -EPROTO);
	free(b);
}

/* ---------------------------------------------------------- manifest */

#define M_PAGES	70	/* a partial last bitmap word */

static struct tier_region m_regions[] = { { 0, 16 * PAGE }, { 32 * PAGE, 38 * PAGE } };

static void make_snap(struct tier_snap *s, uint64_t *zero, uint64_t *csum)
{
	static const uint64_t zpage[PAGE / 8];
	uint64_t i;

	memset(s, 0, sizeof(*s));
	strcpy(s->name, "vm-1.a_b");
	s->npages = M_PAGES;
	s->size = M_PAGES * PAGE;
	s->nregions = 2;
	s->regions = m_regions;
	s->zero = zero;
	s->csum = csum;
	zero[0] = zero[1] = 0;
	for (i = 0; i < M_PAGES; i++) {
		if (i % 3 == 0) {
			zero[i / 64] |= 1ULL << (i % 64);
			csum[i] = tier_csum(zpage, PAGE);
			s->nzero++;
		} else {
			csum[i] = 0x1234567890abcdefULL * (i + 1);
		}
	}
}

static int m_decode(const void *buf, size_t len)
{
	struct tier_snap s = { 0 };
	int rc = manifest_decode(buf, len, "test", &s);

	free(s.regions);
	free(s.zero);
	free(s.csum);
	return rc;
}

static void test_manifest(void)
{
	uint64_t zero[2], csum[M_PAGES];
	struct tier_snap s, d = { 0 };
	unsigned char *buf, *b;
	size_t len, i;
	void *enc;

	make_snap(&s, zero, csum);
	t_ok(manifest_encode(&s, &enc, &len));
	buf = enc;
	t_eq(len, 152 + 2 * 16 + 2 * 8 + M_PAGES * 8);
	t_assert(!memcmp(buf, "TIERSNAP", 8));
	/* Little-endian on disk, whatever the host: spot-check fields. */
	t_eq(buf[8], 1);
	t_eq(buf[12], 12);
	t_eq(buf[16] | buf[17] << 8 | buf[18] << 16, M_PAGES * PAGE);
	t_eq(buf[24], M_PAGES);
	t_eq(buf[40], 2);
	t_assert(!strcmp((char *)buf + 56, "vm-1.a_b"));

	t_ok(manifest_decode(buf, len, "test", &d));
	t_assert(!strcmp(d.name, s.name));
	t_eq(d.size, s.size);
	t_eq(d.npages, s.npages);
	t_eq(d.nzero, s.nzero);
	t_eq(d.nzero, 24);
	t_eq(d.nregions, 2);
	t_assert(!memcmp(d.regions, m_regions, sizeof(m_regions)));
	t_assert(!memcmp(d.zero, zero, sizeof(zero)));
	t_assert(!memcmp(d.csum, csum, sizeof(csum)));
	for (i = 0; i < M_PAGES; i++)
		t_eq(snap_page_zero(&d, i), i % 3 == 0);
	free(d.regions);
	free(d.zero);
	free(d.csum);

	torture(buf, len, 144, m_decode, 2);

	/* Semantic checks behind a valid checksum. */
	b = malloc(len);
	t_assert(b);
#define RESEALED(mutate, err) do {					\
		memcpy(b, buf, len);					\
		mutate;							\
		reseal(b, len, 144);					\
		t_fails(m_decode(b, len), err);				\
	} while (0)
	RESEALED(put32(b + 12, 13), -EBADMSG);		/* page_shift */
	RESEALED(put32(b + 44, 1), -EBADMSG);		/* flags */
	RESEALED(put64(b + 32, 23), -EBADMSG);		/* nzero */
	RESEALED(put64(b + 16, M_PAGES * PAGE + 1), -EBADMSG);	/* size */
	RESEALED(put64(b + 152, 1), -EBADMSG);		/* region unaligned */
	RESEALED(put64(b + 152 + 16, 8 * PAGE), -EBADMSG);	/* overlap */
	RESEALED(put64(b + 152 + 24, 39 * PAGE), -EBADMSG);	/* past end */
	RESEALED(b[184 + 8 + 1] = 0x80, -EBADMSG);	/* bit past npages */
	RESEALED(b[56] = '.', -EBADMSG);		/* bad name */
	RESEALED(b[70] = 'x', -EBADMSG);		/* junk after name */
	RESEALED(put64(b + 200, 1), -EBADMSG);		/* zero page csum */
	RESEALED(memcpy(b, "TIERSNAQ", 8), -EBADMSG);
	t_assert(strstr(tier_errmsg(), "not a tier manifest"));
	/* A flipped count must not make it read out of bounds. */
	RESEALED(put64(b + 24, UINT64_MAX / 8), -EBADMSG);
	RESEALED(put32(b + 40, UINT32_MAX), -EBADMSG);
#undef RESEALED
	free(b);
	free(buf);
}

/* -------------------------------------------------------------- plan */

static int p_decode(const void *buf, size_t len)
{
	struct plan p = { 0 };
	int rc = plan_decode(buf, len, "test", &p);

	plan_free(&p);
	return rc;
}

static void test_plan(void)
{
	struct placer_ext ext[] = {
		{ 0, 3, TIER_CLASS_ZERO, PLACER_SRC_NONE, PLACER_M_ANON, 0, 0 },
		{ 3, 5, TIER_CLASS_RO, PLACER_SRC_CXL, PLACER_M_MAP,
		  PLACER_F_POPULATE, 0 },
		{ 8, 1, TIER_CLASS_RW, PLACER_SRC_POOL, PLACER_M_COPY, 0, 4096 },
		{ 9, 91, TIER_CLASS_COLD, PLACER_SRC_POOL, PLACER_M_LAZY, 0, 8192 },
	};
	struct plan p = { 0 }, d = { 0 };
	unsigned char *buf, *b;
	size_t len;
	void *enc;

	p.hdr.policy = TIER_POLICY_AQUIFER;
	p.hdr.npages = 100;
	strcpy(p.hdr.cxl, "cxl=dir:/dev/shm/tier");
	strcpy(p.hdr.pool, "pool=tcp://10.0.0.1:7000");
	p.hdr.gap = 4;
	p.hdr.ntraces = 3;
	p.hdr.confidence = 0.75;
	p.hdr.cxl_capacity = 1ULL << 30;
	p.hdr.generation = 0x0123456789abcdefULL;
	p.ext = ext;
	p.n = 4;
	t_ok(plan_encode(&p, &enc, &len));
	buf = enc;
	t_eq(len, 616 + 4 * 32);
	t_assert(!memcmp(buf, "TIERPLAN", 8));
	t_eq(buf[8], FMT_PLAN_VERSION);
	t_eq(buf[576], 0xef);				/* generation */
	t_eq(buf[12], TIER_POLICY_AQUIFER);
	t_eq(buf[616 + 32 + 16], TIER_CLASS_RO);	/* ext[1].cls */
	t_eq(buf[616 + 64 + 24 + 1], 0x10);		/* ext[2].src_off */

	t_ok(plan_decode(buf, len, "test", &d));
	t_eq(d.n, 4);
	t_eq(d.hdr.policy, TIER_POLICY_AQUIFER);
	t_eq(d.hdr.npages, 100);
	t_eq(d.hdr.nextents, 4);
	t_assert(!strcmp(d.hdr.cxl, p.hdr.cxl));
	t_assert(!strcmp(d.hdr.pool, p.hdr.pool));
	t_eq(d.hdr.gap, 4);
	t_eq(d.hdr.ntraces, 3);
	t_assert(d.hdr.confidence == 0.75);
	t_eq(d.hdr.cxl_capacity, 1ULL << 30);
	t_eq(d.hdr.generation, 0x0123456789abcdefULL);
	for (len = 0; len < 4; len++) {
		t_eq(d.ext[len].page, ext[len].page);
		t_eq(d.ext[len].npages, ext[len].npages);
		t_eq(d.ext[len].cls, ext[len].cls);
		t_eq(d.ext[len].source, ext[len].source);
		t_eq(d.ext[len].method, ext[len].method);
		t_eq(d.ext[len].flags, ext[len].flags);
		t_eq(d.ext[len].src_off, ext[len].src_off);
	}
	len = 616 + 4 * 32;
	plan_free(&d);

	torture(buf, len, 608, p_decode, FMT_PLAN_VERSION + 1);

	/* The encoder refuses what the decoder would. */
	ext[1].npages = 4;				/* gap at page 7 */
	t_fails(plan_encode(&p, &enc, &len), -EINVAL);
	ext[1].npages = 6;				/* overlap */
	t_fails(plan_encode(&p, &enc, &len), -EINVAL);
	ext[1].npages = 5;
	ext[3].npages = 90;				/* short of npages */
	t_fails(plan_encode(&p, &enc, &len), -EINVAL);
	ext[3].npages = 91;
	ext[2].method = PLACER_M_LAZY + 1;
	t_fails(plan_encode(&p, &enc, &len), -EINVAL);
	ext[2].method = PLACER_M_COPY;

	b = malloc(len);
	t_assert(b);
#define RESEALED(mutate, err) do {					\
		memcpy(b, buf, len);					\
		mutate;							\
		reseal(b, len, 608);					\
		t_fails(p_decode(b, len), err);				\
	} while (0)
	/* A v1 plan (no generation: the objects' old names) still reads;
	 * its reserved word is not taken for one. */
	memcpy(b, buf, len);
	put32(b + 8, 1);
	reseal(b, len, 608);
	t_ok(plan_decode(b, len, "test", &d));
	t_eq(d.hdr.version, 1);
	t_eq(d.hdr.generation, 0);
	plan_free(&d);
	RESEALED(put64(b + 616 + 32 + 8, 6), -EBADMSG);		/* overlap */
	RESEALED(put64(b + 616 + 96 + 8, 92), -EBADMSG);	/* past end */
	RESEALED(put64(b + 616 + 0, 1), -EBADMSG);		/* not from 0 */
	RESEALED(b[616 + 32 + 16] = TIER_CLASS_MAX, -EBADMSG);
	RESEALED(b[616 + 32 + 17] = PLACER_SRC_POOL + 1, -EBADMSG);
	RESEALED(b[616 + 32 + 19] = 0x80, -EBADMSG);		/* flags */
	RESEALED(put32(b + 12, TIER_POLICY_MAX), -EBADMSG);
	RESEALED(memset(b + 40, 'x', 256), -EBADMSG);		/* cxl no NUL */
	RESEALED(put64(b + 24, UINT64_MAX / 32), -EBADMSG);	/* nextents */
#undef RESEALED
	free(b);
	free(buf);
}

/* ------------------------------------------------------------- trace */

static int tr_decode(const void *buf, size_t len)
{
	struct tier_trace_ent *e = NULL;
	size_t n;
	int rc = trace_decode(buf, len, "test", 50, &e, &n);

	if (!rc)
		free(e);
	return rc;
}

static void test_trace_bin(void)
{
	struct tier_trace_ent ent[] = {
		{ 7, 100, TIER_ACCESS_R },
		{ 0, 250, TIER_ACCESS_W },
		{ 49, 1000000, TIER_ACCESS_RW },
	}, *d;
	unsigned char *buf, *b;
	size_t len, n;
	void *enc;

	t_ok(trace_encode(ent, 3, 50, FMT_TRACE_SRC_RECORD, &enc, &len));
	buf = enc;
	t_eq(len, 72 + 3 * 24);
	t_assert(!memcmp(buf, "TIERTRCE", 8));
	t_eq(buf[72], 7);
	t_eq(buf[72 + 16], TIER_ACCESS_R);
	t_ok(trace_decode(buf, len, "test", 50, &d, &n));
	t_eq(n, 3);
	for (n = 0; n < 3; n++) {
		t_eq(d[n].page, ent[n].page);
		t_eq(d[n].t_ns, ent[n].t_ns);
		t_eq(d[n].kind, ent[n].kind);
	}
	free(d);
	/* Taken on another snapshot's size. */
	t_fails(trace_decode(buf, len, "test", 51, &d, &n), -EBADMSG);

	torture(buf, len, 64, tr_decode, 2);

	ent[1].page = 50;
	t_fails(trace_encode(ent, 3, 50, 1, &enc, &len), -EINVAL);
	ent[1].page = 7;				/* repeated */
	t_fails(trace_encode(ent, 3, 50, 1, &enc, &len), -EINVAL);
	ent[1].page = 0;
	ent[1].kind = 4;
	t_fails(trace_encode(ent, 3, 50, 1, &enc, &len), -EINVAL);

	b = malloc(len);
	t_assert(b);
#define RESEALED(mutate, err) do {					\
		memcpy(b, buf, len);					\
		mutate;							\
		reseal(b, len, 64);					\
		t_fails(tr_decode(b, len), err);			\
	} while (0)
	RESEALED(put64(b + 72 + 24, 50), -EBADMSG);		/* page */
	RESEALED(put32(b + 72 + 24 + 16, 0), -EBADMSG);		/* kind */
	RESEALED(put32(b + 72 + 24 + 16, 4), -EBADMSG);
	RESEALED(put64(b + 72 + 24, 7), -EBADMSG);		/* repeat */
	RESEALED(put32(b + 40, 9), -EBADMSG);			/* source */
	RESEALED(put64(b + 24, UINT64_MAX / 24 + 1), -EBADMSG);	/* count */
#undef RESEALED
	free(b);
	free(buf);
}

/* ------------------------------------------------------------ import */

static char root[256];

static void fill_page(unsigned char *p, uint64_t i)
{
	uint64_t j;

	for (j = 0; j < PAGE; j++)
		p[j] = (unsigned char)(i * 7 + j * 13 + 1);
	p[i % PAGE] = 0xa5;	/* never all zero */
}

/* A 1 MiB image: pages 10..19, 100, 150..159 and 255 non-zero. */
#define I_PAGES	256
static int i_nonzero(uint64_t i)
{
	return (i >= 10 && i < 20) || i == 100 || (i >= 150 && i < 160) ||
	       i == 255;
}

static void write_image(const char *path, uint64_t npages, int seed)
{
	unsigned char *img = calloc(npages, PAGE);
	uint64_t i;

	t_assert(img);
	for (i = 0; i < npages; i++)
		if (i_nonzero(i))
			fill_page(img + i * PAGE, i + seed);
	t_ok(write_file_atomic(path, img, npages * PAGE));
	free(img);
}

/* The same image as write_image(.., 0), but with holes for zero pages,
 * which import must not need to read. */
static void write_sparse_image(const char *path)
{
	unsigned char page[PAGE];
	uint64_t i;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_assert(ftruncate(fd, I_PAGES * PAGE) == 0);
	for (i = 0; i < I_PAGES; i++) {
		if (!i_nonzero(i))
			continue;
		fill_page(page, i);
		t_assert(pwrite(fd, page, PAGE, i * PAGE) == PAGE);
	}
	close(fd);
}

static uint64_t last_done, last_total;
static unsigned ncalls;

static void progress(uint64_t done, uint64_t total, void *arg)
{
	t_assert(arg == &ncalls);
	t_assert(done <= total);
	t_assert(done >= last_done);
	last_done = done;
	last_total = total;
	ncalls++;
}

static int collect(const char *name, void *arg)
{
	char *out = arg;

	strcat(out, name);
	strcat(out, ",");
	return 0;
}

static void check_snap(struct tier_store *st, const char *name,
		       const char *image_path)
{
	char path[512];
	struct tier_snap *s;
	unsigned char *img, *copy;
	size_t ilen, clen;
	struct stat sb;
	uint64_t i;

	t_ok(tier_snap_open(st, name, &s));
	t_assert(!strcmp(tier_snap_name(s), name));
	t_eq(tier_snap_size(s), I_PAGES * PAGE);
	t_eq(tier_snap_npages(s), I_PAGES);
	t_eq(tier_snap_nzero(s), I_PAGES - 22);
	t_ok(read_file(image_path, (void **)&img, &ilen));
	snprintf(path, sizeof(path), "%s/snapshots/%s/image", root, name);
	t_ok(read_file(path, (void **)&copy, &clen));
	t_eq(ilen, clen);
	t_assert(!memcmp(img, copy, ilen));
	for (i = 0; i < I_PAGES; i++) {
		t_eq(snap_page_zero(s, i), !i_nonzero(i));
		t_assert(s->csum[i] == tier_csum(img + i * PAGE, PAGE));
		t_ok(tier_snap_verify_page(s, i, img + i * PAGE));
	}
	/* Sparse: 22 pages of data, not 256. */
	t_ok(stat(path, &sb) == 0 ? 0 : -errno);
	if ((uint64_t)sb.st_blocks * 512 >= I_PAGES * PAGE) {
		fprintf(stderr, "store image not sparse: %llu blocks\n",
			(unsigned long long)sb.st_blocks);
		exit(T_FAIL);
	}
	free(img);
	free(copy);
	tier_snap_close(s);
}

/* Nothing but finished snapshots in STORE/snapshots. */
static void check_no_temp(void)
{
	char path[512];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/snapshots", root);
	d = opendir(path);
	t_assert(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_name[0] == '.') {
			fprintf(stderr, "left behind: %s\n", de->d_name);
			exit(T_FAIL);
		}
	}
	closedir(d);
}

static void flip_byte(const char *path, uint64_t off)
{
	unsigned char c;
	int fd = open(path, O_RDWR);

	t_assert(fd >= 0);
	t_assert(pread(fd, &c, 1, off) == 1);
	c ^= 0x10;
	t_assert(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

static void test_import(void)
{
	struct tier_import_attr attr = { .progress = progress, .arg = &ncalls };
	struct timespec ts0, ts1;
	char img[300], img2[300], odd[300], path[512], names[256] = "";
	unsigned char page[PAGE];
	struct tier_store *st;
	struct tier_snap *s;
	struct plan plan;
	int fd;

	snprintf(root, sizeof(root), "%s/tier-test-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	t_assert(mkdtemp(root));
	snprintf(img, sizeof(img), "%s/vm.mem", root);
	snprintf(img2, sizeof(img2), "%s/vm2.mem", root);
	snprintf(odd, sizeof(odd), "%s/odd.mem", root);
	write_image(img, I_PAGES, 0);
	write_image(img2, I_PAGES, 1);

	snprintf(path, sizeof(path), "%s/store", root);
	t_ok(tier_store_open(path, &st));
	t_assert(!strcmp(tier_store_path(st), path));
	strcpy(root, path);

	clock_gettime(CLOCK_REALTIME, &ts0);
	t_ok(tier_import(st, "vm", img, &attr));
	clock_gettime(CLOCK_REALTIME, &ts1);
	t_assert(ncalls >= 1);
	t_eq(last_done, I_PAGES * PAGE);
	t_eq(last_total, I_PAGES * PAGE);
	check_snap(st, "vm", img);
	check_no_temp();

	/* Default region: the whole image. Explicit ones are kept in order. */
	t_ok(tier_snap_open(st, "vm", &s));
	/* the import's time, kept in the manifest */
	t_assert(tier_snap_created(s) >= (uint64_t)ts0.tv_sec * 1000000000ULL +
					 (uint64_t)ts0.tv_nsec);
	t_assert(tier_snap_created(s) <= (uint64_t)ts1.tv_sec * 1000000000ULL +
					 (uint64_t)ts1.tv_nsec);
	t_eq(tier_snap_nregions(s), 1);
	t_eq(tier_snap_region(s, 0)->offset, 0);
	t_eq(tier_snap_region(s, 0)->length, I_PAGES * PAGE);
	t_assert(tier_snap_region(s, 1) == NULL);

	/* verify_page: right, wrong, out of range. */
	fill_page(page, 10);
	t_ok(tier_snap_verify_page(s, 10, page));
	page[100] ^= 1;
	t_fails(tier_snap_verify_page(s, 10, page), -EBADMSG);
	t_assert(strstr(tier_errmsg(),
			"snapshot vm: page 10 (offset 0xa000): checksum mismatch"));
	memset(page, 0, PAGE);
	t_ok(tier_snap_verify_page(s, 0, page));
	t_fails(tier_snap_verify_page(s, 10, page), -EBADMSG);
	t_fails(tier_snap_verify_page(s, I_PAGES, page), -ERANGE);

	/* No plan yet: the message says what to run. */
	t_fails(plan_load(s, TIER_POLICY_TIERED, &plan), -ENOENT);
	t_assert(strstr(tier_errmsg(), "tierctl place vm --policy tiered"));
	tier_snap_close(s);

	{
		struct tier_region r[] = {
			{ 128 * PAGE, 128 * PAGE }, { 0, 64 * PAGE },
		};
		struct tier_import_attr ra = { .regions = r, .nregions = 2 };

		t_ok(tier_import(st, "regions", img, &ra));
		t_ok(tier_snap_open(st, "regions", &s));
		t_eq(tier_snap_nregions(s), 2);
		t_eq(tier_snap_region(s, 0)->offset, 128 * PAGE);
		t_eq(tier_snap_region(s, 1)->length, 64 * PAGE);
		tier_snap_close(s);

		r[1].length = 129 * PAGE;		/* overlap */
		t_fails(tier_import(st, "bad", img, &ra), -EINVAL);
		r[1].length = 64 * PAGE + 1;		/* unaligned */
		t_fails(tier_import(st, "bad", img, &ra), -EINVAL);
		r[1].length = 64 * PAGE;
		r[0].length = 129 * PAGE;		/* past end */
		t_fails(tier_import(st, "bad", img, &ra), -EINVAL);
		r[0].length = 0;			/* empty */
		t_fails(tier_import(st, "bad", img, &ra), -EINVAL);
	}

	/* Bad images: clean errors naming them, nothing left behind. */
	fd = open(odd, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_assert(write(fd, page, 100) == 100);
	close(fd);
	t_fails(tier_import(st, "odd", odd, NULL), -EINVAL);
	t_assert(strstr(tier_errmsg(), odd));
	t_assert(truncate(odd, PAGE + 1) == 0);
	t_fails(tier_import(st, "odd", odd, NULL), -EINVAL);
	t_assert(truncate(odd, 0) == 0);
	t_fails(tier_import(st, "odd", odd, NULL), -EINVAL);
	snprintf(path, sizeof(path), "%s/missing.mem", root);
	t_fails(tier_import(st, "odd", path, NULL), -ENOENT);
	t_assert(strstr(tier_errmsg(), "missing.mem"));
	t_fails(tier_import(st, "../evil", img, NULL), -EINVAL);
	t_fails(tier_import(st, ".hidden", img, NULL), -EINVAL);
	t_fails(tier_import(st, "", img, NULL), -EINVAL);
	t_fails(tier_snap_open(st, "odd", &s), -ENOENT);
	check_no_temp();

	/* An existing name: -EEXIST, the original untouched; REPLACE swaps. */
	t_fails(tier_import(st, "vm", img2, NULL), -EEXIST);
	check_snap(st, "vm", img);
	attr.flags = TIER_IMPORT_REPLACE;
	t_ok(tier_import(st, "vm", img2, &attr));
	check_snap(st, "vm", img2);
	check_no_temp();

	/* A sparse source: same snapshot as the dense one. */
	snprintf(path, sizeof(path), "%s/../sparse.mem", root);
	write_sparse_image(path);
	t_ok(tier_import(st, "sparse", path, NULL));
	check_snap(st, "sparse", img);

	/* Listing is sorted and shows only snapshots. */
	t_ok(tier_import(st, "a-first", img, NULL));
	t_ok(tier_store_foreach(st, collect, names));
	t_assert(!strcmp(names, "a-first,regions,sparse,vm,"));

	/* A flipped manifest byte is caught, naming the snapshot. */
	t_ok(tier_import(st, "flip", img, NULL));
	snprintf(path, sizeof(path), "%s/snapshots/flip/manifest", root);
	flip_byte(path, 300);
	t_fails(tier_snap_open(st, "flip", &s), -EBADMSG);
	t_assert(strstr(tier_errmsg(), "snapshot flip"));
	flip_byte(path, 300);
	t_ok(tier_snap_open(st, "flip", &s));
	tier_snap_close(s);

	/* A truncated image in the store too. */
	snprintf(path, sizeof(path), "%s/snapshots/flip/image", root);
	t_assert(truncate(path, (I_PAGES - 1) * PAGE) == 0);
	t_fails(tier_snap_open(st, "flip", &s), -EBADMSG);
	t_assert(strstr(tier_errmsg(),
			"snapshot flip: image truncated (1044480 of 1048576 bytes)"));

	/* Remove: gone from the listing and from disk. */
	t_ok(tier_snap_remove(st, "flip"));
	t_fails(tier_snap_open(st, "flip", &s), -ENOENT);
	t_fails(tier_snap_remove(st, "flip"), -ENOENT);
	names[0] = '\0';
	t_ok(tier_store_foreach(st, collect, names));
	t_assert(!strcmp(names, "a-first,regions,sparse,vm,"));
	check_no_temp();

	/* From an open fd and from memory: the snapshot a file gives. */
	fd = open(img, O_RDONLY);
	t_assert(fd >= 0);
	t_ok(tier_import_fd(st, "by-fd", fd, NULL));
	check_snap(st, "by-fd", img);
	{
		void *buf;

		t_assert(posix_memalign(&buf, PAGE, I_PAGES * PAGE) == 0);
		t_assert(pread(fd, buf, I_PAGES * PAGE, 0) == I_PAGES * PAGE);
		t_ok(tier_import_mem(st, "by-mem", buf, I_PAGES * PAGE, NULL));
		check_snap(st, "by-mem", img);
		t_fails(tier_import_mem(st, "odd-mem", buf, PAGE + 1, NULL), -EINVAL);
		t_assert(strstr(tier_errmsg(), "is not a positive multiple of the page size"));
		free(buf);
	}
	close(fd);
	t_fails(tier_import_fd(st, "bad-fd", -1, NULL), -EBADF);
	t_fails(tier_import_mem(st, "no-mem", NULL, PAGE, NULL), -EINVAL);
	check_no_temp();

	tier_store_close(st);
	*strrchr(root, '/') = '\0';
	t_ok(store_rmtree(root));
}

/* A store path from TIER_STORE when none is given. */
static void test_store_env(void)
{
	char dir[256], sub[300];
	struct tier_store *st;
	struct stat sb;

	snprintf(dir, sizeof(dir), "%s/tier-env-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	t_assert(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/a/b/", dir);
	setenv("TIER_STORE", sub, 1);
	t_ok(tier_store_open(NULL, &st));
	sub[strlen(sub) - 1] = '\0';
	t_assert(!strcmp(tier_store_path(st), sub));
	strcat(sub, "/snapshots");
	t_assert(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode));
	tier_store_close(st);
	unsetenv("TIER_STORE");
	t_ok(store_rmtree(dir));
}

/* util/file.c: the helpers every store file goes through. */
static void test_file(void)
{
	char dir[256], path[300], sub[350];
	struct atomic_file af;
	unsigned char b[16];
	struct stat sb;
	size_t len;
	void *buf;
	int fd;

	snprintf(dir, sizeof(dir), "%s/tier-file-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	t_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);

	t_ok(write_file_atomic(path, "hello", 5));
	t_ok(read_file(path, &buf, &len));
	t_eq(len, 5);
	t_assert(!strcmp(buf, "hello"));		/* NUL-terminated */
	free(buf);
	/* Replaced whole; an aborted write leaves the old file alone. */
	t_ok(write_file_atomic(path, "", 0));
	t_ok(read_file(path, &buf, &len));
	t_eq(len, 0);
	free(buf);
	t_ok(atomic_open(&af, path));
	t_ok(write_full(af.fd, "partial", 7, path));
	atomic_abort(&af);
	t_assert(stat(af.tmp, &sb) < 0 && errno == ENOENT);
	t_assert(stat(path, &sb) == 0 && sb.st_size == 0);
	/* Two writers of one path in one process: neither takes the other's
	 * temporary; the last commit wins whole. */
	{
		struct atomic_file a2;

		t_ok(atomic_open(&af, path));
		t_ok(atomic_open(&a2, path));
		t_assert(strcmp(af.tmp, a2.tmp) != 0);
		t_ok(write_full(af.fd, "first", 5, path));
		t_ok(write_full(a2.fd, "second", 6, path));
		t_ok(atomic_commit(&af));
		t_ok(read_file(path, &buf, &len));
		t_eq(len, 5);
		free(buf);
		t_ok(atomic_commit(&a2));
		t_ok(read_file(path, &buf, &len));
		t_eq(len, 6);
		t_assert(!memcmp(buf, "second", 6));
		free(buf);
		t_assert(stat(a2.tmp, &sb) < 0 && errno == ENOENT);
	}

	/* A full disk is -ENOSPC naming the file. */
	fd = open("/dev/full", O_WRONLY);
	if (fd >= 0) {
		t_fails(write_full(fd, "x", 1, "/dev/full"), -ENOSPC);
		t_assert(strstr(tier_errmsg(), "/dev/full"));
		t_fails(pwrite_full(fd, "x", 1, 0, "/dev/full"), -ENOSPC);
		close(fd);
	}
	/* Reading past the end is "truncated". */
	t_ok(write_file_atomic(path, "0123456789", 10));
	fd = open(path, O_RDONLY);
	t_assert(fd >= 0);
	t_ok(pread_full(fd, b, 4, 6, path));
	t_assert(!memcmp(b, "6789", 4));
	t_fails(pread_full(fd, b, 5, 6, path), -EBADMSG);
	t_assert(strstr(tier_errmsg(), "truncated"));
	close(fd);

	snprintf(sub, sizeof(sub), "%s/missing", dir);
	t_fails(read_file(sub, &buf, &len), -ENOENT);
	t_assert(strstr(tier_errmsg(), sub));
	t_fails(read_file(dir, &buf, &len), -EISDIR);

	snprintf(sub, sizeof(sub), "%s/a//b/c/", dir);
	t_ok(mkdir_p(sub, 0755));
	t_ok(mkdir_p(sub, 0755));
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	t_assert(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode));
	snprintf(sub, sizeof(sub), "%s/f/x", dir);	/* f is a file */
	t_fails(mkdir_p(sub, 0755), -ENOTDIR);
	t_assert(strstr(tier_errmsg(), path));
	t_ok(store_rmtree(dir));
	t_assert(stat(dir, &sb) < 0 && errno == ENOENT);
	t_ok(store_rmtree(dir));			/* already gone */
}

int main(void)
{
	test_file();
	test_manifest();
	test_plan();
	test_trace_bin();
	test_import();
	test_store_env();
	return T_PASS;
}
