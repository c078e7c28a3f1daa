/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fc-harness: does to a UFFD handler what Firecracker does when it
 * restores a snapshot with "backend_type": "Uffd", syscall for syscall,
 * then plays vCPUs that touch guest pages and checks every byte they read.
 * Followed (firecracker-microvm/firecracker):
 *  - src/vmm/src/vstate/memory.rs create()/anonymous(): each region is
 *    mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_NORESERVE|MAP_PRIVATE|
 *    MAP_ANONYMOUS [|MAP_HUGETLB|MAP_HUGE_2MB], -1, 0), in guest order;
 *    the memory file offset of each is the sum of the sizes before it
 *    (persist.rs create_guest_memory), the address whatever mmap gave.
 *  - src/vmm/src/persist.rs guest_memory_from_uffd(): UffdBuilder with
 *    require_features(EVENT_REMOVE), close_on_exec, non_blocking,
 *    user_mode_only(false): userfaultfd(O_CLOEXEC|O_NONBLOCK), UFFDIO_API
 *    with UFFD_FEATURE_EVENT_REMOVE only; uffd.register() of each region:
 *    UFFDIO_REGISTER_MODE_MISSING.
 *  - persist.rs send_uffd_handshake(): serde_json::to_string of the
 *    GuestRegionUffdMapping array (fields as in v1.1.0, v1.7.0, v1.12.0),
 *    UnixStream::connect, one send_with_fd (vmm-sys-util raw_sendmsg:
 *    sendmsg(MSG_NOSIGNAL), one iovec, one SCM_RIGHTS), and the socket
 *    kept open ("forget(socket)") until the process exits.
 *  - vstate/memory.rs discard_range(): the balloon's MADV_DONTNEED.
 * --gap and --descending place the regions inside one PROT_NONE
 * reservation (MAP_FIXED, same flags) so a test can choose the layout
 * that top-down mmap gives Firecracker by chance.
 * --stats and --latency are for bench/fc-bench.py: the time from connect
 * to the last touch, and how long each first touch took, split by
 * whether its page was there before (mincore) or went to the handler.
 *
 * Exit: 0 every page read equals the image (or zero where discarded),
 * 1 a wrong page (named), 2 usage, 3 the watchdog fired (the handler is
 * dead or refused us), 4 setup failed.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB	(21 << 26)
#endif

#define PG	((uint64_t)4096)
#define MAXR	16

static const char usage[] =
	"usage: fc-harness --socket PATH --image FILE [options]\n"
	"  --version 1.1|1.7|1.12  the handshake's field set (default 1.12)\n"
	"  --region SIZE@OFFSET    a region of the memory file, in guest order\n"
	"                          (repeatable; default: the whole image)\n"
	"  --page-size 4k|2m       2m: hugetlb regions (MAP_HUGETLB|MAP_HUGE_2MB)\n"
	"  --gap BYTES             unmapped bytes between regions' addresses\n"
	"  --descending            regions at descending addresses\n"
	"  --threads N             vCPU threads touching pages (default 1)\n"
	"  --trace FILE|all        image offsets to touch, \"OFFSET r|w|rw\" per line\n"
	"                          (default all: every page, read)\n"
	"  --dontneed OFF+LEN      MADV_DONTNEED that image range halfway through\n"
	"  --timeout SECS          watchdog (default 30)\n"
	"  --json TEXT             send TEXT instead of the regions' JSON\n"
	"  --fds N                 attach N copies of the uffd (default 1)\n"
	"  --bad-fd                attach a pipe instead of the uffd\n"
	"  --shift BYTES           report every region BYTES higher than it is\n"
	"  --expect-refused        succeed when the handler closes the connection\n"
	"  --hold SECS             keep the connection this long after the run\n"
	"  --zero-copy             speak tier's zero-copy extension: ask for it,\n"
	"                          map the runs offered from the fd, answer\n"
	"  --pause FILE            halfway through, print \"paused\" and wait\n"
	"                          until FILE exists (a test acts meanwhile)\n"
	"  --stats                 print \"fc-harness: stats {JSON}\": the time from\n"
	"                          connect to the first and the last touch (the\n"
	"                          image pages the checks read faulted in first)\n"
	"  --latency               --stats, and each first touch timed: p50/p99/max\n"
	"                          of those whose page was not there (mincore);\n"
	"                          each vCPU's first touch apart (it waits for the\n"
	"                          handler's setup and prefetch)\n";

