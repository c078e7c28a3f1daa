#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Keeps bench/iso.c from rotting: a short run gives a row for every mode
# and thread count (each instance's sums checked by tier-iso itself; a
# wrong byte or a page the SIGBUS mode cannot have exits 1). Timings are
# never checked.
set -eu
[ "$(id -u)" = 0 ] || { echo "skip: needs root for userfaultfd"; exit 77; }
: "${TIERCTL:?run under meson test (TIERCTL unset)}"
iso=$(dirname "$(dirname "$TIERCTL")")/bench/tier-iso
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM

"$iso" --dir "$out" --threads 1,3 --pages 64 --seconds 0.05 --reps 1 \
	--json > "$out/rows"
n=$(grep -c '"rate":' "$out/rows")
[ "$n" = 16 ] || { echo "tier-iso: $n rows, expected 16"; cat "$out/rows"; exit 1; }
for m in none reuse mmap mprotect uffd sigbus eager cow; do
	[ "$(grep -c "\"mode\":\"$m\"" "$out/rows")" = 2 ] ||
		{ echo "tier-iso: no two rows of $m"; cat "$out/rows"; exit 1; }
done
# every cell ran instances
if grep -q '"rate":0\.0,' "$out/rows"; then
	echo "tier-iso: a cell ran no instance"; cat "$out/rows"; exit 1
fi
