/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target "manifest" (and, with -DFUZZ_RESEAL, "manifest-reseal"):
 * manifest_decode() on a snapshot's manifest file as it is on disk. What
 * decodes must encode to the same bytes, but for the fields the decoder
 * does not keep (created_ns, reserved) and the checksum over them, and
 * decode again to the same snapshot.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/snap.h"
#include "tests/fuzz/fuzz.h"

#define OFF(f)	offsetof(struct fmt_manifest_hdr, f)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t hdr = sizeof(struct fmt_manifest_hdr);
	struct tier_snap s = { 0 }, t = { 0 };
	uint8_t *buf = fuzz_dup(data, size);
	size_t elen;
	uint8_t *enc;

	fuzz_reseal(buf, size, OFF(checksum));
	if (manifest_decode(buf, size, "fuzz", &s)) {
		free(buf);
		return 0;
	}
	fuzz_assert(manifest_encode(&s, (void **)&enc, &elen) == 0);
	fuzz_assert(elen == size);
	fuzz_assert(!memcmp(enc, buf, OFF(created_ns)));
	fuzz_assert(!memcmp(enc + OFF(name), buf + OFF(name),
			    OFF(reserved) - OFF(name)));
	fuzz_assert(!memcmp(enc + hdr, buf + hdr, size - hdr));

	fuzz_assert(manifest_decode(enc, elen, "fuzz", &t) == 0);
	fuzz_assert(!strcmp(s.name, t.name) && s.size == t.size &&
		    s.npages == t.npages && s.nzero == t.nzero &&
		    s.nregions == t.nregions);
	fuzz_assert(!memcmp(s.regions, t.regions,
			    s.nregions * sizeof(*s.regions)));
	fuzz_assert(!memcmp(s.zero, t.zero, (s.npages + 63) / 64 * 8));
	fuzz_assert(!memcmp(s.csum, t.csum, s.npages * 8));

	free(enc);
	free(s.regions);
	free(s.zero);
	free(s.csum);
	free(t.regions);
	free(t.zero);
	free(t.csum);
	free(buf);
	return 0;
}
