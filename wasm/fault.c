/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SIGBUS in the host process: the pages of restored instances that the
 * faulting thread serves itself (TIER_RESTORE_SIGBUS), and a clear
 * reason where a page of a restored instance cannot be had at all (a CXL
 * object truncated under it, in either fault mode).
 *
 * wasm-rt's own handler turns every SIGBUS into an out-of-bounds trap,
 * which is wrong for a page that is merely not fetched yet and says
 * nothing of why otherwise; so this handler goes first and chains to it
 * (or to whatever was there) only for faults that are not an instance's.
 * A thread inside a call is told by wasm_fault_enter which instance it
 * runs; a touch from host code outside any call (reading an instance's
 * memory) is matched by address. A page that cannot be had ends the call
 * with a trap (wasm-rt's unwind target) and the instance's reason; outside
 * a call there is nothing to unwind to, so the reason goes to stderr and
 * the process dies of the SIGBUS, as it would without this handler.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasm-rt.h>

#include "util/err.h"
#include "wasm/host.h"

#define MAX_FAULTS	1024	/* registered instances at once */

struct wasm_fault {
	_Atomic(struct tier_restore *) rs;	/* NULL once detached */
	struct tier_restore_thread *t;	/* SIGBUS mode only */
	uintptr_t lo, hi;		/* the linear memory */
	volatile sig_atomic_t err;	/* the page that could not be had */
	atomic_ulong served;		/* faults served by this handler */
	char why[256];
};

static _Atomic(struct wasm_fault *) faults[MAX_FAULTS];
static pthread_mutex_t faults_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static struct sigaction chained;
static int handler_rc;
static __thread struct wasm_fault *in_call;

static void say(const char *s)
{
	if (write(2, s, strlen(s)) < 0)
		return;		/* nothing more to tell it with */
}

/* Hands the signal to the handler before ours, as if ours were not there. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	if (chained.sa_flags & SA_SIGINFO) {
		chained.sa_sigaction(sig, si, uc);
	} else if (chained.sa_handler == SIG_DFL) {
		/* the access retries and dies of the default action */
		signal(sig, SIG_DFL);
	} else if (chained.sa_handler != SIG_IGN) {
		chained.sa_handler(sig);
	}
}

static struct wasm_fault *by_addr(uintptr_t a)
{
	unsigned i;

	for (i = 0; i < MAX_FAULTS; i++) {
		struct wasm_fault *f = atomic_load(&faults[i]);

		if (f && a >= f->lo && a < f->hi)
			return f;
	}
	return NULL;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	struct wasm_fault *f = in_call && a >= in_call->lo && a < in_call->hi ?
			       in_call : by_addr(a);
	struct tier_restore *rs = f ? atomic_load(&f->rs) : NULL;
	int saved = errno, rc = -ENOENT;

	if (!rs) {
		errno = saved;
		chain(sig, si, uc);
		return;
	}
	if (f->t)
		rc = tier_restore_fault(f->t, si->si_addr);
	if (rc == 0) {
		atomic_fetch_add_explicit(&f->served, 1, memory_order_relaxed);
		errno = saved;
		return;
	}
	if (rc == -ENOENT) {
		/* not a lazy page: a zero-copy page past a truncated object's
		 * end, or no page of tier's at all */
		if (tier_restore_sigbus_reason(rs, si->si_addr, f->why,
					       sizeof(f->why)) != 0) {
			errno = saved;
			chain(sig, si, uc);
			return;
		}
		rc = -EIO;
	} else if (f->t) {
		const char *m = tier_restore_thread_errmsg(f->t);
		size_t n = strlen(m);

		if (n >= sizeof(f->why))
			n = sizeof(f->why) - 1;
		memcpy(f->why, m, n);
		f->why[n] = 0;
	}
	f->err = rc;
	if (f == in_call)
		wasm_rt_trap(WASM_RT_TRAP_OOB);	/* siglongjmps out of the call */
	say("wasm host: ");
	say(f->why);
	say("\n");
	signal(sig, SIG_DFL);
	errno = saved;
}

static void install(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus };

	/* SA_ONSTACK: the thread wasm-rt initialised in has its alternate
	 * stack, for the faults of a call that exhausted its own */
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &chained))
		handler_rc = -errno;
}

int wasm_fault_open(struct tier_restore *rs, void *mem, size_t len,
		    unsigned flags, struct wasm_fault **ret)
{
	struct wasm_fault *f;
	unsigned i;
	int rc;

	pthread_once(&handler_once, install);
	if (handler_rc)
		return tier_err(handler_rc, "wasm host: installing a SIGBUS handler: %m");
	f = calloc(1, sizeof(*f));
	if (!f)
		return tier_err(-ENOMEM, "wasm host: out of memory");
	atomic_init(&f->rs, rs);
	f->lo = (uintptr_t)mem;
	f->hi = (uintptr_t)mem + len;
	if (flags & TIER_RESTORE_SIGBUS) {
		rc = tier_restore_thread_open(rs, &f->t);
		if (rc) {
			free(f);
			return rc;
		}
	}
	pthread_mutex_lock(&faults_lock);
	for (i = 0; i < MAX_FAULTS; i++) {
		struct wasm_fault *none = NULL;

		if (atomic_compare_exchange_strong(&faults[i], &none, f))
			break;
	}
	pthread_mutex_unlock(&faults_lock);
	if (i == MAX_FAULTS) {
		tier_restore_thread_close(f->t);
		free(f);
		return tier_err(-EMFILE, "wasm host: more than %d restored instances at once",
				MAX_FAULTS);
	}
	*ret = f;
	return 0;
}

void wasm_fault_close(struct wasm_fault *f)
{
	unsigned i;

	if (!f)
		return;
	pthread_mutex_lock(&faults_lock);
	for (i = 0; i < MAX_FAULTS; i++) {
		struct wasm_fault *me = f;

		if (atomic_compare_exchange_strong(&faults[i], &me, NULL))
			break;
	}
	pthread_mutex_unlock(&faults_lock);
	tier_restore_thread_close(f->t);
	free(f);
}

void wasm_fault_detach(struct wasm_fault *f)
{
	if (f && !f->t)
		atomic_store(&f->rs, NULL);
}

void wasm_fault_enter(struct wasm_fault *f)
{
	in_call = f;
}

void wasm_fault_leave(void)
{
	in_call = NULL;
}

unsigned long wasm_fault_served(const struct wasm_fault *f)
{
	return f ? atomic_load(&f->served) : 0;
}

int wasm_fault_error(const struct wasm_fault *f, const char **why)
{
	if (!f || !f->err)
		return 0;
	*why = f->why;
	return f->err;
}
