/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the commands: errors, store opening, number parsing. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier.h"
#include "tierctl/tierctl.h"
#include "util/err.h"

int cli_usage(const char *usage, int rc)
{
	fputs(usage, rc ? stderr : stdout);
	return rc;
}

int cli_fail(const char *cmd)
{
	fprintf(stderr, "%s: %s\n", cmd, tier_errmsg());
	return 1;
}

int cli_bad(const char *cmd, const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return cli_usage(usage, 2);
}

int cli_open_snap(const char *cmd, const char *store_path, const char *name,
		  struct tier_store **ret_store, struct tier_snap **ret_snap)
{
	struct tier_store *store;
	struct tier_snap *snap;

	if (tier_store_open(store_path, &store))
		return cli_fail(cmd);
	if (tier_snap_open(store, name, &snap)) {
		cli_fail(cmd);
		tier_store_close(store);
		return 1;
	}
	*ret_store = store;
	*ret_snap = snap;
	return 0;
}

/* Decimal, or hexadecimal with 0x; never octal ("010" is ten). */
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

const char *fmt_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = bytes;
	unsigned i = 0;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0,
			 v, units[i]);
	return buf;
}

const char *fmt_time(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000ULL);
	struct tm tm;

	if (!ns || !gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "unknown");
	return buf;
}

double pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * part / whole : 0;
}

double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void json_str(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static int count_one(const char *name, void *arg)
{
	(*(unsigned *)arg)++;
	return 0;
}

unsigned snap_ntraces(struct tier_snap *snap)
{
	unsigned n = 0;

	if (tier_trace_foreach(snap, count_one, &n) < 0)
		return 0;
	return n;
}
