/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_UTIL_ERR_H
#define TIER_UTIL_ERR_H

/*
 * Records the one-line reason for a failure in this thread and returns
 * @rc (a negative errno), so a failure site reads
 *	return tier_err(-EBADMSG, "%s: not a tier snapshot", path);
 * %m is the reason of @rc (strerror(-rc)), not whatever errno holds by
 * then: a saved rc needs no errno = -rc first. errno is left as it was.
 */
int tier_err(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prefixes the current reason: "CTX: <old reason>"; returns @rc (%m as
 * for tier_err). */
int tier_err_ctx(int rc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
