/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The handler's unix socket. What arrives on it is what Firecracker's
 * send_uffd_handshake (src/vmm/src/persist.rs) sends: it connects, makes
 * one sendmsg(MSG_NOSIGNAL) of the JSON with the uffd in one SCM_RIGHTS
 * (vmm-sys-util's sock_ctrl_msg.rs, raw_sendmsg), then keeps the socket
 * open without writing more ("forget(socket)"), so the handler learns it
 * is gone from EOF/POLLHUP, and its pid from SO_PEERCRED, as that comment
 * suggests. The example handler (src/firecracker/examples/uffd/
 * uffd_utils.rs, get_mappings_and_file) retries a read that brought no fd,
 * five times; we do the same within a time bound instead of a count.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/fc.h"
#include "util/err.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD	77	/* Linux 6.5 */
#endif

#define FC_FDS_MAX	8	/* room to see (and close) a few too many */
#define FC_FD_WAIT_MS	1000	/* after the JSON, for an fd that lags */

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!*path)
		return tier_err(-EINVAL, "empty socket path");
	if (strlen(path) >= sizeof(sa->sun_path))
		return tier_err(-ENAMETOOLONG,
				"socket path \"%s\" is longer than %zu bytes",
				path, sizeof(sa->sun_path) - 1);
	strcpy(sa->sun_path, path);
	return 0;
}

/* Is someone accepting on the socket at @path? 1 yes, 0 stale, -errno. */
static int sock_live(const char *path)
{
	struct sockaddr_un sa;
	int fd, rc;

	rc = fill_addr(&sa, path);
	if (rc)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return tier_err(-errno, "socket: %m");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		rc = 1;
	else if (errno == EAGAIN)	/* its backlog is full: very much alive */
		rc = 1;
	else if (errno == ECONNREFUSED)
		rc = 0;
	else
		rc = tier_err(-errno, "%s: connect: %m", path);
	close(fd);
	return rc;
}

int fc_listen(const char *path, int *ret_fd, uint64_t *ret_ino)
{
	char tmp[sizeof(((struct sockaddr_un *)0)->sun_path) + 32];
	const char *slash = strrchr(path, '/');
	struct sockaddr_un sa;
	struct stat st;
	mode_t old;
	int fd, rc;

	rc = fill_addr(&sa, path);
	if (rc)
		return rc;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return tier_err(-EEXIST, "%s exists and is not a socket", path);
		rc = sock_live(path);
		if (rc < 0)
			return rc;
		if (rc)
			return tier_err(-EADDRINUSE,
					"%s: a handler is already listening on it", path);
		/* stale: nobody accepts; the rename below replaces it */
	} else if (errno != ENOENT) {
		return tier_err(-errno, "%s: %m", path);
	}

	/*
	 * Bind under a temporary name in the same directory (so rename is
	 * atomic), with the umask making it 0600 from birth: a chmod after
	 * bind would leave a window in which anyone could connect. The
	 * check above and the rename are not atomic: two handlers started
	 * at once on one path both succeed and the later one owns it.
	 */
	snprintf(tmp, sizeof(tmp), "%.*s.tier-fc.%d", slash ? (int)(slash - path + 1) : 0,
		 path, (int)getpid());
	rc = fill_addr(&sa, tmp);
	if (rc)
		return tier_err(rc, "%s: no room for the temporary name \"%s\" (at most %zu bytes)",
				path, tmp, sizeof(sa.sun_path) - 1);
	unlink(tmp);	/* our own pid's leftover */

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return tier_err(-errno, "socket: %m");
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0) {
		rc = tier_err(-errno, "%s: bind: %m", tmp);
		goto err_close;
	}
	if (lstat(tmp, &st) < 0) {
		rc = tier_err(-errno, "%s: %m", tmp);
		goto err_unlink;
	}
	if (listen(fd, 128) < 0) {
		rc = tier_err(-errno, "%s: listen: %m", tmp);
		goto err_unlink;
	}
	if (rename(tmp, path) < 0) {
		rc = tier_err(-errno, "rename %s to %s: %m", tmp, path);
		goto err_unlink;
	}
	*ret_fd = fd;
	*ret_ino = st.st_ino;
	return 0;

err_unlink:
	unlink(tmp);
err_close:
	close(fd);
	return rc;
}

void fc_unlisten(const char *path, uint64_t ino)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == ino)
		unlink(path);
}

int fc_accept(int lfd, int *ret_fd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
			return -errno;
		return tier_err(-errno, "accept: %m");
	}
	*ret_fd = fd;
	return 0;
}

