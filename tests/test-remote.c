/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: root -- the remote restore (store/restore-remote.c): the regions
 * of a "VMM" (anonymous memory of this process, registered MISSING by a
 * uffd it opened, as Firecracker does) served from a snapshot's plan by
 * copy, zero-page and wake only. Every policy, regions with a gap and in
 * descending order, every byte compared with the image, hot pages
 * installed before the first fault, MADV_DONTNEED (unregistered, or kept
 * and served zero), a corrupt pool page failing closed by name, record
 * mode with write-protect added, 2 MiB hugetlb regions where the machine
 * has huge pages. The protocol over the socket is tests/fc-*.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "t.h"
#include "store/remote.h"
#include "store/snap.h"
#include "store/uffd.h"

#define PG	4096
#define NP	2048			/* 8 MiB image */
#define HALF	(NP / 2 * PG)
#define HUGE	(2 << 20)

static char dir[] = "/tmp/tier-test-remote.XXXXXX";
static uint8_t *image;
static const char *tierctl;

static bool page_zero(uint64_t p)
{
	return p % 7 == 3 || (p >= 1100 && p < 1400) || p == 0;
}

static void make_image(const char *path, const char *trace)
{
	FILE *f = fopen(trace, "w");
	uint64_t p;
	int fd;

	t_assert(f);
	image = calloc(NP, PG);
	t_assert(image);
	for (p = 0; p < NP; p++) {
		if (page_zero(p))
			continue;
		t_fill_page(image + p * PG, p * 0x9e3779b97f4a7c15ULL + 1);
	}
	/* the trained run: reads a scattered hot set, writes a few pages */
	for (p = 1; p < NP; p += 5)
		if (!page_zero(p))
			fprintf(f, "%#lx %s\n", (unsigned long)(p * PG),
				p % 3 ? "r" : (p % 2 ? "w" : "rw"));
	t_assert(fclose(f) == 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	t_assert(fd >= 0);
	t_assert(write(fd, image, NP * PG) == NP * PG);
	close(fd);
}

/* The VMM's side: regions mapped anonymous, one uffd registered over
 * them. @hi first: region 0 (image [0, HALF)) above region 1. */
struct vmm {
	uint8_t *mem;			/* both regions and the gap */
	struct remote_region r[2];
	int uffd;
	size_t psz;
};

static int vmm_map(struct vmm *v, size_t psz)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	size_t gap = psz == HUGE ? HUGE : 16 * PG;

	if (psz == HUGE)
		flags |= MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
	v->psz = psz;
	v->mem = mmap(NULL, 2 * HALF + gap, PROT_READ | PROT_WRITE, flags,
		      -1, 0);
	if (v->mem == MAP_FAILED)
		return -errno;
	/* descending: the first region the VMM lists is the higher one */
	v->r[0] = (struct remote_region){ .base = (uintptr_t)v->mem + HALF + gap,
		.size = HALF, .offset = 0, .page_size = psz };
	v->r[1] = (struct remote_region){ .base = (uintptr_t)v->mem,
		.size = HALF, .offset = HALF, .page_size = psz };
	munmap(v->mem + HALF, gap);
	t_ok(uffd_open(UFFD_F_NONBLOCK, &v->uffd));
	t_ok(uffd_register(v->uffd, (void *)v->r[0].base, HALF,
			   UFFD_REG_MISSING));
	t_ok(uffd_register(v->uffd, (void *)v->r[1].base, HALF,
			   UFFD_REG_MISSING));
	return 0;
}

static void vmm_unmap(struct vmm *v)
{
	close(v->uffd);
	munmap((void *)v->r[0].base, HALF);
	munmap((void *)v->r[1].base, HALF);
}

static uint8_t *at(struct vmm *v, uint64_t p)
{
	return p < NP / 2 ? (uint8_t *)v->r[0].base + p * PG :
			    (uint8_t *)v->r[1].base + (p - NP / 2) * PG;
}

/* The handler: a thread serving the remote until told to stop. */
struct handler {
	struct remote *rm;
	int uffd;
	atomic_bool stop;
	int rc;
	pthread_t t;
};

