/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- the text trace form (doc/tier-trace.5.scd): the parser's
 * grammar and errors, format -> parse round trip, and import/export of a
 * trace through a store.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"
#include "store/internal.h"
#include "store/snap.h"
#include "util/file.h"

#define NPAGES	16	/* 64 KiB image: offsets up to 0xffff */

struct want {
	uint64_t page;
	enum tier_access kind;
};

static const struct {
	const char *text;
	int rc;
	const char *msg;	/* substring of the error, or NULL */
	size_t n;
	struct want ent[6];
} cases[] = {
	{ "", 0, NULL, 0, { { 0 } } },
	{ "\n\n  \t\n", 0, NULL, 0, { { 0 } } },
	{ "# only a comment\n   # indented\n", 0, NULL, 0, { { 0 } } },
	{ "0x1000 r\n0x2000 w\n0x3000 rw\n", 0, NULL, 3,
	  { { 1, TIER_ACCESS_R }, { 2, TIER_ACCESS_W }, { 3, TIER_ACCESS_RW } } },
	/* decimal, 0X, upper-case kinds, unaligned offsets round down */
	{ "4096 R\n0X2FFF W\n12289 Rw\n", 0, NULL, 3,
	  { { 1, TIER_ACCESS_R }, { 2, TIER_ACCESS_W }, { 3, TIER_ACCESS_RW } } },
	/* REAP form: bare offsets are reads; no final newline */
	{ "0x5000\n0x0\n20480", 0, NULL, 2,
	  { { 5, TIER_ACCESS_R }, { 0, TIER_ACCESS_R } } },
	/* CRLF, tabs, trailing comments, whitespace around */
	{ "  0x1000\tw  # first\r\n\t0x2000 r#x\r\n\r\n", 0, NULL, 2,
	  { { 1, TIER_ACCESS_W }, { 2, TIER_ACCESS_R } } },
	/* repeats merge into the first position */
	{ "0x1000 r\n0x2000 r\n0x1800 w\n", 0, NULL, 2,
	  { { 1, TIER_ACCESS_RW }, { 2, TIER_ACCESS_R } } },
	{ "0x1000 w\n0x1000 r\n0x1000 rw\n", 0, NULL, 1,
	  { { 1, TIER_ACCESS_W } } },
	{ "0x1000 r\n0x1000 r\n", 0, NULL, 1, { { 1, TIER_ACCESS_R } } },
	{ "0x1000 rw\n0x1000 r\n", 0, NULL, 1, { { 1, TIER_ACCESS_RW } } },
	{ "0x1000 r\n0x1000 rw\n", 0, NULL, 1, { { 1, TIER_ACCESS_RW } } },
	/* order is first-touch order, not page order */
	{ "0xf000\n0x3000 w\n0x0 rw\n0x3000\n0x9000\n", 0, NULL, 4,
	  { { 15, TIER_ACCESS_R }, { 3, TIER_ACCESS_W }, { 0, TIER_ACCESS_RW },
	    { 9, TIER_ACCESS_R } } },
	{ "0xffff r\n", 0, NULL, 1, { { 15, TIER_ACCESS_R } } },

	{ "0x1000 x\n", -EINVAL, "t.txt:1: bad kind \"x\"", 0, { { 0 } } },
	{ "0x1000 r\n\n0x1000 wr\n", -EINVAL, "t.txt:3: bad kind \"wr\"", 0, { { 0 } } },
	{ "0x1000 rww\n", -EINVAL, "bad kind", 0, { { 0 } } },
	{ "0x1000 r w\n", -EINVAL, "t.txt:1: unexpected \"w\"", 0, { { 0 } } },
	{ "0x10g0 r\n", -EINVAL, "t.txt:1: bad offset \"0x10g0\"", 0, { { 0 } } },
	{ "0x r\n", -EINVAL, "bad offset", 0, { { 0 } } },
	{ "-4096 r\n", -EINVAL, "bad offset", 0, { { 0 } } },
	{ "12a r\n", -EINVAL, "bad offset", 0, { { 0 } } },
	{ "r\n", -EINVAL, "bad offset \"r\"", 0, { { 0 } } },
	{ "0xffffffffffffffffff r\n", -ERANGE, "t.txt:1: offset", 0, { { 0 } } },
	{ "99999999999999999999999\n", -ERANGE, "too large", 0, { { 0 } } },
	{ "# x\n0x10000 r\n", -ERANGE,
	  "t.txt:2: offset 0x10000 past the end of the image (65536 bytes)", 0,
	  { { 0 } } },
	{ "0xffffffffffffffff\n", -ERANGE, "past the end", 0, { { 0 } } },
};

/* trace_read_text of @text in a file: the same result as the buffer's
 * (@rc, and @n entries @e when 0), the same message but for the name. */
