/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_POOL_PROTO_H
#define TIER_POOL_PROTO_H

/*
 * The pool protocol (doc/pool-protocol.md). Every message is a 32-byte
 * header and @len payload bytes; every field is little-endian and fixed
 * width. A reply carries the request's op with POOL_OP_REPLY set, its
 * req_id, and status 0 or a negative Linux errno; a failed reply's payload
 * is the reason (text, no NUL, at most POOL_MAX_REASON bytes).
 *
 * The wire structs below are the exact byte layout; encode and decode go
 * through the proto_* helpers, which convert byte order and check every
 * length, so no caller reads a field the peer did not send.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define POOL_MAGIC		0x4c4f4f50U	/* "POOL" read as LE bytes */
#define POOL_VERSION		1

#define POOL_MAX_DATA		(16U << 20)	/* bytes in a READ reply or a WRITE */
#define POOL_MAX_RANGES		1024U		/* ranges in one READ */
#define POOL_MAX_LEN		(POOL_MAX_DATA + 4096U)	/* any payload */
#define POOL_MAX_REASON		256U
#define POOL_MAX_SIZE		(1ULL << 40)	/* one segment */

enum pool_op {
	POOL_OP_HELLO	= 1,	/* pool_hello both ways; must come first */
	POOL_OP_OPEN	= 2,	/* name -> pool_open_rep */
	POOL_OP_CLOSE	= 3,	/* pool_id -> empty */
	POOL_OP_CREATE	= 4,	/* pool_create_req + name -> pool_id */
	POOL_OP_WRITE	= 5,	/* pool_write_req + data -> empty */
	POOL_OP_COMMIT	= 6,	/* pool_id -> empty */
	POOL_OP_ABORT	= 7,	/* pool_id -> empty */
	POOL_OP_REMOVE	= 8,	/* name -> empty */
	POOL_OP_READ	= 9,	/* pool_read_req + ranges -> the bytes */
	POOL_OP_STAT	= 10,	/* name -> pool_stat_rep */
	POOL_OP_CHALLENGE = 11,	/* pool_challenge -> pool_challenge_rep */
	POOL_OP_AUTH	= 12,	/* pool_auth -> pool_auth_rep */
	POOL_OP_MAX,
};
#define POOL_OP_REPLY		0x8000U

/* Capabilities in pool_hello.flags */
#define POOL_HELLO_RDMA_READ	(1U << 0)	/* OPEN answers addr + rkey */
#define POOL_HELLO_AUTH		(1U << 1)	/* CHALLENGE + AUTH come first */

#define POOL_KEY_ID_MAX		63	/* a key's name, without the NUL */
#define POOL_NONCE_LEN		32
#define POOL_MAC_LEN		32	/* HMAC-SHA-256 */

struct pool_hdr {
	uint32_t magic;		/* POOL_MAGIC */
	uint16_t version;	/* POOL_VERSION */
	uint16_t op;		/* enum pool_op, | POOL_OP_REPLY in replies */
	uint64_t req_id;	/* chosen by the client, echoed by the server */
	int32_t status;		/* replies: 0 or -errno; requests: 0 */
	uint32_t len;		/* payload bytes that follow, <= POOL_MAX_LEN */
	uint64_t reserved;	/* zero */
};
_Static_assert(sizeof(struct pool_hdr) == 32, "wire layout");

struct pool_hello {
	uint32_t version;	/* highest version the sender speaks */
	uint32_t flags;		/* POOL_HELLO_* */
	uint32_t max_ranges;	/* the sender's limits, informative */
	uint32_t max_data;
	char name[64];		/* client or server name, NUL-padded */
};
_Static_assert(sizeof(struct pool_hello) == 80, "wire layout");

struct pool_id {		/* CLOSE, COMMIT, ABORT, and CREATE's reply */
	uint32_t id;
	uint32_t reserved;
};
_Static_assert(sizeof(struct pool_id) == 8, "wire layout");

struct pool_open_rep {
	uint32_t id;		/* segment id on this connection, never 0 */
	uint32_t rkey;		/* rdma: rkey of the segment memory; tcp: 0 */
	uint64_t size;
	uint64_t addr;		/* rdma: remote address of byte 0; tcp: 0 */
};
_Static_assert(sizeof(struct pool_open_rep) == 24, "wire layout");