struct region {
	uint64_t size, offset;
	char *addr;
};

struct ent {
	uint64_t off;
	int kind;		/* 1 r, 2 w, 3 rw */
};

static struct region reg[MAXR];
static unsigned nreg;
static uint64_t psz = PG;
static const unsigned char *img;
static uint64_t img_size;
static struct ent *ents;
static size_t nents;
static unsigned nthreads = 1;
static uint64_t dn_off, dn_len;
static int dontneed;
static int zero_copy;
static const char *pause_file;
static int paused;
static volatile int dn_done;
static uint64_t touched, compared, zeroed;	/* atomics */
static int timeout_s = 30;
static uint64_t shift;		/* --shift: a VMM whose table is wrong */
static int stats, latency;	/* --stats, --latency */
static uint64_t t_first[64];	/* each vCPU's first touch done, ns */
static uint64_t t_last[64];	/* each vCPU's last touch done, ns */
static uint64_t *lat_ns;	/* --latency: each entry's first access */
static unsigned char *lat_fault; /* its page was not there before it */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 2, 3), noreturn))
static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fc-harness: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static uint64_t num(const char *s, const char *what)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mul = 1024 * 1024, end++;
	if (errno || end == s || *end)
		die(2, "bad %s '%s'", what, s);
	return v * mul;
}

static void *watchdog(void *arg)
{
	struct timespec ts = { .tv_sec = timeout_s };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	fprintf(stderr, "fc-harness: timeout: handler dead? (%d s; %" PRIu64
		" of %zu pages touched)\n", timeout_s,
		__atomic_load_n(&touched, __ATOMIC_RELAXED), nents);
	_exit(3);
}

static char *addr_of(uint64_t off)
{
	unsigned i;

	for (i = 0; i < nreg; i++)
		if (off >= reg[i].offset && off - reg[i].offset < reg[i].size)
			return reg[i].addr + (off - reg[i].offset);
	return NULL;
}

static int in_dontneed(uint64_t off)
{
	return dontneed && off >= dn_off && off - dn_off < dn_len;
}

/*
 * Checks the page at image offset @off as seen at @p. During a discard
 * a page there may turn to zero part-way through the read: each word is
 * the image's or zero then. After it, only zero is right there.
 */
static void check_page(uint64_t off, const unsigned char *p, int after)
{
	const unsigned char *want = img + off;
	uint64_t w, g, i;

	if (in_dontneed(off)) {
		for (i = 0; i < PG; i += 8) {
			memcpy(&g, p + i, 8);
			memcpy(&w, want + i, 8);
			if (g && (after || g != w))
				die(1, "page %" PRIu64 " (offset 0x%" PRIx64 "): word +0x%" PRIx64
				    " is 0x%016" PRIx64 ", want %s0x%016" PRIx64 " (discarded range)",
				    off / PG, off, i, g, after ? "" : "zero or ",
				    after ? (uint64_t)0 : w);
		}
		__atomic_add_fetch(&zeroed, 1, __ATOMIC_RELAXED);
	} else if (memcmp(p, want, PG)) {
		for (i = 0; i < PG && p[i] == want[i]; i++)
			;
		die(1, "page %" PRIu64 " (offset 0x%" PRIx64 "): byte +0x%" PRIx64
		    " is 0x%02x, want 0x%02x", off / PG, off, i, p[i], want[i]);
	}
	__atomic_add_fetch(&compared, 1, __ATOMIC_RELAXED);
}

/*
 * --latency: the first access to entry @i's page alone, timed; whether
 * the page was mapped before it (mincore: installed by a prefetch or a
 * window) or the access faulted to the handler. The checks come after,
 * untimed.
 */
