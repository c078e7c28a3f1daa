#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Import throughput: a dense 1 GiB guest-like image (82 % zero pages, every
# page allocated, as a RAM file QEMU has written) held in the page cache,
# imported 3 times into a store on tmpfs and 3 times into a store on disk.
#   bench/import.sh [BUILDDIR] [SIZE]
set -euo pipefail
build=${1:-build}
size=${2:-1G}
w=$(mktemp -d /dev/shm/tier-import.XXXXXX)
d=$(mktemp -d /var/tmp/tier-import.XXXXXX)
trap 'rm -rf "$w" "$d"' EXIT
"$build/bench/tier-gen" --size "$size" --image "$w/sparse.img" >/dev/null
cp --sparse=never "$w/sparse.img" "$w/mem.img"
rm "$w/sparse.img"
cat "$w/mem.img" >/dev/null
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in 1 2 3; do
	printf 'store on tmpfs: '
	TIER_STORE=$w/store "$build/tierctl/tierctl" import "s$i" "$w/mem.img"
done
for i in 1 2 3; do
	printf 'store on disk:  '
	TIER_STORE=$d/store "$build/tierctl/tierctl" import "d$i" "$w/mem.img"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
