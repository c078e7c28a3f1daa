/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target "trace-text": trace_parse_text() on a text trace as
 * "tierctl trace import" reads it, for an image of 1 GiB. What parses
 * holds each page once, inside the image, and must format and parse back
 * to the same entries, and encode and decode (the binary form) to them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/snap.h"
#include "tests/fuzz/fuzz.h"

#define NPAGES	(1ULL << 18)

static void same(const struct tier_trace_ent *a, size_t n,
		 const struct tier_trace_ent *b, size_t m)
{
	size_t i;

	fuzz_assert(n == m);
	for (i = 0; i < n; i++)
		fuzz_assert(a[i].page == b[i].page && a[i].kind == b[i].kind);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tier_trace_ent *e, *f;
	char *buf = fuzz_dup(data, size), *t;
	size_t n, m, tlen, blen;
	void *b;

	if (trace_parse_text(buf, size, NPAGES, "fuzz", &e, &n)) {
		free(buf);
		return 0;
	}
	fuzz_assert(trace_format_text(e, n, &t, &tlen) == 0);
	fuzz_assert(trace_parse_text(t, tlen, NPAGES, "fuzz", &f, &m) == 0);
	same(e, n, f, m);
	free(f);
	free(t);
	/* the encoder checks range, kind and that no page repeats */
	fuzz_assert(trace_encode(e, n, NPAGES, FMT_TRACE_SRC_IMPORT, &b,
				 &blen) == 0);
	fuzz_assert(trace_decode(b, blen, "fuzz", NPAGES, &f, &m) == 0);
	same(e, n, f, m);
	free(f);
	free(b);
	free(e);
	free(buf);
	return 0;
}
