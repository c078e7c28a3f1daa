/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_VMM_FC_H
#define TIER_VMM_FC_H

/*
 * Firecracker's UFFD memory backend, from the handler's side
 * (REFERENCE.md section 5; "tierctl fc-handler"). Firecracker maps guest
 * memory anonymous, creates and registers the userfaultfd itself, connects
 * to our unix socket and sends ONE message: a JSON array of regions with
 * the uffd attached by SCM_RIGHTS. It never sends more and keeps the
 * socket open until it exits.
 *
 *	fc-proto.c	the region JSON and its checks against the snapshot
 *	fc-sock.c	the socket: listen, accept, the handshake's fd, peer
 *	fc-handler.c	connections, one thread each, and the fail policy
 *	fc-serve.c	fc_session_serve(): the fault server of one VMM
 *	fc-zc.c		the zero-copy extension's messages
 *
 * All calls return 0 (or a count) or -errno with tier_err(); none prints.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tier.h"

/* ---------------------------------------------------------- fc-proto.c */

/* One element of the handshake array (Firecracker's GuestRegionUffdMapping). */
struct fc_region {
	uint64_t base;		/* base_host_virt_addr, in the VMM's address space */
	uint64_t size;		/* bytes */
	uint64_t offset;	/* bytes into the memory file, i.e. the image */
	uint64_t page_size;	/* bytes: 4096 or 2 MiB */
	uint64_t zero_copy;	/* "tier_zero_copy": the extension's version
				 * the VMM speaks; 0: a stock Firecracker */
};

/* Which field set the handshake had, so which Firecracker sent it. */
enum fc_fields {
	FC_FIELDS_V1_1,		/* base_host_virt_addr, size, offset (v1.1-v1.6) */
	FC_FIELDS_V1_7,		/* + page_size_kib, in bytes (v1.7-v1.11) */
	FC_FIELDS_V1_12,	/* + page_size and page_size_kib (v1.12 on) */
	FC_FIELDS_PAGE_SIZE,	/* + page_size alone (once page_size_kib is gone) */
};

/* "v1.12+ (page_size, page_size_kib)" and so on. */
const char *fc_fields_name(enum fc_fields fields);

/* The receive buffer: Firecracker's message has no length prefix. */
#define FC_MSG_MAX	(64 * 1024)
#define FC_REGIONS_MAX	1024

/*
 * Parses the handshake JSON (@len bytes, no NUL needed): an array of
 * objects whose known fields are unsigned integers, in any order, with
 * unknown fields of any JSON type skipped. page_size comes from page_size
 * or page_size_kib (both: they must agree; neither: 4096). Every element
 * must have the same known fields. A syntax error, a duplicate known
 * field, a negative, fractional or too large number, trailing bytes or
 * nesting deeper than 32 is -EPROTO, with a reason naming the region
 * index and the byte offset. @ret is malloc()ed.
 */
int fc_parse_regions(const char *buf, size_t len, struct fc_region **ret,
		     unsigned *ret_n, enum fc_fields *ret_fields);

/*
 * Checks parsed regions against a snapshot image of @image_size bytes
 * (Firecracker's memory file is exactly its guest memory): page size
 * 4 KiB or 2 MiB, base, size and offset aligned to it, inside the image,
 * no two regions overlapping in the file or in the address space, and
 * together exactly the image. -EINVAL naming the region(s) and why;
 * @what names the snapshot in the message.
 */
int fc_check_regions(const struct fc_region *r, unsigned n,
		     uint64_t image_size, const char *what);

/* The region holding address @addr; NULL if none does. */
const struct fc_region *fc_region_find(const struct fc_region *r, unsigned n,
				       uint64_t addr);

/*
 * 1 once the first @len bytes hold a whole top-level JSON value (or
 * something that can never become one: the parser will say why), 0 while
 * more bytes could complete it. Lets the receiver stop reading at the
 * end of the one message.
 */
int fc_json_complete(const char *buf, size_t len);

/* ----------------------------------------------------------- fc-sock.c */

/*
 * Listens on a unix SOCK_STREAM socket at @path, mode 0600. The socket is
 * bound under a temporary name in the same directory (umask 077) and
 * renamed over @path, so nobody can connect before it has its mode. An
 * existing @path that is not a socket is -EEXIST; a socket someone still
 * accepts on is -EADDRINUSE; a stale one (connect refused) is replaced.
 * Not thread-safe (it changes the umask for the bind). @ret_ino gets the
 * socket's inode for fc_unlisten().
 */
