/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pool server's bounds, beside its request handling (server.c): what
 * keeps one client, or many, from holding the server's memory, threads or
 * disk. A request begun must be complete by a deadline (a half-sent one
 * would hold its connection's thread for good); between requests a
 * connection may stay idle for hours (a restored VM faults rarely), and
 * TCP keepalive reaps the ones whose peer is gone. Without --max-bytes a
 * CREATE reserves from what the disk (or memory) has free, and a --dir is
 * served by one server at a time, which removes what a killed one left.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <unistd.h>

#include "tier.h"
#include "rdma/server-limits.h"
#include "util/err.h"
#include "util/log.h"

void srv_sock_setup(int fd, unsigned send_ms)
{
	struct timeval tv = {
		.tv_sec = send_ms / 1000,
		.tv_usec = (send_ms % 1000) * 1000,
	};
	int one = 1, idle = SRV_KEEPIDLE_S, intvl = SRV_KEEPINTVL_S;
	int cnt = SRV_KEEPCNT;

	/* Best effort: a socketpair (the fuzz target) has no TCP options. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

void srv_deadline(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static int ms_left(const struct timespec *by)
{
	struct timespec now;
	int64_t ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(by->tv_sec - now.tv_sec) * 1000 +
	     (by->tv_nsec - now.tv_nsec) / 1000000;
	if (ms <= 0)
		return 0;
	return ms > 3600 * 1000 ? 3600 * 1000 : (int)ms + 1;
}

int srv_wait_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	while (poll(&pfd, 1, -1) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

int srv_recv_by(int fd, void *buf, size_t len, const struct timespec *by)
{
	char junk[4096], *p = buf;

	while (len) {
		size_t want = p ? len : (len < sizeof(junk) ? len : sizeof(junk));
		ssize_t r = recv(fd, p ? p : junk, want, MSG_DONTWAIT);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int ms;

		if (r > 0) {
			if (p)
				p += r;
			len -= r;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;	/* keepalive gave up: -ETIMEDOUT */
		ms = ms_left(by);
		if (!ms)
			return -ETIMEDOUT;
		if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* MemAvailable, which counts the page cache the kernel can drop. */
static int mem_available(uint64_t *ret)
{
	char line[128];
	unsigned long long kb;
	struct sysinfo si;
	FILE *f = fopen("/proc/meminfo", "re");

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
				fclose(f);
				*ret = kb * 1024;
				return 0;
			}
		fclose(f);
	}
	if (sysinfo(&si) < 0)
		return tier_err(-errno, "pool server: sysinfo: %m");
	*ret = ((uint64_t)si.freeram + si.bufferram) * si.mem_unit;
	return 0;
}

int srv_room(const char *dir, uint64_t *ret)
{
	struct statvfs sv;

	if (!dir[0])
		return mem_available(ret);
	if (statvfs(dir, &sv) < 0)
		return tier_err(-errno, "pool server: %s: statvfs: %m", dir);
	*ret = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

int srv_dir_lock(const char *dir, int *ret_fd)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return tier_err(-errno, "pool server: %s: %m", dir);
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		if (err == EINTR)
			continue;
		close(fd);
		if (err == EWOULDBLOCK)
			return tier_err(-EBUSY, "pool server: %s: another server serves this directory",
					dir);
		return tier_err(-err, "pool server: %s: lock: %m", dir);
	}
	*ret_fd = fd;
	return 0;
}

/* PID of ".POLICY.seg.tmp.PID.SEQ", or 0 if @name is not a temporary. */
static pid_t temp_pid(const char *name)
{
	const char *t = strstr(name, ".seg.tmp.");
	char *end;
	long pid;

	if (name[0] != '.' || !t)
		return 0;
	pid = strtol(t + strlen(".seg.tmp."), &end, 10);
	if (pid <= 0 || *end != '.')
		return 0;
	return pid;
}

static int clean_snap(int dfd, const char *dir, const char *snap)
{
	struct dirent *de;
	int fd, n = 0;
	DIR *d;

	fd = openat(dfd, snap, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;	/* not a directory: not ours to judge */
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d))) {
		pid_t pid = temp_pid(de->d_name);

		if (!pid)
			continue;
		/* A live writer of the file pool may share the dir: keep its. */
		if (pid != getpid() && (kill(pid, 0) == 0 || errno != ESRCH))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0) {
			tier_dbg("pool server: removed %s/%s/%s, left by a writer that is gone",
				 dir, snap, de->d_name);
			n++;
		}
	}
	closedir(d);
	return n;
}

int srv_dir_clean(const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return tier_err(-errno, "pool server: %s: %m", dir);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n += clean_snap(dirfd(d), dir, de->d_name);
	closedir(d);
	return n;
}
