/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Generations: a plan and the data it references (CXL object, pool
 * segment, local file), named by the plan's generation (store/snap.h).
 * Before a place creates anything in a tier it records the generation
 * and the tiers it writes in an intent, plans/POLICY.GEN.intent, which
 * lives as long as that data: so a place killed anywhere, or one that
 * could not remove what it replaced (a pool down), leaves intents that
 * say exactly what is nobody's, on which tiers, and the next place of
 * that policy or a "tierctl gc" removes it (gen_recover). An intent is a
 * plan with no pages: its generation and its tier URIs ("" for a tier
 * the generation does not use). Everything here runs under the policy's
 * lock (gen_lock), the one place and gc take; restores take none.
 * Called by store/place.c and the store's gc (store/gc.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cxl/cxl.h"
#include "rdma/pool.h"
#include "store/gen.h"
#include "util/err.h"
#include "util/file.h"
#include "util/log.h"

static void plans_dir(const struct tier_snap *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s/plans", s->dir);
}

static void intent_path(const struct tier_snap *s, enum tier_policy policy,
			uint64_t gen, char *buf, size_t len)
{
	const char *p = tier_policy_name(policy);

	snprintf(buf, len, "%s/plans/%s.%016" PRIx64 ".intent", s->dir,
		 p ? p : "unknown", gen);
}

int gen_lock(struct tier_snap *s, enum tier_policy policy, bool wait,
	     int *ret_fd)
{
	char path[4096 + 96], *dot;
	int fd, rc;

	plans_dir(s, path, sizeof(path));
	rc = mkdir_p(path, 0755);
	if (rc)
		return rc;
	snap_plan_path(s, policy, path, sizeof(path));
	dot = strrchr(path, '.');
	snprintf(dot, sizeof(path) - (dot - path), ".lock");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return tier_err(-errno, "%s: %m", path);
	while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		if (errno == EINTR)
			continue;
		rc = errno == EWOULDBLOCK ?
		     tier_err(-EBUSY, "%s: a place is running", path) :
		     tier_err(-errno, "%s: lock: %m", path);
		close(fd);
		return rc;
	}
	*ret_fd = fd;
	return 0;
}

int gen_intent_write(struct tier_snap *s, enum tier_policy policy,
		     uint64_t gen, const char *cxl, const char *pool)
{
	struct plan in = { 0 };
	char path[4096 + 128];
	size_t len;
	void *buf;
	int rc;

	in.hdr.policy = policy;
	in.hdr.generation = gen;
	snprintf(in.hdr.cxl, sizeof(in.hdr.cxl), "%s", cxl);
	snprintf(in.hdr.pool, sizeof(in.hdr.pool), "%s", pool);
	rc = plan_encode(&in, &buf, &len);
	if (rc)
		return rc;
	intent_path(s, policy, gen, path, sizeof(path));
	rc = write_file_atomic(path, buf, len);
	free(buf);
	return rc;
}

bool gen_has_intent(const struct tier_snap *s, enum tier_policy policy,
		    uint64_t gen)
{
	char path[4096 + 128];

	intent_path(s, policy, gen, path, sizeof(path));
	return access(path, F_OK) == 0;
}

/* Files in @dir whose names start with @prefix go; how many did. */
static int unlink_prefix(const char *dir, const char *prefix)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)) &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	closedir(d);
	return n;
}

int gen_drop(struct tier_snap *s, enum tier_policy policy, uint64_t gen,
	     const char *cxl, const char *pool)
{
	char obj[192], path[4096 + 128], prefix[128];
	const char *pname = tier_policy_name(policy);
	struct cxl_tier *ct = NULL;
	struct pool *pp = NULL;
	struct tier_uri u;
	int rc = 0, r;

	snap_object_name(s, policy, gen, obj, sizeof(obj));
	if (cxl[0]) {
		r = uri_parse(cxl, URI_WANT_CXL, &u);
		if (!r)
			r = cxl_open(&u, &ct);
		if (!r)
			r = cxl_remove(ct, obj);
		if (r && r != -ENOENT) {
			tier_log(TIER_LOG_INFO, "snapshot %s: CXL object %s left behind: %s",
				 s->name, obj, tier_errmsg());
			rc = r;
		}
		cxl_close(ct);
	}
	if (pool[0]) {
		r = store_pool_open_field(s->store, pool, &pp);
		if (!r)
			r = pool_remove(pp, obj);
		if (r && r != -ENOENT) {
			tier_log(TIER_LOG_INFO, "snapshot %s: pool segment %s left behind: %s",
				 s->name, obj, tier_errmsg());
			rc = r;
		}
		pool_close(pp);
	}
	snap_local_path(s, policy, gen, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = tier_err(-errno, "%s: %m", path);
		tier_log(TIER_LOG_INFO, "snapshot %s: %s", s->name,
			 tier_errmsg());
	}
	/* what a writer killed before its commit left of it */
	snprintf(path, sizeof(path), "%s/local", s->dir);
	if (gen)
		snprintf(prefix, sizeof(prefix), "%s.%016" PRIx64 ".data.tmp.",
			 pname ? pname : "unknown", gen);
	else
		snprintf(prefix, sizeof(prefix), "%s.data.tmp.",
			 pname ? pname : "unknown");
	unlink_prefix(path, prefix);
	if (rc)
		return rc;	/* the intent stays: the next try knows where */
	intent_path(s, policy, gen, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		return tier_err(-errno, "%s: %m", path);
	return 0;
}

/* plans/POLICY.GEN.intent.tmp.*: an intent's writer holds the lock. */
static int unlink_intent_temps(const char *dir, const char *pname)
{
	size_t plen = strlen(pname);
	struct dirent *de;
	int n = 0;
	DIR *d = opendir(dir);

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, pname, plen) &&
		    de->d_name[plen] == '.' &&
		    strstr(de->d_name + plen, ".intent.tmp.") &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	closedir(d);
	return n;
}

