/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target "fc-json": the Firecracker handshake (vmm/fc-proto.c)
 * as the handler receives it, the input being the one message's bytes.
 * fc_json_complete() must stop the receiver neither before the end of a
 * message that parses nor after it; what fc_parse_regions() accepts must
 * print back (in its release's field set, as serde_json writes it) to
 * JSON that parses to the same regions and field set; fc_check_regions()
 * then runs against an image as large as the regions together, and what
 * it accepts must be disjoint in the file and in the address space, each
 * base found by fc_region_find().
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/fc.h"
#include "tests/fuzz/fuzz.h"

/* serde_json::to_string of the regions, fields in declaration order. */
static size_t print(const struct fc_region *r, unsigned n,
		    enum fc_fields fields, char *buf, size_t cap)
{
	size_t k = 0;
	unsigned i;

	k += snprintf(buf + k, cap - k, "[");
	for (i = 0; i < n; i++) {
		k += snprintf(buf + k, cap - k,
			      "%s{\"base_host_virt_addr\":%" PRIu64 ",\"size\":%" PRIu64
			      ",\"offset\":%" PRIu64, i ? "," : "", r[i].base,
			      r[i].size, r[i].offset);
		if (fields == FC_FIELDS_V1_12 || fields == FC_FIELDS_PAGE_SIZE)
			k += snprintf(buf + k, cap - k, ",\"page_size\":%" PRIu64,
				      r[i].page_size);
		if (fields == FC_FIELDS_V1_7 || fields == FC_FIELDS_V1_12)
			k += snprintf(buf + k, cap - k, ",\"page_size_kib\":%" PRIu64,
				      r[i].page_size);
		if (r[i].zero_copy)
			k += snprintf(buf + k, cap - k, ",\"tier_zero_copy\":%" PRIu64,
				      r[i].zero_copy);
		k += snprintf(buf + k, cap - k, "}");
	}
	k += snprintf(buf + k, cap - k, "]");
	fuzz_assert(k < cap);
	return k;
}

static void checked(const struct fc_region *r, unsigned n)
{
	unsigned i, j;

	for (i = 0; i < n; i++) {
		fuzz_assert(fc_region_find(r, n, r[i].base) == &r[i]);
		fuzz_assert(fc_region_find(r, n, r[i].base + r[i].size - 1) ==
			    &r[i]);
		for (j = i + 1; j < n; j++) {
			fuzz_assert(r[i].offset + r[i].size <= r[j].offset ||
				    r[j].offset + r[j].size <= r[i].offset);
			fuzz_assert(r[i].base + r[i].size <= r[j].base ||
				    r[j].base + r[j].size <= r[i].base);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[FC_REGIONS_MAX * 200 + 2];
	struct fc_region *r, *q;
	enum fc_fields f, g;
	char *buf = fuzz_dup(data, size);
	uint64_t total = 0;
	size_t len, end;
	unsigned n, m, i;

	if (size > FC_MSG_MAX) {
		free(buf);
		return 0;
	}
	if (fc_parse_regions(buf, size, &r, &n, &f)) {
		free(buf);
		return 0;
	}
	/* the receiver reads to the closing ']' and stops there */
	end = size;
	while (buf[end - 1] != ']')
		end--;
	fuzz_assert(fc_json_complete(buf, end) == 1);
	fuzz_assert(fc_json_complete(buf, end - 1) == 0);

	len = print(r, n, f, out, sizeof(out));
	fuzz_assert(fc_parse_regions(out, len, &q, &m, &g) == 0);
	fuzz_assert(m == n && g == f);
	for (i = 0; i < n; i++)
		fuzz_assert(q[i].base == r[i].base && q[i].size == r[i].size &&
			    q[i].offset == r[i].offset &&
			    q[i].page_size == r[i].page_size &&
			    q[i].zero_copy == r[i].zero_copy);
	free(q);

	for (i = 0; i < n; i++)
		total += r[i].size;
	if (!fc_check_regions(r, n, total, "fuzz"))
		checked(r, n);
	free(r);
	free(buf);
	return 0;
}
