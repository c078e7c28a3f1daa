/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_TESTS_FUZZ_H
#define TIER_TESTS_FUZZ_H

/*
 * What the libFuzzer targets of tests/fuzz/ share (doc/fuzzing.md). Each
 * target is one LLVMFuzzerTestOneInput; an invariant that does not hold
 * is an abort() naming it, which libFuzzer reports as a crash.
 */

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/checksum.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define fuzz_assert(cond) do {						\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
				__FILE__, __LINE__, #cond);		\
			abort();					\
		}							\
	} while (0)

/* An exact-size heap copy of the input, so a read past its end is caught
 * (libFuzzer's own buffer is exact too, but a parser may keep a pointer). */
static inline void *fuzz_dup(const uint8_t *data, size_t size)
{
	void *buf = malloc(size ? size : 1);

	if (!buf)
		abort();
	memcpy(buf, data, size);
	return buf;
}

/*
 * Random bytes rarely carry the right XXH3-64, so the checks behind a
 * file's checksum would never run. Built with -DFUZZ_RESEAL (the
 * "-reseal" targets), this rewrites the 8-byte checksum at @off as the
 * store computes it (over the file with the field zeroed) before the
 * decode; without it, it does nothing.
 */
static inline void fuzz_reseal(void *buf, size_t len, size_t off)
{
#ifdef FUZZ_RESEAL
	uint64_t h;

	if (len < off + 8)
		return;
	memset((char *)buf + off, 0, 8);
	h = htole64(tier_csum(buf, len));
	memcpy((char *)buf + off, &h, 8);
#else
	(void)buf;
	(void)len;
	(void)off;
#endif
}

#endif
