/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Plans: the placer's extents for one policy, with the tier URIs the data
 * went to. A restore executes a plan as written, so decoding insists on a
 * well-formed one: extents sorted, disjoint, covering every page once.
 * store/place.c writes plans; the restorer loads them, and so do
 * tier_plan_info() and tier_plan_pages() here, which say what a plan
 * holds without restoring it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/fmt.h"
#include "store/snap.h"
#include "util/err.h"
#include "tier.h"
#include "util/file.h"

#define PG		TIER_PAGE_SIZE
#define HDR_SIZE	sizeof(struct fmt_plan_hdr)
#define EXT_SIZE	sizeof(struct fmt_plan_ext)
#define OFF(f)		offsetof(struct fmt_plan_hdr, f)
#define EOFF(f)		offsetof(struct fmt_plan_ext, f)
#define EXT_FLAGS	(PLACER_F_POPULATE | PLACER_F_READAHEAD)

static int check_extents(const struct placer_ext *ext, size_t n,
			 uint64_t npages, const char *what, int err)
{
	uint64_t next = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct placer_ext *e = &ext[i];

		if (e->page != next || !e->npages || e->npages > npages - next)
			return tier_err(err,
					"%s: extent %zu [%llu, +%llu) leaves a gap or overlaps (expected page %llu of %llu)",
					what, i, (unsigned long long)e->page,
					(unsigned long long)e->npages,
					(unsigned long long)next,
					(unsigned long long)npages);
		if (e->cls >= TIER_CLASS_MAX || e->source > PLACER_SRC_POOL ||
		    e->method > PLACER_M_LAZY || e->flags & ~EXT_FLAGS)
			return tier_err(err,
					"%s: extent %zu: class %u source %u method %u flags 0x%x out of range",
					what, i, e->cls, e->source, e->method,
					e->flags);
		next += e->npages;
	}
	if (next != npages)
		return tier_err(err, "%s: extents cover %llu of %llu pages",
				what, (unsigned long long)next,
				(unsigned long long)npages);
	return 0;
}

/* A URI field is NUL-terminated and NUL-padded. */
static int check_str(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == size)
		return 0;
	for (; n < size; n++)
		if (s[n])
			return 0;
	return 1;
}

static size_t plan_size(const void *hdr)
{
	uint64_t n = fmt_get64((const char *)hdr + OFF(nextents));

	if (n > (SIZE_MAX - HDR_SIZE) / EXT_SIZE)
		return 0;
	return HDR_SIZE + n * EXT_SIZE;
}

static const struct fmt_file plan_file = {
	.kind = "plan",
	.magic = FMT_PLAN_MAGIC,
	.hdr_size = HDR_SIZE,
	.csum_off = OFF(checksum),
	.count_off = OFF(nextents),
	.count_name = "extents",
	.version = FMT_PLAN_VERSION,
	.size = plan_size,
};