struct pool_create_req {
	uint64_t size;		/* followed by the name */
};
_Static_assert(sizeof(struct pool_create_req) == 8, "wire layout");

struct pool_write_req {
	uint32_t id;		/* from CREATE */
	uint32_t reserved;
	uint64_t off;		/* followed by the data */
};
_Static_assert(sizeof(struct pool_write_req) == 16, "wire layout");

struct pool_read_req {
	uint32_t nr;		/* followed by nr pool_range */
	uint32_t reserved;
};
_Static_assert(sizeof(struct pool_read_req) == 8, "wire layout");

struct pool_range {
	uint64_t off;
	uint32_t len;
	uint32_t id;		/* segment id from OPEN */
};
_Static_assert(sizeof(struct pool_range) == 16, "wire layout");

struct pool_stat_rep {
	uint64_t size;
};
_Static_assert(sizeof(struct pool_stat_rep) == 8, "wire layout");

/*
 * Authentication (doc/pool-protocol.md): the client names its key and
 * sends a fresh nonce, the server answers with its own; each side then
 * proves it holds the key by a MAC over both nonces.
 */
struct pool_challenge {
	char key_id[64];	/* NUL-padded */
	uint8_t nonce[POOL_NONCE_LEN];	/* the client's */
};
_Static_assert(sizeof(struct pool_challenge) == 96, "wire layout");

struct pool_challenge_rep {
	uint8_t nonce[POOL_NONCE_LEN];	/* the server's */
};
_Static_assert(sizeof(struct pool_challenge_rep) == 32, "wire layout");

struct pool_auth {
	uint8_t mac[POOL_MAC_LEN];	/* the client's proof */
};
_Static_assert(sizeof(struct pool_auth) == 32, "wire layout");

struct pool_auth_rep {
	uint32_t role;		/* enum pool_role the key grants */
	uint32_t reserved;
	uint8_t mac[POOL_MAC_LEN];	/* the server's proof */
};
_Static_assert(sizeof(struct pool_auth_rep) == 40, "wire layout");

/* "HELLO", "READ", ...; "?" for an unknown op. */
const char *proto_op_name(unsigned op);

/* Fills @h in wire byte order. */
void proto_hdr_encode(struct pool_hdr *h, unsigned op, uint64_t req_id,
		      int status, uint32_t len);
/*
 * Decodes @h in place (to host order) and checks magic, version, len and
 * reserved; -EPROTO with a reason naming @peer if anything is off. A
 * status must be 0 or a plausible -errno.
 */
int proto_hdr_decode(struct pool_hdr *h, const char *peer);

/*
 * Byte-order conversion of the payload structs, in place (the same
 * function both ways on a little-endian or big-endian host).
 */
void proto_hello_swap(struct pool_hello *m);
void proto_id_swap(struct pool_id *m);
void proto_open_rep_swap(struct pool_open_rep *m);
void proto_create_req_swap(struct pool_create_req *m);
void proto_write_req_swap(struct pool_write_req *m);
void proto_read_req_swap(struct pool_read_req *m);
void proto_range_swap(struct pool_range *m);
void proto_stat_rep_swap(struct pool_stat_rep *m);
void proto_auth_rep_swap(struct pool_auth_rep *m);

/*
 * Stream I/O for the TCP transport and the server: all of @iov or an
 * error. EOF and ECONNRESET are -ECONNRESET, a send into a closed
 * connection -EPIPE, a socket timeout -ETIMEDOUT. No message set: the
 * caller knows what it was doing. @iov is modified.
 */
int proto_send_all(int fd, struct iovec *iov, unsigned n);
int proto_recv_all(int fd, struct iovec *iov, unsigned n);
int proto_recv(int fd, void *buf, size_t len);
/* Reads and drops @len bytes (a payload we refuse but stay in sync with). */
int proto_skip(int fd, size_t len);

/* Sets TCP_NODELAY and send/receive timeouts of @timeout_ms (0: none). */
int proto_sock_setup(int fd, unsigned timeout_ms);

#endif
