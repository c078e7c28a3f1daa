/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: root -- the handler's socket (vmm/fc-sock.c): listening safely
 * (mode 0600, stale sockets replaced, live ones and non-sockets refused),
 * the handshake's one message and its one fd, as Firecracker sends them
 * (src/vmm/src/persist.rs send_uffd_handshake: one sendmsg with
 * MSG_NOSIGNAL, the JSON and the uffd in SCM_RIGHTS), and every way the
 * fds can be wrong. Needs a userfaultfd to send; skips without one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "t.h"
#include "store/uffd.h"
#include "vmm/fc.h"

static const char json[] =
	"[{\"base_host_virt_addr\":140737488355328,\"size\":16777216,\"offset\":0,"
	"\"page_size\":4096,\"page_size_kib\":4096}]";

static char dir[64];

static int nfds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	t_assert(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the DIR's own */
}

/* One sendmsg of @len bytes with @nfds fds, as vmm-sys-util sends. */
static void send_fds(int sock, const void *buf, size_t len, const int *fds,
		     int nfds)
{
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (nfds) {
		msg.msg_control = ctl.buf;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	t_eq(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

static long long ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* A receive on a fresh socketpair after @fill wrote to the other end. */
static int recv_case(void (*fill)(int sock, int uffd), int uffd, int timeout,
		     size_t *len, int *fd)
{
	static char buf[FC_MSG_MAX + 1];
	int sv[2], rc;

	t_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fill(sv[0], uffd);
	rc = fc_recv_handshake(sv[1], timeout, buf, sizeof(buf), len, fd);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void f_good(int s, int uffd)
{
	send_fds(s, json, strlen(json), &uffd, 1);
}

static void f_split(int s, int uffd)
{
	send_fds(s, json, 20, &uffd, 1);
	send_fds(s, json + 20, strlen(json) - 20, NULL, 0);
}

static void f_fd_late(int s, int uffd)
{
	/* bytes first, the fd with the rest: retried until it comes */
	send_fds(s, json, 20, NULL, 0);
	send_fds(s, json + 20, strlen(json) - 20, &uffd, 1);
}

static void f_nofd_eof(int s, int uffd)
{
	send_fds(s, json, strlen(json), NULL, 0);
	shutdown(s, SHUT_WR);
}

static void f_nofd_open(int s, int uffd)
{
	send_fds(s, json, strlen(json), NULL, 0);
}

static void f_two(int s, int uffd)
{
	int fds[2] = { uffd, uffd };

	send_fds(s, json, strlen(json), fds, 2);
}

static void f_two_late(int s, int uffd)
{
	send_fds(s, json, 10, &uffd, 1);
	send_fds(s, json + 10, strlen(json) - 10, &uffd, 1);
}

static void f_many(int s, int uffd)
{
	int fds[12], i;

	for (i = 0; i < 12; i++)
		fds[i] = uffd;
	send_fds(s, json, strlen(json), fds, 12);
}

static void f_pipe(int s, int uffd)
{
	int p[2];

	t_eq(pipe(p), 0);
	send_fds(s, json, strlen(json), &p[0], 1);
	close(p[0]);
	close(p[1]);
}

static void f_nothing(int s, int uffd)
{
	shutdown(s, SHUT_WR);
}

static void f_half_eof(int s, int uffd)
{
	send_fds(s, json, 30, &uffd, 1);
	shutdown(s, SHUT_WR);
}

static void f_half_open(int s, int uffd)
{
	send_fds(s, json, 30, &uffd, 1);
}

static char *big_json(size_t total)
{
	/* pad with an unknown field to exactly @total bytes */
	static const char head[] =
		"[{\"base_host_virt_addr\":140737488355328,\"size\":16777216,\"offset\":0,\"pad\":\"";
	char *b = malloc(total + 1);

	t_assert(b && total > sizeof(head) + 3);
	strcpy(b, head);
	memset(b + strlen(head), 'x', total - strlen(head) - 3);
	strcpy(b + total - 3, "\"}]");
	return b;
}

static size_t big_len;

static void f_big(int s, int uffd)
{
	char *b = big_json(big_len);

	send_fds(s, b, big_len, &uffd, 1);
	free(b);
}

static void test_recv(int uffd)
{
	size_t len = 0;
	long long t0;
	int fd = -1, before;

	t_ok(recv_case(f_good, uffd, 2000, &len, &fd));
	t_eq(len, strlen(json));
	t_ok(fc_check_uffd(fd));
	t_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);	/* MSG_CMSG_CLOEXEC */
	close(fd);

	t_ok(recv_case(f_split, uffd, 2000, &len, &fd));
	t_eq(len, strlen(json));
	close(fd);
	t_ok(recv_case(f_fd_late, uffd, 2000, &len, &fd));
	t_eq(len, strlen(json));
	close(fd);

	before = nfds_open();
	t_fails(recv_case(f_nofd_eof, uffd, 2000, &len, &fd), -EPROTO);
	t_assert(strstr(tier_errmsg(), "no uffd with the handshake"));
	t0 = ms();
	t_fails(recv_case(f_nofd_open, uffd, 5000, &len, &fd), -EPROTO);
	t_assert(strstr(tier_errmsg(), "no uffd with the handshake"));
	t_assert(ms() - t0 < 3000);	/* a bounded wait, not the whole timeout */
	t_fails(recv_case(f_two, uffd, 2000, &len, &fd), -EPROTO);
	t_assert(strstr(tier_errmsg(), "2 fds with the handshake, want one"));
	t_fails(recv_case(f_two_late, uffd, 2000, &len, &fd), -EPROTO);
	t_assert(strstr(tier_errmsg(), "2 fds"));
	t_fails(recv_case(f_many, uffd, 2000, &len, &fd), -EPROTO);
	t_assert(strstr(tier_errmsg(), "more than 7 fds"));
	t_fails(recv_case(f_pipe, uffd, 2000, &len, &fd), -EBADF);
	t_assert(strstr(tier_errmsg(), "not a userfaultfd but \"pipe:["));
	t_fails(recv_case(f_nothing, uffd, 2000, &len, &fd), -ECONNRESET);
	t_assert(strstr(tier_errmsg(), "without a handshake"));
	t_fails(recv_case(f_half_eof, uffd, 2000, &len, &fd), -EPROTO);
	t_assert(strstr(tier_errmsg(), "after 30 bytes of unfinished JSON"));
	t_fails(recv_case(f_half_open, uffd, 300, &len, &fd), -ETIMEDOUT);
	t_assert(strstr(tier_errmsg(), "within 300 ms (30 bytes and the fd)"));
	/* every fd received by a refused handshake was closed */
	t_eq(nfds_open(), before);

	/* the buffer holds a 64 KiB message; one byte more is refused */
	big_len = FC_MSG_MAX;
	t_ok(recv_case(f_big, uffd, 2000, &len, &fd));
	t_eq(len, FC_MSG_MAX);
	close(fd);
	big_len = FC_MSG_MAX + 1;
	t_fails(recv_case(f_big, uffd, 2000, &len, &fd), -EMSGSIZE);
	t_eq(nfds_open(), before);
}

static void test_listen(int uffd)
{
	char path[128], tmp[160], buf[FC_MSG_MAX + 1];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t ino, ino2;
	struct fc_peer peer;
	struct stat st;
	DIR *d;
	struct dirent *e;
	size_t len;
	int lfd, lfd2, c, s, fd;

	snprintf(path, sizeof(path), "%s/fc.sock", dir);
	t_ok(fc_listen(path, &lfd, &ino));
	t_eq(lstat(path, &st), 0);
	t_assert(S_ISSOCK(st.st_mode));
	t_eq(st.st_mode & 07777, 0600);
	t_eq(st.st_ino, ino);
	/* no temporary name left behind */
	d = opendir(dir);
	t_assert(d);
	while ((e = readdir(d)))
		t_assert(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
			 !strcmp(e->d_name, "fc.sock"));
	closedir(d);

	/* a live one is refused */
	t_fails(fc_listen(path, &lfd2, &ino2), -EADDRINUSE);
	t_assert(strstr(tier_errmsg(), path) && strstr(tier_errmsg(), "already listening"));

	/* that check connected, and closed at once: the listener sees an
	 * empty connection first */
	t_ok(fc_accept(lfd, &s));
	t_fails(fc_recv_handshake(s, 2000, buf, sizeof(buf), &len, &fd), -ECONNRESET);
	close(s);

	/* a connection: the peer is us, the handshake comes through */
	strcpy(sa.sun_path, path);
	c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	t_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
	send_fds(c, json, strlen(json), &uffd, 1);
	t_ok(fc_accept(lfd, &s));
	t_ok(fc_peer(s, &peer));
	t_eq(peer.pid, getpid());
	t_eq(peer.uid, getuid());
	t_eq(peer.gid, getgid());
	t_assert(peer.pidfd >= 0);
	close(peer.pidfd);
	t_ok(fc_recv_handshake(s, 2000, buf, sizeof(buf), &len, &fd));
	t_eq(len, strlen(json));
	close(fd);
	close(s);
	close(c);

	/* a stale one (nobody accepts) is replaced by a new socket */
	close(lfd);
	t_eq(lstat(path, &st), 0);
	t_ok(fc_listen(path, &lfd2, &ino2));
	t_assert(ino2 != ino);
	/* fc_unlisten leaves someone else's socket alone */
	fc_unlisten(path, ino);
	t_eq(lstat(path, &st), 0);
	fc_unlisten(path, ino2);
	t_assert(lstat(path, &st) < 0 && errno == ENOENT);
	close(lfd2);

	/* not a socket: refused, left alone */
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	t_assert(fd >= 0);
	close(fd);
	t_fails(fc_listen(path, &lfd, &ino), -EEXIST);
	t_assert(strstr(tier_errmsg(), "exists and is not a socket"));
	t_eq(lstat(path, &st), 0);
	t_assert(S_ISREG(st.st_mode));
	unlink(path);
	t_eq(mkdir(path, 0700), 0);
	t_fails(fc_listen(path, &lfd, &ino), -EEXIST);
	rmdir(path);
	snprintf(tmp, sizeof(tmp), "%s/elsewhere", dir);
	t_eq(symlink(tmp, path), 0);
	t_fails(fc_listen(path, &lfd, &ino), -EEXIST);
	unlink(path);

	/* names that do not fit sun_path, with or without the temporary suffix */
	memset(tmp, 'a', sizeof(tmp) - 1);
	tmp[sizeof(tmp) - 1] = 0;
	t_fails(fc_listen(tmp, &lfd, &ino), -ENAMETOOLONG);
	/* a short name in a long directory: the temporary name is longer */
	memset(tmp, 'c', 100);
	tmp[0] = '/';
	strcpy(tmp + 100, "/s");
	t_fails(fc_listen(tmp, &lfd, &ino), -ENAMETOOLONG);
	t_assert(strstr(tier_errmsg(), "temporary name"));
	t_fails(fc_listen("", &lfd, &ino), -EINVAL);
	/* a relative path binds in the current directory */
	t_eq(chdir(dir), 0);
	t_ok(fc_listen("rel.sock", &lfd, &ino));
	t_eq(lstat("rel.sock", &st), 0);
	fc_unlisten("rel.sock", ino);
	close(lfd);
	t_eq(chdir("/"), 0);
}

int main(void)
{
	int uffd = -1, rc;

	rc = uffd_open(UFFD_F_NONBLOCK, &uffd);
	if (rc == -EPERM || rc == -EACCES)
		t_skip("userfaultfd not permitted: run as root or set "
		       "vm.unprivileged_userfaultfd=1 (%s)", tier_errmsg());
	if (rc == -ENOSYS || rc == -EOPNOTSUPP)
		t_skip("no userfaultfd: %s", tier_errmsg());
	t_ok(rc);
	t_ok(fc_check_uffd(uffd));
	rc = open("/dev/null", O_RDONLY | O_CLOEXEC);
	t_fails(fc_check_uffd(rc), -EBADF);
	t_assert(strstr(tier_errmsg(), "not a userfaultfd but \"/dev/null\""));
	close(rc);

	snprintf(dir, sizeof(dir), "/tmp/test-fc-sock.XXXXXX");
	t_assert(mkdtemp(dir));
	test_recv(uffd);
	test_listen(uffd);
	rmdir(dir);
	close(uffd);
	return T_PASS;
}
