/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pool-bw: read throughput of a pool (any pool= URI) through the library's
 * pool API, in the batch shapes the prefetcher (store/restore-prefetch.c)
 * uses: one pool_readv per batch of up to 2 MiB and 256 ranges, into one
 * reused, pre-faulted buffer. bench/rdma-bw.sh puts it next to ib_read_bw
 * on the same soft-RoCE pair.
 *
 * It writes a segment of --size patterned bytes (--reuse: one a --keep run
 * left), reads it all once and checks every byte (untimed; --no-check
 * skips it), then times --reps full passes per shape. One JSON line per
 * shape on stdout; MiB/s (2^20 bytes, as perftest).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier.h"
#include "rdma/pool.h"
#include "util/size.h"
#include "util/uri.h"

#define MAX_REPS	64
#define MAX_SHAPES	8
#define MAX_RANGES	256		/* BATCH_PIECES of the prefetcher */
#define SEG_NAME	"pool-bw/bench.1"

static const char usage[] =
	"usage: pool-bw --uri URI [--size SIZE] [--batch SIZE] [--range SIZE[,SIZE...]]\n"
	"               [--reps N] [--reuse] [--keep] [--no-check]\n";

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static uint64_t word(uint64_t off)
{
	uint64_t x = (off / 8 + 1) * 0x9e3779b97f4a7c15ULL;

	return x ^ x >> 31;
}

static void fill(uint8_t *b, uint64_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i += 8) {
		uint64_t w = word(off + i);

		memcpy(b + i, &w, 8);
	}
}

static int put_seg(struct pool *p, uint64_t size)
{
	const size_t chunk = 1 << 20;
	struct pool_wseg *w;
	uint8_t *b = malloc(chunk);
	uint64_t off;
	int rc;

	if (!b)
		return -ENOMEM;
	rc = pool_create(p, SEG_NAME, size, &w);
	for (off = 0; !rc && off < size; off += chunk) {
		fill(b, off, chunk);
		rc = pool_write(w, off, b, chunk);
	}
	if (!rc)
		rc = pool_commit(w);
	else
		pool_abort(w);
	free(b);
	return rc;
}

/*
 * One full pass over the segment: batches of @per ranges of @range bytes.
 * Range j of batch k sits at block j * nbatch + k, so a batch's ranges are
 * never adjacent (as scattered hot pages) and every block is read once.
 */
