/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for traces: trace_parse_text() on arbitrary text and
 * trace_decode() on arbitrary bytes (the first input byte picks one and
 * gives the image size in pages). Not built by default:
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *		-DTIER_VERSION='"fuzz"' -I. -Iinclude tests/fuzz-trace.c \
 *		store/fmt.c store/manifest.c store/plan.c store/snap.c \
 *		store/trace.c placer/names.c util/err.c util/log.c \
 *		util/file.c util/checksum.c -lxxhash
 *	./a.out -max_len=4096
 * Whatever parses must format and parse back to the same entries, and
 * encode and decode to them too. -DFUZZ_RESEAL fixes a binary trace's
 * checksum first, to reach the checks behind it.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/snap.h"
#include "util/checksum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const struct tier_trace_ent *a, size_t n,
		 const struct tier_trace_ent *b, size_t m)
{
	size_t i;

	if (n != m)
		abort();
	for (i = 0; i < n; i++)
		if (a[i].page != b[i].page || a[i].kind != b[i].kind)
			abort();
}

static void text(const char *buf, size_t len, uint64_t npages)
{
	struct tier_trace_ent *e, *f;
	size_t n, m, tlen, blen;
	char *t;
	void *b;

	if (trace_parse_text(buf, len, npages, "fuzz", &e, &n))
		return;
	if (trace_format_text(e, n, &t, &tlen) ||
	    trace_parse_text(t, tlen, npages, "fuzz", &f, &m))
		abort();
	same(e, n, f, m);
	free(f);
	free(t);
	if (trace_encode(e, n, npages, FMT_TRACE_SRC_IMPORT, &b, &blen) ||
	    trace_decode(b, blen, "fuzz", npages, &f, &m))
		abort();
	same(e, n, f, m);
	free(f);
	free(b);
	free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tier_trace_ent *e;
	uint64_t npages;
	char *buf;
	size_t n;

	if (size < 1)
		return 0;
	npages = (data[0] >> 1) + 1;
	buf = malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1) {
#ifdef FUZZ_RESEAL
		if (size - 1 >= sizeof(struct fmt_trace_hdr)) {
			size_t off = offsetof(struct fmt_trace_hdr, checksum);
			uint64_t h;

			memset(buf + off, 0, 8);
			h = htole64(tier_csum(buf, size - 1));
			memcpy(buf + off, &h, 8);
		}
#endif
		if (!trace_decode(buf, size - 1, "fuzz", npages, &e, &n))
			free(e);
	} else {
		text(buf, size - 1, npages);
	}
	free(buf);
	return 0;
}
