/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * suite: unit -- the Firecracker handshake JSON (vmm/fc-proto.c): what
 * each release really sends, built as serde_json::to_string does it
 * (compact, fields in declaration order: src/vmm/src/persist.rs
 * GuestRegionUffdMapping in v1.1.0, v1.7.0 and v1.12.0), every way a
 * message can be wrong, and the checks of regions against a snapshot.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"
#include "vmm/fc.h"

#define MIB (1024ULL * 1024)

/* Firecracker's x86_64 layout for > 3 GiB: two regions, an MMIO gap
 * between them in the guest, contiguous in the memory file; mmap gives
 * the first (lower guest) region the higher host address. */
#define B0 0x7f3a40000000ULL
#define B1 0x7f3a00000000ULL

static struct fc_region *parse_ok(const char *json, unsigned want_n,
				  enum fc_fields want_fields)
{
	struct fc_region *r = NULL;
	enum fc_fields f;
	unsigned n = 0;

	t_ok(fc_parse_regions(json, strlen(json), &r, &n, &f));
	t_eq(n, want_n);
	if (f != want_fields) {
		fprintf(stderr, "%s: fields %s, want %s\n", json,
			fc_fields_name(f), fc_fields_name(want_fields));
		exit(T_FAIL);
	}
	return r;
}

/* Fails with @rc, and the reason contains every of @subs (NULL-ended). */
static void want_msg(int rc, int want, const char *what, const char *sub1,
		     const char *sub2)
{
	const char *msg = tier_errmsg();

	if (rc != want) {
		fprintf(stderr, "%s: rc %d, want %d (%s)\n", what, rc, want, msg);
		exit(T_FAIL);
	}
	if ((sub1 && !strstr(msg, sub1)) || (sub2 && !strstr(msg, sub2))) {
		fprintf(stderr, "%s: message \"%s\" lacks \"%s\"%s%s%s\n", what,
			msg, sub1, sub2 ? " or \"" : "", sub2 ? sub2 : "",
			sub2 ? "\"" : "");
		exit(T_FAIL);
	}
	if (strchr(msg, '\n')) {
		fprintf(stderr, "%s: message is not one line: %s\n", what, msg);
		exit(T_FAIL);
	}
}

static void bad_len(const char *json, size_t len, const char *sub1,
		    const char *sub2)
{
	struct fc_region *r = NULL;
	unsigned n = 0;
	int rc;

	rc = fc_parse_regions(json, len, &r, &n, NULL);
	want_msg(rc, -EPROTO, json, sub1, sub2);
	t_assert(r == NULL);
}

static void bad(const char *json, const char *sub1, const char *sub2)
{
	bad_len(json, strlen(json), sub1, sub2);
}

static void check_bad(const struct fc_region *r, unsigned n, uint64_t size,
		      const char *what, const char *sub1, const char *sub2)
{
	want_msg(fc_check_regions(r, n, size, "vm"), -EINVAL, what, sub1, sub2);
}

