/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_UTIL_URI_H
#define TIER_UTIL_URI_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Tier URIs, as users write them (DESIGN.md "Tier URIs"):
 *	cxl=dir:PATH  cxl=devdax:/dev/daxX.Y  cxl=numa:NODE[:/DIR]
 *	pool=file:PATH  pool=tcp://HOST:PORT  pool=rdma://HOST:PORT
 *	pool=rados://POOL[/NAMESPACE][?id=CLIENT&conf=PATH&keyring=PATH&object_size=SIZE]
 * The "cxl=" / "pool=" prefix is optional where the context says which.
 */
enum uri_kind {
	URI_CXL_DIR,
	URI_CXL_DEVDAX,
	URI_CXL_NUMA,
	URI_POOL_FILE,
	URI_POOL_TCP,
	URI_POOL_RDMA,
	URI_POOL_RADOS,
};

/*
 * rados: a Ceph pool and namespace; an empty id, conf or keyring leaves
 * it to Ceph's own defaults and environment (CEPH_CONF, CEPH_ARGS), as
 * the ceph and rados tools do. Query values are taken as written (no
 * %-decoding), so a path may not hold '&'.
 */
struct uri_rados {
	char pool[128];
	char ns[128];
	char id[64];		/* "tier" for client.tier */
	char conf[1024];
	char keyring[1024];
	/* bytes of each object a written segment is striped over; 0: the
	 * default (rdma/rados.c). Readers take it from the commit object. */
	uint32_t object_size;
};

struct tier_uri {
	enum uri_kind kind;
	char path[PATH_MAX];	/* dir, devdax, file; numa: its dir or "" */
	char host[256];		/* tcp, rdma: name or address, [v6] unbracketed */
	uint16_t port;		/* tcp, rdma */
	int node;		/* numa */
	struct uri_rados rados;	/* rados */
};

/* rados object_size bounds: past 64 MiB nears the OSDs' 128 MiB limit. */
#define URI_RADOS_OBJ_MIN	(64U << 10)
#define URI_RADOS_OBJ_MAX	(64U << 20)

/* Which side a URI must be on. */
#define URI_WANT_CXL	(1U << 0)
#define URI_WANT_POOL	(1U << 1)

/*
 * Parses @s; -EINVAL with a message quoting @s and saying what is wrong
 * (unknown scheme, missing port, port out of range, empty path, ...).
 * @want restricts the accepted kinds (0: any). Pure: no syscalls.
 */
int uri_parse(const char *s, unsigned want, struct tier_uri *ret);

/* Canonical text with its "cxl=" or "pool=" prefix; -ENAMETOOLONG. */
int uri_format(const struct tier_uri *uri, char *buf, size_t len);

#endif
