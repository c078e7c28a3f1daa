/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tier-gen: a synthetic guest memory image and the traces of runs over it.
 *
 * The shape follows what a real guest looks like (REFERENCE.md section 2):
 * most pages are zero, the non-zero ones come in clustered runs of varied
 * length, and a function touches a small, scattered subset of them in runs
 * of 1-3 pages, mostly read, a few written (most of those read first). The
 * second trace is the same function run again with a few pages different,
 * which is what merge, confidence and misprediction counting need.
 *
 * Everything derives from --seed: the same options give the same bytes.
 * Run by bench/run.py and tests/bench-smoke.sh.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/size.h"

#define PAGE		((uint64_t)4096)
#define CHUNK_PAGES	256

enum pclass { P_ZERO, P_COLD, P_RO, P_RW };
enum kind { K_R = 1, K_W = 2, K_RW = 3 };

struct run {
	uint64_t start;
	uint32_t len;
	uint8_t kind[3];	/* enum kind per page; --runs caps len at 3 */
};

struct opts {
	uint64_t size;
	double zero, ro, rw, rw_read, diff, cold_touch, flip;
	uint64_t seed;
	unsigned rmin, rmax;
	const char *image, *trace, *trace2;
};

static uint64_t rng_s[4];

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static inline uint64_t xs_next(uint64_t *s)
{
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static void xs_seed(uint64_t *s, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		s[i] = splitmix(&seed);
}

static uint64_t rnd(void)
{
	return xs_next(rng_s);
}

/* Uniform in [0, n). */
static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static double rnd_unit(void)
{
	return (rnd() >> 11) * (1.0 / 9007199254740992.0);
}

/* Geometric run length >= 1 with mean @mean. */
static uint64_t rnd_geom(double mean)
{
	double u;

	if (mean <= 1.0)
		return 1;
	do
		u = rnd_unit();
	while (u <= 0.0);
	return 1 + (uint64_t)floor(log(u) / log(1.0 - 1.0 / mean));
}

static int parse_pct(const char *s, double *ret)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || (*end && strcmp(end, "%")) || v < 0 || v > 100)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* ------------------------------------------------------------ contents */

/*
 * Page contents by kind of region, each seeded by (seed, page) so a page's
 * bytes do not depend on generation order and no two pages are equal.
 */
enum content { C_RANDOM, C_TEXT, C_INTS, C_PTRS, C_SPARSE, C_MAX };

static const char *const words[] = {
	"the", "of", "and", "kernel", "page", "memory", "function", "return",
	"static", "int", "struct", "void", "const", "char", "request", "handler",
	"GET", "/index.html", "HTTP/1.1", "200", "OK", "Content-Length:", "json",
	"{\"id\":", "\"name\":", "null", "true", "false", "lib", "usr", "bin",
	"python3", "node_modules", "require", "import", "0x0", "error", "ok",
};

static void fill_page(uint8_t *p, enum content c, uint64_t seed, uint64_t pg)
{
	uint64_t s[4], x = seed ^ (pg * 0xd1b54a32d192ed03ULL);
	uint64_t *q = (uint64_t *)p;
	size_t i, n;

	xs_seed(s, x);
	switch (c) {
	case C_RANDOM:
		for (i = 0; i < PAGE / 8; i++)
			q[i] = xs_next(s);
		break;
	case C_TEXT:
		for (i = 0; i < PAGE;) {
			const char *w = words[xs_next(s) % (sizeof(words) /
							     sizeof(words[0]))];
			size_t l = strlen(w);

			if (i + l + 1 > PAGE)
				l = PAGE - i - 1;
			memcpy(p + i, w, l);
			i += l;
			p[i++] = (xs_next(s) & 15) ? ' ' : '\n';
		}
		break;
	case C_INTS: {
		uint32_t *d = (uint32_t *)p;

		for (i = 0; i < PAGE / 4; i++)
			d[i] = (uint32_t)(xs_next(s) % 64);
		break;
	}
	case C_PTRS: {
		uint64_t base = 0xffff888000000000ULL + ((x & 0xffff) << 20);

		for (i = 0; i < PAGE / 8; i++) {
			uint64_t r = xs_next(s);

			q[i] = (r & 3) ? base + ((r >> 8) & 0xffff8) : r >> 48;
		}
		break;
	}
	case C_SPARSE:
		memset(p, 0, PAGE);
		n = 1 + xs_next(s) % 24;
		for (i = 0; i < n; i++)
			q[xs_next(s) % (PAGE / 8)] = xs_next(s) | 1;
		break;
	default:
		break;
	}
	/* Stamp the page index so even a degenerate pattern stays unique. */
	q[PAGE / 8 - 1] ^= pg + 1;
}

