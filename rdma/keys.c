/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Pool credentials as text and files (rdma/keys.h): the server's key file
 * or directory, parsed, mode-checked and re-read when it changes, its
 * edits for "tierctl pool key", and the client's credential file.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier.h"
#include "rdma/keys.h"
#include "util/err.h"
#include "util/file.h"

#define KEYS_FILE_MAX	(4U << 20)	/* a key file's text */
#define KEYS_MAX	65536U		/* keys in all files */

static const char *const role_names[] = {
	[POOL_ROLE_READ] = "read",
	[POOL_ROLE_WRITE] = "write",
	[POOL_ROLE_ADMIN] = "admin",
};

const char *pool_role_name(enum pool_role r)
{
	if (r < POOL_ROLE_READ || r > POOL_ROLE_ADMIN)
		return "?";
	return role_names[r];
}

int pool_role_parse(const char *s, enum pool_role *ret)
{
	for (int r = POOL_ROLE_READ; r <= POOL_ROLE_ADMIN; r++)
		if (!strcmp(s, role_names[r])) {
			*ret = r;
			return 0;
		}
	return tier_err(-EINVAL, "role '%s': expected read, write or admin", s);
}

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int pool_key_id_check(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > POOL_KEY_ID_MAX || id[0] == '.')
		return tier_err(-EINVAL, "key ID '%.80s': 1 to %d characters, not starting with '.'",
				id, POOL_KEY_ID_MAX);
	for (size_t i = 0; i < n; i++)
		if (!id_char(id[i]))
			return tier_err(-EINVAL, "key ID '%.80s': only A-Z a-z 0-9 . _ - allowed",
					id);
	return 0;
}

int pool_snaps_check(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > POOL_SNAPS_MAX)
		return tier_err(-EINVAL, "snapshots '%.80s': 1 to %d characters",
				s, POOL_SNAPS_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == ',' && (i == 0 || i + 1 == n || s[i + 1] == ','))
			return tier_err(-EINVAL, "snapshots '%.80s': an empty pattern", s);
		if (!id_char(c) && c != '*' && c != '?' && c != ',')
			return tier_err(-EINVAL, "snapshots '%.80s': a pattern is made of A-Z a-z 0-9 . _ - * ?",
					s);
	}
	return 0;
}

