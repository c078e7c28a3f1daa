#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The guest's CPU-less NUMA node (the stand-in for CXL memory exposed as a
# node): node 1 has memory and no CPUs, and memory can be bound to it.
set -uo pipefail
src=${TIER_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

if [ "${1:-}" != inside ]; then
	command -v qemu-system-x86_64 >/dev/null ||
		{ echo "SKIP: qemu-system-x86_64 missing (apt-get install qemu-system-x86)"; exit 77; }
	command -v numactl >/dev/null || { echo "SKIP: numactl missing (apt-get install numactl)"; exit 77; }
	"$src/emu/fetch-kernel.sh" >/dev/null ||
		{ echo "SKIP: the Debian kernel package is not available"; exit 77; }
	exec "$src/emu/run-in-guest.sh" --numa -- "$self" inside
fi

fail() { echo "FAIL: $*"; exit 1; }
h=$(numactl -H) || fail "numactl -H"
echo "$h"
grep -q '^available: 2 nodes (0-1)' <<<"$h" || fail "not 2 nodes"
cpus1=$(sed -n 's/^node 1 cpus:\s*//p' <<<"$h")
[ -z "$cpus1" ] || fail "node 1 has CPUs: $cpus1"
cpus0=$(sed -n 's/^node 0 cpus:\s*//p' <<<"$h")
[ "$cpus0" = "0 1" ] || fail "node 0 CPUs are '$cpus0', expected '0 1'"
size1=$(sed -n 's/^node 1 size: \([0-9]*\) MB/\1/p' <<<"$h")
[ -n "$size1" ] && [ "$size1" -gt 400 ] && [ "$size1" -le 512 ] ||
	fail "node 1 size '$size1' MB, expected about 512"
echo "ok: node 1 has $size1 MB and no CPUs"

# 64 MiB bound to node 1 must come from node 1.
before=$(sed -n 's/^node 1 free: \([0-9]*\) MB/\1/p' <<<"$h")
out=$(numactl --membind=1 sh -c 'head -c 64M /dev/zero >/dev/shm/n1; numactl -H' ) ||
	fail "numactl --membind=1"
after=$(sed -n 's/^node 1 free: \([0-9]*\) MB/\1/p' <<<"$out")
[ $((before - after)) -ge 48 ] || fail "node 1 free went $before -> $after MB after binding 64 MiB"
echo "ok: 64 MiB bound to node 1 ($before -> $after MB free)"
echo PASS
