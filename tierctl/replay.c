/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tierctl replay: restores a snapshot into this process (or into N forked
 * children at once) and touches its pages in a trace's order and kinds,
 * verifying every page against the image's checksums. The measurement
 * tool of the project: setup time, replay time, faults per class, bytes
 * fetched, DRAM held.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tier.h"
#include "tierctl/replay.h"
#include "tierctl/tierctl.h"
#include "store/snap.h"
#include "util/err.h"
#include "util/file.h"
#include "util/size.h"
#include "util/uri.h"

static const char replay_usage[] =
	"usage: tierctl replay [options] SNAP\n"
	"\n"
	"Restores SNAP into this process with a policy's plan and replays a\n"
	"trace on it: r pages are read, w pages written, rw pages read then\n"
	"written. The replay time is the touching alone; then every touched\n"
	"page is verified against the image (and what was written), timed\n"
	"apart. Reports setup, replay and verify time, faults per class, pool\n"
	"bytes, anonymous RSS.\n"
	"\n"
	STORE_USAGE
	"  --trace NAME         the stored trace to replay (default: the first by name)\n"
	"  --trace-file FILE    replay a text trace file instead (not stored)\n"
	"  --policy P           the plan to restore (default: tiered); placed first\n"
	"                       with defaults if it does not exist yet\n"
	"  --instances N        N concurrent restores in N processes (default 1)\n"
	"  --prefetch N         pages fetched per lazy fault (default and 0: 8)\n"
	"  --cxl URI            override the plan's CXL tier\n"
	"  --pool URI           override the plan's pool\n"
	"  --pool-fallback      read a segment the pool cannot open or read\n"
	"                       from its durable copy (the plan's, tierctl place\n"
	"                       --backing; or --backing URI), every page checked\n"
	"  --backing URI        the durable copy for --pool-fallback\n"
	"  --touch-gap-us N     pause N microseconds before each touch: a replay\n"
	"                       spread over time, to change its pool under it\n"
	"  --json               print one JSON object\n"
	"  --latency            time each touch of a page not yet resident (the\n"
	"                       faults the restore served): p50, p99, max\n"
	"  --spin-us N          the fault handler polls N us after serving before\n"
	"                       it sleeps (0: never; default: the library's)\n"
	"  -h, --help           show this help\n";

#define MAX_INSTANCES	1024
#define MAX_REPORTED	3	/* mismatches printed per instance */

static const char *cmd_name = "tierctl replay";

/*
 * Fail closed. This runs in the fault-handling thread while the replaying
 * thread is blocked in the fault that could not be served: it must never
 * go on to read a zero page, so the whole process goes, now.
 */
static void on_restore_error(struct tier_restore *rs, int err,
			     const char *msg, void *arg)
{
	char line[640];
	int n;

	n = snprintf(line, sizeof(line), "%s: %s\n", cmd_name, msg);
	if (n >= (int)sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nothing more we can do */
	}
	_exit(1);
}

/*
 * A page mapped zero-copy from a file that someone cut short under the
 * restore cannot be read: the kernel raises SIGBUS in whichever thread
 * touches it. Like a page the pool cannot serve, that stops this
 * instance, here with the restore's reason instead of a bare "Bus
 * error". One restore per process (instances are processes).
 */
static struct tier_restore *volatile bus_rs;
static char *volatile bus_base;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char line[768], why[640];
	int n;

	if (bus_rs && !tier_restore_sigbus_reason(bus_rs, si->si_addr, why,
						  sizeof(why)))
		n = snprintf(line, sizeof(line), "%s: %s\n", cmd_name, why);
	else
		n = snprintf(line, sizeof(line), "%s: SIGBUS at %p (restored range at %p): a page that cannot be read\n",
			     cmd_name, si->si_addr, (void *)bus_base);
	if (n >= (int)sizeof(line))
		n = sizeof(line) - 1;
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nothing more we can do */
	}
	_exit(1);
}

