#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Restores under load against one real pool server ("tierctl pool serve"
# on loopback TCP): tier-load's rounds alternate 64 restores of one
# snapshot with 4 faulting threads each, and 16 restores with a larger
# lazy prefetch, every touched byte compared with the image, the server's
# RSS sampled after each round; then the server must still stop cleanly.
#
#   bench/soak.sh [--build DIR] [--seconds N] [--size SIZE] [--restores N]
#                 [--clients N] [--rss-bound KIB] [--out FILE]
#
# Defaults: the 10-minute soak of BENCHMARKS.md (600 s, an 8 MiB image).
# tests/load.sh runs it short. Needs root (userfaultfd).
set -eEuo pipefail
rc=77
trap 'echo "${0##*/}: failed at line $LINENO" >&2; exit $rc' ERR

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build seconds=600 size=8M restores=64 clients=16 bound=-1 out=
while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift 2 ;;
	--seconds) seconds=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--restores) restores=$2; shift 2 ;;
	--clients) clients=$2; shift 2 ;;
	--rss-bound) bound=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: see the top of $0" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "skip: needs root for userfaultfd"; exit 77; }
T=$build/tierctl/tierctl
for f in "$T" "$build/bench/tier-gen" "$build/bench/tier-load"; do
	[ -x "$f" ] || { echo "skip: $f not built"; exit 77; }
done

tmp=$(mktemp -d /tmp/tier-soak.XXXXXX)
cxl=$(mktemp -d /dev/shm/tier-soak-cxl.XXXXXX)
pool_pid=
cleanup() {
	[ -n "$pool_pid" ] && kill "$pool_pid" 2>/dev/null || true
	rm -rf "$tmp" "$cxl"
}
trap cleanup EXIT
export TIER_STORE=$tmp/store

"$build/bench/tier-gen" --size "$size" --seed 11 --image "$tmp/img" \
	--trace "$tmp/trained.trace" > "$tmp/gen.json"
"$T" import --quiet load "$tmp/img"
"$T" trace import load "$tmp/trained.trace"

# Under ASan the quarantine keeps freed memory (up to 256 MiB) on purpose:
# off for the server, so its RSS means what it means in a plain build.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0" \
	"$T" pool serve --listen tcp://127.0.0.1:0 --no-auth > "$tmp/serve.out" 2> "$tmp/serve.err" &
pool_pid=$!
for _ in $(seq 100); do
	grep -q "^listening on" "$tmp/serve.out" && break
	sleep 0.1
done
uri=$(sed -n 's/^listening on //p' "$tmp/serve.out")
[ -n "$uri" ]
"$T" place --cxl "cxl=dir:$cxl" --pool "pool=$uri" load > /dev/null
rc=1

echo "# tree $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$src" diff --quiet 2>/dev/null || echo '+dirty'), $(nproc) cores, $(date -u +%FT%TZ)"
echo "# image $size ($(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["pages"], "pages,", d["zero_pages"], "zero,", d["trace_pages"], "in the trace")' "$tmp/gen.json")), pool $uri"
"$build/bench/tier-load" --store "$TIER_STORE" --snap load --image "$tmp/img" \
	--server-pid "$pool_pid" --restores "$restores" --threads 4 \
	--clients "$clients" --prefetch 32 --seconds "$seconds" \
	--rss-bound "$bound" | tee "${out:-/dev/null}"

# The server served all of it and still stops on SIGTERM, exit 0.
kill -TERM "$pool_pid"
wait "$pool_pid"
pool_pid=
echo "server stopped cleanly"
