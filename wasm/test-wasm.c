/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * WebAssembly instances restored lazily from a memory node (root suite):
 * each function initialised cold, its instance imported as a snapshot,
 * one run recorded, placed with every policy on a TCP pool served by a
 * real "tierctl pool serve" and a CXL directory; then N instances of each
 * snapshot restored in this process through the handler thread (or,
 * with "sigbus", by each faulting thread itself), every call's result
 * checked against the same call on a cold instance, every page of every
 * instance against the cold instance's after the same calls, and the
 * CXL-mapped pages shown to be one physical page for all instances of
 * this process and of another one (this program run again as "child").
 * Then the failures: a module that is not the snapshot's, the CXL object
 * cut short under a running instance, a truncated instance state, and
 * the pool killed under a call.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/t.h"
#include "wasm/host.h"

#define N_INST	4

/*
 * test-wasm [LISTEN] [small] [sigbus]: the pool server listens on LISTEN
 * (default tcp://127.0.0.1:0; the guest suite passes rdma://10.9.0.1:0),
 * "small" (the guest suite, where a fault costs a millisecond) shrinks
 * the functions, the instances and the policies to tiered and aquifer,
 * "sigbus" restores with TIER_RESTORE_SIGBUS.
 * test-wasm child STORE MODULE FLAGS: the other process of the sharing
 * check (a tiered restore of MODULE's snapshot; prints its results and
 * the frames of its CXL pages).
 */
static struct { const struct wasm_mod *m; int32_t arg; } fns[] = {
	{ &wasm_mod_dict, 20000 },	/* words */
	{ &wasm_mod_image, 512 },	/* pixels a side */
	{ &wasm_mod_index, 100000 },	/* keys */
};
static unsigned n_inst = N_INST, npol = 6, rflags;
static const char *self_exe;
/* Recorded: the first three. The rest are inputs the trace never saw,
 * so their pages come lazily from the pool; negative ones miss. */
static const int32_t inputs[] = { 5, 17, 333, 12345, 6000, -4, 19999, 777, 2, 15000 };
#define NIN	(sizeof(inputs) / sizeof(inputs[0]))
#define NREC	3

static pid_t pool_pid;
static char tmp[] = "/tmp/test-wasm.XXXXXX";

static void cleanup(void)
{
	char cmd[128];

	if (pool_pid > 0)
		kill(pool_pid, SIGKILL);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd))
		fprintf(stderr, "cleanup: %s failed\n", cmd);
}

/* A real pool server on an ephemeral port; @uri gets its pool= URI. */
static void start_pool(const char *tierctl, const char *listen, char *uri,
		      size_t len)
{
	char dir[64], line[256];
	int p[2], found = 0;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/pool", tmp);
	t_assert(pipe(p) == 0);
	pool_pid = fork();
	t_assert(pool_pid >= 0);
	if (pool_pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(tierctl, tierctl, "pool", "serve", "--no-auth", "--listen",
		      listen, "--dir", dir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "listening on ", 13)) {
			snprintf(uri, len, "pool=%s", line + 13);
			found = 1;
			break;
		}
	}
	t_assert(found);
}

static void one_line(const char *what, const char *want)
{
	const char *msg = tier_errmsg();

	printf("%s: %s\n", what, msg);
	t_assert(!strchr(msg, '\n'));
	t_assert(strstr(msg, want));
}

/* The physical frame of @addr (read as root from pagemap), or 0. */
static uint64_t pfn(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	t_assert(fd >= 0);
	t_assert(pread(fd, &e, 8, (uintptr_t)addr / 4096 * 8) == 8);
	close(fd);
	return (e & (1ULL << 63)) ? e & ((1ULL << 55) - 1) : 0;
}

static const enum tier_policy policies[] = {
	TIER_POLICY_TIERED, TIER_POLICY_AQUIFER, TIER_POLICY_VANILLA,
	TIER_POLICY_REAP, TIER_POLICY_FAASNAP, TIER_POLICY_EAGER,
};

/* The child's side: restore, call every input, print "r K V" for each
 * result and "p PAGE PFN" for each CXL page present. */
