/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The store's file format helpers (store/fmt.h): byte order, the header
 * check and seal every store file shares, the region table check and the
 * name rule. Pure: the manifest, trace and plan codecs, import and the
 * store's listing call it, and it calls nothing of theirs.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/fmt.h"
#include "util/checksum.h"
#include "util/err.h"

#define NAME_MAX_LEN	63

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

/* The version sits at the same offset in every header. */
#define VERSION_OFF	8

static uint32_t newest(const struct fmt_file *f)
{
	return f->version ? f->version : FMT_VERSION;
}

int fmt_check_file(const struct fmt_file *f, const void *buf, size_t len,
		   const char *what)
{
	const char *b = buf;
	uint64_t csum, want;
	uint32_t version;
	size_t need;
	int rc;

	if (len < 8 || memcmp(b, f->magic, 8))
		return tier_err(-EBADMSG, "%s: not a tier %s", what, f->kind);
	if (len < f->hdr_size)
		return tier_err(-EBADMSG, "%s: %s truncated (%zu bytes)",
				what, f->kind, len);
	version = fmt_get32(b + VERSION_OFF);

	/* Length first (for a helpful message), then the checksum over
	 * everything, then what the fields say. */
	if (version >= 1 && version <= newest(f)) {
		need = f->size(b);
		if (!need || need > len)
			return tier_err(-EBADMSG,
					"%s: %s truncated (%zu bytes, header says %llu %s)",
					what, f->kind, len,
					(unsigned long long)fmt_get64(b + f->count_off),
					f->count_name);
		if (need < len)
			return tier_err(-EBADMSG,
					"%s: %s has %zu trailing bytes",
					what, f->kind, len - need);
	}
	rc = fmt_file_csum(b, len, f->csum_off, &csum);
	if (rc)
		return rc;
	want = fmt_get64(b + f->csum_off);
	if (csum != want)
		return tier_err(-EBADMSG,
				"%s: %s checksum mismatch (0x%016llx, expected 0x%016llx)",
				what, f->kind, (unsigned long long)csum,
				(unsigned long long)want);
	if (version < 1 || version > newest(f))
		return tier_err(-EPROTO,
				"%s: %s format v%u, this build reads v%u%s",
				what, f->kind, version, newest(f),
				newest(f) > 1 ? " and older" : "");
	return 0;
}

int fmt_seal_file(const struct fmt_file *f, void *buf, size_t len)
{
	char *b = buf;
	uint64_t csum;
	int rc;

	memcpy(b, f->magic, 8);
	fmt_put32(b + VERSION_OFF, newest(f));
	rc = fmt_file_csum(b, len, f->csum_off, &csum);
	if (rc)
		return rc;
	fmt_put64(b + f->csum_off, csum);
	return 0;
}

static int region_cmp(const void *a, const void *b)
{
	const struct tier_region *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

int fmt_check_regions(const struct tier_region *r, unsigned n,
		      uint64_t size, const char *what, int err)
{
	struct tier_region *sorted;
	unsigned i;

	/* Disjoint non-empty pages can't outnumber the pages; checked
	 * first, it also bounds the copy below. */
	if (n > size / TIER_PAGE_SIZE)
		return tier_err(err, "%s: %u regions in %llu pages", what, n,
				(unsigned long long)(size / TIER_PAGE_SIZE));
	for (i = 0; i < n; i++) {
		if ((r[i].offset | r[i].length) & (TIER_PAGE_SIZE - 1))
			return tier_err(err,
					"%s: region %u [0x%llx, +0x%llx) is not page aligned",
					what, i,
					(unsigned long long)r[i].offset,
					(unsigned long long)r[i].length);
		if (!r[i].length || r[i].offset >= size ||
		    r[i].length > size - r[i].offset)
			return tier_err(err,
					"%s: region %u [0x%llx, +0x%llx) is empty or past the end (%llu bytes)",
					what, i,
					(unsigned long long)r[i].offset,
					(unsigned long long)r[i].length,
					(unsigned long long)size);
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
			return tier_err(err, "%s: regions overlap at 0x%llx",
					what, (unsigned long long)at);
		}
	}
	free(sorted);
	return 0;
}

int fmt_name_ok(const char *name)
{
	size_t i;

	if (!name || !name[0] || name[0] == '.')
		return 0;
	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (i >= NAME_MAX_LEN)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return 1;
}