bool pool_key_allows(const struct pool_key *k, enum pool_role need,
		     const char *seg)
{
	char snap[POOL_SNAPS_MAX + 1], pats[POOL_SNAPS_MAX + 1];
	const char *slash = strchr(seg, '/');
	size_t n = slash ? (size_t)(slash - seg) : strlen(seg);
	char *save, *pat;

	if (k->revoked || k->role < need)
		return false;
	if (k->role == POOL_ROLE_ADMIN)
		return true;
	if (n >= sizeof(snap))
		return false;
	memcpy(snap, seg, n);
	snap[n] = '\0';
	snprintf(pats, sizeof(pats), "%s", k->snaps);
	for (pat = strtok_r(pats, ",", &save); pat;
	     pat = strtok_r(NULL, ",", &save))
		if (!fnmatch(pat, snap, FNM_PERIOD))
			return true;
	return false;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_secret(const char *s, uint8_t *out)
{
	if (strlen(s) != 2 * POOL_SECRET_LEN)
		return -EINVAL;
	for (unsigned i = 0; i < POOL_SECRET_LEN; i++) {
		int hi = unhex(s[2 * i]), lo = unhex(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void format_secret(const uint8_t *secret, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (unsigned i = 0; i < POOL_SECRET_LEN; i++) {
		out[2 * i] = hex[secret[i] >> 4];
		out[2 * i + 1] = hex[secret[i] & 15];
	}
	out[2 * POOL_SECRET_LEN] = '\0';
}

/* Splits @line (modified) into at most @max whitespace-separated fields. */
static unsigned split(char *line, char **f, unsigned max)
{
	unsigned n = 0;
	char *save, *t;

	for (t = strtok_r(line, " \t\r", &save); t;
	     t = strtok_r(NULL, " \t\r", &save)) {
		if (n == max)
			return max + 1;
		f[n++] = t;
	}
	return n;
}

static int parse_key_line(char **f, unsigned nf, struct pool_key *k)
{
	int rc;

	memset(k, 0, sizeof(*k));
	if (nf < 4 || nf > 5)
		return tier_err(-EINVAL, "expected ID ROLE SNAPSHOTS SECRET [revoked], %u fields",
				nf);
	rc = pool_key_id_check(f[0]);
	if (!rc)
		rc = pool_role_parse(f[1], &k->role);
	if (!rc)
		rc = pool_snaps_check(f[2]);
	if (rc)
		return rc;
	if (parse_secret(f[3], k->secret))
		return tier_err(-EINVAL, "key '%s': the secret is not %d hex digits",
				f[0], 2 * POOL_SECRET_LEN);
	if (nf == 5 && strcmp(f[4], "revoked"))
		return tier_err(-EINVAL, "key '%s': unknown flag '%.40s' (only 'revoked')",
				f[0], f[4]);
	snprintf(k->id, sizeof(k->id), "%s", f[0]);
	snprintf(k->snaps, sizeof(k->snaps), "%s", f[2]);
	k->revoked = nf == 5;
	return 0;
}

static bool have_id(const struct pool_key *keys, unsigned n, const char *id)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(keys[i].id, id))
			return true;
	return false;
}

/* Appends the keys of @text to *@keys (capacity *@cap), IDs unique. */
static int parse_into(const char *text, size_t len, const char *what,
		      struct pool_key **keys, unsigned *n, unsigned *cap)
{
	unsigned lineno = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - text - pos) : len - pos;
		char line[1024], *f[6], *hash;
		unsigned nf;
		int rc;

		lineno++;
		if (ll >= sizeof(line))
			return tier_err(-EINVAL, "%s: line %u: longer than %zu bytes",
					what, lineno, sizeof(line) - 1);
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos += ll + 1;
		if (strlen(line) != ll)
			return tier_err(-EINVAL, "%s: line %u: a NUL byte", what, lineno);
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		nf = split(line, f, 5);
		if (nf == 0)
			continue;
		if (*n == *cap) {
			unsigned nc = *cap ? *cap * 2 : 16;
			struct pool_key *k;

			if (*cap >= KEYS_MAX)
				return tier_err(-E2BIG, "%s: more than %u keys", what, KEYS_MAX);
			k = realloc(*keys, nc * sizeof(*k));
			if (!k)
				return tier_err(-ENOMEM, "out of memory");
			*keys = k;
			*cap = nc;
		}
		rc = parse_key_line(f, nf, &(*keys)[*n]);
		if (!rc && have_id(*keys, *n, (*keys)[*n].id))
			rc = tier_err(-EINVAL, "key '%s' appears twice", (*keys)[*n].id);
		if (rc)
			return tier_err_ctx(rc, "%s: line %u", what, lineno);
		(*n)++;
	}
	return 0;
}

int pool_keys_parse(const char *text, size_t len, const char *what,
		    struct pool_key **ret, unsigned *n)
{
	struct pool_key *keys = NULL;
	unsigned cnt = 0, cap = 0;
	int rc = parse_into(text, len, what, &keys, &cnt, &cap);

	if (rc) {
		free(keys);
		return rc;
	}
	*ret = keys;
	*n = cnt;
	return 0;
}

int pool_key_format(const struct pool_key *k, char *buf, size_t len)
{
	char hex[2 * POOL_SECRET_LEN + 1];
	int n;

	format_secret(k->secret, hex);
	n = snprintf(buf, len, "%s %s %s %s%s\n", k->id,
		     pool_role_name(k->role), k->snaps, hex,
		     k->revoked ? " revoked" : "");
	if (n < 0 || (size_t)n >= len)
		return tier_err(-ENAMETOOLONG, "key '%s': line too long", k->id);
	return 0;
}

