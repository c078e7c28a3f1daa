/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"
#include "vmm/qmp.h"

struct qmp {
	int fd;
	char path[108];
	char buf[65536];
	size_t len;		/* bytes buffered, not yet returned as lines */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Next line (without '\n') into @line; -ETIMEDOUT, -ECONNRESET. */
static int qmp_line(struct qmp *q, char *line, size_t len, long long deadline)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		ssize_t n;
		int rc;

		if (nl) {
			size_t l = nl - q->buf;

			snprintf(line, len, "%.*s", (int)l, q->buf);
			memmove(q->buf, nl + 1, q->len - l - 1);
			q->len -= l + 1;
			return 0;
		}
		if (q->len == sizeof(q->buf))
			return tier_err(-EPROTO, "qmp %s: line too long", q->path);
		rc = poll(&pfd, 1, (int)(deadline - now_ms() > 0 ?
					 deadline - now_ms() : 0));
		if (rc == 0)
			return tier_err(-ETIMEDOUT, "qmp %s: no answer", q->path);
		if (rc < 0 && errno != EINTR)
			return tier_err(-errno, "qmp %s: %m", q->path);
		n = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (n == 0)
			return tier_err(-ECONNRESET, "qmp %s: QEMU closed the connection",
					q->path);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return tier_err(-errno, "qmp %s: %m", q->path);
		if (n > 0)
			q->len += n;
	}
}

int qmp_exec(struct qmp *q, const char *cmd, char *reply, size_t len,
	     int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	char line[8192];
	size_t off = 0, clen = strlen(cmd);
	int rc;

	while (off < clen) {
		ssize_t n = write(q->fd, cmd + off, clen - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tier_err(-errno, "qmp %s: %m", q->path);
		off += n;
	}
	if (write(q->fd, "\n", 1) != 1)
		return tier_err(-EIO, "qmp %s: write failed", q->path);

	for (;;) {
		char *e;

		rc = qmp_line(q, line, sizeof(line), deadline);
		if (rc)
			return rc;
		if (strstr(line, "\"event\""))
			continue;
		if (strstr(line, "\"return\"")) {
			if (reply)
				snprintf(reply, len, "%s", line);
			return 0;
		}
		e = strstr(line, "\"desc\"");
		return tier_err(-EIO, "qmp %s: %s", q->path, e ? e + 7 : line);
	}
}

int qmp_connect(const char *path, int timeout_ms, struct qmp **ret)
{
	long long deadline = now_ms() + timeout_ms;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[8192];
	struct qmp *q;
	int rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return tier_err(-ENAMETOOLONG, "qmp %s: path too long", path);
	q = calloc(1, sizeof(*q));
	if (!q)
		return tier_err(-ENOMEM, "out of memory");
	snprintf(q->path, sizeof(q->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);

	for (;;) {
		q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (q->fd < 0) {
			rc = tier_err(-errno, "qmp %s: %m", path);
			goto err;
		}
		if (!connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)))
			break;
		rc = -errno;
		close(q->fd);
		q->fd = -1;
		if (now_ms() > deadline) {
			rc = tier_err(rc, "qmp %s: cannot connect: %s", path,
				      strerror(-rc));
			goto err;
		}
		usleep(10000);
	}
	rc = qmp_line(q, line, sizeof(line), deadline + 5000);	/* greeting */
	if (!rc && !strstr(line, "\"QMP\""))
		rc = tier_err(-EPROTO, "qmp %s: not a QMP greeting", path);
	if (!rc)
		rc = qmp_exec(q, "{\"execute\": \"qmp_capabilities\"}", NULL, 0,
			      5000);
	if (rc)
		goto err;
	*ret = q;
	return 0;
err:
	qmp_close(q);
	return rc;
}

void qmp_close(struct qmp *q)
{
	if (!q)
		return;
	if (q->fd >= 0)
		close(q->fd);
	free(q);
}

int qmp_wait_migration(struct qmp *q, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	char reply[8192];
	int rc;

	for (;;) {
		rc = qmp_exec(q, "{\"execute\": \"query-migrate\"}", reply,
			      sizeof(reply), 5000);
		if (rc)
			return rc;
		if (strstr(reply, "\"completed\""))
			return 0;
		if (strstr(reply, "\"failed\"") || strstr(reply, "\"cancelled\""))
			return tier_err(-EIO, "qmp %s: migration failed: %s",
					q->path, reply);
		if (now_ms() > deadline)
			return tier_err(-ETIMEDOUT, "qmp %s: migration did not complete",
					q->path);
		usleep(5000);
	}
}
