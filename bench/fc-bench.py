#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Firecracker handler benchmark (bench/README.md, "fc-bench.py").

"tierctl fc-handler" serving tests/fc-harness (which does to it what
Firecracker does when it restores with a Uffd backend), in one run on this
machine, next to the physical floor (bench/floor) measured in the same run:

  1. served-fault latency: a trace of cold pages only (non-zero pages of
     no plan's hot set, 16 pages apart, shuffled), so that every touch is
     a fault the handler serves; the harness times each first touch and
     tells faulted touches from touches of pages already there (mincore);
     p50/p99/max against the floor's MISSING fault, prefetch window 1 and 8;
  2. prefetch throughput: the handler's prefetch time per prefetched page
     (tiered, eager) against UFFDIO_COPY in 512-page batches;
  3. the trained trace under tiered, reap, vanilla and eager (and tiered
     with its pool over loopback TCP): time from connect to the last touch,
     faults, pages prefetched and lazy, with 1 and 2 vCPU threads.

Targets are printed PASS/MISS; only a failed command or a wrong page makes
the exit status non-zero (timings never do: the machine is shared).
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
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as rb  # noqa: E402  (bench/run.py: the store, floor, helpers)

PAGE = rb.PAGE
SNAP = rb.SNAP
SNAP_TCP = SNAP + "-tcp"
# What item 3 compares, in this order; eager is the fully resident reference.
TRAINED = ["tiered", "reap", "vanilla", "eager"]
SPACING = 8		# pages between two latency-trace pages (>= any window used)
# (with the zero-copy extension the line also says "N mapped zero-copy")
HANG_UP = re.compile(
    r"^pid (?P<pid>\d+): hung up after (?P<faults>\d+) faults "
    r"\((?P<prefetched>\d+) pages prefetched, (?P<lazy>\d+) lazy, "
    r"(?:(?P<mapped>\d+) mapped zero-copy, )?(?P<pool_kib>\d+) KiB from "
    r"the pool; removed ranges: (?P<removes>\d+)\), (?P<zero_faults>\d+) "
    r"zero-page faults, prefetch (?P<prefetch_us>[\d.]+) us, "
    r"faults served in (?P<fault_us>[\d.]+) us$")


def median(v):
    v = sorted(v)
    n = len(v)
    if not n:
        return None
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


class Handler:
    """One "tierctl fc-handler" on its own socket, for the whole run."""

    def __init__(self, b, name, policy, window, snap=SNAP):
        self.b, self.name, self.policy, self.window = b, name, policy, window
        self.sock = os.path.join(b.tmp, name + ".sock")
        self.out = os.path.join(b.tmp, name + ".out")
        self.err = os.path.join(b.tmp, name + ".err")
        cmd = [b.t["tierctl"], "fc-handler", "--store", b.store, snap,
               "--socket", self.sock, "--policy", policy,
               "--prefetch", str(window)]
        rb.log("+ " + " ".join(cmd) + " &")
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.p = subprocess.Popen(cmd, stdout=o, stderr=e)
        for _ in range(200):
            if "listening on " + self.sock in self.read(self.out):
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        raise rb.BenchError("fc-handler %s did not start: %s" %
                            (name, self.read(self.err).strip()))

    @staticmethod
    def read(path):
        try:
            with open(path) as f:
                return f.read()
        except OSError:
            return ""

    def hangup(self, pid, timeout=30):
        """The counters of the session of harness @pid, once it hung up."""
        end = time.monotonic() + timeout
        while True:
            for line in self.read(self.out).splitlines():
                m = HANG_UP.match(line)
                if m and int(m.group("pid")) == pid:
                    r = {k: float(v) if k.endswith("_us") else int(v)
                         for k, v in m.groupdict(default="0").items()}
                    del r["pid"]
                    return r
            if time.monotonic() > end:
                raise rb.BenchError("fc-handler %s: no hang-up line for pid "
                                    "%d: %s" % (self.name, pid,
                                                self.read(self.err).strip()))
            time.sleep(0.01)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.read(self.err).strip()


class FcBench:
    def __init__(self, args, tools, tmp):
        self.a = args
        self.t = tools
        self.tmp = tmp
        # bench/run.py's Bench prepares the store: its options
        ns = argparse.Namespace(size=args.size, zero=args.zero, ro=args.ro,
                                rw=args.rw, seed=args.seed, diff=2,
                                cold_touch=0, flip=0.5, policies=TRAINED,
                                keep=True, reps=args.reps,
                                floor_reps=args.floor_reps,
                                floor_mib=args.floor_mib)
        self.b = rb.Bench(ns, dict(tools), tmp)
        self.b.result["command"] = " ".join(["bench/fc-bench.py"] +
                                            sys.argv[1:])
        self.result = self.b.result
        self.handlers = {}

    # ---------------------------------------------------------- setup

    def prepare(self):
        b = self.b
        b.prepare()		# tier-gen, import, trained trace, place
        self.gen = b.gen
        self.write_latency_traces()
        if not self.a.no_tcp:
            self.prepare_tcp()

    def write_latency_traces(self):
        """cold.trace: non-zero pages outside the trained trace; zero.trace:
        zero pages; both SPACING pages apart at least, shuffled, so that no
        window of a fault reaches the next page of the trace."""
        hot = set()
        with open(self.b.trace) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    hot.add(int(line.split()[0], 0) // PAGE)
        zero_page = bytes(PAGE)
        cold, zero = [], []
        last_c = last_z = -SPACING
        with open(self.b.image, "rb") as f:
            p = 0
            while True:
                blk = f.read(PAGE)
                if not blk:
                    break
                if blk == zero_page:
                    if p - last_z >= SPACING:
                        zero.append(p)
                        last_z = p
                elif p not in hot and p - last_c >= SPACING:
                    cold.append(p)
                    last_c = p
                p += 1
        r = random.Random(self.a.seed)
        self.traces = {}
        for name, pages in (("cold", cold), ("zero", zero)):
            r.shuffle(pages)
            pages = pages[:self.a.lat_pages]
            path = os.path.join(self.tmp, name + ".trace")
            with open(path, "w") as f:
                f.write("# %s pages only, %d apart at least\n" %
                        (name, SPACING))
                for pg in pages:
                    f.write("%#x r\n" % (pg * PAGE))
            self.traces[name] = (path, len(pages))
        self.result["latency_traces"] = {k: v[1] for k, v in
                                         self.traces.items()}

    def prepare_tcp(self):
        """A second snapshot of the same image, tiered with its pool behind
        "tierctl pool serve" on loopback (the first keeps its file pool)."""
        b = self.b
        d = os.path.join(self.tmp, "tcp-pool")
        os.makedirs(d, exist_ok=True)
        cmd = [self.t["tierctl"], "pool", "serve", "--no-auth", "--listen",
               "tcp://127.0.0.1:0", "--dir", d]
        rb.log("+ " + " ".join(cmd) + " &")
        self.pool_err = os.path.join(self.tmp, "pool-serve.err")
        with open(self.pool_err, "w") as err:
            self.pool = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                         stderr=err, text=True)
        line = ""
        if select.select([self.pool.stdout], [], [], 30)[0]:
            line = self.pool.stdout.readline()
        m = re.search(r"listening on (tcp://[\w.:\[\]-]+)", line)
        if not m:
            raise rb.BenchError("pool serve did not say where it listens: %r"
                                % line)
        self.pool_uri = m.group(1)
        b.tierctl("import", "--quiet", SNAP_TCP, b.image)
        b.tierctl("trace import", "--name", "trained", SNAP_TCP, b.trace)
        b.tierctl("place", "--policy", "tiered", "--trace", "trained",
                  "--cxl", b.cxl, "--pool", self.pool_uri, SNAP_TCP)
        self.result["tcp_pool"] = self.pool_uri

    def handler(self, policy, window, tcp=False):
        key = (policy, window, tcp)
        if key not in self.handlers:
            name = "%s%s-w%d" % (policy, "-tcp" if tcp else "", window)
            self.handlers[key] = Handler(self.b, name, policy, window,
                                         SNAP_TCP if tcp else SNAP)
        return self.handlers[key]

    def stop_all(self):
        errs = {}
        for h in self.handlers.values():
            e = h.stop()
            if e:
                errs[h.name] = e
        if getattr(self, "pool", None):
            self.pool.send_signal(signal.SIGTERM)
            try:
                self.pool.wait(10)
            except subprocess.TimeoutExpired:
                self.pool.kill()
                self.pool.wait()
        if errs:
            self.result["handler_errors"] = errs
        return errs

    # ---------------------------------------------------------- runs

    def harness(self, h, trace, threads, latency):
        cmd = [self.t["harness"], "--socket", h.sock, "--image",
               self.b.image, "--trace", trace, "--threads", str(threads),
               "--timeout", "300", "--latency" if latency else "--stats"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise rb.BenchError("%s exited %d: %s %s" % (
                " ".join(cmd), p.returncode, out.strip()[-1000:],
                err.strip()[-1000:]))
        m = re.search(r"(\d+) pages touched, (\d+) compared, .* (\d+) wrong",
                      out)
        st = None
        for line in out.splitlines():
            if line.startswith("fc-harness: stats "):
                st = json.loads(line[len("fc-harness: stats "):])
        if not m or st is None:
            raise rb.BenchError("fc-harness printed no stats: %r" % out)
        st["compared"] = int(m.group(2))
        st["wrong"] = int(m.group(3))
        st["handler"] = h.hangup(p.pid)
        return st

    def configs(self):
        """(table, key, policy, window, tcp, trace, threads, latency)."""
        c = []
        cold = self.traces["cold"][0]
        zero = self.traces["zero"][0]
        for w in (1, 8):
            for pol in ("tiered", "vanilla"):
                c.append(("latency", "%s cold w%d" % (pol, w), pol, w,
                          False, cold, 1, True))
            c.append(("latency", "tiered zero w%d" % w, "tiered", w, False,
                      zero, 1, True))
        for th in self.a.threads:
            for pol in TRAINED:
                c.append(("trained", "%s %dt" % (pol, th), pol, 8, False,
                          self.b.trace, th, False))
            if not self.a.no_tcp:
                c.append(("trained", "tiered-tcp %dt" % th, "tiered", 8,
                          True, self.b.trace, th, False))
        return c

    def run_all(self):
        """Every configuration --reps times, interleaved so that the noise
        of this shared machine hits them alike."""
        cfg = self.configs()
        for c in cfg:
            self.handler(c[2], c[3], c[4])	# all listening before any run
        samples = {c[1]: [] for c in cfg}
        for rep in range(self.a.reps):
            rb.log("fc-bench: round %d of %d" % (rep + 1, self.a.reps))
            for table, key, pol, w, tcp, trace, th, lat in cfg:
                s = self.harness(self.handler(pol, w, tcp), trace, th, lat)
                if s["wrong"]:
                    raise rb.BenchError("%s: %d wrong pages" % (key,
                                                                s["wrong"]))
                samples[key].append(s)
        res = {"latency": {}, "trained": {}}
        for table, key, pol, w, tcp, trace, th, lat in cfg:
            res[table][key] = self.summarise(samples[key], pol, w, tcp, th)
        self.result["runs"] = res

    @staticmethod
    def summarise(s, pol, w, tcp, th):
        hs = [x["handler"] for x in s]
        r = {"policy": pol, "window": w, "tcp": tcp, "threads": th,
             "reps": len(s), "samples": s}
        for k in ("connect_to_first_touch_us", "connect_to_last_touch_us",
                  "fault_p50_ns", "fault_p99_ns",
                  "fault_mean_ns", "faulted", "resident", "resident_p50_ns",
                  "first_touch_ns"):
            if k in s[0]:
                r[k] = median(x[k] for x in s)
        if "fault_max_ns" in s[0]:
            r["fault_max_ns"] = max(x["fault_max_ns"] for x in s)
        for k in ("faults", "prefetched", "lazy", "pool_kib", "zero_faults",
                  "prefetch_us", "fault_us"):
            r[k] = median(h[k] for h in hs)
        r["faults_max"] = max(h["faults"] for h in hs)
        r["zero_faults_max"] = max(h["zero_faults"] for h in hs)
        # a fault installs its page and its window: copies, except zero
        # pages (ZEROPAGE); the trained trace touches none
        r["copied"] = r["prefetched"] + r["lazy"]
        pf = [h["prefetch_us"] * 1e3 / h["prefetched"] for h in hs
              if h["prefetched"]]
        r["prefetch_ns_per_page"] = round(median(pf), 1) if pf else None
        sv = [h["fault_us"] * 1e3 / h["faults"] for h in hs if h["faults"]]
        r["service_ns_per_fault"] = round(median(sv), 1) if sv else None
        return r

    def floor(self, key):
        out, _ = rb.run([self.t["floor"], "--reps", str(self.a.floor_reps),
                         "--mib", str(self.a.floor_mib), "--dir", self.tmp])
        self.result[key] = rb.last_json(out, "floor")

    # ---------------------------------------------------------- report

    def analyse(self):
        res, fl = self.result, self.result.get("floor", {})
        runs = res.get("runs", {})
        lat, tr = runs.get("latency", {}), runs.get("trained", {})
        checks, an = [], {}
        miss = fl.get("missing_fault_ns_per_page")
        copy = fl.get("uffd_copy_batch512_ns_per_page")
        for key, r in lat.items():
            if miss and r.get("fault_p50_ns"):
                r["p50_over_floor"] = round(r["fault_p50_ns"] / miss, 2)
                r["mean_over_floor"] = round(r["fault_mean_ns"] / miss, 2)
        t1 = lat.get("tiered cold w1")
        if t1 and miss:
            checks.append(("tiered fault p50 <= 1.5x MISSING floor",
                           "%.1f us / %.1f us = %.2fx (window 1; %d of %d "
                           "touches faulted)" % (
                               t1["fault_p50_ns"] / 1e3, miss / 1e3,
                               t1["fault_p50_ns"] / miss, t1["faulted"],
                               t1["faulted"] + t1["resident"]),
                           t1["fault_p50_ns"] <= 1.5 * miss))
        for pol in ("tiered", "eager"):
            r = tr.get("%s 1t" % pol)
            if r and copy and r.get("prefetch_ns_per_page"):
                x = copy / r["prefetch_ns_per_page"]
                an["%s_prefetch_over_floor" % pol] = round(x, 2)
                checks.append(("%s prefetch >= 0.8x UFFDIO_COPY x512" % pol,
                               "%d pages, %.0f ns/page vs %.0f: %.2fx the "
                               "floor's throughput" % (
                                   r["prefetched"], r["prefetch_ns_per_page"],
                                   copy, x), x >= 0.8))
        # Not a target: the trained pages come in scattered runs of 1-3, and
        # each run is its own UFFDIO_COPY: priced at this run's rates.
        c1 = fl.get("uffd_copy_batch1_ns_per_page")
        runs_ = self.gen.get("trace_runs")
        pages = self.gen.get("trace_pages")
        if c1 and copy and runs_ and pages:
            sf = (runs_ * c1 + (pages - runs_) * copy) / pages
            an["shape_floor_ns_per_page"] = round(sf, 1)
            an["shape_floor_formula"] = (
                "%d runs x %.0f ns (UFFDIO_COPY x1) + %d pages x %.0f ns "
                "(x512), over %d pages" % (runs_, c1, pages - runs_, copy,
                                           pages))
        tt = [r for k, r in tr.items() if k.startswith("tiered ")]
        if tt:
            worst = max(r["faults_max"] for r in tt)
            zero = max(r["zero_faults_max"] for r in tt)
            checks.append(("tiered: 0 lazy faults, trained trace",
                           "at most %d faults in any run (%d of them zero "
                           "pages'), %d runs" % (worst, zero,
                                                 sum(r["reps"] for r in tt)),
                           worst == 0))
        rel = {}
        for th in self.a.threads:
            t = tr.get("tiered %dt" % th)
            if not t:
                continue
            for other in ("vanilla", "reap", "eager"):
                o = tr.get("%s %dt" % (other, th))
                if o:
                    rel["tiered/%s %dt" % (other, th)] = {
                        "time": round(t["connect_to_last_touch_us"] /
                                      o["connect_to_last_touch_us"], 2),
                        "copied": round(t["copied"] / max(1, o["copied"]),
                                        2)}
        an["ratios"] = rel
        res["analysis"] = an
        res["checks"] = [{"target": c[0], "measured": c[1], "pass": c[2]}
                         for c in checks]

    @staticmethod
    def table(w, hdr, rows):
        widths = [max(len(x[i]) for x in rows + [hdr])
                  for i in range(len(hdr))]
        for row in [hdr] + rows:
            w("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i])
                        for i, c in enumerate(row)).rstrip() + "\n")

    def print_report(self, out=sys.stdout):
        res, gen, w = self.result, self.gen, out.write
        w("\nfc-handler benchmark  %s  (%s)\n" % (res["date"], res["machine"]))
        w("load average: %s at start, %s at end\n" % (
            res.get("loadavg_start", "?"), res.get("loadavg_end", "?")))
        w("command: %s  (tree %s)\n" % (res["command"], res.get("tree", "?")))
        w("image: %s, %d pages: zero %.1f%%, ro hot %d, rw hot %d, cold %d; "
          "trained trace %d pages in %d runs; latency traces: %d cold, %d "
          "zero pages, %d apart\n" % (
              rb.fmt_size(res["size"]), gen["pages"],
              100.0 * gen["zero_pages"] / gen["pages"], gen["ro_pages"],
              gen["rw_pages"], gen["cold_pages"], gen["trace_pages"],
              gen["trace_runs"], res["latency_traces"]["cold"],
              res["latency_traces"]["zero"], SPACING))
        for key in ("floor", "floor_end"):
            fl = res.get(key)
            if fl:
                w("%s (ns/page, median of %d): MISSING fault %s, UFFDIO_COPY "
                  "x512 %s, x1 %s, memcpy %s; two threads %sx\n" % (
                      "floor at start" if key == "floor" else "floor at end",
                      fl.get("reps"), fl.get("missing_fault_ns_per_page"),
                      fl.get("uffd_copy_batch512_ns_per_page"),
                      fl.get("uffd_copy_batch1_ns_per_page"),
                      fl.get("memcpy_ns_per_page"),
                      fl.get("two_thread_speedup")))
        runs = res.get("runs", {})
        w("\n== served-fault latency: one vCPU, each first touch timed, "
          "median of %d runs (max: of all)\n" % self.a.reps)
        rows = []
        for key, r in runs.get("latency", {}).items():
            rows.append((key, "%d/%d" % (r["faulted"], r["faulted"] +
                                         r["resident"]),
                         "%.1f" % (r["fault_p50_ns"] / 1e3),
                         "%.1f" % (r["fault_p99_ns"] / 1e3),
                         "%.1f" % (r["fault_max_ns"] / 1e3),
                         "%.1f" % (r["fault_mean_ns"] / 1e3),
                         "%.2f" % r.get("p50_over_floor", 0),
                         "%.2f" % r.get("mean_over_floor", 0),
                         "%.1f" % ((r["service_ns_per_fault"] or 0) / 1e3),
                         "%.1f" % (r["first_touch_ns"] / 1e3),
                         str(r["faults"]), str(r["lazy"]),
                         str(r["zero_faults"])))
        self.table(w, ("config", "faulted", "p50_us", "p99_us", "max_us",
                       "mean_us", "p50/floor", "mean/floor", "serve_us",
                       "first_us",
                       "faults", "lazy", "zero_f"), rows)
        w("\n== trained trace, window 8, median of %d runs\n" % self.a.reps)
        rows = []
        for key, r in runs.get("trained", {}).items():
            rows.append((key, "%.2f" % (r["connect_to_first_touch_us"] / 1e3),
                         "%.2f" % (r["connect_to_last_touch_us"] / 1e3),
                         str(r["faults"]), str(r["zero_faults"]),
                         str(r["prefetched"]), str(r["lazy"]),
                         str(r["copied"]),
                         "%.1f" % (r["pool_kib"] / 1024.0),
                         "%.2f" % (r["prefetch_us"] / 1e3),
                         "%.0f" % r["prefetch_ns_per_page"]
                         if r["prefetch_ns_per_page"] else "-",
                         "%.1f" % (r["service_ns_per_fault"] / 1e3)
                         if r["service_ns_per_fault"] else "-"))
        self.table(w, ("config", "conn->first_ms", "conn->last_ms",
                       "faults", "zero_f",
                       "prefetched", "lazy", "copied", "pool_MiB",
                       "prefetch_ms", "ns/pf_page", "serve_us"), rows)
        an = res.get("analysis", {})
        if "shape_floor_ns_per_page" in an:
            w("\nprefetch of the trained pages at this trace's shape (not a "
              "target): %s = %.0f ns/page\n" % (an["shape_floor_formula"],
                                               an["shape_floor_ns_per_page"]))
        rel = an.get("ratios", {})
        if rel:
            w("\ntiered / other (trained trace): time connect->last touch, "
              "pages copied\n")
            for k, v in rel.items():
                w("  %-18s %6.2fx %6.2fx\n" % (k, v["time"], v["copied"]))
        w("\ntargets:\n")
        for c in res.get("checks", []):
            w("  %-4s %-42s %s\n" % ("PASS" if c["pass"] else "MISS",
                                     c["target"], c["measured"]))
        if res.get("handler_errors"):
            w("\nhandler errors: %s\n" % res["handler_errors"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=rb.parse_size,
                    default=rb.parse_size("512M"),
                    help="image size, K/M/G suffix (default 512M)")
    ap.add_argument("--zero", type=float, default=82)
    ap.add_argument("--ro", type=float, default=5)
    ap.add_argument("--rw", type=float, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5,
                    help="runs of each configuration, interleaved")
    ap.add_argument("--threads", default="1,2",
                    help="vCPU thread counts of the trained-trace runs")
    ap.add_argument("--lat-pages", type=int, default=4000,
                    help="pages of each latency trace (at most)")
    ap.add_argument("--floor-reps", type=int, default=5)
    ap.add_argument("--floor-mib", type=int, default=64)
    ap.add_argument("--no-tcp", action="store_true",
                    help="skip tiered with its pool over loopback TCP")
    ap.add_argument("--quick", action="store_true",
                    help="a 64 MiB image, 1 run, small floor (smoke test)")
    ap.add_argument("--dir", default="/dev/shm",
                    help="where the temporary store goes (default /dev/shm)")
    ap.add_argument("--build", help="meson build directory (default: "
                    "$TIER_BUILD, else next to $TIERCTL, else ./build)")
    ap.add_argument("--json", metavar="FILE",
                    help="also write every number as JSON to FILE")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary store, image and logs")
    args = ap.parse_args()
    if args.quick:
        args.size, args.reps, args.lat_pages = rb.parse_size("64M"), 1, 200
        args.floor_reps, args.floor_mib = 1, 8
    args.threads = [int(x) for x in args.threads.split(",") if x]
    if args.size % PAGE:
        ap.error("--size must be a multiple of 4096")

    try:
        tools = rb.find_tools(args)
        build = os.path.dirname(os.path.dirname(tools["gen"]))
        tools["harness"] = (os.environ.get("FC_HARNESS") or
                            os.path.join(build, "tests", "fc-harness"))
        if not os.access(tools["harness"], os.X_OK):
            raise rb.BenchError("fc-harness not found at %s" %
                                tools["harness"])
    except rb.BenchError as e:
        rb.log("fc-bench.py: %s" % e)
        return 1
    tmp = tempfile.mkdtemp(prefix="tier-fcbench.", dir=args.dir)
    fb = FcBench(args, tools, tmp)
    rc = 0
    try:
        fb.prepare()
        fb.floor("floor")
        fb.run_all()
        fb.floor("floor_end")
    except (rb.BenchError, subprocess.SubprocessError, OSError) as e:
        rb.log("fc-bench.py: %s" % e)
        fb.result["error"] = str(e)
        rc = 1
    finally:
        if fb.stop_all():
            rc = 1
        fb.result["loadavg_end"] = rb.loadavg()
        if args.keep:
            rb.log("fc-bench.py: kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if fb.result.get("runs"):
        fb.analyse()
        fb.print_report()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(fb.result, f, indent=1)
            f.write("\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
