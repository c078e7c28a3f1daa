/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The handshake Firecracker sends its UFFD handler: serde_json's compact
 * form of a Vec<GuestRegionUffdMapping> (src/vmm/src/persist.rs,
 * send_uffd_handshake: serde_json::to_string, no length prefix, no
 * newline). The struct's fields over the releases (git show vX:persist.rs):
 *	v1.1-v1.6	base_host_virt_addr: u64, size: usize, offset: u64
 *	v1.7-v1.11	+ page_size_kib: usize, filled from page_size_kib(),
 *			which returns 4096 or 2 MiB: bytes despite the name
 *	v1.12 on	+ page_size: usize before it; page_size_kib kept,
 *			#[deprecated], "to be removed in 2.0", same value
 * serde writes the fields in declaration order, but a handler must not
 * depend on that (serde reads them in any order and skips unknown ones),
 * so neither do we. The parser is strict about everything else: this is
 * the one input a VMM (maybe a compromised one) controls.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/fc.h"
#include "util/err.h"
#include "util/size.h"

#define MIB		(1024ULL * 1024)
#define FC_DEPTH_MAX	32

enum {
	F_BASE = 1 << 0,
	F_SIZE = 1 << 1,
	F_OFFSET = 1 << 2,
	F_PAGE_SIZE = 1 << 3,
	F_PAGE_SIZE_KIB = 1 << 4,
	F_TIER_ZC = 1 << 5,	/* ours: the zero-copy extension (fc-zc.c) */
};

static const struct {
	const char *name;
	unsigned bit;
} known[] = {
	{ "base_host_virt_addr", F_BASE },
	{ "size", F_SIZE },
	{ "offset", F_OFFSET },
	{ "page_size", F_PAGE_SIZE },
	{ "page_size_kib", F_PAGE_SIZE_KIB },
	{ "tier_zero_copy", F_TIER_ZC },
};

const char *fc_fields_name(enum fc_fields fields)
{
	switch (fields) {
	case FC_FIELDS_V1_1:
		return "v1.1-v1.6 (no page size)";
	case FC_FIELDS_V1_7:
		return "v1.7-v1.11 (page_size_kib)";
	case FC_FIELDS_V1_12:
		return "v1.12+ (page_size, page_size_kib)";
	case FC_FIELDS_PAGE_SIZE:
		return "page_size only (after v1.x)";
	}
	return "unknown";
}

struct jp {
	const char *buf, *p, *end;
	int region;		/* the element being parsed; -1 outside one */
};

__attribute__((format(printf, 3, 4)))
static int jp_err(const struct jp *j, int rc, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (j->region >= 0)
		return tier_err(rc, "regions JSON: region %d: %s (byte %td)",
				j->region, why, j->p - j->buf);
	return tier_err(rc, "regions JSON: %s (byte %td)", why, j->p - j->buf);
}

static int jp_eof(const struct jp *j)
{
	return j->p >= j->end;
}