static int child(const char *path, const char *name, const char *flags)
{
	struct tier_restore_attr ra = { .policy = TIER_POLICY_TIERED,
					.flags = (unsigned)atoi(flags) };
	const struct wasm_mod *m = NULL;
	struct tier_store *store;
	struct tier_snap *snap;
	struct wasm_inst *in;
	uint8_t *plan, *mem;
	size_t len;
	unsigned i;
	uint64_t p, f;

	for (i = 0; wasm_mods[i]; i++)
		if (!strcmp(wasm_mods[i]->name, name))
			m = wasm_mods[i];
	t_assert(m);
	t_ok(tier_store_open(path, &store));
	t_ok(tier_snap_open(store, name, &snap));
	t_ok(wasm_restore(m, snap, &ra, &in));
	for (i = 0; i < NIN; i++) {
		int32_t r;

		t_ok(wasm_inst_call(in, inputs[i], &r));
		printf("r %u %d\n", i, r);
	}
	t_ok(tier_plan_pages(snap, TIER_POLICY_TIERED, &plan));
	mem = wasm_inst_mem(in, &len);
	for (p = 0; p < tier_snap_npages(snap); p++)
		if ((plan[p] >> 4) == TIER_TIER_CXL && (f = pfn(mem + p * 4096)))
			printf("p %llu %llu\n", (unsigned long long)p,
			       (unsigned long long)f);
	free(plan);
	wasm_inst_free(in);
	tier_snap_close(snap);
	tier_store_close(store);
	return T_PASS;
}

/* Another process restores @m's snapshot from the same store: the same
 * results, and its CXL pages are the frames of @in0's. */
