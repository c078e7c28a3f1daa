/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tier's QEMU adapter: an LD_PRELOAD object that takes over QEMU's mapping
 * of its guest-RAM file and sets the range up through the C API instead,
 * restoring (any policy) or recording a snapshot.
 *
 * QEMU maps a memory-backend-file so: a PROT_NONE anonymous reservation,
 * then mmap64(addr, size, RW, MAP_SHARED|MAP_FIXED, fd, 0) over it
 * (REFERENCE.md section 3). We recognise that call by the fd's
 * /proc/self/fd link naming TIER_QEMU_RAMFILE; every other mmap passes
 * straight through. The RAM file is an all-zero placeholder, so a correct
 * guest answer proves every page came through tier.
 *
 * Configuration (environment, set by "tierctl restore/record -- QEMU..."):
 *	TIER_QEMU_RAMFILE	path of the mem-path file to take over
 *	TIER_QEMU_SNAP		snapshot name; TIER_STORE: the store
 *	TIER_QEMU_MODE		"restore" (default) or "record"
 *	TIER_QEMU_POLICY	restore policy (default tiered)
 *	TIER_QEMU_CXL, TIER_QEMU_POOL	override the plan's tier URIs
 *	TIER_QEMU_TRACE		record: trace name (default "qemu")
 *	TIER_QEMU_CTL		a FIFO: a line "save NAME" saves a trace now
 *				(record), "stats" writes the statistics now
 *	TIER_QEMU_STATS		file to which the restore statistics are written
 *				as one JSON object when QEMU exits or on "stats"
 *	TIER_QEMU_ERRFILE	our fatal error is also written there (one
 *				line), so the driver can report why QEMU died
 *
 * This is a front end, not the library: it may print, and on a fault it
 * cannot serve it stops QEMU (fail closed: the guest never runs on a page
 * that did not come from the snapshot).
 */
/* We define both mmap and mmap64: glibc's large-file redirect would make
 * them one symbol (off_t is 64-bit on every target QEMU runs us on). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tier.h"

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);

static struct {
	pthread_mutex_t lock;
	struct tier_store *store;
	struct tier_snap *snap;
	struct tier_restore *rs;
	int record;
	void *addr;
	size_t len;
	pthread_t ctl_thread;
	int ctl_started;
	int saved;		/* a trace was saved on request */
	int stats_written;	/* statistics were written on request */
} ad = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	const char *errfile;
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	/* write(2), not stdio: we may be in the fault-handling thread while
	 * QEMU's own threads hold stdio locks. */
	if (write(STDERR_FILENO, "tier-qemu: ", 11) == 11 &&
	    write(STDERR_FILENO, buf, n) < 0)
		n = 0;
	errfile = getenv("TIER_QEMU_ERRFILE");
	if (errfile) {
		int fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0644);

		if (fd >= 0) {
			if (write(fd, buf, n) < 0)
				n = 0;
			close(fd);
		}
	}
	_exit(1);
}

