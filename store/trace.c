/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Traces: which pages one run touched, in first-touch order, and how
 * (read only, written first, read then written). Two forms: the text one
 * people and other tools exchange (doc/tier-trace.5.scd) and the checked
 * binary one of store/format.h the store keeps. The recorder saves them,
 * "tierctl trace" moves them in and out, store/place.c reads them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/fmt.h"
#include "store/snap.h"
#include "util/err.h"
#include "util/size.h"
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
		d = base == 16 ? hex_digit(p[i]) :
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

/*
 * The text parser's state from line to line: the text may come whole or
 * a chunk at a time (a file import). Repeated pages merge into their
 * first entry, so it holds a byte a page of the image (the page's merged
 * kind, 0 until seen) and an entry a page touched, whatever the length
 * of the text.
 */
struct text_parse {
	const char *what;
	uint64_t npages, limit;
	size_t line;
	uint8_t *kind;			/* per page; 0: not seen */
	struct tier_trace_ent *ent;	/* first touches, in order */
	size_t n, cap;
};

static int tp_init(struct text_parse *tp, uint64_t npages, const char *what)
{
	memset(tp, 0, sizeof(*tp));
	tp->what = what;
	tp->npages = npages;
	/* Past 2^52 pages the byte size overflows; nothing is that big. */
	tp->limit = npages > (UINT64_MAX >> TIER_PAGE_SHIFT) ?
		    UINT64_MAX : npages << TIER_PAGE_SHIFT;
	if (npages > SIZE_MAX)
		return tier_err(-ENOMEM, "%s: %llu pages: out of memory", what,
				(unsigned long long)npages);
	tp->kind = calloc(npages ? npages : 1, 1);
	if (!tp->kind)
		return tier_err(-ENOMEM, "out of memory");
	return 0;
}

static void tp_fini(struct text_parse *tp)
{
	free(tp->kind);
	free(tp->ent);
	tp->kind = NULL;
	tp->ent = NULL;
}

/* One line of @l bytes at @p, without its newline. */
static int tp_line(struct text_parse *tp, const char *p, size_t l)
{
	const char *what = tp->what, *end, *tok, *tok2;
	enum tier_access kind = TIER_ACCESS_R;
	struct tier_trace_ent *ne;
	size_t tl, t2l, line;
	uint64_t off = 0, page;
	int rc;

	line = ++tp->line;
	end = memchr(p, '#', l);
	if (end)
		l = end - p;
	end = p + l;
	while (p < end && is_space(*p))
		p++;
	while (end > p && is_space(end[-1]))
		end--;
	if (p == end)
		return 0;

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
	if (p < end)
		return tier_err(-EINVAL, "%s:%zu: unexpected " TOK_FMT
				" after the kind", what, line,
				TOK_ARG(p, (size_t)(end - p)));

	rc = parse_offset(tok, tl, what, line, &off);
	if (rc)
		return rc;
	if (t2l) {
		rc = parse_kind(tok2, t2l, what, line, &kind);
		if (rc)
			return rc;
	}
	if (off >= tp->limit)
		return tier_err(-ERANGE,
				"%s:%zu: offset 0x%llx past the end of the image (%llu bytes)",
				what, line, (unsigned long long)off,
				(unsigned long long)tp->limit);

	page = off >> TIER_PAGE_SHIFT;
	if (tp->kind[page]) {	/* seen: its first entry keeps the place */
		tp->kind[page] = merge_kind(tp->kind[page], kind);
		return 0;
	}
	tp->kind[page] = kind;
	if (tp->n == tp->cap) {
		size_t cap = tp->cap ? tp->cap * 2 : 256;

		ne = realloc(tp->ent, cap * sizeof(*ne));
		if (!ne)
			return tier_err(-ENOMEM, "out of memory");
		tp->ent = ne;
		tp->cap = cap;
	}
	tp->ent[tp->n].page = page;
	tp->ent[tp->n].t_ns = 0;
	tp->n++;
	return 0;
}

/* The entries, each with its page's merged kind; the state is spent. */
static int tp_end(struct text_parse *tp, struct tier_trace_ent **ret,
		  size_t *ret_n)
{
	for (size_t i = 0; i < tp->n; i++)
		tp->ent[i].kind = tp->kind[tp->ent[i].page];
	if (!tp->ent) {
		/* An empty trace is valid; give the caller something to free. */
		tp->ent = malloc(sizeof(*tp->ent));
		if (!tp->ent)
			return tier_err(-ENOMEM, "out of memory");
	}
	*ret = tp->ent;
	*ret_n = tp->n;
	tp->ent = NULL;
	tp_fini(tp);
	return 0;
}

int trace_parse_text(const char *buf, size_t len, uint64_t npages,
		     const char *what, struct tier_trace_ent **ret,
		     size_t *ret_n)
{
	struct text_parse tp;
	size_t pos = 0;
	int rc;

	rc = tp_init(&tp, npages, what);
	while (!rc && pos < len) {
		const char *p = buf + pos, *nl;
		size_t l;

		nl = memchr(p, '\n', len - pos);
		l = nl ? (size_t)(nl - p) : len - pos;
		pos += l + (nl != NULL);
		rc = tp_line(&tp, p, l);
	}
	if (rc) {
		tp_fini(&tp);
		return rc;
	}
	return tp_end(&tp, ret, ret_n);
}

/* Bytes read at a time, and the longest line a file may have. */
#define TEXT_CHUNK	(1U << 20)

int trace_read_text(const char *path, uint64_t npages,
		    struct tier_trace_ent **ret, size_t *ret_n)
{
	struct text_parse tp;
	size_t have = 0, start;
	char *buf, *nl;
	ssize_t r;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tier_err(-errno, "%s: %m", path);
	buf = malloc(TEXT_CHUNK);
	rc = buf ? tp_init(&tp, npages, path) :
		   tier_err(-ENOMEM, "out of memory");
	if (rc) {
		free(buf);
		close(fd);
		return rc;
	}
	for (;;) {
		r = read(fd, buf + have, TEXT_CHUNK - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = tier_err(-errno, "%s: %m", path);
			break;
		}
		if (r == 0) {	/* the last line may lack its newline */
			if (have)
				rc = tp_line(&tp, buf, have);
			break;
		}
		have += r;
		for (start = 0; !rc &&
		     (nl = memchr(buf + start, '\n', have - start));
		     start = nl + 1 - buf)
			rc = tp_line(&tp, buf + start, nl - (buf + start));
		if (rc)
			break;
		memmove(buf, buf + start, have - start);
		have -= start;
		if (have == TEXT_CHUNK) {
			rc = tier_err(-EINVAL, "%s:%zu: line longer than %u bytes",
				      path, tp.line + 1, TEXT_CHUNK);
			break;
		}
	}
	free(buf);
	close(fd);
	if (rc) {
		tp_fini(&tp);
		return rc;
	}
	return tp_end(&tp, ret, ret_n);
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
	size_t n;
	int rc;

	rc = snap_check_name("trace", name);
	if (rc)
		return rc;
	rc = trace_read_text(path, snap->npages, &ent, &n);
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
