/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Instances: their lifetime, calls into them, and what happens when the
 * restore under one dies. With the handler thread, a page the pool cannot
 * give leaves the calling thread blocked in its fault (the restorer never
 * hands out a zero page); a reaper thread then stops that restore, which
 * makes the memory inaccessible and closes the userfaultfd, so the blocked
 * access retries, faults, and wasm-rt's SIGSEGV handler turns it into a
 * trap. With TIER_RESTORE_SIGBUS the calling thread's own SIGBUS handler
 * (fault.c) fails to fetch the page and traps. Either way the call fails
 * with the restore's reason, never returns a wrong result, and the
 * instance stays dead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasm-rt.h>
#include <wasm-rt-impl.h>

#include "util/err.h"
#include "wasm/host.h"
#include "wasm/wasi.h"

struct wasm_inst {
	const struct wasm_mod *mod;
	void *inst;				/* wasm2c's instance struct */
	struct Z_wasi_snapshot_preview1_instance_t wasi;
	pthread_mutex_t lock;
	pthread_cond_t stopped;
	struct tier_snap *snap;			/* restored: of this snapshot */
	struct tier_restore *rs;		/* NULL once stopped */
	struct wasm_fault *fault;		/* its SIGBUS side; NULL once stopped */
	int dead;				/* the restore's -errno */
	char why[200];
};

static pthread_mutex_t call_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t host_once = PTHREAD_ONCE_INIT;
static int reaper_pipe[2] = { -1, -1 };

static void *reaper(void *arg)
{
	struct wasm_inst *in;

	while (read(reaper_pipe[0], &in, sizeof(in)) == sizeof(in)) {
		pthread_mutex_lock(&in->lock);
		/* the calling thread still names in->fault as its call's:
		 * it stays allocated until wasm_inst_free */
		wasm_fault_detach(in->fault);
		tier_restore_stop(in->rs);
		in->rs = NULL;
		pthread_cond_broadcast(&in->stopped);
		pthread_mutex_unlock(&in->lock);
	}
	return NULL;
}

static void host_init(void)
{
	pthread_t t;

	wasm_rt_init();
	if (pipe2(reaper_pipe, O_CLOEXEC) == 0 &&
	    pthread_create(&t, NULL, reaper, NULL) == 0)
		pthread_detach(t);
}

/* From the restore's fault-handling thread, its lock held. */
void wasm_on_error(struct tier_restore *rs, int err, const char *msg,
		   void *arg)
{
	struct wasm_inst *in = arg;

	pthread_mutex_lock(&in->lock);
	if (!in->dead) {
		in->dead = err;
		snprintf(in->why, sizeof(in->why), "%s", msg);
	}
	pthread_mutex_unlock(&in->lock);
	if (write(reaper_pipe[1], &in, sizeof(in)) != sizeof(in))
		abort();	/* else the caller would stay blocked for ever */
}

struct wasm_inst *wasm_inst_alloc(const struct wasm_mod *m)
{
	struct wasm_inst *in;

	pthread_once(&host_once, host_init);
	if (reaper_pipe[1] < 0)
		return NULL;
	in = calloc(1, sizeof(*in));
	if (!in)
		return NULL;
	in->inst = calloc(1, m->inst_size);
	if (!in->inst) {
		free(in);
		return NULL;
	}
	in->mod = m;
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->stopped, NULL);
	pthread_mutex_lock(&call_lock);
	m->instantiate(in->inst, &in->wasi);
	in->wasi.mem = m->memory(in->inst);
	pthread_mutex_unlock(&call_lock);
	return in;
}

int wasm_inst_new(const struct wasm_mod *m, struct wasm_inst **ret)
{
	struct wasm_inst *in = wasm_inst_alloc(m);

	if (!in)
		return tier_err(-ENOMEM, "module %s: cannot instantiate: out of memory",
				m->name);
	*ret = in;
	return 0;
}

void wasm_inst_attach(struct wasm_inst *in, struct tier_snap *snap,
		      struct tier_restore *rs, struct wasm_fault *fault)
{
	pthread_mutex_lock(&in->lock);
	in->snap = snap;
	in->rs = rs;
	in->fault = fault;
	pthread_mutex_unlock(&in->lock);
}

static const char *trap_name(wasm_rt_trap_t t)
{
	switch (t) {
	case WASM_RT_TRAP_OOB:		return "out-of-bounds access";
	case WASM_RT_TRAP_INT_OVERFLOW:	return "integer overflow";
	case WASM_RT_TRAP_DIV_BY_ZERO:	return "division by zero";
	case WASM_RT_TRAP_UNREACHABLE:	return "unreachable executed";
	case WASM_RT_TRAP_EXHAUSTION:	return "call stack exhausted";
	default:			return "trap";
	}
}

