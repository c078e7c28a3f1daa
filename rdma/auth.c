/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Challenge-response authentication of pool connections (rdma/auth.h):
 * the MAC, the nonces and the client's half of the exchange. libsodium is
 * used here and nowhere else.
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/uio.h>

#include "tier.h"
#include "rdma/auth.h"
#include "rdma/pool-int.h"
#include "util/err.h"
#include "util/log.h"

/* Binds a MAC to this protocol and version, not just to the nonces. */
static const char auth_label[16] = "tier-pool-auth1";

int auth_init(void)
{
	/* thread-safe, and idempotent after the first success */
	if (sodium_init() < 0)
		return tier_err(-ENOSYS, "libsodium: cannot initialise");
	return 0;
}

void auth_random(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

void auth_mac(const uint8_t secret[POOL_SECRET_LEN], enum auth_side side,
	      const char *key_id, const uint8_t cnonce[POOL_NONCE_LEN],
	      const uint8_t snonce[POOL_NONCE_LEN], uint8_t out[POOL_MAC_LEN])
{
	crypto_auth_hmacsha256_state st;
	char id[64] = { 0 };
	uint8_t s = (uint8_t)side;

	strncpy(id, key_id, sizeof(id) - 1);
	crypto_auth_hmacsha256_init(&st, secret, POOL_SECRET_LEN);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)auth_label,
				      sizeof(auth_label));
	crypto_auth_hmacsha256_update(&st, &s, 1);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)id, sizeof(id));
	crypto_auth_hmacsha256_update(&st, cnonce, POOL_NONCE_LEN);
	crypto_auth_hmacsha256_update(&st, snonce, POOL_NONCE_LEN);
	crypto_auth_hmacsha256_final(&st, out);
	sodium_memzero(&st, sizeof(st));
}

bool auth_mac_equal(const uint8_t *a, const uint8_t *b)
{
	return sodium_memcmp(a, b, POOL_MAC_LEN) == 0;
}

int auth_client(struct pool *p, const struct pool_cred *cred,
		enum pool_role *ret_role)
{
	struct pool_challenge ch = { 0 };
	struct pool_challenge_rep chr;
	struct pool_auth au;
	struct pool_auth_rep aur;
	uint8_t want[POOL_MAC_LEN];
	struct iovec out;
	int rc = auth_init();

	if (rc)
		return rc;
	snprintf(ch.key_id, sizeof(ch.key_id), "%s", cred->id);
	auth_random(ch.nonce, sizeof(ch.nonce));
	out = (struct iovec){ &ch, sizeof(ch) };
	rc = p->ctl->call(p, NULL, POOL_OP_CHALLENGE, &out, 1, &chr, sizeof(chr));
	if (rc)
		return rc;

	auth_mac(cred->secret, AUTH_CLIENT, cred->id, ch.nonce, chr.nonce, au.mac);
	out = (struct iovec){ &au, sizeof(au) };
	rc = p->ctl->call(p, NULL, POOL_OP_AUTH, &out, 1, &aur, sizeof(aur));
	if (rc)
		return rc;
	proto_auth_rep_swap(&aur);

	/* the server proves it holds the key too: no impostor serves us */
	auth_mac(cred->secret, AUTH_SERVER, cred->id, ch.nonce, chr.nonce, want);
	if (!auth_mac_equal(want, aur.mac)) {
		p->ctl->drop(p);
		return tier_err(-EACCES, "pool %s: key '%s': the server's proof is wrong: it does not hold this key",
				p->uri, cred->id);
	}
	if (aur.role < POOL_ROLE_READ || aur.role > POOL_ROLE_ADMIN) {
		p->ctl->drop(p);
		return tier_err(-EPROTO, "pool %s: AUTH answered role %u",
				p->uri, aur.role);
	}
	*ret_role = aur.role;
	return 0;
}

/* ------------------------------------------------------------ server */