static void check_file_parse(const char *text, int rc,
			     const struct tier_trace_ent *e, size_t n)
{
	char path[] = "/tmp/tier-trace-text.XXXXXX", msg[512];
	struct tier_trace_ent *f = NULL;
	const char *at;
	size_t m;
	int fd, frc;

	if (rc)
		snprintf(msg, sizeof(msg), "%s", tier_errmsg());
	fd = mkstemp(path);
	t_assert(fd >= 0);
	t_ok(write_full(fd, text, strlen(text), path));
	close(fd);
	frc = trace_read_text(path, NPAGES, &f, &m);
	unlink(path);
	t_eq(frc, rc);
	if (rc) {
		/* "t.txt:LINE: why" against "PATH:LINE: why" */
		at = strchr(msg, ':');
		t_assert(at && strstr(tier_errmsg(), at));
		return;
	}
	t_eq(m, n);
	for (size_t j = 0; j < n; j++) {
		t_eq(f[j].page, e[j].page);
		t_eq(f[j].kind, e[j].kind);
	}
	free(f);
}

static void test_parse_table(void)
{
	struct tier_trace_ent *e;
	size_t i, j, n;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *text = cases[i].text;
		/* Not NUL-terminated: an exact-size heap copy. */
		size_t len = strlen(text);
		char *buf = malloc(len ? len : 1);

		t_assert(buf);
		memcpy(buf, text, len);
		e = NULL;
		rc = trace_parse_text(buf, len, NPAGES, "t.txt", &e, &n);
		free(buf);
		if (rc != cases[i].rc) {
			fprintf(stderr, "case %zu: rc %d want %d (%s)\n", i, rc,
				cases[i].rc, tier_errmsg());
			exit(T_FAIL);
		}
		if (rc) {
			if (cases[i].msg && !strstr(tier_errmsg(), cases[i].msg)) {
				fprintf(stderr, "case %zu: message \"%s\" lacks \"%s\"\n",
					i, tier_errmsg(), cases[i].msg);
				exit(T_FAIL);
			}
			check_file_parse(text, rc, e, n);
			continue;
		}
		if (n != cases[i].n) {
			fprintf(stderr, "case %zu: %zu entries, want %zu\n", i, n,
				cases[i].n);
			exit(T_FAIL);
		}
		for (j = 0; j < n; j++) {
			if (e[j].page != cases[i].ent[j].page ||
			    e[j].kind != cases[i].ent[j].kind || e[j].t_ns) {
				fprintf(stderr, "case %zu entry %zu: page %llu kind %d\n",
					i, j, (unsigned long long)e[j].page,
					e[j].kind);
				exit(T_FAIL);
			}
		}
		check_file_parse(text, rc, e, n);
		free(e);
	}
}

static void test_round_trip(void)
{
	struct tier_trace_ent in[300], *out;
	const char *first;
	size_t i, len, n;
	char *text;

	for (i = 0; i < 300; i++) {
		in[i].page = (i * 7919) % 1000;	/* distinct, scattered */
		in[i].t_ns = 0;
		in[i].kind = 1 + i % 3;
	}
	t_ok(trace_format_text(in, 300, &text, &len));
	t_eq(strlen(text), len);
	t_assert(!strncmp(text, "# tier trace: page offsets and first-access kind\n",
			  49));
	first = text + 49;
	t_assert(!strncmp(first, "0x0 r\n0x397000 w\n0x346000 rw\n", 29));
	t_ok(trace_parse_text(text, len, 1000, "rt", &out, &n));
	t_eq(n, 300);
	for (i = 0; i < 300; i++) {
		t_eq(out[i].page, in[i].page);
		t_eq(out[i].kind, in[i].kind);
	}
	free(out);
	/* The highest page needs an image of max + 1 pages. */
	for (i = 0, n = 0; i < 300; i++)
		if (in[i].page > n)
			n = in[i].page;
	t_ok(trace_parse_text(text, len, n + 1, "rt", &out, &n));
	free(out);
	for (i = 0, n = 0; i < 300; i++)
		if (in[i].page > n)
			n = in[i].page;
	t_fails(trace_parse_text(text, len, n, "rt", &out, &n), -ERANGE);
	free(text);

	in[0].kind = 0;
	t_fails(trace_format_text(in, 1, &text, &len), -EINVAL);
}

static char root[256];

static int collect(const char *name, void *arg)
{
	strcat(arg, name);
	strcat(arg, ",");
	return 0;
}