static void test_versions(void)
{
	char json[512];
	struct fc_region *r;

	/* v1.1-v1.6: base_host_virt_addr, size, offset */
	snprintf(json, sizeof(json),
		 "[{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":0},"
		 "{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu}]",
		 B0, 8 * MIB, B1, 4 * MIB, 8 * MIB);
	r = parse_ok(json, 2, FC_FIELDS_V1_1);
	t_eq(r[0].base, B0);
	t_eq(r[0].size, 8 * MIB);
	t_eq(r[0].offset, 0);
	t_eq(r[0].page_size, 4096);
	t_eq(r[1].base, B1);
	t_eq(r[1].offset, 8 * MIB);
	t_eq(r[1].page_size, 4096);
	t_ok(fc_check_regions(r, 2, 12 * MIB, "vm"));
	free(r);

	/* v1.7-v1.11: + page_size_kib, whose value is bytes */
	snprintf(json, sizeof(json),
		 "[{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":0,\"page_size_kib\":4096}]",
		 B0, 16 * MIB);
	r = parse_ok(json, 1, FC_FIELDS_V1_7);
	t_eq(r[0].page_size, 4096);
	t_ok(fc_check_regions(r, 1, 16 * MIB, "vm"));
	free(r);
	snprintf(json, sizeof(json),
		 "[{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":0,\"page_size_kib\":2097152}]",
		 B0, 16 * MIB);
	r = parse_ok(json, 1, FC_FIELDS_V1_7);
	t_eq(r[0].page_size, 2 * MIB);
	free(r);

	/* v1.12+: page_size, then the deprecated page_size_kib, same value */
	snprintf(json, sizeof(json),
		 "[{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":0,\"page_size\":2097152,\"page_size_kib\":2097152},"
		 "{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu,\"page_size\":2097152,\"page_size_kib\":2097152}]",
		 B0, 8 * MIB, B1, 8 * MIB, 8 * MIB);
	r = parse_ok(json, 2, FC_FIELDS_V1_12);
	t_eq(r[1].page_size, 2 * MIB);
	t_ok(fc_check_regions(r, 2, 16 * MIB, "vm"));
	free(r);

	/* once page_size_kib is gone (2.0): page_size alone */
	snprintf(json, sizeof(json),
		 "[{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":0,\"page_size\":4096}]",
		 B0, 16 * MIB);
	r = parse_ok(json, 1, FC_FIELDS_PAGE_SIZE);
	t_eq(r[0].page_size, 4096);
	free(r);

	/* persist.rs test_send_uffd_handshake's own regions (v1.12 to now) */
	r = parse_ok("[{\"base_host_virt_addr\":0,\"size\":1048576,\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096},"
		     "{\"base_host_virt_addr\":1048576,\"size\":2097152,\"offset\":0,\"page_size\":2097152,\"page_size_kib\":2097152}]",
		     2, FC_FIELDS_V1_12);
	t_eq(r[1].base, 0x100000);
	t_eq(r[1].size, 0x200000);
	t_eq(r[0].page_size, 4096);
	t_eq(r[1].page_size, 2 * MIB);
	/* fine for serde, not for a memory file: a 2 MiB region at 1 MiB,
	 * and both at offset 0 */
	check_bad(r, 2, 3 * MIB, "handshake test regions", "region 1",
		  "base_host_virt_addr 0x100000 is not a multiple of its page size (2 MiB)");
	r[1].base = 0x200000;
	check_bad(r, 2, 3 * MIB, "handshake test regions", "regions 0 and 1 overlap in the memory file", NULL);
	free(r);
	for (int i = 0; i < 4; i++)
		t_assert(strcmp(fc_fields_name(i), "unknown"));
}