static void check_other_process(const struct wasm_mod *m, struct wasm_inst *in0,
				const int32_t *want)
{
	char path[4096], flags[16], line[128];
	unsigned long long p, f;
	unsigned k, nres = 0, nshared = 0;
	int fds[2], status, v;
	size_t len;
	uint8_t *mem = wasm_inst_mem(in0, &len);
	pid_t pid;
	FILE *out;

	snprintf(path, sizeof(path), "%s/store", tmp);
	snprintf(flags, sizeof(flags), "%u", rflags);
	t_assert(pipe(fds) == 0);
	pid = fork();
	t_assert(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execl(self_exe, self_exe, "child", path, m->name, flags, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	out = fdopen(fds[0], "r");
	t_assert(out);
	while (fgets(line, sizeof(line), out)) {
		if (sscanf(line, "r %u %d", &k, &v) == 2) {
			t_assert(k < NIN);
			t_eq(v, want[k]);
			nres++;
		} else if (sscanf(line, "p %llu %llu", &p, &f) == 2) {
			uint64_t mine;

			t_assert(p * 4096 < len);
			mine = pfn(mem + p * 4096);
			if (!mine)
				continue;	/* not touched here */
			if (mine != f) {
				fprintf(stderr, "%s: CXL page %llu is frame %llu here, %llu in the other process\n",
					m->name, p, (unsigned long long)mine, f);
				exit(T_FAIL);
			}
			nshared++;
		}
	}
	fclose(out);
	t_assert(waitpid(pid, &status, 0) == pid);
	t_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	t_eq(nres, NIN);
	printf("%s: %u CXL pages shared with another process\n", m->name, nshared);
	t_assert(nshared > 0);
}

/*
 * An instance reset by madvise(MADV_DONTNEED) of its memory, as a runtime
 * reuses one: with TIER_RESTORE_DONTNEED_RESETS (or in SIGBUS mode) every
 * page reads as the snapshot's again and the next call is right; with
 * the handler thread and no flag, the pages the reset dropped read as
 * zero (a balloon's semantics).
 */
static void check_reset(struct tier_snap *snap, const struct wasm_mod *m,
			const int32_t *want)
{
	unsigned modes = rflags ? 1 : 2, mode, k;
	uint64_t p, np = tier_snap_npages(snap);

	for (mode = 0; mode < modes; mode++) {
		struct tier_restore_attr ra = {
			.policy = TIER_POLICY_TIERED,
			.flags = rflags | (mode ? 0 : TIER_RESTORE_DONTNEED_RESETS),
		};
		struct wasm_inst *in;
		uint64_t bad = 0;
		uint8_t *mem;
		size_t len;
		int32_t v;

		t_ok(wasm_restore(m, snap, &ra, &in));
		for (k = 0; k < NIN; k++) {
			t_ok(wasm_inst_call(in, inputs[k], &v));
			t_eq(v, want[k]);
		}
		mem = wasm_inst_mem(in, &len);
		t_assert(madvise(mem, len, MADV_DONTNEED) == 0);
		for (p = 0; p < np; p++)
			bad += tier_snap_verify_page(snap, p, mem + p * 4096) != 0;
		if (mode == 0) {
			t_eq(bad, 0);
			for (k = 0; k < NIN; k++) {
				t_ok(wasm_inst_call(in, inputs[k], &v));
				t_eq(v, want[k]);
			}
		} else {
			t_assert(bad > 0);
		}
		printf("%s: reset by MADV_DONTNEED%s: %llu of %llu pages not the snapshot's\n",
		       m->name, mode ? " without TIER_RESTORE_DONTNEED_RESETS" : "",
		       (unsigned long long)bad, (unsigned long long)np);
		wasm_inst_free(in);
	}
}

static void check_policy(struct tier_snap *snap, const struct wasm_mod *m,
			 enum tier_policy pol, struct wasm_inst *ref,
			 const int32_t *want)
{
	struct tier_restore_attr ra = { .policy = pol, .flags = rflags };
	struct wasm_inst *in[N_INST];
	unsigned n = n_inst;
	size_t rlen, len;
	const uint8_t *rmem = wasm_inst_mem(ref, &rlen);
	uint8_t *plan = NULL;
	unsigned i, k;
	uint64_t p, np = tier_snap_npages(snap), ncxl = 0, nf, nfaults = 0;

	for (i = 0; i < n; i++)
		t_ok(wasm_restore(m, snap, &ra, &in[i]));

	/* one extra instance: every page equals the snapshot's, untouched
	 * by any call */
	{
		struct wasm_inst *v;
		uint8_t *mem;

		t_ok(wasm_restore(m, snap, &ra, &v));
		mem = wasm_inst_mem(v, &len);
		t_eq(len, tier_snap_size(snap));
		for (p = 0; p < np; p++)
			t_ok(tier_snap_verify_page(snap, p, mem + p * 4096));
		wasm_inst_free(v);
	}

	for (i = 0; i < n; i++) {
		struct tier_restore_stats st;
		uint8_t *mem;

		for (k = 0; k < NIN; k++) {
			int32_t r = 0;

			t_ok(wasm_inst_call(in[i], inputs[k], &r));
			t_eq(r, want[k]);
		}
		mem = wasm_inst_mem(in[i], &len);
		t_eq(len, rlen);
		for (p = 0; p < np; p++)
			if (memcmp(mem + p * 4096, rmem + p * 4096, 4096)) {
				fprintf(stderr, "%s %s instance %u: page %llu differs from the cold instance's\n",
					m->name, tier_policy_name(pol), i,
					(unsigned long long)p);
				exit(T_FAIL);
			}
		t_eq(wasm_inst_stack_pointer(in[i]), wasm_inst_stack_pointer(ref));
		tier_restore_stats(wasm_inst_restore(in[i]), &st);
		t_eq(st.error, 0);
		for (k = 0, nf = 0; k < TIER_CLASS_MAX; k++)
			nf += st.faults[k];
		/* every fault came through the mode asked for */
		t_eq(wasm_inst_sigbus_faults(in[i]), rflags ? nf : 0);
		nfaults += nf;
		if (pol == TIER_POLICY_TIERED)
			t_assert(st.cxl_mapped_bytes > 0);
	}

	/* tiered: a read-only page from the CXL tier is one frame, shared */
	if (pol == TIER_POLICY_TIERED) {
		t_ok(tier_plan_pages(snap, pol, &plan));
		for (p = 0; p < np; p++) {
			uint64_t f0;

			if ((plan[p] >> 4) != TIER_TIER_CXL)
				continue;
			f0 = pfn(wasm_inst_mem(in[0], &len) + p * 4096);
			if (!f0)
				continue;	/* not touched: not mapped yet */
			for (i = 1; i < n; i++)
				t_eq(pfn(wasm_inst_mem(in[i], &len) + p * 4096), f0);
			ncxl++;
		}
		free(plan);
		printf("%s: %llu CXL pages shared by %u instances\n", m->name,
		       (unsigned long long)ncxl, n);
		t_assert(ncxl > 0);
		check_other_process(m, in[0], want);
	}
	if (pol == TIER_POLICY_TIERED)	/* inputs the trace never saw */
		t_assert(nfaults > 0);
	printf("%s %s: %llu faults served %s\n", m->name, tier_policy_name(pol),
	       (unsigned long long)nfaults,
	       rflags ? "in the faulting threads" : "by handler threads");
	for (i = 0; i < n; i++)
		wasm_inst_free(in[i]);
}

int main(int argc, char **argv)
{
	const char *tierctl = getenv("TIERCTL");
	const char *listen = "tcp://127.0.0.1:0";
	char pool[300], cxl[96], path[4096];
	struct tier_store *store;
	struct tier_snap *snaps[3];
	int32_t want[3][NIN];
	struct wasm_inst *refs[3];
	unsigned f, k, q;
	int i, fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	self_exe = argv[0];
	/* the guest suite's client end of the rxe pair, as for tierctl */
	t_ok(tier_set_pool_opts(&(struct tier_pool_opts){
		.rdma_src = getenv("TIER_POOL_RDMA_SRC") }));
	if (argc == 5 && !strcmp(argv[1], "child"))
		return child(argv[2], argv[3], argv[4]);
	if (geteuid() != 0)
		t_skip("needs root (userfaultfd, pagemap frames)");
	if (!tierctl)
		t_skip("TIERCTL not set (run under meson test)");
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "small")) {
			fns[0].arg = 2000;
			fns[1].arg = 128;
			fns[2].arg = 5000;
			n_inst = 2;
			npol = 2;
		} else if (!strcmp(argv[i], "sigbus")) {
			rflags = TIER_RESTORE_SIGBUS;
		} else if (strstr(argv[i], "://")) {
			listen = argv[i];
		} else {
			fprintf(stderr, "usage: test-wasm [LISTEN] [small] [sigbus]\n");
			return T_FAIL;
		}
	}
	t_assert(mkdtemp(tmp));
	atexit(cleanup);
	start_pool(tierctl, listen, pool, sizeof(pool));
	snprintf(cxl, sizeof(cxl), "cxl=dir:%s/cxl", tmp);
	snprintf(path, sizeof(path), "%s/store", tmp);
	t_ok(tier_store_open(path, &store));

	for (f = 0; f < 3; f++) {
		const struct wasm_mod *m = fns[f].m;
		struct tier_place_attr pa = { .cxl = cxl, .pool = pool };
		struct tier_restore_attr rec = { .flags = TIER_RESTORE_RECORD };
		struct wasm_inst *cold, *r;

		t_ok(wasm_inst_cold(m, fns[f].arg, &cold));
		t_ok(wasm_snapshot(cold, store, m->name, 0));
		wasm_inst_free(cold);
		t_ok(tier_snap_open(store, m->name, &snaps[f]));

		/* the reference: a cold instance, every input */
		t_ok(wasm_inst_cold(m, fns[f].arg, &refs[f]));
		for (k = 0; k < NIN; k++)
			t_ok(wasm_inst_call(refs[f], inputs[k], &want[f][k]));
		t_assert(want[f][0] != 0);

		t_ok(wasm_restore(m, snaps[f], &rec, &r));
		for (k = 0; k < NREC; k++) {
			int32_t v;

			t_ok(wasm_inst_call(r, inputs[k], &v));
			t_eq(v, want[f][k]);
		}
		t_ok(tier_restore_save_trace(wasm_inst_restore(r), "call"));
		wasm_inst_free(r);

		for (q = 0; q < npol; q++) {
			t_ok(tier_place(snaps[f], policies[q], &pa));
			check_policy(snaps[f], m, policies[q], refs[f], want[f]);
			if (policies[q] == TIER_POLICY_TIERED)
				check_reset(snaps[f], m, want[f]);
		}
		printf("%s: %zu inputs x %u instances x %u policies match\n",
		       m->name, NIN, n_inst, npol);
	}

	/* a module that is not the snapshot's */
	{
		struct wasm_inst *x = NULL;

		t_fails(wasm_restore(&wasm_mod_index, snaps[0], NULL, &x), -EINVAL);
		one_line("mismatch", "snapshot dict is of module dict");
		t_assert(!x);
	}

	/* the CXL object cut short under a running instance: a call that
	 * touches a page past the new end fails naming the object; the
	 * instance stays dead; placed again, it restores */
	{
		struct tier_place_attr pa = { .cxl = cxl, .pool = pool };
		struct tier_restore_attr ra = { .policy = TIER_POLICY_TIERED, .flags = rflags };
		struct wasm_inst *in;
		char cmd[300], obj[4096];
		int failed = 0, rc;
		int32_t v;
		FILE *pf;

		t_ok(tier_place(snaps[0], TIER_POLICY_TIERED, &pa));
		t_ok(wasm_restore(&wasm_mod_dict, snaps[0], &ra, &in));
		snprintf(cmd, sizeof(cmd), "find %s/cxl -type f -path '*dict*tiered*'", tmp);
		pf = popen(cmd, "r");
		t_assert(pf && fgets(obj, sizeof(obj), pf));
		pclose(pf);
		obj[strcspn(obj, "\n")] = 0;
		t_assert(truncate(obj, 0) == 0);
		for (k = 0; k < NIN && !failed; k++) {
			rc = wasm_inst_call(in, inputs[k], &v);
			if (rc) {
				one_line("CXL object cut short", "CXL object");
				failed = 1;
			} else {
				t_eq(v, want[0][k]);
			}
		}
		t_assert(failed);
		t_assert(wasm_inst_call(in, inputs[0], &v) != 0);
		wasm_inst_free(in);
		t_ok(tier_place(snaps[0], TIER_POLICY_TIERED, &pa));
		t_ok(wasm_restore(&wasm_mod_dict, snaps[0], &ra, &in));
		t_ok(wasm_inst_call(in, inputs[0], &v));
		t_eq(v, want[0][0]);
		wasm_inst_free(in);
	}

	/* the pool dies under calls: each call fails or is right */
	{
		struct tier_restore_attr ra = { .policy = TIER_POLICY_TIERED, .prefetch = 1,
						.flags = rflags };
		struct wasm_inst *in;
		int failed = 0, rc;
		int32_t j, v, w;

		t_ok(wasm_restore(&wasm_mod_dict, snaps[0], &ra, &in));
		kill(pool_pid, SIGKILL);
		waitpid(pool_pid, NULL, 0);
		pool_pid = 0;
		for (j = 100; j < 20000 && !failed; j += 97) {
			rc = wasm_inst_call(in, j, &v);
			if (rc) {
				one_line("dead pool", "instance of dict: call(");
				failed = 1;
				break;
			}
			t_ok(wasm_inst_call(refs[0], j, &w));
			t_eq(v, w);
		}
		t_assert(failed);
		/* and it stays dead */
		t_assert(wasm_inst_call(in, 5, &v) != 0);
		wasm_inst_free(in);
	}

	/* a truncated instance state: refused, by name */
	{
		struct wasm_inst *x = NULL;

		t_ok(tier_snap_state_path(snaps[1], path, sizeof(path)));
		fd = open(path, O_WRONLY);
		t_assert(fd >= 0);
		t_assert(ftruncate(fd, 20) == 0);
		close(fd);
		t_assert(wasm_restore(&wasm_mod_image, snaps[1], NULL, &x) < 0);
		one_line("truncated", "image");
		t_assert(!x);
	}

	/* a truncated memory image in the store: the snapshot does not open */
	{
		struct tier_snap *x = NULL;

		snprintf(path, sizeof(path), "%s/store/snapshots/index/image", tmp);
		t_assert(truncate(path, tier_snap_size(snaps[2]) - 4096) == 0);
		t_fails(tier_snap_open(store, "index", &x), -EBADMSG);
		one_line("truncated memory", "snapshot index: image truncated");
	}

	for (f = 0; f < 3; f++) {
		wasm_inst_free(refs[f]);
		tier_snap_close(snaps[f]);
	}
	tier_store_close(store);
	printf("ok\n");
	return T_PASS;
}