int fc_peer(int sock, struct fc_peer *ret)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int pidfd = -1;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return tier_err(-errno, "SO_PEERCRED: %m");
	/*
	 * The fail policy signals the VMM, maybe long after it connected:
	 * by then its pid may belong to someone else. A pidfd cannot be
	 * reused. SO_PEERPIDFD names the connecting process itself; the
	 * pidfd_open fallback (before 6.5) has a window, but a small one.
	 */
	len = sizeof(pidfd);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
		pidfd = syscall(SYS_pidfd_open, cr.pid, 0);
		if (pidfd < 0)
			pidfd = -1;
	}
	if (pidfd >= 0)
		fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	ret->pid = cr.pid;
	ret->uid = cr.uid;
	ret->gid = cr.gid;
	ret->pidfd = pidfd;
	return 0;
}

int fc_check_uffd(int fd)
{
	static const char want[] = "anon_inode:[userfaultfd]";
	char path[64], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return tier_err(-errno, "cannot check the fd sent: %s: %m", path);
	link[n] = 0;
	if (strcmp(link, want))
		return tier_err(-EBADF, "the fd sent is not a userfaultfd but \"%s\"",
				link);
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void close_fds(const int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++)
		close(fds[i]);
}

/*
 * One recvmsg: appends to @buf, collects SCM_RIGHTS fds into @fds (which
 * holds *@nfds). Returns the bytes read, 0 at EOF; every fd received is
 * either in @fds or closed.
 */
static ssize_t recv_some(int sock, char *buf, size_t room, int *fds, int *nfds,
			 int *ret_ctrunc)
{
	union {
		char buf[CMSG_SPACE(FC_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = room };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c;
	ssize_t n;

	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		int k, cnt;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt; k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(fd));
			if (*nfds < FC_FDS_MAX)
				fds[(*nfds)++] = fd;
			else
				close(fd);
			if (*nfds == FC_FDS_MAX)
				*ret_ctrunc = 1;
		}
	}
	if (msg.msg_flags & MSG_CTRUNC)
		*ret_ctrunc = 1;
	return n;
}

int fc_recv_handshake(int sock, int timeout_ms, char *buf, size_t cap,
		      size_t *ret_len, int *ret_uffd)
{
	long long deadline = now_ms() + timeout_ms, fd_deadline = -1, left;
	int fds[FC_FDS_MAX], nfds = 0, ctrunc = 0, rc, complete = 0;
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	size_t len = 0;
	ssize_t n;

	for (;;) {
		if (complete && nfds == 1)
			break;
		if (complete && fd_deadline < 0)
			fd_deadline = now_ms() + FC_FD_WAIT_MS;
		left = (fd_deadline >= 0 && fd_deadline < deadline ?
			fd_deadline : deadline) - now_ms();
		if (left <= 0) {
			if (complete) {
				rc = tier_err(-EPROTO,
					      "no uffd with the handshake (%zu bytes of JSON, no SCM_RIGHTS fd)",
					      len);
				goto err;
			}
			rc = tier_err(-ETIMEDOUT,
				      "no whole handshake within %d ms (%zu bytes%s)",
				      timeout_ms, len, nfds ? " and the fd" : ", no fd");
			goto err;
		}
		rc = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			rc = tier_err(-errno, "poll: %m");
			goto err;
		}
		if (rc == 0)
			continue;

		n = recv_some(sock, buf + len, cap - len, fds, &nfds, &ctrunc);
		if (n == -EAGAIN)
			continue;
		if (n < 0) {
			rc = tier_err(n, "handshake: recvmsg: %s", strerror(-n));
			goto err;
		}
		if (ctrunc) {
			rc = tier_err(-EPROTO, "more than %d fds with the handshake, want one (the uffd)",
				      FC_FDS_MAX - 1);
			goto err;
		}
		if (nfds > 1) {
			rc = tier_err(-EPROTO, "%d fds with the handshake, want one (the uffd)",
				      nfds);
			goto err;
		}
		if (n == 0) {
			if (!len && !nfds)
				rc = tier_err(-ECONNRESET,
					      "closed the connection without a handshake");
			else if (!complete)
				rc = tier_err(-EPROTO,
					      "closed the connection after %zu bytes of unfinished JSON",
					      len);
			else
				rc = tier_err(-EPROTO,
					      "no uffd with the handshake (%zu bytes of JSON, no SCM_RIGHTS fd)",
					      len);
			goto err;
		}
		len += n;
		if (len == cap) {
			rc = tier_err(-EMSGSIZE, "handshake fills the %zu-byte buffer", cap);
			goto err;
		}
		complete = fc_json_complete(buf, len);
	}

	rc = fc_check_uffd(fds[0]);
	if (rc)
		goto err;
	*ret_len = len;
	*ret_uffd = fds[0];
	return 0;

err:
	close_fds(fds, nfds);
	return rc;
}
