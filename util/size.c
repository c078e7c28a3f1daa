/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * parse_size and parse_uint (util/size.h): sizes and counts from the
 * command line, for tierctl's commands and bench's tier-gen. Decimal, or
 * hexadecimal with 0x; never octal ("010" is ten).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"
#include "util/size.h"

static int is_hex(const char *s)
{
	return s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
}

int parse_uint(const char *s, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!*s || *s == '-')
		return tier_err(-EINVAL, "bad number '%s'", s);
	v = strtoull(s, &end, is_hex(s) ? 16 : 10);
	if (errno || *end || v > max)
		return tier_err(-EINVAL, "bad number '%s'", s);
	*ret = v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret)
{
	static const char units[] = "KMGT";
	const char *u;
	long double v, mul = 1;
	unsigned long long iv;
	char *end;

	if (!*s || *s == '-')
		return tier_err(-EINVAL, "bad size '%s'", s);
	/* exact integers first, so 0x1000 and huge byte counts stay exact */
	errno = 0;
	iv = strtoull(s, &end, is_hex(s) ? 16 : 10);
	if (!errno && !*end) {
		*ret = iv;
		return 0;
	}
	errno = 0;
	v = strtold(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return tier_err(-EINVAL, "bad size '%s'", s);
	if (*end) {
		u = strchr(units, *end & ~0x20);
		if (!u || !*u)
			return tier_err(-EINVAL, "bad size '%s': unit not one of K, M, G, T", s);
		mul = 1ULL << (10 * (u - units + 1));
		end++;
		/* "4k", "4KB", "4KiB" all mean 4096 */
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
		if (*end)
			return tier_err(-EINVAL, "bad size '%s'", s);
	}
	v *= mul;
	if (v >= 18446744073709551615.0L)
		return tier_err(-EINVAL, "bad size '%s': too large", s);
	*ret = (uint64_t)v;
	return 0;
}

int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