static void *handle(void *arg)
{
	struct handler *h = arg;
	struct pollfd pfd = { .fd = h->uffd, .events = POLLIN };

	while (!atomic_load(&h->stop)) {
		if (poll(&pfd, 1, 20) <= 0)
			continue;
		h->rc = remote_handle(h->rm);
		if (h->rc < 0)
			break;
	}
	return NULL;
}

static void start(struct handler *h, struct remote *rm, int uffd)
{
	h->rm = rm;
	h->uffd = uffd;
	atomic_store(&h->stop, false);
	h->rc = 0;
	t_assert(pthread_create(&h->t, NULL, handle, h) == 0);
}

static void finish(struct handler *h)
{
	atomic_store(&h->stop, true);
	pthread_join(h->t, NULL);
	t_assert(h->rc >= 0);
}

static void touch_all(struct vmm *v, uint64_t from, uint64_t to)
{
	uint64_t p;

	for (p = from; p < to; p++)
		if (memcmp(at(v, p), image + p * PG, PG)) {
			fprintf(stderr, "page %lu differs from the image\n",
				(unsigned long)p);
			exit(T_FAIL);
		}
}

static void serve_policy(struct tier_snap *snap, enum tier_policy pol,
			 const char *name)
{
	struct remote_attr attr = { .policy = pol };
	struct tier_restore_stats st;
	struct handler h;
	struct remote *rm;
	struct vmm v;
	uint64_t p;

	t_ok(vmm_map(&v, PG));
	t_ok(remote_open(snap, v.uffd, v.r, 2, &attr, &rm));
	t_ok(remote_prefetch(rm));
	remote_stats(rm, &st);
	/* the hot set is in before anything faulted */
	t_eq(st.lazy_pages, 0);
	if (pol == TIER_POLICY_EAGER)
		t_eq(st.prefetched_pages, NP - st.pages[TIER_CLASS_ZERO]);
	if (pol == TIER_POLICY_TIERED || pol == TIER_POLICY_REAP)
		t_assert(st.prefetched_pages > 0);
	start(&h, rm, v.uffd);
	touch_all(&v, 0, NP);
	finish(&h);
	remote_stats(rm, &st);
	t_eq(st.error, 0);
	printf("%-8s prefetched %lu lazy %lu faults %lu/%lu/%lu/%lu\n", name,
	       (unsigned long)st.prefetched_pages, (unsigned long)st.lazy_pages,
	       (unsigned long)st.faults[0], (unsigned long)st.faults[1],
	       (unsigned long)st.faults[2], (unsigned long)st.faults[3]);
	if (pol == TIER_POLICY_EAGER)
		t_eq(st.faults[TIER_CLASS_RO] + st.faults[TIER_CLASS_RW] +
		     st.faults[TIER_CLASS_COLD], 0);

	/* a balloon: DONTNEED leaves the range, which now reads zero (the
	 * madvise waits for the handler to read the REMOVE) */
	start(&h, rm, v.uffd);
	t_assert(madvise(at(&v, 10), 64 * PG, MADV_DONTNEED) == 0);
	for (p = 10; p < 74; p++)
		t_assert(at(&v, p)[PG - 1] == 0 && at(&v, p)[0] == 0);
	touch_all(&v, 74, NP);
	finish(&h);
	remote_close(rm);
	vmm_unmap(&v);
}

/* DONTNEED with the range kept registered: zero pages from the handler,
 * also for pages it had not served yet (never the image's bytes). */
static void keep_removed(struct tier_snap *snap)
{
	struct remote_attr attr = { .flags = REMOTE_KEEP_REMOVED };
	struct handler h;
	struct remote *rm;
	struct vmm v;
	uint64_t p;

	t_ok(vmm_map(&v, PG));
	t_ok(remote_open(snap, v.uffd, v.r, 2, &attr, &rm));
	t_ok(remote_prefetch(rm));
	start(&h, rm, v.uffd);
	t_assert(madvise(at(&v, 1500), 100 * PG, MADV_DONTNEED) == 0);
	for (p = 1500; p < 1600; p++)
		t_assert(at(&v, p)[0] == 0 && at(&v, p)[PG - 8] == 0);
	touch_all(&v, 0, 1500);
	touch_all(&v, 1600, NP);
	finish(&h);
	remote_close(rm);
	vmm_unmap(&v);
}