static const char *env(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

static int is_ramfile(int fd)
{
	const char *want = getenv("TIER_QEMU_RAMFILE");
	char link[64], target[4096];
	struct stat a, b;
	ssize_t n;

	if (!want || fd < 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	if (!strcmp(target, want))
		return 1;
	/* the same file under another name (symlinks, relative paths) */
	return !fstat(fd, &a) && !stat(want, &b) &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/*
 * Local anonymous memory of the guest-RAM range: the sum of "Anonymous:"
 * over the VMAs inside [addr, addr + len). Pages mapped from the CXL tier
 * (MAP_PRIVATE of a shared file) are not anonymous until written; they
 * count in *@rss (all resident pages of the range), as do the page-cache
 * pages of an image mapped by vanilla.
 */
static unsigned long long range_smaps(unsigned long long *rss)
{
	unsigned long long sum = 0, kb;
	uintptr_t lo = (uintptr_t)ad.addr, hi = lo + ad.len, s, e;
	int inside = 0;
	char line[512];
	FILE *f;

	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &s, &e) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			inside = s >= lo && e <= hi;
		else if (inside && sscanf(line, "Anonymous: %llu kB", &kb) == 1)
			sum += kb * 1024;
		else if (inside && sscanf(line, "Rss: %llu kB", &kb) == 1)
			*rss += kb * 1024;
	}
	fclose(f);
	return sum;
}

static void write_stats(void)
{
	const char *path = getenv("TIER_QEMU_STATS");
	struct tier_restore_stats st;
	unsigned long long anon, rss = 0;
	char tmp[4096 + 16];
	FILE *f;

	if (!path || !ad.rs)
		return;
	tier_restore_stats(ad.rs, &st);
	anon = range_smaps(&rss);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return;
	fprintf(f, "{\"mode\": \"%s\", \"policy\": \"%s\", "
		"\"faults\": {\"zero\": %llu, \"ro\": %llu, \"rw\": %llu, \"cold\": %llu}, "
		"\"wp_faults\": %llu, \"prefetched_pages\": %llu, \"lazy_pages\": %llu, "
		"\"pool_bytes\": %llu, \"local_bytes\": %llu, \"cxl_mapped_bytes\": %llu, "
		"\"mappings\": %llu, \"setup_ns\": %llu, \"error\": %d, "
		"\"pages\": {\"zero\": %llu, \"ro\": %llu, \"rw\": %llu, \"cold\": %llu}, "
		"\"ram_bytes\": %zu, \"anon_rss_bytes\": %llu, \"rss_bytes\": %llu}\n",
		ad.record ? "record" : "restore",
		env("TIER_QEMU_POLICY", "tiered"),
		(unsigned long long)st.faults[TIER_CLASS_ZERO],
		(unsigned long long)st.faults[TIER_CLASS_RO],
		(unsigned long long)st.faults[TIER_CLASS_RW],
		(unsigned long long)st.faults[TIER_CLASS_COLD],
		(unsigned long long)st.wp_faults,
		(unsigned long long)st.prefetched_pages,
		(unsigned long long)st.lazy_pages,
		(unsigned long long)st.pool_bytes,
		(unsigned long long)st.local_bytes,
		(unsigned long long)st.cxl_mapped_bytes,
		(unsigned long long)st.mappings,
		(unsigned long long)st.setup_ns, st.error,
		(unsigned long long)st.pages[TIER_CLASS_ZERO],
		(unsigned long long)st.pages[TIER_CLASS_RO],
		(unsigned long long)st.pages[TIER_CLASS_RW],
		(unsigned long long)st.pages[TIER_CLASS_COLD],
		ad.len, anon, rss);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static void save_trace(const char *name)
{
	const char *errfile = getenv("TIER_QEMU_ERRFILE");
	int rc;

	pthread_mutex_lock(&ad.lock);
	rc = ad.rs && ad.record && !ad.saved ?
		tier_restore_save_trace(ad.rs, name) : 0;
	if (!rc)
		ad.saved = 1;
	pthread_mutex_unlock(&ad.lock);
	if (!rc)
		return;
	fprintf(stderr, "tier-qemu: save trace '%s': %s\n", name, tier_errmsg());
	/* The driver checks this file: a recording without its trace failed. */
	if (errfile) {
		FILE *f = fopen(errfile, "w");

		if (f) {
			fprintf(f, "save trace '%s': %s\n", name, tier_errmsg());
			fclose(f);
		}
	}
}

/* Record mode: "save NAME" / "stats" lines on a FIFO, so a driver can cut
 * a trace at the moment the workload answered. */
static void *ctl_main(void *arg)
{
	const char *path = arg;
	char line[256];
	FILE *f;

	for (;;) {
		f = fopen(path, "r");
		if (!f)
			return NULL;
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\r\n")] = '\0';
			if (!strncmp(line, "save ", 5))
				save_trace(line + 5);
			else if (!strcmp(line, "stats")) {
				write_stats();
				ad.stats_written = 1;
			}
		}
		fclose(f);
	}
	return NULL;
}

static void on_error(struct tier_restore *rs, int err, const char *msg,
		     void *arg)
{
	die("snapshot %s: %s; stopping QEMU (the guest must not run on memory "
	    "that did not come from the snapshot)",
	    env("TIER_QEMU_SNAP", "?"), msg);
}

/*
 * A page mapped from a CXL object that someone cut short under the
 * restore raises SIGBUS in whichever QEMU thread touches it: say which
 * page and object, as for a page the pool could not serve. Any other
 * SIGBUS is QEMU's (its handler, chained, or the default death).
 */
static struct sigaction old_bus;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char why[640];

	if (ad.rs && !tier_restore_sigbus_reason(ad.rs, si->si_addr, why,
						 sizeof(why)))
		die("%s; stopping QEMU", why);
	if (old_bus.sa_flags & SA_SIGINFO) {
		old_bus.sa_sigaction(sig, si, uc);
	} else if (old_bus.sa_handler != SIG_DFL &&
		   old_bus.sa_handler != SIG_IGN) {
		old_bus.sa_handler(sig);
	} else {
		/* the access faults again on return, then to the default */
		signal(SIGBUS, SIG_DFL);
	}
}