static void test_shapes(void)
{
	struct fc_region *r;

	/* any order, any whitespace (to_string_pretty), unknown fields of
	 * every type, escapes in names */
	r = parse_ok(" \n[\n  {\n    \"offset\" : 4096 ,\r\n\t\"future\": {\"a\": [1, -2.5e-3, {\"b\": null}], \"c\": \"]}\\\"\"},\n"
		     "    \"flag\": true, \"none\": null, \"no\": false, \"f\": -0.0E+1, \"s\": \"caf\\u00e9 \\ud83d\\ude00 \xc3\xa9\",\n"
		     "    \"\\u0073ize\": 8192, \"page_size\": 4096,\n"
		     "    \"base_host_virt_addr\": 65536, \"e\": [], \"o\": {}\n  }\n]\n",
		     1, FC_FIELDS_PAGE_SIZE);
	t_eq(r[0].base, 65536);
	t_eq(r[0].size, 8192);
	t_eq(r[0].offset, 4096);
	free(r);

	/* a name that only looks like a known one is unknown, so skipped */
	r = parse_ok("[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"Size\":-1,\"size \":\"x\",\"page_size\\u0000\":1.5}]",
		     1, FC_FIELDS_V1_1);
	t_eq(r[0].size, 4096);
	free(r);

	/* the largest u64 parses (and the checks refuse it) */
	r = parse_ok("[{\"base_host_virt_addr\":18446744073709547520,\"size\":4096,\"offset\":0}]",
		     1, FC_FIELDS_V1_1);
	t_eq(r[0].base, 18446744073709547520ULL);
	free(r);
	r = parse_ok("[{\"base_host_virt_addr\":18446744073709551615,\"size\":0,\"offset\":0}]",
		     1, FC_FIELDS_V1_1);
	t_eq(r[0].base, UINT64_MAX);
	free(r);

	/* nesting up to the limit is fine */
	{
		char json[512];
		int d = 31, i, k = 0;

		k += sprintf(json, "[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"x\":");
		for (i = 0; i < d; i++)
			json[k++] = '[';
		for (i = 0; i < d; i++)
			json[k++] = ']';
		strcpy(json + k, "}]");
		free(parse_ok(json, 1, FC_FIELDS_V1_1));
		/* one more is a depth bomb */
		k = sprintf(json, "[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0,\"x\":");
		for (i = 0; i <= d; i++)
			json[k++] = '[';
		for (i = 0; i <= d; i++)
			json[k++] = ']';
		strcpy(json + k, "}]");
		bad(json, "region 0", "nested deeper than 32");
	}
}

