#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Restores from RADOS against the memory pools, on one cluster, one run.

Starts a one-host cluster (emu/ceph-cluster.sh; or --ceph-dir names a
running one), a pool server on loopback, and one snapshot: an image of
--mib MiB (a quarter of its pages zero), a hot trace writing the first
half's pages (the tiered plan's rw set, prefetched from the pool before
the guest runs) and a cold trace touching every 7th page of the second
half (faults served from the pool). For each pool -- file:, tcp://,
rados:// direct, tcp:// with --backing rados:// (its server restarted
empty before each restore: the first OPEN loads from RADOS; and warm) --
it places tiered there and replays the cold trace --reps times with
--latency (setup, prefetch throughput of the rw set, fault p50/p99), then
8 restores at once. The floor is `rados bench` on the same cluster:
sequential reads of 4 MiB objects (the segment's object size) for the
prefetch, one-at-a-time reads of 32 KiB objects (a fault's window of 8
pages), and p50/p99 of single 32 KiB reads at random offsets of a 4 MiB
object through Ceph's own binding (python3-rados) for a fault. Prints a Markdown table, writes JSON with --json.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = 4096


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          **kw)


def make_snapshot(tmp, mib):
    n = mib * 256
    with open(f"{tmp}/img", "wb") as f:
        for p in range(n):
            if p % 4 == 0:
                f.write(bytes(PG))
            else:
                f.write(p.to_bytes(8, "little") + bytes([(p * 31) & 0xff]) * (PG - 8))
    with open(f"{tmp}/hot.trace", "w") as f:
        for p in range(1, n // 2):
            if p % 4:
                f.write(f"{hex(p * PG)} w\n")
    with open(f"{tmp}/cold.txt", "w") as f:
        for p in range(n // 2 + 1, n, 7):
            if p % 4:
                f.write(f"{hex(p * PG)} r\n")


class Server:
    def __init__(self, tierctl, tmp, backing):
        self.tierctl, self.tmp, self.backing = tierctl, tmp, backing
        self.port, self.proc = 0, None

    def start(self):
        args = [self.tierctl, "pool", "serve", "--listen",
                f"tcp://127.0.0.1:{self.port}", "--no-auth",
                "--backing", self.backing]
        self.err = open(f"{self.tmp}/srv.err", "a")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r":(\d+)$", line.strip())
        if not m:
            sys.exit(f"pool serve did not start: {line!r}")
        self.port = int(m.group(1))

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.err.close()

    def restart(self):
        self.stop()
        self.start()


def replay(tierctl, extra):
    out = sh([tierctl, "replay", "--json", "--policy", "tiered",
              "--trace-file", os.environ["TIER_BENCH_COLD"]] + extra + ["vm"])
    d = json.loads(out.stdout)
    if d["mismatches"] or d["verified_pages"] != d["trace_pages"] * d["instances"]:
        sys.exit(f"replay verified {d['verified_pages']}, mismatches {d['mismatches']}")
    return d


def one(tierctl, restart=None, extra=()):
    if restart:
        restart()
    d = replay(tierctl, ["--latency"] + list(extra))
    inst = d["per_instance"][0]
    rw_bytes = d["pages"]["rw"] * PG
    return {
        "setup_ms": d["setup_ms"],
        "prefetch_ms": inst["prefetch_ms"],
        "prefetch_mbs": rw_bytes / 1e6 / (inst["prefetch_ms"] / 1e3),
        "p50_us": d["fault_latency"]["p50_ns"] / 1e3,
        "p99_us": d["fault_latency"]["p99_ns"] / 1e3,
        "faults": d["fault_latency"]["n"],
    }


def eight(tierctl, restart=None):
    if restart:
        restart()
    d = replay(tierctl, ["--instances", "8"])
    return {"setup_ms": d["setup_ms"], "setup_ms_max": d["setup_ms_max"],
            "replay_ms": d["replay_ms"], "replay_ms_max": d["replay_ms_max"]}


def rados_bench(cdir, secs):
    base = ["rados", "-c", f"{cdir}/ceph.conf", "--id", "tier", "-k",
            f"{cdir}/client.tier.keyring", "-p", "tier"]

    def field(out, name):
        m = re.search(rf"^{re.escape(name)}:\s+([0-9.e+-]+)", out, re.M)
        return float(m.group(1))

    r = {}
    sh(base + ["bench", str(secs), "write", "-b", "4194304", "-t", "16",
               "--no-cleanup", "--run-name", "tb4m"])
    out = sh(base + ["bench", str(secs), "seq", "-t", "16", "--run-name",
                     "tb4m"]).stdout
    r["seq_4m_mbs"] = field(out, "Bandwidth (MB/sec)") * 1.048576
    sh(base + ["bench", str(secs), "write", "-b", "32768", "-t", "1",
               "--no-cleanup", "--run-name", "tb32k"])
    out = sh(base + ["bench", str(secs), "rand", "-t", "1", "--run-name",
                     "tb32k"]).stdout
    r["rand_32k_avg_us"] = field(out, "Average Latency(s)") * 1e6
    r["rand_32k_min_us"] = field(out, "Min latency(s)") * 1e6
    for name in ("tb4m", "tb32k"):
        sh(base + ["cleanup", "--run-name", name])
    return r


# Ceph's own Python binding (python3-rados, for Debian's python3): one
# 32 KiB read at a time at random offsets of a 4 MiB object, timed each.
FLOOR_LAT = r"""
import json, random, sys, time, rados
conf, keyring, ns, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = rados.Rados(conffile=conf, rados_id="tier", conf={"keyring": keyring})
c.connect()
io = c.open_ioctx("tier")
io.set_namespace(ns)
io.write_full("floor", bytes(random.getrandbits(8) for _ in range(4096)) * 1024)
ns_ = []
for i in range(n):
    off = random.randrange(0, 128) * 32768
    t = time.perf_counter_ns()
    b = io.read("floor", 32768, off)
    ns_.append(time.perf_counter_ns() - t)
    assert len(b) == 32768
io.remove_object("floor")
ns_.sort()
print(json.dumps({"p50_us": ns_[n // 2] / 1e3, "p99_us": ns_[n * 99 // 100] / 1e3}))
"""


def floor_lat(cdir, ns, n=2000):
    out = sh(["/usr/bin/python3", "-c", FLOOR_LAT, f"{cdir}/ceph.conf",
              f"{cdir}/client.tier.keyring", ns, str(n)]).stdout
    return json.loads(out)


def med(runs, key):
    return statistics.median(x[key] for x in runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=f"{SRC}/build")
    ap.add_argument("--ceph-dir", help="a running cluster (emu/ceph-cluster.sh)")
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--bench-secs", type=int, default=5)
    ap.add_argument("--object-sizes", default="1M,4M,16M",
                    help="rados:// direct again with each object size (the URI's object_size)")
    ap.add_argument("--only-sweep", action="store_true",
                    help="the object-size sweep alone (no pools, no floor)")
    ap.add_argument("--json")
    args = ap.parse_args()
    tierctl = f"{args.build}/tierctl/tierctl"
    tmp = tempfile.mkdtemp(prefix="tier-ceph-bench.")
    own = srv = None
    res = {"mib": args.mib, "reps": args.reps}
    try:
        cdir = args.ceph_dir
        if not cdir:
            cdir = own = f"{tmp}/ceph"
            t0 = time.monotonic()
            # room for rados bench's writes, three replicas each (the
            # default 1 GiB OSDs fill up and block them)
            sh([f"{SRC}/emu/ceph-cluster.sh", "start", cdir],
               env=dict(os.environ, CEPH_OSD_MB="4096"))
            res["cluster_start_s"] = round(time.monotonic() - t0, 1)
        ns = f"bench{os.getpid()}"
        rados = (f"rados://tier/{ns}?id=tier&conf={cdir}/ceph.conf"
                 f"&keyring={cdir}/client.tier.keyring")
        os.environ["TIER_STORE"] = f"{tmp}/store"
        os.environ["TIER_BENCH_COLD"] = f"{tmp}/cold.txt"
        make_snapshot(tmp, args.mib)
        sh([tierctl, "import", "vm", f"{tmp}/img"])
        sh([tierctl, "trace", "import", "vm", f"{tmp}/hot.trace"])
        srv = Server(tierctl, tmp, rados)
        srv.start()
        tcp = f"tcp://127.0.0.1:{srv.port}"
        cases = [
            ("file:", ["--pool", f"file:{tmp}/fpool"], None),
            ("tcp://", ["--pool", tcp], None),
            ("rados:// direct", ["--pool", rados], None),
            ("tcp:// --backing, cold (restarted empty)",
             ["--pool", tcp, "--backing", rados], srv.restart),
            ("tcp:// --backing, warm", None, None),
        ]
        rows = []
        for name, place, restart in [] if args.only_sweep else cases:
            if place is not None:
                sh([tierctl, "place", "--cxl", f"cxl=dir:{tmp}/cxl",
                    "--policy", "tiered"] + place + ["vm"])
            runs = [one(tierctl, restart) for _ in range(args.reps)]
            row = {"pool": name, "runs": runs,
                   "eight": eight(tierctl, restart)}
            for k in ("setup_ms", "prefetch_mbs", "p50_us", "p99_us"):
                row[k] = med(runs, k)
            row["faults"] = runs[0]["faults"]
            rows.append(row)
            print(f"{name}: setup {row['setup_ms']:.1f} ms, prefetch "
                  f"{row['prefetch_mbs']:.0f} MB/s, p50 {row['p50_us']:.1f} "
                  f"us, p99 {row['p99_us']:.1f} us", file=sys.stderr)
        srv.stop()
        res["rows"] = rows
        sweep = []
        for osz in [x for x in args.object_sizes.split(",") if x]:
            sh([tierctl, "place", "--cxl", f"cxl=dir:{tmp}/cxl", "--policy",
                "tiered", "--pool", f"{rados}&object_size={osz}", "vm"])
            runs = [one(tierctl) for _ in range(args.reps)]
            row = {"object_size": osz, "runs": runs}
            for k in ("setup_ms", "prefetch_mbs", "p50_us", "p99_us"):
                row[k] = med(runs, k)
            sweep.append(row)
            print(f"object_size {osz}: setup {row['setup_ms']:.1f} ms, prefetch "
                  f"{row['prefetch_mbs']:.0f} MB/s, p50 {row['p50_us']:.1f} us",
                  file=sys.stderr)
        res["sweep"] = sweep
        if not args.only_sweep:
            res["floor"] = rados_bench(cdir, args.bench_secs)
            res["floor"].update({"read_32k_" + k: v for k, v in
                                 floor_lat(cdir, ns).items()})
    finally:
        if srv and srv.proc.poll() is None:
            srv.proc.kill()
        if own:
            subprocess.run([f"{SRC}/emu/ceph-cluster.sh", "stop", own])
        shutil.rmtree(tmp, ignore_errors=True)

    f = res.get("floor")
    if f:
        print_table(res, f)
    if res["sweep"]:
        print("\n| rados:// direct, object size | setup ms | prefetch MB/s | fault p50 µs | fault p99 µs |")
        print("|---|---|---|---|---|")
        for r in res["sweep"]:
            print(f"| {r['object_size']} | {r['setup_ms']:.1f} | {r['prefetch_mbs']:.0f} | "
                  f"{r['p50_us']:.1f} | {r['p99_us']:.1f} |")
    if "cluster_start_s" in res:
        print(f"cluster start to HEALTH_OK: {res['cluster_start_s']} s")
    if args.json:
        with open(args.json, "w") as fp:
            json.dump(res, fp, indent=1)


def print_table(res, f):
    print("| pool | setup ms | prefetch MB/s (× rados seq 4 MiB) | fault p50 µs "
          "(× one 32 KiB rados read, p50) | fault p99 µs | 8 at once: setup ms mean / max, replay ms mean / max |")
    print("|---|---|---|---|---|---|")
    for r in res["rows"]:
        e = r["eight"]
        print(f"| {r['pool']} | {r['setup_ms']:.1f} | {r['prefetch_mbs']:.0f} "
              f"({r['prefetch_mbs'] / f['seq_4m_mbs']:.2f}×) | {r['p50_us']:.1f} "
              f"({r['p50_us'] / f['read_32k_p50_us']:.2f}×) | {r['p99_us']:.1f} | "
              f"{e['setup_ms']:.0f} / {e['setup_ms_max']:.0f}, "
              f"{e['replay_ms']:.0f} / {e['replay_ms_max']:.0f} |")
    print(f"\nfloor: rados bench seq 4 MiB objects -t 16 {f['seq_4m_mbs']:.0f} MB/s; "
          f"rand 32 KiB objects -t 1 average {f['rand_32k_avg_us']:.0f} µs "
          f"(min {f['rand_32k_min_us']:.0f} µs); one 32 KiB read of a 4 MiB object at a "
          f"time (python3-rados) p50 {f['read_32k_p50_us']:.0f} µs, p99 {f['read_32k_p99_us']:.0f} µs")


if __name__ == "__main__":
    main()
