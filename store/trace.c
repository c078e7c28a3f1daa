/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Traces: which pages one run touched, in first-touch order, and how
 * (read only, written first, read then written). Two forms: the text one
 * people and other tools exchange (doc/tier-trace.5.scd) and the checked
 * binary one of store/format.h the store keeps. The recorder saves them,
 * "tierctl trace" moves them in and out, store/place.c reads them.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/fmt.h"
#include "store/snap.h"
#include "util/err.h"
#include "util/file.h"

#define HDR_SIZE	sizeof(struct fmt_trace_hdr)
#define ENT_SIZE	sizeof(struct fmt_trace_ent)
#define OFF(f)		offsetof(struct fmt_trace_hdr, f)

#define TEXT_HEADER	"# tier trace: page offsets and first-access kind\n"

static const char *kind_name(unsigned kind)
{
	switch (kind) {
	case TIER_ACCESS_R:
		return "r";
	case TIER_ACCESS_W:
		return "w";
	case TIER_ACCESS_RW:
		return "rw";
	}
	return NULL;
}

/*
 * A page seen again keeps its first position; the first access decides:
 * written first stays w, read first becomes rw once any write follows.
 */
static enum tier_access merge_kind(enum tier_access first,
				   enum tier_access later)
{
	if (first == TIER_ACCESS_R && (later & TIER_ACCESS_W))
		return TIER_ACCESS_RW;
	return first;
}

/* ------------------------------------------------------- text form */

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Quote at most 32 bytes of a token in a message, without a NUL. */
#define TOK_FMT		"\"%.*s%s\""
#define TOK_ARG(p, n)	(int)((n) > 32 ? 32 : (n)), (p), ((n) > 32 ? "..." : "")

/* Parses the number in [p, p + n): 0x/0X hex or decimal. */
static int parse_offset(const char *p, size_t n, const char *what,
			size_t line, uint64_t *ret)
{
	uint64_t v = 0;
	unsigned base = 10;
	size_t i = 0;
	int d;

	if (n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == n)
		goto bad;
	for (; i < n; i++) {
		d = base == 16 ? hexval(p[i]) :
		    (p[i] >= '0' && p[i] <= '9' ? p[i] - '0' : -1);
		if (d < 0)
			goto bad;
		if (__builtin_mul_overflow(v, (uint64_t)base, &v) ||
		    __builtin_add_overflow(v, (uint64_t)d, &v))
			return tier_err(-ERANGE,
					"%s:%zu: offset " TOK_FMT " too large",
					what, line, TOK_ARG(p, n));
	}
	*ret = v;
	return 0;
bad:
	return tier_err(-EINVAL, "%s:%zu: bad offset " TOK_FMT, what, line,
			TOK_ARG(p, n));
}

static int parse_kind(const char *p, size_t n, const char *what, size_t line,
		      enum tier_access *ret)
{
	char a = n > 0 ? p[0] | 0x20 : 0, b = n > 1 ? p[1] | 0x20 : 0;

	if (n == 1 && a == 'r')
		*ret = TIER_ACCESS_R;
	else if (n == 1 && a == 'w')
		*ret = TIER_ACCESS_W;
	else if (n == 2 && a == 'r' && b == 'w')
		*ret = TIER_ACCESS_RW;
	else
		return tier_err(-EINVAL, "%s:%zu: bad kind " TOK_FMT, what,
				line, TOK_ARG(p, n));
	return 0;
}

struct slot {
	uint64_t page;
	size_t pos;
};

