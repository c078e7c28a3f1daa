/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cxl=devdax:/dev/daxX.Y -- a device-dax character device (a pmem or CXL
 * region in devdax mode). The only file that calls libdaxctl and libpmem2;
 * reached through cxl/cxl.c's ops table.
 *
 * A device-dax has no files, so this backend keeps its own small object
 * table at the start of the device:
 *
 *	[ slot A | slot B | data, objects at device-aligned offsets ... ]
 *
 * Each slot (DAX_SLOT bytes) holds a whole table: a header (magic,
 * version, generation, entry count, XXH3-64 of header and entries) and
 * the live entries (name -> offset, size). An update never touches the
 * current slot: it writes the entries of the new table into the other
 * slot, persists them, then writes that slot's header with the next
 * generation and its checksum, and persists it. A reader takes the valid
 * slot of the highest generation, so a crash at any point leaves either
 * the old table or the new one, never a mix. Space is handed out first
 * fit between live objects, so the bytes of a replaced object are reused
 * once its replacement is committed.
 *
 * LIMITATION: a device-dax can only be mapped MAP_SHARED. Mapping it into
 * guest memory would make a guest write land on the device itself (with
 * PROT_READ it would fault with SIGSEGV instead) -- there is no
 * copy-on-write. So there is no obj_map (cxl_obj_map() is -EOPNOTSUPP,
 * cxl_can_map() 0, tierctl place refuses a plan that maps): zero-copy
 * mapping needs fs-dax (cxl=dir: on an ext4/xfs mounted -o dax). Reading objects
 * (cxl_obj_read) works, which is all the aquifer policy needs.
 *
 * LIMITATION: a reader that opened an object before it was replaced may
 * read bytes of a later object written into the freed space; replace
 * objects ("tierctl place") while no restore of that snapshot runs.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <daxctl/libdaxctl.h>
#include <libpmem2.h>

#include "cxl/cxl-int.h"
#include "tier.h"
#include "util/checksum.h"
#include "util/err.h"

#define DAX_MAGIC	"TIERDAX"	/* 8 bytes with its NUL */
#define DAX_VERSION	1
#define DAX_SLOT	(1ULL << 20)
#define DAX_NAME_MAX	104

struct dax_hdr {
	char magic[8];
	uint32_t version;
	uint32_t nentries;
	uint64_t generation;
	uint64_t dev_size;
	uint64_t align;
	uint64_t data_off;
	uint64_t reserved;
	uint64_t checksum;	/* XXH3-64 of header (this field 0) + entries */
};
_Static_assert(sizeof(struct dax_hdr) == 64, "devdax header");

struct dax_ent {
	char name[DAX_NAME_MAX];	/* NUL-padded */
	uint64_t off;
	uint64_t size;
	uint64_t reserved;
};
_Static_assert(sizeof(struct dax_ent) == 128, "devdax entry");

#define DAX_MAX_ENTS	((DAX_SLOT - sizeof(struct dax_hdr)) / sizeof(struct dax_ent))

/* A table in host byte order. */
struct dax_table {
	uint64_t generation;
	unsigned slot;		/* where it was read from */
	unsigned n;
	struct dax_ent ent[DAX_MAX_ENTS];
};

struct dax_pending {
	uint64_t off, size;
	int used;
};

#define DAX_MAX_PENDING	16

struct dax {
	int fd;
	uint64_t size, align, data_off;
	struct pmem2_source *src;
	struct pmem2_map *map;
	char *base;
	pmem2_memcpy_fn memcpy_fn;
	pmem2_drain_fn drain_fn;
	unsigned nlocked;	/* writers in flight: hold the flock */
	struct dax_pending pending[DAX_MAX_PENDING];
	struct dax_table tab;	/* scratch, too big for the stack */
};

static struct dax *dax_of(const struct cxl_tier *t)
{
	return t->priv;
}

/*
 * pmem2 returns -errno, or a code of its own below -100000 (its
 * pmem2_err_to_errno() isn't exported by every libpmem2 1.12): those are
 * misuse or unsupported-device errors.
 */