static void catch_sigbus(void)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus,
				.sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old_bus);
}

static void __attribute__((destructor)) adapter_fini(void)
{
	if (!ad.rs)
		return;
	/* What was asked for at the answer wins over what exit would see. */
	if (ad.record)
		save_trace(env("TIER_QEMU_TRACE", "qemu"));
	if (!ad.stats_written)
		write_stats();
	/* The handler thread must not outlive the mappings QEMU tears down,
	 * but stopping it while vCPUs may still fault would hang them: QEMU
	 * has already stopped its vCPUs when exit handlers run. */
	tier_restore_stop(ad.rs);
	ad.rs = NULL;
}

static void take_over(void *addr, size_t len)
{
	struct tier_restore_attr attr = { 0 };
	const char *snapname = getenv("TIER_QEMU_SNAP");
	const char *ctl;
	int rc;

	if (!snapname)
		die("TIER_QEMU_SNAP is not set");
	ad.record = !strcmp(env("TIER_QEMU_MODE", "restore"), "record");

	/* the pool settings tierctl takes from its environment (the
	 * timeout is checked there; here a bad one keeps the default) */
	rc = tier_set_pool_opts(&(struct tier_pool_opts){
		.timeout_ms = (unsigned)strtoul(env("TIER_POOL_TIMEOUT_MS", "0"), NULL, 10),
		.rdma_src = getenv("TIER_POOL_RDMA_SRC") });
	if (rc)
		die("%s", tier_errmsg());
	rc = tier_store_open(getenv("TIER_STORE"), &ad.store);
	if (!rc)
		rc = tier_snap_open(ad.store, snapname, &ad.snap);
	if (rc)
		die("%s", tier_errmsg());
	if (tier_snap_size(ad.snap) < len)
		die("snapshot %s: %llu bytes, but QEMU maps %zu bytes of RAM",
		    snapname, (unsigned long long)tier_snap_size(ad.snap), len);

	if (ad.record) {
		attr.flags |= TIER_RESTORE_RECORD;
	} else {
		rc = tier_policy_parse(env("TIER_QEMU_POLICY", "tiered"),
				       &attr.policy);
		if (rc)
			die("%s", tier_errmsg());
		attr.cxl = getenv("TIER_QEMU_CXL");
		attr.pool = getenv("TIER_QEMU_POOL");
	}
	attr.on_error = on_error;

	rc = tier_restore_start(ad.snap, addr, len, &attr, &ad.rs);
	if (rc)
		die("restore %s: %s", snapname, tier_errmsg());
	ad.addr = addr;
	ad.len = len;
	catch_sigbus();

	ctl = getenv("TIER_QEMU_CTL");
	if (ctl &&
	    !pthread_create(&ad.ctl_thread, NULL, ctl_main, (void *)ctl)) {
		pthread_detach(ad.ctl_thread);
		ad.ctl_started = 1;
	}
}

static void *adapter_mmap(mmap_fn real, void *addr, size_t len, int prot,
			  int flags, int fd, off_t off)
{
	if (ad.rs || !(flags & MAP_SHARED) || !(flags & MAP_FIXED) ||
	    off != 0 || !is_ramfile(fd))
		return real(addr, len, prot, flags, fd, off);
	take_over(addr, len);
	return addr;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static mmap_fn real;

	if (!real)
		real = (mmap_fn)dlsym(RTLD_NEXT, "mmap64");
	return adapter_mmap(real, addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static mmap_fn real;

	if (!real)
		real = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
	return adapter_mmap(real, addr, len, prot, flags, fd, off);
}
