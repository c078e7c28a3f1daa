/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An index function (compiled to wasm32-wasi): init builds a sorted key
 * array with postings (document ids per key), as a search function loads
 * its prebuilt index; a call binary-searches one key and sums its
 * postings, touching about log2(n) pages of keys and one of postings.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PER_KEY 6

static uint32_t *keys, *post, nkeys;

static uint32_t key_of(uint32_t i)
{
	return (i * 2654435761u) ^ 0x5bd1e995u;
}

static int cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

__attribute__((export_name("init"))) int init(int n)
{
	uint32_t i, k;

	nkeys = n;
	keys = malloc((size_t)n * 4);
	post = malloc((size_t)n * 4 * PER_KEY);
	if (!keys || !post) {
		fprintf(stderr, "index: out of memory for %d keys\n", n);
		return -1;
	}
	for (i = 0; i < nkeys; i++)
		keys[i] = key_of(i);
	qsort(keys, nkeys, 4, cmp);
	for (i = 0; i < nkeys; i++)
		for (k = 0; k < PER_KEY; k++)
			post[i * PER_KEY + k] = keys[i] % 100003u + k * 7;
	return 0;
}

/* The sum of the postings of key @i (1 + sum), or 0 if absent. */
__attribute__((export_name("call"))) int call(int i)
{
	uint32_t key = key_of(i < 0 ? (uint32_t)-i + nkeys : (uint32_t)i);
	uint32_t lo = 0, hi = nkeys, k, s = 1;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (keys[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == nkeys || keys[lo] != key)
		return 0;
	for (k = 0; k < PER_KEY; k++)
		s += post[lo * PER_KEY + k];
	return (int)s;
}
