/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target "plan" (and, with -DFUZZ_RESEAL, "plan-reseal"):
 * plan_decode() on a plan file as it is on disk. What decodes must encode
 * to the same header fields (created_ns too, unless it was 0) and the
 * same extents, and decode again to the same plan.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/snap.h"
#include "tests/fuzz/fuzz.h"

#define OFF(f)	offsetof(struct fmt_plan_hdr, f)
#define EOFF(f)	offsetof(struct fmt_plan_ext, f)

static void same_ext(const struct placer_ext *a, const struct placer_ext *b,
		     size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		fuzz_assert(a[i].page == b[i].page &&
			    a[i].npages == b[i].npages &&
			    a[i].cls == b[i].cls && a[i].source == b[i].source &&
			    a[i].method == b[i].method &&
			    a[i].flags == b[i].flags &&
			    a[i].src_off == b[i].src_off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t hdr = sizeof(struct fmt_plan_hdr);
	const size_t esz = sizeof(struct fmt_plan_ext);
	struct plan p = { 0 }, q = { 0 };
	uint8_t *buf = fuzz_dup(data, size);
	size_t elen, i;
	uint8_t *enc;

	fuzz_reseal(buf, size, OFF(checksum));
	if (plan_decode(buf, size, "fuzz", &p)) {
		free(buf);
		return 0;
	}
	fuzz_assert(plan_encode(&p, (void **)&enc, &elen) == 0);
	fuzz_assert(elen == size);
	/* an older version is written as the current one: v1's reserved
	 * word where v2 keeps the generation reads, and writes, as 0 */
	{
		uint32_t v;

		memcpy(&v, buf + OFF(version), 4);
		if (le32toh(v) < FMT_PLAN_VERSION) {
			v = htole32(FMT_PLAN_VERSION);
			memcpy(buf + OFF(version), &v, 4);
			memset(buf + OFF(generation), 0, 8);
		}
	}
	/* policy, npages, nextents; the URIs, gap, ntraces, confidence and
	 * capacity; created_ns when it was set */
	fuzz_assert(!memcmp(enc, buf, OFF(created_ns)));
	fuzz_assert(!memcmp(enc + OFF(cxl), buf + OFF(cxl),
			    OFF(reserved) - OFF(cxl)));
	fuzz_assert(!p.hdr.created_ns ||
		    !memcmp(enc + OFF(created_ns), buf + OFF(created_ns), 8));
	/* every extent but its reserved word */
	for (i = 0; i < p.n; i++)
		fuzz_assert(!memcmp(enc + hdr + i * esz, buf + hdr + i * esz,
				    EOFF(reserved)) &&
			    !memcmp(enc + hdr + i * esz + EOFF(src_off),
				    buf + hdr + i * esz + EOFF(src_off), 8));

	fuzz_assert(plan_decode(enc, elen, "fuzz", &q) == 0);
	fuzz_assert(p.n == q.n && p.hdr.npages == q.hdr.npages &&
		    p.hdr.generation == q.hdr.generation &&
		    p.hdr.policy == q.hdr.policy &&
		    !strcmp(p.hdr.cxl, q.hdr.cxl) &&
		    !strcmp(p.hdr.pool, q.hdr.pool));
	same_ext(p.ext, q.ext, p.n);

	free(enc);
	plan_free(&p);
	plan_free(&q);
	free(buf);
	return 0;
}
