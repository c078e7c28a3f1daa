/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_VMM_QMP_H
#define TIER_VMM_QMP_H

#include <stddef.h>

/*
 * A minimal QMP client: one JSON object per line each way. Enough to stop,
 * save and load device state and continue a guest; not a JSON library.
 */
struct qmp;

/* Connects to a QMP unix socket, retrying until @timeout_ms passes (QEMU
 * creates it a little after start), and negotiates capabilities. */
int qmp_connect(const char *path, int timeout_ms, struct qmp **ret);
void qmp_close(struct qmp *q);

/*
 * Sends @cmd (a complete JSON object) and waits for its answer, skipping
 * events. 0 with the "return" line in @reply; -EIO with the "error"
 * description as the reason; -ETIMEDOUT after @timeout_ms.
 */
int qmp_exec(struct qmp *q, const char *cmd, char *reply, size_t len,
	     int timeout_ms);

/* Polls query-migrate until "completed" (0) or "failed" (-EIO). */
int qmp_wait_migration(struct qmp *q, int timeout_ms);

#endif