static const char *inst_name(const struct wasm_inst *in)
{
	return in->snap ? tier_snap_name(in->snap) : in->mod->name;
}

/* The instance's restore died (in its handler thread or in a SIGBUS of
 * this thread's): its -errno, the reason in @why; else 0. in->lock held. */
static int dead(struct wasm_inst *in, const char **why)
{
	int rc = wasm_fault_error(in->fault, why);

	if (!rc && in->dead) {
		rc = in->dead;
		*why = in->why;
	}
	return rc;
}

/* Runs @fn(@arg) (or the constructors when @ctors) under the unwind
 * target; a trap or a dead restore becomes a one-line error. */
static int run(struct wasm_inst *in, const char *what, int ctors,
	       uint32_t (*fn)(void *, uint32_t), int32_t arg, int32_t *ret)
{
	volatile uint32_t r = 0;
	wasm_rt_trap_t trap;
	const char *why;
	int rc;

	pthread_mutex_lock(&in->lock);
	rc = dead(in, &why);
	pthread_mutex_unlock(&in->lock);
	if (rc)		/* stays dead: no call into what is left of it */
		return tier_err(rc, "instance of %s: %s(%d): %s", inst_name(in),
				what, arg, why);

	/* wasm-rt traps to one process-wide jmp_buf */
	pthread_mutex_lock(&call_lock);
	wasm_fault_enter(in->fault);
	trap = wasm_rt_impl_try();
	if (!trap) {
		if (ctors)
			in->mod->ctors(in->inst);
		else
			r = fn(in->inst, (uint32_t)arg);
	}
	wasm_fault_leave();
	pthread_mutex_unlock(&call_lock);

	pthread_mutex_lock(&in->lock);
	rc = dead(in, &why);
	if (rc) {
		rc = tier_err(rc, "instance of %s: %s(%d): %s", inst_name(in),
			      what, arg, why);
	} else if (trap) {
		rc = tier_err(-EFAULT, "instance of %s: %s(%d): %s%s%s",
			      inst_name(in), what, arg, trap_name(trap),
			      in->wasi.msglen ? ": " : "", in->wasi.msg);
	}
	pthread_mutex_unlock(&in->lock);
	if (!rc && ret)
		*ret = (int32_t)r;
	return rc;
}

int wasm_inst_cold(const struct wasm_mod *m, int32_t arg,
		   struct wasm_inst **ret)
{
	struct wasm_inst *in;
	int32_t r;
	int rc;

	rc = wasm_inst_new(m, &in);
	if (rc)
		return rc;
	rc = run(in, "_initialize", 1, NULL, 0, NULL);
	if (!rc)
		rc = run(in, "init", 0, m->init, arg, &r);
	if (!rc && r != 0)
		rc = tier_err(-EINVAL, "module %s: init(%d) returned %d%s%.*s",
			      m->name, arg, r, in->wasi.msglen ? ": " : "",
			      (int)strcspn(in->wasi.msg, "\n"), in->wasi.msg);
	if (rc) {
		wasm_inst_free(in);
		return rc;
	}
	*ret = in;
	return 0;
}

int wasm_inst_call(struct wasm_inst *in, int32_t arg, int32_t *ret)
{
	return run(in, "call", 0, in->mod->call, arg, ret);
}

void wasm_inst_free(struct wasm_inst *in)
{
	if (!in)
		return;
	pthread_mutex_lock(&in->lock);
	while (in->dead && in->rs)	/* the reaper has it */
		pthread_cond_wait(&in->stopped, &in->lock);
	wasm_fault_close(in->fault);	/* before the restore it serves */
	in->fault = NULL;
	tier_restore_stop(in->rs);
	in->rs = NULL;
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_lock(&call_lock);
	in->mod->free(in->inst);
	pthread_mutex_unlock(&call_lock);
	pthread_mutex_destroy(&in->lock);
	pthread_cond_destroy(&in->stopped);
	free(in->inst);
	free(in);
}

const struct wasm_mod *wasm_inst_mod(const struct wasm_inst *in)
{
	return in->mod;
}

uint8_t *wasm_inst_mem(const struct wasm_inst *in, size_t *len)
{
	const wasm_rt_memory_t *m = in->wasi.mem;

	*len = m->size;
	return m->data;
}

uint32_t wasm_inst_stack_pointer(const struct wasm_inst *in)
{
	return *in->mod->stack_pointer(in->inst);
}

struct tier_restore *wasm_inst_restore(struct wasm_inst *in)
{
	return in->rs;
}

unsigned long wasm_inst_sigbus_faults(const struct wasm_inst *in)
{
	return wasm_fault_served(in->fault);
}

void *wasm_inst_raw(struct wasm_inst *in)
{
	return in->inst;
}
