/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The WASI imports the functions use (wasi-libc's stdio: fd_write for
 * their error messages, fd_seek and fd_close for stdio's bookkeeping).
 * A function's stderr goes to the instance's last message, never to the
 * host's stderr: the host reports it as the reason of a failed init.
 */
#include <string.h>
#include <wasm-rt.h>

#include "wasm/wasi.h"

enum { WASI_ESUCCESS = 0, WASI_EBADF = 8, WASI_EFAULT = 21, WASI_ESPIPE = 70 };

static int in_bounds(const wasm_rt_memory_t *m, uint32_t off, uint32_t len)
{
	return (uint64_t)off + len <= m->size;
}

u32 Z_wasi_snapshot_preview1Z_fd_write(struct Z_wasi_snapshot_preview1_instance_t *w,
				       u32 fd, u32 iovs, u32 n, u32 nwritten)
{
	const wasm_rt_memory_t *m = w->mem;
	uint32_t i, total = 0;

	if (fd != 1 && fd != 2)
		return WASI_EBADF;
	if (!in_bounds(m, iovs, n * 8) || !in_bounds(m, nwritten, 4))
		return WASI_EFAULT;
	for (i = 0; i < n; i++) {
		uint32_t base, len, room;

		memcpy(&base, m->data + iovs + 8 * i, 4);
		memcpy(&len, m->data + iovs + 8 * i + 4, 4);
		if (!in_bounds(m, base, len))
			return WASI_EFAULT;
		room = sizeof(w->msg) - 1 - w->msglen;
		if (len < room)
			room = len;
		memcpy(w->msg + w->msglen, m->data + base, room);
		w->msglen += room;
		total += len;
	}
	w->msg[w->msglen] = 0;
	memcpy(m->data + nwritten, &total, 4);
	return WASI_ESUCCESS;
}

u32 Z_wasi_snapshot_preview1Z_fd_seek(struct Z_wasi_snapshot_preview1_instance_t *w,
				      u32 fd, u64 off, u32 whence, u32 ret)
{
	return fd <= 2 ? WASI_ESPIPE : WASI_EBADF;
}

u32 Z_wasi_snapshot_preview1Z_fd_close(struct Z_wasi_snapshot_preview1_instance_t *w,
				       u32 fd)
{
	return fd <= 2 ? WASI_ESUCCESS : WASI_EBADF;
}
