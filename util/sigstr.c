/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Async-signal-safe line building (util/sigstr.h): plain loops over the
 * caller's buffer, no libc formatting, no locale, no allocation. */
#include <errno.h>

#include "util/sigstr.h"

void ss_init(struct sigstr *s, char *buf, size_t cap)
{
	s->buf = buf;
	s->cap = cap;
	s->len = 0;
	buf[0] = '\0';
}

void ss_str(struct sigstr *s, const char *str)
{
	while (*str && s->len + 1 < s->cap)
		s->buf[s->len++] = *str++;
	s->buf[s->len] = '\0';
}

void ss_u64(struct sigstr *s, uint64_t v)
{
	char d[21];
	int i = sizeof(d) - 1;

	d[i] = '\0';
	do {
		d[--i] = '0' + v % 10;
		v /= 10;
	} while (v);
	ss_str(s, d + i);
}

/* Worded as glibc's strerror does, so a reason reads the same whichever
 * path wrote it. */
static const struct {
	int err;
	const char *msg;
} names[] = {
	{ EIO, "Input/output error" },
	{ EBADMSG, "Bad message" },
	{ EPROTO, "Protocol error" },
	{ ECONNRESET, "Connection reset by peer" },
	{ EPIPE, "Broken pipe" },
	{ ETIMEDOUT, "Connection timed out" },
	{ ERANGE, "Numerical result out of range" },
	{ ENOENT, "No such file or directory" },
	{ EFAULT, "Bad address" },
	{ EINVAL, "Invalid argument" },
	{ ENOMEM, "Cannot allocate memory" },
	{ EAGAIN, "Resource temporarily unavailable" },
	{ EBUSY, "Device or resource busy" },
	{ ESRCH, "No such process" },
	{ EOPNOTSUPP, "Operation not supported" },
	{ ENOTCONN, "Transport endpoint is not connected" },
	{ ECONNREFUSED, "Connection refused" },
	{ EEXIST, "File exists" },
	{ ENOSPC, "No space left on device" },
	{ EBADF, "Bad file descriptor" },
	{ ESTALE, "Stale file handle" },
};

const char *ss_errno_str(int err)
{
	unsigned i;

	if (err < 0)
		err = -err;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].err == err)
			return names[i].msg;
	return NULL;
}

void ss_errno(struct sigstr *s, int err)
{
	const char *m = ss_errno_str(err);

	if (m) {
		ss_str(s, m);
		return;
	}
	ss_str(s, "error ");
	ss_u64(s, err < 0 ? -(uint64_t)err : (uint64_t)err);
}