static void bad_regions(struct tier_snap *snap)
{
	struct remote_region r = { .base = 0x7f0000000000, .size = HALF,
				   .offset = NP * PG - PG, .page_size = PG };
	struct remote *rm = NULL;

	t_fails(remote_open(snap, 3, &r, 1, NULL, &rm), -EINVAL);
	t_assert(strstr(tier_errmsg(), "region 0") &&
		 strstr(tier_errmsg(), "past the end"));
	r.offset = 0;
	r.page_size = 8192;
	t_fails(remote_open(snap, 3, &r, 1, NULL, &rm), -EINVAL);
	t_assert(strstr(tier_errmsg(), "page size 8192"));
	r.page_size = HUGE;
	r.base += PG;
	t_fails(remote_open(snap, 3, &r, 1, NULL, &rm), -EINVAL);
	t_assert(strstr(tier_errmsg(), "multiples of its page size"));
	t_assert(rm == NULL);
}

/* A corrupt pool page among the hot ones: the prefetch fails naming it,
 * and nothing more is served. */
static void corrupt(struct tier_snap *snap, const char *seg)
{
	struct remote *rm;
	struct vmm v;
	char c, x = 'X';
	int fd = open(seg, O_RDWR);

	t_assert(fd >= 0);
	t_assert(pread(fd, &c, 1, 100) == 1);
	t_assert(pwrite(fd, &x, 1, 100) == 1);
	t_ok(vmm_map(&v, PG));
	t_ok(remote_open(snap, v.uffd, v.r, 2, NULL, &rm));
	t_fails(remote_prefetch(rm), -EBADMSG);
	t_assert(strstr(tier_errmsg(), "checksum mismatch"));
	t_eq(remote_error(rm), -EBADMSG);
	t_assert(strstr(remote_errmsg(rm), "from the pool"));
	remote_close(rm);
	vmm_unmap(&v);
	t_assert(pwrite(fd, &c, 1, 100) == 1);
	close(fd);
}

/* Record: write-protect added to the VMM's MISSING registration, so a
 * read then a write is RW, as in-process. */
static void record(struct tier_snap *snap)
{
	struct remote_attr attr = { .flags = REMOTE_RECORD };
	char path[512], line[256];
	struct handler h;
	struct remote *rm;
	struct vmm v;
	unsigned r = 0, w = 0, rw = 0;
	volatile uint8_t c;
	FILE *f;

	t_ok(vmm_map(&v, PG));
	t_ok(remote_open(snap, v.uffd, v.r, 2, &attr, &rm));
	t_assert(remote_record_wp(rm));
	t_ok(remote_prefetch(rm));
	start(&h, rm, v.uffd);
	c = at(&v, 5)[0];		/* r */
	at(&v, 1700)[8] = 1;		/* w */
	c = at(&v, 20)[0];		/* rw */
	at(&v, 20)[0] = c;
	(void)c;
	t_assert(at(&v, 1700)[8] == 1);
	t_assert(memcmp(at(&v, 5), image + 5 * PG, PG) == 0);
	finish(&h);
	t_ok(remote_save_trace(rm, "fc"));
	remote_close(rm);
	vmm_unmap(&v);
	snprintf(path, sizeof(path), "%s trace export --store %s/store snap fc",
		 tierctl, dir);
	f = popen(path, "r");
	t_assert(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long off;
		char kind[8];

		if (sscanf(line, "%lx %7s", &off, kind) != 2)
			continue;
		if (off == 5 * PG && !strcmp(kind, "r"))
			r++;
		if (off == 1700UL * PG && !strcmp(kind, "w"))
			w++;
		if (off == 20 * PG && !strcmp(kind, "rw"))
			rw++;
	}
	t_assert(pclose(f) == 0);
	t_eq(r + w + rw, 3);
}

