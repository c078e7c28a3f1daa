/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_SERVER_LIMITS_H
#define TIER_SERVER_LIMITS_H

/*
 * The pool server's bounds (server-limits.c), private to rdma/server.c:
 * requests received against a deadline, the socket options that reap dead
 * peers, the room a CREATE may reserve without --max-bytes, and the lock
 * and the leftovers of a --dir.
 */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* TCP keepalive: a peer that vanished is found after about two minutes. */
#define SRV_KEEPIDLE_S		60
#define SRV_KEEPINTVL_S		10
#define SRV_KEEPCNT		6

/* TCP_NODELAY, a send timeout of @send_ms, and the keepalive above. */
void srv_sock_setup(int fd, unsigned send_ms);

/* CLOCK_MONOTONIC now + @ms */
void srv_deadline(struct timespec *ts, unsigned ms);

/*
 * Blocks until @fd has a byte to read, an error or a hangup, for as long
 * as it takes (an idle connection between requests is legitimate).
 */
int srv_wait_readable(int fd);

/*
 * All @len bytes by @by, or -ETIMEDOUT; -ECONNRESET on EOF. With
 * @buf NULL the bytes are read and dropped.
 */
int srv_recv_by(int fd, void *buf, size_t len, const struct timespec *by);

/*
 * The bytes a CREATE may still reserve in @dir (statvfs: available to
 * us) or, with @dir "", in memory (MemAvailable), in *@ret.
 */
int srv_room(const char *dir, uint64_t *ret);

/*
 * Takes the lock of @dir (a flock on the directory itself, held while
 * *@ret_fd stays open): -EBUSY naming the directory if another server
 * serves it.
 */
int srv_dir_lock(const char *dir, int *ret_fd);

/*
 * Removes the temporaries DIR/SNAP/.POLICY.seg.tmp.PID.SEQ whose writer
 * is gone (no process PID, or this one, which has written none yet);
 * returns how many, or -errno.
 */
int srv_dir_clean(const char *dir);

#endif
