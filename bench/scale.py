#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""How a restore grows with instances and image size (bench/README.md).

For each image size (default 256M, 1G, 4G): generate an image and its trace
with the restore benchmark's defaults (tier-gen), import, place tiered and
eager, measure the floor once, then restore 1, 8 and 32 instances at once
(tierctl replay --instances N, N processes) under each policy, once each.
Prints one table (setup and replay per instance, local memory in total
and per instance) and writes it as JSON and an SVG plot, so a user sees
where it bends. Eager is skipped where its private copies would not fit
(--mem-budget): it copies every non-zero page into every instance.
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as rb  # noqa: E402  (the restore benchmark's driver)

MIB = 1 << 20


def est_eager_bytes(size, zero, n):
    """What eager would hold: every non-zero page, in every instance."""
    return int(size * (100 - zero) / 100) * n


def measure(args, tools, size):
    tmp = tempfile.mkdtemp(prefix="tier-scale.", dir=args.dir)
    a = argparse.Namespace(size=size, zero=args.zero, ro=args.ro, rw=args.rw,
                           seed=args.seed, diff=2, cold_touch=0, flip=0.5,
                           keep=False, policies=args.policies,
                           floor_reps=args.floor_reps, floor_mib=64)
    b = rb.Bench(a, tools, tmp)
    rows = []
    try:
        b.floor()       # first: place chooses clusters by its rates
        b.prepare()
        for n in args.instances:
            for p in args.policies:
                row = {"size": size, "instances": n, "policy": p}
                if p == "eager" and est_eager_bytes(size, args.zero, n) > \
                        args.mem_budget:
                    row["skipped"] = ("eager would hold ~%d MiB (budget %d)"
                                      % (est_eager_bytes(size, args.zero, n)
                                         // MIB, args.mem_budget // MIB))
                    rb.log("scale.py: %s x%d: %s" % (rb.fmt_size(size), n,
                                                     row["skipped"]))
                    rows.append(row)
                    continue
                r = b.replay(p, instances=n)
                anon = rb.g(r, "anon_rss_bytes")
                row.update({
                    "setup_ms": rb.g(r, "setup_ms"),
                    "setup_ms_max": rb.g(r, "setup_ms_max"),
                    "replay_ms": rb.g(r, "replay_ms"),
                    "replay_ms_max": rb.g(r, "replay_ms_max"),
                    "anon_mib": anon / MIB,
                    "anon_mib_per": anon / MIB / n,
                    "cxl_mib": rb.g(r, "cxl_mapped_bytes") / MIB,
                    "faults": rb.faults_total(r),
                    "verified": rb.g(r, "verified_pages"),
                    "mismatches": rb.g(r, "mismatches"),
                    "wall_s": r.get("wall_s"),
                })
                rows.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"size": size, "gen": b.gen, "floor": b.result.get("floor"),
            "import_s": b.result.get("import_s"),
            "place_s": b.result.get("place_s"), "rows": rows}


def print_table(res, out=sys.stdout):
    print("size   policy  N   setup_ms(mean,max)  replay_ms(mean,max)  "
          "anon_MiB  anon/inst  cxl_MiB  faults  verified  mism", file=out)
    for s in res["sizes"]:
        for r in s["rows"]:
            lead = "%-6s %-7s %-3d" % (rb.fmt_size(r["size"]), r["policy"],
                                       r["instances"])
            if "skipped" in r:
                print(lead + " skipped: " + r["skipped"], file=out)
                continue
            print(lead + " %8.2f,%-9.2f %9.2f,%-9.2f %9.1f %10.2f %8.1f "
                  "%7d %9d %5d" % (r["setup_ms"], r["setup_ms_max"],
                                   r["replay_ms"], r["replay_ms_max"],
                                   r["anon_mib"], r["anon_mib_per"],
                                   r["cxl_mib"], r["faults"], r["verified"],
                                   r["mismatches"]), file=out)


def svg_plot(res, path):
    """Two panels, instances across (evenly spaced), log-scaled values up:
    mean setup per instance, and local memory per instance, one line per
    (size, policy); eager dashed."""
    W, H, M, R = 1000, 380, 60, 90
    pw = (W - 3 * M - 2 * R) / 2
    ns = sorted({r["instances"] for s in res["sizes"] for r in s["rows"]})
    lines = {}
    for s in res["sizes"]:
        for r in s["rows"]:
            if "skipped" not in r:
                lines.setdefault((r["size"], r["policy"]), []).append(r)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
              "#8c564b", "#e377c2", "#7f7f7f"]
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>']

    def panel(x0, key, title):
        vals = [r[key] for ls in lines.values() for r in ls if r[key] > 0]
        lo = math.floor(math.log10(min(vals))) if vals else 0
        hi = math.ceil(math.log10(max(vals))) if vals else 1
        hi = max(hi, lo + 1)
        y0, ph = M, H - 2 * M

        def X(n):
            return x0 + pw * ns.index(n) / max(1, len(ns) - 1)

        def Y(v):
            v = max(v, 10 ** lo)
            return y0 + ph - ph * (math.log10(v) - lo) / (hi - lo)
        out.append('<text x="%d" y="%d" font-size="13">%s</text>'
                   % (x0, y0 - 20, title))
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'
                   % (x0, y0 + ph, x0 + pw, y0 + ph))
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'
                   % (x0, y0, x0, y0 + ph))
        for n in ns:
            out.append('<text x="%.0f" y="%d" text-anchor="middle">%d</text>'
                       % (X(n), y0 + ph + 15, n))
        out.append('<text x="%.0f" y="%d" text-anchor="middle">instances'
                   '</text>' % (x0 + pw / 2, y0 + ph + 32))
        for e in range(lo, hi + 1):
            out.append('<text x="%d" y="%.0f" text-anchor="end">%g</text>'
                       % (x0 - 4, Y(10 ** e) + 4, 10 ** e))
            out.append('<line x1="%d" y1="%.0f" x2="%.0f" y2="%.0f" '
                       'stroke="#ddd"/>' % (x0, Y(10 ** e), x0 + pw,
                                           Y(10 ** e)))
        for c, ((size, pol), ls) in enumerate(sorted(lines.items())):
            pts = " ".join("%.1f,%.1f" % (X(r["instances"]), Y(r[key]))
                           for r in ls)
            col = colors[c % len(colors)]
            dash = ' stroke-dasharray="5,3"' if pol == "eager" else ""
            out.append('<polyline points="%s" fill="none" stroke="%s" '
                       'stroke-width="2"%s/>' % (pts, col, dash))
            last = ls[-1]
            out.append('<text x="%.0f" y="%.0f" fill="%s">%s %s</text>'
                       % (X(last["instances"]) + 4, Y(last[key]), col,
                          pol, rb.fmt_size(size)))

    panel(M, "setup_ms", "setup per instance, mean (ms)")
    panel(2 * M + pw + R, "anon_mib_per", "local memory per instance (MiB)")
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="256M,1G,4G",
                    help="image sizes, K/M/G suffix (default 256M,1G,4G)")
    ap.add_argument("--instances", default="1,8,32",
                    help="instance counts (default 1,8,32)")
    ap.add_argument("--policies", default="tiered,eager")
    ap.add_argument("--zero", type=float, default=82)
    ap.add_argument("--ro", type=float, default=5)
    ap.add_argument("--rw", type=float, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--floor-reps", type=int, default=3)
    ap.add_argument("--mem-budget", type=rb.parse_size,
                    default=rb.parse_size("8G"),
                    help="skip eager where its copies would exceed this "
                    "(default 8G)")
    ap.add_argument("--dir", default="/dev/shm")
    ap.add_argument("--build")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--svg", metavar="FILE", help="write the plot here")
    args = ap.parse_args()
    sizes = [rb.parse_size(s) for s in args.sizes.split(",") if s]
    args.instances = [int(n) for n in args.instances.split(",") if n]
    args.policies = [p for p in args.policies.split(",") if p]
    for p in args.policies:
        if p not in rb.POLICIES:
            ap.error("unknown policy %r" % p)
    try:
        tools = rb.find_tools(args)
    except rb.BenchError as e:
        rb.log("scale.py: %s" % e)
        return 1
    res = {"command": " ".join(["scale.py"] + sys.argv[1:]),
           "machine": rb.machine_notes(), "tree": rb.tree_version(),
           "loadavg_start": rb.loadavg(), "sizes": []}
    rc = 0
    for size in sizes:
        try:
            res["sizes"].append(measure(args, tools, size))
        except rb.BenchError as e:
            rb.log("scale.py: %s: %s" % (rb.fmt_size(size), e))
            rc = 1
            break
    res["loadavg_end"] = rb.loadavg()
    print("tier scale  (%s; tree %s)" % (res["machine"], res["tree"]))
    print("command: %s" % res["command"])
    print("load average: %s at start, %s at end"
          % (res["loadavg_start"], res["loadavg_end"]))
    print_table(res)
    if any(r.get("mismatches") for s in res["sizes"] for r in s["rows"]):
        rc = 1
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    if args.svg and res["sizes"]:
        svg_plot(res, args.svg)
    return rc


if __name__ == "__main__":
    sys.exit(main())
