#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Keeps bench/rdma-bw.sh from rotting: a small run in the soft-RoCE guest
# must measure ib_read_bw and tier's pool client (every byte pool-bw reads
# checked, every page the replay restores verified) and print each ratio.
# The figures themselves are never checked (BENCHMARKS.md has them).
set -uo pipefail
src=${TIER_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}

command -v qemu-system-x86_64 >/dev/null ||
	{ echo "SKIP: qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 77; }
for t in ib_read_bw rdma ip ss numfmt; do
	command -v $t >/dev/null || { echo "SKIP: $t missing (see emu/README.md, Host packages)"; exit 77; }
done
[ -n "${TIERCTL:-}" ] && [ -x "$TIERCTL" ] ||
	{ echo "SKIP: TIERCTL does not name the built tierctl (run through meson test)"; exit 77; }
"$src/emu/fetch-kernel.sh" >/dev/null ||
	{ echo "SKIP: the Debian kernel package is not available"; exit 77; }
build=$(cd "$(dirname "$TIERCTL")/.." && pwd)

out=$(RDMA_BW_SIZE=2M RDMA_BW_REPS=1 RDMA_BW_RANGES=2M,8K "$src/bench/rdma-bw.sh" "$build" 2>&1)
rc=$?
echo "$out"
[ $rc = 0 ] || { echo "FAIL: bench/rdma-bw.sh exited $rc"; exit 1; }
fail=0
for want in 'ib_read_bw -s 262144 -t 64 ' 'ib_read_bw -s 65536 -t 128 ' \
	'tier pool_readv 1 x 2048 KiB per 2 MiB batch: .*ratio [0-9.]* to' \
	'tier pool_readv 256 x 8 KiB per 2 MiB batch: .*ratio [0-9.]* to' \
	'tier replay prefetch (tiered, 512 pages all from the pool): .*ratio [0-9.]* to'; do
	grep -q -- "$want" <<<"$out" || { echo "FAIL: no line matching '$want'"; fail=1; }
done
[ $fail = 0 ] && echo PASS
exit $fail