static void test_syntax_errors(void)
{
	static const char ok3[] = "\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0";
	char json[512], *big;
	int i, k;

	bad("", "expected '['", "the end");
	bad("   ", "expected '['", NULL);
	bad("{}", "expected '['", NULL);
	bad("null", "expected '['", NULL);
	bad("[]", "no regions", NULL);
	bad("[ ]", "no regions", NULL);
	bad("[1]", "region 0", "expected '{'");
	bad("[{}]", "region 0", "no \"base_host_virt_addr\"");
	bad("[{\"base_host_virt_addr\":0,\"offset\":0}]", "region 0", "no \"size\"");
	bad("[{\"base_host_virt_addr\":0,\"size\":4096}]", "region 0", "no \"offset\"");

	snprintf(json, sizeof(json), "[{%s},{\"base_host_virt_addr\":4096,\"offset\":4096}]", ok3);
	bad(json, "region 1", "no \"size\"");
	snprintf(json, sizeof(json), "[{%s,\"size\":8192}]", ok3);
	bad(json, "region 0", "\"size\" given twice");
	snprintf(json, sizeof(json), "[{%s,\"\\u0073ize\":8192}]", ok3);
	bad(json, "region 0", "\"size\" given twice");
	snprintf(json, sizeof(json), "[{%s},{%s,\"offset\":1}]", ok3, ok3);
	bad(json, "region 1", "\"offset\" given twice");

	/* numbers of known fields */
	bad("[{\"base_host_virt_addr\":0,\"size\":-4096,\"offset\":0}]", "region 0", "\"size\": negative");
	bad("[{\"base_host_virt_addr\":0,\"size\":-0,\"offset\":0}]", "region 0", "negative");
	bad("[{\"base_host_virt_addr\":18446744073709551616,\"size\":4096,\"offset\":0}]",
	    "region 0", "\"base_host_virt_addr\": larger than 2^64 - 1");
	bad("[{\"base_host_virt_addr\":99999999999999999999999,\"size\":4096,\"offset\":0}]",
	    "region 0", "larger than");
	bad("[{\"base_host_virt_addr\":0,\"size\":4096.0,\"offset\":0}]", "region 0", "\"size\": not an integer");
	bad("[{\"base_host_virt_addr\":0,\"size\":4e3,\"offset\":0}]", "region 0", "not an integer");
	bad("[{\"base_host_virt_addr\":0,\"size\":4096,\"offset\":0E0}]", "region 0", "\"offset\": not an integer");
	bad("[{\"base_host_virt_addr\":0,\"size\":04096,\"offset\":0}]", "region 0", "leading zero");
	bad("[{\"base_host_virt_addr\":0,\"size\":\"4096\",\"offset\":0}]", "region 0", "not an unsigned integer");
	bad("[{\"base_host_virt_addr\":0,\"size\":null,\"offset\":0}]", "region 0", "not an unsigned integer");
	bad("[{\"base_host_virt_addr\":0,\"size\":true,\"offset\":0}]", "region 0", "not an unsigned integer");
	bad("[{\"base_host_virt_addr\":0,\"size\":[4096],\"offset\":0}]", "region 0", "not an unsigned integer");
	bad("[{\"base_host_virt_addr\":0,\"size\":+4096,\"offset\":0}]", "region 0", "not an unsigned integer");
	bad("[{\"base_host_virt_addr\":0,\"size\":,\"offset\":0}]", "region 0", "not an unsigned integer");
	bad("[{\"base_host_virt_addr\":0,\"size\":", "region 0", "no value");

	/* page sizes */
	snprintf(json, sizeof(json), "[{%s,\"page_size\":4096,\"page_size_kib\":2097152}]", ok3);
	bad(json, "region 0", "page_size 4096 and page_size_kib 2097152 disagree");
	snprintf(json, sizeof(json), "[{%s,\"page_size\":4096,\"page_size_kib\":4096},{%s,\"page_size_kib\":4096}]", ok3, ok3);
	bad(json, "region 1", "has page_size_kib alone, region 0 has page_size and page_size_kib");
	snprintf(json, sizeof(json), "[{%s},{%s,\"page_size\":4096}]", ok3, ok3);
	bad(json, "region 1", "region 0 has no page size field");

	/* structure */
	snprintf(json, sizeof(json), "[{%s},]", ok3);
	bad(json, "expected '{'", NULL);
	snprintf(json, sizeof(json), "[{%s,}]", ok3);
	bad(json, "region 0", "expected a field name, found '}'");
	snprintf(json, sizeof(json), "[{%s}", ok3);
	bad(json, "expected ',' or ']'", "the end");
	snprintf(json, sizeof(json), "[{%s}}", ok3);
	bad(json, "expected ',' or ']', found '}'", NULL);
	snprintf(json, sizeof(json), "[{%s]", ok3);
	bad(json, "region 0", "expected ',' or '}'");
	snprintf(json, sizeof(json), "[{%s} {%s}]", ok3, ok3);
	bad(json, "expected ',' or ']'", NULL);
	snprintf(json, sizeof(json), "[{%s \"x\":1}]", ok3);
	bad(json, "region 0", "expected ',' or '}'");
	bad("[{\"size\" 4096}]", "region 0", "expected ':'");
	bad("[{size:4096}]", "region 0", "expected a field name");
	bad("[{'size':4096}]", "region 0", "expected a field name");
	snprintf(json, sizeof(json), "[{%s}]x", ok3);
	bad(json, "'x' after the array", NULL);
	snprintf(json, sizeof(json), "[{%s}] []", ok3);
	bad(json, "after the array", NULL);
	snprintf(json, sizeof(json), "[{%s}]", ok3);
	k = strlen(json);
	json[k] = 0;
	bad_len(json, k + 1, "byte 0x00 after the array", NULL);	/* a C string's NUL sent too */

	/* skipped values must be JSON too */
	snprintf(json, sizeof(json), "[{%s,\"x\":tru}]", ok3);
	bad(json, "region 0", "bad literal (want true)");
	snprintf(json, sizeof(json), "[{%s,\"x\":nul}]", ok3);
	bad(json, "region 0", "want null");
	snprintf(json, sizeof(json), "[{%s,\"x\":01}]", ok3);
	bad(json, "region 0", "expected ',' or '}'");
	snprintf(json, sizeof(json), "[{%s,\"x\":1.}]", ok3);
	bad(json, "region 0", "bad number");
	snprintf(json, sizeof(json), "[{%s,\"x\":1e}]", ok3);
	bad(json, "region 0", "bad number");
	snprintf(json, sizeof(json), "[{%s,\"x\":-}]", ok3);
	bad(json, "region 0", "bad number");
	snprintf(json, sizeof(json), "[{%s,\"x\":[1,]}]", ok3);
	bad(json, "region 0", "expected a value, found ']'");
	snprintf(json, sizeof(json), "[{%s,\"x\":{\"a\"}}]", ok3);
	bad(json, "region 0", "expected ':'");
	snprintf(json, sizeof(json), "[{%s,\"x\":{1:2}}]", ok3);
	bad(json, "region 0", "expected a field name");
	snprintf(json, sizeof(json), "[{%s,\"x\":[1 2]}]", ok3);
	bad(json, "region 0", "expected ',' or ']'");
	snprintf(json, sizeof(json), "[{%s,\"x\":}]", ok3);
	bad(json, "region 0", "expected a value, found '}'");
	snprintf(json, sizeof(json), "[{%s,\"x\":NaN}]", ok3);
	bad(json, "region 0", "expected a value, found 'N'");

	/* strings */
	snprintf(json, sizeof(json), "[{%s,\"x\":\"abc}]", ok3);
	bad(json, "region 0", "string not closed");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"a\\qb\"}]", ok3);
	bad(json, "region 0", "bad escape '\\q'");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"a\tb\"}]", ok3);
	bad(json, "region 0", "control byte 0x09");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\\u12g4\"}]", ok3);
	bad(json, "region 0", "bad \\u escape");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\\u12\"}]", ok3);
	bad(json, "region 0", "\\u escape");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\\ud83d\"}]", ok3);
	bad(json, "region 0", "lone high surrogate");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\\ude00\"}]", ok3);
	bad(json, "region 0", "lone low surrogate");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\\ud83d\\u0041\"}]", ok3);
	bad(json, "region 0", "without its low half");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\xff\"}]", ok3);
	bad(json, "region 0", "not UTF-8");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\xc0\xaf\"}]", ok3);	/* overlong '/' */
	bad(json, "region 0", "not UTF-8");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\xed\xa0\x80\"}]", ok3);	/* a surrogate */
	bad(json, "region 0", "not UTF-8");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\xf4\x90\x80\x80\"}]", ok3);	/* > U+10FFFF */
	bad(json, "region 0", "not UTF-8");
	snprintf(json, sizeof(json), "[{%s,\"x\":\"\xe2\x82\"}]", ok3);	/* cut short */
	bad(json, "region 0", "not UTF-8");
	snprintf(json, sizeof(json), "[{%s,\"\xff\":1}]", ok3);
	bad(json, "region 0", "not UTF-8");

	/* a depth bomb at any level, and an array bomb: refused, not a crash */
	big = malloc(300000);
	t_assert(big);
	k = sprintf(big, "[{%s,\"x\":", ok3);
	for (i = 0; i < 100000; i++)
		big[k++] = i % 2 ? '[' : '{';	/* "{[{[" is not even valid */
	big[k] = 0;
	bad(big, "region 0", NULL);
	k = sprintf(big, "[{%s,\"x\":", ok3);
	for (i = 0; i < 100000; i++)
		big[k++] = '[';
	for (i = 0; i < 100000; i++)
		big[k++] = ']';
	strcpy(big + k, "}]");
	bad(big, "region 0", "nested deeper than 32");
	t_eq(fc_json_complete(big, 1000), 1);	/* no need to wait for the rest */
	k = sprintf(big, "[");
	for (i = 0; i <= FC_REGIONS_MAX; i++)
		k += sprintf(big + k, "%s{%s}", i ? "," : "", ok3);
	strcpy(big + k, "]");
	bad(big, "more than 1024 regions", NULL);
	free(big);
}