int pool_keys_check_mode(const char *path, bool dir)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return tier_err(-errno, "%s: %m", path);
	if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
		return tier_err(dir ? -ENOTDIR : -EINVAL, "%s: not a %s", path,
				dir ? "directory" : "regular file");
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return tier_err(-EPERM, "%s: owned by uid %u, not by this user: another user could change the keys",
				path, (unsigned)st.st_uid);
	if (dir ? st.st_mode & (S_IWGRP | S_IWOTH) : st.st_mode & 077)
		return tier_err(-EPERM, "%s: mode %03o opens it to group or others (chmod %s)",
				path, (unsigned)(st.st_mode & 07777),
				dir ? "go-w" : "600");
	return 0;
}

/* ------------------------------------------------------- loaded keys */

struct pool_keys {
	pthread_mutex_t lock;
	char path[4096];
	bool dir;
	struct pool_key *keys;	/* under lock */
	unsigned n;
	unsigned gen;
	/* what the keys were read from: a change of any re-reads them */
	uint64_t stamp;
};

/* A digest of the inodes, sizes and mtimes of the key files. */
static int keys_stamp(struct pool_keys *k, uint64_t *ret)
{
	uint64_t h = 1469598103934665603ULL;
	struct stat st;
	struct dirent *e;
	DIR *d;

#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ULL)
	if (stat(k->path, &st) < 0)
		return tier_err(-errno, "%s: %m", k->path);
	MIX(st.st_ino); MIX(st.st_size); MIX(st.st_mtim.tv_sec); MIX(st.st_mtim.tv_nsec);
	if (k->dir) {
		d = opendir(k->path);
		if (!d)
			return tier_err(-errno, "%s: %m", k->path);
		while ((e = readdir(d)))
			if (e->d_name[0] != '.' &&
			    !fstatat(dirfd(d), e->d_name, &st, 0)) {
				MIX(st.st_ino); MIX(st.st_size);
				MIX(st.st_mtim.tv_sec); MIX(st.st_mtim.tv_nsec);
			}
		closedir(d);
	}
#undef MIX
	*ret = h;
	return 0;
}

static int read_one(const char *path, struct pool_key **keys, unsigned *n,
		    unsigned *cap)
{
	void *text;
	size_t len;
	int rc = pool_keys_check_mode(path, false);

	if (rc)
		return rc;
	rc = read_file(path, &text, &len);
	if (rc)
		return rc;
	if (len > KEYS_FILE_MAX)
		rc = tier_err(-EFBIG, "%s: larger than %u bytes", path, KEYS_FILE_MAX);
	else
		rc = parse_into(text, len, path, keys, n, cap);
	free(text);
	return rc;
}

static int read_all(struct pool_keys *k, struct pool_key **ret, unsigned *n)
{
	struct pool_key *keys = NULL;
	unsigned cnt = 0, cap = 0;
	int rc = 0;

	if (k->dir) {
		struct dirent **ents;
		int ne;

		rc = pool_keys_check_mode(k->path, true);
		if (rc)
			return rc;
		ne = scandir(k->path, &ents, NULL, alphasort);
		if (ne < 0)
			return tier_err(-errno, "%s: %m", k->path);
		for (int i = 0; i < ne; i++) {
			char p[4096 + 256];

			if (!rc && ents[i]->d_name[0] != '.') {
				snprintf(p, sizeof(p), "%s/%s", k->path,
					 ents[i]->d_name);
				rc = read_one(p, &keys, &cnt, &cap);
			}
			free(ents[i]);
		}
		free(ents);
	} else {
		rc = read_one(k->path, &keys, &cnt, &cap);
	}
	if (rc) {
		free(keys);
		return rc;
	}
	*ret = keys;
	*n = cnt;
	return 0;
}

