/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target "trace-bin" (and, with -DFUZZ_RESEAL, "trace-bin-reseal"):
 * trace_decode() on a stored trace file, for an image of the size the
 * file's header gives (when that is at most 2^24 pages; the store checks
 * the header against its snapshot first, which the unit tests cover).
 * What decodes must encode to the same header fields and entries but the
 * created_ns and reserved words the decoder drops, and decode again to
 * the same entries.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/fmt.h"
#include "store/snap.h"
#include "tests/fuzz/fuzz.h"

#define OFF(f)	offsetof(struct fmt_trace_hdr, f)
#define EOFF(f)	offsetof(struct fmt_trace_ent, f)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t hdr = sizeof(struct fmt_trace_hdr);
	const size_t esz = sizeof(struct fmt_trace_ent);
	struct tier_trace_ent *e, *f;
	uint8_t *buf = fuzz_dup(data, size);
	uint64_t npages = 1;
	size_t n, m, elen, i;
	uint8_t *enc;

	fuzz_reseal(buf, size, OFF(checksum));
	if (size >= hdr && fmt_get64(buf + OFF(npages)) <= 1U << 24)
		npages = fmt_get64(buf + OFF(npages));
	if (trace_decode(buf, size, "fuzz", npages, &e, &n)) {
		free(buf);
		return 0;
	}
	fuzz_assert(trace_encode(e, n, npages, fmt_get32(buf + OFF(source)),
				 (void **)&enc, &elen) == 0);
	fuzz_assert(elen == size);
	fuzz_assert(!memcmp(enc, buf, OFF(created_ns)));
	fuzz_assert(!memcmp(enc + OFF(source), buf + OFF(source), 4));
	for (i = 0; i < n; i++)
		fuzz_assert(!memcmp(enc + hdr + i * esz, buf + hdr + i * esz,
				    EOFF(reserved)));

	fuzz_assert(trace_decode(enc, elen, "fuzz", npages, &f, &m) == 0);
	fuzz_assert(m == n);
	for (i = 0; i < n; i++)
		fuzz_assert(e[i].page == f[i].page && e[i].kind == f[i].kind &&
			    e[i].t_ns == f[i].t_ns);
	free(f);
	free(enc);
	free(e);
	free(buf);
	return 0;
}