static void jp_ws(struct jp *j)
{
	while (!jp_eof(j) && (*j->p == ' ' || *j->p == '\t' ||
			      *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

/* What the next byte is, for messages. */
static const char *jp_what(const struct jp *j, char *buf, size_t len)
{
	unsigned char c;

	if (jp_eof(j))
		return "the end";
	c = *j->p;
	if (c >= 0x20 && c < 0x7f)
		snprintf(buf, len, "'%c'", c);
	else
		snprintf(buf, len, "byte 0x%02x", c);
	return buf;
}

static int jp_expect(struct jp *j, char c, const char *what)
{
	char b[16];

	jp_ws(j);
	if (jp_eof(j) || *j->p != c)
		return jp_err(j, -EPROTO, "expected %s, found %s", what,
			      jp_what(j, b, sizeof(b)));
	j->p++;
	return 0;
}

static int jp_u4(struct jp *j, unsigned *ret)
{
	unsigned v = 0;
	int i, h;

	if (j->end - j->p < 4)
		return jp_err(j, -EPROTO, "string ends inside a \\u escape");
	for (i = 0; i < 4; i++) {
		h = hex_digit(j->p[i]);
		if (h < 0)
			return jp_err(j, -EPROTO, "bad \\u escape");
		v = v << 4 | h;
	}
	j->p += 4;
	*ret = v;
	return 0;
}

/* One UTF-8 sequence at j->p (its first byte >= 0x80): RFC 3629, so no
 * overlong forms, no surrogates, nothing past U+10FFFF, as Rust's str. */
static int jp_utf8(struct jp *j)
{
	const unsigned char *s = (const unsigned char *)j->p;
	unsigned c = s[0], cp, n, i;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 2;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 3;
		cp = c & 0x07;
	} else {
		return jp_err(j, -EPROTO, "string is not UTF-8");
	}
	if ((size_t)(j->end - j->p) <= n)
		return jp_err(j, -EPROTO, "string is not UTF-8");
	for (i = 1; i <= n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return jp_err(j, -EPROTO, "string is not UTF-8");
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return jp_err(j, -EPROTO, "string is not UTF-8");
	j->p += n + 1;
	return 0;
}

/*
 * A string at j->p (the opening quote). Its ASCII content goes to @key
 * (NUL-terminated) when it fits in @klen - 1 bytes and has nothing else;
 * otherwise @key is "" (no known field is like that).
 */
static int jp_string(struct jp *j, char *key, size_t klen)
{
	size_t k = 0;
	int plain = 1, rc;
	unsigned cp, lo;

	j->p++;
	for (;;) {
		unsigned char c;

		if (jp_eof(j))
			return jp_err(j, -EPROTO, "string not closed");
		c = *j->p;
		if (c == '"') {
			j->p++;
			break;
		}
		if (c < 0x20)
			return jp_err(j, -EPROTO, "control byte 0x%02x in a string", c);
		if (c >= 0x80) {
			rc = jp_utf8(j);
			if (rc)
				return rc;
			plain = 0;
			continue;
		}
		j->p++;
		if (c == '\\') {
			if (jp_eof(j))
				return jp_err(j, -EPROTO, "string not closed");
			c = *j->p++;
			switch (c) {
			case '"': case '\\': case '/':
				break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			case 't': c = '\t'; break;
			case 'u':
				rc = jp_u4(j, &cp);
				if (rc)
					return rc;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return jp_err(j, -EPROTO, "lone low surrogate \\u%04x", cp);
				if (cp >= 0xd800 && cp <= 0xdbff) {
					/* serde_json, too, wants the pair */
					if (j->end - j->p < 2 || j->p[0] != '\\' ||
					    j->p[1] != 'u')
						return jp_err(j, -EPROTO, "lone high surrogate \\u%04x", cp);
					j->p += 2;
					rc = jp_u4(j, &lo);
					if (rc)
						return rc;
					if (lo < 0xdc00 || lo > 0xdfff)
						return jp_err(j, -EPROTO, "high surrogate \\u%04x without its low half", cp);
				}
				if (cp >= 0x80 || cp == 0)
					plain = 0;
				c = cp;
				break;
			default:
				j->p--;
				return jp_err(j, -EPROTO, "bad escape '\\%c'",
					      c >= 0x20 && c < 0x7f ? c : '?');
			}
		}
		if (k + 1 < klen)
			key[k++] = c;
		else
			plain = 0;
	}
	if (klen)
		key[plain ? k : 0] = 0;
	return 0;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Any JSON number, for skipped values. */
static int jp_skip_number(struct jp *j)
{
	if (*j->p == '-')
		j->p++;
	if (jp_eof(j) || !is_digit(*j->p))
		return jp_err(j, -EPROTO, "bad number");
	if (*j->p == '0')
		j->p++;
	else
		while (!jp_eof(j) && is_digit(*j->p))
			j->p++;
	if (!jp_eof(j) && *j->p == '.') {
		j->p++;
		if (jp_eof(j) || !is_digit(*j->p))
			return jp_err(j, -EPROTO, "bad number");
		while (!jp_eof(j) && is_digit(*j->p))
			j->p++;
	}
	if (!jp_eof(j) && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (!jp_eof(j) && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (jp_eof(j) || !is_digit(*j->p))
			return jp_err(j, -EPROTO, "bad number");
		while (!jp_eof(j) && is_digit(*j->p))
			j->p++;
	}
	return 0;
}

static int jp_literal(struct jp *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n))
		return jp_err(j, -EPROTO, "bad literal (want %s)", lit);
	j->p += n;
	return 0;
}

/* Skips one value of any type (an unknown field's), @depth deep. */
static int jp_skip(struct jp *j, int depth)
{
	char b[16];
	int rc, first;

	jp_ws(j);
	if (jp_eof(j))
		return jp_err(j, -EPROTO, "expected a value, found the end");
	switch (*j->p) {
	case '"':
		return jp_string(j, NULL, 0);
	case 't':
		return jp_literal(j, "true");
	case 'f':
		return jp_literal(j, "false");
	case 'n':
		return jp_literal(j, "null");
	case '[':
	case '{': {
		char close = *j->p == '[' ? ']' : '}';

		if (depth >= FC_DEPTH_MAX)
			return jp_err(j, -EPROTO, "nested deeper than %d", FC_DEPTH_MAX);
		j->p++;
		for (first = 1;; first = 0) {
			jp_ws(j);
			if (!jp_eof(j) && *j->p == close && first) {
				j->p++;
				return 0;
			}
			if (close == '}') {
				jp_ws(j);
				if (jp_eof(j) || *j->p != '"')
					return jp_err(j, -EPROTO, "expected a field name, found %s",
						      jp_what(j, b, sizeof(b)));
				rc = jp_string(j, NULL, 0);
				if (!rc)
					rc = jp_expect(j, ':', "':'");
				if (rc)
					return rc;
			}
			rc = jp_skip(j, depth + 1);
			if (rc)
				return rc;
			jp_ws(j);
			if (!jp_eof(j) && *j->p == close) {
				j->p++;
				return 0;
			}
			rc = jp_expect(j, ',', close == ']' ? "',' or ']'" : "',' or '}'");
			if (rc)
				return rc;
		}
	}
	default:
		if (*j->p == '-' || is_digit(*j->p))
			return jp_skip_number(j);
		return jp_err(j, -EPROTO, "expected a value, found %s",
			      jp_what(j, b, sizeof(b)));
	}
}

/* A known field's value: an unsigned integer that fits in 64 bits. */
static int jp_u64(struct jp *j, const char *field, uint64_t *ret)
{
	uint64_t v = 0;
	const char *start;

	jp_ws(j);
	if (jp_eof(j))
		return jp_err(j, -EPROTO, "\"%s\": no value", field);
	if (*j->p == '-')
		return jp_err(j, -EPROTO, "\"%s\": negative", field);
	if (!is_digit(*j->p))
		return jp_err(j, -EPROTO, "\"%s\": not an unsigned integer", field);
	start = j->p;
	if (*j->p == '0' && j->end - j->p > 1 && is_digit(j->p[1]))
		return jp_err(j, -EPROTO, "\"%s\": leading zero", field);
	while (!jp_eof(j) && is_digit(*j->p)) {
		unsigned d = *j->p - '0';

		if (v > (UINT64_MAX - d) / 10) {
			j->p = start;
			return jp_err(j, -EPROTO, "\"%s\": larger than 2^64 - 1", field);
		}
		v = v * 10 + d;
		j->p++;
	}
	if (!jp_eof(j) && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) {
		j->p = start;
		return jp_err(j, -EPROTO, "\"%s\": not an integer", field);
	}
	*ret = v;
	return 0;
}

static int jp_region(struct jp *j, struct fc_region *r, unsigned *ret_seen)
{
	uint64_t v = 0, ps = 0, pskib = 0;
	unsigned seen = 0, i, bit;
	char key[32], b[16];
	const char *kpos;
	int rc, first;

	rc = jp_expect(j, '{', "'{' (a region object)");
	if (rc)
		return rc;
	memset(r, 0, sizeof(*r));
	for (first = 1;; first = 0) {
		jp_ws(j);
		if (first && !jp_eof(j) && *j->p == '}') {
			j->p++;
			break;
		}
		if (jp_eof(j) || *j->p != '"')
			return jp_err(j, -EPROTO, "expected a field name, found %s",
				      jp_what(j, b, sizeof(b)));
		kpos = j->p;
		rc = jp_string(j, key, sizeof(key));
		if (!rc)
			rc = jp_expect(j, ':', "':'");
		if (rc)
			return rc;

		bit = 0;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (!strcmp(key, known[i].name))
				bit = known[i].bit;
		if (!bit) {
			rc = jp_skip(j, 1);
		} else if (seen & bit) {
			j->p = kpos;
			return jp_err(j, -EPROTO, "\"%s\" given twice", key);
		} else {
			seen |= bit;
			rc = jp_u64(j, key, &v);
			switch (bit) {
			case F_BASE: r->base = v; break;
			case F_SIZE: r->size = v; break;
			case F_OFFSET: r->offset = v; break;
			case F_PAGE_SIZE: ps = v; break;
			case F_PAGE_SIZE_KIB: pskib = v; break;
			case F_TIER_ZC: r->zero_copy = v; break;
			}
		}
		if (rc)
			return rc;
		jp_ws(j);
		if (!jp_eof(j) && *j->p == '}') {
			j->p++;
			break;
		}
		rc = jp_expect(j, ',', "',' or '}'");
		if (rc)
			return rc;
	}

	for (i = 0; i < 3; i++)
		if (!(seen & known[i].bit))
			return jp_err(j, -EPROTO, "no \"%s\"", known[i].name);
	if ((seen & F_PAGE_SIZE) && (seen & F_PAGE_SIZE_KIB) && ps != pskib)
		return jp_err(j, -EPROTO,
			      "page_size %" PRIu64 " and page_size_kib %" PRIu64
			      " disagree (both are bytes)", ps, pskib);
	r->page_size = seen & F_PAGE_SIZE ? ps :
		       seen & F_PAGE_SIZE_KIB ? pskib : 4096;
	*ret_seen = seen;
	return 0;
}

static const char *set_name(unsigned seen)
{
	switch (seen) {
	case F_PAGE_SIZE | F_PAGE_SIZE_KIB:
		return "page_size and page_size_kib";
	case F_PAGE_SIZE:
		return "page_size alone";
	case F_PAGE_SIZE_KIB:
		return "page_size_kib alone";
	}
	return "no page size field";
}

int fc_parse_regions(const char *buf, size_t len, struct fc_region **ret,
		     unsigned *ret_n, enum fc_fields *ret_fields)
{
	struct jp j = { .buf = buf, .p = buf, .end = buf + len, .region = -1 };
	struct fc_region *r = NULL, *tmp;
	unsigned n = 0, cap = 0, seen = 0, seen0 = 0;
	enum fc_fields fields;
	char b[16];
	int rc;

	rc = jp_expect(&j, '[', "'[' (an array of regions)");
	if (rc)
		return rc;
	jp_ws(&j);
	if (!jp_eof(&j) && *j.p == ']')
		return jp_err(&j, -EPROTO, "no regions");
	for (;;) {
		if (n == FC_REGIONS_MAX) {
			rc = jp_err(&j, -EPROTO, "more than %d regions", FC_REGIONS_MAX);
			goto err;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			tmp = realloc(r, cap * sizeof(*r));
			if (!tmp) {
				rc = tier_err(-ENOMEM, "regions JSON: out of memory");
				goto err;
			}
			r = tmp;
		}
		j.region = n;
		rc = jp_region(&j, &r[n], &seen);
		if (rc)
			goto err;
		/* Firecracker sends one struct for all; a mix is not it */
		seen &= F_PAGE_SIZE | F_PAGE_SIZE_KIB;
		if (n == 0) {
			seen0 = seen;
		} else if (seen != seen0) {
			rc = jp_err(&j, -EPROTO, "has %s, region 0 has %s",
				    set_name(seen), set_name(seen0));
			goto err;
		}
		n++;
		j.region = -1;
		jp_ws(&j);
		if (!jp_eof(&j) && *j.p == ']') {
			j.p++;
			break;
		}
		rc = jp_expect(&j, ',', "',' or ']'");
		if (rc)
			goto err;
		jp_ws(&j);
	}
	jp_ws(&j);
	if (!jp_eof(&j)) {
		rc = jp_err(&j, -EPROTO, "%s after the array",
			    jp_what(&j, b, sizeof(b)));
		goto err;
	}

	if (seen0 == (F_PAGE_SIZE | F_PAGE_SIZE_KIB))
		fields = FC_FIELDS_V1_12;
	else if (seen0 == F_PAGE_SIZE_KIB)
		fields = FC_FIELDS_V1_7;
	else if (seen0 == F_PAGE_SIZE)
		fields = FC_FIELDS_PAGE_SIZE;
	else
		fields = FC_FIELDS_V1_1;
	*ret = r;
	*ret_n = n;
	if (ret_fields)
		*ret_fields = fields;
	return 0;

err:
	free(r);
	return rc;
}

/* ------------------------------------------------------------- checks */

static const char *psz_name(uint64_t ps)
{
	return ps == 2 * MIB ? "2 MiB" : "4 KiB";
}

/* Sorts @idx by the offset (or, @by_base, the base) of r[idx[i]]. */
static void sort_idx(const struct fc_region *r, unsigned *idx, unsigned n,
		     int by_base)
{
	unsigned i, k, t;

	/* insertion sort: n is a handful (Firecracker sends one or two) */
	for (i = 1; i < n; i++) {
		t = idx[i];
		for (k = i; k > 0; k--) {
			uint64_t a = by_base ? r[idx[k - 1]].base : r[idx[k - 1]].offset;
			uint64_t b = by_base ? r[t].base : r[t].offset;

			if (a <= b)
				break;
			idx[k] = idx[k - 1];
		}
		idx[k] = t;
	}
}

int fc_check_regions(const struct fc_region *r, unsigned n,
		     uint64_t image_size, const char *what)
{
	uint64_t total = 0;
	unsigned i, pass, *idx;
	int rc = 0;

	if (!n)
		return tier_err(-EINVAL, "no regions");
	for (i = 0; i < n; i++) {
		uint64_t ps = r[i].page_size;

		if (ps != 4096 && ps != 2 * MIB) {
			if (ps == 4 || ps == 2048)
				return tier_err(-EINVAL,
						"region %u: page size %" PRIu64 ": want 4096 or 2097152 bytes (page_size_kib is in bytes despite its name)",
						i, ps);
			return tier_err(-EINVAL,
					"region %u: page size %" PRIu64 " is neither 4 KiB nor 2 MiB",
					i, ps);
		}
		if (!r[i].size)
			return tier_err(-EINVAL, "region %u: size 0", i);
		if (r[i].base % ps || r[i].size % ps || r[i].offset % ps)
			return tier_err(-EINVAL,
					"region %u: %s 0x%" PRIx64 " is not a multiple of its page size (%s)",
					i, r[i].base % ps ? "base_host_virt_addr" :
					r[i].size % ps ? "size" : "offset",
					r[i].base % ps ? r[i].base :
					r[i].size % ps ? r[i].size : r[i].offset,
					psz_name(ps));
		if (r[i].base + r[i].size < r[i].base)
			return tier_err(-EINVAL,
					"region %u: base_host_virt_addr 0x%" PRIx64 " + size 0x%" PRIx64 " wraps around",
					i, r[i].base, r[i].size);
		if (r[i].offset > image_size ||
		    r[i].size > image_size - r[i].offset)
			return tier_err(-EINVAL,
					"region %u: offset 0x%" PRIx64 " + size 0x%" PRIx64 " runs past the end of snapshot %s (0x%" PRIx64 " bytes)",
					i, r[i].offset, r[i].size, what, image_size);
		total += r[i].size;	/* each <= image_size: no overflow for n <= 2^32 */
	}

	idx = malloc(n * sizeof(*idx));
	if (!idx)
		return tier_err(-ENOMEM, "out of memory");
	for (pass = 0; pass < 2 && !rc; pass++) {
		for (i = 0; i < n; i++)
			idx[i] = i;
		sort_idx(r, idx, n, pass);
		for (i = 1; i < n; i++) {
			const struct fc_region *a = &r[idx[i - 1]], *b = &r[idx[i]];
			uint64_t a0 = pass ? a->base : a->offset;
			uint64_t b0 = pass ? b->base : b->offset;

			if (a0 + a->size > b0) {
				rc = tier_err(-EINVAL,
					      "regions %u and %u overlap in %s: [0x%" PRIx64 ", 0x%" PRIx64 ") and [0x%" PRIx64 ", 0x%" PRIx64 ")",
					      idx[i - 1], idx[i],
					      pass ? "the address space" : "the memory file",
					      a0, a0 + a->size, b0, b0 + b->size);
				break;
			}
		}
	}
	free(idx);
	if (rc)
		return rc;
	if (total != image_size)
		return tier_err(-EINVAL,
				"regions total 0x%" PRIx64 " bytes, snapshot %s has 0x%" PRIx64 " (Firecracker's memory file is exactly its guest memory)",
				total, what, image_size);
	return 0;
}

const struct fc_region *fc_region_find(const struct fc_region *r, unsigned n,
				       uint64_t addr)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (addr >= r[i].base && addr - r[i].base < r[i].size)
			return &r[i];
	return NULL;
}

int fc_json_complete(const char *buf, size_t len)
{
	size_t i;
	int depth = 0, in_str = 0, esc = 0;

	for (i = 0; i < len; i++) {
		char c = buf[i];

		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		switch (c) {
		case ' ': case '\t': case '\n': case '\r':
			break;
		case '"':
			if (!depth)
				return 1;	/* not an array: the parser says */
			in_str = 1;
			break;
		case '[': case '{':
			if (++depth > FC_DEPTH_MAX + 2)
				return 1;	/* a depth bomb: no need for more */
			break;
		case ']': case '}':
			if (--depth <= 0)
				return 1;
			break;
		default:
			if (!depth)
				return 1;
		}
	}
	return 0;
}