/* Every prefix of a good message is incomplete to the receiver and a
 * clean -EPROTO to the parser; every byte flipped is no crash. */
static void test_prefixes(void)
{
	char json[512], mut[512];
	struct fc_region *r;
	unsigned n;
	size_t len, i;
	int rc, b;

	snprintf(json, sizeof(json),
		 "[{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096,\"x\":\"]}\\\"\"}]",
		 B0, 16 * MIB);
	len = strlen(json);
	for (i = 0; i < len; i++) {
		if (fc_json_complete(json, i)) {
			fprintf(stderr, "prefix %zu of %s: complete\n", i, json);
			exit(T_FAIL);
		}
		r = NULL;
		rc = fc_parse_regions(json, i, &r, &n, NULL);
		if (rc != -EPROTO || r) {
			fprintf(stderr, "prefix %zu: rc %d\n", i, rc);
			exit(T_FAIL);
		}
	}
	t_eq(fc_json_complete(json, len), 1);
	t_eq(fc_json_complete("x", 1), 1);
	t_eq(fc_json_complete("\"", 1), 1);
	t_eq(fc_json_complete("[{}]trailing", 12), 1);

	for (i = 0; i < len; i++)
		for (b = 0; b < 8; b++) {
			memcpy(mut, json, len);
			mut[i] ^= 1 << b;
			r = NULL;
			rc = fc_parse_regions(mut, len, &r, &n, NULL);
			t_assert(rc == 0 || rc == -EPROTO);
			t_assert(rc == 0 || r == NULL);
			if (!rc) {
				t_eq(n, 1);
				free(r);
			}
		}
}

