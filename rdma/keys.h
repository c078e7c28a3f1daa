/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_POOL_KEYS_H
#define TIER_POOL_KEYS_H

/*
 * Pool credentials (rdma/keys.c): the server's key file, one key a line,
 *
 *	ID ROLE SNAPSHOTS SECRET [revoked]
 *
 * ID a name ([A-Za-z0-9._-], 1..63, not starting with '.'), ROLE read,
 * write or admin, SNAPSHOTS a comma-separated list of shell patterns the
 * snapshot names must match ("*": all), SECRET 64 hex digits; a revoked key
 * keeps its line so that its ID is never handed out again. '#' starts a
 * comment. The client side's credential (STORE/pool.key) is "ID SECRET".
 * Both are secrets: a file group or others may read, or another user
 * owns, is refused (ssh's rule for private keys).
 *
 * Pure text and file handling: the MACs are rdma/auth.c's.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdma/proto.h"

#define POOL_SECRET_LEN		32
#define POOL_SNAPS_MAX		255	/* the SNAPSHOTS field */

enum pool_role {
	POOL_ROLE_READ = 1,	/* OPEN, READ, STAT, CLOSE */
	POOL_ROLE_WRITE = 2,	/* + CREATE, WRITE, COMMIT, ABORT, REMOVE */
	POOL_ROLE_ADMIN = 3,	/* every op on every name */
};

struct pool_key {
	char id[POOL_KEY_ID_MAX + 1];
	enum pool_role role;
	char snaps[POOL_SNAPS_MAX + 1];
	uint8_t secret[POOL_SECRET_LEN];
	bool revoked;
};

/* What a client proves: its key's ID and secret. */
struct pool_cred {
	char id[POOL_KEY_ID_MAX + 1];
	uint8_t secret[POOL_SECRET_LEN];
};

const char *pool_role_name(enum pool_role r);
/* "read", "write", "admin"; -EINVAL naming @s otherwise. */
int pool_role_parse(const char *s, enum pool_role *ret);
/* -EINVAL naming @id unless it is a valid key ID. */
int pool_key_id_check(const char *id);
/* -EINVAL unless @s is a valid SNAPSHOTS field. */
int pool_snaps_check(const char *s);

/*
 * Whether @k may do what @need allows on the segment @seg ("SNAP/POLICY"):
 * a role at least @need, not revoked, and SNAP matching a pattern (admin:
 * any name).
 */
bool pool_key_allows(const struct pool_key *k, enum pool_role need,
		     const char *seg);

/*
 * Parses a key file's text; @what names it in errors ("FILE: line N:
 * reason"). *@ret (free()) holds *@n keys; IDs are unique.
 */
int pool_keys_parse(const char *text, size_t len, const char *what,
		    struct pool_key **ret, unsigned *n);

/* Formats @k as its key file line, with a newline. */
int pool_key_format(const struct pool_key *k, char *buf, size_t len);

/*
 * A key file, or a directory of them (every regular file not starting with
 * '.'), loaded, its modes checked, and re-read when it changes. Safe to use
 * from many threads.
 */
struct pool_keys;

int pool_keys_load(const char *path, struct pool_keys **ret);
void pool_keys_free(struct pool_keys *k);
/*
 * Re-reads the keys if a file changed since (by inode, size and mtime);
 * a file that no longer parses keeps the old keys and fails with its
 * reason. Returns the generation, which grows at every change.
 */
int pool_keys_refresh(struct pool_keys *k, unsigned *ret_gen);
/* The current generation, without looking at the files. */
unsigned pool_keys_generation(struct pool_keys *k);
/* Copies key @id to @ret: 0, or -ENOENT. */
int pool_keys_find(struct pool_keys *k, const char *id, struct pool_key *ret);
/* Every key, copied (free()): for listing. */
int pool_keys_all(struct pool_keys *k, struct pool_key **ret, unsigned *n);

/*
 * Edits of a key FILE (tierctl pool key): each rewrites it as a
 * temporary, 0600, renamed over it. A new key's ID must be new, revoked
 * ones included; revoking marks the line.
 */
int pool_keys_add(const char *file, const struct pool_key *k);
int pool_keys_revoke(const char *file, const char *id);

/* The client's credential file: "ID SECRET". */
int pool_cred_read(const char *file, struct pool_cred *ret);
/* Written 0600 by a temporary renamed over @file; -EEXIST if it exists. */
int pool_cred_write(const char *file, const struct pool_cred *c);

/* 0 if @path is owned by us or root and not open to group or others. */
int pool_keys_check_mode(const char *path, bool dir);

#endif
