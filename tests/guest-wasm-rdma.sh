#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# WebAssembly instances restored lazily from an RDMA memory node in the
# emulated guest: test-wasm (wasm/test-wasm.c) with its pool server on
# soft-RoCE (rxe0, 10.9.0.1) and the restores reaching it from rxe1
# (10.9.0.2), small functions (a fault costs about a millisecond under TCG).
set -uo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
. "$(dirname "$self")/../emu/guest-tier-lib.sh"

if [ "${1:-}" != inside ]; then
	tg_host_check rdma ip ss
	[ -x "$(tg_build_dir)/wasm/test-wasm" ] || { echo "SKIP: wasm/test-wasm not built (-Dwasm=enabled)"; exit 77; }
	exec "$tg_src/emu/run-in-guest.sh" --rxe -- "$self" inside
fi

tg_guest_init
export TIER_POOL_RDMA_SRC=10.9.0.2
TIERCTL="$T" "$B/wasm/test-wasm" rdma://10.9.0.1:0 small
