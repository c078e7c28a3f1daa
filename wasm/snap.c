/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An initialised instance as a tier snapshot, and back (doc/wasm.md).
 * The image is the linear memory; the instance state the restore needs
 * beyond it rides in the snapshot's state file (checksummed by the store):
 * the module's identity, the memory's size in wasm pages, the stack
 * pointer (the only mutable global a clang-built C module has; the build
 * refuses a module with more, wasm/module-id.py) and the table's size
 * (its contents come from the module's element segments and C code never
 * changes them, so a fresh instantiation rebuilds the same table).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <wasm-rt.h>

#include "util/err.h"
#include "wasm/host.h"

#define STATE_MAGIC	"TIERWASM"
#define STATE_VERSION	1

struct wasm_state {		/* little-endian on every host wasm2c targets */
	char magic[8];
	uint32_t version;
	uint32_t pages;		/* linear memory, in 64 KiB pages */
	uint32_t stack_pointer;
	uint32_t table_size;
	char module[32];
	char id[72];		/* sha-256 of the .wasm, hex */
};

int wasm_snapshot(struct wasm_inst *in, struct tier_store *store,
		  const char *name, unsigned import_flags)
{
	const struct wasm_mod *m = wasm_inst_mod(in);
	struct wasm_state st = { .version = STATE_VERSION };
	char path[64];
	size_t len;
	uint8_t *mem = wasm_inst_mem(in, &len);
	struct tier_import_attr attr = {
		.flags = import_flags, .state = path,
	};
	int fd, rc;

	memcpy(st.magic, STATE_MAGIC, 8);
	st.pages = len / WASM_PAGE;
	st.stack_pointer = wasm_inst_stack_pointer(in);
	st.table_size = m->table_size(wasm_inst_raw(in));
	snprintf(st.module, sizeof(st.module), "%s", m->name);
	snprintf(st.id, sizeof(st.id), "%s", m->id);

	/* The state goes in through a file (tier_import_attr.state), one
	 * that vanishes with the process. */
	fd = memfd_create("wasm-state", MFD_CLOEXEC);
	if (fd < 0)
		return tier_err(-errno, "snapshot %s: memfd: %m", name);
	if (write(fd, &st, sizeof(st)) != sizeof(st)) {
		close(fd);
		return tier_err(-EIO, "snapshot %s: writing its state: %m", name);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rc = tier_import_mem(store, name, mem, len, &attr);
	close(fd);
	return rc;
}

static int read_state(struct tier_snap *snap, struct wasm_state *st)
{
	const char *name = tier_snap_name(snap);
	char path[4096];
	ssize_t n;
	int fd, rc;

	rc = tier_snap_state_path(snap, path, sizeof(path));
	if (rc == -ENOENT)
		return tier_err(rc, "snapshot %s: no instance state: not a WebAssembly snapshot",
				name);
	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tier_err(-errno, "snapshot %s: %s: %m", name, path);
	n = read(fd, st, sizeof(*st) + 1);
	close(fd);
	if (n != sizeof(*st) || memcmp(st->magic, STATE_MAGIC, 8) ||
	    st->version != STATE_VERSION)
		return tier_err(-EBADMSG, "snapshot %s: instance state: %zd bytes, not a version %d state of %zu",
				name, n, STATE_VERSION, sizeof(*st));
	st->module[sizeof(st->module) - 1] = 0;
	st->id[sizeof(st->id) - 1] = 0;
	if ((uint64_t)st->pages * WASM_PAGE != tier_snap_size(snap))
		return tier_err(-EBADMSG, "snapshot %s: %llu bytes of memory for %u wasm pages",
				name, (unsigned long long)tier_snap_size(snap),
				st->pages);
	return 0;
}

int wasm_restore(const struct wasm_mod *m, struct tier_snap *snap,
		 const struct tier_restore_attr *attr, struct wasm_inst **ret)
{
	const char *name = tier_snap_name(snap);
	struct tier_restore_attr ra = attr ? *attr : (struct tier_restore_attr){ 0 };
	struct tier_restore *rs;
	struct wasm_fault *fault;
	struct wasm_state st;
	struct wasm_inst *in;
	wasm_rt_memory_t *mem;
	int rc;

	rc = read_state(snap, &st);
	if (rc)
		return rc;
	if (strcmp(st.module, m->name) || strcmp(st.id, m->id))
		return tier_err(-EINVAL, "snapshot %s is of module %s (%.12s), not of %s (%.12s)",
				name, st.module, st.id, m->name, m->id);
	rc = wasm_inst_new(m, &in);
	if (rc)
		return rc;
	mem = m->memory(wasm_inst_raw(in));
	if (m->table_size(wasm_inst_raw(in)) != st.table_size ||
	    st.pages < mem->pages ||
	    (st.pages > mem->pages &&
	     wasm_rt_grow_memory(mem, st.pages - mem->pages) == UINT32_MAX)) {
		rc = tier_err(-EINVAL, "snapshot %s: %u pages and a table of %u do not fit module %s (%u pages, table %u)",
			      name, st.pages, st.table_size, m->name,
			      mem->pages, m->table_size(wasm_inst_raw(in)));
		goto err_free;
	}
	ra.on_error = wasm_on_error;
	ra.arg = in;
	ra.flags &= ~TIER_RESTORE_NO_THREAD;	/* the handler thread serves */
	rc = tier_restore_start(snap, mem->data, mem->size, &ra, &rs);
	if (rc)
		goto err_free;
	rc = wasm_fault_open(rs, mem->data, mem->size, ra.flags, &fault);
	if (rc) {
		tier_restore_stop(rs);
		goto err_free;
	}
	*m->stack_pointer(wasm_inst_raw(in)) = st.stack_pointer;
	wasm_inst_attach(in, snap, rs, fault);
	*ret = in;
	return 0;

err_free:
	wasm_inst_free(in);
	return rc;
}
