#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Keeps bench/ from rotting: a small run of the whole benchmark must give a
# full table (every policy, every page verified). Timings are never checked.
set -eu
[ "$(id -u)" = 0 ] || { echo "skip: needs root for userfaultfd"; exit 77; }
: "${TIERCTL:?run under meson test (TIERCTL unset)}"
src=${TIER_SRCDIR:-$(dirname "$0")/..}
build=$(dirname "$(dirname "$TIERCTL")")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM

# tier-gen: same seed, same bytes; its summary matches what it wrote.
gen=$build/bench/tier-gen
"$gen" --size 16M --seed 7 --image "$out/a.img" --trace "$out/a.trace" \
	--trace2 "$out/a2.trace" > "$out/a.json"
"$gen" --size 16M --seed 7 --image "$out/b.img" --trace "$out/b.trace" \
	--trace2 "$out/b2.trace" > "$out/b.json"
cmp "$out/a.img" "$out/b.img"
cmp "$out/a.trace" "$out/b.trace"
cmp "$out/a2.trace" "$out/b2.trace"
"$gen" --size 16M --seed 8 --trace "$out/c.trace" > /dev/null
! cmp -s "$out/a.trace" "$out/c.trace"
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
s = json.load(open(d + "/a.json"))
img = open(d + "/a.img", "rb").read()
pages = [img[i:i + 4096] for i in range(0, len(img), 4096)]
zero = {i for i, p in enumerate(pages) if not any(p)}
assert len(pages) == s["pages"] == 4096, s
assert len(zero) == s["zero_pages"], (len(zero), s["zero_pages"])
assert len(set(pages[i] for i in range(len(pages)) if i not in zero)) == \
    s["nonzero_pages"], "non-zero pages are not all distinct"
kinds = {"r": 0, "w": 0, "rw": 0}
seen = set()
for line in open(d + "/a.trace"):
    if line.startswith("#"):
        continue
    off, kind = line.split()
    pg = int(off, 16) // 4096
    assert int(off, 16) % 4096 == 0 and pg not in zero and pg not in seen, line
    seen.add(pg)
    kinds[kind] += 1
assert len(seen) == s["trace_pages"] == s["ro_pages"] + s["rw_pages"], s
assert (kinds["r"], kinds["rw"], kinds["w"]) == \
    (s["kind_r"], s["kind_rw"], s["kind_w"]), (kinds, s)
PY

python3 "$src/bench/run.py" --build "$build" --size 64M --reps 1 --floor-reps 1 \
	--floor-mib 8 --json "$out/result.json"

python3 - "$out/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
want = {"local": ["tiered", "vanilla", "reap", "faasnap", "aquifer", "eager"],
        "multi": ["tiered", "eager"], "tcp": ["tiered", "aquifer"]}
bad = []
if r.get("error"):
    bad.append("run failed: " + r["error"])
for run, pols in want.items():
    got = r.get("runs", {}).get(run, {}).get("policies", {})
    for p in pols:
        x = got.get(p)
        if x is None:
            bad.append("%s/%s: no result" % (run, p))
            continue
        for k in ("setup_ms", "replay_ms", "faults", "pool_bytes",
                  "anon_rss_bytes"):
            if k not in x:
                bad.append("%s/%s: no %s" % (run, p, k))
        if x.get("mismatches") != 0:
            bad.append("%s/%s: mismatches %r" % (run, p, x.get("mismatches")))
        if not x.get("verified_pages"):
            bad.append("%s/%s: no page verified" % (run, p))
sp = r.get("floor", {}).get("two_thread_speedup")
# a measured rate: only that it was measured (a loaded machine gives any)
if not isinstance(sp, (int, float)) or not sp > 0:
    bad.append("floor: two_thread_speedup %r" % (sp,))
targets = [c["target"] for c in r.get("checks", [])]
if len(targets) < 4:
    bad.append("only %d targets evaluated: %s" % (len(targets), targets))
for b in bad:
    print("bench-smoke: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
echo "bench-smoke: full table, every page verified"
