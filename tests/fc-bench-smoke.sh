#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# suite: root -- keeps bench/fc-bench.py from rotting: its --quick run (a
# 64 MiB image, one run of each configuration) must give every table with
# its numbers and every page the harness read right. Timings are never
# checked; the counts that do not depend on them are.
set -eu
[ "$(id -u)" = 0 ] || { echo "skip: needs root for userfaultfd"; exit 77; }
command -v python3 >/dev/null || { echo "skip: needs python3"; exit 77; }
: "${TIERCTL:?run under meson test (TIERCTL unset)}"
: "${FC_HARNESS:?run under meson test (FC_HARNESS unset)}"
src=${TIER_SRCDIR:-$(dirname "$0")/..}
build=$(dirname "$(dirname "$TIERCTL")")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM

python3 "$src/bench/fc-bench.py" --build "$build" --quick --json "$out/r.json" \
	>"$out/report" 2>"$out/log" || { cat "$out/log" "$out/report"; exit 1; }

python3 - "$out/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = []
if r.get("error"):
    bad.append("run failed: " + r["error"])
for k in ("missing_fault_ns_per_page", "uffd_copy_batch512_ns_per_page"):
    for f in ("floor", "floor_end"):
        if not isinstance(r.get(f, {}).get(k), (int, float)):
            bad.append("%s: no %s" % (f, k))
runs = r.get("runs", {})
lat = runs.get("latency", {})
for pol in ("tiered cold", "vanilla cold", "tiered zero"):
    for w in (1, 8):
        x = lat.get("%s w%d" % (pol, w))
        if x is None:
            bad.append("latency %s w%d: no result" % (pol, w))
            continue
        for k in ("fault_p50_ns", "fault_p99_ns", "fault_max_ns",
                  "fault_mean_ns", "service_ns_per_fault", "p50_over_floor"):
            if not isinstance(x.get(k), (int, float)):
                bad.append("latency %s w%d: no %s" % (pol, w, k))
        # every touch but the first is a fault the handler served
        if x.get("faulted") != x["samples"][0]["touches"] - 1:
            bad.append("latency %s w%d: %s of %s touches faulted" % (
                pol, w, x.get("faulted"), x["samples"][0]["touches"]))
        if pol.endswith("zero") and x.get("zero_faults") != x.get("faults"):
            bad.append("latency %s w%d: not every fault a zero page's" % (pol, w))
tr = runs.get("trained", {})
for th in (1, 2):
    for pol in ("tiered", "reap", "vanilla", "eager", "tiered-tcp"):
        x = tr.get("%s %dt" % (pol, th))
        if x is None:
            bad.append("trained %s %dt: no result" % (pol, th))
            continue
        for k in ("connect_to_first_touch_us", "connect_to_last_touch_us",
                  "faults", "prefetched", "lazy", "copied", "prefetch_us"):
            if not isinstance(x.get(k), (int, float)):
                bad.append("trained %s %dt: no %s" % (pol, th, k))
        if pol != "vanilla" and not x.get("prefetch_ns_per_page"):
            bad.append("trained %s %dt: no prefetch rate" % (pol, th))
        if pol.startswith("tiered") and x.get("faults") != 0:
            bad.append("trained %s %dt: %s faults" % (pol, th, x.get("faults")))
        if pol == "vanilla" and x.get("prefetched") != 0:
            bad.append("trained vanilla %dt: pages prefetched" % th)
for t in list(lat.values()) + list(tr.values()):
    for s in t.get("samples", []):
        if s.get("wrong") != 0 or not s.get("compared"):
            bad.append("a run compared %s pages, %s wrong" % (
                s.get("compared"), s.get("wrong")))
if len(r.get("checks", [])) != 4:
    bad.append("targets: %s" % [c["target"] for c in r.get("checks", [])])
for b in bad:
    print("fc-bench-smoke: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
echo "fc-bench-smoke: every table complete, every page right"
