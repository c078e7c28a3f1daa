/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The WebAssembly host: modules translated by wasm2c (fn/ compiled to
 * wasm32-wasi), their instances, and the snapshot of an initialised
 * instance in a tier store and its lazy restore (doc/wasm.md).
 */
#ifndef TIER_WASM_HOST_H
#define TIER_WASM_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "tier.h"

#define WASM_PAGE	65536U

struct Z_wasi_snapshot_preview1_instance_t;

/* One translated module: what wasm2c generated for it, behind pointers. */
struct wasm_mod {
	const char *name;
	const char *id;		/* sha-256 of the .wasm, hex */
	size_t inst_size;
	void (*instantiate)(void *inst,
			    struct Z_wasi_snapshot_preview1_instance_t *wasi);
	void (*free)(void *inst);
	void *(*memory)(void *inst);	/* its wasm_rt_memory_t */
	void (*ctors)(void *inst);	/* the reactor's _initialize */
	uint32_t (*init)(void *inst, uint32_t arg);
	uint32_t (*call)(void *inst, uint32_t arg);
	uint32_t *(*stack_pointer)(void *inst);
	uint32_t (*table_size)(void *inst);
};

extern const struct wasm_mod wasm_mod_dict, wasm_mod_image, wasm_mod_index;
/* NULL-terminated */
extern const struct wasm_mod *const wasm_mods[];

struct wasm_inst;
struct wasm_fault;

/* A new instance of @m as instantiation leaves it (no constructor run). */
int wasm_inst_new(const struct wasm_mod *m, struct wasm_inst **ret);
/* A cold start: new, constructors, then the module's init(@arg). */
int wasm_inst_cold(const struct wasm_mod *m, int32_t arg,
		   struct wasm_inst **ret);
/*
 * Calls the module's call(@arg). A trap, or a page the restore could not
 * have, fails with a one-line reason naming the instance; *@ret is then
 * untouched. Calls are serialised process-wide (wasm-rt keeps one unwind
 * target).
 */
int wasm_inst_call(struct wasm_inst *in, int32_t arg, int32_t *ret);
void wasm_inst_free(struct wasm_inst *in);

const struct wasm_mod *wasm_inst_mod(const struct wasm_inst *in);
/* The linear memory now. */
uint8_t *wasm_inst_mem(const struct wasm_inst *in, size_t *len);
uint32_t wasm_inst_stack_pointer(const struct wasm_inst *in);
/* The restore serving the memory, or NULL (cold, or after a failure). */
struct tier_restore *wasm_inst_restore(struct wasm_inst *in);
/* Faults of its memory served in the touching thread's SIGBUS handler
 * (TIER_RESTORE_SIGBUS), since the restore. */
unsigned long wasm_inst_sigbus_faults(const struct wasm_inst *in);

/*
 * Imports @in's linear memory and instance state into @store as snapshot
 * @name (tier_import_mem, the state as the snapshot's state file).
 */
int wasm_snapshot(struct wasm_inst *in, struct tier_store *store,
		  const char *name, unsigned import_flags);
/*
 * A new instance of @m with the memory and state of @snap, restored
 * through tier_restore_start(@attr; its on_error is the host's). Fails
 * if @snap was not taken of @m. With TIER_RESTORE_SIGBUS in @attr->flags
 * the thread that touches a lazy page fetches it itself, in the host's
 * SIGBUS handler (fault.c): tcp:// and file pools (not rdma://, rados://).
 * A touch of such an instance's memory from outside a call is served
 * too, from one thread at a time (the instance has one fetch context).
 */
int wasm_restore(const struct wasm_mod *m, struct tier_snap *snap,
		 const struct tier_restore_attr *attr, struct wasm_inst **ret);

/* internal to the host: inst.c <-> snap.c */
void *wasm_inst_raw(struct wasm_inst *in);
struct wasm_inst *wasm_inst_alloc(const struct wasm_mod *m);
void wasm_inst_attach(struct wasm_inst *in, struct tier_snap *snap,
		      struct tier_restore *rs, struct wasm_fault *fault);

/* internal to the host: fault.c, the process's SIGBUS handler */
/* Registers [@mem, +@len) of a restore; a fetch context if @flags has
 * TIER_RESTORE_SIGBUS. Close it before stopping @rs. */
int wasm_fault_open(struct tier_restore *rs, void *mem, size_t len,
		    unsigned flags, struct wasm_fault **ret);
void wasm_fault_close(struct wasm_fault *f);
/* Handler-thread mode: @f's restore is about to be stopped (by the
 * reaper); its SIGBUSes are no longer this restore's. */
void wasm_fault_detach(struct wasm_fault *f);
/* This thread now runs a call into @f's instance (NULL: none), and no
 * longer does. */
void wasm_fault_enter(struct wasm_fault *f);
void wasm_fault_leave(void);
/* The -errno of the page that could not be had, the reason in @why; 0. */
int wasm_fault_error(const struct wasm_fault *f, const char **why);
unsigned long wasm_fault_served(const struct wasm_fault *f);
void wasm_on_error(struct tier_restore *rs, int err, const char *msg,
		   void *arg);

#endif