static int write_image(const struct opts *o, const uint8_t *cls,
		       const uint8_t *content, uint64_t npages)
{
	uint8_t *buf;
	uint64_t pg = 0;
	int fd, rc = 0;

	fd = open(o->image, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "tier-gen: %s: %s\n", o->image, strerror(errno));
		return -errno;
	}
	buf = aligned_alloc(PAGE, CHUNK_PAGES * PAGE);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	if (ftruncate(fd, (off_t)(npages * PAGE)) < 0) {
		rc = -errno;
		goto out;
	}
	while (pg < npages) {
		uint64_t n = 0;

		if (cls[pg] == P_ZERO) {
			pg++;
			continue;
		}
		while (pg + n < npages && cls[pg + n] != P_ZERO &&
		       n < CHUNK_PAGES) {
			fill_page(buf + n * PAGE, content[pg + n], o->seed,
				  pg + n);
			n++;
		}
		size_t want = n * PAGE, done = 0;

		while (done < want) {
			ssize_t w = pwrite(fd, buf + done, want - done,
					   (off_t)(pg * PAGE + done));

			if (w < 0) {
				if (errno == EINTR)
					continue;
				rc = -errno;
				goto out;
			}
			done += (size_t)w;
		}
		pg += n;
	}
out:
	if (rc)
		fprintf(stderr, "tier-gen: %s: %s\n", o->image, strerror(-rc));
	free(buf);
	if (close(fd) < 0 && !rc)
		rc = -errno;
	return rc;
}

/* -------------------------------------------------------------- traces */

struct runs {
	struct run *v;
	size_t n, cap;
};

static int runs_push(struct runs *r, struct run x)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 1024;
		struct run *v = realloc(r->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = x;
	return 0;
}

static void runs_shuffle(struct runs *r)
{
	for (size_t i = r->n; i > 1; i--) {
		size_t j = rnd_below(i);
		struct run t = r->v[i - 1];

		r->v[i - 1] = r->v[j];
		r->v[j] = t;
	}
}

static const char *kind_name(int k)
{
	return k == K_R ? "r" : k == K_W ? "w" : "rw";
}

