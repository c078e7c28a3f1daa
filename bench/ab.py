#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Paired A/B of two builds of tier: the same store, replays alternated.

One store is prepared (tier-gen image, import, trained trace, place) with
build B; then each pair replays the policy once with A's tierctl and once
with B's, in random order, each a fresh process, so the host's noise hits
both alike. Done for the local pool (the plan's file pool) and for a pool
served over loopback TCP by B's "tierctl pool serve". Prints, per pool,
the median setup and total (setup + replay) of each build, B/A, and in
how many pairs B was faster.

    bench/ab.py --a OLD_BUILD --b NEW_BUILD [--pairs 30] [--size 1G]
"""
import argparse
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as rb  # noqa: E402  (bench/run.py: the store and the replays)


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def tools_of(build):
    ns = argparse.Namespace(build=build)
    saved = os.environ.pop("TIERCTL", None)
    try:
        return rb.find_tools(ns)
    finally:
        if saved is not None:
            os.environ["TIERCTL"] = saved


def pairs(b, ta, tb, policy, n, pool=None):
    res = {"a": [], "b": []}
    for _ in range(n):
        order = ["a", "b"]
        random.shuffle(order)
        for k in order:
            b.t["tierctl"] = (ta if k == "a" else tb)["tierctl"]
            r = b.replay(policy, pool=pool)
            if rb.g(r, "mismatches") or not rb.g(r, "verified_pages"):
                raise rb.BenchError("%s: replay verified %s pages, %s "
                                    "mismatches" % (k, rb.g(r, "verified_pages"),
                                                    rb.g(r, "mismatches")))
            res[k].append((rb.g(r, "setup_ms"), rb.g(r, "setup_ms") +
                           rb.g(r, "replay_ms"), rb.g(r, "verified_pages")))
    b.t["tierctl"] = tb["tierctl"]
    out = {}
    for what, i in (("setup_ms", 0), ("total_ms", 1)):
        ma = median(x[i] for x in res["a"])
        mb = median(x[i] for x in res["b"])
        faster = sum(y[i] < x[i] for x, y in zip(res["a"], res["b"]))
        out[what] = {"a": round(ma, 2), "b": round(mb, 2),
                     "b_over_a": round(mb / ma, 3) if ma else None,
                     "b_faster": "%d of %d" % (faster, n)}
    out["verified_pages_min"] = min(x[2] for k in res for x in res[k])
    out["samples"] = res
    return out


def serve_tcp(b, tb):
    d = os.path.join(b.tmp, "tcp-pool")
    os.makedirs(d, exist_ok=True)
    srv = subprocess.Popen([tb["tierctl"], "pool", "serve", "--no-auth", "--listen",
                            "tcp://127.0.0.1:0", "--dir", d],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
    line = ""
    if select.select([srv.stdout], [], [], 30)[0]:
        line = srv.stdout.readline()
    m = re.search(r"listening on (tcp://[\w.:\[\]-]+)", line)
    if not m:
        srv.kill()
        raise rb.BenchError("pool serve did not say where it listens")
    return srv, m.group(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", required=True, help="build directory A (before)")
    ap.add_argument("--b", required=True, help="build directory B (after)")
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--policy", default="tiered")
    ap.add_argument("--size", type=rb.parse_size, default=rb.parse_size("1G"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dir", default="/dev/shm")
    ap.add_argument("--no-tcp", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    ta, tb = tools_of(args.a), tools_of(args.b)

    # what bench/run.py's Bench expects of its options
    ns = argparse.Namespace(size=args.size, zero=82, ro=5, rw=1,
                            seed=args.seed, diff=2, cold_touch=0, flip=0.5,
                            policies=[args.policy], keep=False, reps=1)
    tmp = tempfile.mkdtemp(prefix="tier-ab.", dir=args.dir)
    b = rb.Bench(ns, dict(tb), tmp)
    result = {"command": " ".join(["bench/ab.py"] + sys.argv[1:]),
              "a": os.path.abspath(args.a), "b": os.path.abspath(args.b),
              "machine": rb.machine_notes(), "loadavg_start": rb.loadavg(),
              "runs": {}}
    srv = None
    try:
        b.prepare()
        result["runs"]["local"] = pairs(b, ta, tb, args.policy, args.pairs)
        if not args.no_tcp:
            srv, uri = serve_tcp(b, tb)
            b.tierctl("place", "--policy", args.policy, "--trace", "trained",
                      "--cxl", b.cxl, "--pool", uri, rb.SNAP)
            result["runs"]["tcp"] = pairs(b, ta, tb, args.policy, args.pairs)
    except rb.BenchError as e:
        print("ab.py: %s" % e, file=sys.stderr)
        return 1
    finally:
        if srv:
            srv.send_signal(signal.SIGTERM)
            srv.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    result["loadavg_end"] = rb.loadavg()

    print("%s, %s, %d pairs, policy %s; A = %s, B = %s" % (
        result["machine"], rb.fmt_size(args.size), args.pairs, args.policy,
        args.a, args.b))
    print("%-6s %-9s %9s %9s %7s %12s" % ("pool", "metric", "A ms", "B ms",
                                          "B/A", "B faster"))
    for name, r in result["runs"].items():
        for what in ("setup_ms", "total_ms"):
            x = r[what]
            print("%-6s %-9s %9.2f %9.2f %7.3f %12s" % (
                name, what[:-3], x["a"], x["b"], x["b_over_a"], x["b_faster"]))
        print("%-6s every replay verified >= %d pages, no mismatch" % (
            name, r["verified_pages_min"]))
    print("loadavg %s -> %s" % (result["loadavg_start"], result["loadavg_end"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
