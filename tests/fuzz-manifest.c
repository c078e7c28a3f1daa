/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the store's binary files: manifest_decode() and
 * plan_decode() (the first input byte picks one). Not built by default:
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *		-DTIER_VERSION='"fuzz"' -I. -Iinclude tests/fuzz-manifest.c \
 *		store/fmt.c store/manifest.c store/plan.c store/snap.c \
 *		store/trace.c placer/names.c util/err.c util/log.c \
 *		util/file.c util/checksum.c -lxxhash
 *	./a.out -max_len=8192
 * Random bytes rarely pass the checksum; to reach the checks behind it,
 * build with -DFUZZ_RESEAL and the harness fixes the checksum first.
 * Whatever decodes must encode and decode back to the same content.
 */
#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/snap.h"
#include "util/checksum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void reseal(uint8_t *buf, size_t len, size_t off)
{
#ifdef FUZZ_RESEAL
	uint64_t h;

	if (len < off + 8)
		return;
	memset(buf + off, 0, 8);
	h = htole64(tier_csum(buf, len));
	memcpy(buf + off, &h, 8);
#endif
}

static void manifest(uint8_t *buf, size_t len)
{
	struct tier_snap s = { 0 }, t = { 0 };
	size_t elen;
	void *enc;

	reseal(buf, len, offsetof(struct fmt_manifest_hdr, checksum));
	if (manifest_decode(buf, len, "fuzz", &s))
		return;
	if (manifest_encode(&s, &enc, &elen) ||
	    manifest_decode(enc, elen, "fuzz", &t))
		abort();
	if (elen != len || strcmp(s.name, t.name) || s.size != t.size ||
	    s.nzero != t.nzero || s.nregions != t.nregions ||
	    memcmp(s.regions, t.regions, s.nregions * sizeof(*s.regions)) ||
	    memcmp(s.zero, t.zero, (s.npages + 63) / 64 * 8) ||
	    memcmp(s.csum, t.csum, s.npages * 8))
		abort();
	free(enc);
	free(s.regions);
	free(s.zero);
	free(s.csum);
	free(t.regions);
	free(t.zero);
	free(t.csum);
}

static void plan(uint8_t *buf, size_t len)
{
	struct plan p = { 0 }, q = { 0 };
	size_t elen, i;
	void *enc;

	reseal(buf, len, offsetof(struct fmt_plan_hdr, checksum));
	if (plan_decode(buf, len, "fuzz", &p))
		return;
	if (plan_encode(&p, &enc, &elen) ||
	    plan_decode(enc, elen, "fuzz", &q))
		abort();
	if (elen != len || p.n != q.n || p.hdr.npages != q.hdr.npages ||
	    p.hdr.policy != q.hdr.policy || strcmp(p.hdr.cxl, q.hdr.cxl) ||
	    strcmp(p.hdr.pool, q.hdr.pool))
		abort();
	for (i = 0; i < p.n; i++)
		if (p.ext[i].page != q.ext[i].page ||
		    p.ext[i].npages != q.ext[i].npages ||
		    p.ext[i].cls != q.ext[i].cls ||
		    p.ext[i].source != q.ext[i].source ||
		    p.ext[i].method != q.ext[i].method ||
		    p.ext[i].flags != q.ext[i].flags ||
		    p.ext[i].src_off != q.ext[i].src_off)
			abort();
	free(enc);
	plan_free(&p);
	plan_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;

	if (size < 1)
		return 0;
	/* An exact-size copy, so reading past the end is caught. */
	buf = malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	if (data[0] & 1)
		plan(buf, size - 1);
	else
		manifest(buf, size - 1);
	free(buf);
	return 0;
}
