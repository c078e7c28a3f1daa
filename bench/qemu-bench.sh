#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The QEMU benchmark: the per-policy, per-workload table of
# examples/qemu-demo.sh, then N concurrent guests restored from one snapshot
# for tiered, reap, eager and vanilla: total local anonymous memory of the N
# guests' RAM (smaps, each at its answer) and the time to all answers (QEMU
# start to the last guest's answer; they start together), every guest's
# answer checked against emu/expect.py. Writes a markdown report (the
# "QEMU" section of BENCHMARKS.md) to $QEMU_BENCH_OUT.
#
#   bench/qemu-bench.sh [BUILDDIR] [N]         (default: build, 4; root)
# Environment: QEMU_BENCH_OUT (default /tmp/tier-qemu-bench.md),
# QEMU_BENCH_WORKLOADS (";"-separated, default "ping;kv 3 2000").
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
n=${2:-4}
out=${QEMU_BENCH_OUT:-/tmp/tier-qemu-bench.md}
IFS=';' read -r -a cworkloads <<<"${QEMU_BENCH_WORKLOADS:-ping;kv 3 2000}"
emu=$src/emu
export QEMU_DEMO_DIR=${QEMU_DEMO_DIR:-/tmp/tier-qemu-bench}
work=$QEMU_DEMO_DIR
cmdline="bench/qemu-bench.sh $*"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load=$(cut -d' ' -f1-3 /proc/loadavg)

table=$("$src/examples/qemu-demo.sh" "$build" 2>&1) || { echo "$table"; exit 1; }
echo "$table"
export TIERCTL=$build/tierctl/tierctl TIER_STORE=$work/store
slug() { tr -c 'a-zA-Z0-9\n' - <<<"$1"; }

echo "== $n concurrent guests from one snapshot"
: >"$work/concurrent"
fail=0
for w in "${cworkloads[@]}"; do
	s=vm-$(slug "$w")
	for p in tiered reap eager vanilla; do
		pids=()
		t0=$(date +%s%N)
		for i in $(seq "$n"); do
			"$emu/tier-vm.sh" restore "$work" "$s" "$p" "$w" >"$work/c.$i" 2>"$work/c.$i.err" &
			pids+=($!)
		done
		for i in $(seq "$n"); do
			wait "${pids[$((i - 1))]}" || { fail=1; cat "$work/c.$i.err" >&2; }
		done
		for i in $(seq "$n"); do
			echo "workload=$(slug "$w") n=$n $(cat "$work/c.$i")" >>"$work/concurrent"
		done
		echo "   $w $p done in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
	done
done

python3 - "$work/concurrent" "$n" "$out" "$cmdline" "$started" "$(uname -r)" "$(nproc)" "$load" <<'PY' "$table"
import sys
path, n, out, cmd, date, kver, cpus, load, table = sys.argv[1:]
n = int(n)
rows = [dict(kv.split("=", 1) for kv in l.split()) for l in open(path)]
agg = {}
for r in rows:
    a = agg.setdefault((r["workload"], r["policy"]),
                       {"anon": 0, "rss": 0, "cxl": 0, "ms": 0, "ok": 0, "n": 0})
    a["anon"] += int(r["anon_kib"])
    a["rss"] += int(r["rss_kib"])
    a["cxl"] += int(r["cxl_kib"])
    a["ms"] = max(a["ms"], float(r["all_ms"]))
    a["ok"] += r["ok"] == "1"
    a["n"] += 1
lines = []
lines.append("# QEMU: a real VM restored through tier\n")
lines.append("Command: `%s` (as root), %s, %s CPUs, kernel %s; QEMU TCG "
             "(Debian qemu-system-x86), 512 MiB workload VM, guest RAM served by "
             "the LD_PRELOAD adapter from an all-zero placeholder RAM file; CXL tier "
             "= a tmpfs directory, pool = the store's file pool. Load average at the start: "
             "%s (a shared machine: times are noisy, memory is not).\n" % (cmd, date, cpus, kver, load))
lines.append("## One guest per policy and workload\n")
lines.append("start->answer: QEMU start to the answer; faults: userfaultfd faults "
             "after start by class; anon: local anonymous memory of the guest RAM "
             "(smaps) at the answer; CXL: guest RAM mapped from the CXL tier; RSS: all "
             "resident guest-RAM pages (anon + CXL-mapped + page cache of an image "
             "mapped from local storage).\n")
lines.append("```")
tl = table.splitlines()
start = next((i for i, l in enumerate(tl) if l.startswith("policy ")), 0)
lines += [l for l in tl[start:] if l.strip() and not l.startswith("(work")]
lines.append("```\n")
lines.append("## N = %d concurrent guests restored from one snapshot\n" % n)
lines.append("Total over the %d guests; time = QEMU start to the last guest's answer "
             "(all start together on %s CPUs). RSS and CXL-mapped are summed per guest, "
             "so a page shared between the guests (CXL-mapped, page cache) counts once "
             "per guest.\n" % (n, cpus))
lines.append("| workload | policy | total anon MiB | total RSS MiB | total CXL-mapped MiB | time to all answers ms | correct |")
lines.append("|---|---|---:|---:|---:|---:|---|")
wls = []
for (w, p) in agg:
    if w not in wls:
        wls.append(w)
ok_all = True
for w in wls:
    for p in ("tiered", "reap", "eager", "vanilla"):
        a = agg.get((w, p))
        if not a:
            continue
        ok_all &= a["ok"] == a["n"] == n
        lines.append("| %s | %s | %.1f | %.1f | %.1f | %.0f | %d/%d |" % (
            w, p, a["anon"] / 1024, a["rss"] / 1024, a["cxl"] / 1024, a["ms"], a["ok"], a["n"]))
lines.append("")
lines.append("Ratios of total local anonymous memory at N = %d (target: tiered <= 0.5x reap and eager):\n" % n)
for w in wls:
    t, r, e = (agg.get((w, p), {}).get("anon", 0) for p in ("tiered", "reap", "eager"))
    lines.append("- %s: tiered/reap = %.3f, tiered/eager = %.3f" % (
        w, t / r if r else float("nan"), t / e if e else float("nan")))
lines.append("")
lines.append("Every guest answered correctly: %s." % ("yes" if ok_all else "NO"))
lines.append("vanilla maps the image MAP_PRIVATE from local storage: few anonymous "
             "pages, but its resident pages are the image's page cache in local DRAM "
             "(shared between the guests; see RSS).")
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
[ $fail = 0 ] || { echo "qemu-bench: some guests failed" >&2; exit 1; }
echo "results: $out"
