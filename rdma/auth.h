/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_POOL_AUTH_H
#define TIER_POOL_AUTH_H

/*
 * Pool authentication (rdma/auth.c, the only libsodium caller): both sides
 * prove they hold a key's secret by HMAC-SHA-256 over the key ID and two
 * fresh nonces, one from each side, so nothing secret crosses the wire and
 * a recorded exchange is worth nothing on another connection
 * (doc/pool-protocol.md, "Authentication").
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdma/keys.h"
#include "rdma/proto.h"

struct pool;

/* -ENOSYS with a reason if the crypto library cannot start. */
int auth_init(void);
/* Unpredictable bytes (nonces, secrets). */
void auth_random(void *buf, size_t len);

enum auth_side { AUTH_CLIENT = 'C', AUTH_SERVER = 'S' };

/* The MAC @side sends: over the side, the key ID and both nonces. */
void auth_mac(const uint8_t secret[POOL_SECRET_LEN], enum auth_side side,
	      const char *key_id, const uint8_t cnonce[POOL_NONCE_LEN],
	      const uint8_t snonce[POOL_NONCE_LEN], uint8_t out[POOL_MAC_LEN]);
/* Constant-time comparison of two MACs. */
bool auth_mac_equal(const uint8_t *a, const uint8_t *b);

/*
 * The client's side over the pool's control round trip (after HELLO):
 * CHALLENGE, AUTH, and the server's proof checked. *@ret_role is what the
 * key grants. Errors name the pool and the key.
 */
int auth_client(struct pool *p, const struct pool_cred *cred,
		enum pool_role *ret_role);

/* ---- the server's side, one per connection */

enum auth_state { AUTH_NONE, AUTH_CHALLENGED, AUTH_DONE, AUTH_FAILED };

struct auth_conn {
	enum auth_state state;
	struct pool_key key;	/* AUTH_DONE: the key the peer proved */
	unsigned gen;		/* the keys' generation it was checked at */
	char id[POOL_KEY_ID_MAX + 1];
	uint8_t cnonce[POOL_NONCE_LEN], snonce[POOL_NONCE_LEN];
};

/*
 * CHALLENGE: remembers the client's key ID and nonce, answers a fresh
 * nonce. Once per connection (else -EPROTO). Re-reads the keys if their
 * files changed.
 */
int auth_challenge(struct auth_conn *a, struct pool_keys *keys,
		   const struct pool_challenge *req,
		   struct pool_challenge_rep *rep);
/*
 * AUTH: checks the client's MAC against the key, answers the role and the
 * server's proof. -EACCES with the reason (unknown, revoked, wrong
 * secret); the caller ends the connection on any failure.
 */
int auth_verify(struct auth_conn *a, struct pool_keys *keys,
		const struct pool_auth *req, struct pool_auth_rep *rep);
/*
 * Before each request of an authenticated connection: when the keys
 * changed, the peer's key must still be there, unrevoked and with the same
 * secret (-EACCES otherwise); its new role and snapshots apply.
 */
int auth_recheck(struct auth_conn *a, struct pool_keys *keys);
void auth_conn_wipe(struct auth_conn *a);

#endif
