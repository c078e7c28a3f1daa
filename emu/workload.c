// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * wl: the workload program of the emulated workload VM (emu/initramfs.sh puts
 * a static build of it into the guest).  Every answer is deterministic so the
 * host can check it independently (emu/expect.py).
 *
 *   wl gen FILE MIB        write MIB MiB of the pattern emu/expect.py knows
 *   wl touch MIB           allocate and write MIB MiB, print "touched MIB"
 *   wl kvd REQ RSP         function-like server: build a dataset and a hash
 *                          index at start (its working set lives in the
 *                          snapshot), then answer "SEED COUNT" lines read from
 *                          fifo REQ on fifo RSP
 *   wl kv SEED COUNT       the same answer computed in one shot (host use)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KV_RECORDS (1u << 18)		/* 262144 records of 64 bytes: 16 MiB */
#define KV_SLOTS (1u << 19)		/* open addressing, load factor 0.5 */
#define KV_SEED 0x7469657200000001ull	/* "tier" */
#define KV_WORDS 7

struct kv_rec {
	uint64_t key;
	uint64_t val[KV_WORDS];
};

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static struct kv_rec *recs;
static uint32_t *slots;		/* record index + 1; 0 = empty */

static uint64_t kv_key(uint32_t i)
{
	return splitmix64(i ^ KV_SEED);
}

static int kv_build(void)
{
	uint32_t i, s;
	int k;

	recs = malloc(sizeof(*recs) * KV_RECORDS);
	slots = calloc(KV_SLOTS, sizeof(*slots));
	if (!recs || !slots)
		return -ENOMEM;
	for (i = 0; i < KV_RECORDS; i++) {
		recs[i].key = kv_key(i);
		for (k = 0; k < KV_WORDS; k++)
			recs[i].val[k] = splitmix64(recs[i].key + k + 1);
		/* Hash the key again so slot order differs from record order. */
		for (s = splitmix64(recs[i].key) & (KV_SLOTS - 1); slots[s];
		     s = (s + 1) & (KV_SLOTS - 1))
			;
		slots[s] = i + 1;
	}
	return 0;
}

static const struct kv_rec *kv_find(uint64_t key)
{
	uint32_t s;

	for (s = splitmix64(key) & (KV_SLOTS - 1); slots[s]; s = (s + 1) & (KV_SLOTS - 1))
		if (recs[slots[s] - 1].key == key)
			return &recs[slots[s] - 1];
	return NULL;
}

/* FNV-1a 64 over the little-endian value words of every queried record. */
static int kv_query(uint64_t seed, uint32_t count, uint64_t *sum)
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint32_t j;
	int k, b;

	for (j = 0; j < count; j++) {
		uint32_t i = splitmix64(seed * 1000003 + j) % KV_RECORDS;
		const struct kv_rec *r = kv_find(kv_key(i));

		if (!r)
			return -ENOENT;
		for (k = 0; k < KV_WORDS; k++)
			for (b = 0; b < 8; b++) {
				h ^= (r->val[k] >> (8 * b)) & 0xff;
				h *= 0x100000001b3ull;
			}
	}
	*sum = h;
	return 0;
}

static int kv_answer(const char *line, char *out, size_t len)
{
	unsigned long long seed;
	unsigned int count;
	uint64_t sum;

	if (sscanf(line, "%llu %u", &seed, &count) != 2 || count > 1000000)
		return snprintf(out, len, "kv error: bad query\n");
	if (kv_query(seed, count, &sum))
		return snprintf(out, len, "kv error: key missing\n");
	return snprintf(out, len, "kv %llu %u %016llx\n", seed, count,
			(unsigned long long)sum);
}

static int cmd_kvd(const char *req, const char *rsp)
{
	char line[256], out[256];
	FILE *in;
	int fd, n;

	if (kv_build())
		return 1;
	/* O_RDWR: the fifo never reports EOF between clients. */
	fd = open(req, O_RDWR);
	if (fd < 0 || !(in = fdopen(fd, "r")))
		return 1;
	while (fgets(line, sizeof(line), in)) {
		n = kv_answer(line, out, sizeof(out));
		fd = open(rsp, O_WRONLY);
		if (fd < 0)
			continue;
		/* A short write means the client went away: nothing to do. */
		n = write(fd, out, n);
		close(fd);
	}
	return 0;
}

static int cmd_gen(const char *path, long mib)
{
	static uint32_t buf[16384];
	uint64_t w = 0, words = (uint64_t)mib << 18;
	FILE *f = fopen(path, "w");
	size_t i;

	if (!f)
		return 1;
	while (w < words) {
		for (i = 0; i < 16384; i++, w++) {
			uint32_t x = (uint32_t)(w * 2654435761u + 0x9e3779b9u);

			buf[i] = x ^ (x >> 15);
		}
		if (fwrite(buf, sizeof(buf), 1, f) != 1)
			return 1;
	}
	return fclose(f) ? 1 : 0;
}

static int cmd_touch(long mib)
{
	size_t len = (size_t)mib << 20, i;
	unsigned char *p = malloc(len ? len : 1);
	unsigned long sum = 0;

	if (!p)
		return 1;
	memset(p, 0xa5, len);
	for (i = 0; i < len; i += 4096)
		sum += p[i];
	if (sum != 0xa5ul * (len / 4096))
		return 1;
	printf("touched %ld\n", mib);
	return 0;
}

int main(int argc, char **argv)
{
	char out[256];

	if (argc == 4 && !strcmp(argv[1], "gen"))
		return cmd_gen(argv[2], atol(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "touch"))
		return cmd_touch(atol(argv[2]));
	if (argc == 4 && !strcmp(argv[1], "kvd"))
		return cmd_kvd(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "kv")) {
		snprintf(out, sizeof(out), "%s %s", argv[2], argv[3]);
		if (kv_build())
			return 1;
		kv_answer(out, out, sizeof(out));
		fputs(out, stdout);
		return 0;
	}
	fprintf(stderr, "usage: wl gen FILE MIB | touch MIB | kvd REQ RSP | kv SEED COUNT\n");
	return 2;
}