static void huge(struct tier_snap *snap)
{
	struct tier_restore_stats st;
	struct handler h;
	struct remote *rm;
	struct vmm v;
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");
	long have = 0, have_before;

	if (f && fscanf(f, "%ld", &have) != 1)
		have = 0;
	if (f)
		fclose(f);
	have_before = have;
	if (have < 16 && (f = fopen("/proc/sys/vm/nr_hugepages", "w"))) {
		fprintf(f, "16\n");
		fclose(f);
		f = fopen("/proc/sys/vm/nr_hugepages", "r");
		if (!f || fscanf(f, "%ld", &have) != 1)
			have = 0;
		if (f)
			fclose(f);
	}
	/* both regions and the gap, from the pool: NORESERVE would not
	 * fail the mmap, only the first install */
	if (have < 9 || vmm_map(&v, HUGE)) {
		printf("huge: no 2 MiB huge pages here, not tested\n");
		return;
	}
	t_ok(remote_open(snap, v.uffd, v.r, 2, NULL, &rm));
	t_ok(remote_prefetch(rm));
	remote_stats(rm, &st);
	t_assert(st.prefetched_pages % 512 == 0 && st.prefetched_pages > 0);
	start(&h, rm, v.uffd);
	touch_all(&v, 0, NP);
	t_assert(madvise(at(&v, 0), HUGE, MADV_DONTNEED) == 0);
	t_assert(at(&v, 300)[5] == 0);
	touch_all(&v, 512, NP);	/* the rest as it was */
	t_assert(at(&v, 1)[0] == 0);
	finish(&h);
	remote_stats(rm, &st);
	t_eq(st.error, 0);
	printf("huge     prefetched %lu lazy %lu\n",
	       (unsigned long)st.prefetched_pages, (unsigned long)st.lazy_pages);
	remote_close(rm);
	vmm_unmap(&v);
	if (have_before < 16 && (f = fopen("/proc/sys/vm/nr_hugepages", "w"))) {
		fprintf(f, "%ld\n", have_before);	/* as it was */
		fclose(f);
	}
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	static const struct { enum tier_policy p; const char *name; } pol[] = {
		{ TIER_POLICY_TIERED, "tiered" }, { TIER_POLICY_VANILLA, "vanilla" },
		{ TIER_POLICY_REAP, "reap" }, { TIER_POLICY_FAASNAP, "faasnap" },
		{ TIER_POLICY_AQUIFER, "aquifer" }, { TIER_POLICY_EAGER, "eager" },
	};
	char img[512], trace[512], seg[600], store_path[512];
	struct tier_store *store;
	struct tier_snap *snap;
	size_t i;
	int fd, rc;

	tierctl = getenv("TIERCTL");
	if (!tierctl)
		t_skip("set TIERCTL to the tierctl binary");
	rc = uffd_open(0, &fd);
	if (rc == -EPERM || rc == -EACCES)
		t_skip("userfaultfd not permitted: run as root");
	if (rc)
		t_skip("no userfaultfd: %s", tier_errmsg());
	close(fd);
	t_assert(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/image", dir);
	snprintf(trace, sizeof(trace), "%s/trained.trace", dir);
	make_image(img, trace);
	t_sh("%s import --quiet --store %s/store snap %s", tierctl, dir, img);
	t_sh("%s trace import --store %s/store --name trained snap %s >/dev/null",
	   tierctl, dir, trace);
	for (i = 0; i < sizeof(pol) / sizeof(pol[0]); i++)
		t_sh("%s place --store %s/store --policy %s --trace trained "
		   "--cxl cxl=dir:%s/cxl snap >/dev/null", tierctl, dir,
		   pol[i].name, dir);
	snprintf(store_path, sizeof(store_path), "%s/store", dir);
	t_ok(tier_store_open(store_path, &store));
	t_ok(tier_snap_open(store, "snap", &snap));

	for (i = 0; i < sizeof(pol) / sizeof(pol[0]); i++)
		serve_policy(snap, pol[i].p, pol[i].name);
	keep_removed(snap);
	bad_regions(snap);
	{
		struct plan plan;
		char name[128];

		t_ok(plan_load(snap, TIER_POLICY_TIERED, &plan));
		snap_object_name(snap, TIER_POLICY_TIERED, plan.hdr.generation,
				 name, sizeof(name));
		plan_free(&plan);
		snprintf(seg, sizeof(seg), "%s/store/pool/%s.seg", dir, name);
	}
	if (access(seg, F_OK) == 0)
		corrupt(snap, seg);
	else
		t_assert(!"no pool segment where the test expects it");
	record(snap);
	huge(snap);

	tier_snap_close(snap);
	tier_store_close(store);
	t_sh("rm -rf %s", dir);
	return T_PASS;
}
