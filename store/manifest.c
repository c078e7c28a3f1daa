/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manifest: what an import learned about an image (size, regions,
 * zero pages, a checksum per page), in the little-endian layout of
 * store/format.h. Decoding is pure and trusts nothing: it runs on whatever
 * bytes the disk (or a fuzzer) hands it.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/internal.h"
#include "store/snap.h"
#include "util/checksum.h"
#include "util/err.h"

#define HDR_SIZE	sizeof(struct fmt_manifest_hdr)
#define OFF(f)		offsetof(struct fmt_manifest_hdr, f)

uint64_t fmt_get64(const void *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

uint32_t fmt_get32(const void *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

void fmt_put64(void *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

void fmt_put32(void *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

uint64_t fmt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

int fmt_file_csum(const void *buf, size_t len, size_t csum_off,
		  uint64_t *ret)
{
	char *copy;

	/* A copy keeps the rule "hash the file as written, field zeroed"
	 * literal; files are small next to the image they describe. */
	copy = malloc(len ? len : 1);
	if (!copy)
		return tier_err(-ENOMEM, "out of memory");
	memcpy(copy, buf, len);
	memset(copy + csum_off, 0, 8);
	*ret = tier_csum(copy, len);
	free(copy);
	return 0;
}

/* Bytes of a manifest of @npages pages and @nregions regions; 0 if that
 * does not fit in a size_t. */
static size_t manifest_len(uint64_t npages, uint64_t nregions)
{
	uint64_t words = npages / 64 + (npages % 64 != 0);
	uint64_t r, z, c, len;

	if (__builtin_mul_overflow(nregions, (uint64_t)sizeof(struct fmt_region), &r) ||
	    __builtin_mul_overflow(words, (uint64_t)8, &z) ||
	    __builtin_mul_overflow(npages, (uint64_t)8, &c) ||
	    __builtin_add_overflow((uint64_t)HDR_SIZE, r, &len) ||
	    __builtin_add_overflow(len, z, &len) ||
	    __builtin_add_overflow(len, c, &len) || len > SIZE_MAX)
		return 0;
	return len;
}

static uint64_t zero_page_csum(void)
{
	static const uint64_t zero[TIER_PAGE_SIZE / 8];

	return tier_csum(zero, sizeof(zero));
}

int manifest_encode(const struct tier_snap *s, void **ret, size_t *ret_len)
{
	uint64_t words = (s->npages + 63) / 64, i, csum;
	size_t len, nlen;
	char *buf, *p;
	int rc;

	len = manifest_len(s->npages, s->nregions);
	if (!len)
		return tier_err(-EOVERFLOW, "snapshot %s: too large", s->name);
	nlen = strnlen(s->name, sizeof(s->name));
	if (nlen >= sizeof(((struct fmt_manifest_hdr *)0)->name))
		return tier_err(-EINVAL, "snapshot name too long");
	buf = calloc(1, len);
	if (!buf)
		return tier_err(-ENOMEM, "out of memory");

	memcpy(buf + OFF(magic), FMT_MANIFEST_MAGIC, 8);
	fmt_put32(buf + OFF(version), FMT_VERSION);
	fmt_put32(buf + OFF(page_shift), TIER_PAGE_SHIFT);
	fmt_put64(buf + OFF(image_size), s->size);
	fmt_put64(buf + OFF(npages), s->npages);
	fmt_put64(buf + OFF(nzero), s->nzero);
	fmt_put32(buf + OFF(nregions), s->nregions);
	fmt_put32(buf + OFF(flags), 0);
	fmt_put64(buf + OFF(created_ns), fmt_now_ns());
	memcpy(buf + OFF(name), s->name, nlen);

	p = buf + HDR_SIZE;
	for (i = 0; i < s->nregions; i++, p += sizeof(struct fmt_region)) {
		fmt_put64(p, s->regions[i].offset);
		fmt_put64(p + 8, s->regions[i].length);
	}
	for (i = 0; i < words; i++, p += 8)
		fmt_put64(p, s->zero[i]);
	for (i = 0; i < s->npages; i++, p += 8)
		fmt_put64(p, s->csum[i]);

	rc = fmt_file_csum(buf, len, OFF(checksum), &csum);
	if (rc) {
		free(buf);
		return rc;
	}
	fmt_put64(buf + OFF(checksum), csum);
	*ret = buf;
	*ret_len = len;
	return 0;
}

static int region_cmp(const void *a, const void *b)
{
	const struct tier_region *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Regions lie inside the image, are page aligned, non-empty and disjoint. */
static int check_regions(const struct tier_region *r, unsigned n,
			 uint64_t size, const char *what)
{
	struct tier_region *sorted;
	unsigned i;

	for (i = 0; i < n; i++) {
		if ((r[i].offset | r[i].length) & (TIER_PAGE_SIZE - 1) ||
		    !r[i].length || r[i].offset > size ||
		    r[i].length > size - r[i].offset)
			return tier_err(-EBADMSG,
					"%s: region %u [0x%llx, +0x%llx) is not page aligned inside the image",
					what, i,
					(unsigned long long)r[i].offset,
					(unsigned long long)r[i].length);
	}
	sorted = malloc((size_t)n * sizeof(*sorted) + 1);
	if (!sorted)
		return tier_err(-ENOMEM, "out of memory");
	memcpy(sorted, r, (size_t)n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), region_cmp);
	for (i = 1; i < n; i++) {
		uint64_t at = sorted[i].offset;

		if (at < sorted[i - 1].offset + sorted[i - 1].length) {
			free(sorted);
			return tier_err(-EBADMSG,
					"%s: regions overlap at 0x%llx", what,
					(unsigned long long)at);
		}
	}
	free(sorted);
	return 0;
}

int manifest_decode(const void *buf, size_t len, const char *what,
		    struct tier_snap *s)
{
	const char *b = buf, *p;
	uint64_t size, npages, nzero, words, i, csum, want, zcsum, count = 0;
	uint32_t version, nregions;
	struct tier_region *regions = NULL;
	uint64_t *zero = NULL, *sums = NULL;
	char name[sizeof(((struct fmt_manifest_hdr *)0)->name) + 1];
	size_t need;
	int rc;

	if (len < 8 || memcmp(b, FMT_MANIFEST_MAGIC, 8))
		return tier_err(-EBADMSG, "%s: not a tier manifest", what);
	if (len < HDR_SIZE)
		return tier_err(-EBADMSG, "%s: manifest truncated (%zu bytes)",
				what, len);
	version = fmt_get32(b + OFF(version));
	npages = fmt_get64(b + OFF(npages));
	nregions = fmt_get32(b + OFF(nregions));

	/* Length first (for a helpful message), then the checksum over
	 * everything, then what the fields say. */
	if (version == FMT_VERSION) {
		need = manifest_len(npages, nregions);
		if (!need || need > len)
			return tier_err(-EBADMSG,
					"%s: manifest truncated (%zu bytes, header says %llu pages)",
					what, len, (unsigned long long)npages);
		if (need < len)
			return tier_err(-EBADMSG,
					"%s: manifest has %zu trailing bytes",
					what, len - need);
	}
	rc = fmt_file_csum(b, len, OFF(checksum), &csum);
	if (rc)
		return rc;
	want = fmt_get64(b + OFF(checksum));
	if (csum != want)
		return tier_err(-EBADMSG,
				"%s: manifest checksum mismatch (0x%016llx, expected 0x%016llx)",
				what, (unsigned long long)csum,
				(unsigned long long)want);
	if (version != FMT_VERSION)
		return tier_err(-EPROTO,
				"%s: manifest format v%u, this build reads v%u",
				what, version, FMT_VERSION);

	if (fmt_get32(b + OFF(page_shift)) != TIER_PAGE_SHIFT)
		return tier_err(-EBADMSG, "%s: page shift %u, expected %u",
				what, fmt_get32(b + OFF(page_shift)),
				TIER_PAGE_SHIFT);
	if (fmt_get32(b + OFF(flags)))
		return tier_err(-EBADMSG, "%s: unknown flags 0x%x", what,
				fmt_get32(b + OFF(flags)));
	size = fmt_get64(b + OFF(image_size));
	nzero = fmt_get64(b + OFF(nzero));
	s->created_ns = fmt_get64(b + OFF(created_ns));
	if (!npages || size >> TIER_PAGE_SHIFT != npages ||
	    size & (TIER_PAGE_SIZE - 1))
		return tier_err(-EBADMSG,
				"%s: image size %llu does not match %llu pages",
				what, (unsigned long long)size,
				(unsigned long long)npages);
	if (nregions == 0)
		return tier_err(-EBADMSG, "%s: no regions", what);
	memcpy(name, b + OFF(name), sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	if (!store_name_ok(name))
		return tier_err(-EBADMSG, "%s: bad snapshot name in manifest",
				what);
	/* No stray bytes after the name's NUL: the header is canonical. */
	for (i = strlen(name); i < sizeof(name) - 1; i++)
		if (name[i])
			return tier_err(-EBADMSG, "%s: name not NUL-padded",
					what);

	words = (npages + 63) / 64;
	regions = malloc((size_t)nregions * sizeof(*regions));
	zero = malloc(words * 8);
	sums = malloc(npages * 8);
	if (!regions || !zero || !sums) {
		rc = tier_err(-ENOMEM, "out of memory");
		goto err;
	}
	p = b + HDR_SIZE;
	for (i = 0; i < nregions; i++, p += sizeof(struct fmt_region)) {
		regions[i].offset = fmt_get64(p);
		regions[i].length = fmt_get64(p + 8);
	}
	rc = check_regions(regions, nregions, size, what);
	if (rc)
		goto err;
	for (i = 0; i < words; i++, p += 8) {
		zero[i] = fmt_get64(p);
		count += __builtin_popcountll(zero[i]);
	}
	if (npages % 64 && zero[words - 1] >> (npages % 64)) {
		rc = tier_err(-EBADMSG, "%s: zero bitmap has bits past page %llu",
			      what, (unsigned long long)npages);
		goto err;
	}
	if (count != nzero) {
		rc = tier_err(-EBADMSG,
			      "%s: %llu zero pages in the bitmap, header says %llu",
			      what, (unsigned long long)count,
			      (unsigned long long)nzero);
		goto err;
	}
	zcsum = zero_page_csum();
	for (i = 0; i < npages; i++, p += 8) {
		sums[i] = fmt_get64(p);
		if ((zero[i / 64] >> (i % 64) & 1) && sums[i] != zcsum) {
			rc = tier_err(-EBADMSG,
				      "%s: zero page %llu has a non-zero checksum",
				      what, (unsigned long long)i);
			goto err;
		}
	}

	memcpy(s->name, name, sizeof(s->name));
	s->size = size;
	s->npages = npages;
	s->nzero = nzero;
	s->nregions = nregions;
	s->regions = regions;
	s->zero = zero;
	s->csum = sums;
	return 0;

err:
	free(regions);
	free(zero);
	free(sums);
	return rc;
}