static void test_store(void)
{
	static const char text[] =
		"# from some tool\n0x3000 w\n0x1000\n0x3000 r\n0x2000 rw\n";
	char img[300], txt[300], out[300], names[128] = "";
	unsigned char *page = calloc(4, 4096);
	struct tier_trace_ent *e;
	struct tier_store *st;
	struct tier_snap *s;
	size_t n, len;
	char *back;
	int fd;

	t_assert(page);
	snprintf(root, sizeof(root), "%s/tier-trace-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	t_assert(mkdtemp(root));
	snprintf(img, sizeof(img), "%s/vm.mem", root);
	snprintf(txt, sizeof(txt), "%s/t.txt", root);
	snprintf(out, sizeof(out), "%s/out.txt", root);
	page[4096 + 5] = 1;
	t_ok(write_file_atomic(img, page, 4 * 4096));
	t_ok(write_file_atomic(txt, text, sizeof(text) - 1));
	free(page);

	t_ok(tier_store_open(root, &st));
	t_ok(tier_import(st, "vm", img, NULL));
	t_ok(tier_snap_open(st, "vm", &s));

	t_ok(tier_trace_import(s, "run-1", txt));
	t_ok(tier_trace_import(s, "a", txt));
	t_ok(tier_trace_foreach(s, collect, names));
	t_assert(!strcmp(names, "a,run-1,"));

	t_ok(tier_trace_load(s, "run-1", &e, &n));
	t_eq(n, 3);
	t_eq(e[0].page, 3);
	t_eq(e[0].kind, TIER_ACCESS_W);
	t_eq(e[1].page, 1);
	t_eq(e[1].kind, TIER_ACCESS_R);
	t_eq(e[2].page, 2);
	t_eq(e[2].kind, TIER_ACCESS_RW);
	free(e);

	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	t_assert(fd >= 0);
	t_ok(tier_trace_export(s, "run-1", fd));
	close(fd);
	t_ok(read_file(out, (void **)&back, &len));
	t_assert(!strcmp(back,
			 "# tier trace: page offsets and first-access kind\n"
			 "0x3000 w\n0x1000 r\n0x2000 rw\n"));
	free(back);

	/* Errors name the file and line; nothing is stored. */
	t_ok(write_file_atomic(txt, "0x1000 r\n0x4000 w\n", 18));
	t_fails(tier_trace_import(s, "bad", txt), -ERANGE);
	t_assert(strstr(tier_errmsg(), "t.txt:2: offset 0x4000 past the end"));
	t_fails(tier_trace_load(s, "bad", &e, &n), -ENOENT);
	t_fails(tier_trace_import(s, "x/y", txt), -EINVAL);
	t_fails(tier_trace_import(s, "gone", "/nonexistent/t.txt"), -ENOENT);
	t_assert(strstr(tier_errmsg(), "/nonexistent/t.txt"));
	t_fails(tier_trace_export(s, "nope", 1), -ENOENT);

	/* A damaged stored trace is refused. */
	{
		char path[512];
		unsigned char c;

		snap_trace_path(s, "a", path, sizeof(path));
		fd = open(path, O_RDWR);
		t_assert(fd >= 0);
		t_assert(pread(fd, &c, 1, 80) == 1);
		c ^= 4;
		t_assert(pwrite(fd, &c, 1, 80) == 1);
		close(fd);
		t_fails(tier_trace_load(s, "a", &e, &n), -EBADMSG);
	}

	tier_snap_close(s);
	tier_store_close(st);
	t_ok(store_rmtree(root));
}

/*
 * A long trace for a small image, read from a file: lines across the
 * reader's chunks, every page many times over (merged: first place, r
 * then w is rw), and the memory bounded by the image, not the file (it
 * held the file, an entry a line and a sort of them: 656 MB for 10
 * million lines). A line longer than the reader's chunk is refused.
 */
static void test_long_file(void)
{
	char path[] = "/tmp/tier-trace-long.XXXXXX";
	const uint64_t npages = 4096, lines = 4000000;
	struct tier_trace_ent *e;
	FILE *f;
	size_t n;
	int fd, status;
	pid_t pid;

	fd = mkstemp(path);
	t_assert(fd >= 0);
	f = fdopen(fd, "w");
	t_assert(f);
	for (uint64_t i = 0; i < lines; i++) {
		uint64_t p = (npages - 1 - i) % npages;

		fprintf(f, "0x%llx %s\n", (unsigned long long)p * 4096 + i % 4096,
			i < npages ? "r" : i % 3 ? "r" : "w");
	}
	t_assert(fclose(f) == 0);

	fflush(NULL);
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		struct rusage a, b;

		getrusage(RUSAGE_SELF, &a);
		t_ok(trace_read_text(path, npages, &e, &n));
		getrusage(RUSAGE_SELF, &b);
		t_eq(n, npages);
		for (size_t i = 0; i < n; i++) {
			t_eq(e[i].page, npages - 1 - i);
			t_eq(e[i].kind, TIER_ACCESS_RW);
		}
		fprintf(stderr, "%llu lines, %llu pages: peak RSS +%ld KiB\n",
			(unsigned long long)lines, (unsigned long long)npages,
			b.ru_maxrss - a.ru_maxrss);
		t_assert(b.ru_maxrss - a.ru_maxrss < 8 * 1024);
		_exit(0);
	}
	t_assert(waitpid(pid, &status, 0) == pid);
	t_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* a comment of 2 MiB: longer than a chunk */
	f = fopen(path, "w");
	t_assert(f);
	fprintf(f, "0x1000 r\n#");
	for (int i = 0; i < 2 << 20; i++)
		fputc('x', f);
	fprintf(f, "\n0x2000 w\n");
	t_assert(fclose(f) == 0);
	t_fails(trace_read_text(path, npages, &e, &n), -EINVAL);
	t_assert(strstr(tier_errmsg(), ":2: line longer than"));
	unlink(path);
}

int main(void)
{
	test_parse_table();
	test_round_trip();
	test_store();
	test_long_file();
	return T_PASS;
}