static void catch_sigbus(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* Anonymous kB of the VMAs inside [lo, hi), from /proc/self/smaps. */
static uint64_t anon_rss(uintptr_t lo, uintptr_t hi)
{
	unsigned long start, end, kb;
	char *line = NULL;
	size_t cap = 0;
	uint64_t sum = 0;
	int inside = 0;
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		/* field lines like "Anonymous:" parse one hex digit at most */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			inside = start >= lo && end <= hi;
		else if (inside && sscanf(line, "Anonymous: %lu kB", &kb) == 1)
			sum += kb * 1024;
	}
	free(line);
	fclose(f);
	return sum;
}

static void fail_result(struct replay_result *res, const char *msg)
{
	res->failed = 1;
	snprintf(res->err, sizeof(res->err), "%s", msg);
}

/* Every child blocks here until all are ready, so setups overlap. */
static void barrier(const struct replay_cfg *cfg)
{
	char c = 0;

	if (cfg->ready_fd < 0)
		return;
	if (write(cfg->ready_fd, &c, 1) < 0) {
		/* the parent is gone: the read below says so too */
	}
	close(cfg->ready_fd);
	while (read(cfg->go_fd, &c, 1) < 0 && errno == EINTR)
		;
	close(cfg->go_fd);
}

/* What the trace's writes leave in a page's first words. */
static uint64_t written_word(uint64_t page, unsigned w)
{
	return 0x7469657200000000ULL | (page << 3 | w);
}

#define WRITTEN_WORDS	8

/* where the reads go, so that the compiler keeps them */
static volatile uint64_t replay_sink;

/*
 * One trace entry, as the function did it: r reads the page (a word of
 * every cache line, as code walking it would), w writes its first words,
 * rw reads then writes. Nothing is checked here.
 */
