/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TIER_WASM_WASI_H
#define TIER_WASM_WASI_H

#include <stdint.h>
#include <wasm-rt.h>

typedef uint32_t u32;
typedef uint64_t u64;

/* What the WASI imports of one instance see: its memory and where its
 * output goes. */
struct Z_wasi_snapshot_preview1_instance_t {
	wasm_rt_memory_t *mem;
	char msg[256];
	unsigned msglen;
};

u32 Z_wasi_snapshot_preview1Z_fd_write(struct Z_wasi_snapshot_preview1_instance_t *w,
				       u32 fd, u32 iovs, u32 n, u32 nwritten);
u32 Z_wasi_snapshot_preview1Z_fd_seek(struct Z_wasi_snapshot_preview1_instance_t *w,
				      u32 fd, u64 off, u32 whence, u32 ret);
u32 Z_wasi_snapshot_preview1Z_fd_close(struct Z_wasi_snapshot_preview1_instance_t *w,
				       u32 fd);

#endif
