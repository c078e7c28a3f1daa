/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The thread-local failure reason (util/err.h): tier_err() at every
 * failure site of the library, tier_errmsg() for its callers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tier.h"
#include "util/err.h"
#include "util/log.h"

#define ERRMSG_MAX 512

static __thread char errmsg[ERRMSG_MAX];

int tier_err(int rc, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	/* %m is the reason of @rc, whatever ran since the failure */
	if (rc < 0)
		errno = -rc;
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	tier_log(TIER_LOG_DEBUG, "error %d: %s", rc, errmsg);
	errno = saved;
	return rc;
}

int tier_err_ctx(int rc, const char *fmt, ...)
{
	char old[ERRMSG_MAX], ctx[ERRMSG_MAX / 2];
	int saved = errno;
	va_list ap;

	memcpy(old, errmsg, sizeof(old));
	va_start(ap, fmt);
	if (rc < 0)
		errno = -rc;
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	errno = saved;
	/* the context goes first; the old reason is cut if both don't fit */
	snprintf(errmsg, sizeof(errmsg), "%s: %.*s", ctx,
		 (int)(sizeof(errmsg) - strlen(ctx) - 3), old);
	return rc;
}

const char *tier_errmsg(void)
{
	return errmsg[0] ? errmsg : "no error";
}