int fc_listen(const char *path, int *ret_fd, uint64_t *ret_ino);
/* Removes @path if it is still the socket of @ino (not a newer handler's). */
void fc_unlisten(const char *path, uint64_t ino);
/* accept4(SOCK_CLOEXEC); -EAGAIN/-EINTR are returned unrecorded. */
int fc_accept(int lfd, int *ret_fd);

struct fc_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int pidfd;	/* of the VMM (SO_PEERPIDFD, else pidfd_open); -1: none */
};

/* SO_PEERCRED (and a pidfd so a reused pid is never signalled). */
int fc_peer(int sock, struct fc_peer *ret);

/*
 * Receives the handshake into @buf (@cap >= FC_MSG_MAX bytes): reads until
 * the JSON is complete and the one fd came (MSG_CMSG_CLOEXEC), retrying a
 * read that brought bytes but no fd, for at most @timeout_ms. No fd, or
 * more than one (all are closed), is -EPROTO; a message that fills @cap
 * is -EMSGSIZE; EOF first is -ECONNRESET; the time running out is
 * -ETIMEDOUT. *@ret_uffd is checked with fc_check_uffd().
 */
int fc_recv_handshake(int sock, int timeout_ms, char *buf, size_t cap,
		      size_t *ret_len, int *ret_uffd);

/* -EBADF unless @fd is a userfaultfd ("anon_inode:[userfaultfd]"). */
int fc_check_uffd(int fd);

/* ------------------------------------------------------------ fc-zc.c */

/*
 * The zero-copy extension (tierctl-fc-handler(1), ZERO-COPY): a VMM that
 * can map files itself sends "tier_zero_copy": 1 in its first region
 * object (a stock Firecracker never does, and never reads the socket).
 * The handler then sends ONE reply before serving anything: a header,
 * the runs to map, and the CXL object's fd (O_RDONLY) by SCM_RIGHTS if
 * there is a run; the VMM maps each run MAP_PRIVATE|MAP_FIXED at addr
 * from the fd at off (zero-copy, shared by every instance, copy-on-write
 * on a write) and answers with 8 bytes, FC_ZC_ACK or FC_ZC_NAK. All
 * integers little-endian.
 */
#define FC_ZC_VERSION	1
#define FC_ZC_MAGIC	"TIER-ZC1"	/* 8 bytes, no NUL */
#define FC_ZC_ACK	"TIER-ZOK"
#define FC_ZC_NAK	"TIER-ZNO"

struct fc_zc_hdr {
	char magic[8];
	uint32_t version;	/* the handler's answer: <= the VMM's */
	uint32_t n;		/* struct fc_zc_run that follow */
};

struct fc_zc_run {
	uint64_t addr;		/* in the VMM, page aligned */
	uint64_t len;		/* bytes */
	uint64_t off;		/* in the object the fd names */
};

_Static_assert(sizeof(struct fc_zc_hdr) == 16, "wire layout");
_Static_assert(sizeof(struct fc_zc_run) == 24, "wire layout");

/* Sends the reply (@fd attached when @n > 0). */
int fc_zc_offer(int sock, const struct fc_zc_run *runs, uint32_t n, int fd);
/* The VMM's answer: 1 it mapped them, 0 it did not (NAK, or none within
 * @timeout_ms), -errno (it hung up, or sent something else). */
int fc_zc_answer(int sock, int timeout_ms);

/* -------------------------------------------------------- fc-handler.c */

/* What to do to a VMM whose guest would get a page we cannot give it. */
enum fc_fail {
	FC_FAIL_KILL,		/* SIGKILL it (the default) */
	FC_FAIL_STOP,		/* SIGSTOP it, for a post-mortem */
	FC_FAIL_NONE,		/* only log: its vCPU waits on that page forever */
};

const char *fc_fail_name(enum fc_fail fail);
int fc_fail_parse(const char *name, enum fc_fail *ret);

#define FC_NO_ADDR	UINT64_MAX

/* Counters a session keeps; the handler logs them when the VMM hangs up. */
struct fc_session_stats {
	uint64_t faults;	/* missing faults served (a window, a huge page each) */
	uint64_t prefetched;	/* 4 KiB pages installed before the first fault */
	uint64_t lazy;		/* 4 KiB pages installed by faults */
	uint64_t removes;	/* REMOVE events: ranges unregistered */
	uint64_t pool_bytes;	/* read from the pool */
	uint64_t mapped;	/* 4 KiB pages the VMM mapped zero-copy */
	uint64_t zero_faults;	/* of faults, those of pages the snapshot
				 * holds as zero */
	uint64_t prefetch_ns;	/* installing the prefetched pages */
	uint64_t fault_ns;	/* serving faults: fetch, check, install; not
				 * the event's read nor the wake */
};

