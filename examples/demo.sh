#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job on the embedded default (no CXL or RDMA hardware): generate a
# guest-like memory image, import it, import the trace of a function's run,
# place it with the tiered policy, replay the run restored by every policy
# (byte-verified), and print the comparison table.
#
#   examples/demo.sh [BUILDDIR] [SIZE]      (default: build, 256M)
set -euo pipefail
build=${1:-build}
size=${2:-256M}
tierctl=$build/tierctl/tierctl
gen=$build/bench/tier-gen
[ -x "$tierctl" ] && [ -x "$gen" ] || { echo "demo: build first (meson setup $build && ninja -C $build)" >&2; exit 1; }

work=$(mktemp -d /dev/shm/tier-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
export TIER_STORE=$work/store
cxl="cxl=dir:$work/cxl"

echo "== generate a $size image: 82% zero pages, 5% read-only hot, 1% read-write hot"
"$gen" --size "$size" --image "$work/mem.img" --trace "$work/run1.trace" >/dev/null
echo "== tierctl import"
"$tierctl" import demo "$work/mem.img"
echo "== tierctl trace import"
"$tierctl" trace import demo "$work/run1.trace" --name run1
echo "== tierctl place --policy tiered"
"$tierctl" place demo --policy tiered --cxl "$cxl"
"$tierctl" show demo --policy tiered
echo "== tierctl replay, every policy"
for p in tiered vanilla reap faasnap aquifer eager; do
	"$tierctl" place demo --policy "$p" --cxl "$cxl" >/dev/null
	"$tierctl" replay demo --trace run1 --policy "$p" --json > "$work/$p.json"
done
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
rows = [json.load(open(f"{w}/{p}.json")) for p in
        ("tiered", "vanilla", "reap", "faasnap", "aquifer", "eager")]
hdr = ("policy", "setup ms", "replay ms", "uffd faults", "pool MiB",
       "anon RSS MiB", "CXL mapped MiB", "verified", "mismatches")
print("%-8s %9s %10s %12s %9s %13s %15s %9s %10s" % hdr)
for r in rows:
    f = r["faults"]
    print("%-8s %9.2f %10.2f %12d %9.1f %13.1f %15.1f %9d %10d" % (
        r["policy"], r["setup_ms"], r["replay_ms"], sum(f.values()),
        r["pool_bytes"] / 2**20, r["anon_rss_bytes"] / 2**20,
        r["cxl_mapped_bytes"] / 2**20, r["verified_pages"], r["mismatches"]))
bad = sum(r["mismatches"] for r in rows)
print("every replayed page matched the image" if bad == 0 else f"{bad} MISMATCHES")
sys.exit(1 if bad else 0)
PY
