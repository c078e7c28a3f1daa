/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Tier URIs: "cxl=dir:PATH", "pool=tcp://HOST:PORT", ... Pure string work
 * (no syscalls, no allocation), so it can be fuzzed (tests/fuzz-uri.c).
 * Every refusal is -EINVAL with the whole input quoted. Called by
 * store/place.c, the restorer and tierctl's option checks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/err.h"
#include "util/size.h"
#include "util/uri.h"

#define NUMA_NODE_MAX	1023

struct scheme {
	const char *name;
	enum uri_kind kind;
	bool net;		/* "name://HOST:PORT" rather than "name:ARG" */
};

static const struct scheme schemes[] = {
	{ "dir", URI_CXL_DIR, false },
	{ "devdax", URI_CXL_DEVDAX, false },
	{ "numa", URI_CXL_NUMA, false },
	{ "file", URI_POOL_FILE, false },
	{ "tcp", URI_POOL_TCP, true },
	{ "rdma", URI_POOL_RDMA, true },
	{ "rados", URI_POOL_RADOS, true },
};

/*
 * -EINVAL with the reason after the quoted input; a long input is cut so
 * the reason always fits the message.
 */
static int uri_err(const char *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int uri_err(const char *s, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (strlen(s) > 200)
		return tier_err(-EINVAL, "\"%.200s...\": %s", s, why);
	return tier_err(-EINVAL, "\"%s\": %s", s, why);
}

static bool kind_is_cxl(enum uri_kind k)
{
	return k == URI_CXL_DIR || k == URI_CXL_DEVDAX || k == URI_CXL_NUMA;
}

static const char *side_name(bool cxl)
{
	return cxl ? "cxl" : "pool";
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_alnum(char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'z') ||
	       (ch >= 'A' && ch <= 'Z');
}

/* Decimal digits only (no sign, no space) up to @max; false otherwise. */
static bool parse_dec(const char *s, size_t len, unsigned long max,
		      unsigned long *ret)
{
	unsigned long v = 0;
	size_t i;

	if (!len)
		return false;
	for (i = 0; i < len; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
		if (v > max)
			return false;
	}
	*ret = v;
	return true;
}

static int copy_path(const char *orig, const char *arg, const char *what,
		     char *dst, size_t dstlen)
{
	size_t len = strlen(arg);

	if (!len)
		return uri_err(orig, "empty %s", what);
	if (len >= dstlen)
		return uri_err(orig, "%s longer than %zu bytes", what,
			       dstlen - 1);
	memcpy(dst, arg, len + 1);
	return 0;
}

/* "HOST:PORT" or "[V6]:PORT", nothing after the port. */
static int parse_hostport(const char *orig, const char *scheme,
			  const char *s, struct tier_uri *u)
{
	const char *host, *colon, *end;
	unsigned long port;
	size_t hlen, i;

	if (*s == '[') {
		host = s + 1;
		end = strchr(host, ']');
		if (!end)
			return uri_err(orig, "unclosed '[' in host");
		hlen = end - host;
		colon = end + 1;
		if (*colon != ':')
			return uri_err(orig, "missing port (want %s://[ADDR]:PORT)",
				       scheme);
		if (!hlen)
			return uri_err(orig, "empty host");
		if (!memchr(host, ':', hlen))
			return uri_err(orig, "brackets are for IPv6 addresses only");
		for (i = 0; i < hlen; i++)
			if (!is_alnum(host[i]) && !strchr(":.%-_", host[i]))
				return uri_err(orig, "bad character '%c' in IPv6 address",
					       host[i]);
	} else {
		host = s;
		colon = strrchr(s, ':');
		if (!colon)
			return uri_err(orig, "missing port (want %s://HOST:PORT)",
				       scheme);
		hlen = colon - host;
		if (!hlen)
			return uri_err(orig, "empty host");
		if (memchr(host, ':', hlen))
			return uri_err(orig, "an IPv6 address needs brackets: %s://[ADDR]:PORT",
				       scheme);
		for (i = 0; i < hlen; i++)
			if (!is_alnum(host[i]) && !strchr(".-_", host[i]))
				return uri_err(orig, "bad character '%c' in host",
					       host[i]);
	}
	if (hlen >= sizeof(u->host))
		return uri_err(orig, "host longer than %zu bytes",
			       sizeof(u->host) - 1);

	if (!colon[1])
		return uri_err(orig, "missing port");
	if (!parse_dec(colon + 1, strlen(colon + 1), 65535, &port))
		return uri_err(orig, "bad port \"%s\" (want 0 to 65535)",
			       colon + 1);
	memcpy(u->host, host, hlen);
	u->host[hlen] = '\0';
	u->port = port;
	return 0;
}

/* A Ceph pool or namespace name, or a client id: [A-Za-z0-9._-]. */
static int copy_name(const char *orig, const char *what, const char *s,
		     size_t len, char *dst, size_t dstlen)
{
	size_t i;

	if (!len)
		return uri_err(orig, "empty %s", what);
	if (len >= dstlen)
		return uri_err(orig, "%s longer than %zu bytes", what,
			       dstlen - 1);
	for (i = 0; i < len; i++)
		if (!is_alnum(s[i]) && !strchr("._-", s[i]))
			return uri_err(orig, "bad character '%c' in %s", s[i],
				       what);
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

/* "KEY=VALUE&..." after the '?': id, conf and keyring, each at most once. */
static int parse_rados_query(const char *orig, const char *q,
			     struct uri_rados *r)
{
	while (*q) {
		const char *amp = strchrnul(q, '&');
		const char *eq = memchr(q, '=', amp - q);
		size_t klen, vlen;
		char *dst;
		size_t dstlen;
		int rc;

		if (!eq)
			return uri_err(orig, "\"%.*s\": want KEY=VALUE (id, conf, keyring)",
				       (int)(amp - q), q);
		klen = eq - q;
		vlen = amp - eq - 1;
		if (klen == 2 && !strncmp(q, "id", 2)) {
			if (r->id[0])
				return uri_err(orig, "id given twice");
			rc = copy_name(orig, "client id", eq + 1, vlen, r->id,
				       sizeof(r->id));
			if (rc)
				return rc;
			if (!strncmp(r->id, "client.", 7))
				return uri_err(orig, "id is the name after \"client.\" (id=%s)",
					       r->id + 7);
		} else if ((klen == 4 && !strncmp(q, "conf", 4)) ||
			   (klen == 7 && !strncmp(q, "keyring", 7))) {
			dst = klen == 4 ? r->conf : r->keyring;
			dstlen = klen == 4 ? sizeof(r->conf) : sizeof(r->keyring);
			if (dst[0])
				return uri_err(orig, "%.*s given twice",
					       (int)klen, q);
			if (!vlen)
				return uri_err(orig, "empty %.*s path",
					       (int)klen, q);
			if (vlen >= dstlen)
				return uri_err(orig, "%.*s path longer than %zu bytes",
					       (int)klen, q, dstlen - 1);
			memcpy(dst, eq + 1, vlen);
			dst[vlen] = '\0';
		} else if (klen == 11 && !strncmp(q, "object_size", 11)) {
			char v[32];
			uint64_t sz;

			if (r->object_size)
				return uri_err(orig, "object_size given twice");
			snprintf(v, sizeof(v), "%.*s", (int)vlen, eq + 1);
			if (vlen >= sizeof(v) || parse_size(v, &sz) ||
			    sz < URI_RADOS_OBJ_MIN || sz > URI_RADOS_OBJ_MAX ||
			    sz % 4096)
				return uri_err(orig, "object_size \"%.*s\": want a multiple of 4 KiB from 64K to 64M",
					       (int)vlen, eq + 1);
			r->object_size = sz;
		} else {
			return uri_err(orig, "unknown parameter \"%.*s\" (want id, conf, keyring or object_size)",
				       (int)klen, q);
		}
		q = *amp ? amp + 1 : amp;
		if (*amp && !*q)
			return uri_err(orig, "empty parameter after '&'");
	}
	return 0;
}

/* "POOL[/NAMESPACE][?QUERY]" */
static int parse_rados(const char *orig, const char *s, struct uri_rados *r)
{
	const char *q = strchrnul(s, '?');
	const char *slash = memchr(s, '/', q - s);
	const char *pend = slash ? slash : q;
	int rc;

	rc = copy_name(orig, "Ceph pool", s, pend - s, r->pool,
		       sizeof(r->pool));
	if (rc)
		return rc;
	if (slash) {
		rc = copy_name(orig, "namespace", slash + 1, q - slash - 1,
			       r->ns, sizeof(r->ns));
		if (rc)
			return rc;
	}
	if (!*q)
		return 0;
	if (!q[1])
		return uri_err(orig, "empty query after '?'");
	return parse_rados_query(orig, q + 1, r);
}

static int parse_arg(const char *orig, const struct scheme *sc,
		     const char *arg, struct tier_uri *u)
{
	unsigned long node;

	switch (sc->kind) {
	case URI_CXL_DIR:
		return copy_path(orig, arg, "directory", u->path,
				 sizeof(u->path));
	case URI_POOL_FILE:
		return copy_path(orig, arg, "file name", u->path,
				 sizeof(u->path));
	case URI_CXL_DEVDAX:
		if (strncmp(arg, "/dev/", 5) || !arg[5])
			return uri_err(orig, "a devdax device is /dev/daxX.Y");
		return copy_path(orig, arg, "device", u->path,
				 sizeof(u->path));
	case URI_CXL_NUMA: {
		/* NODE, or NODE:DIR for where its tmpfs objects live */
		const char *dir = strchr(arg, ':');
		size_t nlen = dir ? (size_t)(dir - arg) : strlen(arg);

		if (!parse_dec(arg, nlen, NUMA_NODE_MAX, &node))
			return uri_err(orig, "bad NUMA node \"%.*s\" (want 0 to %d)",
				       (int)nlen, arg, NUMA_NODE_MAX);
		u->node = (int)node;
		if (!dir)
			return 0;
		if (dir[1] != '/')
			return uri_err(orig, "the directory after the node must be absolute");
		return copy_path(orig, dir + 1, "directory", u->path,
				 sizeof(u->path));
	}
	case URI_POOL_TCP:
	case URI_POOL_RDMA:
		return parse_hostport(orig, sc->name, arg, u);
	case URI_POOL_RADOS:
		return parse_rados(orig, arg, &u->rados);
	}
	return uri_err(orig, "unknown kind");
}

int uri_parse(const char *s, unsigned want, struct tier_uri *ret)
{
	const struct scheme *sc = NULL;
	const char *p, *colon;
	struct tier_uri u;
	int prefix = -1;	/* -1: none, 1: cxl=, 0: pool= */
	size_t slen, i;
	bool cxl;
	int rc;

	if (!s || !ret)
		return tier_err(-EINVAL, "tier URI: none given");
	if (!(want & (URI_WANT_CXL | URI_WANT_POOL)))
		want |= URI_WANT_CXL | URI_WANT_POOL;
	if (!*s)
		return tier_err(-EINVAL, "empty tier URI");

	p = s;
	if (!strncasecmp(p, "cxl=", 4)) {
		prefix = 1;
		p += 4;
	} else if (!strncasecmp(p, "pool=", 5)) {
		prefix = 0;
		p += 5;
	}
	if (prefix >= 0 && !(want & (prefix ? URI_WANT_CXL : URI_WANT_POOL)))
		return uri_err(s, "a %s tier, but a %s tier is wanted here",
			       side_name(prefix), side_name(!prefix));

	colon = strchr(p, ':');
	if (!colon || colon == p)
		return uri_err(s, "no scheme (want dir:, devdax:, numa:, file:, tcp://, rdma:// or rados://)");
	slen = colon - p;
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		if (strlen(schemes[i].name) == slen &&
		    !strncasecmp(p, schemes[i].name, slen)) {
			sc = &schemes[i];
			break;
		}
	}
	if (!sc)
		return uri_err(s, "unknown scheme \"%.*s\"", (int)slen, p);

	cxl = kind_is_cxl(sc->kind);
	if (prefix >= 0 && prefix != cxl)
		return uri_err(s, "%s is a %s tier, not a %s tier", sc->name,
			       side_name(cxl), side_name(prefix));
	if (!(want & (cxl ? URI_WANT_CXL : URI_WANT_POOL)))
		return uri_err(s, "%s is a %s tier, but a %s tier is wanted here",
			       sc->name, side_name(cxl), side_name(!cxl));

	p = colon + 1;
	if (sc->net) {
		if (strncmp(p, "//", 2))
			return uri_err(s, sc->kind == URI_POOL_RADOS ?
				       "want rados://POOL[/NAMESPACE]" :
				       "want %s://HOST:PORT", sc->name);
		p += 2;
	}

	memset(&u, 0, sizeof(u));
	u.kind = sc->kind;
	rc = parse_arg(s, sc, p, &u);
	if (rc)
		return rc;
	*ret = u;
	return 0;
}

/* snprintf at *@n of @buf, adding what it would print to *@n. */
static void fmt_add(char *buf, size_t len, int *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void fmt_add(char *buf, size_t len, int *n, const char *fmt, ...)
{
	size_t at = (size_t)*n < len ? (size_t)*n : len;
	va_list ap;
	int m;

	if (*n < 0)
		return;
	va_start(ap, fmt);
	m = vsnprintf(buf ? buf + at : NULL, len - at, fmt, ap);
	va_end(ap);
	*n = m < 0 ? m : *n + m;
}

/* The parameters in a fixed order, so the text is canonical. */
static int format_rados(const struct uri_rados *r, char *buf, size_t len)
{
	char sep = '?';
	int n = 0;

	fmt_add(buf, len, &n, "pool=rados://%s%s%s", r->pool,
		r->ns[0] ? "/" : "", r->ns);
	if (r->id[0]) {
		fmt_add(buf, len, &n, "%cid=%s", sep, r->id);
		sep = '&';
	}
	if (r->conf[0]) {
		fmt_add(buf, len, &n, "%cconf=%s", sep, r->conf);
		sep = '&';
	}
	if (r->keyring[0]) {
		fmt_add(buf, len, &n, "%ckeyring=%s", sep, r->keyring);
		sep = '&';
	}
	if (r->object_size)
		fmt_add(buf, len, &n, "%cobject_size=%u", sep, r->object_size);
	return n;
}

int uri_format(const struct tier_uri *uri, char *buf, size_t len)
{
	const char *host_l = "", *host_r = "";
	int n;

	if (!uri || (!buf && len))
		return tier_err(-EINVAL, "tier URI: nothing to format");

	switch (uri->kind) {
	case URI_CXL_DIR:
		n = snprintf(buf, len, "cxl=dir:%s", uri->path);
		break;
	case URI_CXL_DEVDAX:
		n = snprintf(buf, len, "cxl=devdax:%s", uri->path);
		break;
	case URI_CXL_NUMA:
		if (uri->node < 0 || uri->node > NUMA_NODE_MAX)
			return tier_err(-EINVAL, "tier URI: bad NUMA node %d",
					uri->node);
		n = snprintf(buf, len, "cxl=numa:%d%s%s", uri->node,
			     uri->path[0] ? ":" : "", uri->path);
		break;
	case URI_POOL_FILE:
		n = snprintf(buf, len, "pool=file:%s", uri->path);
		break;
	case URI_POOL_TCP:
	case URI_POOL_RDMA:
		if (strchr(uri->host, ':')) {
			host_l = "[";
			host_r = "]";
		}
		n = snprintf(buf, len, "pool=%s://%s%s%s:%u",
			     uri->kind == URI_POOL_TCP ? "tcp" : "rdma",
			     host_l, uri->host, host_r, (unsigned)uri->port);
		break;
	case URI_POOL_RADOS:
		if (!uri->rados.pool[0])
			return tier_err(-EINVAL, "tier URI: rados without a pool");
		n = format_rados(&uri->rados, buf, len);
		break;
	default:
		return tier_err(-EINVAL, "tier URI: unknown kind %d",
				(int)uri->kind);
	}
	if (n < 0 || (size_t)n >= len)
		return tier_err(-ENAMETOOLONG, "tier URI: %d bytes do not fit "
				"in %zu", n, len);
	return 0;
}
