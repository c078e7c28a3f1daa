/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What writers killed midway leave in a store and its tiers, found and
 * removed: the directories of an import, a replacing import or a removal
 * (snapshots/.NAME.tmp.PID, .NAME.old.PID, .NAME.rm.PID) whose process
 * is gone, a trace's temporary (traces/T.trace.tmp.PID.SEQ) likewise,
 * and, per snapshot and policy, the data of generations no plan
 * references (store/gen.c). An import cleans up after an earlier one of
 * the same name, a place after one of the same policy; store_gc ("tierctl
 * gc") does all of it, skipping a policy whose place is running.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "store/gen.h"
#include "store/internal.h"
#include "store/snap.h"
#include "util/err.h"

/* Whether [p, e) is a decimal number, and its value in *@ret. */
static bool digits(const char *p, const char *e, long *ret)
{
	long v = 0;

	if (p == e || e - p > 9)
		return false;
	for (; p < e; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (*p - '0');
	}
	*ret = v;
	return true;
}

/*
 * The PID of a temporary named "<head>@tag.PID" (with @seq,
 * "<head>@tag.PID.SEQ"), parsed from the end (a name may hold @tag
 * itself), its head's length in *@head; 0 if it is not one.
 */
static pid_t tail_pid(const char *name, const char *tag, bool seq,
		      size_t *head)
{
	const char *end = name + strlen(name), *dot;
	size_t tl = strlen(tag);
	long v, sq;

	if (seq) {
		dot = memrchr(name, '.', end - name);
		if (!dot || !digits(dot + 1, end, &sq))
			return 0;
		end = dot;
	}
	dot = memrchr(name, '.', end - name);
	if (!dot || !digits(dot + 1, end, &v) || v <= 0 ||
	    (size_t)(dot - name) < tl || memcmp(dot - tl, tag, tl))
		return 0;
	if (head)
		*head = dot - tl - name;
	return (pid_t)v;
}

/* Whether @pid is gone. A live one, or one another user runs, is not:
 * a reused PID only keeps a leftover longer. */
static bool gone(pid_t pid)
{
	return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

static void say(void (*report)(const char *, void *), void *arg,
		const char *fmt, const char *a, const char *b)
{
	char what[8192 + 512];

	if (!report)
		return;
	snprintf(what, sizeof(what), fmt, a, b);
	report(what, arg);
}

int gc_snapshot_dirs(struct tier_store *store, const char *name,
		     void (*report)(const char *what, void *arg), void *arg)
{
	static const char *const tags[] = { ".tmp", ".old", ".rm" };
	char snaps[4096 + 16], path[8192];
	struct dirent *de;
	size_t head;
	int n = 0, rc;
	DIR *d;

	snprintf(snaps, sizeof(snaps), "%s/snapshots", store->path);
	d = opendir(snaps);
	if (!d)
		return errno == ENOENT ? 0 : tier_err(-errno, "%s: %m", snaps);
	while ((de = readdir(d))) {
		const char *e = de->d_name;

		/* names never start with '.': hidden is work in progress */
		if (e[0] != '.' || !e[1] || e[1] == '.')
			continue;
		for (size_t t = 0; t < sizeof(tags) / sizeof(tags[0]); t++) {
			pid_t pid = tail_pid(e, tags[t], false, &head);

			/* ".NAME.tmp.PID": head is ".NAME" */
			if (!pid || (name && (head != strlen(name) + 1 ||
					      strncmp(e + 1, name, head - 1))))
				continue;
			if (!gone(pid))
				break;
			snprintf(path, sizeof(path), "%s/%s", snaps, e);
			rc = store_rmtree(path);
			if (rc)
				break;
			say(report, arg, "%s: left by a killed %s, removed",
			    path, t == 2 ? "removal" : "import");
			n++;
			break;
		}
	}
	closedir(d);
	return n;
}

/* traces/T.trace.tmp.PID.SEQ of writers that are gone. */
static int gc_traces(struct tier_snap *s,
		     void (*report)(const char *what, void *arg), void *arg)
{
	char dir[4096 + 16], path[8192];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/traces", s->dir);
	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (!gone(tail_pid(de->d_name, ".trace.tmp", true, NULL)))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		say(report, arg, "%s: left by a killed trace import, removed%s",
		    path, "");
		n++;
	}
	closedir(d);
	return n;
}

struct gc_ctx {
	struct tier_store *store;
	void (*report)(const char *what, void *arg);
	void *arg;
	int n;
};

static int gc_one(const char *name, void *arg)
{
	struct gc_ctx *g = arg;
	struct tier_snap *s;
	char what[256];
	int fd, rc;

	if (tier_snap_open(g->store, name, &s)) {
		say(g->report, g->arg, "snapshot %s: skipped: %s", name,
		    tier_errmsg());
		return 0;
	}
	g->n += gc_traces(s, g->report, g->arg);
	for (enum tier_policy p = 0; p < TIER_POLICY_MAX; p++) {
		rc = gen_lock(s, p, false, &fd);
		if (rc == -EBUSY) {
			snprintf(what, sizeof(what), "policy %s",
				 tier_policy_name(p));
			say(g->report, g->arg,
			    "snapshot %s: %s: skipped: a place is running",
			    name, what);
			continue;
		}
		if (rc)
			break;
		rc = gen_recover(s, p, g->report, g->arg);
		close(fd);
		if (rc > 0)
			g->n += rc;
	}
	tier_snap_close(s);
	return 0;
}

int store_gc(struct tier_store *store,
	     void (*report)(const char *what, void *arg), void *arg)
{
	struct gc_ctx g = { .store = store, .report = report, .arg = arg };
	int rc;

	rc = gc_snapshot_dirs(store, NULL, report, arg);
	if (rc < 0)
		return rc;
	g.n = rc;
	rc = tier_store_foreach(store, gc_one, &g);
	return rc < 0 ? rc : g.n;
}
