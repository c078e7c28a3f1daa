/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Function start of the WebAssembly host (BENCHMARKS.md): restore -> first
 * result for tiered (lazy from a TCP pool, ro mapped from a CXL
 * directory; its faults served by the handler thread, and again by the
 * faulting thread, TIER_RESTORE_SIGBUS), eager (every non-zero page
 * copied in before the call) and a cold init, per function; faults by class, local memory (anonymous pages
 * of the linear memory) per instance and for N instances, against the
 * physical floors measured in the same run: eager's, the snapshot's
 * non-zero pages memcpy'd into populated memory and a warm call; tiered's,
 * a warm call and its local pages at that memcpy's rate.
 *
 *   bench-wasm TIERCTL DIR [N]
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wasm/host.h"

#define REPS	7

static const struct { const struct wasm_mod *m; int32_t arg; } fns[] = {
	{ &wasm_mod_dict, 200000 },
	{ &wasm_mod_image, 2048 },
	{ &wasm_mod_index, 1000000 },
};
static const int32_t recorded[] = { 5, 17, 333 };
#define INPUT	12345	/* the first call's input: not one the trace saw */

static pid_t pool_pid;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "bench-wasm: %s: %s\n", what, tier_errmsg());
	if (pool_pid > 0)
		kill(pool_pid, SIGKILL);
	exit(1);
}

static int start_pool(const char *tierctl, const char *dir)
{
	char line[256];
	int p[2], port = 0;
	FILE *f;

	if (pipe(p))
		exit(1);
	pool_pid = fork();
	if (pool_pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(tierctl, tierctl, "pool", "serve", "--no-auth", "--listen",
		      "tcp://127.0.0.1:0", "--dir", dir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	f = fdopen(p[0], "r");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "listening on tcp://127.0.0.1:%d", &port) == 1)
			break;
	if (port <= 0)
		die("pool serve");
	return port;
}

/* Pages of @in's linear memory held in local DRAM: present and
 * anonymous (CXL-mapped pages are the tier's file pages). */
static uint64_t local_pages(struct wasm_inst *in)
{
	size_t len;
	uint8_t *mem = wasm_inst_mem(in, &len);
	uint64_t n = 0, i, np = len / 4096, *e = malloc(np * 8);
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0 || pread(fd, e, np * 8, (uintptr_t)mem / 4096 * 8) != (ssize_t)(np * 8))
		die("pagemap");
	for (i = 0; i < np; i++)
		if ((e[i] >> 63 & 1) && !(e[i] >> 61 & 1))
			n++;
	close(fd);
	free(e);
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
	qsort(v, n, 8, cmp_u64);
	return v[n / 2];
}

struct res {
	uint64_t ns, local, faults[TIER_CLASS_MAX], prefetched, n_local, n_ns;
};

static void restore_run(struct tier_snap *snap, const struct wasm_mod *m,
			enum tier_policy pol, unsigned flags, int32_t want,
			unsigned n, struct res *r)
{
	struct tier_restore_attr ra = { .policy = pol, .flags = flags };
	struct wasm_inst **in = calloc(n, sizeof(*in));
	struct tier_restore_stats st;
	uint64_t t[REPS], t0;
	unsigned i, c;
	int32_t v;

	for (i = 0; i < REPS; i++) {
		t0 = now_ns();
		if (wasm_restore(m, snap, &ra, &in[0]) ||
		    wasm_inst_call(in[0], INPUT, &v))
			die(m->name);
		t[i] = now_ns() - t0;
		if (v != want)
			die("wrong result");
		if (i == REPS - 1) {
			tier_restore_stats(wasm_inst_restore(in[0]), &st);
			for (c = 0; c < TIER_CLASS_MAX; c++)
				r->faults[c] = st.faults[c];
			r->prefetched = st.prefetched_pages;
			r->local = local_pages(in[0]);
		}
		wasm_inst_free(in[0]);
	}
	r->ns = median(t, REPS);

	t0 = now_ns();
	for (i = 0; i < n; i++)
		if (wasm_restore(m, snap, &ra, &in[i]) ||
		    wasm_inst_call(in[i], INPUT, &v) || v != want)
			die("N instances");
	r->n_ns = now_ns() - t0;
	r->n_local = 0;
	for (i = 0; i < n; i++) {
		r->n_local += local_pages(in[i]);
		wasm_inst_free(in[i]);
	}
	free(in);
}