int auth_challenge(struct auth_conn *a, struct pool_keys *keys,
		   const struct pool_challenge *req,
		   struct pool_challenge_rep *rep)
{
	unsigned gen;
	int rc;

	if (a->state != AUTH_NONE)
		return tier_err(-EPROTO, "a second CHALLENGE on one connection");
	rc = auth_init();
	if (rc)
		return rc;
	if (!memchr(req->key_id, '\0', sizeof(req->key_id)))
		return tier_err(-EPROTO, "CHALLENGE: key ID not NUL-terminated");
	snprintf(a->id, sizeof(a->id), "%s", req->key_id);
	memcpy(a->cnonce, req->nonce, POOL_NONCE_LEN);
	auth_random(a->snonce, POOL_NONCE_LEN);
	memcpy(rep->nonce, a->snonce, POOL_NONCE_LEN);
	/* an edited key file counts from the next connection on */
	if (pool_keys_refresh(keys, &gen))
		tier_log(TIER_LOG_ERR, "pool server: keys not re-read, the old ones stay: %s",
			 tier_errmsg());
	a->state = AUTH_CHALLENGED;
	return 0;
}

static int refuse(struct auth_conn *a, int rc)
{
	a->state = AUTH_FAILED;
	return rc;
}

int auth_verify(struct auth_conn *a, struct pool_keys *keys,
		const struct pool_auth *req, struct pool_auth_rep *rep)
{
	uint8_t want[POOL_MAC_LEN];
	struct pool_key k;
	bool ok;

	if (a->state != AUTH_CHALLENGED)
		return refuse(a, tier_err(-EPROTO, "AUTH %s",
					  a->state == AUTH_NONE ? "before CHALLENGE" :
								  "a second time"));
	if (pool_keys_find(keys, a->id, &k))
		return refuse(a, tier_err(-EACCES, "key '%s' refused: not known to this server",
					  a->id));
	if (k.revoked) {
		explicit_bzero(&k, sizeof(k));
		return refuse(a, tier_err(-EACCES, "key '%s' refused: revoked", a->id));
	}
	auth_mac(k.secret, AUTH_CLIENT, a->id, a->cnonce, a->snonce, want);
	ok = auth_mac_equal(want, req->mac);
	sodium_memzero(want, sizeof(want));
	if (!ok) {
		explicit_bzero(&k, sizeof(k));
		return refuse(a, tier_err(-EACCES, "key '%s' refused: wrong secret",
					  a->id));
	}
	*rep = (struct pool_auth_rep){ .role = k.role };
	auth_mac(k.secret, AUTH_SERVER, a->id, a->cnonce, a->snonce, rep->mac);
	proto_auth_rep_swap(rep);
	a->key = k;
	explicit_bzero(&k, sizeof(k));
	pool_keys_refresh(keys, &a->gen);
	a->state = AUTH_DONE;
	return 0;
}

int auth_recheck(struct auth_conn *a, struct pool_keys *keys)
{
	struct pool_key k;
	unsigned gen = pool_keys_generation(keys);
	int rc = 0;

	if (gen == a->gen)
		return 0;
	if (pool_keys_find(keys, a->key.id, &k))
		rc = tier_err(-EACCES, "key '%s' was removed from the server's keys",
			      a->key.id);
	else if (k.revoked)
		rc = tier_err(-EACCES, "key '%s' was revoked", a->key.id);
	else if (sodium_memcmp(k.secret, a->key.secret, POOL_SECRET_LEN))
		rc = tier_err(-EACCES, "key '%s' was replaced", a->key.id);
	if (!rc) {
		a->key = k;
		a->gen = gen;
	} else {
		a->state = AUTH_FAILED;
	}
	explicit_bzero(&k, sizeof(k));
	return rc;
}

void auth_conn_wipe(struct auth_conn *a)
{
	sodium_memzero(a, sizeof(*a));
}