static void touch(char *addr, const struct tier_trace_ent *e)
{
	volatile uint64_t *page = (uint64_t *)(addr + e->page * TIER_PAGE_SIZE);
	uint64_t sum = 0;

	if (e->kind & TIER_ACCESS_R) {
		for (unsigned j = 0; j < TIER_PAGE_SIZE / 8; j += 8)
			sum += page[j];
		replay_sink = sum;
	}
	if (e->kind & TIER_ACCESS_W)
		for (unsigned w = 0; w < WRITTEN_WORDS; w++)
			page[w] = written_word(e->page, w);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * --latency: before each touch, mincore() says whether the page is there
 * yet (untimed); the touches of pages that were not are the faults the
 * restore served, each timed from the thread's side, as the floor's
 * MISSING fault is. The probes lengthen the replay itself. The median
 * time between one fault's end and the next one's start says how the
 * faults arrive (back to back, or apart with the handler asleep): the
 * floor is measured with the same spacing (bench/floor --miss-gap-us).
 */
static void touch_timed(const struct replay_cfg *cfg, char *addr,
			struct fault_lat *lat)
{
	size_t cap = cfg->n ? cfg->n : 1;
	uint64_t *ns = malloc(cap * sizeof(*ns)), sum = 0;
	uint64_t *gap = malloc(cap * sizeof(*gap)), last = 0;
	size_t k = 0, g = 0;

	for (size_t i = 0; i < cfg->n; i++) {
		const struct tier_trace_ent *e = &cfg->ent[i];
		unsigned char in = 1;
		uint64_t t;

		if (ns && mincore(addr + e->page * TIER_PAGE_SIZE,
				  TIER_PAGE_SIZE, &in) < 0)
			in = 1;
		if (!ns || (in & 1)) {
			touch(addr, e);
			continue;
		}
		t = mono_ns();
		if (gap && last)
			gap[g++] = t - last;
		touch(addr, e);
		last = mono_ns();
		ns[k++] = last - t;
	}
	memset(lat, 0, sizeof(*lat));
	if (gap && g) {
		qsort(gap, g, sizeof(*gap), cmp_u64);
		lat->gap_p50_ns = gap[g / 2];
	}
	free(gap);
	if (ns && k) {
		qsort(ns, k, sizeof(*ns), cmp_u64);
		for (size_t i = 0; i < k; i++)
			sum += ns[i];
		lat->n = k;
		lat->p50_ns = ns[k / 2];
		lat->p99_ns = ns[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1];
		lat->max_ns = ns[k - 1];
		lat->mean_ns = sum / k;
	}
	free(ns);
}

/*
 * After the timed loop: a page only read must be the image's (its
 * checksum); a written one the image's bytes, themselves checked against
 * the checksum, with the loop's words over them. -EBADMSG names the page.
 */
static int verify_touched(struct tier_snap *snap, const char *addr,
			  const struct tier_trace_ent *e)
{
	const uint8_t *page = (const uint8_t *)addr + e->page * TIER_PAGE_SIZE;
	uint64_t want[TIER_PAGE_SIZE / 8];
	int rc, fd;

	if (!(e->kind & TIER_ACCESS_W))
		return tier_snap_verify_page(snap, e->page, page);
	fd = snap_image_fd(snap);
	if (fd < 0)
		return fd;
	rc = pread_full(fd, want, sizeof(want), e->page * TIER_PAGE_SIZE,
			snap->image);
	if (!rc)
		rc = tier_snap_verify_page(snap, e->page, want);
	if (rc)
		return rc;
	for (unsigned w = 0; w < WRITTEN_WORDS; w++)
		want[w] = written_word(e->page, w);
	if (memcmp(page, want, sizeof(want)))
		return tier_err(-EBADMSG, "snapshot %s: page %llu: the restored bytes differ from the image's with the trace's writes",
				tier_snap_name(snap), (unsigned long long)e->page);
	return 0;
}

static void run_instance(const struct replay_cfg *cfg, unsigned idx,
			 struct replay_result *res)
{
	uint64_t size = tier_snap_size(cfg->snap);
	struct tier_restore *rs;
	struct rusage ru0, ru1;
	char *resv, *addr;
	double t0;
	size_t i;
	int rc;

	memset(res, 0, sizeof(*res));
	res->instance = idx;

	/*
	 * PROT_NONE guard pages on both sides: the restored range's VMAs
	 * never merge with a neighbour, so smaps counts only our pages.
	 */
	resv = mmap(NULL, size + 2 * TIER_PAGE_SIZE, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (resv == MAP_FAILED) {
		tier_err(-errno, "mmap %llu bytes: %m", (unsigned long long)size);
		fail_result(res, tier_errmsg());
		return;
	}
	addr = resv + TIER_PAGE_SIZE;
	if (mmap(addr, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		 -1, 0) == MAP_FAILED) {
		tier_err(-errno, "mmap %llu bytes: %m", (unsigned long long)size);
		fail_result(res, tier_errmsg());
		goto out_unmap;
	}

	barrier(cfg);
	bus_base = addr;
	catch_sigbus();
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now_ms();
	rc = tier_restore_start(cfg->snap, addr, size, &cfg->attr, &rs);
	res->setup_ms = now_ms() - t0;
	if (rc) {
		fail_result(res, tier_errmsg());
		goto out_unmap;
	}
	bus_rs = rs;

	/* the workload alone: what a function does to its pages */
	t0 = now_ms();
	if (cfg->latency)
		touch_timed(cfg, addr, &res->lat);
	else
		for (i = 0; i < cfg->n; i++) {
			if (cfg->gap_us)
				usleep(cfg->gap_us);
			touch(addr, &cfg->ent[i]);
		}
	res->replay_ms = now_ms() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	res->minflt = ru1.ru_minflt - ru0.ru_minflt;
	res->majflt = ru1.ru_majflt - ru0.ru_majflt;

	/* then every touched page checked, all of it resident now */
	t0 = now_ms();
	for (i = 0; i < cfg->n; i++) {
		rc = verify_touched(cfg->snap, addr, &cfg->ent[i]);
		if (rc == -EBADMSG) {
			if (++res->mismatches <= MAX_REPORTED) {
				if (cfg->instances > 1)
					fprintf(stderr, "%s: instance %u: %s\n",
						cfg->cmd, idx, tier_errmsg());
				else
					fprintf(stderr, "%s: %s\n", cfg->cmd,
						tier_errmsg());
			}
		} else if (rc) {
			fail_result(res, tier_errmsg());
			break;
		} else {
			res->verified++;
		}
	}
	res->verify_ms = now_ms() - t0;

	tier_restore_stats(rs, &res->st);
	rc = tier_restore_error(rs);
	if (rc && !res->failed) {
		tier_err(rc, "restore failed: %s", strerror(-rc));
		fail_result(res, tier_errmsg());
	}
	res->anon_rss = anon_rss((uintptr_t)addr, (uintptr_t)addr + size);

	/* unmap first: the restore leaves untouched pages unserved */
	munmap(resv, size + 2 * TIER_PAGE_SIZE);
	bus_rs = NULL;
	tier_restore_stop(rs);
	return;

out_unmap:
	munmap(resv, size + 2 * TIER_PAGE_SIZE);
}

static void close_pipe(int p[2])
{
	int saved = errno;

	close(p[0]);
	close(p[1]);
	errno = saved;
}

/* Forks the instances, releases them together, collects their results. */
static int run_children(struct replay_cfg *cfg, struct replay_result *res,
			int *got)
{
	int ready[2], go[2], out[2], status, rc = 0;
	struct replay_result r;
	unsigned i, nready = 0;
	pid_t *pids;
	ssize_t n;
	char c;

	pids = calloc(cfg->instances, sizeof(*pids));
	if (!pids)
		return tier_err(-ENOMEM, "out of memory");
	if (pipe2(ready, O_CLOEXEC))
		goto err;
	if (pipe2(go, O_CLOEXEC))
		goto err_ready;
	if (pipe2(out, O_CLOEXEC))
		goto err_go;
	fflush(stdout);
	fflush(stderr);

	for (i = 0; i < cfg->instances; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			rc = tier_err(-errno, "fork: %m");
			break;
		}
		if (pids[i] == 0) {
			close(ready[0]);
			close(go[1]);
			close(out[0]);
			cfg->ready_fd = ready[1];
			cfg->go_fd = go[0];
			run_instance(cfg, i, &r);
			n = write(out[1], &r, sizeof(r));
			_exit(n == sizeof(r) && !r.failed && !r.mismatches ? 0 : 1);
		}
	}
	close(ready[1]);
	close(go[0]);
	close(out[1]);
	if (rc) {
		/* a fork failed: stop the children we did start */
		while (i-- > 0)
			kill(pids[i], SIGKILL);
	} else {
		/* every child has mapped its range; closing "go" starts them all */
		while (nready < cfg->instances &&
		       ((n = read(ready[0], &c, 1)) > 0 || (n < 0 && errno == EINTR)))
			nready += n > 0;
	}
	close(go[1]);
	close(ready[0]);

	while ((n = read(out[0], &r, sizeof(r))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof(r) || r.instance >= cfg->instances)
			break;
		res[r.instance] = r;
		got[r.instance] = 1;
	}
	close(out[0]);

	for (i = 0; i < cfg->instances; i++) {
		if (pids[i] <= 0)
			continue;
		while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
			;
		if (rc)
			continue;
		if (WIFSIGNALED(status))
			fprintf(stderr, "%s: instance %u killed by signal %d (%s)\n",
				cfg->cmd, i, WTERMSIG(status), strsignal(WTERMSIG(status)));
		/*
		 * A child that exited without a result reported its own
		 * error (the restore's on_error); it is counted as failed.
		 */
		if (!got[i] || !WIFEXITED(status) || WEXITSTATUS(status))
			if (!got[i] || !res[i].mismatches)
				res[i].failed = 1;
	}
	free(pids);
	return rc;

err_go:
	close_pipe(go);
err_ready:
	close_pipe(ready);
err:
	rc = tier_err(-errno, "pipe: %m");
	free(pids);
	return rc;
}

/* First trace name of the snapshot. */
static int first_trace(const char *name, void *arg)
{
	snprintf(arg, 64, "%s", name);
	return 1;
}

static int load_trace_file(struct tier_snap *snap, const char *path,
			   struct tier_trace_ent **ent, size_t *n)
{
	return trace_read_text(path, tier_snap_npages(snap), ent, n);
}

/*
 * The entries to replay: --trace-file parsed (not stored), else --trace,
 * else the snapshot's first trace. *name is set for the report.
 */
static int load_trace(struct replay_cfg *cfg, const char *file,
		      const char **name, char first[64],
		      struct tier_trace_ent **ent)
{
	int rc;

	if (file) {
		*name = file;
		rc = load_trace_file(cfg->snap, file, ent, &cfg->n);
	} else {
		if (!*name) {
			rc = tier_trace_foreach(cfg->snap, first_trace, first);
			if (rc < 0)
				return rc;
			if (rc == 0)
				return tier_err(-ENOENT,
						"%s: no trace to replay; add one with \"tierctl trace import\" or give --trace-file",
						tier_snap_name(cfg->snap));
			*name = first;
		}
		rc = tier_trace_load(cfg->snap, *name, ent, &cfg->n);
	}
	if (!rc)
		cfg->ent = *ent;
	return rc;
}

/* Places the policy's plan with the defaults if it is not there yet. */
static int ensure_plan(const struct replay_cfg *cfg)
{
	struct tier_place_attr pattr = {
		.cxl = cfg->attr.cxl,
		.pool = cfg->attr.pool,
	};
	struct tier_plan_info info;
	int rc;

	rc = tier_plan_info(cfg->snap, cfg->attr.policy, &info);
	if (rc != -ENOENT)
		return rc;
	fprintf(stderr, "%s: no %s plan for %s yet: placing it with defaults\n",
		cfg->cmd, tier_policy_name(cfg->attr.policy),
		tier_snap_name(cfg->snap));
	return tier_place(cfg->snap, cfg->attr.policy, &pattr);
}

/* What the options say beyond the restore itself (struct replay_cfg). */
struct replay_args {
	const char *store_path, *trace, *trace_file, *policy;
	int json;
};

/* Fills @cfg and @a from the command line; returns -1 to go on, else the
 * exit status (usage printed, or the reason). */
static int parse_args(int argc, char **argv, struct replay_cfg *cfg,
		      struct replay_args *a)
{
	static const struct option opts[] = {
		STORE_OPTION,
		{ "trace",      required_argument, NULL, 't' },
		{ "trace-file", required_argument, NULL, 'T' },
		{ "policy",     required_argument, NULL, 'p' },
		{ "instances",  required_argument, NULL, 'n' },
		{ "prefetch",   required_argument, NULL, 'P' },
		{ "cxl",        required_argument, NULL, 'c' },
		{ "pool",       required_argument, NULL, 'o' },
		{ "pool-fallback", no_argument,    NULL, 'F' },
		{ "backing",    required_argument, NULL, 'B' },
		{ "touch-gap-us", required_argument, NULL, 'G' },
		{ "json",       no_argument,       NULL, 'j' },
		{ "latency",    no_argument,       NULL, 'L' },
		{ "spin-us",    required_argument, NULL, 'S' },
		{ "help",       no_argument,       NULL, 'h' },
		{ 0 }
	};
	struct tier_uri uri;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_STORE:
			a->store_path = optarg;
			break;
		case 't':
			a->trace = optarg;
			break;
		case 'T':
			a->trace_file = optarg;
			break;
		case 'p':
			a->policy = optarg;
			break;
		case 'n':
			if (parse_uint(optarg, MAX_INSTANCES, &v) || !v)
				return cli_bad(argv[0], replay_usage,
					       "bad instance count '%s': want 1..%u",
					       optarg, MAX_INSTANCES);
			cfg->instances = v;
			break;
		case 'P':
			if (parse_uint(optarg, 1U << 20, &v))
				return cli_bad(argv[0], replay_usage,
					       "bad prefetch '%s'", optarg);
			cfg->attr.prefetch = v;
			break;
		case 'c':
			cfg->attr.cxl = optarg;
			break;
		case 'o':
			cfg->attr.pool = optarg;
			break;
		case 'F':
			cfg->attr.flags |= TIER_RESTORE_POOL_FALLBACK;
			break;
		case 'B':
			cfg->attr.backing = optarg;
			break;
		case 'G':
			if (parse_uint(optarg, 1000000, &v))
				return cli_bad(argv[0], replay_usage,
					       "bad touch gap '%s': want 0..1000000 microseconds",
					       optarg);
			cfg->gap_us = v;
			break;
		case 'j':
			a->json = 1;
			break;
		case 'L':
			cfg->latency = true;
			break;
		case 'S':
			if (parse_uint(optarg, 1000000, &v))
				return cli_bad(argv[0], replay_usage,
					       "bad spin '%s': want 0..1000000 microseconds",
					       optarg);
			if (v)
				cfg->attr.spin_us = v;
			else
				cfg->attr.flags |= TIER_RESTORE_NO_SPIN;
			break;
		case 'h':
			return cli_usage(replay_usage, 0);
		default:
			return cli_usage(replay_usage, 2);
		}
	}
	if (optind != argc - 1)
		return cli_usage(replay_usage, 2);
	if (a->trace && a->trace_file)
		return cli_bad(argv[0], replay_usage,
			       "--trace and --trace-file are exclusive");
	if (tier_policy_parse(a->policy, &cfg->attr.policy))
		return cli_bad(argv[0], replay_usage, "%s", tier_errmsg());
	if ((cfg->attr.cxl && uri_parse(cfg->attr.cxl, URI_WANT_CXL, &uri)) ||
	    (cfg->attr.pool && uri_parse(cfg->attr.pool, URI_WANT_POOL, &uri)) ||
	    (cfg->attr.backing &&
	     uri_parse(cfg->attr.backing, URI_WANT_POOL, &uri)))
		return cli_fail(argv[0]);
	if (cfg->gap_us && cfg->latency)
		return cli_bad(argv[0], replay_usage,
			       "--touch-gap-us and --latency exclude each other");
	if (cfg->attr.backing && !(cfg->attr.flags & TIER_RESTORE_POOL_FALLBACK))
		return cli_bad(argv[0], replay_usage,
			       "--backing is the copy --pool-fallback reads: give both");
	return -1;
}