static int slot_cmp(const void *a, const void *b)
{
	const struct slot *x = a, *y = b;

	if (x->page != y->page)
		return x->page < y->page ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Merges repeated pages into their first entry, keeping first-touch order. */
static int dedup(struct tier_trace_ent *ent, size_t *n)
{
	struct slot *slot;
	size_t i, j, out;
	char *drop;

	if (*n < 2)
		return 0;
	slot = malloc(*n * sizeof(*slot));
	drop = calloc(*n, 1);
	if (!slot || !drop) {
		free(slot);
		free(drop);
		return tier_err(-ENOMEM, "out of memory");
	}
	for (i = 0; i < *n; i++) {
		slot[i].page = ent[i].page;
		slot[i].pos = i;
	}
	qsort(slot, *n, sizeof(*slot), slot_cmp);
	for (i = 0; i < *n; i = j) {
		struct tier_trace_ent *first = &ent[slot[i].pos];

		for (j = i + 1; j < *n && slot[j].page == slot[i].page; j++) {
			first->kind = merge_kind(first->kind,
						 ent[slot[j].pos].kind);
			drop[slot[j].pos] = 1;
		}
	}
	for (i = out = 0; i < *n; i++)
		if (!drop[i])
			ent[out++] = ent[i];
	*n = out;
	free(slot);
	free(drop);
	return 0;
}

int trace_parse_text(const char *buf, size_t len, uint64_t npages,
		     const char *what, struct tier_trace_ent **ret,
		     size_t *ret_n)
{
	struct tier_trace_ent *ent = NULL, *ne;
	size_t n = 0, cap = 0, line = 0, pos = 0;
	uint64_t limit, off = 0;
	int rc;

	/* Past 2^52 pages the byte size overflows; nothing is that big. */
	limit = npages > (UINT64_MAX >> TIER_PAGE_SHIFT) ?
		UINT64_MAX : npages << TIER_PAGE_SHIFT;

	while (pos < len) {
		const char *p = buf + pos, *nl, *end, *tok, *tok2;
		size_t l, tl, t2l;
		enum tier_access kind = TIER_ACCESS_R;

		line++;
		nl = memchr(p, '\n', len - pos);
		l = nl ? (size_t)(nl - p) : len - pos;
		pos += l + (nl != NULL);

		end = memchr(p, '#', l);
		if (end)
			l = end - p;
		end = p + l;
		while (p < end && is_space(*p))
			p++;
		while (end > p && is_space(end[-1]))
			end--;
		if (p == end)
			continue;

		tok = p;
		while (p < end && !is_space(*p))
			p++;
		tl = p - tok;
		while (p < end && is_space(*p))
			p++;
		tok2 = p;
		while (p < end && !is_space(*p))
			p++;
		t2l = p - tok2;
		while (p < end && is_space(*p))
			p++;
		if (p < end) {
			rc = tier_err(-EINVAL, "%s:%zu: unexpected " TOK_FMT
				      " after the kind", what, line,
				      TOK_ARG(p, (size_t)(end - p)));
			goto err;
		}

		rc = parse_offset(tok, tl, what, line, &off);
		if (rc)
			goto err;
		if (t2l) {
			rc = parse_kind(tok2, t2l, what, line, &kind);
			if (rc)
				goto err;
		}
		if (off >= limit) {
			rc = tier_err(-ERANGE,
				      "%s:%zu: offset 0x%llx past the end of the image (%llu bytes)",
				      what, line, (unsigned long long)off,
				      (unsigned long long)limit);
			goto err;
		}

		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			ne = realloc(ent, cap * sizeof(*ent));
			if (!ne) {
				rc = tier_err(-ENOMEM, "out of memory");
				goto err;
			}
			ent = ne;
		}
		ent[n].page = off >> TIER_PAGE_SHIFT;
		ent[n].t_ns = 0;
		ent[n].kind = kind;
		n++;
	}

	rc = dedup(ent, &n);
	if (rc)
		goto err;
	if (!ent) {
		/* An empty trace is valid; give the caller something to free. */
		ent = malloc(sizeof(*ent));
		if (!ent)
			return tier_err(-ENOMEM, "out of memory");
	}
	*ret = ent;
	*ret_n = n;
	return 0;

err:
	free(ent);
	return rc;
}