static void test_checks(void)
{
	struct fc_region r[3] = {
		{ .base = B0, .size = 8 * MIB, .offset = 0, .page_size = 4096 },
		{ .base = B1, .size = 4 * MIB, .offset = 8 * MIB, .page_size = 4096 },
	};
	struct fc_region h[1] = {
		{ .base = B0, .size = 8 * MIB, .offset = 0, .page_size = 2 * MIB },
	};
	uint64_t size = 12 * MIB;

	t_ok(fc_check_regions(r, 2, size, "vm"));
	t_ok(fc_check_regions(h, 1, 8 * MIB, "vm"));
	t_assert(fc_region_find(r, 2, B0) == &r[0]);
	t_assert(fc_region_find(r, 2, B0 + 8 * MIB - 1) == &r[0]);
	t_assert(fc_region_find(r, 2, B0 + 8 * MIB) == NULL);
	t_assert(fc_region_find(r, 2, B1 + 4 * MIB - 1) == &r[1]);
	t_assert(fc_region_find(r, 2, B1 - 1) == NULL);

	check_bad(r, 0, size, "no regions", "no regions", NULL);
	r[1].page_size = 8192;
	check_bad(r, 2, size, "page size 8192", "region 1", "page size 8192 is neither 4 KiB nor 2 MiB");
	r[1].page_size = 4;
	check_bad(r, 2, size, "page size 4", "region 1", "in bytes despite its name");
	r[1].page_size = 2048;
	check_bad(r, 2, size, "page size 2048", "region 1", "in bytes despite its name");
	r[1].page_size = 0;
	check_bad(r, 2, size, "page size 0", "region 1", "page size 0");
	r[1].page_size = 4096;

	h[0].base += 4096;
	check_bad(h, 1, 8 * MIB, "huge base", "region 0", "base_host_virt_addr 0x7f3a40001000 is not a multiple of its page size (2 MiB)");
	h[0].base -= 4096;
	h[0].size -= 4096;
	check_bad(h, 1, 8 * MIB, "huge size", "region 0", "size 0x7ff000 is not a multiple");
	h[0].size += 4096;
	h[0].offset = 4096;
	check_bad(h, 1, 8 * MIB + 4096, "huge offset", "region 0", "offset 0x1000 is not a multiple");
	h[0].offset = 0;
	r[1].base += 512;
	check_bad(r, 2, size, "base", "region 1", "(4 KiB)");
	r[1].base -= 512;

	r[1].size = 0;
	check_bad(r, 2, size, "size 0", "region 1", "size 0");
	r[1].size = 8 * MIB;
	check_bad(r, 2, size, "past the end", "region 1", "runs past the end of snapshot vm");
	r[1].size = 4 * MIB;
	r[1].offset = UINT64_MAX - 4095;
	check_bad(r, 2, size, "offset past", "region 1", "runs past the end");
	r[1].offset = 8 * MIB;
	r[1].base = UINT64_MAX - 4095;
	check_bad(r, 2, size, "wrap", "region 1", "wraps around");
	r[1].base = B1;

	r[1].offset = 4 * MIB;
	check_bad(r, 2, size, "file overlap", "regions 0 and 1 overlap in the memory file", NULL);
	r[1].offset = 8 * MIB;
	r[1].base = B0 + 4 * MIB;
	check_bad(r, 2, size, "address overlap", "regions 0 and 1 overlap in the address space", NULL);
	r[1].base = B0 + 8 * MIB;	/* adjacent, no gap: fine */
	t_ok(fc_check_regions(r, 2, size, "vm"));
	r[1].base = B1;

	check_bad(r, 2, size + 4096, "total short", "regions total 0xc00000 bytes, snapshot vm has 0xc01000", NULL);
	check_bad(r, 1, size, "total", "regions total 0x800000", NULL);
	r[2] = (struct fc_region){ .base = B1 - 8 * MIB, .size = 4096,
				   .offset = 12 * MIB, .page_size = 4096 };
	check_bad(r, 3, size, "third past", "region 2", "runs past the end");
	r[2].offset = 12 * MIB - 4096;
	check_bad(r, 3, size, "third overlaps", "regions 1 and 2 overlap in the memory file", NULL);
}