int pool_keys_load(const char *path, struct pool_keys **ret)
{
	struct pool_keys *k;
	struct stat st;
	int rc;

	if (stat(path, &st) < 0)
		return tier_err(-errno, "keys %s: %m", path);
	k = calloc(1, sizeof(*k));
	if (!k)
		return tier_err(-ENOMEM, "out of memory");
	pthread_mutex_init(&k->lock, NULL);
	snprintf(k->path, sizeof(k->path), "%s", path);
	k->dir = S_ISDIR(st.st_mode);
	rc = keys_stamp(k, &k->stamp);
	if (!rc)
		rc = read_all(k, &k->keys, &k->n);
	if (rc) {
		pool_keys_free(k);
		return rc;
	}
	k->gen = 1;
	*ret = k;
	return 0;
}

void pool_keys_free(struct pool_keys *k)
{
	if (!k)
		return;
	if (k->keys)
		explicit_bzero(k->keys, k->n * sizeof(*k->keys));
	free(k->keys);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

int pool_keys_refresh(struct pool_keys *k, unsigned *ret_gen)
{
	struct pool_key *keys, *old = NULL;
	unsigned n, oldn = 0;
	uint64_t stamp;
	int rc;

	pthread_mutex_lock(&k->lock);
	rc = keys_stamp(k, &stamp);
	if (!rc && stamp != k->stamp) {
		rc = read_all(k, &keys, &n);
		if (!rc) {
			old = k->keys;
			oldn = k->n;
			k->keys = keys;
			k->n = n;
			k->stamp = stamp;
			__atomic_store_n(&k->gen, k->gen + 1, __ATOMIC_RELEASE);
		}
	}
	if (ret_gen)
		*ret_gen = k->gen;
	pthread_mutex_unlock(&k->lock);
	if (old)
		explicit_bzero(old, oldn * sizeof(*old));
	free(old);
	return rc;
}

unsigned pool_keys_generation(struct pool_keys *k)
{
	return __atomic_load_n(&k->gen, __ATOMIC_ACQUIRE);
}

int pool_keys_find(struct pool_keys *k, const char *id, struct pool_key *ret)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&k->lock);
	for (unsigned i = 0; i < k->n; i++)
		if (!strcmp(k->keys[i].id, id)) {
			*ret = k->keys[i];
			rc = 0;
			break;
		}
	pthread_mutex_unlock(&k->lock);
	return rc;
}

int pool_keys_all(struct pool_keys *k, struct pool_key **ret, unsigned *n)
{
	int rc = 0;

	pthread_mutex_lock(&k->lock);
	*ret = malloc((k->n ? k->n : 1) * sizeof(**ret));
	if (*ret) {
		memcpy(*ret, k->keys, k->n * sizeof(**ret));
		*n = k->n;
	} else {
		rc = tier_err(-ENOMEM, "out of memory");
	}
	pthread_mutex_unlock(&k->lock);
	return rc;
}

/* ------------------------------------------------------------- edits */

/* Reads @file's keys; a missing file is an empty one. */
static int edit_read(const char *file, struct pool_key **keys, unsigned *n)
{
	unsigned cap = 0;

	*keys = NULL;
	*n = 0;
	if (access(file, F_OK) < 0 && errno == ENOENT)
		return 0;
	return read_one(file, keys, n, &cap);
}

static int edit_write(const char *file, const struct pool_key *keys,
		      unsigned n)
{
	static const char head[] =
		"# tier pool keys (tierctl pool key): ID ROLE SNAPSHOTS SECRET [revoked]\n";
	struct atomic_file af;
	char line[1024];
	int rc = atomic_open(&af, file);

	if (rc)
		return rc;
	if (fchmod(af.fd, 0600) < 0)
		rc = tier_err(-errno, "%s: chmod: %m", af.tmp);
	if (!rc)
		rc = write_full(af.fd, head, sizeof(head) - 1, file);
	for (unsigned i = 0; !rc && i < n; i++) {
		rc = pool_key_format(&keys[i], line, sizeof(line));
		if (!rc)
			rc = write_full(af.fd, line, strlen(line), file);
	}
	explicit_bzero(line, sizeof(line));
	if (rc) {
		atomic_abort(&af);
		return rc;
	}
	return atomic_commit(&af);
}