int plan_encode(const struct plan *plan, void **ret, size_t *ret_len)
{
	const struct fmt_plan_hdr *h = &plan->hdr;
	uint64_t conf;
	size_t len, i, slen;
	char *buf, *p;
	int rc;

	if (plan->n > (SIZE_MAX - HDR_SIZE) / EXT_SIZE)
		return tier_err(-EOVERFLOW, "plan too large");
	if (h->policy >= TIER_POLICY_MAX)
		return tier_err(-EINVAL, "plan: unknown policy %u", h->policy);
	rc = check_extents(plan->ext, plan->n, h->npages, "plan", -EINVAL);
	if (rc)
		return rc;
	len = HDR_SIZE + plan->n * EXT_SIZE;
	buf = calloc(1, len);
	if (!buf)
		return tier_err(-ENOMEM, "out of memory");

	fmt_put32(buf + OFF(policy), h->policy);
	fmt_put64(buf + OFF(npages), h->npages);
	fmt_put64(buf + OFF(nextents), plan->n);
	fmt_put64(buf + OFF(created_ns), h->created_ns ? h->created_ns :
						       fmt_now_ns());
	/* Always NUL-terminated: a URI that long is cut, not overrun. */
	slen = strnlen(h->cxl, sizeof(h->cxl) - 1);
	memcpy(buf + OFF(cxl), h->cxl, slen);
	slen = strnlen(h->pool, sizeof(h->pool) - 1);
	memcpy(buf + OFF(pool), h->pool, slen);
	fmt_put32(buf + OFF(gap), h->gap);
	fmt_put32(buf + OFF(ntraces), h->ntraces);
	memcpy(&conf, &h->confidence, sizeof(conf));
	fmt_put64(buf + OFF(confidence), conf);
	fmt_put64(buf + OFF(cxl_capacity), h->cxl_capacity);
	fmt_put64(buf + OFF(generation), h->generation);

	for (i = 0, p = buf + HDR_SIZE; i < plan->n; i++, p += EXT_SIZE) {
		const struct placer_ext *e = &plan->ext[i];

		fmt_put64(p + EOFF(page), e->page);
		fmt_put64(p + EOFF(npages), e->npages);
		p[EOFF(cls)] = e->cls;
		p[EOFF(source)] = e->source;
		p[EOFF(method)] = e->method;
		p[EOFF(flags)] = e->flags;
		fmt_put64(p + EOFF(src_off), e->src_off);
	}
	rc = fmt_seal_file(&plan_file, buf, len);
	if (rc) {
		free(buf);
		return rc;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

int plan_decode(const void *buf, size_t len, const char *what,
		struct plan *ret)
{
	const char *b = buf, *p;
	struct fmt_plan_hdr h;
	struct placer_ext *ext;
	uint64_t next, conf;
	size_t i;
	int rc;

	rc = fmt_check_file(&plan_file, b, len, what);
	if (rc)
		return rc;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, b, 8);
	h.version = fmt_get32(b + OFF(version));
	h.checksum = fmt_get64(b + OFF(checksum));
	next = fmt_get64(b + OFF(nextents));

	h.policy = fmt_get32(b + OFF(policy));
	h.npages = fmt_get64(b + OFF(npages));
	h.nextents = next;
	h.created_ns = fmt_get64(b + OFF(created_ns));
	memcpy(h.cxl, b + OFF(cxl), sizeof(h.cxl));
	memcpy(h.pool, b + OFF(pool), sizeof(h.pool));
	h.gap = fmt_get32(b + OFF(gap));
	h.ntraces = fmt_get32(b + OFF(ntraces));
	conf = fmt_get64(b + OFF(confidence));
	memcpy(&h.confidence, &conf, sizeof(conf));
	h.cxl_capacity = fmt_get64(b + OFF(cxl_capacity));
	/* v1's reserved word: written as zero, never trusted */
	if (h.version >= 2)
		h.generation = fmt_get64(b + OFF(generation));
	if (h.policy >= TIER_POLICY_MAX)
		return tier_err(-EBADMSG, "%s: unknown policy %u", what,
				h.policy);
	if (!check_str(h.cxl, sizeof(h.cxl)) ||
	    !check_str(h.pool, sizeof(h.pool)))
		return tier_err(-EBADMSG, "%s: tier URI not NUL-terminated",
				what);

	ext = malloc(next ? next * sizeof(*ext) : 1);
	if (!ext)
		return tier_err(-ENOMEM, "out of memory");
	for (i = 0, p = b + HDR_SIZE; i < next; i++, p += EXT_SIZE) {
		ext[i].page = fmt_get64(p + EOFF(page));
		ext[i].npages = fmt_get64(p + EOFF(npages));
		ext[i].cls = p[EOFF(cls)];
		ext[i].source = p[EOFF(source)];
		ext[i].method = p[EOFF(method)];
		ext[i].flags = p[EOFF(flags)];
		ext[i].src_off = fmt_get64(p + EOFF(src_off));
	}
	rc = check_extents(ext, next, h.npages, what, -EBADMSG);
	if (rc) {
		free(ext);
		return rc;
	}
	ret->hdr = h;
	ret->ext = ext;
	ret->n = next;
	return 0;
}

int plan_load(struct tier_snap *s, enum tier_policy policy, struct plan *ret)
{
	char path[4096 + 96], what[160];
	const char *pname = tier_policy_name(policy);
	struct plan plan;
	size_t len;
	void *buf;
	int rc;

	if (!pname)
		return tier_err(-EINVAL, "unknown policy %d", (int)policy);
	snap_plan_path(s, policy, path, sizeof(path));
	rc = read_file(path, &buf, &len);
	if (rc == -ENOENT)
		return tier_err(-ENOENT,
				"snapshot %s: no plan for policy %s (run: tierctl place %s --policy %s)",
				s->name, pname, s->name, pname);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "snapshot %s: plan %s", s->name, pname);
	rc = plan_decode(buf, len, what, &plan);
	free(buf);
	if (rc)
		return rc;
	if (plan.hdr.policy != (uint32_t)policy ||
	    plan.hdr.npages != s->npages) {
		plan_free(&plan);
		return tier_err(-EBADMSG,
				"%s: written for policy %u and %llu pages, not this snapshot's %llu",
				what, plan.hdr.policy,
				(unsigned long long)plan.hdr.npages,
				(unsigned long long)s->npages);
	}
	*ret = plan;
	return 0;
}

