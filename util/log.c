/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The debug trace (util/log.h): tier_log() from tier_err(), the pool and
 * the restorer, to the tier_set_log_fn() hook or, when TIER_LOG asks for
 * it, stderr. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "util/log.h"

static void (*log_fn)(int level, const char *msg, void *arg);
static void *log_arg;
static int log_level = -1;	/* -1: not yet read from TIER_LOG */

static int env_level(void)
{
	const char *s = getenv("TIER_LOG");

	if (!s)
		return 0;
	if (!strcmp(s, "debug"))
		return TIER_LOG_DEBUG;
	if (!strcmp(s, "info"))
		return TIER_LOG_INFO;
	if (!strcmp(s, "err"))
		return TIER_LOG_ERR;
	return 0;
}

void tier_set_log_fn(void (*fn)(int level, const char *msg, void *arg),
		     void *arg)
{
	log_fn = fn;
	log_arg = arg;
}

void tier_log(int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	/* any thread may be first: the level is read once, atomically
	 * (every reader computes the same value) */
	int l = __atomic_load_n(&log_level, __ATOMIC_RELAXED);

	if (l < 0) {
		l = env_level();
		__atomic_store_n(&log_level, l, __ATOMIC_RELAXED);
	}
	if (!log_fn && level > l)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_fn)
		log_fn(level, msg, log_arg);
	else
		fprintf(stderr, "libtier: %s\n", msg);
}
