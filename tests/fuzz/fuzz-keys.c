/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target "keys": pool_keys_parse() on a pool server's key file
 * (rdma/keys.c). What parses must format line by line to a text that
 * parses back to the same keys, which formats to the same text again; the
 * scope check must hold for what the parser accepted (revoked: nothing;
 * admin: everything; else a matching pattern).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdma/keys.h"
#include "tests/fuzz/fuzz.h"

static char *format_all(const struct pool_key *k, unsigned n, size_t *len)
{
	char *out = malloc((size_t)n * 512 + 1), line[512];
	size_t off = 0;

	if (!out)
		abort();
	for (unsigned i = 0; i < n; i++) {
		fuzz_assert(pool_key_format(&k[i], line, sizeof(line)) == 0);
		memcpy(out + off, line, strlen(line));
		off += strlen(line);
	}
	out[off] = '\0';
	*len = off;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pool_key *k, *k2;
	unsigned n, n2;
	size_t len, len2;
	char *t, *t2;

	if (size > 1 << 16)
		return 0;
	if (pool_keys_parse((const char *)data, size, "fuzz", &k, &n))
		return 0;
	t = format_all(k, n, &len);
	fuzz_assert(pool_keys_parse(t, len, "again", &k2, &n2) == 0);
	fuzz_assert(n2 == n);
	for (unsigned i = 0; i < n; i++) {
		fuzz_assert(!strcmp(k[i].id, k2[i].id));
		fuzz_assert(k[i].role == k2[i].role);
		fuzz_assert(!strcmp(k[i].snaps, k2[i].snaps));
		fuzz_assert(!memcmp(k[i].secret, k2[i].secret, POOL_SECRET_LEN));
		fuzz_assert(k[i].revoked == k2[i].revoked);
		fuzz_assert(pool_key_id_check(k[i].id) == 0);
		fuzz_assert(pool_snaps_check(k[i].snaps) == 0);
		if (k[i].revoked)
			fuzz_assert(!pool_key_allows(&k[i], POOL_ROLE_READ, "a/b"));
		else if (k[i].role == POOL_ROLE_ADMIN)
			fuzz_assert(pool_key_allows(&k[i], POOL_ROLE_ADMIN, "zz/q"));
		else
			fuzz_assert(!pool_key_allows(&k[i], POOL_ROLE_ADMIN, "a/b"));
		if (!k[i].revoked && !strcmp(k[i].snaps, "*"))
			fuzz_assert(pool_key_allows(&k[i], POOL_ROLE_READ, "x/y"));
	}
	t2 = format_all(k2, n2, &len2);
	fuzz_assert(len2 == len && !memcmp(t, t2, len));
	free(t);
	free(t2);
	free(k);
	free(k2);
	return 0;
}
