/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* suite: unit -- tier_csum is XXH3-64 (seed 0); tier_is_zero finds any
 * non-zero byte of a page. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "util/checksum.h"

/*
 * Vectors from xxhsum 0.8.1 (`xxhsum -H3`, its own statically built copy of
 * the reference code, not libxxhash), over bytes b[i] = (i * 31 + 7) & 0xff.
 * The lengths cover every XXH3 code path: 0, 1-3, 4-8, 9-16, 17-128,
 * 129-240 and the long loop (stripes, blocks, a partial last block).
 */
static const struct {
	size_t len;
	uint64_t h;
} vec[] = {
	{ 0, 0x2d06800538d394c2ULL },
	{ 1, 0x4c5cca45d0f4811fULL },
	{ 3, 0x15f7093b173d005cULL },
	{ 4, 0xdca012f95811b6b9ULL },
	{ 8, 0xdec6a9a43575982eULL },
	{ 9, 0xcbe393399f17ffbdULL },
	{ 16, 0x7e484c18d74895d0ULL },
	{ 17, 0x208bde5ee2bed407ULL },
	{ 128, 0xf92b70eaa21a6288ULL },
	{ 129, 0xf8f76713f2bb60faULL },
	{ 240, 0xccc7375172c41f03ULL },
	{ 241, 0x0b3b630948ce4a00ULL },
	{ 1024, 0x23bc880ebf0d29c6ULL },
	{ 4096, 0xa3c19f8174cde0bbULL },
	{ 100000, 0xccf90df7e7e37036ULL },
};

int main(void)
{
	static uint64_t page[4096 / 8];
	unsigned char *buf, *pb = (unsigned char *)page;
	size_t i, off;

	buf = malloc(100000);
	t_assert(buf);
	for (i = 0; i < 100000; i++)
		buf[i] = (i * 31 + 7) & 0xff;
	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		uint64_t h = tier_csum(buf, vec[i].len);

		if (h != vec[i].h) {
			fprintf(stderr, "len %zu: 0x%016llx, want 0x%016llx\n",
				vec[i].len, (unsigned long long)h,
				(unsigned long long)vec[i].h);
			return T_FAIL;
		}
	}
	/* Other literal inputs, also from xxhsum -H3. */
	t_assert(tier_csum("abc", 3) == 0x78af5f94892f3950ULL);
	t_assert(tier_csum(page, sizeof(page)) == 0x93d76fe148c689baULL);
	free(buf);

	t_assert(tier_is_zero(page, sizeof(page)));
	t_assert(tier_is_zero(page, 8));
	t_assert(tier_is_zero(page, 0));
	/* Every byte position, with a low and a high bit. */
	for (off = 0; off < sizeof(page); off++) {
		pb[off] = 0x01;
		t_assert(!tier_is_zero(page, sizeof(page)));
		pb[off] = 0x80;
		t_assert(!tier_is_zero(page, sizeof(page)));
		pb[off] = 0;
		/* A shorter prefix that ends before the byte stays zero. */
		if (off % 8 == 0 && off) {
			pb[off] = 0xff;
			t_assert(tier_is_zero(page, off));
			t_assert(!tier_is_zero(page, off + 8));
			pb[off] = 0;
		}
	}
	t_assert(tier_is_zero(page, sizeof(page)));
	return T_PASS;
}