/*
 * One connected VMM, built and owned by the handler (fc-handler.c). The
 * "in" fields are set before fc_session_serve() and stay valid (and
 * unchanged) until it returns; the snapshot is shared by every session.
 */
struct fc_session {
	/* in */
	struct tier_snap *snap;		/* open; its image fd already open */
	enum tier_policy policy;	/* which stored plan to serve */
	const char *cxl, *pool;		/* tier URI overrides; NULL: the plan's */
	const char *record;		/* trace to record, or NULL */
	unsigned prefetch;		/* pages a lazy fault fetches; 0: 8 */
	/* read a segment the pool cannot open or read from its durable
	 * copy (TIER_RESTORE_POOL_FALLBACK): @backing, NULL: the plan's */
	bool pool_fallback;
	const char *backing;
	int uffd;			/* the VMM's: API done, O_NONBLOCK */
	int sock;			/* its connection; EOF/HUP: the VMM is gone */
	const struct fc_region *regions; /* checked by fc_check_regions() */
	unsigned nregions;
	enum fc_fields fields;
	pid_t pid;			/* SO_PEERCRED */
	uid_t uid;
	enum fc_fail fail;		/* what on_fail does */
	/*
	 * Applies @fail once (later calls return 0): logs one line naming
	 * the snapshot, the page at @addr (FC_NO_ADDR: none) and @reason
	 * (NULL: this thread's tier_errmsg()), then signals the VMM. Safe
	 * from any thread until fc_session_serve() returns.
	 */
	int (*on_fail)(struct fc_session *s, uint64_t addr, int err,
		       const char *reason);

	/* out, read by the handler once fc_session_serve() returned */
	uint64_t fail_addr;		/* the page that failed; FC_NO_ADDR */
	struct fc_session_stats st;
	struct tier_trace_ent *trace;	/* record: malloc()ed, first-touch order */
	size_t ntrace;

	void *priv;			/* the handler's */
};

/*
 * Serves the VMM's faults from @s->snap until it hangs up. Returns 0 when
 * the VMM is gone (socket EOF or POLLHUP, or its mm gone), which is also
 * how the handler stops a session: shutdown(@s->sock, SHUT_RDWR) must make
 * it return promptly. Returns -errno with tier_err() on a failure that
 * needs the fail policy (a page that cannot be had, a fault outside every
 * region, an ioctl that fails), with @s->fail_addr naming the page; the
 * handler then calls @s->on_fail (which the server may also call itself,
 * earlier). Never calls UFFDIO_API: Firecracker did. In record mode it
 * leaves the first touches in @s->trace for the handler to save.
 * Implemented in vmm/fc-serve.c.
 */
int fc_session_serve(struct fc_session *s);

struct fc_handler;

struct fc_handler_attr {
	enum tier_policy policy;
	const char *cxl, *pool;		/* passed on to each session */
	const char *backing;		/* FC_HANDLER_POOL_FALLBACK's; NULL:
					 * the plan's */
	const char *record;		/* trace NAME: the first VMM's is NAME,
					 * the Nth's NAME-N */
	unsigned prefetch;		/* passed on; 0: 8 */
	enum fc_fail fail;
	unsigned flags;			/* FC_HANDLER_* */
	int handshake_ms;		/* 0: 5000 */
	/* Gets every log line (refusals and failures at TIER_LOG_ERR, the
	 * rest at TIER_LOG_INFO), from any thread; NULL: tier_log(). */
	void (*log)(int level, const char *line, void *arg);
	void *arg;
};

#define FC_HANDLER_ONCE	(1U << 0)	/* return after the first connection */
#define FC_HANDLER_POOL_FALLBACK (1U << 1) /* sessions' pool_fallback */

/* Listens on @path (fc_listen) for VMMs restoring @snap, which must
 * outlive the handler. */
int fc_handler_open(struct tier_snap *snap, const char *path,
		    const struct fc_handler_attr *attr,
		    struct fc_handler **ret);

/*
 * Accepts and serves until fc_handler_stop() or, with FC_HANDLER_ONCE,
 * until the first connection ends. Either way the socket is removed at
 * once and the connected VMMs are served until they hang up; a second
 * fc_handler_stop() applies the fail policy to them instead (nobody
 * serves them once the caller exits). Returns 0; with FC_HANDLER_ONCE the
 * first connection's result (its refusal or failure); -errno if accepting
 * failed (after the same wait). Every reason returned was logged.
 */
int fc_handler_run(struct fc_handler *h);

/* Async-signal-safe: stop accepting and remove the socket (see run). */
void fc_handler_stop(struct fc_handler *h);

/* Removes the socket if it is still ours; fc_handler_run() returned. */
void fc_handler_close(struct fc_handler *h);

#endif