static int pass(struct pool_seg *s, uint64_t size, size_t range, unsigned per,
		uint8_t *buf, bool check)
{
	uint64_t nbatch = size / range / per, k;
	struct pool_iov iov[MAX_RANGES];
	unsigned j;
	int rc;

	for (k = 0; k < nbatch; k++) {
		for (j = 0; j < per; j++)
			iov[j] = (struct pool_iov){
				.off = ((uint64_t)j * nbatch + k) * range,
				.buf = buf + (size_t)j * range,
				.len = range,
			};
		if (check)
			memset(buf, 0xee, range * per);
		rc = pool_readv(s, iov, per);
		if (rc)
			return rc;
		for (j = 0; check && j < per; j++) {
			uint8_t want[4096];
			size_t o;

			for (o = 0; o < range; o += sizeof(want)) {
				size_t n = range - o < sizeof(want) ? range - o : sizeof(want);

				fill(want, iov[j].off + o, n);
				if (memcmp(want, buf + j * range + o, n)) {
					fprintf(stderr, "pool-bw: wrong bytes at offset %" PRIu64 "\n",
						iov[j].off + o);
					return -EBADMSG;
				}
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "uri", required_argument, NULL, 'u' },
		{ "size", required_argument, NULL, 's' },
		{ "batch", required_argument, NULL, 'b' },
		{ "range", required_argument, NULL, 'r' },
		{ "reps", required_argument, NULL, 'n' },
		{ "reuse", no_argument, NULL, 'R' },
		{ "keep", no_argument, NULL, 'k' },
		{ "no-check", no_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	uint64_t size = 64 << 20, batch = 2 << 20, ranges[MAX_SHAPES] = { 2 << 20 };
	const char *uri_s = NULL;
	unsigned nshape = 1, reps = 5, i, r;
	bool reuse = false, keep = false, check = true;
	struct tier_uri uri;
	struct pool_seg *s;
	struct pool *p;
	uint8_t *buf;
	char *tok;
	int c, rc;

	/* as tierctl: the guest's rxe pair is picked by the source address */
	if (tier_set_pool_opts(&(struct tier_pool_opts){
		    .rdma_src = getenv("TIER_POOL_RDMA_SRC") })) {
		fprintf(stderr, "pool-bw: %s\n", tier_errmsg());
		return 2;
	}
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			uri_s = optarg;
			break;
		case 's':
			if (parse_size(optarg, &size) || !size || size % 4096)
				goto bad;
			break;
		case 'b':
			if (parse_size(optarg, &batch) || !batch || batch % 4096)
				goto bad;
			break;
		case 'r':
			nshape = 0;
			for (tok = strtok(optarg, ","); tok; tok = strtok(NULL, ",")) {
				if (nshape == MAX_SHAPES ||
				    parse_size(tok, &ranges[nshape]) ||
				    !ranges[nshape] || ranges[nshape] % 4096)
					goto bad;
				nshape++;
			}
			if (!nshape)
				goto bad;
			break;
		case 'n':
			reps = (unsigned)strtoul(optarg, NULL, 10);
			if (!reps || reps > MAX_REPS)
				goto bad;
			break;
		case 'R':
			reuse = true;
			break;
		case 'k':
			keep = true;
			break;
		case 'C':
			check = false;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (!uri_s || optind != argc)
		goto bad;
	for (i = 0; i < nshape; i++)
		if (ranges[i] > batch || batch / ranges[i] > MAX_RANGES ||
		    size % (batch / ranges[i] * ranges[i]))
			goto bad;
	if (uri_parse(uri_s, URI_WANT_POOL, &uri)) {
		fprintf(stderr, "pool-bw: %s\n", tier_errmsg());
		return 2;
	}
	buf = malloc(batch);
	if (!buf)
		return 1;
	memset(buf, 0, batch);

	rc = pool_open(&uri, &p);
	if (!rc && !reuse)
		rc = put_seg(p, size);
	if (!rc)
		rc = pool_seg_open(p, SEG_NAME, &s);
	if (!rc && pool_seg_size(s) != size) {
		fprintf(stderr, "pool-bw: segment %s holds %" PRIu64 " bytes, not --size\n",
			SEG_NAME, pool_seg_size(s));
		return 1;
	}
	if (rc) {
		fprintf(stderr, "pool-bw: %s\n", tier_errmsg());
		return 1;
	}
	for (i = 0; i < nshape; i++) {
		unsigned per = (unsigned)(batch / ranges[i]);
		double mibs[MAX_REPS];

		rc = check ? pass(s, size, ranges[i], per, buf, true) : 0;
		for (r = 0; !rc && r < reps; r++) {
			uint64_t t0 = now_ns();

			rc = pass(s, size, ranges[i], per, buf, false);
			mibs[r] = (double)size / (1 << 20) /
				  ((double)(now_ns() - t0) / 1e9);
		}
		if (rc) {
			fprintf(stderr, "pool-bw: %s\n", tier_errmsg());
			return 1;
		}
		printf("{\"bytes\":%" PRIu64 ",\"batch_bytes\":%" PRIu64
		       ",\"range_bytes\":%" PRIu64 ",\"ranges_per_batch\":%u,\"reps\":%u,\"mibs\":[",
		       size, ranges[i] * per, ranges[i], per, reps);
		for (r = 0; r < reps; r++)
			printf("%s%.1f", r ? "," : "", mibs[r]);
		qsort(mibs, reps, sizeof(*mibs), cmp_dbl);
		printf("],\"median_mibs\":%.1f}\n", reps % 2 ? mibs[reps / 2] :
		       (mibs[reps / 2 - 1] + mibs[reps / 2]) / 2);
		fflush(stdout);
	}
	pool_seg_close(s);
	if (!keep)
		pool_remove(p, SEG_NAME);
	pool_close(p);
	free(buf);
	return 0;
bad:
	fputs(usage, stderr);
	return 2;
}