int trace_format_text(const struct tier_trace_ent *ent, size_t n,
		      char **ret, size_t *ret_len)
{
	/* "0x" + 16 digits + " rw\n" */
	const size_t per = 2 + 16 + 4;
	size_t cap, len, i;
	const char *k;
	char *buf;

	if (n > (SIZE_MAX - sizeof(TEXT_HEADER)) / per)
		return tier_err(-EOVERFLOW, "trace too large");
	cap = sizeof(TEXT_HEADER) + n * per + 1;
	buf = malloc(cap);
	if (!buf)
		return tier_err(-ENOMEM, "out of memory");
	len = sizeof(TEXT_HEADER) - 1;
	memcpy(buf, TEXT_HEADER, len);
	for (i = 0; i < n; i++) {
		k = kind_name(ent[i].kind);
		if (!k || ent[i].page > (UINT64_MAX >> TIER_PAGE_SHIFT)) {
			free(buf);
			return tier_err(-EINVAL, "trace entry %zu: bad page or kind",
					i);
		}
		len += snprintf(buf + len, cap - len, "0x%llx %s\n",
				(unsigned long long)(ent[i].page << TIER_PAGE_SHIFT),
				k);
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

/* ----------------------------------------------------- binary form */

/* Entries are in range, of a known kind, and each page appears once. */
static int check_entries(const struct tier_trace_ent *ent, size_t n,
			 uint64_t npages, const char *what, int err)
{
	uint64_t *seen;
	size_t i;

	seen = calloc(npages / 64 + 1, 8);
	if (!seen)
		return tier_err(-ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		uint64_t p = ent[i].page;

		if (p >= npages || !kind_name(ent[i].kind)) {
			free(seen);
			return tier_err(err,
					"%s: entry %zu: page %llu kind %u out of range (%llu pages)",
					what, i, (unsigned long long)p,
					(unsigned)ent[i].kind,
					(unsigned long long)npages);
		}
		if (seen[p / 64] >> (p % 64) & 1) {
			free(seen);
			return tier_err(err, "%s: entry %zu: page %llu repeated",
					what, i, (unsigned long long)p);
		}
		seen[p / 64] |= 1ULL << (p % 64);
	}
	free(seen);
	return 0;
}

static size_t trace_size(const void *hdr)
{
	uint64_t n = fmt_get64((const char *)hdr + OFF(nentries));

	if (n > (SIZE_MAX - HDR_SIZE) / ENT_SIZE)
		return 0;
	return HDR_SIZE + n * ENT_SIZE;
}

static const struct fmt_file trace_file = {
	.kind = "trace",
	.magic = FMT_TRACE_MAGIC,
	.hdr_size = HDR_SIZE,
	.csum_off = OFF(checksum),
	.count_off = OFF(nentries),
	.count_name = "entries",
	.size = trace_size,
};

int trace_encode(const struct tier_trace_ent *ent, size_t n, uint64_t npages,
		 uint32_t source, void **ret, size_t *ret_len)
{
	size_t len, i;
	char *buf, *p;
	int rc;

	if (n > (SIZE_MAX - HDR_SIZE) / ENT_SIZE)
		return tier_err(-EOVERFLOW, "trace too large");
	rc = check_entries(ent, n, npages, "trace", -EINVAL);
	if (rc)
		return rc;
	len = HDR_SIZE + n * ENT_SIZE;
	buf = calloc(1, len);
	if (!buf)
		return tier_err(-ENOMEM, "out of memory");
	fmt_put32(buf + OFF(page_shift), TIER_PAGE_SHIFT);
	fmt_put64(buf + OFF(npages), npages);
	fmt_put64(buf + OFF(nentries), n);
	fmt_put64(buf + OFF(created_ns), fmt_now_ns());
	fmt_put32(buf + OFF(source), source);
	for (i = 0, p = buf + HDR_SIZE; i < n; i++, p += ENT_SIZE) {
		fmt_put64(p + offsetof(struct fmt_trace_ent, page), ent[i].page);
		fmt_put64(p + offsetof(struct fmt_trace_ent, t_ns), ent[i].t_ns);
		fmt_put32(p + offsetof(struct fmt_trace_ent, kind), ent[i].kind);
	}
	rc = fmt_seal_file(&trace_file, buf, len);
	if (rc) {
		free(buf);
		return rc;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

int trace_decode(const void *buf, size_t len, const char *what,
		 uint64_t npages, struct tier_trace_ent **ret, size_t *ret_n)
{
	const char *b = buf, *p;
	struct tier_trace_ent *ent;
	uint64_t nent, tn;
	uint32_t src;
	size_t i;
	int rc;

	rc = fmt_check_file(&trace_file, b, len, what);
	if (rc)
		return rc;
	nent = fmt_get64(b + OFF(nentries));
	if (fmt_get32(b + OFF(page_shift)) != TIER_PAGE_SHIFT)
		return tier_err(-EBADMSG, "%s: page shift %u, expected %u",
				what, fmt_get32(b + OFF(page_shift)),
				TIER_PAGE_SHIFT);
	tn = fmt_get64(b + OFF(npages));
	if (tn != npages)
		return tier_err(-EBADMSG,
				"%s: recorded on an image of %llu pages, this one has %llu",
				what, (unsigned long long)tn,
				(unsigned long long)npages);
	src = fmt_get32(b + OFF(source));
	if (src != FMT_TRACE_SRC_IMPORT && src != FMT_TRACE_SRC_RECORD)
		return tier_err(-EBADMSG, "%s: unknown trace source %u", what,
				src);

	ent = malloc(nent ? nent * sizeof(*ent) : 1);
	if (!ent)
		return tier_err(-ENOMEM, "out of memory");
	for (i = 0, p = b + HDR_SIZE; i < nent; i++, p += ENT_SIZE) {
		ent[i].page = fmt_get64(p + offsetof(struct fmt_trace_ent, page));
		ent[i].t_ns = fmt_get64(p + offsetof(struct fmt_trace_ent, t_ns));
		ent[i].kind = fmt_get32(p + offsetof(struct fmt_trace_ent, kind));
	}
	rc = check_entries(ent, nent, npages, what, -EBADMSG);
	if (rc) {
		free(ent);
		return rc;
	}
	*ret = ent;
	*ret_n = nent;
	return 0;
}

int trace_save(struct tier_snap *s, const char *name,
	       const struct tier_trace_ent *ent, size_t n, uint32_t source)
{
	char dir[4096 + 16], path[4096 + 96];
	size_t len;
	void *buf;
	int rc;

	rc = snap_check_name("trace", name);
	if (rc)
		return rc;
	rc = trace_encode(ent, n, s->npages, source, &buf, &len);
	if (rc)
		return tier_err_ctx(rc, "snapshot %s: trace %s", s->name, name);
	snprintf(dir, sizeof(dir), "%s/traces", s->dir);
	rc = mkdir_p(dir, 0755);
	if (!rc) {
		snap_trace_path(s, name, path, sizeof(path));
		rc = write_file_atomic(path, buf, len);
	}
	free(buf);
	return rc;
}

/* ---------------------------------------------------------- public API */

int tier_trace_import(struct tier_snap *snap, const char *name,
		      const char *path)
{
	struct tier_trace_ent *ent;
	size_t len, n;
	void *buf;
	int rc;

	rc = snap_check_name("trace", name);
	if (rc)
		return rc;
	rc = read_file(path, &buf, &len);
	if (rc)
		return rc;
	rc = trace_parse_text(buf, len, snap->npages, path, &ent, &n);
	free(buf);
	if (rc)
		return rc;
	rc = trace_save(snap, name, ent, n, FMT_TRACE_SRC_IMPORT);
	free(ent);
	return rc;
}

int tier_trace_export(struct tier_snap *snap, const char *name, int fd)
{
	struct tier_trace_ent *ent;
	char what[128];
	size_t n, len;
	char *text;
	int rc;

	rc = tier_trace_load(snap, name, &ent, &n);
	if (rc)
		return rc;
	rc = trace_format_text(ent, n, &text, &len);
	free(ent);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "trace %s", name);
	rc = write_full(fd, text, len, what);
	free(text);
	return rc;
}

int tier_trace_load(struct tier_snap *snap, const char *name,
		    struct tier_trace_ent **ret, size_t *ret_n)
{
	char path[4096 + 96], what[160];
	size_t len;
	void *buf;
	int rc;

	rc = snap_check_name("trace", name);
	if (rc)
		return rc;
	snap_trace_path(snap, name, path, sizeof(path));
	rc = read_file(path, &buf, &len);
	if (rc == -ENOENT)
		return tier_err(-ENOENT, "snapshot %s: no trace %s", snap->name,
				name);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "snapshot %s: trace %s", snap->name, name);
	rc = trace_decode(buf, len, what, snap->npages, ret, ret_n);
	free(buf);
	return rc;
}