static int pmem2_rc(int rc)
{
	if (rc < 0 && rc > -100000)
		return rc;
	return -EINVAL;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* A regular file stands in for the device: tests only (cxl-int.h). */
static bool emulate;

void devdax_emulate(bool on)
{
	emulate = on;
}

/* libdaxctl's view of the device: it exists, is enabled, size, align. */
static int dax_probe(struct cxl_tier *t, uint64_t *size, uint64_t *align)
{
	const char *path = t->uri.path;
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	struct daxctl_region *region;
	struct daxctl_dev *dev, *found = NULL;
	struct daxctl_ctx *ctx;
	struct stat st;
	int rc;

	if (stat(path, &st) < 0 && errno == ENOENT)
		return cxl_err(t, NULL, -ENODEV,
			       "no such device (see 'daxctl list')");
	if (stat(path, &st) < 0)
		return cxl_err(t, NULL, -errno, "%m");
	/* Tests without DAX hardware: see devdax_emulate(). */
	if (S_ISREG(st.st_mode) && emulate) {
		*size = st.st_size;
		*align = 2ULL << 20;
		if (*size <= 2 * DAX_SLOT + *align)
			return cxl_err(t, NULL, -ENOSPC,
				       "device too small (%llu bytes)",
				       (unsigned long long)*size);
		return 0;
	}
	if (!S_ISCHR(st.st_mode))
		return cxl_err(t, NULL, -ENODEV,
			       "not a character device (for a file system use cxl=dir:)");

	rc = daxctl_new(&ctx);
	if (rc < 0)
		return cxl_err(t, NULL, rc, "libdaxctl: %m");
	daxctl_region_foreach(ctx, region)
		daxctl_dev_foreach(region, dev)
			if (!found && !strcmp(daxctl_dev_get_devname(dev), base))
				found = dev;
	if (!found) {
		rc = cxl_err(t, NULL, -ENODEV,
			     "no device-dax %s known to libdaxctl (see 'daxctl list')",
			     base);
	} else if (!daxctl_dev_is_enabled(found)) {
		rc = cxl_err(t, NULL, -ENODEV,
			     "device is disabled ('daxctl enable-device %s')",
			     base);
	} else {
		*size = daxctl_dev_get_size(found);
		*align = daxctl_dev_get_align(found);
		if (!*align)
			*align = TIER_PAGE_SIZE;
		if (*size <= 2 * DAX_SLOT + *align)
			rc = cxl_err(t, NULL, -ENOSPC,
				     "device too small (%llu bytes)",
				     (unsigned long long)*size);
	}
	daxctl_unref(ctx);
	return rc;
}

static int dax_tier_open(struct cxl_tier *t)
{
	struct pmem2_config *cfg = NULL;
	uint64_t size = 0, align = 0;
	struct dax *d;
	int rc;

	rc = dax_probe(t, &size, &align);
	if (rc)
		return rc;

	d = calloc(1, sizeof(*d));
	if (!d)
		return cxl_err(t, NULL, -ENOMEM, "out of memory");
	d->size = size;
	d->align = align;
	d->data_off = align_up(2 * DAX_SLOT, align);

	d->fd = open(t->uri.path, O_RDWR | O_CLOEXEC);
	if (d->fd < 0) {
		rc = cxl_err(t, NULL, -errno, "%m");
		goto err_free;
	}
	rc = pmem2_source_from_fd(&d->src, d->fd);
	if (rc) {
		rc = cxl_err(t, NULL, pmem2_rc(rc), "pmem2: %s",
			     pmem2_errormsg());
		goto err_close;
	}
	rc = pmem2_config_new(&cfg);
	if (rc) {
		rc = cxl_err(t, NULL, pmem2_rc(rc), "pmem2: %s",
			     pmem2_errormsg());
		goto err_src;
	}
	pmem2_config_set_required_store_granularity(cfg,
						    PMEM2_GRANULARITY_PAGE);
	rc = pmem2_map_new(&d->map, cfg, d->src);
	pmem2_config_delete(&cfg);
	if (rc) {
		rc = cxl_err(t, NULL, pmem2_rc(rc), "pmem2 map: %s",
			     pmem2_errormsg());
		goto err_src;
	}
	d->base = pmem2_map_get_address(d->map);
	if (pmem2_map_get_size(d->map) < d->size)
		d->size = pmem2_map_get_size(d->map);
	d->memcpy_fn = pmem2_get_memcpy_fn(d->map);
	d->drain_fn = pmem2_get_drain_fn(d->map);
	t->priv = d;
	return 0;

err_src:
	pmem2_source_delete(&d->src);
err_close:
	close(d->fd);
err_free:
	free(d);
	return rc;
}

static void dax_tier_close(struct cxl_tier *t)
{
	struct dax *d = dax_of(t);

	if (!d)
		return;
	pmem2_map_delete(&d->map);
	pmem2_source_delete(&d->src);
	close(d->fd);
	free(d);
	t->priv = NULL;
}

/* 1 if slot @s holds a valid table (decoded into @tab), else 0. */
static int slot_read(struct dax *d, unsigned s, struct dax_table *tab)
{
	const char *p = d->base + (uint64_t)s * DAX_SLOT;
	struct dax_hdr h;
	uint64_t want, n;
	char *copy;

	memcpy(&h, p, sizeof(h));
	if (memcmp(h.magic, DAX_MAGIC, sizeof(h.magic)) ||
	    le32toh(h.version) != DAX_VERSION)
		return 0;
	n = le32toh(h.nentries);
	if (n > DAX_MAX_ENTS)
		return 0;

	/* Checksum a private copy: the device may change under us. */
	copy = malloc(sizeof(h) + n * sizeof(struct dax_ent));
	if (!copy)
		return 0;
	memcpy(copy, p, sizeof(h) + n * sizeof(struct dax_ent));
	want = le64toh(((struct dax_hdr *)copy)->checksum);
	((struct dax_hdr *)copy)->checksum = 0;
	if (tier_csum(copy, sizeof(h) + n * sizeof(struct dax_ent)) != want) {
		free(copy);
		return 0;
	}
	tab->generation = le64toh(h.generation);
	tab->slot = s;
	tab->n = n;
	for (unsigned i = 0; i < n; i++) {
		const struct dax_ent *e = (const struct dax_ent *)
			(copy + sizeof(h)) + i;

		memcpy(tab->ent[i].name, e->name, DAX_NAME_MAX);
		tab->ent[i].name[DAX_NAME_MAX - 1] = 0;
		tab->ent[i].off = le64toh(e->off);
		tab->ent[i].size = le64toh(e->size);
	}
	free(copy);
	return 1;
}

/* The current table; a device never written by us has an empty one. */
static int table_load(struct cxl_tier *t, struct dax_table *tab)
{
	struct dax *d = dax_of(t);
	int a, b;

	a = slot_read(d, 0, tab);
	if (a) {
		uint64_t gen = tab->generation;

		b = slot_read(d, 1, tab);
		if (b && tab->generation > gen)
			return 0;
		slot_read(d, 0, tab);
		return 0;
	}
	if (slot_read(d, 1, tab))
		return 0;

	/* Neither slot valid: fresh (no magic anywhere) or damaged. */
	if (memcmp(d->base, DAX_MAGIC, 8) && memcmp(d->base + DAX_SLOT,
						    DAX_MAGIC, 8)) {
		tab->generation = 0;
		tab->slot = 1;	/* so the first write goes to slot 0 */
		tab->n = 0;
		return 0;
	}
	return cxl_err(t, NULL, -EBADMSG,
		       "object table damaged in both copies (checksum); zero the first %llu bytes of the device to start over",
		       (unsigned long long)(2 * DAX_SLOT));
}

static int table_store(struct cxl_tier *t, struct dax_table *tab)
{
	struct dax *d = dax_of(t);
	unsigned s = !tab->slot;
	char *p = d->base + (uint64_t)s * DAX_SLOT;
	size_t ents = tab->n * sizeof(struct dax_ent);
	struct dax_hdr h = { 0 };
	char *buf;

	buf = calloc(1, sizeof(h) + ents);
	if (!buf)
		return cxl_err(t, NULL, -ENOMEM, "out of memory");
	memcpy(h.magic, DAX_MAGIC, sizeof(h.magic));
	h.version = htole32(DAX_VERSION);
	h.nentries = htole32(tab->n);
	h.generation = htole64(tab->generation + 1);
	h.dev_size = htole64(d->size);
	h.align = htole64(d->align);
	h.data_off = htole64(d->data_off);
	for (unsigned i = 0; i < tab->n; i++) {
		struct dax_ent *e = (struct dax_ent *)(buf + sizeof(h)) + i;

		memcpy(e->name, tab->ent[i].name, DAX_NAME_MAX);
		e->off = htole64(tab->ent[i].off);
		e->size = htole64(tab->ent[i].size);
	}
	memcpy(buf, &h, sizeof(h));
	h.checksum = htole64(tier_csum(buf, sizeof(h) + ents));

	/* Entries first, then the header that vouches for them. */
	d->memcpy_fn(p + sizeof(h), buf + sizeof(h), ents, 0);
	d->memcpy_fn(p, &h, sizeof(h), 0);
	free(buf);
	tab->generation++;
	tab->slot = s;
	return 0;
}

static int table_find(const struct dax_table *tab, const char *name)
{
	for (unsigned i = 0; i < tab->n; i++)
		if (!strcmp(tab->ent[i].name, name))
			return i;
	return -1;
}

static int overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* First fit between live objects and writers in flight. */
static int dax_alloc(struct dax *d, const struct dax_table *tab,
		     uint64_t size, uint64_t *ret)
{
	uint64_t need = align_up(size ? size : 1, d->align);
	uint64_t off = d->data_off;
	int moved;

	do {
		moved = 0;
		for (unsigned i = 0; i < tab->n; i++) {
			const struct dax_ent *e = &tab->ent[i];

			if (e->size && overlaps(off, need, e->off, e->size)) {
				off = align_up(e->off + e->size, d->align);
				moved = 1;
			}
		}
		for (unsigned i = 0; i < DAX_MAX_PENDING; i++) {
			const struct dax_pending *q = &d->pending[i];

			if (q->used && overlaps(off, need, q->off, q->size)) {
				off = align_up(q->off + q->size, d->align);
				moved = 1;
			}
		}
	} while (moved && off + need <= d->size);

	if (off + need > d->size)
		return -ENOSPC;
	*ret = off;
	return 0;
}

static int dax_lock(struct cxl_tier *t)
{
	struct dax *d = dax_of(t);

	if (d->nlocked++)
		return 0;
	/* Other processes placing onto this device wait their turn. */
	while (flock(d->fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			d->nlocked--;
			return cxl_err(t, NULL, -errno, "lock: %m");
		}
	}
	return 0;
}

static void dax_unlock(struct cxl_tier *t)
{
	struct dax *d = dax_of(t);

	if (d->nlocked && !--d->nlocked)
		flock(d->fd, LOCK_UN);
}

static struct dax_pending *pending_of(struct cxl_wobj *w)
{
	struct dax *d = dax_of(w->t);

	for (unsigned i = 0; i < DAX_MAX_PENDING; i++)
		if (d->pending[i].used && d->pending[i].off == w->off &&
		    d->pending[i].size == w->size)
			return &d->pending[i];
	return NULL;
}

static int dax_create(struct cxl_wobj *w)
{
	struct cxl_tier *t = w->t;
	struct dax *d = dax_of(t);
	struct dax_pending *q = NULL;
	int rc;

	if (strlen(w->name) >= DAX_NAME_MAX)
		return cxl_err(t, w->name, -ENAMETOOLONG, "name too long");
	for (unsigned i = 0; i < DAX_MAX_PENDING && !q; i++)
		if (!d->pending[i].used)
			q = &d->pending[i];
	if (!q)
		return cxl_err(t, w->name, -EBUSY,
			       "too many objects being written at once");

	rc = dax_lock(t);
	if (rc)
		return rc;
	rc = table_load(t, &d->tab);
	if (rc)
		goto err;
	rc = dax_alloc(d, &d->tab, w->size, &w->off);
	if (rc) {
		rc = cxl_err(t, w->name, rc,
			     "no room for %llu bytes on a %llu-byte device",
			     (unsigned long long)w->size,
			     (unsigned long long)d->size);
		goto err;
	}
	q->used = 1;
	q->off = w->off;
	q->size = w->size;

	/* Objects read as zero where never written, as files do. */
	if (w->size) {
		pmem2_memset_fn set = pmem2_get_memset_fn(d->map);

		set(d->base + w->off, 0, w->size, PMEM2_F_MEM_NODRAIN);
	}
	return 0;
err:
	dax_unlock(t);
	return rc;
}

static int dax_write(struct cxl_wobj *w, uint64_t off, const void *buf,
		     size_t len)
{
	struct dax *d = dax_of(w->t);

	/* Flushed now, drained once at commit, before the table names it. */
	d->memcpy_fn(d->base + w->off + off, buf, len, PMEM2_F_MEM_NODRAIN);
	return 0;
}

static void dax_abort(struct cxl_wobj *w)
{
	struct dax_pending *q = pending_of(w);

	if (q)
		q->used = 0;
	dax_unlock(w->t);
}

static int dax_commit(struct cxl_wobj *w)
{
	struct cxl_tier *t = w->t;
	struct dax *d = dax_of(t);
	struct dax_table *tab = &d->tab;
	int rc, i;

	d->drain_fn();		/* the object's bytes are durable first */
	rc = table_load(t, tab);
	if (rc)
		goto out;
	i = table_find(tab, w->name);
	if (i < 0) {
		if (tab->n == DAX_MAX_ENTS) {
			rc = cxl_err(t, w->name, -ENOSPC,
				     "object table full (%u objects)",
				     (unsigned)DAX_MAX_ENTS);
			goto out;
		}
		i = tab->n++;
	}
	memset(tab->ent[i].name, 0, DAX_NAME_MAX);
	memcpy(tab->ent[i].name, w->name, strlen(w->name));	/* < DAX_NAME_MAX */
	tab->ent[i].off = w->off;
	tab->ent[i].size = w->size;
	rc = table_store(t, tab);
out:
	dax_abort(w);	/* no longer in flight, either way */
	return rc;
}

static int dax_obj_open(struct cxl_obj *o)
{
	struct dax *d = dax_of(o->t);
	int rc, i;

	rc = table_load(o->t, &d->tab);
	if (rc)
		return rc;
	i = table_find(&d->tab, o->name);
	if (i < 0)
		return cxl_err(o->t, o->name, -ENOENT, "%s", strerror(ENOENT));
	o->off = d->tab.ent[i].off;
	o->size = d->tab.ent[i].size;
	return 0;
}

static void dax_obj_close(struct cxl_obj *o)
{
}

static int dax_obj_read(struct cxl_obj *o, uint64_t off, void *buf,
			size_t len)
{
	struct dax *d = dax_of(o->t);

	memcpy(buf, d->base + o->off + off, len);
	return 0;
}

static int dax_remove(struct cxl_tier *t, const char *name)
{
	struct dax *d = dax_of(t);
	struct dax_table *tab = &d->tab;
	int rc, i;

	rc = dax_lock(t);
	if (rc)
		return rc;
	rc = table_load(t, tab);
	if (rc)
		goto out;
	i = table_find(tab, name);
	if (i < 0) {
		rc = cxl_err(t, name, -ENOENT, "%s", strerror(ENOENT));
		goto out;
	}
	tab->ent[i] = tab->ent[--tab->n];
	rc = table_store(t, tab);
out:
	dax_unlock(t);
	return rc;
}

const struct cxl_ops cxl_devdax_ops = {
	.scheme = "devdax",
	.open = dax_tier_open,
	.close = dax_tier_close,
	.create = dax_create,
	.write = dax_write,
	.commit = dax_commit,
	.abort = dax_abort,
	.obj_open = dax_obj_open,
	.obj_close = dax_obj_close,
	/* .obj_map: none, see LIMITATION */
	.obj_read = dax_obj_read,
	.remove = dax_remove,
};
