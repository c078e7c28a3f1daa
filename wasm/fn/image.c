/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An image function (compiled to wasm32-wasi): init decodes a
 * run-length-encoded RGBA image into a pixel buffer, as a thumbnailer or
 * a model's input stage does with its reference image; a call sums one
 * 16x16 tile chosen by the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint32_t *px;
static uint32_t w, h;

/* The encoded file: (count, RGBA) runs of a procedural picture. */
static uint32_t *encode(uint32_t *nruns)
{
	uint32_t cap = w * h / 2 + 16, n = 0, y, x, run;
	uint32_t *enc = malloc(cap * 2 * sizeof(*enc));

	for (y = 0; y < h; y++) {
		for (x = 0; x < w; x += run) {
			uint32_t c = ((x / 24) * 0x10305 ^ (y / 20) * 0x70103 ^
				      (x * y / 97)) | 0xff000000u;

			run = 4 - ((x ^ y) & 1);
			if (x + run > w)
				run = w - x;
			if (n == cap)
				return NULL;
			enc[2 * n] = run;
			enc[2 * n + 1] = c;
			n++;
		}
	}
	*nruns = n;
	return enc;
}

__attribute__((export_name("init"))) int init(int side)
{
	uint32_t nruns, i, k, o = 0, *enc;

	w = h = side;
	enc = encode(&nruns);
	px = malloc((size_t)w * h * 4);
	if (!enc || !px) {
		fprintf(stderr, "image: out of memory for %dx%d\n", side, side);
		return -1;
	}
	for (i = 0; i < nruns; i++)
		for (k = 0; k < enc[2 * i]; k++)
			px[o++] = enc[2 * i + 1];
	free(enc);
	return o == w * h ? 0 : -1;
}

/* The sum of the channels of tile @t (row-major tiles of 16x16). */
__attribute__((export_name("call"))) int call(int t)
{
	uint32_t tw = w / 16, tx = ((uint32_t)t % (tw * (h / 16))) % tw;
	uint32_t ty = ((uint32_t)t % (tw * (h / 16))) / tw, x, y, s = 0;

	for (y = ty * 16; y < ty * 16 + 16; y++)
		for (x = tx * 16; x < tx * 16 + 16; x++) {
			uint32_t c = px[y * w + x];

			s += (c & 0xff) + (c >> 8 & 0xff) + (c >> 16 & 0xff);
		}
	return (int)s;
}
