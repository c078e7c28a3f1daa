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

python3 "$src/bench/run.py" --build "$build" --size 64M --floor-reps 1 \
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
targets = [c["target"] for c in r.get("checks", [])]
if len(targets) < 4:
    bad.append("only %d targets evaluated: %s" % (len(targets), targets))
for b in bad:
    print("bench-smoke: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
echo "bench-smoke: full table, every page verified"
