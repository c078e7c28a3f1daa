/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target "uri": uri_parse() on a tier URI as a user writes it
 * (the whole input, made a string; no selector byte, any kind wanted).
 * What parses must format to a canonical text that parses back to the
 * same fields and formats to the same text again, and parse where its
 * side (CXL or pool) is wanted and nowhere else.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/uri.h"
#include "tests/fuzz/fuzz.h"

static int same(const struct tier_uri *u, const struct tier_uri *v)
{
	return u->kind == v->kind && !strcmp(u->path, v->path) &&
	       !strcmp(u->host, v->host) && u->port == v->port &&
	       u->node == v->node &&
	       !memcmp(&u->rados, &v->rados, sizeof(u->rados));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char buf[PATH_MAX + 512], again[PATH_MAX + 512];
	struct tier_uri u, v;
	int cxl;
	char *s;

	if (size > PATH_MAX + 512)
		return 0;
	s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	if (uri_parse(s, 0, &u)) {
		free(s);
		return 0;
	}
	fuzz_assert(uri_format(&u, buf, sizeof(buf)) == 0);
	fuzz_assert(uri_parse(buf, 0, &v) == 0);
	fuzz_assert(same(&u, &v));
	fuzz_assert(uri_format(&v, again, sizeof(again)) == 0);
	fuzz_assert(!strcmp(buf, again));
	cxl = u.kind == URI_CXL_DIR || u.kind == URI_CXL_DEVDAX ||
	      u.kind == URI_CXL_NUMA;
	fuzz_assert((uri_parse(s, URI_WANT_CXL, &v) == 0) == cxl);
	fuzz_assert((uri_parse(s, URI_WANT_POOL, &v) == 0) == !cxl);
	free(s);
	return 0;
}