static int write_trace(const char *path, const struct runs *r,
		       const struct opts *o, const char *what)
{
	FILE *f = fopen(path, "w");
	uint64_t pages = 0;

	if (!f) {
		fprintf(stderr, "tier-gen: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < r->n; i++)
		pages += r->v[i].len;
	fprintf(f, "# tier trace: OFFSET KIND per line, first-touch order\n"
		"# tier-gen %s: size=%" PRIu64 " seed=%" PRIu64
		" zero=%g ro=%g rw=%g pages=%" PRIu64 "\n",
		what, o->size, o->seed, o->zero, o->ro, o->rw, pages);
	for (size_t i = 0; i < r->n; i++)
		for (uint32_t k = 0; k < r->v[i].len; k++)
			fprintf(f, "0x%" PRIx64 " %s\n",
				(r->v[i].start + k) * PAGE,
				kind_name(r->v[i].kind[k]));
	if (fclose(f) == EOF) {
		fprintf(stderr, "tier-gen: %s: %s\n", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

/*
 * Picks scattered runs of rmin..rmax pages among pages of class @from,
 * turning them into @to, until @want pages were picked. @nz lists the
 * candidate pages (the non-zero ones) in address order.
 */
static int pick_runs(const struct opts *o, uint8_t *cls, const uint64_t *nz,
		     uint64_t nnz, uint8_t from, uint8_t to, uint64_t want,
		     struct runs *out, double p_r)
{
	uint64_t got = 0, tries = 0;

	while (got < want) {
		uint64_t i = rnd_below(nnz);
		uint32_t len = o->rmin + (uint32_t)rnd_below(o->rmax - o->rmin + 1);
		struct run r = { .start = nz[i] };

		if (++tries > 64 * want + 1000000) {
			fprintf(stderr, "tier-gen: not enough pages to pick "
				"%" PRIu64 " hot pages from\n", want);
			return -ENOSPC;
		}
		if (len > want - got)
			len = (uint32_t)(want - got);
		/* A run stays inside one cluster of non-zero pages. */
		while (r.len < len && i + r.len < nnz &&
		       nz[i + r.len] == r.start + r.len &&
		       cls[r.start + r.len] == from) {
			uint8_t k;

			if (to == P_RO)
				k = K_R;
			else if (to == P_RW)
				k = rnd_unit() * 100.0 < o->rw_read ? K_RW : K_W;
			else
				k = rnd_unit() < p_r ? K_R : K_RW;
			if (r.len < 3)
				r.kind[r.len] = k;
			cls[r.start + r.len] = to;
			r.len++;
		}
		if (!r.len)
			continue;
		got += r.len;
		if (out && runs_push(out, r))
			return -ENOMEM;
	}
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: tier-gen [OPTIONS]\n"
	      "  --size SIZE        image size, K/M/G suffix (default 1G)\n"
	      "  --zero PCT         all-zero pages (default 82)\n"
	      "  --ro PCT           read-only hot pages (default 5)\n"
	      "  --rw PCT           written hot pages (default 1)\n"
	      "  --rw-read PCT      of written pages, share read first (default 80)\n"
	      "  --runs MIN-MAX     hot run length in pages (default 1-3)\n"
	      "  --seed N           (default 1)\n"
	      "  --image FILE       write the image (sparse)\n"
	      "  --trace FILE       write the trained trace\n"
	      "  --trace2 FILE      write a second run's trace\n"
	      "  --diff PCT         pages of trace2 that differ (default 2)\n"
	      "  --cold-touch PCT   extra cold pages touched in trace2, as % of\n"
	      "                     the trained trace's pages (default 0)\n"
	      "  --flip PCT         read-only pages trace2 writes (default 0.5)\n"
	      "Prints a JSON summary of the page classes on stdout.\n", f);
}

/* Fills @o from the command line; returns -1 to go on, else the exit
 * status (usage or the reason printed). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, 's' },
		{ "zero", required_argument, NULL, 'z' },
		{ "ro", required_argument, NULL, 'o' },
		{ "rw", required_argument, NULL, 'w' },
		{ "rw-read", required_argument, NULL, 'R' },
		{ "runs", required_argument, NULL, 'u' },
		{ "seed", required_argument, NULL, 'S' },
		{ "image", required_argument, NULL, 'i' },
		{ "trace", required_argument, NULL, 't' },
		{ "trace2", required_argument, NULL, 'T' },
		{ "diff", required_argument, NULL, 'd' },
		{ "cold-touch", required_argument, NULL, 'c' },
		{ "flip", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		int bad = 0;
		char *end;

		switch (c) {
		case 's': bad = parse_size(optarg, &o->size); break;
		case 'z': bad = parse_pct(optarg, &o->zero); break;
		case 'o': bad = parse_pct(optarg, &o->ro); break;
		case 'w': bad = parse_pct(optarg, &o->rw); break;
		case 'R': bad = parse_pct(optarg, &o->rw_read); break;
		case 'd': bad = parse_pct(optarg, &o->diff); break;
		case 'c': bad = parse_pct(optarg, &o->cold_touch); break;
		case 'f': bad = parse_pct(optarg, &o->flip); break;
		case 'S':
			errno = 0;
			o->seed = strtoull(optarg, &end, 0);
			bad = errno || *end || end == optarg;
			break;
		case 'u':
			if (sscanf(optarg, "%u-%u", &o->rmin, &o->rmax) != 2) {
				bad = sscanf(optarg, "%u", &o->rmin) != 1;
				o->rmax = o->rmin;
			}
			bad = bad || !o->rmin || o->rmax < o->rmin || o->rmax > 3;
			break;
		case 'i': o->image = optarg; break;
		case 't': o->trace = optarg; break;
		case 'T': o->trace2 = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (bad) {
			for (const struct option *p = lo; p->name; p++)
				if (p->val == c)
					fprintf(stderr, "tier-gen: bad value "
						"for --%s: %s\n", p->name,
						optarg);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (!o->size || o->size % PAGE) {
		fprintf(stderr, "tier-gen: --size must be a non-zero multiple "
			"of 4096\n");
		return 2;
	}
	if (o->zero + o->ro + o->rw > 100) {
		fprintf(stderr, "tier-gen: --zero + --ro + --rw exceed 100%%\n");
		return 2;
	}
	return -1;
}

/*
 * Alternate zero and non-zero clusters of geometric length. Non-zero
 * clusters mix small objects with large ones (kernel text, page cache);
 * the zero run mean is steered by what is left so the zero share lands
 * on --zero exactly: @want_nz non-zero pages, listed in @nz (address
 * order), their count returned.
 */
static uint64_t lay_out(uint8_t *cls, uint8_t *content, uint64_t *nz,
			uint64_t npages, uint64_t want_nz)
{
	uint64_t pg = 0, nnz = 0;

	while (pg < npages) {
		static const double means[] = { 2, 8, 32, 128, 512 };
		uint64_t left = npages - pg, left_nz = want_nz - nnz;
		uint64_t left_z = left - left_nz, len;
		double m = means[rnd_below(5)];
		enum content ct = (enum content)rnd_below(C_MAX);

		/* A zero gap first, sized to keep the ratio on track. */
		if (left_z && left_nz) {
			len = rnd_geom(m * (double)left_z / (double)left_nz);
			if (len > left_z)
				len = left_z;
		} else {
			len = left_z;
		}
		pg += len;
		len = left_nz ? rnd_geom(m) : 0;
		if (len > left_nz)
			len = left_nz;
		if (!left_z)
			len = left_nz;
		for (uint64_t k = 0; k < len; k++, pg++) {
			cls[pg] = P_COLD;
			content[pg] = (uint8_t)ct;
			nz[nnz++] = pg;
		}
	}
	return nnz;
}

/*
 * The same function again, into @t2: most of the @hot runs in nearly the
 * same order, diff/2 % of pages dropped, as many cold ones touched
 * instead, plus --cold-touch extra cold reads (@ncold cold pages to take
 * them from). @hotp is the hot pages, @n_ro of them read-only.
 */
static int second_run(const struct opts *o, const uint8_t *cls,
		      const uint64_t *nz, uint64_t nnz, uint64_t npages,
		      uint64_t hotp, uint64_t n_ro, uint64_t ncold,
		      const struct runs *hot, struct runs *t2)
{
	uint64_t drop, add, extra, dropped = 0;
	double p_r = hotp ? (double)n_ro / (double)hotp : 1.0;
	struct runs fresh = { 0 };
	uint8_t *c2 = malloc(npages);
	int rc = -ENOMEM;

	if (!c2)
		return rc;
	memcpy(c2, cls, npages);
	drop = (uint64_t)llround(hotp * o->diff / 200.0);
	add = drop;
	extra = (uint64_t)llround(hotp * o->cold_touch / 100.0);
	if (add + extra > ncold)
		extra = add = 0;
	for (size_t i = 0; i < hot->n; i++) {
		/* keep a run with probability 1 - drop/hotp */
		if (dropped < drop &&
		    rnd_below(hotp) < drop) {
			dropped += hot->v[i].len;
			continue;
		}
		struct run r = hot->v[i];

		/* A read-only prediction gone wrong: now written. */
		for (uint32_t k = 0; k < r.len; k++)
			if (r.kind[k] == K_R &&
			    rnd_unit() * 100.0 < o->flip)
				r.kind[k] = K_RW;
		if (runs_push(t2, r))
			goto out;
	}
	rc = pick_runs(o, c2, nz, nnz, P_COLD, P_ZERO, add, &fresh, p_r);
	if (!rc)
		rc = pick_runs(o, c2, nz, nnz, P_COLD, P_ZERO, extra, &fresh,
			       1.0);
	if (rc)
		goto out;
	/* Insert the new runs at random places, order kept otherwise. */
	for (size_t i = 0; i < fresh.n; i++) {
		size_t at = rnd_below(t2->n + 1);

		rc = runs_push(t2, fresh.v[i]);
		if (rc)
			goto out;
		memmove(&t2->v[at + 1], &t2->v[at],
			(t2->n - 1 - at) * sizeof(*t2->v));
		t2->v[at] = fresh.v[i];
	}
	/* A little reordering: runs racing each other. */
	for (size_t i = 1; i < t2->n; i++)
		if (rnd_below(50) == 0) {
			struct run t = t2->v[i - 1];

			t2->v[i - 1] = t2->v[i];
			t2->v[i] = t;
		}
	rc = 0;
out:
	free(c2);
	free(fresh.v);
	return rc;
}

/* The JSON summary on stdout. */
static void print_summary(const struct opts *o, uint64_t npages, uint64_t nnz,
			  const uint64_t *cnt, const uint64_t *nkind,
			  const struct runs *hot, const struct runs *t2)
{
	uint64_t t2p = 0, t2w = 0;

	for (size_t i = 0; i < t2->n; i++) {
		t2p += t2->v[i].len;
		for (uint32_t k = 0; k < t2->v[i].len; k++)
			t2w += t2->v[i].kind[k] != K_R;
	}
	printf("{\"size\": %" PRIu64 ", \"pages\": %" PRIu64
	       ", \"seed\": %" PRIu64 ", \"zero_pages\": %" PRIu64
	       ", \"nonzero_pages\": %" PRIu64
	       ", \"ro_pages\": %" PRIu64 ", \"rw_pages\": %" PRIu64
	       ", \"kind_r\": %" PRIu64 ", \"kind_rw\": %" PRIu64
	       ", \"kind_w\": %" PRIu64 ", \"cold_pages\": %" PRIu64
	       ", \"trace_pages\": %" PRIu64 ", \"trace_runs\": %zu"
	       ", \"trace2_pages\": %" PRIu64
	       ", \"trace2_written\": %" PRIu64 "}\n",
	       o->size, npages, o->seed, cnt[P_ZERO], nnz, cnt[P_RO],
	       cnt[P_RW], nkind[K_R], nkind[K_RW], nkind[K_W],
	       cnt[P_COLD], cnt[P_RO] + cnt[P_RW], hot->n, t2p, t2w);
}

int main(int argc, char **argv)
{
	struct opts o = {
		.size = 1ULL << 30, .zero = 82, .ro = 5, .rw = 1,
		.rw_read = 80, .diff = 2, .flip = 0.5, .seed = 1, .rmin = 1,
		.rmax = 3,
	};
	struct runs hot = { 0 }, t2 = { 0 };
	uint8_t *cls = NULL, *content = NULL;
	uint64_t *nz = NULL, npages, nnz, want_nz, pg;
	uint64_t n_ro, n_rw, cnt[4] = { 0 }, nkind[4] = { 0 };
	int rc;

	rc = parse_opts(argc, argv, &o);
	if (rc >= 0)
		return rc;
	rc = 1;

	npages = o.size / PAGE;
	want_nz = npages - (uint64_t)llround(npages * o.zero / 100.0);
	n_ro = (uint64_t)llround(npages * o.ro / 100.0);
	n_rw = (uint64_t)llround(npages * o.rw / 100.0);
	cls = calloc(npages, 1);
	content = calloc(npages, 1);
	nz = malloc(npages * sizeof(*nz));
	if (!cls || !content || !nz) {
		fprintf(stderr, "tier-gen: out of memory\n");
		goto out;
	}
	xs_seed(rng_s, o.seed);

	nnz = lay_out(cls, content, nz, npages, want_nz);
	if (n_ro + n_rw > nnz) {
		fprintf(stderr, "tier-gen: more hot pages than non-zero pages\n");
		goto out;
	}
	if (pick_runs(&o, cls, nz, nnz, P_COLD, P_RW, n_rw, &hot, 0) ||
	    pick_runs(&o, cls, nz, nnz, P_COLD, P_RO, n_ro, &hot, 0))
		goto out;
	runs_shuffle(&hot);

	for (pg = 0; pg < npages; pg++)
		cnt[cls[pg]]++;
	for (size_t i = 0; i < hot.n; i++)
		for (uint32_t k = 0; k < hot.v[i].len; k++)
			nkind[hot.v[i].kind[k]]++;

	if (o.trace2 && second_run(&o, cls, nz, nnz, npages, n_ro + n_rw, n_ro,
				   cnt[P_COLD], &hot, &t2))
		goto out;
	if (o.image && write_image(&o, cls, content, npages))
		goto out;
	if (o.trace && write_trace(o.trace, &hot, &o, "trained run"))
		goto out;
	if (o.trace2 && write_trace(o.trace2, &t2, &o, "second run"))
		goto out;
	print_summary(&o, npages, nnz, cnt, nkind, &hot, &t2);
	rc = 0;
out:
	free(hot.v);
	free(t2.v);
	free(cls);
	free(content);
	free(nz);
	return rc;
}