int pool_keys_add(const char *file, const struct pool_key *k)
{
	struct pool_key *keys, *nk;
	unsigned n;
	int rc = edit_read(file, &keys, &n);

	if (rc)
		return rc;
	if (have_id(keys, n, k->id)) {
		rc = tier_err(-EEXIST, "%s: key '%s' exists already (a revoked ID is never reused)",
			      file, k->id);
		goto out;
	}
	nk = realloc(keys, (n + 1) * sizeof(*keys));
	if (!nk) {
		rc = tier_err(-ENOMEM, "out of memory");
		goto out;
	}
	keys = nk;
	keys[n++] = *k;
	rc = edit_write(file, keys, n);
out:
	if (keys)
		explicit_bzero(keys, n * sizeof(*keys));
	free(keys);
	return rc;
}

int pool_keys_revoke(const char *file, const char *id)
{
	struct pool_key *keys;
	unsigned n, i;
	int rc = edit_read(file, &keys, &n);

	if (rc)
		return rc;
	for (i = 0; i < n && strcmp(keys[i].id, id); i++)
		;
	if (i == n)
		rc = tier_err(-ENOENT, "%s: no key '%s'", file, id);
	else if (keys[i].revoked)
		rc = tier_err(-EALREADY, "%s: key '%s' is revoked already", file, id);
	else {
		keys[i].revoked = true;
		rc = edit_write(file, keys, n);
	}
	if (keys)
		explicit_bzero(keys, n * sizeof(*keys));
	free(keys);
	return rc;
}

/* ------------------------------------------------------- credentials */

int pool_cred_read(const char *file, struct pool_cred *ret)
{
	char *text, *f[3], *hash, *nl;
	size_t len;
	unsigned nf;
	int rc = pool_keys_check_mode(file, false);

	if (rc)
		return rc;
	rc = read_file(file, (void **)&text, &len);
	if (rc)
		return rc;
	memset(ret, 0, sizeof(*ret));
	/* the first line that is not a comment */
	for (char *line = text; line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		nf = split(line, f, 2);
		if (nf == 0)
			continue;
		if (nf != 2)
			rc = tier_err(-EINVAL, "%s: expected ID SECRET", file);
		else if (pool_key_id_check(f[0]))
			rc = tier_err_ctx(-EINVAL, "%s", file);
		else if (parse_secret(f[1], ret->secret))
			rc = tier_err(-EINVAL, "%s: the secret is not %d hex digits",
				      file, 2 * POOL_SECRET_LEN);
		else
			snprintf(ret->id, sizeof(ret->id), "%s", f[0]);
		break;
	}
	if (!rc && !ret->id[0])
		rc = tier_err(-EINVAL, "%s: no credential in it", file);
	explicit_bzero(text, len);
	free(text);
	return rc;
}

int pool_cred_write(const char *file, const struct pool_cred *c)
{
	char line[POOL_KEY_ID_MAX + 2 * POOL_SECRET_LEN + 64];
	char hex[2 * POOL_SECRET_LEN + 1];
	struct atomic_file af;
	int rc;

	if (access(file, F_OK) == 0)
		return tier_err(-EEXIST, "%s exists already: remove it first", file);
	rc = atomic_open(&af, file);
	if (rc)
		return rc;
	format_secret(c->secret, hex);
	snprintf(line, sizeof(line), "%s %s\n", c->id, hex);
	if (fchmod(af.fd, 0600) < 0)
		rc = tier_err(-errno, "%s: chmod: %m", af.tmp);
	if (!rc)
		rc = write_full(af.fd, line, strlen(line), file);
	explicit_bzero(line, sizeof(line));
	explicit_bzero(hex, sizeof(hex));
	if (rc) {
		atomic_abort(&af);
		return rc;
	}
	return atomic_commit(&af);
}