/* The intents of @policy in plans/: their generations, malloc()ed. */
static int list_intents(struct tier_snap *s, enum tier_policy policy,
			uint64_t **ret, size_t *ret_n)
{
	const char *pname = tier_policy_name(policy);
	size_t plen = strlen(pname), n = 0, cap = 0;
	char dir[4096 + 16], *end;
	uint64_t *v = NULL, *nv, g;
	struct dirent *de;
	DIR *d;

	plans_dir(s, dir, sizeof(dir));
	d = opendir(dir);
	if (!d) {
		*ret = NULL;
		*ret_n = 0;
		return errno == ENOENT ? 0 : tier_err(-errno, "%s: %m", dir);
	}
	while ((de = readdir(d))) {
		const char *name = de->d_name;

		if (strncmp(name, pname, plen) || name[plen] != '.' ||
		    strlen(name) != plen + 1 + 16 + 7 ||
		    strcmp(name + plen + 17, ".intent"))
			continue;
		errno = 0;
		g = strtoull(name + plen + 1, &end, 16);
		if (errno || end != name + plen + 17)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 4;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return tier_err(-ENOMEM, "out of memory");
			}
			v = nv;
		}
		v[n++] = g;
	}
	closedir(d);
	*ret = v;
	*ret_n = n;
	return 0;
}

int gen_recover(struct tier_snap *s, enum tier_policy policy,
		void (*report)(const char *what, void *arg), void *arg)
{
	const char *pname = tier_policy_name(policy);
	char path[4096 + 128], what[1024], prefix[64];
	uint64_t *gens, cur = 0;
	int rc, dropped = 0, have_cur = 0;
	struct plan plan;
	size_t n, i;

	/* plans/POLICY.plan.tmp.*: only a place holding the lock writes
	 * one, and it is not running */
	plans_dir(s, path, sizeof(path));
	snprintf(prefix, sizeof(prefix), "%s.plan.tmp.", pname);
	dropped += unlink_prefix(path, prefix);
	dropped += unlink_intent_temps(path, pname);

	rc = plan_load(s, policy, &plan);
	if (!rc) {
		cur = plan.hdr.generation;
		have_cur = 1;
		plan_free(&plan);
	} else if (rc != -ENOENT) {
		return rc;	/* unreadable: what it references is unknown */
	}
	rc = list_intents(s, policy, &gens, &n);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		size_t len;
		void *buf;

		if (have_cur && gens[i] == cur)
			continue;
		intent_path(s, policy, gens[i], path, sizeof(path));
		if (read_file(path, &buf, &len))
			continue;
		memset(&plan, 0, sizeof(plan));
		rc = plan_decode(buf, len, path, &plan);
		free(buf);
		if (rc || plan.hdr.generation != gens[i] ||
		    plan.hdr.policy != (uint32_t)policy) {
			plan_free(&plan);
			continue;	/* not ours to judge: left alone */
		}
		rc = gen_drop(s, policy, gens[i], plan.hdr.cxl, plan.hdr.pool);
		if (!rc) {
			dropped++;
			if (report) {
				snprintf(what, sizeof(what),
					 "snapshot %s: plan %s generation %016" PRIx64
					 ": data of no plan removed (%s%s%s)",
					 s->name, pname, gens[i], plan.hdr.cxl,
					 plan.hdr.cxl[0] && plan.hdr.pool[0] ?
					 ", " : "", plan.hdr.pool);
				report(what, arg);
			}
		}
		plan_free(&plan);
	}
	free(gens);
	return dropped;
}

int gen_drop_all(struct tier_snap *s, enum tier_policy policy)
{
	char path[4096 + 128];
	struct plan plan;
	int rc, r;

	size_t len;
	void *buf;

	/* decoded, not loaded: only where its data is matters here, and a
	 * snapshot being removed may have a damaged manifest */
	snap_plan_path(s, policy, path, sizeof(path));
	memset(&plan, 0, sizeof(plan));
	rc = read_file(path, &buf, &len);
	if (!rc) {
		rc = plan_decode(buf, len, path, &plan);
		free(buf);
	}
	if (rc == -ENOENT) {
		rc = 0;
	} else if (!rc) {
		rc = gen_intent_write(s, policy, plan.hdr.generation,
				      plan.hdr.cxl, plan.hdr.pool);
		if (!rc && unlink(path) < 0)
			rc = tier_err(-errno, "%s: %m", path);
		if (!rc)
			rc = gen_drop(s, policy, plan.hdr.generation,
				      plan.hdr.cxl, plan.hdr.pool);
		plan_free(&plan);
	}
	if (rc)
		return rc;
	r = gen_recover(s, policy, NULL, NULL);
	return r < 0 ? r : 0;
}
