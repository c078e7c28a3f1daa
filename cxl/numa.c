/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cxl=numa:N -- CXL memory exposed as a (usually CPU-less) NUMA node,
 * reached through cxl/cxl.c's ops table. Objects are tmpfs files, as in
 * dir.c, in the URI's directory (cxl=numa:N:/DIR) or else
 * /dev/shm/tier-numa-N, whose pages live on node N.
 *
 * How the pages get there: before the first write, the new file is
 * mapped MAP_SHARED and mbind(MPOL_BIND, N) is applied to the mapping.
 * On tmpfs that sets the *file's* shared policy (shmem keeps it in the
 * inode), so every page cache page later allocated for the file -- by
 * pwrite() here, or by any fault -- comes from node N, and the policy
 * survives the munmap and the rename. A restore's MAP_PRIVATE mapping
 * then reads those pages in place: zero-copy from "CXL". On another
 * filesystem the policy would not stick, hence the tmpfs check.
 *
 * The only file that calls libnuma.
 */
#include <errno.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "cxl/cxl-int.h"
#include "tier.h"
#include "util/err.h"
#include "util/file.h"

static int numa_tier_open(struct cxl_tier *t)
{
	int node = t->uri.node;
	struct bitmask *allowed;
	const char *dir = t->uri.path;
	long long size;
	int ok;

	if (numa_available() < 0)
		return cxl_err(t, NULL, -ENODEV,
			       "NUMA is not available on this system");
	if (node < 0 || node > numa_max_node())
		return cxl_err(t, NULL, -ENODEV, "no NUMA node %d", node);
	size = numa_node_size64(node, NULL);
	if (size <= 0)
		return cxl_err(t, NULL, -ENODEV, "NUMA node %d has no memory",
			       node);
	/* A cpuset may fence the node off: mbind would then fail later. */
	allowed = numa_get_mems_allowed();
	ok = allowed && numa_bitmask_isbitset(allowed, node);
	numa_bitmask_free(allowed);
	if (!ok)
		return cxl_err(t, NULL, -ENODEV,
			       "NUMA node %d is not in this process's allowed memory nodes (cpuset)",
			       node);

	if (dir && *dir)
		snprintf(t->dir, sizeof(t->dir), "%s", dir);
	else
		snprintf(t->dir, sizeof(t->dir), "/dev/shm/tier-numa-%d", node);
	return 0;
}

static int check_tmpfs(struct cxl_wobj *w)
{
	struct statfs sf;

	if (statfs(w->tmp, &sf) < 0)
		return cxl_err(w->t, w->name, -errno, "statfs %s: %m", w->tmp);
	if (sf.f_type != TMPFS_MAGIC)
		return cxl_err(w->t, w->name, -EINVAL,
			       "%s is not on tmpfs: page placement needs tmpfs",
			       w->t->dir);
	return 0;
}

static int bind_file(struct cxl_wobj *w)
{
	struct bitmask *nodes;
	void *p;
	int rc = 0;

	if (!w->size)
		return 0;
	p = mmap(NULL, w->size, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
	if (p == MAP_FAILED)
		return cxl_err(w->t, w->name, -errno, "mmap for mbind: %m");

	nodes = numa_allocate_nodemask();
	if (!nodes) {
		munmap(p, w->size);
		return cxl_err(w->t, w->name, -ENOMEM, "out of memory");
	}
	numa_bitmask_setbit(nodes, w->t->uri.node);
	if (mbind(p, w->size, MPOL_BIND, nodes->maskp, nodes->size + 1, 0) < 0)
		rc = cxl_err(w->t, w->name, -errno, "mbind to node %d: %m",
			     w->t->uri.node);
	numa_bitmask_free(nodes);
	munmap(p, w->size);
	return rc;
}

static int numa_create(struct cxl_wobj *w)
{
	int rc;

	rc = dir_create(w);
	if (rc)
		return rc;
	rc = check_tmpfs(w);
	if (!rc)
		rc = bind_file(w);
	if (rc)
		dir_abort(w);
	return rc;
}

const struct cxl_ops cxl_numa_ops = {
	.scheme = "numa",
	.open = numa_tier_open,
	.create = numa_create,
	.write = dir_write,
	.commit = dir_commit,
	.abort = dir_abort,
	.obj_open = dir_obj_open,
	.obj_close = dir_obj_close,
	.obj_map = dir_obj_map,
	.obj_read = dir_obj_read,
	.remove = dir_remove,
};
