/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A VMM's device state kept beside the memory image: QEMU's migration
 * stream saved with x-ignore-shared is ~300 KiB and holds no guest RAM,
 * only CPU and device state plus the small ROM blocks. It is opaque to us;
 * we keep it whole and prove it unchanged before handing it back. Import
 * stores it; tier_snap_state_path() hands it to "tierctl restore".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"
#include "store/snap.h"
#include "util/checksum.h"
#include "util/err.h"
#include "util/file.h"

int state_import(const char *path, const char *dir)
{
	char dst[4096 + 16], sum[64];
	size_t len;
	void *buf;
	int rc;

	rc = read_file(path, &buf, &len);
	if (rc)
		return rc;
	if (len == 0) {
		free(buf);
		return tier_err(-EINVAL, "%s: device state file is empty", path);
	}
	snprintf(dst, sizeof(dst), "%s/vmstate", dir);
	rc = write_file_atomic(dst, buf, len);
	if (!rc) {
		snprintf(sum, sizeof(sum), "%zu %016" PRIx64 "\n", len,
			 tier_csum(buf, len));
		snprintf(dst, sizeof(dst), "%s/vmstate.sum", dir);
		rc = write_file_atomic(dst, sum, strlen(sum));
	}
	free(buf);
	return rc;
}

int tier_snap_state_path(struct tier_snap *snap, char *buf, size_t len)
{
	char path[4096 + 16];
	unsigned long long want_len;
	uint64_t want_sum;
	size_t slen, dlen;
	void *sbuf, *data;
	int rc;

	snprintf(path, sizeof(path), "%s/vmstate.sum", snap->dir);
	rc = read_file(path, &sbuf, &slen);
	if (rc == -ENOENT)
		return tier_err(-ENOENT, "snapshot %s: no device state (import it with --state FILE)",
				snap->name);
	if (rc)
		return rc;
	rc = sscanf(sbuf, "%llu %" SCNx64, &want_len, &want_sum);
	free(sbuf);
	if (rc != 2)
		return tier_err(-EBADMSG, "snapshot %s: device state checksum file is corrupt",
				snap->name);

	snprintf(path, sizeof(path), "%s/vmstate", snap->dir);
	rc = read_file(path, &data, &dlen);
	if (rc)
		return rc;
	rc = 0;
	if (dlen != want_len || tier_csum(data, dlen) != want_sum)
		rc = tier_err(-EBADMSG, "snapshot %s: device state changed since import (checksum mismatch)",
			      snap->name);
	free(data);
	if (rc)
		return rc;
	if ((size_t)snprintf(buf, len, "%s", path) >= len)
		return tier_err(-ENAMETOOLONG, "snapshot %s: path too long", snap->name);
	return 0;
}
