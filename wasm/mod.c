/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * One translated module behind struct wasm_mod: compiled once per module
 * with MOD set to its name, next to wasm2c's output for it, since every
 * generated name carries the module's.
 */
#include "wasm/host.h"

#define STR_(x)		#x
#define STR(x)		STR_(x)
#define CAT3_(a, b, c)	a##b##c
#define CAT3(a, b, c)	CAT3_(a, b, c)
#define INST		CAT3(Z_, MOD, _instance_t)
#define EXPORT(f)	CAT3(Z_, MOD, Z_##f)
#define FN(f)		CAT3(Z_, MOD, _##f)

#include STR(MOD.h)
#include STR(MOD-id.h)

static void instantiate(void *inst,
			struct Z_wasi_snapshot_preview1_instance_t *wasi)
{
	static int once;

	if (!once) {	/* under the host's call lock */
		FN(init_module)();
		once = 1;
	}
	FN(instantiate)(inst, wasi);
}

static void mod_free(void *inst) { FN(free)(inst); }
static void *memory(void *inst) { return EXPORT(memory)(inst); }
static void ctors(void *inst) { EXPORT(_initialize)(inst); }
static uint32_t init(void *inst, uint32_t a) { return EXPORT(init)(inst, a); }
static uint32_t call(void *inst, uint32_t a) { return EXPORT(call)(inst, a); }
static uint32_t *stack_pointer(void *inst)
{
	return &((INST *)inst)->w2c___stack_pointer;
}
static uint32_t table_size(void *inst)
{
	return ((INST *)inst)->w2c_T0.size;
}

const struct wasm_mod CAT3(wasm_mod_, MOD, ) = {
	.name = STR(MOD),
	.id = MODULE_ID,
	.inst_size = sizeof(INST),
	.instantiate = instantiate,
	.free = mod_free,
	.memory = memory,
	.ctors = ctors,
	.init = init,
	.call = call,
	.stack_pointer = stack_pointer,
	.table_size = table_size,
};
