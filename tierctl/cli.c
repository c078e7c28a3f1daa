/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the commands: errors, store opening, formatting. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