void plan_free(struct plan *plan)
{
	if (!plan)
		return;
	free(plan->ext);
	plan->ext = NULL;
	plan->n = 0;
}

/*
 * Mappings a restore makes, as the placer counts them: one mmap per run
 * of MAP extents of one source whose bytes follow each other, one uffd
 * registration per run of adjacent COPY/LAZY extents; a plan whose CXL
 * object has the identity layout (every CXL extent at src_off = page <<
 * 12) is counted per cluster, as a restore from a shmem tier maps it.
 */
static int plan_identity(const struct placer_ext *ext, size_t n)
{
	int identity = 0;

	for (size_t i = 0; i < n; i++) {
		if (ext[i].source != PLACER_SRC_CXL)
			continue;
		if (ext[i].src_off != ext[i].page * PG)
			return 0;
		identity = 1;
	}
	return identity;
}

static uint64_t count_mappings(const struct placer_ext *ext, size_t n)
{
	return placer_count_mappings(ext, n, plan_identity(ext, n));
}

int tier_plan_info(struct tier_snap *snap, enum tier_policy policy,
		   struct tier_plan_info *ret)
{
	struct tier_plan_info info = { 0 };
	struct plan plan;
	int rc, identity;

	rc = plan_load(snap, policy, &plan);
	if (rc)
		return rc;
	info.policy = plan.hdr.policy;
	snprintf(info.cxl, sizeof(info.cxl), "%s", plan.hdr.cxl);
	{
		const char *backing;

		store_pool_split(plan.hdr.pool, info.pool, &backing);
		snprintf(info.backing, sizeof(info.backing), "%s", backing);
	}
	info.extents = plan.n;
	info.mappings = count_mappings(plan.ext, plan.n);
	identity = plan_identity(plan.ext, plan.n);
	for (size_t i = 0; i < plan.n; i++) {
		const struct placer_ext *e = &plan.ext[i];
		uint64_t end = e->src_off + e->npages * PG;

		if (e->cls < TIER_CLASS_MAX)
			info.pages[e->cls] += e->npages;
		/* identity: a sparse object holding just these pages */
		if (identity && e->source == PLACER_SRC_CXL) {
			info.cxl_bytes += e->npages * PG;
			continue;
		}
		/* An object is as large as its furthest extent reaches. */
		if (e->source == PLACER_SRC_CXL && end > info.cxl_bytes)
			info.cxl_bytes = end;
		else if (e->source == PLACER_SRC_POOL && end > info.pool_bytes)
			info.pool_bytes = end;
		else if (e->source == PLACER_SRC_LOCAL && end > info.local_bytes)
			info.local_bytes = end;
	}
	plan_free(&plan);
	*ret = info;
	return 0;
}

static uint8_t tier_of(uint8_t source)
{
	switch (source) {
	case PLACER_SRC_IMAGE:
		return TIER_TIER_IMAGE;
	case PLACER_SRC_LOCAL:
		return TIER_TIER_LOCAL;
	case PLACER_SRC_CXL:
		return TIER_TIER_CXL;
	case PLACER_SRC_POOL:
		return TIER_TIER_POOL;
	default:
		return TIER_TIER_NONE;
	}
}

int tier_plan_pages(struct tier_snap *snap, enum tier_policy policy,
		    uint8_t **ret)
{
	struct plan plan;
	uint8_t *map;
	int rc;

	rc = plan_load(snap, policy, &plan);
	if (rc)
		return rc;
	map = calloc(snap->npages ? snap->npages : 1, 1);
	if (!map) {
		plan_free(&plan);
		return tier_err(-ENOMEM, "out of memory");
	}
	/* plan_load checked the extents cover exactly [0, npages). */
	for (size_t i = 0; i < plan.n; i++) {
		const struct placer_ext *e = &plan.ext[i];
		uint8_t v = (e->cls & 0xf) | tier_of(e->source) << 4;

		memset(map + e->page, v, e->npages);
	}
	plan_free(&plan);
	*ret = map;
	return 0;
}
