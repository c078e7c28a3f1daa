/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_UTIL_SIGSTR_H
#define TIER_UTIL_SIGSTR_H

/*
 * A one-line reason built inside a signal handler (util/sigstr.c): the
 * SIGBUS fault path (store/restore-sigbus.c) and the transports' reads
 * for it. snprintf and strerror are not async-signal-safe (snprintf may
 * allocate, strerror may load a locale), so this appends strings and
 * numbers into the caller's buffer by hand; it always NUL-terminates and
 * cuts what does not fit.
 */

#include <stddef.h>
#include <stdint.h>

struct sigstr {
	char *buf;
	size_t cap;		/* bytes of buf, NUL included */
	size_t len;
};

/* Starts an empty line in @buf (@cap > 0). */
void ss_init(struct sigstr *s, char *buf, size_t cap);
void ss_str(struct sigstr *s, const char *str);
void ss_u64(struct sigstr *s, uint64_t v);
/* The name of errno @err (positive or negative), as strerror words it
 * for the errors a fetch can meet; "error N" otherwise. */
void ss_errno(struct sigstr *s, int err);
/* The same text as ss_errno, for callers without a buffer. */
const char *ss_errno_str(int err);

#endif