static void timed_touch(size_t i, unsigned char *p)
{
	unsigned char vec = 0;
	uint64_t t0;

	if (mincore(p, PG, &vec) < 0)
		die(4, "mincore: %s", strerror(errno));
	t0 = now_ns();
	if (ents[i].kind & 1)
		(void)*(volatile unsigned char *)p;
	else
		__atomic_fetch_add((uint64_t *)p, 0, __ATOMIC_RELAXED);
	lat_ns[i] = now_ns() - t0;
	lat_fault[i] = !(vec & 1);
}

/* --pause: every vCPU stops before the second half of its pages until
 * the test says go (the watchdog still runs). */
static void pause_here(void)
{
	if (!__atomic_exchange_n(&paused, 1, __ATOMIC_ACQ_REL)) {
		printf("fc-harness: paused\n");
		fflush(stdout);
	}
	while (access(pause_file, F_OK) != 0)
		usleep(10000);
}

static void *vcpu(void *arg)
{
	unsigned t = (uintptr_t)arg;
	unsigned char buf[PG];
	size_t i;

	for (i = t; i < nents; i += nthreads) {
		uint64_t off = ents[i].off;
		unsigned char *p = (unsigned char *)addr_of(off);

		if (pause_file && i >= nents / 2 && i < nents / 2 + nthreads)
			pause_here();
		if (latency)
			timed_touch(i, p);

		if (ents[i].kind & 1) {
			memcpy(buf, p, PG);
			check_page(off, buf, dn_done);
		}
		if (ents[i].kind & 2) {
			/* a write that keeps the bytes: the fault says WRITE */
			__atomic_fetch_add((uint64_t *)p, 0, __ATOMIC_RELAXED);
			memcpy(buf, p, PG);
			check_page(off, buf, dn_done);
		}
		__atomic_add_fetch(&touched, 1, __ATOMIC_RELAXED);
		if (i == t)
			t_first[t] = now_ns();
	}
	t_last[t] = now_ns();
	return NULL;
}

/* The balloon: MADV_DONTNEED once half the pages were touched. */
static void *balloon(void *arg)
{
	uint64_t off = dn_off;

	while (__atomic_load_n(&touched, __ATOMIC_RELAXED) < nents / 2)
		usleep(100);
	while (off < dn_off + dn_len) {
		unsigned i;

		for (i = 0; i < nreg; i++)
			if (off >= reg[i].offset && off < reg[i].offset + reg[i].size)
				break;
		if (i == nreg)
			die(4, "--dontneed 0x%" PRIx64 " is in no region", off);
		uint64_t end = dn_off + dn_len < reg[i].offset + reg[i].size ?
			       dn_off + dn_len : reg[i].offset + reg[i].size;
		if (madvise(addr_of(off), end - off, MADV_DONTNEED) < 0)
			die(4, "madvise(MADV_DONTNEED): %s", strerror(errno));
		off = end;
	}
	return NULL;
}