int main(int argc, char **argv)
{
	char path[4096], pool[64], cxl[4200];
	struct tier_store *store;
	unsigned n = argc > 3 ? atoi(argv[3]) : 16, f, k;

	if (argc < 3) {
		fprintf(stderr, "usage: bench-wasm TIERCTL DIR [N]\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/pool", argv[2]);
	snprintf(pool, sizeof(pool), "pool=tcp://127.0.0.1:%d",
		 start_pool(argv[1], path));
	snprintf(cxl, sizeof(cxl), "cxl=dir:%s/cxl", argv[2]);
	snprintf(path, sizeof(path), "%s/store", argv[2]);
	if (tier_store_open(path, &store))
		die("store");

	printf("| function | memory MiB | cold init -> result ms | eager ms | tiered ms | tiered SIGBUS ms | tiered/cold | tiered/eager | floor ms eager / tiered | tiered faults zero/ro/rw/cold, prefetched | local KiB tiered / eager | local ratio | N=%u local MiB tiered / eager | N=%u ms tiered / SIGBUS / eager |\n",
	       n, n);
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
	for (f = 0; f < 3; f++) {
		const struct wasm_mod *m = fns[f].m;
		struct tier_place_attr pa = { .cxl = cxl, .pool = pool };
		struct tier_restore_attr rec = { .flags = TIER_RESTORE_RECORD };
		uint64_t t[REPS], t0, cold_ns, floor_ns, warm_ns, copy_ns, nz, tfloor_ns;
		unsigned *nzp;
		struct wasm_inst *in, *r;
		struct tier_snap *snap;
		struct res tr = { 0 }, er = { 0 }, sr = { 0 };
		size_t len;
		uint8_t *mem, *buf;
		int32_t want, v;

		for (k = 0; k < REPS; k++) {
			t0 = now_ns();
			if (wasm_inst_cold(m, fns[f].arg, &in) ||
			    wasm_inst_call(in, INPUT, &want))
				die(m->name);
			t[k] = now_ns() - t0;
			if (k < REPS - 1)
				wasm_inst_free(in);
		}
		cold_ns = median(t, REPS);
		for (k = 0; k < REPS; k++) {
			t0 = now_ns();
			wasm_inst_call(in, INPUT, &v);
			t[k] = now_ns() - t0;
		}
		warm_ns = median(t, REPS);
		if (wasm_snapshot(in, store, m->name, TIER_IMPORT_REPLACE) ||
		    tier_snap_open(store, m->name, &snap))
			die("snapshot");
		/* the floor: the bytes any restore must bring, copied into
		 * memory that is already there, then the call */
		mem = wasm_inst_mem(in, &len);
		buf = malloc(len);
		memset(buf, 1, len);
		nzp = malloc(len / 4096 * sizeof(*nzp));
		nz = 0;
		for (k = 0; k < len / 4096; k++) {
			const uint64_t *p = (const uint64_t *)(mem + k * 4096);
			unsigned w = 0;

			while (w < 512 && !p[w])
				w++;
			if (w < 512)
				nzp[nz++] = k;
		}
		t0 = now_ns();
		for (k = 0; k < nz; k++)
			memcpy(buf + (uint64_t)k * 4096, mem + (uint64_t)nzp[k] * 4096, 4096);
		copy_ns = now_ns() - t0;
		floor_ns = copy_ns + warm_ns;
		free(nzp);
		free(buf);
		wasm_inst_free(in);

		if (wasm_restore(m, snap, &rec, &r))
			die("record");
		for (k = 0; k < 3; k++)
			if (wasm_inst_call(r, recorded[k], &v))
				die("record call");
		if (tier_restore_save_trace(wasm_inst_restore(r), "call"))
			die("trace");
		wasm_inst_free(r);
		if (tier_place(snap, TIER_POLICY_TIERED, &pa) ||
		    tier_place(snap, TIER_POLICY_EAGER, &pa))
			die("place");

		restore_run(snap, m, TIER_POLICY_TIERED, 0, want, n, &tr);
		restore_run(snap, m, TIER_POLICY_TIERED, TIER_RESTORE_SIGBUS, want,
			    n, &sr);
		restore_run(snap, m, TIER_POLICY_EAGER, 0, want, n, &er);
		/* tiered's floor: its local pages copied at memcpy's rate */
		tfloor_ns = warm_ns + copy_ns * tr.local / (nz ? nz : 1);
		printf("| %s | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f / %.3f | %llu/%llu/%llu/%llu, %llu | %llu / %llu | %.2f | %.1f / %.1f | %.1f / %.1f / %.1f |\n",
		       m->name, len / 1048576.0, cold_ns / 1e6, er.ns / 1e6,
		       tr.ns / 1e6, sr.ns / 1e6, (double)tr.ns / cold_ns,
		       (double)tr.ns / er.ns, floor_ns / 1e6, tfloor_ns / 1e6,
		       (unsigned long long)tr.faults[TIER_CLASS_ZERO],
		       (unsigned long long)tr.faults[TIER_CLASS_RO],
		       (unsigned long long)tr.faults[TIER_CLASS_RW],
		       (unsigned long long)tr.faults[TIER_CLASS_COLD],
		       (unsigned long long)tr.prefetched,
		       (unsigned long long)tr.local * 4,
		       (unsigned long long)er.local * 4,
		       (double)tr.local / er.local,
		       tr.n_local * 4096 / 1048576.0, er.n_local * 4096 / 1048576.0,
		       tr.n_ns / 1e6, sr.n_ns / 1e6, er.n_ns / 1e6);
		fflush(stdout);
		tier_snap_close(snap);
	}
	kill(pool_pid, SIGKILL);
	waitpid(pool_pid, NULL, 0);
	tier_store_close(store);
	return 0;
}