/* Prints each failed instance's error once (@got: its result arrived);
 * returns how many failed. */
static unsigned report_failures(const struct replay_cfg *cfg,
				const struct replay_result *res, const int *got)
{
	unsigned i, failed = 0;

	for (i = 0; i < cfg->instances; i++) {
		if (!res[i].failed)
			continue;
		failed++;
		if (!got[i] || !res[i].err[0])
			continue;
		if (cfg->instances > 1)
			fprintf(stderr, "%s: instance %u: %s\n", cfg->cmd, i,
				res[i].err);
		else
			fprintf(stderr, "%s: %s\n", cfg->cmd, res[i].err);
	}
	return failed;
}

int cmd_replay(int argc, char **argv)
{
	struct replay_cfg cfg = { .instances = 1, .ready_fd = -1, .go_fd = -1 };
	struct replay_args a = { .policy = "tiered" };
	struct tier_trace_ent *ent = NULL;
	struct replay_result *res = NULL;
	struct tier_store *store;
	struct totals t;
	char first[64];
	int rc, *got = NULL;

	cmd_name = cfg.cmd = argv[0];
	rc = parse_args(argc, argv, &cfg, &a);
	if (rc >= 0)
		return rc;
	rc = 1;		/* until a report is printed */
	cfg.attr.on_error = on_restore_error;

	if (cli_open_snap(argv[0], a.store_path, argv[optind], &store, &cfg.snap))
		return 1;

	if (load_trace(&cfg, a.trace_file, &a.trace, first, &ent) ||
	    ensure_plan(&cfg)) {
		cli_fail(argv[0]);
		goto out;
	}

	res = calloc(cfg.instances, sizeof(*res));
	got = calloc(cfg.instances, sizeof(*got));
	if (!res || !got) {
		tier_err(-ENOMEM, "out of memory");
		cli_fail(argv[0]);
		goto out;
	}
	if (cfg.instances == 1) {
		run_instance(&cfg, 0, &res[0]);
		got[0] = 1;
	} else if (run_children(&cfg, res, got)) {
		cli_fail(argv[0]);
		goto out;
	}

	/* errors are reported once each; a failed run prints no report */
	if (report_failures(&cfg, res, got))
		goto out;

	replay_sum(res, cfg.instances, &t);
	if (a.json)
		replay_print_json(&cfg, a.trace, res, &t);
	else
		replay_print_human(&cfg, a.trace, res, &t);
	rc = t.mismatches ? 1 : 0;
out:
	free(got);
	free(res);
	free(ent);
	tier_snap_close(cfg.snap);
	tier_store_close(store);
	return rc;
}