static void load_trace(const char *path)
{
	char line[256], kind[8];
	unsigned long long off;
	size_t cap = 0;
	FILE *f;
	int n;

	if (!strcmp(path, "all")) {
		nents = img_size / PG;
		ents = calloc(nents, sizeof(*ents));
		if (!ents)
			die(4, "out of memory");
		for (size_t i = 0; i < nents; i++)
			ents[i] = (struct ent){ .off = i * PG, .kind = 1 };
		return;
	}
	f = fopen(path, "r");
	if (!f)
		die(4, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		kind[0] = 'r';
		kind[1] = 0;
		n = sscanf(line, "%lli %7s", (long long *)&off, kind);
		if (n < 1 || off % PG || off >= img_size)
			die(2, "%s: bad line '%s'", path, line);
		if (nents == cap) {
			cap = cap ? cap * 2 : 256;
			ents = realloc(ents, cap * sizeof(*ents));
			if (!ents)
				die(4, "out of memory");
		}
		ents[nents].off = off;
		ents[nents].kind = !strcmp(kind, "w") ? 2 : !strcmp(kind, "rw") ? 3 : 1;
		nents++;
	}
	fclose(f);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with @pct % of @v at or below it. */
static uint64_t rank(const uint64_t *v, size_t n, unsigned pct)
{
	size_t k = (n * pct + 99) / 100;

	return n ? v[k ? k - 1 : 0] : 0;
}

/*
 * --stats: one line of JSON after the run (bench/fc-bench.py reads it).
 * A vCPU's first touch waits for the session's setup and prefetch, so
 * it is reported apart (first_touch_ns: the longest of them), not in
 * the fault statistics.
 */
static void print_stats(uint64_t t_connect)
{
	uint64_t end = 0, first = UINT64_MAX, sum = 0, first_ns = 0, *f, *r;
	size_t nf = 0, nr = 0, i;
	int first_fault = 0;

	for (unsigned t = 0; t < nthreads && t < nents; t++) {
		if (t_last[t] > end)
			end = t_last[t];
		if (t_first[t] < first)
			first = t_first[t];
	}
	printf("fc-harness: stats {\"threads\": %u, \"touches\": %zu, "
	       "\"connect_to_first_touch_us\": %.1f, "
	       "\"connect_to_last_touch_us\": %.1f", nthreads, nents,
	       nents ? (first - t_connect) / 1e3 : 0.0,
	       nents ? (end - t_connect) / 1e3 : 0.0);
	if (latency) {
		f = malloc((nents + 1) * sizeof(*f));
		r = malloc((nents + 1) * sizeof(*r));
		if (!f || !r)
			die(4, "out of memory");
		for (i = 0; i < nents; i++) {
			if (i < nthreads) {
				if (lat_ns[i] > first_ns)
					first_ns = lat_ns[i];
				first_fault |= lat_fault[i];
			} else if (lat_fault[i]) {
				f[nf++] = lat_ns[i];
				sum += lat_ns[i];
			} else {
				r[nr++] = lat_ns[i];
			}
		}
		qsort(f, nf, sizeof(*f), cmp_u64);
		qsort(r, nr, sizeof(*r), cmp_u64);
		printf(", \"faulted\": %zu, \"fault_p50_ns\": %" PRIu64
		       ", \"fault_p99_ns\": %" PRIu64 ", \"fault_max_ns\": %" PRIu64
		       ", \"fault_mean_ns\": %.0f, \"resident\": %zu"
		       ", \"resident_p50_ns\": %" PRIu64 ", \"resident_max_ns\": %" PRIu64
		       ", \"first_touch_ns\": %" PRIu64 ", \"first_touch_faulted\": %s",
		       nf, rank(f, nf, 50), rank(f, nf, 99), nf ? f[nf - 1] : 0,
		       nf ? (double)sum / nf : 0.0, nr, rank(r, nr, 50),
		       nr ? r[nr - 1] : 0, first_ns, first_fault ? "true" : "false");
		free(f);
		free(r);
	}
	printf("}\n");
}

static int json_regions(char *buf, size_t len, const char *version)
{
	size_t k = 0;
	unsigned i;

	k += snprintf(buf + k, len - k, "[");
	for (i = 0; i < nreg; i++) {
		k += snprintf(buf + k, len - k,
			      "%s{\"base_host_virt_addr\":%" PRIu64 ",\"size\":%" PRIu64
			      ",\"offset\":%" PRIu64, i ? "," : "",
			      (uint64_t)(uintptr_t)reg[i].addr + shift, reg[i].size, reg[i].offset);
		if (!strcmp(version, "1.12"))
			k += snprintf(buf + k, len - k, ",\"page_size\":%" PRIu64, psz);
		if (!strcmp(version, "1.7") || !strcmp(version, "1.12"))
			k += snprintf(buf + k, len - k, ",\"page_size_kib\":%" PRIu64, psz);
		if (zero_copy && !i)
			k += snprintf(buf + k, len - k, ",\"tier_zero_copy\":1");
		k += snprintf(buf + k, len - k, "}");
	}
	k += snprintf(buf + k, len - k, "]");
	return k < len ? 0 : -1;
}

/*
 * --zero-copy: what a VMM that speaks tier's extension does before its
 * vCPUs run (tierctl-fc-handler(1), ZERO-COPY; written from the man page,
 * not from vmm/fc.h, as a VMM would be): read the one reply, map every
 * run MAP_PRIVATE|MAP_FIXED from the fd over the registered memory,
 * answer. Returns the pages mapped.
 */
static uint64_t zc_receive(int sock)
{
	struct { char magic[8]; uint32_t version, n; } h;
	struct { uint64_t addr, len, off; } *run;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c;
	uint64_t pages = 0, got;
	ssize_t r;
	int fd = -1;
	uint32_t i;

	r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_WAITALL);
	if (r != (ssize_t)sizeof(h))
		die(4, "zero-copy: reply header: %zd bytes", r);
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (memcmp(h.magic, "TIER-ZC1", 8) || le32toh(h.version) != 1)
		die(4, "zero-copy: not a version 1 reply");
	h.n = le32toh(h.n);
	if (h.n && fd < 0)
		die(4, "zero-copy: %u runs and no fd", h.n);
	run = calloc(h.n ? h.n : 1, sizeof(*run));
	if (!run)
		die(4, "out of memory");
	for (got = 0; got < h.n * sizeof(*run); got += r) {
		r = recv(sock, (char *)run + got, h.n * sizeof(*run) - got, 0);
		if (r <= 0)
			die(4, "zero-copy: runs: %s", r ? strerror(errno) : "EOF");
	}
	for (i = 0; i < h.n; i++) {
		uint64_t a = le64toh(run[i].addr), l = le64toh(run[i].len);

		if (mmap((void *)(uintptr_t)a, l, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_FIXED, fd, le64toh(run[i].off)) == MAP_FAILED)
			die(4, "zero-copy: mmap run %u: %s", i, strerror(errno));
		pages += l / PG;
	}
	if (fd >= 0)
		close(fd);
	if (send(sock, "TIER-ZOK", 8, MSG_NOSIGNAL) != 8)
		die(4, "zero-copy: answer: %s", strerror(errno));
	printf("fc-harness: zero-copy: %u runs, %" PRIu64 " pages mapped\n", h.n, pages);
	free(run);
	return pages;
}

