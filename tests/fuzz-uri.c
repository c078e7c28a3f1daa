/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for uri_parse()/uri_format(); not built by default:
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *		-I. -Iinclude tests/fuzz-uri.c util/uri.c util/err.c util/log.c
 *	./a.out -max_len=4200
 * Whatever parses must format and parse back to the same fields.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char s[PATH_MAX + 512], buf[PATH_MAX + 512];
	struct tier_uri u, v;
	unsigned want;

	if (size < 1 || size > sizeof(s))
		return 0;
	want = data[0] & 3;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';

	if (uri_parse(s, want, &u))
		return 0;
	if (uri_format(&u, buf, sizeof(buf)) || uri_parse(buf, 0, &v))
		abort();
	if (u.kind != v.kind || strcmp(u.path, v.path) ||
	    strcmp(u.host, v.host) || u.port != v.port || u.node != v.node)
		abort();
	return 0;
}