/* tier's zero-copy extension: one field of the first region, ignored
 * by the field-set detection; a stock handshake leaves it 0. */
static void test_zero_copy(void)
{
	char json[512];
	struct fc_region *r;

	snprintf(json, sizeof(json),
		 "[{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":0,"
		 "\"page_size\":4096,\"page_size_kib\":4096,\"tier_zero_copy\":1},"
		 "{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":%llu,"
		 "\"page_size\":4096,\"page_size_kib\":4096}]",
		 B0, 8 * MIB, B1, 4 * MIB, 8 * MIB);
	r = parse_ok(json, 2, FC_FIELDS_V1_12);
	t_eq(r[0].zero_copy, 1);
	t_eq(r[1].zero_copy, 0);
	free(r);
	snprintf(json, sizeof(json),
		 "[{\"base_host_virt_addr\":%llu,\"size\":%llu,\"offset\":0}]",
		 B0, 8 * MIB);
	r = parse_ok(json, 1, FC_FIELDS_V1_1);
	t_eq(r[0].zero_copy, 0);
	free(r);
	bad("[{\"base_host_virt_addr\":1,\"size\":2,\"offset\":0,\"tier_zero_copy\":-1}]",
	    "tier_zero_copy", "negative");
}

int main(void)
{
	test_zero_copy();
	test_versions();
	test_shapes();
	test_syntax_errors();
	test_prefixes();
	test_checks();
	for (int f = 0; f < 3; f++) {
		enum fc_fail v;

		t_ok(fc_fail_parse(fc_fail_name(f), &v));
		t_eq(v, f);
	}
	{
		enum fc_fail v;

		t_fails(fc_fail_parse("maim", &v), -EINVAL);
	}
	return T_PASS;
}