/* Private anonymous memory this VMM holds, KiB (what zero-copy saves). */
static long rss_anon_kib(void)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	const char *sock_path = NULL, *image = NULL, *version = "1.12";
	const char *trace = "all", *json = NULL;
	int descending = 0, nfds = 1, bad_fd = 0, expect_refused = 0, hold = 0;
	uint64_t gap = 0, total = 0, t_connect;
	int have_gap = 0, flags, uffd, sock, fd, i;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	pthread_t wd, th[64], bt;
	char msg[65536];
	struct stat st;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--descending")) {
			descending = 1;
			continue;
		}
		if (!strcmp(a, "--bad-fd")) {
			bad_fd = 1;
			continue;
		}
		if (!strcmp(a, "--expect-refused")) {
			expect_refused = 1;
			continue;
		}
		if (!strcmp(a, "--zero-copy")) {
			zero_copy = 1;
			continue;
		}
		if (!strcmp(a, "--stats") || !strcmp(a, "--latency")) {
			stats = 1;
			latency |= !strcmp(a, "--latency");
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return 0;
		}
		if (!v)
			die(2, "%s needs a value\n%s", a, usage);
		i++;
		if (!strcmp(a, "--socket")) {
			sock_path = v;
		} else if (!strcmp(a, "--image")) {
			image = v;
		} else if (!strcmp(a, "--version")) {
			if (strcmp(v, "1.1") && strcmp(v, "1.7") && strcmp(v, "1.12"))
				die(2, "--version: 1.1, 1.7 or 1.12");
			version = v;
		} else if (!strcmp(a, "--region")) {
			const char *at = strchr(v, '@');
			char sz[64];

			if (!at || nreg == MAXR || (size_t)(at - v) >= sizeof(sz))
				die(2, "--region SIZE@OFFSET");
			memcpy(sz, v, at - v);
			sz[at - v] = 0;
			reg[nreg].size = num(sz, "region size");
			reg[nreg].offset = num(at + 1, "region offset");
			nreg++;
		} else if (!strcmp(a, "--page-size")) {
			psz = num(v, "page size");
			if (psz != PG && psz != 2 << 20)
				die(2, "--page-size: 4k or 2m");
		} else if (!strcmp(a, "--gap")) {
			gap = num(v, "gap");
			have_gap = 1;
		} else if (!strcmp(a, "--threads")) {
			nthreads = num(v, "threads");
			if (!nthreads || nthreads > 64)
				die(2, "--threads: 1 to 64");
		} else if (!strcmp(a, "--trace")) {
			trace = v;
		} else if (!strcmp(a, "--dontneed")) {
			const char *plus = strchr(v, '+');
			char o[64];

			if (!plus || (size_t)(plus - v) >= sizeof(o))
				die(2, "--dontneed OFF+LEN");
			memcpy(o, v, plus - v);
			o[plus - v] = 0;
			dn_off = num(o, "dontneed offset");
			dn_len = num(plus + 1, "dontneed length");
			dontneed = 1;
		} else if (!strcmp(a, "--timeout")) {
			timeout_s = num(v, "timeout");
		} else if (!strcmp(a, "--shift")) {
			shift = num(v, "shift");
		} else if (!strcmp(a, "--hold")) {
			hold = num(v, "hold");
		} else if (!strcmp(a, "--pause")) {
			pause_file = v;
		} else if (!strcmp(a, "--json")) {
			json = v;
		} else if (!strcmp(a, "--fds")) {
			nfds = num(v, "fds");
			if (nfds > 16)
				die(2, "--fds: 0 to 16");
		} else {
			die(2, "unknown option %s\n%s", a, usage);
		}
	}
	if (!sock_path || !image)
		die(2, "--socket and --image are required\n%s", usage);

	/* the image, to compare with (what the handler serves from its store) */
	fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		die(4, "%s: %s", image, strerror(errno));
	img_size = st.st_size;
	img = mmap(NULL, img_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (img == MAP_FAILED)
		die(4, "mmap %s: %s", image, strerror(errno));
	close(fd);
	if (!nreg) {
		reg[0].size = img_size;
		nreg = 1;
	}
	for (unsigned r = 0; r < nreg; r++)
		total += reg[r].size;
	if (!expect_refused)
		load_trace(trace);
	for (size_t e = 0; e < nents; e++) {
		uint64_t o = ents[e].off;
		unsigned r;

		for (r = 0; r < nreg; r++)
			if (o >= reg[r].offset && o - reg[r].offset < reg[r].size)
				break;
		if (r == nreg)
			die(2, "trace offset 0x%" PRIx64 " is in no region", o);
	}
	/*
	 * --stats: the image pages the checks will read are faulted in now,
	 * so the timed run has only the guest memory's faults (a VM has no
	 * second copy of its memory to compare with).
	 */
	for (size_t e = 0; stats && e < nents; e++)
		(void)*(volatile const unsigned char *)(img + ents[e].off);
	if (latency) {
		lat_ns = calloc(nents + 1, sizeof(*lat_ns));
		lat_fault = calloc(nents + 1, 1);
		if (!lat_ns || !lat_fault)
			die(4, "out of memory");
	}

	pthread_create(&wd, NULL, watchdog, NULL);

	/* guest memory (vstate/memory.rs) */
	flags = MAP_NORESERVE | MAP_PRIVATE | MAP_ANONYMOUS;
	if (psz != PG)
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
	if (!have_gap && !descending) {
		for (unsigned r = 0; r < nreg; r++) {
			reg[r].addr = mmap(NULL, reg[r].size, PROT_READ | PROT_WRITE,
					   flags, -1, 0);
			if (reg[r].addr == MAP_FAILED)
				die(4, "mmap region %u (%" PRIu64 " bytes): %s", r,
				    reg[r].size, strerror(errno));
		}
	} else {
		uint64_t span = total + gap * (nreg - 1) + psz, pos;
		char *base = mmap(NULL, span, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (base == MAP_FAILED)
			die(4, "mmap reservation: %s", strerror(errno));
		pos = ((uintptr_t)base + psz - 1) & ~(psz - 1);
		for (unsigned k = 0; k < nreg; k++) {
			unsigned r = descending ? nreg - 1 - k : k;

			reg[r].addr = mmap((void *)(uintptr_t)pos, reg[r].size,
					   PROT_READ | PROT_WRITE, flags | MAP_FIXED, -1, 0);
			if (reg[r].addr == MAP_FAILED)
				die(4, "mmap region %u (%" PRIu64 " bytes): %s", r,
				    reg[r].size, strerror(errno));
			pos += reg[r].size + gap;
		}
	}

	/* the uffd (persist.rs guest_memory_from_uffd) */
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		die(errno == EPERM ? 77 : 4, "userfaultfd: %s", strerror(errno));
	{
		struct uffdio_api api = { .api = UFFD_API,
					  .features = UFFD_FEATURE_EVENT_REMOVE };

		if (ioctl(uffd, UFFDIO_API, &api) < 0)
			die(4, "UFFDIO_API: %s", strerror(errno));
	}
	for (unsigned r = 0; r < nreg; r++) {
		struct uffdio_register rg = {
			.range = { .start = (uintptr_t)reg[r].addr, .len = reg[r].size },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (ioctl(uffd, UFFDIO_REGISTER, &rg) < 0)
			die(4, "UFFDIO_REGISTER region %u: %s", r, strerror(errno));
	}

	/* the handshake (persist.rs send_uffd_handshake) */
	if (json) {
		snprintf(msg, sizeof(msg), "%s", json);
	} else if (json_regions(msg, sizeof(msg), version)) {
		die(4, "JSON too long");
	}
	if (strlen(sock_path) >= sizeof(sa.sun_path))
		die(2, "socket path too long");
	strcpy(sa.sun_path, sock_path);
	t_connect = now_ns();
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(4, "connect %s: %s", sock_path, strerror(errno));
	{
		union {
			char buf[CMSG_SPACE(16 * sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { .iov_base = msg, .iov_len = strlen(msg) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		int fds[16], p[2];

		if (bad_fd) {
			if (pipe2(p, O_CLOEXEC) < 0)
				die(4, "pipe: %s", strerror(errno));
		}
		for (i = 0; i < nfds; i++)
			fds[i] = bad_fd ? p[0] : uffd;
		if (nfds) {
			struct cmsghdr *c;

			mh.msg_control = ctl.buf;
			mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
		}
		if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)iov.iov_len)
			die(4, "sendmsg: %s", strerror(errno));
	}

	if (expect_refused) {
		/* a refused handshake: the handler closes the connection */
		struct pollfd pf = { .fd = sock, .events = POLLIN | POLLRDHUP };
		char b;

		while (poll(&pf, 1, -1) < 0 && errno == EINTR)
			;
		if (recv(sock, &b, 1, 0) > 0)
			die(1, "the handler wrote to the socket");
		printf("fc-harness: v%s: refused (the handler closed the connection)\n",
		       version);
		return 0;
	}

	if (zero_copy)
		zc_receive(sock);

	/* the vCPUs */
	if (dontneed)
		pthread_create(&bt, NULL, balloon, NULL);
	for (unsigned t = 0; t < nthreads; t++)
		if (pthread_create(&th[t], NULL, vcpu, (void *)(uintptr_t)t))
			die(4, "pthread_create failed");
	for (unsigned t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	if (dontneed) {
		pthread_join(bt, NULL);
		dn_done = 1;
		/* after the discard: zero there, the image elsewhere */
		for (uint64_t o = 0; o < img_size; o += PG)
			if (addr_of(o))
				check_page(o, (unsigned char *)addr_of(o), 1);
	}

	printf("fc-harness: v%s: %u region%s%s%s, %u thread%s, %zu pages touched, %" PRIu64
	       " compared, %" PRIu64 " discarded and zero, 0 wrong\n",
	       version, nreg, nreg == 1 ? "" : "s", descending ? " descending" : "",
	       have_gap ? " with a gap" : "", nthreads, nthreads == 1 ? "" : "s", nents,
	       compared, zeroed);
	printf("fc-harness: anon %ld KiB\n", rss_anon_kib());
	if (stats)
		print_stats(t_connect);
	if (hold) {
		/* an idle VM: connected, nothing to fault (the watchdog is off) */
		fflush(stdout);
		pthread_cancel(wd);
		pthread_join(wd, NULL);	/* no thread left behind (TSan) */
		sleep(hold);
	}
	return 0;
}
