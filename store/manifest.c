/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manifest: what an import learned about an image (size, regions,
 * zero pages, a checksum per page), in the little-endian layout of
 * store/format.h. Decoding is pure and trusts nothing: it runs on whatever
 * bytes the disk (or a fuzzer) hands it. Import encodes it, tier_snap_open()
 * (store/snap.c) decodes it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "store/fmt.h"
#include "store/snap.h"
#include "util/checksum.h"
#include "util/err.h"

#define HDR_SIZE	sizeof(struct fmt_manifest_hdr)
#define OFF(f)		offsetof(struct fmt_manifest_hdr, f)

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

static size_t manifest_size(const void *hdr)
{
	const char *h = hdr;

	return manifest_len(fmt_get64(h + OFF(npages)),
			    fmt_get32(h + OFF(nregions)));
}

static const struct fmt_file manifest_file = {
	.kind = "manifest",
	.magic = FMT_MANIFEST_MAGIC,
	.hdr_size = HDR_SIZE,
	.csum_off = OFF(checksum),
	.count_off = OFF(npages),
	.count_name = "pages",
	.size = manifest_size,
};

static uint64_t zero_page_csum(void)
{
	static const uint64_t zero[TIER_PAGE_SIZE / 8];

	return tier_csum(zero, sizeof(zero));
}

int manifest_encode(const struct tier_snap *s, void **ret, size_t *ret_len)
{
	uint64_t words = (s->npages + 63) / 64, i;
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

	rc = fmt_seal_file(&manifest_file, buf, len);
	if (rc) {
		free(buf);
		return rc;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

int manifest_decode(const void *buf, size_t len, const char *what,
		    struct tier_snap *s)
{
	const char *b = buf, *p;
	uint64_t size, npages, nzero, words, i, zcsum, count = 0;
	uint32_t nregions;
	struct tier_region *regions = NULL;
	uint64_t *zero = NULL, *sums = NULL;
	char name[sizeof(((struct fmt_manifest_hdr *)0)->name) + 1];
	int rc;

	rc = fmt_check_file(&manifest_file, b, len, what);
	if (rc)
		return rc;
	npages = fmt_get64(b + OFF(npages));
	nregions = fmt_get32(b + OFF(nregions));

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
	if (!fmt_name_ok(name))
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
	rc = fmt_check_regions(regions, nregions, size, what, -EBADMSG);
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
